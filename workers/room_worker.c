/* stagehand-room-worker: the Video Room of each stream.
 *
 *   stream.create_requested  creates the room (UniqueName = the stream,
 *                            Type=group, StatusCallback = PUBLIC_BASE_URL/
 *                            rooms-webhook, MaxParticipants and the
 *                            empty/unused timeouts from the configuration);
 *                            53113 (an in-progress room has that name) adopts
 *                            that room. Then room.created. A create for a
 *                            stream that is already alive changes nothing:
 *                            the first host keeps it.
 *   speaker.remove_requested disconnects the participant; "not connected"
 *                            and a completed room count as done.
 *   stream.end_requested     completes the room; an already completed room
 *                            counts as done.
 *   room.ended               (Twilio ended it) the stream's room life is over.
 *
 * Its state record carries room_sid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "worker.h"

#define SID_LEN 34

struct room_data {
    char room_sid[SID_LEN + 1];
};

struct room_config {
    const char *callback;
    long max_participants, empty_timeout, unused_timeout;
    char callback_url[512];
};

static struct room_data *room_of(struct stream *st)
{
    if (!st->role)
        st->role = calloc(1, sizeof(struct room_data));
    return st->role;
}

static const char *data_text(const struct event *ev, const char *name)
{
    return json_string_value(json_object_get(ev->data, name));
}

/* Creates the room, or adopts the in-progress one with the stream's name.
 * Fills sid; returns 0, or -1 with out filled. */
static int create_room(struct worker *w, const char *stream, char sid[SID_LEN + 1], struct outcome *out)
{
    const struct room_config *rc = worker_role_context(w);
    struct kv_list form;
    struct twilio_result res;
    kv_init(&form);
    twilio_form_add(&form, "UniqueName", stream);
    twilio_form_add(&form, "Type", "group");
    twilio_form_add(&form, "StatusCallback", rc->callback_url);
    twilio_form_add(&form, "StatusCallbackMethod", "POST");
    twilio_form_add_int(&form, "MaxParticipants", rc->max_participants);
    twilio_form_add_int(&form, "EmptyRoomTimeout", rc->empty_timeout);
    twilio_form_add_int(&form, "UnusedRoomTimeout", rc->unused_timeout);
    worker_twilio(w, TWILIO_VIDEO, "POST", "/v1/Rooms", &form, NULL, &res);
    kv_free(&form);
    if (res.outcome == TWILIO_EXISTS) {
        char path[TWILIO_PATH_MAX];
        twilio_result_free(&res);
        if (twilio_path(path, sizeof path, "/v1/Rooms/%s", stream) < 0)
            return worker_refuse_path(out, "/v1/Rooms/%s");
        worker_twilio(w, TWILIO_VIDEO, "GET", path, NULL, NULL, &res);
    }
    const char *found = json_string_value(json_object_get(res.body, "sid"));
    int rc_ok = res.outcome == TWILIO_OK && found && strlen(found) == SID_LEN;
    if (rc_ok) {
        memcpy(sid, found, SID_LEN + 1);
    } else {
        worker_outcome_from_twilio(&res, out);
        if (res.outcome == TWILIO_OK)
            out->kind = OUTCOME_RETRY; /* an answer without a SID: ask again */
    }
    twilio_result_free(&res);
    return rc_ok ? 0 : -1;
}

static void on_create(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    struct room_data *room = room_of(st);
    if (!room) {
        out->kind = OUTCOME_RETRY;
        snprintf(out->error_code, sizeof out->error_code, "out_of_memory");
        return;
    }
    if (st->phase == PHASE_CREATING || st->phase == PHASE_READY)
        return; /* alive already: the first host keeps it */
    if (apply) {
        char sid[SID_LEN + 1];
        if (create_room(w, ev->stream, sid, out) < 0)
            return;
        memcpy(room->room_sid, sid, sizeof sid);
        if (worker_emit(w, ev->stream, "room.created", json_pack("{s:s}", "room_sid", sid)) < 0) {
            out->kind = OUTCOME_RETRY;
            snprintf(out->error_code, sizeof out->error_code, "kafka");
            snprintf(out->error, sizeof out->error, "room.created was not acknowledged");
            return;
        }
    } else if (ev->ts_ms != st->since) {
        room->room_sid[0] = '\0'; /* an older life: its room is not the one we know */
    }
    st->phase = PHASE_READY;
    st->since = ev->ts_ms;
    snprintf(st->host, sizeof st->host, "%s", data_text(ev, "host") ? data_text(ev, "host") : "");
    worker_mark_dirty(st, 1);
}

