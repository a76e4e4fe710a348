/* The Twilio emulator's Media v1 (Live) API through common/twilio:
 * PlayerStreamers, PlaybackGrants and video-composer MediaProcessors, the
 * way stagehand's stream worker uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emulator_fixture.h"


/* Performs a request; returns the body (caller decrefs) and the outcome. */
static json_t *request(struct emulator_fixture *f, enum twilio_product product, const char *method,
                       const char *path, struct kv_list *form, enum twilio_outcome *outcome,
                       long *status)
{
    struct twilio_result res;
    twilio_request(f->client, product, method, path, form, NULL, &res);
    *outcome = res.outcome;
    if (status)
        *status = res.http_status;
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    if (form)
        kv_free(form);
    return body;
}

static void copy_sid(json_t *body, char out[40])
{
    const char *sid = json_string_value(json_object_get(body, "sid"));
    assert_non_null(sid);
    snprintf(out, 40, "%s", sid);
}

static void test_live_stream_lifecycle(void **state)
{
    struct emulator_fixture *f = *state;
    enum twilio_outcome outcome;
    long status;
    struct kv_list form;
    char room[40], streamer[40], processor[40], path[256];

    kv_init(&form);
    kv_add(&form, "UniqueName", "live-1");
    json_t *body = request(f, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, &outcome, NULL);
    copy_sid(body, room);
    json_decref(body);

    kv_init(&form);
    twilio_form_add_bool(&form, "Video", 1);
    twilio_form_add_int(&form, "MaxDuration", 1800);
    kv_add(&form, "StatusCallback", "http://127.0.0.1:9/media-webhook");
    body = request(f, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, &outcome, &status);
    assert_int_equal(outcome, TWILIO_OK);
    assert_int_equal(status, 201);
    copy_sid(body, streamer);
    assert_int_equal(strncmp(streamer, "VJ", 2), 0);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "created");
    assert_int_equal(json_integer_value(json_object_get(body, "max_duration")), 1800);
    assert_true(json_is_null(json_object_get(body, "ended_reason")));
    json_decref(body);

    /* The composer: room and outputs are checked. */
    json_t *ctx = json_pack("{s:{s:s}, s:[s], s:s}", "room", "name", room, "outputs", streamer,
                            "resolution", "1920x1080");
    kv_init(&form);
    kv_add(&form, "Extension", "video-composer-v2");
    twilio_form_add_json(&form, "ExtensionContext", ctx);
    twilio_form_add_int(&form, "MaxDuration", 1800);
    body = request(f, TWILIO_MEDIA, "POST", "/v1/MediaProcessors", &form, &outcome, &status);
    assert_int_equal(outcome, TWILIO_OK);
    assert_int_equal(status, 201);
    copy_sid(body, processor);
    assert_int_equal(strncmp(processor, "ZX", 2), 0);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "started");
    assert_string_equal(json_string_value(json_object_get(body, "extension")), "video-composer-v2");
    json_decref(body);
    json_decref(ctx);

    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s", streamer);
    body = request(f, TWILIO_MEDIA, "GET", path, NULL, &outcome, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "started");
    json_decref(body);

    /* A playback grant, as the stream worker refreshes it. */
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s/PlaybackGrant", streamer);
    kv_init(&form);
    twilio_form_add_int(&form, "Ttl", 60);
    kv_add(&form, "AccessControlAllowOrigin", "*");
    body = request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status);
    assert_int_equal(status, 201);
    json_t *grant = json_object_get(body, "grant");
    assert_string_equal(json_string_value(json_object_get(grant, "playerStreamerSid")), streamer);
    assert_non_null(strstr(json_string_value(json_object_get(grant, "playbackUrl")), "token="));
    assert_true(json_is_null(json_object_get(grant, "requestCredentials")));
    json_decref(body);
    kv_init(&form);
    twilio_form_add_int(&form, "Ttl", 61);
    json_decref(request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, NULL));
    assert_int_equal(outcome, TWILIO_PERMANENT);
    json_decref(request(f, TWILIO_MEDIA, "GET", path, NULL, &outcome, &status));
    assert_int_equal(status, 405);

    /* End: MediaProcessor first, then PlayerStreamer ("ENDED" works too). */
    snprintf(path, sizeof path, "/v1/MediaProcessors/%s", processor);
    kv_init(&form);
    kv_add(&form, "Status", "ended");
    body = request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(body, "ended_reason")), "ended-via-api");
    json_decref(body);
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s", streamer);
    kv_init(&form);
    kv_add(&form, "Status", "ENDED");
    body = request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "ended");
    json_decref(body);
    /* Ending again changes nothing and is not an error. */
    kv_init(&form);
    kv_add(&form, "Status", "ended");
    json_decref(request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status));
    assert_int_equal(outcome, TWILIO_OK);
    /* No grant for an ended streamer. */
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s/PlaybackGrant", streamer);
    json_decref(request(f, TWILIO_MEDIA, "POST", path, NULL, &outcome, NULL));
    assert_int_equal(outcome, TWILIO_PERMANENT);

    /* Lists, newest first, filtered by status. */
    struct kv_list q;
    kv_init(&q);
    kv_add(&q, "Status", "ended");
    body = request(f, TWILIO_MEDIA, "GET", "/v1/PlayerStreamers", &q, &outcome, NULL);
    assert_int_equal(json_array_size(json_object_get(body, "player_streamers")), 1);
    json_decref(body);
    body = request(f, TWILIO_MEDIA, "GET", "/v1/MediaProcessors", NULL, &outcome, NULL);
    assert_int_equal(json_array_size(json_object_get(body, "media_processors")), 1);
    json_decref(body);
}

