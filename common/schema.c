/* The schema validator (see schema.h). Each schema is parsed and checked
 * once, at load, and compiled into a tree of rules: every keyword read and
 * converted (type names to a bit set, patterns to regex_t, formats to an
 * enum) so that validating a value looks nothing up by name in the schema. */
#include "schema.h"

#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_sources.h"
#include "text.h"
#include "timeutil.h"

enum type_bit {
    TYPE_OBJECT = 1 << 0,
    TYPE_ARRAY = 1 << 1,
    TYPE_STRING = 1 << 2,
    TYPE_INTEGER = 1 << 3,
    TYPE_NUMBER = 1 << 4, /* integers are numbers too */
    TYPE_BOOLEAN = 1 << 5,
    TYPE_NULL = 1 << 6,
};

enum string_format { FORMAT_NONE, FORMAT_IDENTITY, FORMAT_STREAM_NAME, FORMAT_DATE_TIME, FORMAT_EVENT_ID };

struct rule;

struct property_rule {
    const char *name; /* points into the schema's JSON */
    size_t name_len;
    struct rule *rule;
};

/* A string of the schema ("required" names, "enum" choices) with its
 * length, read once at load for the members path. */
struct text {
    const char *s; /* points into the schema's JSON */
    size_t len;
};

/* One schema object, compiled. JSON values it points to belong to the
 * loaded schema's root. */
struct rule {
    unsigned types;         /* TYPE_* bits; 0 when the schema names no type */
    const json_t *type;     /* the "type" value, for messages */
    const json_t *constant; /* "const", or NULL */
    const json_t *choices;  /* "enum", or NULL */
    int has_minimum, has_maximum;
    double minimum, maximum;
    json_int_t min_length, max_length; /* -1: none */
    json_int_t min_items, max_items;   /* -1: none */
    int has_pattern;
    regex_t pattern;
    const char *pattern_text;
    enum string_format format;
    const json_t *required;       /* array of names, or NULL */
    uint64_t required_properties; /* bit i: properties[i] is required (i < 64) */
    struct text *required_names;  /* the other required names */
    size_t nrequired_names;
    struct text *string_choices; /* the strings of "enum" */
    size_t nstring_choices;
    struct property_rule *properties;
    size_t nproperties;
    int additional_forbidden; /* "additionalProperties": false */
    struct rule *items;
};

struct loaded_schema {
    const char *name;
    json_t *root;
    struct rule *rule;
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

/* 1 when a[0..alen) and b[0..blen) are the same bytes. Compared inline:
 * the names and choices compared per event are short, shorter than a call
 * to memcmp. */
static int same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
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

/* The TYPE_* bit of a type name (checked to be one of TYPE_NAMES). */
static unsigned type_bit(const char *name)
{
    for (size_t i = 0; i < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0]; i++)
        if (strcmp(TYPE_NAMES[i], name) == 0)
            return 1u << i;
    return 0;
}

static enum string_format format_of(const char *name)
{
    if (strcmp(name, "identity") == 0)
        return FORMAT_IDENTITY;
    if (strcmp(name, "stream-name") == 0)
        return FORMAT_STREAM_NAME;
    if (strcmp(name, "event-id") == 0)
        return FORMAT_EVENT_ID;
    return FORMAT_DATE_TIME;
}

static void free_rule(struct rule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nproperties; i++)
        free_rule(r->properties[i].rule);
    free(r->properties);
    free(r->required_names);
    free(r->string_choices);
    free_rule(r->items);
    if (r->has_pattern)
        regfree(&r->pattern);
    free(r);
}

static struct rule *compile_node(const char *schema_name, const json_t *node, char *err, size_t errlen);

/* The strings of array (other items skipped), with their lengths. */
static int collect_strings(const char *schema_name, const json_t *array, struct text **out, size_t *n, char *err,
                           size_t errlen)
{
    *out = calloc(json_array_size(array) ? json_array_size(array) : 1, sizeof **out);
    if (!*out)
        return fail(err, errlen, "schema %s: out of memory%s", schema_name, "");
    size_t i;
    const json_t *item;
    json_array_foreach (array, i, item) {
        if (json_is_string(item))
            (*out)[(*n)++] = (struct text){json_string_value(item), json_string_length(item)};
    }
    return 0;
}

