/* Keeps compose/docker-compose.yml honest, since no Docker engine runs here:
 * each stagehand service runs its own binary and sets only variables that
 * binary reads (per common/settings.h) and README.md documents; secrets come
 * from the operator's environment; the ingress and the workers can be scaled;
 * kafka-init creates the three topics, stagehand.state compacted; the
 * metrics profile's Prometheus scrapes every worker role on its METRICS_PORT
 * and its rules use the scaling signals the workers publish.
 *
 * The file is read line by line, without a YAML library, relying on the style
 * the compose file keeps (and states at its top):
 *   - two spaces per level, no tabs, comments on lines of their own;
 *   - top-level keys at column 0; `x-NAME: &ANCHOR` blocks hold `KEY: value`
 *     lines at indent 2, and may merge another block with `<<: *OTHER`;
 *   - `services:` with each service's name at indent 2, its keys at indent 4;
 *   - `environment:` in mapping form, one `NAME: value` or `<<: *ANCHOR` per
 *     line at indent 6 (merges are resolved, the service's own entries win);
 *   - `command:` on one line (`prog args` or `["prog", ...]`), or alone with
 *     its lines indented deeper (kept as text, one line each);
 *   - no merge into a service itself and no `env_file:` on a stagehand
 *     service, which would hide settings from this reader.
 * Where the reader expects structure and finds something else, the test
 * fails with the line number rather than guessing. STAGEHAND_ROOT names the
 * repository root (default "."). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "settings.h"

#define COMPOSE_FILE "compose/docker-compose.yml"
#define NAME_LEN 64
#define VALUE_LEN 512
#define COMMAND_LEN 4096
#define MAX_VARS 48
#define MAX_ANCHORS 8
#define MAX_SERVICES 16
#define MAX_MERGE_DEPTH 4
#define PATH_LEN 1024
#define ERR_LEN (PATH_LEN + 512)

/* ---- the parsed file ------------------------------------------------------ */

struct var {
    char name[NAME_LEN];
    char value[VALUE_LEN]; /* without surrounding quotes */
};

/* A mapping as written: its own entries and the anchor it merges, if any. */
struct env {
    struct var vars[MAX_VARS];
    size_t count;
    char merge[NAME_LEN];
};

struct anchor {
    char name[NAME_LEN];
    struct env env;
};

struct service {
    char name[NAME_LEN];
    char command[COMMAND_LEN];
    int has_command;
    int has_container_name;
    int has_ports;
    int has_env_file;
    struct env env;
};

struct compose {
    struct anchor anchors[MAX_ANCHORS];
    size_t anchor_count;
    struct service services[MAX_SERVICES];
    size_t service_count;
};

/* ---- the line reader -------------------------------------------------------- */

enum section { SECTION_OTHER, SECTION_ANCHOR, SECTION_SERVICES };
enum service_key { KEY_OTHER, KEY_COMMAND, KEY_ENVIRONMENT };

struct parser {
    struct compose *compose;
    enum section section;
    struct anchor *anchor;   /* the x- block being read */
    struct service *service; /* the service being read */
    enum service_key key;    /* the service key whose deeper lines follow */
    int line;
    char *err;
    size_t errlen;
};

static int parse_error(struct parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", COMPOSE_FILE, p->line);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies n bytes of src as a string; -1 when it does not fit. */
static int copy_text(char *dst, size_t size, const char *src, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* Splits "KEY: value" or "KEY:" into key and value (leading spaces skipped). */
static int split_key(const char *text, char *key, size_t keylen, const char **value)
{
    size_t n = strcspn(text, ": ");
    if (n == 0 || text[n] != ':' || (text[n + 1] != ' ' && text[n + 1] != '\0'))
        return -1;
    if (copy_text(key, keylen, text, n) < 0)
        return -1;
    const char *v = text + n + 1;
    while (*v == ' ')
        v++;
    *value = v;
    return 0;
}

/* The value without one pair of surrounding quotes. */
static int unquote(const char *value, char *out, size_t outlen)
{
    size_t n = strlen(value);
    if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0])
        return copy_text(out, outlen, value + 1, n - 2);
    return copy_text(out, outlen, value, n);
}

