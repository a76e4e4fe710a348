/* stagehand-sync-worker: what clients see of a stream, in Twilio Sync.
 *
 *   stream.create_requested  the stream's Sync service (ACL on, WebhookUrl =
 *                            PUBLIC_BASE_URL/sync-webhook?stream=<name>,
 *                            reachability webhooks with debouncing), maps
 *                            speakers, viewers, raised_hands, the "stream"
 *                            document, the host's {host:true} speakers item
 *                            and read permissions; then sync.ready.
 *   user.joined              document user-<identity> ({speaker_invite:
 *                            false} for viewers) and read permissions on it
 *                            and the three maps.
 *   viewer.connected /       the exact viewer set. A viewers round, at most
 *   viewer.disconnected      every COUNT_INTERVAL_MS, brings the viewers map
 *                            to it (at most VIEWERS_MAP_CAP items; those who
 *                            left removed, the longest-waiting listed in their
 *                            place) and writes the count to the "stream"
 *                            document when it changed.
 *                            A disconnected Sync endpoint also lowers the
 *                            user's hand, but never takes a speaker off the
 *                            stage (the room decides that).
 *   hand.raised / lowered    raised_hands, in arrival order, at most
 *                            RAISED_HANDS_CAP; a hand over the cap is refused
 *                            and the refusal written on the user's document.
 *   speaker.invited          speaker_invite:true on the user's document.
 *   participant.connected    a speakers item ({host:true} for the host, who
 *                            keeps it across reconnects); off viewers and
 *                            raised_hands.
 *   participant.disconnected off speakers; the host gone for HOST_GRACE_S
 *                            ends the stream for everyone (stream.end_requested,
 *                            reason host_left).
 *   room.ended + media.ended the Sync service is deleted once both came.
 *
 * Writes stay under Twilio's limits before Twilio has to say no: a token
 * bucket per Sync object (SYNC_WRITES_PER_S, burst SYNC_BURST_S) and one
 * per service for creations and deletions; an event that would exceed one
 * waits (its partition paused), a count update waits for the next round.
 * Its state record carries service_sid, viewer_count (as written),
 * raised_hands and raised_hands_cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "ratelimit.h"
#include "settings.h"
#include "timeutil.h"
#include "users.h"
#include "worker.h"

#define SID_LEN 34
#define BUCKET_KEYS 100000

struct sync_data {
    char service_sid[SID_LEN + 1];
    int created;                  /* maps, documents, host item, permissions all made */
    struct users users;           /* by identity */
    struct user_list waiting;     /* viewers not in the viewers map, in join order */
    struct user_list shown;       /* the viewers map's items as Sync has them (departed ones too) */
    int shown_known;              /* shown was read from Sync, or the map made, in this process */
    long viewers;
    struct user **hands;          /* raised hands in arrival order */
    long nhands;
    long count_written;           /* viewer_count in the "stream" document; -1 unknown */
    int64_t next_round_ms;        /* monotonic; the next viewers round may not come before */
    int64_t host_left_ms;         /* monotonic; 0 while the host is on stage or never came */
    int end_requested, room_ended, media_ended, deleted;
    int verify;                   /* applying again (stagehand-replay offsets): read before writing */
};

struct sync_config {
    long viewers_cap, hands_cap, count_interval_ms, host_grace_ms, debounce_ms;
    const char *public_base_url;
    struct ratelimit *writes;     /* per Sync object */
    struct ratelimit *creations;  /* per service */
};

static const char *const maps[] = {"speakers", "viewers", "raised_hands"};

/* --- memory ------------------------------------------------------------------------------ */

static void sync_reset(struct sync_data *d)
{
    users_clear(&d->users);
    free(d->hands);
    memset(d, 0, sizeof *d);
    d->count_written = -1;
}

static void sync_free(void *p)
{
    if (p)
        sync_reset(p);
    free(p);
}

static struct sync_data *sync_of(struct worker *w, struct stream *st)
{
    const struct sync_config *sc = worker_role_context(w);
    struct sync_data *d = st->role;
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d)
            return NULL;
        d->count_written = -1;
        st->role = d;
    }
    if (!d->hands && !(d->hands = calloc((size_t)sc->hands_cap, sizeof *d->hands)))
        return NULL;
    return d;
}

/* --- Sync calls -------------------------------------------------------------------------- */

