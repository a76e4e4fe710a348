/* Unit tests for common/metrics: exact Prometheus text, escaping, name
 * rules, refused updates, series handles and concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

static void assert_render(struct metrics *m, const char *expected)
{
    char *text = metrics_render(m);
    assert_non_null(text);
    assert_string_equal(text, expected);
    free(text);
}

static void test_counter_with_labels(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    assert_non_null(m);
    struct metric *c = metrics_counter(m, "http_requests_total", "HTTP requests handled.", 2, V("route", "status"));
    assert_non_null(c);
    /* A family with labels and no child yet renders only its header. */
    assert_render(m, "# HELP http_requests_total HTTP requests handled.\n"
                     "# TYPE http_requests_total counter\n");

    assert_int_equal(metrics_add(c, V("/v1/streams", "201"), 1), 0);
    assert_int_equal(metrics_add(c, V("/v1/streams", "400"), 1), 0);
    assert_int_equal(metrics_add(c, V("/v1/streams", "201"), 2), 0);
    assert_int_equal(metrics_add(c, V("/healthz", "200"), 0.5), 0);
    assert_render(m, "# HELP http_requests_total HTTP requests handled.\n"
                     "# TYPE http_requests_total counter\n"
                     "http_requests_total{route=\"/v1/streams\",status=\"201\"} 3\n"
                     "http_requests_total{route=\"/v1/streams\",status=\"400\"} 1\n"
                     "http_requests_total{route=\"/healthz\",status=\"200\"} 0.5\n");
    metrics_free(m);
}

/* A series handle adds to the same series as metrics_add with its values,
 * stays valid while the family grows past many more series, and refuses
 * what metrics_add refuses. */
static void test_series_handles(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    assert_non_null(m);
    struct metric *c = metrics_counter(m, "events_total", "Events.", 2, V("type", "outcome"));
    struct metric *g = metrics_gauge(m, "depth", "Depth.", 0, NULL);
    assert_non_null(c);
    assert_non_null(g);
    struct metric_series *applied = metrics_counter_series(c, V("hand.raised", "applied"));
    assert_non_null(applied);
    assert_ptr_equal(metrics_counter_series(c, V("hand.raised", "applied")), applied);
    assert_int_equal(metrics_series_add(applied, 2), 0);
    assert_int_equal(metrics_add(c, V("hand.raised", "applied"), 1), 0);
    char type[32];
    for (int i = 0; i < 40; i++) { /* the family's table of series grows several times */
        snprintf(type, sizeof type, "t%d", i);
        assert_int_equal(metrics_add(c, V(type, "folded"), 1), 0);
    }
    assert_int_equal(metrics_series_add(applied, 4), 0);
    assert_int_equal(metrics_series_add(applied, -1), -1);
    assert_int_equal(metrics_series_add(applied, NAN), -1);
    assert_int_equal(metrics_series_add(NULL, 1), -1);
    assert_null(metrics_counter_series(g, NULL));              /* not a counter */
    assert_null(metrics_counter_series(c, V("bad\xff", "x"))); /* not UTF-8 */
    assert_null(metrics_counter_series(c, NULL));
    char *text = metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "events_total{type=\"hand.raised\",outcome=\"applied\"} 7\n"));
    assert_non_null(strstr(text, "events_total{type=\"t39\",outcome=\"folded\"} 1\n"));
    free(text);
    metrics_free(m);
}

static void test_gauge_and_order(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *inflight = metrics_gauge(m, "http_inflight", "Requests in flight.", 0, NULL);
    struct metric *lag = metrics_gauge(m, "consumer_lag", "Messages behind.", 1, V("topic"));
    struct metric *ops = metrics_counter(m, "ops_total", "Operations.", 0, NULL);
    assert_non_null(inflight);
    assert_non_null(lag);
    assert_non_null(ops);
    /* Families without labels render 0 from the start. */
    assert_render(m, "# HELP http_inflight Requests in flight.\n"
                     "# TYPE http_inflight gauge\n"
                     "http_inflight 0\n"
                     "# HELP consumer_lag Messages behind.\n"
                     "# TYPE consumer_lag gauge\n"
                     "# HELP ops_total Operations.\n"
                     "# TYPE ops_total counter\n"
                     "ops_total 0\n");

    assert_int_equal(metrics_gauge_add(inflight, NULL, 3), 0);
    assert_int_equal(metrics_gauge_add(inflight, NULL, -1), 0);
    assert_int_equal(metrics_set(lag, V("stagehand.events"), 12345678), 0);
    assert_int_equal(metrics_set(lag, V("stagehand.dlq"), -2.25), 0);
    assert_int_equal(metrics_set(lag, V("stagehand.events"), 17), 0);
    assert_int_equal(metrics_add(ops, NULL, 1), 0);
    assert_render(m, "# HELP http_inflight Requests in flight.\n"
                     "# TYPE http_inflight gauge\n"
                     "http_inflight 2\n"
                     "# HELP consumer_lag Messages behind.\n"
                     "# TYPE consumer_lag gauge\n"
                     "consumer_lag{topic=\"stagehand.events\"} 17\n"
                     "consumer_lag{topic=\"stagehand.dlq\"} -2.25\n"
                     "# HELP ops_total Operations.\n"
                     "# TYPE ops_total counter\n"
                     "ops_total 1\n");
    metrics_free(m);
}

