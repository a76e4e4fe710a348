/* Prometheus counters, gauges and histograms (see metrics.h). */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

const double metrics_latency_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t metrics_latency_buckets_count = sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
};

/* One combination of label values and its numbers. */
struct metric_series {
    struct metric *family;
    char **label_values;
    double value;      /* counter, gauge */
    double sum;        /* histogram: sum of observations */
    uint64_t count;    /* histogram: number of observations (the +Inf bucket) */
    uint64_t *buckets; /* histogram: observations per bound, not cumulative */
};

struct metric {
    struct metrics *registry;
    enum metric_type type;
    char *name;
    char *help;
    char **label_names;
    size_t nlabels;
    double *bounds; /* histogram upper bounds, +Inf excluded */
    size_t nbounds;
    struct metric_series **children; /* each its own allocation: a series handle stays valid */
    size_t nchildren;
    size_t cap;
};

struct metrics {
    pthread_mutex_t lock; /* guards everything below and every metric */
    struct metric **families;
    size_t len;
    size_t cap;
};

static const char *const HISTOGRAM_SUFFIXES[] = {"_bucket", "_sum", "_count"};

/* --- names ----------------------------------------------------------------- */

/* [a-zA-Z_][a-zA-Z0-9_]*, plus ':' anywhere when allow_colon. */
static int valid_name(const char *s, int allow_colon)
{
    if (!s || !*s || isdigit((unsigned char)*s))
        return 0;
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        int ascii_alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ascii_alnum && c != '_' && !(allow_colon && c == ':'))
            return 0;
    }
    return 1;
}

static int valid_utf8(const char *s)
{
    return s && utf8_length(s, strlen(s)) >= 0;
}

/* 1 when name is base followed by one of the histogram suffixes. */
static int is_histogram_series(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (strcmp(name + n, HISTOGRAM_SUFFIXES[i]) == 0)
            return 1;
    return 0;
}

/* 1 when family f already renders a series called name. */
static int family_owns(const struct metric *f, const char *name)
{
    return strcmp(f->name, name) == 0 || (f->type == METRIC_HISTOGRAM && is_histogram_series(name, f->name));
}

/* 1 when a new family of this name and type would clash with an existing one. */
static int name_taken(const struct metrics *m, const char *name, enum metric_type type)
{
    for (size_t i = 0; i < m->len; i++) {
        const struct metric *f = m->families[i];
        if (family_owns(f, name))
            return 1;
        if (type == METRIC_HISTOGRAM && is_histogram_series(f->name, name))
            return 1;
    }
    return 0;
}

static int labels_ok(enum metric_type type, size_t nlabels, const char *const *names)
{
    if (nlabels && !names)
        return 0;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(names[i], 0) || strncmp(names[i], "__", 2) == 0)
            return 0;
        if (type == METRIC_HISTOGRAM && strcmp(names[i], "le") == 0)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return 0;
    }
    return 1;
}

static int bounds_ok(const double *bounds, size_t nbounds)
{
    if (nbounds && !bounds)
        return 0;
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]))
            return 0;
        if (i > 0 && !(bounds[i] > bounds[i - 1]))
            return 0;
    }
    return 1;
}

/* --- families and children --------------------------------------------------- */

static void free_strings(char **strings, size_t n)
{
    if (!strings)
        return;
    for (size_t i = 0; i < n; i++)
        free(strings[i]);
    free(strings);
}

/* A malloc'd array of copies of n strings, or NULL when out of memory. */
static char **copy_strings(const char *const *strings, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(strings[i]);
        if (!out[i]) {
            free_strings(out, i);
            return NULL;
        }
    }
    return out;
}

static void free_metric(struct metric *f)
{
    for (size_t i = 0; i < f->nchildren; i++) {
        free_strings(f->children[i]->label_values, f->nlabels);
        free(f->children[i]->buckets);
        free(f->children[i]);
    }
    free(f->children);
    free_strings(f->label_names, f->nlabels);
    free(f->bounds);
    free(f->help);
    free(f->name);
    free(f);
}

/* The child of these label values, created when missing; NULL when out of
 * memory. Called with the registry locked. */