static void retry_later(struct outcome *out, long wait_ms, const char *why)
{
    out->kind = OUTCOME_RETRY;
    out->retry_after_ms = wait_ms;
    snprintf(out->error_code, sizeof out->error_code, "%s", why);
}

/* Takes a token for a write to object (or a creation in the service).
 * Returns 0, or -1 with out set to wait. */
static int budget(struct worker *w, const struct sync_data *d, const char *object, int creation,
                  struct outcome *out)
{
    const struct sync_config *sc = worker_role_context(w);
    char key[256];
    snprintf(key, sizeof key, "%s/%s", d->service_sid, object);
    long wait = creation ? ratelimit_take(sc->creations, d->service_sid, time_monotonic_ms())
                         : ratelimit_take(sc->writes, key, time_monotonic_ms());
    if (wait == 0)
        return 0;
    if (out)
        retry_later(out, wait, creation ? "creation_budget" : "write_budget");
    return -1;
}

/* One Sync request; done when the outcome is OK or one of the accepted
 * ones (EXISTS, NOT_FOUND as asked). Returns 0, or -1 with out. */
static int sync_call(struct worker *w, const char *method, const char *path, struct kv_list *form,
                     int exists_ok, int missing_ok, struct outcome *out, json_t **body)
{
    struct twilio_result res;
    worker_twilio(w, TWILIO_SYNC, method, path, form, NULL, &res);
    if (form)
        kv_free(form);
    int ok = res.outcome == TWILIO_OK || (exists_ok && res.outcome == TWILIO_EXISTS) ||
             (missing_ok && res.outcome == TWILIO_NOT_FOUND);
    if (ok && body)
        *body = json_incref(res.body);
    if (!ok && out)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
    return ok ? 0 : -1;
}

static int create_service(struct worker *w, struct stream *st, struct sync_data *d, struct outcome *out)
{
    const struct sync_config *sc = worker_role_context(w);
    char url[1024], friendly[300];
    char *name = percent_encode(st->name, strlen(st->name));
    if (!name) {
        retry_later(out, 1000, "out_of_memory");
        return -1;
    }
    snprintf(url, sizeof url, "%s/sync-webhook?stream=%s", sc->public_base_url, name);
    free(name);
    snprintf(friendly, sizeof friendly, "Live Video Stream %s", st->name);
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "FriendlyName", friendly);
    twilio_form_add_bool(&form, "AclEnabled", 1);
    twilio_form_add(&form, "WebhookUrl", url);
    twilio_form_add_bool(&form, "ReachabilityWebhooksEnabled", 1);
    twilio_form_add_bool(&form, "ReachabilityDebouncingEnabled", 1);
    twilio_form_add_int(&form, "ReachabilityDebouncingWindow", sc->debounce_ms);
    json_t *body = NULL;
    if (sync_call(w, "POST", "/v1/Services", &form, 0, 0, out, &body) < 0)
        return -1;
    const char *sid = json_string_value(json_object_get(body, "sid"));
    if (!sid || strlen(sid) != SID_LEN) {
        json_decref(body);
        retry_later(out, -1, "no_sid");
        return -1;
    }
    memcpy(d->service_sid, sid, SID_LEN + 1);
    json_decref(body);
    worker_mark_dirty(st, 1); /* recorded at once: a service has no unique name to adopt */
    return 0;
}

/* Read-only permission for identity on a map or document. */
static int grant_read(struct worker *w, struct sync_data *d, const char *kind, const char *object,
                      const char *identity, struct outcome *out)
{
    char path[768];
    twilio_path(path, sizeof path, "/v1/Services/%s/%s/%s/Permissions/%s", d->service_sid, kind, object, identity);
    struct kv_list form;
    kv_init(&form);
    twilio_form_add_bool(&form, "Read", 1);
    twilio_form_add_bool(&form, "Write", 0);
    twilio_form_add_bool(&form, "Manage", 0);
    return sync_call(w, "POST", path, &form, 0, 0, out, NULL);
}

static int create_item(struct worker *w, struct sync_data *d, const char *map, const char *key, json_t *data,
                       struct outcome *out)
{
    if (budget(w, d, map, 0, out) < 0) {
        json_decref(data);
        return -1;
    }
    char path[256];
    twilio_path(path, sizeof path, "/v1/Services/%s/Maps/%s/Items", d->service_sid, map);
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "Key", key);
    twilio_form_add_json(&form, "Data", data);
    json_decref(data);
    return sync_call(w, "POST", path, &form, 1, 0, out, NULL);
}