static void test_number_formats(void **state)
{
    (void)state;
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-7, "-7"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789012345, "123456789012345"},
        {1e20, "1e+20"},
        {2.5e-7, "2.5e-07"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct metrics *m = metrics_new();
        struct metric *g = metrics_gauge(m, "g", "h", 0, NULL);
        assert_int_equal(metrics_set(g, NULL, cases[i].value), 0);
        char expected[128];
        snprintf(expected, sizeof expected, "# HELP g h\n# TYPE g gauge\ng %s\n", cases[i].text);
        assert_render(m, expected);
        metrics_free(m);
    }
}

static void test_histogram(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double bounds[] = {0.1, 0.5, 1};
    struct metric *h = metrics_histogram(m, "request_seconds", "Request latency.", 1, V("route"), bounds, 3);
    assert_non_null(h);
    static const double observations[] = {0.05, 0.1, 0.3, 0.7, 2, 0.5};
    for (size_t i = 0; i < sizeof observations / sizeof observations[0]; i++)
        assert_int_equal(metrics_observe(h, V("/v1/streams"), observations[i]), 0);
    assert_int_equal(metrics_observe(h, V("/healthz"), 0.25), 0);
    assert_render(m, "# HELP request_seconds Request latency.\n"
                     "# TYPE request_seconds histogram\n"
                     "request_seconds_bucket{route=\"/v1/streams\",le=\"0.1\"} 2\n"
                     "request_seconds_bucket{route=\"/v1/streams\",le=\"0.5\"} 4\n"
                     "request_seconds_bucket{route=\"/v1/streams\",le=\"1\"} 5\n"
                     "request_seconds_bucket{route=\"/v1/streams\",le=\"+Inf\"} 6\n"
                     "request_seconds_sum{route=\"/v1/streams\"} 3.65\n"
                     "request_seconds_count{route=\"/v1/streams\"} 6\n"
                     "request_seconds_bucket{route=\"/healthz\",le=\"0.1\"} 0\n"
                     "request_seconds_bucket{route=\"/healthz\",le=\"0.5\"} 1\n"
                     "request_seconds_bucket{route=\"/healthz\",le=\"1\"} 1\n"
                     "request_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1\n"
                     "request_seconds_sum{route=\"/healthz\"} 0.25\n"
                     "request_seconds_count{route=\"/healthz\"} 1\n");
    metrics_free(m);
}

static void test_histogram_without_labels_and_default_buckets(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *h = metrics_histogram(m, "t_seconds", "T.", 0, NULL, metrics_latency_buckets,
                                         metrics_latency_buckets_count);
    assert_non_null(h);
    assert_int_equal(metrics_observe(h, NULL, 0.003), 0);
    assert_int_equal(metrics_observe(h, NULL, 30), 0);
    assert_render(m, "# HELP t_seconds T.\n"
                     "# TYPE t_seconds histogram\n"
                     "t_seconds_bucket{le=\"0.0005\"} 0\n"
                     "t_seconds_bucket{le=\"0.001\"} 0\n"
                     "t_seconds_bucket{le=\"0.0025\"} 0\n"
                     "t_seconds_bucket{le=\"0.005\"} 1\n"
                     "t_seconds_bucket{le=\"0.01\"} 1\n"
                     "t_seconds_bucket{le=\"0.025\"} 1\n"
                     "t_seconds_bucket{le=\"0.05\"} 1\n"
                     "t_seconds_bucket{le=\"0.1\"} 1\n"
                     "t_seconds_bucket{le=\"0.25\"} 1\n"
                     "t_seconds_bucket{le=\"0.5\"} 1\n"
                     "t_seconds_bucket{le=\"1\"} 1\n"
                     "t_seconds_bucket{le=\"2.5\"} 1\n"
                     "t_seconds_bucket{le=\"5\"} 1\n"
                     "t_seconds_bucket{le=\"10\"} 1\n"
                     "t_seconds_bucket{le=\"+Inf\"} 2\n"
                     "t_seconds_sum 30.003\n"
                     "t_seconds_count 2\n");

    /* No bounds at all: only the +Inf bucket. */
    struct metric *only = metrics_histogram(m, "only_inf", "x", 0, NULL, NULL, 0);
    assert_non_null(only);
    assert_int_equal(metrics_observe(only, NULL, -4), 0);
    char *text = metrics_render(m);
    assert_non_null(strstr(text, "# TYPE only_inf histogram\n"
                                 "only_inf_bucket{le=\"+Inf\"} 1\n"
                                 "only_inf_sum -4\n"
                                 "only_inf_count 1\n"));
    free(text);
    metrics_free(m);
}

