/* stagehand-stream-worker: the Live (Media v1) side of each stream.
 *
 *   stream.create_requested a new life of the stream begins (no Twilio call).
 *   room.created            a PlayerStreamer (Video=true, MaxDuration,
 *                           StatusCallback = PUBLIC_BASE_URL/media-webhook
 *                           ?stream=<name>), then a MediaProcessor running the
 *                           video composer (ExtensionContext: the room SID,
 *                           the streamer as output, the resolution), then a
 *                           first PlaybackGrant; then media.started. Each SID
 *                           is kept as soon as it exists, so a retry adopts
 *                           it instead of creating another, and goes into
 *                           the state record at once.
 *   room.ended,
 *   stream.end_requested    ends the MediaProcessor, then the PlayerStreamer
 *                           (Live resources do not end with the room); then
 *                           media.ended.
 *   media.ended             (Twilio ended them, e.g. MaxDuration) no more
 *                           grants.
 *
 * Every GRANT_REFRESH_S a live stream gets a fresh PlaybackGrant (Ttl
 * GRANT_TTL_S), published in its state record, so that a viewer's join
 * costs no Twilio call. A reconcile pass, at start and every
 * RECONCILE_INTERVAL_S, ends the started PlayerStreamers and
 * MediaProcessors that no live stream owns (by the stream records of
 * stagehand.state) and that are older than RECONCILE_GRACE_S. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "settings.h"
#include "strmap.h"
#include "timeutil.h"
#include "worker.h"

#define SID_LEN 34

struct media_data {
    char room_sid[SID_LEN + 1];
    char streamer_sid[SID_LEN + 1];
    char processor_sid[SID_LEN + 1];
    json_t *grant;            /* the PlaybackGrant's grant object */
    int64_t grant_expires_ms; /* wall clock */
    int64_t grant_fetched_ms; /* monotonic */
    int media_over;           /* ended; no more grants */
};

struct media_config {
    long max_duration_s, grant_ttl_s, grant_refresh_ms, reconcile_interval_ms, reconcile_grace_s;
    const char *extension, *resolution, *public_base_url;
    int64_t next_reconcile_ms;
};

static void media_free(void *p)
{
    struct media_data *m = p;
    if (m)
        json_decref(m->grant);
    free(m);
}

static struct media_data *media_of(struct stream *st)
{
    if (!st->role)
        st->role = calloc(1, sizeof(struct media_data));
    return st->role;
}

static void retry_no_memory(struct outcome *out)
{
    out->kind = OUTCOME_RETRY;
    snprintf(out->error_code, sizeof out->error_code, "out_of_memory");
}

/* POSTs form to path and copies the answer's sid. Returns 0, or -1 with out. */
static int create(struct worker *w, const char *path, struct kv_list *form, char sid[SID_LEN + 1], struct outcome *out)
{
    struct twilio_result res;
    worker_twilio(w, TWILIO_MEDIA, "POST", path, form, NULL, &res);
    kv_free(form);
    const char *found = json_string_value(json_object_get(res.body, "sid"));
    int ok = res.outcome == TWILIO_OK && found && strlen(found) == SID_LEN;
    if (ok) {
        memcpy(sid, found, SID_LEN + 1);
    } else {
        worker_outcome_from_twilio(&res, out);
        if (res.outcome == TWILIO_OK)
            out->kind = OUTCOME_RETRY;
    }
    twilio_result_free(&res);
    return ok ? 0 : -1;
}

