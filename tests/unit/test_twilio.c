/* Tests of common/twilio against a real HTTP server run inside the test
 * (libmicrohttpd on 127.0.0.1): the server answers from a script of canned
 * responses and records every request it receives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "twilio.h"

#define SECRET "twilio-test-secret-never-shown"
#define KEY_SID "SK0123456789abcdef0123456789abcdef"

struct canned {
    unsigned status;
    const char *body;
    const char *header_name, *header_value;
    int delay_ms;
};

struct recorded {
    char method[16];
    char url[1024];
    char query[128];
    char auth[256];
    char if_match[64];
    char content_type[128];
    char body[4096];
};

struct server {
    struct MHD_Daemon *daemon;
    unsigned port;
    pthread_mutex_t lock;
    const struct canned *script;
    size_t script_len, next;
    struct recorded requests[16];
    size_t nrequests;
    int connections;
};

struct upload {
    char data[4096];
    size_t len;
};

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)conn;
    (void)socket_ctx;
    struct server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
    }
}

static void copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t outlen)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(out, outlen, "%s", v ? v : "");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(struct upload));
        return MHD_YES;
    }
    struct upload *up = *con_cls;
    if (*upload_size) {
        size_t n = *upload_size < sizeof up->data - 1 - up->len ? *upload_size : sizeof up->data - 1 - up->len;
        memcpy(up->data + up->len, upload_data, n);
        up->len += n;
        *upload_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&s->lock);
    struct recorded *r = &s->requests[s->nrequests < 16 ? s->nrequests : 15];
    s->nrequests++;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->url, sizeof r->url, "%s", url); /* the path, decoded by MHD */
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "Status");
    const char *page = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "PageSize");
    snprintf(r->query, sizeof r->query, "Status=%s PageSize=%s", status ? status : "-", page ? page : "-");
    copy_header(conn, "Authorization", r->auth, sizeof r->auth);
    copy_header(conn, "If-Match", r->if_match, sizeof r->if_match);
    copy_header(conn, "Content-Type", r->content_type, sizeof r->content_type);
    memcpy(r->body, up->data, up->len);
    r->body[up->len] = '\0';
    const struct canned *c = s->next < s->script_len ? &s->script[s->next++] : NULL;
    pthread_mutex_unlock(&s->lock);

    static const struct canned missing = {500, "{\"code\":20500,\"message\":\"script exhausted\"}", NULL, NULL, 0};
    if (!c)
        c = &missing;
    if (c->delay_ms) {
        struct timespec ts = {c->delay_ms / 1000, (c->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(c->body), (void *)c->body,
                                                                MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (c->header_name)
        MHD_add_response_header(resp, c->header_name, c->header_value);
    enum MHD_Result ret = MHD_queue_response(conn, c->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static struct server *server_start(const struct canned *script, size_t n)
{
    struct server *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->script = script;
    s->script_len = n;
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle,
                                 s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_NOTIFY_COMPLETED,
                                 request_done, NULL, MHD_OPTION_END);
    assert_non_null(s->daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info->port;
    return s;
}

static void server_stop(struct server *s)
{
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static long slept[16];
static int nslept;

static void record_sleep(long ms)
{
    if (nslept < 16)
        slept[nslept++] = ms;
}

static double always_one(void)
{
    return 1.0;
}

static struct twilio_client *client_for(struct server *s, int max_retries, long timeout_ms)
{
    static char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", s->port);
    struct twilio_options opt = {
        .account_sid = "AC0123456789abcdef0123456789abcdef",
        .api_key_sid = KEY_SID,
        .api_key_secret = SECRET,
        .api_base = base,
        .timeout_ms = timeout_ms,
        .max_retries = max_retries,
        .retry_base_ms = 100,
        .retry_max_ms = 1000,
        .sleep_ms = record_sleep,
        .random01 = always_one,
    };
    nslept = 0;
    char err[256];
    struct twilio_client *c = twilio_client_new(&opt, err, sizeof err);
    if (!c)
        fail_msg("client: %s", err);
    return c;
}

static void test_room_create_request_shape(void **state)
{
    (void)state;
    static const struct canned script[] = {
        {201, "{\"sid\":\"RM0123456789abcdef0123456789abcdef\",\"unique_name\":\"friday\"}", NULL, NULL, 0},
    };
    struct server *s = server_start(script, 1);
    struct twilio_client *c = client_for(s, 0, 5000);
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "UniqueName", "friday townhall");
    twilio_form_add(&form, "Type", "group");
    twilio_form_add_bool(&form, "RecordParticipantsOnConnect", 0);
    twilio_form_add_int(&form, "MaxParticipants", 50);
    twilio_form_add(&form, "VideoCodecs", "VP8");
    twilio_form_add(&form, "VideoCodecs", "H264");
    json_t *rules = json_pack("{s:[{s:s,s:b}]}", "rules", "type", "include", "all", 1);
    twilio_form_add_json(&form, "RecordingRules", rules);
    json_decref(rules);

    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    assert_int_equal(res.outcome, TWILIO_OK);
    assert_int_equal(res.http_status, 201);
    assert_int_equal(res.attempts, 1);
    assert_string_equal(json_string_value(json_object_get(res.body, "unique_name")), "friday");

    const struct recorded *r = &s->requests[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/v1/Rooms");
    assert_string_equal(r->content_type, "application/x-www-form-urlencoded");
    assert_string_equal(
        r->body, "UniqueName=friday%20townhall&Type=group&RecordParticipantsOnConnect=false"
                 "&MaxParticipants=50&VideoCodecs=VP8&VideoCodecs=H264"
                 "&RecordingRules=%7B%22rules%22%3A%5B%7B%22type%22%3A%22include%22%2C%22all%22%3Atrue%7D%5D%7D");
    char expected_auth[256], creds[128];
    snprintf(creds, sizeof creds, "%s:%s", KEY_SID, SECRET);
    char b64[200];
    base64_encode((const unsigned char *)creds, strlen(creds), b64);
    snprintf(expected_auth, sizeof expected_auth, "Basic %s", b64);
    assert_string_equal(r->auth, expected_auth);

    twilio_result_free(&res);
    kv_free(&form);
    twilio_client_free(c);
    server_stop(s);
}

static void test_paths_and_queries(void **state)
{
    (void)state;
    char path[256];
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", "my room", "dj \xf0\x9f\x8e\xa7/1"),
                     0);
    assert_string_equal(path, "/v1/Rooms/my%20room/Participants/dj%20%F0%9F%8E%A7%2F1");
    assert_int_equal(twilio_path(path, 10, "/v1/Rooms/%s", "far too long for ten"), -1);
    assert_int_equal(twilio_path(path, sizeof path, "/v1/%d", 3), -1);

    static const struct canned script[] = {{200, "{\"rooms\":[],\"meta\":{}}", NULL, NULL, 0},
                                           {204, "", NULL, NULL, 0}};
    struct server *s = server_start(script, 2);
    struct twilio_client *c = client_for(s, 0, 5000);
    struct kv_list q;
    kv_init(&q);
    twilio_form_add(&q, "Status", "in-progress");
    twilio_form_add_int(&q, "PageSize", 1000);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms", &q, NULL, &res), 0);
    twilio_result_free(&res);
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "DELETE", "/v1/Services/IS1/Maps/viewers/Items/bob", NULL, "7",
                                    &res),
                     0);
    assert_null(res.body);
    assert_string_equal(s->requests[0].method, "GET");
    assert_string_equal(s->requests[0].body, "");
    assert_string_equal(s->requests[0].query, "Status=in-progress PageSize=1000");
    assert_string_equal(s->requests[1].method, "DELETE");
    assert_string_equal(s->requests[1].if_match, "7");
    kv_free(&q);
    twilio_client_free(c);
    server_stop(s);
}

/* A name that is empty, "." or ".." would turn a path into another
 * resource's (issue 15: a viewer called ".." deleted the raised_hands map):
 * twilio_path refuses it in any position and leaves out empty. */
static void test_path_refuses_dot_segments(void **state)
{
    (void)state;
    char path[TWILIO_PATH_MAX];
    static const char *const refused[] = {".", "..", ""};
    for (int i = 0; i < 3; i++) {
        strcpy(path, "stale");
        assert_int_equal(twilio_path(path, sizeof path, "/v1/Services/%s/Maps/raised_hands/Items/%s", "IS1",
                                     refused[i]),
                         -1);
        assert_string_equal(path, "");
        assert_int_equal(twilio_path(path, sizeof path, "/v1/Services/%s/Maps/%s/Items/%s", "IS1", refused[i], "bob"),
                         -1);
        assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", refused[i], "bob"), -1);
    }
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s", (const char *)NULL), -1);
    /* Dots inside a name are ordinary characters. */
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", "RM1", "..."), 0);
    assert_string_equal(path, "/v1/Rooms/RM1/Participants/...");
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", ".a", "J. R. R."), 0);
    assert_string_equal(path, "/v1/Rooms/.a/Participants/J.%20R.%20R.");
    /* "%2E%2E" is a name like any other: its '%' is encoded, so no server
     * can decode it into a dot segment. */
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s", "%2E%2E"), 0);
    assert_string_equal(path, "/v1/Rooms/%252E%252E");

    /* The longest identity, 128 four-byte characters, fits TWILIO_PATH_MAX
     * even where a path names it twice (a permission on the user's document). */
    char identity[128 * 4 + 1];
    for (int i = 0; i < 128; i++)
        memcpy(identity + 4 * i, "\xf0\x9f\x8e\xa4", 4);
    identity[128 * 4] = '\0';
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Services/%s/Documents/user-%s/Permissions/%s",
                                 "IS0123456789abcdef0123456789abcdef", identity, identity),
                     0);
}

