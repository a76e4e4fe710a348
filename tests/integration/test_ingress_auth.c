/* Issue 15, items 2, 6 and 8, at the ingress alone (ingress_fixture.h;
 * state records published by hand):
 *
 * - passcode mode: the per-identity budget is per client, so a caller who
 *   names a victim spends only its own (item 8);
 * - jwt mode: iss and aud as AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE ask, and
 *   an access token's grants never log anyone in; an AUTH_JWT_SECRET equal
 *   to TWILIO_API_KEY_SECRET stops the ingress at start (item 6);
 * - jwt mode: only the host, or a user the room record lists as invited,
 *   joins as a speaker, and a speaker's token lives SPEAKER_TOKEN_TTL_S
 *   (item 2; the whole pipeline is test_stage_enforced). */
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

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

/* The claims of an access token (no signature check). */
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

/* POSTs body to path as a client behind the trusted proxy (the test) at
 * address client; the status. */
static long post_from(struct fixture *f, const char *client, const char *path, const char *body)
{
    char forwarded[128];
    snprintf(forwarded, sizeof forwarded, "X-Forwarded-For: %s", client);
    const char *headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", forwarded, NULL};
    struct http_reply r = call(f, "POST", path, headers, body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static int setup_identity_behind_proxy(void **state)
{
    static const char *const env[] = {"TRUSTED_PROXIES=127.0.0.1", "RATE_LIMIT_IDENTITY_PER_S=1",
                                      "RATE_LIMIT_IDENTITY_BURST=2", NULL};
    return fixture_setup_ingress(state, env);
}

/* Passcode mode: anyone may name any identity, so naming a victim must not
 * spend the victim's budget. The budget is per client address and
 * identity: the attacker runs out, the victim elsewhere does not. */
static void test_identity_budget_per_client(void **state)
{
    struct fixture *f = *state;
    const char *victim = "{\"user_identity\":\"victim\",\"stream_name\":\"nope\"}";
    int limited = 0;
    for (int i = 0; i < 5; i++)
        limited += post_from(f, "203.0.113.7", "/viewer-connected-to-player", victim) == 429;
    assert_true(limited >= 2);
    assert_int_equal(post_from(f, "198.51.100.9", "/viewer-connected-to-player", victim), 404);
    assert_int_equal(post_from(f, "198.51.100.9", "/join-stream-as-viewer", victim), 404);
    assert_int_equal(post_from(f, "203.0.113.7", "/viewer-connected-to-player", victim), 429);
    expect_no_event(f);
}

static int setup_jwt_claims(void **state)
{
    static const char *const env[] = {"AUTH_MODE=jwt", "AUTH_JWT_SECRET=" JWT_SECRET,
                                      "AUTH_JWT_ISSUER=https://id.example.test", "AUTH_JWT_AUDIENCE=stagehand", NULL};
    return fixture_setup_ingress(state, env);
}

static long verify_with(struct fixture *f, json_t *claims)
{
    char *auth = bearer_with_claims(claims, JWT_SECRET);
    long status = post_as(f, auth, "/verify-passcode", "{}");
    free(auth);
    return status;
}

/* iss and aud as configured; an access token's grants never log anyone in. */
static void test_jwt_claims(void **state)
{
    struct fixture *f = *state;
    json_int_t exp = (json_int_t)time(NULL) + 600;
    const char *iss = "https://id.example.test";
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s, s:s}", "sub", "bob", "exp", exp, "iss", iss, "aud",
                                              "stagehand")),
                     200);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s, s:[s, s]}", "sub", "bob", "exp", exp, "iss", iss, "aud",
                                              "other", "stagehand")),
                     200);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s}", "sub", "bob", "exp", exp, "aud", "stagehand")), 401);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s, s:s}", "sub", "bob", "exp", exp, "iss",
                                              "https://evil.example", "aud", "stagehand")),
                     401);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s}", "sub", "bob", "exp", exp, "iss", iss)), 401);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s, s:[s]}", "sub", "bob", "exp", exp, "iss", iss, "aud",
                                              "other")),
                     401);
    assert_int_equal(verify_with(f, json_pack("{s:s, s:I, s:s, s:s, s:{s:s}}", "sub", "bob", "exp", exp, "iss", iss,
                                              "aud", "stagehand", "grants", "identity", "bob")),
                     401);
    expect_no_event(f);
}

/* The exp - iat of the answer's token. */
static long long token_ttl_of(json_t *answer)
{
    json_t *claims = token_claims(json_string_value(json_object_get(answer, "token")));
    long long ttl = json_integer_value(json_object_get(claims, "exp")) -
                    json_integer_value(json_object_get(claims, "iat"));
    json_decref(claims);
    return ttl;
}