static void on_remove_speaker(struct worker *w, struct stream *st, const struct event *ev, int apply,
                              struct outcome *out)
{
    struct room_data *room = room_of(st);
    if (!apply || !room || !room->room_sid[0] || st->phase != PHASE_READY)
        return;
    char path[TWILIO_PATH_MAX];
    struct kv_list form;
    struct twilio_result res;
    if (twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", room->room_sid,
                    data_text(ev, "identity")) < 0) {
        worker_refuse_path(out, "/v1/Rooms/%s/Participants/%s");
        return;
    }
    kv_init(&form);
    twilio_form_add(&form, "Status", "disconnected");
    worker_twilio(w, TWILIO_VIDEO, "POST", path, &form, NULL, &res);
    kv_free(&form);
    /* Not connected, or the room is over: nothing to remove. */
    if (res.outcome != TWILIO_OK && res.outcome != TWILIO_NOT_FOUND && res.code != 53118)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
}

static void on_end(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    (void)ev;
    struct room_data *room = room_of(st);
    if (st->phase == PHASE_ENDED || st->phase == PHASE_NONE)
        return;
    if (apply && room && room->room_sid[0]) {
        char path[TWILIO_PATH_MAX];
        struct kv_list form;
        struct twilio_result res;
        if (twilio_path(path, sizeof path, "/v1/Rooms/%s", room->room_sid) < 0) {
            worker_refuse_path(out, "/v1/Rooms/%s");
            return;
        }
        kv_init(&form);
        twilio_form_add(&form, "Status", "completed");
        worker_twilio(w, TWILIO_VIDEO, "POST", path, &form, NULL, &res);
        kv_free(&form);
        int done = res.outcome == TWILIO_OK || res.outcome == TWILIO_NOT_FOUND || res.code == 53118;
        if (!done)
            worker_outcome_from_twilio(&res, out);
        twilio_result_free(&res);
        if (!done)
            return;
    }
    st->phase = PHASE_ENDED;
    worker_mark_dirty(st, 1);
}

static void on_room_ended(struct worker *w, struct stream *st, const struct event *ev, int apply,
                          struct outcome *out)
{
    (void)w;
    (void)apply;
    (void)out;
    struct room_data *room = room_of(st);
    const char *sid = data_text(ev, "room_sid");
    if (!room || !sid || strcmp(room->room_sid, sid) != 0 || st->phase == PHASE_ENDED)
        return; /* another life's room, or already over */
    st->phase = PHASE_ENDED;
    worker_mark_dirty(st, 1);
}

static void on_event(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    if (strcmp(ev->type, "stream.create_requested") == 0)
        on_create(w, st, ev, apply, out);
    else if (strcmp(ev->type, "speaker.remove_requested") == 0)
        on_remove_speaker(w, st, ev, apply, out);
    else if (strcmp(ev->type, "stream.end_requested") == 0)
        on_end(w, st, ev, apply, out);
    else if (strcmp(ev->type, "room.ended") == 0)
        on_room_ended(w, st, ev, apply, out);
}

static void state_fields(struct worker *w, const struct stream *st, json_t *record)
{
    (void)w;
    const struct room_data *room = st->role;
    if (room && room->room_sid[0])
        json_object_set_new(record, "room_sid", json_string(room->room_sid));
}

static void restore(struct worker *w, struct stream *st, const json_t *record)
{
    (void)w;
    struct room_data *room = room_of(st);
    const char *sid = json_string_value(json_object_get(record, "room_sid"));
    if (room && sid && strlen(sid) == SID_LEN)
        memcpy(room->room_sid, sid, SID_LEN + 1);
}

static int init(struct worker *w, char *err, size_t errlen)
{
    static struct room_config rc;
    const struct config *c = worker_config(w);
    rc.max_participants = (long)config_int(c, "ROOM_MAX_PARTICIPANTS");
    rc.empty_timeout = (long)config_int(c, "ROOM_EMPTY_TIMEOUT_MIN");
    rc.unused_timeout = (long)config_int(c, "ROOM_UNUSED_TIMEOUT_MIN");
    int n = snprintf(rc.callback_url, sizeof rc.callback_url, "%s/rooms-webhook",
                     config_str(c, "PUBLIC_BASE_URL"));
    if (n < 0 || (size_t)n >= sizeof rc.callback_url) {
        snprintf(err, errlen, "PUBLIC_BASE_URL is too long");
        return -1;
    }
    worker_set_role_context(w, &rc);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const types[] = {"stream.create_requested", "speaker.remove_requested",
                                        "stream.end_requested", "room.ended", NULL};
    const struct worker_role role = {
        .name = "room",
        .event_types = types,
        .on_event = on_event,
        .state_fields = state_fields,
        .restore = restore,
        .free_role = free,
        .settings = settings_rooms,
        .settings_count = settings_rooms_count,
        .init = init,
    };
    return worker_main(&role, argc, argv);
}
