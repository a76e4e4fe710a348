/* Checkpoints (issue 20): a worker rebuilt from a checkpoint plus the tail
 * of its partitions holds exactly what a worker rebuilt from offset 0
 * holds, reads fewer events, and neither writes anything to Twilio (the
 * whole pipeline: broker, emulator, ingress, room, stream and sync
 * workers, SNAPSHOT_INTERVAL_S=1, STATE_TOMBSTONE_AFTER_S=2).
 *
 *  1. The first workers live through a story with every event type the
 *     workers handle: a stream created, viewers joining
 *     (/join-stream-as-viewer, /viewer-connected-to-player), one leaving
 *     (its Sync endpoint drops), hands raised and lowered, invitations,
 *     speakers joining and leaving the room, a speaker moved back to the
 *     audience who joins again as a viewer; two more streams end and are
 *     tombstoned by every role. Stopping, each worker checkpoints its
 *     partitions.
 *  2. The tail: more viewers and a hand, applied by workers with
 *     SNAPSHOT_INTERVAL_S=0 (which neither read nor write checkpoints).
 *  3. Workers with checkpoints on load them and read only the tail; then
 *     workers with SNAPSHOT_INTERVAL_S=0 re-read everything from offset 0.
 *     Both dump their streams (GET /debug/state on the metrics port, the
 *     checkpoint's JSON of every stream): the dumps are equal, the first
 *     counted fewer events, and the emulator's state and write counts are
 *     those of step 2's end (reads and a stream worker's start-up requests
 *     aside).
 *  4. A `stagehand-replay offsets` mark at offset 0, below the sync
 *     worker's checkpoints: it re-reads from 0 and re-applies, and ends
 *     with the same state; the room and stream workers load theirs. */
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

#include <jansson.h>

#include "../support/fixture.h"
#include "../support/pipeline_helpers.h"
#include "timeutil.h"

#define ROLES 3
#define LIVE "encore"

static const char *const roles[ROLES] = {"room", "stream", "sync"};

static void start_workers(struct fixture *f, const char *snapshots)
{
    for (int i = 0; i < ROLES; i++) {
        const char *env[] = {"VIEWERS_MAP_CAP=20",
                             "COUNT_INTERVAL_MS=200",
                             "LOG_LEVEL=warn",
                             "STATE_TOMBSTONE_AFTER_S=2",
                             snapshots,
                             getenv("TEST_LOG_LEVEL"),
                             NULL};
        fixture_start_worker(f, i, env);
    }
}

static void stop_workers(struct fixture *f)
{
    for (int i = 0; i < ROLES; i++)
        assert_int_equal(process_stop(&f->workers[i], 20000), 0);
}

/* The broker, the public ingress and the emulator; the workers are started
 * by the test, with or without checkpoints. */
static int setup(void **state)
{
    static const char *const ingress_env[] = {"CREATE_WAIT_MS=20000",  "PRODUCE_TIMEOUT_MS=1000",
                                              "RATE_LIMIT_IP_PER_S=0", "RATE_LIMIT_IDENTITY_PER_S=0",
                                              "LOG_LEVEL=warn",        NULL};
    struct fixture_options o = {.broker = 1,
                                .ingress = FIXTURE_INGRESS_PUBLIC,
                                .ingress_env = ingress_env,
                                .emulator = 1,
                                .workers = {{"room", NULL}, {"stream", NULL}, {"sync", NULL}},
                                .workers_later = 1};
    fixture_setup(state, &o);
    struct fixture *f = *state;
    f->stream = LIVE; /* the room of pipeline_helpers' room_join and room_leave */
    return 0;
}

/* --- the API, the emulator, the workers' metrics ---------------------------------------------- */

static void user_api(struct fixture *f, const char *path, const char *stream, const char *identity, const char *extra)
{
    char body[256];
    snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"%s\"%s}", identity, stream,
             extra ? extra : "");
    long status = api(f, path, body, NULL);
    if (status != 200)
        fail_msg("%s %s for %s: %ld", path, stream, identity, status);
}

/* The SID of the live stream's Sync service (waits for it). */
static void service_sid(struct fixture *f, char out[64])
{
    for (int t = 0; t < 200; t++) {
        json_t *service = sync_service(f, LIVE);
        const char *sid = json_string_value(json_object_get(service, "sid"));
        snprintf(out, 64, "%s", sid ? sid : "");
        json_decref(service);
        if (out[0])
            return;
        usleep(50 * 1000);
    }
    fail_msg("no Sync service for %s", LIVE);
}

