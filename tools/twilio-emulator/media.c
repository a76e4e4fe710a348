/* Media v1 (Twilio Live) in the emulator: PlayerStreamers, their
 * PlaybackGrants, and MediaProcessors running the video composer, with
 * the paths, fields and status changes the Live API had. The real product
 * is gone; this keeps its contract.
 *
 * A PlayerStreamer goes from "created" to "started" when a MediaProcessor
 * starts with it as an output. A video-composer MediaProcessor joins its room
 * as a participant (identity ExtensionContext.identity, else
 * "video-composer-" + its SID) and leaves when it ends. Both end after
 * MaxDuration (shortened by --time-scale). Status callbacks go to a
 * resource's StatusCallback: media-processor-started/-ended/-failed and, a
 * choice of ours since Twilio's list for PlayerStreamers was never
 * retrievable, player-streamer-created/-started/-ended, each with
 * AccountSid, the resource SID, Status, StatusCallbackEvent, Timestamp,
 * SequenceNumber and EndedReason once ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emulator.h"
#include "timeutil.h"

#define MEDIA_BASE_URL "https://media.twilio.com/v1"
#define MAX_MEDIA_DURATION 90000
#define DEFAULT_MEDIA_DURATION 300
#define MAX_GRANT_TTL 60
#define DEFAULT_GRANT_TTL 15

/* Starts a status callback's parameters with those both resources share. */
static void callback_params(const struct emulator *emu, struct kv_list *params, const char *sid_name, const char *sid,
                            const char *status, const char *event, const char *ended_reason, long *sequence)
{
    char ts[RFC3339_MS_LEN + 1], seq[24];
    time_format_rfc3339_ms(time_now_ms(), ts);
    snprintf(seq, sizeof seq, "%ld", (*sequence)++);
    kv_init(params);
    kv_add(params, "AccountSid", emu->account_sid);
    kv_add(params, sid_name, sid);
    kv_add(params, "Status", status);
    kv_add(params, "StatusCallbackEvent", event);
    kv_add(params, "Timestamp", ts);
    kv_add(params, "SequenceNumber", seq);
    if (ended_reason[0])
        kv_add(params, "EndedReason", ended_reason);
}

static void streamer_event(struct emulator *emu, struct emu_player_streamer *s, const char *event)
{
    if (!s->status_callback || !emu->webhooks)
        return;
    struct kv_list params;
    callback_params(emu, &params, "PlayerStreamerSid", s->sid, s->status, event, s->ended_reason, &s->sequence_number);
    webhook_send(emu->webhooks, s->status_callback, s->status_callback_method, &params);
    kv_free(&params);
}

static void processor_event(struct emulator *emu, struct emu_media_processor *p, const char *event)
{
    if (!p->status_callback || !emu->webhooks)
        return;
    struct kv_list params;
    callback_params(emu, &params, "MediaProcessorSid", p->sid, p->status, event, p->ended_reason, &p->sequence_number);
    kv_add(&params, "Extension", p->extension);
    kv_add(&params, "ExtensionContext", p->extension_context);
    webhook_send(emu->webhooks, p->status_callback, p->status_callback_method, &params);
    kv_free(&params);
}

static json_t *reason_or_null(const char *reason)
{
    return reason[0] ? json_string(reason) : json_null();
}

static json_t *streamer_json(const struct emulator *emu, const struct emu_player_streamer *s)
{
    char url[128], grant[160], metadata[160];
    snprintf(url, sizeof url, MEDIA_BASE_URL "/PlayerStreamers/%s", s->sid);
    snprintf(grant, sizeof grant, "%s/PlaybackGrant", url);
    snprintf(metadata, sizeof metadata, "%s/TimedMetadata", url);
    return json_pack("{s:s, s:o, s:o, s:b, s:{s:s, s:s}, s:s, s:s, s:s, s:o, s:s, s:o, s:i}", "account_sid",
                     emu->account_sid, "date_created", emu_date_or_null(s->created_ms), "date_updated",
                     emu_date_or_null(s->updated_ms), "video", s->video, "links", "timed_metadata", metadata,
                     "playback_grant", grant, "sid", s->sid, "status", s->status, "url", url, "status_callback",
                     s->status_callback ? json_string(s->status_callback) : json_null(), "status_callback_method",
                     s->status_callback_method, "ended_reason", reason_or_null(s->ended_reason), "max_duration",
                     s->max_duration);
}