static struct metric_series *get_child(struct metric *f, const char *const *values)
{
    for (size_t i = 0; i < f->nchildren; i++) {
        size_t j = 0;
        while (j < f->nlabels && strcmp(f->children[i]->label_values[j], values[j]) == 0)
            j++;
        if (j == f->nlabels)
            return f->children[i];
    }
    /* A new series: its label values are checked once, here. */
    for (size_t i = 0; i < f->nlabels; i++)
        if (!valid_utf8(values[i]))
            return NULL;
    if (f->nchildren == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct metric_series **children = realloc(f->children, cap * sizeof *children);
        if (!children)
            return NULL;
        f->children = children;
        f->cap = cap;
    }
    struct metric_series *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->family = f;
    c->label_values = copy_strings(values, f->nlabels);
    if (f->type == METRIC_HISTOGRAM)
        c->buckets = calloc(f->nbounds ? f->nbounds : 1, sizeof *c->buckets);
    if (!c->label_values || (f->type == METRIC_HISTOGRAM && !c->buckets)) {
        free_strings(c->label_values, f->nlabels);
        free(c->buckets);
        free(c);
        return NULL;
    }
    f->children[f->nchildren++] = c;
    return c;
}

static struct metric *create(struct metrics *m, enum metric_type type, const char *name, const char *help,
                             size_t nlabels, const char *const *label_names, const double *bounds, size_t nbounds)
{
    if (!m || !valid_name(name, 1) || !valid_utf8(help) || !labels_ok(type, nlabels, label_names) ||
        !bounds_ok(bounds, nbounds))
        return NULL;

    struct metric *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->registry = m;
    f->type = type;
    f->nlabels = nlabels;
    f->nbounds = nbounds;
    f->name = strdup(name);
    f->help = strdup(help);
    f->label_names = copy_strings(label_names, nlabels);
    f->bounds = malloc((nbounds ? nbounds : 1) * sizeof *f->bounds);
    if (!f->name || !f->help || !f->label_names || !f->bounds) {
        free_metric(f);
        return NULL;
    }
    if (nbounds)
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
    /* Without labels there is exactly one child: create it so that the
     * family renders 0 before its first use. */
    if (nlabels == 0 && !get_child(f, NULL)) {
        free_metric(f);
        return NULL;
    }

    pthread_mutex_lock(&m->lock);
    int ok = !name_taken(m, name, type);
    if (ok && m->len == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct metric **families = realloc(m->families, cap * sizeof *families);
        if (families) {
            m->families = families;
            m->cap = cap;
        } else {
            ok = 0;
        }
    }
    if (ok)
        m->families[m->len++] = f;
    pthread_mutex_unlock(&m->lock);

    if (!ok) {
        free_metric(f);
        return NULL;
    }
    return f;
}

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, size_t nlabels,
                               const char *const *label_names)
{
    return create(m, METRIC_COUNTER, name, help, nlabels, label_names, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, size_t nlabels,
                             const char *const *label_names)
{
    return create(m, METRIC_GAUGE, name, help, nlabels, label_names, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, size_t nlabels,
                                 const char *const *label_names, const double *upper_bounds, size_t nbounds)
{
    return create(m, METRIC_HISTOGRAM, name, help, nlabels, label_names, upper_bounds, nbounds);
}

/* --- updates ----------------------------------------------------------------- */

enum update_op { UPDATE_ADD, UPDATE_SET, UPDATE_OBSERVE };

/* Applies one update to the child of these label values, under the lock. */
static int update(struct metric *f, enum metric_type type, const char *const *values, enum update_op op, double number)
{
    if (!f || f->type != type || (f->nlabels && !values))
        return -1;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values[i])
            return -1;

    pthread_mutex_lock(&f->registry->lock);
    struct metric_series *c = get_child(f, values);
    if (c) {
        switch (op) {
        case UPDATE_ADD:
            c->value += number;
            break;
        case UPDATE_SET:
            c->value = number;
            break;
        case UPDATE_OBSERVE: {
            size_t i = 0;
            while (i < f->nbounds && number > f->bounds[i])
                i++;
            if (i < f->nbounds)
                c->buckets[i]++;
            c->count++;
            c->sum += number;
            break;
        }
        }
    }
    pthread_mutex_unlock(&f->registry->lock);
    return c ? 0 : -1;
}

int metrics_add(struct metric *metric, const char *const *label_values, double delta)
{
    if (!isfinite(delta) || delta < 0)
        return -1;
    return update(metric, METRIC_COUNTER, label_values, UPDATE_ADD, delta);
}

struct metric_series *metrics_counter_series(struct metric *metric, const char *const *label_values)
{
    if (!metric || metric->type != METRIC_COUNTER || (metric->nlabels && !label_values))
        return NULL;
    for (size_t i = 0; i < metric->nlabels; i++)
        if (!label_values[i])
            return NULL;
    pthread_mutex_lock(&metric->registry->lock);
    struct metric_series *c = get_child(metric, label_values);
    pthread_mutex_unlock(&metric->registry->lock);
    return c;
}

int metrics_series_add(struct metric_series *series, double delta)
{
    if (!series || !isfinite(delta) || delta < 0)
        return -1;
    pthread_mutex_lock(&series->family->registry->lock);
    series->value += delta;
    pthread_mutex_unlock(&series->family->registry->lock);
    return 0;
}

int metrics_set(struct metric *metric, const char *const *label_values, double value)
{
    return update(metric, METRIC_GAUGE, label_values, UPDATE_SET, value);
}

int metrics_gauge_add(struct metric *metric, const char *const *label_values, double delta)
{
    return update(metric, METRIC_GAUGE, label_values, UPDATE_ADD, delta);
}

int metrics_observe(struct metric *metric, const char *const *label_values, double value)
{
    if (isnan(value))
        return -1;
    return update(metric, METRIC_HISTOGRAM, label_values, UPDATE_OBSERVE, value);
}

/* --- rendering ----------------------------------------------------------------- */

/* Formats v as Prometheus reads it: whole numbers without exponent or
 * fraction, others in the shortest form that reads back exactly, and
 * +Inf, -Inf, NaN. buf holds at least 32 bytes. */
static void format_number(double v, char *buf, size_t buflen)
{
    if (isnan(v)) {
        snprintf(buf, buflen, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, buflen, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(buf, buflen, "0"); /* also for -0 */
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, buflen, "%.0f", v);
    } else {
        for (int precision = 15; precision <= 17; precision++) {
            snprintf(buf, buflen, "%.*g", precision, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

/* Writes s with backslash and newline escaped, and '"' too when quote. */
static void write_escaped(FILE *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '"' && quote)
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* Writes {name="value",...} for a child, with le="..." last when le is not
 * NULL; nothing when there is no label at all. */
static void write_labels(FILE *out, const struct metric *f, const struct metric_series *c, const char *le)
{
    if (f->nlabels == 0 && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->nlabels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
        write_escaped(out, c->label_values[i], 1);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static void write_sample(FILE *out, const struct metric *f, const char *suffix, const struct metric_series *c,
                         const char *le, double value)
{
    char number[40];
    format_number(value, number, sizeof number);
    fprintf(out, "%s%s", f->name, suffix);
    write_labels(out, f, c, le);
    fprintf(out, " %s\n", number);
}

static void write_family(FILE *out, const struct metric *f)
{
    static const char *const TYPE_NAMES[] = {"counter", "gauge", "histogram"};
    fprintf(out, "# HELP %s ", f->name);
    write_escaped(out, f->help, 0);
    fprintf(out, "\n# TYPE %s %s\n", f->name, TYPE_NAMES[f->type]);

    for (size_t i = 0; i < f->nchildren; i++) {
        const struct metric_series *c = f->children[i];
        if (f->type != METRIC_HISTOGRAM) {
            write_sample(out, f, "", c, NULL, c->value);
            continue;
        }
        uint64_t cumulative = 0;
        char le[40];
        for (size_t b = 0; b < f->nbounds; b++) {
            cumulative += c->buckets[b];
            format_number(f->bounds[b], le, sizeof le);
            write_sample(out, f, "_bucket", c, le, (double)cumulative);
        }
        write_sample(out, f, "_bucket", c, "+Inf", (double)c->count);
        write_sample(out, f, "_sum", c, NULL, c->sum);
        write_sample(out, f, "_count", c, NULL, (double)c->count);
    }
}

char *metrics_render(struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->len; i++)
        write_family(out, m->families[i]);
    pthread_mutex_unlock(&m->lock);
    int failed = ferror(out);
    if (fclose(out) != 0 || failed) {
        free(text);
        return NULL;
    }
    return text;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->len; i++)
        free_metric(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
