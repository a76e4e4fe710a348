/* build/stagehand-replay against the dev broker, the emulator and a sync
 * worker: a stream's log exported and imported twice changes nothing in
 * Sync (state and write counts); the sync group made to apply everything
 * again from the beginning leaves what clients see as it was, and is refused while a
 * worker runs; dead letters are listed with their reasons and re-driven
 * with new ids once the fault is gone; bad input is refused whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define STORY_EVENTS 32 /* what produce_story() produces, all handled by the sync worker */

/* Where stagehand-replay's output goes: the stack's scratch directory. */
static char out_path[128], err_path[128];

/* Broker, emulator, the sync worker (worker 0) and a producer; no ingress. */
static int setup(void **state)
{
    static const char *const env[] = {"COUNT_INTERVAL_MS=200", "VIEWERS_MAP_CAP=5", "RAISED_HANDS_CAP=3",
                                      "MAX_ATTEMPTS=3", NULL};
    struct fixture_options o = {.broker = 1, .emulator = 1, .workers = {{"sync", env}}, .producer = 1};
    fixture_setup(state, &o);
    struct fixture *f = *state;
    snprintf(out_path, sizeof out_path, "%s/replay.out", f->s.dir);
    snprintf(err_path, sizeof err_path, "%s/replay.err", f->s.dir);
    return 0;
}

/* --- helpers ---------------------------------------------------------------------------------- */

static void produce_raw(struct fixture *f, const char *stream, const char *value)
{
    char err[256];
    struct kafka_record rec = {.topic = f->s.topic_events,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = stream,
                               .key_len = strlen(stream),
                               .value = value,
                               .value_len = strlen(value)};
    assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 20);
}

static void produce(struct fixture *f, const char *type, const char *stream, const char *actor, json_t *data)
{
    struct event ev;
    char err[256];
    if (event_init(&ev, type, stream, "api", actor, data, err, sizeof err) < 0)
        fail_msg("%s", err);
    char *value = event_serialize(&ev);
    assert_non_null(value);
    produce_raw(f, stream, value);
    free(value);
    event_free(&ev);
}

/* A stream's life in 32 events: created, twelve viewers join and connect,
 * four hands go up (the cap is three: one refusal), three viewers leave. */
static void produce_story(struct fixture *f, const char *stream)
{
    char who[16];
    produce(f, "stream.create_requested", stream, "alice", json_pack("{s:s}", "host", "alice"));
    for (int i = 0; i < 12; i++) {
        snprintf(who, sizeof who, "v%02d", i);
        produce(f, "user.joined", stream, who, json_pack("{s:s, s:s}", "identity", who, "role", "viewer"));
        produce(f, "viewer.connected", stream, who, json_pack("{s:s}", "identity", who));
    }
    for (int i = 0; i < 4; i++) {
        snprintf(who, sizeof who, "v%02d", i);
        produce(f, "hand.raised", stream, who, json_pack("{s:s}", "identity", who));
    }
    for (int i = 9; i < 12; i++) {
        snprintf(who, sizeof who, "v%02d", i);
        produce(f, "viewer.disconnected", stream, who, json_pack("{s:s}", "identity", who));
    }
}

/* Every event the worker counted, whatever the outcome. */
static double events_handled(struct fixture *f)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port[0]);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    double total = 0;
    static const char sample[] = "\nstagehand_worker_events_total{";
    for (const char *at = strstr(r.body, sample); at; at = strstr(at + 1, sample)) {
        const char *space = strchr(at + 1, ' ');
        if (space)
            total += atof(space + 1);
    }
    http_reply_free(&r);
    return total;
}

static void wait_handled(struct fixture *f, double at_least)
{
    for (int i = 0; i < 600 && events_handled(f) < at_least; i++)
        usleep(50 * 1000);
    assert_true(events_handled(f) >= at_least);
    usleep(1000 * 1000); /* the viewers rounds and count writes that follow */
}

/* Sync as the emulator holds it, with its write count: what must not move. */
struct snapshot {
    char *services;
    long writes;
};

static struct snapshot take_snapshot(struct fixture *f)
{
    struct snapshot s = {NULL, 0};
    json_t *state = emulator_get(f, "/_emulator/state");
    s.services = json_dumps(json_object_get(state, "sync_services"), JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(state);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(stats, "sync_writes"), key, v)
        s.writes += (long)json_integer_value(v);
    json_decref(stats);
    assert_non_null(s.services);
    return s;
}

/* What clients read of Sync (map items and documents' data, without
 * revisions and dates), as sorted JSON. */