static json_t *processor_json(const struct emulator *emu, const struct emu_media_processor *p)
{
    char url[128];
    snprintf(url, sizeof url, MEDIA_BASE_URL "/MediaProcessors/%s", p->sid);
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:i}", "account_sid", emu->account_sid,
                     "sid", p->sid, "date_created", emu_date_or_null(p->created_ms), "date_updated",
                     emu_date_or_null(p->updated_ms), "extension", p->extension, "extension_context",
                     p->extension_context, "status", p->status, "url", url, "ended_reason",
                     reason_or_null(p->ended_reason), "status_callback",
                     p->status_callback ? json_string(p->status_callback) : json_null(), "status_callback_method",
                     p->status_callback_method, "max_duration", p->max_duration);
}

static struct emu_player_streamer *find_streamer(struct emulator *emu, const char *sid)
{
    for (size_t i = 0; i < emu->nstreamers; i++)
        if (strcmp(emu->streamers[i].sid, sid) == 0)
            return &emu->streamers[i];
    return NULL;
}

static struct emu_media_processor *find_processor(struct emulator *emu, const char *sid)
{
    for (size_t i = 0; i < emu->nprocessors; i++)
        if (strcmp(emu->processors[i].sid, sid) == 0)
            return &emu->processors[i];
    return NULL;
}

/* Reads MaxDuration and the callback parameters shared by both resources.
 * Returns 0, or -1 after answering with the error. */
static int common_params(const struct emu_request *req, struct emu_response *resp, int *max_duration,
                         const char **callback, char method_out[8])
{
    int ok = 1;
    long max = emu_param_long(req, "MaxDuration", DEFAULT_MEDIA_DURATION, &ok);
    const char *method = emu_param(req, "StatusCallbackMethod");
    if (!ok || max < 1 || max > MAX_MEDIA_DURATION) {
        emu_error(resp, 400, 21000, "MaxDuration must be an integer from 1 to 90000");
        return -1;
    }
    if (method && strcasecmp(method, "POST") && strcasecmp(method, "GET")) {
        emu_error(resp, 400, 21000, "StatusCallbackMethod must be GET or POST");
        return -1;
    }
    *max_duration = (int)max;
    *callback = emu_param(req, "StatusCallback");
    snprintf(method_out, 8, "%s", method && strcasecmp(method, "GET") == 0 ? "GET" : "POST");
    return 0;
}

/* "ended" in any case, as the real service accepted both. */
static int status_is_ended(const struct emu_request *req, struct emu_response *resp)
{
    const char *status = emu_param(req, "Status");
    if (!status) {
        emu_error(resp, 400, 20001, "Missing required parameter Status in the post body");
        return 0;
    }
    if (strcasecmp(status, "ended") != 0) {
        emu_error(resp, 400, 21000, "Status must be ended");
        return 0;
    }
    return 1;
}

static void create_streamer(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    int video = emu_param_bool(req, "Video", 1);
    int max_duration;
    const char *callback;
    char method[8];
    if (video < 0) {
        emu_error(resp, 400, 21000, "Video must be true or false");
        return;
    }
    if (common_params(req, resp, &max_duration, &callback, method) < 0)
        return;
    struct emu_player_streamer *grown = realloc(emu->streamers, (emu->nstreamers + 1) * sizeof *grown);
    if (!grown) {
        emu_error(resp, 500, 20500, "Internal server error");
        return;
    }
    emu->streamers = grown;
    struct emu_player_streamer *s = &emu->streamers[emu->nstreamers++];
    memset(s, 0, sizeof *s);
    emu_new_sid("VJ", s->sid);
    snprintf(s->status, sizeof s->status, "created");
    s->video = video;
    s->max_duration = max_duration;
    s->status_callback = callback ? strdup(callback) : NULL;
    snprintf(s->status_callback_method, sizeof s->status_callback_method, "%s", method);
    s->created_ms = s->updated_ms = time_now_ms();
    streamer_event(emu, s, "player-streamer-created");
    emu_reply(resp, 201, streamer_json(emu, s));
}

