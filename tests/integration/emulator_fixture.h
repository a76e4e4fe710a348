/* cmocka setup and teardown shared by the emulator's integration tests: a
 * running emulator (stopped cleanly, or the test fails) and a REST client. */
#ifndef STAGEHAND_EMULATOR_FIXTURE_H
#define STAGEHAND_EMULATOR_FIXTURE_H

#include <stdlib.h>

#include "../support/emulator_process.h"
#include "twilio.h"

struct emulator_fixture {
    struct emulator_process emu;
    struct twilio_client *client;
    char service[40]; /* free for tests that need one Sync service */
};

static inline int emulator_fixture_setup(void **state)
{
    struct emulator_fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    if (emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->client = emulator_client(&f->emu, err, sizeof err);
    if (!f->client)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static inline int emulator_fixture_teardown(void **state)
{
    struct emulator_fixture *f = *state;
    twilio_client_free(f->client);
    int status = emulator_stop(&f->emu);
    free(f);
    assert_int_equal(status, 0); /* clean exit on SIGTERM, no leak report */
    return 0;
}

#endif