/* identity's Sync endpoint connects and drops: viewer.disconnected. */
static void sync_endpoint_drops(struct fixture *f, const char *identity)
{
    char sid[64], path[256], form[4096];
    service_sid(f, sid);
    char *token = token_for(identity, NULL, sid);
    json_t *endpoint = NULL;
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints", sid);
    snprintf(form, sizeof form, "Token=%s", token);
    free(token);
    assert_int_equal(emulator_post(f, path, form, &endpoint), 201);
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints/%s/disconnect", sid,
             json_string_value(json_object_get(endpoint, "endpoint_id")));
    json_decref(endpoint);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
}

/* The sum of the samples of a metric family of worker i (-1: none), or of
 * the samples whose labels contain label when it is not NULL. */
static double family(struct fixture *f, int i, const char *name, const char *label)
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
        const char *eol = strchr(after, '\n');
        if (label && (!eol || !memmem(after, (size_t)(eol - after), label, strlen(label))))
            continue;
        if (space)
            total = (total < 0 ? 0 : total) + atof(space + 1);
    }
    http_reply_free(&r);
    return total;
}

static int caught_up(struct fixture *f)
{
    for (int i = 0; i < ROLES; i++)
        if (family(f, i, "stagehand_worker_consumer_lag", NULL) != 0)
            return 0;
    return 1;
}

/* Every worker caught up and holding streams streams. */
static void wait_settled_workers(struct fixture *f, double streams)
{
    int64_t started = time_monotonic_ms();
    while (time_monotonic_ms() - started < 60000) {
        int ok = caught_up(f);
        for (int i = 0; ok && i < ROLES; i++)
            ok = family(f, i, "stagehand_worker_streams", NULL) == streams;
        if (ok)
            return;
        usleep(200 * 1000);
    }
    for (int i = 0; i < ROLES; i++)
        print_message("# %s: lag %g, streams %g\n", roles[i], family(f, i, "stagehand_worker_consumer_lag", NULL),
                      family(f, i, "stagehand_worker_streams", NULL));
    fail_msg("the workers did not catch up holding %g streams", streams);
}

/* Takes the requests out of a snapshot's stats (what a worker's start may
 * cost in reads), keeping the state and the write counts to compare. */
static json_t *without_requests(const char *snapshot)
{
    json_t *all = json_loads(snapshot, 0, NULL);
    assert_non_null(all);
    json_t *stats = json_object_get(all, "stats");
    json_object_del(stats, "requests");
    json_object_del(stats, "requests_by_product");
    return all;
}

/* GET /debug/state of worker i: its streams, with the list orders that
 * depend on when Sync was read back (the viewers) sorted. */
static json_t *dump(struct fixture *f, int i)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/state", f->metrics_port[i]);
    json_t *got = NULL;
    for (int t = 0; t < 50 && !got; t++) {
        struct http_reply r;
        http_call("GET", url, NULL, NULL, 0, &r);
        if (r.status == 200)
            got = json_loads(r.body, 0, NULL);
        http_reply_free(&r);
        if (!got)
            usleep(100 * 1000);
    }
    assert_non_null(got);
    json_t *streams = json_object_get(got, "streams"), *st;
    size_t k;
    json_array_foreach (streams, k, st) {
        json_t *viewers = json_object_get(json_object_get(st, "role"), "viewers");
        size_t n = json_array_size(viewers);
        for (size_t a = 1; a < n; a++) /* insertion sort: a handful of names */
            for (size_t b = a; b > 0 && strcmp(json_string_value(json_array_get(viewers, b - 1)),
                                               json_string_value(json_array_get(viewers, b))) > 0;
                 b--) {
                json_t *x = json_incref(json_array_get(viewers, b - 1));
                json_array_set(viewers, b - 1, json_array_get(viewers, b));
                json_array_set_new(viewers, b, x);
            }
    }
    json_t *out = json_incref(streams);
    json_decref(got);
    return out;
}

static double events_read(struct fixture *f, int i)
{
    double n = family(f, i, "stagehand_worker_events_total", NULL);
    return n < 0 ? 0 : n; /* none counted: the family is absent */
}

/* --- the test --------------------------------------------------------------------------------- */