static void playback_grant(struct emulator *emu, struct emu_player_streamer *s, const struct emu_request *req,
                           struct emu_response *resp)
{
    if (strcmp(req->method, "POST") != 0) {
        emu_error(resp, 405, 20004, "Method not allowed: fetching a PlaybackGrant is not enabled");
        return;
    }
    int ok = 1;
    long ttl = emu_param_long(req, "Ttl", DEFAULT_GRANT_TTL, &ok);
    if (!ok || ttl < 1 || ttl > MAX_GRANT_TTL) {
        emu_error(resp, 400, 21000, "Ttl must be an integer from 1 to 60");
        return;
    }
    if (strcmp(s->status, "ended") == 0 || strcmp(s->status, "failed") == 0) {
        emu_error(resp, 400, 21000, "PlayerStreamer is not active");
        return;
    }
    char token[EMU_SID_LEN + 1], playback[256], url[160];
    emu_new_sid("TK", token); /* any opaque random text will do */
    struct emu_playback_grant *g = &s->grants[s->next_grant++ % EMU_GRANTS_KEPT];
    snprintf(g->token, sizeof g->token, "%s", token + 2);
    g->expires_ms = time_now_ms() + ttl * 1000;
    snprintf(playback, sizeof playback, "https://emulator.playback.live-video.net/api/video/v1/%s.m3u8?token=%s",
             s->sid, g->token);
    snprintf(url, sizeof url, MEDIA_BASE_URL "/PlayerStreamers/%s/PlaybackGrant", s->sid);
    emu_reply(resp, 201,
              json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:n}}", "sid", s->sid, "url", url, "account_sid",
                        emu->account_sid, "date_created", emu_date_or_null(time_now_ms()), "grant", "playbackUrl",
                        playback, "playerStreamerSid", s->sid, "requestCredentials"));
}

static void end_streamer(struct emulator *emu, struct emu_player_streamer *s, const char *reason)
{
    if (strcmp(s->status, "ended") == 0 || strcmp(s->status, "failed") == 0)
        return;
    snprintf(s->status, sizeof s->status, "ended");
    snprintf(s->ended_reason, sizeof s->ended_reason, "%s", reason);
    s->updated_ms = time_now_ms();
    s->players = 0;
    streamer_event(emu, s, "player-streamer-ended");
}

/* Ends a running MediaProcessor (status "ended", or "failed" when reason is
 * a failure); its composer leaves the room. */
static void end_processor(struct emulator *emu, struct emu_media_processor *p, const char *status, const char *reason)
{
    if (strcmp(p->status, "started") != 0)
        return;
    snprintf(p->status, sizeof p->status, "%s", status);
    snprintf(p->ended_reason, sizeof p->ended_reason, "%s", reason);
    p->updated_ms = time_now_ms();
    struct emu_room *r = p->room_sid[0] ? video_find_room(emu, p->room_sid) : NULL;
    if (r && p->composer_identity && strcmp(r->status, "in-progress") == 0)
        video_disconnect(emu, r, p->composer_identity);
    processor_event(emu, p, strcmp(status, "failed") == 0 ? "media-processor-failed" : "media-processor-ended");
}