static int delete_item(struct worker *w, struct sync_data *d, const char *map, const char *key, struct outcome *out)
{
    if (budget(w, d, map, 0, out) < 0)
        return -1;
    char path[768];
    twilio_path(path, sizeof path, "/v1/Services/%s/Maps/%s/Items/%s", d->service_sid, map, key);
    return sync_call(w, "DELETE", path, NULL, 0, 1, out, NULL);
}

/* 1 when Sync's document already holds data (applying events again,
 * memory cannot tell), else 0. */
static int document_holds(struct worker *w, struct sync_data *d, const char *name, const json_t *data)
{
    char path[768];
    if (twilio_path(path, sizeof path, "/v1/Services/%s/Documents/%s", d->service_sid, name) < 0)
        return 0;
    json_t *body = NULL;
    if (sync_call(w, "GET", path, NULL, 0, 0, NULL, &body) < 0)
        return 0;
    int same = json_equal(json_object_get(body, "data"), (json_t *)data);
    json_decref(body);
    return same;
}

/* Writes the whole document (desired state); creates it when missing. */
static int write_document(struct worker *w, struct sync_data *d, const char *name, json_t *data, int creation_ok,
                          struct outcome *out)
{
    if (d->verify && document_holds(w, d, name, data)) {
        json_decref(data);
        return 0;
    }
    if (budget(w, d, name, 0, out) < 0) {
        json_decref(data);
        return -1;
    }
    char path[768];
    struct kv_list form;
    twilio_path(path, sizeof path, "/v1/Services/%s/Documents/%s", d->service_sid, name);
    kv_init(&form);
    twilio_form_add_json(&form, "Data", data);
    struct outcome missing = {OUTCOME_DONE, -1, "", ""};
    int rc = sync_call(w, "POST", path, &form, 0, 0, &missing, NULL);
    if (rc == 0 || !creation_ok || strcmp(missing.error_code, "20404") != 0) {
        if (rc < 0 && out)
            *out = missing;
        json_decref(data);
        return rc;
    }
    if (budget(w, d, name, 1, out) < 0) {
        json_decref(data);
        return -1;
    }
    kv_init(&form);
    twilio_form_add(&form, "UniqueName", name);
    twilio_form_add_json(&form, "Data", data);
    twilio_path(path, sizeof path, "/v1/Services/%s/Documents", d->service_sid);
    json_decref(data);
    return sync_call(w, "POST", path, &form, 1, 0, out, NULL);
}

static json_t *user_document(const struct user *u)
{
    json_t *doc = json_pack("{s:b}", "speaker_invite", u->invited);
    if (u->refused)
        json_object_set_new(doc, "raised_hand_refused", json_true());
    return doc;
}

static void user_document_name(const char *identity, char *out, size_t outlen)
{
    snprintf(out, outlen, "user-%s", identity);
}

/* --- the stream's life ---------------------------------------------------------------------- */

static int create_objects(struct worker *w, struct stream *st, struct sync_data *d, struct outcome *out)
{
    char path[256];
    if (!d->service_sid[0] && create_service(w, st, d, out) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (budget(w, d, maps[i], 1, out) < 0)
            return -1;
        struct kv_list form;
        kv_init(&form);
        twilio_form_add(&form, "UniqueName", maps[i]);
        snprintf(path, sizeof path, "/v1/Services/%s/Maps", d->service_sid);
        if (sync_call(w, "POST", path, &form, 1, 0, out, NULL) < 0)
            return -1;
    }
    if (budget(w, d, "stream", 1, out) < 0)
        return -1;
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "UniqueName", "stream");
    json_t *doc = json_pack("{s:i, s:s}", "viewer_count", 0, "host", st->host);
    twilio_form_add_json(&form, "Data", doc);
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/Services/%s/Documents", d->service_sid);
    if (sync_call(w, "POST", path, &form, 1, 0, out, NULL) < 0)
        return -1;
    if (create_item(w, d, "speakers", st->host, json_pack("{s:b}", "host", 1), out) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++)
        if (grant_read(w, d, "Maps", maps[i], st->host, out) < 0)
            return -1;
    if (grant_read(w, d, "Documents", "stream", st->host, out) < 0)
        return -1;
    return 0;
}

