/* Issue 15, item 1, end to end: a viewer called ".." raised and lowered a
 * hand, the sync worker sent DELETE .../Maps/raised_hands/Items/.., libcurl
 * resolved it to DELETE .../Maps/raised_hands/, and the stream's
 * raised_hands map was gone. On the whole pipeline (full_stack.h):
 *
 * - the ingress refuses "." and ".." as any identity, on every endpoint
 *   that takes one, and the stream's maps stay as they were;
 * - events naming ".." or "." produced straight onto Kafka (past the
 *   ingress) never reach Twilio: each worker sends them to the DLQ, and
 *   afterwards the maps, the hands in them and the room are all still there,
 *   and the stream goes on working. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define STREAM "s1"

/* The stream's Sync service in the emulator (a new reference), or NULL. */
static json_t *service_of(struct fixture *f)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *service;
    size_t i;
    json_array_foreach (json_object_get(state, "sync_services"), i, service) {
        const char *name = json_string_value(json_object_get(service, "friendly_name"));
        if (name && strcmp(name, "Live Video Stream " STREAM) == 0)
            found = json_incref(service);
    }
    json_decref(state);
    return found;
}

/* The items of the stream's map (a new reference), or NULL when the map
 * (or the service) does not exist. */
static json_t *sync_map_items(struct fixture *f, const char *map)
{
    json_t *service = service_of(f), *items = NULL, *m;
    size_t i;
    json_array_foreach (json_object_get(service, "maps"), i, m) {
        const char *name = json_string_value(json_object_get(m, "unique_name"));
        if (name && strcmp(name, map) == 0)
            items = json_incref(json_object_get(m, "items"));
    }
    json_decref(service);
    return items;
}

/* Waits until the map exists and holds key (present 1) or not (present 0). */
static void wait_item(struct fixture *f, const char *map, const char *key, int present)
{
    for (int i = 0; i < 300; i++) {
        json_t *items = sync_map_items(f, map);
        int has = items && json_object_get(items, key) != NULL;
        json_decref(items);
        if (items && has == present)
            return;
        usleep(50 * 1000);
    }
    fail_msg("map %s never came to %s %s", map, present ? "hold" : "lack", key);
}

/* The three maps exist, raised_hands holds exactly the hands listed. */
static void expect_maps(struct fixture *f, const char *const hands[], size_t nhands)
{
    static const char *const maps[] = {"speakers", "viewers", "raised_hands"};
    for (size_t i = 0; i < 3; i++) {
        json_t *items = sync_map_items(f, maps[i]);
        if (!items)
            fail_msg("the %s map of %s is gone", maps[i], STREAM);
        if (strcmp(maps[i], "raised_hands") == 0) {
            assert_int_equal(json_object_size(items), nhands);
            for (size_t k = 0; k < nhands; k++)
                assert_non_null(json_object_get(items, hands[k]));
        }
        json_decref(items);
    }
}

/* A live stream hosted by alice, with bob's hand up. */
static void live_stream_with_a_hand(struct fixture *f)
{
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"" STREAM "\"}", NULL),
                     200);
    assert_int_equal(api(f, "/join-stream-as-viewer", "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\"}",
                         NULL),
                     200);
    assert_int_equal(api(f, "/raise-hand",
                         "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\",\"hand_raised\":true}", NULL),
                     200);
    wait_item(f, "raised_hands", "bob", 1);
}

/* The report's steps, and every other endpoint that takes an identity,
 * as "." and "..": 400 each time; bob's hand and the maps stay. Then bob
 * lowers his hand: the map empties and is still there. */