static void story(struct fixture *f)
{
    user_api(f, "/create-stream", LIVE, "host", NULL);
    char viewer[16];
    for (int v = 1; v <= 6; v++) {
        snprintf(viewer, sizeof viewer, "v%d", v);
        user_api(f, "/join-stream-as-viewer", LIVE, viewer, NULL);
        user_api(f, "/viewer-connected-to-player", LIVE, viewer, NULL);
    }
    user_api(f, "/raise-hand", LIVE, "v1", ",\"hand_raised\":true");
    user_api(f, "/raise-hand", LIVE, "v2", ",\"hand_raised\":true");
    user_api(f, "/raise-hand", LIVE, "v2", ",\"hand_raised\":false");
    /* v1 invited up, on stage, then moved back to the audience and joining again as a viewer. */
    user_api(f, "/send-speaker-invite", LIVE, "v1", NULL);
    user_api(f, "/join-stream-as-speaker", LIVE, "v1", NULL);
    room_join(f, "v1");
    sync_endpoint_drops(f, "v4");
    usleep(500 * 1000);
    user_api(f, "/remove-speaker", LIVE, "v1", NULL);
    usleep(500 * 1000);
    user_api(f, "/join-stream-as-viewer", LIVE, "v1", NULL);
    user_api(f, "/viewer-connected-to-player", LIVE, "v1", NULL);
    /* v3 invited up, joins the room, leaves it. */
    user_api(f, "/send-speaker-invite", LIVE, "v3", NULL);
    user_api(f, "/join-stream-as-speaker", LIVE, "v3", NULL);
    room_join(f, "v3");
    usleep(500 * 1000);
    room_leave(f, "v3");
    /* Two streams that end (and are tombstoned). */
    static const char *const gone[] = {"finale", "coda"};
    for (int s = 0; s < 2; s++) {
        user_api(f, "/create-stream", gone[s], "host", NULL);
        user_api(f, "/join-stream-as-viewer", gone[s], "fan", NULL);
        user_api(f, "/viewer-connected-to-player", gone[s], "fan", NULL);
    }
    for (int s = 0; s < 2; s++)
        user_api(f, "/delete-stream", gone[s], "host", NULL);
}

