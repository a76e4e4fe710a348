/* Unit tests for common/token: minted access tokens are checked field by
 * field, re-signed independently with OpenSSL, and verified by PyJWT (a JWT
 * library that is not ours); the HS256 verifier refuses every kind of bad
 * token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encode.h"
#include "token.h"

#define ACCOUNT "AC0123456789abcdef0123456789abcdef"
#define KEY_SID "SK0123456789abcdef0123456789abcdef"
#define SECRET "unit-test-api-key-secret-do-not-log"
#define NOW 1795474741

static const struct token_key KEY = {ACCOUNT, KEY_SID, SECRET, NULL};

/* Decodes segment i (0 header, 1 payload) of a JWT as JSON. */
static json_t *segment(const char *jwt, int i)
{
    const char *start = jwt;
    for (int k = 0; k < i; k++)
        start = strchr(start, '.') + 1;
    size_t len = strcspn(start, ".");
    unsigned char raw[4096];
    long n = base64url_decode(start, len, raw);
    assert_true(n > 0);
    json_t *obj = json_loadb((const char *)raw, (size_t)n, 0, NULL);
    assert_non_null(obj);
    return obj;
}

static char *mint_full(long ttl)
{
    json_t *player = json_pack("{s:s, s:s, s:n}", "playbackUrl", "https://x.playback.live-video.net/?token=abc",
                               "playerStreamerSid", "VJ0123456789abcdef0123456789abcdef", "requestCredentials");
    struct token_grants g = {"Zo\xc3\xab \xf0\x9f\x8e\xa4", "friday-townhall", "IS0123456789abcdef0123456789abcdef",
                             player};
    char err[128];
    char *jwt = token_mint(&KEY, &g, ttl, NOW, err, sizeof err);
    json_decref(player);
    assert_non_null(jwt);
    return jwt;
}

static void test_minted_token_shape(void **state)
{
    (void)state;
    char *jwt = mint_full(14400);
    json_t *h = segment(jwt, 0);
    assert_int_equal(json_object_size(h), 3);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "cty")), "twilio-fpa;v=1");

    json_t *p = segment(jwt, 1);
    assert_string_equal(json_string_value(json_object_get(p, "jti")), KEY_SID "-1795474741");
    assert_string_equal(json_string_value(json_object_get(p, "iss")), KEY_SID);
    assert_string_equal(json_string_value(json_object_get(p, "sub")), ACCOUNT);
    assert_int_equal(json_integer_value(json_object_get(p, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(p, "nbf")), NOW);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")) - NOW, 14400);
    json_t *g = json_object_get(p, "grants");
    assert_string_equal(json_string_value(json_object_get(g, "identity")), "Zo\xc3\xab \xf0\x9f\x8e\xa4");
    assert_string_equal(json_string_value(json_object_get(json_object_get(g, "video"), "room")), "friday-townhall");
    assert_string_equal(json_string_value(json_object_get(json_object_get(g, "data_sync"), "service_sid")),
                        "IS0123456789abcdef0123456789abcdef");
    json_t *player = json_object_get(g, "player");
    assert_string_equal(json_string_value(json_object_get(player, "playerStreamerSid")),
                        "VJ0123456789abcdef0123456789abcdef");
    assert_true(json_is_null(json_object_get(player, "requestCredentials")));

    /* The signature, recomputed here with OpenSSL directly. */
    const char *last = strrchr(jwt, '.');
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)jwt, (size_t)(last - jwt), mac, &mac_len);
    char expected[64];
    base64url_encode(mac, mac_len, expected);
    assert_string_equal(last + 1, expected);
    json_decref(h);
    json_decref(p);
    free(jwt);
}

static void test_grants_only_when_given_and_region(void **state)
{
    (void)state;
    struct token_key key = {ACCOUNT, KEY_SID, SECRET, "au1"};
    struct token_grants g = {"viewer-1", NULL, NULL, NULL};
    char err[128];
    char *jwt = token_mint(&key, &g, 60, NOW, err, sizeof err);
    assert_non_null(jwt);
    json_t *h = segment(jwt, 0);
    assert_string_equal(json_string_value(json_object_get(h, "twr")), "au1");
    json_t *p = segment(jwt, 1);
    json_t *grants = json_object_get(p, "grants");
    assert_int_equal(json_object_size(grants), 1);
    json_decref(h);
    json_decref(p);
    free(jwt);
}

