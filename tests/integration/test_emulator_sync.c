/* The Twilio emulator's Sync v1 API through common/twilio: services, maps,
 * items with revisions and If-Match, documents, permissions, and the error
 * codes stagehand's sync worker relies on for idempotency; paths with dot or
 * empty segments, sent raw, reach nothing; permission writes count against
 * their object's write budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/fixture.h"
#include "twilio.h"

/* One request; the answer's outcome, status, code, etag and body are kept. */
struct answer {
    enum twilio_outcome outcome;
    long status;
    int code;
    char etag[64];
    json_t *body;
};

static struct answer sync_request(struct fixture *f, const char *method, const char *path, struct kv_list *form,
                                  const char *if_match)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_SYNC, method, path, form, if_match, &res);
    struct answer a = {res.outcome, res.http_status, res.code, "", json_incref(res.body)};
    snprintf(a.etag, sizeof a.etag, "%s", res.etag);
    twilio_result_free(&res);
    if (form)
        kv_free(form);
    return a;
}

/* A form of name/value pairs: form(&kv, "Key", "bob", "Data", "{}", NULL). */
static struct kv_list *form(struct kv_list *kv, ...)
{
    va_list ap;
    kv_init(kv);
    va_start(ap, kv);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (!name)
            break;
        kv_add(kv, name, va_arg(ap, const char *));
    }
    va_end(ap);
    return kv;
}

/* A running emulator with one Sync service made as the sync worker makes it. */
static int setup(void **state)
{
    fixture_setup_emulator(state);
    struct fixture *f = *state;
    struct kv_list kv;
    struct answer a = sync_request(f, "POST", "/v1/Services",
                                   form(&kv, "FriendlyName", "Live Video Stream friday", "AclEnabled", "true",
                                        "ReachabilityWebhooksEnabled", "true", "ReachabilityDebouncingEnabled", "true",
                                        "WebhookUrl", "http://127.0.0.1:9/sync-webhook", NULL),
                                   NULL);
    assert_int_equal(a.status, 201);
    snprintf(f->service, sizeof f->service, "%s", json_string_value(json_object_get(a.body, "sid")));
    assert_int_equal(strncmp(f->service, "IS", 2), 0);
    assert_true(json_is_true(json_object_get(a.body, "acl_enabled")));
    assert_true(json_is_true(json_object_get(a.body, "reachability_debouncing_enabled")));
    assert_int_equal(json_integer_value(json_object_get(a.body, "reachability_debouncing_window")), 5000);
    json_decref(a.body);
    return 0;
}

