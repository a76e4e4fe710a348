/* The sync worker with the whole pipeline around it: dev broker, Twilio
 * emulator (whose webhooks reach the ingress), ingress, and the room,
 * stream and sync workers. The story of the reference backend, step by
 * step, checked in the emulator's Sync state: a host creates a stream,
 * viewers join and connect (a capped, backfilled viewers map and an exact
 * count), hands go up (capped, a refusal recorded), the host invites, the
 * invited viewer goes on stage, a viewer's Sync endpoint drops, the host
 * moves the speaker back to the audience (who joins again as a viewer),
 * another speaker leaves the stage by choice, a restart of the sync worker
 * writes nothing again, and the host leaves for good: the stream ends for
 * all. A second test: a crowd leaving in join order. */
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

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "timeutil.h"
#include "token.h"
#include "twilio.h"

#define ROLES 3

struct fixture {
    struct stack s;
    struct emulator_process emu;
    struct twilio_client *emu_client;
    struct process workers[ROLES];
    int metrics_port[ROLES];
    char public_url[64];
    char public_env[96], port_env[32];
    struct kafka_producer *producer;
    const char *stream; /* the stream expect_items and expect_doc look at */
};

static const char *const roles[ROLES] = {"room", "stream", "sync"};

static void start_worker(struct fixture *f, int i)
{
    char err[256];
    const char *env[] = {f->public_env, "VIEWERS_MAP_CAP=3", "RAISED_HANDS_CAP=2", "COUNT_INTERVAL_MS=200",
                         "HOST_GRACE_S=1", "SYNC_DEBOUNCE_MS=1000", "GRANT_REFRESH_S=5", NULL};
    f->metrics_port[i] = stack_start_worker(&f->s, roles[i], f->emu.base_url, env, &f->workers[i], err, sizeof err);
    if (f->metrics_port[i] < 0)
        fail_msg("%s", err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    int port = process_free_port();
    assert_true(port > 0);
    snprintf(f->public_url, sizeof f->public_url, "http://127.0.0.1:%d", port);
    snprintf(f->public_env, sizeof f->public_env, "PUBLIC_BASE_URL=%s", f->public_url);
    snprintf(f->port_env, sizeof f->port_env, "INGRESS_PORT=%d", port);
    const char *ingress_env[] = {f->public_env, f->port_env, "CREATE_WAIT_MS=20000", NULL};
    if (stack_start_broker(&f->s, err, sizeof err) < 0 || stack_start_ingress(&f->s, ingress_env, err, sizeof err) < 0 ||
        emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->emu_client = emulator_client(&f->emu, err, sizeof err);
    assert_non_null(f->emu_client);
    for (int i = 0; i < ROLES; i++)
        start_worker(f, i);
    struct kafka_producer_options popt = {.brokers = f->s.brokers};
    f->producer = kafka_producer_new(&popt, err, sizeof err);
    assert_non_null(f->producer);
    f->stream = "friday";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kafka_producer_close(f->producer, 5000);
    int status[ROLES];
    for (int i = 0; i < ROLES; i++)
        status[i] = process_stop(&f->workers[i], 20000);
    twilio_client_free(f->emu_client);
    int emulator_status = emulator_stop(&f->emu);
    int ingress_status = stack_stop_ingress(&f->s);
    int broker_status = stack_stop(&f->s);
    free(f);
    for (int i = 0; i < ROLES; i++)
        assert_int_equal(status[i], 0);
    assert_int_equal(emulator_status, 0);
    assert_int_equal(ingress_status, 0);
    assert_int_equal(broker_status, 0); /* the dev broker too: a clean stop, no leak */
    return 0;
}

/* --- helpers ---------------------------------------------------------------------------------- */

static json_t *emulator_get(struct fixture *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_SYNC, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

static long emulator_post(struct fixture *f, const char *path, const char *form, json_t **body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->emu.base_url, path);
    struct http_reply r;
    http_call("POST", url, NULL, form, strlen(form), &r);
    if (body)
        *body = json_loads(r.body, 0, NULL);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The stream's Sync service in the emulator's state (the newest with the
 * stream's friendly name), or NULL. */
static json_t *sync_service(struct fixture *f, const char *stream)
{
    char friendly[128];
    snprintf(friendly, sizeof friendly, "Live Video Stream %s", stream);
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *service;
    size_t i;
    json_array_foreach(json_object_get(state, "sync_services"), i, service) {
        const char *name = json_string_value(json_object_get(service, "friendly_name"));
        if (name && strcmp(name, friendly) == 0) {
            json_decref(found);
            found = json_incref(service);
        }
    }
    json_decref(state);
    return found;
}

static json_t *map_items(json_t *service, const char *map)
{
    json_t *m;
    size_t i;
    json_array_foreach(json_object_get(service, "maps"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "unique_name")), map) == 0)
            return json_object_get(m, "items");
    return NULL;
}

static json_t *document(json_t *service, const char *name)
{
    json_t *d;
    size_t i;
    json_array_foreach(json_object_get(service, "documents"), i, d)
        if (strcmp(json_string_value(json_object_get(d, "unique_name")), name) == 0)
            return json_object_get(d, "data");
    return NULL;
}

/* Waits until check(service) holds; returns the service (caller decrefs). */
static json_t *wait_sync(struct fixture *f, const char *stream, int (*check)(json_t *service, const void *arg),
                         const void *arg, const char *what)
{
    for (int i = 0; i < 300; i++) {
        json_t *service = sync_service(f, stream);
        if (service && check(service, arg))
            return service;
        json_decref(service);
        usleep(50 * 1000);
    }
    fail_msg("the Sync state never showed %s", what);
    return NULL;
}

struct item_check {
    const char *map;
    size_t count;
    const char *present;
    const char *absent;
};

static int items_are(json_t *service, const void *arg)
{
    const struct item_check *c = arg;
    json_t *items = map_items(service, c->map);
    return items && json_object_size(items) == c->count && (!c->present || json_object_get(items, c->present)) &&
           (!c->absent || !json_object_get(items, c->absent));
}

struct doc_check {
    const char *doc;
    const char *field;
    json_int_t value; /* integers; booleans as 0/1 */
};

static int doc_is(json_t *service, const void *arg)
{
    const struct doc_check *c = arg;
    json_t *data = document(service, c->doc);
    json_t *v = json_object_get(data, c->field);
    if (json_is_boolean(v))
        return json_is_true(v) == (c->value != 0);
    return json_is_integer(v) && json_integer_value(v) == c->value;
}

static void expect_items(struct fixture *f, const char *map, size_t count, const char *present, const char *absent)
{
    struct item_check c = {map, count, present, absent};
    char what[160];
    snprintf(what, sizeof what, "%zu items in %s", count, map);
    json_decref(wait_sync(f, f->stream, items_are, &c, what));
}

static void expect_doc(struct fixture *f, const char *doc, const char *field, json_int_t value)
{
    struct doc_check c = {doc, field, value};
    char what[160];
    snprintf(what, sizeof what, "%s.%s = %lld", doc, field, (long long)value);
    json_decref(wait_sync(f, f->stream, doc_is, &c, what));
}

static long api(struct fixture *f, const char *path, const char *body, json_t **answer)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    if (answer)
        *answer = json_loads(r.body, 0, NULL);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static char *token_for(const char *identity, const char *room, const char *service)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, room, service, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

/* A participant joins the emulator's room "friday" (or leaves). */
static void room_join(struct fixture *f, const char *identity)
{
    char *token = token_for(identity, "friday", NULL);
    char *form = malloc(strlen(token) + 8);
    sprintf(form, "Token=%s", token);
    assert_int_equal(emulator_post(f, "/_emulator/rooms/friday/participants", form, NULL), 201);
    free(form);
    free(token);
}

static void room_leave(struct fixture *f, const char *identity)
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/rooms/friday/participants/%s/leave", identity);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
}

static long sync_writes_total(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long total = 0;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(stats, "sync_writes"), key, v)
        total += (long)json_integer_value(v);
    json_decref(stats);
    return total;
}

