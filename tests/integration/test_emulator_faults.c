/* Fault injection in the Twilio emulator: 429 bursts, error rates per
 * product, dropped connections, and seeded decisions that repeat exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emulator_fixture.h"


/* POST /_emulator/faults with one setting; returns the HTTP status. */
static long set_fault(struct emulator_fixture *f, const char *name, const char *value)
{
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, name, value);
    struct twilio_result res;
    twilio_request(f->client, TWILIO_VIDEO, "POST", "/_emulator/faults", &form, NULL, &res);
    long status = res.http_status;
    twilio_result_free(&res);
    kv_free(&form);
    return status;
}

static enum twilio_outcome get(struct emulator_fixture *f, enum twilio_product product, const char *path,
                               long *status)
{
    struct twilio_result res;
    twilio_request(f->client, product, "GET", path, NULL, NULL, &res);
    enum twilio_outcome outcome = res.outcome;
    *status = res.http_status;
    twilio_result_free(&res);
    return outcome;
}

static void test_burst_and_error_rates(void **state)
{
    struct emulator_fixture *f = *state;
    long status;
    assert_int_equal(set_fault(f, "Burst429", "2"), 200);
    assert_int_equal(get(f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_RATE_LIMITED);
    assert_int_equal(get(f, TWILIO_SYNC, "/v1/Services", &status), TWILIO_RATE_LIMITED);
    assert_int_equal(get(f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_OK);

    assert_int_equal(set_fault(f, "SyncErrorRate", "1"), 200);
    assert_int_equal(get(f, TWILIO_SYNC, "/v1/Services", &status), TWILIO_RETRYABLE);
    assert_int_equal(status, 500);
    assert_int_equal(get(f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_OK);
    assert_int_equal(get(f, TWILIO_MEDIA, "/v1/PlayerStreamers", &status), TWILIO_OK);
    assert_int_equal(set_fault(f, "SyncErrorRate", "0"), 200);
    assert_int_equal(get(f, TWILIO_SYNC, "/v1/Services", &status), TWILIO_OK);

    assert_int_equal(set_fault(f, "DropRate", "1"), 200);
    assert_int_equal(get(f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_RETRYABLE);
    assert_int_equal(status, 0); /* no HTTP answer at all */
    assert_int_equal(set_fault(f, "DropRate", "0"), 200);

    /* Bad settings are refused and change nothing. */
    assert_int_equal(set_fault(f, "ErrorRate", "1.5"), 400);
    assert_int_equal(set_fault(f, "LatencyMs", "-1"), 400);
    assert_int_equal(set_fault(f, "Burst429", "many"), 400);
    assert_int_equal(get(f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_OK);

    struct twilio_result res;
    assert_int_equal(twilio_request(f->client, TWILIO_VIDEO, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "responses_429")), 2);
    twilio_result_free(&res);
}

/* Runs 40 requests with a 50% error rate from seed 42; returns the pattern. */
static void pattern(struct emulator_fixture *f, char out[41])
{
    assert_int_equal(set_fault(f, "Seed", "42"), 200);
    for (int i = 0; i < 40; i++) {
        long status;
        out[i] = get(f, TWILIO_VIDEO, "/v1/Rooms", &status) == TWILIO_OK ? '.' : 'x';
    }
    out[40] = '\0';
}

static void test_seeded_faults_repeat(void **state)
{
    struct emulator_fixture *f = *state;
    assert_int_equal(set_fault(f, "ErrorRate", "0.5"), 200);
    char first[41], second[41];
    pattern(f, first);
    pattern(f, second);
    assert_string_equal(first, second);
    assert_non_null(strchr(first, 'x'));
    assert_non_null(strchr(first, '.'));
    assert_int_equal(set_fault(f, "LatencyMs", "20"), 200);
    struct twilio_result res;
    assert_int_equal(twilio_request(f->client, TWILIO_VIDEO, "GET", "/_emulator/faults", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "latency_ms")), 20);
    assert_int_equal(json_integer_value(json_object_get(res.body, "seed")), 42);
    twilio_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_and_error_rates, emulator_fixture_setup, emulator_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_seeded_faults_repeat, emulator_fixture_setup, emulator_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
