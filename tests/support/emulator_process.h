/* Test support: run build/twilio-emulator on a free port with test
 * credentials, and know its base URL. No cmocka here. */
#ifndef STAGEHAND_EMULATOR_PROCESS_H
#define STAGEHAND_EMULATOR_PROCESS_H

#include <stddef.h>

#include "process.h"

struct twilio_client;

#define TEST_ACCOUNT_SID "AC11111111111111111111111111111111"
#define TEST_API_KEY_SID "SK22222222222222222222222222222222"
#define TEST_API_KEY_SECRET "emulator-test-secret"
#define TEST_AUTH_TOKEN "emulator-test-auth-token"

struct emulator_process {
    struct process proc;
    char out_path[256];
    char err_path[256];
    char base_url[64]; /* http://127.0.0.1:PORT */
};

/* The environment (NULL-terminated "NAME=value" list) with the test credentials. */
extern const char *const emulator_test_env[];

/* Starts the emulator (STAGEHAND_BUILD/twilio-emulator --port 0, then
 * extra_args, a NULL-terminated list or NULL) and waits up to 10 s for it to
 * print its port. Returns 0, or -1 with err. */
int emulator_start(struct emulator_process *e, const char *const extra_args[], char *err, size_t errlen);

/* A Twilio REST client for the emulator with the test API key, no retries.
 * NULL with err when it cannot be made. */
struct twilio_client *emulator_client(const struct emulator_process *e, char *err, size_t errlen);

/* Stops it with SIGTERM and removes its output files. Returns its exit
 * status (0 for a clean stop), or -1. */
int emulator_stop(struct emulator_process *e);

#endif