static void streamers(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    if (req->nsegments == 2) {
        if (strcmp(req->method, "POST") == 0) {
            create_streamer(emu, req, resp);
        } else if (strcmp(req->method, "GET") == 0) {
            const char *status = emu_param(req, "Status");
            const char *order = emu_param(req, "Order");
            int asc = order && strcasecmp(order, "asc") == 0;
            json_t *all = json_array();
            for (size_t k = 0; k < emu->nstreamers; k++) {
                size_t i = asc ? k : emu->nstreamers - 1 - k;
                if (status && strcmp(status, emu->streamers[i].status) != 0)
                    continue;
                json_array_append_new(all, streamer_json(emu, &emu->streamers[i]));
            }
            emu_reply(resp, 200, emu_list_page("player_streamers", all, req, MEDIA_BASE_URL "/PlayerStreamers"));
        } else {
            emu_error(resp, 405, 20004, "Method not allowed");
        }
        return;
    }
    struct emu_player_streamer *s = find_streamer(emu, req->segments[2]);
    if (!s || req->nsegments > 4) {
        emu_not_found(resp);
        return;
    }
    if (req->nsegments == 4) {
        if (strcmp(req->segments[3], "PlaybackGrant") == 0)
            playback_grant(emu, s, req, resp);
        else
            emu_not_found(resp);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        emu_reply(resp, 200, streamer_json(emu, s));
    } else if (strcmp(req->method, "POST") == 0) {
        if (status_is_ended(req, resp)) {
            end_streamer(emu, s, "ended-via-api");
            emu_reply(resp, 200, streamer_json(emu, s));
        }
    } else {
        emu_error(resp, 405, 20004, "Method not allowed");
    }
}

/* Checks a video-composer ExtensionContext: room.name names an in-progress
 * room, outputs lists PlayerStreamers that are not over. Returns NULL when
 * fine, else the reason; fills room_sid. */
static const char *check_context(struct emulator *emu, const json_t *ctx, char room_sid[EMU_SID_LEN + 1])
{
    const char *room = json_string_value(json_object_get(json_object_get(ctx, "room"), "name"));
    const json_t *outputs = json_object_get(ctx, "outputs");
    if (!room)
        return "ExtensionContext.room.name is required";
    struct emu_room *r = video_find_room(emu, room);
    if (!r || strcmp(r->status, "in-progress") != 0)
        return "ExtensionContext.room.name is not an in-progress room";
    if (!json_is_array(outputs) || json_array_size(outputs) == 0)
        return "ExtensionContext.outputs must list at least one PlayerStreamer";
    size_t i;
    const json_t *out;
    json_array_foreach (outputs, i, out) {
        struct emu_player_streamer *s = json_is_string(out) ? find_streamer(emu, json_string_value(out)) : NULL;
        if (!s || strcmp(s->status, "ended") == 0 || strcmp(s->status, "failed") == 0)
            return "ExtensionContext.outputs names a PlayerStreamer that does not exist or has ended";
    }
    snprintf(room_sid, EMU_SID_LEN + 1, "%s", r->sid);
    return NULL;
}

/* The video composer joins the room and its outputs start streaming. When
 * the room is full it cannot join, and the processor fails. */
static void start_composer(struct emulator *emu, struct emu_media_processor *p, const json_t *context)
{
    const char *wanted = json_string_value(json_object_get(context, "identity"));
    char fallback[sizeof COMPOSER_PREFIX + EMU_SID_LEN + 1];
    snprintf(fallback, sizeof fallback, COMPOSER_PREFIX "-%s", p->sid);
    char *identity = strdup(wanted ? wanted : fallback);
    p->composer_identity = identity ? strdup(identity) : NULL;
    if (!p->composer_identity) {
        free(identity);
        end_processor(emu, p, "failed", "internal-service-error");
        return;
    }
    int code = 0;
    if (!video_connect(emu, video_find_room(emu, p->room_sid), identity, &code)) {
        end_processor(emu, p, "failed", "error-streaming-media");
        return;
    }
    size_t i;
    const json_t *out;
    json_array_foreach (json_object_get(context, "outputs"), i, out) {
        struct emu_player_streamer *s = find_streamer(emu, json_string_value(out));
        if (s && strcmp(s->status, "created") == 0) {
            snprintf(s->status, sizeof s->status, "started");
            s->updated_ms = p->created_ms;
            streamer_event(emu, s, "player-streamer-started");
        }
    }
}

