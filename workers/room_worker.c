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
 *                            and a completed room count as done. The user
 *                            leaves the stage list (a new invitation is
 *                            needed to speak again).
 *   speaker.invited          the user joins the stage list (stage.h).
 *   user.joined (viewer)     the user leaves the stage list.
 *   participant.connected    with AUTH_MODE=jwt, a participant who is neither
 *                            the host nor on the stage list is disconnected
 *                            at once (by participant SID). In passcode mode
 *                            anyone may connect, as in the reference.
 *   stream.end_requested     completes the room; an already completed room
 *                            counts as done.
 *   room.ended               (Twilio ended it) the stream's room life is over.
 *
 * Its state record carries room_sid and "invited", the stage list (the
 * ingress lets only the host and those join as speakers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "stage.h"
#include "worker.h"

#define SID_LEN 34

struct room_data {
    char room_sid[SID_LEN + 1];
    struct stage stage; /* who besides the host may speak */
};

struct room_config {
    const char *callback;
    long max_participants, empty_timeout, unused_timeout;
    int enforce_stage; /* AUTH_MODE=jwt */
    char callback_url[512];
};

static void free_room(void *role)
{
    struct room_data *room = role;
    if (room)
        stage_clear(&room->stage);
    free(room);
}

static struct room_data *room_of(struct stream *st)
{
    if (!st->role)
        st->role = calloc(1, sizeof(struct room_data));
    return st->role;
}

static const char *data_text(const struct event *ev, const char *name)
{
    return event_data_string(ev, name);
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
    stage_clear(&room->stage); /* a new life: no invitation yet */
    st->phase = PHASE_READY;
    st->since = ev->ts_ms;
    snprintf(st->host, sizeof st->host, "%s", data_text(ev, "host") ? data_text(ev, "host") : "");
    worker_mark_dirty(st, 1);
}

/* Disconnects the room's participant (an identity or a PA SID). Not
 * connected, or the room over, counts as done; else out says why not. */
static void disconnect(struct worker *w, const char *room_sid, const char *participant, struct outcome *out)
{
    char path[TWILIO_PATH_MAX];
    struct kv_list form;
    struct twilio_result res;
    if (twilio_path(path, sizeof path, "/v1/Rooms/%s/Participants/%s", room_sid, participant) < 0) {
        worker_refuse_path(out, "/v1/Rooms/%s/Participants/%s");
        return;
    }
    kv_init(&form);
    twilio_form_add(&form, "Status", "disconnected");
    worker_twilio(w, TWILIO_VIDEO, "POST", path, &form, NULL, &res);
    kv_free(&form);
    if (res.outcome != TWILIO_OK && res.outcome != TWILIO_NOT_FOUND && res.code != 53118)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
}

/* Takes identity off the stage list; the record must say so at once. */
static void uninvite(struct stream *st, struct room_data *room, const char *identity)
{
    if (identity && stage_uninvite(&room->stage, identity))
        worker_mark_dirty(st, 1);
}

static void on_remove_speaker(struct worker *w, struct stream *st, const struct event *ev, int apply,
                              struct outcome *out)
{
    struct room_data *room = room_of(st);
    if (!room || st->phase != PHASE_READY)
        return;
    if (apply && room->room_sid[0]) {
        disconnect(w, room->room_sid, data_text(ev, "identity"), out);
        if (out->kind != OUTCOME_DONE)
            return; /* the fold waits for the retry */
    }
    uninvite(st, room, data_text(ev, "identity"));
}

static void on_invite(struct stream *st, const struct event *ev, struct outcome *out)
{
    struct room_data *room = room_of(st);
    const char *identity = data_text(ev, "identity");
    if (!room || !identity || st->phase != PHASE_READY || strcmp(identity, st->host) == 0)
        return; /* the host needs no invitation */
    int changed = stage_invite(&room->stage, identity);
    if (changed < 0) {
        out->kind = OUTCOME_RETRY;
        snprintf(out->error_code, sizeof out->error_code, "out_of_memory");
        return;
    }
    if (changed)
        worker_mark_dirty(st, 1);
}

static void on_user_joined(struct stream *st, const struct event *ev)
{
    struct room_data *room = room_of(st);
    const char *role = data_text(ev, "role");
    if (room && st->phase == PHASE_READY && role && strcmp(role, "viewer") == 0)
        uninvite(st, room, data_text(ev, "identity"));
}

/* jwt mode: the stage is the host's. A participant who is neither the host
 * nor invited (a token minted before a removal, or one made elsewhere with
 * the API key) is disconnected as soon as Twilio reports it. */
static void on_participant_connected(struct worker *w, struct stream *st, const struct event *ev, int apply,
                                     struct outcome *out)
{
    const struct room_config *rc = worker_role_context(w);
    struct room_data *room = room_of(st);
    const char *identity = data_text(ev, "identity");
    const char *room_sid = data_text(ev, "room_sid");
    const char *participant = data_text(ev, "participant_sid");
    if (!apply || !rc->enforce_stage || !room || st->phase != PHASE_READY || !identity || !room_sid || !participant ||
        strcmp(room_sid, room->room_sid) != 0)
        return; /* not enforced, or another life's room */
    if (strcmp(identity, st->host) == 0 || stage_is_invited(&room->stage, identity))
        return;
    log_warn("participant not invited on stage: disconnecting", "stream", ev->stream, "identity", identity,
             "participant_sid", participant, NULL);
    disconnect(w, room->room_sid, participant, out);
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

static void on_room_ended(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
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
    else if (strcmp(ev->type, "speaker.invited") == 0)
        on_invite(st, ev, out);
    else if (strcmp(ev->type, "user.joined") == 0)
        on_user_joined(st, ev);
    else if (strcmp(ev->type, "participant.connected") == 0)
        on_participant_connected(w, st, ev, apply, out);
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
    json_t *invited = room && room->stage.count ? stage_to_json(&room->stage) : NULL;
    if (invited)
        json_object_set_new(record, "invited", invited);
    else if (room && room->stage.count)
        log_error("out of memory: the stage list left out of a state record", "stream", st->name, NULL);
}

static void restore(struct worker *w, struct stream *st, const json_t *record)
{
    (void)w;
    struct room_data *room = room_of(st);
    const char *sid = json_string_value(json_object_get(record, "room_sid"));
    if (room && sid && strlen(sid) == SID_LEN)
        memcpy(room->room_sid, sid, SID_LEN + 1);
    const json_t *invited = json_object_get(record, "invited");
    if (room && invited && stage_from_json(&room->stage, invited) < 0)
        log_warn("stage list of a state record not restored", "stream", st->name, NULL);
}

/* Checkpoints: the room's SID and the stage list, in invitation order. */
static json_t *snapshot_save(struct worker *w, const struct stream *st)
{
    (void)w;
    const struct room_data *room = st->role;
    json_t *invited = stage_to_json(&room->stage);
    return invited ? json_pack("{s:s, s:o}", "room_sid", room->room_sid, "invited", invited) : NULL;
}

static int snapshot_load(struct worker *w, struct stream *st, const json_t *data)
{
    (void)w;
    struct room_data *room = room_of(st);
    if (!room)
        return -1;
    const char *sid = json_string_value(json_object_get(data, "room_sid"));
    if (!room->room_sid[0] && sid && strlen(sid) == SID_LEN) /* the state record's, when it has one, is newer */
        memcpy(room->room_sid, sid, SID_LEN + 1);
    const json_t *invited = json_object_get(data, "invited");
    stage_clear(&room->stage);
    return invited && stage_from_json(&room->stage, invited) < 0 ? -1 : 0;
}

static int init(struct worker *w, char *err, size_t errlen)
{
    static struct room_config rc;
    const struct config *c = worker_config(w);
    rc.max_participants = (long)config_int(c, "ROOM_MAX_PARTICIPANTS");
    rc.empty_timeout = (long)config_int(c, "ROOM_EMPTY_TIMEOUT_MIN");
    rc.unused_timeout = (long)config_int(c, "ROOM_UNUSED_TIMEOUT_MIN");
    rc.enforce_stage = strcmp(config_str(c, "AUTH_MODE"), "jwt") == 0;
    int n = snprintf(rc.callback_url, sizeof rc.callback_url, "%s/rooms-webhook", config_str(c, "PUBLIC_BASE_URL"));
    if (n < 0 || (size_t)n >= sizeof rc.callback_url) {
        snprintf(err, errlen, "PUBLIC_BASE_URL is too long");
        return -1;
    }
    worker_set_role_context(w, &rc);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const types[] = {
        "stream.create_requested", "speaker.remove_requested", "speaker.invited", "user.joined",
        "participant.connected",   "stream.end_requested",     "room.ended",      NULL};
    const struct worker_role role = {
        .name = "room",
        .event_types = types,
        .on_event = on_event,
        .state_fields = state_fields,
        .restore = restore,
        .snapshot_save = snapshot_save,
        .snapshot_load = snapshot_load,
        .free_role = free_room,
        .settings = settings_rooms,
        .settings_count = settings_rooms_count,
        .init = init,
    };
    return worker_main(&role, argc, argv);
}
