/* Twilio's webhooks into events. Each request must carry a valid
 * X-Twilio-Signature over PUBLIC_BASE_URL + the path and query exactly as
 * received, under the auth token (common/signature accepts the URL with and
 * without its default port, as Twilio's libraries do); otherwise 403 and
 * nothing is produced. Event ids are derived from the provider's own
 * fields, so a retried delivery produces the same id and the workers skip
 * it. The answer (200, empty JSON object) comes only after Kafka
 * acknowledged the event; when Kafka cannot take it, 503, and Twilio
 * delivers again.
 *
 *   /rooms-webhook   room-created -> room.created, room-ended -> room.ended,
 *                    participant-connected / -disconnected ->
 *                    participant.connected / .disconnected (not for the
 *                    video composer's participant); other events: nothing.
 *                    The stream is RoomName.
 *   /sync-webhook    endpoint_disconnected -> viewer.disconnected; other
 *                    events: nothing. The stream is the query's "stream"
 *                    parameter when the worker put one in the service's
 *                    WebhookUrl, else the view's owner of ServiceSid.
 *   /media-webhook   media-processor-ended / -failed and
 *                    player-streamer-ended -> media.ended; the started
 *                    events produce nothing (the stream worker already
 *                    announced media.started). The stream is the query's
 *                    "stream", else the owner of the resource's SID.
 *
 * A webhook about a stream nobody knows (deleted long ago, another
 * deployment) is answered 200 and ignored, and counted. A body that is not
 * a form (by its Content-Type: 415), or whose fields are not UTF-8 text
 * without NUL (400, once the signature is checked), produces nothing.
 *
 * Strict reading (issue 15 item 5). Twilio's signature joins names and
 * values with no separator, so a captured delivery can be re-split
 * ("Timestamp=...123Z" as "Timestamp=...123&Z=", or "Timestam=p...") and
 * keep its signature. Every field a webhook uses is therefore read
 * strictly, so that a re-split delivery is refused rather than read as
 * another event: a parameter with an empty name, or a name given twice, is
 * refused; SIDs must be their two letters and 32 lowercase hex digits;
 * timestamps RFC 3339 in UTC ("Z"); event names one of the webhook's known
 * names; durations plain digits. The event id is derived from the
 * timestamp as parsed (milliseconds), not its text. A delivery whose
 * timestamp is more than WEBHOOK_REPLAY_WINDOW_S away from our clock is
 * refused as a replay (400 "stale webhook"). Everything refused is 400
 * and produces nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "ingress.h"
#include "log.h"
#include "signature.h"
#include "text.h"
#include "timeutil.h"

#define COMPOSER_PREFIX "video-composer"
#define SID_HEX_DIGITS 32
#define DURATION_MAX_DIGITS 10

/* The event names each webhook may carry (Twilio's documented callbacks);
 * a name not listed is refused. */
static const char *const room_events[] = {"room-created",
                                          "room-ended",
                                          "participant-connected",
                                          "participant-disconnected",
                                          "participant-reconnecting",
                                          "participant-reconnected",
                                          "track-added",
                                          "track-removed",
                                          "track-enabled",
                                          "track-disabled",
                                          "recording-started",
                                          "recording-completed",
                                          "recording-failed",
                                          "transcription-started",
                                          "transcription-stopped",
                                          "transcription-failed",
                                          NULL};
static const char *const sync_events[] = {"endpoint_connected", "endpoint_disconnected", NULL};
static const char *const media_events[] = {
    "media-processor-created", "media-processor-started", "media-processor-ended",
    "media-processor-failed",  "player-streamer-created", "player-streamer-started",
    "player-streamer-ended",   "player-streamer-failed",  NULL};

int webhook_path(const char *path)
{
    return strcmp(path, "/rooms-webhook") == 0 || strcmp(path, "/sync-webhook") == 0 ||
           strcmp(path, "/media-webhook") == 0;
}

/* 1 when every name and value is UTF-8 without NUL, as Twilio sends them:
 * kv_get would cut a value at a NUL, and jansson drops a string that is not
 * UTF-8, so either would change the event rather than refuse it. */
static int fields_are_text(const struct kv_list *p)
{
    for (size_t i = 0; i < p->len; i++) {
        const struct kv_pair *kv = &p->items[i];
        if (utf8_length(kv->name, kv->name_len) < 0 || utf8_length(kv->value, kv->value_len) < 0 ||
            memchr(kv->name, '\0', kv->name_len) || memchr(kv->value, '\0', kv->value_len))
            return 0;
    }
    return 1;
}

