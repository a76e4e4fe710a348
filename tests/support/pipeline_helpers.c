/* Helpers of the tests that watch the workers (see pipeline_helpers.h). */
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

#include "event.h"
#include "pipeline_helpers.h"
#include "timeutil.h"
#include "token.h"
#include "twilio.h"

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

json_t *emulator_get(struct fixture *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_VIDEO, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

long video_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "video"));
    json_decref(stats);
    return n;
}

long media_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "media"));
    json_decref(stats);
    return n;
}

long sync_requests(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "sync"));
    json_decref(stats);
    return n;
}

long sync_writes_total(struct fixture *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long total = 0;
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(stats, "sync_writes"), key, v)
        total += (long)json_integer_value(v);
    json_decref(stats);
    return total;
}

json_t *find_room(struct fixture *f, const char *name)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *room;
    size_t i;
    json_array_foreach (json_object_get(state, "rooms"), i, room) {
        const char *unique = json_string_value(json_object_get(room, "unique_name"));
        if (unique && strcmp(unique, name) == 0) {
            json_decref(found);
            found = json_incref(room);
        }
    }
    json_decref(state);
    return found;
}

json_t *wait_room(struct fixture *f, const char *name, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *room = find_room(f, name);
        const char *now = json_string_value(json_object_get(room, "status"));
        if (now && strcmp(now, status) == 0)
            return room;
        json_decref(room);
        usleep(50 * 1000);
    }
    fail_msg("room %s never became %s", name, status);
    return NULL;
}

json_t *media_resource(struct fixture *f, const char *kind, const char *sid)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *one;
    size_t i;
    json_array_foreach (json_object_get(json_object_get(state, "media"), kind), i, one) {
        const char *s = json_string_value(json_object_get(one, "sid"));
        if (s && strcmp(s, sid) == 0)
            found = json_incref(one);
    }
    json_decref(state);
    assert_non_null(found);
    return found;
}

void wait_media_status(struct fixture *f, const char *kind, const char *sid, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *r = media_resource(f, kind, sid);
        int done = strcmp(json_string_value(json_object_get(r, "status")), status) == 0;
        json_decref(r);
        if (done)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s %s never became %s", kind, sid, status);
}

long emulator_post(struct fixture *f, const char *path, const char *form, json_t **body)
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

char *token_for(const char *identity, const char *room, const char *service)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, room, service, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

void room_join(struct fixture *f, const char *identity)
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

void room_leave(struct fixture *f, const char *identity)
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/rooms/%s/participants/%s/leave", f->stream, identity);
    assert_int_equal(emulator_post(f, path, "", NULL), 200);
}

void participant_status(struct fixture *f, const char *identity, char *out, size_t outlen)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *room, *p;
    size_t i, j;
    out[0] = '\0';
    json_array_foreach (json_object_get(state, "rooms"), i, room) {
        if (strcmp(json_string_value(json_object_get(room, "unique_name")), f->stream) != 0)
            continue;
        json_array_foreach (json_object_get(room, "participants"), j, p)
            if (strcmp(json_string_value(json_object_get(p, "identity")), identity) == 0)
                snprintf(out, outlen, "%s", json_string_value(json_object_get(p, "status")));
    }
    json_decref(state);
}

void expect_participant(struct fixture *f, const char *identity, const char *status)
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

json_t *sync_service(struct fixture *f, const char *stream)
{
    char friendly[128];
    snprintf(friendly, sizeof friendly, "Live Video Stream %s", stream);
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *service;
    size_t i;
    json_array_foreach (json_object_get(state, "sync_services"), i, service) {
        const char *name = json_string_value(json_object_get(service, "friendly_name"));
        if (name && strcmp(name, friendly) == 0) {
            json_decref(found);
            found = json_incref(service);
        }
    }
    json_decref(state);
    return found;
}

json_t *map_items(json_t *service, const char *map)
{
    json_t *m;
    size_t i;
    json_array_foreach (json_object_get(service, "maps"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "unique_name")), map) == 0)
            return json_object_get(m, "items");
    return NULL;
}

json_t *document(json_t *service, const char *name)
{
    json_t *d;
    size_t i;
    json_array_foreach (json_object_get(service, "documents"), i, d)
        if (strcmp(json_string_value(json_object_get(d, "unique_name")), name) == 0)
            return json_object_get(d, "data");
    return NULL;
}

json_t *wait_sync(struct fixture *f, const char *stream, int (*check)(json_t *service, const void *arg),
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

void expect_items(struct fixture *f, const char *map, size_t count, const char *present, const char *absent)
{
    struct item_check c = {map, count, present, absent};
    char what[160];
    snprintf(what, sizeof what, "%zu items in %s", count, map);
    json_decref(wait_sync(f, f->stream, items_are, &c, what));
}

void expect_doc(struct fixture *f, const char *doc, const char *field, json_int_t value)
{
    struct doc_check c = {doc, field, value};
    char what[160];
    snprintf(what, sizeof what, "%s.%s = %lld", doc, field, (long long)value);
    json_decref(wait_sync(f, f->stream, doc_is, &c, what));
}

long post_async(struct fixture *f, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json",
                                          "Prefer: respond-async", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

long api(struct fixture *f, const char *path, const char *body, json_t **answer)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    if (answer)
        *answer = json_loads(r.body, 0, NULL);
    long status = r.status;
    if (status == 503 && !r.retry_after[0])
        status = -503; /* a 503 must say when to come back */
    http_reply_free(&r);
    return status;
}

rd_kafka_message_t *next_of_type(struct fixture *f, const char *type)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(f->events, 50);
        char header[64];
        if (msg && !msg->err && kafka_header_string(msg, "type", header, sizeof header) == 0 &&
            strcmp(header, type) == 0)
            return msg;
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    fail_msg("no %s event came", type);
    return NULL;
}