static void on_create(struct worker *w, struct stream *st, struct sync_data *d, const struct event *ev, int apply,
                      struct outcome *out)
{
    if (st->phase == PHASE_CREATING || st->phase == PHASE_READY)
        return; /* alive: the first host keeps it */
    if (st->phase == PHASE_ENDED || st->since != ev->ts_ms) {
        char kept[SID_LEN + 1] = "";
        if (st->since == ev->ts_ms) /* a retry of this very create: keep its service */
            memcpy(kept, d->service_sid, sizeof kept);
        sync_reset(d);
        if (!sync_of(w, st)) {
            retry_later(out, 1000, "out_of_memory");
            return;
        }
        memcpy(d->service_sid, kept, sizeof kept);
    }
    st->since = ev->ts_ms;
    snprintf(st->host, sizeof st->host, "%s", json_string_value(json_object_get(ev->data, "host")));
    if (apply) {
        if (create_objects(w, st, d, out) < 0)
            return;
        if (worker_emit(w, st->name, "sync.ready", json_pack("{s:s}", "service_sid", d->service_sid)) < 0) {
            retry_later(out, -1, "kafka");
            return;
        }
    }
    d->count_written = 0;
    d->shown_known = apply; /* a map just made is empty; a folded one is read back before its first round */
    st->phase = PHASE_READY;
    worker_mark_dirty(st, 1);
}

static void on_user_joined(struct worker *w, struct sync_data *d, struct user *u, const struct event *ev,
                           int apply, struct outcome *out)
{
    const char *identity = u->name;
    int viewer = strcmp(json_string_value(json_object_get(ev->data, "role")), "viewer") == 0;
    /* Joining as a viewer answers any invitation; otherwise the document stays. */
    int rewrite = !u->joined || (viewer && u->invited);
    if (apply && rewrite) {
        char doc[IDENTITY_MAX_CHARS * 4 + 8];
        user_document_name(identity, doc, sizeof doc);
        struct user next = *u;
        if (viewer)
            next.invited = 0;
        if (write_document(w, d, doc, user_document(&next), 1, out) < 0)
            return;
    }
    if (apply && !u->joined) {
        char doc[IDENTITY_MAX_CHARS * 4 + 8];
        user_document_name(identity, doc, sizeof doc);
        if (grant_read(w, d, "Documents", doc, identity, out) < 0)
            return;
        for (size_t i = 0; i < 3; i++)
            if (grant_read(w, d, "Maps", maps[i], identity, out) < 0)
                return;
        if (grant_read(w, d, "Documents", "stream", identity, out) < 0)
            return;
    }
    u->joined = 1;
    if (viewer)
        u->invited = 0;
}

/* Takes the user off the viewers. The viewers map is not touched here:
 * the next viewers round deletes the item of a listed viewer who left and
 * gives the place to the longest-waiting viewer, so a leave burst costs a
 * few writes per round rather than two per viewer. */
static void drop_viewer(struct sync_data *d, struct user *u)
{
    if (!u->viewer)
        return;
    if (!u->listed)
        user_list_remove(&d->waiting, u);
    u->viewer = 0;
    d->viewers--;
}

static int lower_hand(struct worker *w, struct sync_data *d, struct user *u, int apply, struct outcome *out)
{
    if (!u->hand)
        return 0;
    if (apply && delete_item(w, d, "raised_hands", u->name, out) < 0)
        return -1;
    for (long i = 0; i < d->nhands; i++) {
        if (d->hands[i] == u) {
            memmove(&d->hands[i], &d->hands[i + 1], (size_t)(d->nhands - i - 1) * sizeof *d->hands);
            d->nhands--;
            break;
        }
    }
    u->hand = 0;
    return 0;
}

static void on_viewer(struct worker *w, struct stream *st, struct sync_data *d, struct user *u,
                      const struct event *ev, int apply, struct outcome *out)
{
    if (strcmp(ev->type, "viewer.connected") == 0) {
        if (u->viewer || u->speaker)
            return;
        if (!u->listed) /* a viewer back before the round removed its item stays listed */
            user_list_push(&d->waiting, u);
        u->viewer = 1;
        d->viewers++;
    } else {
        if (lower_hand(w, d, u, apply, out) < 0)
            return;
        drop_viewer(d, u);
    }
    worker_mark_dirty(st, 0);
}

