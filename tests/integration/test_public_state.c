/* The public stream state and the viewer tiers at the ingress, as a real
 * process against the dev broker (ingress_fixture.h), with the sync
 * worker's state records produced by hand:
 *
 * - GET /streams/{name}/state: exactly the public fields, a strong ETag,
 *   Cache-Control, 304 for a matching If-None-Match (lists, weak tags, *),
 *   a new ETag after a change, HEAD, 401 without credentials (passcode and
 *   jwt modes), 404 for an unknown stream, 400 for a bad path; and
 *   GET /streams/{name} showing the provisioning numbers;
 * - the join answers' sync_access and public_state_url, with
 *   SYNC_EAGER_VIEWERS=3: the first three viewers get Sync access, the
 *   rest not, speakers always; the user.joined events say the same; the
 *   count starts from the view's eager_admitted, and again from zero in a
 *   new life of the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

#define PASSCODE_HEADER "Authorization: " TEST_PASSCODE

/* --- HTTP with the caching headers ---------------------------------------------------------- */

struct state_reply {
    long status;
    char *body;
    char etag[128];
    char cache_control[128];
    char content_type[128];
    long content_length; /* -1 when absent */
};

struct body_buffer {
    char *data;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct body_buffer *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, data, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Copies the value of header name from line (one header line) into out. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t name_len = strlen(name);
    if (n <= name_len + 1 || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
        return;
    const char *v = line + name_len + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct state_reply *r = userdata;
    size_t n = size * nmemb;
    char length[32] = "";
    header_value(line, n, "ETag", r->etag, sizeof r->etag);
    header_value(line, n, "Cache-Control", r->cache_control, sizeof r->cache_control);
    header_value(line, n, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(line, n, "Content-Length", length, sizeof length);
    if (length[0])
        r->content_length = atol(length);
    return n;
}

/* method path with headers (NULL-terminated, may be NULL). */
static struct state_reply fetch(struct fixture *f, const char *method, const char *path, const char *const headers[])
{
    struct state_reply r = {.content_length = -1};
    struct body_buffer b = {NULL, 0};
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    /* curl's "path as is": ../ and %2F must reach the ingress untouched. */
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    r.body = b.data ? b.data : strdup("");
    assert_non_null(r.body);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    return r;
}

static void reply_free(struct state_reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* GET path with the passcode and, when if_none_match is not NULL, that
 * If-None-Match field. */
static struct state_reply get_state(struct fixture *f, const char *path, const char *if_none_match)
{
    char condition[256];
    const char *headers[] = {PASSCODE_HEADER, NULL, NULL};
    if (if_none_match) {
        snprintf(condition, sizeof condition, "If-None-Match: %s", if_none_match);
        headers[1] = condition;
    }
    return fetch(f, "GET", path, headers);
}

/* The error message of a JSON error envelope (static copy), or "". */
static const char *error_message(const char *body)
{
    static char message[128];
    json_t *doc = json_loads(body, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    const char *explanation = json_string_value(json_object_get(json_object_get(doc, "error"), "explanation"));
    snprintf(message, sizeof message, "%s", m && explanation && explanation[0] ? m : "");
    json_decref(doc);
    return message;
}

static void expect_error(struct state_reply *r, long status, const char *message)
{
    if (r->status != status || strcmp(error_message(r->body), message) != 0)
        fail_msg("got %ld %s; wanted %ld %s", r->status, r->body, status, message);
    assert_string_equal(r->etag, "");
    reply_free(r);
}

/* --- state records ------------------------------------------------------------------------------ */

/* A sync record of stream's life since, ready, with these public fields
 * and provisioning numbers (eager_admitted). */
static void publish_sync(struct fixture *f, const char *stream, int64_t since, long viewer_count, long raised, long cap,
                         json_t *speakers, json_t *viewers, long eager_admitted)
{
    json_t *record = json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i}", "status", "ready", "since", (json_int_t)since,
                               "host", "alice", "service_sid", SERVICE_SID, "viewer_count", (int)viewer_count,
                               "raised_hands", (int)raised, "raised_hands_cap", (int)cap);
    assert_non_null(record);
    if (speakers)
        json_object_set_new(record, "speakers", speakers);
    if (viewers)
        json_object_set_new(record, "viewers_listed", viewers);
    if (eager_admitted >= 0)
        json_object_set_new(record, "provisioning",
                            json_pack("{s:i, s:i, s:i, s:i, s:i}", "eager_limit", 1000, "eager_admitted",
                                      (int)eager_admitted, "provisioned", 7, "backlog", 5, "oldest_wait_ms", 1234));
    publish_state(f, stream, "sync", record);
}

static json_t *two_speakers(void)
{
    return json_pack("[{s:s, s:b}, {s:s, s:b}]", "identity", "alice", "host", 1, "identity", "Zo\xc3\xab K", "host", 0);
}

/* Waits until the public state of path holds needle (a piece of its
 * JSON text); returns it parsed and copies its ETag into etag. */
static json_t *wait_state(struct fixture *f, const char *path, const char *needle, char etag[128])
{
    for (int i = 0; i < 200; i++) {
        struct state_reply r = get_state(f, path, NULL);
        if (r.status == 200 && strstr(r.body, needle)) {
            json_t *doc = json_loads(r.body, 0, NULL);
            assert_non_null(doc);
            snprintf(etag, 128, "%s", r.etag);
            reply_free(&r);
            return doc;
        }
        reply_free(&r);
        usleep(50 * 1000);
    }
    fail_msg("%s never showed %s", path, needle);
    return NULL;
}

/* A 304 and another request on one connection: the 304 must carry no
 * body bytes, or the next answer would be read from the middle of them;
 * and a Content-Length it states is 0 (libmicrohttpd's) or the 200's. */
static void expect_304_has_no_body(struct fixture *f, size_t body_len)
{
    int port = 0;
    if (sscanf(f->s.ingress_url, "http://127.0.0.1:%d", &port) != 1)
        fail_msg("cannot read the port of %s", f->s.ingress_url);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    static const char requests[] = "GET /streams/friday/state HTTP/1.1\r\nHost: t\r\n" PASSCODE_HEADER
                                   "\r\nIf-None-Match: *\r\n\r\n"
                                   "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, requests, sizeof requests - 1, MSG_NOSIGNAL), (ssize_t)(sizeof requests - 1));
    char answer[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof answer - 1 && (n = recv(fd, answer + len, sizeof answer - 1 - len, 0)) > 0)
        len += (size_t)n;
    close(fd);
    answer[len] = '\0';
    const char *end = strstr(answer, "\r\n\r\n");
    if (strncmp(answer, "HTTP/1.1 304 ", 13) != 0 || !end || strncmp(end + 4, "HTTP/1.1 200 ", 13) != 0)
        fail_msg("a 304 then a 200 on one connection, got: %s", answer);
    char length[64];
    snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
    const char *stated = strcasestr(answer, "Content-Length:");
    if (stated && stated < end && strncasecmp(stated, length, strlen(length)) != 0 &&
        strncasecmp(stated, "Content-Length: 0\r\n", 19) != 0)
        fail_msg("the 304 states another length than the 200's (%zu): %s", body_len, answer);
}

/* --- tests: the public state ---------------------------------------------------------------------- */

static void test_public_state(void **state)
{
    struct fixture *f = *state;
    char etag[128], second[128];
    publish_live_stream(f, "friday", "alice", 0, 100);
    publish_sync(f, "friday", 1000, 42, 1, 2, two_speakers(), json_pack("[s, s]", "carol", "dave"), 3);
    wait_stream_status(f, "friday", "live");
    json_t *doc = wait_state(f, "/streams/friday/state", "\"viewer_count\":42", etag);

    /* Exactly the public fields, nothing else. */
    json_t *want = json_pack("{s:s, s:s, s:s, s:o, s:i, s:[s, s], s:i, s:i, s:b}", "stream", "friday", "status", "live",
                             "host", "alice", "speakers", two_speakers(), "viewer_count", 42, "viewers", "carol",
                             "dave", "raised_hands", 1, "raised_hands_cap", 2, "hand_queue_full", 0);
    if (!json_equal(doc, want)) {
        char *got = json_dumps(doc, JSON_COMPACT);
        fail_msg("the public state is %s", got);
    }
    json_decref(want);
    json_decref(doc);

    struct state_reply r = get_state(f, "/streams/friday/state", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache_control, "public, max-age=1");
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(strlen(r.etag), 34); /* a quote, 32 hex digits, a quote */
    assert_true(r.etag[0] == '"' && r.etag[33] == '"');
    assert_string_equal(r.etag, etag); /* the same body, the same tag */
    assert_null(strstr(r.body, "RM"));
    assert_null(strstr(r.body, "IS0"));
    assert_null(strstr(r.body, "playback"));
    assert_null(strstr(r.body, "provisioning"));
    size_t body_len = strlen(r.body);
    reply_free(&r);

    /* Revalidation: the tag itself, weak, in a list, or "*": 304, no body,
     * no type. (Its Content-Length is 0: libmicrohttpd adds one, see api.c.) */
    char weak[160], list[300];
    snprintf(weak, sizeof weak, "W/%s", etag);
    snprintf(list, sizeof list, "\"nope\", W/\"older\" ,%s", etag);
    const char *matching[] = {etag, weak, list, "*"};
    for (int i = 0; i < 4; i++) {
        r = get_state(f, "/streams/friday/state", matching[i]);
        if (r.status != 304)
            fail_msg("If-None-Match: %s got %ld, not 304", matching[i], r.status);
        assert_string_equal(r.body, "");
        assert_string_equal(r.etag, etag);
        assert_string_equal(r.cache_control, "public, max-age=1");
        assert_true(r.content_length <= 0 || r.content_length == (long)body_len);
        assert_string_equal(r.content_type, "");
        reply_free(&r);
    }
    expect_304_has_no_body(f, body_len);
    /* Another tag, a malformed field: the whole answer. */
    const char *other[] = {"\"nope\"", "W/\"nope\", \"also-not\"", etag + 1, "*, \"x\""};
    for (int i = 0; i < 4; i++) {
        r = get_state(f, "/streams/friday/state", other[i]);
        if (r.status != 200)
            fail_msg("If-None-Match: %s got %ld, not 200", other[i], r.status);
        assert_int_equal(strlen(r.body), body_len);
        reply_free(&r);
    }

    /* HEAD: the same headers, no body. */
    const char *head_headers[] = {PASSCODE_HEADER, NULL};
    r = fetch(f, "HEAD", "/streams/friday/state", head_headers);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, etag);
    assert_string_equal(r.body, "");
    assert_int_equal(r.content_length, (long)body_len);
    reply_free(&r);

    /* A change: a new tag, the old one no longer matches. */
    publish_sync(f, "friday", 1000, 43, 2, 2, two_speakers(), json_pack("[s]", "carol"), 4);
    doc = wait_state(f, "/streams/friday/state", "\"viewer_count\":43", second);
    assert_string_not_equal(second, etag);
    assert_int_equal(json_integer_value(json_object_get(doc, "viewer_count")), 43);
    assert_true(json_is_true(json_object_get(doc, "hand_queue_full")));
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 1);
    json_decref(doc);
    r = get_state(f, "/streams/friday/state", etag);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, second);
    reply_free(&r);
    r = get_state(f, "/streams/friday/state", second);
    assert_int_equal(r.status, 304);
    reply_free(&r);

    /* Credentials are needed, as for the other client endpoints. */
    r = fetch(f, "GET", "/streams/friday/state", NULL);
    expect_error(&r, 401, "passcode incorrect");
    const char *wrong[] = {"Authorization: 4242", NULL};
    r = fetch(f, "GET", "/streams/friday/state", wrong);
    expect_error(&r, 401, "passcode incorrect");

    /* Unknown streams, other methods, bad paths. */
    const char *auth[] = {PASSCODE_HEADER, NULL};
    r = fetch(f, "GET", "/streams/nope/state", auth);
    expect_error(&r, 404, "stream not found");
    r = fetch(f, "POST", "/streams/friday/state", auth);
    expect_error(&r, 405, "method not allowed");
    r = fetch(f, "GET", "/streams/fri%2Fday/state", auth);
    expect_error(&r, 400, "invalid stream name");
    r = fetch(f, "GET", "/streams/fri%zzday/state", auth);
    expect_error(&r, 400, "invalid path");
    r = fetch(f, "GET", "/streams/friday%/state", auth);
    expect_error(&r, 400, "invalid path");
    r = fetch(f, "GET", "/streams//state", auth);
    expect_error(&r, 400, "invalid stream name");
    /* Escapes that decode to a valid name are the name; a query is ignored. */
    r = fetch(f, "GET", "/streams/%66riday/state?t=1", auth);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, second);
    reply_free(&r);

    /* The operators' view shows the provisioning numbers. */
    r = fetch(f, "GET", "/streams/friday", auth);
    assert_int_equal(r.status, 200);
    doc = json_loads(r.body, 0, NULL);
    reply_free(&r);
    want = json_pack("{s:i, s:i, s:i, s:i, s:i}", "backlog", 5, "oldest_wait_ms", 1234, "provisioned", 7,
                     "eager_admitted", 4, "eager_limit", 1000);
    assert_true(json_equal(json_object_get(doc, "provisioning"), want));
    json_decref(want);
    json_decref(doc);

    /* An ended stream still answers, as ended. */
    publish_state(f, "friday", "room",
                  json_pack("{s:s, s:i, s:s, s:s}", "status", "ended", "since", 1000, "host", "alice", "room_sid",
                            ROOM_SID));
    doc = wait_state(f, "/streams/friday/state", "\"status\":\"ended\"", etag);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ended");
    json_decref(doc);
    expect_no_event(f);
}

