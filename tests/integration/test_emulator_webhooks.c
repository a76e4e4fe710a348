/* The Twilio emulator's webhooks: Rooms status callbacks, Media
 * (PlayerStreamer, MediaProcessor) status callbacks and Sync reachability
 * webhooks, sent in order, signed with X-Twilio-Signature exactly as Twilio
 * signs them (checked with common/'s validator and with an independent
 * HMAC-SHA1 here), retried on failure, optionally delivered twice; and the
 * simulation API that makes participants and endpoints connect with an
 * access token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/emulator_process.h"
#include "encode.h"
#include "form.h"
#include "signature.h"
#include "token.h"
#include "twilio.h"

#define MAX_HOOKS 32

struct hook {
    char signature[64];
    char body[4096];
};

struct receiver {
    struct MHD_Daemon *daemon;
    unsigned port;
    pthread_mutex_t lock;
    struct hook hooks[MAX_HOOKS];
    int nhooks;
    int fail_first; /* answer 500 to this many requests first */
};

struct upload {
    char data[4096];
    size_t len;
};

static enum MHD_Result on_hook(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    struct receiver *r = cls;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(struct upload));
        return MHD_YES;
    }
    struct upload *up = *con_cls;
    if (*upload_size) {
        size_t room = sizeof up->data - 1 - up->len;
        size_t n = *upload_size < room ? *upload_size : room;
        memcpy(up->data + up->len, upload_data, n);
        up->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    unsigned status = 200;
    pthread_mutex_lock(&r->lock);
    if (r->fail_first > 0) {
        r->fail_first--;
        status = 500;
    } else if (r->nhooks < MAX_HOOKS) {
        struct hook *h = &r->hooks[r->nhooks++];
        const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Twilio-Signature");
        snprintf(h->signature, sizeof h->signature, "%s", sig ? sig : "");
        memcpy(h->body, up->data, up->len);
        h->body[up->len] = '\0';
    }
    pthread_mutex_unlock(&r->lock);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static struct receiver *receiver_start(int fail_first)
{
    struct receiver *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->fail_first = fail_first;
    r->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_hook, r,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    assert_non_null(r->daemon);
    r->port = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
    return r;
}

static void receiver_stop(struct receiver *r)
{
    MHD_stop_daemon(r->daemon);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Waits (up to 20 s) until the receiver holds n webhooks. */
static int wait_for_hooks(struct receiver *r, int n)
{
    for (int i = 0; i < 400; i++) {
        pthread_mutex_lock(&r->lock);
        int have = r->nhooks;
        pthread_mutex_unlock(&r->lock);
        if (have >= n)
            return have;
        usleep(50 * 1000);
    }
    return -1;
}

static struct twilio_client *client_for(const struct emulator_process *e)
{
    char err[128];
    struct twilio_client *c = emulator_client(e, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

static long post(struct twilio_client *c, const char *path, const char *name, const char *value)
{
    struct kv_list form;
    kv_init(&form);
    if (name)
        kv_add(&form, name, value);
    struct twilio_result res;
    twilio_request(c, TWILIO_VIDEO, "POST", path, &form, NULL, &res);
    long status = res.http_status;
    twilio_result_free(&res);
    kv_free(&form);
    return status;
}

static char *video_token(const char *identity, const char *room, const char *secret)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, secret, NULL};
    struct token_grants grants = {identity, room, NULL, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

/* Twilio's published algorithm, computed here without common/signature. */
static void independent_signature(const char *url, const struct kv_list *params, char out[64])
{
    char data[8192];
    size_t len = (size_t)snprintf(data, sizeof data, "%s", url);
    /* Sort names bytewise (insertion sort; the lists are short). */
    size_t order[64], n = params->len;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && strcmp(params->items[order[j - 1]].name, params->items[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(data + len, sizeof data - len, "%s%s", params->items[order[i]].name,
                                params->items[order[i]].value);
    unsigned char mac[20];
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), TEST_AUTH_TOKEN, (int)strlen(TEST_AUTH_TOKEN), (unsigned char *)data, len, mac, &mac_len);
    base64_encode(mac, mac_len, out);
}

static void check_hook(const struct hook *h, const char *url, const char *event, struct kv_list *params)
{
    char err[128];
    kv_init(params);
    assert_int_equal(form_parse(h->body, strlen(h->body), params, err, sizeof err), 0);
    assert_string_equal(kv_get(params, "StatusCallbackEvent"), event);
    assert_int_equal(signature_valid(TEST_AUTH_TOKEN, url, params, h->signature), 1);
    char expected[64];
    independent_signature(url, params, expected);
    assert_string_equal(h->signature, expected);
    assert_int_equal(signature_valid("another-token", url, params, h->signature), 0);
    assert_string_equal(kv_get(params, "AccountSid"), TEST_ACCOUNT_SID);
    assert_non_null(kv_get(params, "RoomSid"));
    assert_non_null(kv_get(params, "Timestamp"));
}

static void test_room_callbacks_signed_and_in_order(void **state)
{
    (void)state;
    struct receiver *r = receiver_start(1); /* the first delivery fails once: retried */
    struct emulator_process e;
    char err[256];
    if (emulator_start(&e, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct twilio_client *c = client_for(&e);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/rooms-webhook?x=1", r->port);

    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "UniqueName", "webhook room");
    kv_add(&form, "StatusCallback", url);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    twilio_result_free(&res);
    kv_free(&form);

    /* Tokens are checked as Twilio would: secret, room grant. */
    char *good = video_token("Zo\xc3\xab", "webhook room", TEST_API_KEY_SECRET);
    char *forged = video_token("mallory", "webhook room", "not-the-secret");
    char *elsewhere = video_token("bob", "another room", TEST_API_KEY_SECRET);
    char path[256];
    assert_int_equal(twilio_path(path, sizeof path, "/_emulator/rooms/%s/participants", "webhook room"), 0);
    assert_int_equal(post(c, path, "Token", forged), 401);
    assert_int_equal(post(c, path, "Token", elsewhere), 403);
    assert_int_equal(post(c, path, "Token", "garbage"), 401);
    assert_int_equal(post(c, path, NULL, NULL), 401);
    assert_int_equal(post(c, path, "Token", good), 201);
    assert_int_equal(twilio_path(path, sizeof path, "/_emulator/rooms/%s/participants/%s/leave", "webhook room",
                                 "Zo\xc3\xab"),
                     0);
    assert_int_equal(post(c, path, NULL, NULL), 200);
    assert_int_equal(post(c, path, NULL, NULL), 404); /* already left */
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s", "webhook room"), 0);
    assert_int_equal(post(c, path, "Status", "completed"), 202);

    assert_int_equal(wait_for_hooks(r, 4), 4);
    static const char *const events[] = {"room-created", "participant-connected", "participant-disconnected",
                                         "room-ended"};
    for (int i = 0; i < 4; i++) {
        struct kv_list params;
        check_hook(&r->hooks[i], url, events[i], &params);
        char seq[16];
        snprintf(seq, sizeof seq, "%d", i);
        assert_string_equal(kv_get(&params, "SequenceNumber"), seq);
        assert_string_equal(kv_get(&params, "RoomName"), "webhook room");
        if (i == 1 || i == 2)
            assert_string_equal(kv_get(&params, "ParticipantIdentity"), "Zo\xc3\xab");
        if (i == 2)
            assert_non_null(kv_get(&params, "ParticipantDuration"));
        if (i == 3)
            assert_non_null(kv_get(&params, "RoomDuration"));
        kv_free(&params);
    }

    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    json_t *hooks = json_object_get(res.body, "webhooks");
    assert_int_equal(json_integer_value(json_object_get(hooks, "sent")), 4);
    assert_int_equal(json_integer_value(json_object_get(hooks, "failed")), 0);
    twilio_result_free(&res);

    free(good);
    free(forged);
    free(elsewhere);
    twilio_client_free(c);
    assert_int_equal(emulator_stop(&e), 0);
    receiver_stop(r);
}

/* POSTs form to path and returns the new resource's SID (into sid). */
static void create_resource(struct twilio_client *c, const char *path, struct kv_list *form, char sid[40])
{
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_MEDIA, "POST", path, form, NULL, &res), 0);
    assert_int_equal(res.http_status, 201);
    snprintf(sid, 40, "%s", json_string_value(json_object_get(res.body, "sid")));
    twilio_result_free(&res);
    kv_free(form);
}

static void check_media_hook(const struct hook *h, const char *url, const char *event, const char *sid_name,
                             const char *sid, const char *seq)
{
    struct kv_list params;
    char err[128], expected[64];
    kv_init(&params);
    assert_int_equal(form_parse(h->body, strlen(h->body), &params, err, sizeof err), 0);
    assert_string_equal(kv_get(&params, "StatusCallbackEvent"), event);
    assert_string_equal(kv_get(&params, sid_name), sid);
    assert_string_equal(kv_get(&params, "SequenceNumber"), seq);
    assert_string_equal(kv_get(&params, "AccountSid"), TEST_ACCOUNT_SID);
    assert_non_null(kv_get(&params, "Timestamp"));
    assert_int_equal(signature_valid(TEST_AUTH_TOKEN, url, &params, h->signature), 1);
    independent_signature(url, &params, expected);
    assert_string_equal(h->signature, expected);
    if (strstr(event, "-ended"))
        assert_string_equal(kv_get(&params, "EndedReason"), "ended-via-api");
    if (strcmp(sid_name, "MediaProcessorSid") == 0) {
        assert_string_equal(kv_get(&params, "Extension"), "video-composer-v2");
        assert_non_null(strstr(kv_get(&params, "ExtensionContext"), "\"outputs\""));
    }
    kv_free(&params);
}

static void test_media_callbacks(void **state)
{
    (void)state;
    struct receiver *r = receiver_start(0);
    struct emulator_process e;
    char err[256];
    if (emulator_start(&e, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct twilio_client *c = client_for(&e);
    char url[128], room[40], streamer[40], processor[40], path[128], context[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/media-webhook", r->port);

    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "UniqueName", "media room");
    create_resource(c, "/v1/Rooms", &form, room);
    kv_init(&form);
    kv_add(&form, "StatusCallback", url);
    create_resource(c, "/v1/PlayerStreamers", &form, streamer);
    kv_init(&form);
    kv_add(&form, "Extension", "video-composer-v2");
    snprintf(context, sizeof context, "{\"room\":{\"name\":\"%s\"},\"outputs\":[\"%s\"]}", room, streamer);
    kv_add(&form, "ExtensionContext", context);
    kv_add(&form, "StatusCallback", url);
    create_resource(c, "/v1/MediaProcessors", &form, processor);
    snprintf(path, sizeof path, "/v1/MediaProcessors/%s", processor);
    assert_int_equal(post(c, path, "Status", "ended"), 200);
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s", streamer);
    assert_int_equal(post(c, path, "Status", "ENDED"), 200);
    assert_int_equal(post(c, path, "Status", "ended"), 200); /* already ended: no second event */

    assert_int_equal(wait_for_hooks(r, 5), 5);
    usleep(300 * 1000);
    assert_int_equal(r->nhooks, 5);
    check_media_hook(&r->hooks[0], url, "player-streamer-created", "PlayerStreamerSid", streamer, "0");
    check_media_hook(&r->hooks[1], url, "media-processor-started", "MediaProcessorSid", processor, "0");
    check_media_hook(&r->hooks[2], url, "player-streamer-started", "PlayerStreamerSid", streamer, "1");
    check_media_hook(&r->hooks[3], url, "media-processor-ended", "MediaProcessorSid", processor, "1");
    check_media_hook(&r->hooks[4], url, "player-streamer-ended", "PlayerStreamerSid", streamer, "2");

    twilio_client_free(c);
    assert_int_equal(emulator_stop(&e), 0);
    receiver_stop(r);
}

static void test_webhook_twice(void **state)
{
    (void)state;
    struct receiver *r = receiver_start(0);
    struct emulator_process e;
    char err[256];
    const char *args[] = {"--webhook-twice", NULL};
    if (emulator_start(&e, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct twilio_client *c = client_for(&e);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/rooms-webhook", r->port);
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "StatusCallback", url);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    twilio_result_free(&res);
    kv_free(&form);
    assert_int_equal(wait_for_hooks(r, 2), 2);
    assert_string_equal(r->hooks[0].body, r->hooks[1].body);
    assert_string_equal(r->hooks[0].signature, r->hooks[1].signature);
    twilio_client_free(c);
    assert_int_equal(emulator_stop(&e), 0);
    receiver_stop(r);
}

/* With --time-scale 600 a one-minute timeout lasts 100 ms. */
static void test_unused_and_empty_rooms_end(void **state)
{
    (void)state;
    struct receiver *r = receiver_start(0);
    struct emulator_process e;
    char err[256];
    const char *args[] = {"--time-scale", "600", NULL};
    if (emulator_start(&e, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct twilio_client *c = client_for(&e);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/rooms-webhook", r->port);

    /* Nobody joins: the unused-room timeout ends it. */
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "UniqueName", "unused");
    kv_add(&form, "StatusCallback", url);
    kv_add(&form, "UnusedRoomTimeout", "1");
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    twilio_result_free(&res);
    kv_free(&form);
    assert_int_equal(wait_for_hooks(r, 2), 2);
    struct kv_list params;
    check_hook(&r->hooks[1], url, "room-ended", &params);
    assert_string_equal(kv_get(&params, "RoomName"), "unused");
    kv_free(&params);

    /* Someone joins and leaves: the empty-room timeout ends it. */
    kv_init(&form);
    kv_add(&form, "UniqueName", "emptied");
    kv_add(&form, "StatusCallback", url);
    kv_add(&form, "UnusedRoomTimeout", "60");
    kv_add(&form, "EmptyRoomTimeout", "1");
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    twilio_result_free(&res);
    kv_free(&form);
    char *token = video_token("alice", "emptied", TEST_API_KEY_SECRET);
    assert_int_equal(post(c, "/_emulator/rooms/emptied/participants", "Token", token), 201);
    assert_int_equal(post(c, "/_emulator/rooms/emptied/participants/alice/leave", NULL, NULL), 200);
    free(token);
    assert_int_equal(wait_for_hooks(r, 6), 6);
    static const char *const events[] = {"room-created", "participant-connected", "participant-disconnected",
                                         "room-ended"};
    for (int i = 0; i < 4; i++) {
        check_hook(&r->hooks[2 + i], url, events[i], &params);
        assert_string_equal(kv_get(&params, "RoomName"), "emptied");
        kv_free(&params);
    }
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms/emptied", NULL, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_NOT_FOUND);
    twilio_result_free(&res);
    twilio_client_free(c);
    assert_int_equal(emulator_stop(&e), 0);
    receiver_stop(r);
}

static char *sync_token(const char *identity, const char *service)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, NULL, service, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

/* Creates a Sync service with reachability webhooks to url; returns its SID. */
static void make_service(struct twilio_client *c, const char *url, const char *debounce, char sid[40])
{
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "WebhookUrl", url);
    kv_add(&form, "ReachabilityWebhooksEnabled", "true");
    kv_add(&form, "ReachabilityDebouncingEnabled", debounce);
    kv_add(&form, "ReachabilityDebouncingWindow", "30000");
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_SYNC, "POST", "/v1/Services", &form, NULL, &res), 0);
    snprintf(sid, 40, "%s", json_string_value(json_object_get(res.body, "sid")));
    twilio_result_free(&res);
    kv_free(&form);
}

/* Connects identity to service; returns the endpoint id in out. */
static long connect_endpoint(struct twilio_client *c, const char *service, const char *token, char out[40])
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints", service);
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "Token", token);
    struct twilio_result res;
    twilio_request(c, TWILIO_SYNC, "POST", path, &form, NULL, &res);
    long status = res.http_status;
    if (out && res.body)
        snprintf(out, 40, "%s", json_string_value(json_object_get(res.body, "endpoint_id")));
    twilio_result_free(&res);
    kv_free(&form);
    return status;
}

static long disconnect_endpoint(struct twilio_client *c, const char *service, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints/%s/disconnect", service, id);
    return post(c, path, NULL, NULL);
}

static void check_sync_hook(const struct hook *h, const char *url, const char *event, const char *identity,
                            const char *service)
{
    struct kv_list params;
    char err[128];
    kv_init(&params);
    assert_int_equal(form_parse(h->body, strlen(h->body), &params, err, sizeof err), 0);
    assert_string_equal(kv_get(&params, "EventType"), event);
    assert_string_equal(kv_get(&params, "Identity"), identity);
    assert_string_equal(kv_get(&params, "ServiceSid"), service);
    assert_int_equal(signature_valid(TEST_AUTH_TOKEN, url, &params, h->signature), 1);
    char expected[64];
    independent_signature(url, &params, expected);
    assert_string_equal(h->signature, expected);
    kv_free(&params);
}

/* Sync reachability webhooks; --time-scale 20 makes the 30 s debouncing
 * window 1.5 s. */
static void test_sync_reachability(void **state)
{
    (void)state;
    struct receiver *r = receiver_start(0);
    struct emulator_process e;
    char err[256];
    const char *args[] = {"--time-scale", "20", NULL};
    if (emulator_start(&e, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    struct twilio_client *c = client_for(&e);
    char url[128], plain[40], debounced[40], ep_c[40], ep_a[40], ep_a2[40], ep_b[40];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/sync-webhook", r->port);
    make_service(c, url, "false", plain);
    make_service(c, url, "true", debounced);

    /* Tokens need a data_sync grant for the service. */
    char *wrong = sync_token("carol", debounced);
    assert_int_equal(connect_endpoint(c, plain, wrong, NULL), 403);
    assert_int_equal(connect_endpoint(c, plain, "not a token", NULL), 401);
    free(wrong);

    /* Without debouncing: connected, then disconnected at once. */
    char *carol = sync_token("carol", plain);
    assert_int_equal(connect_endpoint(c, plain, carol, ep_c), 201);
    assert_int_equal(disconnect_endpoint(c, plain, ep_c), 200);
    assert_int_equal(disconnect_endpoint(c, plain, ep_c), 404);
    assert_int_equal(wait_for_hooks(r, 2), 2);
    check_sync_hook(&r->hooks[0], url, "endpoint_connected", "carol", plain);
    check_sync_hook(&r->hooks[1], url, "endpoint_disconnected", "carol", plain);

    /* With debouncing: A's quick reconnect cancels its disconnect, so the
     * next webhook after the two connects is B's (debounced) disconnect. */
    char *alice = sync_token("alice", debounced), *bob = sync_token("bob", debounced);
    assert_int_equal(connect_endpoint(c, debounced, alice, ep_a), 201);
    assert_int_equal(connect_endpoint(c, debounced, bob, ep_b), 201);
    assert_int_equal(disconnect_endpoint(c, debounced, ep_a), 200);
    assert_int_equal(connect_endpoint(c, debounced, alice, ep_a2), 201);
    assert_int_equal(disconnect_endpoint(c, debounced, ep_b), 200);
    assert_int_equal(wait_for_hooks(r, 5), 5);
    check_sync_hook(&r->hooks[2], url, "endpoint_connected", "alice", debounced);
    check_sync_hook(&r->hooks[3], url, "endpoint_connected", "bob", debounced);
    check_sync_hook(&r->hooks[4], url, "endpoint_disconnected", "bob", debounced);

    free(carol);
    free(alice);
    free(bob);
    twilio_client_free(c);
    assert_int_equal(emulator_stop(&e), 0);
    receiver_stop(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_callbacks_signed_and_in_order),
        cmocka_unit_test(test_media_callbacks),
        cmocka_unit_test(test_webhook_twice),
        cmocka_unit_test(test_unused_and_empty_rooms_end),
        cmocka_unit_test(test_sync_reachability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
