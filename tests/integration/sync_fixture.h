/* The fixture of the tests that watch the sync worker with the whole
 * pipeline around it (cmocka; header-only, static functions so each test
 * uses what it needs): dev broker, Twilio emulator (whose webhooks reach
 * the ingress), ingress, and the room, stream and sync workers, with
 * helpers to read the emulator's Sync state, call the client API, join
 * the room and produce events. A test sets worker_env (and emulator_args)
 * before setup. */
#ifndef STAGEHAND_SYNC_FIXTURE_H
#define STAGEHAND_SYNC_FIXTURE_H

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

/* The workers' settings of the test (NULL-terminated "NAME=value"), and
 * the emulator's extra arguments (NULL-terminated, or NULL). */
static const char *const *worker_env;
static const char *const *emulator_args;

static const char *const roles[ROLES] = {"room", "stream", "sync"};

static inline void start_worker(struct fixture *f, int i)
{
    char err[256];
    const char *env[32] = {f->public_env};
    for (size_t n = 1; worker_env && worker_env[n - 1] && n < 31; n++)
        env[n] = worker_env[n - 1];
    f->metrics_port[i] = stack_start_worker(&f->s, roles[i], f->emu.base_url, env, &f->workers[i], err, sizeof err);
    if (f->metrics_port[i] < 0)
        fail_msg("%s", err);
}

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    int port = process_free_port();
    assert_true(port > 0);
    snprintf(f->public_url, sizeof f->public_url, "http://127.0.0.1:%d", port);
    snprintf(f->public_env, sizeof f->public_env, "PUBLIC_BASE_URL=%s", f->public_url);
    snprintf(f->port_env, sizeof f->port_env, "INGRESS_PORT=%d", port);
    const char *ingress_env[32] = {f->public_env, f->port_env, "CREATE_WAIT_MS=20000"};
    for (size_t n = 3; worker_env && worker_env[n - 3] && n < 31; n++)
        ingress_env[n] = worker_env[n - 3]; /* the caps and tiers the ingress shares */
    if (stack_start_broker(&f->s, err, sizeof err) < 0 || stack_start_ingress(&f->s, ingress_env, err, sizeof err) < 0 ||
        emulator_start(&f->emu, emulator_args, err, sizeof err) < 0)
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

static inline int teardown(void **state)
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

static inline json_t *emulator_get(struct fixture *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_SYNC, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

static inline long emulator_post(struct fixture *f, const char *path, const char *form, json_t **body)
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
static inline json_t *sync_service(struct fixture *f, const char *stream)
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

static inline json_t *map_items(json_t *service, const char *map)
{
    json_t *m;
    size_t i;
    json_array_foreach(json_object_get(service, "maps"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "unique_name")), map) == 0)
            return json_object_get(m, "items");
    return NULL;
}

static inline json_t *document(json_t *service, const char *name)
{
    json_t *d;
    size_t i;
    json_array_foreach(json_object_get(service, "documents"), i, d)
        if (strcmp(json_string_value(json_object_get(d, "unique_name")), name) == 0)
            return json_object_get(d, "data");
    return NULL;
}

/* Waits until check(service) holds; returns the service (caller decrefs). */
static inline json_t *wait_sync(struct fixture *f, const char *stream, int (*check)(json_t *service, const void *arg),
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

static inline int items_are(json_t *service, const void *arg)
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

static inline int doc_is(json_t *service, const void *arg)
{
    const struct doc_check *c = arg;
    json_t *data = document(service, c->doc);
    json_t *v = json_object_get(data, c->field);
    if (json_is_boolean(v))
        return json_is_true(v) == (c->value != 0);
    return json_is_integer(v) && json_integer_value(v) == c->value;
}

static inline void expect_items(struct fixture *f, const char *map, size_t count, const char *present, const char *absent)
{
    struct item_check c = {map, count, present, absent};
    char what[160];
    snprintf(what, sizeof what, "%zu items in %s", count, map);
    json_decref(wait_sync(f, f->stream, items_are, &c, what));
}

static inline void expect_doc(struct fixture *f, const char *doc, const char *field, json_int_t value)
{
    struct doc_check c = {doc, field, value};
    char what[160];
    snprintf(what, sizeof what, "%s.%s = %lld", doc, field, (long long)value);
    json_decref(wait_sync(f, f->stream, doc_is, &c, what));
}

static inline long api(struct fixture *f, const char *path, const char *body, json_t **answer)
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

static inline char *token_for(const char *identity, const char *room, const char *service)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, room, service, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

/* A participant joins the emulator's room of f->stream (or leaves). */
static inline void room_join(struct fixture *f, const char *identity)
{
    char *token = token_for(identity, f->stream, NULL);
    char *form = malloc(strlen(token) + 8), path[256];
    assert_non_null(form);
    sprintf(form, "Token=%s", token);
    snprintf(path, sizeof path, "/_emulator/rooms/%s/participants", f->stream);
    assert_int_equal(emulator_post(f, path, form, NULL), 201);
    free(form);
    free(token);
}

static inline void room_leave(struct fixture *f, const char *identity)
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/rooms/%s/participants/%s/leave", f->stream, identity);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
}

static inline long sync_writes_total(struct fixture *f)
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

static inline long sync_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "sync"));
    json_decref(stats);
    return n;
}

static inline double metric(struct fixture *f, int role, const char *sample)
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
static inline int copy_stream_events(struct fixture *f, const char *stream)
{
    char err[256];
    struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_events};
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
            struct kafka_record rec = {.topic = f->s.topic_events, .partition = msg->partition, .key = msg->key,
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

/* The status of identity's latest participant in the emulator's room of
 * f->stream ("" when it never joined). */
static inline void participant_status(struct fixture *f, const char *identity, char *out, size_t outlen)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *room, *p;
    size_t i, j;
    out[0] = '\0';
    json_array_foreach(json_object_get(state, "rooms"), i, room) {
        if (strcmp(json_string_value(json_object_get(room, "unique_name")), f->stream) != 0)
            continue;
        json_array_foreach(json_object_get(room, "participants"), j, p)
            if (strcmp(json_string_value(json_object_get(p, "identity")), identity) == 0)
                snprintf(out, outlen, "%s", json_string_value(json_object_get(p, "status")));
    }
    json_decref(state);
}

static inline void expect_participant(struct fixture *f, const char *identity, const char *status)
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
static inline void produce_event(struct fixture *f, const char *type, const char *stream, const char *identity)
{
    struct event ev;
    char err[256];
    assert_int_equal(event_init(&ev, type, stream, "api", identity, json_pack("{s:s}", "identity", identity), err,
                                sizeof err),
                     0);
    char *value = event_serialize(&ev);
    assert_non_null(value);
    struct kafka_record rec = {.topic = f->s.topic_events, .partition = RD_KAFKA_PARTITION_UA, .key = stream,
                               .key_len = strlen(stream), .value = value, .value_len = strlen(value)};
    rd_kafka_resp_err_t rc = kafka_produce_waiting(f->producer, &rec, err, sizeof err);
    assert_int_equal(rc, 0);
    free(value);
    event_free(&ev);
}

static inline void wait_produced(struct fixture *f)
{
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
}

#endif
