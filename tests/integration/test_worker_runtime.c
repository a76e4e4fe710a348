/* The worker runtime under Kafka faults injected in common/kafka
 * (STAGEHAND_KAFKA_FAULTS), with a room worker on the dev broker:
 *   - a DLQ record Kafka does not take leaves its event neither lost nor
 *     committed: the event is sent again, and its offset is committed only
 *     once a record was acknowledged, also across a restart;
 *   - a retry whose pause, rewind or resume fails never lets a later event
 *     of the partition be handled or stored before it: the failing event
 *     still reaches the DLQ after MAX_ATTEMPTS, and before the next one.
 * Twilio is a closed port, so every side effect fails as retryable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/stack.h"
#include "../support/pipeline_helpers.h"
#include "event.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define DEAD_TWILIO "http://127.0.0.1:1"

/* STAGEHAND_KAFKA_FAULTS=... of the worker */
static char faults_env[256];

struct delivered {
    int done;
    int32_t partition;
    int64_t offset;
};

static void on_delivered(void *opaque, const struct kafka_delivery *d)
{
    struct delivered *out = opaque;
    out->done = 1;
    out->partition = d->err ? -1 : d->partition;
    out->offset = d->err ? -1 : d->offset;
}

/* The broker and a producer; the room worker (worker 0, its Twilio a
 * closed port) is started by each test with its faults. A worker under
 * faults may exit uncleanly: its exit is not checked. */
static int setup(void **state)
{
    struct fixture_options o = {.broker = 1,
                                .workers = {{"room", NULL}},
                                .workers_later = 1,
                                .twilio_base = DEAD_TWILIO,
                                .producer = 1,
                                .on_delivery = on_delivered,
                                .unchecked_exit = 1};
    return fixture_setup(state, &o);
}

/* Starts the room worker with faults ("" for none) and extra settings. */
static void start_worker(struct fixture *f, const char *faults, const char *extra)
{
    snprintf(faults_env, sizeof faults_env, "%s=%s", KAFKA_FAULTS_ENV, faults);
    const char *env[] = {faults_env, extra, NULL};
    fixture_start_worker(f, 0, env);
    wait_metric(f, 0, "stagehand_worker_partitions", 3);
}

/* Produces value under key onto the stack's events topic; where it went. */
static struct delivered produce(struct fixture *f, const char *key, const char *value)
{
    struct delivered d = {0, -1, -1};
    struct kafka_record rec = {.topic = f->s.topic_events,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = key,
                               .key_len = strlen(key),
                               .value = value,
                               .value_len = strlen(value),
                               .opaque = &d};
    char err[256];
    assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    for (int i = 0; i < 200 && !d.done; i++)
        kafka_producer_poll(f->producer, 50);
    assert_true(d.done);
    assert_true(d.offset >= 0);
    return d;
}

/* A stream.create_requested for stream, as the ingress writes it. */
static struct delivered produce_create(struct fixture *f, const char *stream)
{
    struct event ev;
    char err[256];
    assert_int_equal(event_build(&ev, "stream.create_requested", stream, "api", "alice",
                                 json_pack("{s:s}", "host", "alice"), err, sizeof err),
                     0);
    char *value = event_encode(&ev, err, sizeof err);
    if (!value)
        fail_msg("%s", err);
    struct delivered d = produce(f, stream, value);
    free(value);
    event_free(&ev);
    return d;
}

/* The group's committed offset of a partition of the events topic (-1:
 * none), read without joining the group. */
static int64_t committed(struct fixture *f, int32_t partition)
{
    char group[128], why[256];
    snprintf(group, sizeof group, "%sroom", f->s.group_prefix);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->s.brokers, why, sizeof why), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, why, sizeof why), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, f->s.topic_events, partition);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
    int64_t offset = l->elems[0].err ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return offset < 0 ? -1 : offset;
}

/* The original offsets of the DLQ's records from partition of the events
 * topic, in the DLQ's order (up to max); how many there are. Reads until the
 * DLQ is caught up and holds at least want of them, or 15 s passed. */
static int dlq_offsets(struct fixture *f, int32_t partition, int want, int64_t *out, int max)
{
    char err[256], header[32];
    struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_dlq};
    struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    int n = 0;
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until && !(kafka_reader_caught_up(r) && n >= want)) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 50);
        if (!msg)
            continue;
        if (kafka_header_string(msg, "original_partition", header, sizeof header) == 0 && atoi(header) == partition &&
            kafka_header_string(msg, "original_offset", header, sizeof header) == 0 && n < max)
            out[n++] = atoll(header);
        rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    return n;
}

