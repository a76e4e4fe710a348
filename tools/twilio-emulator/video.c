/* Programmable Video v1 in the emulator: Rooms and their Participants, with
 * the status codes and error codes of the real API.
 * A room's unique name can stand for its SID while it is in progress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emulator.h"
#include "timeutil.h"

#define COMPOSER_ALONE_MINUTES 5

#define VIDEO_BASE_URL "https://video.twilio.com/v1"
#define MAX_GROUP_PARTICIPANTS 50

static json_t *room_json(const struct emulator *emu, const struct emu_room *r)
{
    char url[128], participants[160], recordings[160], rules[160];
    snprintf(url, sizeof url, VIDEO_BASE_URL "/Rooms/%s", r->sid);
    snprintf(participants, sizeof participants, "%s/Participants", url);
    snprintf(recordings, sizeof recordings, "%s/Recordings", url);
    snprintf(rules, sizeof rules, "%s/RecordingRules", url);
    json_t *duration = r->ended_ms ? json_integer((r->ended_ms - r->created_ms) / 1000) : json_null();
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:b, s:s, s:o, s:s, s:o, s:o, s:s, s:i, s:i, "
                     "s:b, s:[s,s], s:s, s:b, s:i, s:i, s:b, s:s, s:{s:s, s:s, s:s}}",
                     "sid", r->sid, "status", r->status, "date_created", emu_date_or_null(r->created_ms),
                     "date_updated", emu_date_or_null(r->updated_ms), "account_sid", emu->account_sid, "enable_turn", 1,
                     "unique_name", r->unique_name, "status_callback",
                     r->status_callback ? json_string(r->status_callback) : json_null(), "status_callback_method",
                     r->status_callback_method, "end_time", emu_date_or_null(r->ended_ms), "duration", duration, "type",
                     r->type, "max_participants", r->max_participants, "max_participant_duration",
                     r->max_participant_duration, "record_participants_on_connect", r->record_participants_on_connect,
                     "video_codecs", "VP8", "H264", "media_region", "us1", "audio_only", r->audio_only,
                     "empty_room_timeout", r->empty_room_timeout, "unused_room_timeout", r->unused_room_timeout,
                     "large_room", 0, "url", url, "links", "participants", participants, "recordings", recordings,
                     "recording_rules", rules);
}

static json_t *participant_json(const struct emulator *emu, const struct emu_room *r, const struct emu_participant *p)
{
    char url[192];
    snprintf(url, sizeof url, VIDEO_BASE_URL "/Rooms/%s/Participants/%s", r->sid, p->sid);
    json_t *duration = p->end_ms ? json_integer((p->end_ms - p->start_ms) / 1000) : json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s}", "sid", p->sid, "room_sid", r->sid,
                     "account_sid", emu->account_sid, "status", p->status, "identity", p->identity, "date_created",
                     emu_date_or_null(p->start_ms), "date_updated",
                     emu_date_or_null(p->end_ms ? p->end_ms : p->start_ms), "start_time", emu_date_or_null(p->start_ms),
                     "end_time", emu_date_or_null(p->end_ms), "duration", duration, "url", url);
}

/* A room by SID (any status) or by unique name (in progress only). */
/* Sends the room's status callback for event (participant may be NULL). */
static void room_event(struct emulator *emu, struct emu_room *r, const char *event, const struct emu_participant *p)
{
    if (!r->status_callback || !emu->webhooks)
        return;
    struct kv_list params;
    kv_init(&params);
    char ts[RFC3339_MS_LEN + 1], seq[24], number[24];
    time_format_rfc3339_ms(time_now_ms(), ts);
    snprintf(seq, sizeof seq, "%ld", r->sequence_number++);
    kv_add(&params, "AccountSid", emu->account_sid);
    kv_add(&params, "RoomName", r->unique_name);
    kv_add(&params, "RoomSid", r->sid);
    kv_add(&params, "RoomStatus", r->status);
    kv_add(&params, "RoomType", r->type);
    kv_add(&params, "StatusCallbackEvent", event);
    kv_add(&params, "Timestamp", ts);
    kv_add(&params, "SequenceNumber", seq);
    if (p) {
        kv_add(&params, "ParticipantSid", p->sid);
        kv_add(&params, "ParticipantStatus", p->status);
        kv_add(&params, "ParticipantIdentity", p->identity);
        if (p->end_ms) {
            snprintf(number, sizeof number, "%lld", (long long)((p->end_ms - p->start_ms) / 1000));
            kv_add(&params, "ParticipantDuration", number);
        }
    }
    if (strcmp(event, "room-ended") == 0) {
        snprintf(number, sizeof number, "%lld", (long long)((r->ended_ms - r->created_ms) / 1000));
        kv_add(&params, "RoomDuration", number);
    }
    webhook_send(emu->webhooks, r->status_callback, r->status_callback_method, &params);
}

