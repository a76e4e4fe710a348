/* The sync worker with the whole pipeline around it: dev broker, Twilio
 * emulator (whose webhooks reach the ingress), ingress, and the room,
 * stream and sync workers. The story of the reference backend, step by
 * step, checked in the emulator's Sync state: a host creates a stream,
 * viewers join and connect (a capped, backfilled viewers map and an exact
 * count), hands go up (capped, a refusal recorded), the host invites, the
 * invited viewer goes on stage, a viewer's Sync endpoint drops, the host
 * moves the speaker back to the audience (who joins again as a viewer),
 * another speaker leaves the stage by choice, a restart of the sync worker
 * writes nothing again, and the host leaves for good: the stream ends for
 * all. A second test: a crowd leaving in join order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/pipeline_helpers.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "timeutil.h"
#include "token.h"
#include "twilio.h"

static const char *const story_env[] = {"VIEWERS_MAP_CAP=3",
                                        "RAISED_HANDS_CAP=2",
                                        "COUNT_INTERVAL_MS=200",
                                        "HOST_GRACE_S=1",
                                        "SYNC_DEBOUNCE_MS=1000",
                                        "GRANT_REFRESH_S=5",
                                        NULL};

static void test_story(void **state)
{
    struct fixture *f = *state;
    json_t *answer, *service;

    /* The host creates the stream: answered once room, Sync and media are ready. */
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}", &answer),
                     200);
    assert_non_null(json_object_get(answer, "token"));
    json_decref(answer);
    service = sync_service(f, "friday");
    assert_non_null(service);
    assert_true(json_is_true(json_object_get(service, "acl_enabled")));
    assert_true(json_is_true(json_object_get(service, "reachability_webhooks_enabled")));
    char webhook[160];
    snprintf(webhook, sizeof webhook, "%s/sync-webhook?stream=friday", f->public_url);
    assert_string_equal(json_string_value(json_object_get(service, "webhook_url")), webhook);
    char service_sid[40];
    snprintf(service_sid, sizeof service_sid, "%s", json_string_value(json_object_get(service, "sid")));
    json_t *host = json_object_get(map_items(service, "speakers"), "alice");
    assert_true(json_is_true(json_object_get(host, "host")));
    assert_int_equal(json_object_size(map_items(service, "viewers")), 0);
    assert_int_equal(json_object_size(map_items(service, "raised_hands")), 0);
    assert_int_equal(json_integer_value(json_object_get(document(service, "stream"), "viewer_count")), 0);
    json_decref(service);
    room_join(f, "alice");

    /* Five viewers join and connect their players: three listed, five counted. */
    const char *viewers[] = {"v1", "v2", "v3", "v4", "v5"};
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"friday\"}", viewers[i]);
        assert_int_equal(api(f, "/join-stream-as-viewer", body, &answer), 200);
        assert_string_equal(json_string_value(json_object_get(answer, "room_sid")),
                            json_string_value(json_object_get(answer, "room_sid")));
        json_decref(answer);
        assert_int_equal(api(f, "/viewer-connected-to-player", body, NULL), 200);
    }
    expect_items(f, "viewers", 3, "v1", "v4");
    expect_doc(f, "stream", "viewer_count", 5);
    expect_doc(f, "user-v1", "speaker_invite", 0);

    /* Hands: two fit under the cap; a third is refused and told so. */
    assert_int_equal(api(f, "/raise-hand", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\",\"hand_raised\":true}",
                         NULL),
                     200);
    assert_int_equal(api(f, "/raise-hand", "{\"user_identity\":\"v2\",\"stream_name\":\"friday\",\"hand_raised\":true}",
                         NULL),
                     200);
    expect_items(f, "raised_hands", 2, "v1", NULL);
    produce_event(f, "hand.raised", "friday", "v3");
    wait_produced(f);
    expect_doc(f, "user-v3", "raised_hand_refused", 1);
    expect_items(f, "raised_hands", 2, "v2", "v3");

    /* The host invites v1, who goes on stage: off viewers (backfilled by
     * v4) and raised hands, onto speakers. */
    assert_int_equal(api(f, "/send-speaker-invite", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL),
                     200);
    expect_doc(f, "user-v1", "speaker_invite", 1);
    assert_int_equal(api(f, "/join-stream-as-speaker", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL),
                     200);
    room_join(f, "v1");
    expect_items(f, "speakers", 2, "v1", NULL);
    expect_items(f, "viewers", 3, "v4", "v1");
    expect_items(f, "raised_hands", 1, "v2", "v1");
    expect_doc(f, "stream", "viewer_count", 4);

    /* v2 closes the app: its Sync endpoint drops (debounced), its hand goes down. */
    char *token = token_for("v2", NULL, service_sid);
    char path[128], form[4096];
    json_t *endpoint = NULL;
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints", service_sid);
    snprintf(form, sizeof form, "Token=%s", token);
    assert_int_equal(emulator_post(f, path, form, &endpoint), 201);
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints/%s/disconnect", service_sid,
             json_string_value(json_object_get(endpoint, "endpoint_id")));
    json_decref(endpoint);
    free(token);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
    expect_items(f, "raised_hands", 0, NULL, "v2");
    expect_items(f, "viewers", 3, "v5", "v2");
    expect_doc(f, "stream", "viewer_count", 3);

    /* The host moves v1 back to the audience: out of the room, off
     * speakers. v1 joins again as a viewer: the invitation is cleared and,
     * the map being full (v3, v4, v5), v1 waits for a place. */
    assert_int_equal(api(f, "/remove-speaker", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL), 200);
    expect_participant(f, "v1", "disconnected");
    expect_items(f, "speakers", 1, "alice", "v1");
    assert_int_equal(api(f, "/join-stream-as-viewer", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL),
                     200);
    assert_int_equal(api(f, "/viewer-connected-to-player", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}",
                         NULL),
                     200);
    expect_doc(f, "user-v1", "speaker_invite", 0);
    expect_doc(f, "stream", "viewer_count", 4);
    expect_items(f, "viewers", 3, "v3", "v1");

    /* v3 is invited up, then leaves the stage by choice: v1 takes v3's
     * place in the map, and v3 is off speakers once gone. */
    assert_int_equal(api(f, "/send-speaker-invite", "{\"user_identity\":\"v3\",\"stream_name\":\"friday\"}", NULL),
                     200);
    assert_int_equal(api(f, "/join-stream-as-speaker", "{\"user_identity\":\"v3\",\"stream_name\":\"friday\"}", NULL),
                     200);
    room_join(f, "v3");
    expect_items(f, "speakers", 2, "v3", NULL);
    expect_items(f, "viewers", 3, "v1", "v3");
    expect_doc(f, "stream", "viewer_count", 3);
    room_leave(f, "v3");
    expect_participant(f, "v3", "disconnected");
    expect_items(f, "speakers", 1, "alice", "v3");

    /* A restart of the sync worker rebuilds and writes nothing again. It
     * only reads what memory cannot know: the three maps (what the last
     * rounds wrote) and the documents of the users whose document was ever
     * more than the default (v1, v2 and v3 had a hand or an invitation);
     * the viewers who only joined are known to have access from the
     * provisioning cursor of the state record. The stopping worker
     * checkpoints its partitions (SNAPSHOT_INTERVAL_S), so the new one
     * loads the checkpoint and folds no event again. */
    usleep(500 * 1000); /* let the last state record go out */
    long writes = sync_writes_total(f), requests = sync_requests(f);
    assert_int_equal(process_stop(&f->workers[2], 20000), 0);
    fixture_restart_worker(f, 2);
    static const char loaded[] = "stagehand_worker_checkpoint_loads_total{outcome=\"loaded\"}";
    for (int i = 0; i < 400 && metric(f, 2, loaded) < 1; i++)
        usleep(50 * 1000);
    assert_true(metric(f, 2, loaded) >= 1);
    assert_true(metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"folded\"}") <= 0);
    usleep(500 * 1000);
    assert_int_equal(sync_writes_total(f), writes);
    assert_int_equal(sync_requests(f), requests + 3 + 3);
    requests += 6;

    /* Every event of the stream delivered a second time (the same ids at
     * new offsets, as a re-imported log would be): nothing is written. */
    int copied = copy_stream_events(f, "friday");
    assert_true(copied >= 20);
    for (int i = 0;
         i < 400 && metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"duplicate\"}") < 5;
         i++)
        usleep(50 * 1000);
    assert_true(metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"duplicate\"}") >= 5);
    usleep(500 * 1000);
    assert_int_equal(sync_writes_total(f), writes);
    assert_int_equal(sync_requests(f), requests);

    /* The host leaves and does not come back: the stream ends for all. */
    room_leave(f, "alice");
    for (int i = 0; i < 300; i++) {
        service = sync_service(f, "friday");
        if (!service)
            break;
        json_decref(service);
        usleep(50 * 1000);
    }
    /* Deleted once the end was asked for (or the room ended) and the media
     * ended; the room worker completes the room on its own time. */
    assert_null(sync_service(f, "friday"));
    json_t *state_json = NULL;
    const char *status = NULL;
    for (int tries = 0; tries < 300; tries++) {
        json_decref(state_json);
        state_json = emulator_get(f, "/_emulator/state");
        status = NULL;
        json_t *r;
        size_t i;
        json_array_foreach (json_object_get(state_json, "rooms"), i, r)
            if (strcmp(json_string_value(json_object_get(r, "unique_name")), "friday") == 0)
                status = json_string_value(json_object_get(r, "status"));
        if (status && strcmp(status, "completed") == 0)
            break;
        usleep(50 * 1000);
    }
    assert_non_null(status);
    assert_string_equal(status, "completed");
    json_t *ps = json_array_get(json_object_get(json_object_get(state_json, "media"), "player_streamers"), 0);
    assert_string_equal(json_string_value(json_object_get(ps, "status")), "ended");
    json_decref(state_json);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
}

