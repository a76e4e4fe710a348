/* The one fixture of the integration tests (cmocka): whichever part of the
 * stack a test needs, as real processes, started by fixture_setup from a
 * struct fixture_options and stopped by fixture_teardown, which fails the
 * test unless every process exited cleanly (under the sanitizers: no leak).
 *
 *   broker     the dev broker, or this test's own topics on real Kafka
 *              (see stack.h)
 *   ingress    on a free port; FIXTURE_INGRESS_PUBLIC makes that port its
 *              PUBLIC_BASE_URL too (and the workers'), so the emulator's
 *              signed webhooks reach it
 *   emulator   the Twilio emulator and a REST client for it
 *   workers    room, stream and sync workers, in the order given, against
 *              the emulator (or twilio_base)
 *   events     a reader of the events topic from its beginning
 *   producer   a producer for events and state records the test writes
 *
 * Processes start in that order and stop in the reverse order. Settings
 * reach a process in this order, a later one winning: the stack's defaults
 * (stack.c), PUBLIC_BASE_URL and INGRESS_PORT (public ingress), the
 * process's own list (ingress_env, a worker's env), then env (every
 * process). The helpers that read and drive the stack are in
 * ingress_helpers.h (the ingress alone) and pipeline_helpers.h (the
 * emulator and the workers). */
#ifndef STAGEHAND_TEST_FIXTURE_H
#define STAGEHAND_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "emulator_process.h"
#include "kafka.h"
#include "stack.h"

#define FIXTURE_WORKERS_MAX 4
#define FIXTURE_PARTITIONS_MAX 64

enum fixture_ingress {
    FIXTURE_NO_INGRESS = 0,
    FIXTURE_INGRESS,        /* on a free port of its own choosing */
    FIXTURE_INGRESS_PUBLIC, /* on a known port that is also PUBLIC_BASE_URL */
};

enum fixture_reader {
    FIXTURE_NO_READER = 0,
    FIXTURE_READER,      /* librdkafka's defaults */
    FIXTURE_READER_FAST, /* fetch.wait.max.ms=20: the dev broker holds an empty
                            fetch for 500 ms even when an event arrives */
};

struct fixture_worker {
    const char *role;       /* "room", "stream" or "sync"; NULL ends the list */
    const char *const *env; /* its own settings ("NAME=value", NULL-terminated), or NULL */
};

struct fixture_options {
    int broker;                       /* 1: start the broker (everything but the emulator needs it) */
    const char *const *state_configs; /* more configs of the state topic on real Kafka, or NULL */
    enum fixture_ingress ingress;
    const char *const *ingress_env;   /* the ingress's own settings, or NULL */
    int emulator;                     /* 1: the Twilio emulator and f->emu_client */
    const char *const *emulator_args; /* its extra arguments, or NULL */
    struct fixture_worker workers[FIXTURE_WORKERS_MAX];
    int workers_later;       /* 1: setup starts none; the test calls fixture_start_worker */
    const char *twilio_base; /* the workers' Twilio without the emulator */
    const char *const *env;  /* settings of the ingress and every worker, or NULL */
    enum fixture_reader events;
    int producer;                   /* 1: f->producer */
    kafka_delivery_cb *on_delivery; /* the producer's, or NULL */
    int unchecked_exit;             /* 1: teardown does not check exit statuses */
};

struct fixture {
    struct fixture_options options; /* what setup was given */
    struct stack s;
    struct emulator_process emu;
    struct twilio_client *emu_client;
    struct process workers[FIXTURE_WORKERS_MAX]; /* as options.workers */
    int metrics_port[FIXTURE_WORKERS_MAX];       /* each worker's, -1 when not running */
    char public_url[64];                         /* the public ingress's http://127.0.0.1:PORT */
    struct kafka_reader *events;
    int partitions;                          /* of the events topic, with a reader */
    int64_t read_to[FIXTURE_PARTITIONS_MAX]; /* per partition: the next offset the reader gives */
    struct kafka_producer *producer;
    /* For the helpers, set by the test: */
    const char *auth;   /* Authorization header of wait_stream_status; NULL: the passcode */
    const char *stream; /* the stream the Sync and room helpers look at ("friday") */
    char service[40];   /* free for a test that needs one Sync service SID */
    /* Internal: */
    char public_env[96], port_env[32];
    int broker_started, ingress_started, emulator_started, worker_started[FIXTURE_WORKERS_MAX];
};

/* cmocka setup: starts what o asks for (o is copied; its lists must live
 * as long as the test) and puts the fixture in *state. Fails the test when
 * anything does not start. */
int fixture_setup(void **state, const struct fixture_options *o);

/* cmocka teardown: stops everything, frees the fixture, then fails the test
 * if a process did not exit with status 0 (unless options.unchecked_exit). */
int fixture_teardown(void **state);

/* The common setups. The broker and the ingress started with env (may be
 * NULL), a fast reader of the events topic and a producer: */
int fixture_setup_ingress(void **state, const char *const env[]);
/* The Twilio emulator alone, with a client: */
int fixture_setup_emulator(void **state);

/* Starts worker i of options.workers (stopped, or never started) with env
 * as its own settings instead of the options' (NULL: none); fails the test
 * when it does not start. fixture_restart_worker: with the options' own. */
void fixture_start_worker(struct fixture *f, int i, const char *const env[]);
void fixture_restart_worker(struct fixture *f, int i);

/* The value of one sample of worker i's metrics (-1 when absent). */
double metric(struct fixture *f, int i, const char *sample);
/* Waits up to 20 s until worker i's sample is at least at_least. */
void wait_metric(struct fixture *f, int i, const char *sample, double at_least);

#endif