/* Compiles each member of a "properties" object. */
static int compile_properties(const char *schema_name, struct rule *r, const json_t *props, char *err, size_t errlen)
{
    r->properties = calloc(json_object_size(props) ? json_object_size(props) : 1, sizeof *r->properties);
    if (!r->properties)
        return fail(err, errlen, "schema %s: out of memory%s", schema_name, "");
    const char *prop;
    const json_t *sub;
    json_object_foreach ((json_t *)props, prop, sub) {
        struct rule *child = compile_node(schema_name, sub, err, errlen);
        if (!child)
            return -1;
        r->properties[r->nproperties].name = prop;
        r->properties[r->nproperties].name_len = strlen(prop);
        r->properties[r->nproperties].rule = child;
        r->nproperties++;
    }
    return 0;
}

/* Turns the required names that are properties (of the first 64) into
 * bits of required_properties, so that the members path checks them with
 * the lookups it makes anyway; the other names stay in required_names. */
static void index_required(struct rule *r)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->nrequired_names; i++) {
        size_t p = 0;
        while (p < r->nproperties && p < 64 &&
               !same_bytes(r->properties[p].name, r->properties[p].name_len, r->required_names[i].s,
                           r->required_names[i].len))
            p++;
        if (p < r->nproperties && p < 64)
            r->required_properties |= (uint64_t)1 << p;
        else
            r->required_names[kept++] = r->required_names[i];
    }
    r->nrequired_names = kept;
}

/* Checks that node is a schema made only of supported keywords with values
 * of the right shape, and compiles it. NULL with err. */
static struct rule *compile_node(const char *schema_name, const json_t *node, char *err, size_t errlen)
{
    if (!json_is_object(node)) {
        fail(err, errlen, "schema %s: a schema must be an object%s", schema_name, "");
        return NULL;
    }
    struct rule *r = calloc(1, sizeof *r);
    if (!r) {
        fail(err, errlen, "schema %s: out of memory%s", schema_name, "");
        return NULL;
    }
    r->min_length = r->max_length = r->min_items = r->max_items = -1;
    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)node, key, v) {
        int ok;
        if (IN_LIST(ANNOTATIONS, key)) {
            continue;
        } else if (strcmp(key, "type") == 0) {
            ok = json_is_string(v) && IN_LIST(TYPE_NAMES, json_string_value(v));
            if (ok)
                r->types = type_bit(json_string_value(v));
            if (json_is_array(v)) {
                size_t i;
                const json_t *t;
                ok = json_array_size(v) > 0;
                json_array_foreach (v, i, t) {
                    ok = ok && json_is_string(t) && IN_LIST(TYPE_NAMES, json_string_value(t));
                    if (ok)
                        r->types |= type_bit(json_string_value(t));
                }
            }
            r->type = v;
        } else if (strcmp(key, "properties") == 0) {
            ok = json_is_object(v);
            if (ok && compile_properties(schema_name, r, v, err, errlen) < 0) {
                free_rule(r);
                return NULL;
            }
        } else if (strcmp(key, "items") == 0) {
            r->items = compile_node(schema_name, v, err, errlen);
            if (!r->items) {
                free_rule(r);
                return NULL;
            }
            ok = 1;
        } else if (strcmp(key, "required") == 0) {
            size_t i;
            const json_t *name;
            ok = json_is_array(v);
            json_array_foreach (v, i, name)
                ok = ok && json_is_string(name);
            r->required = v;
            if (ok && collect_strings(schema_name, v, &r->required_names, &r->nrequired_names, err, errlen) < 0) {
                free_rule(r);
                return NULL;
            }
        } else if (strcmp(key, "additionalProperties") == 0) {
            ok = json_is_boolean(v);
            r->additional_forbidden = json_is_false(v);
        } else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 || strcmp(key, "minItems") == 0 ||
                   strcmp(key, "maxItems") == 0) {
            ok = is_count(v);
            json_int_t n = json_integer_value(v);
            if (strcmp(key, "minLength") == 0)
                r->min_length = n;
            else if (strcmp(key, "maxLength") == 0)
                r->max_length = n;
            else if (strcmp(key, "minItems") == 0)
                r->min_items = n;
            else
                r->max_items = n;
        } else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
            ok = json_is_number(v);
            if (strcmp(key, "minimum") == 0) {
                r->has_minimum = 1;
                r->minimum = json_number_value(v);
            } else {
                r->has_maximum = 1;
                r->maximum = json_number_value(v);
            }
        } else if (strcmp(key, "enum") == 0) {
            ok = json_is_array(v) && json_array_size(v) > 0;
            r->choices = v;
            if (ok && collect_strings(schema_name, v, &r->string_choices, &r->nstring_choices, err, errlen) < 0) {
                free_rule(r);
                return NULL;
            }
        } else if (strcmp(key, "const") == 0) {
            ok = 1;
            r->constant = v;
        } else if (strcmp(key, "pattern") == 0) {
            ok = json_is_string(v);
            if (ok) {
                if (regcomp(&r->pattern, json_string_value(v), REG_EXTENDED | REG_NOSUB) != 0) {
                    fail(err, errlen, "schema %s: pattern %s does not compile", schema_name, json_string_value(v));
                    free_rule(r);
                    return NULL;
                }
                r->has_pattern = 1;
                r->pattern_text = json_string_value(v);
            }
        } else if (strcmp(key, "format") == 0) {
            ok = json_is_string(v) && IN_LIST(FORMATS, json_string_value(v));
            if (!ok) {
                fail(err, errlen, "schema %s: unknown format \"%s\"", schema_name,
                     json_is_string(v) ? json_string_value(v) : "?");
                free_rule(r);
                return NULL;
            }
            r->format = format_of(json_string_value(v));
        } else {
            fail(err, errlen, "schema %s: unsupported keyword \"%s\"", schema_name, key);
            free_rule(r);
            return NULL;
        }
        if (!ok) {
            fail(err, errlen, "schema %s: bad value for \"%s\"", schema_name, key);
            free_rule(r);
            return NULL;
        }
    }
    index_required(r);
    return r;
}

