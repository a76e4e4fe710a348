/* Request parameters and response builders for the emulator (see http.h). */
#include "http.h"

#include "emulator.h"
#include "timeutil.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void emu_reply(struct emu_response *resp, unsigned status, json_t *body)
{
    json_decref(resp->body);
    resp->status = status;
    resp->body = body;
}

void emu_error(struct emu_response *resp, unsigned status, int code, const char *message)
{
    char more_info[80];
    snprintf(more_info, sizeof more_info, "https://www.twilio.com/docs/errors/%d", code);
    emu_reply(resp, status,
              json_pack("{s:i, s:s, s:s, s:i}", "code", code, "message", message, "more_info", more_info, "status",
                        (int)status));
}

const char *emu_header(const struct emu_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *emu_param(const struct emu_request *req, const char *name)
{
    return kv_get(&req->params, name);
}

int emu_param_bool(const struct emu_request *req, const char *name, int def)
{
    const char *v = emu_param(req, name);
    if (!v)
        return def;
    if (strcasecmp(v, "true") == 0)
        return 1;
    if (strcasecmp(v, "false") == 0)
        return 0;
    return -1;
}

long emu_param_long(const struct emu_request *req, const char *name, long def, int *ok)
{
    const char *v = emu_param(req, name);
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0')
        *ok = 0;
    return n;
}

void emu_not_found(struct emu_response *resp)
{
    emu_error(resp, 404, 20404, "The requested resource was not found");
}

json_t *emu_date_or_null(int64_t epoch_ms)
{
    if (epoch_ms <= 0)
        return json_null();
    char text[21];
    emu_format_date(epoch_ms, text);
    return json_string(text);
}

json_t *emu_list_page(const char *key, json_t *all, const struct emu_request *req, const char *url)
{
    int ok = 1;
    long page_size = emu_param_long(req, "PageSize", 50, &ok);
    long page = emu_param_long(req, "Page", 0, &ok);
    if (!ok || page_size < 1)
        page_size = 50;
    if (page_size > 1000)
        page_size = 1000;
    if (page < 0)
        page = 0;
    json_t *items = json_array();
    size_t total = json_array_size(all);
    for (size_t i = (size_t)(page * page_size); i < total && i < (size_t)((page + 1) * page_size); i++)
        json_array_append(items, json_array_get(all, i));
    json_decref(all);
    char first[256], next[256], self[256];
    snprintf(first, sizeof first, "%s?PageSize=%ld&Page=0", url, page_size);
    snprintf(self, sizeof self, "%s?PageSize=%ld&Page=%ld", url, page_size, page);
    snprintf(next, sizeof next, "%s?PageSize=%ld&Page=%ld", url, page_size, page + 1);
    int has_next = (size_t)((page + 1) * page_size) < total;
    return json_pack("{s:o, s:{s:i, s:i, s:s, s:o, s:s, s:o, s:s}}", key, items, "meta", "page", (int)page, "page_size",
                     (int)page_size, "first_page_url", first, "previous_page_url",
                     page > 0 ? json_string(first) : json_null(), "url", self, "next_page_url",
                     has_next ? json_string(next) : json_null(), "key", key);
}

char *emu_check_access_token(const struct emulator *emu, const char *token, const char *grant, const char *field,
                             const char *want1, const char *want2, json_t **grant_out, struct emu_response *resp)
{
    char err[128];
    json_t *claims = NULL;
    if (!token || token_verify_hs256(token, emu->api_key_secret, strlen(emu->api_key_secret), time_now_ms() / 1000, 0,
                                     &claims, err, sizeof err) < 0) {
        emu_error(resp, 401, 20101, "Invalid Access Token");
        return NULL;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    json_t *grants = json_object_get(claims, "grants");
    const char *identity = json_string_value(json_object_get(grants, "identity"));
    const char *value = json_string_value(json_object_get(json_object_get(grants, grant), field));
    char *result = NULL;
    if (!iss || strcmp(iss, emu->api_key_sid) != 0 || !sub || strcmp(sub, emu->account_sid) != 0)
        emu_error(resp, 401, 20103, "Invalid Access Token issuer/subject");
    else if (!identity || !identity[0])
        emu_error(resp, 403, 20106, "Invalid Access Token grants: no identity");
    else if (!value || (strcmp(value, want1) != 0 && (!want2 || strcmp(value, want2) != 0)))
        emu_error(resp, 403, 20106, "Invalid Access Token grants: no grant for this resource");
    else if (!(result = strdup(identity)))
        emu_error(resp, 500, 20500, "Internal server error");
    else if (grant_out)
        *grant_out = json_incref(json_object_get(grants, grant));
    json_decref(claims);
    return result;
}
