/* The ingress's state view (see view.h). */
#include "view.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"

enum role { ROLE_ROOM, ROLE_STREAM, ROLE_SYNC, ROLES };
static const char *const role_names[ROLES] = {"room", "stream", "sync"};

enum record_status { RECORD_CREATING, RECORD_READY, RECORD_ENDED };

/* The last record one role published for a stream. */
struct role_record {
    int present;
    enum record_status status;
    int64_t since;
    char *host;                   /* NULL when the record had none */
    char sid_a[VIEW_SID_LEN + 1]; /* room: room SID; stream: PlayerStreamer; sync: service */
    char sid_b[VIEW_SID_LEN + 1]; /* stream: MediaProcessor */
    char *grant;                  /* stream: JSON text of the playback grant */
    int64_t grant_expires_ms;
    long viewer_count, raised_hands, raised_hands_cap; /* sync; -1 unknown */
    char *speakers;                                    /* sync: [{"identity", "host"}] as compact JSON; NULL unknown */
    char *viewers;                                     /* sync: [identity, ...] as compact JSON; NULL unknown */
    char **invited;                                    /* room: who may join the stage besides the host */
    size_t invited_count;
    struct view_provisioning provisioning; /* sync */
};

struct view_stream {
    struct role_record roles[ROLES];
    struct view_public *public; /* rendered on demand; NULL after a change */
    int64_t eager_since;        /* the life eager_local counts for */
    long eager_local;           /* eager admissions as this process counts them */
    int64_t ended_seen_ms;      /* when view_forget_ended first saw it ended; 0: not yet */
    char name[];                /* the stream name */
};

struct view {
    pthread_rwlock_t lock;
    struct strmap *streams; /* name -> struct view_stream */
    struct strmap *by_sid;  /* SID -> struct view_stream (same objects) */
};

struct view *view_new(void)
{
    struct view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->streams = strmap_new();
    v->by_sid = strmap_new();
    /* Writers first: under a polling audience's reads (GET .../state), a
     * reader-preferring lock could keep the view thread from ever applying
     * the next record. No thread takes the read lock twice. */
    pthread_rwlockattr_t attr;
    int attr_ok = pthread_rwlockattr_init(&attr) == 0;
    if (attr_ok)
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int lock_ok = attr_ok && pthread_rwlock_init(&v->lock, &attr) == 0;
    if (attr_ok)
        pthread_rwlockattr_destroy(&attr);
    if (!v->streams || !v->by_sid || !lock_ok) {
        if (lock_ok)
            pthread_rwlock_destroy(&v->lock);
        strmap_free(v->streams);
        strmap_free(v->by_sid);
        free(v);
        return NULL;
    }
    return v;
}

static void clear_provisioning(struct view_provisioning *p)
{
    p->known = 0;
    p->eager_limit = p->eager_admitted = p->provisioned = p->backlog = p->oldest_wait_ms = -1;
}

static void clear_record(struct role_record *r)
{
    for (size_t i = 0; i < r->invited_count; i++)
        free(r->invited[i]);
    free(r->invited);
    free(r->host);
    free(r->grant);
    free(r->speakers);
    free(r->viewers);
    memset(r, 0, sizeof *r);
    r->viewer_count = r->raised_hands = r->raised_hands_cap = -1;
    clear_provisioning(&r->provisioning);
}

void view_public_release(struct view_public *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        free(p);
}

static int free_stream(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    struct view_stream *s = value;
    for (int i = 0; i < ROLES; i++)
        clear_record(&s->roles[i]);
    view_public_release(s->public);
    free(s);
    return 0;
}

void view_free(struct view *v)
{
    if (!v)
        return;
    strmap_each(v->streams, free_stream, NULL);
    strmap_free(v->streams);
    strmap_free(v->by_sid);
    pthread_rwlock_destroy(&v->lock);
    free(v);
}

/* Copies a SID field ("" when absent); -1 when present but malformed. */
static int copy_sid(const json_t *record, const char *name, const char *prefix, char out[VIEW_SID_LEN + 1])
{
    const json_t *value = json_object_get(record, name);
    out[0] = '\0';
    if (!value || json_is_null(value))
        return 0;
    const char *text = json_string_value(value);
    if (!text || strlen(text) != VIEW_SID_LEN || strncmp(text, prefix, 2) != 0)
        return -1;
    for (const char *p = text + 2; *p; p++)
        if (!strchr("0123456789abcdefABCDEF", *p))
            return -1;
    memcpy(out, text, VIEW_SID_LEN + 1);
    return 0;
}