static void reject(struct request *req, int status, const char *message, const char *explanation)
{
    struct api_error e;
    api_fail(&e, status, message, "%s", explanation);
    metrics_add(req->ing->m_webhooks_rejected, (const char *const[]){req->route}, 1);
    request_fail(req, &e);
}

/* --- strict field readers --------------------------------------------------------- */

/* 1 when no name is empty and none is given twice. */
static int names_are_distinct(const struct kv_list *p)
{
    for (size_t i = 0; i < p->len; i++) {
        if (p->items[i].name_len == 0)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (p->items[j].name_len == p->items[i].name_len &&
                memcmp(p->items[j].name, p->items[i].name, p->items[i].name_len) == 0)
                return 0;
    }
    return 1;
}

/* 1 when s is prefix (two letters) followed by 32 lowercase hex digits. */
static int is_sid(const char *s, const char *prefix)
{
    if (!s || strncmp(s, prefix, 2) != 0 || strlen(s) != 2 + SID_HEX_DIGITS)
        return 0;
    return strspn(s + 2, "0123456789abcdef") == SID_HEX_DIGITS;
}

static int is_listed(const char *name, const char *const *list)
{
    for (size_t i = 0; name && list[i]; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

/* Reads the RFC 3339 UTC timestamp field name (required) into *ms and
 * checks it against the replay window. Returns 0, or -1 with the request
 * refused. */
static int timestamp_field(struct request *req, const struct kv_list *p, const char *name, int64_t *ms)
{
    const char *text = kv_get(p, name);
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || text[n - 1] != 'Z' || time_parse_rfc3339(text, ms) < 0) {
        char why[96];
        snprintf(why, sizeof why, "%s must be an RFC 3339 time in UTC (ending in Z).", name);
        reject(req, 400, "invalid webhook", why);
        return -1;
    }
    int64_t skew_ms = time_now_ms() - *ms;
    if (skew_ms < 0)
        skew_ms = -skew_ms;
    if (skew_ms > req->ing->webhook_replay_window_s * 1000) {
        log_warn("webhook outside the replay window; refused", "route", req->route, "timestamp", text, NULL);
        reject(req, 400, "stale webhook", "The delivery's time is outside the replay window.");
        return -1;
    }
    return 0;
}

/* An optional count of seconds: absent (NULL), or 1 to 10 digits. Returns
 * 0 with *out (NULL when absent), or -1 with the request refused. */
static int duration_field(struct request *req, const struct kv_list *p, const char *name, json_t **out)
{
    const char *text = kv_get(p, name);
    *out = NULL;
    if (!text)
        return 0;
    size_t n = strlen(text);
    if (n == 0 || n > DURATION_MAX_DIGITS || strspn(text, "0123456789") != n) {
        reject(req, 400, "invalid webhook", "A duration must be a whole number of seconds.");
        return -1;
    }
    *out = json_integer(strtoll(text, NULL, 10));
    return 0;
}

/* The timestamp as the id's field: parsed, so that two spellings of one
 * instant give one id. */
static void canonical_time(int64_t ms, char out[RFC3339_MS_LEN + 1])
{
    time_format_rfc3339_ms(ms, out);
}

static void ignore(struct request *req)
{
    request_answer(req, 200, json_object());
}

/* Produces the event (data taken) with a derived id. */
static void emit_webhook_event(struct request *req, const char *type, const char *stream, const char *source,
                               json_t *data, const char *const *id_fields, size_t nfields)
{
    struct event ev;
    char err[256];
    if (stream_name_problem(stream, strlen(stream))) {
        json_decref(data);
        log_warn("webhook names an invalid stream; ignored", "source", source, NULL);
        ignore(req);
        return;
    }
    char *value = NULL;
    if (event_build(&ev, type, stream, source, NULL, data, err, sizeof err) == 0) {
        event_derived_id(id_fields, nfields, ev.id);
        value = event_encode(&ev, err, sizeof err);
    }
    if (!value) {
        log_warn("webhook fields do not make a valid event; ignored", "source", source, "type", type, "error", err,
                 NULL);
        event_free(&ev);
        ignore(req);
        return;
    }
    request_emit(req, &ev, value, time_monotonic_ms() + req->ing->produce_timeout_ms, NULL, NULL, 200, json_object());
}

/* The query's "stream" parameter, or the view's owner of sid, into out. */
static int stream_of(struct request *req, const char *sid, char *out, size_t outlen)
{
    const char *named = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "stream");
    if (named && named[0]) {
        snprintf(out, outlen, "%s", named);
        return 1;
    }
    return sid && view_stream_for_sid(req->ing->view, sid, out, outlen);
}

