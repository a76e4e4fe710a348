/* The room worker against the dev broker and the Twilio emulator, driven
 * through the ingress: rooms created with stagehand's parameters,
 * speakers removed, rooms completed, state records published; an exact
 * duplicate and a restart (rebuild from the log) apply nothing twice; a
 * Twilio outage ends in the DLQ after MAX_ATTEMPTS, with its reason. */
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
#include "token.h"
#include "twilio.h"

/* The room worker is worker 0; the ingress is not public (no webhooks). */
static int setup_env(void **state, const char *const worker_env[])
{
    struct fixture_options o = {.broker = 1,
                                .ingress = FIXTURE_INGRESS,
                                .emulator = 1,
                                .workers = {{"room", worker_env}},
                                .events = FIXTURE_READER,
                                .producer = 1};
    return fixture_setup(state, &o);
}

static int setup(void **state)
{
    return setup_env(state, NULL);
}

static int setup_few_attempts(void **state)
{
    static const char *const env[] = {"MAX_ATTEMPTS=3", NULL};
    return setup_env(state, env);
}

/* --- helpers ---------------------------------------------------------------------------------- */

static char *video_token(const char *identity, const char *room)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, room, NULL, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

static const char *participant_status_in(struct fixture *f, const char *room_sid, const char *identity, char out[16])
{
    char path[256];
    snprintf(path, sizeof path, "/v1/Rooms/%s/Participants/%s", room_sid, identity);
    json_t *p = emulator_get(f, path);
    snprintf(out, 16, "%s",
             json_string_value(json_object_get(p, "status")) ? json_string_value(json_object_get(p, "status")) : "");
    json_decref(p);
    return out;
}

/* --- tests -------------------------------------------------------------------------------------- */

static void test_room_lifecycle(void **state)
{
    struct fixture *f = *state;
    char status[16];
    assert_int_equal(post_async(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}"), 202);

    /* The room, as stagehand asks for it. */
    json_t *room = wait_room(f, "friday", "in-progress");
    char room_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(room, "sid")));
    assert_string_equal(json_string_value(json_object_get(room, "status_callback")),
                        TEST_PUBLIC_BASE_URL "/rooms-webhook");
    assert_string_equal(json_string_value(json_object_get(room, "type")), "group");
    assert_int_equal(json_integer_value(json_object_get(room, "max_participants")), 50);
    json_decref(room);

    /* room.created follows, and the state record says ready. */
    rd_kafka_message_t *msg = next_of_type(f, "room.created");
    struct event ev;
    char err[256];
    assert_int_equal(event_parse(msg->payload, msg->len, &ev, err, sizeof err), 0);
    assert_string_equal(event_data_string(&ev, "room_sid"), room_sid);
    assert_string_equal(ev.source, "room-worker");
    event_free(&ev);
    rd_kafka_message_destroy(msg);
    json_t *record = wait_state(f, "friday/room", "ready");
    assert_string_equal(json_string_value(json_object_get(record, "room_sid")), room_sid);
    assert_string_equal(json_string_value(json_object_get(record, "host")), "alice");
    json_decref(record);

    /* bob speaks; the host moves him back to the audience. */
    char *token = video_token("bob", "friday");
    char path[256], form[4096];
    snprintf(path, sizeof path, "%s/_emulator/rooms/friday/participants", f->emu.base_url);
    snprintf(form, sizeof form, "Token=%s", token);
    struct http_reply r;
    http_call("POST", path, NULL, form, strlen(form), &r);
    assert_int_equal(r.status, 201);
    http_reply_free(&r);
    free(token);
    /* The ingress's view reads the state record on its own and may be a
     * moment behind the reader above: a 404 (no event) is asked again. */
    int answer = 404;
    for (int i = 0; i < 100 && answer == 404; i++) {
        if (i > 0)
            usleep(50 * 1000);
        answer = post_async(f, "/remove-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}");
    }
    assert_int_equal(answer, 200);
    for (int i = 0; i < 200 && strcmp(participant_status_in(f, room_sid, "bob", status), "disconnected") != 0; i++)
        usleep(50 * 1000);
    assert_string_equal(status, "disconnected");

    /* The same event delivered again: skipped, no Twilio call. */
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"speaker.remove_requested\",outcome=\"applied\"}", 1);
    long calls = video_requests(f);
    msg = next_of_type(f, "speaker.remove_requested");
    struct kv_list headers;
    char id[64];
    kv_init(&headers);
    assert_int_equal(kafka_header_string(msg, "id", id, sizeof id), 0);
    kv_add(&headers, "id", id);
    kv_add(&headers, "type", "speaker.remove_requested");
    struct kafka_record copy = {.topic = f->s.topic_events,
                                .partition = msg->partition,
                                .key = msg->key,
                                .key_len = msg->key_len,
                                .value = msg->payload,
                                .value_len = msg->len,
                                .headers = &headers};
    assert_int_equal(kafka_produce(f->producer, &copy, err, sizeof err), 0);
    kv_free(&headers);
    rd_kafka_message_destroy(msg);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"speaker.remove_requested\",outcome=\"duplicate\"}", 1);
    assert_int_equal(video_requests(f), calls);

    /* The host ends the stream: the room is completed. */
    assert_int_equal(post_async(f, "/delete-stream", "{\"stream_name\":\"friday\"}"), 200);
    json_decref(wait_room(f, "friday", "completed"));
    json_decref(wait_state(f, "friday/room", "ended"));

    /* A restart rebuilds from the log (no checkpoint: SNAPSHOT_INTERVAL_S=0;
     * test_snapshots covers rebuilding from one) and calls Twilio for nothing. */
    calls = video_requests(f);
    assert_int_equal(process_stop(&f->workers[0], 20000), 0);
    static const char *const full_reread[] = {"SNAPSHOT_INTERVAL_S=0", NULL};
    fixture_start_worker(f, 0, full_reread);
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"stream.end_requested\",outcome=\"folded\"}", 1);
    assert_true(metric(f, 0, "stagehand_worker_events_total{type=\"stream.create_requested\",outcome=\"applied\"}") <
                0);
    assert_int_equal(video_requests(f), calls);

    /* Lag is measured for every assigned partition (the dev broker has 3). */
    for (int p = 0; p < 3; p++) {
        char sample[96];
        snprintf(sample, sizeof sample, "stagehand_worker_consumer_lag{partition=\"%d\"}", p);
        wait_metric(f, 0, sample, 0);
    }

    /* The stream can live again under the same name: a new room. */
    assert_int_equal(post_async(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}"), 202);
    room = wait_room(f, "friday", "in-progress");
    assert_string_not_equal(json_string_value(json_object_get(room, "sid")), room_sid);
    json_decref(room);
}

