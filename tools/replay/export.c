/* stagehand-replay export: events of stagehand.events as NDJSON, one
 * envelope per line exactly as stored, in partition order (a stream's
 * events, all in one partition, come out in the order they were written).
 *
 *   export [--stream NAME] [--partition P] [--from-offset N] [--to-offset N]
 *          [--since TIME] [--until TIME]
 *
 * Offsets are inclusive and per partition (a stream lives in one); times
 * are the events' ts, inclusive. Reads every partition from its beginning
 * to its end as it was when the export started. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>

#include "kafka.h"
#include "replay.h"
#include "timeutil.h"

struct export_filter {
    const char *stream;
    int64_t partition; /* -1: any */
    int64_t from_offset, to_offset;
    int64_t since_ms, until_ms;
    int by_time;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-replay export [--stream NAME] [--partition P] [--from-offset N]\n"
                 "                               [--to-offset N] [--since TIME] [--until TIME]\n"
                 "writes the matching events of stagehand.events to stdout, one JSON per line;\n"
                 "TIME is RFC 3339 (2026-12-02T10:00:00Z) or epoch milliseconds\n");
}

/* The event's ts, or -1 when the payload has none readable. */
static int64_t event_ts(const rd_kafka_message_t *msg)
{
    json_t *o = json_loadb(msg->payload, msg->len, 0, NULL);
    int64_t ms = -1;
    if (o && time_parse_rfc3339(json_string_value(json_object_get(o, "ts")), &ms) < 0)
        ms = -1;
    json_decref(o);
    return ms;
}

static int matches(const struct export_filter *f, const rd_kafka_message_t *msg)
{
    if (f->stream && (msg->key_len != strlen(f->stream) || memcmp(msg->key, f->stream, msg->key_len) != 0))
        return 0;
    if (f->partition >= 0 && msg->partition != f->partition)
        return 0;
    if (msg->offset < f->from_offset || msg->offset > f->to_offset)
        return 0;
    if (f->by_time) {
        int64_t ts = event_ts(msg);
        if (ts < 0 || ts < f->since_ms || ts > f->until_ms)
            return 0;
    }
    return 1;
}

int replay_export(int argc, char **argv, const char *brokers)
{
    struct export_filter f = {NULL, -1, 0, INT64_MAX, INT64_MIN, INT64_MAX, 0};
    static const struct option options[] = {{"stream", required_argument, NULL, 's'},
                                            {"partition", required_argument, NULL, 'p'},
                                            {"from-offset", required_argument, NULL, 'f'},
                                            {"to-offset", required_argument, NULL, 't'},
                                            {"since", required_argument, NULL, 'S'},
                                            {"until", required_argument, NULL, 'U'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 's':
            f.stream = optarg;
            break;
        case 'p':
            bad |= replay_parse_count("--partition", optarg, &f.partition);
            break;
        case 'f':
            bad |= replay_parse_count("--from-offset", optarg, &f.from_offset);
            break;
        case 't':
            bad |= replay_parse_count("--to-offset", optarg, &f.to_offset);
            break;
        case 'S':
            bad |= replay_parse_time("--since", optarg, &f.since_ms);
            f.by_time = 1;
            break;
        case 'U':
            bad |= replay_parse_time("--until", optarg, &f.until_ms);
            f.by_time = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    struct kafka_reader_options ropt = {.brokers = brokers, .topic = TOPIC_EVENTS};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r) {
        fprintf(stderr, "stagehand-replay: %s\n", err);
        return 1;
    }
    long exported = 0, unreadable = 0;
    int failed = 0;
    while (!kafka_reader_caught_up(r) && !failed) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        if (matches(&f, msg)) {
            if (!msg->payload || msg->len == 0 || memchr(msg->payload, '\n', msg->len)) {
                unreadable++; /* not one line of JSON: it cannot be an event */
            } else if (fwrite(msg->payload, 1, msg->len, stdout) != msg->len || putchar('\n') == EOF) {
                fprintf(stderr, "stagehand-replay: cannot write the export\n");
                failed = 1;
            } else {
                exported++;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    if (fflush(stdout) != 0)
        failed = 1;
    fprintf(stderr, "exported %ld events", exported);
    if (unreadable)
        fprintf(stderr, " (%ld records were not one line of JSON and were left out)", unreadable);
    fprintf(stderr, "\n");
    return failed ? 1 : 0;
}
