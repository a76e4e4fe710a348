/* Helpers shared by the worker tests (cmocka; header-only, static inline
 * so each test uses what it needs): the emulator's state and stats, the
 * ingress's API, a worker's metrics, events and state records read back
 * from Kafka. A test's fixture fills a struct pipeline. */
#ifndef STAGEHAND_PIPELINE_HELPERS_H
#define STAGEHAND_PIPELINE_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

struct pipeline {
    struct stack s;
    struct twilio_client *emu_client;
    int metrics_port;              /* of the worker under test */
    struct kafka_reader *events;   /* stagehand.events from its beginning */
};

static inline json_t *emulator_get(struct pipeline *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_VIDEO, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

static inline long video_requests(struct pipeline *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "video"));
    json_decref(stats);
    return n;
}

/* The emulator's room called name (the newest), or NULL. */
static inline json_t *find_room(struct pipeline *f, const char *name)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *room;
    size_t i;
    json_array_foreach(json_object_get(state, "rooms"), i, room) {
        const char *unique = json_string_value(json_object_get(room, "unique_name"));
        if (unique && strcmp(unique, name) == 0) {
            json_decref(found);
            found = json_incref(room);
        }
    }
    json_decref(state);
    return found;
}

static inline json_t *wait_room(struct pipeline *f, const char *name, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *room = find_room(f, name);
        const char *now = json_string_value(json_object_get(room, "status"));
        if (now && strcmp(now, status) == 0)
            return room;
        json_decref(room);
        usleep(50 * 1000);
    }
    fail_msg("room %s never became %s", name, status);
    return NULL;
}

static inline long post(struct pipeline *f, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json",
                                          "Prefer: respond-async", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* The value of one sample of the worker's metrics (-1 when absent). */
static inline double metric(struct pipeline *f, const char *sample)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", f->metrics_port);
    struct http_reply r;
    http_call("GET", url, NULL, NULL, 0, &r);
    double value = -1;
    char line_start[512];
    snprintf(line_start, sizeof line_start, "\n%s ", sample); /* a sample line, not its # HELP */
    const char *at = strstr(r.body, line_start);
    if (at)
        value = atof(at + strlen(line_start));
    http_reply_free(&r);
    return value;
}

static inline void wait_metric(struct pipeline *f, const char *sample, double at_least)
{
    for (int i = 0; i < 400; i++) {
        if (metric(f, sample) >= at_least)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s never reached %g", sample, at_least);
}

/* The next event of type on stagehand.events (others are skipped). */
static inline rd_kafka_message_t *next_of_type(struct pipeline *f, const char *type)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(f->events, 50);
        char header[64];
        if (msg && !msg->err && kafka_header_string(msg, "type", header, sizeof header) == 0 &&
            strcmp(header, type) == 0)
            return msg;
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    fail_msg("no %s event came", type);
    return NULL;
}

/* The newest state record under key, waiting until its status is status. */
static inline json_t *wait_state(struct pipeline *f, const char *key, const char *status)
{
    int64_t until = time_monotonic_ms() + 15000;
    while (time_monotonic_ms() < until) {
        char err[256];
        struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_state};
        struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
        assert_non_null(r);
        json_t *last = NULL;
        while (!kafka_reader_caught_up(r)) {
            rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
            if (msg && msg->key_len == strlen(key) && memcmp(msg->key, key, msg->key_len) == 0) {
                json_decref(last);
                last = json_loadb(msg->payload, msg->len, 0, NULL);
            }
            if (msg)
                rd_kafka_message_destroy(msg);
        }
        kafka_reader_close(r);
        const char *now = json_string_value(json_object_get(last, "status"));
        if (now && strcmp(now, status) == 0)
            return last;
        json_decref(last);
        usleep(100 * 1000);
    }
    fail_msg("state record %s never said %s", key, status);
    return NULL;
}

static inline long media_requests(struct pipeline *f)
{
    json_t *stats = emulator_get(f, "/_emulator/stats");
    long n = (long)json_integer_value(json_object_get(json_object_get(stats, "requests_by_product"), "media"));
    json_decref(stats);
    return n;
}

/* The emulator's Media resource (kind: player_streamers, media_processors). */
static inline json_t *media_resource(struct pipeline *f, const char *kind, const char *sid)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    json_t *found = NULL, *one;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(state, "media"), kind), i, one) {
        const char *s = json_string_value(json_object_get(one, "sid"));
        if (s && strcmp(s, sid) == 0)
            found = json_incref(one);
    }
    json_decref(state);
    assert_non_null(found);
    return found;
}

static inline void wait_media_status(struct pipeline *f, const char *kind, const char *sid, const char *status)
{
    for (int i = 0; i < 300; i++) {
        json_t *r = media_resource(f, kind, sid);
        int done = strcmp(json_string_value(json_object_get(r, "status")), status) == 0;
        json_decref(r);
        if (done)
            return;
        usleep(50 * 1000);
    }
    fail_msg("%s %s never became %s", kind, sid, status);
}

#endif
