/* The Twilio emulator's Video API, driven over HTTP by common/twilio as
 * stagehand's workers will drive real Twilio: Rooms create/fetch/list/update,
 * Participants, error codes, and authentication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/fixture.h"
#include "twilio.h"

#define ACCOUNT TEST_ACCOUNT_SID
#define KEY_SID TEST_API_KEY_SID
#define SECRET TEST_API_KEY_SECRET
#define AUTH_TOKEN TEST_AUTH_TOKEN
#define ENV emulator_test_env

static struct twilio_client *client(const struct fixture *f, const char *user, const char *pass)
{
    struct twilio_options opt = {.account_sid = ACCOUNT,
                                 .api_key_sid = user,
                                 .api_key_secret = pass,
                                 .api_base = f->emu.base_url,
                                 .timeout_ms = 5000,
                                 .max_retries = 0,
                                 .retry_base_ms = 10,
                                 .retry_max_ms = 100};
    char err[256];
    struct twilio_client *c = twilio_client_new(&opt, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

/* POSTs one parameter (or none) and returns the outcome; res is freed. */
static enum twilio_outcome call(struct twilio_client *c, const char *method, const char *path, const char *name,
                                const char *value, long *status, char *sid_out)
{
    struct kv_list form;
    kv_init(&form);
    if (name)
        kv_add(&form, name, value);
    struct twilio_result res;
    twilio_request(c, TWILIO_VIDEO, method, path, &form, NULL, &res);
    if (status)
        *status = res.http_status;
    if (sid_out && res.body)
        snprintf(sid_out, 40, "%s", json_string_value(json_object_get(res.body, "sid")));
    enum twilio_outcome outcome = res.outcome;
    twilio_result_free(&res);
    kv_free(&form);
    return outcome;
}

static void test_room_lifecycle(void **state)
{
    struct fixture *f = *state;
    struct twilio_client *c = client(f, KEY_SID, SECRET);
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "UniqueName", "friday townhall");
    kv_add(&form, "Type", "group");
    kv_add(&form, "StatusCallback", "http://127.0.0.1:9/rooms-webhook");
    twilio_form_add_int(&form, "EmptyRoomTimeout", 2);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), 0);
    assert_int_equal(res.http_status, 201);
    char sid[40];
    snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(res.body, "sid")));
    assert_int_equal(strlen(sid), 34);
    assert_int_equal(strncmp(sid, "RM", 2), 0);
    assert_string_equal(json_string_value(json_object_get(res.body, "status")), "in-progress");
    assert_string_equal(json_string_value(json_object_get(res.body, "unique_name")), "friday townhall");
    assert_string_equal(json_string_value(json_object_get(res.body, "account_sid")), ACCOUNT);
    assert_int_equal(json_integer_value(json_object_get(res.body, "empty_room_timeout")), 2);
    twilio_result_free(&res);

    /* The name is taken while the room is in progress. */
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res), -1);
    assert_int_equal(res.outcome, TWILIO_EXISTS);
    assert_int_equal(res.code, 53113);
    twilio_result_free(&res);

    char path[256], by_sid[256], got[40];
    assert_int_equal(twilio_path(path, sizeof path, "/v1/Rooms/%s", "friday townhall"), 0);
    snprintf(by_sid, sizeof by_sid, "/v1/Rooms/%s", sid);
    long status;
    assert_int_equal(call(c, "GET", path, NULL, NULL, &status, got), TWILIO_OK);
    assert_int_equal(status, 200);
    assert_string_equal(got, sid);
    assert_int_equal(call(c, "GET", by_sid, NULL, NULL, &status, NULL), TWILIO_OK);

    struct kv_list q;
    kv_init(&q);
    kv_add(&q, "Status", "in-progress");
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", "/v1/Rooms", &q, NULL, &res), 0);
    json_t *rooms = json_object_get(res.body, "rooms");
    assert_int_equal(json_array_size(rooms), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(res.body, "meta"), "key")), "rooms");
    twilio_result_free(&res);
    kv_free(&q);

    /* Update: Status is required, only "completed" is accepted, 202. */
    assert_int_equal(call(c, "POST", path, NULL, NULL, &status, NULL), TWILIO_PERMANENT);
    assert_int_equal(call(c, "POST", path, "Status", "paused", &status, NULL), TWILIO_PERMANENT);
    assert_int_equal(call(c, "POST", path, "Status", "completed", &status, NULL), TWILIO_OK);
    assert_int_equal(status, 202);
    /* By name it is gone; by SID it is completed and cannot be completed again. */
    assert_int_equal(call(c, "GET", path, NULL, NULL, &status, NULL), TWILIO_NOT_FOUND);
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", by_sid, NULL, NULL, &res), 0);
    assert_string_equal(json_string_value(json_object_get(res.body, "status")), "completed");
    assert_true(json_is_integer(json_object_get(res.body, "duration")));
    twilio_result_free(&res);
    assert_int_equal(call(c, "POST", by_sid, "Status", "completed", &status, NULL), TWILIO_PERMANENT);
    /* The name is free again. */
    assert_int_equal(call(c, "POST", "/v1/Rooms", "UniqueName", "friday townhall", &status, NULL), TWILIO_OK);
    kv_free(&form);
    twilio_client_free(c);
}