static void test_maps_and_items(void **state)
{
    struct fixture *f = *state;
    struct kv_list kv;
    char path[512];
    snprintf(path, sizeof path, "/v1/Services/%s/Maps", f->service);
    struct answer a = sync_request(f, "POST", path, form(&kv, "UniqueName", "viewers", NULL), NULL);
    assert_int_equal(a.status, 201);
    assert_int_equal(strncmp(json_string_value(json_object_get(a.body, "sid")), "MP", 2), 0);
    json_decref(a.body);
    a = sync_request(f, "POST", path, form(&kv, "UniqueName", "viewers", NULL), NULL);
    assert_int_equal(a.outcome, TWILIO_EXISTS);
    assert_int_equal(a.code, 54301);

    snprintf(path, sizeof path, "/v1/Services/%s/Maps/viewers/Items", f->service);
    a = sync_request(f, "POST", path, form(&kv, "Key", "Zo\xc3\xab \xf0\x9f\x8e\xa4", "Data", "{}", NULL), NULL);
    assert_int_equal(a.status, 201);
    assert_string_equal(a.etag, "0");
    json_decref(a.body);
    a = sync_request(f, "POST", path, form(&kv, "Key", "Zo\xc3\xab \xf0\x9f\x8e\xa4", "Data", "{}", NULL), NULL);
    assert_int_equal(a.outcome, TWILIO_EXISTS);
    assert_int_equal(a.code, 54208);
    a = sync_request(f, "POST", path, form(&kv, "Key", "alice", "Data", "{\"host\":true}", NULL), NULL);
    json_decref(a.body);

    /* Listed in key order (bytewise: "Z" sorts before "a"), or reversed. */
    a = sync_request(f, "GET", path, NULL, NULL);
    json_t *items = json_object_get(a.body, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "key")), "alice");
    json_decref(a.body);
    struct kv_list q;
    a = sync_request(f, "GET", path, form(&q, "Order", "desc", NULL), NULL);
    items = json_object_get(a.body, "items");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "key")), "alice");
    json_decref(a.body);

    /* Update with the right revision, then with a stale one. */
    char item[512];
    assert_int_equal(twilio_path(item, sizeof item, "/v1/Services/%s/Maps/viewers/Items/%s", f->service, "alice"), 0);
    a = sync_request(f, "POST", item, form(&kv, "Data", "{\"host\":false}", NULL), "0");
    assert_int_equal(a.status, 200);
    assert_string_equal(a.etag, "1");
    assert_true(json_is_false(json_object_get(json_object_get(a.body, "data"), "host")));
    json_decref(a.body);
    a = sync_request(f, "POST", item, form(&kv, "Data", "{\"host\":true}", NULL), "0");
    assert_int_equal(a.status, 412);
    assert_int_equal(a.code, 54205);
    assert_int_equal(a.outcome, TWILIO_PERMANENT);

    /* Bad data. */
    a = sync_request(f, "POST", path, form(&kv, "Key", "bob", "Data", "not json", NULL), NULL);
    assert_int_equal(a.code, 54008);
    a = sync_request(f, "POST", path, form(&kv, "Key", "bob", NULL), NULL);
    assert_int_equal(a.code, 20001);
    char *big = malloc(20000);
    memset(big, 'x', 19990);
    memcpy(big, "{\"a\":\"", 6);
    strcpy(big + 19990, "\"}");
    a = sync_request(f, "POST", path, form(&kv, "Key", "bob", "Data", big, NULL), NULL);
    free(big);
    assert_int_equal(a.status, 413);
    assert_int_equal(a.code, 54006);

    /* Delete, then it is gone; deleting again is "not found". */
    a = sync_request(f, "DELETE", item, NULL, NULL);
    assert_int_equal(a.status, 204);
    a = sync_request(f, "GET", item, NULL, NULL);
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);
    a = sync_request(f, "DELETE", item, NULL, NULL);
    assert_int_equal(a.code, 20404);
}

static void test_documents(void **state)
{
    struct fixture *f = *state;
    struct kv_list kv;
    char path[512], doc[512];
    snprintf(path, sizeof path, "/v1/Services/%s/Documents", f->service);
    struct answer a = sync_request(f, "POST", path,
                                   form(&kv, "UniqueName", "user-bob", "Data", "{\"speaker_invite\":false}", NULL),
                                   NULL);
    assert_int_equal(a.status, 201);
    assert_int_equal(strncmp(json_string_value(json_object_get(a.body, "sid")), "ET", 2), 0);
    json_decref(a.body);
    a = sync_request(f, "POST", path, form(&kv, "UniqueName", "user-bob", NULL), NULL);
    assert_int_equal(a.outcome, TWILIO_EXISTS);
    assert_int_equal(a.code, 54301);

    snprintf(doc, sizeof doc, "/v1/Services/%s/Documents/user-bob", f->service);
    a = sync_request(f, "POST", doc, form(&kv, "Data", "{\"speaker_invite\":true}", NULL), NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(json_string_value(json_object_get(a.body, "revision")), "1");
    json_decref(a.body);
    a = sync_request(f, "POST", doc, form(&kv, "Data", "{}", NULL), "0");
    assert_int_equal(a.status, 412);
    assert_int_equal(a.code, 54103);
    a = sync_request(f, "GET", doc, NULL, NULL);
    assert_true(json_is_true(json_object_get(json_object_get(a.body, "data"), "speaker_invite")));
    assert_string_equal(a.etag, "1");
    json_decref(a.body);
    a = sync_request(f, "DELETE", doc, NULL, NULL);
    assert_int_equal(a.status, 204);
    a = sync_request(f, "GET", doc, NULL, NULL);
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);
}

