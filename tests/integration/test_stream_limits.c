/* Limits on live streams and the view's retention of ended ones (issue 15
 * item 4), against the ingress as a real process (ingress_fixture.h), with
 * the workers' state records produced by hand:
 *
 * - MAX_STREAMS_PER_HOST: a host's third stream is refused (409 "too many
 *   streams", no event) while two are starting, and allowed once one has
 *   ended; a retried create of a starting stream is not a new one;
 * - passcode mode: changing user_identity does not dodge it, since one
 *   client address may start MAX_STREAMS_PER_CLIENT streams;
 * - MAX_STREAMS: a stream over the total is refused for anyone;
 * - STREAM_RETENTION_S: an ended stream leaves the view (GET /streams/{name}
 *   404) after its retention, a live one stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

static int setup_limits(void **state)
{
    static const char *const env[] = {"MAX_STREAMS_PER_HOST=2", "MAX_STREAMS_PER_CLIENT=3", "MAX_STREAMS=4",
                                      "STREAM_RETENTION_S=1", NULL};
    return fixture_setup_ingress(state, env);
}

/* create-stream with Prefer: respond-async; the status, and the error
 * message when there is one (into message). */
static long create(struct fixture *f, const char *host, const char *stream, char *message, size_t len)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json",
                                          "Prefer: respond-async", NULL};
    char body[256];
    snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"%s\"}", host, stream);
    struct http_reply r = call(f, "POST", "/create-stream", headers, body);
    json_t *answer = json_loads(r.body, 0, NULL);
    const char *got = json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
    if (message)
        snprintf(message, len, "%s", got ? got : "");
    json_decref(answer);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The room and sync records of a live stream whose life began at since. */
static void live(struct fixture *f, const char *stream, const char *host, int64_t since)
{
    publish_state(f, stream, "room",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host", host,
                            "room_sid", ROOM_SID));
    publish_state(f, stream, "sync",
                  json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host", host,
                            "service_sid", SERVICE_SID));
}

static void ended(struct fixture *f, const char *stream, const char *host, int64_t since)
{
    publish_state(f, stream, "room",
                  json_pack("{s:s, s:I, s:s}", "status", "ended", "since", (json_int_t)since, "host", host));
}

static void test_stream_limits(void **state)
{
    struct fixture *f = *state;
    char message[64];
    /* Two for alice, then the third is refused. */
    assert_int_equal(create(f, "alice", "a1", NULL, 0), 202);
    json_decref(expect_event(f, "stream.create_requested", "a1", NULL));
    assert_int_equal(create(f, "alice", "a2", NULL, 0), 202);
    json_decref(expect_event(f, "stream.create_requested", "a2", NULL));
    assert_int_equal(create(f, "alice", "a3", message, sizeof message), 409);
    assert_string_equal(message, "too many streams");
    expect_no_event(f);
    /* A retry of a1 is a1, not a third. */
    assert_int_equal(create(f, "alice", "a1", NULL, 0), 202);
    json_decref(expect_event(f, "stream.create_requested", "a1", NULL));

    /* Another identity from the same address: its third stream from here
     * is refused (passcode mode lets anyone name any host). */
    assert_int_equal(create(f, "mallory", "m1", NULL, 0), 202);
    json_decref(expect_event(f, "stream.create_requested", "m1", NULL));
    assert_int_equal(create(f, "mallory-2", "m2", message, sizeof message), 409);
    assert_string_equal(message, "too many streams");
    expect_no_event(f);

    /* a1 goes live and ends (its life began with the create above, as the
     * workers would stamp it): alice may start another. */
    int64_t since = time_now_ms();
    live(f, "a1", "alice", since);
    ended(f, "a1", "alice", since);
    wait_stream_status(f, "a1", "ended");
    assert_int_equal(create(f, "alice", "a3", NULL, 0), 202);
    json_decref(expect_event(f, "stream.create_requested", "a3", NULL));

    /* Four live or starting in all (a2, m1, a3, and b1 started through
     * another ingress): the fifth is refused for anyone. */
    live(f, "b1", "bob", time_now_ms());
    wait_stream_status(f, "b1", "live");
    assert_int_equal(create(f, "carol", "c1", message, sizeof message), 409);
    assert_string_equal(message, "too many streams");
    expect_no_event(f);
}

static void test_retention(void **state)
{
    struct fixture *f = *state;
    live(f, "gone", "alice", 5);
    live(f, "stays", "bob", 5);
    wait_stream_status(f, "gone", "live");
    ended(f, "gone", "alice", 5);
    wait_stream_status(f, "gone", "ended");
    /* Forgotten within STREAM_RETENTION_S (1 s) and a sweep or two. */
    long status = 200;
    for (int i = 0; i < 100 && status == 200; i++) {
        usleep(100 * 1000);
        struct http_reply r = call(f, "GET", "/streams/gone",
                                   (const char *const[]){"Authorization: " TEST_PASSCODE, NULL}, NULL);
        status = r.status;
        http_reply_free(&r);
    }
    assert_int_equal(status, 404);
    wait_stream_status(f, "stays", "live");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_limits, setup_limits, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup_limits, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
