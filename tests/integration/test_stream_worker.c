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
#include "event.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

struct fixture {
    struct stack s;
    struct emulator_process emu;
    struct twilio_client *emu_client;
    struct process worker;       /* the stream worker, under test */
    struct process room_worker;  /* makes the rooms */
    int metrics_port;
    struct kafka_reader *events;
    struct kafka_producer *producer;
};

static void start_worker(struct fixture *f, const char *const env[])
{
    char err[256];
    f->metrics_port = stack_start_worker(&f->s, "stream", f->emu.base_url, env, &f->worker, err, sizeof err);
    if (f->metrics_port < 0)
        fail_msg("%s", err);
}

static int setup_env(void **state, const char *const worker_env[])
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    if (stack_start_broker(&f->s, err, sizeof err) < 0 || stack_start_ingress(&f->s, NULL, err, sizeof err) < 0 ||
        emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->emu_client = emulator_client(&f->emu, err, sizeof err);
    assert_non_null(f->emu_client);
    if (stack_start_worker(&f->s, "room", f->emu.base_url, NULL, &f->room_worker, err, sizeof err) < 0)
        fail_msg("%s", err);
    start_worker(f, worker_env);
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = "stagehand.events"};
    f->events = kafka_reader_new(&ropt, err, sizeof err);
    struct kafka_producer_options popt = {.brokers = f->s.brokers};
    f->producer = kafka_producer_new(&popt, err, sizeof err);
    if (!f->events || !f->producer)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", NULL};
    return setup_env(state, env);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kafka_reader_close(f->events);
    kafka_producer_close(f->producer, 5000);
    int worker_status = process_stop(&f->worker, 20000);
    int room_status = process_stop(&f->room_worker, 20000);
    twilio_client_free(f->emu_client);
    int emulator_status = emulator_stop(&f->emu);
    int ingress_status = stack_stop_ingress(&f->s);
    stack_stop(&f->s);
    free(f);
    assert_int_equal(worker_status, 0);
    assert_int_equal(room_status, 0);
    assert_int_equal(emulator_status, 0);
    assert_int_equal(ingress_status, 0);
    return 0;
}

/* --- helpers ---------------------------------------------------------------------------------- */

static json_t *emulator_get(struct fixture *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_VIDEO, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

static long media_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "media"));
    json_decref(stats);
    return n;
}

/* The emulator's Media resource (kind: player_streamers, media_processors). */
static json_t *media_resource(struct fixture *f, const char *kind, const char *sid)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *one;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(state, "media"), kind), i, one) {
        const char *s = json_string_value(json_object_get(one, "sid"));
        if (s && strcmp(s, sid) == 0)
            found = json_incref(one);
    }
    json_decref(state);
    assert_non_null(found);
    return found;
}

static void wait_media_status(struct fixture *f, const char *kind, const char *sid, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *r = media_resource(f, kind, sid);
        int done = strcmp(json_string_value(json_object_get(r, "status")), status) == 0;
        json_decref(r);
        if (done)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s %s never became %s", kind, sid, status);
}

/* The emulator's room called name (the newest), or NULL. */
static json_t *find_room(struct fixture *f, const char *name)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *room;
    size_t i;
    json_array_foreach(json_object_get(state, "rooms"), i, room) {
        const char *unique = json_string_value(json_object_get(room, "unique_name"));
        if (unique && strcmp(unique, name) == 0) {
            json_decref(found);
            found = json_incref(room);
        }
    }
    json_decref(state);
    return found;
}

static json_t *wait_room(struct fixture *f, const char *name, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *room = find_room(f, name);
        const char *now = json_string_value(json_object_get(room, "status"));
        if (now && strcmp(now, status) == 0)
            return room;
        json_decref(room);
        usleep(50 * 1000);
    }
    fail_msg("room %s never became %s", name, status);
    return NULL;
}

static long post(struct fixture *f, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json",
                                          "Prefer: respond-async", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The value of one sample of the worker's metrics (-1 when absent). */
static double metric(struct fixture *f, const char *sample)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    double value = -1;
    char line_start[512];
    snprintf(line_start, sizeof line_start, "\n%s ", sample); /* a sample line, not its # HELP */
    const char *at = strstr(r.body, line_start);
    if (at)
        value = atof(at + strlen(line_start));
    http_reply_free(&r);
    return value;
}

static void wait_metric(struct fixture *f, const char *sample, double at_least)
{
    for (int i = 0; i < 400; i++) {
        if (metric(f, sample) >= at_least)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s never reached %g", sample, at_least);
}

/* The next event of type on stagehand.events (others are skipped). */
static rd_kafka_message_t *next_of_type(struct fixture *f, const char *type)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(f->events, 50);
        char header[64];
        if (msg && !msg->err && kafka_header_string(msg, "type", header, sizeof header) == 0 &&
            strcmp(header, type) == 0)
            return msg;
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    fail_msg("no %s event came", type);
    return NULL;
}

/* The newest state record under key, waiting until its status is status. */
static json_t *wait_state(struct fixture *f, const char *key, const char *status)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        char err[256];
        struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = "stagehand.state"};
        struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
        assert_non_null(r);
        json_t *last = NULL;
        while (!kafka_reader_caught_up(r)) {
            rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
            if (msg && msg->key_len == strlen(key) && memcmp(msg->key, key, msg->key_len) == 0) {
                json_decref(last);
                last = json_loadb(msg->payload, msg->len, 0, NULL);
            }
            if (msg)
                rd_kafka_message_destroy(msg);
        }
        kafka_reader_close(r);
        const char *now = json_string_value(json_object_get(last, "status"));
        if (now && strcmp(now, status) == 0)
            return last;
        json_decref(last);
        usleep(100 * 1000);
    }
    fail_msg("state record %s never said %s", key, status);
    return NULL;
}

/* --- tests -------------------------------------------------------------------------------------- */

static void test_live_resources(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday night\"}"), 202);
    json_t *room = wait_room(f, "friday night", "in-progress");
    char room_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(room, "sid")));
    json_decref(room);

    /* media.started names both resources; the record has them and a grant. */
    rd_kafka_message_t *msg = next_of_type(f, "media.started");
    struct event ev;
    char err[256], streamer[40], processor[40];
    assert_int_equal(event_parse(msg->payload, msg->len, &ev, err, sizeof err), 0);
    snprintf(streamer, sizeof streamer, "%s", json_string_value(json_object_get(ev.data, "player_streamer_sid")));
    snprintf(processor, sizeof processor, "%s", json_string_value(json_object_get(ev.data, "media_processor_sid")));
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
    assert_int_equal(post(f, "/delete-stream", "{\"stream_name\":\"friday night\"}"), 200);
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
    assert_int_equal(process_stop(&f->worker, 20000), 0);
    long calls = media_requests(f);
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", NULL};
    start_worker(f, env);
    wait_media_status(f, "player_streamers", orphan, "ended");
    json_t *ended = media_resource(f, "player_streamers", orphan);
    assert_string_equal(json_string_value(json_object_get(ended, "ended_reason")), "ended-via-api");
    json_decref(ended);
    /* The rebuild made no Media call: only the reconcile pass's three lists and one end. */
    wait_metric(f, "stagehand_worker_events_total{type=\"room.created\",outcome=\"folded\"}", 1);
    assert_int_equal(media_requests(f), calls + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_resources, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
