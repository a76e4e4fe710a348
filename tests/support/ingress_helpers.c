/* Helpers of the tests that drive the ingress alone (see ingress_helpers.h). */
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

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "encode.h"
#include "form.h"
#include "ingress_helpers.h"
#include "signature.h"
#include "timeutil.h"

/* How long expect_no_event keeps reading before it asks Kafka where each
 * partition ends: the ingress answers an accepted request only after
 * Kafka's ack, so an event from a request answered earlier is in Kafka
 * well within this (the producer lingers 1 ms). */
#define LATE_EVENT_MS 500

const char *const json_headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};

int setup_ingress(void **state)
{
    return fixture_setup_ingress(state, NULL);
}

int setup_ingress_jwt(void **state)
{
    static const char *const env[] = {"AUTH_MODE=jwt", "AUTH_JWT_SECRET=" JWT_SECRET, NULL};
    return fixture_setup_ingress(state, env);
}

rd_kafka_message_t *next_event(struct fixture *f, int timeout_ms)
{
    int64_t until = time_monotonic_ms() + timeout_ms;
    while (time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(f->events, 50);
        if (msg && !msg->err) {
            if (msg->partition >= 0 && msg->partition < f->partitions)
                f->read_to[msg->partition] = msg->offset + 1;
            return msg;
        }
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    return NULL;
}

/* Where each partition of stagehand.events ends now, as Kafka says. */
static void events_end_offsets(struct fixture *f, int64_t ends[FIXTURE_PARTITIONS_MAX])
{
    rd_kafka_t *rk = kafka_producer_handle(f->producer);
    for (int p = 0; p < f->partitions; p++) {
        int64_t low = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, f->s.topic_events, p, &low, &ends[p], 5000);
        if (err)
            fail_msg("cannot ask where partition %d of stagehand.events ends: %s", p, rd_kafka_err2str(err));
    }
}

int64_t events_in_kafka(struct fixture *f)
{
    int64_t ends[FIXTURE_PARTITIONS_MAX], total = 0;
    events_end_offsets(f, ends);
    for (int p = 0; p < f->partitions; p++)
        total += ends[p];
    return total;
}

json_t *expect_event(struct fixture *f, const char *type, const char *stream, char id[EVENT_ID_LEN + 1])
{
    rd_kafka_message_t *msg = next_event(f, 10000);
    if (!msg)
        fail_msg("no %s event came", type);
    struct event ev;
    char err[256], header_id[64] = "", header_type[64] = "", traceparent[64] = "";
    int parsed = event_parse(msg->payload, msg->len, &ev, err, sizeof err);
    char *key = strndup(msg->key ? (const char *)msg->key : "", msg->key_len);
    int headers = kafka_header_string(msg, "id", header_id, sizeof header_id) == 0 &&
                  kafka_header_string(msg, "type", header_type, sizeof header_type) == 0 &&
                  kafka_header_string(msg, "traceparent", traceparent, sizeof traceparent) == 0;
    rd_kafka_message_destroy(msg);
    if (parsed < 0) {
        free(key);
        fail_msg("event refused by its schema: %s", err);
    }
    assert_non_null(key);
    assert_true(headers);
    assert_string_equal(ev.type, type);
    assert_string_equal(ev.stream, stream);
    assert_string_equal(key, stream);
    free(key);
    assert_string_equal(header_id, ev.id);
    assert_string_equal(header_type, type);
    if (id)
        snprintf(id, EVENT_ID_LEN + 1, "%s", ev.id);
    json_t *data = json_incref(event_data(&ev));
    event_free(&ev);
    return data;
}

/* Fails with msg's payload, destroying msg first (see expect_event). */
static void fail_with_event(rd_kafka_message_t *msg)
{
    char payload[1024];
    snprintf(payload, sizeof payload, "%.*s", (int)msg->len, (const char *)msg->payload);
    rd_kafka_message_destroy(msg);
    fail_msg("an unexpected event: %s", payload);
}

void expect_no_event(struct fixture *f)
{
    int64_t settled = time_monotonic_ms() + LATE_EVENT_MS;
    for (int64_t now = time_monotonic_ms(); now < settled; now = time_monotonic_ms()) {
        rd_kafka_message_t *msg = next_event(f, (int)(settled - now));
        if (msg)
            fail_with_event(msg);
    }
    int64_t ends[FIXTURE_PARTITIONS_MAX];
    events_end_offsets(f, ends);
    for (int p = 0; p < f->partitions; p++) {
        if (f->read_to[p] >= ends[p])
            continue;
        rd_kafka_message_t *msg = next_event(f, 10000);
        if (!msg)
            fail_msg("partition %d holds events up to offset %lld that the reader never gave", p, (long long)ends[p]);
        fail_with_event(msg);
    }
}

void publish_state(struct fixture *f, const char *stream, const char *role, json_t *record)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", stream, role);
    json_object_set_new(record, "stream", json_string(stream));
    json_object_set_new(record, "role", json_string(role));
    char *value = json_dumps(record, JSON_COMPACT);
    json_decref(record);
    assert_non_null(value);
    struct kafka_record rec = {.topic = f->s.topic_state,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = key,
                               .key_len = strlen(key),
                               .value = value,
                               .value_len = strlen(value)};
    char err[256];
    assert_int_equal(kafka_produce(f->producer, &rec, err, sizeof err), 0);
    free(value);
    while (kafka_producer_outstanding(f->producer) > 0)
        kafka_producer_poll(f->producer, 100);
}

