/* stagehand-sync-worker: what clients see of a stream, in Twilio Sync.
 *
 * Events are folded into memory, which is the desired state of the
 * stream's Sync objects; housekeeping rounds bring Sync to it. Only the
 * life of the stream itself is done in the event path:
 *
 *   stream.create_requested  the stream's Sync service (ACL on, WebhookUrl =
 *                            PUBLIC_BASE_URL/sync-webhook?stream=<name>,
 *                            reachability webhooks with debouncing), maps
 *                            speakers, viewers, raised_hands, the "stream"
 *                            document, the host's {host:true} speakers item
 *                            and read permissions; then sync.ready.
 *   room.ended + media.ended the Sync service is deleted once both came.
 *
 * Everything about users is folded, and written by the rounds:
 *
 *   user.joined              Sync access (document user-<identity> and read
 *                            permissions on it, the three maps and "stream"):
 *                            speakers at once; viewers whose event says
 *                            sync_access (the ingress admits the first
 *                            SYNC_EAGER_VIEWERS of a stream) in join order by
 *                            the provisioning lane; others only when they
 *                            raise a hand or are invited. Joining as a viewer
 *                            answers any invitation.
 *   viewer.connected /       the exact viewer set. A viewers round, at most
 *   viewer.disconnected      every COUNT_INTERVAL_MS, brings the viewers map
 *                            to it (at most VIEWERS_MAP_CAP items) and writes
 *                            the count to the "stream" document when it
 *                            changed. A disconnected Sync endpoint also lowers
 *                            the user's hand.
 *   hand.raised / lowered    raised_hands, in arrival order, at most
 *                            RAISED_HANDS_CAP; a hand over the cap is refused
 *                            and the refusal written on the user's document.
 *   speaker.invited          speaker_invite:true on the user's document.
 *   participant.connected    a speakers item ({host:true} for the host); off
 *                            viewers and raised_hands.
 *   participant.disconnected off speakers; the host gone for HOST_GRACE_S
 *                            ends the stream (stream.end_requested).
 *
 * Three kinds of Sync work, in this order of priority, each round:
 *   1. interactive work: users whose hand, stage place, document or Sync
 *      access (a raised hand, an invitation, a speaker) Sync lacks;
 *   2. the viewers round and the count;
 *   3. the provisioning lane: eager viewers' Sync access, in join order,
 *      one user per stream in turn, for at most SYNC_LANE_SLICE_MS and
 *      half the worker's time, and only while every budget it draws on
 *      keeps SYNC_LANE_RESERVE_S seconds of writes for the first two.
 * No event waits for a budget, so a backlog of one stream delays neither
 * its own hands and invitations nor any other stream. A round that meets
 * a full budget or a failing Sync stops that stream's work of that kind
 * and comes back to it later; a permanent error drops that piece of work
 * (logged and counted in stagehand_sync_writes_failed_total).
 *
 * Restarts: an event is committed once folded, so after a restart or a
 * reassignment the rounds must learn what Sync already has: the speakers
 * and raised_hands maps are read back before the first interactive work,
 * the viewers map before the first viewers round, and a user document or
 * permission of a user met while rebuilding is read before it is written.
 * The state record's provisioning cursor says which eager viewers (by join
 * order) surely have access; the lane reads before writing beyond it until
 * it meets a user Sync does not know. Reads are not metered; each
 * document and permission is written once.
 *
 * Writes stay under Twilio's limits before Twilio has to say no: a token
 * bucket per Sync object (SYNC_WRITES_PER_S, burst SYNC_BURST_S; a
 * permission counts against the object it is on) and one per service for
 * creations. Its state record carries service_sid, viewer_count (as
 * written), raised_hands, raised_hands_cap, speakers, viewers_listed and
 * provisioning (see ingress/view.h). */
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
#define DOC_NAME_MAX (IDENTITY_MAX_CHARS * 4 + 8)
/* Most speakers named in the state record (a room holds 50 at most). */
#define SPEAKERS_LISTED 50
/* Provisioning: the user's document, then read permissions on it, the three
 * maps and the "stream" document. */
#define PROVISION_STEPS 6
/* After Sync failed a round's write, that kind of work waits this long. */
#define FAILED_WAIT_MS 1000
/* Per-stream provisioning metrics are refreshed this often. */
#define METRICS_INTERVAL_MS 1000

struct sync_data {
    char service_sid[SID_LEN + 1];
    struct users users;       /* by identity */
    struct user_list waiting; /* viewers not in the viewers map, in join order (viewers link) */
    struct user_list shown;   /* the viewers map's items as Sync has them (viewers link) */
    int shown_known;          /* shown was read from Sync, or the map made, in this process */
    struct user_list work;    /* users with interactive work (work link) */
    struct user_list queue;   /* eager viewers waiting for access, in join order (work link) */
    int maps_known;           /* hand_shown and speaker_shown are Sync's truth */
    int restored;             /* this life began in another process: Sync may hold more than the
                                   * records said (they lag what that process did) */
    long viewers;
    struct user **hands; /* raised hands in arrival order */
    long nhands;
    struct user **speakers; /* on stage, in arrival order */
    long nspeakers, speakers_cap;
    long count_written;    /* viewer_count in the "stream" document; -1 unknown */
    long eager_admitted;   /* the seq of the last eager viewer */
    long provisioned;      /* users with Sync access */
    long cursor_restored;  /* eager viewers up to this seq had access (state record) */
    long blind_after;      /* the lane stops reading first after this seq (0: reads all) */
    int64_t next_round_ms; /* monotonic; the next viewers round may not come before */
    int64_t work_after_ms; /* monotonic; interactive work waits until then after a failure */
    int64_t lane_after_ms; /* monotonic; the lane waits until then (budget, failure) */
    int64_t host_left_ms;  /* monotonic; 0 while the host is on stage or never came */
    int end_requested, room_ended, media_ended, deleted;
};

struct sync_config {
    long viewers_cap, hands_cap, count_interval_ms, host_grace_ms, debounce_ms, eager_limit;
    long lane_slice_ms;
    double lane_keep; /* tokens the lane leaves in every bucket */
    const char *public_base_url;
    struct ratelimit *writes;    /* per Sync object */
    struct ratelimit *creations; /* per service */
    int64_t lane_after_ms;       /* the lane's share of the worker's time */
    int64_t next_metrics_ms;
    struct metric *m_backlog, *m_oldest, *m_provisioned, *m_failed;
};

static const char *const maps[] = {"speakers", "viewers", "raised_hands"};

/* --- memory ------------------------------------------------------------------------------ */