static void test_permissions_and_services(void **state)
{
    struct fixture *f = *state;
    struct kv_list kv;
    char path[512];
    snprintf(path, sizeof path, "/v1/Services/%s/Maps", f->service);
    json_decref(sync_request(f, "POST", path, form(&kv, "UniqueName", "speakers", NULL), NULL).body);

    assert_int_equal(twilio_path(path, sizeof path, "/v1/Services/%s/Maps/speakers/Permissions/%s", f->service,
                                 "Zo\xc3\xab"),
                     0);
    struct answer a = sync_request(f, "POST", path, form(&kv, "Read", "true", "Write", "false", NULL), NULL);
    assert_int_equal(a.status, 400);
    assert_int_equal(a.code, 20001);
    a = sync_request(f, "POST", path, form(&kv, "Read", "true", "Write", "false", "Manage", "false", NULL), NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(json_string_value(json_object_get(a.body, "identity")), "Zo\xc3\xab");
    assert_true(json_is_true(json_object_get(a.body, "read")));
    assert_true(json_is_false(json_object_get(a.body, "write")));
    json_decref(a.body);
    a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.status, 200);
    json_decref(a.body);
    a = sync_request(f, "DELETE", path, NULL, NULL);
    assert_int_equal(a.status, 204);
    a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);

    a = sync_request(f, "POST", "/v1/Services", form(&kv, "ReachabilityDebouncingWindow", "50", NULL), NULL);
    assert_int_equal(a.outcome, TWILIO_PERMANENT);
    snprintf(path, sizeof path, "/v1/Services/%s", f->service);
    a = sync_request(f, "POST", path, form(&kv, "ReachabilityDebouncingWindow", "10000", NULL), NULL);
    assert_int_equal(json_integer_value(json_object_get(a.body, "reachability_debouncing_window")), 10000);
    json_decref(a.body);
    a = sync_request(f, "DELETE", path, NULL, NULL);
    assert_int_equal(a.status, 204);
    a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/speakers", f->service);
    a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);
}

/* Twilio's per-object write limit, made slow enough that no refill happens
 * during the test: 5 writes of budget, one more every 100 s. */