/* A crowd leaves in the order it came, the worst order for a backfilled
 * map (each listed viewer's place would go to the next to leave): the
 * viewers rounds keep the writes to a few per round instead of two per
 * viewer, and the end state is exact. */
static void test_leave_burst(void **state)
{
    struct fixture *f = *state;
    enum { CROWD = 2000 };
    f->stream = "crowd";
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"crowd\"}", NULL), 200);
    char identity[32];
    for (int i = 0; i < CROWD; i++) {
        snprintf(identity, sizeof identity, "c%04d", i);
        produce_event(f, "viewer.connected", "crowd", identity);
    }
    wait_produced(f);
    expect_doc(f, "stream", "viewer_count", CROWD);
    expect_items(f, "viewers", 3, "c0000", "c0003"); /* the first three to come */
    expect_items(f, "viewers", 3, "c0002", NULL);
    long before = sync_writes_total(f);
    for (int i = 0; i < CROWD; i++) {
        snprintf(identity, sizeof identity, "c%04d", i);
        produce_event(f, "viewer.disconnected", "crowd", identity);
    }
    wait_produced(f);
    expect_doc(f, "stream", "viewer_count", 0);
    expect_items(f, "viewers", 0, NULL, NULL);
    long writes = sync_writes_total(f) - before;
    assert_true(writes >= 4);         /* three items gone, the count written */
    assert_true(writes < CROWD / 10); /* backfilling each leave would take 2 x CROWD */
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
}

static int setup(void **state)
{
    return setup_sync_pipeline(state, story_env, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_story, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_leave_burst, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