static void on_hand(struct worker *w, struct stream *st, struct sync_data *d, struct user *u,
                    const struct event *ev, int apply, struct outcome *out)
{
    const struct sync_config *sc = worker_role_context(w);
    const char *identity = u->name;
    if (strcmp(ev->type, "hand.lowered") == 0) {
        if (lower_hand(w, d, u, apply, out) == 0)
            worker_mark_dirty(st, 0);
        return;
    }
    if (u->hand)
        return;
    if (d->nhands >= sc->hands_cap) {
        /* Refused: the user's document says so. */
        if (!u->refused && apply) {
            char doc[IDENTITY_MAX_CHARS * 4 + 8];
            struct user next = *u;
            next.refused = 1;
            user_document_name(identity, doc, sizeof doc);
            if (write_document(w, d, doc, user_document(&next), 1, out) < 0)
                return;
        }
        u->refused = 1;
        return;
    }
    if (apply && create_item(w, d, "raised_hands", identity, json_object(), out) < 0)
        return;
    d->hands[d->nhands++] = u;
    u->hand = 1;
    worker_mark_dirty(st, 0);
}

static void on_invited(struct worker *w, struct sync_data *d, struct user *u, int apply, struct outcome *out)
{
    const char *identity = u->name;
    if (u->invited)
        return; /* the document says so already */
    if (apply) {
        char doc[IDENTITY_MAX_CHARS * 4 + 8];
        struct user next = *u;
        next.invited = 1;
        user_document_name(identity, doc, sizeof doc);
        if (write_document(w, d, doc, user_document(&next), 1, out) < 0)
            return;
    }
    u->invited = 1;
}

static void on_participant(struct worker *w, struct stream *st, struct sync_data *d, struct user *u,
                           const struct event *ev, int apply, struct outcome *out)
{
    const char *identity = u->name;
    int is_host = strcmp(identity, st->host) == 0;
    if (strcmp(ev->type, "participant.connected") == 0) {
        if (lower_hand(w, d, u, apply, out) < 0)
            return;
        drop_viewer(d, u);
        if (!u->speaker && apply &&
            create_item(w, d, "speakers", identity, json_pack("{s:b}", "host", is_host), out) < 0)
            return;
        u->speaker = 1;
        if (is_host)
            d->host_left_ms = 0;
    } else {
        if (u->speaker && apply && delete_item(w, d, "speakers", identity, out) < 0)
            return;
        u->speaker = 0;
        if (is_host)
            d->host_left_ms = time_monotonic_ms();
    }
    worker_mark_dirty(st, 0);
}

static void on_over(struct worker *w, struct stream *st, struct sync_data *d, const struct event *ev, int apply,
                    struct outcome *out)
{
    if (strcmp(ev->type, "room.ended") == 0 || strcmp(ev->type, "stream.end_requested") == 0)
        d->room_ended = 1;
    if (strcmp(ev->type, "media.ended") == 0)
        d->media_ended = 1;
    if (strcmp(ev->type, "stream.end_requested") == 0)
        d->end_requested = 1;
    if (!d->room_ended || !d->media_ended || d->deleted)
        return;
    if (apply && d->service_sid[0]) {
        char path[128];
        snprintf(path, sizeof path, "/v1/Services/%s", d->service_sid);
        if (sync_call(w, "DELETE", path, NULL, 0, 1, out, NULL) < 0)
            return;
    }
    d->deleted = 1;
    st->phase = PHASE_ENDED;
    worker_mark_dirty(st, 1);
}