static void test_participants_and_unknowns(void **state)
{
    struct fixture *f = *state;
    struct twilio_client *c = client(f, KEY_SID, SECRET);
    char sid[40];
    long status;
    assert_int_equal(call(c, "POST", "/v1/Rooms", "UniqueName", "stage-2", &status, sid), TWILIO_OK);
    char path[256];
    snprintf(path, sizeof path, "/v1/Rooms/%s/Participants", sid);
    struct twilio_result res;
    assert_int_equal(twilio_request(c, TWILIO_VIDEO, "GET", path, NULL, NULL, &res), 0);
    assert_int_equal(json_array_size(json_object_get(res.body, "participants")), 0);
    twilio_result_free(&res);
    snprintf(path, sizeof path, "/v1/Rooms/%s/Participants/alice", sid);
    assert_int_equal(call(c, "POST", path, "Status", "disconnected", &status, NULL), TWILIO_NOT_FOUND);
    assert_int_equal(call(c, "GET", "/v1/Rooms/no-such-room", NULL, NULL, &status, NULL), TWILIO_NOT_FOUND);
    assert_int_equal(call(c, "GET", "/v1/Nothing", NULL, NULL, &status, NULL), TWILIO_NOT_FOUND);
    assert_int_equal(call(c, "POST", "/v1/Rooms", "MaxParticipants", "51", &status, NULL), TWILIO_PERMANENT);
    assert_int_equal(call(c, "POST", "/v1/Rooms", "Type", "huge", &status, NULL), TWILIO_PERMANENT);
    assert_int_equal(call(c, "POST", "/v1/Rooms", "AudioOnly", "maybe", &status, NULL), TWILIO_PERMANENT);
    twilio_client_free(c);
}

static void test_credentials(void **state)
{
    struct fixture *f = *state;
    struct twilio_client *wrong = client(f, KEY_SID, "not-the-secret");
    long status;
    struct twilio_result res;
    assert_int_equal(twilio_request(wrong, TWILIO_VIDEO, "GET", "/v1/Rooms", NULL, NULL, &res), -1);
    assert_int_equal(res.http_status, 401);
    assert_int_equal(res.code, 20003);
    twilio_result_free(&res);
    twilio_client_free(wrong);
    /* The account SID with the auth token is also accepted, as by Twilio. */
    struct twilio_client *account = client(f, ACCOUNT, AUTH_TOKEN);
    assert_int_equal(call(account, "GET", "/v1/Rooms", NULL, NULL, &status, NULL), TWILIO_OK);
    twilio_client_free(account);
    /* The API key SID with the auth token is not. */
    struct twilio_client *mixed = client(f, KEY_SID, AUTH_TOKEN);
    assert_int_equal(call(mixed, "GET", "/v1/Rooms", NULL, NULL, &status, NULL), TWILIO_PERMANENT);
    assert_int_equal(status, 401);
    twilio_client_free(mixed);
}

static void test_command_line(void **state)
{
    (void)state;
    char bin[1024], err[256];
    assert_int_equal(process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "twilio-emulator", err, sizeof err), 0);
    struct process p;
    const char *help[] = {bin, "--help", NULL};
    assert_int_equal(process_spawn(&p, help, ENV, "/dev/null", "/dev/null", err, sizeof err), 0);
    assert_int_equal(process_wait(&p, 10000), 0);
    assert_int_equal(p.status, 0);
    const char *bad[] = {bin, "--port", "99999", NULL};
    assert_int_equal(process_spawn(&p, bad, ENV, "/dev/null", "/dev/null", err, sizeof err), 0);
    assert_int_equal(process_wait(&p, 10000), 0);
    assert_int_equal(p.status, 2);
    /* Missing credentials: refused, naming the variable, secret not shown. */
    char errpath[128];
    snprintf(errpath, sizeof errpath, "/tmp/emulator-noenv-%d.err", (int)getpid());
    const char *env[] = {"TWILIO_ACCOUNT_SID=" ACCOUNT, "TWILIO_API_KEY_SID=" KEY_SID, "TWILIO_API_KEY_SECRET=" SECRET,
                         "TWILIO_AUTH_TOKEN=", NULL};
    const char *plain[] = {bin, "--port", "0", NULL};
    assert_int_equal(process_spawn(&p, plain, env, "/dev/null", errpath, err, sizeof err), 0);
    assert_int_equal(process_wait(&p, 10000), 0);
    assert_int_equal(p.status, 2);
    char *text = process_read_file(errpath, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "TWILIO_AUTH_TOKEN"));
    assert_null(strstr(text, SECRET));
    free(text);
    unlink(errpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_room_lifecycle, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_participants_and_unknowns, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_credentials, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