/* A fresh PlaybackGrant for the stream's streamer. Returns 0, or -1 with out. */
static int fetch_grant(struct worker *w, struct media_data *m, struct outcome *out)
{
    const struct media_config *mc = worker_role_context(w);
    char path[128];
    struct kv_list form;
    struct twilio_result res;
    if (twilio_path(path, sizeof path, "/v1/PlayerStreamers/%s/PlaybackGrant", m->streamer_sid) < 0)
        return worker_refuse_path(out, "/v1/PlayerStreamers/%s/PlaybackGrant");
    kv_init(&form);
    twilio_form_add_int(&form, "Ttl", mc->grant_ttl_s);
    twilio_form_add(&form, "AccessControlAllowOrigin", "*");
    int64_t asked_at = time_now_ms();
    worker_twilio(w, TWILIO_MEDIA, "POST", path, &form, NULL, &res);
    kv_free(&form);
    json_t *grant = json_object_get(res.body, "grant");
    int ok = res.outcome == TWILIO_OK && json_is_object(grant);
    if (ok) {
        json_decref(m->grant);
        m->grant = json_incref(grant);
        m->grant_expires_ms = asked_at + mc->grant_ttl_s * 1000;
        m->grant_fetched_ms = time_monotonic_ms();
    } else if (out) {
        worker_outcome_from_twilio(&res, out);
        if (res.outcome == TWILIO_OK)
            out->kind = OUTCOME_RETRY;
    }
    twilio_result_free(&res);
    return ok ? 0 : -1;
}

static int start_media(struct worker *w, struct stream *st, struct media_data *m, struct outcome *out)
{
    const struct media_config *mc = worker_role_context(w);
    struct kv_list form;
    char callback[1024];
    char *name = percent_encode(st->name, strlen(st->name));
    if (!name) {
        retry_no_memory(out);
        return -1;
    }
    snprintf(callback, sizeof callback, "%s/media-webhook?stream=%s", mc->public_base_url, name);
    free(name);
    if (!m->streamer_sid[0]) {
        kv_init(&form);
        twilio_form_add_bool(&form, "Video", 1);
        twilio_form_add_int(&form, "MaxDuration", mc->max_duration_s);
        twilio_form_add(&form, "StatusCallback", callback);
        if (create(w, "/v1/PlayerStreamers", &form, m->streamer_sid, out) < 0)
            return -1;
        worker_mark_dirty(st, 1);
    }
    if (!m->processor_sid[0]) {
        json_t *context = json_pack("{s:{s:s}, s:[s], s:s}", "room", "name", m->room_sid, "outputs", m->streamer_sid,
                                    "resolution", mc->resolution);
        kv_init(&form);
        twilio_form_add(&form, "Extension", mc->extension);
        twilio_form_add_json(&form, "ExtensionContext", context);
        twilio_form_add_int(&form, "MaxDuration", mc->max_duration_s);
        twilio_form_add(&form, "StatusCallback", callback);
        json_decref(context);
        if (create(w, "/v1/MediaProcessors", &form, m->processor_sid, out) < 0)
            return -1;
        worker_mark_dirty(st, 1);
    }
    if (!m->grant && fetch_grant(w, m, out) < 0)
        return -1;
    if (worker_emit(w, st->name, "media.started",
                    json_pack("{s:s, s:s}", "player_streamer_sid", m->streamer_sid, "media_processor_sid",
                              m->processor_sid)) < 0) {
        out->kind = OUTCOME_RETRY;
        snprintf(out->error_code, sizeof out->error_code, "kafka");
        snprintf(out->error, sizeof out->error, "media.started was not acknowledged");
        return -1;
    }
    return 0;
}

/* Status=ended on one Live resource; already ended or gone counts as done. */
static int end_resource(struct worker *w, const char *kind, const char *sid, struct outcome *out)
{
    char path[128];
    struct kv_list form;
    struct twilio_result res;
    if (twilio_path(path, sizeof path, "/v1/%s/%s", kind, sid) < 0)
        return worker_refuse_path(out, "/v1/{kind}/%s");
    kv_init(&form);
    twilio_form_add(&form, "Status", "ended");
    worker_twilio(w, TWILIO_MEDIA, "POST", path, &form, NULL, &res);
    kv_free(&form);
    int done = res.outcome == TWILIO_OK || res.outcome == TWILIO_NOT_FOUND;
    if (!done && out)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
    return done ? 0 : -1;
}

/* A new life of the stream begins: the old life's resources are forgotten
 * (they were ended, or the reconcile pass ends them). */
static void on_create(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    (void)w;
    (void)apply;
    struct media_data *m = media_of(st);
    if (!m) {
        retry_no_memory(out);
        return;
    }
    if (st->phase == PHASE_CREATING || st->phase == PHASE_READY)
        return;
    json_decref(m->grant);
    memset(m, 0, sizeof *m);
    st->phase = PHASE_CREATING;
    st->since = ev->ts_ms;
    worker_mark_dirty(st, 0);
}

