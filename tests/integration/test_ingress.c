/* The ingress as a real process against the dev broker: every client
 * endpoint's success path (the event read back from Kafka, checked against
 * its schema, with its headers), the answers minted from the state view,
 * the waits, and the webhooks with their signatures. State records that
 * the workers would publish are produced here by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "encode.h"
#include "form.h"
#include "event.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

#define ROOM_SID "RM0123456789abcdef0123456789abcdef"
#define SERVICE_SID "IS0123456789abcdef0123456789abcdef"
#define STREAMER_SID "VJ0123456789abcdef0123456789abcdef"
#define PROCESSOR_SID "ZX0123456789abcdef0123456789abcdef"

struct fixture {
    const char *auth;   /* Authorization header for GET /streams; NULL: the passcode */
    struct stack s;
    struct kafka_reader *events;
    struct kafka_producer *state;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    if (stack_start_broker(&f->s, err, sizeof err) < 0 || stack_start_ingress(&f->s, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = "stagehand.events"};
    f->events = kafka_reader_new(&ropt, err, sizeof err);
    if (!f->events)
        fail_msg("%s", err);
    struct kafka_producer_options popt = {.brokers = f->s.brokers};
    f->state = kafka_producer_new(&popt, err, sizeof err);
    if (!f->state)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kafka_reader_close(f->events);
    kafka_producer_close(f->state, 5000);
    int status = stack_stop_ingress(&f->s);
    stack_stop(&f->s);
    free(f);
    assert_int_equal(status, 0); /* a clean stop on SIGTERM */
    return 0;
}

/* --- Kafka ------------------------------------------------------------------------------- */

/* The next event on stagehand.events within timeout_ms, or NULL. */
static rd_kafka_message_t *next_event(struct fixture *f, int timeout_ms)
{
    int64_t until = time_monotonic_ms() + timeout_ms;
    while (time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(f->events, 50);
        if (msg && !msg->err)
            return msg;
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    return NULL;
}

/* Reads the next event and checks it: type, key = stream, envelope and
 * data valid, headers id and type equal to the envelope's. Returns its
 * data (caller decrefs) and copies its id. */
static json_t *expect_event(struct fixture *f, const char *type, const char *stream, char id[EVENT_ID_LEN + 1])
{
    rd_kafka_message_t *msg = next_event(f, 10000);
    if (!msg)
        fail_msg("no %s event came", type);
    struct event ev;
    char err[256], header[64];
    if (event_parse(msg->payload, msg->len, &ev, err, sizeof err) < 0)
        fail_msg("event refused by its schema: %s", err);
    assert_string_equal(ev.type, type);
    assert_string_equal(ev.stream, stream);
    assert_int_equal(msg->key_len, strlen(stream));
    assert_memory_equal(msg->key, stream, msg->key_len);
    assert_int_equal(kafka_header_string(msg, "id", header, sizeof header), 0);
    assert_string_equal(header, ev.id);
    assert_int_equal(kafka_header_string(msg, "type", header, sizeof header), 0);
    assert_string_equal(header, type);
    assert_int_equal(kafka_header_string(msg, "traceparent", header, sizeof header), 0);
    if (id)
        snprintf(id, EVENT_ID_LEN + 1, "%s", ev.id);
    json_t *data = json_incref(ev.data);
    event_free(&ev);
    rd_kafka_message_destroy(msg);
    return data;
}

static void expect_no_event(struct fixture *f)
{
    rd_kafka_message_t *msg = next_event(f, 300);
    if (msg) {
        fail_msg("an unexpected event: %.*s", (int)msg->len, (const char *)msg->payload);
    }
}

/* Publishes one state record as a worker would, and waits for the ack. */
static void publish_state(struct fixture *f, const char *stream, const char *role, json_t *record)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", stream, role);
    json_object_set_new(record, "stream", json_string(stream));
    json_object_set_new(record, "role", json_string(role));
    char *value = json_dumps(record, JSON_COMPACT);
    json_decref(record);
    struct kafka_record rec = {.topic = "stagehand.state", .partition = RD_KAFKA_PARTITION_UA, .key = key,
                               .key_len = strlen(key), .value = value, .value_len = strlen(value)};
    char err[256];
    assert_int_equal(kafka_produce(f->state, &rec, err, sizeof err), 0);
    free(value);
    while (kafka_producer_outstanding(f->state) > 0)
        kafka_producer_poll(f->state, 100);
}