static void rooms_webhook(struct request *req, const struct kv_list *p)
{
    const char *event = kv_get(p, "StatusCallbackEvent");
    const char *room = kv_get(p, "RoomSid");
    const char *stream = kv_get(p, "RoomName");
    const char *identity = kv_get(p, "ParticipantIdentity");
    const char *participant = kv_get(p, "ParticipantSid");
    const char *timestamp = kv_get(p, "Timestamp");
    int64_t ms;
    if (!event || !room || !stream) {
        reject(req, 400, "invalid webhook", "StatusCallbackEvent, RoomSid and RoomName are required.");
        return;
    }
    if (!is_listed(event, room_events)) {
        reject(req, 400, "invalid webhook", "StatusCallbackEvent is not a Rooms event.");
        return;
    }
    if (!is_sid(room, "RM")) {
        reject(req, 400, "invalid webhook", "RoomSid must be RM and 32 hex digits.");
        return;
    }
    if (participant && !is_sid(participant, "PA")) {
        reject(req, 400, "invalid webhook", "ParticipantSid must be PA and 32 hex digits.");
        return;
    }
    if (timestamp_field(req, p, "Timestamp", &ms) < 0)
        return;
    char when[RFC3339_MS_LEN + 1];
    canonical_time(ms, when);
    const char *fields[] = {"rooms-webhook", room, participant ? participant : "", event, when};
    json_t *data = NULL, *duration = NULL;
    const char *type = NULL;
    if (strcmp(event, "room-created") == 0) {
        type = "room.created";
        data = json_pack("{s:s}", "room_sid", room);
    } else if (strcmp(event, "room-ended") == 0) {
        if (duration_field(req, p, "RoomDuration", &duration) < 0)
            return;
        type = "room.ended";
        data = json_pack("{s:s}", "room_sid", room);
        if (duration)
            json_object_set_new(data, "room_duration_s", duration);
    } else if (strcmp(event, "participant-connected") == 0 || strcmp(event, "participant-disconnected") == 0) {
        if (!identity || !participant) {
            reject(req, 400, "invalid webhook",
                   "Participant events need ParticipantIdentity, ParticipantSid and Timestamp.");
            return;
        }
        int connected = strcmp(event, "participant-connected") == 0;
        if (!connected && duration_field(req, p, "ParticipantDuration", &duration) < 0)
            return;
        if (strncmp(identity, COMPOSER_PREFIX, strlen(COMPOSER_PREFIX)) == 0) {
            json_decref(duration);
            ignore(req); /* the Live composer's own participant */
            return;
        }
        type = connected ? "participant.connected" : "participant.disconnected";
        data = json_pack("{s:s, s:s, s:s, s:s}", "identity", identity, "participant_sid", participant, "room_sid", room,
                         "timestamp", timestamp);
        if (duration)
            json_object_set_new(data, "duration_s", duration);
    } else {
        ignore(req);
        return;
    }
    emit_webhook_event(req, type, stream, "rooms-webhook", data, fields, sizeof fields / sizeof fields[0]);
}

static void sync_webhook(struct request *req, const struct kv_list *p)
{
    const char *event = kv_get(p, "EventType");
    const char *service = kv_get(p, "ServiceSid");
    const char *identity = kv_get(p, "Identity");
    const char *endpoint = kv_get(p, "EndpointId");
    int64_t ms;
    if (!event || !service) {
        reject(req, 400, "invalid webhook", "EventType and ServiceSid are required.");
        return;
    }
    if (!is_listed(event, sync_events)) {
        reject(req, 400, "invalid webhook", "EventType is not a Sync reachability event.");
        return;
    }
    if (!is_sid(service, "IS")) {
        reject(req, 400, "invalid webhook", "ServiceSid must be IS and 32 hex digits.");
        return;
    }
    if (!identity || !identity[0] || !endpoint || !endpoint[0]) {
        reject(req, 400, "invalid webhook", "Identity and EndpointId are required.");
        return;
    }
    if (timestamp_field(req, p, "DateCreated", &ms) < 0)
        return;
    if (strcmp(event, "endpoint_disconnected") != 0) {
        ignore(req);
        return;
    }
    char stream[STREAM_NAME_MAX_CHARS * 4 + 1];
    if (!stream_of(req, service, stream, sizeof stream)) {
        metrics_add(req->ing->m_webhooks_rejected, (const char *const[]){"unknown-stream"}, 1);
        ignore(req);
        return;
    }
    char when[RFC3339_MS_LEN + 1];
    canonical_time(ms, when);
    const char *fields[] = {"sync-webhook", service, endpoint, event, identity, when};
    emit_webhook_event(req, "viewer.disconnected", stream, "sync-webhook", json_pack("{s:s}", "identity", identity),
                       fields, sizeof fields / sizeof fields[0]);
}

