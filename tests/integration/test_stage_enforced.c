/* Issue 15, item 2, on the whole pipeline (full_stack.h): in jwt mode the
 * stage is the host's.
 *
 * - A viewer who was not invited is refused as a speaker (403, no event);
 *   once the host invites it, it is admitted, with a token that lives
 *   SPEAKER_TOKEN_TTL_S.
 * - The host removes it: it is refused again, and its old token, still
 *   valid, no longer keeps it in the room (the room worker disconnects it
 *   when it reconnects); a new invitation admits it again. Rejoining as a
 *   viewer gives the invitation up.
 * - Someone who connects to the room anyway, with a token the ingress
 *   never gave it (here minted with the API key), is disconnected by the
 *   room worker, while the host and the invited speaker stay.
 *
 * In passcode mode the reference's behaviour stays: whoever connects stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "encode.h"
#include "../support/pipeline_helpers.h"
#include "token.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define STREAM "stage1"
#define JWT_SECRET "a-test-secret-of-the-identity-service"

/* --- helpers ------------------------------------------------------------------------------------ */

/* "Authorization: Bearer <login token for identity>", HS256 under
 * JWT_SECRET, valid ten minutes; malloc'd. */
static char *bearer(const char *identity)
{
    json_t *claims = json_pack("{s:s, s:I}", "sub", identity, "exp", (json_int_t)(time(NULL) + 600));
    char *h = strdup("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    char *c = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    assert_non_null(h);
    assert_non_null(c);
    size_t hn = strlen(h), cn = strlen(c);
    char *input = malloc(base64_encoded_len(hn, 0) + base64_encoded_len(cn, 0) + 2);
    assert_non_null(input);
    base64url_encode((const unsigned char *)h, hn, input);
    strcat(input, ".");
    base64url_encode((const unsigned char *)c, cn, input + strlen(input));
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), JWT_SECRET, (int)strlen(JWT_SECRET), (const unsigned char *)input, strlen(input), mac, &mac_len);
    char sig[64];
    base64url_encode(mac, mac_len, sig);
    size_t n = strlen("Authorization: Bearer ") + strlen(input) + 1 + strlen(sig) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "Authorization: Bearer %s.%s", input, sig);
    free(h);
    free(c);
    free(input);
    return out;
}

/* POSTs body to the ingress as auth; the status, and the answer's JSON
 * when answer is not NULL (caller decrefs). */
static long call_as(struct fixture *f, const char *auth, const char *path, const char *body, json_t **answer)
{
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    if (answer)
        *answer = json_loads(r.body, 0, NULL);
    http_reply_free(&r);
    return status;
}

/* Joins as a speaker until the answer is want (the view follows the
 * room worker's record a moment after the host acted). Returns the last
 * answer's body when want is 200 (caller decrefs), else NULL. */
static json_t *join_speaker_until(struct fixture *f, const char *auth, long want)
{
    json_t *answer = NULL;
    long status = 0;
    for (int i = 0; i < 200; i++) {
        json_decref(answer);
        answer = NULL;
        status = call_as(f, auth, "/join-stream-as-speaker", "{\"stream_name\":\"" STREAM "\"}", &answer);
        if (status == want)
            break;
        usleep(50 * 1000);
    }
    if (status != want)
        fail_msg("join-stream-as-speaker answered %ld, never %ld", status, want);
    if (want == 200)
        return answer;
    json_decref(answer);
    return NULL;
}

/* A claim of a JWT's payload, as an integer. */
static long long claim(const char *jwt, const char *name)
{
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    unsigned char payload[4096];
    long n = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload);
    assert_true(n > 0);
    json_t *claims = json_loadb((const char *)payload, (size_t)n, 0, NULL);
    assert_non_null(claims);
    long long value = json_integer_value(json_object_get(claims, name));
    json_decref(claims);
    return value;
}

/* The client connects to the room with token, through the emulator; the
 * new participant's SID into sid. */
static void connect_room(struct fixture *f, const char *token, char sid[40])
{
    char url[256], *form = malloc(strlen(token) + 8);
    assert_non_null(form);
    snprintf(url, sizeof url, "%s/_emulator/rooms/" STREAM "/participants", f->emu.base_url);
    sprintf(form, "Token=%s", token);
    struct http_reply r;
    http_call("POST", url, NULL, form, strlen(form), &r);
    free(form);
    assert_int_equal(r.status, 201);
    json_t *p = json_loads(r.body, 0, NULL);
    const char *text = json_string_value(json_object_get(p, "sid"));
    assert_non_null(text);
    snprintf(sid, 40, "%s", text);
    json_decref(p);
    http_reply_free(&r);
}

/* A token with the room's video grant made with the API key, as anyone
 * holding it (or an old speaker's token) could have. */
static char *api_key_token(const char *identity)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, TEST_API_KEY_SECRET, NULL};
    struct token_grants grants = {identity, STREAM, NULL, NULL};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

static const char *participant_status_in(struct fixture *f, const char *room_sid, const char *sid, char out[16])
{
    char path[256];
    snprintf(path, sizeof path, "/v1/Rooms/%s/Participants/%s", room_sid, sid);
    json_t *p = emulator_get(f, path);
    const char *status = json_string_value(json_object_get(p, "status"));
    snprintf(out, 16, "%s", status ? status : "");
    json_decref(p);
    return out;
}

