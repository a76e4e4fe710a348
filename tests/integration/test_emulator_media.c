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

#include <time.h>
#include <unistd.h>

#include "../support/fixture.h"
#include "token.h"
#include "twilio.h"

/* Performs a request; returns the body (caller decrefs) and the outcome. */
static json_t *request(struct fixture *f, enum twilio_product product, const char *method, const char *path,
                       struct kv_list *form, enum twilio_outcome *outcome, long *status)
{
    struct twilio_result res;
    twilio_request(f->emu_client, product, method, path, form, NULL, &res);
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

/* The status of the room's participant with this identity ("" when none). */
static void participant_status(struct fixture *f, const char *room, const char *identity, char out[16])
{
    enum twilio_outcome outcome;
    char path[256];
    snprintf(path, sizeof path, "/v1/Rooms/%s/Participants/%s", room, identity);
    json_t *body = request(f, TWILIO_VIDEO, "GET", path, NULL, &outcome, NULL);
    const char *status = json_string_value(json_object_get(body, "status"));
    snprintf(out, 16, "%s", status ? status : "");
    json_decref(body);
}

/* A viewer's access token carrying the playback grant as its player grant. */
static char *player_token(const char *identity, const json_t *grant, const char *secret)
{
    struct token_key key = {TEST_ACCOUNT_SID, TEST_API_KEY_SID, secret, NULL};
    struct token_grants grants = {identity, NULL, NULL, grant};
    char err[128];
    char *jwt = token_mint(&key, &grants, 600, (int64_t)time(NULL), err, sizeof err);
    assert_non_null(jwt);
    return jwt;
}

/* POST /_emulator/player-streamers/{sid}/players with the token; the status. */
static long connect_player(struct fixture *f, const char *streamer, const char *token)
{
    enum twilio_outcome outcome;
    long status;
    char path[128];
    struct kv_list form;
    kv_init(&form);
    kv_add(&form, "Token", token);
    snprintf(path, sizeof path, "/_emulator/player-streamers/%s/players", streamer);
    json_decref(request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status));
    return status;
}

static void test_live_stream_lifecycle(void **state)
{
    struct fixture *f = *state;
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
    json_t *ctx = json_pack("{s:{s:s}, s:[s], s:s}", "room", "name", room, "outputs", streamer, "resolution",
                            "1920x1080");
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

    /* The composer joined the room as a participant. */
    char composer[64], pstatus[16];
    snprintf(composer, sizeof composer, "video-composer-%s", processor);
    participant_status(f, room, composer, pstatus);
    assert_string_equal(pstatus, "connected");

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

    /* A player connects with it; a forged or altered grant does not. */
    char *token = player_token("viewer-1", grant, TEST_API_KEY_SECRET);
    assert_int_equal(connect_player(f, streamer, token), 201);
    free(token);
    token = player_token("viewer-1", grant, "not-the-secret");
    assert_int_equal(connect_player(f, streamer, token), 401);
    free(token);
    json_t *altered = json_deep_copy(grant);
    json_object_set_new(altered, "playbackUrl", json_string("https://x.example/v.m3u8?token=0000"));
    token = player_token("viewer-2", altered, TEST_API_KEY_SECRET);
    assert_int_equal(connect_player(f, streamer, token), 403);
    free(token);
    json_object_set_new(altered, "playerStreamerSid", json_string("VJ00000000000000000000000000000000"));
    token = player_token("viewer-2", altered, TEST_API_KEY_SECRET);
    assert_int_equal(connect_player(f, streamer, token), 403);
    free(token);
    json_decref(altered);
    json_t *state_body = request(f, TWILIO_MEDIA, "GET", "/_emulator/state", NULL, &outcome, NULL);
    json_t *listed = json_array_get(json_object_get(json_object_get(state_body, "media"), "player_streamers"), 0);
    assert_int_equal(json_integer_value(json_object_get(listed, "players")), 1);
    json_decref(state_body);
    json_decref(body);

    /* A grant with a one-second Ttl no longer admits a player after it. */
    kv_init(&form);
    twilio_form_add_int(&form, "Ttl", 1);
    body = request(f, TWILIO_MEDIA, "POST", path, &form, &outcome, &status);
    assert_int_equal(status, 201);
    token = player_token("viewer-3", json_object_get(body, "grant"), TEST_API_KEY_SECRET);
    usleep(1100 * 1000);
    assert_int_equal(connect_player(f, streamer, token), 403);
    free(token);
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
    participant_status(f, room, composer, pstatus);
    assert_string_equal(pstatus, "disconnected"); /* the composer left with it */
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
    struct fixture *f = *state;
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
        "{\"outputs\":[\"%s\"]}", /* no room */
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
    json_decref(request(f, TWILIO_MEDIA, "GET", "/v1/PlayerStreamers/VJ00000000000000000000000000000000", NULL,
                        &outcome, &status));
    assert_int_equal(outcome, TWILIO_NOT_FOUND);
    json_decref(request(f, TWILIO_MEDIA, "GET", "/v1/MediaProcessors/ZX0", NULL, &outcome, &status));
    assert_int_equal(outcome, TWILIO_NOT_FOUND);
}

