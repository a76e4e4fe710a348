/* The client API, compatible with Twilio's reference backend (same paths,
 * bodies and success shapes), with honest status codes. Each accepted
 * request becomes one event on stagehand.events and is answered after
 * Kafka acknowledged it; create-stream and the joins then wait for the
 * state view to show what their answer needs (SIDs, the playback grant),
 * and mint the access token from it.
 *
 *   POST /verify-passcode              -> {"verified": true}
 *   POST /create-stream                stream.create_requested
 *   POST /join-stream-as-speaker       user.joined (speaker)
 *   POST /join-stream-as-viewer        user.joined (viewer)
 *   POST /viewer-connected-to-player   viewer.connected
 *   POST /raise-hand                   hand.raised | hand.lowered
 *   POST /send-speaker-invite          speaker.invited           (host only)
 *   POST /remove-speaker               speaker.remove_requested  (host only)
 *   POST /delete-stream                stream.end_requested      (host only)
 *   GET  /streams/{name}               what the view knows (operators)
 *   GET  /streams/{name}/state         the public state (everyone; HEAD too)
 *
 * In jwt mode the stage is the host's: join-stream-as-speaker admits only
 * the host and the users the room worker lists as invited (view_may_speak),
 * and a speaker's token other than the host's lives SPEAKER_TOKEN_TTL_S.
 * In passcode mode the per-identity budget is kept per client too.
 *
 * Choices where the reference is silent or wrong: send-speaker-invite and
 * remove-speaker take stream_name, or the reference's room_sid / room_name;
 * create-stream answers 202 with a status URL when the stream is not ready
 * within CREATE_WAIT_MS (the event was accepted; nothing is lost), and at
 * once with Prefer: respond-async; a join that cannot be answered in time
 * gets 503 with Retry-After; chat (Twilio Conversations) is not offered, so
 * chat_enabled is always false.
 *
 * Viewer tiers: a viewer's join is admitted to the eager tier (the sync
 * worker provisions it in join order) while the stream's eager admissions
 * are below SYNC_EAGER_VIEWERS (view_admit_eager counts them); beyond, the
 * user.joined event says sync_access false and the viewer is provisioned
 * when it raises a hand or is invited. Speakers always get Sync access. The
 * join answers add "sync_access" and "public_state_url" to the
 * reference's shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "form.h"
#include "ingress.h"
#include "log.h"
#include "timeutil.h"

#define USER_DOCUMENT_PREFIX "user-"

/* What one request is about, once authenticated and validated. */
struct call {
    struct params params;
    char *caller;         /* jwt mode: the token's identity; passcode mode: NULL */
    const char *identity; /* the user the request is about */
    const char *stream;
    struct stream_info info;
    int sync_access; /* joins: 1 or 0, carried to the answer; else -1 */
};

static void call_free(struct call *c)
{
    params_free(&c->params);
    free(c->caller);
}

static int not_found(struct api_error *e)
{
    return api_fail(e, 404, "stream not found", "There is no live stream with that name.");
}

/* Authenticates, parses the body and applies the caller's rate limit.
 * Returns 0, or -1 with e filled. */
static int begin(struct request *req, struct call *c, struct api_error *e)
{
    struct ingress *ing = req->ing;
    const char *header = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    memset(c, 0, sizeof *c);
    c->sync_access = -1;
    if (auth_check(&ing->auth, header, &c->caller, e) < 0)
        return -1;
    if (params_parse(type, req->body, req->body_len, &c->params, e) < 0)
        return -1;
    return 0;
}

/* Takes one request from identity's budget. In jwt mode the budget is the
 * identity's own. In passcode mode anyone may name any identity, so the
 * budget is the identity's as seen from one client ("<key> <identity>",
 * the key being the per-IP limit's, which has no space): a caller who
 * names a victim spends only its own share, never the victim's. */
static int identity_allowed(struct request *req, const char *identity, struct api_error *e)
{
    char key[INET6_ADDRSTRLEN + IDENTITY_MAX_CHARS * 4 + 2];
    const char *budget = identity;
    if (req->ing->auth.mode == AUTH_PASSCODE) {
        int n = snprintf(key, sizeof key, "%s %s", req->client_ip, identity);
        if (n < 0 || (size_t)n >= sizeof key)
            return api_fail(e, 400, "invalid user_identity", "The identity is too long.");
        budget = key;
    }
    long wait_ms = ratelimit_take(req->ing->by_identity, budget, time_monotonic_ms());
    if (wait_ms == 0)
        return 0;
    api_fail(e, 429, "too many requests", "Too many requests for this identity; retry later.");
    e->retry_after_s = (wait_ms + 999) / 1000;
    return -1;
}