static void wait_participant(struct fixture *f, const char *room_sid, const char *sid, const char *want)
{
    char status[16] = "";
    for (int i = 0; i < 200 && strcmp(participant_status_in(f, room_sid, sid, status), want) != 0; i++)
        usleep(50 * 1000);
    if (strcmp(status, want) != 0)
        fail_msg("participant %s is %s, not %s", sid, status, want);
}

/* The room worker has handled n participant.connected events. */
static void wait_connected_events(struct fixture *f, double n)
{
    wait_metric(f, 0, "stagehand_worker_events_total{type=\"participant.connected\",outcome=\"applied\"}", n);
}

/* --- jwt mode ------------------------------------------------------------------------------------ */

static int setup_jwt(void **state)
{
    static const char *const env[] = {"AUTH_MODE=jwt", NULL};
    static const char *const ingress_env[] = {"AUTH_JWT_SECRET=" JWT_SECRET, NULL};
    return setup_whole_pipeline(state, env, ingress_env);
}

static void test_stage_is_the_hosts(void **state)
{
    struct fixture *f = *state;
    char *alice = bearer("alice"), *bob = bearer("bob");
    json_t *answer = NULL;
    assert_int_equal(call_as(f, alice, "/create-stream", "{\"stream_name\":\"" STREAM "\"}", &answer), 200);
    const char *host_token = json_string_value(json_object_get(answer, "token"));
    assert_int_equal(claim(host_token, "exp") - claim(host_token, "iat"), 14400); /* the host's: TOKEN_TTL_S */
    char room_sid[40], alice_sid[40], bob_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(answer, "room_sid")));
    connect_room(f, host_token, alice_sid);
    json_decref(answer);
    wait_connected_events(f, 1);

    /* bob watches; he may not go on stage uninvited. */
    assert_int_equal(call_as(f, bob, "/join-stream-as-viewer", "{\"stream_name\":\"" STREAM "\"}", NULL), 200);
    assert_int_equal(call_as(f, bob, "/join-stream-as-speaker", "{\"stream_name\":\"" STREAM "\"}", &answer), 403);
    assert_string_equal(json_string_value(json_object_get(json_object_get(answer, "error"), "message")), "not invited");
    json_decref(answer);

    /* Invited, he is admitted, with a short-lived token, and stays. */
    assert_int_equal(call_as(f, alice, "/send-speaker-invite",
                             "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\"}", NULL),
                     200);
    answer = join_speaker_until(f, bob, 200);
    const char *token = json_string_value(json_object_get(answer, "token"));
    assert_int_equal(claim(token, "exp") - claim(token, "iat"), 300); /* SPEAKER_TOKEN_TTL_S */
    char *old_token = strdup(token);
    json_decref(answer);
    connect_room(f, old_token, bob_sid);
    wait_connected_events(f, 2);
    wait_participant(f, room_sid, bob_sid, "connected");

    /* Removed: refused until invited again, and his token no longer keeps him in. */
    assert_int_equal(call_as(f, alice, "/remove-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\"}",
                             NULL),
                     200);
    wait_participant(f, room_sid, bob_sid, "disconnected");
    join_speaker_until(f, bob, 403);
    connect_room(f, old_token, bob_sid);
    wait_participant(f, room_sid, bob_sid, "disconnected");
    assert_int_equal(call_as(f, alice, "/send-speaker-invite",
                             "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\"}", NULL),
                     200);
    json_decref(join_speaker_until(f, bob, 200));
    connect_room(f, old_token, bob_sid);
    free(old_token);

    /* mallory connects with a token the ingress never gave her: out at once. */
    char *stolen = api_key_token("mallory");
    char mallory_sid[40];
    connect_room(f, stolen, mallory_sid);
    free(stolen);
    wait_participant(f, room_sid, mallory_sid, "disconnected");
    wait_participant(f, room_sid, alice_sid, "connected");
    wait_participant(f, room_sid, bob_sid, "connected");

    /* bob goes back to the audience: that gives the invitation up. */
    assert_int_equal(call_as(f, bob, "/join-stream-as-viewer", "{\"stream_name\":\"" STREAM "\"}", NULL), 200);
    join_speaker_until(f, bob, 403);
    free(alice);
    free(bob);
}

/* --- passcode mode ------------------------------------------------------------------------------- */

static int setup_passcode(void **state)
{
    return setup_whole_pipeline(state, NULL, NULL);
}

/* As in the reference: anyone with the passcode may join as a speaker, and
 * whoever connects to the room stays. */
static void test_passcode_stage_is_open(void **state)
{
    struct fixture *f = *state;
    json_t *answer = NULL;
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"" STREAM "\"}", NULL),
                     200);
    const char *auth = "Authorization: " TEST_PASSCODE;
    assert_int_equal(call_as(f, auth, "/join-stream-as-speaker",
                             "{\"user_identity\":\"bob\",\"stream_name\":\"" STREAM "\"}", &answer),
                     200);
    const char *token = json_string_value(json_object_get(answer, "token"));
    assert_int_equal(claim(token, "exp") - claim(token, "iat"), 14400); /* TOKEN_TTL_S */
    char room_sid[40], bob_sid[40], mallory_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(answer, "room_sid")));
    connect_room(f, token, bob_sid);
    json_decref(answer);
    char *stolen = api_key_token("mallory");
    connect_room(f, stolen, mallory_sid);
    free(stolen);
    wait_connected_events(f, 2);
    usleep(300 * 1000);
    wait_participant(f, room_sid, bob_sid, "connected");
    wait_participant(f, room_sid, mallory_sid, "connected");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stage_is_the_hosts, setup_jwt, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_passcode_stage_is_open, setup_passcode, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