static void test_escaping(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "esc_total", "Back\\slash and\nnewline \"kept\".", 1, V("v"));
    assert_non_null(c);
    assert_int_equal(metrics_add(c, V("a\\b \"q\"\nz"), 1), 0);
    assert_int_equal(metrics_add(c, V("caf\xc3\xa9 \xf0\x9f\x8e\xac"), 1), 0);
    assert_int_equal(metrics_add(c, V(""), 1), 0);
    assert_render(m, "# HELP esc_total Back\\\\slash and\\nnewline \"kept\".\n"
                     "# TYPE esc_total counter\n"
                     "esc_total{v=\"a\\\\b \\\"q\\\"\\nz\"} 1\n"
                     "esc_total{v=\"caf\xc3\xa9 \xf0\x9f\x8e\xac\"} 1\n"
                     "esc_total{v=\"\"} 1\n");
    metrics_free(m);
}

static void test_invalid_names(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double bounds[] = {1, 2};

    assert_null(metrics_counter(m, "", "h", 0, NULL));
    assert_null(metrics_counter(m, NULL, "h", 0, NULL));
    assert_null(metrics_counter(m, "1abc", "h", 0, NULL));
    assert_null(metrics_counter(m, "a-b", "h", 0, NULL));
    assert_null(metrics_counter(m, "a b", "h", 0, NULL));
    assert_null(metrics_counter(m, "caf\xc3\xa9", "h", 0, NULL));
    assert_null(metrics_counter(m, "ok_total", NULL, 0, NULL));
    assert_null(metrics_counter(m, "ok_total", "bad \xff utf-8", 0, NULL));
    assert_null(metrics_gauge(m, "ok", "h", 1, V("__reserved")));
    assert_null(metrics_gauge(m, "ok", "h", 1, V("a:b")));
    assert_null(metrics_gauge(m, "ok", "h", 1, V("9x")));
    assert_null(metrics_gauge(m, "ok", "h", 1, V("")));
    assert_null(metrics_gauge(m, "ok", "h", 2, V("same", "same")));
    assert_null(metrics_gauge(m, "ok", "h", 1, NULL));
    assert_null(metrics_histogram(m, "ok", "h", 1, V("le"), bounds, 2));
    static const double decreasing[] = {2, 1};
    static const double repeated[] = {1, 1};
    static const double not_finite[] = {1, INFINITY};
    assert_null(metrics_histogram(m, "ok", "h", 0, NULL, decreasing, 2));
    assert_null(metrics_histogram(m, "ok", "h", 0, NULL, repeated, 2));
    assert_null(metrics_histogram(m, "ok", "h", 0, NULL, not_finite, 2));
    assert_null(metrics_histogram(m, "ok", "h", 0, NULL, NULL, 2));
    /* Nothing above was registered. */
    assert_render(m, "");

    /* Valid names, including colons and a histogram "le" only forbidden there. */
    assert_non_null(metrics_counter(m, "ns:sub_total", "h", 1, V("le")));
    assert_non_null(metrics_gauge(m, "_under", "h", 1, V("_x1")));
    assert_non_null(metrics_histogram(m, "lat", "h", 0, NULL, bounds, 2));

    /* Taken names, including a histogram's series. */
    assert_null(metrics_gauge(m, "_under", "h", 0, NULL));
    assert_null(metrics_counter(m, "lat_count", "h", 0, NULL));
    assert_null(metrics_gauge(m, "lat_bucket", "h", 0, NULL));
    assert_null(metrics_histogram(m, "lat", "h", 0, NULL, bounds, 2));
    assert_non_null(metrics_counter(m, "x_sum", "h", 0, NULL));
    assert_null(metrics_histogram(m, "x", "h", 0, NULL, bounds, 2));
    assert_non_null(metrics_histogram(m, "x_total", "h", 0, NULL, bounds, 2));
    metrics_free(m);
}