static void on_room_created(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    struct media_data *m = media_of(st);
    const char *room = event_data_string(ev, "room_sid");
    if (!m) {
        retry_no_memory(out);
        return;
    }
    if (!room || st->phase == PHASE_NONE || st->phase == PHASE_ENDED)
        return; /* no live stream to give media to */
    if (st->phase == PHASE_READY && strcmp(m->room_sid, room) == 0)
        return; /* the same room announced again (the worker and the webhook both do) */
    snprintf(m->room_sid, sizeof m->room_sid, "%s", room);
    if (apply && start_media(w, st, m, out) < 0)
        return;
    st->phase = PHASE_READY;
    worker_mark_dirty(st, 1);
}

static void on_end(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    struct media_data *m = media_of(st);
    if (!m || st->phase != PHASE_READY)
        return;
    const char *room = event_data_string(ev, "room_sid");
    if (strcmp(ev->type, "room.ended") == 0 && room && strcmp(room, m->room_sid) != 0)
        return; /* another life's room */
    if (apply) {
        /* The processor first, then its output (as Twilio's own backend did). */
        if ((m->processor_sid[0] && end_resource(w, "MediaProcessors", m->processor_sid, out) < 0) ||
            (m->streamer_sid[0] && end_resource(w, "PlayerStreamers", m->streamer_sid, out) < 0))
            return;
        json_t *data = json_pack("{s:s}", "reason",
                                 strcmp(ev->type, "room.ended") == 0 ? "room_ended" : "stream_ended");
        if (m->streamer_sid[0])
            json_object_set_new(data, "player_streamer_sid", json_string(m->streamer_sid));
        if (m->processor_sid[0])
            json_object_set_new(data, "media_processor_sid", json_string(m->processor_sid));
        if (worker_emit(w, st->name, "media.ended", data) < 0) {
            out->kind = OUTCOME_RETRY;
            snprintf(out->error_code, sizeof out->error_code, "kafka");
            return;
        }
    }
    m->media_over = 1;
    st->phase = PHASE_ENDED;
    worker_mark_dirty(st, 1);
}

static void on_media_ended(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    (void)w;
    (void)ev;
    (void)apply;
    (void)out;
    struct media_data *m = media_of(st);
    if (m && !m->media_over) {
        m->media_over = 1; /* no more grants; the room may still run */
        worker_mark_dirty(st, 1);
    }
}

static void on_event(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    if (strcmp(ev->type, "stream.create_requested") == 0)
        on_create(w, st, ev, apply, out);
    else if (strcmp(ev->type, "room.created") == 0)
        on_room_created(w, st, ev, apply, out);
    else if (strcmp(ev->type, "room.ended") == 0 || strcmp(ev->type, "stream.end_requested") == 0)
        on_end(w, st, ev, apply, out);
    else if (strcmp(ev->type, "media.ended") == 0)
        on_media_ended(w, st, ev, apply, out);
}

static void state_fields(struct worker *w, const struct stream *st, json_t *record)
{
    (void)w;
    const struct media_data *m = st->role;
    if (!m)
        return;
    json_object_set_new(record, "room_sid", m->room_sid[0] ? json_string(m->room_sid) : json_null());
    if (m->streamer_sid[0])
        json_object_set_new(record, "player_streamer_sid", json_string(m->streamer_sid));
    if (m->processor_sid[0])
        json_object_set_new(record, "media_processor_sid", json_string(m->processor_sid));
    if (m->grant && !m->media_over) {
        json_object_set(record, "playback_grant", m->grant);
        json_object_set_new(record, "playback_grant_expires_ms", json_integer(m->grant_expires_ms));
    }
}

static void copy_sid(const json_t *record, const char *name, char out[SID_LEN + 1])
{
    const char *sid = json_string_value(json_object_get(record, name));
    snprintf(out, SID_LEN + 1, "%s", sid && strlen(sid) == SID_LEN ? sid : "");
}

static void restore(struct worker *w, struct stream *st, const json_t *record)
{
    (void)w;
    struct media_data *m = media_of(st);
    if (!m)
        return;
    copy_sid(record, "room_sid", m->room_sid);
    copy_sid(record, "player_streamer_sid", m->streamer_sid);
    copy_sid(record, "media_processor_sid", m->processor_sid);
    m->media_over = st->phase == PHASE_ENDED;
}

