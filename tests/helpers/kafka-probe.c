/* kafka-probe: a small Kafka client for tests, built on common/kafka.
 *
 *   kafka-probe produce --brokers B --topic T --count N [--key-prefix P]
 *       Produces N messages with keys P0..P(N-1) (default prefix "key-") and
 *       values "value-<i>", waits for every delivery report, prints
 *       "produced N" and exits 0, or 1 if any message failed.
 *
 *   kafka-probe consume --brokers B --topic T --group G --out FILE
 *                       [--expect N] [--max-seconds S]
 *       Joins group G and appends lines to FILE as things happen (each line
 *       flushed):  "assigned P1 P2 ..." with the full assignment after every
 *       rebalance (an empty one is "assigned"), "msg <partition> <offset>
 *       <key>" per message (then marks it done), "closed" after a clean
 *       close. Stops on SIGTERM/SIGINT, after N messages with --expect, or
 *       after S seconds (default 120); exits 1 if --expect was not reached.
 *
 * Both accept --property NAME=VALUE (repeatable) for extra librdkafka
 * properties; consume starts from session.timeout.ms=6000 and
 * heartbeat.interval.ms=500 so the dev broker's group joins are quick.
 * --brokers defaults to $KAFKA_BROKERS. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kv.h"
#include "log.h"
#include "timeutil.h"

#define MAX_TRACKED_PARTITIONS 4096

struct args {
    const char *brokers;
    const char *topic;
    const char *group;
    const char *out;
    const char *key_prefix;
    long count;
    long expect;
    long max_seconds;
    struct kv_list props;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: kafka-probe produce --brokers B --topic T --count N [--key-prefix P]\n"
                    "       kafka-probe consume --brokers B --topic T --group G --out FILE\n"
                    "                           [--expect N] [--max-seconds S]\n"
                    "       (both) [--property NAME=VALUE]...\n");
}

static int parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

static int bad_number(const char *s)
{
    fprintf(stderr, "kafka-probe: bad number \"%s\"\n", s);
    return -1;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},    {"topic", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},      {"out", required_argument, NULL, 'o'},
        {"key-prefix", required_argument, NULL, 'k'}, {"count", required_argument, NULL, 'n'},
        {"expect", required_argument, NULL, 'e'},     {"max-seconds", required_argument, NULL, 's'},
        {"property", required_argument, NULL, 'X'},   {NULL, 0, NULL, 0},
    };
    a->brokers = getenv("KAFKA_BROKERS");
    a->key_prefix = "key-";
    a->count = -1;
    a->expect = -1;
    a->max_seconds = 120;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            a->brokers = optarg;
            break;
        case 't':
            a->topic = optarg;
            break;
        case 'g':
            a->group = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'k':
            a->key_prefix = optarg;
            break;
        case 'n':
            if (parse_long(optarg, 0, &a->count) != 0)
                return bad_number(optarg);
            break;
        case 'e':
            if (parse_long(optarg, 0, &a->expect) != 0)
                return bad_number(optarg);
            break;
        case 's':
            if (parse_long(optarg, 1, &a->max_seconds) != 0)
                return bad_number(optarg);
            break;
        case 'X': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "kafka-probe: --property wants NAME=VALUE\n");
                return -1;
            }
            if (kv_addn(&a->props, optarg, (size_t)(eq - optarg), eq + 1, strlen(eq + 1)) != 0)
                return -1;
            break;
        }
        case ':':
            fprintf(stderr, "kafka-probe: option \"%s\" needs a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "kafka-probe: unknown option \"%s\"\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kafka-probe: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (!a->brokers || !a->topic) {
        fprintf(stderr, "kafka-probe: --brokers (or KAFKA_BROKERS) and --topic are required\n");
        return -1;
    }
    return 0;
}

/* --- produce ----------------------------------------------------------------- */

struct produce_state {
    long delivered;
    long failed;
};

static void on_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct produce_state *st = opaque;
    if (d->err) {
        st->failed++;
        fprintf(stderr, "kafka-probe: delivery failed: %s\n", d->errstr);
    } else {
        st->delivered++;
    }
}

static int run_produce(struct args *a)
{
    if (a->count < 0) {
        fprintf(stderr, "kafka-probe: produce needs --count\n");
        return 2;
    }
    char err[512];
    struct produce_state st = {0, 0};
    struct kafka_producer_options opt = {
        .brokers = a->brokers,
        .properties = &a->props,
        .on_delivery = on_delivery,
    };
    struct kafka_producer *p = kafka_producer_new(&opt, err, sizeof err);
    if (!p) {
        fprintf(stderr, "kafka-probe: %s\n", err);
        return 1;
    }
    long refused = 0;
    for (long i = 0; i < a->count; i++) {
        char key[256], value[64];
        snprintf(key, sizeof key, "%s%ld", a->key_prefix, i);
        snprintf(value, sizeof value, "value-%ld", i);
        struct kafka_record rec = {
            .topic = a->topic,
            .partition = RD_KAFKA_PARTITION_UA,
            .key = key,
            .key_len = strlen(key),
            .value = value,
            .value_len = strlen(value),
            .opaque = &st,
        };
        rd_kafka_resp_err_t e = kafka_produce_waiting(p, &rec, err, sizeof err);
        if (e) {
            fprintf(stderr, "kafka-probe: %s\n", err);
            refused++;
        }
        kafka_producer_poll(p, 0);
    }
    int undelivered = kafka_producer_close(p, 30000);
    printf("produced %ld\n", st.delivered);
    fflush(stdout);
    return (refused || undelivered || st.failed || st.delivered != a->count) ? 1 : 0;
}

