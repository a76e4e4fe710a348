/* The schema validator (see schema.h). Schemas are parsed and checked once;
 * their patterns are compiled then and kept beside them. */
#include "schema.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_sources.h"
#include "text.h"
#include "timeutil.h"

struct compiled_pattern {
    const json_t *owner; /* the schema object whose "pattern" this is */
    regex_t re;
};

struct loaded_schema {
    const char *name;
    json_t *root;
    struct compiled_pattern *patterns;
    size_t npatterns;
};

static struct loaded_schema *schemas;
static size_t schema_count;
static char load_error[256];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static const char *const TYPE_NAMES[] = {"object", "array", "string", "integer", "number", "boolean", "null"};
static const char *const FORMATS[] = {"identity", "stream-name", "date-time", "event-id"};
static const char *const ANNOTATIONS[] = {"$schema", "$id", "title", "description", "$comment", "examples"};

#define IN_LIST(list, s) in_list(list, sizeof list / sizeof list[0], s)

static int in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* --- loading ------------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

static int is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int add_pattern(struct loaded_schema *s, const json_t *owner, const char *pattern)
{
    struct compiled_pattern *grown = realloc(s->patterns, (s->npatterns + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->patterns = grown;
    if (regcomp(&grown[s->npatterns].re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return -1;
    grown[s->npatterns].owner = owner;
    s->npatterns++;
    return 0;
}

/* Checks that node is a schema made only of supported keywords with values of
 * the right shape, compiling patterns as it goes. */
static int check_node(struct loaded_schema *s, const json_t *node, char *err, size_t errlen)
{
    if (!json_is_object(node))
        return fail(err, errlen, "schema %s: a schema must be an object%s", s->name, "");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)node, key, v) {
        int ok;
        if (IN_LIST(ANNOTATIONS, key)) {
            continue;
        } else if (strcmp(key, "type") == 0) {
            ok = json_is_string(v) && IN_LIST(TYPE_NAMES, json_string_value(v));
            if (json_is_array(v)) {
                size_t i;
                const json_t *t;
                ok = json_array_size(v) > 0;
                json_array_foreach(v, i, t)
                    ok = ok && json_is_string(t) && IN_LIST(TYPE_NAMES, json_string_value(t));
            }
        } else if (strcmp(key, "properties") == 0) {
            ok = json_is_object(v);
            const char *prop;
            const json_t *sub;
            json_object_foreach((json_t *)v, prop, sub) {
                if (check_node(s, sub, err, errlen) < 0)
                    return -1;
            }
        } else if (strcmp(key, "items") == 0) {
            if (check_node(s, v, err, errlen) < 0)
                return -1;
            ok = 1;
        } else if (strcmp(key, "required") == 0) {
            size_t i;
            const json_t *r;
            ok = json_is_array(v);
            json_array_foreach(v, i, r)
                ok = ok && json_is_string(r);
        } else if (strcmp(key, "additionalProperties") == 0) {
            ok = json_is_boolean(v);
        } else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
                   strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0) {
            ok = is_count(v);
        } else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
            ok = json_is_number(v);
        } else if (strcmp(key, "enum") == 0) {
            ok = json_is_array(v) && json_array_size(v) > 0;
        } else if (strcmp(key, "const") == 0) {
            ok = 1;
        } else if (strcmp(key, "pattern") == 0) {
            ok = json_is_string(v);
            if (ok && add_pattern(s, node, json_string_value(v)) < 0)
                return fail(err, errlen, "schema %s: pattern %s does not compile", s->name,
                            json_string_value(v));
        } else if (strcmp(key, "format") == 0) {
            ok = json_is_string(v) && IN_LIST(FORMATS, json_string_value(v));
            if (!ok)
                return fail(err, errlen, "schema %s: unknown format \"%s\"", s->name,
                            json_is_string(v) ? json_string_value(v) : "?");
        } else {
            return fail(err, errlen, "schema %s: unsupported keyword \"%s\"", s->name, key);
        }
        if (!ok)
            return fail(err, errlen, "schema %s: bad value for \"%s\"", s->name, key);
    }
    return 0;
}

