/* Ended streams leave stagehand.state, and nothing is applied twice after
 * (the whole pipeline: broker, emulator, ingress, room, stream and sync
 * workers with STATE_TOMBSTONE_AFTER_S=2).
 *
 * Four streams go live with viewers; two of them end. Each worker then
 * publishes a null record for the ended streams' keys and forgets them. On
 * real Kafka (a state topic that rolls every 100 ms and is cleaned at once,
 * as in test_compaction) the topic compacts to no record of them at all;
 * on the dev broker, which does not compact, their last record is the null
 * one. Then every worker and the ingress are stopped and started again from
 * scratch: the new workers re-read the events from offset 0 with no record
 * of the ended streams, yet apply nothing (the group's committed offsets are
 * their floor): the emulator's request and write counts and its whole state
 * are as they were, no "applied" outcome is counted, and a new ingress
 * answers GET /streams and GET /streams/{name} as the old one did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define STREAMS 4
#define ENDED 2 /* the last ENDED of them */
#define VIEWERS 3
#define FILLER_KEY "filler/none"

/* The whole pipeline with STATE_TOMBSTONE_AFTER_S=2; on real Kafka, a
 * state topic that rolls every 100 ms and is cleaned at once. */
static int setup_tombstones(void **state)
{
    static const char *const env[] = {"STATE_TOMBSTONE_AFTER_S=2", NULL};
    static const char *const state_configs[] = {"segment.ms=100", "min.cleanable.dirty.ratio=0.01",
                                                "delete.retention.ms=100", "min.compaction.lag.ms=0", NULL};
    struct fixture_options o;
    whole_pipeline_options(&o, env, NULL);
    if (stack_real_kafka())
        o.state_configs = state_configs;
    return fixture_setup(state, &o);
}

static void stream_name(char *out, size_t n, int i)
{
    snprintf(out, n, "finale-%d", i);
}

/* GET path on the ingress: "<status> <body>\n" (malloc'd). */
static char *ingress_get(struct fixture *f, const char *path)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("GET", url, headers, NULL, 0, &r);
    size_t n = strlen(r.body) + 32;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%ld %s\n", r.status, r.body);
    http_reply_free(&r);
    return out;
}

static int stream_status_is(struct fixture *f, const char *name, const char *status)
{
    char path[96];
    snprintf(path, sizeof path, "/streams/%s", name);
    char *got = ingress_get(f, path);
    json_t *body = json_loads(strchr(got, ' ') + 1, 0, NULL);
    const char *now = json_string_value(json_object_get(body, "status"));
    int yes = now && strcmp(now, status) == 0;
    json_decref(body);
    free(got);
    return yes;
}

/* What the ingress answers about every stream, and the list. */
static char *views(struct fixture *f)
{
    char *all = ingress_get(f, "/streams");
    for (int i = 0; i < STREAMS; i++) {
        char name[32], path[96];
        stream_name(name, sizeof name, i);
        snprintf(path, sizeof path, "/streams/%s", name);
        char *one = ingress_get(f, path);
        char *grown = realloc(all, strlen(all) + strlen(one) + 1);
        assert_non_null(grown);
        all = strcat(grown, one);
        free(one);
    }
    return all;
}

/* The sum of the samples of a metric family of worker i (-1: none). */
static double family(struct fixture *f, int i, const char *name)
{
    char url[128], prefix[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port[i]);
    snprintf(prefix, sizeof prefix, "\n%s", name);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    double total = -1;
    for (const char *at = strstr(r.body, prefix); at; at = strstr(at + 1, prefix)) {
        const char *after = at + strlen(prefix);
        if (*after != ' ' && *after != '{')
            continue;
        const char *space = strchr(after, ' ');
        if (space)
            total = (total < 0 ? 0 : total) + atof(space + 1);
    }
    http_reply_free(&r);
    return total;
}

/* The events worker i counted as applied. */
static double applied(struct fixture *f, int i)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port[i]);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    static const char mark[] = "outcome=\"applied\"} ";
    double total = 0;
    for (const char *at = strstr(r.body, mark); at; at = strstr(at + 1, mark))
        total += atof(at + strlen(mark));
    http_reply_free(&r);
    return total;
}

/* The requests to one product in a snapshot, which are then taken out of
 * it (with the total of requests, less those), leaving the rest to compare. */
static long requests_of(char **snapshot, const char *product)
{
    json_t *all = json_loads(*snapshot, 0, NULL);
    assert_non_null(all);
    json_t *stats = json_object_get(all, "stats");
    json_t *by_product = json_object_get(stats, "requests_by_product");
    long media = (long)json_integer_value(json_object_get(by_product, product));
    json_object_set_new(stats, "requests",
                        json_integer(json_integer_value(json_object_get(stats, "requests")) - media));
    json_object_del(by_product, product);
    free(*snapshot);
    *snapshot = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    assert_non_null(*snapshot);
    return media;
}

