/* Access-token minting and HS256 verification (see token.h). */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "secure.h"

#define SHA256_LEN 32
#define TWILIO_CONTENT_TYPE "twilio-fpa" /* cty of Twilio access tokens, before ";v=1" */

/* base64url of a JSON value, compact, keys in insertion order; malloc'd. */
static char *encode_json(const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *out = malloc(base64_encoded_len(len, 0) + 1);
    if (out)
        base64url_encode((const unsigned char *)text, len, out);
    free(text);
    return out;
}

static void hmac_sha256(const void *key, size_t key_len, const char *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int out_len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, out, &out_len);
}

static json_t *build_header(const struct token_key *key)
{
    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "typ", "JWT", "cty", TWILIO_CONTENT_TYPE ";v=1");
    if (h && key->region && key->region[0])
        json_object_set_new(h, "twr", json_string(key->region));
    return h;
}

static json_t *build_grants(const struct token_grants *g)
{
    json_t *grants = json_pack("{s:s}", "identity", g->identity);
    if (!grants)
        return NULL;
    if (g->video_room && json_object_set_new(grants, "video", json_pack("{s:s}", "room", g->video_room)) < 0)
        goto fail;
    if (g->sync_service_sid &&
        json_object_set_new(grants, "data_sync", json_pack("{s:s}", "service_sid", g->sync_service_sid)) < 0)
        goto fail;
    if (g->player_grant && json_object_set_new(grants, "player", json_deep_copy(g->player_grant)) < 0)
        goto fail;
    return grants;
fail:
    json_decref(grants);
    return NULL;
}

char *token_mint(const struct token_key *key, const struct token_grants *grants, long ttl_s, int64_t now_s, char *err,
                 size_t errlen)
{
    if (ttl_s <= 0) {
        snprintf(err, errlen, "token ttl must be positive");
        return NULL;
    }
    if (ttl_s > TOKEN_MAX_TTL_S)
        ttl_s = TOKEN_MAX_TTL_S;
    if (!key->account_sid || !key->api_key_sid || !key->api_key_secret || !key->api_key_secret[0]) {
        snprintf(err, errlen, "token key is incomplete (account SID, API key SID and secret)");
        return NULL;
    }
    if (!grants->identity || !grants->identity[0]) {
        snprintf(err, errlen, "token needs an identity");
        return NULL;
    }

    char jti[128];
    snprintf(jti, sizeof jti, "%s-%lld", key->api_key_sid, (long long)now_s);
    json_t *header = build_header(key);
    json_t *grant_obj = build_grants(grants);
    json_t *payload = grant_obj
                          ? json_pack("{s:s, s:o, s:I, s:I, s:I, s:s, s:s}", "jti", jti, "grants", grant_obj, "iat",
                                      (json_int_t)now_s, "nbf", (json_int_t)now_s, "exp", (json_int_t)(now_s + ttl_s),
                                      "iss", key->api_key_sid, "sub", key->account_sid)
                          : NULL;
    char *h64 = header ? encode_json(header) : NULL;
    char *p64 = payload ? encode_json(payload) : NULL;
    json_decref(header);
    json_decref(payload);
    char *token = NULL;
    if (!h64 || !p64) {
        snprintf(err, errlen, "cannot build token (invalid UTF-8 in a grant, or out of memory)");
        goto done;
    }

    size_t signed_len = strlen(h64) + 1 + strlen(p64);
    token = malloc(signed_len + 1 + base64_encoded_len(SHA256_LEN, 0) + 1);
    if (!token) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    sprintf(token, "%s.%s", h64, p64);
    unsigned char mac[SHA256_LEN];
    hmac_sha256(key->api_key_secret, strlen(key->api_key_secret), token, signed_len, mac);
    token[signed_len] = '.';
    base64url_encode(mac, SHA256_LEN, token + signed_len + 1);
done:
    free(h64);
    free(p64);
    return token;
}

/* Decodes one base64url segment as a JSON object; NULL when it is not one. */
static json_t *decode_json_segment(const char *s, size_t len)
{
    unsigned char *raw = malloc(len * 3 / 4 + 2);
    if (!raw)
        return NULL;
    long n = base64url_decode(s, len, raw);
    json_t *obj = NULL;
    if (n >= 0) {
        obj = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
        if (obj && !json_is_object(obj)) {
            json_decref(obj);
            obj = NULL;
        }
    }
    free(raw);
    return obj;
}

/* Checks everything token_verify_hs256 promises; on success hands back
 * the header and the claims (caller decrefs both). */