/* A record from before the new fields, and malformed new fields: read as
 * unknown or empty, the rest of the record kept. */
static void test_old_and_malformed_records(void **state)
{
    struct fixture *f = *state;
    char etag[128];
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    json_t *doc = wait_state(f, "/streams/friday/state", "\"status\":\"live\"", etag);
    assert_int_equal(json_array_size(json_object_get(doc, "speakers")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "viewer_count")), 0);
    json_decref(doc);

    /* A bad identity in viewers_listed, a speaker without identity: both
     * fields dropped; the counts and the stream stay. */
    publish_sync(f, "friday", 1000, 9, 0, 100, json_pack("[{s:b}]", "host", 1), json_pack("[s, s]", "ok", "bad/one"),
                 -1);
    doc = wait_state(f, "/streams/friday/state", "\"viewer_count\":9", etag);
    assert_int_equal(json_integer_value(json_object_get(doc, "viewer_count")), 9);
    assert_int_equal(json_array_size(json_object_get(doc, "speakers")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "live");
    json_decref(doc);
}

static int setup_jwt_mode(void **state)
{
    return setup_ingress_jwt(state);
}

/* jwt mode: any valid token reads the state, the host's or anyone's. */
static void test_public_state_jwt(void **state)
{
    struct fixture *f = *state;
    char *alice = bearer_for("alice", JWT_SECRET), *bob = bearer_for("bob", JWT_SECRET);
    char *forged = bearer_for("bob", "not-the-identity-service-secret");
    f->auth = alice;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    const char *as_bob[] = {bob, NULL}, *as_forger[] = {forged, NULL}, *with_passcode[] = {PASSCODE_HEADER, NULL};
    struct state_reply r = fetch(f, "GET", "/streams/friday/state", as_bob);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    r = fetch(f, "GET", "/streams/friday/state", NULL);
    expect_error(&r, 401, "invalid token");
    r = fetch(f, "GET", "/streams/friday/state", as_forger);
    expect_error(&r, 401, "invalid token");
    r = fetch(f, "GET", "/streams/friday/state", with_passcode);
    expect_error(&r, 401, "invalid token");
    f->auth = NULL;
    free(alice);
    free(bob);
    free(forged);
}