static void test_write_limit_stats_and_reset(void **state)
{
    (void)state;
    struct fixture f = {0};
    char err[256];
    const char *args[] = {"--sync-write-rate", "0.01", "--sync-burst-s", "500", NULL};
    if (emulator_start(&f.emu, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    f.emu_client = emulator_client(&f.emu, err, sizeof err);
    struct kv_list kv;
    struct answer a = sync_request(&f, "POST", "/v1/Services", NULL, NULL);
    char path[256], map_sid[40];
    snprintf(path, sizeof path, "/v1/Services/%s/Maps", json_string_value(json_object_get(a.body, "sid")));
    json_decref(a.body);
    a = sync_request(&f, "POST", path, form(&kv, "UniqueName", "raised_hands", NULL), NULL);
    snprintf(map_sid, sizeof map_sid, "%s", json_string_value(json_object_get(a.body, "sid")));
    json_decref(a.body);
    strcat(path, "/raised_hands/Items");
    for (int i = 0; i < 5; i++) {
        char key[32];
        snprintf(key, sizeof key, "viewer-%d", i);
        a = sync_request(&f, "POST", path, form(&kv, "Key", key, "Data", "{}", NULL), NULL);
        assert_int_equal(a.status, 201);
        json_decref(a.body);
    }
    a = sync_request(&f, "POST", path, form(&kv, "Key", "viewer-5", "Data", "{}", NULL), NULL);
    assert_int_equal(a.status, 429);
    assert_int_equal(a.code, 54009);
    assert_int_equal(a.outcome, TWILIO_RATE_LIMITED);

    /* The emulator's own view: what was written, and what was refused. */
    struct twilio_client *own = f.emu_client;
    struct twilio_result res;
    assert_int_equal(twilio_request(own, TWILIO_SYNC, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "responses_429")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res.body, "sync_writes"), map_sid)), 5);
    twilio_result_free(&res);
    assert_int_equal(twilio_request(own, TWILIO_SYNC, "GET", "/_emulator/state", NULL, NULL, &res), 0);
    json_t *service = json_array_get(json_object_get(res.body, "sync_services"), 0);
    json_t *items = json_object_get(json_array_get(json_object_get(service, "maps"), 0), "items");
    assert_int_equal(json_object_size(items), 5);
    assert_non_null(json_object_get(items, "viewer-4"));
    twilio_result_free(&res);
    assert_int_equal(twilio_request(own, TWILIO_SYNC, "POST", "/_emulator/reset", NULL, NULL, &res), 0);
    twilio_result_free(&res);
    assert_int_equal(twilio_request(own, TWILIO_SYNC, "GET", "/_emulator/state", NULL, NULL, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res.body, "sync_services")), 0);
    twilio_result_free(&res);
    assert_int_equal(twilio_request(own, TWILIO_SYNC, "GET", "/_emulator/nothing", NULL, NULL, &res), -1);
    assert_int_equal(res.http_status, 404);
    twilio_result_free(&res);

    twilio_client_free(f.emu_client);
    assert_int_equal(emulator_stop(&f.emu), 0);
}

/* Object creations and deletions share the service's budget; item writes
 * do not take from it. Capacity here: 0.01/s x 300 s = 3. */
static void test_object_creation_limit(void **state)
{
    (void)state;
    struct fixture f = {0};
    char err[256];
    const char *args[] = {"--sync-create-rate", "0.01", "--sync-burst-s", "300", NULL};
    if (emulator_start(&f.emu, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    f.emu_client = emulator_client(&f.emu, err, sizeof err);
    assert_non_null(f.emu_client);
    struct kv_list kv;
    struct answer a = sync_request(&f, "POST", "/v1/Services", NULL, NULL);
    char maps[256], docs[256], path[300];
    const char *service = json_string_value(json_object_get(a.body, "sid"));
    snprintf(maps, sizeof maps, "/v1/Services/%s/Maps", service);
    snprintf(docs, sizeof docs, "/v1/Services/%s/Documents", service);
    json_decref(a.body);

    a = sync_request(&f, "POST", maps, form(&kv, "UniqueName", "speakers", NULL), NULL);
    assert_int_equal(a.status, 201);
    json_decref(a.body);
    snprintf(path, sizeof path, "%s/speakers/Items", maps);
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", i);
        a = sync_request(&f, "POST", path, form(&kv, "Key", key, "Data", "{}", NULL), NULL);
        assert_int_equal(a.status, 201); /* items are writes, not creations */
        json_decref(a.body);
    }
    a = sync_request(&f, "POST", docs, form(&kv, "UniqueName", "user-a", "Data", "{}", NULL), NULL);
    assert_int_equal(a.status, 201);
    json_decref(a.body);
    a = sync_request(&f, "POST", maps, form(&kv, "UniqueName", "viewers", NULL), NULL);
    assert_int_equal(a.status, 201);
    json_decref(a.body);
    a = sync_request(&f, "POST", docs, form(&kv, "UniqueName", "user-b", "Data", "{}", NULL), NULL);
    assert_int_equal(a.status, 429);
    assert_int_equal(a.code, 54009);
    json_decref(a.body);
    snprintf(path, sizeof path, "%s/user-a", docs);
    a = sync_request(&f, "DELETE", path, NULL, NULL);
    assert_int_equal(a.status, 429);
    json_decref(a.body);
    a = sync_request(&f, "GET", path, NULL, NULL); /* still there */
    assert_int_equal(a.status, 200);
    json_decref(a.body);

    twilio_client_free(f.emu_client);
    assert_int_equal(emulator_stop(&f.emu), 0);
}

/* --- raw paths ---------------------------------------------------------------------------- */

struct raw_body {
    char text[4096];
    size_t len;
};

static size_t raw_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct raw_body *b = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof b->text - 1 - b->len;
    memcpy(b->text + b->len, data, n < room ? n : room);
    b->len += n < room ? n : room;
    b->text[b->len] = '\0';
    return n;
}

