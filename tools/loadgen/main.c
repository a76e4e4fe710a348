/* stagehand-loadgen: produces synthetic events straight onto
 * stagehand.events, bypassing the ingress, to load the workers (join and
 * leave bursts). Each event is a valid envelope with its headers, exactly
 * as the ingress would have produced it.
 *
 *   stagehand-loadgen --stream NAME --count N [--type viewer.connected]
 *                     [--prefix viewer-] [--first 0] [--rate 0]
 *                     [--brokers B]
 *
 * Identities are PREFIX<FIRST> .. PREFIX<FIRST+N-1> (for
 * stream.create_requested, the host). --rate paces the events to that many
 * per second (0: as fast as the producer takes them). Prints "produced N in
 * S s" when every delivery report came back; exits 1 if any failed.
 *
 *   stagehand-loadgen --state --stream PREFIX --count N [--listed L] [--brokers B]
 *
 * Publishes the state records of N live streams PREFIX-0 .. PREFIX-(N-1)
 * to stagehand.state, one per role, as the workers would (SIDs, a
 * playback grant, counts): load for the ingress's view. With --listed L,
 * each sync record also has the host in "speakers" and L identities in
 * "viewers_listed" (what GET /streams/{name}/state shows).
 *
 *   stagehand-loadgen --read [--brokers B]
 *
 * Reads stagehand.events from its beginning until it has caught up and
 * prints "read N in S s": the rate a plain Kafka consumer gets on this
 * machine, the baseline the benchmarks compare the workers' replay to.
 * --brokers defaults to $KAFKA_BROKERS. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "kafka.h"
#include "settings.h"
#include "timeutil.h"

static long delivered, failed;

static void on_delivery(void *opaque, const struct kafka_delivery *d)
{
    (void)opaque;
    if (d->err)
        failed++;
    else
        delivered++;
}

/* A SID: the two-letter prefix and 32 hex digits from n. */
static void fake_sid(char out[35], const char *prefix, long n)
{
    snprintf(out, 35, "%s%032lx", prefix, n);
}

/* The sync record's "speakers" (the host) and "viewers_listed" (listed
 * identities viewer-0 ...), as the sync worker publishes them. */
static void add_listed(json_t *rec, const char *host, long listed)
{
    json_t *viewers = json_array();
    for (long v = 0; viewers && v < listed; v++) {
        char identity[32];
        snprintf(identity, sizeof identity, "viewer-%ld", v);
        json_array_append_new(viewers, json_string(identity));
    }
    json_object_set_new(rec, "speakers", json_pack("[{s:s, s:b}]", "identity", host, "host", 1));
    json_object_set_new(rec, "viewers_listed", viewers);
}

/* --state: three records per stream. Returns the exit status. */
static int publish_state(struct kafka_producer *p, const char *prefix, long count, long listed)
{
    char err[512];
    int64_t now = time_now_ms();
    static const char *const roles[] = {"room", "stream", "sync"};
    for (long i = 0; i < count; i++) {
        char stream[160], host[32], sid[35], sid2[35], url[256];
        snprintf(stream, sizeof stream, "%s-%ld", prefix, i);
        snprintf(host, sizeof host, "host-%ld", i);
        for (size_t r = 0; r < 3; r++) {
            json_t *rec = json_pack("{s:s, s:s, s:s, s:I}", "stream", stream, "role", roles[r], "status", "ready",
                                    "since", (json_int_t)now);
            if (r == 0) {
                fake_sid(sid, "RM", i);
                json_object_set_new(rec, "host", json_string(host));
                json_object_set_new(rec, "room_sid", json_string(sid));
            } else if (r == 1) {
                fake_sid(sid, "VJ", i);
                fake_sid(sid2, "ZX", i);
                snprintf(url, sizeof url,
                         "https://0000000000000000.us-east-1.playback.live-video.net/api/video/v1/"
                         "us-east-1.000000000000.channel.%s.m3u8",
                         sid);
                json_object_set_new(rec, "player_streamer_sid", json_string(sid));
                json_object_set_new(rec, "media_processor_sid", json_string(sid2));
                json_object_set_new(rec, "playback_grant",
                                    json_pack("{s:s, s:s, s:n}", "playbackUrl", url, "playerStreamerSid", sid,
                                              "requestCredentials"));
                json_object_set_new(rec, "playback_grant_expires_ms", json_integer(now + 60000));
            } else {
                fake_sid(sid, "IS", i);
                json_object_set_new(rec, "host", json_string(host));
                json_object_set_new(rec, "service_sid", json_string(sid));
                json_object_set_new(rec, "viewer_count", json_integer(0));
                json_object_set_new(rec, "raised_hands", json_integer(0));
                json_object_set_new(rec, "raised_hands_cap", json_integer(100));
                if (listed > 0)
                    add_listed(rec, host, listed);
            }
            char key[200];
            snprintf(key, sizeof key, "%s/%s", stream, roles[r]);
            char *value = json_dumps(rec, JSON_COMPACT);
            json_decref(rec);
            if (!value) {
                fprintf(stderr, "stagehand-loadgen: out of memory\n");
                return 1;
            }
            struct kafka_record kr = {.topic = TOPIC_STATE,
                                      .partition = RD_KAFKA_PARTITION_UA,
                                      .key = key,
                                      .key_len = strlen(key),
                                      .value = value,
                                      .value_len = strlen(value)};
            rd_kafka_resp_err_t rc = kafka_produce_waiting(p, &kr, err, sizeof err);
            free(value);
            if (rc) {
                fprintf(stderr, "stagehand-loadgen: %s\n", err);
                return 1;
            }
            kafka_producer_poll(p, 0);
        }
    }
    while (delivered + failed < count * 3)
        kafka_producer_poll(p, 50);
    printf("published %ld streams\n", delivered / 3);
    return failed ? 1 : 0;
}