static void media_webhook(struct request *req, const struct kv_list *p)
{
    const char *event = kv_get(p, "StatusCallbackEvent");
    const char *processor = kv_get(p, "MediaProcessorSid");
    const char *streamer = kv_get(p, "PlayerStreamerSid");
    const char *sid = processor ? processor : streamer;
    int64_t ms;
    if (!event || !sid || (processor && streamer)) {
        reject(req, 400, "invalid webhook",
               "StatusCallbackEvent and one of MediaProcessorSid or PlayerStreamerSid are required.");
        return;
    }
    if (!is_listed(event, media_events)) {
        reject(req, 400, "invalid webhook", "StatusCallbackEvent is not a Media event.");
        return;
    }
    if (processor ? !is_sid(processor, "ZX") : !is_sid(streamer, "VJ")) {
        reject(req, 400, "invalid webhook", "The SID must be ZX (or VJ) and 32 hex digits.");
        return;
    }
    if (timestamp_field(req, p, "Timestamp", &ms) < 0)
        return;
    int ended = strcmp(event, "media-processor-ended") == 0 || strcmp(event, "media-processor-failed") == 0 ||
                strcmp(event, "player-streamer-ended") == 0 || strcmp(event, "player-streamer-failed") == 0;
    char stream[STREAM_NAME_MAX_CHARS * 4 + 1];
    if (!ended) {
        ignore(req);
        return;
    }
    if (!stream_of(req, sid, stream, sizeof stream)) {
        metrics_add(req->ing->m_webhooks_rejected, (const char *const[]){"unknown-stream"}, 1);
        ignore(req);
        return;
    }
    json_t *data = json_object();
    if (processor)
        json_object_set_new(data, "media_processor_sid", json_string(processor));
    else
        json_object_set_new(data, "player_streamer_sid", json_string(streamer));
    const char *reason = kv_get(p, "EndedReason");
    json_object_set_new(data, "reason", json_string(reason && *reason ? reason : event));
    char when[RFC3339_MS_LEN + 1];
    canonical_time(ms, when);
    const char *fields[] = {"media-webhook", sid, event, when};
    emit_webhook_event(req, "media.ended", stream, "media-webhook", data, fields, sizeof fields / sizeof fields[0]);
}

void webhook_handle(struct request *req, const char *path)
{
    snprintf(req->route, sizeof req->route, "%s", path);
    const char *signature = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Twilio-Signature");
    const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    struct kv_list params;
    char err[128];
    kv_init(&params);
    if (!params_media_type_is(type, "application/x-www-form-urlencoded")) {
        reject(req, 415, "unsupported content type", "Twilio webhooks are form-encoded.");
        return;
    }
    if (form_parse(req->body ? req->body : "", req->body_len, &params, err, sizeof err) < 0) {
        kv_free(&params);
        reject(req, 400, "invalid webhook", "The form body is malformed.");
        return;
    }
    size_t url_len = strlen(req->ing->public_base_url) + strlen(req->raw_uri) + 1;
    char *url = malloc(url_len);
    if (!url) {
        kv_free(&params);
        reject(req, 500, "internal error", "Out of memory.");
        return;
    }
    snprintf(url, url_len, "%s%s", req->ing->public_base_url, req->raw_uri);
    int valid = signature && signature_valid(req->ing->auth_token, url, &params, signature);
    free(url);
    if (!valid) {
        kv_free(&params);
        reject(req, 403, "invalid signature", "The X-Twilio-Signature header does not match this request.");
        return;
    }
    if (!fields_are_text(&params)) {
        kv_free(&params);
        reject(req, 400, "invalid webhook", "The form's fields must be UTF-8 text without NUL.");
        return;
    }
    if (!names_are_distinct(&params)) {
        kv_free(&params);
        reject(req, 400, "invalid webhook", "A parameter has an empty name or is given twice.");
        return;
    }
    if (strcmp(path, "/rooms-webhook") == 0)
        rooms_webhook(req, &params);
    else if (strcmp(path, "/sync-webhook") == 0)
        sync_webhook(req, &params);
    else
        media_webhook(req, &params);
    kv_free(&params);
}