void publish_live_stream(struct fixture *f, const char *stream, const char *host, long raised, long cap)
{
    int64_t since = 1000;
    publish_state(f, stream, "room",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host", host,
                            "room_sid", ROOM_SID));
    publish_state(f, stream, "sync",
                  json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i}", "status", "ready", "since", (json_int_t)since,
                            "host", host, "service_sid", SERVICE_SID, "viewer_count", 0, "raised_hands", (int)raised,
                            "raised_hands_cap", (int)cap));
    publish_state(f, stream, "stream",
                  json_pack("{s:s, s:I, s:s, s:s, s:{s:s, s:s, s:n}, s:I}", "status", "ready", "since",
                            (json_int_t)since, "player_streamer_sid", STREAMER_SID, "media_processor_sid",
                            PROCESSOR_SID, "playback_grant", "playbackUrl", "https://play.example/v.m3u8?token=abc",
                            "playerStreamerSid", STREAMER_SID, "requestCredentials", "playback_grant_expires_ms",
                            (json_int_t)(time_now_ms() + 3600 * 1000)));
}

struct http_reply call(struct fixture *f, const char *method, const char *path, const char *const headers[],
                       const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call(method, url, headers, body, body ? strlen(body) : 0, &r);
    return r;
}

long post(struct fixture *f, const char *path, const char *body, json_t **out)
{
    struct http_reply r = call(f, "POST", path, json_headers, body);
    if (out) {
        *out = json_loads(r.body, 0, NULL);
        if (!*out)
            fail_msg("%s answered %ld with a body that is not JSON: %s", path, r.status, r.body);
    }
    long status = r.status;
    http_reply_free(&r);
    return status;
}

void expect_true(struct fixture *f, const char *path, const char *body, const char *key)
{
    json_t *answer;
    assert_int_equal(post(f, path, body, &answer), 200);
    if (!json_is_true(json_object_get(answer, key)))
        fail_msg("%s answered without %s: true", path, key);
    json_decref(answer);
}

void wait_stream_status(struct fixture *f, const char *name, const char *status)
{
    char path[128];
    snprintf(path, sizeof path, "/streams/%s", name);
    const char *headers[] = {f->auth ? f->auth : "Authorization: " TEST_PASSCODE, NULL};
    for (int i = 0; i < 200; i++) {
        struct http_reply r = call(f, "GET", path, headers, NULL);
        json_t *body = json_loads(r.body, 0, NULL);
        const char *now = json_string_value(json_object_get(body, "status"));
        int done = now && strcmp(now, status) == 0;
        json_decref(body);
        http_reply_free(&r);
        if (done)
            return;
        usleep(50 * 1000);
    }
    fail_msg("stream %s never became %s", name, status);
}

char *bearer_with_claims(json_t *claims, const char *secret)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    assert_non_null(h);
    assert_non_null(c);
    assert_true(strlen(h) < 180 && strlen(c) < 360); /* the base64 buffers below hold that */
    char h64[256], c64[512], input[800], sig64[64];
    base64url_encode((const unsigned char *)h, strlen(h), h64);
    base64url_encode((const unsigned char *)c, strlen(c), c64);
    snprintf(input, sizeof input, "%s.%s", h64, c64);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input, strlen(input), mac, &mac_len));
    base64url_encode(mac, mac_len, sig64);
    size_t n = strlen(input) + strlen(sig64) + 32;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "Authorization: Bearer %s.%s", input, sig64);
    free(h);
    free(c);
    json_decref(header);
    json_decref(claims);
    return out;
}

char *bearer_expiring(const char *identity, const char *secret, long ttl_s)
{
    return bearer_with_claims(json_pack("{s:s, s:I}", "sub", identity, "exp", (json_int_t)(time(NULL) + ttl_s)),
                              secret);
}

char *bearer_for(const char *identity, const char *secret)
{
    return bearer_expiring(identity, secret, 600);
}

long post_as(struct fixture *f, const char *auth_header, const char *path, const char *body)
{
    const char *headers[] = {auth_header, "Content-Type: application/json", NULL};
    struct http_reply r = call(f, "POST", path, headers, body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

long webhook(struct fixture *f, const char *path_and_query, const char *url_signed, struct kv_list *params)
{
    char signature[SIGNATURE_LEN + 1], header[64];
    const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded", NULL, NULL};
    if (url_signed) {
        assert_int_equal(signature_compute(TEST_AUTH_TOKEN, url_signed, params, signature), 0);
        snprintf(header, sizeof header, "X-Twilio-Signature: %s", signature);
        headers[1] = header;
    }
    char *body = form_encode(params);
    assert_non_null(body);
    struct http_reply r = call(f, "POST", path_and_query, headers, body);
    free(body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

const char *webhook_now(char out[RFC3339_MS_LEN + 1])
{
    time_format_rfc3339_ms(time_now_ms(), out);
    return out;
}

void room_params(struct kv_list *p, const char *event, const char *identity)
{
    char now[RFC3339_MS_LEN + 1];
    kv_init(p);
    kv_add(p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(p, "RoomName", "friday");
    kv_add(p, "RoomSid", ROOM_SID);
    kv_add(p, "RoomStatus", "in-progress");
    kv_add(p, "RoomType", "group");
    kv_add(p, "StatusCallbackEvent", event);
    kv_add(p, "Timestamp", webhook_now(now));
    kv_add(p, "SequenceNumber", "3");
    if (identity) {
        kv_add(p, "ParticipantIdentity", identity);
        kv_add(p, "ParticipantSid", "PA0123456789abcdef0123456789abcdef");
        kv_add(p, "ParticipantStatus", "connected");
    }
}