/* Paths go out as given (CURLOPT_PATH_AS_IS): libcurl would otherwise
 * resolve ".." and send DELETE .../Maps/raised_hands/ instead. */
static void test_path_sent_as_is(void **state)
{
    (void)state;
    static const struct canned script[] = {
        {404, "{\"code\":20404,\"message\":\"not found\",\"status\":404}", NULL, NULL, 0},
        {404, "{\"code\":20404,\"message\":\"not found\",\"status\":404}", NULL, NULL, 0},
    };
    struct server *s = server_start(script, 2);
    struct twilio_client *c = client_for(s, 0, 5000);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "DELETE", "/v1/Services/IS1/Maps/raised_hands/Items/..", NULL, NULL,
                                    &res),
                     -1);
    assert_int_equal(res.outcome, TWILIO_NOT_FOUND);
    twilio_result_free(&res);
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/Services/IS1/Maps/./Items", NULL, NULL, &res), -1);
    twilio_result_free(&res);
    assert_int_equal(s->nrequests, 2);
    assert_string_equal(s->requests[0].method, "DELETE");
    assert_string_equal(s->requests[0].url, "/v1/Services/IS1/Maps/raised_hands/Items/..");
    assert_string_equal(s->requests[1].url, "/v1/Services/IS1/Maps/./Items");
    twilio_client_free(c);
    server_stop(s);
}