static void on_event(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    struct sync_data *d = sync_of(w, st);
    if (!d) {
        retry_later(out, 1000, "out_of_memory");
        return;
    }
    d->verify = apply && st->rebuilding;
    if (strcmp(ev->type, "stream.create_requested") == 0) {
        on_create(w, st, d, ev, apply, out);
        return;
    }
    if (st->phase != PHASE_READY)
        return; /* no live stream: nothing to show */
    /* The events about one user name it in data.identity. */
    const char *identity = json_string_value(json_object_get(ev->data, "identity"));
    struct user *u = identity ? users_add(&d->users, identity) : NULL;
    if (identity && !u) {
        retry_later(out, 1000, "out_of_memory");
        return;
    }
    if (strcmp(ev->type, "user.joined") == 0)
        on_user_joined(w, d, u, ev, apply, out);
    else if (strncmp(ev->type, "viewer.", 7) == 0)
        on_viewer(w, st, d, u, ev, apply, out);
    else if (strncmp(ev->type, "hand.", 5) == 0)
        on_hand(w, st, d, u, ev, apply, out);
    else if (strcmp(ev->type, "speaker.invited") == 0)
        on_invited(w, d, u, apply, out);
    else if (strncmp(ev->type, "participant.", 12) == 0)
        on_participant(w, st, d, u, ev, apply, out);
    else
        on_over(w, st, d, ev, apply, out);
    /* A viewer who left without a trace (no document, hand or invitation)
     * costs no memory afterwards: churn does not pile up. */
    if (u && user_is_idle(u))
        users_remove(&d->users, u);
}

/* --- periodic work -------------------------------------------------------------------------- */

/* Between two viewers rounds with nothing to do, a stream waits this long
 * before the next look (the round walks the map's items). */
#define IDLE_ROUND_MS 50
#define ITEMS_PAGE 100

/* Learns the viewers map's items from Sync: after a restart or a
 * reassignment, memory does not know what the last rounds wrote. Returns
 * 0, or -1 (the next round asks again). */
static int read_shown(struct worker *w, struct sync_data *d)
{
    char path[256], from[1024] = "";
    if (twilio_path(path, sizeof path, "/v1/Services/%s/Maps/viewers/Items", d->service_sid) < 0)
        return -1;
    for (;;) {
        struct kv_list query;
        kv_init(&query);
        twilio_form_add_int(&query, "PageSize", ITEMS_PAGE);
        if (from[0]) {
            twilio_form_add(&query, "From", from);
            twilio_form_add(&query, "Bounds", "exclusive");
        }
        json_t *body = NULL;
        if (sync_call(w, "GET", path, &query, 0, 0, NULL, &body) < 0)
            return -1;
        json_t *items = json_object_get(body, "items");
        size_t i, n = json_array_size(items);
        json_t *item;
        int progress = 0;
        json_array_foreach(items, i, item) {
            const char *key = json_string_value(json_object_get(item, "key"));
            struct user *u = key ? users_add(&d->users, key) : NULL;
            if (!u)
                continue;
            if (strcmp(from, key) != 0 && strlen(key) < sizeof from) {
                snprintf(from, sizeof from, "%s", key);
                progress = 1;
            }
            if (u->listed)
                continue;
            if (u->viewer)
                user_list_remove(&d->waiting, u);
            u->listed = 1;
            user_list_push(&d->shown, u);
        }
        json_decref(body);
        if (n < ITEMS_PAGE || !progress)
            break;
    }
    d->shown_known = 1;
    return 0;
}

/* Brings the viewers map to memory's truth within its write budget: first
 * the items of viewers who left (or went on stage) are deleted, then the
 * longest-waiting viewers are listed up to VIEWERS_MAP_CAP. Stops at the
 * first write the budget or Twilio refuses; the next round goes on from
 * there. Returns 1 when it had something to write (done or not). */
static int viewers_round(struct worker *w, struct sync_data *d)
{
    const struct sync_config *sc = worker_role_context(w);
    int busy = 0;
    for (struct user *u = d->shown.head, *next; u; u = next) {
        next = u->next;
        if (u->viewer)
            continue;
        busy = 1;
        if (delete_item(w, d, "viewers", u->name, NULL) < 0)
            return busy;
        user_list_remove(&d->shown, u);
        u->listed = 0;
        if (user_is_idle(u))
            users_remove(&d->users, u);
    }
    while (d->shown.count < sc->viewers_cap && d->waiting.head) {
        struct user *u = d->waiting.head;
        busy = 1;
        if (create_item(w, d, "viewers", u->name, json_object(), NULL) < 0)
            return busy;
        user_list_remove(&d->waiting, u);
        u->listed = 1;
        user_list_push(&d->shown, u);
    }
    return busy;
}

/* The viewers round of a live stream: the viewers map, then the count in
 * the "stream" document (only when it changed). A round that had anything
 * to ask of Sync, whether Sync (or the budget) said yes or no, is followed
 * by none for COUNT_INTERVAL_MS: a failing Sync is not asked again at once. */