static void test_ingress_refuses_dot_identities(void **state)
{
    struct fixture *f = *state;
    live_stream_with_a_hand(f);
    static const char *const dots[] = {"..", "."};
    static const char *const paths[] = {"/join-stream-as-viewer", "/join-stream-as-speaker",
                                        "/viewer-connected-to-player", "/send-speaker-invite", "/remove-speaker"};
    for (size_t d = 0; d < 2; d++) {
        char body[256];
        snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"" STREAM "\",\"hand_raised\":true}",
                 dots[d]);
        assert_int_equal(api(f, "/raise-hand", body, NULL), 400);
        snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"" STREAM "\",\"hand_raised\":false}",
                 dots[d]);
        assert_int_equal(api(f, "/raise-hand", body, NULL), 400);
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"" STREAM "\"}", dots[d]);
            if (api(f, paths[p], body, NULL) != 400)
                fail_msg("%s as \"%s\" was not refused", paths[p], dots[d]);
        }
    }
    static const char *const bob[] = {"bob"};
    expect_maps(f, bob, 1);

    assert_int_equal(api(f, "/raise-hand",
                         "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\",\"hand_raised\":false}", NULL),
                     200);
    wait_item(f, "raised_hands", "bob", 0);
    expect_maps(f, NULL, 0);
}

/* Produces an event of type about identity onto stagehand.events as is:
 * no schema check, as a buggy or hostile producer would. */
static void produce_unchecked(struct fixture *f, const char *type, const char *identity)
{
    struct event ev;
    char err[256];
    json_t *data = strcmp(type, "user.joined") == 0 ? json_pack("{s:s, s:s}", "identity", identity, "role", "viewer")
                                                    : json_pack("{s:s}", "identity", identity);
    assert_int_equal(event_build(&ev, type, STREAM, "api", identity, data, err, sizeof err), 0);
    char *value = event_serialize(&ev);
    assert_non_null(value);
    struct kafka_record rec = {.topic = f->s.topic_events,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = STREAM,
                               .key_len = strlen(STREAM),
                               .value = value,
                               .value_len = strlen(value)};
    assert_int_equal(kafka_produce_waiting(f->producer, &rec, err, sizeof err), 0);
    free(value);
    event_free(&ev);
}

/* Events about ".." and "." reach the workers without the ingress. Each
 * worker finds them invalid and sends them to the DLQ (every role reads
 * every event); none becomes a Twilio request. Then bob lowers his hand:
 * once that is applied (a stream's events are handled in order), the maps
 * and the room must be as they were, bob's item gone and nothing else. */
static void test_workers_never_send_dot_paths(void **state)
{
    struct fixture *f = *state;
    live_stream_with_a_hand(f);
    json_t *room = wait_room(f, STREAM, "in-progress");
    char room_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(room, "sid")));
    json_decref(room);

    static const char *const types[] = {"user.joined",
                                        "hand.raised",
                                        "hand.lowered",
                                        "viewer.connected",
                                        "viewer.disconnected",
                                        "speaker.invited",
                                        "participant.connected",
                                        "participant.disconnected",
                                        "speaker.remove_requested"};
    static const char *const dots[] = {"..", "."};
    enum { TYPES = sizeof types / sizeof types[0] };
    for (size_t d = 0; d < 2; d++)
        for (size_t t = 0; t < TYPES; t++)
            produce_unchecked(f, types[t], dots[d]);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
    assert_int_equal(api(f, "/raise-hand",
                         "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\",\"hand_raised\":false}", NULL),
                     200);
    int settled = 0;
    for (int i = 0; i < 300 && !settled; i++) {
        json_t *items = sync_map_items(f, "raised_hands");
        settled = !items || !json_object_get(items, "bob"); /* lowered, or the map is gone */
        json_decref(items);
        if (!settled)
            usleep(50 * 1000);
    }
    assert_true(settled);
    expect_maps(f, NULL, 0);
    room = wait_room(f, STREAM, "in-progress");
    assert_string_equal(json_string_value(json_object_get(room, "sid")), room_sid);
    json_decref(room);

    static const char *const invalid = "stagehand_worker_events_total{type=\"invalid\",outcome=\"dlq\"}";
    for (int role = 0; role < ROLES; role++) {
        wait_metric(f, role, invalid, 2 * TYPES);
    }
}

static int setup(void **state)
{
    return setup_whole_pipeline(state, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingress_refuses_dot_identities, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_workers_never_send_dot_paths, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
