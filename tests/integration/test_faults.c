/* Faults under the whole pipeline (dev broker, emulator, ingress, room,
 * stream and sync workers):
 *   - every worker killed with SIGKILL in the middle of a 10,000-viewer
 *     burst and started again: the final state is exact (one room, one
 *     PlayerStreamer, one MediaProcessor, the count, a full viewers map)
 *     and no side effect was made twice (the emulator's write counts);
 *   - Twilio misbehaving (10% 500s, a burst of 429s, 200 ms latency): the
 *     final Sync state is exact and nothing retryable reaches the DLQ;
 *   - the broker frozen (SIGSTOP) under the ingress: requests get 503 with
 *     Retry-After, and once it is back every request that was answered 2xx
 *     has its event on stagehand.events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define BURST 10000
#define MAP_CAP 20

static void produce_viewer(struct fixture *f, const char *stream, int i)
{
    char who[32], err[256];
    snprintf(who, sizeof who, "fan-%05d", i);
    struct event ev;
    if (event_init(&ev, "viewer.connected", stream, "api", who, json_pack("{s:s}", "identity", who), err, sizeof err) <
        0)
        fail_msg("%s", err);
    char *value = event_serialize(&ev);
    struct kafka_record rec = {.topic = f->s.topic_events,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = stream,
                               .key_len = strlen(stream),
                               .value = value,
                               .value_len = strlen(value)};
    rd_kafka_resp_err_t rc = kafka_produce_waiting(f->producer, &rec, err, sizeof err);
    assert_int_equal(rc, 0);
    kafka_producer_poll(f->producer, 0);
    free(value);
    event_free(&ev);
}

/* The service of a stream's Sync in the emulator's state (a new reference), or NULL. */
static json_t *service_of(struct fixture *f, const char *stream)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    char friendly[128];
    snprintf(friendly, sizeof friendly, "Live Video Stream %s", stream);
    json_t *found = NULL, *s;
    size_t i;
    json_array_foreach (json_object_get(state, "sync_services"), i, s)
        if (json_string_value(json_object_get(s, "friendly_name")) &&
            strcmp(json_string_value(json_object_get(s, "friendly_name")), friendly) == 0)
            found = json_incref(s);
    json_decref(state);
    return found;
}

static long dlq_entries(struct fixture *f)
{
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_dlq};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    long n = 0;
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *m = kafka_reader_poll(r, 100);
        if (m) {
            n++;
            rd_kafka_message_destroy(m);
        }
    }
    kafka_reader_close(r);
    return n;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_kill_every_worker_mid_burst(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"crowd\"}", NULL), 200);
    json_t *service = service_of(f, "crowd");
    assert_non_null(service);
    char viewers_sid[40];
    snprintf(viewers_sid, sizeof viewers_sid, "%s",
             json_string_value(json_object_get(named(service, "maps", "viewers"), "sid")));
    json_decref(service);

    for (int i = 0; i < BURST; i++) {
        produce_viewer(f, "crowd", i);
        if (i == BURST / 3 || i == 2 * BURST / 3) {
            /* Let the workers be in the middle of it, then kill them. */
            while (kafka_producer_outstanding(f->producer) > 0)
                kafka_producer_poll(f->producer, 20);
            usleep(300 * 1000);
            for (int r = 0; r < ROLES; r++) {
                assert_int_equal(process_signal(&f->workers[r], SIGKILL), 0);
                process_wait(&f->workers[r], 5000);
            }
            for (int r = 0; r < ROLES; r++)
                fixture_restart_worker(f, r);
        }
    }
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 20);

    /* The count reaches the burst exactly and the map is full. */
    json_t *stream_doc = NULL;
    for (int i = 0; i < 600; i++) {
        service = service_of(f, "crowd");
        json_t *doc = named(service, "documents", "stream");
        json_t *items = json_object_get(named(service, "maps", "viewers"), "items");
        if (json_integer_value(json_object_get(json_object_get(doc, "data"), "viewer_count")) == BURST &&
            json_object_size(items) == MAP_CAP) {
            stream_doc = service;
            break;
        }
        json_decref(service);
        usleep(100 * 1000);
    }
    assert_non_null(stream_doc);
    json_decref(stream_doc);

    /* Nothing twice: one room, one streamer, one processor; each listed
     * viewer written once; no 429, nothing in the DLQ. */
    json_t *st = NULL, *media = NULL;
    for (int i = 0; i < 600; i++) {
        /* The stream worker, killed too, may still be finishing the media
         * after Sync is done (its group rebalanced after the kills). */
        json_decref(st);
        st = emulator_get(f, "/_emulator/state");
        media = json_object_get(st, "media");
        if (json_array_size(json_object_get(media, "media_processors")) >= 1)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(count_named(json_object_get(st, "rooms"), "unique_name", "crowd"), 1);
    assert_int_equal(json_array_size(json_object_get(media, "player_streamers")), 1);
    assert_int_equal(json_array_size(json_object_get(media, "media_processors")), 1);
    json_decref(st);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    /* The map's writes: its items, and the host's read permission on it. */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "sync_writes"), viewers_sid)),
                     MAP_CAP + 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
    assert_int_equal(dlq_entries(f), 0);
}

