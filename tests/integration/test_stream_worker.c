/* The stream worker against the dev broker and the Twilio emulator (with
 * the room worker making the rooms), driven through the ingress: Live
 * resources made as stagehand asks for them, playback grants refreshed and
 * published, everything ended with the stream, a restart that calls
 * Twilio for nothing new, and orphans ended by the reconcile pass. */
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

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include "../support/pipeline_helpers.h"
#include "event.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

/* The room worker (worker 0) makes the rooms; the stream worker is under test. */
#define STREAM_WORKER 1

static int setup(void **state)
{
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", NULL};
    struct fixture_options o = {.broker = 1,
                                .ingress = FIXTURE_INGRESS,
                                .emulator = 1,
                                .workers = {{"room", NULL}, {"stream", env}},
                                .events = FIXTURE_READER,
                                .producer = 1};
    return fixture_setup(state, &o);
}

/* --- helpers ---------------------------------------------------------------------------------- */

/* --- tests -------------------------------------------------------------------------------------- */

static void test_live_resources(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(post_async(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday night\"}"),
                     202);
    json_t *room = wait_room(f, "friday night", "in-progress");
    char room_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(room, "sid")));
    json_decref(room);

    /* media.started names both resources; the record has them and a grant. */
    rd_kafka_message_t *msg = next_of_type(f, "media.started");
    struct event ev;
    char err[256], streamer[40], processor[40];
    assert_int_equal(event_parse(msg->payload, msg->len, &ev, err, sizeof err), 0);
    snprintf(streamer, sizeof streamer, "%s", event_data_string(&ev, "player_streamer_sid"));
    snprintf(processor, sizeof processor, "%s", event_data_string(&ev, "media_processor_sid"));
    assert_string_equal(ev.stream, "friday night");
    event_free(&ev);
    rd_kafka_message_destroy(msg);

    json_t *s = media_resource(f, "player_streamers", streamer);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "started");
    assert_true(json_is_true(json_object_get(s, "video")));
    assert_int_equal(json_integer_value(json_object_get(s, "max_duration")), 1800);
    assert_string_equal(json_string_value(json_object_get(s, "status_callback")),
                        TEST_PUBLIC_BASE_URL "/media-webhook?stream=friday%20night");
    json_decref(s);
    json_t *p = media_resource(f, "media_processors", processor);
    assert_string_equal(json_string_value(json_object_get(p, "extension")), "video-composer-v2");
    json_t *context = json_loads(json_string_value(json_object_get(p, "extension_context")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(context, "room"), "name")), room_sid);
    assert_string_equal(json_string_value(json_array_get(json_object_get(context, "outputs"), 0)), streamer);
    assert_string_equal(json_string_value(json_object_get(context, "resolution")), "1920x1080");
    json_decref(context);
    json_decref(p);

    json_t *record = wait_state(f, "friday night/stream", "ready");
    assert_string_equal(json_string_value(json_object_get(record, "player_streamer_sid")), streamer);
    assert_string_equal(json_string_value(json_object_get(record, "media_processor_sid")), processor);
    json_t *grant = json_object_get(record, "playback_grant");
    assert_string_equal(json_string_value(json_object_get(grant, "playerStreamerSid")), streamer);
    char first_url[512];
    snprintf(first_url, sizeof first_url, "%s", json_string_value(json_object_get(grant, "playbackUrl")));
    assert_true(json_integer_value(json_object_get(record, "playback_grant_expires_ms")) > time_now_ms());
    json_decref(record);

    /* GRANT_REFRESH_S=1 here: a fresh grant is published within seconds. */
    int refreshed = 0;
    for (int i = 0; i < 60 && !refreshed; i++) {
        record = wait_state(f, "friday night/stream", "ready");
        const char *url = json_string_value(json_object_get(json_object_get(record, "playback_grant"), "playbackUrl"));
        refreshed = url && strcmp(url, first_url) != 0;
        json_decref(record);
        if (!refreshed)
            usleep(200 * 1000);
    }
    assert_true(refreshed);

    /* The host ends the stream: the processor, then the streamer, end. */
    assert_int_equal(post_async(f, "/delete-stream", "{\"stream_name\":\"friday night\"}"), 200);
    wait_media_status(f, "media_processors", processor, "ended");
    wait_media_status(f, "player_streamers", streamer, "ended");
    rd_kafka_message_destroy(next_of_type(f, "media.ended"));
    record = wait_state(f, "friday night/stream", "ended");
    assert_null(json_object_get(record, "playback_grant"));
    json_decref(record);

    /* An orphan (a crash between creating it and recording it, say): the
     * reconcile pass at start ends it; the ended stream's are left alone. */
    struct twilio_result res;
    struct kv_list form;
    kv_init(&form);
    twilio_request(f->emu_client, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, NULL, &res);
    char orphan[40];
    snprintf(orphan, sizeof orphan, "%s", json_string_value(json_object_get(res.body, "sid")));
    twilio_result_free(&res);
    kv_free(&form);
    assert_int_equal(process_stop(&f->workers[STREAM_WORKER], 20000), 0);
    long calls = media_requests(f);
    /* Rebuilt from the log (SNAPSHOT_INTERVAL_S=0: no checkpoint; test_snapshots covers those). */
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", "SNAPSHOT_INTERVAL_S=0", NULL};
    fixture_start_worker(f, STREAM_WORKER, env);
    wait_media_status(f, "player_streamers", orphan, "ended");
    json_t *ended = media_resource(f, "player_streamers", orphan);
    assert_string_equal(json_string_value(json_object_get(ended, "ended_reason")), "ended-via-api");
    json_decref(ended);
    /* The rebuild made no Media call: only the reconcile pass's three lists and one end. */
    wait_metric(f, STREAM_WORKER, "stagehand_worker_events_total{type=\"room.created\",outcome=\"folded\"}", 1);
    assert_int_equal(media_requests(f), calls + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_resources, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
