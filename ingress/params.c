/* Request bodies of the client API and their errors (see params.h). */
#include "params.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "form.h"
#include "kv.h"
#include "text.h"

int api_fail(struct api_error *e, int status, const char *message, const char *explanation_fmt, ...)
{
    va_list ap;
    e->status = status;
    e->retry_after_s = 0;
    snprintf(e->message, sizeof e->message, "%s", message);
    va_start(ap, explanation_fmt);
    vsnprintf(e->explanation, sizeof e->explanation, explanation_fmt, ap);
    va_end(ap);
    return -1;
}

json_t *api_error_json(const struct api_error *e)
{
    return json_pack("{s:{s:s, s:s}}", "error", "message", e->message, "explanation", e->explanation);
}

int params_media_type_is(const char *content_type, const char *type)
{
    size_t n = strlen(type);
    if (!content_type || strncasecmp(content_type, type, n) != 0)
        return 0;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

static int parse_form(const char *body, size_t len, struct params *out, struct api_error *e)
{
    struct kv_list pairs;
    char err[128];
    kv_init(&pairs);
    if (form_parse(body, len, &pairs, err, sizeof err) < 0) {
        kv_free(&pairs);
        return api_fail(e, 400, "invalid body", "The form body is malformed: %s.", err);
    }
    out->fields = json_object();
    out->from_form = 1;
    for (size_t i = 0; i < pairs.len; i++) {
        const struct kv_pair *kv = &pairs.items[i];
        if (utf8_length(kv->name, kv->name_len) < 0 || utf8_length(kv->value, kv->value_len) < 0 ||
            memchr(kv->name, '\0', kv->name_len)) {
            kv_free(&pairs);
            return api_fail(e, 400, "invalid body", "The form body is not valid UTF-8.");
        }
        if (json_object_get(out->fields, kv->name)) {
            kv_free(&pairs);
            return api_fail(e, 400, "invalid body", "The form repeats a field.");
        }
        json_t *value = json_stringn(kv->value, kv->value_len);
        if (!value || json_object_set_new(out->fields, kv->name, value) < 0) {
            kv_free(&pairs);
            return api_fail(e, 500, "internal error", "Out of memory.");
        }
    }
    kv_free(&pairs);
    return 0;
}

int params_parse(const char *content_type, const char *body, size_t len, struct params *out, struct api_error *e)
{
    out->fields = NULL;
    out->from_form = 0;
    if (len == 0) {
        out->fields = json_object();
        return out->fields ? 0 : api_fail(e, 500, "internal error", "Out of memory.");
    }
    if (!content_type)
        return api_fail(e, 415, "unsupported content type",
                        "Send the body as application/json or application/x-www-form-urlencoded.");
    if (params_media_type_is(content_type, "application/x-www-form-urlencoded")) {
        if (parse_form(body, len, out, e) < 0) {
            params_free(out);
            return -1;
        }
        return 0;
    }
    if (!params_media_type_is(content_type, "application/json"))
        return api_fail(e, 415, "unsupported content type",
                        "Send the body as application/json or application/x-www-form-urlencoded.");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return api_fail(e, 400, "invalid body", "The body is not valid JSON (UTF-8): %s.", jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return api_fail(e, 400, "invalid body", "The body must be a JSON object.");
    }
    out->fields = root;
    return 0;
}

void params_free(struct params *p)
{
    json_decref(p->fields);
    p->fields = NULL;
}

int params_has(const struct params *p, const char *name)
{
    return json_object_get(p->fields, name) != NULL;
}

/* A required string field checked by rule (NULL: no rule). */
static const char *checked_string(const struct params *p, const char *name, const char *(*rule)(const char *, size_t),
                                  struct api_error *e)
{
    char message[64];
    const json_t *value = json_object_get(p->fields, name);
    if (!value) {
        snprintf(message, sizeof message, "missing %s", name);
        api_fail(e, 400, message, "The %s parameter is missing.", name);
        return NULL;
    }
    snprintf(message, sizeof message, "invalid %s", name);
    if (!json_is_string(value)) {
        api_fail(e, 400, message, "The %s parameter must be a string.", name);
        return NULL;
    }
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    if (strlen(text) != len) {
        api_fail(e, 400, message, "The %s parameter must not contain NUL characters.", name);
        return NULL;
    }
    const char *problem = rule ? rule(text, len) : NULL;
    if (problem) {
        api_fail(e, 400, message, "The %s parameter %s.", name, problem);
        return NULL;
    }
    return text;
}

const char *params_identity(const struct params *p, const char *name, struct api_error *e)
{
    return checked_string(p, name, identity_problem, e);
}

const char *params_stream(const struct params *p, const char *name, struct api_error *e)
{
    return checked_string(p, name, stream_name_problem, e);
}

int params_optional_identity(const struct params *p, const char *name, const char **out, struct api_error *e)
{
    *out = NULL;
    if (!params_has(p, name))
        return 0;
    *out = params_identity(p, name, e);
    return *out ? 0 : -1;
}

int params_bool(const struct params *p, const char *name, int *out, struct api_error *e)
{
    char message[64];
    const json_t *value = json_object_get(p->fields, name);
    if (!value) {
        snprintf(message, sizeof message, "missing %s", name);
        return api_fail(e, 400, message, "The %s parameter is missing.", name);
    }
    if (json_is_boolean(value)) {
        *out = json_is_true(value);
        return 0;
    }
    if (p->from_form && json_is_string(value)) {
        const char *text = json_string_value(value);
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
            *out = text[0] == 't';
            return 0;
        }
    }
    snprintf(message, sizeof message, "invalid %s", name);
    return api_fail(e, 400, message, "The %s parameter must be true or false.", name);
}
