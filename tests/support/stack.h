/* Test support: the dev broker and the ingress as real processes on free
 * ports, a small HTTP client (libcurl), and the test credentials. No cmocka
 * here; errors come back as text. */
#ifndef STAGEHAND_TEST_STACK_H
#define STAGEHAND_TEST_STACK_H

#include <stddef.h>

#include "process.h"

#define TEST_PASSCODE "424242"
#define TEST_PUBLIC_BASE_URL "https://stagehand.example.test"

struct stack {
    char dir[64];           /* scratch directory for outputs */
    struct process broker;
    char brokers[128];      /* bootstrap.servers */
    struct process ingress;
    char ingress_url[64];   /* http://127.0.0.1:PORT */
    int ingress_serial;
    int worker_serial;
};

/* Makes the scratch directory and starts the dev broker (3 partitions).
 * Returns 0, or -1 with err. */
int stack_start_broker(struct stack *s, char *err, size_t errlen);

/* Starts the ingress on a free port with the test credentials, the
 * broker, PASSCODE, PUBLIC_BASE_URL and short waits, then env_extra
 * ("NAME=value", NULL-terminated, may be NULL; later entries win), and
 * waits up to 30 s for /readyz to say ready. Returns 0, or -1 with err. */
int stack_start_ingress(struct stack *s, const char *const env_extra[], char *err, size_t errlen);

/* Starts a worker of role ("room", ...) against the broker and the Twilio
 * base URL (the emulator), with the test credentials, short session and
 * retry timings, then env_extra. Returns its metrics port, or -1 with err. */
int stack_start_worker(struct stack *s, const char *role, const char *twilio_base,
                       const char *const env_extra[], struct process *p, char *err, size_t errlen);

/* SIGTERM to the ingress; its exit status (0 when it stopped cleanly). */
int stack_stop_ingress(struct stack *s);

/* Stops whatever runs and removes the scratch directory (kept, and named
 * on stderr, when STAGEHAND_KEEP_LOGS is set). Returns the dev broker's exit
 * status: 0 when it stopped cleanly (under the sanitizers, also: no leak). */
int stack_stop(struct stack *s);

struct http_reply {
    long status;            /* 0 when there was no HTTP answer */
    char *body;             /* NUL-terminated, "" when empty */
    char retry_after[32];   /* the header's value, or "" */
    char location[256];
    char content_type[128];
};

/* One request. headers: NULL-terminated "Name: value" strings, or NULL.
 * body may be NULL. Returns 0 (see out->status), or -1 when curl failed
 * before any answer (out->status 0). */
int http_call(const char *method, const char *url, const char *const headers[], const char *body,
              size_t body_len, struct http_reply *out);

void http_reply_free(struct http_reply *r);

#endif