/* jwt mode: only the host, or someone on the room record's "invited" list,
 * joins as a speaker; a speaker's token lives SPEAKER_TOKEN_TTL_S. */
static void test_jwt_stage(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    char *alice = bearer_for("alice", JWT_SECRET), *bob = bearer_for("bob", JWT_SECRET);
    f->auth = alice;
    wait_stream_status(f, "friday", "live");
    const char *join = "{\"stream_name\":\"friday\"}";
    assert_int_equal(post_as(f, bob, "/join-stream-as-speaker", join), 403);
    expect_no_event(f);

    const char *headers[] = {alice, "Content-Type: application/json", NULL};
    struct http_reply r = call(f, "POST", "/join-stream-as-speaker", headers, join);
    assert_int_equal(r.status, 200);
    json_t *answer = json_loads(r.body, 0, NULL);
    assert_int_equal(token_ttl_of(answer), 14400); /* the host's: TOKEN_TTL_S */
    json_decref(answer);
    http_reply_free(&r);
    json_decref(expect_event(f, "user.joined", "friday", NULL));

    publish_state(f, "friday", "room",
                  json_pack("{s:s, s:I, s:s, s:s, s:[s]}", "status", "ready", "since", (json_int_t)1000, "host",
                            "alice", "room_sid", ROOM_SID, "invited", "bob"));
    const char *bob_headers[] = {bob, "Content-Type: application/json", NULL};
    long status = 0;
    r = call(f, "POST", "/join-stream-as-speaker", bob_headers, join);
    for (int i = 0; i < 100 && (status = r.status) != 200; i++) {
        http_reply_free(&r);
        usleep(50 * 1000);
        r = call(f, "POST", "/join-stream-as-speaker", bob_headers, join);
    }
    assert_int_equal(r.status, 200);
    answer = json_loads(r.body, 0, NULL);
    assert_int_equal(token_ttl_of(answer), 300); /* SPEAKER_TOKEN_TTL_S */
    json_decref(answer);
    http_reply_free(&r);
    json_t *data = expect_event(f, "user.joined", "friday", NULL);
    assert_string_equal(json_string_value(json_object_get(data, "identity")), "bob");
    json_decref(data);

    /* Taken off the list (the host removed him): refused again. */
    publish_state(f, "friday", "room",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)1000, "host", "alice",
                            "room_sid", ROOM_SID));
    for (int i = 0; i < 100 && (status = post_as(f, bob, "/join-stream-as-speaker", join)) != 403; i++)
        usleep(50 * 1000);
    assert_int_equal(status, 403);
    free(alice);
    free(bob);
}

/* A JWT secret equal to the API key secret would make every access token
 * the ingress mints a login token: the ingress refuses to start, and says
 * so without the secret. */
static void test_jwt_secret_not_the_api_key_secret(void **state)
{
    (void)state;
    char bin[1024], err[256], dir[] = "/tmp/stagehand-jwt-XXXXXX", out[128], errp[128];
    assert_int_equal(process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "stagehand-ingress", err, sizeof err),
                     0);
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(errp, sizeof errp, "%s/err", dir);
    const char *const env[] = {"TWILIO_ACCOUNT_SID=" TEST_ACCOUNT_SID,
                               "TWILIO_API_KEY_SID=" TEST_API_KEY_SID,
                               "TWILIO_API_KEY_SECRET=" TEST_API_KEY_SECRET,
                               "TWILIO_AUTH_TOKEN=" TEST_AUTH_TOKEN,
                               "AUTH_MODE=jwt",
                               "AUTH_JWT_SECRET=" TEST_API_KEY_SECRET,
                               "INGRESS_PORT=0",
                               "KAFKA_BROKERS=127.0.0.1:1",
                               NULL};
    const char *argv[] = {bin, NULL};
    struct process p = {0};
    assert_int_equal(process_spawn(&p, argv, env, out, errp, err, sizeof err), 0);
    assert_int_equal(process_wait(&p, 10000), 0);
    assert_int_equal(p.status, 2);
    char *text = process_read_file(errp, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "AUTH_JWT_SECRET: must not be the same as TWILIO_API_KEY_SECRET"));
    assert_null(strstr(text, TEST_API_KEY_SECRET));
    free(text);
    unlink(out);
    unlink(errp);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_budget_per_client, setup_identity_behind_proxy, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_jwt_claims, setup_jwt_claims, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_jwt_stage, setup_ingress_jwt, fixture_teardown),
        cmocka_unit_test(test_jwt_secret_not_the_api_key_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