static long sync_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "sync"));
    json_decref(stats);
    return n;
}

static double metric(struct fixture *f, int role, const char *sample)
{
    char url[128], line[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port[role]);
    snprintf(line, sizeof line, "\n%s ", sample);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    const char *at = strstr(r.body, line);
    double value = at ? atof(at + strlen(line)) : -1;
    http_reply_free(&r);
    return value;
}

/* Produces again every event of stream found on stagehand.events (same
 * key, value and id header). Returns how many. */
static int copy_stream_events(struct fixture *f, const char *stream)
{
    char err[256];
    struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = "stagehand.events"};
    struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
    assert_non_null(r);
    int copied = 0;
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        char id[64], type[64];
        if (msg->key_len == strlen(stream) && memcmp(msg->key, stream, msg->key_len) == 0 &&
            kafka_header_string(msg, "id", id, sizeof id) == 0 &&
            kafka_header_string(msg, "type", type, sizeof type) == 0) {
            struct kv_list headers;
            kv_init(&headers);
            kv_add(&headers, "id", id);
            kv_add(&headers, "type", type);
            struct kafka_record rec = {.topic = "stagehand.events", .partition = msg->partition, .key = msg->key,
                                       .key_len = msg->key_len, .value = msg->payload, .value_len = msg->len,
                                       .headers = &headers};
            assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
            kv_free(&headers);
            copied++;
        }
        rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
    return copied;
}