static void test_error_shapes_and_classification(void **state)
{
    (void)state;
    static const struct canned script[] = {
        {400,
         "{\"code\":53113,\"message\":\"Room exists\",\"more_info\":\"https://www.twilio.com/docs/errors/53113\",\"status\":400}",
         NULL, NULL, 0},
        {409, "{\"code\":54208,\"message\":\"Item already exists\",\"status\":409}", NULL, NULL, 0},
        {409, "{\"code\":54301,\"message\":\"Unique name already exists\",\"status\":409}", NULL, NULL, 0},
        {404, "{\"code\":20404,\"message\":\"The requested resource was not found\",\"status\":404}", NULL, NULL, 0},
        {400,
         "{\"type\":\"https://www.twilio.com/docs/errors/20001\",\"title\":\"Missing parameter\",\"status\":400,\"code\":20001,\"detail\":\"Status is required\"}",
         NULL, NULL, 0},
        {400, "<html>Bad request</html>", NULL, NULL, 0},
        {403, "", NULL, NULL, 0},
    };
    struct server *s = server_start(script, 7);
    struct twilio_client *c = client_for(s, 3, 5000);
    static const struct {
        enum twilio_outcome outcome;
        int code;
        const char *message;
    } want[] = {
        {TWILIO_EXISTS, 53113, "Room exists"},
        {TWILIO_EXISTS, 54208, "Item already exists"},
        {TWILIO_EXISTS, 54301, "Unique name already exists"},
        {TWILIO_NOT_FOUND, 20404, "The requested resource was not found"},
        {TWILIO_PERMANENT, 20001, "Missing parameter: Status is required"},
        {TWILIO_PERMANENT, 400, "HTTP 400"},
        {TWILIO_PERMANENT, 403, "HTTP 403"},
    };
    for (size_t i = 0; i < 7; i++) {
        struct twilio_result res;
        assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/Services", NULL, NULL, &res), -1);
        assert_int_equal(res.outcome, want[i].outcome);
        assert_int_equal(res.code, want[i].code);
        assert_string_equal(res.message, want[i].message);
        assert_int_equal(res.attempts, 1); /* none of these is retried */
        assert_null(strstr(res.message, SECRET));
        twilio_result_free(&res);
    }
    twilio_client_free(c);
    server_stop(s);
}

