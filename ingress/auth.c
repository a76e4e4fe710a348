/* Authentication of client requests (see auth.h). */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "secure.h"
#include "text.h"
#include "timeutil.h"
#include "token.h"

#define JWT_LEEWAY_S 30

static int passcode_failed(struct api_error *e)
{
    return api_fail(e, 401, "passcode incorrect", "The passcode used to validate application users is incorrect.");
}

static int token_failed(struct api_error *e)
{
    return api_fail(e, 401, "invalid token",
                    "The bearer token is missing, malformed, expired or not signed by the "
                    "identity service.");
}

int auth_check(const struct auth *a, const char *header, char **identity, struct api_error *e)
{
    *identity = NULL;
    if (a->mode == AUTH_PASSCODE) {
        if (!header)
            return passcode_failed(e);
        int equal = secure_equal(header, strlen(header), a->passcode, strlen(a->passcode));
        return equal ? 0 : passcode_failed(e);
    }
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return token_failed(e);
    const char *jwt = header + 7;
    json_t *claims = NULL;
    char err[128];
    struct token_login_rules rules = {a->jwt_issuer, a->jwt_audience};
    if (token_verify_login(jwt, a->jwt_secret, strlen(a->jwt_secret), time_now_ms() / 1000, JWT_LEEWAY_S, &rules,
                           &claims, err, sizeof err) < 0)
        return token_failed(e);
    const json_t *sub = json_object_get(claims, "sub");
    const char *text = json_string_value(sub);
    if (!text || identity_problem(text, json_string_length(sub)) || strlen(text) != json_string_length(sub)) {
        json_decref(claims);
        return api_fail(e, 401, "invalid token", "The bearer token's subject is not a valid identity.");
    }
    *identity = strdup(text);
    json_decref(claims);
    if (!*identity)
        return api_fail(e, 500, "internal error", "Out of memory.");
    return 0;
}