/* --- tests: the viewer tiers --------------------------------------------------------------------------- */

static int setup_three_eager(void **state)
{
    static const char *const env[] = {"SYNC_EAGER_VIEWERS=3", NULL};
    return fixture_setup_ingress(state, env);
}

/* Joins stream as role; checks the answer's sync_access and
 * public_state_url and the event's sync_access, both equal to expected. */
static void join(struct fixture *f, const char *stream, const char *identity, const char *role, int expected)
{
    char body[256], path[64], url[256];
    char *encoded = percent_encode(stream, strlen(stream));
    assert_non_null(encoded);
    snprintf(url, sizeof url, TEST_PUBLIC_BASE_URL "/streams/%s/state", encoded);
    free(encoded);
    snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"%s\"}", identity, stream);
    snprintf(path, sizeof path, "/join-stream-as-%s", role);
    json_t *answer;
    assert_int_equal(post(f, path, body, &answer), 200);
    const json_t *access = json_object_get(answer, "sync_access");
    if (!json_is_boolean(access) || json_is_true(access) != expected)
        fail_msg("%s joining %s as %s: sync_access is not %s", identity, stream, role, expected ? "true" : "false");
    assert_string_equal(json_string_value(json_object_get(answer, "public_state_url")), url);
    assert_non_null(json_object_get(answer, "token"));
    assert_non_null(json_object_get(answer, "room_sid"));
    assert_true(json_is_false(json_object_get(answer, "chat_enabled")));
    assert_non_null(json_object_get(json_object_get(answer, "sync_object_names"), "user_document"));
    json_decref(answer);
    json_t *data = expect_event(f, "user.joined", stream, NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), identity);
    assert_string_equal(json_string_value(json_object_get(data, "role")), role);
    assert_true(json_is_boolean(json_object_get(data, "sync_access")));
    assert_int_equal(json_is_true(json_object_get(data, "sync_access")), expected);
    json_decref(data);
}

