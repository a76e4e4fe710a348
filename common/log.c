/* JSON-lines logger (see log.h). Each line is built in full and written with
 * one write(2), so lines from several threads never interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "timeutil.h"

static char log_component[64] = "stagehand";
static enum log_level log_threshold = LOG_LEVEL_INFO;
static int log_fd = 2;

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, LEVEL_NAMES[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return level <= LOG_LEVEL_ERROR ? LEVEL_NAMES[level] : "error";
}

void log_init(const char *component, enum log_level level)
{
    snprintf(log_component, sizeof log_component, "%s", component);
    log_threshold = level;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

int log_enabled(enum log_level level)
{
    return level >= log_threshold;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int log_is_secret_name(const char *name)
{
    static const char *const inner[] = {"secret", "password", "passcode", "authorization"};
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++)
        if (strcasestr(name, inner[i]))
            return 1;
    return ends_with(name, "token") || ends_with(name, "signature");
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Copies fields into line, redacting secret-looking names. */
static void add_fields(json_t *line, json_t *fields)
{
    if (!fields || !json_is_object(fields) || json_object_size(fields) == 0)
        return;
    json_t *copy = json_object();
    const char *name;
    json_t *value;
    json_object_foreach (fields, name, value) {
        if (log_is_secret_name(name))
            json_object_set_new(copy, name, json_string("[redacted]"));
        else
            json_object_set(copy, name, value);
    }
    json_object_set_new(line, "fields", copy);
}

void log_write_json(enum log_level level, const char *message, json_t *fields)
{
    if (!log_enabled(level))
        return;
    char ts[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(time_now_ms(), ts);

    json_t *line = json_object();
    if (!line)
        return;
    json_object_set_new(line, "time", json_string(ts));
    json_object_set_new(line, "level", json_string(log_level_name(level)));
    json_object_set_new(line, "component", json_string(log_component));
    /* json_stringn_nocheck would keep invalid UTF-8; escape it instead. */
    json_t *msg = json_string(message);
    json_object_set_new(line, "message", msg ? msg : json_string("(message was not valid UTF-8)"));
    add_fields(line, fields);

    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; we write by length */
    write_all(text, len + 1);
    free(text);
}

void log_write(enum log_level level, const char *message, ...)
{
    if (!log_enabled(level))
        return;
    json_t *fields = json_object();
    va_list ap;
    va_start(ap, message);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (!name)
            break;
        const char *value = va_arg(ap, const char *);
        json_t *v = value ? json_string(value) : json_null();
        json_object_set_new(fields, name, v ? v : json_string("(not valid UTF-8)"));
    }
    va_end(ap);
    log_write_json(level, message, fields);
    json_decref(fields);
}