/* Room, sync and stream records of a live stream hosted by host. */
static void publish_live_stream(struct fixture *f, const char *stream, const char *host, long raised, long cap)
{
    int64_t since = 1000;
    publish_state(f, stream, "room",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host",
                            host, "room_sid", ROOM_SID));
    publish_state(f, stream, "sync",
                  json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i}", "status", "ready", "since",
                            (json_int_t)since, "host", host, "service_sid", SERVICE_SID, "viewer_count", 0,
                            "raised_hands", (int)raised, "raised_hands_cap", (int)cap));
    publish_state(f, stream, "stream",
                  json_pack("{s:s, s:I, s:s, s:s, s:{s:s, s:s, s:n}, s:I}", "status", "ready", "since",
                            (json_int_t)since, "player_streamer_sid", STREAMER_SID, "media_processor_sid",
                            PROCESSOR_SID, "playback_grant", "playbackUrl",
                            "https://play.example/v.m3u8?token=abc", "playerStreamerSid", STREAMER_SID,
                            "requestCredentials", "playback_grant_expires_ms",
                            (json_int_t)(time_now_ms() + 3600 * 1000)));
}

/* --- HTTP ---------------------------------------------------------------------------------- */

static struct http_reply call(struct fixture *f, const char *method, const char *path,
                              const char *const headers[], const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call(method, url, headers, body, body ? strlen(body) : 0, &r);
    return r;
}

static const char *const json_headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};

/* POSTs a JSON body with the passcode; returns the status, the body parsed
 * into *out when out is not NULL. */
static long post(struct fixture *f, const char *path, const char *body, json_t **out)
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

/* POSTs body to path and checks the answer is 200 {"<key>": true}. */
static void expect_true(struct fixture *f, const char *path, const char *body, const char *key)
{
    json_t *answer;
    assert_int_equal(post(f, path, body, &answer), 200);
    if (!json_is_true(json_object_get(answer, key)))
        fail_msg("%s answered without %s: true", path, key);
    json_decref(answer);
}

/* Waits until GET /streams/{name} shows status. */
static void wait_stream_status(struct fixture *f, const char *name, const char *status)
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

/* The claims of an access token (no signature check: the emulator tests
 * do that; here we look at what was granted). */
static json_t *token_claims(const char *jwt)
{
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    unsigned char payload[4096];
    long n = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload);
    assert_true(n > 0);
    json_t *claims = json_loadb((const char *)payload, (size_t)n, 0, NULL);
    assert_non_null(claims);
    return claims;
}

static json_t *grants_of(json_t *answer)
{
    json_t *claims = token_claims(json_string_value(json_object_get(answer, "token")));
    json_t *grants = json_incref(json_object_get(claims, "grants"));
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")) -
                         json_integer_value(json_object_get(claims, "iat")),
                     14400);
    json_decref(claims);
    return grants;
}

/* --- tests ----------------------------------------------------------------------------------- */