static void sync_reset(struct sync_data *d)
{
    users_clear(&d->users);
    free(d->hands);
    free(d->speakers);
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

static int is_host(const struct stream *st, const struct user *u)
{
    return strcmp(u->name, st->host) == 0;
}

static int doc_differs(const struct user *u)
{
    return u->doc_unknown || u->doc_invited != u->invited || u->doc_refused != u->refused;
}

/* Whether u has interactive work: Sync lacks its hand, its stage place or
 * its document, or it needs access at once (a hand, an invitation, the
 * stage; an eager viewer who only joined waits in the lane). */
static int needs_work(const struct user *u)
{
    return u->hand != u->hand_shown || u->speaker != u->speaker_shown ||
           (u->wants_access && !u->provisioned && u->touched) || (u->provisioned && doc_differs(u));
}

/* Puts u on the interactive work list (off the provisioning queue: what it
 * waits for there is done first now). In a life begun by another process,
 * what Sync has of a user it touched is not known: it is read before it is
 * written, once. */
static void mark_work(struct sync_data *d, struct user *u)
{
    if (d->restored && u->touched && !u->checked) {
        u->verify = 1;
        if (u->provisioned)
            u->doc_unknown = 1;
    }
    if (u->working || !needs_work(u))
        return;
    if (u->queued) {
        user_queue_remove(&d->queue, u);
        u->queued = 0;
    }
    user_queue_push(&d->work, u);
    u->working = 1;
}

/* Forgets u when nothing about it is left to remember or to do. */
static void forget_if_idle(struct sync_data *d, struct user *u)
{
    if (u && user_is_idle(u))
        users_remove(&d->users, u);
}

static void speakers_set(struct sync_data *d, struct user *u, int on)
{
    if (u->speaker == on)
        return;
    u->speaker = on;
    if (!on) {
        for (long i = 0; i < d->nspeakers; i++) {
            if (d->speakers[i] == u) {
                memmove(&d->speakers[i], &d->speakers[i + 1], (size_t)(d->nspeakers - i - 1) * sizeof *d->speakers);
                d->nspeakers--;
                break;
            }
        }
        return;
    }
    if (d->nspeakers == d->speakers_cap) {
        long cap = d->speakers_cap ? d->speakers_cap * 2 : 8;
        struct user **grown = realloc(d->speakers, (size_t)cap * sizeof *grown);
        if (!grown)
            return; /* the record lists one speaker fewer; Sync is still right */
        d->speakers = grown;
        d->speakers_cap = cap;
    }
    d->speakers[d->nspeakers++] = u;
}

/* --- budgets and Sync calls ---------------------------------------------------------------- */

static void retry_later(struct outcome *out, long wait_ms, const char *why)
{
    out->kind = OUTCOME_RETRY;
    out->retry_after_ms = wait_ms;
    snprintf(out->error_code, sizeof out->error_code, "%s", why);
    out->error[0] = '\0';
}

/* Takes a token for a write to object (or a creation in the service),
 * leaving keep tokens in the bucket. Returns 0, or -1 with out set to wait. */
static int budget(struct worker *w, const struct sync_data *d, const char *object, int creation, double keep,
                  struct outcome *out)
{
    const struct sync_config *sc = worker_role_context(w);
    char key[DOC_NAME_MAX + 64];
    snprintf(key, sizeof key, "%s/%s", d->service_sid, object);
    int64_t now = time_monotonic_ms();
    long wait = creation ? ratelimit_take_keeping(sc->creations, d->service_sid, now, keep)
                         : ratelimit_take_keeping(sc->writes, key, now, keep);
    if (wait == 0)
        return 0;
    retry_later(out, wait, creation ? "creation_budget" : "write_budget");
    return -1;
}

/* One Sync request; done when the outcome is OK or one of the accepted
 * ones (EXISTS, NOT_FOUND as asked). Returns 0, 1 for an accepted
 * NOT_FOUND, or -1 with out. */
static int sync_call(struct worker *w, const char *method, const char *path, struct kv_list *form, int exists_ok,
                     int missing_ok, struct outcome *out, json_t **body)
{
    struct twilio_result res;
    worker_twilio(w, TWILIO_SYNC, method, path, form, NULL, &res);
    if (form)
        kv_free(form);
    int missing = res.outcome == TWILIO_NOT_FOUND;
    int ok = res.outcome == TWILIO_OK || (exists_ok && res.outcome == TWILIO_EXISTS) || (missing_ok && missing);
    if (ok && body)
        *body = json_incref(res.body);
    if (!ok && out)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
    return !ok ? -1 : missing ? 1 : 0;
}

/* GETs path: 1 with *body when it exists, 0 when Sync does not have it,
 * -1 with out when Sync could not say. */
static int sync_read(struct worker *w, const char *path, json_t **body, struct outcome *out)
{
    json_t *got = NULL;
    int rc = sync_call(w, "GET", path, NULL, 0, 1, out, &got);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        json_decref(got);
        return 0;
    }
    if (body)
        *body = got;
    else
        json_decref(got);
    return 1;
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

static const char *const permission_format = "/v1/Services/%s/%s/%s/Permissions/%s";

/* Read-only permission for identity on a map or document (a write to that
 * object). With verify, an existing read permission is left as it is.
 * Returns 0, or -1 with out. */
static int grant_read(struct worker *w, struct sync_data *d, const char *kind, const char *object, const char *identity,
                      int verify, double keep, struct outcome *out)
{
    char path[1024];
    if (twilio_path(path, sizeof path, permission_format, d->service_sid, kind, object, identity) < 0)
        return worker_refuse_path(out, permission_format);
    if (verify) {
        json_t *body = NULL;
        int has = sync_read(w, path, &body, out);
        if (has < 0)
            return -1;
        int readable = has && json_is_true(json_object_get(body, "read"));
        json_decref(body);
        if (readable)
            return 0;
    }
    if (budget(w, d, object, 0, keep, out) < 0)
        return -1;
    struct kv_list form;
    kv_init(&form);
    twilio_form_add_bool(&form, "Read", 1);
    twilio_form_add_bool(&form, "Write", 0);
    twilio_form_add_bool(&form, "Manage", 0);
    return sync_call(w, "POST", path, &form, 0, 0, out, NULL) < 0 ? -1 : 0;
}

static const char *const item_format = "/v1/Services/%s/Maps/%s/Items/%s";

static int create_item(struct worker *w, struct sync_data *d, const char *map, const char *key, json_t *data,
                       struct outcome *out)
{
    char path[256];
    if (budget(w, d, map, 0, 0, out) < 0) {
        json_decref(data);
        return -1;
    }
    if (twilio_path(path, sizeof path, "/v1/Services/%s/Maps/%s/Items", d->service_sid, map) < 0) {
        json_decref(data);
        return worker_refuse_path(out, "/v1/Services/%s/Maps/%s/Items");
    }
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "Key", key);
    twilio_form_add_json(&form, "Data", data);
    json_decref(data);
    return sync_call(w, "POST", path, &form, 1, 0, out, NULL) < 0 ? -1 : 0;
}