static void create_processor(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    const char *extension = emu_param(req, "Extension");
    const char *context_text = emu_param(req, "ExtensionContext");
    const char *environment_text = emu_param(req, "ExtensionEnvironment");
    int max_duration;
    const char *callback;
    char method[8];
    if (!extension || !extension[0]) {
        emu_error(resp, 400, 20001, "Missing required parameter Extension in the post body");
        return;
    }
    if (!context_text) {
        emu_error(resp, 400, 20001, "Missing required parameter ExtensionContext in the post body");
        return;
    }
    if (common_params(req, resp, &max_duration, &callback, method) < 0)
        return;
    json_t *context = json_loads(context_text, 0, NULL);
    json_t *environment = environment_text ? json_loads(environment_text, 0, NULL) : NULL;
    char room_sid[EMU_SID_LEN + 1] = "";
    const char *problem = NULL;
    if (!json_is_object(context))
        problem = "ExtensionContext must be a JSON object";
    else if (environment_text && !json_is_object(environment))
        problem = "ExtensionEnvironment must be a JSON object";
    else if (strncmp(extension, "video-composer", 14) == 0)
        problem = check_context(emu, context, room_sid);
    json_decref(environment);
    if (problem) {
        json_decref(context);
        emu_error(resp, 400, 21000, problem);
        return;
    }
    struct emu_media_processor *grown = realloc(emu->processors, (emu->nprocessors + 1) * sizeof *grown);
    if (!grown) {
        json_decref(context);
        emu_error(resp, 500, 20500, "Internal server error");
        return;
    }
    emu->processors = grown;
    struct emu_media_processor *p = &emu->processors[emu->nprocessors++];
    memset(p, 0, sizeof *p);
    emu_new_sid("ZX", p->sid);
    snprintf(p->status, sizeof p->status, "started");
    p->extension = strdup(extension);
    p->extension_context = strdup(context_text);
    p->extension_environment = environment_text ? strdup(environment_text) : NULL;
    snprintf(p->room_sid, sizeof p->room_sid, "%s", room_sid);
    p->max_duration = max_duration;
    p->status_callback = callback ? strdup(callback) : NULL;
    snprintf(p->status_callback_method, sizeof p->status_callback_method, "%s", method);
    p->created_ms = p->updated_ms = time_now_ms();
    processor_event(emu, p, "media-processor-started");
    if (room_sid[0])
        start_composer(emu, p, context);
    json_decref(context);
    emu_reply(resp, 201, processor_json(emu, p));
}

static void processors(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    if (req->nsegments == 2) {
        if (strcmp(req->method, "POST") == 0) {
            create_processor(emu, req, resp);
        } else if (strcmp(req->method, "GET") == 0) {
            const char *status = emu_param(req, "Status");
            json_t *all = json_array();
            for (size_t i = emu->nprocessors; i-- > 0;) {
                if (status && strcmp(status, emu->processors[i].status) != 0)
                    continue;
                json_array_append_new(all, processor_json(emu, &emu->processors[i]));
            }
            emu_reply(resp, 200, emu_list_page("media_processors", all, req, MEDIA_BASE_URL "/MediaProcessors"));
        } else {
            emu_error(resp, 405, 20004, "Method not allowed");
        }
        return;
    }
    struct emu_media_processor *p = req->nsegments == 3 ? find_processor(emu, req->segments[2]) : NULL;
    if (!p) {
        emu_not_found(resp);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        emu_reply(resp, 200, processor_json(emu, p));
    } else if (strcmp(req->method, "POST") == 0) {
        if (status_is_ended(req, resp)) {
            end_processor(emu, p, "ended", "ended-via-api");
            emu_reply(resp, 200, processor_json(emu, p));
        }
    } else {
        emu_error(resp, 405, 20004, "Method not allowed");
    }
}

int media_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    if (req->nsegments < 2 || strcmp(req->segments[0], "v1") != 0)
        return 0;
    if (strcmp(req->segments[1], "PlayerStreamers") == 0) {
        streamers(emu, req, resp);
        return 1;
    }
    if (strcmp(req->segments[1], "MediaProcessors") == 0) {
        processors(emu, req, resp);
        return 1;
    }
    return 0;
}