/* --- consume ----------------------------------------------------------------- */

struct consume_state {
    FILE *out;
    const char *topic;
    unsigned char assigned[MAX_TRACKED_PARTITIONS];
};

static void write_assignment(struct consume_state *st)
{
    fputs("assigned", st->out);
    for (int i = 0; i < MAX_TRACKED_PARTITIONS; i++)
        if (st->assigned[i])
            fprintf(st->out, " %d", i);
    fputc('\n', st->out);
    fflush(st->out);
}

static void mark(struct consume_state *st, const rd_kafka_topic_partition_list_t *parts, unsigned char value)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t part = parts->elems[i].partition;
        if (strcmp(parts->elems[i].topic, st->topic) == 0 && part >= 0 && part < MAX_TRACKED_PARTITIONS)
            st->assigned[part] = value;
    }
}

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
    struct consume_state *st = ctx;
    mark(st, parts, 1);
    write_assignment(st);
}

static void on_revoke(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
    struct consume_state *st = ctx;
    mark(st, parts, 0);
    write_assignment(st);
}

static int run_consume(struct args *a)
{
    if (!a->group || !a->out) {
        fprintf(stderr, "kafka-probe: consume needs --group and --out\n");
        return 2;
    }
    struct consume_state st;
    memset(&st, 0, sizeof st);
    st.topic = a->topic;
    st.out = fopen(a->out, "w");
    if (!st.out) {
        fprintf(stderr, "kafka-probe: cannot open %s: %s\n", a->out, strerror(errno));
        return 1;
    }

    /* Short group timeouts first; --property values given later win. */
    struct kv_list props;
    kv_init(&props);
    int ok = kv_add(&props, "session.timeout.ms", "6000") == 0 && kv_add(&props, "heartbeat.interval.ms", "500") == 0;
    for (size_t i = 0; ok && i < a->props.len; i++)
        ok = kv_add(&props, a->props.items[i].name, a->props.items[i].value) == 0;
    if (!ok) {
        fprintf(stderr, "kafka-probe: out of memory\n");
        kv_free(&props);
        fclose(st.out);
        return 1;
    }

    char err[512];
    const char *topics[] = {a->topic};
    struct kafka_consumer_options opt = {
        .brokers = a->brokers,
        .group_id = a->group,
        .topics = topics,
        .topic_count = 1,
        .properties = &props,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .ctx = &st,
    };
    struct kafka_consumer *c = kafka_consumer_new(&opt, err, sizeof err);
    kv_free(&props);
    if (!c) {
        fprintf(stderr, "kafka-probe: %s\n", err);
        fclose(st.out);
        return 1;
    }

    long seen = 0;
    int64_t deadline = time_monotonic_ms() + a->max_seconds * 1000;
    while (!stop_requested && time_monotonic_ms() < deadline && (a->expect < 0 || seen < a->expect)) {
        rd_kafka_message_t *m = kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        fprintf(st.out, "msg %d %lld %.*s\n", (int)m->partition, (long long)m->offset, (int)m->key_len,
                m->key ? (const char *)m->key : "");
        fflush(st.out);
        seen++;
        if (kafka_consumer_done(c, m, err, sizeof err) != 0)
            fprintf(stderr, "kafka-probe: %s\n", err);
        rd_kafka_message_destroy(m);
    }
    int rc = kafka_consumer_close(c) == 0 ? 0 : 1;
    fputs("closed\n", st.out);
    fclose(st.out);
    if (a->expect >= 0 && seen < a->expect) {
        fprintf(stderr, "kafka-probe: saw %ld of %ld messages\n", seen, a->expect);
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    enum log_level level = LOG_LEVEL_INFO;
    const char *env_level = getenv("LOG_LEVEL");
    if (env_level && log_level_parse(env_level, &level) != 0)
        level = LOG_LEVEL_INFO;
    log_init("kafka-probe", level);

    if (argc < 2) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    struct args a;
    memset(&a, 0, sizeof a);
    kv_init(&a.props);
    if (parse_args(argc - 1, argv + 1, &a) != 0) {
        usage();
        kv_free(&a.props);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int rc;
    if (strcmp(mode, "produce") == 0) {
        rc = run_produce(&a);
    } else if (strcmp(mode, "consume") == 0) {
        rc = run_consume(&a);
    } else {
        fprintf(stderr, "kafka-probe: unknown mode \"%s\"\n", mode);
        usage();
        rc = 2;
    }
    kv_free(&a.props);
    return rc;
}