static int delete_item(struct worker *w, struct sync_data *d, const char *map, const char *key, struct outcome *out)
{
    char path[1024];
    if (budget(w, d, map, 0, 0, out) < 0)
        return -1;
    if (twilio_path(path, sizeof path, item_format, d->service_sid, map, key) < 0)
        return worker_refuse_path(out, item_format);
    return sync_call(w, "DELETE", path, NULL, 0, 1, out, NULL) < 0 ? -1 : 0;
}

static const char *const document_format = "/v1/Services/%s/Documents/%s";

/* How write_document learns whether the document exists. */
enum doc_mode {
    DOC_UPDATE, /* it does: its data is written */
    DOC_CREATE, /* it most likely does not: created with its data, written when it was there */
    DOC_VERIFY, /* read first: left alone when it holds data, else created or written */
};

/* Creates the document with data. Returns 0, 1 when it was there already,
 * or -1 with out. */
static int create_document(struct worker *w, struct sync_data *d, const char *name, const json_t *data, double keep,
                           struct outcome *out)
{
    char collection[256];
    if (budget(w, d, "", 1, keep, out) < 0 || budget(w, d, name, 0, keep, out) < 0)
        return -1;
    snprintf(collection, sizeof collection, "/v1/Services/%s/Documents", d->service_sid);
    struct kv_list form;
    kv_init(&form);
    twilio_form_add(&form, "UniqueName", name);
    twilio_form_add_json(&form, "Data", (json_t *)data);
    struct twilio_result res;
    worker_twilio(w, TWILIO_SYNC, "POST", collection, &form, NULL, &res);
    kv_free(&form);
    int rc = res.outcome == TWILIO_OK ? 0 : res.outcome == TWILIO_EXISTS ? 1 : -1;
    if (rc < 0)
        worker_outcome_from_twilio(&res, out);
    twilio_result_free(&res);
    return rc;
}

/* Writes the whole document (desired state) as mode says. keep: the
 * headroom left in the budgets. With DOC_VERIFY, *absent (when not NULL) is
 * set when Sync had no such document. data is taken. Returns 0, or -1 with
 * out. */