static size_t connected_count(const struct emu_room *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nparticipants; i++)
        n += strcmp(r->participants[i].status, "connected") == 0;
    return n;
}

static void disconnect_participant(struct emulator *emu, struct emu_room *r, struct emu_participant *p)
{
    if (strcmp(p->status, "connected") != 0)
        return;
    snprintf(p->status, sizeof p->status, "disconnected");
    p->end_ms = time_now_ms();
    if (connected_count(r) == 0)
        r->empty_since_ms = p->end_ms;
    room_event(emu, r, "participant-disconnected", p);
}

/* Completes an in-progress room: participants leave, then room-ended. */
static void end_room(struct emulator *emu, struct emu_room *r)
{
    for (size_t i = 0; i < r->nparticipants; i++)
        disconnect_participant(emu, r, &r->participants[i]);
    snprintf(r->status, sizeof r->status, "completed");
    r->ended_ms = r->updated_ms = time_now_ms();
    room_event(emu, r, "room-ended", NULL);
}

static int is_composer(const struct emu_participant *p)
{
    return strncmp(p->identity, COMPOSER_PREFIX, strlen(COMPOSER_PREFIX)) == 0;
}

/* The video composer leaves a room after being alone in it for five minutes
 * (its MediaProcessor keeps running: Twilio Live behaved so). */
static void composers_leave_when_alone(struct emulator *emu, struct emu_room *r, int64_t now_ms, double scale)
{
    size_t connected = 0, composers = 0;
    for (size_t i = 0; i < r->nparticipants; i++) {
        if (strcmp(r->participants[i].status, "connected") != 0)
            continue;
        connected++;
        composers += is_composer(&r->participants[i]);
    }
    if (composers == 0 || composers < connected) {
        r->composer_alone_since_ms = 0;
        return;
    }
    if (r->composer_alone_since_ms == 0) {
        r->composer_alone_since_ms = now_ms;
        return;
    }
    if (now_ms - r->composer_alone_since_ms < (int64_t)(COMPOSER_ALONE_MINUTES * 60000.0 / scale))
        return;
    for (size_t i = 0; i < r->nparticipants; i++)
        if (is_composer(&r->participants[i]))
            disconnect_participant(emu, r, &r->participants[i]);
    r->composer_alone_since_ms = 0;
}

void video_tick(struct emulator *emu, int64_t now_ms)
{
    double scale = emu->time_scale > 0 ? emu->time_scale : 1;
    for (size_t i = 0; i < emu->nrooms; i++) {
        struct emu_room *r = &emu->rooms[i];
        if (strcmp(r->status, "in-progress") != 0)
            continue;
        composers_leave_when_alone(emu, r, now_ms, scale);
        int64_t unused_ms = (int64_t)(r->unused_room_timeout * 60000.0 / scale);
        int64_t empty_ms = (int64_t)(r->empty_room_timeout * 60000.0 / scale);
        if (!r->ever_occupied && now_ms - r->created_ms >= unused_ms)
            end_room(emu, r);
        else if (r->ever_occupied && r->empty_since_ms && now_ms - r->empty_since_ms >= empty_ms)
            end_room(emu, r);
    }
}