static int verify_signed(const char *jwt, const void *secret, size_t secret_len, int64_t now_s, long leeway_s,
                         json_t **header_out, json_t **claims_out, char *err, size_t errlen)
{
    *header_out = NULL;
    *claims_out = NULL;
    if (!jwt || !jwt[0]) {
        snprintf(err, errlen, "missing token");
        return -1;
    }
    size_t len = strnlen(jwt, TOKEN_MAX_LEN + 1);
    if (len > TOKEN_MAX_LEN) {
        snprintf(err, errlen, "token too long");
        return -1;
    }
    const char *dot1 = memchr(jwt, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jwt))) {
        snprintf(err, errlen, "malformed token: not three segments");
        return -1;
    }

    json_t *header = decode_json_segment(jwt, (size_t)(dot1 - jwt));
    if (!header) {
        snprintf(err, errlen, "malformed token: bad header");
        return -1;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0) {
        snprintf(err, errlen, "unsupported token algorithm (HS256 required)");
        json_decref(header);
        return -1;
    }
    if (json_object_get(header, "crit")) {
        snprintf(err, errlen, "unsupported critical token header");
        json_decref(header);
        return -1;
    }

    const char *sig64 = dot2 + 1;
    size_t sig64_len = len - (size_t)(sig64 - jwt);
    unsigned char sig[SHA256_LEN + 3];
    if (sig64_len != base64_encoded_len(SHA256_LEN, 0) || base64url_decode(sig64, sig64_len, sig) != SHA256_LEN) {
        snprintf(err, errlen, "malformed token: bad signature encoding");
        json_decref(header);
        return -1;
    }
    unsigned char expected[SHA256_LEN];
    hmac_sha256(secret, secret_len, jwt, (size_t)(dot2 - jwt), expected);
    if (!secure_equal(expected, SHA256_LEN, sig, SHA256_LEN)) {
        snprintf(err, errlen, "bad signature");
        json_decref(header);
        return -1;
    }

    json_t *claims = decode_json_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims) {
        snprintf(err, errlen, "malformed token: bad payload");
        json_decref(header);
        return -1;
    }
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    const char *problem = NULL;
    if (!json_is_number(exp))
        problem = "token has no numeric exp";
    else if (json_number_value(exp) + (double)leeway_s <= (double)now_s)
        problem = "token expired";
    else if (nbf && !json_is_number(nbf))
        problem = "token nbf is not numeric";
    else if (nbf && json_number_value(nbf) - (double)leeway_s > (double)now_s)
        problem = "token not valid yet";
    if (problem) {
        snprintf(err, errlen, "%s", problem);
        json_decref(header);
        json_decref(claims);
        return -1;
    }
    *header_out = header;
    *claims_out = claims;
    return 0;
}

int token_verify_hs256(const char *jwt, const void *secret, size_t secret_len, int64_t now_s, long leeway_s,
                       json_t **claims_out, char *err, size_t errlen)
{
    json_t *header, *claims;
    if (claims_out)
        *claims_out = NULL;
    if (verify_signed(jwt, secret, secret_len, now_s, leeway_s, &header, &claims, err, errlen) < 0)
        return -1;
    json_decref(header);
    if (claims_out)
        *claims_out = claims;
    else
        json_decref(claims);
    return 0;
}

/* 1 when the header's cty names Twilio's access-token content type. */
static int twilio_content_type(const json_t *header)
{
    const json_t *cty = json_object_get(header, "cty");
    if (!cty)
        return 0;
    const char *text = json_string_value(cty);
    /* Any other type than a string is not a login token's either. */
    return !text || strcasestr(text, TWILIO_CONTENT_TYPE) != NULL;
}

/* 1 when aud (a string, or an array of strings) names audience. */
static int names_audience(const json_t *aud, const char *audience)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    if (!json_is_array(aud))
        return 0;
    size_t i;
    const json_t *one;
    json_array_foreach (aud, i, one)
        if (json_is_string(one) && strcmp(json_string_value(one), audience) == 0)
            return 1;
    return 0;
}

int token_verify_login(const char *jwt, const void *secret, size_t secret_len, int64_t now_s, long leeway_s,
                       const struct token_login_rules *rules, json_t **claims_out, char *err, size_t errlen)
{
    json_t *header, *claims;
    if (claims_out)
        *claims_out = NULL;
    if (verify_signed(jwt, secret, secret_len, now_s, leeway_s, &header, &claims, err, errlen) < 0)
        return -1;
    const char *problem = NULL;
    const char *issuer = rules && rules->issuer && rules->issuer[0] ? rules->issuer : NULL;
    const char *audience = rules && rules->audience && rules->audience[0] ? rules->audience : NULL;
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (twilio_content_type(header))
        problem = "token is a Twilio access token (cty), not a login token";
    else if (json_object_get(claims, "grants"))
        problem = "token carries grants: an access token, not a login token";
    else if (issuer && (!iss || strcmp(iss, issuer) != 0))
        problem = "token issuer (iss) is not the expected one";
    else if (audience && !names_audience(json_object_get(claims, "aud"), audience))
        problem = "token audience (aud) does not name this service";
    json_decref(header);
    if (problem) {
        snprintf(err, errlen, "%s", problem);
        json_decref(claims);
        return -1;
    }
    if (claims_out)
        *claims_out = claims;
    else
        json_decref(claims);
    return 0;
}
