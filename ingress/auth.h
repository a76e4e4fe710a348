/* Who is calling the client API.
 *
 * AUTH_MODE=passcode (reference-compatible): the Authorization header holds
 * the shared passcode, compared in constant time. It proves only that the
 * caller knows the passcode: the identity in the body is whatever the
 * client says, so anyone with the passcode can act as anyone, host
 * included. Host-only actions cannot be enforced in this mode.
 *
 * AUTH_MODE=jwt: "Authorization: Bearer <JWT>", HS256 under AUTH_JWT_SECRET
 * (issued by the operator's identity service), with exp; the identity is
 * the token's "sub" claim and must follow the identity rules. A Twilio
 * access token (cty twilio-fpa, or a grants claim) is never a login token,
 * and iss / aud must be AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE when those are
 * set. The body's user_identity, when it names the caller, must match it,
 * and host-only actions are refused (403) to anyone but the stream's host. */
#ifndef STAGEHAND_INGRESS_AUTH_H
#define STAGEHAND_INGRESS_AUTH_H

#include "params.h"

enum auth_mode { AUTH_PASSCODE, AUTH_JWT };

struct auth {
    enum auth_mode mode;
    const char *passcode;     /* passcode mode */
    const char *jwt_secret;   /* jwt mode */
    const char *jwt_issuer;   /* jwt mode: the iss required, or "" */
    const char *jwt_audience; /* jwt mode: the aud required, or "" */
};

/* Checks the Authorization header (NULL when absent). Returns 0 with
 * *identity set (malloc'd in jwt mode; NULL in passcode mode, where the
 * caller is unknown), or -1 with e filled (401). Never logs or repeats the
 * header. */
int auth_check(const struct auth *a, const char *header, char **identity, struct api_error *e);

#endif