/* The user a self-service request is about: in jwt mode the caller (the
 * body's user_identity, if given, must be the same), in passcode mode the
 * body's user_identity. */
static int self_identity(struct call *c, struct api_error *e)
{
    const char *claimed = NULL;
    if (!c->caller) {
        c->identity = params_identity(&c->params, "user_identity", e);
        return c->identity ? 0 : -1;
    }
    if (params_optional_identity(&c->params, "user_identity", &claimed, e) < 0)
        return -1;
    if (claimed && strcmp(claimed, c->caller) != 0)
        return api_fail(e, 403, "identity mismatch", "user_identity must be the identity of the bearer token.");
    c->identity = c->caller;
    return 0;
}

/* The stream a request names: stream_name, or for the reference's host
 * actions the room's SID (room_sid) or unique name (room_name). */
static int named_stream(struct request *req, struct call *c, const char *alternative, struct api_error *e)
{
    if (params_has(&c->params, "stream_name") || !alternative || !params_has(&c->params, alternative)) {
        c->stream = params_stream(&c->params, "stream_name", e);
        return c->stream ? 0 : -1;
    }
    if (strcmp(alternative, "room_name") == 0) {
        c->stream = params_stream(&c->params, "room_name", e);
        return c->stream ? 0 : -1;
    }
    const json_t *sid = json_object_get(c->params.fields, "room_sid");
    const char *text = json_string_value(sid);
    if (!text || strlen(text) != VIEW_SID_LEN || strncmp(text, "RM", 2) != 0)
        return api_fail(e, 400, "invalid room_sid", "The room_sid parameter must be a Room SID (RM...).");
    char name[STREAM_NAME_MAX_CHARS * 4 + 1];
    if (!view_stream_for_sid(req->ing->view, text, name, sizeof name))
        return not_found(e);
    json_object_set_new(c->params.fields, "stream_name", json_string(name));
    c->stream = json_string_value(json_object_get(c->params.fields, "stream_name"));
    return 0;
}

/* The stream must be known and not over. */
static int stream_alive(struct request *req, struct call *c, struct api_error *e)
{
    view_get(req->ing->view, c->stream, &c->info);
    if (c->info.status == STREAM_UNKNOWN || c->info.status == STREAM_ENDED)
        return not_found(e);
    return 0;
}

/* Host-only actions: in jwt mode the caller must be the stream's host. In
 * passcode mode the caller is unknown and the check cannot be made. */
static int host_only(struct call *c, struct api_error *e)
{
    if (!c->caller)
        return 0;
    if (!c->info.host[0] || strcmp(c->info.host, c->caller) != 0)
        return api_fail(e, 403, "not the host", "Only the stream's host may do this.");
    return 0;
}

/* Speakers in jwt mode: the stage is the host's. Only the host, or a user
 * the host invited (and has not removed since, nor seen rejoin as a
 * viewer), may join as a speaker; the room worker publishes who that is.
 * In passcode mode anyone may, as in the reference. */
static int stage_allowed(struct request *req, struct call *c, struct api_error *e)
{
    if (!c->caller || view_may_speak(req->ing->view, c->stream, c->identity))
        return 0;
    return api_fail(e, 403, "not invited",
                    "Only the stream's host, or a user the host invited, may join as a speaker.");
}

/* Builds the event (data taken) and produces it; the answer comes later. */
static void emit(struct request *req, struct call *c, const char *type, const char *actor, json_t *data,
                 int64_t deadline_ms, request_step *on_ack, int ack_status, json_t *ack_body)
{
    struct event ev;
    char err[256];
    char *value = NULL;
    if (event_build(&ev, type, c->stream, "api", actor, data, err, sizeof err) < 0 ||
        !(value = event_encode(&ev, err, sizeof err))) {
        /* Everything was validated already: this is our bug, not the client's. */
        struct api_error e;
        log_error("event refused by its schema", "type", type, "error", err, NULL);
        api_fail(&e, 500, "internal error", "The event could not be built.");
        event_free(&ev);
        json_decref(ack_body);
        request_fail(req, &e);
        return;
    }
    json_decref(req->ctx);
    req->ctx = json_pack("{s:s, s:s, s:i}", "stream", c->stream, "identity", c->identity ? c->identity : "",
                         "sync_access", c->sync_access);
    request_emit(req, &ev, value, deadline_ms, on_ack, NULL, ack_status, ack_body);
}