static char *client_view(struct fixture *f)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *view = json_object();
    size_t i, j;
    json_t *service, *obj;
    json_array_foreach (json_object_get(state, "sync_services"), i, service) {
        json_array_foreach (json_object_get(service, "maps"), j, obj)
            json_object_set(view, json_string_value(json_object_get(obj, "unique_name")),
                            json_object_get(obj, "items"));
        json_array_foreach (json_object_get(service, "documents"), j, obj)
            json_object_set(view, json_string_value(json_object_get(obj, "unique_name")), json_object_get(obj, "data"));
    }
    char *text = json_dumps(view, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(view);
    json_decref(state);
    assert_non_null(text);
    return text;
}

static void assert_unchanged(struct fixture *f, const struct snapshot *before)
{
    struct snapshot now = take_snapshot(f);
    assert_int_equal(now.writes, before->writes);
    assert_string_equal(now.services, before->services);
    free(now.services);
}

/* Runs stagehand-replay with args (NULL-terminated); stdout and stderr go
 * to the fixture's files. Returns the exit status. */
static int run_replay(struct fixture *f, const char *const args[])
{
    char bin[512], err[256];
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "stagehand-replay", err, sizeof err) < 0)
        fail_msg("%s", err);
    const char *argv[16] = {bin, "--brokers", f->s.brokers};
    int n = 3;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct process p;
    if (process_spawn(&p, argv, stack_kafka_env(&f->s), out_path, err_path, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (process_wait(&p, 60000) < 0) {
        process_stop(&p, 1000);
        fail_msg("stagehand-replay did not finish");
    }
    return p.status;
}

/* POSTs a fault setting to the emulator's own API. */
static void set_faults(struct fixture *f, const char *form)
{
    char url[256];
    snprintf(url, sizeof url, "%s/_emulator/faults", f->emu.base_url);
    struct http_reply r;
    http_call("POST", url, NULL, form, strlen(form), &r);
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

static char *replay_output(struct fixture *f, int err)
{
    (void)f; /* the paths are the stack's, set in setup */
    char *text = process_read_file(err ? err_path : out_path, NULL);
    assert_non_null(text);
    return text;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_import_twice_changes_nothing(void **state)
{
    struct fixture *f = *state;
    produce_story(f, "gala");
    wait_handled(f, STORY_EVENTS);
    struct snapshot before = take_snapshot(f);
    assert_true(before.writes > 20);

    char export_path[160];
    snprintf(export_path, sizeof export_path, "%s/gala.ndjson", f->s.dir);
    assert_int_equal(run_replay(f, (const char *const[]){"export", "--stream", "gala", NULL}), 0);
    char *exported = replay_output(f, 0);
    assert_int_equal(count_lines(exported), STORY_EVENTS + 1); /* and the worker's own sync.ready */
    FILE *out = fopen(export_path, "w");
    assert_non_null(out);
    fputs(exported, out);
    fclose(out);
    free(exported);

    for (int round = 1; round <= 2; round++) {
        assert_int_equal(run_replay(f, (const char *const[]){"import", export_path, NULL}), 0);
        char *said = replay_output(f, 0);
        assert_non_null(strstr(said, "imported 33 events"));
        free(said);
        wait_handled(f, STORY_EVENTS * (round + 1));
        assert_unchanged(f, &before);
    }
    free(before.services);
}

static void test_reapply_from_beginning_leaves_sync_as_it_was(void **state)
{
    struct fixture *f = *state;
    produce_story(f, "gala");
    wait_handled(f, STORY_EVENTS);
    struct snapshot before = take_snapshot(f);
    char *before_view = client_view(f);
    char group[160];
    snprintf(group, sizeof group, "%ssync", f->s.group_prefix);

    /* Refused while a worker of the group runs. */
    assert_int_not_equal(run_replay(f, (const char *const[]){"offsets", "--group", group, "--to-beginning", NULL}), 0);
    char *said = replay_output(f, 1);
    if (!strstr(said, "stop its workers first"))
        fail_msg("stagehand-replay said: %s", said);
    free(said);

    assert_int_equal(process_stop(&f->workers[0], 20000), 0);
    assert_int_equal(run_replay(f, (const char *const[]){"offsets", "--group", group, "--to-beginning", NULL}), 0);
    said = replay_output(f, 0);
    assert_non_null(strstr(said, "applies again from offset 0"));
    free(said);
    fixture_restart_worker(f, 0);
    /* Every event applied again, not only folded. Clients see the same
     * Sync, and nothing is written again: the sync worker folds the events
     * and then brings Sync to the result, reading the maps and the
     * documents it touched before writing, and Sync already holds it. */
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"applied\"}", 12);
    wait_handled(f, STORY_EVENTS);
    char *view = client_view(f);
    assert_string_equal(view, before_view);
    free(view);
    struct snapshot now = take_snapshot(f);
    assert_int_equal(now.writes, before.writes);
    free(now.services);
    free(before_view);
    free(before.services);
}

static void test_dlq_list_and_redrive(void **state)
{
    struct fixture *f = *state;
    /* Not an event at all: it goes to the DLQ at once and cannot come back. */
    produce_raw(f, "gala", "{\"not\":\"an event\"}");
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"invalid\",outcome=\"dlq\"}", 1);
    /* A create that fails at Twilio three times in a row: in the DLQ. */
    set_faults(f, "SyncErrorRate=1");
    produce(f, "stream.create_requested", "gala", "alice", json_pack("{s:s}", "host", "alice"));
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"stream.create_requested\",outcome=\"dlq\"}", 1);
    set_faults(f, "SyncErrorRate=0");

    assert_int_equal(run_replay(f, (const char *const[]){"dlq", "list", NULL}), 0);
    char *listed = replay_output(f, 0);
    assert_int_equal(count_lines(listed), 2);
    json_t *first = json_loads(listed, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(json_object_get(first, "headers"), "error_code")),
                        "invalid_event");
    json_decref(first);
    const char *second_line = strchr(listed, '\n') + 1;
    json_t *second = json_loads(second_line, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(second);
    json_t *headers = json_object_get(second, "headers");
    assert_string_equal(json_string_value(json_object_get(headers, "role")), "sync");
    assert_string_equal(json_string_value(json_object_get(headers, "attempts")), "3");
    const char *old_id = json_string_value(json_object_get(json_object_get(second, "event"), "id"));
    assert_non_null(old_id);
    char kept_id[EVENT_ID_LEN + 1];
    snprintf(kept_id, sizeof kept_id, "%s", old_id);
    json_decref(second);
    free(listed);

    /* A bad selection is refused. */
    assert_int_equal(run_replay(f, (const char *const[]){"dlq", "redrive", NULL}), 2);
    /* Everything: the invalid entry is reported and left, the create comes back with a new id. */
    assert_int_equal(run_replay(f, (const char *const[]){"dlq", "redrive", "--all", NULL}), 0);
    char *said = replay_output(f, 0);
    assert_non_null(strstr(said, "redriven 1 entries"));
    free(said);
    said = replay_output(f, 1);
    assert_non_null(strstr(said, "not a valid event"));
    free(said);
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"stream.create_requested\",outcome=\"applied\"}", 1);
    json_t *st = emulator_get(f, "/_emulator/state");
    assert_int_equal(json_array_size(json_object_get(st, "sync_services")), 1);
    json_decref(st);

    /* The re-driven event is on stagehand.events under a new id: the log
     * holds the create twice, its old id once. */
    assert_int_equal(run_replay(f, (const char *const[]){"export", "--stream", "gala", NULL}), 0);
    char *exported = replay_output(f, 0);
    assert_int_equal(count_of(exported, "\"stream.create_requested\""), 2);
    assert_int_equal(count_of(exported, kept_id), 1);
    free(exported);
}