static void test_eager_tier(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");

    /* The first three viewers in join order; speakers always. */
    join(f, "friday", "v1", "viewer", 1);
    join(f, "friday", "v2", "viewer", 1);
    join(f, "friday", "bob", "speaker", 1);
    join(f, "friday", "v3", "viewer", 1);
    join(f, "friday", "v4", "viewer", 0);
    join(f, "friday", "v5", "viewer", 0);
    join(f, "friday", "carol", "speaker", 1);

    /* The view lagging behind (fewer admissions than counted here) does
     * not reopen the tier. */
    publish_sync(f, "friday", 1000, 5, 0, 100, NULL, NULL, 1);
    char etag[128];
    json_decref(wait_state(f, "/streams/friday/state", "\"viewer_count\":5", etag));
    join(f, "friday", "v6", "viewer", 0);

    /* A new life of the stream counts from zero again. */
    int64_t since = 2000;
    publish_state(f, "friday", "room",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host", "alice",
                            "room_sid", ROOM_SID));
    publish_sync(f, "friday", since, 0, 0, 100, NULL, NULL, -1);
    publish_state(f, "friday", "stream",
                  json_pack("{s:s, s:I, s:s, s:s, s:{s:s}, s:I}", "status", "ready", "since", (json_int_t)since,
                            "player_streamer_sid", STREAMER_SID, "media_processor_sid", PROCESSOR_SID, "playback_grant",
                            "playbackUrl", "https://play.example/2.m3u8", "playback_grant_expires_ms",
                            (json_int_t)(time_now_ms() + 3600 * 1000)));
    json_decref(wait_state(f, "/streams/friday/state", "\"viewer_count\":0", etag)); /* the new life's */
    join(f, "friday", "v7", "viewer", 1);
    expect_no_event(f);
}

