/* A client written against Twilio's documented API works against the
 * emulator unchanged: Twilio's own Python helper library (python3-twilio)
 * drives Video, Media and Sync there, and checks every webhook it receives
 * with its own RequestValidator (tests/helpers/twilio_library_check.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../support/emulator_process.h"

static void test_twilio_python_library(void **state)
{
    (void)state;
    struct emulator_process e;
    char err[256], script[512], out_path[64];
    if (emulator_start(&e, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (process_path_from_env(script, sizeof script, "STAGEHAND_ROOT", "tests/helpers/twilio_library_check.py", err,
                              sizeof err) < 0)
        fail_msg("%s", err);
    snprintf(out_path, sizeof out_path, "/tmp/stagehand-twilio-lib-%d.out", (int)getpid());

    const char *argv[] = {"/usr/bin/python3", script, e.base_url, NULL};
    struct process py;
    if (process_spawn(&py, argv, emulator_test_env, out_path, out_path, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (process_wait(&py, 120 * 1000) < 0) {
        process_stop(&py, 1000);
        fail_msg("the library check did not finish in 120 s");
    }
    char *output = process_read_file(out_path, NULL);
    unlink(out_path);
    if (py.status != 0)
        fail_msg("Twilio's library disagreed with the emulator (is python3-twilio installed?):\n%s",
                 output ? output : "(no output)");
    free(output);
    assert_int_equal(emulator_stop(&e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_python_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