static void test_bad_input_is_refused_whole(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/bad.ndjson", f->s.dir);
    struct event ev;
    char err[256];
    assert_int_equal(event_init(&ev, "viewer.connected", "gala", "api", "v1", json_pack("{s:s}", "identity", "v1"), err,
                                sizeof err),
                     0);
    char *good = event_serialize(&ev);
    event_free(&ev);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "%s\n{\"id\":\"nope\"}\n%s\n", good, good);
    fclose(out);
    free(good);
    assert_int_equal(run_replay(f, (const char *const[]){"import", path, NULL}), 2);
    char *said = replay_output(f, 1);
    assert_non_null(strstr(said, "line 2:"));
    assert_non_null(strstr(said, "nothing imported"));
    free(said);
    assert_int_equal(run_replay(f, (const char *const[]){"export", NULL}), 0);
    char *exported = replay_output(f, 0);
    assert_int_equal(count_lines(exported), 0);
    free(exported);
    assert_int_equal(run_replay(f, (const char *const[]){"export", "--since", "yesterday", NULL}), 2);
    assert_int_equal(run_replay(f, (const char *const[]){"offsets", "--group", "stagehand-sync", NULL}), 2);
    assert_int_equal(run_replay(f, (const char *const[]){"unknown", NULL}), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_twice_changes_nothing, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reapply_from_beginning_leaves_sync_as_it_was, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_list_and_redrive, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_is_refused_whole, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