struct census {
    int live_records;    /* non-null records of live streams' keys */
    int ended_records;   /* non-null records of ended streams' keys */
    int ended_keys;      /* ended streams' keys present at all */
    int ended_last_null; /* ended keys whose last record is null */
};

static int stream_index(const char *key)
{
    if (strncmp(key, "finale-", 7) != 0)
        return -1;
    return atoi(key + 7);
}

static struct census take_census(struct fixture *f)
{
    struct census c = {0};
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_state};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    char keys[STREAMS * ROLES][64];
    int last_null[STREAMS * ROLES] = {0}, nkeys = 0;
    for (int i = 0; i < 400 && !kafka_reader_caught_up(r); i++) {
        rd_kafka_message_t *msg;
        while ((msg = kafka_reader_poll(r, 50))) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)msg->key_len, (const char *)msg->key);
            int s = stream_index(key);
            if (s >= 0) {
                int ended = s >= STREAMS - ENDED;
                if (msg->payload)
                    *(ended ? &c.ended_records : &c.live_records) += 1;

                int k = 0;
                while (k < nkeys && strcmp(keys[k], key) != 0)
                    k++;
                if (k == nkeys && nkeys < STREAMS * ROLES)
                    snprintf(keys[nkeys++], sizeof keys[0], "%s", key);
                if (k < STREAMS * ROLES)
                    last_null[k] = msg->payload == NULL;
            }
            rd_kafka_message_destroy(msg);
        }
    }
    assert_true(kafka_reader_caught_up(r));
    kafka_reader_close(r);
    for (int k = 0; k < nkeys; k++)
        if (stream_index(keys[k]) >= STREAMS - ENDED) {
            c.ended_keys++;
            c.ended_last_null += last_null[k];
        }
    return c;
}

static void publish_fillers(struct fixture *f)
{
    char err[256];
    for (int32_t p = 0; p < 3; p++) { /* the test topics' partitions (tests/support/stack.c) */
        struct kafka_record rec = {.topic = f->s.topic_state,
                                   .partition = p,
                                   .key = FILLER_KEY,
                                   .key_len = strlen(FILLER_KEY)};
        assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    }
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
}

/* Every worker's consumer lag is known and zero. */
static int workers_caught_up(struct fixture *f)
{
    for (int i = 0; i < ROLES; i++)
        if (family(f, i, "stagehand_worker_consumer_lag") != 0)
            return 0;
    return 1;
}