static int is_name(const char *s, const char *extra)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !strchr(extra, *s))
            return 0;
    return 1;
}

static struct var *env_find(struct env *env, const char *name)
{
    for (size_t i = 0; i < env->count; i++)
        if (strcmp(env->vars[i].name, name) == 0)
            return &env->vars[i];
    return NULL;
}

/* Adds one line of a mapping: a `<<: *ANCHOR` merge or a NAME: value entry. */
static int env_add(struct parser *p, struct env *env, const char *key, const char *raw)
{
    if (strcmp(key, "<<") == 0) {
        if (raw[0] != '*' || !is_name(raw + 1, "-"))
            return parse_error(p, "a merge must read `<<: *ANCHOR`, not `<<: %s`", raw);
        if (env->merge[0])
            return parse_error(p, "a second `<<` in one mapping");
        return copy_text(env->merge, sizeof env->merge, raw + 1, strlen(raw + 1)) < 0
                   ? parse_error(p, "anchor name too long")
                   : 0;
    }
    if (!is_name(key, "-"))
        return parse_error(p, "`%s` is not a variable name", key);
    if (env_find(env, key))
        return parse_error(p, "%s is set twice in one mapping", key);
    if (env->count == MAX_VARS)
        return parse_error(p, "more than %d entries in one mapping", MAX_VARS);
    struct var *v = &env->vars[env->count];
    if (copy_text(v->name, sizeof v->name, key, strlen(key)) < 0 || unquote(raw, v->value, sizeof v->value) < 0)
        return parse_error(p, "%s: name or value too long", key);
    env->count++;
    return 0;
}

static int parse_top_level(struct parser *p, const char *body)
{
    char key[NAME_LEN];
    const char *value;
    if (split_key(body, key, sizeof key, &value) < 0)
        return parse_error(p, "expected `KEY:` at the top level, got `%s`", body);
    p->section = SECTION_OTHER;
    p->anchor = NULL;
    p->service = NULL;
    p->key = KEY_OTHER;
    if (strcmp(key, "services") == 0) {
        p->section = SECTION_SERVICES;
        return 0;
    }
    if (strncmp(key, "x-", 2) != 0 || value[0] != '&')
        return 0;
    struct compose *c = p->compose;
    if (!is_name(value + 1, "-"))
        return parse_error(p, "bad anchor `%s`", value);
    if (c->anchor_count == MAX_ANCHORS)
        return parse_error(p, "more than %d x- blocks", MAX_ANCHORS);
    struct anchor *a = &c->anchors[c->anchor_count++];
    if (copy_text(a->name, sizeof a->name, value + 1, strlen(value + 1)) < 0)
        return parse_error(p, "anchor name too long");
    p->anchor = a;
    p->section = SECTION_ANCHOR;
    return 0;
}

static int parse_anchor_entry(struct parser *p, const char *body)
{
    char key[NAME_LEN];
    const char *value;
    if (split_key(body, key, sizeof key, &value) < 0)
        return parse_error(p, "expected `KEY: value` in x- block &%s", p->anchor->name);
    return env_add(p, &p->anchor->env, key, value);
}