static void free_schema(struct loaded_schema *s)
{
    for (size_t i = 0; i < s->npatterns; i++)
        regfree(&s->patterns[i].re);
    free(s->patterns);
    json_decref(s->root);
    memset(s, 0, sizeof *s);
}

static int load_schema(struct loaded_schema *s, const char *name, const char *text, char *err,
                       size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    json_error_t jerr;
    s->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->root) {
        snprintf(err, errlen, "schema %s: not valid JSON (line %d: %s)", name, jerr.line, jerr.text);
        return -1;
    }
    if (check_node(s, s->root, err, errlen) < 0) {
        free_schema(s);
        return -1;
    }
    return 0;
}

static void free_all(void)
{
    for (size_t i = 0; i < schema_count; i++)
        free_schema(&schemas[i]);
    free(schemas);
}

static void load_embedded(void)
{
    schemas = calloc(schema_sources_count ? schema_sources_count : 1, sizeof *schemas);
    if (!schemas) {
        snprintf(load_error, sizeof load_error, "out of memory loading schemas");
        return;
    }
    atexit(free_all); /* keeps leak checkers quiet about the cache */
    for (size_t i = 0; i < schema_sources_count; i++) {
        if (load_schema(&schemas[i], schema_sources[i].name, schema_sources[i].text, load_error,
                        sizeof load_error) < 0)
            return;
        schema_count++;
    }
}

int schema_load_all(char *err, size_t errlen)
{
    pthread_once(&load_once, load_embedded);
    if (load_error[0]) {
        snprintf(err, errlen, "%s", load_error);
        return -1;
    }
    return 0;
}

static const struct loaded_schema *find_schema(const char *name)
{
    pthread_once(&load_once, load_embedded);
    if (load_error[0])
        return NULL;
    for (size_t i = 0; i < schema_count; i++)
        if (strcmp(schemas[i].name, name) == 0)
            return &schemas[i];
    return NULL;
}

int schema_exists(const char *name)
{
    return find_schema(name) != NULL;
}

/* --- validation --------------------------------------------------------------------------- */

#define PATH_MAX_LEN 256

static int invalid(char *err, size_t errlen, const char *path, const char *rule)
{
    snprintf(err, errlen, "%s: %s", path[0] ? path : "(root)", rule);
    return -1;
}

/* A member name made safe to show: at most 40 bytes, printable ASCII only. */
static void safe_name(const char *name, char out[41])
{
    size_t i = 0;
    for (; name[i] && i < 40; i++)
        out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    out[i] = '\0';
}

/* parent.key (or key at the root), cut to fit PATH_MAX_LEN. Built for
 * every member validated, so without printf: this is on the hot path of
 * every event a worker reads. */
static void child_path(char *out, const char *parent, const char *key)
{
    char safe[41];
    safe_name(key, safe);
    size_t used = strnlen(parent, PATH_MAX_LEN - 1);
    memmove(out, parent, used);
    if (used && used < PATH_MAX_LEN - 1)
        out[used++] = '.';
    size_t n = strlen(safe);
    if (n > PATH_MAX_LEN - 1 - used)
        n = PATH_MAX_LEN - 1 - used;
    memcpy(out + used, safe, n);
    out[used + n] = '\0';
}

static int type_matches(const char *type, const json_t *v)
{
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    return json_is_null(v);
}

static int check_type(const json_t *type, const json_t *v)
{
    if (json_is_string(type))
        return type_matches(json_string_value(type), v);
    size_t i;
    const json_t *t;
    json_array_foreach(type, i, t)
        if (type_matches(json_string_value(t), v))
            return 1;
    return 0;
}

static void describe_type(const json_t *type, char *out, size_t outlen)
{
    if (json_is_string(type)) {
        snprintf(out, outlen, "must be of type %s", json_string_value(type));
        return;
    }
    size_t used = (size_t)snprintf(out, outlen, "must be of type");
    size_t i;
    const json_t *t;
    json_array_foreach(type, i, t)
        if (used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? " or " : " ",
                                     json_string_value(t));
}