static void flush(struct worker *w, struct stream *st, void *ctx)
{
    const int64_t *now = ctx;
    const struct sync_config *sc = worker_role_context(w);
    struct sync_data *d = st->role;
    if (!d || st->phase != PHASE_READY || !d->service_sid[0] || st->rebuilding)
        return; /* what a rebuild passes through was written long ago */
    if (*now >= d->next_round_ms) {
        int busy = !d->shown_known; /* reading the map back is a request too */
        if (d->shown_known || read_shown(w, d) == 0)
            busy |= viewers_round(w, d);
        if (d->viewers != d->count_written) {
            busy = 1;
            if (write_document(w, d, "stream",
                               json_pack("{s:i, s:s}", "viewer_count", (int)d->viewers, "host", st->host), 0,
                               NULL) == 0) {
                d->count_written = d->viewers;
                worker_mark_dirty(st, 0);
            }
        }
        d->next_round_ms = *now + (busy ? sc->count_interval_ms : IDLE_ROUND_MS);
    }
    if (d->host_left_ms && !d->end_requested && *now - d->host_left_ms >= sc->host_grace_ms) {
        if (worker_emit(w, st->name, "stream.end_requested", json_pack("{s:s}", "reason", "host_left")) == 0) {
            d->end_requested = 1;
            log_info("the host did not come back: the stream ends", "stream", st->name, NULL);
        }
    }
}

static void tick(struct worker *w, int64_t now_ms)
{
    worker_each_stream(w, flush, &now_ms);
}

static void state_fields(struct worker *w, const struct stream *st, json_t *record)
{
    const struct sync_config *sc = worker_role_context(w);
    const struct sync_data *d = st->role;
    if (!d)
        return;
    if (d->service_sid[0])
        json_object_set_new(record, "service_sid", json_string(d->service_sid));
    json_object_set_new(record, "viewer_count", json_integer(d->count_written < 0 ? 0 : d->count_written));
    json_object_set_new(record, "raised_hands", json_integer(d->nhands));
    json_object_set_new(record, "raised_hands_cap", json_integer(sc->hands_cap));
}

static void restore(struct worker *w, struct stream *st, const json_t *record)
{
    struct sync_data *d = sync_of(w, st);
    if (!d)
        return;
    const char *sid = json_string_value(json_object_get(record, "service_sid"));
    if (sid && strlen(sid) == SID_LEN)
        memcpy(d->service_sid, sid, SID_LEN + 1);
    const json_t *count = json_object_get(record, "viewer_count");
    d->count_written = json_is_integer(count) ? (long)json_integer_value(count) : -1;
    d->deleted = st->phase == PHASE_ENDED;
}

static int init(struct worker *w, char *err, size_t errlen)
{
    static struct sync_config sc;
    const struct config *c = worker_config(w);
    double rate = (double)config_int(c, "SYNC_WRITES_PER_S");
    double burst_s = (double)config_int(c, "SYNC_BURST_S");
    sc.viewers_cap = (long)config_int(c, "VIEWERS_MAP_CAP");
    sc.hands_cap = (long)config_int(c, "RAISED_HANDS_CAP");
    sc.count_interval_ms = (long)config_int(c, "COUNT_INTERVAL_MS");
    sc.host_grace_ms = (long)config_int(c, "HOST_GRACE_S") * 1000;
    sc.debounce_ms = (long)config_int(c, "SYNC_DEBOUNCE_MS");
    sc.public_base_url = config_str(c, "PUBLIC_BASE_URL");
    sc.writes = ratelimit_new(rate, rate * burst_s, BUCKET_KEYS);
    sc.creations = ratelimit_new(rate, rate * burst_s, BUCKET_KEYS);
    if (!sc.writes || !sc.creations) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    worker_set_role_context(w, &sc);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const types[] = {"stream.create_requested", "user.joined", "viewer.connected",
                                        "viewer.disconnected", "hand.raised", "hand.lowered",
                                        "speaker.invited", "participant.connected", "participant.disconnected",
                                        "room.ended", "media.ended", "stream.end_requested", NULL};
    const struct worker_role role = {
        .name = "sync",
        .event_types = types,
        .on_event = on_event,
        .state_fields = state_fields,
        .restore = restore,
        .tick = tick,
        .free_role = sync_free,
        .settings = settings_sync,
        .settings_count = settings_sync_count,
        .init = init,
    };
    return worker_main(&role, argc, argv);
}
