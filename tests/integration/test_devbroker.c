/* Integration tests for tools/devbroker and common/kafka against it.
 *
 * devbroker: --help, bad options, the bootstrap file's life cycle, and a
 * consumer group of two kafka-probe processes sharing 6 partitions while a
 * third process produces 300 keyed messages.
 * common/kafka: headers and delivery-report opaques round trip, offsets
 * stored only for events marked done (a new member resumes there), and
 * pause + rewind + resume redelivering an offset, and the eager protocol's
 * rebalance path.
 *
 * Every child is started through tests/support/process and stopped in the
 * teardown, also when an assertion failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/process.h"
#include "kafka.h"
#include "kv.h"
#include "settings.h"
#include "timeutil.h"

#define WAIT_MS 60000 /* generous deadline for anything to happen */
#define STOP_GRACE_MS 10000
#define PAIR_PARTITIONS 6
#define PAIR_KEYS 300

struct fixture {
    char dir[128];
    char bootstrap_file[256];
    char brokers[256];
    struct process broker;
    struct process probes[3];
    struct kafka_producer *producer;
    struct kafka_consumer *consumers[2];
};

/* --- fixture ------------------------------------------------------------------ */

static void path_in(const struct fixture *f, const char *name, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s", f->dir, name);
    assert_true(n > 0 && (size_t)n < outlen);
}