static int64_t produce_deadline(const struct request *req)
{
    return time_monotonic_ms() + req->ing->produce_timeout_ms;
}

static int64_t wait_deadline(const struct request *req)
{
    return time_monotonic_ms() + req->ing->produce_timeout_ms + req->ing->create_wait_ms;
}

/* --- tokens and answers ------------------------------------------------------------ */

static json_t *object_names(const char *identity)
{
    json_t *names = json_pack("{s:s, s:s, s:s}", "speakers_map", "speakers", "viewers_map", "viewers",
                              "raised_hands_map", "raised_hands");
    if (identity) {
        size_t n = strlen(USER_DOCUMENT_PREFIX) + strlen(identity) + 1;
        char *doc = malloc(n);
        if (doc) {
            snprintf(doc, n, USER_DOCUMENT_PREFIX "%s", identity);
            json_object_set_new(names, "user_document", json_string(doc));
            free(doc);
        }
    }
    return names;
}

/* PUBLIC_BASE_URL/streams/<name, percent-encoded>/state, malloc'd. */
static char *public_state_url(const struct ingress *ing, const char *stream)
{
    char *encoded = percent_encode(stream, strlen(stream));
    if (!encoded)
        return NULL;
    size_t n = strlen(ing->public_base_url) + strlen(encoded) + sizeof "/streams//state";
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%s/streams/%s/state", ing->public_base_url, encoded);
    free(encoded);
    return url;
}

/* How long identity's token lives: TOKEN_TTL_S, but in jwt mode a
 * speaker's other than the host's at most SPEAKER_TOKEN_TTL_S, so that a
 * removed speaker's token soon cannot connect again. */
static long token_ttl(const struct ingress *ing, const char *identity, const struct stream_info *info, int viewer)
{
    long ttl = ing->token_ttl_s;
    if (!viewer && ing->auth.mode == AUTH_JWT && strcmp(info->host, identity) != 0 && ing->speaker_token_ttl_s < ttl)
        ttl = ing->speaker_token_ttl_s;
    return ttl;
}

/* Answers with an access token for identity: video grant for the room
 * (speakers) or the player grant (viewers), and the Sync grant. A join
 * (sync_access 0 or 1; create-stream passes -1) adds "sync_access" and
 * "public_state_url" to the reference's fields. */
static void answer_with_token(struct request *req, const char *identity, const struct stream_info *info,
                              const char *stream, int viewer, int with_document, int sync_access)
{
    struct ingress *ing = req->ing;
    json_t *grant = NULL;
    if (viewer)
        grant = json_loads(info->playback_grant, 0, NULL);
    struct token_grants grants = {identity, viewer ? NULL : stream, info->service_sid, grant};
    char err[128];
    char *jwt = token_mint(&ing->token_key, &grants, token_ttl(ing, identity, info, viewer), time_now_ms() / 1000, err,
                           sizeof err);
    json_decref(grant);
    if (!jwt) {
        struct api_error e;
        log_error("cannot mint an access token", "error", err, NULL);
        api_fail(&e, 500, "internal error", "The access token could not be made.");
        request_fail(req, &e);
        return;
    }
    json_t *answer = json_pack("{s:s, s:o, s:s, s:b}", "token", jwt, "sync_object_names",
                               object_names(with_document ? identity : NULL), "room_sid", info->room_sid,
                               "chat_enabled", 0);
    free(jwt);
    char *url = sync_access >= 0 ? public_state_url(ing, stream) : NULL;
    if (answer && sync_access >= 0 &&
        (!url || json_object_set_new(answer, "sync_access", json_boolean(sync_access)) < 0 ||
         json_object_set_new(answer, "public_state_url", json_string(url)) < 0)) {
        json_decref(answer);
        answer = NULL;
    }
    free(url);
    if (!answer) {
        struct api_error e;
        api_fail(&e, 500, "internal error", "Out of memory.");
        request_fail(req, &e);
        return;
    }
    request_answer(req, 200, answer);
}

static const char *ctx_text(const struct request *req, const char *name)
{
    return json_string_value(json_object_get(req->ctx, name));
}