/* --- the story ------------------------------------------------------------------------------------ */

/* The status of identity's latest participant in the emulator's room
 * "friday" ("" when it never joined). */
static void participant_status(struct fixture *f, const char *identity, char *out, size_t outlen)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *room, *p;
    size_t i, j;
    out[0] = '\0';
    json_array_foreach(json_object_get(state, "rooms"), i, room) {
        if (strcmp(json_string_value(json_object_get(room, "unique_name")), "friday") != 0)
            continue;
        json_array_foreach(json_object_get(room, "participants"), j, p)
            if (strcmp(json_string_value(json_object_get(p, "identity")), identity) == 0)
                snprintf(out, outlen, "%s", json_string_value(json_object_get(p, "status")));
    }
    json_decref(state);
}

static void expect_participant(struct fixture *f, const char *identity, const char *status)
{
    char now[32] = "";
    for (int i = 0; i < 300; i++) {
        participant_status(f, identity, now, sizeof now);
        if (strcmp(now, status) == 0)
            return;
        usleep(50 * 1000);
    }
    fail_msg("participant %s is \"%s\", not \"%s\"", identity, now, status);
}

/* Produces one event about identity straight onto stagehand.events, as
 * the ingress would; does not wait for the ack. */
static void produce_event(struct fixture *f, const char *type, const char *stream, const char *identity)
{
    struct event ev;
    char err[256];
    assert_int_equal(event_init(&ev, type, stream, "api", identity, json_pack("{s:s}", "identity", identity), err,
                                sizeof err),
                     0);
    char *value = event_serialize(&ev);
    assert_non_null(value);
    struct kafka_record rec = {.topic = "stagehand.events", .partition = RD_KAFKA_PARTITION_UA, .key = stream,
                               .key_len = strlen(stream), .value = value, .value_len = strlen(value)};
    rd_kafka_resp_err_t rc = kafka_produce_waiting(f->producer, &rec, err, sizeof err);
    assert_int_equal(rc, 0);
    free(value);
    event_free(&ev);
}

static void wait_produced(struct fixture *f)
{
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
}

