/* Test support: the dev broker and the ingress as real processes on free
 * ports, a small HTTP client (libcurl), and the test credentials. No cmocka
 * here; errors come back as text.
 *
 * Real Kafka: when STAGEHAND_TEST_KAFKA is set (host:port of a broker that
 * tests/run-tests.sh started for the whole run with tools/kafka/kafka.sh),
 * stack_start_broker starts no dev broker: it creates this stack's own
 * topics on that broker (3 partitions each, the state topic compacted) and
 * a group prefix of its own, and every process the stack starts gets them
 * (KAFKA_TOPIC_*, KAFKA_GROUP_PREFIX), so tests never see each other's
 * events or groups. STAGEHAND_TEST_KAFKA_PID, when set, is the broker's
 * pid, for the tests that freeze it. */
#ifndef STAGEHAND_TEST_STACK_H
#define STAGEHAND_TEST_STACK_H

#include <stddef.h>

#include "process.h"

#define TEST_PASSCODE "424242"
#define TEST_PUBLIC_BASE_URL "https://stagehand.example.test"

struct stack {
    char dir[64];          /* scratch directory for outputs */
    struct process broker; /* the dev broker (pid 0 on real Kafka) */
    char brokers[128];     /* bootstrap.servers */
    int real_kafka;        /* 1: STAGEHAND_TEST_KAFKA's broker, shared by the run */
    int frozen;            /* the real broker is stopped (SIGSTOP) by this stack */
    char topic_events[96]; /* the topics and group prefix of this stack */
    char topic_state[96];
    char topic_dlq[96];
    char group_prefix[96];
    char kafka_env[4][128]; /* the same as "NAME=value", for child processes */
    const char *kafka_envp[5];
    struct process ingress;
    char ingress_url[64]; /* http://127.0.0.1:PORT */
    char metrics_url[64]; /* http://127.0.0.1:PORT of its METRICS_LISTEN */
    int ingress_serial;
    int worker_serial;
};

/* Makes the scratch directory and starts the dev broker (3 partitions), or
 * on real Kafka creates this stack's topics. Returns 0, or -1 with err. */
int stack_start_broker(struct stack *s, char *err, size_t errlen);

/* The same, with more configs of the state topic on real Kafka ("name=value",
 * NULL-terminated; e.g. a small segment.ms to see compaction). */
int stack_start_broker_with(struct stack *s, const char *const state_configs[], char *err, size_t errlen);

/* 1 when the tests run on real Kafka (STAGEHAND_TEST_KAFKA is set). */
int stack_real_kafka(void);

/* KAFKA_TOPIC_EVENTS=..., KAFKA_TOPIC_STATE=..., KAFKA_TOPIC_DLQ=...,
 * KAFKA_GROUP_PREFIX=... of this stack, NULL-terminated, for a process the
 * test starts itself (stagehand-replay, ...). */
const char *const *stack_kafka_env(struct stack *s);

/* Makes the broker unreachable under the clients: stops the dev broker (its
 * exit status is returned), or freezes the shared real broker with SIGSTOP
 * (returns 0; stack_broker_thaw or stack_stop resumes it). -1 when there is
 * no broker to stop (real Kafka without STAGEHAND_TEST_KAFKA_PID). */
int stack_broker_gone(struct stack *s);

/* Freezes (SIGSTOP) or resumes (SIGCONT) the broker. Returns 0, or -1. */
int stack_broker_freeze(struct stack *s);
int stack_broker_thaw(struct stack *s);

/* Starts the ingress on a free port (and its metrics listener on another,
 * in metrics_url) with the test credentials, the
 * broker, PASSCODE, PUBLIC_BASE_URL and short waits, then env_extra
 * ("NAME=value", NULL-terminated, may be NULL; later entries win), and
 * waits up to 30 s for /readyz to say ready. Returns 0, or -1 with err. */
int stack_start_ingress(struct stack *s, const char *const env_extra[], char *err, size_t errlen);

/* Starts a worker of role ("room", ...) against the broker and the Twilio
 * base URL (the emulator), with the test credentials, short session and
 * retry timings, then env_extra. Returns its metrics port, or -1 with err. */
int stack_start_worker(struct stack *s, const char *role, const char *twilio_base, const char *const env_extra[],
                       struct process *p, char *err, size_t errlen);

/* SIGTERM to the ingress; its exit status (0 when it stopped cleanly). */
int stack_stop_ingress(struct stack *s);

/* Stops whatever runs and removes the scratch directory (kept, and named
 * on stderr, when STAGEHAND_KEEP_LOGS is set). Returns the dev broker's exit
 * status: 0 when it stopped cleanly (under the sanitizers, also: no leak). */
int stack_stop(struct stack *s);

struct http_reply {
    long status;          /* 0 when there was no HTTP answer */
    char *body;           /* NUL-terminated, "" when empty */
    char retry_after[32]; /* the header's value, or "" */
    char location[256];
    char content_type[128];
};

/* One request. headers: NULL-terminated "Name: value" strings, or NULL.
 * body may be NULL. Returns 0 (see out->status), or -1 when curl failed
 * before any answer (out->status 0). */
int http_call(const char *method, const char *url, const char *const headers[], const char *body, size_t body_len,
              struct http_reply *out);

void http_reply_free(struct http_reply *r);

#endif