/* Sends method to path exactly as written (CURLOPT_PATH_AS_IS: libcurl
 * resolves no dot segment), with the test API key. Returns the status and
 * stores Twilio's error code (0 when the body has none) in *code. */
static long raw_request(const struct fixture *f, const char *method, const char *path, const char *body, int *code)
{
    char url[512];
    struct raw_body answer = {.len = 0};
    snprintf(url, sizeof url, "%s%s", f->emu.base_url, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, TEST_API_KEY_SID);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, TEST_API_KEY_SECRET);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    json_t *doc = json_loads(answer.text, 0, NULL);
    *code = (int)json_integer_value(json_object_get(doc, "code"));
    json_decref(doc);
    return status;
}

/* The map's items by key, as the emulator holds them (NULL: no such map). */
static json_t *map_items(struct fixture *f, const char *map)
{
    struct twilio_result res;
    assert_int_equal(twilio_request(f->emu_client, TWILIO_SYNC, "GET", "/_emulator/state", NULL, NULL, &res), 0);
    json_t *found = NULL, *service, *m;
    size_t i, k;
    json_array_foreach (json_object_get(res.body, "sync_services"), i, service) {
        if (strcmp(json_string_value(json_object_get(service, "sid")), f->service) != 0)
            continue;
        json_array_foreach (json_object_get(service, "maps"), k, m)
            if (strcmp(json_string_value(json_object_get(m, "unique_name")), map) == 0)
                found = json_incref(json_object_get(m, "items"));
    }
    twilio_result_free(&res);
    return found;
}

/* Issue 15: libcurl turned DELETE .../Items/.. into DELETE .../raised_hands/,
 * and the emulator, which ignored empty segments, deleted the map. Sent raw,
 * none of these paths may reach the map, its items, its permissions, the
 * document or the service: each is Twilio's 404 / 20404. */