json_t *wait_state(struct fixture *f, const char *key, const char *status)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        char err[256];
        struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_state};
        struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
        assert_non_null(r);
        json_t *last = NULL;
        while (!kafka_reader_caught_up(r)) {
            rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
            if (msg && msg->key_len == strlen(key) && memcmp(msg->key, key, msg->key_len) == 0) {
                json_decref(last);
                last = json_loadb(msg->payload, msg->len, 0, NULL);
            }
            if (msg)
                rd_kafka_message_destroy(msg);
        }
        kafka_reader_close(r);
        const char *now = json_string_value(json_object_get(last, "status"));
        if (now && strcmp(now, status) == 0)
            return last;
        json_decref(last);
        usleep(100 * 1000);
    }
    fail_msg("state record %s never said %s", key, status);
    return NULL;
}

void produce_event(struct fixture *f, const char *type, const char *stream, const char *identity)
{
    struct event ev;
    char err[256];
    assert_int_equal(event_init(&ev, type, stream, "api", identity, json_pack("{s:s}", "identity", identity), err,
                                sizeof err),
                     0);
    char *value = event_serialize(&ev);
    assert_non_null(value);
    struct kafka_record rec = {.topic = f->s.topic_events,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = stream,
                               .key_len = strlen(stream),
                               .value = value,
                               .value_len = strlen(value)};
    rd_kafka_resp_err_t rc = kafka_produce_waiting(f->producer, &rec, err, sizeof err);
    assert_int_equal(rc, 0);
    free(value);
    event_free(&ev);
}

void wait_produced(struct fixture *f)
{
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 50);
}

int copy_stream_events(struct fixture *f, const char *stream)
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
            struct kafka_record rec = {.topic = f->s.topic_events,
                                       .partition = msg->partition,
                                       .key = msg->key,
                                       .key_len = msg->key_len,
                                       .value = msg->payload,
                                       .value_len = msg->len,
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

/* --- setups ------------------------------------------------------------------------------------ */

#define LIST_MAX 32

/* base then extra into out (static storage: the fixture keeps pointers to it). */
static const char *const *joined(const char **out, const char *const base[], const char *const extra[])
{
    size_t n = 0;
    for (size_t i = 0; base && base[i] && n < LIST_MAX - 1; i++)
        out[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && n < LIST_MAX - 1; i++)
        out[n++] = extra[i];
    out[n] = NULL;
    return out;
}

void whole_pipeline_options(struct fixture_options *o, const char *const env[], const char *const ingress_env[])
{
    static const char *const ingress_base[] = {"CREATE_WAIT_MS=20000", "PRODUCE_TIMEOUT_MS=1000",
                                               "RATE_LIMIT_IP_PER_S=0", "RATE_LIMIT_IDENTITY_PER_S=0", NULL};
    static const char *const worker_env[] = {"VIEWERS_MAP_CAP=20", "COUNT_INTERVAL_MS=200", NULL};
    static const char *ingress[LIST_MAX];
    *o = (struct fixture_options){.broker = 1,
                                  .ingress = FIXTURE_INGRESS_PUBLIC,
                                  .ingress_env = joined(ingress, ingress_base, ingress_env),
                                  .emulator = 1,
                                  .workers = {{"room", worker_env}, {"stream", worker_env}, {"sync", worker_env}},
                                  .env = env,
                                  .producer = 1};
}

int setup_whole_pipeline(void **state, const char *const env[], const char *const ingress_env[])
{
    struct fixture_options o;
    whole_pipeline_options(&o, env, ingress_env);
    return fixture_setup(state, &o);
}

int setup_sync_pipeline(void **state, const char *const env[], const char *const emulator_args[])
{
    static const char *const ingress_env[] = {"CREATE_WAIT_MS=20000", NULL};
    struct fixture_options o = {.broker = 1,
                                .ingress = FIXTURE_INGRESS_PUBLIC,
                                .ingress_env = ingress_env,
                                .emulator = 1,
                                .emulator_args = emulator_args,
                                .workers = {{"room", NULL}, {"stream", NULL}, {"sync", NULL}},
                                .env = env,
                                .producer = 1};
    return fixture_setup(state, &o);
}

char *emulator_snapshot(struct fixture *f)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *stats = emulator_get(f, "/_emulator/stats");
    json_object_del(stats, "webhooks");
    json_t *both = json_pack("{s:o, s:o}", "state", state, "stats", stats);
    char *text = json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(both);
    assert_non_null(text);
    return text;
}

char *settled_snapshot(struct fixture *f)
{
    char *last = emulator_snapshot(f);
    int64_t same_since = time_monotonic_ms();
    for (int i = 0; i < 600 && time_monotonic_ms() - same_since < 2000; i++) {
        usleep(100 * 1000);
        char *now = emulator_snapshot(f);
        if (strcmp(now, last) != 0) {
            free(last);
            last = now;
            same_since = time_monotonic_ms();
        } else {
            free(now);
        }
    }
    return last;
}

json_t *named(json_t *service, const char *kind, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach (json_object_get(service, kind), i, o) {
        const char *unique = json_string_value(json_object_get(o, "unique_name"));
        if (unique && strcmp(unique, name) == 0)
            return o;
    }
    return NULL;
}

int count_named(json_t *list, const char *field, const char *value)
{
    int n = 0;
    size_t i;
    json_t *o;
    json_array_foreach (list, i, o) {
        const char *v = json_string_value(json_object_get(o, field));
        n += v && strcmp(v, value) == 0;
    }
    return n;
}