/* Checkpoints: the SIDs and whether the media is over; a PlaybackGrant is
 * fetched again, as after a restart. */
static json_t *snapshot_save(struct worker *w, const struct stream *st)
{
    (void)w;
    const struct media_data *m = st->role;
    return json_pack("{s:s, s:s, s:s, s:b}", "room_sid", m->room_sid, "player_streamer_sid", m->streamer_sid,
                     "media_processor_sid", m->processor_sid, "media_over", m->media_over);
}

static int snapshot_load(struct worker *w, struct stream *st, const json_t *data)
{
    (void)w;
    struct media_data *m = media_of(st);
    if (!m)
        return -1;
    /* A SID the state record named (newer than the checkpoint) is kept. */
    char sid[SID_LEN + 1];
    copy_sid(data, "room_sid", sid);
    if (!m->room_sid[0])
        memcpy(m->room_sid, sid, sizeof sid);
    copy_sid(data, "player_streamer_sid", sid);
    if (!m->streamer_sid[0])
        memcpy(m->streamer_sid, sid, sizeof sid);
    copy_sid(data, "media_processor_sid", sid);
    if (!m->processor_sid[0])
        memcpy(m->processor_sid, sid, sizeof sid);
    m->media_over = json_is_true(json_object_get(data, "media_over")) || st->phase == PHASE_ENDED;
    return 0;
}

/* --- periodic work ------------------------------------------------------------------------ */

static void refresh_grant(struct worker *w, struct stream *st, void *ctx)
{
    const int64_t *now = ctx;
    const struct media_config *mc = worker_role_context(w);
    struct media_data *m = st->role;
    if (!m || st->phase != PHASE_READY || m->media_over || !m->streamer_sid[0])
        return;
    if (m->grant && *now - m->grant_fetched_ms < mc->grant_refresh_ms)
        return;
    if (fetch_grant(w, m, NULL) == 0)
        worker_mark_dirty(st, 1);
    else
        m->grant_fetched_ms = *now - mc->grant_refresh_ms + 1000; /* try again in a second */
}

static int drop_record(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    json_decref(value);
    return 0;
}

/* The newest record under each key of stagehand.state (key -> json_t),
 * or NULL when the topic cannot be read to its end. */
static struct strmap *read_state_records(struct worker *w)
{
    char err[256];
    struct strmap *latest = strmap_new();
    struct kafka_reader_options opt = {.brokers = config_str(worker_config(w), "KAFKA_BROKERS"), .topic = TOPIC_STATE};
    struct kafka_reader *r = latest ? kafka_reader_new(&opt, err, sizeof err) : NULL;
    if (!r) {
        strmap_free(latest);
        return NULL;
    }
    int64_t until = time_monotonic_ms() + 30000;
    while (!kafka_reader_caught_up(r) && time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        char *key = msg->key ? strndup(msg->key, msg->key_len) : NULL;
        json_t *record = msg->payload ? json_loadb(msg->payload, msg->len, 0, NULL) : NULL;
        void *old = NULL;
        if (key && !msg->payload)
            old = strmap_remove(latest, key); /* a tombstone: the key is gone */
        else if (!key || !record || strmap_put(latest, key, record, &old) < 0)
            json_decref(record);
        json_decref(old);
        free(key);
        rd_kafka_message_destroy(msg);
    }
    int complete = kafka_reader_caught_up(r);
    kafka_reader_close(r);
    if (!complete) {
        strmap_each(latest, drop_record, NULL);
        strmap_free(latest);
        return NULL; /* never end resources on a partial picture */
    }
    return latest;
}

static int end_if_orphan(struct worker *w, struct strmap *live, const char *kind, json_t *resource, int64_t now_ms)
{
    const struct media_config *mc = worker_role_context(w);
    const char *sid = json_string_value(json_object_get(resource, "sid"));
    const char *created = json_string_value(json_object_get(resource, "date_created"));
    int64_t created_ms;
    if (!sid || strmap_get(live, sid))
        return 0;
    if (!created || time_parse_rfc3339(created, &created_ms) < 0 || now_ms - created_ms < mc->reconcile_grace_s * 1000)
        return 0;
    log_warn("ending a Live resource no live stream owns", "kind", kind, "sid", sid, NULL);
    return end_resource(w, kind, sid, NULL) == 0;
}