/* --- create-stream ------------------------------------------------------------------ */

/* 202: accepted, not live yet; where to look. The name is percent-encoded
 * in the URL: it may hold spaces, '?' and any UTF-8, none of which belong
 * raw in a Location header (64 characters of at most 4 bytes, each byte
 * at most 3 when encoded: req->location holds the longest). */
static void answer_creating(struct request *req, const char *stream)
{
    char *encoded = percent_encode(stream, strlen(stream));
    char *url = NULL;
    if (encoded) {
        size_t n = sizeof "/streams/" + strlen(encoded);
        if ((url = malloc(n)))
            snprintf(url, n, "/streams/%s", encoded);
    }
    free(encoded);
    if (!url) {
        struct api_error e;
        api_fail(&e, 500, "internal error", "Out of memory.");
        request_fail(req, &e);
        return;
    }
    if (strlen(url) < sizeof req->location)
        memcpy(req->location, url, strlen(url) + 1);
    request_answer(req, 202, json_pack("{s:s, s:s, s:s}", "stream", stream, "status", "creating", "status_url", url));
    free(url);
}

static int create_step(struct request *req, int expired)
{
    struct stream_info info;
    const char *stream = ctx_text(req, "stream");
    const char *host = ctx_text(req, "identity");
    view_get(req->ing->view, stream, &info);
    if (info.status == STREAM_LIVE && info.host[0] && strcmp(info.host, host) != 0) {
        struct api_error e;
        api_fail(&e, 409, "stream exists", "Another host created a stream with that name first.");
        request_fail(req, &e);
        return 1;
    }
    if (info.status == STREAM_LIVE) {
        answer_with_token(req, host, &info, stream, 0, 0, -1);
        return 1;
    }
    if (!expired)
        return 0;
    answer_creating(req, stream);
    return 1;
}

static int create_async_ack(struct request *req, int expired)
{
    (void)expired;
    answer_creating(req, ctx_text(req, "stream"));
    return 1;
}

static int create_ack(struct request *req, int expired)
{
    (void)expired;
    req->on_tick = create_step;
    return create_step(req, 0);
}

/* The limits on live streams (see quota.h): per host, in all, and in
 * passcode mode, where the host is only what the body says, per client
 * address. 409 when one is reached. */
static int stream_quota(struct request *req, struct call *c, struct api_error *e)
{
    const char *client = c->caller ? NULL : req->client_ip;
    switch (quota_claim(req->ing->quota, req->ing->view, c->stream, c->identity, client, time_monotonic_ms())) {
    case QUOTA_HOST:
        return api_fail(e, 409, "too many streams",
                        "This host already has as many live streams as one host may; end one first.");
    case QUOTA_TOTAL:
        return api_fail(e, 409, "too many streams",
                        "The service runs as many live streams as it may; try again when one has ended.");
    case QUOTA_CLIENT:
        return api_fail(e, 409, "too many streams",
                        "This address has started as many live streams as one address may; end one first.");
    default:
        return 0;
    }
}

static int create_stream(struct request *req, struct call *c, struct api_error *e)
{
    if (self_identity(c, e) < 0 || named_stream(req, c, NULL, e) < 0)
        return -1;
    if (identity_allowed(req, c->identity, e) < 0)
        return -1;
    view_get(req->ing->view, c->stream, &c->info);
    if (c->info.status == STREAM_LIVE)
        return api_fail(e, 409, "stream exists", "A stream with that name is already live.");
    if (c->info.status == STREAM_CREATING && c->info.host[0] && strcmp(c->info.host, c->identity) != 0)
        return api_fail(e, 409, "stream exists", "Another host is creating a stream with that name.");
    if (stream_quota(req, c, e) < 0)
        return -1;
    const char *prefer = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Prefer");
    int async = prefer && strcasestr(prefer, "respond-async") != NULL;
    emit(req, c, "stream.create_requested", c->identity, json_pack("{s:s}", "host", c->identity),
         async ? produce_deadline(req) : wait_deadline(req), async ? create_async_ack : create_ack, 0, NULL);
    return 0;
}

/* --- joins --------------------------------------------------------------------------- */

