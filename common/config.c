/* Configuration from environment variables (see config.h). */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUOTE_MAX_INPUT 64 /* bytes of a bad value quoted in an error */

struct config_entry {
    const struct config_spec *spec;
    char *value; /* normalised value; "" when unset with an empty default */
    long long int_value;
    int bool_value;
    int is_set; /* taken from the environment rather than the default */
};

struct config {
    struct config_entry *entries;
    size_t len;
    size_t cap;
    int loaded; /* the last config_load succeeded */
};

/* --- error text ------------------------------------------------------------ */

/* Appends one problem to err, after "; " when err already holds one. */
static void add_problem(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add_problem(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    size_t used = strlen(err);
    if (used && used + 2 < errlen) {
        memcpy(err + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* Writes s as a double-quoted string into buf: '"' and '\' escaped,
 * non-printable bytes as \xNN, cut after QUOTE_MAX_INPUT bytes with "...". */
static void quote_value(const char *s, char *buf, size_t buflen)
{
    size_t o = 0;
    size_t i;
    buf[o++] = '"';
    for (i = 0; s[i] && i < QUOTE_MAX_INPUT && o + 8 < buflen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] && o + 4 < buflen) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Reports "NAME: reason (got "value")", leaving the value out for secrets. */
static void add_value_problem(char *err, size_t errlen, const struct config_spec *spec, const char *reason,
                              const char *value)
{
    if (spec->secret) {
        add_problem(err, errlen, "%s: %s (value not shown: secret)", spec->name, reason);
        return;
    }
    char quoted[QUOTE_MAX_INPUT * 4 + 8];
    quote_value(value, quoted, sizeof quoted);
    add_problem(err, errlen, "%s: %s (got %s)", spec->name, reason, quoted);
}

/* --- value rules ----------------------------------------------------------- */

static int is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

static int is_ipv6_char(char c)
{
    return isxdigit((unsigned char)c) || c == ':' || c == '.';
}

/* 1 when s[0..len) is a decimal port 1..65535. */
static int port_ok(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    long port = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

const char *config_host_port_problem(const char *s, size_t len, int port_required)
{
    size_t host_end; /* index just past the host */
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return "has an IPv6 address without its closing ']'";
        host_end = (size_t)(close - s) + 1;
        if (host_end == 2)
            return "must have a host";
        for (size_t i = 1; i + 1 < host_end; i++)
            if (!is_ipv6_char(s[i]))
                return "has an invalid IPv6 address";
    } else {
        const char *colon = memchr(s, ':', len);
        host_end = colon ? (size_t)(colon - s) : len;
        if (host_end == 0)
            return "must have a host";
        for (size_t i = 0; i < host_end; i++)
            if (!is_host_char(s[i]))
                return "must have a host made of letters, digits, '.', '-' or '_'";
    }
    if (host_end == len)
        return port_required ? "must have a port from 1 to 65535" : NULL;
    if (s[host_end] != ':' || !port_ok(s + host_end + 1, len - host_end - 1))
        return "must have a port from 1 to 65535";
    return NULL;
}

static const char *url_problem(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "must not contain spaces or control characters";
    size_t scheme_len;
    if (strncasecmp(s, "http://", 7) == 0)
        scheme_len = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        scheme_len = 8;
    else
        return "must be an http:// or https:// URL";
    const char *authority = s + scheme_len;
    if (strpbrk(authority, "?#"))
        return "must not have a query or fragment";
    size_t authority_len = strcspn(authority, "/");
    if (memchr(authority, '@', authority_len))
        return "must not contain user information";
    return config_host_port_problem(authority, authority_len, 0);
}

/* Parses a whole decimal string with an optional '-' into *out. 0 or -1. */
static int parse_decimal(const char *s, long long *out)
{
    int negative = (*s == '-');
    const char *p = negative ? s + 1 : s;
    if (!*p)
        return -1;
    long long value = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        int digit = *p - '0';
        /* Accumulate as a negative number: its range is one larger. */
        if (value < (LLONG_MIN + digit) / 10)
            return -1;
        value = value * 10 - digit;
    }
    if (!negative) {
        if (value == LLONG_MIN)
            return -1;
        value = -value;
    }
    *out = value;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* The choice matching s (any case), as a malloc'd copy spelled as in the
 * choices; NULL when none matches or out of memory. */
static char *match_choice(const char *choices, const char *s)
{
    size_t slen = strlen(s);
    const char *p = choices;
    for (;;) {
        size_t n = strcspn(p, "|");
        if (n == slen && strncasecmp(p, s, n) == 0)
            return strndup(p, n);
        if (!p[n])
            return NULL;
        p += n + 1;
    }
}

/* Writes "must be one of a, b, c" into buf. */
static void choices_reason(const char *choices, char *buf, size_t buflen)
{
    size_t o = (size_t)snprintf(buf, buflen, "must be one of ");
    for (const char *p = choices; *p && o + 3 < buflen; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

/* Validates a non-empty value against spec. On success stores the
 * normalised value (malloc'd) and the int or bool, and returns 0. Otherwise
 * reports the problem into err and returns -1. */
static int parse_value(const struct config_spec *spec, const char *raw, struct config_entry *entry, char *err,
                       size_t errlen)
{
    char reason[256];
    char *value = NULL;
    long long int_value = 0;
    int bool_value = 0;

    switch (spec->type) {
    case CONFIG_STRING:
        value = strdup(raw);
        break;
    case CONFIG_INT:
        if (parse_decimal(raw, &int_value) < 0 || int_value < spec->min || int_value > spec->max) {
            snprintf(reason, sizeof reason, "must be an integer from %lld to %lld", spec->min, spec->max);
            add_value_problem(err, errlen, spec, reason, raw);
            return -1;
        }
        if (asprintf(&value, "%lld", int_value) < 0)
            value = NULL;
        break;
    case CONFIG_BOOL:
        if (parse_bool(raw, &bool_value) < 0) {
            add_value_problem(err, errlen, spec, "must be true or false (or 1/0, yes/no, on/off)", raw);
            return -1;
        }
        value = strdup(bool_value ? "true" : "false");
        break;
    case CONFIG_ENUM:
        value = match_choice(spec->choices, raw);
        if (!value) {
            choices_reason(spec->choices, reason, sizeof reason);
            add_value_problem(err, errlen, spec, reason, raw);
            return -1;
        }
        break;
    case CONFIG_URL: {
        const char *problem = url_problem(raw);
        if (problem) {
            add_value_problem(err, errlen, spec, problem, raw);
            return -1;
        }
        value = strdup(raw);
        if (value) {
            size_t len = strlen(value);
            while (len > 0 && value[len - 1] == '/')
                value[--len] = '\0';
        }
        break;
    }
    }
    if (!value) {
        add_problem(err, errlen, "%s: out of memory", spec->name);
        return -1;
    }
    if (spec->check) {
        const char *problem = spec->check(value);
        if (problem) {
            add_value_problem(err, errlen, spec, problem, raw);
            free(value);
            return -1;
        }
    }
    free(entry->value);
    entry->value = value;
    entry->int_value = int_value;
    entry->bool_value = bool_value;
    return 0;
}

/* --- registration and loading ---------------------------------------------- */

struct config *config_new(void)
{
    return calloc(1, sizeof(struct config));
}

static const struct config_entry *find_entry(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->len; i++)
        if (strcmp(cfg->entries[i].spec->name, name) == 0)
            return &cfg->entries[i];
    return NULL;
}

static int choices_ok(const char *choices)
{
    if (!choices || !*choices || choices[0] == '|')
        return 0;
    size_t len = strlen(choices);
    return choices[len - 1] != '|' && !strstr(choices, "||");
}

/* 0 when spec is well formed and its default obeys its own rules. */
static int spec_ok(const struct config_spec *spec, char *err, size_t errlen)
{
    if (!spec->name || !*spec->name) {
        add_problem(err, errlen, "config: a variable has no name");
        return -1;
    }
    if (!spec->description) {
        add_problem(err, errlen, "%s: no description", spec->name);
        return -1;
    }
    switch (spec->type) {
    case CONFIG_STRING:
    case CONFIG_BOOL:
    case CONFIG_URL:
        break;
    case CONFIG_INT:
        if (spec->min > spec->max) {
            add_problem(err, errlen, "%s: min is greater than max", spec->name);
            return -1;
        }
        break;
    case CONFIG_ENUM:
        if (!choices_ok(spec->choices)) {
            add_problem(err, errlen, "%s: choices must be non-empty names separated by '|'", spec->name);
            return -1;
        }
        break;
    default:
        add_problem(err, errlen, "%s: unknown type", spec->name);
        return -1;
    }
    if (!spec->default_value)
        return 0;
    if (!*spec->default_value) {
        if (spec->type == CONFIG_STRING || spec->type == CONFIG_URL)
            return 0;
        add_problem(err, errlen, "%s: an empty default is only allowed for strings and URLs", spec->name);
        return -1;
    }
    struct config_entry scratch = {0};
    char problem[512] = "";
    if (parse_value(spec, spec->default_value, &scratch, problem, sizeof problem) < 0) {
        add_problem(err, errlen, "invalid default: %s", problem);
        return -1;
    }
    free(scratch.value);
    return 0;
}

int config_register(struct config *cfg, const struct config_spec *specs, size_t n, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (spec_ok(&specs[i], err, errlen) < 0)
            return -1;
        int duplicate = find_entry(cfg, specs[i].name) != NULL;
        for (size_t j = 0; j < i && !duplicate; j++)
            duplicate = strcmp(specs[j].name, specs[i].name) == 0;
        if (duplicate) {
            add_problem(err, errlen, "%s: registered twice", specs[i].name);
            return -1;
        }
    }
    if (cfg->len + n > cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap : 16;
        while (cap < cfg->len + n)
            cap *= 2;
        struct config_entry *entries = realloc(cfg->entries, cap * sizeof *entries);
        if (!entries) {
            add_problem(err, errlen, "config: out of memory");
            return -1;
        }
        cfg->entries = entries;
        cfg->cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        cfg->entries[cfg->len++] = (struct config_entry){.spec = &specs[i]};
    cfg->loaded = 0;
    return 0;
}

int config_load(struct config *cfg, char *err, size_t errlen)
{
    int failed = 0;
    if (err && errlen)
        err[0] = '\0';
    cfg->loaded = 0;
    for (size_t i = 0; i < cfg->len; i++) {
        struct config_entry *entry = &cfg->entries[i];
        const struct config_spec *spec = entry->spec;
        const char *raw = getenv(spec->name);
        entry->is_set = raw && *raw;
        if (!entry->is_set)
            raw = spec->default_value;
        if (!raw) {
            add_problem(err, errlen, "%s: required, not set", spec->name);
            failed = 1;
        } else if (!*raw) { /* empty default: unset */
            free(entry->value);
            entry->value = strdup("");
            if (!entry->value) {
                add_problem(err, errlen, "%s: out of memory", spec->name);
                failed = 1;
            }
        } else if (parse_value(spec, raw, entry, err, errlen) < 0) {
            failed = 1;
        }
    }
    if (failed)
        return -1;
    cfg->loaded = 1;
    return 0;
}

/* --- getters --------------------------------------------------------------- */

static const char *type_name(enum config_type type)
{
    switch (type) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_ENUM:
        return "enum";
    case CONFIG_URL:
        return "URL";
    }
    return "unknown";
}

/* Programming errors only: a name never registered, the wrong getter, or a
 * getter called before a successful config_load. */
static void misuse(const char *getter, const char *name, const char *what) __attribute__((noreturn));

static void misuse(const char *getter, const char *name, const char *what)
{
    fprintf(stderr, "config: %s(\"%s\"): %s\n", getter, name, what);
    abort();
}

static const struct config_entry *lookup(const struct config *cfg, const char *name, const char *getter)
{
    const struct config_entry *entry = find_entry(cfg, name);
    if (!entry)
        misuse(getter, name, "no such variable registered");
    if (!cfg->loaded)
        misuse(getter, name, "called before a successful config_load");
    return entry;
}

static void expect_type(const struct config_entry *entry, const char *getter, int ok)
{
    if (!ok) {
        char what[64];
        snprintf(what, sizeof what, "wrong getter for a %s variable", type_name(entry->spec->type));
        misuse(getter, entry->spec->name, what);
    }
}

const char *config_str(const struct config *cfg, const char *name)
{
    const struct config_entry *entry = lookup(cfg, name, "config_str");
    enum config_type type = entry->spec->type;
    expect_type(entry, "config_str", type == CONFIG_STRING || type == CONFIG_ENUM || type == CONFIG_URL);
    return entry->value;
}

long long config_int(const struct config *cfg, const char *name)
{
    const struct config_entry *entry = lookup(cfg, name, "config_int");
    expect_type(entry, "config_int", entry->spec->type == CONFIG_INT);
    return entry->int_value;
}

int config_bool(const struct config *cfg, const char *name)
{
    const struct config_entry *entry = lookup(cfg, name, "config_bool");
    expect_type(entry, "config_bool", entry->spec->type == CONFIG_BOOL);
    return entry->bool_value;
}

int config_is_set(const struct config *cfg, const char *name)
{
    return lookup(cfg, name, "config_is_set")->is_set;
}

/* --- output ---------------------------------------------------------------- */

/* What to show for an entry's value: the value, or a placeholder for a
 * secret. */
static const char *shown_value(const struct config_entry *entry)
{
    const char *value = entry->value ? entry->value : "";
    if (entry->spec->secret)
        return *value ? "[redacted]" : "[unset]";
    return value;
}

void config_print(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->len; i++)
        fprintf(out, "%s=%s\n", cfg->entries[i].spec->name, shown_value(&cfg->entries[i]));
}

json_t *config_to_json(const struct config *cfg)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (size_t i = 0; i < cfg->len; i++) {
        const struct config_entry *entry = &cfg->entries[i];
        json_t *value;
        if (entry->spec->secret || !entry->value)
            value = json_string(shown_value(entry));
        else if (entry->spec->type == CONFIG_INT)
            value = json_integer(entry->int_value);
        else if (entry->spec->type == CONFIG_BOOL)
            value = json_boolean(entry->bool_value);
        else
            value = json_string(entry->value);
        if (json_object_set_new(obj, entry->spec->name, value) < 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

void config_print_help(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->len; i++) {
        const struct config_spec *spec = cfg->entries[i].spec;
        fprintf(out, "%s (", spec->name);
        switch (spec->type) {
        case CONFIG_STRING:
            fputs("string", out);
            break;
        case CONFIG_INT:
            fprintf(out, "integer %lld..%lld", spec->min, spec->max);
            break;
        case CONFIG_BOOL:
            fputs("true|false", out);
            break;
        case CONFIG_ENUM:
            fputs(spec->choices, out);
            break;
        case CONFIG_URL:
            fputs("http(s) URL", out);
            break;
        }
        if (spec->secret)
            fputs(", secret", out);
        if (!spec->default_value)
            fputs(", required", out);
        else if (!*spec->default_value)
            fputs(", default: unset", out);
        else if (spec->secret)
            fputs(", default: [redacted]", out);
        else
            fprintf(out, ", default: %s", spec->default_value);
        fprintf(out, ")\n    %s\n", spec->description);
    }
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->len; i++)
        free(cfg->entries[i].value);
    free(cfg->entries);
    free(cfg);
}
