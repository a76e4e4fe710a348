/* Compaction of the state topic, on real Kafka only (the dev broker does
 * not compact; tests/run-tests.sh runs this only on the run's real broker).
 *
 * The test's state topic rolls a segment every 100 ms and is cleaned as
 * soon as anything in it is dirty (the broker looks every second, see
 * tools/kafka/kafka.sh); tombstones are dropped 100 ms after cleaning.
 * Twenty streams are published live as the workers would, their sync
 * records updated many times, and ten of them ended with tombstones (a null
 * record per role). Then:
 *   - the topic compacts to exactly the last record of each live key: no
 *     superseded record, no record or tombstone of an ended stream;
 *   - a new ingress that builds its view from the compacted topic answers
 *     GET /streams/{name} for all twenty exactly as the old one did.
 * Fillers (null records under "filler/none", one per partition) keep rolling
 * segments: Kafka never cleans the segment being written. */
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

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

#define STREAMS 20
#define ENDED 10
#define UPDATES 25
#define ROLES 3
#define FILLER_KEY "filler/none"

static const char *const role_names[ROLES] = {"room", "sync", "stream"};

static int setup_compacting(void **state)
{
    if (!stack_real_kafka()) {
        *state = NULL;
        return 0;
    }
    static const char *const state_configs[] = {"segment.ms=100", "min.cleanable.dirty.ratio=0.01",
                                                "delete.retention.ms=100", "min.compaction.lag.ms=0", NULL};
    struct fixture_options o = {.broker = 1, .state_configs = state_configs, .ingress = FIXTURE_INGRESS, .producer = 1};
    return fixture_setup(state, &o);
}

/* A null record under key in partition (RD_KAFKA_PARTITION_UA: by key). */
static void publish_null(struct fixture *f, const char *key, int32_t partition)
{
    char err[256];
    struct kafka_record rec = {.topic = f->s.topic_state, .partition = partition, .key = key, .key_len = strlen(key)};
    assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 100);
}

static void stream_name(char *out, size_t n, int i)
{
    snprintf(out, n, "show-%02d", i);
}

/* GET /streams/{name} of every stream: "<status> <body>" lines. */
static char *views(struct fixture *f)
{
    size_t cap = 65536, len = 0;
    char *all = calloc(1, cap);
    assert_non_null(all);
    const char *headers[] = {"Authorization: " TEST_PASSCODE, NULL};
    for (int i = 0; i < STREAMS; i++) {
        char name[32], path[64];
        stream_name(name, sizeof name, i);
        snprintf(path, sizeof path, "/streams/%s", name);
        struct http_reply r = call(f, "GET", path, headers, NULL);
        int n = snprintf(all + len, cap - len, "%ld %s\n", r.status, r.body);
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
        http_reply_free(&r);
    }
    return all;
}

/* views() once the old ingress has read every record published: each
 * ended stream unknown (all its roles' tombstones read) and the last live
 * stream at its last count. Its view follows the topic on its own, a
 * moment behind the producer. */
static char *settled_views(struct fixture *f)
{
    char last_count[64];
    snprintf(last_count, sizeof last_count, "\"viewer_count\":%d", UPDATES * 10 + STREAMS - ENDED - 1);
    char *all = NULL;
    for (int attempt = 0; attempt < 150; attempt++) {
        if (all) {
            free(all);
            usleep(100 * 1000);
        }
        all = views(f);
        int unknown = 0;
        for (const char *line = all; *line; line = strchr(line, '\n') + 1)
            unknown += strncmp(line, "404 ", 4) == 0;
        if (unknown == ENDED && strstr(all, last_count))
            break;
    }
    return all;
}

struct census {
    int records;    /* all but the fillers */
    int tombstones; /* null records, fillers aside */
    int ended;      /* records (null or not) of ended streams */
    int duplicates; /* records whose key came before */
};