struct emu_room *video_find_room(struct emulator *emu, const char *id)
{
    for (size_t i = 0; i < emu->nrooms; i++) {
        struct emu_room *r = &emu->rooms[i];
        if (strcmp(r->sid, id) == 0)
            return r;
        if (strcmp(r->status, "in-progress") == 0 && strcmp(r->unique_name, id) == 0)
            return r;
    }
    return NULL;
}

static struct emu_participant *find_participant(struct emu_room *r, const char *id)
{
    struct emu_participant *by_identity = NULL;
    for (size_t i = 0; i < r->nparticipants; i++) {
        struct emu_participant *p = &r->participants[i];
        if (strcmp(p->sid, id) == 0)
            return p;
        /* By identity: the connected one, else the latest. */
        if (strcmp(p->identity, id) == 0 && (!by_identity || strcmp(p->status, "connected") == 0))
            by_identity = p;
    }
    return by_identity;
}

static void create_room(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    const char *type = emu_param(req, "Type");
    const char *callback = emu_param(req, "StatusCallback");
    const char *method = emu_param(req, "StatusCallbackMethod");
    int ok = 1;
    long max_participants = emu_param_long(req, "MaxParticipants", MAX_GROUP_PARTICIPANTS, &ok);
    long max_duration = emu_param_long(req, "MaxParticipantDuration", 14400, &ok);
    long empty_timeout = emu_param_long(req, "EmptyRoomTimeout", 5, &ok);
    long unused_timeout = emu_param_long(req, "UnusedRoomTimeout", 5, &ok);
    int audio_only = emu_param_bool(req, "AudioOnly", 0);
    int record = emu_param_bool(req, "RecordParticipantsOnConnect", 0);

    if (!ok || audio_only < 0 || record < 0) {
        emu_error(resp, 400, 53103, "Unable to create Room: invalid parameter");
        return;
    }
    if (type && strcmp(type, "group") && strcmp(type, "group-small") && strcmp(type, "go") &&
        strcmp(type, "peer-to-peer")) {
        emu_error(resp, 400, 53103, "Unable to create Room: invalid Type");
        return;
    }
    if (max_participants < 1 || max_participants > MAX_GROUP_PARTICIPANTS || max_duration < 600 ||
        max_duration > 86400 || empty_timeout < 1 || empty_timeout > 60 || unused_timeout < 1 || unused_timeout > 60) {
        emu_error(resp, 400, 53103, "Unable to create Room: a parameter is out of range");
        return;
    }
    if (method && strcasecmp(method, "POST") && strcasecmp(method, "GET")) {
        emu_error(resp, 400, 53103, "Unable to create Room: invalid StatusCallbackMethod");
        return;
    }
    const char *name = emu_param(req, "UniqueName");
    if (name && video_find_room(emu, name)) {
        emu_error(resp, 400, 53113, "Room exists");
        return;
    }

    struct emu_room *grown = realloc(emu->rooms, (emu->nrooms + 1) * sizeof *grown);
    if (!grown) {
        emu_error(resp, 500, 20500, "Internal server error");
        return;
    }
    emu->rooms = grown;
    struct emu_room *r = &emu->rooms[emu->nrooms];
    memset(r, 0, sizeof *r);
    emu_new_sid("RM", r->sid);
    /* Without a UniqueName, Twilio uses the SID as the name. */
    r->unique_name = strdup(name ? name : r->sid);
    r->status_callback = callback ? strdup(callback) : NULL;
    snprintf(r->status_callback_method, sizeof r->status_callback_method, "%s",
             method && strcasecmp(method, "GET") == 0 ? "GET" : "POST");
    snprintf(r->status, sizeof r->status, "in-progress");
    snprintf(r->type, sizeof r->type, "%s", type ? type : "group");
    r->max_participants = (int)max_participants;
    r->max_participant_duration = (int)max_duration;
    r->empty_room_timeout = (int)empty_timeout;
    r->unused_room_timeout = (int)unused_timeout;
    r->audio_only = audio_only;
    r->record_participants_on_connect = record;
    r->created_ms = r->updated_ms = time_now_ms();
    emu->nrooms++;
    room_event(emu, r, "room-created", NULL);
    emu_reply(resp, 201, room_json(emu, r));
}