static void test_refused_updates(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "c_total", "h", 1, V("k"));
    struct metric *g = metrics_gauge(m, "g", "h", 0, NULL);
    static const double bounds[] = {1};
    struct metric *h = metrics_histogram(m, "h", "h", 0, NULL, bounds, 1);

    assert_int_equal(metrics_add(c, V("a"), 5), 0);
    assert_int_equal(metrics_add(c, V("a"), -1), -1);
    assert_int_equal(metrics_add(c, V("a"), NAN), -1);
    assert_int_equal(metrics_add(c, V("a"), INFINITY), -1);
    assert_int_equal(metrics_add(c, NULL, 1), -1);
    assert_int_equal(metrics_add(c, V((const char *)NULL), 1), -1);
    assert_int_equal(metrics_add(c, V("bad \xc3"), 1), -1);
    assert_int_equal(metrics_add(NULL, V("a"), 1), -1);
    /* Wrong operation for the type. */
    assert_int_equal(metrics_set(c, V("a"), 1), -1);
    assert_int_equal(metrics_observe(c, V("a"), 1), -1);
    assert_int_equal(metrics_add(g, NULL, 1), -1);
    assert_int_equal(metrics_observe(g, NULL, 1), -1);
    assert_int_equal(metrics_set(h, NULL, 1), -1);
    assert_int_equal(metrics_gauge_add(h, NULL, 1), -1);
    assert_int_equal(metrics_observe(h, NULL, NAN), -1);

    assert_render(m, "# HELP c_total h\n"
                     "# TYPE c_total counter\n"
                     "c_total{k=\"a\"} 5\n"
                     "# HELP g h\n"
                     "# TYPE g gauge\n"
                     "g 0\n"
                     "# HELP h h\n"
                     "# TYPE h histogram\n"
                     "h_bucket{le=\"1\"} 0\n"
                     "h_bucket{le=\"+Inf\"} 0\n"
                     "h_sum 0\n"
                     "h_count 0\n");
    metrics_free(m);
}

#define THREADS 4
#define ADDS_PER_THREAD 100000

struct worker {
    struct metric *counter;
    struct metric *labelled;
    struct metric *histogram;
    int failures;
};

static void *add_many(void *arg)
{
    struct worker *w = arg;
    static const char *const routes[] = {"a", "b", "c"};
    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        if (metrics_add(w->counter, NULL, 1) != 0)
            w->failures++;
        if (metrics_add(w->labelled, V(routes[i % 3]), 1) != 0)
            w->failures++;
        if (metrics_observe(w->histogram, NULL, (i % 2) ? 0.5 : 2) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double bounds[] = {1};
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    struct metric *counter = metrics_counter(m, "n_total", "h", 0, NULL);
    struct metric *labelled = metrics_counter(m, "l_total", "h", 1, V("r"));
    struct metric *histogram = metrics_histogram(m, "o", "h", 0, NULL, bounds, 1);
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){counter, labelled, histogram, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, add_many, &workers[i]), 0);
    }
    /* Rendering while others write must be safe too. */
    for (int i = 0; i < 20; i++)
        free(metrics_render(m));
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].failures, 0);
    }
    /* 100000 per thread: "a" gets 33334, "b" and "c" 33333 each. */
    assert_render(m, "# HELP n_total h\n"
                     "# TYPE n_total counter\n"
                     "n_total 400000\n"
                     "# HELP l_total h\n"
                     "# TYPE l_total counter\n"
                     "l_total{r=\"a\"} 133336\n"
                     "l_total{r=\"b\"} 133332\n"
                     "l_total{r=\"c\"} 133332\n"
                     "# HELP o h\n"
                     "# TYPE o histogram\n"
                     "o_bucket{le=\"1\"} 200000\n"
                     "o_bucket{le=\"+Inf\"} 400000\n"
                     "o_sum 500000\n"
                     "o_count 400000\n");
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_series_handles),
        cmocka_unit_test(test_gauge_and_order),
        cmocka_unit_test(test_number_formats),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_without_labels_and_default_buckets),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_refused_updates),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
