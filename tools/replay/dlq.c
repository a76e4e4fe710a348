/* stagehand-replay dlq: the dead letters of stagehand.dlq.
 *
 *   dlq list                      every entry as one JSON line: partition,
 *                                 offset, the headers the worker set (role,
 *                                 error_code, error, attempts, original_*)
 *                                 and the event
 *   dlq redrive (--all | [--partition P] --from-offset N [--to-offset N])
 *                                 the chosen entries back onto
 *                                 stagehand.events, each with a NEW event id
 *                                 (a worker skips ids it handled lately) and
 *                                 the old one in a "redriven_from" header
 *
 * An entry that is not a valid event (it went to the DLQ for that) cannot
 * be re-driven; it is reported and left. Re-driving an entry twice
 * produces it twice; the workers' idempotent side effects absorb that, but
 * pick ranges from `dlq list` rather than re-driving everything again. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>

#include "event.h"
#include "kafka.h"
#include "replay.h"

struct selection {
    int all;
    int64_t partition; /* -1: any */
    int64_t from_offset, to_offset;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-replay dlq list\n"
                 "       stagehand-replay dlq redrive (--all | [--partition P] --from-offset N [--to-offset N])\n");
}

/* The entry's headers as a JSON object (string values). */
static json_t *headers_json(const rd_kafka_message_t *msg)
{
    json_t *o = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return o;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        json_object_set_new(o, name, value ? json_stringn_nocheck(value, size) : json_null());
    return o;
}

static int list_entry(const rd_kafka_message_t *msg)
{
    json_t *event = msg->payload ? json_loadb(msg->payload, msg->len, 0, NULL) : NULL;
    if (!event) /* not JSON: shown as text, as far as it is UTF-8 */
        event = msg->payload ? json_stringn(msg->payload, msg->len) : json_null();
    json_t *entry = json_pack("{s:i, s:I, s:o, s:o*}", "partition", (int)msg->partition, "offset",
                              (json_int_t)msg->offset, "headers", headers_json(msg), "event", event);
    char *line = entry ? json_dumps(entry, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(entry);
    if (!line)
        return -1;
    int rc = puts(line) == EOF ? -1 : 0;
    free(line);
    return rc;
}

static int selected(const struct selection *s, const rd_kafka_message_t *msg)
{
    if (s->all)
        return 1;
    return (s->partition < 0 || msg->partition == s->partition) && msg->offset >= s->from_offset &&
           msg->offset <= s->to_offset;
}

/* Produces the entry's event again with a new id. Returns 0 when queued,
 * 1 when it is not a valid event (reported), -1 when producing failed. */
static int redrive_entry(struct kafka_producer *p, const rd_kafka_message_t *msg)
{
    struct event ev;
    char err[512];
    if (!msg->payload || event_parse(msg->payload, msg->len, &ev, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-replay: dlq %d/%lld is not a valid event, left: %s\n", (int)msg->partition,
                (long long)msg->offset, msg->payload ? err : "empty");
        return 1;
    }
    char old_id[EVENT_ID_LEN + 1];
    memcpy(old_id, ev.id, sizeof old_id);
    char *value = NULL;
    int rc = -1;
    if (event_random_id(ev.id) < 0)
        fprintf(stderr, "stagehand-replay: the random source failed\n");
    else if (!(value = event_serialize(&ev)))
        fprintf(stderr, "stagehand-replay: out of memory\n");
    else
        rc = replay_produce(p, ev.stream, ev.id, ev.type, old_id, value);
    free(value);
    event_free(&ev);
    return rc;
}

static int parse_selection(int argc, char **argv, struct selection *s)
{
    static const struct option options[] = {{"all", no_argument, NULL, 'a'},
                                            {"partition", required_argument, NULL, 'p'},
                                            {"from-offset", required_argument, NULL, 'f'},
                                            {"to-offset", required_argument, NULL, 't'},
                                            {NULL, 0, NULL, 0}};
    int c, bad = 0, from = 0;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'a':
            s->all = 1;
            break;
        case 'p':
            bad |= replay_parse_count("--partition", optarg, &s->partition);
            break;
        case 'f':
            bad |= replay_parse_count("--from-offset", optarg, &s->from_offset);
            from = 1;
            break;
        case 't':
            bad |= replay_parse_count("--to-offset", optarg, &s->to_offset);
            break;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || s->all == from) /* exactly one of --all and a range */
        return -1;
    return 0;
}

int replay_dlq(int argc, char **argv, const char *brokers)
{
    int list = argc == 2 && strcmp(argv[1], "list") == 0;
    int redrive = argc >= 2 && strcmp(argv[1], "redrive") == 0;
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    struct selection sel = {0, -1, 0, INT64_MAX};
    if ((!list && !redrive) || (redrive && parse_selection(argc - 1, argv + 1, &sel) < 0)) {
        usage(stderr);
        return 2;
    }
    char err[512];
    struct kafka_producer *p = NULL;
    if (redrive && !(p = replay_producer(brokers)))
        return 1;
    struct kafka_reader_options ropt = {.brokers = brokers, .topic = TOPIC_DLQ};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r) {
        fprintf(stderr, "stagehand-replay: %s\n", err);
        if (p)
            kafka_producer_close(p, 0);
        return 1;
    }
    long queued = 0, invalid = 0;
    int failed = 0;
    while (!kafka_reader_caught_up(r) && !failed) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        if (list) {
            failed = list_entry(msg) < 0;
        } else if (selected(&sel, msg)) {
            int rc = redrive_entry(p, msg);
            queued += rc == 0;
            invalid += rc == 1;
            failed = rc < 0;
        }
        rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    if (list)
        return fflush(stdout) == 0 && !failed ? 0 : 1;
    long delivered = replay_close(p, queued);
    printf("redriven %ld entries\n", delivered);
    if (invalid)
        fprintf(stderr, "stagehand-replay: %ld entries were not valid events and stay in the DLQ only\n", invalid);
    if (failed || delivered < queued) {
        fprintf(stderr, "stagehand-replay: %ld entries were not acknowledged\n", queued - delivered);
        return 1;
    }
    return 0;
}
