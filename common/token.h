/* Twilio access tokens (JWT, HS256, "cty": "twilio-fpa;v=1") and a verifier
 * for HS256 bearer tokens (the ingress's AUTH_MODE=jwt), with the rules a
 * login token must follow on top (token_verify_login).
 *
 * A minted token has the header {"alg","typ","cty"} (plus "twr" when a
 * region is given) and the claims jti ("<API key SID>-<iat>", as Twilio's
 * helper libraries make it), grants, iat, nbf (= iat), exp (= iat + ttl),
 * iss (API key SID) and sub (account SID). grants holds identity and, only
 * when given, video {room}, data_sync {service_sid} and player (the
 * PlaybackGrant API's grant object, copied as is). Twilio refuses tokens
 * that live longer than 24 h, so a larger ttl is clamped to 86400 s. */
#ifndef STAGEHAND_TOKEN_H
#define STAGEHAND_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX_TTL_S 86400
#define TOKEN_MAX_LEN 8192 /* longest bearer token the verifier reads */

struct token_key {
    const char *account_sid;    /* AC... */
    const char *api_key_sid;    /* SK... */
    const char *api_key_secret; /* HMAC key */
    const char *region;         /* NULL, or e.g. "au1" for the twr header */
};

struct token_grants {
    const char *identity;         /* required */
    const char *video_room;       /* NULL = no video grant */
    const char *sync_service_sid; /* NULL = no data_sync grant */
    const json_t *player_grant;   /* NULL = no player grant; copied */
};

/* Mints a signed access token valid from now_s for ttl_s seconds (clamped to
 * TOKEN_MAX_TTL_S). Returns a malloc'd string, or NULL with the reason in err
 * (ttl_s <= 0, a missing key field or identity, out of memory). */
char *token_mint(const struct token_key *key, const struct token_grants *grants, long ttl_s, int64_t now_s, char *err,
                 size_t errlen);

/* Verifies an HS256 JWT with the shared secret: the header's alg must be
 * exactly HS256 and carry no "crit", the signature must match (checked in
 * constant time before the payload is read), exp is required, nbf is
 * honoured when present, both with leeway_s of slack. On success returns 0
 * and, when claims_out is not NULL, the payload object (caller decrefs). On
 * failure returns -1 with a short reason in err that never quotes the token
 * or the secret. */
int token_verify_hs256(const char *jwt, const void *secret, size_t secret_len, int64_t now_s, long leeway_s,
                       json_t **claims_out, char *err, size_t errlen);

/* What a login token must be beyond a valid HS256 JWT. NULL or "" leaves a
 * claim unchecked. */
struct token_login_rules {
    const char *issuer;   /* iss must be exactly this string */
    const char *audience; /* aud, a string or an array of strings, must name it */
};

/* token_verify_hs256, and then the token must not be an access token: a
 * header "cty" naming twilio-fpa (in any case, or a cty that is not a
 * string) or a "grants" claim refuses it, whatever signed it. Then iss and
 * aud as rules ask (rules may be NULL). Same results and err as
 * token_verify_hs256; err never quotes a claim's value. */
int token_verify_login(const char *jwt, const void *secret, size_t secret_len, int64_t now_s, long leeway_s,
                       const struct token_login_rules *rules, json_t **claims_out, char *err, size_t errlen);

#endif