static void test_client_api(void **state)
{
    struct fixture *f = *state;
    json_t *answer, *data, *grants;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");

    expect_true(f, "/verify-passcode", NULL, "verified");

    /* A live stream cannot be created again. */
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}", &answer), 409);
    assert_string_equal(json_string_value(json_object_get(json_object_get(answer, "error"), "message")), "stream exists");
    json_decref(answer);
    expect_no_event(f);

    /* A speaker joins: video and Sync grants, the reference's names. */
    assert_int_equal(post(f, "/join-stream-as-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", &answer), 200);
    assert_string_equal(json_string_value(json_object_get(answer, "room_sid")), ROOM_SID);
    assert_true(json_is_false(json_object_get(answer, "chat_enabled")));
    json_t *names = json_object_get(answer, "sync_object_names");
    assert_string_equal(json_string_value(json_object_get(names, "speakers_map")), "speakers");
    assert_string_equal(json_string_value(json_object_get(names, "viewers_map")), "viewers");
    assert_string_equal(json_string_value(json_object_get(names, "raised_hands_map")), "raised_hands");
    assert_string_equal(json_string_value(json_object_get(names, "user_document")), "user-bob");
    grants = grants_of(answer);
    assert_string_equal(json_string_value(json_object_get(grants, "identity")), "bob");
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "video"), "room")), "friday");
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "data_sync"), "service_sid")), SERVICE_SID);
    assert_null(json_object_get(grants, "player"));
    json_decref(grants);
    json_decref(answer);
    data = expect_event(f, "user.joined", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "bob");
    assert_string_equal(json_string_value(json_object_get(data, "role")), "speaker");
    json_decref(data);

    /* A viewer joins (as a form this time): the player grant, no video grant. */
    static const char *const form_headers[] = {"Authorization: " TEST_PASSCODE,
                                               "Content-Type: application/x-www-form-urlencoded", NULL};
    struct http_reply r = call(f, "POST", "/join-stream-as-viewer", form_headers,
                               "user_identity=Zo%C3%AB+K&stream_name=friday");
    assert_int_equal(r.status, 200);
    answer = json_loads(r.body, 0, NULL);
    http_reply_free(&r);
    grants = grants_of(answer);
    assert_string_equal(json_string_value(json_object_get(grants, "identity")), "Zo\xc3\xab K");
    assert_null(json_object_get(grants, "video"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "player"), "playerStreamerSid")), STREAMER_SID);
    json_decref(grants);
    json_decref(answer);
    data = expect_event(f, "user.joined", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "role")), "viewer");
    json_decref(data);

    expect_true(f, "/viewer-connected-to-player", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}", "success");
    json_decref(expect_event(f, "viewer.connected", "friday", NULL));
    expect_true(f, "/raise-hand", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\",\"hand_raised\":true}", "sent");
    json_decref(expect_event(f, "hand.raised", "friday", NULL));
    expect_true(f, "/raise-hand", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\",\"hand_raised\":false}", "sent");
    json_decref(expect_event(f, "hand.lowered", "friday", NULL));

    /* Host actions, named the reference's way (room_sid, room_name). */
    expect_true(f, "/send-speaker-invite", "{\"user_identity\":\"carol\",\"room_sid\":\"" ROOM_SID "\"}", "sent");
    data = expect_event(f, "speaker.invited", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "carol");
    json_decref(data);
    expect_true(f, "/remove-speaker", "{\"user_identity\":\"bob\",\"room_name\":\"friday\"}", "removed");
    json_decref(expect_event(f, "speaker.remove_requested", "friday", NULL));
    expect_true(f, "/delete-stream", "{\"stream_name\":\"friday\"}", "deleted");
    data = expect_event(f, "stream.end_requested", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "reason")), "host_request");
    json_decref(data);

    /* The view, as GET /streams/{name} shows it: no playback grant in it. */
    r = call(f, "GET", "/streams/friday", json_headers, NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "playbackUrl"));
    assert_non_null(strstr(r.body, SERVICE_SID));
    http_reply_free(&r);
    expect_no_event(f);
}

/* Publishes the records of a live "monday" 0.8 s from now. */
static void *publish_monday_later(void *arg)
{
    usleep(800 * 1000);
    publish_live_stream(arg, "monday", "alice", 0, 100);
    return NULL;
}

static void test_create_stream(void **state)
{
    struct fixture *f = *state;
    json_t *answer, *data;

    /* Prefer: respond-async: 202 and where to look, once Kafka has it. */
    static const char *const async_headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json",
                                                "Prefer: respond-async", NULL};
    struct http_reply r = call(f, "POST", "/create-stream", async_headers,
                               "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}");
    assert_int_equal(r.status, 202);
    assert_string_equal(r.location, "/streams/saturday");
    http_reply_free(&r);
    data = expect_event(f, "stream.create_requested", "saturday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "host")), "alice");
    json_decref(data);

    /* Not ready within CREATE_WAIT_MS (3 s here): 202 too. */
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"sunday\"}", &answer), 202);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "creating");
    json_decref(answer);
    json_decref(expect_event(f, "stream.create_requested", "sunday", NULL));

    /* Ready while it waits: 200 with the host's token. */
    publish_state(f, "monday", "room", json_pack("{s:s, s:i, s:s}", "status", "creating", "since", 5, "host", "alice"));
    wait_stream_status(f, "monday", "creating");
    /* Someone else cannot take a name that is being created. */
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"mallory\",\"stream_name\":\"monday\"}", NULL), 409);
    expect_no_event(f);
    pthread_t later;
    assert_int_equal(pthread_create(&later, NULL, publish_monday_later, f), 0);
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"monday\"}", &answer), 200);
    pthread_join(later, NULL);
    assert_string_equal(json_string_value(json_object_get(answer, "room_sid")), ROOM_SID);
    assert_null(json_object_get(json_object_get(answer, "sync_object_names"), "user_document"));
    json_t *grants = grants_of(answer);
    assert_string_equal(json_string_value(json_object_get(grants, "identity")), "alice");
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "video"), "room")), "monday");
    json_decref(grants);
    json_decref(answer);
    json_decref(expect_event(f, "stream.create_requested", "monday", NULL));
    expect_no_event(f);
}