static int write_document(struct worker *w, struct sync_data *d, const char *name, json_t *data, enum doc_mode mode,
                          double keep, int *absent, struct outcome *out)
{
    char path[1024];
    int rc = -1;
    if (twilio_path(path, sizeof path, document_format, d->service_sid, name) < 0) {
        json_decref(data);
        return worker_refuse_path(out, document_format);
    }
    int exists = mode == DOC_UPDATE;
    if (mode == DOC_VERIFY) {
        json_t *body = NULL;
        exists = sync_read(w, path, &body, out);
        if (exists == 0 && absent)
            *absent = 1;
        int same = exists == 1 && json_equal(json_object_get(body, "data"), data);
        json_decref(body);
        if (exists < 0 || same) {
            json_decref(data);
            return same ? 0 : -1;
        }
    }
    if (!exists) {
        rc = create_document(w, d, name, data, keep, out);
        if (rc <= 0)
            goto done;
        /* It was there after all: write its data. */
    }
    if (budget(w, d, name, 0, keep, out) < 0) {
        rc = -1;
        goto done;
    }
    struct kv_list form;
    kv_init(&form);
    twilio_form_add_json(&form, "Data", data);
    rc = sync_call(w, "POST", path, &form, 0, 0, out, NULL) < 0 ? -1 : 0;
done:
    json_decref(data);
    return rc;
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

/* A new service's budgets are full: the few creations of a stream never
 * wait for them, but they are counted so later writes know. */
static void count_write(struct worker *w, const struct sync_data *d, const char *object, int creation)
{
    struct outcome ignored;
    budget(w, d, object, creation, 0, &ignored);
}

static int create_objects(struct worker *w, struct stream *st, struct sync_data *d, struct outcome *out)
{
    char path[256];
    if (!d->service_sid[0] && create_service(w, st, d, out) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        count_write(w, d, maps[i], 1);
        struct kv_list form;
        kv_init(&form);
        twilio_form_add(&form, "UniqueName", maps[i]);
        snprintf(path, sizeof path, "/v1/Services/%s/Maps", d->service_sid);
        if (sync_call(w, "POST", path, &form, 1, 0, out, NULL) < 0)
            return -1;
    }
    count_write(w, d, "stream", 1);
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
        if (grant_read(w, d, "Maps", maps[i], st->host, 0, 0, out) < 0)
            return -1;
    return grant_read(w, d, "Documents", "stream", st->host, 0, 0, out);
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
    snprintf(st->host, sizeof st->host, "%s", event_data_string(ev, "host"));
    struct user *host = users_add(&d->users, st->host);
    if (!host) {
        retry_later(out, 1000, "out_of_memory");
        return;
    }
    if (apply) {
        if (create_objects(w, st, d, out) < 0)
            return;
        if (worker_emit(w, st->name, "sync.ready", json_pack("{s:s}", "service_sid", d->service_sid)) < 0) {
            retry_later(out, -1, "kafka");
            return;
        }
    }
    /* Maps just made hold what memory says; folded ones are read back. */
    d->maps_known = d->shown_known = apply && !st->rebuilding;
    speakers_set(d, host, 1);
    host->speaker_shown = d->maps_known;
    host->touched = 1;
    mark_work(d, host);
    d->count_written = 0;
    st->phase = PHASE_READY;
    worker_mark_dirty(st, 1);
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

/* --- folding users ---------------------------------------------------------------------------- */

static void on_user_joined(struct sync_data *d, struct user *u, const struct event *ev)
{
    int viewer = strcmp(event_data_string(ev, "role"), "viewer") == 0;
    int access = event_data_bool(ev, "sync_access", 1); /* absent: events from before the field */
    if (!viewer) {
        u->wants_access = 1;
        u->touched = 1;
    } else {
        u->invited = 0; /* joining as a viewer answers any invitation */
        if (access && u->seq == 0) {
            /* An eager viewer: its place in join order depends on the events
             * alone, so a rebuild numbers it as before. */
            u->seq = (uint32_t)++d->eager_admitted;
            u->wants_access = 1;
            if ((long)u->seq <= d->cursor_restored && !u->provisioned) {
                u->provisioned = 1; /* the last process said so */
                u->prov_step = PROVISION_STEPS;
                d->provisioned++;
            }
        }
    }
    if (u->touched || !u->wants_access || u->provisioned) {
        mark_work(d, u);
    } else if (!u->queued && !u->working) {
        u->queued_ms = ev->ts_ms;
        user_queue_push(&d->queue, u);
        u->queued = 1;
    }
}

/* Takes the user off the viewers. The viewers map is not touched here:
 * the next viewers round deletes the item of a listed viewer who left and
 * gives the place to the longest-waiting viewer. */
static void drop_viewer(struct sync_data *d, struct user *u)
{
    if (!u->viewer)
        return;
    if (!u->listed)
        user_list_remove(&d->waiting, u);
    u->viewer = 0;
    d->viewers--;
}

static void lower_hand(struct sync_data *d, struct user *u)
{
    if (!u->hand)
        return;
    for (long i = 0; i < d->nhands; i++) {
        if (d->hands[i] == u) {
            memmove(&d->hands[i], &d->hands[i + 1], (size_t)(d->nhands - i - 1) * sizeof *d->hands);
            d->nhands--;
            break;
        }
    }
    u->hand = 0;
}

static void on_viewer(struct sync_data *d, struct user *u, const struct event *ev)
{
    if (strcmp(ev->type, "viewer.connected") == 0) {
        if (u->viewer || u->speaker)
            return;
        if (!u->listed) /* a viewer back before the round removed its item stays listed */
            user_list_push(&d->waiting, u);
        u->viewer = 1;
        d->viewers++;
    } else {
        lower_hand(d, u);
        drop_viewer(d, u);
    }
}

static void on_hand(struct worker *w, struct sync_data *d, struct user *u, const struct event *ev)
{
    const struct sync_config *sc = worker_role_context(w);
    if (strcmp(ev->type, "hand.lowered") == 0) {
        lower_hand(d, u);
        return;
    }
    /* A raised hand, refused or not, gives the user Sync access: the
     * invitation or the refusal reaches it through its document. */
    u->wants_access = 1;
    u->touched = 1;
    if (u->hand)
        return;
    if (d->nhands >= sc->hands_cap) {
        u->refused = 1;
        return;
    }
    d->hands[d->nhands++] = u;
    u->hand = 1;
}

static void on_participant(struct stream *st, struct sync_data *d, struct user *u, const struct event *ev)
{
    u->touched = 1;
    if (strcmp(ev->type, "participant.connected") == 0) {
        lower_hand(d, u);
        drop_viewer(d, u);
        speakers_set(d, u, 1);
        if (is_host(st, u))
            d->host_left_ms = 0;
    } else {
        speakers_set(d, u, 0);
        if (is_host(st, u))
            d->host_left_ms = time_monotonic_ms();
    }
}

static void on_event(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out)
{
    struct sync_data *d = sync_of(w, st);
    if (!d) {
        retry_later(out, 1000, "out_of_memory");
        return;
    }
    if (apply && st->rebuilding) {
        d->maps_known = d->shown_known = 0; /* applying again: Sync is read back first */
        d->restored = 1;
    }
    if (strcmp(ev->type, "stream.create_requested") == 0) {
        on_create(w, st, d, ev, apply, out);
        return;
    }
    if (st->phase != PHASE_READY)
        return; /* no live stream: nothing to show */
    /* The events about one user name it in data.identity. */
    const char *identity = event_data_string(ev, "identity");
    struct user *u = identity ? users_add(&d->users, identity) : NULL;
    if (identity && !u) {
        retry_later(out, 1000, "out_of_memory");
        return;
    }
    if (strcmp(ev->type, "user.joined") == 0) {
        on_user_joined(d, u, ev);
    } else if (strncmp(ev->type, "viewer.", 7) == 0) {
        on_viewer(d, u, ev);
    } else if (strncmp(ev->type, "hand.", 5) == 0) {
        on_hand(w, d, u, ev);
    } else if (strcmp(ev->type, "speaker.invited") == 0) {
        u->invited = 1;
        u->wants_access = 1;
        u->touched = 1;
    } else if (strncmp(ev->type, "participant.", 12) == 0) {
        on_participant(st, d, u, ev);
    } else {
        on_over(w, st, d, ev, apply, out);
        return;
    }
    mark_work(d, u);
    worker_mark_dirty(st, 0);
    /* A viewer who left without a trace costs no memory afterwards. */
    forget_if_idle(d, u);
}

/* --- reading Sync back --------------------------------------------------------------------------- */

/* Twilio's largest page: a stream going live reads its whole viewers map
 * back on the worker's thread, and with 100 items a page a rebuild of
 * 10,000-viewer streams spent a third of its time waiting on requests. */
#define ITEMS_PAGE 1000

/* Calls fn for the key of every item of the map, page by page. Returns 0,
 * or -1 (the caller asks again later). */
static int read_map(struct worker *w, struct sync_data *d, const char *map,
                    void (*fn)(struct sync_data *d, struct user *u))
{
    char path[256], from[1024] = "";
    if (twilio_path(path, sizeof path, "/v1/Services/%s/Maps/%s/Items", d->service_sid, map) < 0)
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
        json_array_foreach (items, i, item) {
            const char *key = json_string_value(json_object_get(item, "key"));
            struct user *u = key ? users_add(&d->users, key) : NULL;
            if (!u)
                continue;
            if (strcmp(from, key) != 0 && strlen(key) < sizeof from) {
                snprintf(from, sizeof from, "%s", key);
                progress = 1;
            }
            fn(d, u);
        }
        json_decref(body);
        if (n < ITEMS_PAGE || !progress)
            break;
    }
    return 0;
}

static void saw_listed(struct sync_data *d, struct user *u)
{
    if (u->listed)
        return;
    if (u->viewer)
        user_list_remove(&d->waiting, u);
    u->listed = 1;
    user_list_push(&d->shown, u);
}

/* For the read-back of raised_hands and speakers: the user is on the work
 * list afterwards when Sync disagrees with memory. */
static void saw_hand(struct sync_data *d, struct user *u)
{
    u->hand_shown = 1;
    mark_work(d, u);
}

static void saw_speaker(struct sync_data *d, struct user *u)
{
    u->speaker_shown = 1;
    mark_work(d, u);
}

/* Learns what the raised_hands and speakers maps hold. Returns 0, or -1. */
static int read_maps(struct worker *w, struct sync_data *d)
{
    for (struct user *u = d->work.head; u; u = user_next(u, USER_LINK_WORK))
        u->hand_shown = u->speaker_shown = 0;
    int rc = read_map(w, d, "raised_hands", saw_hand) < 0 || read_map(w, d, "speakers", saw_speaker) < 0 ? -1 : 0;
    if (rc == 0)
        d->maps_known = 1;
    return rc;
}

/* --- interactive work ------------------------------------------------------------------------ */

/* Gives u Sync access, going on from the step it reached: its document,
 * then read permissions on it, the maps and "stream". verify: read each
 * before writing it. keep: the headroom left in every budget. Returns 0,
 * or -1 with out (u->prov_step tells where it stopped). *absent is set
 * when Sync had no document for u. */
static int provision(struct worker *w, struct sync_data *d, struct user *u, int verify, double keep, int *absent,
                     struct outcome *out)
{
    char doc[DOC_NAME_MAX];
    user_document_name(u->name, doc, sizeof doc);
    while (u->prov_step < PROVISION_STEPS) {
        int rc;
        if (u->prov_step == 0) {
            rc = write_document(w, d, doc, user_document(u), verify ? DOC_VERIFY : DOC_CREATE, keep, absent, out);
            if (rc == 0) {
                u->doc_invited = u->invited;
                u->doc_refused = u->refused;
                u->doc_unknown = 0;
            }
        } else if (u->prov_step == 1) {
            rc = grant_read(w, d, "Documents", doc, u->name, verify, keep, out);
        } else if (u->prov_step < 5) {
            rc = grant_read(w, d, "Maps", maps[u->prov_step - 2], u->name, verify, keep, out);
        } else {
            rc = grant_read(w, d, "Documents", "stream", u->name, verify, keep, out);
        }
        if (rc < 0)
            return -1;
        u->prov_step++;
    }
    u->provisioned = 1;
    d->provisioned++;
    return 0;
}

/* Brings Sync to memory for one user, in the order the user would want to
 * see it: the hand and the stage first, then access and the document.
 * Returns 0, or -1 with out. */
static int work_user(struct worker *w, struct stream *st, struct sync_data *d, struct user *u, struct outcome *out)
{
    if (u->hand != u->hand_shown) {
        int rc = u->hand ? create_item(w, d, "raised_hands", u->name, json_object(), out)
                         : delete_item(w, d, "raised_hands", u->name, out);
        if (rc < 0)
            return -1;
        u->hand_shown = u->hand;
    }
    if (u->speaker != u->speaker_shown) {
        int rc = u->speaker ? create_item(w, d, "speakers", u->name, json_pack("{s:b}", "host", is_host(st, u)), out)
                            : delete_item(w, d, "speakers", u->name, out);
        if (rc < 0)
            return -1;
        u->speaker_shown = u->speaker;
    }
    if (u->wants_access && !u->provisioned) {
        if (provision(w, d, u, u->verify, 0, NULL, out) < 0)
            return -1;
        metrics_add(((const struct sync_config *)worker_role_context(w))->m_provisioned,
                    (const char *const[]){"interactive"}, 1);
    }
    if (u->provisioned && doc_differs(u)) {
        char doc[DOC_NAME_MAX];
        user_document_name(u->name, doc, sizeof doc);
        if (write_document(w, d, doc, user_document(u), u->doc_unknown ? DOC_VERIFY : DOC_UPDATE, 0, NULL, out) < 0)
            return -1;
        u->doc_invited = u->invited;
        u->doc_refused = u->refused;
        u->doc_unknown = 0;
    }
    u->verify = 0;
    u->checked = 1;
    return 0;
}

/* A write a round could not make: a budget or a failing Sync waits
 * (returns the wait); a permanent error is logged and the piece of work
 * dropped (returns 0). */
static long round_failed(struct worker *w, const struct stream *st, const struct user *u, const struct outcome *out,
                         const char *what)
{
    const struct sync_config *sc = worker_role_context(w);
    if (out->kind == OUTCOME_RETRY)
        return out->retry_after_ms > 0 ? out->retry_after_ms : FAILED_WAIT_MS;
    metrics_add(sc->m_failed, (const char *const[]){what}, 1);
    log_error("Sync refused a write for good; it is dropped", "stream", st->name, "identity", u->name, "work", what,
              "error_code", out->error_code, "error", out->error, NULL);
    return 0;
}

static void leave_work(struct sync_data *d, struct user *u)
{
    user_queue_remove(&d->work, u);
    u->working = 0;
    forget_if_idle(d, u);
}

static void interactive(struct worker *w, struct stream *st, struct sync_data *d, int64_t now)
{
    if (now < d->work_after_ms)
        return;
    if (!d->maps_known && read_maps(w, d) < 0) {
        d->work_after_ms = now + FAILED_WAIT_MS;
        return;
    }
    while (d->work.head) {
        struct user *u = d->work.head;
        struct outcome out = {OUTCOME_DONE, -1, "", ""};
        if (work_user(w, st, d, u, &out) < 0) {
            long wait = round_failed(w, st, u, &out, "interactive");
            if (wait > 0) {
                d->work_after_ms = time_monotonic_ms() + wait;
                return;
            }
            /* Dropped: what it wanted is taken as done. */
            u->hand_shown = u->hand;
            u->speaker_shown = u->speaker;
            u->wants_access = u->provisioned;
            u->doc_invited = u->invited;
            u->doc_refused = u->refused;
            u->doc_unknown = 0;
        }
        leave_work(d, u);
        worker_mark_dirty(st, 0);
    }
}

/* --- the viewers round ------------------------------------------------------------------------- */

/* Between two viewers rounds with nothing to do, a stream waits this long
 * before the next look (the round walks the map's items). */
#define IDLE_ROUND_MS 50

/* Brings the viewers map to memory's truth within its write budget: first
 * the items of viewers who left (or went on stage) are deleted, then the
 * longest-waiting viewers are listed up to VIEWERS_MAP_CAP. Stops at the
 * first write the budget or Twilio refuses; the next round goes on from
 * there. Returns 1 when it had something to write (done or not). */
static int viewers_round(struct worker *w, struct sync_data *d)
{
    const struct sync_config *sc = worker_role_context(w);
    struct outcome out;
    int busy = 0;
    for (struct user *u = d->shown.head, *next; u; u = next) {
        next = user_next(u, USER_LINK_VIEWERS);
        if (u->viewer)
            continue;
        busy = 1;
        if (delete_item(w, d, "viewers", u->name, &out) < 0)
            return busy;
        user_list_remove(&d->shown, u);
        u->listed = 0;
        forget_if_idle(d, u);
    }
    while (d->shown.count < sc->viewers_cap && d->waiting.head) {
        struct user *u = d->waiting.head;
        busy = 1;
        if (create_item(w, d, "viewers", u->name, json_object(), &out) < 0)
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
static void viewers(struct worker *w, struct stream *st, struct sync_data *d, int64_t now)
{
    const struct sync_config *sc = worker_role_context(w);
    if (now < d->next_round_ms)
        return;
    int busy = !d->shown_known; /* reading the map back is a request too */
    if (!d->shown_known && read_map(w, d, "viewers", saw_listed) == 0)
        d->shown_known = 1;
    if (d->shown_known)
        busy |= viewers_round(w, d);
    if (d->viewers != d->count_written) {
        struct outcome out;
        busy = 1;
        if (write_document(w, d, "stream", json_pack("{s:i, s:s}", "viewer_count", (int)d->viewers, "host", st->host),
                           DOC_UPDATE, 0, NULL, &out) == 0) {
            d->count_written = d->viewers;
            worker_mark_dirty(st, 0);
        }
    }
    d->next_round_ms = now + (busy ? sc->count_interval_ms : IDLE_ROUND_MS);
}

/* --- periodic work -------------------------------------------------------------------------- */

static int live(const struct stream *st, const struct sync_data *d)
{
    /* What a rebuild passes through was written long ago. */
    return d && st->phase == PHASE_READY && d->service_sid[0] && !st->rebuilding;
}

static void housekeeping(struct worker *w, struct stream *st, void *ctx)
{
    const int64_t *now = ctx;
    const struct sync_config *sc = worker_role_context(w);
    struct sync_data *d = st->role;
    if (!live(st, d))
        return;
    interactive(w, st, d, *now);
    viewers(w, st, d, *now);
    if (d->host_left_ms && !d->end_requested && *now - d->host_left_ms >= sc->host_grace_ms) {
        if (worker_emit(w, st->name, "stream.end_requested", json_pack("{s:s}", "reason", "host_left")) == 0) {
            d->end_requested = 1;
            log_info("the host did not come back: the stream ends", "stream", st->name, NULL);
        }
    }
}

/* The provisioning lane of one stream: the user at the head of its queue. */
struct lane_pass {
    int64_t deadline;
    int progress;
};

static void lane_one(struct worker *w, struct stream *st, void *ctx)
{
    struct lane_pass *pass = ctx;
    const struct sync_config *sc = worker_role_context(w);
    struct sync_data *d = st->role;
    if (!live(st, d) || !d->queue.head || time_monotonic_ms() >= pass->deadline)
        return;
    int64_t now = time_monotonic_ms();
    if (now < d->lane_after_ms || !d->maps_known)
        return; /* waiting, or the interactive work has not read Sync back yet */
    struct user *u = d->queue.head;
    struct outcome out = {OUTCOME_DONE, -1, "", ""};
    int absent = 0;
    /* In a life begun elsewhere, the other process may have provisioned
     * beyond the cursor it last published: read first, until a user is
     * missing (the lane goes in join order, so later ones are too). */
    int verify = d->restored && !(d->blind_after && (long)u->seq > d->blind_after);
    int rc = provision(w, d, u, verify, sc->lane_keep, &absent, &out);
    if (absent && verify)
        d->blind_after = (long)u->seq; /* later ones in join order cannot be there either */
    if (rc < 0) {
        long wait = round_failed(w, st, u, &out, "provisioning");
        if (wait > 0) {
            d->lane_after_ms = time_monotonic_ms() + wait;
            return;
        }
        u->wants_access = 0; /* refused for good: not asked again */
    } else {
        metrics_add(sc->m_provisioned, (const char *const[]){"lane"}, 1);
    }
    user_queue_remove(&d->queue, u);
    u->queued = 0;
    u->verify = 0;
    forget_if_idle(d, u);
    worker_mark_dirty(st, 0);
    pass->progress = 1;
}

/* One user per stream in turn, until the slice is over or no stream can
 * go on; then the lane rests as long as it ran (half the worker's time at
 * most goes to it). */
static void lane(struct worker *w, int64_t now)
{
    struct sync_config *sc = worker_role_context(w);
    if (now < sc->lane_after_ms)
        return;
    struct lane_pass pass = {now + sc->lane_slice_ms, 1};
    while (pass.progress && time_monotonic_ms() < pass.deadline) {
        pass.progress = 0;
        worker_each_stream(w, lane_one, &pass);
    }
    int64_t spent = time_monotonic_ms() - now;
    sc->lane_after_ms = now + 2 * spent;
}

/* The oldest wait of a stream's provisioning queue, in ms (0 when empty). */
static int64_t oldest_wait_ms(const struct sync_data *d)
{
    if (!d->queue.head)
        return 0;
    int64_t age = time_now_ms() - d->queue.head->queued_ms;
    return age > 0 ? age : 0;
}

static void stream_metrics(struct worker *w, struct stream *st, void *ctx)
{
    (void)ctx;
    const struct sync_config *sc = worker_role_context(w);
    const struct sync_data *d = st->role;
    if (!d)
        return;
    const char *label[] = {st->name};
    int live_stream = st->phase == PHASE_READY;
    metrics_set(sc->m_backlog, label, live_stream ? (double)(d->queue.count + d->work.count) : 0.0);
    metrics_set(sc->m_oldest, label, live_stream ? (double)oldest_wait_ms(d) / 1000.0 : 0.0);
}

static void tick(struct worker *w, int64_t now_ms)
{
    struct sync_config *sc = worker_role_context(w);
    worker_each_stream(w, housekeeping, &now_ms);
    lane(w, now_ms);
    if (now_ms >= sc->next_metrics_ms) {
        worker_each_stream(w, stream_metrics, NULL);
        sc->next_metrics_ms = now_ms + METRICS_INTERVAL_MS;
    }
}

/* --- the state record ------------------------------------------------------------------------ */

/* Eager viewers up to this seq surely have Sync access: the first one
 * still waiting, on the queue or the work list, is beyond it. */
static long provisioning_cursor(const struct sync_data *d)
{
    long first = d->eager_admitted + 1;
    if (d->queue.head && d->queue.head->seq)
        first = (long)d->queue.head->seq;
    for (const struct user *u = d->work.head; u; u = user_next(u, USER_LINK_WORK))
        if (u->seq && !u->provisioned && (long)u->seq < first)
            first = (long)u->seq;
    return first - 1;
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
    json_t *speakers = json_array();
    for (long i = 0; i < d->nspeakers && i < SPEAKERS_LISTED; i++)
        json_array_append_new(speakers, json_pack("{s:s, s:b}", "identity", d->speakers[i]->name, "host",
                                                  is_host(st, d->speakers[i])));
    json_object_set_new(record, "speakers", speakers);
    json_t *listed = json_array();
    for (const struct user *u = d->shown.head; u; u = user_next(u, USER_LINK_VIEWERS))
        if (u->viewer)
            json_array_append_new(listed, json_string(u->name));
    json_object_set_new(record, "viewers_listed", listed);
    json_object_set_new(record, "provisioning",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "eager_limit", (json_int_t)sc->eager_limit,
                                  "eager_admitted", (json_int_t)d->eager_admitted, "provisioned",
                                  (json_int_t)d->provisioned, "backlog", (json_int_t)(d->queue.count + d->work.count),
                                  "oldest_wait_ms", (json_int_t)oldest_wait_ms(d), "cursor",
                                  (json_int_t)provisioning_cursor(d)));
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
    const json_t *cursor = json_object_get(json_object_get(record, "provisioning"), "cursor");
    d->cursor_restored = json_is_integer(cursor) && json_integer_value(cursor) > 0 ? (long)json_integer_value(cursor)
                                                                                   : 0;
    d->maps_known = d->shown_known = 0;
    d->restored = 1;
    d->deleted = st->phase == PHASE_ENDED;
    /* The fold of this life begins after its create, which put the host on
     * the stage (its speakers item): memory starts there too. */
    struct user *host = st->host[0] && st->phase == PHASE_READY ? users_add(&d->users, st->host) : NULL;
    if (host) {
        speakers_set(d, host, 1);
        host->touched = 1;
    }
}

/* --- checkpoints ------------------------------------------------------------------------------ */

/* A user's desired state as a checkpoint holds it (bits of "f"). */
enum {
    SNAP_VIEWER = 1,
    SNAP_HAND = 2,
    SNAP_INVITED = 4,
    SNAP_REFUSED = 8,
    SNAP_SPEAKER = 16,
    SNAP_ACCESS = 32,
    SNAP_TOUCHED = 64
};

static int user_flags(const struct user *u)
{
    return (u->viewer ? SNAP_VIEWER : 0) | (u->hand ? SNAP_HAND : 0) | (u->invited ? SNAP_INVITED : 0) |
           (u->refused ? SNAP_REFUSED : 0) | (u->speaker ? SNAP_SPEAKER : 0) | (u->wants_access ? SNAP_ACCESS : 0) |
           (u->touched ? SNAP_TOUCHED : 0);
}

static int by_user_name(const void *a, const void *b)
{
    const struct user *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int append_name(json_t *list, const struct user *u)
{
    return json_array_append_new(list, json_string(u->name));
}

/* What the events said of the stream: every user with a desired state
 * (name order: [identity, flags, seq, queued_ms]), the viewers in the order
 * they are to be listed, the raised hands and the speakers in arrival order,
 * and the counters. What Sync has (listed, hand_shown, provisioned, ...)
 * is left out: a worker loading this learns it as after a restart. */
static json_t *snapshot_save(struct worker *w, const struct stream *st)
{
    (void)w;
    const struct sync_data *d = st->role;
    struct user **all = d->users.count ? calloc(d->users.count, sizeof *all) : NULL;
    if (d->users.count && !all)
        return NULL;
    size_t n = 0, at = 0;
    for (struct user *u; n < d->users.count && (u = users_next(&d->users, &at));)
        if (user_flags(u) || u->seq)
            all[n++] = u;
    qsort(all, n, sizeof *all, by_user_name);
    json_t *users = json_array(), *viewers = json_array(), *hands = json_array(), *speakers = json_array();
    int bad = !users || !viewers || !hands || !speakers;
    for (size_t i = 0; !bad && i < n; i++)
        bad = json_array_append_new(users, json_pack("[s, i, I, I]", all[i]->name, user_flags(all[i]),
                                                     (json_int_t)all[i]->seq, (json_int_t)all[i]->queued_ms)) < 0;
    free(all);
    for (const struct user *u = d->shown.head; !bad && u; u = user_next(u, USER_LINK_VIEWERS))
        if (u->viewer)
            bad = append_name(viewers, u) < 0;
    for (const struct user *u = d->waiting.head; !bad && u; u = user_next(u, USER_LINK_VIEWERS))
        bad = append_name(viewers, u) < 0;
    for (long i = 0; !bad && i < d->nhands; i++)
        bad = append_name(hands, d->hands[i]) < 0;
    for (long i = 0; !bad && i < d->nspeakers; i++)
        bad = append_name(speakers, d->speakers[i]) < 0;
    if (bad) {
        json_decref(users);
        json_decref(viewers);
        json_decref(hands);
        json_decref(speakers);
        return NULL;
    }
    return json_pack("{s:s, s:I, s:b, s:b, s:b, s:b, s:b, s:o, s:o, s:o, s:o}", "service_sid", d->service_sid,
                     "eager_admitted", (json_int_t)d->eager_admitted, "end_requested", d->end_requested, "room_ended",
                     d->room_ended, "media_ended", d->media_ended, "deleted", d->deleted, "host_left",
                     d->host_left_ms != 0, "users", users, "viewers", viewers, "hands", hands, "speakers", speakers);
}

static int by_seq(const void *a, const void *b)
{
    const struct user *const *x = a, *const *y = b;
    return (*x)->seq < (*y)->seq ? -1 : (*x)->seq > (*y)->seq;
}

/* Puts a checkpoint back as the fold of the same events after a restart
 * would have it: the desired state as saved; of what Sync has, only what
 * the state record's provisioning cursor vouches for; maps and documents
 * read back before they are written (restored); the provisioning queue and
 * the work list made again from the desired state. */
static int snapshot_load(struct worker *w, struct stream *st, const json_t *data)
{
    const struct sync_config *sc = worker_role_context(w);
    struct sync_data *d = sync_of(w, st);
    if (!d)
        return -1;
    /* From the state record (restore), newer than the checkpoint. */
    char sid[SID_LEN + 1];
    memcpy(sid, d->service_sid, sizeof sid);
    long count_written = d->count_written, cursor = d->cursor_restored;
    sync_reset(d);
    if (!sync_of(w, st))
        return -1;
    const char *saved_sid = json_string_value(json_object_get(data, "service_sid"));
    if (sid[0])
        memcpy(d->service_sid, sid, sizeof sid);
    else if (saved_sid && strlen(saved_sid) == SID_LEN)
        memcpy(d->service_sid, saved_sid, SID_LEN + 1);
    d->count_written = count_written;
    d->cursor_restored = cursor;
    d->restored = 1;
    d->maps_known = d->shown_known = 0;
    const json_t *v = json_object_get(data, "eager_admitted");
    d->eager_admitted = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    d->end_requested = json_is_true(json_object_get(data, "end_requested"));
    d->room_ended = json_is_true(json_object_get(data, "room_ended"));
    d->media_ended = json_is_true(json_object_get(data, "media_ended"));
    d->deleted = json_is_true(json_object_get(data, "deleted")) || st->phase == PHASE_ENDED;
    d->host_left_ms = json_is_true(json_object_get(data, "host_left")) ? time_monotonic_ms() : 0;

    const json_t *users = json_object_get(data, "users");
    size_t i;
    const json_t *entry;
    json_array_foreach (users, i, entry) {
        const char *name = json_string_value(json_array_get(entry, 0));
        const json_t *f = json_array_get(entry, 1), *seq = json_array_get(entry, 2), *qms = json_array_get(entry, 3);
        if (!name || identity_problem(name, strlen(name)) || !json_is_integer(f) || !json_is_integer(seq) ||
            !json_is_integer(qms) || json_integer_value(seq) < 0 || json_integer_value(seq) > UINT32_MAX)
            return -1;
        struct user *u = users_add(&d->users, name);
        if (!u)
            return -1;
        int flags = (int)json_integer_value(f);
        u->viewer = !!(flags & SNAP_VIEWER);
        u->invited = !!(flags & SNAP_INVITED);
        u->refused = !!(flags & SNAP_REFUSED);
        u->wants_access = !!(flags & SNAP_ACCESS);
        u->touched = !!(flags & SNAP_TOUCHED);
        /* hand and speaker come with their lists below */
        u->seq = (uint32_t)json_integer_value(seq);
        u->queued_ms = json_integer_value(qms);
        if (u->viewer)
            d->viewers++;
        if (u->seq && (long)u->seq <= d->cursor_restored && u->wants_access) {
            u->provisioned = 1; /* the last process said so */
            u->prov_step = PROVISION_STEPS;
            d->provisioned++;
            u->queued_ms = 0; /* as the fold has it: never queued */
        }
    }
    json_array_foreach (json_object_get(data, "hands"), i, entry) {
        struct user *u = json_is_string(entry) ? users_find(&d->users, json_string_value(entry)) : NULL;
        if (u && !u->hand && d->nhands < sc->hands_cap) {
            d->hands[d->nhands++] = u;
            u->hand = 1;
        }
    }
    json_array_foreach (json_object_get(data, "speakers"), i, entry) {
        struct user *u = json_is_string(entry) ? users_find(&d->users, json_string_value(entry)) : NULL;
        if (u)
            speakers_set(d, u, 1);
    }
    /* The viewers, in their order; "checked" marks those placed (no
     * user is verified yet). */
    json_array_foreach (json_object_get(data, "viewers"), i, entry) {
        struct user *u = json_is_string(entry) ? users_find(&d->users, json_string_value(entry)) : NULL;
        if (u && u->viewer && !u->checked) {
            user_list_push(&d->waiting, u);
            u->checked = 1;
        }
    }
    struct user **all = d->users.count ? calloc(d->users.count, sizeof *all) : NULL;
    if (d->users.count && !all)
        return -1;
    size_t n = 0, at = 0;
    for (struct user *u; n < d->users.count && (u = users_next(&d->users, &at));)
        all[n++] = u;
    qsort(all, n, sizeof *all, by_seq);
    for (size_t k = 0; k < n; k++) {
        struct user *u = all[k];
        if (u->viewer && !u->checked)
            user_list_push(&d->waiting, u);
        u->checked = 0;
        /* As the fold queues an eager viewer at its join, in join order. */
        if (u->seq && u->wants_access && !u->touched && !u->provisioned) {
            user_queue_push(&d->queue, u);
            u->queued = 1;
        }
    }
    for (size_t k = 0; k < n; k++)
        mark_work(d, all[k]);
    for (size_t k = 0; k < n; k++)
        forget_if_idle(d, all[k]);
    free(all);
    return 0;
}

static int init(struct worker *w, char *err, size_t errlen)
{
    static struct sync_config sc;
    static const char *const stream_label[] = {"stream"};
    static const char *const via_label[] = {"via"};
    static const char *const work_label[] = {"work"};
    const struct config *c = worker_config(w);
    double rate = (double)config_int(c, "SYNC_WRITES_PER_S");
    double burst_s = (double)config_int(c, "SYNC_BURST_S");
    sc.viewers_cap = (long)config_int(c, "VIEWERS_MAP_CAP");
    sc.hands_cap = (long)config_int(c, "RAISED_HANDS_CAP");
    sc.count_interval_ms = (long)config_int(c, "COUNT_INTERVAL_MS");
    sc.host_grace_ms = (long)config_int(c, "HOST_GRACE_S") * 1000;
    sc.debounce_ms = (long)config_int(c, "SYNC_DEBOUNCE_MS");
    sc.eager_limit = (long)config_int(c, "SYNC_EAGER_VIEWERS");
    sc.lane_slice_ms = (long)config_int(c, "SYNC_LANE_SLICE_MS");
    sc.lane_keep = rate * (double)config_int(c, "SYNC_LANE_RESERVE_S");
    sc.public_base_url = config_str(c, "PUBLIC_BASE_URL");
    sc.writes = ratelimit_new(rate, rate * burst_s, BUCKET_KEYS);
    sc.creations = ratelimit_new(rate, rate * burst_s, BUCKET_KEYS);
    struct metrics *m = worker_metrics(w);
    sc.m_backlog = metrics_gauge(m, "stagehand_sync_provisioning_backlog",
                                 "Users of a stream waiting for Sync access or interactive Sync writes.", 1,
                                 stream_label);
    sc.m_oldest = metrics_gauge(m, "stagehand_sync_provisioning_oldest_wait_seconds",
                                "How long the first viewer in a stream's provisioning queue has waited.", 1,
                                stream_label);
    sc.m_provisioned = metrics_counter(m, "stagehand_sync_provisioned_total",
                                       "Users given Sync access, by the lane or at once (interactive).", 1, via_label);
    sc.m_failed = metrics_counter(m, "stagehand_sync_writes_failed_total",
                                  "Sync writes refused for good and dropped, by kind of work.", 1, work_label);
    if (!sc.writes || !sc.creations || !sc.m_backlog || !sc.m_oldest || !sc.m_provisioned || !sc.m_failed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    worker_set_role_context(w, &sc);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const types[] = {"stream.create_requested",
                                        "user.joined",
                                        "viewer.connected",
                                        "viewer.disconnected",
                                        "hand.raised",
                                        "hand.lowered",
                                        "speaker.invited",
                                        "participant.connected",
                                        "participant.disconnected",
                                        "room.ended",
                                        "media.ended",
                                        "stream.end_requested",
                                        NULL};
    const struct worker_role role = {
        .name = "sync",
        .event_types = types,
        .on_event = on_event,
        .state_fields = state_fields,
        .restore = restore,
        .snapshot_save = snapshot_save,
        .snapshot_load = snapshot_load,
        .tick = tick,
        .free_role = sync_free,
        .settings = settings_sync,
        .settings_count = settings_sync_count,
        .init = init,
    };
    return worker_main(&role, argc, argv);
}