void media_free(struct emulator *emu)
{
    for (size_t i = 0; i < emu->nstreamers; i++)
        free(emu->streamers[i].status_callback);
    for (size_t i = 0; i < emu->nprocessors; i++) {
        struct emu_media_processor *p = &emu->processors[i];
        free(p->extension);
        free(p->extension_context);
        free(p->extension_environment);
        free(p->status_callback);
        free(p->composer_identity);
    }
    free(emu->streamers);
    free(emu->processors);
    emu->streamers = NULL;
    emu->processors = NULL;
    emu->nstreamers = emu->nprocessors = 0;
}

json_t *media_state(const struct emulator *emu)
{
    json_t *streamers = json_array(), *processors = json_array();
    for (size_t i = 0; i < emu->nstreamers; i++) {
        json_t *one = streamer_json(emu, &emu->streamers[i]);
        json_object_set_new(one, "players", json_integer(emu->streamers[i].players)); /* ours */
        json_array_append_new(streamers, one);
    }
    for (size_t i = 0; i < emu->nprocessors; i++)
        json_array_append_new(processors, processor_json(emu, &emu->processors[i]));
    return json_pack("{s:o, s:o}", "player_streamers", streamers, "media_processors", processors);
}

void media_tick(struct emulator *emu, int64_t now_ms)
{
    double scale = emu->time_scale > 0 ? emu->time_scale : 1;
    for (size_t i = 0; i < emu->nprocessors; i++) {
        struct emu_media_processor *p = &emu->processors[i];
        if (now_ms - p->created_ms >= (int64_t)(p->max_duration * 1000.0 / scale))
            end_processor(emu, p, "ended", "max-duration-exceeded");
    }
    for (size_t i = 0; i < emu->nstreamers; i++) {
        struct emu_player_streamer *s = &emu->streamers[i];
        if (now_ms - s->created_ms >= (int64_t)(s->max_duration * 1000.0 / scale))
            end_streamer(emu, s, "max-duration-exceeded");
    }
}

/* 1 when playback_url carries a grant of s that has not expired. */
static int grant_is_current(const struct emu_player_streamer *s, const char *playback_url, int64_t now_ms)
{
    const char *token = playback_url ? strstr(playback_url, "?token=") : NULL;
    if (!token)
        return 0;
    token += 7;
    size_t len = strcspn(token, "&");
    for (size_t i = 0; i < EMU_GRANTS_KEPT; i++) {
        const struct emu_playback_grant *g = &s->grants[i];
        if (g->token[0] && strlen(g->token) == len && strncmp(g->token, token, len) == 0)
            return g->expires_ms > now_ms;
    }
    return 0;
}

int media_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    /* segments: _emulator player-streamers {VJ...} players */
    if (req->nsegments != 4 || strcmp(req->segments[1], "player-streamers") != 0 ||
        strcmp(req->segments[3], "players") != 0)
        return 0;
    if (strcmp(req->method, "POST") != 0) {
        emu_error(resp, 405, 20004, "Method not allowed");
        return 1;
    }
    struct emu_player_streamer *s = find_streamer(emu, req->segments[2]);
    if (!s) {
        emu_not_found(resp);
        return 1;
    }
    json_t *grant = NULL;
    char *identity = emu_check_access_token(emu, emu_param(req, "Token"), "player", "playerStreamerSid", s->sid, NULL,
                                            &grant, resp);
    if (!identity)
        return 1;
    if (!grant_is_current(s, json_string_value(json_object_get(grant, "playbackUrl")), time_now_ms())) {
        emu_error(resp, 403, 20106, "Invalid Access Token grants: the playback grant is expired or unknown");
    } else if (strcmp(s->status, "started") != 0) {
        emu_error(resp, 400, 21000, "PlayerStreamer is not streaming");
    } else {
        s->players++;
        emu_reply(resp, 201,
                  json_pack("{s:s, s:s, s:s}", "player_streamer_sid", s->sid, "identity", identity, "state",
                            "playing"));
    }
    json_decref(grant);
    free(identity);
    return 1;
}