static int join_step(struct request *req, int expired, int viewer)
{
    struct stream_info info;
    const char *stream = ctx_text(req, "stream");
    view_get(req->ing->view, stream, &info);
    struct api_error e;
    if (info.status == STREAM_ENDED || info.status == STREAM_UNKNOWN) {
        not_found(&e);
        request_fail(req, &e);
        return 1;
    }
    int grant_fresh = info.media_ready && info.playback_grant_expires_ms > time_now_ms();
    if (info.status == STREAM_LIVE && (!viewer || grant_fresh)) {
        int sync_access = json_integer_value(json_object_get(req->ctx, "sync_access")) != 0;
        answer_with_token(req, ctx_text(req, "identity"), &info, stream, viewer, 1, sync_access);
        return 1;
    }
    if (!expired)
        return 0;
    api_fail(&e, 503, "stream not ready", "The stream is still starting; retry in a moment.");
    e.retry_after_s = 1;
    request_fail(req, &e);
    return 1;
}

static int speaker_step(struct request *req, int expired)
{
    return join_step(req, expired, 0);
}

static int viewer_step(struct request *req, int expired)
{
    return join_step(req, expired, 1);
}

static int speaker_ack(struct request *req, int expired)
{
    (void)expired;
    req->on_tick = speaker_step;
    return speaker_step(req, 0);
}

static int viewer_ack(struct request *req, int expired)
{
    (void)expired;
    req->on_tick = viewer_step;
    return viewer_step(req, 0);
}

static int join_stream(struct request *req, struct call *c, const char *role, struct api_error *e)
{
    if (self_identity(c, e) < 0 || named_stream(req, c, NULL, e) < 0)
        return -1;
    if (identity_allowed(req, c->identity, e) < 0 || stream_alive(req, c, e) < 0)
        return -1;
    int viewer = strcmp(role, "viewer") == 0;
    if (!viewer && stage_allowed(req, c, e) < 0)
        return -1;
    c->sync_access = !viewer || view_admit_eager(req->ing->view, c->stream, req->ing->sync_eager_viewers);
    emit(req, c, "user.joined", c->identity,
         json_pack("{s:s, s:s, s:b}", "identity", c->identity, "role", role, "sync_access", c->sync_access),
         wait_deadline(req), viewer ? viewer_ack : speaker_ack, 0, NULL);
    return 0;
}

/* --- the other actions -------------------------------------------------------------- */

static int viewer_connected(struct request *req, struct call *c, struct api_error *e)
{
    if (self_identity(c, e) < 0 || named_stream(req, c, NULL, e) < 0)
        return -1;
    if (identity_allowed(req, c->identity, e) < 0 || stream_alive(req, c, e) < 0)
        return -1;
    emit(req, c, "viewer.connected", c->identity, json_pack("{s:s}", "identity", c->identity), produce_deadline(req),
         NULL, 200, json_pack("{s:b}", "success", 1));
    return 0;
}

static int raise_hand(struct request *req, struct call *c, struct api_error *e)
{
    int raised;
    if (self_identity(c, e) < 0 || named_stream(req, c, NULL, e) < 0 ||
        params_bool(&c->params, "hand_raised", &raised, e) < 0)
        return -1;
    if (identity_allowed(req, c->identity, e) < 0 || stream_alive(req, c, e) < 0)
        return -1;
    long cap = c->info.raised_hands_cap > 0 ? c->info.raised_hands_cap : req->ing->raised_hands_cap;
    if (raised && c->info.raised_hands >= cap)
        return api_fail(e, 409, "raised hands full", "The stream already has %ld raised hands, its limit.", cap);
    emit(req, c, raised ? "hand.raised" : "hand.lowered", c->identity, json_pack("{s:s}", "identity", c->identity),
         produce_deadline(req), NULL, 200, json_pack("{s:b}", "sent", 1));
    return 0;
}

/* A host action on another user: user_identity names the user, the stream
 * is stream_name or the reference's alternative field; answers
 * {answer_key: true} once the event is in Kafka. */
static int host_action_on_user(struct request *req, struct call *c, const char *alternative, const char *type,
                               const char *answer_key, struct api_error *e)
{
    c->identity = params_identity(&c->params, "user_identity", e);
    if (!c->identity || named_stream(req, c, alternative, e) < 0)
        return -1;
    if (stream_alive(req, c, e) < 0 || host_only(c, e) < 0)
        return -1;
    if (c->caller && identity_allowed(req, c->caller, e) < 0)
        return -1;
    emit(req, c, type, c->caller, json_pack("{s:s}", "identity", c->identity), produce_deadline(req), NULL, 200,
         json_pack("{s:b}", answer_key, 1));
    return 0;
}