/* --read: every event of stagehand.events, counted. */
static int read_all(const char *brokers)
{
    char err[512];
    struct kafka_reader_options ropt = {.brokers = brokers, .topic = TOPIC_EVENTS};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r) {
        fprintf(stderr, "stagehand-loadgen: %s\n", err);
        return 1;
    }
    long count = 0;
    int64_t started = 0;
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        if (count++ == 0)
            started = time_monotonic_ms(); /* from the first event: not the metadata wait */
        rd_kafka_message_destroy(msg);
    }
    double seconds = count ? (double)(time_monotonic_ms() - started) / 1000.0 : 0.0;
    kafka_reader_close(r);
    printf("read %ld in %.2f s\n", count, seconds);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-loadgen --stream NAME --count N [--type TYPE] [--prefix P] [--first I]\n"
                 "                         [--rate PER_S] [--brokers B]\n"
                 "       stagehand-loadgen --state --stream PREFIX --count N [--listed L] [--brokers B]\n"
                 "       stagehand-loadgen --read [--brokers B]\n"
                 "  TYPE: viewer.connected (default), viewer.disconnected, user.joined, hand.raised,\n"
                 "        hand.lowered, stream.create_requested\n");
}

int main(int argc, char **argv)
{
    const char *stream = NULL, *type = "viewer.connected", *prefix = "viewer-";
    const char *brokers = getenv("KAFKA_BROKERS");
    long count = -1, first = 0, rate = 0, listed = 0;
    int read = 0, state = 0;
    static const struct option options[] = {
        {"stream", required_argument, NULL, 's'}, {"count", required_argument, NULL, 'n'},
        {"type", required_argument, NULL, 't'},   {"prefix", required_argument, NULL, 'p'},
        {"first", required_argument, NULL, 'f'},  {"rate", required_argument, NULL, 'r'},
        {"read", no_argument, NULL, 'R'},         {"state", no_argument, NULL, 'S'},
        {"listed", required_argument, NULL, 'l'}, {"brokers", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's':
            stream = optarg;
            break;
        case 'n':
            count = strtol(optarg, &end, 10);
            if (*end || count < 0)
                count = -1;
            break;
        case 'f':
            first = strtol(optarg, &end, 10);
            if (*end || first < 0)
                count = -1;
            break;
        case 'r':
            rate = strtol(optarg, &end, 10);
            if (*end || rate < 0)
                count = -1;
            break;
        case 'l':
            listed = strtol(optarg, &end, 10);
            if (*end || listed < 0)
                count = -1;
            break;
        case 't':
            type = optarg;
            break;
        case 'p':
            prefix = optarg;
            break;
        case 'b':
            brokers = optarg;
            break;
        case 'R':
            read = 1;
            break;
        case 'S':
            state = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (read && brokers && optind == argc)
        return read_all(brokers);
    if (!stream || count < 0 || !brokers || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    struct kafka_producer_options popt = {.brokers = brokers, .on_delivery = on_delivery};
    struct kafka_producer *p = kafka_producer_new(&popt, err, sizeof err);
    if (!p) {
        fprintf(stderr, "stagehand-loadgen: %s\n", err);
        return 1;
    }
    if (state) {
        int rc = publish_state(p, stream, count, listed);
        kafka_producer_close(p, 5000);
        return rc;
    }
    int64_t started = time_monotonic_ms();
    for (long i = 0; i < count; i++) {
        char identity[160];
        if (rate > 0) {
            /* Sleep until event i is due, polling for delivery reports. */
            int64_t due = started + i * 1000 / rate;
            int64_t now;
            while ((now = time_monotonic_ms()) < due)
                kafka_producer_poll(p, (int)(due - now));
        }
        snprintf(identity, sizeof identity, "%s%ld", prefix, first + i);
        json_t *data;
        if (strcmp(type, "user.joined") == 0)
            data = json_pack("{s:s, s:s}", "identity", identity, "role", "viewer");
        else if (strcmp(type, "stream.create_requested") == 0)
            data = json_pack("{s:s}", "host", identity);
        else
            data = json_pack("{s:s}", "identity", identity);
        struct event ev;
        char *value = NULL;
        if (event_build(&ev, type, stream, "api", identity, data, err, sizeof err) < 0 ||
            !(value = event_encode(&ev, err, sizeof err))) {
            fprintf(stderr, "stagehand-loadgen: %s\n", err);
            event_free(&ev);
            kafka_producer_close(p, 1000);
            return 2;
        }
        struct kv_list headers;
        kv_init(&headers);
        kv_add(&headers, "id", ev.id);
        kv_add(&headers, "type", ev.type);
        struct kafka_record rec = {.topic = TOPIC_EVENTS,
                                   .partition = RD_KAFKA_PARTITION_UA,
                                   .key = stream,
                                   .key_len = strlen(stream),
                                   .value = value,
                                   .value_len = strlen(value),
                                   .headers = &headers};
        rd_kafka_resp_err_t rc = kafka_produce_waiting(p, &rec, err, sizeof err);
        kv_free(&headers);
        free(value);
        event_free(&ev);
        if (rc) {
            fprintf(stderr, "stagehand-loadgen: %s\n", err);
            failed++;
        }
        kafka_producer_poll(p, 0);
    }
    while (delivered + failed < count)
        kafka_producer_poll(p, 50);
    double seconds = (double)(time_monotonic_ms() - started) / 1000.0;
    kafka_producer_close(p, 5000);
    printf("produced %ld in %.2f s\n", delivered, seconds);
    return failed ? 1 : 0;
}
