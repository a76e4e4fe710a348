/* Configuration from environment variables: each variable is described by a
 * config_spec (name, type, default, range or choices, secret flag, one-line
 * description); config_load reads and validates every registered variable at
 * once, and typed getters return the values afterwards.
 *
 * Rules applied by config_load:
 *   - an unset or empty variable takes its default; with no default (NULL)
 *     it is an error ("required");
 *   - CONFIG_INT: decimal digits with an optional '-', the whole string,
 *     no overflow, within [min, max];
 *   - CONFIG_BOOL: true/false, 1/0, yes/no, on/off, any case;
 *   - CONFIG_ENUM: one of the '|'-separated choices, any case (the value is
 *     stored spelled as in the choices);
 *   - CONFIG_URL: http:// or https://, a non-empty host, an optional port
 *     1..65535, no whitespace, no query or fragment; trailing '/' are
 *     removed so callers can append paths;
 *   - then the optional check function.
 * Errors name the variable and say what is expected; the value is quoted
 * only for variables that are not secret.
 *
 * Asking a getter for a variable that was never registered, with the wrong
 * type, or before a successful config_load is a programming error: the
 * getters print it and abort. */
#ifndef STAGEHAND_CONFIG_H
#define STAGEHAND_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

enum config_type {
    CONFIG_STRING,
    CONFIG_INT,
    CONFIG_BOOL,
    CONFIG_ENUM,
    CONFIG_URL,
};

struct config_spec {
    const char *name; /* environment variable, e.g. "TOKEN_TTL_S" */
    enum config_type type;
    const char *default_value; /* NULL = required; "" = unset (STRING, URL) */
    long long min, max;        /* CONFIG_INT: inclusive range, always applied */
    const char *choices;       /* CONFIG_ENUM: "passcode|jwt" */
    int secret;                /* never printed in clear, never quoted */
    const char *description;   /* one line, for --help and the README */
    /* Optional extra rule, given the normalised non-empty value: NULL when
     * acceptable, else a short reason ("must be AC followed by 32 hex
     * digits") that does not repeat the value. */
    const char *(*check)(const char *value);
};

struct config;

/* A new empty configuration, or NULL when out of memory. */
struct config *config_new(void);

/* Adds n specs (borrowed: the table must outlive cfg). Several tables may be
 * registered, each before the config_load that reads them. Refuses,
 * registering none of the table, a duplicate name, a malformed spec or a
 * default that breaks its own rules. Returns 0, or -1 with the reason in err. */
int config_register(struct config *cfg, const struct config_spec *specs, size_t n, char *err, size_t errlen);

/* Reads every registered variable from the environment and validates them
 * all. Returns 0, or -1 with every problem in err, separated by "; ". */
int config_load(struct config *cfg, char *err, size_t errlen);

/* The value of a CONFIG_STRING, CONFIG_ENUM or CONFIG_URL variable ("" when
 * unset with an empty default). Valid until config_free. */
const char *config_str(const struct config *cfg, const char *name);

/* The value of a CONFIG_INT variable. */
long long config_int(const struct config *cfg, const char *name);

/* The value of a CONFIG_BOOL variable: 1 or 0. */
int config_bool(const struct config *cfg, const char *name);

/* 1 when the variable was set (non-empty) in the environment, 0 when its
 * default applies. */
int config_is_set(const struct config *cfg, const char *name);

/* Writes NAME=value per variable in registration order; secrets appear as
 * [redacted], or [unset] when empty. */
void config_print(const struct config *cfg, FILE *out);

/* The same as a JSON object (integers as numbers, booleans as booleans), for
 * a startup log line. NULL when out of memory. The caller owns the result. */
json_t *config_to_json(const struct config *cfg);

/* Writes, for each variable: its name, its default (or "required"), what
 * values it accepts and its description. Works before config_load. */
void config_print_help(const struct config *cfg, FILE *out);

void config_free(struct config *cfg);

/* NULL when s[0..len) is "host" or "host:port" (port_required: must have a
 * port), else a short reason. host is a name of letters, digits, '.', '-',
 * '_' or a bracketed IPv6 address; port is 1..65535. Used for URLs and for
 * lists of brokers. */
const char *config_host_port_problem(const char *s, size_t len, int port_required);

#endif
