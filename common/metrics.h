/* Counters, gauges and histograms, rendered in the Prometheus text
 * exposition format (version 0.0.4) for GET /metrics.
 *
 * A metric is a family: a name, a help line and label names fixed at
 * creation. Its children (one per combination of label values) are created
 * on first use. Families, and children within a family, render in creation
 * order; a family without labels renders its single sample (0) from the
 * start. A registry is thread-safe: one mutex guards it and its metrics.
 *
 *   static const char *const labels[] = {"route", "status"};
 *   struct metric *req = metrics_counter(m, "http_requests_total",
 *                                        "HTTP requests handled.", 2, labels);
 *   metrics_add(req, (const char *const[]){"/v1/streams", "201"}, 1);
 */
#ifndef STAGEHAND_METRICS_H
#define STAGEHAND_METRICS_H

#include <stddef.h>

/* Bucket upper bounds for request latencies, in seconds: 0.0005 .. 10. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_buckets_count;

struct metrics;
struct metric;

/* A new empty registry, or NULL when out of memory. */
struct metrics *metrics_new(void);

/* Creates a family. The name must match [a-zA-Z_:][a-zA-Z0-9_:]* and not be
 * taken (also by a histogram's _bucket, _sum and _count series); label
 * names must match [a-zA-Z_][a-zA-Z0-9_]*, not start with "__" and not
 * repeat; help must be UTF-8. Returns the family (owned by the registry),
 * or NULL when anything is invalid or out of memory. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, size_t nlabels,
                               const char *const *label_names);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, size_t nlabels,
                             const char *const *label_names);

/* Same for a histogram, whose label names may not include "le". The upper
 * bounds must be finite and strictly increasing (nbounds may be 0); the
 * +Inf bucket is implicit. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, size_t nlabels,
                                 const char *const *label_names, const double *upper_bounds, size_t nbounds);

/* The operations below take one value per label name, in the family's
 * order (UTF-8, not NULL; label_values may be NULL when there are no
 * labels). Each returns 0, or -1 and changes nothing on a wrong metric
 * type, an invalid label value, a refused number or out of memory. */

/* Counter: adds delta, which must be finite and >= 0. */
int metrics_add(struct metric *metric, const char *const *label_values, double delta);

/* One series of a counter, its label values fixed: a handle for a hot path,
 * which then adds to it without looking it up by its values each time
 * (the series is created, and renders, as metrics_add would create it).
 * NULL on a wrong metric type, an invalid label value or out of memory.
 * Owned by the registry: valid until metrics_free. */
struct metric_series;
struct metric_series *metrics_counter_series(struct metric *metric, const char *const *label_values);

/* Adds delta (finite, >= 0) to the series: 0, or -1 and nothing changed. */
int metrics_series_add(struct metric_series *series, double delta);

/* Gauge: sets the value (any double, including NaN and infinities). */
int metrics_set(struct metric *metric, const char *const *label_values, double value);

/* Gauge: adds delta (may be negative). */
int metrics_gauge_add(struct metric *metric, const char *const *label_values, double delta);

/* Histogram: records one observation (not NaN). */
int metrics_observe(struct metric *metric, const char *const *label_values, double value);

/* The whole registry as text/plain; version=0.0.4 (malloc'd, NULL when out
 * of memory). */
char *metrics_render(struct metrics *m);

/* Frees the registry and every metric it created. */
void metrics_free(struct metrics *m);

#endif