/* The DLQ refuses the record: the event is sent again, never committed;
 * after a restart it is still there to be dead-lettered, and a record
 * whose acknowledgement is lost is sent again until one is acknowledged. */
static void test_dlq_refused_not_lost_nor_committed(void **state)
{
    struct fixture *f = *state;
    char faults[160];
    snprintf(faults, sizeof faults, "produce@%s:-1", f->s.topic_dlq);
    start_worker(f, faults, NULL);
    struct delivered bad = produce(f, "s1", "not an event");
    wait_metric(f, 0, "stagehand_worker_dlq_failures_total", 3);
    assert_true(metric(f, 0, "stagehand_worker_dlq_total") <= 0);
    /* A clean stop commits what was stored: not this event. */
    process_stop(&f->workers[0], 20000);
    assert_true(committed(f, bad.partition) <= bad.offset);
    int64_t seen[8];
    assert_int_equal(dlq_offsets(f, bad.partition, 0, seen, 8), 0);

    /* The next worker's first two records lose their acknowledgement. */
    snprintf(faults, sizeof faults, "deliver@%s:2", f->s.topic_dlq);
    start_worker(f, faults, NULL);
    wait_metric(f, 0, "stagehand_worker_dlq_total", 1);
    assert_int_equal(metric(f, 0, "stagehand_worker_dlq_failures_total"), 2);
    assert_int_equal(metric(f, 0, "stagehand_worker_events_total{type=\"invalid\",outcome=\"dlq\"}"), 1);
    /* Three copies (two unacknowledged), all of this event. */
    int n = dlq_offsets(f, bad.partition, 3, seen, 8);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], bad.offset);
    /* Committed past it now; and the worker after it does not send it again. */
    assert_int_equal(process_stop(&f->workers[0], 20000), 0);
    assert_int_equal(committed(f, bad.partition), bad.offset + 1);
    start_worker(f, "", NULL);
    struct delivered next = produce(f, "s1", "not an event either");
    assert_int_equal(next.partition, bad.partition);
    wait_metric(f, 0, "stagehand_worker_dlq_total", 1);
    assert_int_equal(dlq_offsets(f, bad.partition, 4, seen, 8), 4);
    assert_int_equal(seen[3], next.offset);
    assert_int_equal(metric(f, 0, "stagehand_worker_events_total{type=\"invalid\",outcome=\"skipped\"}"), 1);
}

/* An event that fails (retryable) is followed by an unreadable one on its
 * partition; whatever pause, rewind or resume answer, the first reaches
 * the DLQ after its three attempts, and the second after it. */
static void retry_under_faults(struct fixture *f, const char *faults)
{
    start_worker(f, faults, "MAX_ATTEMPTS=3");
    struct delivered first = produce_create(f, "s1");
    struct delivered second = produce(f, "s1", "not an event");
    assert_int_equal(second.partition, first.partition);
    wait_metric(f, 0, "stagehand_worker_dlq_total", 2);
    int64_t seen[8];
    assert_int_equal(dlq_offsets(f, first.partition, 2, seen, 8), 2);
    assert_int_equal(seen[0], first.offset);
    assert_int_equal(seen[1], second.offset);
    assert_int_equal(metric(f, 0, "stagehand_worker_events_total{type=\"stream.create_requested\",outcome=\"retry\"}"),
                     2);
    assert_int_equal(process_stop(&f->workers[0], 20000), 0);
    assert_int_equal(committed(f, first.partition), second.offset + 1);
}

/* Every pause fails: the partition keeps fetching, and what comes past
 * the held event is kept out. */
static void test_pause_fails(void **state)
{
    struct fixture *f = *state;
    retry_under_faults(f, "pause:-1");
    /* (the unreadable event was fetched during the backoff and kept out) */
}

/* The pause works and the rewind fails (twice, after the three of the
 * assignment), then a resume fails: the partition is still resumed. */
static void test_rewind_and_resume_fail(void **state)
{
    struct fixture *f = *state;
    retry_under_faults(f, "rewind:2:3,resume:1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dlq_refused_not_lost_nor_committed, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pause_fails, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rewind_and_resume_fail, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