static void test_story(void **state)
{
    struct fixture *f = *state;
    json_t *answer, *service;

    /* The host creates the stream: answered once room, Sync and media are ready. */
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}", &answer), 200);
    assert_non_null(json_object_get(answer, "token"));
    json_decref(answer);
    service = sync_service(f, "friday");
    assert_non_null(service);
    assert_true(json_is_true(json_object_get(service, "acl_enabled")));
    assert_true(json_is_true(json_object_get(service, "reachability_webhooks_enabled")));
    char webhook[160];
    snprintf(webhook, sizeof webhook, "%s/sync-webhook?stream=friday", f->public_url);
    assert_string_equal(json_string_value(json_object_get(service, "webhook_url")), webhook);
    char service_sid[40];
    snprintf(service_sid, sizeof service_sid, "%s", json_string_value(json_object_get(service, "sid")));
    json_t *host = json_object_get(map_items(service, "speakers"), "alice");
    assert_true(json_is_true(json_object_get(host, "host")));
    assert_int_equal(json_object_size(map_items(service, "viewers")), 0);
    assert_int_equal(json_object_size(map_items(service, "raised_hands")), 0);
    assert_int_equal(json_integer_value(json_object_get(document(service, "stream"), "viewer_count")), 0);
    json_decref(service);
    room_join(f, "alice");

    /* Five viewers join and connect their players: three listed, five counted. */
    const char *viewers[] = {"v1", "v2", "v3", "v4", "v5"};
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"friday\"}", viewers[i]);
        assert_int_equal(api(f, "/join-stream-as-viewer", body, &answer), 200);
        assert_string_equal(json_string_value(json_object_get(answer, "room_sid")),
                            json_string_value(json_object_get(answer, "room_sid")));
        json_decref(answer);
        assert_int_equal(api(f, "/viewer-connected-to-player", body, NULL), 200);
    }
    expect_items(f, "viewers", 3, "v1", "v4");
    expect_doc(f, "stream", "viewer_count", 5);
    expect_doc(f, "user-v1", "speaker_invite", 0);

    /* Hands: two fit under the cap; a third is refused and told so. */
    assert_int_equal(api(f, "/raise-hand", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\",\"hand_raised\":true}", NULL), 200);
    assert_int_equal(api(f, "/raise-hand", "{\"user_identity\":\"v2\",\"stream_name\":\"friday\",\"hand_raised\":true}", NULL), 200);
    expect_items(f, "raised_hands", 2, "v1", NULL);
    produce_event(f, "hand.raised", "friday", "v3");
    wait_produced(f);
    expect_doc(f, "user-v3", "raised_hand_refused", 1);
    expect_items(f, "raised_hands", 2, "v2", "v3");

    /* The host invites v1, who goes on stage: off viewers (backfilled by
     * v4) and raised hands, onto speakers. */
    assert_int_equal(api(f, "/send-speaker-invite", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL), 200);
    expect_doc(f, "user-v1", "speaker_invite", 1);
    assert_int_equal(api(f, "/join-stream-as-speaker", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL), 200);
    room_join(f, "v1");
    expect_items(f, "speakers", 2, "v1", NULL);
    expect_items(f, "viewers", 3, "v4", "v1");
    expect_items(f, "raised_hands", 1, "v2", "v1");
    expect_doc(f, "stream", "viewer_count", 4);

    /* v2 closes the app: its Sync endpoint drops (debounced), its hand goes down. */
    char *token = token_for("v2", NULL, service_sid);
    char path[128], form[4096];
    json_t *endpoint = NULL;
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints", service_sid);
    snprintf(form, sizeof form, "Token=%s", token);
    assert_int_equal(emulator_post(f, path, form, &endpoint), 201);
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints/%s/disconnect", service_sid,
             json_string_value(json_object_get(endpoint, "endpoint_id")));
    json_decref(endpoint);
    free(token);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
    expect_items(f, "raised_hands", 0, NULL, "v2");
    expect_items(f, "viewers", 3, "v5", "v2");
    expect_doc(f, "stream", "viewer_count", 3);

    /* The host moves v1 back to the audience: out of the room, off
     * speakers. v1 joins again as a viewer: the invitation is cleared and,
     * the map being full (v3, v4, v5), v1 waits for a place. */
    assert_int_equal(api(f, "/remove-speaker", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL), 200);
    expect_participant(f, "v1", "disconnected");
    expect_items(f, "speakers", 1, "alice", "v1");
    assert_int_equal(api(f, "/join-stream-as-viewer", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL), 200);
    assert_int_equal(api(f, "/viewer-connected-to-player", "{\"user_identity\":\"v1\",\"stream_name\":\"friday\"}", NULL),
                     200);
    expect_doc(f, "user-v1", "speaker_invite", 0);
    expect_doc(f, "stream", "viewer_count", 4);
    expect_items(f, "viewers", 3, "v3", "v1");

    /* v3 is invited up, then leaves the stage by choice: v1 takes v3's
     * place in the map, and v3 is off speakers once gone. */
    assert_int_equal(api(f, "/send-speaker-invite", "{\"user_identity\":\"v3\",\"stream_name\":\"friday\"}", NULL), 200);
    assert_int_equal(api(f, "/join-stream-as-speaker", "{\"user_identity\":\"v3\",\"stream_name\":\"friday\"}", NULL), 200);
    room_join(f, "v3");
    expect_items(f, "speakers", 2, "v3", NULL);
    expect_items(f, "viewers", 3, "v1", "v3");
    expect_doc(f, "stream", "viewer_count", 3);
    room_leave(f, "v3");
    expect_participant(f, "v3", "disconnected");
    expect_items(f, "speakers", 1, "alice", "v3");

    /* A restart of the sync worker rebuilds and writes nothing again. It
     * only reads what memory cannot know: the three maps (what the last
     * rounds wrote) and the documents of the users whose document was ever
     * more than the default (v1, v2 and v3 had a hand or an invitation);
     * the viewers who only joined are known to have access from the
     * provisioning cursor of the state record. */
    usleep(500 * 1000); /* let the last state record go out */
    long writes = sync_writes_total(f), requests = sync_requests(f);
    assert_int_equal(process_stop(&f->workers[2], 20000), 0);
    start_worker(f, 2);
    for (int i = 0; i < 400 && metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"folded\"}") < 5; i++)
        usleep(50 * 1000);
    assert_true(metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"folded\"}") >= 5);
    usleep(500 * 1000);
    assert_int_equal(sync_writes_total(f), writes);
    assert_int_equal(sync_requests(f), requests + 3 + 3);
    requests += 6;

    /* Every event of the stream delivered a second time (the same ids at
     * new offsets, as a re-imported log would be): nothing is written. */
    int copied = copy_stream_events(f, "friday");
    assert_true(copied >= 20);
    for (int i = 0; i < 400 && metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"duplicate\"}") < 5; i++)
        usleep(50 * 1000);
    assert_true(metric(f, 2, "stagehand_worker_events_total{type=\"viewer.connected\",outcome=\"duplicate\"}") >= 5);
    usleep(500 * 1000);
    assert_int_equal(sync_writes_total(f), writes);
    assert_int_equal(sync_requests(f), requests);

    /* The host leaves and does not come back: the stream ends for all. */
    room_leave(f, "alice");
    for (int i = 0; i < 300; i++) {
        service = sync_service(f, "friday");
        if (!service)
            break;
        json_decref(service);
        usleep(50 * 1000);
    }
    /* Deleted once the end was asked for (or the room ended) and the media
     * ended; the room worker completes the room on its own time. */
    assert_null(sync_service(f, "friday"));
    json_t *state_json = NULL;
    const char *status = NULL;
    for (int tries = 0; tries < 300; tries++) {
        json_decref(state_json);
        state_json = emulator_get(f, "/_emulator/state");
        status = NULL;
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(state_json, "rooms"), i, r)
            if (strcmp(json_string_value(json_object_get(r, "unique_name")), "friday") == 0)
                status = json_string_value(json_object_get(r, "status"));
        if (status && strcmp(status, "completed") == 0)
            break;
        usleep(50 * 1000);
    }
    assert_non_null(status);
    assert_string_equal(status, "completed");
    json_t *ps = json_array_get(json_object_get(json_object_get(state_json, "media"), "player_streamers"), 0);
    assert_string_equal(json_string_value(json_object_get(ps, "status")), "ended");
    json_decref(state_json);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
}

