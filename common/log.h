/* Structured logging: one JSON object per line on stderr, with the fields
 * time (RFC 3339, ms, UTC), level, component, message and, when given,
 * "fields" (an object of extra values). Field values whose names look like
 * secrets (…secret…, …password…, …passcode…, …authorization…, …token,
 * …signature) are written as "[redacted]": secrets never reach the log.
 *
 *   log_info("stream created", "stream", name, "room_sid", sid, NULL);
 *
 * The level threshold comes from LOG_LEVEL (debug, info, warn, error). */
#ifndef STAGEHAND_LOG_H
#define STAGEHAND_LOG_H

#include <jansson.h>

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/* Sets the component name (copied) and the threshold. Safe to call again. */
void log_init(const char *component, enum log_level level);

/* Sends log lines to fd instead of stderr (tests). */
void log_set_fd(int fd);

int log_enabled(enum log_level level);

/* Writes one line. After message come name/value string pairs, then NULL. */
void log_write(enum log_level level, const char *message, ...) __attribute__((sentinel));

/* Writes one line whose "fields" are the members of fields (borrowed; may be
 * NULL), for values that are not strings. */
void log_write_json(enum log_level level, const char *message, json_t *fields);

/* True when a field of this name must never be logged in clear. */
int log_is_secret_name(const char *name);

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
