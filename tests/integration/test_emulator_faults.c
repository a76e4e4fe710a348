/* Fault injection in the Twilio emulator: 429 bursts, error rates per
 * product, dropped connections, seeded decisions that repeat exactly,
 * faults from the environment, and the REST concurrency limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "../support/fixture.h"
#include "twilio.h"

/* POST /_emulator/faults with one setting; returns the HTTP status. */
static long set_fault(struct fixture *f, const char *name, const char *value)
{
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, name, value);
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_VIDEO, "POST", "/_emulator/faults", &form, NULL, &res);
    long status = res.http_status;
    twilio_result_free(&res);
    kv_free(&form);
    return status;
}

static enum twilio_outcome get(struct fixture *f, enum twilio_product product, const char *path, long *status)
{
    struct twilio_result res;
    twilio_request(f->emu_client, product, "GET", path, NULL, NULL, &res);
    enum twilio_outcome outcome = res.outcome;
    *status = res.http_status;
    twilio_result_free(&res);
    return outcome;
}

static void test_burst_and_error_rates(void **state)
{
    struct fixture *f = *state;
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
    assert_int_equal(twilio_request(f->emu_client, TWILIO_VIDEO, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "responses_429")), 2);
    twilio_result_free(&res);
}

/* Runs 40 requests with a 50% error rate from seed 42; returns the pattern. */
static void pattern(struct fixture *f, char out[41])
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
    struct fixture *f = *state;
    assert_int_equal(set_fault(f, "ErrorRate", "0.5"), 200);
    char first[41], second[41];
    pattern(f, first);
    pattern(f, second);
    assert_string_equal(first, second);
    assert_non_null(strchr(first, 'x'));
    assert_non_null(strchr(first, '.'));
    assert_int_equal(set_fault(f, "LatencyMs", "20"), 200);
    struct twilio_result res;
    assert_int_equal(twilio_request(f->emu_client, TWILIO_VIDEO, "GET", "/_emulator/faults", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "latency_ms")), 20);
    assert_int_equal(json_integer_value(json_object_get(res.body, "seed")), 42);
    twilio_result_free(&res);
}

static void test_faults_from_environment(void **state)
{
    (void)state;
    struct fixture f = {0};
    char err[256];
    long status;
    setenv("TWILIO_EMULATOR_FAULTS", "Burst429=2&LatencyMs=5&Seed=9", 1);
    int started = emulator_start(&f.emu, NULL, err, sizeof err);
    unsetenv("TWILIO_EMULATOR_FAULTS");
    if (started < 0)
        fail_msg("%s", err);
    f.emu_client = emulator_client(&f.emu, err, sizeof err);
    assert_non_null(f.emu_client);
    assert_int_equal(get(&f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_RATE_LIMITED);
    assert_int_equal(get(&f, TWILIO_SYNC, "/v1/Services", &status), TWILIO_RATE_LIMITED);
    assert_int_equal(get(&f, TWILIO_VIDEO, "/v1/Rooms", &status), TWILIO_OK);
    struct twilio_result res;
    assert_int_equal(twilio_request(f.emu_client, TWILIO_VIDEO, "GET", "/_emulator/faults", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "latency_ms")), 5);
    assert_int_equal(json_integer_value(json_object_get(res.body, "seed")), 9);
    twilio_result_free(&res);
    twilio_client_free(f.emu_client);
    assert_int_equal(emulator_stop(&f.emu), 0);

    /* A bad setting stops it at start, naming the variable. */
    setenv("TWILIO_EMULATOR_FAULTS", "ErrorRate=2", 1);
    started = emulator_start(&f.emu, NULL, err, sizeof err);
    unsetenv("TWILIO_EMULATOR_FAULTS");
    assert_int_equal(started, -1);
}

struct slow_call {
    const struct fixture *f;
    long status;
    int code;
};

static void *call_slowly(void *arg)
{
    struct slow_call *call = arg;
    char err[128];
    struct twilio_client *c = emulator_client(&call->f->emu, err, sizeof err);
    struct twilio_result res;
    twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms", NULL, NULL, &res);
    call->status = res.http_status;
    call->code = res.code;
    twilio_result_free(&res);
    twilio_client_free(c);
    return NULL;
}

/* Six requests at once against a limit of two, each held 1 s by the added
 * latency: two are served, the others answered 429 / 20429 at once. */
static void test_concurrency_limit(void **state)
{
    (void)state;
    struct fixture f = {0};
    char err[256];
    const char *args[] = {"--max-concurrency", "2", NULL};
    if (emulator_start(&f.emu, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    f.emu_client = emulator_client(&f.emu, err, sizeof err);
    assert_non_null(f.emu_client);
    assert_int_equal(set_fault(&f, "LatencyMs", "1000"), 200);
    struct slow_call calls[6];
    pthread_t threads[6];
    for (int i = 0; i < 6; i++) {
        calls[i] = (struct slow_call){&f, 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, call_slowly, &calls[i]), 0);
    }
    int served = 0, refused = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(threads[i], NULL);
        if (calls[i].status == 200)
            served++;
        else if (calls[i].status == 429 && calls[i].code == 20429)
            refused++;
    }
    assert_int_equal(served, 2);
    assert_int_equal(refused, 4);
    struct twilio_result res;
    assert_int_equal(twilio_request(f.emu_client, TWILIO_VIDEO, "GET", "/_emulator/stats", NULL, NULL, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res.body, "responses_429")), 4);
    twilio_result_free(&res);
    twilio_client_free(f.emu_client);
    assert_int_equal(emulator_stop(&f.emu), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_and_error_rates, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_seeded_faults_repeat, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test(test_faults_from_environment),
        cmocka_unit_test(test_concurrency_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