static void free_schema(struct loaded_schema *s)
{
    free_rule(s->rule);
    json_decref(s->root);
    memset(s, 0, sizeof *s);
}

static int load_schema(struct loaded_schema *s, const char *name, const char *text, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    json_error_t jerr;
    s->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->root) {
        snprintf(err, errlen, "schema %s: not valid JSON (line %d: %s)", name, jerr.line, jerr.text);
        return -1;
    }
    s->rule = compile_node(name, s->root, err, errlen);
    if (!s->rule) {
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
        if (load_schema(&schemas[i], schema_sources[i].name, schema_sources[i].text, load_error, sizeof load_error) < 0)
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
        if (schemas[i].name[0] == name[0] && strcmp(schemas[i].name, name) == 0)
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

/* The TYPE_* bits a value satisfies. */
static unsigned bits_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return TYPE_OBJECT;
    case JSON_ARRAY:
        return TYPE_ARRAY;
    case JSON_STRING:
        return TYPE_STRING;
    case JSON_INTEGER:
        return TYPE_INTEGER | TYPE_NUMBER;
    case JSON_REAL:
        return TYPE_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return TYPE_BOOLEAN;
    case JSON_NULL:
        return TYPE_NULL;
    }
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
    json_array_foreach (type, i, t)
        if (used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? " or " : " ", json_string_value(t));
}

/* Every byte looked at, without a branch per byte: ids are valid but for
 * the rare bad event, and the compiler can then check several at once. */
static int is_event_id(const char *s, size_t len)
{
    if (len != 32)
        return 0;
    unsigned bad = 0;
    for (size_t i = 0; i < 32; i++) {
        unsigned char c = (unsigned char)s[i];
        bad |= ((unsigned char)(c - '0') > 9) & ((unsigned char)(c - 'a') > 5);
    }
    return !bad;
}

