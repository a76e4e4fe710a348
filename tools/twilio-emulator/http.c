/* Request parameters and response builders for the emulator (see http.h). */
#include "http.h"

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
              json_pack("{s:i, s:s, s:s, s:i}", "code", code, "message", message,
                        "more_info", more_info, "status", (int)status));
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
