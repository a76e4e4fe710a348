/* The stream worker against the dev broker and the Twilio emulator (with
 * the room worker making the rooms), driven through the ingress: Live
 * resources made as stagehand asks for them, playback grants refreshed and
 * published, everything ended with the stream, a restart that calls
 * Twilio for nothing new, and orphans ended by the reconcile pass. */
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

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include "pipeline_helpers.h"
#include "event.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

struct fixture {
    struct pipeline p;             /* first: the shared helpers take it */
    struct emulator_process emu;
    struct process worker;       /* the stream worker, under test */
    struct process room_worker;  /* makes the rooms */
    struct kafka_producer *producer;
};

static void start_worker(struct fixture *f, const char *const env[])
{
    char err[256];
    f->p.metrics_port = stack_start_worker(&f->p.s, "stream", f->emu.base_url, env, &f->worker, err, sizeof err);
    if (f->p.metrics_port < 0)
        fail_msg("%s", err);
}

static int setup_env(void **state, const char *const worker_env[])
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    if (stack_start_broker(&f->p.s, err, sizeof err) < 0 || stack_start_ingress(&f->p.s, NULL, err, sizeof err) < 0 ||
        emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->p.emu_client = emulator_client(&f->emu, err, sizeof err);
    assert_non_null(f->p.emu_client);
    if (stack_start_worker(&f->p.s, "room", f->emu.base_url, NULL, &f->room_worker, err, sizeof err) < 0)
        fail_msg("%s", err);
    start_worker(f, worker_env);
    struct kafka_reader_options ropt = {.brokers = f->p.s.brokers, .topic = f->p.s.topic_events};
    f->p.events = kafka_reader_new(&ropt, err, sizeof err);
    struct kafka_producer_options popt = {.brokers = f->p.s.brokers};
    f->producer = kafka_producer_new(&popt, err, sizeof err);
    if (!f->p.events || !f->producer)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", NULL};
    return setup_env(state, env);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kafka_reader_close(f->p.events);
    kafka_producer_close(f->producer, 5000);
    int worker_status = process_stop(&f->worker, 20000);
    int room_status = process_stop(&f->room_worker, 20000);
    twilio_client_free(f->p.emu_client);
    int emulator_status = emulator_stop(&f->emu);
    int ingress_status = stack_stop_ingress(&f->p.s);
    int broker_status = stack_stop(&f->p.s);
    free(f);
    assert_int_equal(worker_status, 0);
    assert_int_equal(room_status, 0);
    assert_int_equal(emulator_status, 0);
    assert_int_equal(ingress_status, 0);
    assert_int_equal(broker_status, 0); /* the dev broker too: a clean stop, no leak */
    return 0;
}

/* --- helpers ---------------------------------------------------------------------------------- */

/* --- tests -------------------------------------------------------------------------------------- */

