/* The emulator's view of one HTTP request and the ways to answer it: JSON
 * bodies and Twilio-shaped error bodies ({code, message, more_info, status}). */
#ifndef STAGEHAND_EMULATOR_HTTP_H
#define STAGEHAND_EMULATOR_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "kv.h"

#define EMU_MAX_SEGMENTS 12

struct emu_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;                 /* decoded by MHD */
    char *segments[EMU_MAX_SEGMENTS]; /* path split on '/' (owned) */
    int nsegments;
    struct kv_list params; /* form body (POST) or query (GET) */
};

struct emu_response {
    unsigned status;
    json_t *body;  /* NULL for an empty body (204) */
    char etag[32]; /* sent as the ETag header when not empty (Sync revisions) */
    int drop;      /* close the connection without answering (fault injection) */
    long delay_ms; /* wait this long before answering (fault injection) */
};

/* Sets resp to status + body (body is stolen). */
void emu_reply(struct emu_response *resp, unsigned status, json_t *body);

/* Sets resp to a Twilio error: HTTP status, Twilio code and message. */
void emu_error(struct emu_response *resp, unsigned status, int code, const char *message);

/* The value of a request header, or NULL. */
const char *emu_header(const struct emu_request *req, const char *name);

/* The value of a request parameter, or NULL. */
const char *emu_param(const struct emu_request *req, const char *name);

/* Parses a Twilio boolean parameter ("true"/"false", any case). Returns 1 or
 * 0, def when absent, -1 when present but not a boolean. */
int emu_param_bool(const struct emu_request *req, const char *name, int def);

/* Parses an integer parameter; def when absent; -1 into *ok when bad. */
long emu_param_long(const struct emu_request *req, const char *name, long def, int *ok);

#endif