static void test_dot_and_empty_segments_reach_nothing(void **state)
{
    struct fixture *f = *state;
    struct kv_list kv;
    char path[512];
    snprintf(path, sizeof path, "/v1/Services/%s/Maps", f->service);
    json_decref(sync_request(f, "POST", path, form(&kv, "UniqueName", "raised_hands", NULL), NULL).body);
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/raised_hands/Items", f->service);
    json_decref(sync_request(f, "POST", path, form(&kv, "Key", "bob", "Data", "{}", NULL), NULL).body);
    snprintf(path, sizeof path, "/v1/Services/%s/Documents", f->service);
    json_decref(sync_request(f, "POST", path, form(&kv, "UniqueName", "stream", "Data", "{}", NULL), NULL).body);
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/raised_hands/Permissions/bob", f->service);
    json_decref(
        sync_request(f, "POST", path, form(&kv, "Read", "true", "Write", "false", "Manage", "false", NULL), NULL).body);

    static const struct {
        const char *method, *tail, *body;
    } bad[] = {
        {"DELETE", "/Maps/raised_hands/Items/..", NULL},
        {"DELETE", "/Maps/raised_hands/Items/.", NULL},
        {"DELETE", "/Maps/raised_hands/Items/%2E%2E", NULL},
        {"DELETE", "/Maps/raised_hands/Items/%2e", NULL},
        {"DELETE", "/Maps/raised_hands/", NULL},
        {"DELETE", "/Maps/raised_hands//", NULL},
        {"DELETE", "/Maps//raised_hands", NULL},
        {"DELETE", "/Maps/raised_hands/Items/../..", NULL},
        {"DELETE", "/Maps/./raised_hands", NULL},
        {"DELETE", "/Maps/raised_hands/Permissions/..", NULL},
        {"POST", "/Maps/raised_hands/Permissions/..", "Read=false&Write=false&Manage=false"},
        {"POST", "/Maps/raised_hands/Items/..", "Data=%7B%7D"},
        {"GET", "/Maps/raised_hands/Items/", NULL},
        {"DELETE", "/Documents/stream/", NULL},
        {"DELETE", "/Documents/stream/Permissions/..", NULL},
        {"DELETE", "/", NULL},
        {"DELETE", "/Maps/..", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = 0;
        snprintf(path, sizeof path, "/v1/Services/%s%s", f->service, bad[i].tail);
        long status = raw_request(f, bad[i].method, path, bad[i].body, &code);
        if (status != 404 || code != 20404)
            fail_msg("%s %s: %ld / %d, not 404 / 20404", bad[i].method, path, status, code);
    }

    /* All still there: the map with its item and permission, the document, the service. */
    json_t *items = map_items(f, "raised_hands");
    assert_non_null(items);
    assert_int_equal(json_object_size(items), 1);
    assert_non_null(json_object_get(items, "bob"));
    json_decref(items);
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/raised_hands/Permissions/bob", f->service);
    struct answer a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.status, 200);
    assert_true(json_is_true(json_object_get(a.body, "read")));
    json_decref(a.body);
    snprintf(path, sizeof path, "/v1/Services/%s/Documents/stream", f->service);
    a = sync_request(f, "GET", path, NULL, NULL);
    assert_int_equal(a.status, 200);
    json_decref(a.body);

    /* The same requests, well formed, still work. */
    int code = 0;
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/raised_hands/Items/bob", f->service);
    assert_int_equal(raw_request(f, "DELETE", path, NULL, &code), 204);
    snprintf(path, sizeof path, "/v1/Services/%s/Maps/raised_hands", f->service);
    assert_int_equal(raw_request(f, "DELETE", path, NULL, &code), 204);
    assert_null(map_items(f, "raised_hands"));
}

/* --- permission writes and the object's budget -------------------------------------------------- */

/* Twilio does not say whether a permission write counts against the
 * object's write budget; the emulator assumes it does. Budget here: 5
 * writes per object (0.01/s for 500 s), no refill during the test. Item
 * writes and permission writes on a map share it; the document's budget
 * is its own; the stats count both kinds. */