static int start_service(struct parser *p, const char *body)
{
    char name[NAME_LEN];
    const char *value;
    if (split_key(body, name, sizeof name, &value) < 0 || *value)
        return parse_error(p, "expected a service name (`NAME:`), got `%s`", body);
    struct compose *c = p->compose;
    for (size_t i = 0; i < c->service_count; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return parse_error(p, "service %s defined twice", name);
    if (c->service_count == MAX_SERVICES)
        return parse_error(p, "more than %d services", MAX_SERVICES);
    p->service = &c->services[c->service_count++];
    strcpy(p->service->name, name);
    p->key = KEY_OTHER;
    return 0;
}

static int parse_service_key(struct parser *p, const char *body)
{
    char key[NAME_LEN];
    const char *value;
    if (split_key(body, key, sizeof key, &value) < 0)
        return parse_error(p, "expected `KEY:` in service %s, got `%s`", p->service->name, body);
    struct service *s = p->service;
    p->key = KEY_OTHER;
    if (strcmp(key, "command") == 0) {
        s->has_command = 1;
        if (!*value)
            p->key = KEY_COMMAND;
        else if (copy_text(s->command, sizeof s->command, value, strlen(value)) < 0)
            return parse_error(p, "command too long");
    } else if (strcmp(key, "environment") == 0) {
        if (*value)
            return parse_error(p, "%s: environment must be a mapping on the lines below", s->name);
        p->key = KEY_ENVIRONMENT;
    } else if (strcmp(key, "container_name") == 0) {
        s->has_container_name = 1;
    } else if (strcmp(key, "ports") == 0) {
        s->has_ports = 1;
    } else if (strcmp(key, "env_file") == 0) {
        s->has_env_file = 1;
    } else if (strcmp(key, "<<") == 0) {
        return parse_error(p, "%s: a merge into the service itself is not followed by this reader", s->name);
    }
    return 0;
}

static int parse_environment_entry(struct parser *p, size_t indent, const char *body)
{
    char key[NAME_LEN];
    const char *value;
    if (indent != 6)
        return parse_error(p, "%s: environment entries belong at indent 6", p->service->name);
    if (body[0] == '-')
        return parse_error(p, "%s: environment in list form; write `NAME: value`", p->service->name);
    if (split_key(body, key, sizeof key, &value) < 0)
        return parse_error(p, "%s: expected `NAME: value`, got `%s`", p->service->name, body);
    return env_add(p, &p->service->env, key, value);
}

static int append_command(struct parser *p, const char *body)
{
    struct service *s = p->service;
    size_t used = strlen(s->command);
    size_t n = strlen(body);
    if (used + 1 + n >= sizeof s->command)
        return parse_error(p, "%s: command too long", s->name);
    if (used)
        s->command[used++] = '\n';
    memcpy(s->command + used, body, n + 1);
    return 0;
}

static int parse_service_line(struct parser *p, size_t indent, const char *body)
{
    if (indent == 2)
        return start_service(p, body);
    if (!p->service)
        return parse_error(p, "indented line before the first service name");
    if (indent == 4)
        return parse_service_key(p, body);
    if (p->key == KEY_ENVIRONMENT)
        return parse_environment_entry(p, indent, body);
    return 0; /* the inside of other keys (build, healthcheck, ...) */
}

static int parse_line(struct parser *p, char *text)
{
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    size_t indent = strspn(text, " ");
    const char *body = text + indent;
    if (*body == '\t')
        return parse_error(p, "tab in indentation");
    if (!*body || *body == '#')
        return 0;
    if (p->section == SECTION_SERVICES && p->key == KEY_COMMAND && indent > 4)
        return append_command(p, body);
    if (indent % 2)
        return parse_error(p, "indentation of %zu spaces is not a multiple of two", indent);
    if (indent == 0)
        return parse_top_level(p, body);
    if (p->section == SECTION_ANCHOR)
        return indent == 2 ? parse_anchor_entry(p, body) : 0;
    if (p->section == SECTION_SERVICES)
        return parse_service_line(p, indent, body);
    return 0;
}

static void root_path(const char *relative, char *out, size_t outlen)
{
    const char *root = getenv("STAGEHAND_ROOT");
    snprintf(out, outlen, "%s/%s", root && *root ? root : ".", relative);
}

static int compose_load(struct compose *c, char *err, size_t errlen)
{
    char path[PATH_LEN];
    root_path(COMPOSE_FILE, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct parser p = {.compose = c, .err = err, .errlen = errlen};
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        p.line++;
        rc = parse_line(&p, line);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- questions about the parsed file ----------------------------------------- */

static const struct service *find_service(const struct compose *c, const char *name)
{
    for (size_t i = 0; i < c->service_count; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    return NULL;
}

static const struct anchor *find_anchor(const struct compose *c, const char *name)
{
    for (size_t i = 0; i < c->anchor_count; i++)
        if (strcmp(c->anchors[i].name, name) == 0)
            return &c->anchors[i];
    return NULL;
}

/* Folds env into out: first what it merges (recursively), then its own
 * entries, which replace merged ones of the same name. */
static int resolve_env(const struct compose *c, const struct env *env, struct env *out, int depth, char *err,
                       size_t errlen)
{
    if (env->merge[0]) {
        const struct anchor *a = find_anchor(c, env->merge);
        if (!a) {
            snprintf(err, errlen, "merge of unknown anchor *%s", env->merge);
            return -1;
        }
        if (depth == MAX_MERGE_DEPTH) {
            snprintf(err, errlen, "merges nest deeper than %d (a loop?)", MAX_MERGE_DEPTH);
            return -1;
        }
        if (resolve_env(c, &a->env, out, depth + 1, err, errlen) < 0)
            return -1;
    }
    for (size_t i = 0; i < env->count; i++) {
        struct var *v = env_find(out, env->vars[i].name);
        if (!v) {
            if (out->count == MAX_VARS) {
                snprintf(err, errlen, "more than %d variables after merging", MAX_VARS);
                return -1;
            }
            v = &out->vars[out->count++];
        }
        *v = env->vars[i];
    }
    return 0;
}

/* The variables a service ends up with; fails the test when merges do not resolve. */
static void service_env(const struct compose *c, const struct service *s, struct env *out)
{
    char err[256];
    memset(out, 0, sizeof *out);
    if (resolve_env(c, &s->env, out, 0, err, sizeof err) < 0)
        fail_msg("service %s: %s", s->name, err);
}

/* The program a command runs: its first word, for `prog args` or `["prog", ...]`. */
static void command_program(const char *command, char *out, size_t outlen)
{
    const char *p = command + strspn(command, " [\"'");
    size_t n = strcspn(p, " \"',]\n");
    if (copy_text(out, outlen, p, n) < 0)
        out[0] = '\0';
}

/* The default of a value that is one `${NAME...}` substitution: 1 and the
 * default (empty when none) in out, or 0 when the value is not one. */
static int substitution_default(const char *value, char *out, size_t outlen)
{
    size_t len = strlen(value);
    out[0] = '\0';
    if (len < 4 || strncmp(value, "${", 2) != 0 || value[len - 1] != '}' || strchr(value + 2, '}') != value + len - 1)
        return 0;
    const char *p = value + 2;
    p += strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    if (*p == ':')
        p++;
    if (*p == '-' || *p == '+')
        return copy_text(out, outlen, p + 1, (size_t)(value + len - 1 - (p + 1))) == 0;
    return 1; /* ${NAME}, ${NAME:?message} */
}

/* The whole of a file under the root, or NULL with the reason in err. */
static char *read_text_file(const char *relative, char *err, size_t errlen)
{
    char path[PATH_LEN];
    root_path(relative, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    char chunk[8192];
    size_t n;
    int failed = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        char *grown = realloc(text, len + n + 1);
        if (!grown) {
            snprintf(err, errlen, "out of memory reading %s", path);
            failed = 1;
            break;
        }
        text = grown;
        memcpy(text + len, chunk, n);
        len += n;
    }
    if (!failed && ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        failed = 1;
    }
    fclose(f);
    if (!failed && !text) {
        snprintf(err, errlen, "%s is empty", path);
        failed = 1;
    }
    if (failed) {
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

/* ---- what each stagehand binary reads ------------------------------------------- */

struct table {
    const struct config_spec *specs;
    const size_t *count;
};

struct binary {
    const char *service;
    const char *program;
    struct table tables[8]; /* ends at the first empty entry */
    const char *extra;      /* one variable read outside the tables, or NULL */
};

#define TABLE(t)                                                                                                       \
    {                                                                                                                  \
        t, &t##_count                                                                                                  \
    }
#define WORKER_TABLES                                                                                                  \
    TABLE(settings_logging), TABLE(settings_kafka), TABLE(settings_twilio), TABLE(settings_public),                    \
        TABLE(settings_workers), TABLE(settings_streams)

static const struct binary binaries[] = {
    {"ingress",
     "stagehand-ingress",
     {TABLE(settings_logging), TABLE(settings_kafka), TABLE(settings_twilio), TABLE(settings_public),
      TABLE(settings_ingress), TABLE(settings_streams)},
     NULL},
    {"room-worker", "stagehand-room-worker", {WORKER_TABLES, TABLE(settings_rooms)}, NULL},
    {"stream-worker", "stagehand-stream-worker", {WORKER_TABLES, TABLE(settings_media)}, NULL},
    {"sync-worker", "stagehand-sync-worker", {WORKER_TABLES, TABLE(settings_sync)}, NULL},
    {"emulator", "twilio-emulator", {TABLE(settings_logging), TABLE(settings_twilio)}, "TWILIO_EMULATOR_FAULTS"},
};
#define BINARY_COUNT (sizeof binaries / sizeof binaries[0])

/* The services that run the pipeline and share x-stagehand-env. */
static const char *const pipeline_services[] = {"ingress", "room-worker", "stream-worker", "sync-worker"};
#define PIPELINE_COUNT (sizeof pipeline_services / sizeof pipeline_services[0])

static const char *const secrets[] = {"TWILIO_API_KEY_SECRET", "TWILIO_AUTH_TOKEN", "PASSCODE", "AUTH_JWT_SECRET"};

static int binary_reads(const struct binary *b, const char *name)
{
    if (b->extra && strcmp(b->extra, name) == 0)
        return 1;
    for (const struct table *t = b->tables; t->specs; t++)
        for (size_t i = 0; i < *t->count; i++)
            if (strcmp(t->specs[i].name, name) == 0)
                return 1;
    return 0;
}

static const struct service *expect_service(const struct compose *c, const char *name)
{
    const struct service *s = find_service(c, name);
    if (!s)
        fail_msg("%s has no service %s", COMPOSE_FILE, name);
    return s;
}

/* ---- fixtures ------------------------------------------------------------------- */

/* What each test gets: the parsed compose file and README.md's text. */
struct fixture {
    struct compose compose;
    char *readme;
};

static int load_fixture(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f) {
        print_error("out of memory\n");
        return -1;
    }
    char err[ERR_LEN];
    if (compose_load(&f->compose, err, sizeof err) < 0 || !(f->readme = read_text_file("README.md", err, sizeof err))) {
        print_error("%s\n", err);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int free_fixture(void **state)
{
    struct fixture *f = *state;
    free(f->readme);
    free(f);
    return 0;
}

static const struct compose *compose_of(void **state)
{
    return &((const struct fixture *)*state)->compose;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_each_service_runs_its_binary(void **state)
{
    const struct compose *c = compose_of(state);
    for (size_t i = 0; i < BINARY_COUNT; i++) {
        const struct service *s = expect_service(c, binaries[i].service);
        if (!s->has_command || !s->command[0])
            fail_msg("service %s has no command", s->name);
        char program[NAME_LEN];
        command_program(s->command, program, sizeof program);
        if (strcmp(program, binaries[i].program) != 0)
            fail_msg("service %s runs `%s`, not %s", s->name, program, binaries[i].program);
    }
}

static void test_pipeline_services_share_the_stagehand_env(void **state)
{
    const struct compose *c = compose_of(state);
    if (!find_anchor(c, "stagehand-env"))
        fail_msg("%s has no `x-stagehand-env: &stagehand-env` block", COMPOSE_FILE);
    for (size_t i = 0; i < PIPELINE_COUNT; i++) {
        const struct service *s = expect_service(c, pipeline_services[i]);
        if (strcmp(s->env.merge, "stagehand-env") != 0)
            fail_msg("service %s does not merge `<<: *stagehand-env` into its environment", s->name);
        struct env env;
        service_env(c, s, &env);
        if (!env_find(&env, "KAFKA_BROKERS"))
            fail_msg("service %s does not set KAFKA_BROKERS", s->name);
    }
}

static void test_every_variable_is_read_by_its_binary(void **state)
{
    const struct compose *c = compose_of(state);
    for (size_t i = 0; i < BINARY_COUNT; i++) {
        const struct binary *b = &binaries[i];
        const struct service *s = expect_service(c, b->service);
        if (s->has_env_file)
            fail_msg("service %s uses env_file, whose variables this test cannot check", s->name);
        struct env env;
        service_env(c, s, &env);
        for (size_t v = 0; v < env.count; v++)
            if (!binary_reads(b, env.vars[v].name))
                fail_msg("service %s sets %s, which %s does not read", b->service, env.vars[v].name, b->program);
    }
}

static void test_every_variable_is_documented(void **state)
{
    const struct compose *c = compose_of(state);
    const char *readme = ((const struct fixture *)*state)->readme;
    for (size_t i = 0; i < BINARY_COUNT; i++) {
        const struct binary *b = &binaries[i];
        struct env env;
        service_env(c, expect_service(c, b->service), &env);
        for (size_t v = 0; v < env.count; v++) {
            const char *name = env.vars[v].name;
            if (b->extra && strcmp(name, b->extra) == 0)
                continue;
            char row[NAME_LEN + 16];
            snprintf(row, sizeof row, "\n| `%s` |", name);
            if (!strstr(readme, row))
                fail_msg("service %s sets %s, which README.md's configuration table lacks", b->service, name);
        }
    }
}

static void test_secrets_come_from_the_environment(void **state)
{
    const struct compose *c = compose_of(state);
    for (size_t i = 0; i < c->service_count; i++) {
        struct env env;
        service_env(c, &c->services[i], &env);
        for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
            const struct var *v = env_find(&env, secrets[k]);
            if (!v)
                continue;
            char fallback[VALUE_LEN];
            if (!substitution_default(v->value, fallback, sizeof fallback))
                fail_msg("service %s sets %s to a literal; write ${%s:?...}", c->services[i].name, v->name, v->name);
            if (fallback[0])
                fail_msg("service %s gives %s a literal default; write ${%s:?...} or ${%s:-}", c->services[i].name,
                         v->name, v->name, v->name);
        }
    }
}

static void test_log_level_is_valid(void **state)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    const struct compose *c = compose_of(state);
    for (size_t i = 0; i < BINARY_COUNT; i++) {
        struct env env;
        service_env(c, expect_service(c, binaries[i].service), &env);
        const struct var *v = env_find(&env, "LOG_LEVEL");
        if (!v)
            continue;
        char level[VALUE_LEN];
        if (!substitution_default(v->value, level, sizeof level))
            strcpy(level, v->value);
        int known = level[0] == '\0'; /* ${LOG_LEVEL} alone: unset means info */
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++)
            known |= strcmp(level, levels[l]) == 0;
        if (!known)
            fail_msg("service %s sets LOG_LEVEL to `%s`, not debug, info, warn or error", binaries[i].service,
                     v->value);
    }
}

/* The line of command that creates topic, copied into out; 0 when none does. */
static int find_create_line(const char *command, const char *topic, char *out, size_t outlen)
{
    char needle[128];
    snprintf(needle, sizeof needle, "--topic %s", topic);
    for (const char *line = command; *line;) {
        size_t n = strcspn(line, "\n");
        if (copy_text(out, outlen, line, n) == 0 && strstr(out, "--create")) {
            const char *at = strstr(out, needle);
            if (at && (at[strlen(needle)] == ' ' || at[strlen(needle)] == '\0'))
                return 1;
        }
        line += n;
        line += *line == '\n';
    }
    return 0;
}

/* The default of a variable of settings_kafka (the topic names compose
 * must create are the programs' defaults). */
static const char *kafka_default(const char *name)
{
    for (size_t i = 0; i < settings_kafka_count; i++)
        if (strcmp(settings_kafka[i].name, name) == 0)
            return settings_kafka[i].default_value;
    fail_msg("settings_kafka has no %s", name);
    return NULL;
}

static void test_kafka_init_creates_the_topics(void **state)
{
    const struct {
        const char *name;
        int compacted;
    } topics[] = {{kafka_default("KAFKA_TOPIC_EVENTS"), 0},
                  {kafka_default("KAFKA_TOPIC_DLQ"), 0},
                  {kafka_default("KAFKA_TOPIC_STATE"), 1}};
    const struct compose *c = compose_of(state);
    const struct service *init = expect_service(c, "kafka-init");
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        char line[COMMAND_LEN];
        if (!find_create_line(init->command, topics[i].name, line, sizeof line))
            fail_msg("kafka-init's command does not create %s", topics[i].name);
        if (!strstr(line, "--if-not-exists"))
            fail_msg("kafka-init creates %s without --if-not-exists", topics[i].name);
        if (!strstr(line, "--partitions ${KAFKA_PARTITIONS:-12}"))
            fail_msg("kafka-init creates %s without --partitions ${KAFKA_PARTITIONS:-12}", topics[i].name);
        int compacted = strstr(line, "cleanup.policy=compact") != NULL;
        if (compacted != topics[i].compacted)
            fail_msg("kafka-init creates %s %s", topics[i].name,
                     compacted ? "compacted (it must keep every record)" : "without cleanup.policy=compact");
    }
}

/* compose's Kafka agrees with the one the tests and `make run KAFKA=kafka`
 * run (tools/kafka): the same release, topics made up front only, and the
 * events and DLQ topics with kafka.sh's retention. */
static void test_kafka_agrees_with_the_local_broker(void **state)
{
    char err[256];
    char *pom = read_text_file("tools/kafka/pom.xml", err, sizeof err);
    char *script = read_text_file("tools/kafka/kafka.sh", err, sizeof err);
    char *yml = read_text_file("compose/docker-compose.yml", err, sizeof err);
    if (!pom || !script || !yml)
        fail_msg("%s", err);
    char version[32] = "", image[64];
    const char *v = strstr(pom, "<kafka.version>");
    assert_non_null(v);
    v += strlen("<kafka.version>");
    copy_text(version, sizeof version, v, strcspn(v, "<"));
    snprintf(image, sizeof image, "image: apache/kafka:%s\n", version);
    int images = 0;
    for (const char *at = yml; (at = strstr(at, "image: apache/kafka:")); at++) {
        if (strncmp(at, image, strlen(image)) != 0)
            fail_msg("compose runs another Kafka than tools/kafka/pom.xml's %s", version);
        images++;
    }
    assert_int_equal(images, 2); /* kafka and kafka-init */
    if (!strstr(yml, "KAFKA_AUTO_CREATE_TOPICS_ENABLE: \"false\"") ||
        !strstr(script, "auto.create.topics.enable=false"))
        fail_msg("compose and kafka.sh must both refuse to create topics on first use");
    if (!strstr(script, "${KAFKA_PARTITIONS:-12}") || !strstr(script, "${KAFKA_RETENTION_MS:-604800000}"))
        fail_msg("kafka.sh's partitions or retention differ from compose's");
    const struct compose *c = compose_of(state);
    const struct service *init = expect_service(c, "kafka-init");
    const char *const logs[] = {kafka_default("KAFKA_TOPIC_EVENTS"), kafka_default("KAFKA_TOPIC_DLQ")};
    for (size_t i = 0; i < 2; i++) {
        char line[COMMAND_LEN];
        if (!find_create_line(init->command, logs[i], line, sizeof line) ||
            !strstr(line, "--config retention.ms=${KAFKA_RETENTION_MS:-604800000}"))
            fail_msg("kafka-init creates %s without kafka.sh's retention", logs[i]);
    }
    free(pom);
    free(script);
    free(yml);
}

static void test_ingress_and_workers_can_be_scaled(void **state)
{
    const struct compose *c = compose_of(state);
    for (size_t i = 0; i < PIPELINE_COUNT; i++) {
        const struct service *s = expect_service(c, pipeline_services[i]);
        if (s->has_container_name)
            fail_msg("service %s has a container_name, so it cannot be scaled", s->name);
        if (s->has_ports)
            fail_msg("service %s publishes ports, so its replicas would collide", s->name);
    }
}

/* The scaling signals (README "Operations"): Prometheus (--profile metrics)
 * mounts prometheus.yml and scaling.rules.yml, scrapes each worker service
 * by name on the METRICS_PORT the service sets, and the rules use metric
 * names that workers/worker.c publishes. */
static void test_scaling_signals_are_scraped(void **state)
{
    static const char *const workers[] = {"room-worker", "stream-worker", "sync-worker"};
    static const char *const signals[] = {"stagehand_worker_consumer_lag", "stagehand_worker_oldest_unapplied_seconds",
                                          "stagehand_worker_partitions"};
    char err[256];
    const struct compose *c = compose_of(state);
    expect_service(c, "prometheus");
    char *yml = read_text_file("compose/docker-compose.yml", err, sizeof err);
    char *scrape = yml ? read_text_file("compose/prometheus.yml", err, sizeof err) : NULL;
    char *rules = scrape ? read_text_file("compose/scaling.rules.yml", err, sizeof err) : NULL;
    char *runtime = rules ? read_text_file("workers/worker.c", err, sizeof err) : NULL;
    if (!runtime)
        fail_msg("%s", err);
    if (!strstr(yml, "- ./prometheus.yml:/etc/prometheus/prometheus.yml:ro") ||
        !strstr(yml, "- ./scaling.rules.yml:/etc/prometheus/scaling.rules.yml:ro"))
        fail_msg("the prometheus service does not mount prometheus.yml and scaling.rules.yml");
    if (!strstr(scrape, "- /etc/prometheus/scaling.rules.yml"))
        fail_msg("prometheus.yml does not load scaling.rules.yml");
    for (size_t i = 0; i < sizeof workers / sizeof workers[0]; i++) {
        struct env env;
        service_env(c, expect_service(c, workers[i]), &env);
        const struct var *port = env_find(&env, "METRICS_PORT");
        if (!port)
            fail_msg("service %s sets no METRICS_PORT", workers[i]);
        char job[1024];
        snprintf(job, sizeof job,
                 "- job_name: %s\n    dns_sd_configs:\n      - names: [%s]\n        type: A\n"
                 "        port: %s\n",
                 workers[i], workers[i], port->value);
        if (!strstr(scrape, job))
            fail_msg("prometheus.yml does not scrape %s on port %s (as `%s`)", workers[i], port->value, job);
    }
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        char quoted[128];
        snprintf(quoted, sizeof quoted, "\"%s\"", signals[i]);
        if (!strstr(rules, signals[i]))
            fail_msg("scaling.rules.yml does not use %s", signals[i]);
        if (!strstr(runtime, quoted))
            fail_msg("workers/worker.c publishes no %s", signals[i]);
    }
    free(yml);
    free(scrape);
    free(rules);
    free(runtime);
}

int main(void)
{
#define COMPOSE_TEST(f) cmocka_unit_test_setup_teardown(f, load_fixture, free_fixture)
    const struct CMUnitTest tests[] = {
        COMPOSE_TEST(test_each_service_runs_its_binary),
        COMPOSE_TEST(test_pipeline_services_share_the_stagehand_env),
        COMPOSE_TEST(test_every_variable_is_read_by_its_binary),
        COMPOSE_TEST(test_every_variable_is_documented),
        COMPOSE_TEST(test_secrets_come_from_the_environment),
        COMPOSE_TEST(test_log_level_is_valid),
        COMPOSE_TEST(test_kafka_init_creates_the_topics),
        COMPOSE_TEST(test_kafka_agrees_with_the_local_broker),
        COMPOSE_TEST(test_ingress_and_workers_can_be_scaled),
        COMPOSE_TEST(test_scaling_signals_are_scraped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
