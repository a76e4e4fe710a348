/* The ingress as a real process against the dev broker: every client
 * endpoint's success path (the event read back from Kafka, checked against
 * its schema, with its headers), the answers minted from the state view,
 * the waits, and the webhooks with their signatures. State records that
 * the workers would publish are produced here by hand. The fixture is
 * ingress_fixture.h; bad input of every kind is test_bad_input.c. */
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

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

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
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}", &answer),
                     409);
    assert_string_equal(json_string_value(json_object_get(json_object_get(answer, "error"), "message")),
                        "stream exists");
    json_decref(answer);
    expect_no_event(f);

    /* A speaker joins: video and Sync grants, the reference's names. */
    assert_int_equal(post(f, "/join-stream-as-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}",
                          &answer),
                     200);
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
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "data_sync"), "service_sid")),
                        SERVICE_SID);
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
    assert_string_equal(json_string_value(json_object_get(json_object_get(grants, "player"), "playerStreamerSid")),
                        STREAMER_SID);
    json_decref(grants);
    json_decref(answer);
    data = expect_event(f, "user.joined", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "role")), "viewer");
    json_decref(data);

    expect_true(f, "/viewer-connected-to-player", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}",
                "success");
    json_decref(expect_event(f, "viewer.connected", "friday", NULL));
    expect_true(f, "/raise-hand", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\",\"hand_raised\":true}",
                "sent");
    json_decref(expect_event(f, "hand.raised", "friday", NULL));
    expect_true(f, "/raise-hand", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\",\"hand_raised\":false}",
                "sent");
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

    /* A name with a space and UTF-8 is percent-encoded in Location
     * and status_url (issue 15 item 9). */
    r = call(f, "POST", "/create-stream", async_headers,
             "{\"user_identity\":\"alice\",\"stream_name\":\"caf\u00e9 night\"}");
    assert_int_equal(r.status, 202);
    assert_string_equal(r.location, "/streams/caf%C3%A9%20night");
    answer = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(answer, "status_url")), "/streams/caf%C3%A9%20night");
    json_decref(answer);
    http_reply_free(&r);
    json_decref(expect_event(f, "stream.create_requested", "caf\xc3\xa9 night", NULL));

    /* Not ready within CREATE_WAIT_MS (3 s here): 202 too. */
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"sunday\"}", &answer),
                     202);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "creating");
    json_decref(answer);
    json_decref(expect_event(f, "stream.create_requested", "sunday", NULL));

    /* Ready while it waits: 200 with the host's token. */
    publish_state(f, "monday", "room", json_pack("{s:s, s:i, s:s}", "status", "creating", "since", 5, "host", "alice"));
    wait_stream_status(f, "monday", "creating");
    /* Someone else cannot take a name that is being created. */
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"mallory\",\"stream_name\":\"monday\"}", NULL),
                     409);
    expect_no_event(f);
    pthread_t later;
    assert_int_equal(pthread_create(&later, NULL, publish_monday_later, f), 0);
    assert_int_equal(post(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"monday\"}", &answer),
                     200);
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

/* --- webhooks ---------------------------------------------------------------------------------- */

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
    char now[RFC3339_MS_LEN + 1];
    kv_add(&p, "DateCreated", webhook_now(now));
    assert_int_equal(webhook(f, "/sync-webhook?stream=friday", TEST_PUBLIC_BASE_URL "/sync-webhook?stream=friday", &p),
                     200);
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
    kv_add(&p, "Timestamp", webhook_now(now));
    assert_int_equal(webhook(f, "/media-webhook", TEST_PUBLIC_BASE_URL "/media-webhook", &p), 200);
    expect_no_event(f);
    kv_free(&p);
    kv_init(&p);
    kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
    kv_add(&p, "MediaProcessorSid", PROCESSOR_SID);
    kv_add(&p, "StatusCallbackEvent", "media-processor-ended");
    kv_add(&p, "EndedReason", "max-duration-exceeded");
    kv_add(&p, "Timestamp", webhook_now(now));
    assert_int_equal(webhook(f, "/media-webhook", TEST_PUBLIC_BASE_URL "/media-webhook", &p), 200);
    kv_free(&p);
    data = expect_event(f, "media.ended", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "reason")), "max-duration-exceeded");
    assert_string_equal(json_string_value(json_object_get(data, "media_processor_sid")), PROCESSOR_SID);
    json_decref(data);
    expect_no_event(f);
}

