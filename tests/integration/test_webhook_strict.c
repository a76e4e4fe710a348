/* Webhooks read strictly (issue 15 item 5), against the ingress as a real
 * process on the dev broker (ingress_fixture.h):
 *
 * - re-split replays: Twilio's signature joins names and values with no
 *   separator, so one captured room-ended delivery can be re-split into
 *   other bodies under the same signature ("Timestamp=...Z" as
 *   "Timestamp=...&Z=", "Timestam=p...Z", "Timestamp...Z=", or with an
 *   empty-named parameter). Each is refused, or gives the original's event
 *   id; none produces a new event;
 * - the replay window: a delivery whose timestamp is further than
 *   WEBHOOK_REPLAY_WINDOW_S from the ingress's clock, either way, is
 *   refused (400 "stale webhook");
 * - strict fields, each properly signed so that only the field is at
 *   fault: SIDs by pattern, timestamps RFC 3339 in UTC, event names from
 *   each webhook's list, durations as digits, no empty or repeated names;
 *   400 and no event, while the valid delivery still produces its event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

#define ROOMS_URL TEST_PUBLIC_BASE_URL "/rooms-webhook"
#define WINDOW_S 60

static int setup_window(void **state)
{
    static const char *const env[] = {"WEBHOOK_REPLAY_WINDOW_S=60", NULL};
    return fixture_setup_ingress(state, env);
}

/* POSTs body to path with the given X-Twilio-Signature; the status. */
static long send_with_signature(struct fixture *f, const char *path, const char *body, const char *signature)
{
    char header[64];
    snprintf(header, sizeof header, "X-Twilio-Signature: %s", signature);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", header, NULL};
    struct http_reply r = call(f, "POST", path, headers, body);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The signature Twilio would give body (parsed as a form) at url: 0, or
 * -1 when body is not a form that parses (out is then ""). */
static int signature_of(const char *url, const char *body, char out[SIGNATURE_LEN + 1])
{
    struct kv_list p;
    char err[128];
    kv_init(&p);
    out[0] = '\0';
    int rc = form_parse(body, strlen(body), &p, err, sizeof err);
    if (rc == 0)
        assert_int_equal(signature_compute(TEST_AUTH_TOKEN, url, &p, out), 0);
    kv_free(&p);
    return rc < 0 ? -1 : 0;
}

/* The room-ended body of friday's room at the time ts, with the part from
 * "Timestamp" on written as tail (a printf format taking ts). */
static void room_ended_body(char *out, size_t outlen, const char *tail_format, const char *ts)
{
    char tail[128];
    snprintf(tail, sizeof tail, tail_format, ts);
    snprintf(out, outlen,
             "AccountSid=" TEST_ACCOUNT_SID "&RoomName=friday&RoomSid=" ROOM_SID
             "&RoomStatus=completed&RoomType=group&SequenceNumber=9&StatusCallbackEvent=room-ended&%s",
             tail);
}

static void test_resplit_replays(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");

    char ts[RFC3339_MS_LEN + 1], body[512], signature[SIGNATURE_LEN + 1], first[EVENT_ID_LEN + 1];
    webhook_now(ts);
    room_ended_body(body, sizeof body, "Timestamp=%s", ts);
    assert_int_equal(signature_of(ROOMS_URL, body, signature), 0);
    assert_int_equal(send_with_signature(f, "/rooms-webhook", body, signature), 200);
    json_decref(expect_event(f, "room.ended", "friday", first));

    /* The same delivery again (a retry, or a plain replay): the same id. */
    char again[EVENT_ID_LEN + 1];
    assert_int_equal(send_with_signature(f, "/rooms-webhook", body, signature), 200);
    json_decref(expect_event(f, "room.ended", "friday", again));
    assert_string_equal(first, again);

    /* Re-split bodies. The first three are the issue's; those marked keep
     * the original's signature, which is what makes them a replay. */
    char cut[RFC3339_MS_LEN + 1];
    snprintf(cut, sizeof cut, "%.*s", RFC3339_MS_LEN - 1, ts); /* without its Z */
    struct {
        const char *tail;
        const char *ts;
        int same_signature;
    } variants[] = {
        {"Timestamp=%s&Z=", cut, 1}, /* the Z split off as an empty parameter */
        {"Timestamp=%sZ=", cut, 0},  /* a trailing '=' in the value (not even a form) */
        {"Timestamp%s=", ts, 1},     /* the whole pair as one name */
        {"Timestam=p%s", ts, 1},     /* the boundary moved into the name */
        {"Timestamp=%s&=", ts, 0},   /* an empty parameter */
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char variant[512], own[SIGNATURE_LEN + 1];
        room_ended_body(variant, sizeof variant, variants[i].tail, variants[i].ts);
        int parsed = signature_of(ROOMS_URL, variant, own) == 0;
        if (variants[i].same_signature && (!parsed || strcmp(own, signature) != 0))
            fail_msg("variant %zu (%s) should keep the signature", i, variant);
        long status = send_with_signature(f, "/rooms-webhook", variant, signature);
        if (status != 400 && status != 403)
            fail_msg("variant %zu (%s) answered %ld", i, variant, status);
        expect_no_event(f);
    }

    /* An empty-named parameter can carry a split name: "=AccountSid&AC...="
     * (the empty name sorts first) keeps the signature too. */
    char split[512], own[SIGNATURE_LEN + 1], err[128];
    snprintf(split, sizeof split, "=AccountSid&" TEST_ACCOUNT_SID "=%s", strchr(body, '&'));
    struct kv_list pairs, rest;
    kv_init(&pairs);
    kv_init(&rest);
    kv_add(&pairs, "", "AccountSid");
    kv_add(&pairs, TEST_ACCOUNT_SID, "");
    const char *tail = strchr(body, '&') + 1;
    assert_int_equal(form_parse(tail, strlen(tail), &rest, err, sizeof err), 0);
    for (size_t i = 0; i < rest.len; i++)
        kv_add(&pairs, rest.items[i].name, rest.items[i].value);
    assert_int_equal(signature_compute(TEST_AUTH_TOKEN, ROOMS_URL, &pairs, own), 0);
    assert_string_equal(own, signature);
    kv_free(&pairs);
    kv_free(&rest);
    assert_int_equal(send_with_signature(f, "/rooms-webhook", split, signature), 400);
    expect_no_event(f);
}

static void test_replay_window(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    const int64_t offsets_s[] = {-(WINDOW_S + 30), WINDOW_S + 30, -3600 * 24 * 30};
    for (size_t i = 0; i < sizeof offsets_s / sizeof offsets_s[0]; i++) {
        struct kv_list p;
        char ts[RFC3339_MS_LEN + 1];
        time_format_rfc3339_ms(time_now_ms() + offsets_s[i] * 1000, ts);
        kv_init(&p);
        kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
        kv_add(&p, "RoomName", "friday");
        kv_add(&p, "RoomSid", ROOM_SID);
        kv_add(&p, "StatusCallbackEvent", "participant-connected");
        kv_add(&p, "Timestamp", ts);
        kv_add(&p, "ParticipantIdentity", "bob");
        kv_add(&p, "ParticipantSid", "PA0123456789abcdef0123456789abcdef");
        assert_int_equal(webhook(f, "/rooms-webhook", ROOMS_URL, &p), 400);
        kv_free(&p);
        expect_no_event(f);
    }
    /* Within the window, either way: accepted. */
    const int64_t inside_s[] = {-(WINDOW_S - 10), WINDOW_S - 10};
    for (size_t i = 0; i < 2; i++) {
        struct kv_list p;
        char ts[RFC3339_MS_LEN + 1];
        time_format_rfc3339_ms(time_now_ms() + inside_s[i] * 1000, ts);
        kv_init(&p);
        kv_add(&p, "AccountSid", TEST_ACCOUNT_SID);
        kv_add(&p, "RoomName", "friday");
        kv_add(&p, "RoomSid", ROOM_SID);
        kv_add(&p, "StatusCallbackEvent", "participant-connected");
        kv_add(&p, "Timestamp", ts);
        kv_add(&p, "ParticipantIdentity", "bob");
        kv_add(&p, "ParticipantSid", "PA0123456789abcdef0123456789abcdef");
        assert_int_equal(webhook(f, "/rooms-webhook", ROOMS_URL, &p), 200);
        kv_free(&p);
        json_decref(expect_event(f, "participant.connected", "friday", NULL));
    }
}

/* One field of a valid delivery changed (value NULL: left out; name not
 * in the delivery: added), signed properly. */
struct strict_case {
    const char *path;
    const char *name;
    const char *value;
};

static void fields_for(const char *path, struct kv_list *p)
{
    char now[RFC3339_MS_LEN + 1];
    webhook_now(now);
    kv_init(p);
    kv_add(p, "AccountSid", TEST_ACCOUNT_SID);
    if (strcmp(path, "/rooms-webhook") == 0) {
        kv_add(p, "RoomName", "friday");
        kv_add(p, "RoomSid", ROOM_SID);
        kv_add(p, "StatusCallbackEvent", "participant-disconnected");
        kv_add(p, "Timestamp", now);
        kv_add(p, "ParticipantIdentity", "bob");
        kv_add(p, "ParticipantSid", "PA0123456789abcdef0123456789abcdef");
        kv_add(p, "ParticipantDuration", "42");
    } else if (strcmp(path, "/sync-webhook?stream=friday") == 0) {
        kv_add(p, "ServiceSid", SERVICE_SID);
        kv_add(p, "EventType", "endpoint_disconnected");
        kv_add(p, "Identity", "carol");
        kv_add(p, "EndpointId", "EP1");
        kv_add(p, "DateCreated", now);
    } else {
        kv_add(p, "MediaProcessorSid", PROCESSOR_SID);
        kv_add(p, "StatusCallbackEvent", "media-processor-ended");
        kv_add(p, "Timestamp", now);
    }
}

static const char *event_of(const char *path)
{
    if (strcmp(path, "/rooms-webhook") == 0)
        return "participant.disconnected";
    return strncmp(path, "/sync", 5) == 0 ? "viewer.disconnected" : "media.ended";
}

static void test_strict_fields(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    static const struct strict_case cases[] = {
        {"/rooms-webhook", "RoomSid", "RM00"},
        {"/rooms-webhook", "RoomSid", "RM0123456789ABCDEF0123456789ABCDEF"},
        {"/rooms-webhook", "RoomSid", "PA0123456789abcdef0123456789abcdef"},
        {"/rooms-webhook", "RoomSid", "RM0123456789abcdef0123456789abcdef0"},
        {"/rooms-webhook", "ParticipantSid", "PA0123456789abcdef0123456789abcdeg"},
        {"/rooms-webhook", "StatusCallbackEvent", "Participant-Disconnected"},
        {"/rooms-webhook", "StatusCallbackEvent", "participant-disconnected "},
        {"/rooms-webhook", "StatusCallbackEvent", "room-exploded"},
        {"/rooms-webhook", "Timestamp", NULL},
        {"/rooms-webhook", "Timestamp", ""},
        {"/rooms-webhook", "Timestamp", "2026-11-24T01:02:03.456"},
        {"/rooms-webhook", "Timestamp", "2026-11-24T01:02:03.456+00:00"},
        {"/rooms-webhook", "Timestamp", "2026-11-24 01:02:03Z"},
        {"/rooms-webhook", "Timestamp", "yesterday"},
        {"/rooms-webhook", "ParticipantDuration", "+42"},
        {"/rooms-webhook", "ParticipantDuration", " 42"},
        {"/rooms-webhook", "ParticipantDuration", "4e2"},
        {"/rooms-webhook", "", "x"},              /* an empty name */
        {"/rooms-webhook", "Timestamp", "twice"}, /* see below: a repeated name */
        {"/sync-webhook?stream=friday", "ServiceSid", "IS1"},
        {"/sync-webhook?stream=friday", "EventType", "endpoint_exploded"},
        {"/sync-webhook?stream=friday", "DateCreated", NULL},
        {"/sync-webhook?stream=friday", "EndpointId", NULL},
        {"/media-webhook?stream=friday", "MediaProcessorSid", "ZX01"},
        {"/media-webhook?stream=friday", "PlayerStreamerSid", STREAMER_SID}, /* both SIDs */
        {"/media-webhook?stream=friday", "StatusCallbackEvent", "media-processor-exploded"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct strict_case *c = &cases[i];
        struct kv_list p, changed;
        fields_for(c->path, &p);
        kv_init(&changed);
        int found = 0, repeat = strcmp(c->value ? c->value : "", "twice") == 0;
        for (size_t j = 0; j < p.len; j++) {
            int is = strcmp(p.items[j].name, c->name) == 0;
            found |= is;
            if (!is || repeat)
                kv_add(&changed, p.items[j].name, p.items[j].value);
            if (is && repeat)
                kv_add(&changed, p.items[j].name, p.items[j].value); /* the same pair twice */
            else if (is && c->value)
                kv_add(&changed, c->name, c->value);
        }
        if (!found && c->value)
            kv_add(&changed, c->name, c->value);
        char url[256];
        snprintf(url, sizeof url, TEST_PUBLIC_BASE_URL "%s", c->path);
        long status = webhook(f, c->path, url, &changed);
        if (status != 400)
            fail_msg("case %zu (%s, %s=%s) answered %ld, not 400", i, c->path, c->name,
                     c->value ? c->value : "(left out)", status);
        kv_free(&p);
        kv_free(&changed);
        expect_no_event(f);
    }
    /* The valid deliveries still produce their events: the refusals above
     * were the fields'. */
    const char *paths[] = {"/rooms-webhook", "/sync-webhook?stream=friday", "/media-webhook?stream=friday"};
    for (size_t i = 0; i < 3; i++) {
        struct kv_list p;
        char url[256];
        fields_for(paths[i], &p);
        snprintf(url, sizeof url, TEST_PUBLIC_BASE_URL "%s", paths[i]);
        assert_int_equal(webhook(f, paths[i], url, &p), 200);
        kv_free(&p);
        json_decref(expect_event(f, event_of(paths[i]), "friday", NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resplit_replays, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_replay_window, setup_window, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_strict_fields, setup_ingress, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