static void test_retries(void **state)
{
    (void)state;
    static const struct canned script[] = {
        {429, "{\"code\":54009,\"message\":\"Rate limit exceeded\"}", "Retry-After", "2", 0},
        {200, "{\"ok\":true}", "ETag", "\"12\"", 0},
        {503, "{\"code\":20503,\"message\":\"Service is unavailable. Please try again\"}", NULL, NULL, 0},
        {500, "oops", NULL, NULL, 0},
        {201, "{}", NULL, NULL, 0},
        {503, "", NULL, NULL, 0},
        {503, "", NULL, NULL, 0},
        {503, "", NULL, NULL, 0},
    };
    struct server *s = server_start(script, 8);
    struct twilio_client *c = client_for(s, 2, 5000);
    struct twilio_result res;

    assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/x", NULL, NULL, &res), 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(nslept, 1);
    assert_true(slept[0] >= 2000);
    assert_string_equal(res.etag, "\"12\"");
    twilio_result_free(&res);

    nslept = 0;
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/x", NULL, NULL, &res), 0);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(nslept, 2);
    assert_int_equal(slept[0], 100); /* random 1.0: the full step */
    assert_int_equal(slept[1], 200);
    twilio_result_free(&res);

    nslept = 0;
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/x", NULL, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_RETRYABLE);
    assert_int_equal(res.attempts, 3); /* max_retries + 1 */
    twilio_result_free(&res);
    twilio_client_free(c);
    server_stop(s);
}

static void test_no_retry_when_caller_schedules(void **state)
{
    (void)state;
    static const struct canned script[] = {
        {429, "{\"code\":20429,\"message\":\"Too many requests\"}", "Retry-After", "3", 0},
    };
    struct server *s = server_start(script, 1);
    struct twilio_client *c = client_for(s, 0, 5000);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", NULL, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_RATE_LIMITED);
    assert_int_equal(res.code, 20429);
    assert_int_equal(res.retry_after_ms, 3000);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(nslept, 0);
    twilio_result_free(&res);
    twilio_client_free(c);
    server_stop(s);
}