static void test_checkpoint_and_tail_equal_full_reread(void **state)
{
    struct fixture *f = *state;
    /* 1. The story, with checkpoints every second. */
    start_workers(f, "SNAPSHOT_INTERVAL_S=1");
    story(f);
    int64_t started = time_monotonic_ms();
    for (int i = 0; i < ROLES; i++) {
        while (family(f, i, "stagehand_worker_state_tombstones_total", NULL) < 2 &&
               time_monotonic_ms() - started < 60000)
            usleep(200 * 1000);
        if (family(f, i, "stagehand_worker_state_tombstones_total", NULL) < 2)
            fail_msg("the %s worker removed no record of the ended streams", roles[i]);
    }
    wait_settled_workers(f, 1);
    free(settled_snapshot(f));
    for (int i = 0; i < ROLES; i++)
        if (family(f, i, "stagehand_worker_checkpoints_total", NULL) < 1)
            fail_msg("the %s worker wrote no checkpoint", roles[i]);
    stop_workers(f);

    /* 2. The tail, applied by workers that use no checkpoint. */
    start_workers(f, "SNAPSHOT_INTERVAL_S=0");
    wait_settled_workers(f, 1);
    for (int v = 7; v <= 8; v++) {
        char viewer[16];
        snprintf(viewer, sizeof viewer, "v%d", v);
        user_api(f, "/join-stream-as-viewer", LIVE, viewer, NULL);
        user_api(f, "/viewer-connected-to-player", LIVE, viewer, NULL);
    }
    user_api(f, "/raise-hand", LIVE, "v5", ",\"hand_raised\":true");
    usleep(1000 * 1000);
    wait_settled_workers(f, 1);
    char *before = settled_snapshot(f);
    for (int i = 0; i < ROLES; i++)
        assert_true(family(f, i, "stagehand_worker_checkpoints_total", NULL) <= 0);
    stop_workers(f);

    /* 3a. From the checkpoints and the tail. */
    start_workers(f, "SNAPSHOT_INTERVAL_S=1");
    wait_settled_workers(f, 1);
    char *after_a = settled_snapshot(f);
    json_t *dumps_a[ROLES];
    double events_a[ROLES];
    for (int i = 0; i < ROLES; i++) {
        if (family(f, i, "stagehand_worker_checkpoint_loads_total", "loaded") < 1)
            fail_msg("the %s worker loaded no checkpoint", roles[i]);
        assert_true(family(f, i, "stagehand_worker_checkpoint_loads_total", "fallback") <= 0);
        dumps_a[i] = dump(f, i);
        events_a[i] = events_read(f, i);
    }
    stop_workers(f);

    /* 3b. From offset 0. */
    start_workers(f, "SNAPSHOT_INTERVAL_S=0");
    wait_settled_workers(f, 1); /* the ended streams a re-read brings back are forgotten again */
    char *after_b = settled_snapshot(f);
    for (int i = 0; i < ROLES; i++) {
        json_t *dump_b = dump(f, i);
        double events_b = events_read(f, i);
        print_message("# %s: %g events read from the checkpoint on, %g from offset 0\n", roles[i], events_a[i],
                      events_b);
        if (!json_equal(dumps_a[i], dump_b)) {
            char *a = json_dumps(dumps_a[i], JSON_SORT_KEYS | JSON_INDENT(1));
            char *b = json_dumps(dump_b, JSON_SORT_KEYS | JSON_INDENT(1));
            char paths[2][96];
            const char *texts[2] = {a, b};
            for (int k = 0; k < 2; k++) {
                snprintf(paths[k], sizeof paths[k], "/tmp/test_snapshots.%d.%s.%s.json", (int)getpid(), roles[i],
                         k ? "offset0" : "checkpoint");
                FILE *out = fopen(paths[k], "w");
                if (out) {
                    fputs(texts[k], out);
                    fclose(out);
                }
            }
            fail_msg("the %s worker's state differs: compare %s and %s", roles[i], paths[0], paths[1]);
        }
        if (json_array_size(dump_b) != 1) {
            char *b = json_dumps(dump_b, JSON_SORT_KEYS | JSON_INDENT(1));
            fail_msg("the %s worker holds %zu streams: %s", roles[i], json_array_size(dump_b), b);
        }
        assert_true(events_a[i] < events_b);
        json_decref(dumps_a[i]);
        dumps_a[i] = dump_b;
    }

    /* Neither wrote anything to Twilio: the same state and write counts. */
    json_t *b0 = without_requests(before), *ba = without_requests(after_a), *bb = without_requests(after_b);
    if (!json_equal(b0, ba) || !json_equal(b0, bb)) {
        char *t0 = json_dumps(b0, JSON_SORT_KEYS), *ta = json_dumps(ba, JSON_SORT_KEYS),
             *tb = json_dumps(bb, JSON_SORT_KEYS);
        fail_msg("the emulator changed:\nbefore %s\nfrom the checkpoint %s\nfrom offset 0 %s", t0, ta, tb);
    }
    json_decref(ba);
    json_decref(bb);

    /* 4. `stagehand-replay offsets` marks the sync group's partitions at
     * offset 0, below their checkpoints: the sync worker re-reads them from
     * 0 and applies everything again, ending with the same state, while the
     * room and stream workers load their checkpoints. */
    stop_workers(f);
    char bin[512], err[256], group[160], out_path[160], err_path[160];
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "stagehand-replay", err, sizeof err) < 0)
        fail_msg("%s", err);
    snprintf(group, sizeof group, "%ssync", f->s.group_prefix);
    snprintf(out_path, sizeof out_path, "%s/replay.out", f->s.dir);
    snprintf(err_path, sizeof err_path, "%s/replay.err", f->s.dir);
    const char *argv[] = {bin, "--brokers", f->s.brokers, "offsets", "--group", group, "--to-beginning", NULL};
    struct process replay;
    if (process_spawn(&replay, argv, stack_kafka_env(&f->s), out_path, err_path, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (process_wait(&replay, 60000) < 0) {
        process_stop(&replay, 1000);
        fail_msg("stagehand-replay did not finish");
    }
    assert_int_equal(replay.status, 0);
    start_workers(f, "SNAPSHOT_INTERVAL_S=1");
    wait_settled_workers(f, 1);
    char *after_c = settled_snapshot(f);
    assert_true(family(f, 2, "stagehand_worker_checkpoint_loads_total", "fallback") >= 1);
    assert_true(family(f, 2, "stagehand_worker_checkpoint_loads_total", "loaded") <= 0);
    assert_true(family(f, 2, "stagehand_worker_events_total", "applied") >= 8);
    for (int i = 0; i < 2; i++)
        assert_true(family(f, i, "stagehand_worker_checkpoint_loads_total", "loaded") >= 1);
    for (int i = 0; i < ROLES; i++) {
        json_t *now = dump(f, i), *st;
        size_t k;
        /* What the mark re-applied is remembered (reapply_until: the applied
         * offset before it); all the rest is as it was. */
        json_array_foreach (now, k, st)
            json_object_set_new(st, "reapply_until", json_integer(-1));
        if (!json_equal(now, dumps_a[i]))
            fail_msg("the %s worker's state after the re-apply mark differs", roles[i]);
        json_decref(now);
        json_decref(dumps_a[i]);
    }
    /* The emulator is not compared here: from a mark at offset 0 the
     * tombstoned streams' events count as not applied either (the mark
     * lowers the floor), so their Sync services are made and deleted again,
     * with or without checkpoints. */
    free(after_c);
    json_decref(b0);
    free(before);
    free(after_a);
    free(after_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoint_and_tail_equal_full_reread, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
