/* Starting and stopping the Twilio emulator for tests (see emulator_process.h). */
#include "emulator_process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twilio.h"

const char *const emulator_test_env[] = {"TWILIO_ACCOUNT_SID=" TEST_ACCOUNT_SID, "TWILIO_API_KEY_SID=" TEST_API_KEY_SID,
                                         "TWILIO_API_KEY_SECRET=" TEST_API_KEY_SECRET,
                                         "TWILIO_AUTH_TOKEN=" TEST_AUTH_TOKEN, NULL};

int emulator_start(struct emulator_process *e, const char *const extra_args[], char *err, size_t errlen)
{
    static int serial;
    char bin[1024];
    memset(e, 0, sizeof *e);
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "twilio-emulator", err, errlen) < 0)
        return -1;
    serial++;
    snprintf(e->out_path, sizeof e->out_path, "/tmp/emulator-%d-%d.out", (int)getpid(), serial);
    snprintf(e->err_path, sizeof e->err_path, "/tmp/emulator-%d-%d.err", (int)getpid(), serial);
    const char *argv[16] = {bin, "--port", "0"};
    size_t argc = 3;
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        if (argc == 15) {
            snprintf(err, errlen, "too many emulator arguments");
            return -1;
        }
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;
    if (process_spawn(&e->proc, argv, emulator_test_env, e->out_path, e->err_path, err, errlen) < 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        char *text = process_read_file(e->out_path, NULL);
        unsigned port = 0;
        int found = text && sscanf(text, "port %u", &port) == 1;
        free(text);
        if (found) {
            snprintf(e->base_url, sizeof e->base_url, "http://127.0.0.1:%u", port);
            return 0;
        }
        usleep(50 * 1000);
    }
    snprintf(err, errlen, "the emulator did not print its port within 10 s (see %s)", e->err_path);
    process_stop(&e->proc, 1000);
    return -1;
}

int emulator_stop(struct emulator_process *e)
{
    int status = process_stop(&e->proc, 5000);
    unlink(e->out_path);
    unlink(e->err_path);
    return status;
}

struct twilio_client *emulator_client(const struct emulator_process *e, char *err, size_t errlen)
{
    struct twilio_options opt = {.account_sid = TEST_ACCOUNT_SID,
                                 .api_key_sid = TEST_API_KEY_SID,
                                 .api_key_secret = TEST_API_KEY_SECRET,
                                 .api_base = e->base_url,
                                 .timeout_ms = 5000,
                                 .max_retries = 0,
                                 .retry_base_ms = 10,
                                 .retry_max_ms = 100};
    return twilio_client_new(&opt, err, errlen);
}