static void test_twilio_faults_heal(void **state)
{
    struct fixture *f = *state;
    char url[256], body[128];
    snprintf(url, sizeof url, "%s/_emulator/faults", f->emu.base_url);
    static const char faults[] = "ErrorRate=0.1&Burst429=5&LatencyMs=200&Seed=7";
    struct http_reply r;
    http_call("POST", url, NULL, faults, strlen(faults), &r);
    assert_int_equal(r.status, 200);
    http_reply_free(&r);

    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"storm\"}", NULL), 200);
    enum { FANS = 6 };
    for (int i = 0; i < FANS; i++) {
        snprintf(body, sizeof body, "{\"user_identity\":\"fan-%d\",\"stream_name\":\"storm\"}", i);
        assert_int_equal(api(f, "/join-stream-as-viewer", body, NULL), 200);
        assert_int_equal(api(f, "/viewer-connected-to-player", body, NULL), 200);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, "{\"user_identity\":\"fan-%d\",\"stream_name\":\"storm\",\"hand_raised\":true}", i);
        assert_int_equal(api(f, "/raise-hand", body, NULL), 200);
    }
    assert_int_equal(api(f, "/send-speaker-invite", "{\"user_identity\":\"fan-0\",\"stream_name\":\"storm\"}", NULL),
                     200);

    /* Everything lands, exactly once, however often Twilio said no. */
    int exact = 0;
    for (int i = 0; i < 600 && !exact; i++) {
        json_t *service = service_of(f, "storm");
        json_t *viewers = json_object_get(named(service, "maps", "viewers"), "items");
        json_t *hands = json_object_get(named(service, "maps", "raised_hands"), "items");
        json_t *count = json_object_get(json_object_get(named(service, "documents", "stream"), "data"), "viewer_count");
        json_t *fan0 = json_object_get(named(service, "documents", "user-fan-0"), "data");
        int docs = 0;
        for (int k = 0; k < FANS; k++) {
            char doc[32];
            snprintf(doc, sizeof doc, "user-fan-%d", k);
            docs += named(service, "documents", doc) != NULL;
        }
        exact = json_object_size(viewers) == FANS && json_object_size(hands) == 2 &&
                json_integer_value(count) == FANS && docs == FANS &&
                json_is_true(json_object_get(fan0, "speaker_invite"));
        json_decref(service);
        if (!exact)
            usleep(100 * 1000);
    }
    assert_true(exact);
    json_t *st = emulator_get(f, "/_emulator/state");
    assert_int_equal(count_named(json_object_get(st, "rooms"), "unique_name", "storm"), 1);
    assert_int_equal(json_array_size(json_object_get(json_object_get(st, "media"), "player_streamers")), 1);
    json_decref(st);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_true(json_integer_value(json_object_get(stats, "responses_429")) >= 5); /* the faults did happen */
    json_decref(stats);
    double retries = 0;
    for (int i = 0; i < ROLES; i++) {
        retries += metric(f, i, "stagehand_worker_retries_total");
    }
    assert_true(retries > 0);
    assert_int_equal(dlq_entries(f), 0);
}

static void test_broker_frozen_under_the_ingress(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"gala\"}", NULL), 200);
    enum { EACH = 10 };
    char body[128];
    long answered[2 * EACH];
    assert_int_equal(stack_broker_freeze(&f->s), 0);
    for (int i = 0; i < EACH; i++) {
        snprintf(body, sizeof body, "{\"user_identity\":\"frozen-%d\",\"stream_name\":\"gala\"}", i);
        answered[i] = api(f, "/viewer-connected-to-player", body, NULL);
    }
    assert_int_equal(stack_broker_thaw(&f->s), 0);
    for (int i = 0; i < EACH; i++) {
        snprintf(body, sizeof body, "{\"user_identity\":\"thawed-%d\",\"stream_name\":\"gala\"}", i);
        for (int tries = 0; tries < 50; tries++) {
            answered[EACH + i] = api(f, "/viewer-connected-to-player", body, NULL);
            if (answered[EACH + i] != 503)
                break;
            usleep(200 * 1000); /* as Retry-After asks */
        }
    }
    int refused = 0;
    for (int i = 0; i < EACH; i++)
        refused += answered[i] == 503;
    assert_true(refused > 0); /* the frozen broker was noticed, with Retry-After */
    for (int i = 0; i < EACH; i++)
        assert_true(answered[i] == 503 || answered[i] == 200);
    for (int i = EACH; i < 2 * EACH; i++)
        assert_int_equal(answered[i], 200);

    /* Every request answered 200 has its event on the log. */
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_events};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    char seen[2 * EACH] = {0};
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *m = kafka_reader_poll(r, 100);
        if (!m)
            continue;
        struct event ev;
        if (event_parse(m->payload, m->len, &ev, err, sizeof err) == 0) {
            const char *who = event_data_string(&ev, "identity");
            int n;
            if (strcmp(ev.type, "viewer.connected") == 0 && who) {
                if (sscanf(who, "frozen-%d", &n) == 1 && n >= 0 && n < EACH)
                    seen[n] = 1;
                else if (sscanf(who, "thawed-%d", &n) == 1 && n >= 0 && n < EACH)
                    seen[EACH + n] = 1;
            }
            event_free(&ev);
        }
        rd_kafka_message_destroy(m);
    }
    kafka_reader_close(r);
    for (int i = 0; i < 2 * EACH; i++)
        if (answered[i] == 200 && !seen[i])
            fail_msg("request %d was answered 200 but its event is not on the log", i);
}

static int setup(void **state)
{
    return setup_whole_pipeline(state, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_every_worker_mid_burst, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_twilio_faults_heal, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_broker_frozen_under_the_ingress, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