static void build_path(const char *name, char *out, size_t outlen)
{
    char err[256];
    if (process_path_from_env(out, outlen, "STAGEHAND_BUILD", name, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/stagehand-devbroker-test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->bootstrap_file, sizeof f->bootstrap_file, "%s/bootstrap.servers", f->dir);
    *state = f;
    return 0;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Clients first, while the broker is still there to talk to. */
    for (int i = 0; i < 2; i++)
        if (f->consumers[i])
            kafka_consumer_close(f->consumers[i]);
    if (f->producer)
        kafka_producer_close(f->producer, 1000);
    for (int i = 0; i < 3; i++)
        process_stop(&f->probes[i], STOP_GRACE_MS);
    process_stop(&f->broker, STOP_GRACE_MS);
    remove_dir(f->dir);
    free(f);
    return 0;
}

/* Starts the dev broker with extra arguments and waits for its bootstrap
 * file; f->brokers then holds bootstrap.servers. */
static void start_broker(struct fixture *f, const char *partitions, const char *state_partitions)
{
    char prog[512], out[512], errp[512], err[256];
    build_path("stagehand-devbroker", prog, sizeof prog);
    path_in(f, "devbroker.out", out, sizeof out);
    path_in(f, "devbroker.err", errp, sizeof errp);
    const char *argv[] = {prog,
                          "--partitions",
                          partitions,
                          "--bootstrap-file",
                          f->bootstrap_file,
                          state_partitions ? "--state-partitions" : NULL,
                          state_partitions,
                          NULL};
    if (process_spawn(&f->broker, argv, NULL, out, errp, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (process_wait_file(f->bootstrap_file, WAIT_MS) != 0)
        fail_msg("the dev broker wrote no bootstrap file; see %s", errp);
    char *line = process_read_file(f->bootstrap_file, NULL);
    assert_non_null(line);
    line[strcspn(line, "\n")] = '\0';
    assert_true(strlen(line) > 0 && strlen(line) < sizeof f->brokers);
    snprintf(f->brokers, sizeof f->brokers, "%s", line);
    free(line);
}

/* Runs the dev broker with argv[1..] and returns its exit status. */
static int run_broker_args(struct fixture *f, const char *a1, const char *a2, char **stdout_text, char **stderr_text)
{
    char prog[512], out[512], errp[512], err[256];
    build_path("stagehand-devbroker", prog, sizeof prog);
    path_in(f, "run.out", out, sizeof out);
    path_in(f, "run.err", errp, sizeof errp);
    const char *argv[] = {prog, a1, a2, NULL};
    if (process_spawn(&f->broker, argv, NULL, out, errp, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(process_wait(&f->broker, WAIT_MS), 0);
    *stdout_text = process_read_file(out, NULL);
    *stderr_text = process_read_file(errp, NULL);
    assert_non_null(*stdout_text);
    assert_non_null(*stderr_text);
    return f->broker.status;
}

/* --- devbroker ------------------------------------------------------------------ */

static void test_help_and_bad_options(void **state)
{
    struct fixture *f = *state;
    char *out, *errt;

    assert_int_equal(run_broker_args(f, "--help", NULL, &out, &errt), 0);
    assert_non_null(strstr(out, "usage: stagehand-devbroker"));
    free(out);
    free(errt);

    assert_int_equal(run_broker_args(f, "--no-such-option", NULL, &out, &errt), 2);
    assert_non_null(strstr(errt, "unknown option \"--no-such-option\""));
    assert_non_null(strstr(errt, "usage: stagehand-devbroker"));
    assert_string_equal(out, "");
    free(out);
    free(errt);

    assert_int_equal(run_broker_args(f, "--partitions", "zero", &out, &errt), 2);
    assert_non_null(strstr(errt, "--partitions: expected 1..1000, got \"zero\""));
    free(out);
    free(errt);

    assert_int_equal(run_broker_args(f, "--brokers", "0", &out, &errt), 2);
    assert_non_null(strstr(errt, "--brokers"));
    free(out);
    free(errt);

    assert_int_equal(run_broker_args(f, "--partitions", NULL, &out, &errt), 2);
    assert_non_null(strstr(errt, "needs a value"));
    free(out);
    free(errt);
}

static void test_sigterm_exits_zero_and_removes_bootstrap_file(void **state)
{
    struct fixture *f = *state;
    start_broker(f, "3", NULL);

    /* The single stdout line is the same bootstrap list, "host:port". */
    char out[512];
    path_in(f, "devbroker.out", out, sizeof out);
    char *printed = NULL;
    int64_t deadline = time_monotonic_ms() + WAIT_MS;
    while (!printed || !strchr(printed, '\n')) {
        free(printed);
        assert_true(time_monotonic_ms() < deadline);
        time_sleep_ms(20);
        printed = process_read_file(out, NULL);
    }
    char expected[300];
    snprintf(expected, sizeof expected, "%s\n", f->brokers);
    assert_string_equal(printed, expected);
    free(printed);
    assert_non_null(strstr(f->brokers, "127.0.0.1:"));

    assert_int_equal(process_signal(&f->broker, SIGTERM), 0);
    assert_int_equal(process_wait(&f->broker, WAIT_MS), 0);
    assert_int_equal(f->broker.status, 0);
    assert_int_equal(access(f->bootstrap_file, F_OK), -1);
}

/* --- two consumers, one group ------------------------------------------------------ */

struct probe_view {
    unsigned assigned; /* bit per partition, from the latest "assigned" line */
    int has_assignment;
    int msgs;
    int closed;
};

/* Parses a kafka-probe consume file (complete lines only). Records, per key
 * index, which probe saw it (owner[k] = probe, or -2 when seen twice) and the
 * partition it came from. */
static void read_probe_file(const char *path, int probe, struct probe_view *v, int *owner, int *key_partition)
{
    memset(v, 0, sizeof *v);
    char *text = process_read_file(path, NULL);
    if (!text)
        return;
    char *line = text;
    char *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        int part, keyno;
        long long offset;
        if (strncmp(line, "assigned", 8) == 0) {
            v->assigned = 0;
            v->has_assignment = 1;
            for (char *tok = strtok(line + 8, " "); tok; tok = strtok(NULL, " "))
                v->assigned |= 1u << atoi(tok);
        } else if (sscanf(line, "msg %d %lld key-%d", &part, &offset, &keyno) == 3) {
            v->msgs++;
            if (owner && keyno >= 0 && keyno < PAIR_KEYS) {
                owner[keyno] = owner[keyno] == -1 ? probe : -2;
                key_partition[keyno] = part;
            }
        } else if (strcmp(line, "closed") == 0) {
            v->closed = 1;
        }
        line = nl + 1;
    }
    free(text);
}

static void start_consumer_probe(struct fixture *f, int i, const char *out)
{
    char prog[512], errp[512], err[256], name[32];
    build_path("tests/helpers/kafka-probe", prog, sizeof prog);
    snprintf(name, sizeof name, "consumer%d.err", i);
    path_in(f, name, errp, sizeof errp);
    const char *argv[] = {prog,   "consume", "--brokers", f->brokers,      "--topic", TOPIC_EVENTS, "--group",
                          "pair", "--out",   out,         "--max-seconds", "120",     NULL};
    if (process_spawn(&f->probes[i], argv, NULL, NULL, errp, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_two_consumers_split_partitions_and_keys(void **state)
{
    struct fixture *f = *state;
    start_broker(f, "6", NULL);
    char outs[2][512];
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "consumer%d.txt", i);
        path_in(f, name, outs[i], sizeof outs[i]);
        start_consumer_probe(f, i, outs[i]);
    }

    /* Wait until the latest assignments are disjoint, non-empty and cover
     * all 6 partitions. */
    const unsigned all = (1u << PAIR_PARTITIONS) - 1;
    struct probe_view v[2];
    int64_t deadline = time_monotonic_ms() + WAIT_MS;
    for (;;) {
        for (int i = 0; i < 2; i++)
            read_probe_file(outs[i], i, &v[i], NULL, NULL);
        if (v[0].assigned && v[1].assigned && !(v[0].assigned & v[1].assigned) &&
            (v[0].assigned | v[1].assigned) == all)
            break;
        if (time_monotonic_ms() >= deadline)
            fail_msg("no balanced assignment: %#x and %#x", v[0].assigned, v[1].assigned);
        time_sleep_ms(50);
    }

    /* A third process produces 300 distinct keys. */
    char prog[512], pout[512], perr[512], err[256];
    build_path("tests/helpers/kafka-probe", prog, sizeof prog);
    path_in(f, "producer.out", pout, sizeof pout);
    path_in(f, "producer.err", perr, sizeof perr);
    const char *argv[] = {prog, "produce", "--brokers", f->brokers, "--topic", TOPIC_EVENTS, "--count", "300", NULL};
    if (process_spawn(&f->probes[2], argv, NULL, pout, perr, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(process_wait(&f->probes[2], WAIT_MS), 0);
    assert_int_equal(f->probes[2].status, 0);
    char *produced = process_read_file(pout, NULL);
    assert_non_null(produced);
    assert_string_equal(produced, "produced 300\n");
    free(produced);

    /* Wait until the two consumers together saw every key. */
    int owner[PAIR_KEYS], key_partition[PAIR_KEYS];
    deadline = time_monotonic_ms() + WAIT_MS;
    for (;;) {
        for (int k = 0; k < PAIR_KEYS; k++)
            owner[k] = key_partition[k] = -1;
        for (int i = 0; i < 2; i++)
            read_probe_file(outs[i], i, &v[i], owner, key_partition);
        int seen = 0;
        for (int k = 0; k < PAIR_KEYS; k++)
            seen += owner[k] != -1;
        if (seen == PAIR_KEYS)
            break;
        if (time_monotonic_ms() >= deadline)
            fail_msg("only %d of %d keys consumed", seen, PAIR_KEYS);
        time_sleep_ms(50);
    }

    /* Each key once, by the consumer that owns its partition; both got some. */
    for (int k = 0; k < PAIR_KEYS; k++) {
        assert_true(owner[k] == 0 || owner[k] == 1);
        assert_true(key_partition[k] >= 0 && key_partition[k] < PAIR_PARTITIONS);
        assert_true(v[owner[k]].assigned & (1u << key_partition[k]));
    }
    assert_true(v[0].msgs > 0 && v[1].msgs > 0);
    assert_int_equal(v[0].msgs + v[1].msgs, PAIR_KEYS);

    /* SIGTERM closes each consumer cleanly. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(process_signal(&f->probes[i], SIGTERM), 0);
        assert_int_equal(process_wait(&f->probes[i], WAIT_MS), 0);
        assert_int_equal(f->probes[i].status, 0);
        read_probe_file(outs[i], i, &v[i], NULL, NULL);
        assert_true(v[i].closed);
    }
}

/* --- common/kafka against the dev broker ------------------------------------------- */

/* The module tests run against a broker with 2 partitions per topic and 1
 * for stagehand.state. It is started in the test body, not in a setup
 * function: cmocka skips the teardown when a setup fails. */
static void start_small_broker(struct fixture *f)
{
    start_broker(f, "2", "1");
}

/* Extra properties for test consumers: quick group joins on the dev broker. */
static void quick_group_props(struct kv_list *props)
{
    kv_init(props);
    assert_int_equal(kv_add(props, "session.timeout.ms", "6000"), 0);
    assert_int_equal(kv_add(props, "heartbeat.interval.ms", "500"), 0);
}

/* A consumer of stagehand.events in group; strategy NULL keeps the module's
 * cooperative-sticky, else it is the partition.assignment.strategy. */
static struct kafka_consumer *new_consumer_with(struct fixture *f, const char *group, const char *strategy)
{
    char err[512];
    struct kv_list props;
    quick_group_props(&props);
    if (strategy)
        assert_int_equal(kv_add(&props, "partition.assignment.strategy", strategy), 0);
    const char *topics[] = {TOPIC_EVENTS};
    struct kafka_consumer_options opt = {
        .brokers = f->brokers, .group_id = group, .topics = topics, .topic_count = 1, .properties = &props};
    struct kafka_consumer *c = kafka_consumer_new(&opt, err, sizeof err);
    kv_free(&props);
    if (!c)
        fail_msg("%s", err);
    return c;
}

static struct kafka_consumer *new_consumer(struct fixture *f, const char *group)
{
    return new_consumer_with(f, group, NULL);
}

/* The next message, waiting up to WAIT_MS; fails the test if none comes. */
static rd_kafka_message_t *next_message(struct kafka_consumer *c)
{
    int64_t deadline = time_monotonic_ms() + WAIT_MS;
    while (time_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = kafka_consumer_poll(c, 200);
        if (m)
            return m;
    }
    fail_msg("no message within %d ms", WAIT_MS);
    return NULL;
}

/* Produces count messages "k<i>" to stagehand.events partition 0 and waits
 * for every delivery. */
static void produce_to_partition0(struct fixture *f, int count)
{
    char err[256];
    struct kafka_producer_options opt = {.brokers = f->brokers};
    f->producer = kafka_producer_new(&opt, err, sizeof err);
    if (!f->producer)
        fail_msg("%s", err);
    for (int i = 0; i < count; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        struct kafka_record rec = {.topic = TOPIC_EVENTS,
                                   .partition = 0,
                                   .key = key,
                                   .key_len = strlen(key),
                                   .value = key,
                                   .value_len = strlen(key)};
        assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    }
    int failed = kafka_producer_close(f->producer, WAIT_MS);
    f->producer = NULL;
    assert_int_equal(failed, 0);
}

struct dr_slot {
    atomic_int calls;
    int err;
    int32_t partition;
    int64_t offset;
};

static void record_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct dr_slot *slot = opaque;
    slot->err = d->err;
    slot->partition = d->partition;
    slot->offset = d->offset;
    assert_string_equal(d->topic, TOPIC_EVENTS);
    atomic_fetch_add(&slot->calls, 1);
}

static void test_kafka_headers_and_delivery_opaque(void **state)
{
    struct fixture *f = *state;
    start_small_broker(f);
    char err[512];
    enum { N = 3 };
    static struct dr_slot slots[N];
    memset(slots, 0, sizeof slots);

    struct kafka_producer_options opt = {.brokers = f->brokers, .on_delivery = record_delivery, .poll_thread = 1};
    f->producer = kafka_producer_new(&opt, err, sizeof err);
    if (!f->producer)
        fail_msg("%s", err);
    for (int i = 0; i < N; i++) {
        char key[32], id[32];
        snprintf(key, sizeof key, "stream-%d", i);
        snprintf(id, sizeof id, "evt-%d", i);
        struct kv_list headers;
        kv_init(&headers);
        assert_int_equal(kv_add(&headers, "id", id), 0);
        assert_int_equal(kv_add(&headers, "type", "viewer.joined"), 0);
        assert_int_equal(kv_addn(&headers, "bin", 3, "a\0b", 3), 0);
        assert_int_equal(kv_add(&headers, "type", "hand.raised"), 0); /* last one wins */
        struct kafka_record rec = {.topic = TOPIC_EVENTS,
                                   .partition = 0,
                                   .key = key,
                                   .key_len = strlen(key),
                                   .value = "{}",
                                   .value_len = 2,
                                   .headers = &headers,
                                   .opaque = &slots[i]};
        assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
        kv_free(&headers);
    }
    /* The poller thread delivers the reports; this thread only waits. */
    int64_t deadline = time_monotonic_ms() + WAIT_MS;
    while (kafka_producer_outstanding(f->producer) > 0) {
        assert_true(time_monotonic_ms() < deadline);
        time_sleep_ms(10);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&slots[i].calls), 1);
        assert_int_equal(slots[i].err, 0);
        assert_int_equal(slots[i].partition, 0);
        assert_int_equal(slots[i].offset, i); /* idempotent producer keeps order */
    }
    assert_int_equal(kafka_producer_close(f->producer, 5000), 0);
    f->producer = NULL;

    f->consumers[0] = new_consumer(f, "headers");
    rd_kafka_t *rk = kafka_consumer_handle(f->consumers[0]);
    assert_int_equal(kafka_partition_count(rk, TOPIC_EVENTS, 10000, err, sizeof err), 2);
    assert_int_equal(kafka_partition_count(rk, TOPIC_DLQ, 10000, err, sizeof err), 2);
    assert_int_equal(kafka_partition_count(rk, TOPIC_STATE, 10000, err, sizeof err), 1);
    assert_int_equal(kafka_partition_count(rk, "no.such.topic", 10000, err, sizeof err), -1);
    assert_string_equal(err, "kafka topic \"no.such.topic\" does not exist");

    for (int i = 0; i < N; i++) {
        rd_kafka_message_t *m = next_message(f->consumers[0]);
        char key[32], id[32], buf[64];
        snprintf(key, sizeof key, "stream-%d", i);
        snprintf(id, sizeof id, "evt-%d", i);
        assert_int_equal(m->offset, i);
        assert_int_equal(m->key_len, strlen(key));
        assert_memory_equal(m->key, key, m->key_len);
        assert_int_equal(kafka_header_string(m, "id", buf, sizeof buf), 0);
        assert_string_equal(buf, id);
        assert_int_equal(kafka_header_string(m, "type", buf, sizeof buf), 0);
        assert_string_equal(buf, "hand.raised");
        const void *value;
        size_t len;
        assert_int_equal(kafka_header_get(m, "bin", &value, &len), 0);
        assert_int_equal(len, 3);
        assert_memory_equal(value, "a\0b", 3);
        /* A binary value is not a string; a missing header is not found; a
         * too small buffer is refused. */
        assert_int_equal(kafka_header_string(m, "bin", buf, sizeof buf), -1);
        assert_int_equal(kafka_header_get(m, "traceparent", &value, &len), -1);
        assert_int_equal(kafka_header_string(m, "id", buf, 5), -1);
        assert_int_equal(kafka_consumer_done(f->consumers[0], m, err, sizeof err), 0);
        rd_kafka_message_destroy(m);
    }
}

static void test_kafka_offsets_resume_after_last_done(void **state)
{
    struct fixture *f = *state;
    start_small_broker(f);
    enum { N = 10, K = 4 };
    char err[512];
    produce_to_partition0(f, N);

    /* The first member reads all N but marks only the first K done. */
    f->consumers[0] = new_consumer(f, "offsets");
    for (int i = 0; i < N; i++) {
        rd_kafka_message_t *m = next_message(f->consumers[0]);
        assert_int_equal(m->partition, 0);
        assert_int_equal(m->offset, i);
        if (i < K)
            assert_int_equal(kafka_consumer_done(f->consumers[0], m, err, sizeof err), 0);
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(kafka_consumer_close(f->consumers[0]), 0);
    f->consumers[0] = NULL;

    /* The next member of the group starts at the first message not done. */
    f->consumers[1] = new_consumer(f, "offsets");
    for (int i = K; i < N; i++) {
        rd_kafka_message_t *m = next_message(f->consumers[1]);
        assert_int_equal(m->partition, 0);
        assert_int_equal(m->offset, i);
        rd_kafka_message_destroy(m);
    }
}

static void test_kafka_pause_rewind_resume_redelivers(void **state)
{
    struct fixture *f = *state;
    start_small_broker(f);
    enum { N = 5 };
    char err[512];
    produce_to_partition0(f, N);
    struct kafka_consumer *c = f->consumers[0] = new_consumer(f, "pause");

    rd_kafka_message_t *m;
    for (int i = 0; i < 2; i++) {
        m = next_message(c);
        assert_int_equal(m->offset, i);
        assert_int_equal(kafka_consumer_done(c, m, err, sizeof err), 0);
        rd_kafka_message_destroy(m);
    }

    rd_kafka_topic_partition_list_t *assignment = kafka_consumer_assignment(c);
    assert_non_null(assignment);
    assert_int_equal(assignment->cnt, 2);
    rd_kafka_topic_partition_list_destroy(assignment);

    /* Offset 2 "fails": pause its partition and rewind to it. */
    m = next_message(c);
    assert_int_equal(m->offset, 2);
    rd_kafka_message_destroy(m);
    assert_int_equal(kafka_consumer_pause(c, TOPIC_EVENTS, 0, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_rewind(c, TOPIC_EVENTS, 0, 2, err, sizeof err), 0);
    /* Paused: nothing comes (partition 1 is empty). */
    assert_null(kafka_consumer_poll(c, 500));
    assert_int_equal(kafka_consumer_resume(c, TOPIC_EVENTS, 0, err, sizeof err), 0);
    m = next_message(c);
    assert_int_equal(m->partition, 0);
    assert_int_equal(m->offset, 2);
    assert_int_equal(m->key_len, 2);
    assert_memory_equal(m->key, "k2", 2);
    assert_int_equal(kafka_consumer_done(c, m, err, sizeof err), 0);
    rd_kafka_message_destroy(m);

    /* Without a rewind, librdkafka 2.0.2 resumes after the last message
     * returned, whether it was done or not (documented in kafka.h). */
    m = next_message(c);
    assert_int_equal(m->offset, 3);
    rd_kafka_message_destroy(m);
    assert_int_equal(kafka_consumer_pause(c, TOPIC_EVENTS, 0, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_resume(c, TOPIC_EVENTS, 0, err, sizeof err), 0);
    m = next_message(c);
    assert_int_equal(m->offset, 4);
    rd_kafka_message_destroy(m);

    /* Partitions this consumer does not own are refused with a reason. */
    char expected[256];
    assert_int_equal(kafka_consumer_pause(c, TOPIC_EVENTS, 7, err, sizeof err), -1);
    snprintf(expected, sizeof expected, "%s [7] is not assigned to this consumer", TOPIC_EVENTS);
    assert_string_equal(err, expected);
    assert_int_equal(kafka_consumer_rewind(c, TOPIC_DLQ, 0, 0, err, sizeof err), -1);
    snprintf(expected, sizeof expected, "%s [0] is not assigned to this consumer", TOPIC_DLQ);
    assert_string_equal(err, expected);
    assert_int_equal(kafka_consumer_rewind(c, TOPIC_EVENTS, 0, -1, err, sizeof err), -1);
    assert_non_null(strstr(err, "negative offset"));
}

/* Called by the eager test's hooks: counts partitions assigned / revoked. */
struct hook_counts {
    int assigned;
    int revoked;
};

static void count_assign(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    ((struct hook_counts *)ctx)->assigned += partitions->cnt;
}

static void count_revoke(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    ((struct hook_counts *)ctx)->revoked += partitions->cnt;
}

static void test_kafka_eager_assignor_is_handled(void **state)
{
    struct fixture *f = *state;
    start_small_broker(f);
    char err[512];
    produce_to_partition0(f, 3);

    struct hook_counts counts = {0, 0};
    struct kv_list props;
    quick_group_props(&props);
    assert_int_equal(kv_add(&props, "partition.assignment.strategy", "roundrobin"), 0);
    const char *topics[] = {TOPIC_EVENTS};
    struct kafka_consumer_options opt = {.brokers = f->brokers,
                                         .group_id = "eager",
                                         .topics = topics,
                                         .topic_count = 1,
                                         .properties = &props,
                                         .on_assign = count_assign,
                                         .on_revoke = count_revoke,
                                         .ctx = &counts};
    f->consumers[0] = kafka_consumer_new(&opt, err, sizeof err);
    kv_free(&props);
    if (!f->consumers[0])
        fail_msg("%s", err);
    for (int i = 0; i < 3; i++) {
        rd_kafka_message_t *m = next_message(f->consumers[0]);
        assert_int_equal(m->offset, i);
        if (i < 2)
            assert_int_equal(kafka_consumer_done(f->consumers[0], m, err, sizeof err), 0);
        rd_kafka_message_destroy(m);
    }
    assert_string_equal(rd_kafka_rebalance_protocol(kafka_consumer_handle(f->consumers[0])), "EAGER");
    assert_int_equal(counts.assigned, 2);
    assert_int_equal(counts.revoked, 0);
    assert_int_equal(kafka_consumer_close(f->consumers[0]), 0);
    f->consumers[0] = NULL;
    assert_int_equal(counts.revoked, 2); /* close gave back the assignment */

    /* The group's committed offset is the one after the last done message. */
    f->consumers[1] = new_consumer_with(f, "eager", "roundrobin");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC_EVENTS, 0);
    assert_int_equal(rd_kafka_committed(kafka_consumer_handle(f->consumers[1]), l, 10000), 0);
    assert_int_equal(l->elems[0].offset, 2);
    rd_kafka_topic_partition_list_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_and_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_exits_zero_and_removes_bootstrap_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_consumers_split_partitions_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_headers_and_delivery_opaque, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_offsets_resume_after_last_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_pause_rewind_resume_redelivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_eager_assignor_is_handled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