static void list_rooms(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    const char *status = emu_param(req, "Status");
    const char *name = emu_param(req, "UniqueName");
    json_t *all = json_array();
    /* Newest first, as Twilio lists rooms. */
    for (size_t i = emu->nrooms; i-- > 0;) {
        const struct emu_room *r = &emu->rooms[i];
        if ((status && strcmp(status, r->status)) || (name && strcmp(name, r->unique_name)))
            continue;
        json_array_append_new(all, room_json(emu, r));
    }
    emu_reply(resp, 200, emu_list_page("rooms", all, req, VIDEO_BASE_URL "/Rooms"));
}

static void update_room(struct emulator *emu, struct emu_room *r, const struct emu_request *req,
                        struct emu_response *resp)
{
    const char *status = emu_param(req, "Status");
    if (!status) {
        emu_error(resp, 400, 20001, "Missing required parameter Status in the post body");
        return;
    }
    if (strcmp(status, "completed") != 0) {
        emu_error(resp, 400, 53112, "Status is invalid");
        return;
    }
    if (strcmp(r->status, "in-progress") != 0) {
        emu_error(resp, 400, 53118, "Room completed");
        return;
    }
    end_room(emu, r);
    emu_reply(resp, 202, room_json(emu, r));
}

static void participants(struct emulator *emu, struct emu_room *r, const struct emu_request *req,
                         struct emu_response *resp)
{
    if (req->nsegments == 4) {
        if (strcmp(req->method, "GET") != 0) {
            emu_error(resp, 405, 20004, "Method not allowed");
            return;
        }
        const char *status = emu_param(req, "Status");
        const char *identity = emu_param(req, "Identity");
        json_t *all = json_array();
        for (size_t i = 0; i < r->nparticipants; i++) {
            const struct emu_participant *p = &r->participants[i];
            if ((status && strcmp(status, p->status)) || (identity && strcmp(identity, p->identity)))
                continue;
            json_array_append_new(all, participant_json(emu, r, p));
        }
        char url[160];
        snprintf(url, sizeof url, VIDEO_BASE_URL "/Rooms/%s/Participants", r->sid);
        emu_reply(resp, 200, emu_list_page("participants", all, req, url));
        return;
    }
    struct emu_participant *p = find_participant(r, req->segments[4]);
    if (!p) {
        emu_not_found(resp);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        emu_reply(resp, 200, participant_json(emu, r, p));
    } else if (strcmp(req->method, "POST") == 0) {
        const char *status = emu_param(req, "Status");
        if (!status) {
            emu_error(resp, 400, 20001, "Missing required parameter Status in the post body");
            return;
        }
        if (strcmp(status, "disconnected") != 0) {
            emu_error(resp, 400, 53204, "Participant status is invalid");
            return;
        }
        disconnect_participant(emu, r, p);
        emu_reply(resp, 202, participant_json(emu, r, p));
    } else {
        emu_error(resp, 405, 20004, "Method not allowed");
    }
}

int video_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    if (req->nsegments < 2 || strcmp(req->segments[0], "v1") != 0 || strcmp(req->segments[1], "Rooms") != 0)
        return 0;
    if (req->nsegments == 2) {
        if (strcmp(req->method, "POST") == 0)
            create_room(emu, req, resp);
        else if (strcmp(req->method, "GET") == 0)
            list_rooms(emu, req, resp);
        else
            emu_error(resp, 405, 20004, "Method not allowed");
        return 1;
    }
    struct emu_room *r = video_find_room(emu, req->segments[2]);
    if (!r) {
        emu_not_found(resp);
        return 1;
    }
    if (req->nsegments == 3) {
        if (strcmp(req->method, "GET") == 0)
            emu_reply(resp, 200, room_json(emu, r));
        else if (strcmp(req->method, "POST") == 0)
            update_room(emu, r, req, resp);
        else
            emu_error(resp, 405, 20004, "Method not allowed");
        return 1;
    }
    if (strcmp(req->segments[3], "Participants") == 0 && req->nsegments <= 5) {
        participants(emu, r, req, resp);
        return 1;
    }
    emu_not_found(resp);
    return 1;
}