static int send_speaker_invite(struct request *req, struct call *c, struct api_error *e)
{
    return host_action_on_user(req, c, "room_sid", "speaker.invited", "sent", e);
}

static int remove_speaker(struct request *req, struct call *c, struct api_error *e)
{
    return host_action_on_user(req, c, "room_name", "speaker.remove_requested", "removed", e);
}

static int delete_stream(struct request *req, struct call *c, struct api_error *e)
{
    if (named_stream(req, c, NULL, e) < 0 || stream_alive(req, c, e) < 0 || host_only(c, e) < 0)
        return -1;
    if (c->caller && identity_allowed(req, c->caller, e) < 0)
        return -1;
    emit(req, c, "stream.end_requested", c->caller, json_pack("{s:s}", "reason", "host_request"), produce_deadline(req),
         NULL, 200, json_pack("{s:b}", "deleted", 1));
    return 0;
}

/* --- routing ------------------------------------------------------------------------ */

struct route {
    const char *path;
    int (*handle)(struct request *req, struct call *c, struct api_error *e);
    const char *role; /* joins only */
};

static int verify_passcode(struct request *req, struct call *c, struct api_error *e)
{
    (void)c;
    (void)e;
    request_answer(req, 200, json_pack("{s:b}", "verified", 1));
    return 0;
}

static const struct route routes[] = {
    {"/verify-passcode", verify_passcode, NULL},
    {"/create-stream", create_stream, NULL},
    {"/join-stream-as-speaker", NULL, "speaker"},
    {"/join-stream-as-viewer", NULL, "viewer"},
    {"/viewer-connected-to-player", viewer_connected, NULL},
    {"/raise-hand", raise_hand, NULL},
    {"/send-speaker-invite", send_speaker_invite, NULL},
    {"/remove-speaker", remove_speaker, NULL},
    {"/delete-stream", delete_stream, NULL},
};

static void stream_status(struct request *req, const char *name)
{
    struct call c;
    struct api_error e;
    if (begin(req, &c, &e) < 0) {
        call_free(&c);
        request_fail(req, &e);
        return;
    }
    call_free(&c);
    const char *problem = stream_name_problem(name, strlen(name));
    json_t *body = problem ? NULL : view_stream_json(req->ing->view, name);
    if (!body) {
        not_found(&e);
        request_fail(req, &e);
        return;
    }
    request_answer(req, 200, body);
}

/* --- GET /streams/{name}/state --------------------------------------------------------- */

#define STREAMS_PREFIX "/streams/"
#define STATE_SUFFIX "/state"
#define PREFIX_LEN (sizeof STREAMS_PREFIX - 1)
#define SUFFIX_LEN (sizeof STATE_SUFFIX - 1)

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether raw_uri, the request target as received, is
 * /streams/<segment>/state (a query is allowed and ignored). libmicrohttpd
 * hands routes the path already decoded, where "/streams/a%2Fb/state"
 * would look like three segments; here the segment is cut from the raw
 * path and then decoded. Returns 0 for another path; 1 with the decoded
 * name in name (namelen bytes); -1 with e filled (400) when the segment
 * has a bad escape or is not a valid stream name. */
static int state_path(const char *raw_uri, char *name, size_t namelen, struct api_error *e)
{
    size_t len = strcspn(raw_uri, "?");
    if (len < PREFIX_LEN + SUFFIX_LEN || strncmp(raw_uri, STREAMS_PREFIX, PREFIX_LEN) != 0 ||
        memcmp(raw_uri + len - SUFFIX_LEN, STATE_SUFFIX, SUFFIX_LEN) != 0)
        return 0;
    const char *segment = raw_uri + PREFIX_LEN;
    size_t segment_len = len - PREFIX_LEN - SUFFIX_LEN;
    if (memchr(segment, '/', segment_len))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < segment_len; i++) {
        int c = (unsigned char)segment[i];
        if (c == '%') {
            if (i + 2 >= segment_len || hex_digit(segment[i + 1]) < 0 || hex_digit(segment[i + 2]) < 0)
                return api_fail(e, 400, "invalid path", "The path has a %% not followed by two hex digits.");
            c = hex_digit(segment[i + 1]) * 16 + hex_digit(segment[i + 2]);
            i += 2;
        }
        if (n + 1 >= namelen)
            return api_fail(e, 400, "invalid stream name", "The stream name in the path is too long.");
        name[n++] = (char)c;
    }
    name[n] = '\0';
    const char *problem = stream_name_problem(name, n);
    if (problem)
        return api_fail(e, 400, "invalid stream name", "The stream name in the path %s.", problem);
    return 1;
}