static void test_bad_media_requests(void **state)
{
    struct emulator_fixture *f = *state;
    enum twilio_outcome outcome;
    long status;
    struct kv_list form;
    char streamer[40];

    kv_init(&form);
    twilio_form_add_int(&form, "MaxDuration", 90001);
    json_decref(request(f, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, &outcome, &status));
    assert_int_equal(outcome, TWILIO_PERMANENT);
    kv_init(&form);
    kv_add(&form, "Video", "yes please");
    json_decref(request(f, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, &outcome, &status));
    assert_int_equal(outcome, TWILIO_PERMANENT);

    json_t *body = request(f, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", NULL, &outcome, NULL);
    copy_sid(body, streamer);
    assert_int_equal(json_integer_value(json_object_get(body, "max_duration")), 300);
    json_decref(body);

    static const char *const contexts[] = {
        "not json",
        "{\"outputs\":[\"%s\"]}",                                   /* no room */
        "{\"room\":{\"name\":\"no-such-room\"},\"outputs\":[\"%s\"]}",
    };
    for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
        char ctx[256];
        snprintf(ctx, sizeof ctx, contexts[i], streamer);
        kv_init(&form);
        kv_add(&form, "Extension", "video-composer-v2");
        kv_add(&form, "ExtensionContext", ctx);
        json_decref(request(f, TWILIO_MEDIA, "POST", "/v1/MediaProcessors", &form, &outcome, &status));
        assert_int_equal(outcome, TWILIO_PERMANENT);
        assert_int_equal(status, 400);
    }
    kv_init(&form);
    kv_add(&form, "ExtensionContext", "{}");
    json_decref(request(f, TWILIO_MEDIA, "POST", "/v1/MediaProcessors", &form, &outcome, &status));
    assert_int_equal(outcome, TWILIO_PERMANENT);

    char path[128];
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s", streamer);
    json_decref(request(f, TWILIO_MEDIA, "POST", path, NULL, &outcome, &status));
    assert_int_equal(outcome, TWILIO_PERMANENT); /* Status missing */
    json_decref(request(f, TWILIO_MEDIA, "GET", "/v1/PlayerStreamers/VJ00000000000000000000000000000000",
                        NULL, &outcome, &status));
    assert_int_equal(outcome, TWILIO_NOT_FOUND);
    json_decref(request(f, TWILIO_MEDIA, "GET", "/v1/MediaProcessors/ZX0", NULL, &outcome, &status));
    assert_int_equal(outcome, TWILIO_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_stream_lifecycle, emulator_fixture_setup, emulator_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_media_requests, emulator_fixture_setup, emulator_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