/* --- bad input: the right status and no event --------------------------------------------- */

struct bad_case {
    const char *path;
    const char *content_type;  /* NULL: none */
    const char *auth;          /* NULL: none */
    const char *body;
    long status;
    const char *message;       /* the error's message, or NULL */
};

#define JSON "application/json"
#define PASS TEST_PASSCODE

static const struct bad_case bad_cases[] = {
    /* missing fields */
    {"/create-stream", JSON, PASS, "{\"stream_name\":\"x\"}", 400, "missing user_identity"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\"}", 400, "missing stream_name"},
    {"/join-stream-as-speaker", JSON, PASS, "{\"stream_name\":\"friday\"}", 400, "missing user_identity"},
    {"/join-stream-as-viewer", JSON, PASS, "{\"user_identity\":\"a\"}", 400, "missing stream_name"},
    {"/viewer-connected-to-player", JSON, PASS, "{}", 400, "missing user_identity"},
    {"/raise-hand", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"friday\"}", 400, "missing hand_raised"},
    {"/send-speaker-invite", JSON, PASS, "{\"stream_name\":\"friday\"}", 400, "missing user_identity"},
    {"/remove-speaker", JSON, PASS, "{\"user_identity\":\"bob\"}", 400, "missing stream_name"},
    {"/delete-stream", JSON, PASS, "{}", 400, "missing stream_name"},
    /* wrong types */
    {"/create-stream", JSON, PASS, "{\"user_identity\":7,\"stream_name\":\"x\"}", 400, "invalid user_identity"},
    {"/raise-hand", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"friday\",\"hand_raised\":\"false\"}", 400, "invalid hand_raised"},
    {"/join-stream-as-viewer", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":[\"friday\"]}", 400, "invalid stream_name"},
    {"/send-speaker-invite", JSON, PASS, "{\"user_identity\":\"a\",\"room_sid\":\"RM1\"}", 400, "invalid room_sid"},
    {"/create-stream", JSON, PASS, "[1,2]", 400, "invalid body"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":", 400, "invalid body"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\",\"user_identity\":\"b\",\"stream_name\":\"x\"}", 400, "invalid body"},
    /* too long */
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", 400, "invalid stream_name"},
    /* invalid UTF-8, control characters, reserved names and characters */
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\xff\",\"stream_name\":\"x\"}", 400, "invalid body"},
    {"/create-stream", "application/x-www-form-urlencoded", PASS, "user_identity=a%FF&stream_name=x", 400, "invalid body"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\\u0007b\",\"stream_name\":\"x\"}", 400, "invalid user_identity"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\\u0000b\",\"stream_name\":\"x\"}", 400, "invalid body"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"video-composer-1\",\"stream_name\":\"x\"}", 400, "invalid user_identity"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"a/b\"}", 400, "invalid stream_name"},
    {"/create-stream", JSON, PASS, "{\"user_identity\":\" a\",\"stream_name\":\"x\"}", 400, "invalid user_identity"},
    /* wrong content type */
    {"/create-stream", "text/plain", PASS, "user_identity=a&stream_name=x", 415, "unsupported content type"},
    {"/create-stream", NULL, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"x\"}", 415, "unsupported content type"},
    /* bad or missing auth */
    {"/create-stream", JSON, NULL, "{\"user_identity\":\"a\",\"stream_name\":\"x\"}", 401, "passcode incorrect"},
    {"/create-stream", JSON, "4242", "{\"user_identity\":\"a\",\"stream_name\":\"x\"}", 401, "passcode incorrect"},
    {"/create-stream", JSON, "Bearer 424242", "{\"user_identity\":\"a\",\"stream_name\":\"x\"}", 401, "passcode incorrect"},
    {"/delete-stream", JSON, NULL, "{\"stream_name\":\"friday\"}", 401, "passcode incorrect"},
    {"/remove-speaker", JSON, NULL, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 401, "passcode incorrect"},
    /* unknown stream */
    {"/join-stream-as-speaker", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"nope\"}", 404, "stream not found"},
    {"/join-stream-as-viewer", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"nope\"}", 404, "stream not found"},
    {"/viewer-connected-to-player", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"nope\"}", 404, "stream not found"},
    {"/raise-hand", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"nope\",\"hand_raised\":true}", 404, "stream not found"},
    {"/send-speaker-invite", JSON, PASS, "{\"user_identity\":\"a\",\"room_sid\":\"RMffffffffffffffffffffffffffffffff\"}", 404, "stream not found"},
    {"/remove-speaker", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"nope\"}", 404, "stream not found"},
    {"/delete-stream", JSON, PASS, "{\"stream_name\":\"nope\"}", 404, "stream not found"},
    /* the cap: friday shows 2 raised hands of 2 */
    {"/raise-hand", JSON, PASS, "{\"user_identity\":\"a\",\"stream_name\":\"friday\",\"hand_raised\":true}", 409, "raised hands full"},
    /* no such endpoint, wrong method */
    {"/create-streams", JSON, PASS, "{}", 404, "not found"},
};