static void test_timeout_and_unreachable(void **state)
{
    (void)state;
    static const struct canned script[] = {{200, "{}", NULL, NULL, 1500}};
    struct server *s = server_start(script, 1);
    struct twilio_client *c = client_for(s, 0, 300);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms/x", NULL, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_RETRYABLE);
    assert_int_equal(res.http_status, 0);
    assert_non_null(strcasestr(res.message, "timeout") ? res.message : strcasestr(res.message, "timed out"));
    assert_null(strstr(res.message, SECRET));
    twilio_result_free(&res);
    twilio_client_free(c);
    server_stop(s);

    /* Nothing listens on the port any more. */
    struct twilio_options opt = {.account_sid = "AC1",
                                 .api_key_sid = KEY_SID,
                                 .api_key_secret = SECRET,
                                 .api_base = "http://127.0.0.1:1",
                                 .timeout_ms = 1000,
                                 .retry_base_ms = 1,
                                 .retry_max_ms = 1};
    char err[128];
    c = twilio_client_new(&opt, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms", NULL, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_RETRYABLE);
    assert_null(strstr(res.message, SECRET));
    twilio_result_free(&res);
    twilio_client_free(c);
}

static void test_strange_bodies_never_crash(void **state)
{
    (void)state;
    static char huge[TWILIO_MAX_BODY + 1024];
    memset(huge, ' ', sizeof huge - 1);
    huge[0] = '[';
    static const struct canned script[] = {
        {200, "<html>not json</html>", NULL, NULL, 0},
        {400, "{\"code\":\"not a number\",\"message\":7}", NULL, NULL, 0},
        {400, "{\"code\":99999999999999,\"message\":\"x\"}", NULL, NULL, 0},
        {500, "{\"code\":", NULL, NULL, 0},
        {200, huge, NULL, NULL, 0},
    };
    struct server *s = server_start(script, 5);
    struct twilio_client *c = client_for(s, 0, 5000);
    static const enum twilio_outcome want[] = {TWILIO_RETRYABLE, TWILIO_PERMANENT, TWILIO_PERMANENT, TWILIO_RETRYABLE,
                                               TWILIO_RETRYABLE};
    for (int i = 0; i < 5; i++) {
        struct twilio_result res;
        twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms", NULL, NULL, &res);
        assert_int_equal(res.outcome, want[i]);
        assert_true(res.message[0] != '\0');
        twilio_result_free(&res);
    }
    twilio_client_free(c);
    server_stop(s);
}

static void test_connection_reused(void **state)
{
    (void)state;
    static const struct canned script[] = {{200, "{}", NULL, NULL, 0},
                                           {200, "{}", NULL, NULL, 0},
                                           {201, "{}", NULL, NULL, 0},
                                           {204, "", NULL, NULL, 0}};
    struct server *s = server_start(script, 4);
    struct twilio_client *c = client_for(s, 0, 5000);
    const char *methods[] = {"GET", "GET", "POST", "DELETE"};
    for (int i = 0; i < 4; i++) {
        struct twilio_result res;
        assert_int_equal(twilio_request(c, TWILIO_SYNC, methods[i], "/v1/Services", NULL, NULL, &res), 0);
        twilio_result_free(&res);
    }
    assert_int_equal(s->nrequests, 4);
    assert_int_equal(s->connections, 1);
    twilio_client_free(c);
    server_stop(s);
}

static void test_product_bases(void **state)
{
    (void)state;
    struct twilio_options opt = {.account_sid = "AC1",
                                 .api_key_sid = KEY_SID,
                                 .api_key_secret = SECRET,
                                 .video_base = "https://video.twilio.com",
                                 .sync_base = "https://sync.twilio.com/",
                                 .media_base = "https://media.twilio.com",
                                 .timeout_ms = 1000,
                                 .retry_base_ms = 100,
                                 .retry_max_ms = 1000};
    char err[128];
    struct twilio_client *c = twilio_client_new(&opt, err, sizeof err);
    assert_non_null(c);
    assert_string_equal(twilio_base_url(c, TWILIO_VIDEO), "https://video.twilio.com");
    assert_string_equal(twilio_base_url(c, TWILIO_SYNC), "https://sync.twilio.com");
    assert_string_equal(twilio_base_url(c, TWILIO_MEDIA), "https://media.twilio.com");
    twilio_client_free(c);
    opt.api_base = "http://127.0.0.1:8090";
    c = twilio_client_new(&opt, err, sizeof err);
    for (int p = TWILIO_VIDEO; p <= TWILIO_MEDIA; p++)
        assert_string_equal(twilio_base_url(c, (enum twilio_product)p), "http://127.0.0.1:8090");
    twilio_client_free(c);

    opt.api_base = NULL;
    opt.sync_base = NULL;
    assert_null(twilio_client_new(&opt, err, sizeof err));
    opt.sync_base = "https://sync.twilio.com";
    opt.api_key_secret = "";
    assert_null(twilio_client_new(&opt, err, sizeof err));
    assert_null(strstr(err, SECRET));
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    for (int attempt = 0; attempt < 64; attempt++) {
        for (double r = 0.0; r <= 1.0; r += 0.125) {
            long d = twilio_backoff_ms(attempt, 100, 5000, -1, r);
            long cap = attempt < 6 ? 100L << attempt : 5000;
            if (cap > 5000)
                cap = 5000;
            assert_true(d >= 0 && d <= cap);
        }
    }
    assert_int_equal(twilio_backoff_ms(0, 100, 5000, -1, 0.0), 0);
    assert_int_equal(twilio_backoff_ms(3, 100, 5000, -1, 1.0), 800);
    assert_int_equal(twilio_backoff_ms(0, 100, 5000, 2000, 0.5), 2000);
    assert_int_equal(twilio_backoff_ms(0, 100, 5000, 10 * 60 * 1000, 0.5), TWILIO_MAX_RETRY_AFTER_MS);
    assert_int_equal(twilio_classify(202, 0), TWILIO_OK);
    assert_int_equal(twilio_classify(0, 0), TWILIO_RETRYABLE);
    assert_int_equal(twilio_classify(429, 54009), TWILIO_RATE_LIMITED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_create_request_shape),
        cmocka_unit_test(test_paths_and_queries),
        cmocka_unit_test(test_path_refuses_dot_segments),
        cmocka_unit_test(test_path_sent_as_is),
        cmocka_unit_test(test_error_shapes_and_classification),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_no_retry_when_caller_schedules),
        cmocka_unit_test(test_timeout_and_unreachable),
        cmocka_unit_test(test_strange_bodies_never_crash),
        cmocka_unit_test(test_connection_reused),
        cmocka_unit_test(test_product_bases),
        cmocka_unit_test(test_backoff_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