static const char *format_problem(enum string_format format, const char *s, size_t len)
{
    int64_t ms;
    switch (format) {
    case FORMAT_NONE:
        return NULL;
    case FORMAT_IDENTITY:
        return identity_problem(s, len);
    case FORMAT_STREAM_NAME:
        return stream_name_problem(s, len);
    case FORMAT_EVENT_ID:
        return is_event_id(s, len) ? NULL : "must be 32 lowercase hex digits";
    case FORMAT_DATE_TIME:
        if (strlen(s) != len || time_parse_rfc3339(s, &ms) < 0)
            return "must be an RFC 3339 date-time";
        return NULL;
    }
    return NULL;
}

static int validate_rule(const struct rule *r, const json_t *v, const char *path, char *err, size_t errlen);

/* utf8_length, with a shortcut for ASCII: most strings validated are, and
 * their count is their length. */
static long char_count(const char *s, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) { /* 8 bytes at a time: any high bit set? */
        uint64_t x;
        memcpy(&x, s + i, sizeof x);
        if (x & 0x8080808080808080ull)
            return utf8_length(s, len);
    }
    for (; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return utf8_length(s, len);
    return (long)len;
}

/* str: len bytes and a NUL after them. */
static int validate_string_bytes(const struct rule *r, const char *str, size_t len, const char *path, char *err,
                                 size_t errlen)
{
    long chars = char_count(str, len);
    if (chars < 0)
        return invalid(err, errlen, path, "is not valid UTF-8");
    char rule[96];
    if (r->min_length >= 0 && chars < r->min_length) {
        snprintf(rule, sizeof rule, "must be at least %lld characters", (long long)r->min_length);
        return invalid(err, errlen, path, rule);
    }
    if (r->max_length >= 0 && chars > r->max_length) {
        snprintf(rule, sizeof rule, "must be at most %lld characters", (long long)r->max_length);
        return invalid(err, errlen, path, rule);
    }
    if (r->has_pattern && (strlen(str) != len || regexec(&r->pattern, str, 0, NULL, 0) != 0)) {
        snprintf(rule, sizeof rule, "does not match the pattern %.60s", r->pattern_text);
        return invalid(err, errlen, path, rule);
    }
    const char *why = format_problem(r->format, str, len);
    return why ? invalid(err, errlen, path, why) : 0;
}

static int validate_string(const struct rule *r, const json_t *v, const char *path, char *err, size_t errlen)
{
    return validate_string_bytes(r, json_string_value(v), json_string_length(v), path, err, errlen);
}

/* The first byte is compared before the name: objects are validated per
 * event, and most of their names differ there. */
static const struct rule *property_rule(const struct rule *r, const char *name)
{
    for (size_t i = 0; i < r->nproperties; i++)
        if (r->properties[i].name[0] == name[0] && strcmp(r->properties[i].name, name) == 0)
            return r->properties[i].rule;
    return NULL;
}

static int validate_object(const struct rule *r, const json_t *v, const char *path, char *err, size_t errlen)
{
    char sub[PATH_MAX_LEN];
    size_t i;
    const json_t *name;
    json_array_foreach (r->required, i, name) {
        if (!json_object_get(v, json_string_value(name))) {
            child_path(sub, path, json_string_value(name));
            return invalid(err, errlen, sub, "is required");
        }
    }
    const char *key;
    const json_t *member;
    json_object_foreach ((json_t *)v, key, member) {
        const struct rule *prop = property_rule(r, key);
        if (prop) {
            child_path(sub, path, key);
            if (validate_rule(prop, member, sub, err, errlen) < 0)
                return -1;
        } else if (r->additional_forbidden) {
            char safe[41], rule[80];
            safe_name(key, safe);
            snprintf(rule, sizeof rule, "unknown property \"%s\"", safe);
            return invalid(err, errlen, path, rule);
        }
    }
    return 0;
}