static void test_bad_input(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 2, 2);
    wait_stream_status(f, "friday", "live");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        char type[128], auth[128];
        const char *headers[3];
        size_t n = 0;
        /* "Content-Type:" with no value stops curl from adding its own. */
        snprintf(type, sizeof type, "Content-Type:%s%s", c->content_type ? " " : "",
                 c->content_type ? c->content_type : "");
        headers[n++] = type;
        if (c->auth) {
            snprintf(auth, sizeof auth, "Authorization: %s", c->auth);
            headers[n++] = auth;
        }
        headers[n] = NULL;
        struct http_reply r = call(f, "POST", c->path, headers, c->body);
        json_t *body = json_loads(r.body, 0, NULL);
        const char *message = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
        const char *explanation = json_string_value(json_object_get(json_object_get(body, "error"), "explanation"));
        if (r.status != c->status || !message || strcmp(message, c->message) != 0 || !explanation || !explanation[0])
            fail_msg("case %zu (%s %s): got %ld %s, wanted %ld %s", i, c->path, c->body, r.status, r.body,
                     c->status, c->message);
        json_decref(body);
        http_reply_free(&r);
    }
    struct http_reply r = call(f, "GET", "/create-stream", json_headers, NULL);
    assert_int_equal(r.status, 405);
    http_reply_free(&r);

    /* Oversize body: 413 (BODY_MAX_BYTES is 16 KiB by default). */
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    memset(big, 'a', big_len);
    memcpy(big, "{\"user_identity\":\"", 17);
    big[big_len] = '\0';
    r = call(f, "POST", "/create-stream", json_headers, big);
    assert_int_equal(r.status, 413);
    http_reply_free(&r);
    free(big);
    expect_no_event(f);
}

/* --- webhooks ---------------------------------------------------------------------------------- */