/* The records of live streams: their SIDs are owned. */
static int collect_live(void *ctx, const char *key, void *value)
{
    (void)key;
    struct strmap *live = ctx;
    json_t *record = value;
    const char *status = json_string_value(json_object_get(record, "status"));
    if (!status || strcmp(status, "ended") == 0)
        return 0;
    static const char *const fields[] = {"player_streamer_sid", "media_processor_sid"};
    for (size_t i = 0; i < 2; i++) {
        const char *sid = json_string_value(json_object_get(record, fields[i]));
        if (sid)
            strmap_put(live, sid, record, NULL);
    }
    return 0;
}

static void reconcile(struct worker *w)
{
    struct strmap *records = read_state_records(w);
    struct strmap *live = strmap_new();
    if (!records || !live) {
        if (records)
            strmap_each(records, drop_record, NULL);
        strmap_free(records);
        strmap_free(live);
        return;
    }
    strmap_each(records, collect_live, live);
    static const struct {
        const char *path, *key, *kind;
    } lists[] = {{"/v1/MediaProcessors?Status=started", "media_processors", "MediaProcessors"},
                 {"/v1/PlayerStreamers?Status=started", "player_streamers", "PlayerStreamers"},
                 {"/v1/PlayerStreamers?Status=created", "player_streamers", "PlayerStreamers"}};
    int64_t now = time_now_ms();
    int ended = 0;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        struct twilio_result res;
        worker_twilio(w, TWILIO_MEDIA, "GET", lists[i].path, NULL, NULL, &res);
        size_t k;
        json_t *resource;
        json_array_foreach (json_object_get(res.body, lists[i].key), k, resource)
            ended += end_if_orphan(w, live, lists[i].kind, resource, now);
        twilio_result_free(&res);
    }
    strmap_each(records, drop_record, NULL);
    strmap_free(records);
    strmap_free(live);
    char count[16];
    snprintf(count, sizeof count, "%d", ended);
    log_info("reconcile pass done", "ended", count, NULL);
}

static void tick(struct worker *w, int64_t now_ms)
{
    struct media_config *mc = worker_role_context(w);
    worker_each_stream(w, refresh_grant, &now_ms);
    if (now_ms >= mc->next_reconcile_ms) {
        mc->next_reconcile_ms = now_ms + mc->reconcile_interval_ms;
        reconcile(w);
    }
}

static int init(struct worker *w, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    static struct media_config mc;
    const struct config *c = worker_config(w);
    mc.max_duration_s = (long)config_int(c, "STREAM_MAX_DURATION_S");
    mc.grant_ttl_s = (long)config_int(c, "GRANT_TTL_S");
    mc.grant_refresh_ms = (long)config_int(c, "GRANT_REFRESH_S") * 1000;
    mc.reconcile_interval_ms = (long)config_int(c, "RECONCILE_INTERVAL_S") * 1000;
    mc.reconcile_grace_s = (long)config_int(c, "RECONCILE_GRACE_S");
    mc.extension = config_str(c, "COMPOSER_EXTENSION");
    mc.resolution = config_str(c, "COMPOSER_RESOLUTION");
    mc.public_base_url = config_str(c, "PUBLIC_BASE_URL");
    mc.next_reconcile_ms = 0; /* at start */
    worker_set_role_context(w, &mc);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const types[] = {"stream.create_requested", "room.created", "room.ended",
                                        "stream.end_requested",    "media.ended",  NULL};
    const struct worker_role role = {
        .name = "stream",
        .event_types = types,
        .on_event = on_event,
        .state_fields = state_fields,
        .restore = restore,
        .snapshot_save = snapshot_save,
        .snapshot_load = snapshot_load,
        .tick = tick,
        .free_role = media_free,
        .settings = settings_media,
        .settings_count = settings_media_count,
        .init = init,
    };
    return worker_main(&role, argc, argv);
}