static long count_or_unknown(const json_t *record, const char *name)
{
    const json_t *value = json_object_get(record, name);
    return json_is_integer(value) && json_integer_value(value) >= 0 ? (long)json_integer_value(value) : -1;
}

static int is_identity(const json_t *value)
{
    const char *text = json_string_value(value);
    return text && !identity_problem(text, json_string_length(value));
}

/* "speakers": a fresh array of {"identity", "host"} (host false when not
 * given), the first VIEW_SPEAKERS_MAX entries; NULL when malformed. */
static json_t *parse_speakers(const json_t *value)
{
    if (!json_is_array(value))
        return NULL;
    json_t *out = json_array();
    size_t n = json_array_size(value);
    for (size_t i = 0; out && i < n && i < VIEW_SPEAKERS_MAX; i++) {
        const json_t *entry = json_array_get(value, i);
        const json_t *identity = json_object_get(entry, "identity");
        const json_t *host = json_object_get(entry, "host");
        if (!json_is_object(entry) || !is_identity(identity) || (host && !json_is_boolean(host)) ||
            json_array_append_new(out, json_pack("{s:O, s:b}", "identity", identity, "host", json_is_true(host))) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* "viewers_listed": a fresh array of identities, the first
 * VIEW_VIEWERS_MAX; NULL when malformed. */
static json_t *parse_viewers(const json_t *value)
{
    if (!json_is_array(value))
        return NULL;
    json_t *out = json_array();
    size_t n = json_array_size(value);
    for (size_t i = 0; out && i < n && i < VIEW_VIEWERS_MAX; i++) {
        json_t *entry = json_array_get(value, i);
        if (!is_identity(entry) || json_array_append(out, entry) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* "provisioning": each count a non-negative integer or absent. -1 when
 * malformed. */
static int parse_provisioning(const json_t *value, struct view_provisioning *p)
{
    static const char *const names[] = {"eager_limit", "eager_admitted", "provisioned", "backlog", "oldest_wait_ms"};
    long *counts[] = {&p->eager_limit, &p->eager_admitted, &p->provisioned, &p->backlog, &p->oldest_wait_ms};
    clear_provisioning(p);
    if (!json_is_object(value))
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const json_t *count = json_object_get(value, names[i]);
        if (!count)
            continue;
        if (!json_is_integer(count) || json_integer_value(count) < 0) {
            clear_provisioning(p);
            return -1;
        }
        *counts[i] = (long)json_integer_value(count);
    }
    p->known = 1;
    return 0;
}

/* The compact JSON text of list (taken), or NULL. Lists are kept as text:
 * a hundred listed viewers take about 1.5 KB so, several times that as
 * jansson values, and the public state only ever copies them whole. */
static char *list_text(json_t *list)
{
    char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    return text;
}

/* The room record's "invited": its first VIEW_INVITED_MAX identities into
 * r. -1 when malformed (then r holds none). */
static int parse_invited(const json_t *value, struct role_record *r)
{
    if (!json_is_array(value))
        return -1;
    size_t n = json_array_size(value);
    if (n > VIEW_INVITED_MAX)
        n = VIEW_INVITED_MAX;
    if (n == 0)
        return 0;
    if (!(r->invited = calloc(n, sizeof *r->invited)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *entry = json_array_get(value, i);
        if (!is_identity(entry) || !(r->invited[i] = strdup(json_string_value(entry)))) {
            for (size_t k = 0; k < i; k++)
                free(r->invited[k]);
            free(r->invited);
            r->invited = NULL;
            r->invited_count = 0;
            return -1;
        }
        r->invited_count = i + 1;
    }
    return 0;
}

/* The sync record's optional fields; a malformed one is dropped and
 * logged. Returns how many were dropped. */
static int parse_sync_extras(const char *stream, const json_t *record, struct role_record *r)
{
    const json_t *speakers = json_object_get(record, "speakers");
    const json_t *viewers = json_object_get(record, "viewers_listed");
    const json_t *provisioning = json_object_get(record, "provisioning");
    const char *dropped[3];
    int n = 0;
    if (speakers && !(r->speakers = list_text(parse_speakers(speakers))))
        dropped[n++] = "speakers";
    if (viewers && !(r->viewers = list_text(parse_viewers(viewers))))
        dropped[n++] = "viewers_listed";
    if (provisioning && parse_provisioning(provisioning, &r->provisioning) < 0)
        dropped[n++] = "provisioning";
    for (int i = 0; i < n; i++)
        log_warn("malformed field of a state record dropped", "stream", stream, "field", dropped[i], NULL);
    return n;
}

/* Reads a record's value into r. Returns 0, 1 when an optional field was
 * dropped, or -1 when malformed. */
static int parse_record(enum role role, const char *stream, const json_t *record, struct role_record *r)
{
    int dropped = 0;
    clear_record(r);
    const char *status = json_string_value(json_object_get(record, "status"));
    const char *name = json_string_value(json_object_get(record, "stream"));
    const char *role_name = json_string_value(json_object_get(record, "role"));
    const json_t *since = json_object_get(record, "since");
    const json_t *host = json_object_get(record, "host");
    if (!json_is_object(record) || !status || !name || strcmp(name, stream) != 0 || !role_name ||
        strcmp(role_name, role_names[role]) != 0 || (since && !json_is_integer(since)) ||
        (host && !json_is_null(host) && !json_is_string(host)))
        return -1;
    if (strcmp(status, "creating") == 0)
        r->status = RECORD_CREATING;
    else if (strcmp(status, "ready") == 0)
        r->status = RECORD_READY;
    else if (strcmp(status, "ended") == 0)
        r->status = RECORD_ENDED;
    else
        return -1;
    r->since = since ? json_integer_value(since) : 0;
    if (json_is_string(host) && !(r->host = strdup(json_string_value(host))))
        return -1;
    if (role == ROLE_ROOM && copy_sid(record, "room_sid", "RM", r->sid_a) < 0)
        return -1;
    const json_t *invited = json_object_get(record, "invited");
    if (role == ROLE_ROOM && invited && parse_invited(invited, r) < 0) {
        /* Dropped alone: nobody but the host may speak until the next record. */
        log_warn("malformed field of a state record dropped", "stream", stream, "field", "invited", NULL);
        dropped = 1;
    }
    if (role == ROLE_SYNC) {
        if (copy_sid(record, "service_sid", "IS", r->sid_a) < 0)
            return -1;
        r->viewer_count = count_or_unknown(record, "viewer_count");
        r->raised_hands = count_or_unknown(record, "raised_hands");
        r->raised_hands_cap = count_or_unknown(record, "raised_hands_cap");
        dropped = parse_sync_extras(stream, record, r) > 0;
    }
    if (role == ROLE_STREAM) {
        if (copy_sid(record, "player_streamer_sid", "VJ", r->sid_a) < 0 ||
            copy_sid(record, "media_processor_sid", "ZX", r->sid_b) < 0)
            return -1;
        const json_t *grant = json_object_get(record, "playback_grant");
        const json_t *expires = json_object_get(record, "playback_grant_expires_ms");
        if (json_is_object(grant)) {
            r->grant = json_dumps(grant, JSON_COMPACT);
            if (!r->grant || strlen(r->grant) >= sizeof((struct stream_info *)0)->playback_grant)
                return -1;
            r->grant_expires_ms = json_is_integer(expires) ? json_integer_value(expires) : 0;
        }
    }
    r->present = 1;
    return dropped;
}

static struct view_stream *stream_entry(struct view *v, const char *name)
{
    struct view_stream *s = strmap_get(v->streams, name);
    if (s)
        return s;
    size_t len = strlen(name);
    s = calloc(1, sizeof *s + len + 1);
    if (!s)
        return NULL;
    memcpy(s->name, name, len + 1);
    s->eager_since = -1;
    for (int i = 0; i < ROLES; i++)
        clear_record(&s->roles[i]);
    if (strmap_put(v->streams, name, s, NULL) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void index_sid(struct view *v, const char *sid, struct view_stream *s)
{
    if (sid[0])
        strmap_put(v->by_sid, sid, s, NULL); /* out of memory: only the lookup is lost */
}

int view_apply(struct view *v, const char *key, size_t key_len, const char *value, size_t value_len)
{
    char name[STREAM_NAME_MAX_CHARS * 4 + 16];
    /* A worker's checkpoint (workers/snapshot.h): '#' begins no stream name. */
    if (key_len > 0 && key[0] == '#')
        return 0;
    const char *slash = memchr(key, '/', key_len);
    if (!slash || key_len >= sizeof name || memchr(key, '\0', key_len))
        return -1;
    size_t name_len = (size_t)(slash - key);
    const char *role_text = slash + 1;
    size_t role_len = key_len - name_len - 1;
    enum role role = ROLES;
    for (int i = 0; i < ROLES; i++)
        if (strlen(role_names[i]) == role_len && memcmp(role_names[i], role_text, role_len) == 0)
            role = (enum role)i;
    memcpy(name, key, name_len);
    name[name_len] = '\0';
    if (role == ROLES || stream_name_problem(name, name_len))
        return -1;

    struct role_record parsed;
    memset(&parsed, 0, sizeof parsed);
    clear_record(&parsed);
    json_t *record = NULL;
    int rc = 0;
    if (value) {
        record = json_loadb(value, value_len, 0, NULL);
        if (!record || (rc = parse_record(role, name, record, &parsed)) < 0) {
            json_decref(record);
            clear_record(&parsed);
            return -1;
        }
        json_decref(record);
    }
    pthread_rwlock_wrlock(&v->lock);
    struct view_stream *s = stream_entry(v, name);
    if (!s) {
        pthread_rwlock_unlock(&v->lock);
        clear_record(&parsed);
        return -1;
    }
    clear_record(&s->roles[role]);
    s->roles[role] = parsed; /* takes its strings */
    index_sid(v, parsed.sid_a, s);
    index_sid(v, parsed.sid_b, s);
    view_public_release(s->public); /* rendered again when next asked for */
    s->public = NULL;
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* The since of the stream's newest life, or -1 when it has no record. */
static int64_t newest_life(const struct view_stream *s)
{
    int64_t newest = -1;
    for (int i = 0; i < ROLES; i++)
        if (s->roles[i].present && s->roles[i].since > newest)
            newest = s->roles[i].since;
    return newest;
}

/* The role's record when it belongs to the newest life, else NULL. */
static const struct role_record *current_record(const struct view_stream *s, enum role role)
{
    const struct role_record *r = &s->roles[role];
    int64_t newest = newest_life(s);
    return newest >= 0 && r->present && r->since == newest ? r : NULL;
}

/* Fills out from the records of the stream's newest life. */
static void merge(const struct view_stream *s, struct stream_info *out)
{
    memset(out, 0, sizeof *out);
    out->viewer_count = out->raised_hands = out->raised_hands_cap = -1;
    clear_provisioning(&out->provisioning);
    int64_t newest = newest_life(s);
    if (newest < 0)
        return; /* every record was removed */
    int ended = 0;
    for (int i = 0; i < ROLES; i++) {
        const struct role_record *r = &s->roles[i];
        if (!r->present || r->since != newest)
            continue;
        ended |= r->status == RECORD_ENDED;
        if (r->host && !out->host[0])
            snprintf(out->host, sizeof out->host, "%s", r->host);
        int ready = r->status == RECORD_READY;
        if (i == ROLE_ROOM) {
            memcpy(out->room_sid, r->sid_a, sizeof out->room_sid);
            out->room_ready = ready && r->sid_a[0];
        } else if (i == ROLE_SYNC) {
            memcpy(out->service_sid, r->sid_a, sizeof out->service_sid);
            out->sync_ready = ready && r->sid_a[0];
            out->viewer_count = r->viewer_count;
            out->raised_hands = r->raised_hands;
            out->raised_hands_cap = r->raised_hands_cap;
            out->provisioning = r->provisioning;
        } else {
            memcpy(out->player_streamer_sid, r->sid_a, sizeof out->player_streamer_sid);
            memcpy(out->media_processor_sid, r->sid_b, sizeof out->media_processor_sid);
            if (r->grant) {
                snprintf(out->playback_grant, sizeof out->playback_grant, "%s", r->grant);
                out->playback_grant_expires_ms = r->grant_expires_ms;
            }
            out->media_ready = ready && r->grant;
        }
    }
    if (ended)
        out->status = STREAM_ENDED;
    else if (out->room_ready && out->sync_ready)
        out->status = STREAM_LIVE;
    else
        out->status = STREAM_CREATING;
}

int view_get(struct view *v, const char *stream, struct stream_info *out)
{
    pthread_rwlock_rdlock(&v->lock);
    const struct view_stream *s = strmap_get(v->streams, stream);
    if (s)
        merge(s, out);
    else {
        memset(out, 0, sizeof *out);
        out->status = STREAM_UNKNOWN;
    }
    pthread_rwlock_unlock(&v->lock);
    return out->status != STREAM_UNKNOWN;
}

int view_stream_for_sid(struct view *v, const char *sid, char *out, size_t outlen)
{
    pthread_rwlock_rdlock(&v->lock);
    const struct view_stream *s = strmap_get(v->by_sid, sid);
    if (s)
        snprintf(out, outlen, "%s", s->name);
    pthread_rwlock_unlock(&v->lock);
    return s != NULL;
}

size_t view_size(struct view *v)
{
    pthread_rwlock_rdlock(&v->lock);
    size_t n = strmap_size(v->streams);
    pthread_rwlock_unlock(&v->lock);
    return n;
}

const char *view_status_name(enum stream_status status)
{
    switch (status) {
    case STREAM_CREATING:
        return "creating";
    case STREAM_LIVE:
        return "live";
    case STREAM_ENDED:
        return "ended";
    default:
        return "unknown";
    }
}

static json_t *text_or_null(const char *text)
{
    return text[0] ? json_string(text) : json_null();
}

static json_t *count_or_null(long n)
{
    return n >= 0 ? json_integer(n) : json_null();
}

json_t *view_stream_json(struct view *v, const char *stream)
{
    struct stream_info info;
    if (!view_get(v, stream, &info))
        return NULL;
    json_t *out = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:b, s:b, s:b}}", "stream", stream,
                            "status", view_status_name(info.status), "host", text_or_null(info.host), "room_sid",
                            text_or_null(info.room_sid), "sync_service_sid", text_or_null(info.service_sid),
                            "player_streamer_sid", text_or_null(info.player_streamer_sid), "media_processor_sid",
                            text_or_null(info.media_processor_sid), "viewer_count", count_or_null(info.viewer_count),
                            "raised_hands", count_or_null(info.raised_hands), "raised_hands_cap",
                            count_or_null(info.raised_hands_cap), "ready", "room", info.room_ready, "sync",
                            info.sync_ready, "media", info.media_ready);
    const struct view_provisioning *p = &info.provisioning;
    if (out && p->known &&
        json_object_set_new(out, "provisioning",
                            json_pack("{s:o, s:o, s:o, s:o, s:o}", "backlog", count_or_null(p->backlog),
                                      "oldest_wait_ms", count_or_null(p->oldest_wait_ms), "provisioned",
                                      count_or_null(p->provisioned), "eager_admitted", count_or_null(p->eager_admitted),
                                      "eager_limit", count_or_null(p->eager_limit))) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* --- the public state ------------------------------------------------------------ */

/* A growing text; failed once memory ran out. */
struct text {
    char *data;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void put_text(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* s as a JSON string, quoted and escaped. */
static void put_json_string(struct text *t, const char *s)
{
    json_t *value = json_string(s);
    char *quoted = value ? json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(value);
    if (quoted)
        put_text(t, quoted);
    else
        t->failed = 1;
    free(quoted);
}

static void put_count(struct text *t, long n)
{
    char digits[24];
    if (n < 0)
        put_text(t, "null");
    else {
        snprintf(digits, sizeof digits, "%ld", n);
        put_text(t, digits);
    }
}

/* Renders the public state of s (see view.h), which has a record; NULL
 * when memory ran out. Written by hand around the lists' stored text. */
static struct view_public *render_public(const struct view_stream *s)
{
    struct stream_info info;
    merge(s, &info);
    const struct role_record *sync = current_record(s, ROLE_SYNC);
    int full = info.raised_hands >= 0 && info.raised_hands_cap >= 0 && info.raised_hands >= info.raised_hands_cap;
    struct text t = {0};
    put_text(&t, "{\"stream\":");
    put_json_string(&t, s->name);
    put_text(&t, ",\"status\":\"");
    put_text(&t, view_status_name(info.status));
    put_text(&t, "\",\"host\":");
    if (info.host[0])
        put_json_string(&t, info.host);
    else
        put_text(&t, "null");
    put_text(&t, ",\"speakers\":");
    put_text(&t, sync && sync->speakers ? sync->speakers : "[]");
    put_text(&t, ",\"viewer_count\":");
    put_count(&t, info.viewer_count);
    put_text(&t, ",\"viewers\":");
    put_text(&t, sync && sync->viewers ? sync->viewers : "[]");
    put_text(&t, ",\"raised_hands\":");
    put_count(&t, info.raised_hands);
    put_text(&t, ",\"raised_hands_cap\":");
    put_count(&t, info.raised_hands_cap);
    put_text(&t, full ? ",\"hand_queue_full\":true}" : ",\"hand_queue_full\":false}");
    struct view_public *p = t.failed ? NULL : malloc(sizeof *p + t.len + 1);
    if (p) {
        atomic_init(&p->refs, 1); /* the view's own reference */
        p->len = t.len;
        memcpy(p->body, t.data, t.len + 1);
        etag_of(p->body, p->len, p->etag);
    }
    free(t.data);
    return p;
}

/* A reference to the rendered state of s, or NULL (not rendered). */
static struct view_public *take_public(struct view_stream *s)
{
    struct view_public *p = s ? s->public : NULL;
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

struct view_public *view_public_get(struct view *v, const char *stream, int *oom)
{
    *oom = 0;
    pthread_rwlock_rdlock(&v->lock);
    struct view_stream *s = strmap_get(v->streams, stream);
    struct view_public *p = take_public(s);
    pthread_rwlock_unlock(&v->lock);
    if (p || !s)
        return p;
    /* Not rendered since the last change: the first caller renders it. */
    pthread_rwlock_wrlock(&v->lock);
    p = take_public(s);
    if (!p && newest_life(s) >= 0) {
        s->public = render_public(s);
        p = take_public(s);
        *oom = p == NULL;
    }
    pthread_rwlock_unlock(&v->lock);
    return p;
}

/* --- the eager tier -------------------------------------------------------------- */

int view_admit_eager(struct view *v, const char *stream, long limit)
{
    pthread_rwlock_wrlock(&v->lock);
    struct view_stream *s = strmap_get(v->streams, stream);
    int admitted = 0;
    if (s) {
        int64_t life = newest_life(s);
        if (s->eager_since != life) { /* a new life counts from zero */
            s->eager_since = life;
            s->eager_local = 0;
        }
        const struct role_record *sync = current_record(s, ROLE_SYNC);
        long count = s->eager_local;
        if (sync && sync->provisioning.eager_admitted > count)
            count = sync->provisioning.eager_admitted;
        admitted = count < limit;
        if (admitted)
            s->eager_local = count + 1;
    } else {
        admitted = limit > 0; /* not reached: joins need a known stream */
    }
    pthread_rwlock_unlock(&v->lock);
    return admitted;
}

/* --- the stage ------------------------------------------------------------------- */

int view_may_speak(struct view *v, const char *stream, const char *identity)
{
    pthread_rwlock_rdlock(&v->lock);
    const struct view_stream *s = strmap_get(v->streams, stream);
    int allowed = 0;
    if (s) {
        struct stream_info info;
        merge(s, &info);
        allowed = info.host[0] && strcmp(info.host, identity) == 0;
        const struct role_record *room = current_record(s, ROLE_ROOM);
        for (size_t i = 0; !allowed && room && i < room->invited_count; i++)
            allowed = strcmp(room->invited[i], identity) == 0;
    }
    pthread_rwlock_unlock(&v->lock);
    return allowed;
}

/* --- live streams and forgetting the ended ---------------------------------------------- */

/* 1 when one of the newest life's records says ended. */
static int has_ended(const struct view_stream *s)
{
    for (int i = 0; i < ROLES; i++) {
        const struct role_record *r = current_record(s, (enum role)i);
        if (r && r->status == RECORD_ENDED)
            return 1;
    }
    return 0;
}

/* The newest life's host, or NULL. */
static const char *host_of(const struct view_stream *s)
{
    for (int i = 0; i < ROLES; i++) {
        const struct role_record *r = current_record(s, (enum role)i);
        if (r && r->host)
            return r->host;
    }
    return NULL;
}

struct active_count {
    const char *host;
    long by_host, total;
};

static int count_active(void *ctx, const char *key, void *value)
{
    (void)key;
    struct active_count *c = ctx;
    const struct view_stream *s = value;
    if (newest_life(s) < 0 || has_ended(s))
        return 0;
    c->total++;
    const char *host = host_of(s);
    if (c->host && host && strcmp(host, c->host) == 0)
        c->by_host++;
    return 0;
}

void view_count_active(struct view *v, const char *host, long *by_host, long *total)
{
    struct active_count c = {host, 0, 0};
    pthread_rwlock_rdlock(&v->lock);
    strmap_each(v->streams, count_active, &c);
    pthread_rwlock_unlock(&v->lock);
    *by_host = c.by_host;
    *total = c.total;
}

int view_is_active(struct view *v, const char *stream, char *host, size_t hostlen, int64_t *since)
{
    pthread_rwlock_rdlock(&v->lock);
    const struct view_stream *s = strmap_get(v->streams, stream);
    int known = s && newest_life(s) >= 0;
    if (since)
        *since = known ? newest_life(s) : -1;
    int active = known && !has_ended(s);
    const char *h = active ? host_of(s) : NULL;
    if (host && hostlen)
        snprintf(host, hostlen, "%s", h ? h : "");
    pthread_rwlock_unlock(&v->lock);
    return active ? 1 : known ? 0 : -1;
}

/* Streams to forget, gathered while iterating (the map cannot change then). */
struct forget {
    int64_t now_ms, retention_ms;
    struct view_stream **gone;
    size_t count, cap;
    int oom;
};

static int mark_forgotten(void *ctx, const char *key, void *value)
{
    (void)key;
    struct forget *f = ctx;
    struct view_stream *s = value;
    int ended = has_ended(s) || newest_life(s) < 0; /* no record at all: nothing to keep either */
    if (!ended) {
        s->ended_seen_ms = 0; /* alive again (a new life) */
        return 0;
    }
    if (s->ended_seen_ms == 0)
        s->ended_seen_ms = f->now_ms;
    if (f->now_ms - s->ended_seen_ms < f->retention_ms)
        return 0;
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct view_stream **grown = realloc(f->gone, cap * sizeof *grown);
        if (!grown) {
            f->oom = 1;
            return 1; /* stop; the rest waits for the next round */
        }
        f->gone = grown;
        f->cap = cap;
    }
    f->gone[f->count++] = s;
    return 0;
}

/* SID index entries that point at a stream being forgotten. */
struct stale_sids {
    struct view_stream *const *gone;
    size_t gone_count;
    char **keys;
    size_t count, cap;
    int oom;
};

static int mark_stale_sid(void *ctx, const char *key, void *value)
{
    struct stale_sids *st = ctx;
    for (size_t i = 0; i < st->gone_count; i++) {
        if (st->gone[i] != value)
            continue;
        if (st->count == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 64;
            char **grown = realloc(st->keys, cap * sizeof *grown);
            if (!grown) {
                st->oom = 1;
                return 1;
            }
            st->keys = grown;
            st->cap = cap;
        }
        if (!(st->keys[st->count] = strdup(key))) {
            st->oom = 1;
            return 1;
        }
        st->count++;
        break;
    }
    return 0;
}

size_t view_forget_ended(struct view *v, int64_t now_ms, int64_t retention_ms)
{
    struct forget f = {now_ms, retention_ms, NULL, 0, 0, 0};
    struct stale_sids st = {NULL, 0, NULL, 0, 0, 0};
    pthread_rwlock_wrlock(&v->lock);
    strmap_each(v->streams, mark_forgotten, &f);
    st.gone = f.gone;
    st.gone_count = f.count;
    if (f.count > 0)
        strmap_each(v->by_sid, mark_stale_sid, &st);
    if (st.oom) {
        f.count = 0; /* a SID left behind would point at a freed stream: try again next round */
    } else {
        for (size_t i = 0; i < st.count; i++)
            strmap_remove(v->by_sid, st.keys[i]);
        for (size_t i = 0; i < f.count; i++) {
            strmap_remove(v->streams, f.gone[i]->name);
            free_stream(NULL, f.gone[i]->name, f.gone[i]);
        }
    }
    pthread_rwlock_unlock(&v->lock);
    for (size_t i = 0; i < st.count; i++)
        free(st.keys[i]);
    free(st.keys);
    free(f.gone);
    return f.count;
}