static void test_ttl_clamped_and_checked(void **state)
{
    (void)state;
    char *jwt = mint_full(100000);
    json_t *p = segment(jwt, 1);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")) - NOW, TOKEN_MAX_TTL_S);
    json_decref(p);
    free(jwt);

    struct token_grants g = {"a", NULL, NULL, NULL};
    char err[128];
    assert_null(token_mint(&KEY, &g, 0, NOW, err, sizeof err));
    assert_non_null(strstr(err, "ttl"));
    struct token_grants nobody = {"", NULL, NULL, NULL};
    assert_null(token_mint(&KEY, &nobody, 60, NOW, err, sizeof err));
    struct token_key nokey = {ACCOUNT, KEY_SID, "", NULL};
    assert_null(token_mint(&nokey, &g, 60, NOW, err, sizeof err));
    assert_null(strstr(err, SECRET));
}

/* Runs python3 with PyJWT; the token and secret travel in the environment. */
static int run_python(const char *script, const char *token, char *out, size_t outlen)
{
    setenv("JWT_UNDER_TEST", token, 1);
    setenv("JWT_SECRET_UNDER_TEST", SECRET, 1);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c '%s' 2>&1", script);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    int status = pclose(f);
    unsetenv("JWT_UNDER_TEST");
    unsetenv("JWT_SECRET_UNDER_TEST");
    return status;
}

static void test_pyjwt_verifies_our_token(void **state)
{
    (void)state;
    /* A real clock: PyJWT checks exp and nbf against the current time. */
    struct token_grants g = {"alice", "friday-townhall", NULL, NULL};
    char err[128];
    char *jwt = token_mint(&KEY, &g, 3600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    const char *script =
        "import os, jwt\n"
        "t = os.environ[\"JWT_UNDER_TEST\"]\n"
        "h = jwt.get_unverified_header(t)\n"
        "c = jwt.decode(t, os.environ[\"JWT_SECRET_UNDER_TEST\"], algorithms=[\"HS256\"])\n"
        "print(h[\"cty\"], c[\"iss\"], c[\"sub\"], c[\"grants\"][\"identity\"], c[\"grants\"][\"video\"][\"room\"])\n";
    char out[2048];
    int status = run_python(script, jwt, out, sizeof out);
    if (status != 0)
        fail_msg("PyJWT refused the token (is python3-jwt installed?): %s", out);
    assert_string_equal(out, "twilio-fpa;v=1 " KEY_SID " " ACCOUNT " alice friday-townhall\n");
    free(jwt);
}

static void test_we_verify_pyjwt_token(void **state)
{
    (void)state;
    const char *script =
        "import os, time, jwt\n"
        "n = int(time.time())\n"
        "print(jwt.encode({\"sub\": \"bob\", \"exp\": n + 600, \"nbf\": n - 5}, os.environ[\"JWT_SECRET_UNDER_TEST\"], algorithm=\"HS256\"), end=\"\")\n";
    char out[2048];
    int status = run_python(script, "", out, sizeof out);
    if (status != 0)
        fail_msg("PyJWT could not mint a token: %s", out);
    json_t *claims = NULL;
    char err[128];
    assert_int_equal(token_verify_hs256(out, SECRET, strlen(SECRET), (int64_t)time(NULL), 0, &claims, err, sizeof err),
                     0);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "bob");
    json_decref(claims);
}

/* Builds a token from raw header and payload JSON, signed with secret. */
static char *forge(const char *header, const char *payload, const char *secret)
{
    static char out[16384];
    char h[4096], p[8192];
    base64url_encode((const unsigned char *)header, strlen(header), h);
    base64url_encode((const unsigned char *)payload, strlen(payload), p);
    int n = snprintf(out, sizeof out, "%s.%s", h, p);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, (size_t)n, mac, &mac_len);
    out[n] = '.';
    base64url_encode(mac, mac_len, out + n + 1);
    return out;
}

