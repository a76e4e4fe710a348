/* The whole pipeline as real processes, for tests that drive it from
 * outside (cmocka; header-only like pipeline_helpers.h): dev broker, Twilio
 * emulator, ingress (whose PUBLIC_BASE_URL is its own address, so the
 * emulator's signed webhooks reach it), and one room, stream and sync
 * worker with VIEWERS_MAP_CAP=20 and COUNT_INTERVAL_MS=200. */
#ifndef STAGEHAND_FULL_STACK_H
#define STAGEHAND_FULL_STACK_H

#include "pipeline_helpers.h"

#define ROLES 3

/* The log level every process of the stack gets (a test may raise it). */
static const char *full_stack_log_level = "LOG_LEVEL=warn";
/* More settings a test may give before setup ("NAME=value" or NULL): one
 * for every process (e.g. AUTH_MODE=jwt), one more for the ingress. */
static const char *full_stack_env = NULL;
static const char *full_stack_ingress_env = NULL;
static const char *const roles[ROLES] = {"room", "stream", "sync"};

struct fixture {
    struct pipeline p;
    struct emulator_process emu;
    struct process workers[ROLES];
    int metrics_ports[ROLES];
    char public_env[96], port_env[32];
    struct kafka_producer *producer;
};

static inline void start_worker(struct fixture *f, int i)
{
    char err[256];
    const char *env[] = {f->public_env, "VIEWERS_MAP_CAP=20", "COUNT_INTERVAL_MS=200", full_stack_log_level,
                         full_stack_env, NULL};
    f->metrics_ports[i] = stack_start_worker(&f->p.s, roles[i], f->emu.base_url, env, &f->workers[i], err, sizeof err);
    if (f->metrics_ports[i] < 0)
        fail_msg("%s", err);
}

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    int port = process_free_port();
    assert_true(port > 0);
    snprintf(f->public_env, sizeof f->public_env, "PUBLIC_BASE_URL=http://127.0.0.1:%d", port);
    snprintf(f->port_env, sizeof f->port_env, "INGRESS_PORT=%d", port);
    const char *ingress_env[] = {f->public_env, f->port_env, "CREATE_WAIT_MS=20000", "PRODUCE_TIMEOUT_MS=1000",
                                 "RATE_LIMIT_IP_PER_S=0", "RATE_LIMIT_IDENTITY_PER_S=0", full_stack_log_level,
                                 full_stack_env ? full_stack_env : full_stack_ingress_env,
                                 full_stack_env ? full_stack_ingress_env : NULL, NULL};
    if (stack_start_broker(&f->p.s, err, sizeof err) < 0 ||
        stack_start_ingress(&f->p.s, ingress_env, err, sizeof err) < 0 ||
        emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->p.emu_client = emulator_client(&f->emu, err, sizeof err);
    assert_non_null(f->p.emu_client);
    for (int i = 0; i < ROLES; i++)
        start_worker(f, i);
    struct kafka_producer_options popt = {.brokers = f->p.s.brokers};
    f->producer = kafka_producer_new(&popt, err, sizeof err);
    if (!f->producer)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *f = *state;
    kafka_producer_close(f->producer, 5000);
    int status[ROLES];
    for (int i = 0; i < ROLES; i++)
        status[i] = process_stop(&f->workers[i], 20000);
    twilio_client_free(f->p.emu_client);
    int emulator_status = emulator_stop(&f->emu);
    int ingress_status = stack_stop_ingress(&f->p.s);
    int broker_status = stack_stop(&f->p.s);
    free(f);
    for (int i = 0; i < ROLES; i++)
        assert_int_equal(status[i], 0);
    assert_int_equal(emulator_status, 0);
    assert_int_equal(ingress_status, 0);
    assert_int_equal(broker_status, 0); /* the dev broker too: a clean stop, no leak */
    return 0;
}

static inline long api(struct fixture *f, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->p.s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    if (status == 503 && !r.retry_after[0])
        status = -503; /* a 503 must say when to come back */
    http_reply_free(&r);
    return status;
}

#endif