struct validator_match {
    const char *etag;
    int matched;
};

static enum MHD_Result match_if_none_match(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct validator_match *m = cls;
    if (key && value && strcasecmp(key, "If-None-Match") == 0 && etag_matches(value, m->etag))
        m->matched = 1;
    return MHD_YES;
}

/* 1 when one of the request's If-None-Match fields matches etag. */
static int not_modified(struct request *req, const char *etag)
{
    struct validator_match m = {etag, 0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, match_if_none_match, &m);
    return m.matched;
}

/* GET (or HEAD) /streams/{name}/state: the view's rendered public state,
 * 304 when the client's copy is current. path_rc and path_error are
 * state_path's verdict, reported after the method and the credentials. */
static void public_state(struct request *req, const char *method, const char *name, int path_rc,
                         const struct api_error *path_error)
{
    struct api_error e;
    char *caller = NULL;
    snprintf(req->route, sizeof req->route, "/streams/state");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        api_fail(&e, 405, "method not allowed", "Use GET (or HEAD).");
        request_fail(req, &e);
        return;
    }
    const char *header = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (auth_check(&req->ing->auth, header, &caller, &e) < 0) {
        request_fail(req, &e);
        return;
    }
    free(caller);
    if (path_rc < 0) {
        request_fail(req, path_error);
        return;
    }
    int oom = 0;
    struct view_public *p = view_public_get(req->ing->view, name, &oom);
    if (!p) {
        if (oom)
            api_fail(&e, 503, "unavailable", "Out of memory; retry in a moment.");
        else
            not_found(&e);
        e.retry_after_s = oom ? 1 : 0;
        request_fail(req, &e);
        return;
    }
    memcpy(req->etag, p->etag, sizeof req->etag);
    req->cache_control = "public, max-age=1";
    /* A 304 goes out empty. libmicrohttpd (0.9.75) then writes
     * "Content-Length: 0", where RFC 9110 (8.6) wants no length or the
     * 200's; but given the 200's, clients built on the old http_parser
     * (wrk among them) wait for that many body bytes that never come, and
     * caches ignore a 304's Content-Length (RFC 9111, 3.2). */
    char *body = NULL;
    if (not_modified(req, p->etag)) {
        request_answer(req, 304, NULL);
    } else if ((body = malloc(p->len + 1))) {
        memcpy(body, p->body, p->len + 1);
        request_answer_text(req, 200, "application/json", body);
    } else {
        req->etag[0] = '\0';
        req->cache_control = NULL;
        api_fail(&e, 503, "unavailable", "Out of memory; retry in a moment.");
        e.retry_after_s = 1;
        request_fail(req, &e);
    }
    view_public_release(p);
}

void api_handle(struct request *req, const char *method, const char *path)
{
    struct api_error e;
    char name[STREAM_NAME_MAX_CHARS * 4 + 1];
    int state = state_path(req->raw_uri, name, sizeof name, &e);
    if (state != 0) {
        public_state(req, method, name, state, &e);
        return;
    }
    if (strncmp(path, "/streams/", 9) == 0) {
        snprintf(req->route, sizeof req->route, "/streams");
        if (strcmp(method, "GET") != 0) {
            api_fail(&e, 405, "method not allowed", "Use GET.");
            request_fail(req, &e);
            return;
        }
        stream_status(req, path + 9);
        return;
    }
    const struct route *route = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(path, routes[i].path) == 0)
            route = &routes[i];
    if (!route) {
        snprintf(req->route, sizeof req->route, "other");
        api_fail(&e, 404, "not found", "There is no such endpoint.");
        request_fail(req, &e);
        return;
    }
    snprintf(req->route, sizeof req->route, "%s", route->path);
    if (strcmp(method, "POST") != 0) {
        api_fail(&e, 405, "method not allowed", "Use POST.");
        request_fail(req, &e);
        return;
    }
    struct call c;
    int rc = begin(req, &c, &e);
    if (rc == 0)
        rc = route->role ? join_stream(req, &c, route->role, &e) : route->handle(req, &c, &e);
    call_free(&c);
    if (rc < 0)
        request_fail(req, &e);
}