/* --- other configurations ------------------------------------------------------------------ */

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
                             "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}"),
                     403);
    assert_int_equal(post_as(f, forged, "/delete-stream", "{\"stream_name\":\"friday\"}"), 401);
    assert_int_equal(post_as(f, "Authorization: " TEST_PASSCODE, "/delete-stream", "{\"stream_name\":\"friday\"}"),
                     401);
    /* Host-only actions: bob is not the host. */
    assert_int_equal(post_as(f, bob, "/remove-speaker", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
                     403);
    assert_int_equal(post_as(f, bob, "/send-speaker-invite",
                             "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
                     403);
    assert_int_equal(post_as(f, bob, "/delete-stream", "{\"stream_name\":\"friday\"}"), 403);
    expect_no_event(f);
    assert_int_equal(post_as(f, alice, "/remove-speaker", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
                     200);
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
    return fixture_setup_ingress(state, env);
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

/* POST /verify-passcode as if forwarded for client; the status. */
static long verify_forwarded_for(struct fixture *f, const char *client)
{
    char forwarded[128];
    snprintf(forwarded, sizeof forwarded, "X-Forwarded-For: %s", client);
    const char *headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", forwarded, NULL};
    struct http_reply r = call(f, "POST", "/verify-passcode", headers, NULL);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static int setup_behind_proxy(void **state)
{
    static const char *const env[] = {"TRUSTED_PROXIES=127.0.0.1", "RATE_LIMIT_IP_PER_S=1", "RATE_LIMIT_IP_BURST=2",
                                      NULL};
    return fixture_setup_ingress(state, env);
}

/* Behind a trusted proxy (the test itself, 127.0.0.1) each forwarded
 * client has its own budget (an IPv6 client's /64 has one); an address
 * the client wrote further left does not buy it a new one. */
static void test_trusted_proxy(void **state)
{
    struct fixture *f = *state;
    int limited = 0;
    for (int i = 0; i < 5; i++)
        limited += verify_forwarded_for(f, "198.51.100.1") == 429;
    assert_true(limited >= 2);
    assert_int_equal(verify_forwarded_for(f, "198.51.100.2"), 200);
    assert_int_equal(verify_forwarded_for(f, "198.51.100.9, 198.51.100.1"), 429);
    /* Written with a port, the client is still itself, not the proxy's
     * bucket (issue 15 item 7): 198.51.100.1 stays limited, and a new
     * client with a port has a budget of its own. */
    assert_int_equal(verify_forwarded_for(f, "198.51.100.1:40000"), 429);
    assert_int_equal(verify_forwarded_for(f, "198.51.100.3:40000"), 200);
    /* IPv6 clients count per /64: another address of the same /64 shares
     * the budget, another /64 does not. */
    limited = 0;
    for (int i = 0; i < 5; i++) {
        char client[64];
        snprintf(client, sizeof client, "[2001:db8:1:2::%x]:443", i + 1);
        limited += verify_forwarded_for(f, client) == 429;
    }
    assert_true(limited >= 2);
    assert_int_equal(verify_forwarded_for(f, "2001:db8:1:2:ffff::1"), 429);
    assert_int_equal(verify_forwarded_for(f, "2001:db8:1:3::1"), 200);
}

static int setup_no_trusted_proxy(void **state)
{
    static const char *const env[] = {"RATE_LIMIT_IP_PER_S=1", "RATE_LIMIT_IP_BURST=2", NULL};
    return fixture_setup_ingress(state, env);
}

/* Without TRUSTED_PROXIES the header is the client's word: ignored. */
static void test_forwarded_for_ignored(void **state)
{
    struct fixture *f = *state;
    int limited = 0;
    for (int i = 0; i < 5; i++)
        limited += verify_forwarded_for(f, "198.51.100.1") == 429;
    assert_true(limited >= 2);
    assert_int_equal(verify_forwarded_for(f, "198.51.100.2"), 429);
}

static int setup_identity_limited(void **state)
{
    static const char *const env[] = {"RATE_LIMIT_IDENTITY_PER_S=1", "RATE_LIMIT_IDENTITY_BURST=2", NULL};
    return fixture_setup_ingress(state, env);
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
    assert_int_equal(post(f, "/viewer-connected-to-player", "{\"user_identity\":\"erin\",\"stream_name\":\"nope\"}",
                          NULL),
                     404);

    /* The metrics saw all of it. They are served on METRICS_LISTEN only,
     * not on the public port (issue 15 item 9). */
    r = call(f, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_null(strstr(r.body, "stagehand_ingress"));
    http_reply_free(&r);
    char metrics_url[128];
    snprintf(metrics_url, sizeof metrics_url, "%s/metrics", f->s.metrics_url);
    assert_int_equal(http_call("GET", metrics_url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.body, "stagehand_ingress_requests_total{route=\"/viewer-connected-to-player\",status=\"404\"} 3"));
    assert_non_null(
        strstr(r.body, "stagehand_ingress_requests_total{route=\"/viewer-connected-to-player\",status=\"429\"} 1"));
    assert_non_null(strstr(r.body, "stagehand_ingress_request_seconds_count{route=\"/viewer-connected-to-player\"} 4"));
    assert_non_null(strstr(r.body, "stagehand_ingress_view_streams"));
    http_reply_free(&r);
    expect_no_event(f);
}

/* The same stories with one event loop (INGRESS_THREADS=1; the default is
 * two) and with four, more loops than cores: wherever a connection is dealt,
 * a request suspended for Kafka's ack or for the view is resumed by its own
 * loop. */
static int setup_one_loop(void **state)
{
    static const char *const env[] = {"INGRESS_THREADS=1", NULL};
    return fixture_setup_ingress(state, env);
}

static int setup_four_loops(void **state)
{
    static const char *const env[] = {"INGRESS_THREADS=4", NULL};
    return fixture_setup_ingress(state, env);
}

static void test_kafka_unreachable(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    /* The broker goes away under the ingress (the dev broker stops; the
     * run's real broker, shared, is frozen until the test ends). */
    assert_true(stack_broker_gone(&f->s) >= 0);
    int64_t started = time_monotonic_ms();
    struct http_reply r = call(f, "POST", "/viewer-connected-to-player", json_headers,
                               "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "1");
    assert_true(time_monotonic_ms() - started < 10000); /* PRODUCE_TIMEOUT_MS is 3 s here */
    http_reply_free(&r);
    if (f->s.real_kafka)
        assert_int_equal(stack_broker_thaw(&f->s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_api, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_create_stream, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_webhooks, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_jwt_mode, setup_ingress_jwt, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup_rate_limited, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_identity_rate_limit, setup_identity_limited, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_trusted_proxy, setup_behind_proxy, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_forwarded_for_ignored, setup_no_trusted_proxy, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_kafka_unreachable, setup_ingress, fixture_teardown),
        {"test_client_api with one loop", test_client_api, setup_one_loop, fixture_teardown, NULL},
        {"test_create_stream with one loop", test_create_stream, setup_one_loop, fixture_teardown, NULL},
        {"test_client_api with four loops", test_client_api, setup_four_loops, fixture_teardown, NULL},
        {"test_create_stream with four loops", test_create_stream, setup_four_loops, fixture_teardown, NULL},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