/* Reads the whole state topic once and counts. */
static struct census take_census(struct fixture *f)
{
    struct census c = {0};
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_state};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    char seen[STREAMS * ROLES][64];
    int n_seen = 0;
    for (int i = 0; i < 400 && !kafka_reader_caught_up(r); i++) {
        rd_kafka_message_t *msg;
        while ((msg = kafka_reader_poll(r, 50))) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)msg->key_len, (const char *)msg->key);
            if (strcmp(key, FILLER_KEY) != 0) {
                c.records++;
                c.tombstones += msg->payload == NULL;
                int stream = atoi(key + strlen("show-"));
                c.ended += stream >= STREAMS - ENDED;
                int dup = 0;
                for (int k = 0; k < n_seen; k++)
                    dup |= strcmp(seen[k], key) == 0;
                c.duplicates += dup;
                if (!dup && n_seen < STREAMS * ROLES)
                    snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
            }
            rd_kafka_message_destroy(msg);
        }
    }
    assert_true(kafka_reader_caught_up(r));
    kafka_reader_close(r);
    return c;
}

static void test_state_compacts_and_a_new_ingress_sees_the_same(void **state)
{
    struct fixture *f = *state;
    if (!f)
        skip(); /* the dev broker does not compact */
    char name[32], key[64];
    for (int i = 0; i < STREAMS; i++) {
        stream_name(name, sizeof name, i);
        publish_live_stream(f, name, "host", 0, 100);
    }
    for (int u = 1; u <= UPDATES; u++)
        for (int i = 0; i < STREAMS; i++) {
            stream_name(name, sizeof name, i);
            publish_state(f, name, "sync",
                          json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i}", "status", "ready", "since", (json_int_t)1000,
                                    "host", "host", "service_sid", SERVICE_SID, "viewer_count", u * 10 + i,
                                    "raised_hands", u % 7, "raised_hands_cap", 100));
        }
    for (int i = STREAMS - ENDED; i < STREAMS; i++)
        for (int r = 0; r < ROLES; r++) {
            stream_name(name, sizeof name, i);
            snprintf(key, sizeof key, "%s/%s", name, role_names[r]);
            publish_null(f, key, RD_KAFKA_PARTITION_UA);
        }
    /* The cleaner may have begun already (segments roll every 100 ms). */
    const int published = STREAMS * ROLES + STREAMS * UPDATES + ENDED * ROLES;

    /* The old ingress's view: live streams with their last counts, the
     * ended ones unknown. */
    stream_name(name, sizeof name, 0);
    wait_stream_status(f, name, "live");
    char *old_views = settled_views(f);
    assert_non_null(strstr(old_views, "250")); /* show-00's last count */

    /* Compacted: the last record of each live key, nothing else. */
    struct census now = {0};
    int64_t started = time_monotonic_ms();
    while (time_monotonic_ms() - started < 90000) {
        for (int32_t p = 0; p < 3; p++)
            publish_null(f, FILLER_KEY, p);
        now = take_census(f);
        if (now.records == (STREAMS - ENDED) * ROLES && now.ended == 0 && now.duplicates == 0)
            break;
        usleep(500 * 1000);
    }
    print_message("# compaction: %d records published, %d left after %.1f s\n", published, now.records,
                  (double)(time_monotonic_ms() - started) / 1000.0);
    assert_int_equal(now.records, (STREAMS - ENDED) * ROLES);
    assert_int_equal(now.tombstones, 0);
    assert_int_equal(now.ended, 0);
    assert_int_equal(now.duplicates, 0);

    /* A new ingress, built from the compacted topic, sees what the old saw. */
    assert_int_equal(stack_stop_ingress(&f->s), 0);
    char err[256];
    if (stack_start_ingress(&f->s, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    char *new_views = views(f);
    assert_string_equal(new_views, old_views);
    free(old_views);
    free(new_views);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_compacts_and_a_new_ingress_sees_the_same, setup_compacting,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