void video_free(struct emulator *emu)
{
    for (size_t i = 0; i < emu->nrooms; i++) {
        struct emu_room *r = &emu->rooms[i];
        for (size_t k = 0; k < r->nparticipants; k++)
            free(r->participants[k].identity);
        free(r->participants);
        free(r->unique_name);
        free(r->status_callback);
    }
    free(emu->rooms);
    emu->rooms = NULL;
    emu->nrooms = 0;
}

json_t *video_state(const struct emulator *emu)
{
    json_t *rooms = json_array();
    for (size_t i = 0; i < emu->nrooms; i++) {
        const struct emu_room *r = &emu->rooms[i];
        json_t *room = room_json(emu, r);
        json_t *people = json_array();
        for (size_t k = 0; k < r->nparticipants; k++)
            json_array_append_new(people, participant_json(emu, r, &r->participants[k]));
        json_object_set_new(room, "participants", people);
        json_array_append_new(rooms, room);
    }
    return rooms;
}

struct emu_participant *video_connect(struct emulator *emu, struct emu_room *r, char *identity, int *code)
{
    /* The same identity joining again replaces the earlier connection. */
    video_disconnect(emu, r, identity);
    if (connected_count(r) >= (size_t)r->max_participants) {
        free(identity);
        *code = 53105;
        return NULL;
    }
    struct emu_participant *grown = realloc(r->participants, (r->nparticipants + 1) * sizeof *grown);
    if (!grown) {
        free(identity);
        *code = 20500;
        return NULL;
    }
    r->participants = grown;
    struct emu_participant *p = &r->participants[r->nparticipants++];
    memset(p, 0, sizeof *p);
    emu_new_sid("PA", p->sid);
    p->identity = identity;
    snprintf(p->status, sizeof p->status, "connected");
    p->start_ms = time_now_ms();
    r->ever_occupied = 1;
    r->empty_since_ms = 0;
    room_event(emu, r, "participant-connected", p);
    return p;
}

void video_disconnect(struct emulator *emu, struct emu_room *r, const char *identity)
{
    for (size_t i = 0; i < r->nparticipants; i++)
        if (strcmp(r->participants[i].identity, identity) == 0)
            disconnect_participant(emu, r, &r->participants[i]);
}

static void simulate_join(struct emulator *emu, struct emu_room *r, const struct emu_request *req,
                          struct emu_response *resp)
{
    char *identity = emu_check_access_token(emu, emu_param(req, "Token"), "video", "room", r->unique_name, r->sid, NULL,
                                            resp);
    if (!identity)
        return;
    int code = 0;
    struct emu_participant *p = video_connect(emu, r, identity, &code);
    if (p)
        emu_reply(resp, 201, participant_json(emu, r, p));
    else if (code == 53105)
        emu_error(resp, 400, 53105, "Room contains too many Participants");
    else
        emu_error(resp, 500, 20500, "Internal server error");
}

int video_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    /* segments: _emulator rooms {room} participants [{identity} leave] */
    if (req->nsegments < 4 || strcmp(req->segments[1], "rooms") != 0 || strcmp(req->segments[3], "participants") != 0)
        return 0;
    if (strcmp(req->method, "POST") != 0) {
        emu_error(resp, 405, 20004, "Method not allowed");
        return 1;
    }
    struct emu_room *r = video_find_room(emu, req->segments[2]);
    if (!r || strcmp(r->status, "in-progress") != 0) {
        emu_error(resp, 404, 53106, "Room not found");
        return 1;
    }
    if (req->nsegments == 4) {
        simulate_join(emu, r, req, resp);
    } else if (req->nsegments == 6 && strcmp(req->segments[5], "leave") == 0) {
        struct emu_participant *p = find_participant(r, req->segments[4]);
        if (!p || strcmp(p->status, "connected") != 0) {
            emu_error(resp, 404, 20404, "The requested resource was not found");
            return 1;
        }
        disconnect_participant(emu, r, p);
        emu_reply(resp, 200, participant_json(emu, r, p));
    } else {
        emu_error(resp, 404, 20404, "No such emulator endpoint");
    }
    return 1;
}