/* POSTs a form to path + query, signed for url_signed (NULL: no signature). */
static long webhook(struct fixture *f, const char *path_and_query, const char *url_signed,
                    struct kv_list *params)
{
    char signature[SIGNATURE_LEN + 1], header[64];
    const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded", NULL, NULL};
    if (url_signed) {
        assert_int_equal(signature_compute(TEST_AUTH_TOKEN, url_signed, params, signature), 0);
        snprintf(header, sizeof header, "X-Twilio-Signature: %s", signature);
        headers[1] = header;
    }
    char *body = form_encode(params);
    struct http_reply r = call(f, "POST", path_and_query, headers, body);
    free(body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static void room_params(struct kv_list *p, const char *event, const char *identity)
{
    kv_init(p);
    kv_add(p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(p, "RoomName", "friday");
    kv_add(p, "RoomSid", ROOM_SID);
    kv_add(p, "RoomStatus", "in-progress");
    kv_add(p, "RoomType", "group");
    kv_add(p, "StatusCallbackEvent", event);
    kv_add(p, "Timestamp", "2026-11-24T01:02:03.456Z");
    kv_add(p, "SequenceNumber", "3");
    if (identity) {
        kv_add(p, "ParticipantIdentity", identity);
        kv_add(p, "ParticipantSid", "PA0123456789abcdef0123456789abcdef");
        kv_add(p, "ParticipantStatus", "connected");
    }
}

static void test_webhooks(void **state)
{
    struct fixture *f = *state;
    struct kv_list p;
    char first[EVENT_ID_LEN + 1], again[EVENT_ID_LEN + 1];
    const char *rooms_url = TEST_PUBLIC_BASE_URL "/rooms-webhook";
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");

    room_params(&p, "participant-connected", "bob");
    assert_int_equal(webhook(f, "/rooms-webhook", rooms_url, &p), 200);
    json_t *data = expect_event(f, "participant.connected", "friday", first);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "bob");
    assert_string_equal(json_string_value(json_object_get(data, "room_sid")), ROOM_SID);
    json_decref(data);
    /* Twilio retries: the same event id, so the workers skip it. */
    assert_int_equal(webhook(f, "/rooms-webhook", rooms_url, &p), 200);
    json_decref(expect_event(f, "participant.connected", "friday", again));
    assert_string_equal(first, again);
    /* Missing header, wrong signature, signed for another URL: 403, nothing. */
    assert_int_equal(webhook(f, "/rooms-webhook", NULL, &p), 403);
    assert_int_equal(webhook(f, "/rooms-webhook", TEST_PUBLIC_BASE_URL "/sync-webhook", &p), 403);
    assert_int_equal(webhook(f, "/rooms-webhook?x=1", rooms_url, &p), 403);
    kv_free(&p);
    room_params(&p, "participant-connected", "bob");
    kv_add(&p, "Extra", "tampered after signing");
    char signature[SIGNATURE_LEN + 1];
    struct kv_list original;
    room_params(&original, "participant-connected", "bob");
    assert_int_equal(signature_compute(TEST_AUTH_TOKEN, rooms_url, &original, signature), 0);
    char header[64];
    snprintf(header, sizeof header, "X-Twilio-Signature: %s", signature);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", header, NULL};
    char *body = form_encode(&p);
    struct http_reply r = call(f, "POST", "/rooms-webhook", headers, body);
    assert_int_equal(r.status, 403);
    http_reply_free(&r);
    free(body);
    kv_free(&p);
    kv_free(&original);
    expect_no_event(f);

    /* The composer's participant and other events: 200, nothing. */
    room_params(&p, "participant-connected", "video-composer-ZX1");
    assert_int_equal(webhook(f, "/rooms-webhook", rooms_url, &p), 200);
    kv_free(&p);
    room_params(&p, "track-added", NULL);
    assert_int_equal(webhook(f, "/rooms-webhook", rooms_url, &p), 200);
    kv_free(&p);
    expect_no_event(f);
    room_params(&p, "room-ended", NULL);
    kv_add(&p, "RoomDuration", "120");
    assert_int_equal(webhook(f, "/rooms-webhook", rooms_url, &p), 200);
    kv_free(&p);
    data = expect_event(f, "room.ended", "friday", NULL);
    assert_int_equal(json_integer_value(json_object_get(data, "room_duration_s")), 120);
    json_decref(data);

    /* Sync: the stream from the query, or from the service SID in the view. */
    kv_init(&p);
    kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(&p, "ServiceSid", SERVICE_SID);
    kv_add(&p, "EventType", "endpoint_disconnected");
    kv_add(&p, "Identity", "carol");
    kv_add(&p, "EndpointId", "EP1");
    kv_add(&p, "DateCreated", "2026-11-24T01:02:04Z");
    assert_int_equal(webhook(f, "/sync-webhook?stream=friday", TEST_PUBLIC_BASE_URL "/sync-webhook?stream=friday", &p), 200);
    data = expect_event(f, "viewer.disconnected", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "carol");
    json_decref(data);
    assert_int_equal(webhook(f, "/sync-webhook", TEST_PUBLIC_BASE_URL "/sync-webhook", &p), 200);
    json_decref(expect_event(f, "viewer.disconnected", "friday", NULL));
    kv_free(&p);

    /* Media: ended -> media.ended; started -> nothing. */
    kv_init(&p);
    kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(&p, "MediaProcessorSid", PROCESSOR_SID);
    kv_add(&p, "StatusCallbackEvent", "media-processor-started");
    kv_add(&p, "Timestamp", "2026-11-24T01:02:05.000Z");
    assert_int_equal(webhook(f, "/media-webhook", TEST_PUBLIC_BASE_URL "/media-webhook", &p), 200);
    expect_no_event(f);
    kv_free(&p);
    kv_init(&p);
    kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(&p, "MediaProcessorSid", PROCESSOR_SID);
    kv_add(&p, "StatusCallbackEvent", "media-processor-ended");
    kv_add(&p, "EndedReason", "max-duration-exceeded");
    kv_add(&p, "Timestamp", "2026-11-24T01:02:06.000Z");
    assert_int_equal(webhook(f, "/media-webhook", TEST_PUBLIC_BASE_URL "/media-webhook", &p), 200);
    kv_free(&p);
    data = expect_event(f, "media.ended", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "reason")), "max-duration-exceeded");
    assert_string_equal(json_string_value(json_object_get(data, "media_processor_sid")), PROCESSOR_SID);
    json_decref(data);
    expect_no_event(f);
}

