/* Request bodies of the client API: a JSON object or an HTML form (the
 * reference clients send JSON; forms are accepted too), read into one JSON
 * object of fields so that handlers check every field the same way, and
 * the error each bad input gets, in the reference's envelope:
 *
 *   {"error": {"message": "missing user_identity",
 *              "explanation": "The user_identity parameter is missing."}}
 *
 * Form values are strings; a form's boolean is "true" or "false". A JSON
 * body must be one object, valid UTF-8, without repeated names; a form
 * must not repeat a field. An empty body is an empty object. */
#ifndef STAGEHAND_INGRESS_PARAMS_H
#define STAGEHAND_INGRESS_PARAMS_H

#include <jansson.h>
#include <stddef.h>

struct api_error {
    int status;            /* HTTP status: 400, 401, 403, 404, 409, 413, 415, 429, 503 */
    char message[64];      /* short, machine-ish: "missing user_identity" */
    char explanation[256]; /* one sentence for people */
    long retry_after_s;    /* > 0: sent as Retry-After */
};

/* Fills e; returns -1, so handlers can write `return api_fail(...)`. */
int api_fail(struct api_error *e, int status, const char *message, const char *explanation_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The {"error": {...}} body of e. */
json_t *api_error_json(const struct api_error *e);

struct params {
    json_t *fields; /* owned */
    int from_form;  /* values came from a form: all strings */
};

/* Reads body according to content_type (may be NULL when the body is
 * empty). Returns 0, or -1 with e filled (415 for another content type,
 * 400 for a malformed body). */
/* 1 when the media type of content_type (NULL: none; parameters such as
 * "; charset=utf-8" ignored, any case) is type. */
int params_media_type_is(const char *content_type, const char *type);

int params_parse(const char *content_type, const char *body, size_t len, struct params *out, struct api_error *e);

void params_free(struct params *p);

/* A required identity field (text.h rules). NULL with e filled: missing,
 * not a string, or breaking a rule. */
const char *params_identity(const struct params *p, const char *name, struct api_error *e);

/* A required stream name field (text.h rules). */
const char *params_stream(const struct params *p, const char *name, struct api_error *e);

/* An optional identity field: NULL without error when absent. Returns 0, or
 * -1 with e filled when present but invalid. */
int params_optional_identity(const struct params *p, const char *name, const char **out, struct api_error *e);

/* A required boolean field: a JSON boolean, or "true"/"false" in a form.
 * Returns 0, or -1 with e filled. */
int params_bool(const struct params *p, const char *name, int *out, struct api_error *e);

/* 1 when the field is present (any type). */
int params_has(const struct params *p, const char *name);

#endif