static void test_ended_streams_leave_and_nothing_is_applied_twice(void **state)
{
    struct fixture *f = *state;
    char name[32], body[160];
    for (int i = 0; i < STREAMS; i++) {
        stream_name(name, sizeof name, i);
        snprintf(body, sizeof body, "{\"user_identity\":\"host-%d\",\"stream_name\":\"%s\"}", i, name);
        assert_int_equal(api(f, "/create-stream", body, NULL), 200);
        for (int v = 0; v < VIEWERS; v++) {
            snprintf(body, sizeof body, "{\"user_identity\":\"fan-%d\",\"stream_name\":\"%s\"}", v, name);
            assert_int_equal(api(f, "/join-stream-as-viewer", body, NULL), 200);
            assert_int_equal(api(f, "/viewer-connected-to-player", body, NULL), 200);
        }
    }
    for (int i = 0; i < STREAMS; i++) {
        stream_name(name, sizeof name, i);
        for (int t = 0; t < 400 && !stream_status_is(f, name, "live"); t++)
            usleep(50 * 1000);
        assert_true(stream_status_is(f, name, "live"));
    }
    for (int i = STREAMS - ENDED; i < STREAMS; i++) {
        stream_name(name, sizeof name, i);
        snprintf(body, sizeof body, "{\"user_identity\":\"host-%d\",\"stream_name\":\"%s\"}", i, name);
        assert_int_equal(api(f, "/delete-stream", body, NULL), 200);
    }

    /* Each role removes its record of each ended stream: ended + 2 s, once
     * the group committed past the stream's last event (within 5 s). */
    int64_t started = time_monotonic_ms();
    for (int i = 0; i < ROLES; i++) {
        while (family(f, i, "stagehand_worker_state_tombstones_total") < ENDED && time_monotonic_ms() - started < 60000)
            usleep(200 * 1000);
        if (family(f, i, "stagehand_worker_state_tombstones_total") < ENDED)
            fail_msg("the %s worker removed no record of the ended streams", f->options.workers[i].role);
    }
    print_message("# tombstones of %d ended streams by every role after %.1f s\n", ENDED,
                  (double)(time_monotonic_ms() - started) / 1000.0);
    /* The ingress's view drops them with the null records. */
    for (int i = STREAMS - ENDED; i < STREAMS; i++) {
        char path[96];
        stream_name(name, sizeof name, i);
        snprintf(path, sizeof path, "/streams/%s", name);
        int unknown = 0;
        for (int t = 0; t < 100 && !unknown; t++) {
            char *got = ingress_get(f, path);
            unknown = strncmp(got, "404 ", 4) == 0;
            free(got);
            if (!unknown)
                usleep(100 * 1000);
        }
        if (!unknown)
            fail_msg("the ingress still knows %s", name);
    }

    /* Compacted away (real Kafka), or at least removed (the dev broker). */
    /* Two readings in a row, each from the beginning of the topic, agree. */
    struct census c = {0};
    int clean_in_a_row = 0;
    started = time_monotonic_ms();
    while (time_monotonic_ms() - started < 90000) {
        publish_fillers(f);
        c = take_census(f);
        if (!f->s.real_kafka)
            break;
        clean_in_a_row = c.ended_keys == 0 && c.live_records == (STREAMS - ENDED) * ROLES ? clean_in_a_row + 1 : 0;
        if (clean_in_a_row == 2)
            break;
        usleep(500 * 1000);
    }
    if (f->s.real_kafka) {
        print_message("# compacted: no record of the ended streams after %.1f s\n",
                      (double)(time_monotonic_ms() - started) / 1000.0);
        assert_int_equal(c.ended_keys, 0);
        assert_int_equal(c.live_records, (STREAMS - ENDED) * ROLES);
    } else {
        assert_int_equal(c.ended_keys, ENDED * ROLES);
        assert_int_equal(c.ended_last_null, ENDED * ROLES);
    }

    char *old_views = views(f);
    char *before = settled_snapshot(f);
    double old_streams[ROLES];
    for (int i = 0; i < ROLES; i++)
        old_streams[i] = family(f, i, "stagehand_worker_streams");

    /* Everything stopped and started again from scratch. */
    for (int i = 0; i < ROLES; i++)
        assert_int_equal(process_stop(&f->workers[i], 20000), 0);
    assert_int_equal(stack_stop_ingress(&f->s), 0);
    char err[256];
    const char *ingress_env[] = {f->public_env, f->port_env, "LOG_LEVEL=warn", NULL};
    if (stack_start_ingress(&f->s, ingress_env, err, sizeof err) < 0)
        fail_msg("%s", err);
    for (int i = 0; i < ROLES; i++)
        fixture_restart_worker(f, i);
    started = time_monotonic_ms();
    while (!workers_caught_up(f) && time_monotonic_ms() - started < 60000)
        usleep(200 * 1000);
    assert_true(workers_caught_up(f));
    /* ... and hold the streams the old ones held, once their sweep forgot
     * the ended streams their re-read brought back (about a second). */
    for (int i = 0; i < ROLES; i++) {
        while (family(f, i, "stagehand_worker_streams") != old_streams[i] && time_monotonic_ms() - started < 60000)
            usleep(200 * 1000);
        if (family(f, i, "stagehand_worker_streams") != old_streams[i])
            fail_msg("the new %s worker holds %g streams, the old one %g", f->options.workers[i].role,
                     family(f, i, "stagehand_worker_streams"), old_streams[i]);
    }
    char *after = settled_snapshot(f);
    print_message("# new workers caught up in %.1f s\n", (double)(time_monotonic_ms() - started) / 1000.0);

    /* Nothing applied, nothing sent to Twilio, the same answers. */
    for (int i = 0; i < ROLES; i++)
        if (applied(f, i) != 0)
            fail_msg("the new %s worker applied %g events again", f->options.workers[i].role, applied(f, i));
    /* A stream worker's start costs Twilio Live requests of its own, and
     * only those: a reconcile pass (three lists) and a PlaybackGrant for
     * each live stream (grants are not kept in state records). */
    long media_before = requests_of(&before, "media"), media_after = requests_of(&after, "media");
    assert_int_equal(media_after - media_before, 3 + (STREAMS - ENDED));
    /* A sync worker whose record of a live stream lags its committed
     * offset reads that stream's maps back before it trusts its memory:
     * reads only, since every Sync object's write count (sync_writes) and
     * the whole state are compared below. */
    long sync_before = requests_of(&before, "sync"), sync_after = requests_of(&after, "sync");
    assert_true(sync_after >= sync_before);
    print_message("# the new sync worker read Sync %ld times, wrote nothing\n", sync_after - sync_before);
    if (strcmp(after, before) != 0) {
        char paths[2][96];
        const char *texts[2] = {before, after};
        for (int i = 0; i < 2; i++) {
            snprintf(paths[i], sizeof paths[i], "/tmp/test_tombstones.%d.%s.json", (int)getpid(),
                     i ? "after" : "before");
            FILE *out = fopen(paths[i], "w");
            if (out) {
                fputs(texts[i], out);
                fclose(out);
            }
        }
        fail_msg("the emulator's state or counts changed after the restart: compare %s and %s", paths[0], paths[1]);
    }
    char *new_views = views(f);
    assert_string_equal(new_views, old_views);
    /* ... and the new workers did not bring the ended streams' records back. */
    struct census now = take_census(f);
    assert_int_equal(now.ended_records, c.ended_records);
    assert_int_equal(now.ended_last_null, c.ended_last_null);
    free(new_views);
    free(old_views);
    free(after);
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ended_streams_leave_and_nothing_is_applied_twice, setup_tombstones,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