/* A crowd leaves in the order it came, the worst order for a backfilled
 * map (each listed viewer's place would go to the next to leave): the
 * viewers rounds keep the writes to a few per round instead of two per
 * viewer, and the end state is exact. */
static void test_leave_burst(void **state)
{
    struct fixture *f = *state;
    enum { CROWD = 2000 };
    f->stream = "crowd";
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"crowd\"}", NULL), 200);
    char identity[32];
    for (int i = 0; i < CROWD; i++) {
        snprintf(identity, sizeof identity, "c%04d", i);
        produce_event(f, "viewer.connected", "crowd", identity);
    }
    wait_produced(f);
    expect_doc(f, "stream", "viewer_count", CROWD);
    expect_items(f, "viewers", 3, "c0000", "c0003"); /* the first three to come */
    expect_items(f, "viewers", 3, "c0002", NULL);
    long before = sync_writes_total(f);
    for (int i = 0; i < CROWD; i++) {
        snprintf(identity, sizeof identity, "c%04d", i);
        produce_event(f, "viewer.disconnected", "crowd", identity);
    }
    wait_produced(f);
    expect_doc(f, "stream", "viewer_count", 0);
    expect_items(f, "viewers", 0, NULL, NULL);
    long writes = sync_writes_total(f) - before;
    assert_true(writes >= 4);             /* three items gone, the count written */
    assert_true(writes < CROWD / 10);     /* backfilling each leave would take 2 x CROWD */
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_story, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_burst, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
