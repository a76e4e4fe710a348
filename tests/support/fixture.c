/* The integration tests' fixture: setup, teardown and worker restarts
 * (see fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "kv.h"
#include "twilio.h"

#define ENV_MAX 64

/* Appends the NULL-terminated list to env (n entries so far); returns the new n. */
static size_t append_env(const char **env, size_t n, const char *const list[])
{
    for (size_t i = 0; list && list[i] && n < ENV_MAX - 1; i++)
        env[n++] = list[i];
    env[n] = NULL;
    return n;
}

/* [PUBLIC_BASE_URL], own, then the options' env for every process. */
static void process_env(const struct fixture *f, const char **env, const char *const own[])
{
    size_t n = 0;
    env[0] = NULL;
    if (f->options.ingress == FIXTURE_INGRESS_PUBLIC)
        env[n++] = f->public_env;
    n = append_env(env, n, own);
    append_env(env, n, f->options.env);
}

static void start_ingress(struct fixture *f)
{
    const char *env[ENV_MAX];
    char err[256];
    size_t n = 0;
    if (f->options.ingress == FIXTURE_INGRESS_PUBLIC) {
        int port = process_free_port();
        assert_true(port > 0);
        snprintf(f->public_url, sizeof f->public_url, "http://127.0.0.1:%d", port);
        snprintf(f->public_env, sizeof f->public_env, "PUBLIC_BASE_URL=%s", f->public_url);
        snprintf(f->port_env, sizeof f->port_env, "INGRESS_PORT=%d", port);
        env[n++] = f->public_env;
        env[n++] = f->port_env;
    }
    n = append_env(env, n, f->options.ingress_env);
    append_env(env, n, f->options.env);
    f->ingress_started = 1;
    if (stack_start_ingress(&f->s, env, err, sizeof err) < 0)
        fail_msg("%s", err);
}

void fixture_start_worker(struct fixture *f, int i, const char *const own[])
{
    const char *env[ENV_MAX];
    char err[256];
    assert_true(i >= 0 && i < FIXTURE_WORKERS_MAX && f->options.workers[i].role);
    process_env(f, env, own);
    const char *base = f->options.emulator ? f->emu.base_url : f->options.twilio_base;
    assert_non_null(base);
    f->worker_started[i] = 1;
    f->metrics_port[i] = stack_start_worker(&f->s, f->options.workers[i].role, base, env, &f->workers[i], err,
                                            sizeof err);
    if (f->metrics_port[i] < 0)
        fail_msg("%s", err);
}

void fixture_restart_worker(struct fixture *f, int i)
{
    fixture_start_worker(f, i, f->options.workers[i].env);
}

static void open_events(struct fixture *f)
{
    char err[256];
    struct kv_list props;
    kv_init(&props);
    if (f->options.events == FIXTURE_READER_FAST)
        assert_int_equal(kv_add(&props, "fetch.wait.max.ms", "20"), 0);
    struct kafka_reader_options ropt = {.brokers = f->s.brokers,
                                        .topic = f->s.topic_events,
                                        .properties = f->options.events == FIXTURE_READER_FAST ? &props : NULL};
    f->events = kafka_reader_new(&ropt, err, sizeof err);
    kv_free(&props);
    if (!f->events)
        fail_msg("%s", err);
    f->partitions = kafka_reader_partition_count(f->events);
    assert_true(f->partitions > 0 && f->partitions <= FIXTURE_PARTITIONS_MAX);
}

int fixture_setup(void **state, const struct fixture_options *o)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    f->options = *o;
    f->stream = "friday";
    for (int i = 0; i < FIXTURE_WORKERS_MAX; i++)
        f->metrics_port[i] = -1;
    *state = f; /* teardown stops whatever started, even after a failure here */
    if (o->broker) {
        f->broker_started = 1;
        int rc = o->state_configs ? stack_start_broker_with(&f->s, o->state_configs, err, sizeof err)
                                  : stack_start_broker(&f->s, err, sizeof err);
        if (rc < 0)
            fail_msg("%s", err);
    }
    if (o->ingress != FIXTURE_NO_INGRESS)
        start_ingress(f);
    if (o->emulator) {
        f->emulator_started = 1;
        if (emulator_start(&f->emu, o->emulator_args, err, sizeof err) < 0)
            fail_msg("%s", err);
        f->emu_client = emulator_client(&f->emu, err, sizeof err);
        if (!f->emu_client)
            fail_msg("%s", err);
    }
    for (int i = 0; i < FIXTURE_WORKERS_MAX && o->workers[i].role && !o->workers_later; i++)
        fixture_restart_worker(f, i);
    if (o->events != FIXTURE_NO_READER)
        open_events(f);
    if (o->producer) {
        struct kafka_producer_options popt = {.brokers = f->s.brokers, .on_delivery = o->on_delivery};
        f->producer = kafka_producer_new(&popt, err, sizeof err);
        if (!f->producer)
            fail_msg("%s", err);
    }
    return 0;
}

int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    if (f->events)
        kafka_reader_close(f->events);
    if (f->producer)
        kafka_producer_close(f->producer, 5000);
    int worker_status[FIXTURE_WORKERS_MAX] = {0};
    for (int i = FIXTURE_WORKERS_MAX - 1; i >= 0; i--)
        if (f->worker_started[i]) /* -1 for one a test stopped and did not start again */
            worker_status[i] = process_stop(&f->workers[i], 20000);
    twilio_client_free(f->emu_client);
    int emulator_status = f->emulator_started ? emulator_stop(&f->emu) : 0;
    int ingress_status = f->ingress_started ? stack_stop_ingress(&f->s) : 0;
    int broker_status = f->broker_started ? stack_stop(&f->s) : 0;
    int checked = !f->options.unchecked_exit;
    free(f);
    *state = NULL;
    if (!checked)
        return 0;
    for (int i = 0; i < FIXTURE_WORKERS_MAX; i++)
        assert_int_equal(worker_status[i], 0);
    assert_int_equal(emulator_status, 0); /* clean exits on SIGTERM, no leak report */
    assert_int_equal(ingress_status, 0);
    assert_int_equal(broker_status, 0); /* the dev broker too */
    return 0;
}

int fixture_setup_ingress(void **state, const char *const env[])
{
    struct fixture_options o = {
        .broker = 1, .ingress = FIXTURE_INGRESS, .ingress_env = env, .events = FIXTURE_READER_FAST, .producer = 1};
    return fixture_setup(state, &o);
}

int fixture_setup_emulator(void **state)
{
    struct fixture_options o = {.emulator = 1};
    return fixture_setup(state, &o);
}

double metric(struct fixture *f, int i, const char *sample)
{
    char url[128], line_start[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port[i]);
    snprintf(line_start, sizeof line_start, "\n%s ", sample); /* a sample line, not its # HELP */
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    const char *at = strstr(r.body, line_start);
    double value = at ? atof(at + strlen(line_start)) : -1;
    http_reply_free(&r);
    return value;
}

void wait_metric(struct fixture *f, int i, const char *sample, double at_least)
{
    for (int n = 0; n < 400; n++) {
        if (metric(f, i, sample) >= at_least)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s never reached %g", sample, at_least);
}