/* --- other configurations ------------------------------------------------------------------ */

#define JWT_SECRET "a-test-secret-of-the-identity-service"

/* An HS256 bearer token for identity as the operator's identity service
 * would issue it (made with common/token's minting key type: the claims
 * that matter are sub and exp). */
static char *bearer_for(const char *identity, const char *secret)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    json_t *claims = json_pack("{s:s, s:I}", "sub", identity, "exp", (json_int_t)(time(NULL) + 600));
    char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char h64[256], c64[512], input[800], sig64[64];
    base64url_encode((const unsigned char *)h, strlen(h), h64);
    base64url_encode((const unsigned char *)c, strlen(c), c64);
    snprintf(input, sizeof input, "%s.%s", h64, c64);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input, strlen(input), mac, &mac_len);
    base64url_encode(mac, mac_len, sig64);
    char *out = malloc(strlen(input) + strlen(sig64) + 32);
    sprintf(out, "Authorization: Bearer %s.%s", input, sig64);
    free(h);
    free(c);
    json_decref(header);
    json_decref(claims);
    return out;
}

static long post_as(struct fixture *f, const char *auth_header, const char *path, const char *body)
{
    const char *headers[] = {auth_header, "Content-Type: application/json", NULL};
    struct http_reply r = call(f, "POST", path, headers, body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The standard fixture, with the ingress restarted under env. */
static int setup_with(void **state, const char *const env[])
{
    setup(state);
    struct fixture *f = *state;
    char err[256];
    stack_stop_ingress(&f->s);
    if (stack_start_ingress(&f->s, env, err, sizeof err) < 0)
        fail_msg("%s", err);
    return 0;
}

static int setup_jwt(void **state)
{
    static const char *const env[] = {"AUTH_MODE=jwt", "AUTH_JWT_SECRET=" JWT_SECRET, NULL};
    return setup_with(state, env);
}

static void test_jwt_mode(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    char *alice = bearer_for("alice", JWT_SECRET);
    char *bob = bearer_for("bob", JWT_SECRET);
    char *forged = bearer_for("alice", "not-the-identity-service-secret");
    f->auth = alice; /* GET /streams needs a bearer token now */
    wait_stream_status(f, "friday", "live");
    expect_no_event(f);

    /* The identity comes from the token; the body may only repeat it. */
    assert_int_equal(post_as(f, bob, "/viewer-connected-to-player", "{\"stream_name\":\"friday\"}"), 200);
    json_t *data = expect_event(f, "viewer.connected", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "bob");
    json_decref(data);
    assert_int_equal(post_as(f, bob, "/viewer-connected-to-player",
                             "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}"), 403);
    assert_int_equal(post_as(f, forged, "/delete-stream", "{\"stream_name\":\"friday\"}"), 401);
    assert_int_equal(post_as(f, "Authorization: " TEST_PASSCODE, "/delete-stream", "{\"stream_name\":\"friday\"}"), 401);
    /* Host-only actions: bob is not the host. */
    assert_int_equal(post_as(f, bob, "/remove-speaker", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"), 403);
    assert_int_equal(post_as(f, bob, "/send-speaker-invite", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"), 403);
    assert_int_equal(post_as(f, bob, "/delete-stream", "{\"stream_name\":\"friday\"}"), 403);
    expect_no_event(f);
    assert_int_equal(post_as(f, alice, "/remove-speaker", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"), 200);
    assert_int_equal(post_as(f, alice, "/delete-stream", "{\"stream_name\":\"friday\"}"), 200);
    json_decref(expect_event(f, "speaker.remove_requested", "friday", NULL));
    json_decref(expect_event(f, "stream.end_requested", "friday", NULL));
    free(alice);
    free(bob);
    free(forged);
}

static int setup_rate_limited(void **state)
{
    static const char *const env[] = {"RATE_LIMIT_IP_PER_S=1", "RATE_LIMIT_IP_BURST=3", NULL};
    return setup_with(state, env);
}

static void test_rate_limit(void **state)
{
    struct fixture *f = *state;
    int limited = 0;
    for (int i = 0; i < 6; i++) {
        struct http_reply r = call(f, "POST", "/verify-passcode", json_headers, NULL);
        if (r.status == 429) {
            limited++;
            assert_true(atoi(r.retry_after) >= 1);
        }
        http_reply_free(&r);
    }
    assert_true(limited >= 2); /* a burst of 3 (plus what refilled meanwhile), then 429 */
}

static int setup_identity_limited(void **state)
{
    static const char *const env[] = {"RATE_LIMIT_IDENTITY_PER_S=1", "RATE_LIMIT_IDENTITY_BURST=2", NULL};
    return setup_with(state, env);
}

/* One identity gets its burst; another is not affected. (The stream does
 * not exist: the budget is taken before that is found out.) */
static void test_identity_rate_limit(void **state)
{
    struct fixture *f = *state;
    const char *dave = "{\"user_identity\":\"dave\",\"stream_name\":\"nope\"}";
    assert_int_equal(post(f, "/viewer-connected-to-player", dave, NULL), 404);
    assert_int_equal(post(f, "/viewer-connected-to-player", dave, NULL), 404);
    struct http_reply r = call(f, "POST", "/viewer-connected-to-player", json_headers, dave);
    assert_int_equal(r.status, 429);
    assert_true(atoi(r.retry_after) >= 1);
    http_reply_free(&r);
    assert_int_equal(post(f, "/viewer-connected-to-player", "{\"user_identity\":\"erin\",\"stream_name\":\"nope\"}", NULL), 404);

    /* The metrics saw all of it. */
    r = call(f, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "stagehand_ingress_requests_total{route=\"/viewer-connected-to-player\",status=\"404\"} 3"));
    assert_non_null(strstr(r.body, "stagehand_ingress_requests_total{route=\"/viewer-connected-to-player\",status=\"429\"} 1"));
    assert_non_null(strstr(r.body, "stagehand_ingress_request_seconds_count{route=\"/viewer-connected-to-player\"} 4"));
    assert_non_null(strstr(r.body, "stagehand_ingress_view_streams"));
    http_reply_free(&r);
    expect_no_event(f);
}

/* The same story with libmicrohttpd's epoll loop (INGRESS_EVENT_LOOP=epoll):
 * requests suspended for Kafka's ack or for the view are resumed alike. */
static int setup_epoll(void **state)
{
    static const char *const env[] = {"INGRESS_EVENT_LOOP=epoll", NULL};
    return setup_with(state, env);
}

static void test_client_api_epoll(void **state)
{
    test_client_api(state);
}

static void test_create_stream_epoll(void **state)
{
    test_create_stream(state);
}

static void test_kafka_unreachable(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    /* The broker goes away under the ingress. */
    assert_true(process_stop(&f->s.broker, 10000) >= 0);
    int64_t started = time_monotonic_ms();
    struct http_reply r = call(f, "POST", "/viewer-connected-to-player", json_headers,
                               "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "1");
    assert_true(time_monotonic_ms() - started < 10000); /* PRODUCE_TIMEOUT_MS is 3 s here */
    http_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_mode, setup_jwt, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup_rate_limited, teardown),
        cmocka_unit_test_setup_teardown(test_identity_rate_limit, setup_identity_limited, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_api_epoll, setup_epoll, teardown),
        cmocka_unit_test_setup_teardown(test_create_stream_epoll, setup_epoll, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