/* With --time-scale 1000, five minutes alone is 0.3 s and MaxDuration
 * seconds are milliseconds: the composer leaves a room it is alone in while
 * its processor keeps running, and both resources end at MaxDuration. */
static void test_composer_alone_and_max_duration(void **state)
{
    (void)state;
    struct fixture fx = {0};
    struct fixture *f = &fx;
    const char *args[] = {"--time-scale", "1000", NULL};
    char err[256], room[40], streamer[40], processor[40], path[128], composer[64], pstatus[16];
    if (emulator_start(&f->emu, args, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->emu_client = emulator_client(&f->emu, err, sizeof err);
    assert_non_null(f->emu_client);
    enum twilio_outcome outcome;
    struct kv_list form;

    kv_init(&form);
    kv_add(&form, "UniqueName", "lonely");
    json_t *body = request(f, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, &outcome, NULL);
    copy_sid(body, room);
    json_decref(body);
    kv_init(&form);
    twilio_form_add_int(&form, "MaxDuration", 3000); /* 3 s here */
    body = request(f, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, &outcome, NULL);
    copy_sid(body, streamer);
    json_decref(body);
    json_t *ctx = json_pack("{s:{s:s}, s:[s]}", "room", "name", room, "outputs", streamer);
    kv_init(&form);
    kv_add(&form, "Extension", "video-composer-v2");
    twilio_form_add_json(&form, "ExtensionContext", ctx);
    twilio_form_add_int(&form, "MaxDuration", 3000);
    json_decref(ctx);
    body = request(f, TWILIO_MEDIA, "POST", "/v1/MediaProcessors", &form, &outcome, NULL);
    copy_sid(body, processor);
    json_decref(body);
    snprintf(composer, sizeof composer, "video-composer-%s", processor);

    for (int i = 0; i < 100; i++) {
        participant_status(f, room, composer, pstatus);
        if (strcmp(pstatus, "disconnected") == 0)
            break;
        usleep(50 * 1000);
    }
    assert_string_equal(pstatus, "disconnected");
    snprintf(path, sizeof path, "/v1/MediaProcessors/%s", processor);
    body = request(f, TWILIO_MEDIA, "GET", path, NULL, &outcome, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "started");
    json_decref(body);

    char reason[32] = "";
    for (int i = 0; i < 200 && !reason[0]; i++) {
        body = request(f, TWILIO_MEDIA, "GET", path, NULL, &outcome, NULL);
        const char *ended = json_string_value(json_object_get(body, "ended_reason"));
        if (ended)
            snprintf(reason, sizeof reason, "%s", ended);
        json_decref(body);
        if (!reason[0])
            usleep(50 * 1000);
    }
    assert_string_equal(reason, "max-duration-exceeded");
    snprintf(path, sizeof path, "/v1/PlayerStreamers/%s", streamer);
    body = request(f, TWILIO_MEDIA, "GET", path, NULL, &outcome, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "ended");
    assert_string_equal(json_string_value(json_object_get(body, "ended_reason")), "max-duration-exceeded");
    json_decref(body);
    twilio_client_free(f->emu_client);
    assert_int_equal(emulator_stop(&f->emu), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_stream_lifecycle, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_media_requests, fixture_setup_emulator, fixture_teardown),
        cmocka_unit_test(test_composer_alone_and_max_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