/* Twilio keeps failing: three attempts, then the DLQ with the reason. */
static void test_outage_goes_to_dlq(void **state)
{
    struct fixture *f = *state;
    struct http_reply r;
    char url[160];
    snprintf(url, sizeof url, "%s/_emulator/faults", f->emu.base_url);
    http_call("POST", url, NULL, "VideoErrorRate=1", 16, &r);
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
    assert_int_equal(post_async(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}"),
                     202);
    wait_metric(f, 0, "stagehand_worker_dlq_total", 1);
    assert_true(metric(f, 0, "stagehand_worker_retries_total") >= 2);

    char err[256], header[256];
    struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_dlq};
    struct kafka_reader *dlq = kafka_reader_new(&opt, err, sizeof err);
    assert_non_null(dlq);
    rd_kafka_message_t *msg = NULL;
    for (int i = 0; i < 200 && !msg; i++) {
        msg = kafka_reader_poll(dlq, 50);
        if (msg && msg->err) {
            rd_kafka_message_destroy(msg);
            msg = NULL;
        }
    }
    assert_non_null(msg);
    assert_int_equal(kafka_header_string(msg, "type", header, sizeof header), 0);
    assert_string_equal(header, "stream.create_requested");
    assert_int_equal(kafka_header_string(msg, "attempts", header, sizeof header), 0);
    assert_string_equal(header, "3");
    assert_int_equal(kafka_header_string(msg, "error_code", header, sizeof header), 0);
    assert_string_equal(header, "20500");
    assert_int_equal(kafka_header_string(msg, "role", header, sizeof header), 0);
    assert_string_equal(header, "room");
    assert_int_equal(kafka_header_string(msg, "original_offset", header, sizeof header), 0);
    struct event ev;
    assert_int_equal(event_parse(msg->payload, msg->len, &ev, err, sizeof err), 0); /* the event as it was */
    assert_string_equal(ev.stream, "saturday");
    event_free(&ev);
    rd_kafka_message_destroy(msg);
    kafka_reader_close(dlq);

    /* Twilio is back: the next stream works. */
    http_call("POST", url, NULL, "VideoErrorRate=0", 16, &r);
    http_reply_free(&r);
    assert_int_equal(post_async(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"sunday\"}"), 202);
    json_decref(wait_room(f, "sunday", "in-progress"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_room_lifecycle, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_outage_goes_to_dlq, setup_few_attempts, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