static int is_event_id(const char *s, size_t len)
{
    if (len != 32)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static const char *format_problem(const char *format, const char *s, size_t len)
{
    if (strcmp(format, "identity") == 0)
        return identity_problem(s, len);
    if (strcmp(format, "stream-name") == 0)
        return stream_name_problem(s, len);
    if (strcmp(format, "event-id") == 0)
        return is_event_id(s, len) ? NULL : "must be 32 lowercase hex digits";
    int64_t ms;
    if (strlen(s) != len || time_parse_rfc3339(s, &ms) < 0)
        return "must be an RFC 3339 date-time";
    return NULL;
}

static const regex_t *pattern_of(const struct loaded_schema *s, const json_t *node)
{
    for (size_t i = 0; i < s->npatterns; i++)
        if (s->patterns[i].owner == node)
            return &s->patterns[i].re;
    return NULL;
}

static int validate_node(const struct loaded_schema *s, const json_t *node, const json_t *v,
                         const char *path, char *err, size_t errlen);

static int validate_string(const struct loaded_schema *s, const json_t *node, const json_t *v,
                           const char *path, char *err, size_t errlen)
{
    const char *str = json_string_value(v);
    size_t len = json_string_length(v);
    long chars = utf8_length(str, len);
    if (chars < 0)
        return invalid(err, errlen, path, "is not valid UTF-8");
    const json_t *min = json_object_get(node, "minLength");
    const json_t *max = json_object_get(node, "maxLength");
    char rule[96];
    if (min && chars < json_integer_value(min)) {
        snprintf(rule, sizeof rule, "must be at least %lld characters", (long long)json_integer_value(min));
        return invalid(err, errlen, path, rule);
    }
    if (max && chars > json_integer_value(max)) {
        snprintf(rule, sizeof rule, "must be at most %lld characters", (long long)json_integer_value(max));
        return invalid(err, errlen, path, rule);
    }
    const regex_t *re = pattern_of(s, node);
    if (re && (strlen(str) != len || regexec(re, str, 0, NULL, 0) != 0)) {
        snprintf(rule, sizeof rule, "does not match the pattern %.60s",
                 json_string_value(json_object_get(node, "pattern")));
        return invalid(err, errlen, path, rule);
    }
    const json_t *format = json_object_get(node, "format");
    if (format) {
        const char *why = format_problem(json_string_value(format), str, len);
        if (why)
            return invalid(err, errlen, path, why);
    }
    return 0;
}

static int validate_object(const struct loaded_schema *s, const json_t *node, const json_t *v,
                           const char *path, char *err, size_t errlen)
{
    char sub[PATH_MAX_LEN];
    const json_t *required = json_object_get(node, "required");
    size_t i;
    const json_t *r;
    json_array_foreach(required, i, r) {
        if (!json_object_get(v, json_string_value(r))) {
            child_path(sub, path, json_string_value(r));
            return invalid(err, errlen, sub, "is required");
        }
    }
    const json_t *props = json_object_get(node, "properties");
    const json_t *additional = json_object_get(node, "additionalProperties");
    const char *key;
    const json_t *member;
    json_object_foreach((json_t *)v, key, member) {
        const json_t *prop = props ? json_object_get(props, key) : NULL;
        if (prop) {
            child_path(sub, path, key);
            if (validate_node(s, prop, member, sub, err, errlen) < 0)
                return -1;
        } else if (json_is_false(additional)) {
            char safe[41], rule[80];
            safe_name(key, safe);
            snprintf(rule, sizeof rule, "unknown property \"%s\"", safe);
            return invalid(err, errlen, path, rule);
        }
    }
    return 0;
}

static int validate_array(const struct loaded_schema *s, const json_t *node, const json_t *v,
                          const char *path, char *err, size_t errlen)
{
    const json_t *min = json_object_get(node, "minItems");
    const json_t *max = json_object_get(node, "maxItems");
    char rule[96];
    if (min && (json_int_t)json_array_size(v) < json_integer_value(min)) {
        snprintf(rule, sizeof rule, "must have at least %lld items", (long long)json_integer_value(min));
        return invalid(err, errlen, path, rule);
    }
    if (max && (json_int_t)json_array_size(v) > json_integer_value(max)) {
        snprintf(rule, sizeof rule, "must have at most %lld items", (long long)json_integer_value(max));
        return invalid(err, errlen, path, rule);
    }
    const json_t *items = json_object_get(node, "items");
    if (items) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            char sub[PATH_MAX_LEN];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (validate_node(s, items, item, sub, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

/* "must be one of a, b, c" (the string choices), cut to fit. */
static void describe_enum(const json_t *choices, char *out, size_t outlen)
{
    size_t i, used = (size_t)snprintf(out, outlen, "must be one of");
    const json_t *c;
    json_array_foreach(choices, i, c) {
        if (json_is_string(c) && used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? ", " : " ", json_string_value(c));
    }
}

static int validate_node(const struct loaded_schema *s, const json_t *node, const json_t *v,
                         const char *path, char *err, size_t errlen)
{
    char rule[160];
    const json_t *type = json_object_get(node, "type");
    if (type && !check_type(type, v)) {
        describe_type(type, rule, sizeof rule);
        return invalid(err, errlen, path, rule);
    }
    const json_t *constant = json_object_get(node, "const");
    if (constant && !json_equal((json_t *)constant, (json_t *)v))
        return invalid(err, errlen, path, "must equal the schema's constant");
    const json_t *choices = json_object_get(node, "enum");
    if (choices) {
        size_t i;
        const json_t *c;
        int found = 0;
        json_array_foreach(choices, i, c) {
            if (json_equal((json_t *)c, (json_t *)v)) {
                found = 1;
                break;
            }
        }
        if (!found) {
            describe_enum(choices, rule, sizeof rule);
            return invalid(err, errlen, path, rule);
        }
    }
    if (json_is_number(v)) {
        const json_t *min = json_object_get(node, "minimum");
        const json_t *max = json_object_get(node, "maximum");
        if (min && json_number_value(v) < json_number_value(min)) {
            snprintf(rule, sizeof rule, "must be at least %g", json_number_value(min));
            return invalid(err, errlen, path, rule);
        }
        if (max && json_number_value(v) > json_number_value(max)) {
            snprintf(rule, sizeof rule, "must be at most %g", json_number_value(max));
            return invalid(err, errlen, path, rule);
        }
    }
    if (json_is_string(v))
        return validate_string(s, node, v, path, err, errlen);
    if (json_is_object(v))
        return validate_object(s, node, v, path, err, errlen);
    if (json_is_array(v))
        return validate_array(s, node, v, path, err, errlen);
    return 0;
}

int schema_validate_at(const char *name, const json_t *instance, const char *path_prefix,
                       char *err, size_t errlen)
{
    if (schema_load_all(err, errlen) < 0)
        return -1;
    const struct loaded_schema *s = find_schema(name);
    if (!s) {
        char safe[41];
        safe_name(name, safe);
        snprintf(err, errlen, "no schema named \"%s\"", safe);
        return -1;
    }
    if (!instance)
        return invalid(err, errlen, path_prefix ? path_prefix : "", "is missing");
    return validate_node(s, s->root, instance, path_prefix ? path_prefix : "", err, errlen);
}

int schema_validate(const char *name, const json_t *instance, char *err, size_t errlen)
{
    return schema_validate_at(name, instance, "", err, errlen);
}

int schema_validate_text(const char *schema_json, const json_t *instance, char *err,
                         size_t errlen)
{
    struct loaded_schema s;
    if (load_schema(&s, "(text)", schema_json, err, errlen) < 0)
        return -1;
    int rc = validate_node(&s, s.root, instance, "", err, errlen);
    free_schema(&s);
    return rc;
}
