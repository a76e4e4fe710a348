/* stagehand-replay: export, import, re-drive and re-apply events.
 *
 *   stagehand-replay [--brokers B] COMMAND [options]
 *
 * Commands (each with --help):
 *   export   events of stagehand.events as NDJSON, by stream, offsets, time
 *   import   NDJSON events onto stagehand.events (all validated first)
 *   dlq      list stagehand.dlq, or re-drive entries with new event ids
 *   offsets  make a stopped worker group apply again from a time
 *
 * --brokers defaults to $KAFKA_BROKERS. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kv.h"
#include "replay.h"
#include "timeutil.h"

static long delivered, undelivered;

static void on_delivery(void *opaque, const struct kafka_delivery *d)
{
    (void)opaque;
    if (d->err)
        undelivered++;
    else
        delivered++;
}

struct kafka_producer *replay_producer(const char *brokers)
{
    char err[512];
    struct kafka_producer_options popt = {.brokers = brokers, .on_delivery = on_delivery};
    struct kafka_producer *p = kafka_producer_new(&popt, err, sizeof err);
    if (!p)
        fprintf(stderr, "stagehand-replay: %s\n", err);
    return p;
}

int replay_produce(struct kafka_producer *p, const char *stream, const char *id, const char *type,
                   const char *redriven_from, const char *value)
{
    char err[512];
    struct kv_list headers;
    kv_init(&headers);
    kv_add(&headers, "id", id);
    kv_add(&headers, "type", type);
    if (redriven_from)
        kv_add(&headers, "redriven_from", redriven_from);
    struct kafka_record rec = {.topic = TOPIC_EVENTS,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = stream,
                               .key_len = strlen(stream),
                               .value = value,
                               .value_len = strlen(value),
                               .headers = &headers};
    rd_kafka_resp_err_t rc = kafka_produce_waiting(p, &rec, err, sizeof err);
    kv_free(&headers);
    kafka_producer_poll(p, 0);
    if (rc) {
        fprintf(stderr, "stagehand-replay: %s\n", err);
        return -1;
    }
    return 0;
}

long replay_close(struct kafka_producer *p, long queued)
{
    while (delivered + undelivered < queued && kafka_producer_outstanding(p) > 0)
        kafka_producer_poll(p, 100);
    kafka_producer_close(p, 10000); /* what it purges still gets its report */
    return delivered;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-replay [--brokers B] COMMAND [options]\n"
                 "  export   write events of stagehand.events as NDJSON\n"
                 "  import   produce NDJSON events onto stagehand.events\n"
                 "  dlq      list or re-drive stagehand.dlq entries\n"
                 "  offsets  make a stopped worker group apply again from a time\n"
                 "COMMAND --help tells more; --brokers defaults to $KAFKA_BROKERS\n");
}

/* A non-negative decimal, quietly: 0, or -1. */
static int read_count(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (!*text || *end || errno || n < 0)
        return -1;
    *out = n;
    return 0;
}

int replay_parse_time(const char *option, const char *text, int64_t *ms)
{
    if (time_parse_rfc3339(text, ms) == 0 || read_count(text, ms) == 0)
        return 0;
    fprintf(stderr, "stagehand-replay: %s wants an RFC 3339 time or epoch milliseconds\n", option);
    return -1;
}

int replay_parse_count(const char *option, const char *text, int64_t *out)
{
    if (read_count(text, out) == 0)
        return 0;
    fprintf(stderr, "stagehand-replay: %s wants a number >= 0\n", option);
    return -1;
}

int main(int argc, char **argv)
{
    const char *brokers = getenv("KAFKA_BROKERS");
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--brokers") == 0) {
        brokers = argv[i + 1];
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    const char *command = argv[i];
    int (*run)(int, char **, const char *) = NULL;
    if (strcmp(command, "export") == 0)
        run = replay_export;
    else if (strcmp(command, "import") == 0)
        run = replay_import;
    else if (strcmp(command, "dlq") == 0)
        run = replay_dlq;
    else if (strcmp(command, "offsets") == 0)
        run = replay_offsets;
    if (!run) {
        fprintf(stderr, "stagehand-replay: unknown command \"%s\"\n", command);
        usage(stderr);
        return 2;
    }
    int wants_help = argc - i > 1 && strcmp(argv[i + 1], "--help") == 0;
    if (!wants_help && (!brokers || !*brokers)) {
        fprintf(stderr, "stagehand-replay: no brokers: set KAFKA_BROKERS or pass --brokers\n");
        return 2;
    }
    return run(argc - i, argv + i, brokers);
}