static void test_permission_writes_count_against_the_object(void **state)
{
    (void)state;
    struct fixture f = {0};
    char err[256];
    const char *args[] = {"--sync-write-rate", "0.01", "--sync-burst-s", "500", NULL};
    if (emulator_start(&f.emu, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    f.emu_client = emulator_client(&f.emu, err, sizeof err);
    assert_non_null(f.emu_client);
    struct kv_list kv;
    struct answer a = sync_request(&f, "POST", "/v1/Services", NULL, NULL);
    char maps[256], docs[256], path[512], map_sid[40], doc_sid[40];
    const char *service = json_string_value(json_object_get(a.body, "sid"));
    snprintf(maps, sizeof maps, "/v1/Services/%s/Maps", service);
    snprintf(docs, sizeof docs, "/v1/Services/%s/Documents", service);
    json_decref(a.body);
    a = sync_request(&f, "POST", maps, form(&kv, "UniqueName", "speakers", NULL), NULL);
    snprintf(map_sid, sizeof map_sid, "%s", json_string_value(json_object_get(a.body, "sid")));
    json_decref(a.body);
    a = sync_request(&f, "POST", docs, form(&kv, "UniqueName", "stream", "Data", "{}", NULL), NULL);
    snprintf(doc_sid, sizeof doc_sid, "%s", json_string_value(json_object_get(a.body, "sid")));
    json_decref(a.body); /* the document's first write: 4 left */

    /* Two item writes and three permission writes fill the map's 5. */
    snprintf(path, sizeof path, "%s/speakers/Items", maps);
    for (int i = 0; i < 2; i++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", i);
        a = sync_request(&f, "POST", path, form(&kv, "Key", key, "Data", "{}", NULL), NULL);
        assert_int_equal(a.status, 201);
        json_decref(a.body);
    }
    for (int i = 0; i < 3; i++) {
        char identity[24];
        snprintf(identity, sizeof identity, "viewer-%d", i);
        snprintf(path, sizeof path, "%s/speakers/Permissions/%s", maps, identity);
        a = sync_request(&f, "POST", path, form(&kv, "Read", "true", "Write", "false", "Manage", "false", NULL), NULL);
        assert_int_equal(a.status, 200);
        json_decref(a.body);
    }
    /* A bad permission request is refused before it costs anything. */
    snprintf(path, sizeof path, "%s/speakers/Permissions/viewer-9", maps);
    a = sync_request(&f, "POST", path, form(&kv, "Read", "true", NULL), NULL);
    assert_int_equal(a.status, 400);
    /* The sixth write, a permission, is over the map's budget. */
    a = sync_request(&f, "POST", path, form(&kv, "Read", "true", "Write", "false", "Manage", "false", NULL), NULL);
    assert_int_equal(a.status, 429);
    assert_int_equal(a.code, 54009);
    assert_int_equal(a.outcome, TWILIO_RATE_LIMITED);
    a = sync_request(&f, "GET", path, NULL, NULL); /* and was not made */
    assert_int_equal(a.outcome, TWILIO_NOT_FOUND);
    /* So is an item write after it, and a permission's removal. */
    snprintf(path, sizeof path, "%s/speakers/Items", maps);
    a = sync_request(&f, "POST", path, form(&kv, "Key", "s9", "Data", "{}", NULL), NULL);
    assert_int_equal(a.status, 429);
    snprintf(path, sizeof path, "%s/speakers/Permissions/viewer-0", maps);
    a = sync_request(&f, "DELETE", path, NULL, NULL);
    assert_int_equal(a.status, 429);
    a = sync_request(&f, "GET", path, NULL, NULL);
    assert_int_equal(a.status, 200);
    json_decref(a.body);

    /* The document's budget is its own: 4 permission writes, then 429. */
    for (int i = 0; i < 5; i++) {
        char identity[24];
        snprintf(identity, sizeof identity, "viewer-%d", i);
        snprintf(path, sizeof path, "%s/stream/Permissions/%s", docs, identity);
        a = sync_request(&f, "POST", path, form(&kv, "Read", "true", "Write", "false", "Manage", "false", NULL), NULL);
        assert_int_equal(a.status, i < 4 ? 200 : 429);
        if (i == 4)
            assert_int_equal(a.code, 54009);
        json_decref(a.body);
    }

    /* The counters: 5 accepted writes on each object, four 429s. */
    struct twilio_result res;
    assert_int_equal(twilio_request(f.emu_client, TWILIO_SYNC, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    json_t *writes = json_object_get(res.body, "sync_writes");
    assert_int_equal(json_integer_value(json_object_get(writes, map_sid)), 5);
    assert_int_equal(json_integer_value(json_object_get(writes, doc_sid)), 5);
    assert_int_equal(json_integer_value(json_object_get(res.body, "responses_429")), 4);
    twilio_result_free(&res);

    twilio_client_free(f.emu_client);
    assert_int_equal(emulator_stop(&f.emu), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_maps_and_items, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_documents, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_permissions_and_services, setup, fixture_teardown),
        cmocka_unit_test(test_write_limit_stats_and_reset),
        cmocka_unit_test(test_object_creation_limit),
        cmocka_unit_test_setup_teardown(test_dot_and_empty_segments_reach_nothing, setup, fixture_teardown),
        cmocka_unit_test(test_permission_writes_count_against_the_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