static int verify(const char *jwt, char *err, size_t errlen)
{
    int rc = token_verify_hs256(jwt, SECRET, strlen(SECRET), NOW, 0, NULL, err, errlen);
    assert_null(strstr(err, SECRET));
    return rc;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD "{\"sub\":\"bob\",\"exp\":1795478341}"

static void test_verifier_refuses_bad_tokens(void **state)
{
    (void)state;
    char err[128] = "";
    assert_int_equal(verify(forge(HS256, GOOD, SECRET), err, sizeof err), 0);

    assert_int_equal(verify(forge("{\"alg\":\"none\"}", GOOD, SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge("{\"alg\":\"HS512\"}", GOOD, SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge("{\"typ\":\"JWT\"}", GOOD, SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge("{\"alg\":\"HS256\",\"crit\":[\"x\"]}", GOOD, SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge(HS256, GOOD, "another-secret"), err, sizeof err), -1);
    assert_string_equal(err, "bad signature");
    assert_int_equal(verify(forge(HS256, "{\"exp\":1795474741}", SECRET), err, sizeof err), -1);
    assert_string_equal(err, "token expired");
    assert_int_equal(token_verify_hs256(forge(HS256, "{\"exp\":1795474700}", SECRET), SECRET, strlen(SECRET), NOW, 60,
                                        NULL, err, sizeof err),
                     0);
    assert_int_equal(verify(forge(HS256, "{\"exp\":1795478341,\"nbf\":1795474800}", SECRET), err, sizeof err), -1);
    assert_string_equal(err, "token not valid yet");
    assert_int_equal(verify(forge(HS256, "{\"sub\":\"bob\"}", SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge(HS256, "{\"exp\":\"soon\"}", SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge(HS256, "[1,2,3]", SECRET), err, sizeof err), -1);
    assert_int_equal(verify(forge(HS256, "not json", SECRET), err, sizeof err), -1);

    /* Tampered payload with the original signature. */
    char tampered[16384];
    strcpy(tampered, forge(HS256, GOOD, SECRET));
    char *payload = strchr(tampered, '.') + 1;
    payload[2] = payload[2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(tampered, err, sizeof err), -1);
    /* Tampered signature. */
    strcpy(tampered, forge(HS256, GOOD, SECRET));
    char *sig = strrchr(tampered, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(tampered, err, sizeof err), -1);

    assert_int_equal(verify("", err, sizeof err), -1);
    assert_int_equal(verify("abc", err, sizeof err), -1);
    assert_int_equal(verify("a.b", err, sizeof err), -1);
    assert_int_equal(verify("a.b.c.d", err, sizeof err), -1);
    assert_int_equal(verify("e30.e30.!!!", err, sizeof err), -1);
    assert_int_equal(verify("e3+.e30.abc", err, sizeof err), -1);

    char *huge = malloc(TOKEN_MAX_LEN + 100);
    memset(huge, 'a', TOKEN_MAX_LEN + 99);
    huge[TOKEN_MAX_LEN + 99] = '\0';
    huge[10] = '.';
    huge[20] = '.';
    assert_int_equal(verify(huge, err, sizeof err), -1);
    assert_string_equal(err, "token too long");
    free(huge);
}

static int login(const char *jwt, const char *issuer, const char *audience, char *err, size_t errlen)
{
    struct token_login_rules rules = {issuer, audience};
    err[0] = '\0';
    int rc = token_verify_login(jwt, SECRET, strlen(SECRET), NOW, 0, &rules, NULL, err, errlen);
    assert_null(strstr(err, SECRET));
    return rc;
}

#define TWILIO_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"cty\":\"twilio-fpa;v=1\"}"

/* Issue 15, item 6: a login token is never an access token, and iss / aud
 * are checked when the ingress is told what they must be. */
static void test_login_rules(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(login(forge(HS256, GOOD, SECRET), NULL, NULL, err, sizeof err), 0);
    assert_int_equal(login(forge(HS256, GOOD, SECRET), "", "", err, sizeof err), 0);

    /* An access token minted with the same secret: refused for its cty... */
    struct token_grants g = {"alice", "friday", NULL, NULL};
    char *minted = token_mint(&KEY, &g, 600, NOW, err, sizeof err);
    assert_non_null(minted);
    assert_int_equal(token_verify_hs256(minted, SECRET, strlen(SECRET), NOW, 0, NULL, err, sizeof err), 0);
    assert_int_equal(login(minted, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "cty"));
    free(minted);
    assert_int_equal(login(forge(TWILIO_HEADER, GOOD, SECRET), NULL, NULL, err, sizeof err), -1);
    assert_int_equal(login(forge("{\"alg\":\"HS256\",\"cty\":\"application/TWILIO-FPA\"}", GOOD, SECRET), NULL, NULL,
                           err, sizeof err),
                     -1);
    assert_int_equal(login(forge("{\"alg\":\"HS256\",\"cty\":7}", GOOD, SECRET), NULL, NULL, err, sizeof err), -1);
    assert_int_equal(login(forge("{\"alg\":\"HS256\",\"cty\":\"JWT\"}", GOOD, SECRET), NULL, NULL, err, sizeof err), 0);
    /* ... and for its grants, whatever the header says. */
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"grants\":{}}", SECRET), NULL, NULL, err,
                           sizeof err),
                     -1);
    assert_non_null(strstr(err, "grants"));
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"grants\":null}", SECRET), NULL, NULL,
                           err, sizeof err),
                     -1);

    /* iss, when set: exactly. */
    const char *with_iss = "{\"sub\":\"bob\",\"exp\":1795478341,\"iss\":\"https://id.example\"}";
    assert_int_equal(login(forge(HS256, with_iss, SECRET), "https://id.example", NULL, err, sizeof err), 0);
    assert_int_equal(login(forge(HS256, with_iss, SECRET), "https://id.example/", NULL, err, sizeof err), -1);
    assert_string_equal(err, "token issuer (iss) is not the expected one");
    assert_int_equal(login(forge(HS256, GOOD, SECRET), "https://id.example", NULL, err, sizeof err), -1);
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"iss\":7}", SECRET), "https://id.example",
                           NULL, err, sizeof err),
                     -1);

    /* aud, when set: a string, or an array naming it. */
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"aud\":\"stagehand\"}", SECRET), NULL,
                           "stagehand", err, sizeof err),
                     0);
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"aud\":[\"a\",\"stagehand\"]}", SECRET),
                           NULL, "stagehand", err, sizeof err),
                     0);
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"aud\":\"stagehand-2\"}", SECRET), NULL,
                           "stagehand", err, sizeof err),
                     -1);
    assert_string_equal(err, "token audience (aud) does not name this service");
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"aud\":[\"a\",7]}", SECRET), NULL,
                           "stagehand", err, sizeof err),
                     -1);
    assert_int_equal(login(forge(HS256, "{\"sub\":\"bob\",\"exp\":1795478341,\"aud\":[]}", SECRET), NULL, "stagehand",
                           err, sizeof err),
                     -1);
    assert_int_equal(login(forge(HS256, GOOD, SECRET), NULL, "stagehand", err, sizeof err), -1);
    /* Both, and the claims come back. */
    json_t *claims = NULL;
    struct token_login_rules rules = {"https://id.example", "stagehand"};
    assert_int_equal(token_verify_login(forge(HS256,
                                              "{\"sub\":\"bob\",\"exp\":1795478341,\"iss\":\"https://id.example\","
                                              "\"aud\":[\"stagehand\"]}",
                                              SECRET),
                                        SECRET, strlen(SECRET), NOW, 0, &rules, &claims, err, sizeof err),
                     0);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "bob");
    json_decref(claims);
    /* The signature still comes first. */
    assert_int_equal(login(forge(HS256, GOOD, "another-secret"), NULL, NULL, err, sizeof err), -1);
    assert_string_equal(err, "bad signature");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minted_token_shape),
        cmocka_unit_test(test_grants_only_when_given_and_region),
        cmocka_unit_test(test_ttl_clamped_and_checked),
        cmocka_unit_test(test_pyjwt_verifies_our_token),
        cmocka_unit_test(test_we_verify_pyjwt_token),
        cmocka_unit_test(test_verifier_refuses_bad_tokens),
        cmocka_unit_test(test_login_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
