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
 * without NUL (400, once the signature is checked), produces nothing. */
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

static void ignore(struct request *req)
{
    request_answer(req, 200, json_object());
}

/* Produces the event (data taken) with a derived id. */
static void emit_webhook_event(struct request *req, const char *type, const char *stream,
                               const char *source, json_t *data, const char *const *id_fields,
                               size_t nfields)
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
        log_warn("webhook fields do not make a valid event; ignored", "source", source, "type", type,
                 "error", err, NULL);
        event_free(&ev);
        ignore(req);
        return;
    }
    request_emit(req, &ev, value, time_monotonic_ms() + req->ing->produce_timeout_ms, NULL, NULL, 200,
                 json_object());
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

static json_t *integer_field(const struct kv_list *p, const char *name)
{
    const char *text = kv_get(p, name);
    char *end;
    if (!text || !*text)
        return NULL;
    long long n = strtoll(text, &end, 10);
    return *end == '\0' && n >= 0 ? json_integer(n) : NULL;
}

static void rooms_webhook(struct request *req, const struct kv_list *p)
{
    const char *event = kv_get(p, "StatusCallbackEvent");
    const char *room = kv_get(p, "RoomSid");
    const char *stream = kv_get(p, "RoomName");
    const char *identity = kv_get(p, "ParticipantIdentity");
    const char *participant = kv_get(p, "ParticipantSid");
    const char *timestamp = kv_get(p, "Timestamp");
    if (!event || !room || !stream) {
        reject(req, 400, "invalid webhook", "StatusCallbackEvent, RoomSid and RoomName are required.");
        return;
    }
    const char *fields[] = {"rooms-webhook", room, participant ? participant : "", event,
                            timestamp ? timestamp : ""};
    json_t *data = NULL;
    const char *type = NULL;
    if (strcmp(event, "room-created") == 0) {
        type = "room.created";
        data = json_pack("{s:s}", "room_sid", room);
    } else if (strcmp(event, "room-ended") == 0) {
        type = "room.ended";
        data = json_pack("{s:s}", "room_sid", room);
        json_t *duration = integer_field(p, "RoomDuration");
        if (duration)
            json_object_set_new(data, "room_duration_s", duration);
    } else if (strcmp(event, "participant-connected") == 0 ||
               strcmp(event, "participant-disconnected") == 0) {
        if (!identity || !participant || !timestamp) {
            reject(req, 400, "invalid webhook",
                   "Participant events need ParticipantIdentity, ParticipantSid and Timestamp.");
            return;
        }
        if (strncmp(identity, COMPOSER_PREFIX, strlen(COMPOSER_PREFIX)) == 0) {
            ignore(req); /* the Live composer's own participant */
            return;
        }
        int connected = strcmp(event, "participant-connected") == 0;
        type = connected ? "participant.connected" : "participant.disconnected";
        data = json_pack("{s:s, s:s, s:s, s:s}", "identity", identity, "participant_sid", participant,
                         "room_sid", room, "timestamp", timestamp);
        json_t *duration = connected ? NULL : integer_field(p, "ParticipantDuration");
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
    if (!event || !service) {
        reject(req, 400, "invalid webhook", "EventType and ServiceSid are required.");
        return;
    }
    if (strcmp(event, "endpoint_disconnected") != 0) {
        ignore(req);
        return;
    }
    char stream[STREAM_NAME_MAX_CHARS * 4 + 1];
    if (!identity || !stream_of(req, service, stream, sizeof stream)) {
        metrics_add(req->ing->m_webhooks_rejected, (const char *const[]){"unknown-stream"}, 1);
        ignore(req);
        return;
    }
    const char *endpoint = kv_get(p, "EndpointId");
    const char *date = kv_get(p, "DateCreated");
    const char *fields[] = {"sync-webhook", service, endpoint ? endpoint : "", event, identity,
                            date ? date : ""};
    emit_webhook_event(req, "viewer.disconnected", stream, "sync-webhook",
                       json_pack("{s:s}", "identity", identity), fields, sizeof fields / sizeof fields[0]);
}

static void media_webhook(struct request *req, const struct kv_list *p)
{
    const char *event = kv_get(p, "StatusCallbackEvent");
    const char *processor = kv_get(p, "MediaProcessorSid");
    const char *streamer = kv_get(p, "PlayerStreamerSid");
    const char *sid = processor ? processor : streamer;
    if (!event || !sid) {
        reject(req, 400, "invalid webhook",
               "StatusCallbackEvent and a MediaProcessorSid or PlayerStreamerSid are required.");
        return;
    }
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
    const char *timestamp = kv_get(p, "Timestamp");
    const char *fields[] = {"media-webhook", sid, event, timestamp ? timestamp : ""};
    emit_webhook_event(req, "media.ended", stream, "media-webhook", data, fields,
                       sizeof fields / sizeof fields[0]);
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
    if (strcmp(path, "/rooms-webhook") == 0)
        rooms_webhook(req, &params);
    else if (strcmp(path, "/sync-webhook") == 0)
        sync_webhook(req, &params);
    else
        media_webhook(req, &params);
    kv_free(&params);
}