static void test_live_resources(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(post(&f->p, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"friday night\"}"), 202);
    json_t *room = wait_room(&f->p, "friday night", "in-progress");
    char room_sid[40];
    snprintf(room_sid, sizeof room_sid, "%s", json_string_value(json_object_get(room, "sid")));
    json_decref(room);

    /* media.started names both resources; the record has them and a grant. */
    rd_kafka_message_t *msg = next_of_type(&f->p, "media.started");
    struct event ev;
    char err[256], streamer[40], processor[40];
    assert_int_equal(event_parse(msg->payload, msg->len, &ev, err, sizeof err), 0);
    snprintf(streamer, sizeof streamer, "%s", json_string_value(json_object_get(ev.data, "player_streamer_sid")));
    snprintf(processor, sizeof processor, "%s", json_string_value(json_object_get(ev.data, "media_processor_sid")));
    assert_string_equal(ev.stream, "friday night");
    event_free(&ev);
    rd_kafka_message_destroy(msg);

    json_t *s = media_resource(&f->p, "player_streamers", streamer);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "started");
    assert_true(json_is_true(json_object_get(s, "video")));
    assert_int_equal(json_integer_value(json_object_get(s, "max_duration")), 1800);
    assert_string_equal(json_string_value(json_object_get(s, "status_callback")),
                        TEST_PUBLIC_BASE_URL "/media-webhook?stream=friday%20night");
    json_decref(s);
    json_t *p = media_resource(&f->p, "media_processors", processor);
    assert_string_equal(json_string_value(json_object_get(p, "extension")), "video-composer-v2");
    json_t *context = json_loads(json_string_value(json_object_get(p, "extension_context")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(context, "room"), "name")), room_sid);
    assert_string_equal(json_string_value(json_array_get(json_object_get(context, "outputs"), 0)), streamer);
    assert_string_equal(json_string_value(json_object_get(context, "resolution")), "1920x1080");
    json_decref(context);
    json_decref(p);

    json_t *record = wait_state(&f->p, "friday night/stream", "ready");
    assert_string_equal(json_string_value(json_object_get(record, "player_streamer_sid")), streamer);
    assert_string_equal(json_string_value(json_object_get(record, "media_processor_sid")), processor);
    json_t *grant = json_object_get(record, "playback_grant");
    assert_string_equal(json_string_value(json_object_get(grant, "playerStreamerSid")), streamer);
    char first_url[512];
    snprintf(first_url, sizeof first_url, "%s", json_string_value(json_object_get(grant, "playbackUrl")));
    assert_true(json_integer_value(json_object_get(record, "playback_grant_expires_ms")) > time_now_ms());
    json_decref(record);

    /* GRANT_REFRESH_S=1 here: a fresh grant is published within seconds. */
    int refreshed = 0;
    for (int i = 0; i < 60 && !refreshed; i++) {
        record = wait_state(&f->p, "friday night/stream", "ready");
        const char *url = json_string_value(json_object_get(json_object_get(record, "playback_grant"), "playbackUrl"));
        refreshed = url && strcmp(url, first_url) != 0;
        json_decref(record);
        if (!refreshed)
            usleep(200 * 1000);
    }
    assert_true(refreshed);

    /* The host ends the stream: the processor, then the streamer, end. */
    assert_int_equal(post(&f->p, "/delete-stream", "{\"stream_name\":\"friday night\"}"), 200);
    wait_media_status(&f->p, "media_processors", processor, "ended");
    wait_media_status(&f->p, "player_streamers", streamer, "ended");
    rd_kafka_message_destroy(next_of_type(&f->p, "media.ended"));
    record = wait_state(&f->p, "friday night/stream", "ended");
    assert_null(json_object_get(record, "playback_grant"));
    json_decref(record);

    /* An orphan (a crash between creating it and recording it, say): the
     * reconcile pass at start ends it; the ended stream's are left alone. */
    struct twilio_result res;
    struct kv_list form;
    kv_init(&form);
    twilio_request(f->p.emu_client, TWILIO_MEDIA, "POST", "/v1/PlayerStreamers", &form, NULL, &res);
    char orphan[40];
    snprintf(orphan, sizeof orphan, "%s", json_string_value(json_object_get(res.body, "sid")));
    twilio_result_free(&res);
    kv_free(&form);
    assert_int_equal(process_stop(&f->worker, 20000), 0);
    long calls = media_requests(&f->p);
    static const char *const env[] = {"GRANT_REFRESH_S=1", "RECONCILE_GRACE_S=0", NULL};
    start_worker(f, env);
    wait_media_status(&f->p, "player_streamers", orphan, "ended");
    json_t *ended = media_resource(&f->p, "player_streamers", orphan);
    assert_string_equal(json_string_value(json_object_get(ended, "ended_reason")), "ended-via-api");
    json_decref(ended);
    /* The rebuild made no Media call: only the reconcile pass's three lists and one end. */
    wait_metric(&f->p, "stagehand_worker_events_total{type=\"room.created\",outcome=\"folded\"}", 1);
    assert_int_equal(media_requests(&f->p), calls + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_resources, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
