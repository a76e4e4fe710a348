/* libFuzzer: the HS256 JWT verifier the ingress uses in AUTH_MODE=jwt, and
 * the login-token rules on top of it (cty, grants, iss, aud). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *jwt = malloc(size + 1);
    if (!jwt)
        return 0;
    memcpy(jwt, data, size);
    jwt[size] = '\0';
    static const char secret[] = "fuzz-jwt-secret-0123456789";
    json_t *claims = NULL;
    char err[128];
    if (token_verify_hs256(jwt, secret, sizeof secret - 1, 1800000000, 30, &claims, err, sizeof err) == 0)
        json_decref(claims);
    static const struct token_login_rules rules = {"https://id.example", "stagehand"};
    if (token_verify_login(jwt, secret, sizeof secret - 1, 1800000000, 30, &rules, &claims, err, sizeof err) == 0)
        json_decref(claims);
    free(jwt);
    return 0;
}