static int validate_array(const struct rule *r, const json_t *v, const char *path, char *err, size_t errlen)
{
    char rule[96];
    json_int_t n = (json_int_t)json_array_size(v);
    if (r->min_items >= 0 && n < r->min_items) {
        snprintf(rule, sizeof rule, "must have at least %lld items", (long long)r->min_items);
        return invalid(err, errlen, path, rule);
    }
    if (r->max_items >= 0 && n > r->max_items) {
        snprintf(rule, sizeof rule, "must have at most %lld items", (long long)r->max_items);
        return invalid(err, errlen, path, rule);
    }
    if (r->items) {
        size_t i;
        const json_t *item;
        json_array_foreach (v, i, item) {
            char sub[PATH_MAX_LEN];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (validate_rule(r->items, item, sub, err, errlen) < 0)
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
    json_array_foreach (choices, i, c) {
        if (json_is_string(c) && used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? ", " : " ", json_string_value(c));
    }
}

static int validate_rule(const struct rule *r, const json_t *v, const char *path, char *err, size_t errlen)
{
    char rule[160];
    unsigned bits = bits_of(v);
    if (r->types && !(r->types & bits)) {
        describe_type(r->type, rule, sizeof rule);
        return invalid(err, errlen, path, rule);
    }
    if (r->constant && !json_equal((json_t *)r->constant, (json_t *)v))
        return invalid(err, errlen, path, "must equal the schema's constant");
    if (r->choices) {
        size_t i;
        const json_t *c;
        int found = 0;
        json_array_foreach (r->choices, i, c) {
            if (json_equal((json_t *)c, (json_t *)v)) {
                found = 1;
                break;
            }
        }
        if (!found) {
            describe_enum(r->choices, rule, sizeof rule);
            return invalid(err, errlen, path, rule);
        }
    }
    if (bits & TYPE_NUMBER) {
        if (r->has_minimum && json_number_value(v) < r->minimum) {
            snprintf(rule, sizeof rule, "must be at least %g", r->minimum);
            return invalid(err, errlen, path, rule);
        }
        if (r->has_maximum && json_number_value(v) > r->maximum) {
            snprintf(rule, sizeof rule, "must be at most %g", r->maximum);
            return invalid(err, errlen, path, rule);
        }
    }
    if (bits & TYPE_STRING)
        return validate_string(r, v, path, err, errlen);
    if (bits & TYPE_OBJECT)
        return validate_object(r, v, path, err, errlen);
    if (bits & TYPE_ARRAY)
        return validate_array(r, v, path, err, errlen);
    return 0;
}

int schema_validate_at(const char *name, const json_t *instance, const char *path_prefix, char *err, size_t errlen)
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
    return validate_rule(s->rule, instance, path_prefix ? path_prefix : "", err, errlen);
}

int schema_validate(const char *name, const json_t *instance, char *err, size_t errlen)
{
    return schema_validate_at(name, instance, "", err, errlen);
}

int schema_validate_text(const char *schema_json, const json_t *instance, char *err, size_t errlen)
{
    struct loaded_schema s;
    if (load_schema(&s, "(text)", schema_json, err, errlen) < 0)
        return -1;
    int rc = validate_rule(s.rule, instance, "", err, errlen);
    free_schema(&s);
    return rc;
}

/* 1 when json (a "const") is the string str. */
static int is_string(const json_t *json, const char *str, size_t len)
{
    return json_is_string(json) && json_string_length(json) == len && memcmp(json_string_value(json), str, len) == 0;
}

static int text_in(const struct text *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (same_bytes(list[i].s, list[i].len, s, len))
            return 1;
    return 0;
}

/* validate_rule for a string given as bytes: the checks a string meets.
 * Only string choices can equal a string, so only those are looked at. */
static int string_valid(const struct rule *r, const char *str, size_t len)
{
    char err[8];
    if (r->types && !(r->types & TYPE_STRING))
        return 0;
    if (r->constant && !is_string(r->constant, str, len))
        return 0;
    if (r->choices && !text_in(r->string_choices, r->nstring_choices, str, len))
        return 0;
    return validate_string_bytes(r, str, len, "", err, sizeof err) == 0;
}

/* 1 when json is an integer equal to n: what json_equal says of it and a
 * JSON integer of value n (a real is never equal to an integer). */
static int is_integer(const json_t *json, json_int_t n)
{
    return json_is_integer(json) && json_integer_value(json) == n;
}

/* validate_rule for an integer given as a number: the checks an integer
 * meets, with its bounds compared as json_number_value would (a double). */
static int integer_valid(const struct rule *r, json_int_t n)
{
    if (r->types && !(r->types & (TYPE_INTEGER | TYPE_NUMBER)))
        return 0;
    if (r->constant && !is_integer(r->constant, n))
        return 0;
    if (r->choices) {
        size_t i;
        const json_t *c;
        int found = 0;
        json_array_foreach (r->choices, i, c) {
            if (is_integer(c, n)) {
                found = 1;
                break;
            }
        }
        if (!found)
            return 0;
    }
    if (r->has_minimum && (double)n < r->minimum)
        return 0;
    if (r->has_maximum && (double)n > r->maximum)
        return 0;
    return 1;
}

static int members_valid(const struct rule *r, const struct schema_member *m, size_t n);

static int member_valid(const struct rule *r, const struct schema_member *m)
{
    char err[8];
    switch (m->kind) {
    case SCHEMA_MEMBER_STRING:
        return string_valid(r, m->str, m->len);
    case SCHEMA_MEMBER_INTEGER:
        return integer_valid(r, m->integer);
    case SCHEMA_MEMBER_JSON:
        return m->value && validate_rule(r, m->value, "", err, sizeof err) == 0;
    case SCHEMA_MEMBER_OBJECT:
        return members_valid(r, m->members, m->nmembers);
    }
    return 0;
}

/* The index in r->properties of a name given as bytes, or -1. The search
 * starts at from and wraps around: members mostly come in the schema's
 * order, so the next one is found at once. */
static long property_index(const struct rule *r, const char *name, size_t len, size_t from)
{
    for (size_t i = from; i < r->nproperties; i++)
        if (same_bytes(r->properties[i].name, r->properties[i].name_len, name, len))
            return (long)i;
    for (size_t i = 0; i < from && i < r->nproperties; i++)
        if (same_bytes(r->properties[i].name, r->properties[i].name_len, name, len))
            return (long)i;
    return -1;
}

static int has_member(const struct schema_member *m, size_t n, const struct text *name)
{
    for (size_t i = 0; i < n; i++)
        if (same_bytes(m[i].name, m[i].name_len, name->s, name->len))
            return 1;
    return 0;
}

/* validate_object for an object given as members. */
static int members_valid(const struct rule *r, const struct schema_member *m, size_t n)
{
    /* A rule about the object as a whole is not for this path. */
    if ((r->types && !(r->types & TYPE_OBJECT)) || r->constant || r->choices)
        return 0;
    uint64_t present = 0; /* bits of the properties met */
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        long p = property_index(r, m[i].name, m[i].name_len, from);
        if (p < 0) {
            if (r->additional_forbidden)
                return 0;
            continue;
        }
        from = (size_t)p + 1;
        if (p < 64)
            present |= (uint64_t)1 << p;
        if (!member_valid(r->properties[p].rule, &m[i]))
            return 0;
    }
    if ((present & r->required_properties) != r->required_properties)
        return 0;
    for (size_t i = 0; i < r->nrequired_names; i++)
        if (!has_member(m, n, &r->required_names[i]))
            return 0;
    return 1;
}

int schema_members_valid(const char *name, const struct schema_member *m, size_t n)
{
    char err[256];
    if (schema_load_all(err, sizeof err) < 0)
        return 0;
    const struct loaded_schema *s = find_schema(name);
    return s ? members_valid(s->rule, m, n) : 0;
}

int schema_members_valid_text(const char *schema_json, const struct schema_member *m, size_t n)
{
    struct loaded_schema s;
    char err[256];
    if (load_schema(&s, "(text)", schema_json, err, sizeof err) < 0)
        return -1;
    int valid = members_valid(s.rule, m, n);
    free_schema(&s);
    return valid;
}