/* A process that has not admitted anyone yet starts from the view's
 * eager_admitted; the URL of a name with a space is percent-encoded. */
static void test_eager_tier_from_view(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "late show", "alice", 0, 100);
    publish_sync(f, "late show", 1000, 2, 0, 100, NULL, NULL, 2);
    wait_stream_status(f, "late%20show", "live");
    char etag[128];
    json_t *doc = wait_state(f, "/streams/late%20show/state", "\"viewer_count\":2", etag);
    json_decref(doc);
    json_t *answer;
    assert_int_equal(post(f, "/streams/late%20show", NULL, &answer), 405); /* GET only */
    json_decref(answer);
    struct state_reply r = fetch(f, "GET", "/streams/late%20show", (const char *const[]){PASSCODE_HEADER, NULL});
    doc = json_loads(r.body, 0, NULL);
    reply_free(&r);
    int known = json_integer_value(json_object_get(json_object_get(doc, "provisioning"), "eager_admitted")) == 2;
    json_decref(doc);
    assert_true(known);
    join(f, "late show", "v3", "viewer", 1);
    join(f, "late show", "v4", "viewer", 0);
    expect_no_event(f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_public_state, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_old_and_malformed_records, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_public_state_jwt, setup_jwt_mode, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_eager_tier, setup_three_eager, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_eager_tier_from_view, setup_three_eager, fixture_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
