/* The worker runtime (see worker.h). */
#include "worker.h"

#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "log.h"
#include "parse_ahead.h"
#include "random.h"
#include "settings.h"
#include "siphash.h"
#include "snapshot.h"
#include "state_loader.h"
#include "strmap.h"
#include "timeutil.h"
#include "unapplied.h"

#define POLL_MS 50
/* Housekeeping (resuming paused partitions, the role's tick, publishing
 * state) walks every stream, so it runs at most this often, not after
 * every event: a replay of many small events is not slowed by it. */
#define HOUSEKEEPING_MS 5
/* How often ended streams are looked at, and how long the committed
 * offsets may take then. */
#define EXPIRE_SWEEP_MS 1000
#define COMMITTED_WAIT_MS 5000
#define STATE_CATCH_UP_MS 30000
/* Assignments whose state may be read at once on loaders' threads; one
 * more is read in the poll loop. */
#define MAX_LOADERS 8
/* worker_emit's wait for an acknowledgement. */
#define EMIT_WAIT_MS 10000
/* The producer's message.timeout.ms: every delivery report, success or
 * failure, comes within it, well inside librdkafka's max.poll.interval.ms
 * (300 s, left as it is), so a DLQ record never holds a partition longer. */
#define PRODUCE_TIMEOUT_MS "30000"
/* How long a revoke or a stop waits for the reports of pending DLQ records
 * (so that their offsets are committed before the partition goes). */
#define REVOKE_DLQ_WAIT_MS 3000
#define STOP_DLQ_WAIT_MS 10000
/* A pause, rewind or resume that failed is tried again this much later. */
#define REHOLD_MS 1000

/* The delivery report of one produced record that someone waits for. The
 * producer's callback fills it; once the waiter gave up (abandoned), the
 * callback frees it. Records nobody waits for (state) carry NULL. */
struct report {
    int done;
    rd_kafka_resp_err_t err;
    int abandoned;
    const char *what; /* for the log of a late report */
};

/* An event's DLQ record awaiting its report: the event's offset is stored,
 * and its stream learns it handled it, only once Kafka acknowledged it. One
 * allocation (the callback frees it as a struct report). */
struct dlq_pending {
    struct report report; /* first */
    int32_t partition;
    int64_t offset;
    int apply; /* the stream's applied offset moves to offset */
    struct outcome out;
    int attempts;
    char stream[STREAM_NAME_MAX_CHARS * 4 + 1]; /* "" for an unreadable event */
    char id[EVENT_ID_LEN + 1];
    char type[64];
};

/* What the runtime knows of one partition of stagehand.events.
 *
 * The hold: while hold >= 0 the event at that offset must be the next one
 * handled; an event fetched past it (a pause or a rewind failed, a DLQ
 * record is unacknowledged, the backoff is not over) is neither handled nor
 * stored, and the partition is paused and rewound again. So no offset past a
 * held event is ever stored, whatever librdkafka's calls answered. */
struct partition_state {
    int32_t partition;
    int64_t offset; /* the event the attempts are for (-1: none) */
    int attempts;
    int paused;              /* paused in librdkafka (a pause that failed does not count) */
    int loading;             /* its streams are being read from stagehand.state (the load's id): nothing
                              * is handled meanwhile */
    int64_t hold;            /* -1, or the next event to handle */
    int rewind_due;          /* the rewind to hold failed: to be done before resuming */
    int64_t resume_at_ms;    /* monotonic: the hold's backoff ends */
    int64_t committed;       /* the group's committed offset at assignment (-1: none) */
    int64_t read_to;         /* offset after the newest event read since (-1: none) */
    int64_t store_next;      /* the offset flush_stores gives librdkafka (-1: nothing new) */
    struct dlq_pending *dlq; /* a DLQ record awaiting its report, or NULL */
    int dlq_failures;        /* DLQ records of this partition refused in a row */
    int64_t redo_offset;     /* an event whose DLQ record was refused (-1: none) ... */
    struct outcome redo;     /* ... goes to the DLQ again when it comes back, with this */
    int redo_attempts;
    /* Checkpoints (kept across assignments: reset_partition spares them). */
    int64_t snap_generation; /* the newest checkpoint written or loaded (-1: none) */
    long snap_chunks;        /* its chunk count (older chunks above it are removed) */
    int64_t snap_due_ms;     /* monotonic: the next checkpoint may not come before */
    /* Moves on with every rewind and reset (kept across them): an event
     * polled ahead under an older epoch belongs to the position before, and
     * is dropped unhandled (librdkafka hands it out again if it is still to
     * be read). */
    uint64_t epoch;
};

/* One series of stagehand_worker_events_total, found without comparing a
 * string: by the event's catalogue index, then by the address of the
 * outcome label (decide.c's constants). The same label at another address
 * takes another slot, for the same series. */
#define EVENT_COUNT_SLOTS 8

struct event_count {
    const char *outcome; /* NULL: a free slot */
    struct metric_series *series;
};

struct worker {
    const struct worker_role *role;
    struct config *cfg;
    void *role_ctx;
    struct twilio_client *twilio;
    struct kafka_producer *producer;
    struct kafka_consumer *consumer;
    struct strmap *streams; /* name -> struct stream */
    struct partition_state *parts;
    size_t nparts;
    struct {
        struct state_loader *loader; /* reading stagehand.state for new partitions */
        int id;                      /* the partitions' `loading` while it is theirs */
    } loads[MAX_LOADERS];
    int nloads;
    int load_seq;
    int max_attempts;
    long retry_base_ms, retry_max_ms;
    long publish_interval_ms;
    int64_t tombstone_after_ms;   /* STATE_TOMBSTONE_AFTER_S */
    int64_t snapshot_interval_ms; /* SNAPSHOT_INTERVAL_S (0: no checkpoints) */
    pthread_mutex_t debug_lock;   /* GET /debug/state: the HTTP thread asks, the poll loop answers */
    pthread_cond_t debug_cond;
    int debug_asked;
    char *debug_answer;
    int64_t next_sweep_ms;   /* monotonic: the next look for expired streams */
    int64_t last_publish_ms; /* of the last periodic round */
    char group[64];
    int assigned;                      /* partitions held */
    char current_id[EVENT_ID_LEN + 1]; /* the event in hand, for the logs */
    atomic_int stop;
    struct parse_ahead *ahead; /* events polled and parsed ahead of the one handled */

    unsigned char digest_key[SIPHASH_KEY_BYTES]; /* random: for record_digest */
    struct metrics *metrics;
    struct metric *m_events; /* type, outcome */
    struct event_count counts[EVENT_CATALOGUE_SIZE][EVENT_COUNT_SLOTS];
    unsigned char handled[EVENT_CATALOGUE_SIZE]; /* by catalogue index: the role handles that type */
    struct metric *m_twilio;                     /* status */
    struct metric *m_retries;
    struct metric *m_dlq;
    struct metric *m_dlq_failures;
    struct metric *m_held; /* events fetched past a hold, kept out */
    struct metric *m_state_records;
    struct metric *m_tombstones;
    struct metric *m_checkpoints;      /* written */
    struct metric *m_checkpoint_loads; /* outcome: loaded, fallback */
    struct metric *m_checkpoint_bytes;
    struct metric *m_streams;
    struct metric *m_partitions;
    struct metric *m_lag;       /* partition */
    struct metric *m_unapplied; /* partition: the oldest unapplied event's age */
    struct unapplied *unapplied;
    int64_t next_lag_ms;
    struct MHD_Daemon *http;
};

/* --- small accessors ------------------------------------------------------------- */

const struct config *worker_config(const struct worker *w)
{
    return w->cfg;
}

void *worker_role_context(const struct worker *w)
{
    return w->role_ctx;
}

struct metrics *worker_metrics(struct worker *w)
{
    return w->metrics;
}

void worker_set_role_context(struct worker *w, void *ctx)
{
    w->role_ctx = ctx;
}

void worker_mark_dirty(struct stream *st, int urgent)
{
    st->dirty = 1;
    st->urgent |= urgent;
}

struct stream *worker_find_stream(struct worker *w, const char *name)
{
    return strmap_get(w->streams, name);
}

struct each_ctx {
    struct worker *w;
    void (*fn)(struct worker *w, struct stream *st, void *ctx);
    void *ctx;
};

static int each_stream(void *ctx, const char *key, void *value)
{
    (void)key;
    struct each_ctx *e = ctx;
    e->fn(e->w, value, e->ctx);
    return 0;
}

void worker_each_stream(struct worker *w, void (*fn)(struct worker *w, struct stream *st, void *ctx), void *ctx)
{
    struct each_ctx e = {w, fn, ctx};
    strmap_each(w->streams, each_stream, &e);
}

/* --- Twilio ----------------------------------------------------------------------------- */

int worker_twilio(struct worker *w, enum twilio_product product, const char *method, const char *path,
                  const struct kv_list *params, const char *if_match, struct twilio_result *res)
{
    int rc = twilio_request(w->twilio, product, method, path, params, if_match, res);
    char status[16];
    snprintf(status, sizeof status, "%ld", res->http_status);
    metrics_add(w->m_twilio, (const char *const[]){status}, 1);
    log_debug("twilio call", "event_id", w->current_id, "method", method, "path", path, "status", status, "outcome",
              twilio_outcome_name(res->outcome), NULL);
    return rc;
}

void worker_outcome_from_twilio(const struct twilio_result *res, struct outcome *out)
{
    snprintf(out->error_code, sizeof out->error_code, "%d", res->code);
    snprintf(out->error, sizeof out->error, "%s", res->message);
    if (res->outcome == TWILIO_RATE_LIMITED || res->outcome == TWILIO_RETRYABLE) {
        out->kind = OUTCOME_RETRY;
        out->retry_after_ms = res->retry_after_ms;
    } else {
        out->kind = OUTCOME_FAIL;
    }
}

int worker_refuse_path(struct outcome *out, const char *path_format)
{
    log_warn("no Twilio path can be built (a name that is empty, \".\" or \"..\", or too long); not sent", "path",
             path_format, NULL);
    if (out) {
        out->kind = OUTCOME_FAIL;
        snprintf(out->error_code, sizeof out->error_code, "bad_path");
        snprintf(out->error, sizeof out->error, "a name in %s is empty, \".\" or \"..\", or too long", path_format);
    }
    return -1;
}

/* --- streams ------------------------------------------------------------------------------ */

static struct stream *stream_get(struct worker *w, const char *name, int32_t partition)
{
    struct stream *st = strmap_get(w->streams, name);
    if (st)
        return st;
    st = calloc(1, sizeof *st);
    if (!st || !(st->name = strdup(name)) || strmap_put(w->streams, name, st, NULL) < 0) {
        if (st)
            free(st->name);
        free(st);
        return NULL;
    }
    st->partition = partition;
    st->applied_offset = -1;
    st->last_offset = -1;
    st->reapply_until = -1;
    metrics_set(w->m_streams, NULL, (double)strmap_size(w->streams));
    return st;
}

static void stream_free(struct worker *w, struct stream *st)
{
    if (w->role->free_role && st->role)
        w->role->free_role(st->role);
    free(st->name);
    free(st);
}

/* A window's ids as a JSON array, oldest first (state records,
 * checkpoints, /debug/state). NULL when out of memory: a list cut short
 * would let an event be applied twice. */
static json_t *recent_ids_json(const struct id_window *window)
{
    json_t *ids = json_array();
    for (unsigned i = 0; ids && i < ID_WINDOW_SIZE; i++) {
        const char *id = id_window_at(window, i);
        if (id[0] && json_array_append_new(ids, json_string(id)) < 0) {
            json_decref(ids);
            ids = NULL;
        }
    }
    return ids;
}

static const char *phase_name(enum stream_phase phase)
{
    switch (phase) {
    case PHASE_CREATING:
        return "creating";
    case PHASE_READY:
        return "ready";
    case PHASE_ENDED:
        return "ended";
    default:
        return NULL;
    }
}

/* --- Kafka: producing ---------------------------------------------------------------------- */

/* Runs inside kafka_producer_poll, on the poll loop's thread: it only
 * records the report; the runtime acts on it in its own time. */
static void on_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct report *r = opaque;
    if (!r) {
        if (d->err)
            log_warn("a state record was not delivered", "error", d->errstr, NULL);
        return;
    }
    if (r->abandoned) {
        if (d->err)
            log_warn("a late delivery report: not delivered", "record", r->what, "error", d->errstr, NULL);
        else
            log_info("a late delivery report: delivered after all", "record", r->what, NULL);
        free(r);
        return;
    }
    r->done = 1;
    r->err = d->err;
}

static int produce(struct worker *w, const char *topic, const char *key, const char *value,
                   const struct kv_list *headers, struct report *report)
{
    struct kafka_record rec = {.topic = topic,
                               .partition = RD_KAFKA_PARTITION_UA,
                               .key = key,
                               .key_len = strlen(key),
                               .value = value,
                               .value_len = value ? strlen(value) : 0,
                               .headers = headers,
                               .opaque = report};
    char err[256];
    if (kafka_produce(w->producer, &rec, err, sizeof err) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_warn("cannot produce", "topic", topic, "error", err, NULL);
        return -1;
    }
    return 0;
}

int worker_emit(struct worker *w, const char *stream, const char *type, json_t *data)
{
    struct event ev;
    char err[256], source[32], traceparent[EVENT_TRACEPARENT_LEN + 1];
    snprintf(source, sizeof source, "%s-worker", w->role->name);
    char *value = NULL;
    if (event_build(&ev, type, stream, source, NULL, data, err, sizeof err) < 0 ||
        !(value = event_encode(&ev, err, sizeof err))) {
        log_error("an event of ours is refused by its schema", "type", type, "error", err, NULL);
        event_free(&ev);
        return -1;
    }
    struct report *r = calloc(1, sizeof *r);
    if (!r) {
        log_warn("out of memory emitting an event", "type", type, NULL);
        free(value);
        event_free(&ev);
        return -1;
    }
    r->what = "an event of ours";
    struct kv_list headers;
    kv_init(&headers);
    kv_add(&headers, "id", ev.id);
    kv_add(&headers, "type", ev.type);
    if (event_traceparent(traceparent) == 0)
        kv_add(&headers, "traceparent", traceparent);
    int rc = produce(w, TOPIC_EVENTS, stream, value, &headers, r);
    kv_free(&headers);
    free(value);
    event_free(&ev);
    if (rc < 0) {
        free(r);
        return -1;
    }
    /* Bounded: the poll loop goes on after EMIT_WAIT_MS, or at once when
     * asked to stop; the report, when it comes, is the runtime's. */
    int64_t until = time_monotonic_ms() + EMIT_WAIT_MS;
    while (!r->done && time_monotonic_ms() < until && !atomic_load(&w->stop))
        kafka_producer_poll(w->producer, 10);
    if (!r->done) {
        r->abandoned = 1; /* on_delivery frees it */
        log_warn("an event of ours was not acknowledged in time", "type", type, NULL);
        return -1;
    }
    rc = r->err ? -1 : 0;
    if (rc < 0)
        log_warn("an event of ours was not delivered", "type", type, "error", rd_kafka_err2str(r->err), NULL);
    free(r);
    return rc;
}

static struct partition_state *find_partition(struct worker *w, int32_t partition);

static int expired(const struct worker *w, const struct stream *st)
{
    struct tombstone_facts f = {.ended = st->phase == PHASE_ENDED,
                                .ended_ms = st->ended_ms,
                                .now_ms = time_now_ms(),
                                .after_ms = w->tombstone_after_ms};
    return decide_expired(&f);
}

/* The digest of a state record's compact text without its "ts": records
 * with the same digest say the same. Keyed with a random key, so that nobody
 * can choose names that make a changed record look unchanged. Never 0
 * (which stands for "unknown"). */
static uint64_t record_digest(const struct worker *w, const char *text_without_ts)
{
    uint64_t digest = siphash24(w->digest_key, text_without_ts, strlen(text_without_ts));
    return digest ? digest : 1;
}

/* Publishes the stream's state record, unless stagehand.state already holds
 * one that says the same (a rebuild folds a stream back to the state its
 * record was restored from: writing that again only grew the topic). */
static void publish_state(struct worker *w, struct stream *st)
{
    const char *status = phase_name(st->phase);
    if (!status)
        return; /* nothing worth saying yet */
    if (expired(w, st))
        return; /* its record is to be removed (expire_ended), not brought back */
    char ts[RFC3339_MS_LEN + 1], key[STREAM_NAME_MAX_CHARS * 4 + 16];
    json_t *record = json_pack("{s:s, s:s, s:i, s:s, s:I, s:I}", "stream", st->name, "role", w->role->name, "partition",
                               (int)st->partition, "status", status, "since", (json_int_t)st->since, "applied_offset",
                               (json_int_t)st->applied_offset);
    if (!record)
        return; /* out of memory: it stays dirty, tried again */
    if (st->host[0])
        json_object_set_new(record, "host", json_string(st->host));
    if (st->ended_ms > 0)
        json_object_set_new(record, "ended_ms", json_integer((json_int_t)st->ended_ms));
    json_t *recent = recent_ids_json(&st->recent);
    if (!recent || json_object_set_new(record, "recent_ids", recent) < 0) {
        json_decref(record);
        return; /* out of memory: it stays dirty, tried again */
    }
    if (w->role->state_fields)
        w->role->state_fields(w, st, record);
    /* Dumped once: the digest is of this text, and the record sent is the
     * same text with "ts" as its last member. */
    char *text = json_dumps(record, JSON_COMPACT);
    json_decref(record);
    if (!text)
        return; /* out of memory: it stays dirty, tried again */
    uint64_t digest = record_digest(w, text);
    if (st->has_record && digest == st->record_digest) {
        free(text);
        st->dirty = st->urgent = 0;
        return;
    }
    time_format_rfc3339_ms(time_now_ms(), ts);
    size_t len = strlen(text); /* ends with the object's '}' */
    size_t size = len + sizeof ",\"ts\":\"\"" + strlen(ts);
    char *value = malloc(size);
    if (value)
        snprintf(value, size, "%.*s,\"ts\":\"%s\"}", (int)(len - 1), text, ts);
    free(text);
    snprintf(key, sizeof key, "%s/%s", st->name, w->role->name);
    if (value && produce(w, TOPIC_STATE, key, value, NULL, NULL) == 0) {
        st->dirty = st->urgent = 0;
        st->has_record = 1;
        st->record_digest = digest;
        metrics_add(w->m_state_records, NULL, 1);
    }
    free(value);
}

struct publish_ctx {
    int64_t now_ms;
    int periodic; /* the periodic round is due */
    int everything;
    int32_t partition; /* >= 0: only this partition */
};

static void publish_if_due(struct worker *w, struct stream *st, void *arg)
{
    struct publish_ctx *p = arg;
    if (!st->dirty || (p->partition >= 0 && st->partition != p->partition))
        return;
    /* Below the committed offset an earlier member published all this
     * already (or removed it): the fold's passing states are not news. */
    const struct partition_state *ps = find_partition(w, st->partition);
    if (ps && ps->committed >= 0 && ps->read_to < ps->committed)
        return;
    if (st->urgent || p->everything || p->periodic)
        publish_state(w, st);
}

/* Publishes the urgent records now and the others once per interval. */
static void publish_due(struct worker *w, int64_t now_ms)
{
    struct publish_ctx p = {now_ms, now_ms - w->last_publish_ms >= w->publish_interval_ms, 0, -1};
    worker_each_stream(w, publish_if_due, &p);
    if (p.periodic)
        w->last_publish_ms = now_ms;
}

static void publish_all(struct worker *w, int32_t partition)
{
    struct publish_ctx p = {0, 1, 1, partition};
    worker_each_stream(w, publish_if_due, &p);
}

/* --- partitions ------------------------------------------------------------------------------- */

static struct partition_state *find_partition(struct worker *w, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition)
            return &w->parts[i];
    return NULL;
}

/* Forgets what the partition was doing (it was assigned or revoked). A DLQ
 * record still waiting is left to its report, which then frees it. */
static void reset_partition(struct partition_state *ps)
{
    if (ps->dlq) {
        if (ps->dlq->report.done)
            free(ps->dlq);
        else
            ps->dlq->report.abandoned = 1;
    }
    int32_t partition = ps->partition;
    int64_t snap_generation = ps->snap_generation;
    long snap_chunks = ps->snap_chunks;
    uint64_t epoch = ps->epoch + 1;
    memset(ps, 0, sizeof *ps);
    ps->epoch = epoch;
    ps->partition = partition;
    ps->snap_generation = snap_generation;
    ps->snap_chunks = snap_chunks;
    ps->offset = -1;
    ps->hold = -1;
    ps->committed = -1;
    ps->read_to = -1;
    ps->store_next = -1;
    ps->redo_offset = -1;
}

/* The partition's state, made on first use (on assignment). NULL when out
 * of memory. */
static struct partition_state *partition_state(struct worker *w, int32_t partition)
{
    struct partition_state *p = find_partition(w, partition);
    if (p)
        return p;
    struct partition_state *grown = realloc(w->parts, (w->nparts + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    w->parts = grown;
    p = &w->parts[w->nparts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    p->snap_generation = -1;
    reset_partition(p);
    return p;
}

/* Rewinds the partition (ps may be NULL) to offset; what was polled of it
 * before is dropped (see epoch). */
static int rewind_partition(struct worker *w, struct partition_state *ps, int32_t partition, int64_t offset, char *err,
                            size_t errlen)
{
    if (ps)
        ps->epoch++;
    return kafka_consumer_rewind(w->consumer, TOPIC_EVENTS, partition, offset, err, errlen);
}

/* Holds the partition at offset for delay_ms: pauses it (unless it is) and
 * rewinds it to offset. Either call may fail; the hold stands anyway (see
 * struct partition_state) and resume_due or the next event fetched past it
 * tries again. */
static void hold_partition(struct worker *w, struct partition_state *ps, int64_t offset, long delay_ms)
{
    char err[256], at[24];
    snprintf(at, sizeof at, "%lld", (long long)offset);
    ps->hold = offset;
    ps->resume_at_ms = time_monotonic_ms() + delay_ms;
    if (!ps->paused) {
        if (kafka_consumer_pause(w->consumer, TOPIC_EVENTS, ps->partition, err, sizeof err) == 0)
            ps->paused = 1;
        else
            log_warn("cannot pause a partition; events past the held one are kept out", "offset", at, "error", err,
                     NULL);
    }
    ps->rewind_due = rewind_partition(w, ps, ps->partition, offset, err, sizeof err) < 0;
    if (ps->rewind_due)
        log_warn("cannot rewind a partition; trying again before it resumes", "offset", at, "error", err, NULL);
}

/* Ends the holds whose time has come: the rewind that failed first, then
 * the resume; what fails is tried again REHOLD_MS later. A partition whose
 * DLQ record waits for its report stays held. */
static void resume_due(struct worker *w, int64_t now_ms)
{
    char err[256];
    for (size_t i = 0; i < w->nparts; i++) {
        struct partition_state *p = &w->parts[i];
        if (p->loading || p->dlq || now_ms < p->resume_at_ms || (!p->paused && !p->rewind_due))
            continue;
        if (p->rewind_due) {
            if (rewind_partition(w, p, p->partition, p->hold, err, sizeof err) < 0) {
                log_warn("cannot rewind a partition; trying again", "error", err, NULL);
                p->resume_at_ms = now_ms + REHOLD_MS;
                continue;
            }
            p->rewind_due = 0;
        }
        if (p->paused) {
            if (kafka_consumer_resume(w->consumer, TOPIC_EVENTS, p->partition, err, sizeof err) < 0) {
                log_warn("cannot resume a partition; trying again", "error", err, NULL);
                p->resume_at_ms = now_ms + REHOLD_MS;
                continue;
            }
            p->paused = 0;
        }
    }
}

/* 1 when msg may be handled now. Past a hold, only the first event
 * fetched after the last rewind, once the partition is neither paused nor
 * waiting: the held one, or the next one when the log has none there. */
static int admitted(struct worker *w, struct partition_state *ps, const rd_kafka_message_t *msg, int64_t now_ms)
{
    if (ps->loading)
        return 0; /* fetched before the pause took hold: read again after the rewind */
    if (!ps->dlq && (ps->hold < 0 || msg->offset < ps->hold))
        return 1;
    if (!ps->dlq && !ps->paused && !ps->rewind_due && now_ms >= ps->resume_at_ms) {
        ps->hold = -1;
        return 1;
    }
    metrics_add(w->m_held, NULL, 1);
    hold_partition(w, ps, ps->hold, ps->resume_at_ms > now_ms ? (long)(ps->resume_at_ms - now_ms) : 0);
    return 0;
}

/* Notes that the partition is done up to next_offset. librdkafka is told
 * by flush_stores, within HOUSEKEEPING_MS, when the poll finds nothing, and
 * before partitions go: a store per event was a twentieth of a replay. */
static void store(struct partition_state *ps, int64_t next_offset)
{
    ps->store_next = next_offset;
    if (ps->redo_offset >= 0 && ps->redo_offset < next_offset)
        ps->redo_offset = -1;
}

/* Gives librdkafka the offsets noted since the last flush (its auto-commit
 * and the commit at revoke and close take them from there). */
static void flush_stores(struct worker *w)
{
    char err[256];
    for (size_t i = 0; i < w->nparts; i++) {
        struct partition_state *ps = &w->parts[i];
        if (ps->store_next < 0)
            continue;
        if (kafka_consumer_store(w->consumer, TOPIC_EVENTS, ps->partition, ps->store_next, err, sizeof err) < 0)
            log_warn("cannot store an offset", "error", err, NULL);
        ps->store_next = -1;
    }
}

/* --- the DLQ ------------------------------------------------------------------------------------ */

/* Counts an event in stagehand_worker_events_total. type_index: type's
 * index in the catalogue, or -1 ("invalid", or a type from outside it). */
static void count_event(struct worker *w, int type_index, const char *type, const char *outcome)
{
    const char *const values[] = {type, outcome};
    if (type_index < 0 || type_index >= EVENT_CATALOGUE_SIZE) {
        metrics_add(w->m_events, values, 1);
        return;
    }
    struct event_count *row = w->counts[type_index];
    for (int i = 0; i < EVENT_COUNT_SLOTS; i++) {
        if (!row[i].outcome) {
            row[i].series = metrics_counter_series(w->m_events, values);
            if (!row[i].series)
                break;
            row[i].outcome = outcome;
        }
        if (row[i].outcome == outcome) {
            metrics_series_add(row[i].series, 1);
            return;
        }
    }
    metrics_add(w->m_events, values, 1);
}

/* The event's DLQ record was refused (at once or in its report): the
 * partition is held at the event, which goes to the DLQ again when it
 * comes back (the role is not asked again), after a growing backoff. */
static void dlq_refused(struct worker *w, struct partition_state *ps, int64_t offset, const struct outcome *out,
                        int attempts)
{
    ps->dlq_failures++;
    ps->redo_offset = offset;
    ps->redo = *out;
    ps->redo_attempts = attempts;
    metrics_add(w->m_dlq_failures, NULL, 1);
    long delay = twilio_backoff_ms(ps->dlq_failures < 16 ? ps->dlq_failures - 1 : 15, w->retry_base_ms, w->retry_max_ms,
                                   -1, random_unit());
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)offset);
    log_warn("the DLQ did not take an event; it will be sent again, and its offset is not stored", "offset", at, NULL);
    hold_partition(w, ps, offset, delay);
}

/* Sends the event to the DLQ as it came, with why in the headers, and
 * holds its partition until Kafka answers (settle_dlq). st and ev are NULL
 * for an unreadable event. */
static void send_to_dlq(struct worker *w, struct partition_state *ps, const rd_kafka_message_t *msg,
                        const struct stream *st, const struct event *ev, int apply, const struct outcome *out,
                        int attempts)
{
    struct dlq_pending *d = calloc(1, sizeof *d);
    if (!d) {
        log_warn("out of memory sending an event to the DLQ", NULL);
        dlq_refused(w, ps, msg->offset, out, attempts);
        return;
    }
    d->report.what = "a DLQ record";
    d->partition = msg->partition;
    d->offset = msg->offset;
    d->apply = apply;
    d->out = *out;
    d->attempts = attempts;
    if (st)
        snprintf(d->stream, sizeof d->stream, "%s", st->name);
    if (kafka_header_string(msg, "id", d->id, sizeof d->id) < 0 && ev)
        snprintf(d->id, sizeof d->id, "%s", ev->id);
    if (kafka_header_string(msg, "type", d->type, sizeof d->type) < 0)
        snprintf(d->type, sizeof d->type, "%s", ev ? ev->type : "");
    struct kv_list headers;
    char number[32], tries[16];
    kv_init(&headers);
    if (d->id[0])
        kv_add(&headers, "id", d->id);
    if (d->type[0])
        kv_add(&headers, "type", d->type);
    kv_add(&headers, "error_code", out->error_code);
    kv_add(&headers, "error", out->error);
    snprintf(tries, sizeof tries, "%d", attempts);
    kv_add(&headers, "attempts", tries);
    kv_add(&headers, "role", w->role->name);
    kv_add(&headers, "original_topic", TOPIC_EVENTS);
    snprintf(number, sizeof number, "%d", (int)msg->partition);
    kv_add(&headers, "original_partition", number);
    snprintf(number, sizeof number, "%lld", (long long)msg->offset);
    kv_add(&headers, "original_offset", number);
    char *value = strndup(msg->payload ? (const char *)msg->payload : "", msg->len);
    char *key = strndup(msg->key ? (const char *)msg->key : "", msg->key_len);
    int rc = value && key ? produce(w, TOPIC_DLQ, key, value, &headers, &d->report) : -1;
    free(value);
    free(key);
    kv_free(&headers);
    if (rc < 0) {
        free(d);
        dlq_refused(w, ps, msg->offset, out, attempts);
        return;
    }
    ps->dlq = d;
    hold_partition(w, ps, msg->offset + 1, 0);
}

/* Acts on the DLQ reports that came: an acknowledged record lets its
 * event's offset be stored and its partition go on; a refused one sends
 * the event round again. */
static void settle_dlq(struct worker *w)
{
    for (size_t i = 0; i < w->nparts; i++) {
        struct partition_state *ps = &w->parts[i];
        struct dlq_pending *d = ps->dlq;
        if (!d || !d->report.done)
            continue;
        ps->dlq = NULL;
        if (d->report.err) {
            log_warn("a DLQ record was not delivered", "error", rd_kafka_err2str(d->report.err), NULL);
            dlq_refused(w, ps, d->offset, &d->out, d->attempts);
            free(d);
            continue;
        }
        store(ps, d->offset + 1);
        ps->dlq_failures = 0;
        ps->attempts = 0;
        ps->offset = -1;
        ps->resume_at_ms = time_monotonic_ms(); /* the hold at offset + 1 ends now */
        struct stream *st = d->stream[0] ? worker_find_stream(w, d->stream) : NULL;
        if (st && st->partition == d->partition) {
            id_window_add(&st->recent, d->id);
            if (d->apply && d->offset > st->applied_offset) {
                st->applied_offset = d->offset;
                worker_mark_dirty(st, 0);
            }
        }
        char tries[16];
        snprintf(tries, sizeof tries, "%d", d->attempts);
        metrics_add(w->m_dlq, NULL, 1);
        const char *type = d->stream[0] ? d->type : "invalid";
        count_event(w, event_type_index(type), type, "dlq");
        log_warn("event sent to the DLQ", "id", d->id, "type", d->type, "error_code", d->out.error_code, "error",
                 d->out.error, "attempts", tries, NULL);
        free(d);
    }
}

static int dlq_waiting(struct worker *w, const rd_kafka_topic_partition_list_t *partitions)
{
    for (size_t i = 0; i < w->nparts; i++) {
        const struct partition_state *ps = &w->parts[i];
        if (!ps->dlq || ps->dlq->report.done)
            continue;
        if (!partitions)
            return 1;
        for (int k = 0; k < partitions->cnt; k++)
            if (partitions->elems[k].partition == ps->partition)
                return 1;
    }
    return 0;
}

/* Before partitions go (revoke, stop): serves the reports of their DLQ
 * records for up to wait_ms, so that the offsets they allow are stored in
 * time to be committed. NULL: every partition. */
static void settle_dlq_before_leaving(struct worker *w, const rd_kafka_topic_partition_list_t *partitions, int wait_ms)
{
    int64_t until = time_monotonic_ms() + wait_ms;
    while (dlq_waiting(w, partitions) && time_monotonic_ms() < until)
        kafka_producer_poll(w->producer, 10);
    settle_dlq(w);
}

/* --- processing one event -------------------------------------------------------------------- */

/* Fills w->handled from the role's list of types. NULL, or the first type
 * the catalogue does not have (a role that could never see it). */
static const char *note_handled_types(struct worker *w)
{
    for (const char *const *t = w->role->event_types; *t; t++) {
        int i = event_type_index(*t);
        if (i < 0)
            return *t;
        w->handled[i] = 1;
    }
    return NULL;
}

static int handles(const struct worker *w, const struct event *ev)
{
    return ev->type_index >= 0 && ev->type_index < EVENT_CATALOGUE_SIZE && w->handled[ev->type_index];
}

/* Gives an admitted event to the role and does what decide_outcome says. */
static void handle(struct worker *w, struct partition_state *ps, const rd_kafka_message_t *msg, struct stream *st,
                   const struct event *ev, const struct admit *a)
{
    struct outcome out = {OUTCOME_DONE, -1, "", ""};
    int attempts = ps->offset == msg->offset ? ps->attempts : 0;
    if (ps->redo_offset == msg->offset) {
        /* Its DLQ record was refused: to the DLQ again, with the same
         * reason and count; the role is not asked twice. */
        out = ps->redo;
        out.kind = OUTCOME_FAIL;
        attempts = ps->redo_attempts - 1;
    } else {
        st->rebuilding = a->rebuilding;
        memcpy(w->current_id, ev->id, sizeof w->current_id);
        w->role->on_event(w, st, ev, a->apply, &out);
        w->current_id[0] = '\0';
    }
    struct outcome_facts f = {.kind = out.kind,
                              .retry_after_ms = out.retry_after_ms,
                              .attempts = attempts,
                              .max_attempts = w->max_attempts,
                              .base_ms = w->retry_base_ms,
                              .max_ms = w->retry_max_ms,
                              /* only a retry's backoff uses it */
                              .jitter = out.kind == OUTCOME_RETRY ? random_unit() : 0.0,
                              .apply = a->apply,
                              .offset = msg->offset,
                              .applied_offset = st->applied_offset};
    struct verdict v;
    decide_outcome(&f, &v);
    switch (v.kind) {
    case VERDICT_RETRY:
    case VERDICT_WAIT:
        ps->offset = msg->offset;
        ps->attempts = v.attempts;
        if (v.kind == VERDICT_RETRY) {
            metrics_add(w->m_retries, NULL, 1);
            log_info("event will be retried", "id", ev->id, "type", ev->type, "error_code", out.error_code, "error",
                     out.error, NULL);
        } else {
            log_debug("event waits", "id", ev->id, "type", ev->type, "error_code", out.error_code, NULL);
        }
        count_event(w, ev->type_index, ev->type, v.label);
        hold_partition(w, ps, msg->offset, v.delay_ms);
        return;
    case VERDICT_DONE:
        count_event(w, ev->type_index, ev->type, v.label);
        if (st->phase != PHASE_ENDED)
            st->ended_ms = 0;
        else if (st->ended_ms == 0)
            st->ended_ms = ev->ts_ms > 0 ? ev->ts_ms : time_now_ms();
        if (v.remember)
            id_window_add(&st->recent, ev->id);
        if (v.applied_offset != st->applied_offset) {
            st->applied_offset = v.applied_offset;
            worker_mark_dirty(st, 0);
        }
        ps->attempts = 0;
        ps->offset = -1;
        store(ps, v.store);
        return;
    case VERDICT_DLQ:
        /* Counted, remembered and stored once the record is acknowledged. */
        send_to_dlq(w, ps, msg, st, ev, a->apply, &out, v.attempts);
        return;
    }
}

/* Handles one polled event; pe->tag is its partition's epoch when it was
 * polled. 0 when it was polled before a rewind, reset or revoke of its
 * partition: dropped as if never polled (librdkafka hands it out again if it
 * is still to be read here). */
static int process(struct worker *w, struct parsed_event *pe, int64_t now_ms)
{
    const rd_kafka_message_t *msg = pe->msg;
    struct partition_state *ps = find_partition(w, msg->partition);
    if (!ps) {
        /* on_assign could not make its state: nothing of it is stored. */
        log_error("an event of a partition without state; left unstored", NULL);
        return 1;
    }
    if (pe->tag != ps->epoch)
        return 0;
    if (!admitted(w, ps, msg, now_ms))
        return 1;
    if (msg->offset >= ps->read_to)
        ps->read_to = msg->offset + 1;
    struct event *ev = &pe->ev;
    const char *err = pe->err;
    int parsed = pe->parsed;
    struct admit_facts f = {.parsed = parsed,
                            .below_committed = ps->committed >= 0 && msg->offset < ps->committed,
                            .offset = msg->offset,
                            .applied_offset = -1,
                            .reapply_until = -1};
    struct stream *st = NULL;
    if (parsed) {
        f.ours = handles(w, ev);
        st = f.ours ? stream_get(w, ev->stream, msg->partition) : NULL;
        f.have_stream = st != NULL;
    }
    if (st) {
        if (msg->offset > st->last_offset)
            st->last_offset = msg->offset;
        f.ts_ms = ev->ts_ms;
        f.since = st->since;
        f.in_recent = id_window_has(&st->recent, ev->id);
        f.in_restored = id_window_has(&st->restored, ev->id);
        f.applied_offset = st->applied_offset;
        f.reapply_until = st->reapply_until;
    }
    struct admit a;
    decide_admit(&f, &a);
    if (a.label)
        count_event(w, parsed ? ev->type_index : -1, parsed ? ev->type : "invalid", a.label);
    switch (a.kind) {
    case ADMIT_DLQ: {
        struct outcome out = {OUTCOME_FAIL, -1, "invalid_event", ""};
        snprintf(out.error, sizeof out.error, "%s", err);
        send_to_dlq(w, ps, msg, NULL, NULL, 0, &out, 1);
        break;
    }
    case ADMIT_SKIP:
    case ADMIT_FOLDED:
    case ADMIT_DUPLICATE:
        store(ps, msg->offset + 1);
        break;
    case ADMIT_LATER:
        hold_partition(w, ps, msg->offset, DECIDE_LATER_MS);
        break;
    case ADMIT_HANDLE:
        handle(w, ps, msg, st, ev, &a);
        break;
    }
    return 1;
}

/* --- assignment: rebuild before acting -------------------------------------------------------- */

struct drop_ctx {
    int32_t partition; /* -1: every partition */
    struct stream **victims;
    size_t n, cap;
};

static void collect_partition(struct worker *w, struct stream *st, void *arg)
{
    (void)w;
    struct drop_ctx *d = arg;
    if ((d->partition >= 0 && st->partition != d->partition) || d->n == d->cap)
        return;
    d->victims[d->n++] = st;
}

/* Forgets the streams of a partition (their fold is rebuilt from Kafka). */
static void drop_partition(struct worker *w, int32_t partition)
{
    struct drop_ctx d = {partition, NULL, 0, strmap_size(w->streams)};
    if (d.cap == 0)
        return;
    d.victims = calloc(d.cap, sizeof *d.victims);
    if (!d.victims)
        return;
    worker_each_stream(w, collect_partition, &d);
    for (size_t i = 0; i < d.n; i++) {
        strmap_remove(w->streams, d.victims[i]->name);
        stream_free(w, d.victims[i]);
    }
    free(d.victims);
    metrics_set(w->m_streams, NULL, (double)strmap_size(w->streams));
}

/* --- checkpoints (snapshot.h) ---------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    const struct stream *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* st as it goes into a checkpoint (and GET /debug/state). NULL when out of
 * memory. */
static json_t *stream_to_json(struct worker *w, const struct stream *st)
{
    json_t *recent = recent_ids_json(&st->recent);
    if (!recent)
        return NULL;
    json_t *o = json_pack("{s:s, s:i, s:i, s:I, s:s, s:I, s:I, s:I, s:I, s:b, s:o}", "stream", st->name, "partition",
                          (int)st->partition, "phase", (int)st->phase, "since", (json_int_t)st->since, "host", st->host,
                          "applied_offset", (json_int_t)st->applied_offset, "last_offset", (json_int_t)st->last_offset,
                          "ended_ms", (json_int_t)st->ended_ms, "reapply_until", (json_int_t)st->reapply_until,
                          "has_record", st->has_record, "recent", recent);
    if (o && w->role->snapshot_save && st->role) {
        json_t *role = w->role->snapshot_save(w, st);
        if (role && json_object_set_new(o, "role", role) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* The streams of a partition (every stream when partition < 0), by name,
 * as a JSON array; NULL when out of memory. */
static json_t *streams_to_json(struct worker *w, int32_t partition)
{
    struct drop_ctx d = {partition, NULL, 0, strmap_size(w->streams)};
    json_t *out = json_array();
    if (!out)
        return NULL;
    if (d.cap == 0)
        return out;
    if (!(d.victims = calloc(d.cap, sizeof *d.victims))) {
        json_decref(out);
        return NULL;
    }
    worker_each_stream(w, collect_partition, &d);
    qsort(d.victims, d.n, sizeof *d.victims, by_name);
    for (size_t i = 0; i < d.n; i++) {
        json_t *o = stream_to_json(w, d.victims[i]);
        if (!o || json_array_append_new(out, o) < 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    free(d.victims);
    return out;
}

/* 1 when every event of the partition below read_to is done and none is
 * pending: nothing held, retried, or awaiting its DLQ record, and past the
 * committed offset read at assignment (below it, state is not published). */
static int checkpoint_ready(const struct partition_state *ps)
{
    return ps->read_to >= 0 && ps->read_to > ps->snap_generation && ps->hold < 0 && !ps->dlq && ps->offset < 0 &&
           !ps->paused && !ps->rewind_due && ps->redo_offset < 0 && (ps->committed < 0 || ps->read_to >= ps->committed);
}

/* Publishes the partition's checkpoint as of read_to: its chunks, then its
 * header, then null records for the chunks of a bigger earlier one. What
 * fails is tried again at the next interval. */
static void take_checkpoint(struct worker *w, struct partition_state *ps)
{
    char err[256], key[SNAPSHOT_KEY_MAX], part[16];
    snprintf(part, sizeof part, "%d", (int)ps->partition);
    json_t *streams = streams_to_json(w, ps->partition);
    struct snapshot_records rec;
    if (!streams || snapshot_encode(w->role->name, ps->partition, ps->read_to, streams, SNAPSHOT_CHUNK_BYTES,
                                    time_now_ms(), &rec, err, sizeof err) < 0) {
        log_warn("cannot encode a checkpoint", "partition", part, "error", streams ? err : "out of memory", NULL);
        json_decref(streams);
        return;
    }
    size_t nstreams = json_array_size(streams);
    json_decref(streams);
    size_t bytes = 0;
    for (size_t k = 0; k < rec.count; k++) {
        bytes += rec.chunk_lens[k];
        if (snapshot_key(key, sizeof key, w->role->name, ps->partition, (long)k) < 0 ||
            produce(w, TOPIC_STATE, key, rec.chunks[k], NULL, NULL) < 0) {
            snapshot_records_free(&rec);
            return;
        }
    }
    if (snapshot_key(key, sizeof key, w->role->name, ps->partition, -1) < 0 ||
        produce(w, TOPIC_STATE, key, rec.header, NULL, NULL) < 0) {
        snapshot_records_free(&rec);
        return;
    }
    for (long k = (long)rec.count; k < ps->snap_chunks; k++)
        if (snapshot_key(key, sizeof key, w->role->name, ps->partition, k) == 0)
            produce(w, TOPIC_STATE, key, NULL, NULL, NULL); /* a leftover is ignored by generation anyway */
    ps->snap_generation = ps->read_to;
    ps->snap_chunks = (long)rec.count;
    snapshot_records_free(&rec);
    metrics_add(w->m_checkpoints, NULL, 1);
    metrics_set(w->m_checkpoint_bytes, NULL, (double)bytes);
    char at[24], count[24], size[24];
    snprintf(at, sizeof at, "%lld", (long long)ps->snap_generation);
    snprintf(count, sizeof count, "%zu", nstreams);
    snprintf(size, sizeof size, "%zu", bytes);
    log_debug("checkpoint written", "partition", part, "offset", at, "streams", count, "bytes", size, NULL);
}

/* Every SNAPSHOT_INTERVAL_S: a checkpoint of each partition that advanced
 * and is ready. */
static void checkpoint_due(struct worker *w, int64_t now_ms)
{
    if (w->snapshot_interval_ms <= 0)
        return;
    for (size_t i = 0; i < w->nparts; i++) {
        struct partition_state *ps = &w->parts[i];
        if (now_ms < ps->snap_due_ms || !checkpoint_ready(ps))
            continue;
        ps->snap_due_ms = now_ms + w->snapshot_interval_ms;
        take_checkpoint(w, ps);
    }
}

/* Before a partition goes (revoke, stop): its newest fold, for the next
 * member, when it is ready and advanced. */
static void checkpoint_leaving(struct worker *w, int32_t partition)
{
    struct partition_state *ps = find_partition(w, partition);
    if (w->snapshot_interval_ms > 0 && ps && checkpoint_ready(ps))
        take_checkpoint(w, ps);
}

static int64_t json_int(const json_t *o, const char *name, int64_t otherwise)
{
    const json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : otherwise;
}

/* Puts one stream of a checkpoint back over what its state record said.
 * Returns 0, or -1 (the checkpoint is not used). */
static int load_stream(struct worker *w, const json_t *o, int32_t partition, int64_t generation)
{
    const char *name = json_string_value(json_object_get(o, "stream"));
    const char *host = json_string_value(json_object_get(o, "host"));
    int64_t phase = json_int(o, "phase", -1);
    if (!name || stream_name_problem(name, strlen(name)) || !host || phase < PHASE_NONE || phase > PHASE_ENDED ||
        json_int(o, "partition", -1) != partition)
        return -1;
    struct stream *st = worker_find_stream(w, name);
    if (st && st->partition != partition)
        return -1;
    if (!st && phase == PHASE_ENDED && json_is_true(json_object_get(o, "has_record")))
        return 0; /* its record was removed since (a tombstone): ended for good, not brought back */
    if (!st && !(st = stream_get(w, name, partition)))
        return -1;
    st->phase = (enum stream_phase)phase;
    st->since = json_int(o, "since", 0);
    snprintf(st->host, sizeof st->host, "%s", host);
    int64_t applied = json_int(o, "applied_offset", -1);
    if (applied > st->applied_offset) /* the record may be older than the checkpoint */
        st->applied_offset = applied;
    st->last_offset = json_int(o, "last_offset", -1);
    st->ended_ms = json_int(o, "ended_ms", 0);
    if (st->phase == PHASE_ENDED && st->ended_ms <= 0)
        st->ended_ms = time_now_ms();
    int64_t reapply = json_int(o, "reapply_until", -1);
    if (reapply > st->reapply_until)
        st->reapply_until = reapply;
    /* Still rebuilding only when the tail holds events an earlier process
     * applied (its record is newer than the checkpoint): the role holds its
     * periodic work until they are folded. */
    st->rebuilding = st->applied_offset >= generation || st->reapply_until >= generation;
    id_window_clear(&st->recent);
    size_t k;
    json_t *id;
    json_array_foreach (json_object_get(o, "recent"), k, id) {
        if (json_is_string(id) && json_string_length(id) == EVENT_ID_LEN)
            id_window_add(&st->recent, json_string_value(id));
    }
    const json_t *role = json_object_get(o, "role");
    if (role && w->role->snapshot_load && w->role->snapshot_load(w, st, role) < 0)
        return -1;
    return 0;
}

/* Loads the partition's checkpoint when it is valid and no re-apply mark
 * lies below it. Returns the offset to re-read the partition from: the
 * checkpoint's, or 0 (then the streams are as read_state left them). */
static int64_t use_checkpoint(struct worker *w, struct partition_state *ps, const struct snapshot_parts *parts,
                              int64_t mark)
{
    char why[256], part[16], at[24];
    snprintf(part, sizeof part, "%d", (int)ps->partition);
    int64_t generation = -1;
    json_t *streams = snapshot_parts_decode(parts, &generation, why, sizeof why);
    if (!streams) {
        if (parts->have_header) {
            log_warn("checkpoint not used; re-reading the partition from its beginning", "partition", part, "why", why,
                     NULL);
            metrics_add(w->m_checkpoint_loads, (const char *const[]){"fallback"}, 1);
        }
        return 0;
    }
    snprintf(at, sizeof at, "%lld", (long long)generation);
    /* A checkpoint past the end of the partition belongs to a log that is
     * gone (the topic made again): re-read what there is. */
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t werr = rd_kafka_query_watermark_offsets(kafka_consumer_handle(w->consumer), TOPIC_EVENTS,
                                                                ps->partition, &low, &high, 10000);
    if (werr || generation > high) {
        log_warn("checkpoint beyond the partition's end, or the end unknown; re-reading the partition from its "
                 "beginning",
                 "partition", part, "offset", at, "error", werr ? rd_kafka_err2str(werr) : "", NULL);
        metrics_add(w->m_checkpoint_loads, (const char *const[]){"fallback"}, 1);
        json_decref(streams);
        return 0;
    }
    if (mark >= 0 && mark < generation) {
        log_info("a re-apply mark lies below the checkpoint; re-reading the partition from its beginning", "partition",
                 part, "offset", at, NULL);
        metrics_add(w->m_checkpoint_loads, (const char *const[]){"fallback"}, 1);
        json_decref(streams);
        return 0;
    }
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach (streams, i, o) {
        if ((rc = load_stream(w, o, ps->partition, generation)) < 0)
            break;
    }
    char count[24];
    snprintf(count, sizeof count, "%zu", json_array_size(streams));
    json_decref(streams);
    if (rc < 0) {
        log_warn("checkpoint unreadable; re-reading the partition from its beginning", "partition", part, NULL);
        metrics_add(w->m_checkpoint_loads, (const char *const[]){"fallback"}, 1);
        return -1;
    }
    ps->read_to = generation;
    ps->snap_generation = generation;
    ps->snap_chunks = parts->chunks;
    metrics_add(w->m_checkpoint_loads, (const char *const[]){"loaded"}, 1);
    log_info("checkpoint loaded; re-reading the partition from it", "partition", part, "offset", at, "streams", count,
             NULL);
    return generation;
}

/* GET /debug/state, answered by the poll loop (which owns the streams). */
static void serve_debug(struct worker *w)
{
    pthread_mutex_lock(&w->debug_lock);
    int asked = w->debug_asked;
    pthread_mutex_unlock(&w->debug_lock);
    if (!asked)
        return;
    json_t *streams = streams_to_json(w, -1);
    json_t *dump = streams ? json_pack("{s:s, s:o}", "role", w->role->name, "streams", streams) : NULL;
    char *text = dump ? json_dumps(dump, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(dump);
    pthread_mutex_lock(&w->debug_lock);
    free(w->debug_answer);
    w->debug_answer = text ? text : strdup("{\"error\":\"out of memory\"}");
    w->debug_asked = 0;
    pthread_cond_broadcast(&w->debug_cond);
    pthread_mutex_unlock(&w->debug_lock);
}

static char *ask_debug(struct worker *w)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&w->debug_lock);
    free(w->debug_answer);
    w->debug_answer = NULL;
    w->debug_asked = 1;
    while (!w->debug_answer && pthread_cond_timedwait(&w->debug_cond, &w->debug_lock, &until) == 0)
        ;
    char *text = w->debug_answer;
    w->debug_answer = NULL;
    w->debug_asked = 0;
    pthread_mutex_unlock(&w->debug_lock);
    return text;
}

static int partition_in(const rd_kafka_topic_partition_list_t *list, int32_t partition)
{
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == partition)
            return 1;
    return 0;
}

/* A tombstone read back: when it is our record's ("<stream>/<role>") and
 * the stream was restored from an older record, the stream is forgotten.
 * Returns 1 when one was. */
static size_t forget_removed(struct worker *w, const rd_kafka_message_t *msg,
                             const rd_kafka_topic_partition_list_t *assigned)
{
    char key[STREAM_NAME_MAX_CHARS * 4 + 16];
    size_t role_len = strlen(w->role->name);
    if (!msg->key || msg->key_len >= sizeof key || msg->key_len < role_len + 2)
        return 0;
    memcpy(key, msg->key, msg->key_len);
    key[msg->key_len] = '\0';
    char *slash = key + msg->key_len - role_len - 1;
    if (*slash != '/' || strcmp(slash + 1, w->role->name) != 0)
        return 0;
    *slash = '\0';
    struct stream *st = strmap_get(w->streams, key);
    if (!st || !partition_in(assigned, st->partition))
        return 0;
    strmap_remove(w->streams, key);
    stream_free(w, st);
    metrics_set(w->m_streams, NULL, (double)strmap_size(w->streams));
    return 1;
}

/* Puts back one of the role's records of a stream of the assigned
 * partitions (record may be NULL or another role's: then nothing). Returns
 * 1 when a stream was restored. */
static int restore_record(struct worker *w, const json_t *record, const rd_kafka_topic_partition_list_t *assigned)
{
    const char *role = json_string_value(json_object_get(record, "role"));
    const char *name = json_string_value(json_object_get(record, "stream"));
    json_t *partition = json_object_get(record, "partition");
    if (!role || !name || strcmp(role, w->role->name) != 0 || !json_is_integer(partition) ||
        !partition_in(assigned, (int32_t)json_integer_value(partition)))
        return 0;
    struct stream *st = stream_get(w, name, (int32_t)json_integer_value(partition));
    if (!st)
        return 0;
    const char *status = json_string_value(json_object_get(record, "status"));
    const char *host = json_string_value(json_object_get(record, "host"));
    st->applied_offset = json_integer_value(json_object_get(record, "applied_offset"));
    st->rebuilding = st->applied_offset >= 0;
    st->since = json_integer_value(json_object_get(record, "since"));
    st->phase = !status                        ? PHASE_NONE
                : strcmp(status, "ready") == 0 ? PHASE_READY
                : strcmp(status, "ended") == 0 ? PHASE_ENDED
                                               : PHASE_CREATING;
    snprintf(st->host, sizeof st->host, "%s", host ? host : "");
    st->has_record = 1;
    /* A record from before ended_ms was kept: its retention starts now. */
    json_t *ended = json_object_get(record, "ended_ms");
    st->ended_ms = st->phase != PHASE_ENDED                                  ? 0
                   : json_is_integer(ended) && json_integer_value(ended) > 0 ? (int64_t)json_integer_value(ended)
                                                                             : time_now_ms();
    size_t k;
    json_t *id;
    id_window_clear(&st->restored);
    json_array_foreach (json_object_get(record, "recent_ids"), k, id)
        if (json_is_string(id) && json_string_length(id) == EVENT_ID_LEN)
            id_window_add(&st->restored, json_string_value(id));
    if (w->role->restore)
        w->role->restore(w, st, record);
    json_t *without_ts = json_copy((json_t *)record); /* shallow: the record itself is left as it is */
    char *text = without_ts && json_object_del(without_ts, "ts") == 0 ? json_dumps(without_ts, JSON_COMPACT) : NULL;
    st->record_digest = text ? record_digest(w, text) : 0;
    free(text);
    json_decref(without_ts);
    return 1;
}

/* Restores the streams of the assigned partitions from our records; when
 * parts is not NULL (one per element of assigned), gathers their
 * checkpoint records too. */
static void read_state(struct worker *w, const rd_kafka_topic_partition_list_t *assigned, struct snapshot_parts *parts)
{
    char err[256];
    struct kafka_reader_options opt = {.brokers = config_str(w->cfg, "KAFKA_BROKERS"), .topic = TOPIC_STATE};
    struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
    if (!r) {
        log_warn("cannot read the state topic; rebuilding from events alone", "error", err, NULL);
        return;
    }
    int64_t until = time_monotonic_ms() + STATE_CATCH_UP_MS;
    size_t restored = 0;
    while (!kafka_reader_caught_up(r) && time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (!msg)
            continue;
        int32_t cp_partition;
        long cp_chunk;
        if (msg->key && snapshot_is_key(msg->key, msg->key_len)) {
            if (parts && snapshot_parse_key(msg->key, msg->key_len, w->role->name, &cp_partition, &cp_chunk))
                for (int i = 0; i < assigned->cnt; i++)
                    if (assigned->elems[i].partition == cp_partition &&
                        snapshot_parts_offer(&parts[i], cp_chunk, msg->payload, msg->len) < 0)
                        log_warn("a malformed checkpoint record ignored", NULL);
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (!msg->payload) {
            restored -= forget_removed(w, msg, assigned);
            rd_kafka_message_destroy(msg);
            continue;
        }
        json_t *record = json_loadb(msg->payload, msg->len, 0, NULL);
        restored += restore_record(w, record, assigned);
        json_decref(record);
        rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    char count[24];
    snprintf(count, sizeof count, "%zu", restored);
    log_info("state restored", "streams", count, NULL);
}

struct reapply_ctx {
    int32_t partition;
    int64_t offset;
};

static void reapply_stream(struct worker *w, struct stream *st, void *arg)
{
    (void)w;
    const struct reapply_ctx *r = arg;
    if (st->partition != r->partition || st->applied_offset < r->offset)
        return;
    st->reapply_until = st->applied_offset;
    st->applied_offset = r->offset - 1;
    st->rebuilding = 1;
    id_window_clear(&st->restored); /* those ids are to be applied again */
}

/* Reads and notes the committed offsets (below them, an unreadable event
 * went to the DLQ before). NULL when they could not be read. */
static rd_kafka_topic_partition_list_t *read_committed(struct worker *w,
                                                       const rd_kafka_topic_partition_list_t *assigned)
{
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(assigned);
    rd_kafka_resp_err_t e = rd_kafka_committed(kafka_consumer_handle(w->consumer), committed, 10000);
    if (e) {
        log_warn("cannot read the committed offsets", "error", rd_kafka_err2str(e), NULL);
        rd_kafka_topic_partition_list_destroy(committed);
        return NULL;
    }
    for (int i = 0; i < committed->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &committed->elems[i];
        struct partition_state *ps = find_partition(w, tp->partition);
        if (ps && !tp->err)
            ps->committed = tp->offset;
    }
    return committed;
}

/* The offset `stagehand-replay offsets` marked for re-applying (a committed
 * offset with KAFKA_REAPPLY_MARK), or -1. */
static int64_t reapply_mark(const rd_kafka_topic_partition_t *tp)
{
    if (tp->err || tp->offset < 0 || tp->metadata_size != strlen(KAFKA_REAPPLY_MARK) ||
        memcmp(tp->metadata, KAFKA_REAPPLY_MARK, tp->metadata_size) != 0)
        return -1;
    return tp->offset;
}

/* Honours `stagehand-replay offsets`: a committed offset marked with
 * KAFKA_REAPPLY_MARK makes everything from it count as not yet applied (the
 * worker's own commits carry no mark, so this happens once). */
static void reapply_marked(struct worker *w, const rd_kafka_topic_partition_list_t *committed)
{
    {
        for (int i = 0; i < committed->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &committed->elems[i];
            if (reapply_mark(tp) < 0)
                continue;
            struct reapply_ctx r = {tp->partition, tp->offset};
            worker_each_stream(w, reapply_stream, &r);
            char partition[16], offset[24];
            snprintf(partition, sizeof partition, "%d", (int)tp->partition);
            snprintf(offset, sizeof offset, "%lld", (long long)tp->offset);
            log_info("applying again from a marked offset", "partition", partition, "offset", offset, NULL);
        }
    }
}

/* Where each of the assigned partitions is read from, now that their
 * streams are back from their records: its checkpoint's offset when
 * parts[i] holds a valid one (parts or parts[i] NULL: none), else 0; then
 * the re-apply marks of `stagehand-replay offsets`. */
static void rewind_assigned(struct worker *w, const rd_kafka_topic_partition_list_t *partitions,
                            struct snapshot_parts **parts)
{
    char err[256];
    rd_kafka_topic_partition_list_t *committed = read_committed(w, partitions);
    for (int i = 0; i < partitions->cnt; i++) {
        int32_t p = partitions->elems[i].partition;
        struct partition_state *ps = find_partition(w, p);
        int64_t from = 0;
        /* A checkpoint only with the re-apply marks known. */
        if (parts && parts[i] && committed && ps) {
            const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(committed, TOPIC_EVENTS, p);
            from = use_checkpoint(w, ps, parts[i], tp ? reapply_mark(tp) : -1);
            if (from < 0) {
                /* Half loaded: the partition's streams are read again from their records. */
                rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                drop_partition(w, p);
                ps->read_to = -1;
                if (one) {
                    rd_kafka_topic_partition_list_add(one, TOPIC_EVENTS, p);
                    read_state(w, one, NULL);
                    rd_kafka_topic_partition_list_destroy(one);
                }
                from = 0;
            }
        }
        /* Offset 0: when retention removed it, auto.offset.reset=earliest applies. */
        if (rewind_partition(w, ps, p, from, err, sizeof err) < 0)
            log_warn("cannot re-read a partition", "error", err, NULL);
    }
    if (committed) {
        reapply_marked(w, committed);
        rd_kafka_topic_partition_list_destroy(committed);
    }
}

/* Hands the reading of stagehand.state for new partitions to a loader's
 * thread (state_loader.h) and pauses them until it is done, so that the
 * partitions this member had go on meanwhile. -1 when no loader could
 * start: then the caller reads it in the poll loop. */
static int start_loading(struct worker *w, const rd_kafka_topic_partition_list_t *partitions)
{
    char err[256];
    if (w->nloads >= MAX_LOADERS)
        return -1;
    int32_t *ids = calloc((size_t)partitions->cnt, sizeof *ids);
    if (!ids)
        return -1;
    for (int i = 0; i < partitions->cnt; i++)
        ids[i] = partitions->elems[i].partition;
    struct state_loader *l = state_loader_start(config_str(w->cfg, "KAFKA_BROKERS"), TOPIC_STATE, w->role->name, ids,
                                                partitions->cnt, w->snapshot_interval_ms > 0, STATE_CATCH_UP_MS, err,
                                                sizeof err);
    free(ids);
    if (!l) {
        log_warn("cannot read stagehand.state on a thread; reading it in the poll loop", "error", err, NULL);
        return -1;
    }
    int id = ++w->load_seq;
    w->loads[w->nloads].loader = l;
    w->loads[w->nloads].id = id;
    w->nloads++;
    for (int i = 0; i < partitions->cnt; i++) {
        struct partition_state *ps = find_partition(w, partitions->elems[i].partition);
        if (!ps)
            continue;
        ps->loading = id;
        /* A pause that fails: its events are kept out (admitted) until the rewind. */
        if (!ps->paused && kafka_consumer_pause(w->consumer, TOPIC_EVENTS, ps->partition, err, sizeof err) == 0)
            ps->paused = 1;
    }
    return 0;
}

struct restore_ctx {
    struct worker *w;
    const rd_kafka_topic_partition_list_t *assigned;
    size_t restored;
};

static void restore_each(void *arg, json_t *record)
{
    struct restore_ctx *r = arg;
    r->restored += (size_t)restore_record(r->w, record, r->assigned);
}

/* A loader is done: the streams of its partitions that are still waiting
 * for it (not revoked, not assigned again since) come back from what it
 * read, the partitions are rewound, and resume_due resumes them. */
static void place_loaded(struct worker *w, struct state_loader *l, int id)
{
    int n;
    const int32_t *ids = state_loader_partitions(l, &n);
    rd_kafka_topic_partition_list_t *waiting = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    struct snapshot_parts **each = calloc(n > 0 ? (size_t)n : 1, sizeof *each);
    if (!waiting || !each) {
        log_error("out of memory placing a partition's state; stopping", NULL);
        atomic_store(&w->stop, 1);
        free(each);
        if (waiting)
            rd_kafka_topic_partition_list_destroy(waiting);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct partition_state *ps = find_partition(w, ids[i]);
        if (!ps || ps->loading != id)
            continue;
        each[waiting->cnt] = state_loader_parts(l, ids[i]);
        rd_kafka_topic_partition_list_add(waiting, TOPIC_EVENTS, ids[i]);
    }
    if (waiting->cnt > 0) {
        const char *why;
        if (state_loader_status(l, &why) < 0)
            log_warn("stagehand.state not read to its end; rebuilding from what was read and the events", "error", why,
                     NULL);
        struct restore_ctx r = {w, waiting, 0};
        state_loader_each_record(l, restore_each, &r);
        char count[24];
        snprintf(count, sizeof count, "%zu", r.restored);
        log_info("state restored", "streams", count, NULL);
        rewind_assigned(w, waiting, each);
        for (int i = 0; i < waiting->cnt; i++) {
            struct partition_state *ps = find_partition(w, waiting->elems[i].partition);
            ps->loading = 0;
            ps->resume_at_ms = 0; /* resume_due resumes it */
        }
    }
    free(each);
    rd_kafka_topic_partition_list_destroy(waiting);
}

/* In the poll loop: places what the loaders that are done have read. */
static void finish_loads(struct worker *w)
{
    for (int i = 0; i < w->nloads;) {
        if (!state_loader_done(w->loads[i].loader)) {
            i++;
            continue;
        }
        place_loaded(w, w->loads[i].loader, w->loads[i].id);
        state_loader_free(w->loads[i].loader);
        w->loads[i] = w->loads[--w->nloads];
    }
}

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    struct worker *w = ctx;
    /* A cooperative rebalance gives every member an assignment, most often
     * an empty one: reading stagehand.state for it would hold up the
     * partitions the member keeps (issue 19: about 2 s on the dev broker). */
    if (partitions->cnt == 0)
        return;
    for (int i = 0; i < partitions->cnt; i++) {
        int32_t p = partitions->elems[i].partition;
        drop_partition(w, p);
        struct partition_state *ps = partition_state(w, p);
        if (!ps) {
            /* Its events would be handled without a hold: stop instead. */
            log_error("out of memory for a partition's state; stopping", NULL);
            atomic_store(&w->stop, 1);
            continue;
        }
        reset_partition(ps);
    }
    if (start_loading(w, partitions) < 0) {
        /* Read here, in the poll loop. */
        struct snapshot_parts *parts = NULL;
        struct snapshot_parts **each = calloc((size_t)partitions->cnt, sizeof *each);
        if (w->snapshot_interval_ms > 0 && each && (parts = calloc((size_t)partitions->cnt, sizeof *parts)))
            for (int i = 0; i < partitions->cnt; i++) {
                snapshot_parts_init(&parts[i]);
                each[i] = &parts[i];
            }
        read_state(w, partitions, parts);
        rewind_assigned(w, partitions, each);
        for (int i = 0; parts && i < partitions->cnt; i++)
            snapshot_parts_free(&parts[i]);
        free(parts);
        free(each);
    }
    w->assigned += partitions->cnt;
    metrics_set(w->m_partitions, NULL, w->assigned);
}

static void on_revoke(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    struct worker *w = ctx;
    settle_dlq_before_leaving(w, partitions, REVOKE_DLQ_WAIT_MS);
    flush_stores(w); /* committed next, from what librdkafka has */
    for (int i = 0; i < partitions->cnt; i++) {
        int32_t p = partitions->elems[i].partition;
        publish_all(w, p);
        checkpoint_leaving(w, p);
        drop_partition(w, p);
        struct partition_state *ps = find_partition(w, p);
        if (ps)
            reset_partition(ps);
    }
    kafka_producer_poll(w->producer, 0);
    w->assigned -= partitions->cnt;
    metrics_set(w->m_partitions, NULL, w->assigned);
}

/* --- tombstones: ended streams leave stagehand.state ------------------------------------------- */

struct expire_ctx {
    struct stream **due;
    size_t n, cap;
};

static void collect_expired(struct worker *w, struct stream *st, void *arg)
{
    struct expire_ctx *e = arg;
    if (e->n < e->cap && expired(w, st))
        e->due[e->n++] = st;
}

/* Publishes a null record for st's key, unless it has none (a stream
 * rebuilt from events whose record was removed before), and forgets st. */
static void remove_stream(struct worker *w, struct stream *st)
{
    char key[STREAM_NAME_MAX_CHARS * 4 + 16];
    snprintf(key, sizeof key, "%s/%s", st->name, w->role->name);
    if (st->has_record) {
        if (produce(w, TOPIC_STATE, key, NULL, NULL, NULL) < 0)
            return; /* tried again at the next sweep */
        metrics_add(w->m_tombstones, NULL, 1);
        log_info("ended stream's state record removed", "stream", st->name, NULL);
    }
    strmap_remove(w->streams, st->name);
    stream_free(w, st);
    metrics_set(w->m_streams, NULL, (double)strmap_size(w->streams));
}

/* About once a second: the streams ended STATE_TOMBSTONE_AFTER_S ago whose
 * events are all below the group's committed offset (asked of the group
 * coordinator only when there are such streams) lose their record. */
static void expire_ended(struct worker *w, int64_t now_ms)
{
    if (now_ms < w->next_sweep_ms)
        return;
    w->next_sweep_ms = now_ms + EXPIRE_SWEEP_MS;
    struct expire_ctx e = {NULL, 0, strmap_size(w->streams)};
    if (e.cap == 0 || !(e.due = calloc(e.cap, sizeof *e.due)))
        return;
    worker_each_stream(w, collect_expired, &e);
    rd_kafka_topic_partition_list_t *committed = NULL;
    rd_kafka_t *rk = kafka_consumer_handle(w->consumer);
    rd_kafka_resp_err_t err = e.n ? rd_kafka_assignment(rk, &committed) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!err && committed)
        err = rd_kafka_committed(rk, committed, COMMITTED_WAIT_MS);
    if (err)
        log_warn("cannot read the committed offsets; ended streams kept", "error", rd_kafka_err2str(err), NULL);
    for (size_t i = 0; !err && committed && i < e.n; i++) {
        struct stream *st = e.due[i];
        const struct partition_state *ps = find_partition(w, st->partition);
        const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(committed, TOPIC_EVENTS,
                                                                                  st->partition);
        struct tombstone_facts f = {.ended = st->phase == PHASE_ENDED,
                                    .ended_ms = st->ended_ms,
                                    .now_ms = time_now_ms(),
                                    .after_ms = w->tombstone_after_ms,
                                    .last_offset = st->last_offset,
                                    .committed = tp && !tp->err ? tp->offset : -1,
                                    .read_to = ps ? ps->read_to : -1,
                                    .floor = ps ? ps->committed : 0};
        if (ps && decide_tombstone(&f))
            remove_stream(w, st);
    }
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    free(e.due);
}

/* Notes the event just processed for the oldest unapplied event's age: it
 * is pending while its partition holds (a retry) or waits for a DLQ
 * record. */
static void note_unapplied(struct worker *w, const rd_kafka_message_t *msg)
{
    const struct partition_state *ps = find_partition(w, msg->partition);
    if (!ps)
        return;
    int64_t ts = rd_kafka_message_timestamp(msg, NULL);
    if (unapplied_seen(w->unapplied, msg->partition, ts, ps->dlq != NULL || ps->hold >= 0) < 0)
        log_warn("out of memory for the unapplied age; the partition reads 0", NULL);
}

/* Consumer lag and the oldest unapplied event's age per assigned
 * partition, from librdkafka's cached watermarks (no broker round trip),
 * every few seconds. A partition this member no longer holds reads 0 on
 * both, so that a sum or max over the members counts each partition once. */
static void measure_lag(struct worker *w, int64_t now_ms)
{
    if (now_ms < w->next_lag_ms)
        return;
    w->next_lag_ms = now_ms + 5000;
    rd_kafka_topic_partition_list_t *assigned = kafka_consumer_assignment(w->consumer);
    if (!assigned)
        return;
    rd_kafka_t *rk = kafka_consumer_handle(w->consumer);
    int64_t wall_ms = time_now_ms();
    char label[16];
    for (size_t i = 0; i < w->nparts; i++) {
        if (rd_kafka_topic_partition_list_find(assigned, TOPIC_EVENTS, w->parts[i].partition))
            continue;
        unapplied_forget(w->unapplied, w->parts[i].partition, wall_ms);
        snprintf(label, sizeof label, "%d", (int)w->parts[i].partition);
        metrics_set(w->m_lag, (const char *const[]){label}, 0);
        metrics_set(w->m_unapplied, (const char *const[]){label}, 0);
    }
    if (rd_kafka_position(rk, assigned) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < assigned->cnt; i++) {
            int64_t low = 0, high = 0;
            const rd_kafka_topic_partition_t *tp = &assigned->elems[i];
            if (rd_kafka_get_watermark_offsets(rk, tp->topic, tp->partition, &low, &high) != 0 || high < 0)
                continue;
            /* No position yet: nothing consumed since the assignment; a
             * partition rewound to its checkpoint is read up to it. */
            const struct partition_state *ps = find_partition(w, tp->partition);
            int64_t position = tp->offset >= 0 ? tp->offset : ps && ps->read_to > low ? ps->read_to : low;
            snprintf(label, sizeof label, "%d", (int)tp->partition);
            metrics_set(w->m_lag, (const char *const[]){label}, (double)(high > position ? high - position : 0));
            metrics_set(w->m_unapplied, (const char *const[]){label},
                        unapplied_age(w->unapplied, tp->partition, high > position, wall_ms));
        }
    }
    rd_kafka_topic_partition_list_destroy(assigned);
}

/* --- metrics endpoint ------------------------------------------------------------------------- */

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_size;
    struct worker *w = cls;
    if (!*con_cls) {
        *con_cls = conn;
        return MHD_YES;
    }
    char *text = NULL;
    const char *type = "application/json";
    unsigned status = 200;
    if (strcmp(method, "GET") != 0) {
        status = 405;
        text = strdup("{\"error\":\"use GET\"}");
    } else if (strcmp(url, "/metrics") == 0) {
        text = metrics_render(w->metrics);
        type = "text/plain; version=0.0.4";
    } else if (strcmp(url, "/healthz") == 0) {
        text = strdup("{\"ok\":true}");
    } else if (strcmp(url, "/debug/state") == 0) {
        /* Every stream as a checkpoint holds it (the equivalence test). */
        text = ask_debug(w);
        if (!text) {
            status = 503;
            text = strdup("{\"error\":\"the poll loop is busy (an assignment); ask again\"}");
        }
    } else {
        status = 404;
        text = strdup("{\"error\":\"not found\"}");
    }
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int create_metrics(struct worker *w)
{
    static const char *const type_outcome[] = {"type", "outcome"};
    static const char *const status[] = {"status"};
    w->metrics = metrics_new();
    if (!w->metrics)
        return -1;
    w->m_events =
        metrics_counter(w->metrics, "stagehand_worker_events_total",
                        "Events handled, by type and outcome (applied, folded, duplicate, retry, wait, dlq, skipped).",
                        2, type_outcome);
    w->m_twilio = metrics_counter(w->metrics, "stagehand_worker_twilio_calls_total",
                                  "Twilio REST calls, by HTTP status (0: no answer).", 1, status);
    w->m_retries = metrics_counter(w->metrics, "stagehand_worker_retries_total",
                                   "Events scheduled for another attempt.", 0, NULL);
    w->m_dlq = metrics_counter(w->metrics, "stagehand_worker_dlq_total",
                               "Events sent to the DLQ (their record acknowledged by Kafka).", 0, NULL);
    w->m_dlq_failures = metrics_counter(w->metrics, "stagehand_worker_dlq_failures_total",
                                        "DLQ records Kafka did not take (the event is sent again).", 0, NULL);
    w->m_held = metrics_counter(w->metrics, "stagehand_worker_held_back_total",
                                "Events fetched past a held one and kept out (not handled, not stored).", 0, NULL);
    w->m_state_records = metrics_counter(w->metrics, "stagehand_worker_state_records_total",
                                         "Records published to stagehand.state.", 0, NULL);
    w->m_tombstones = metrics_counter(w->metrics, "stagehand_worker_state_tombstones_total",
                                      "Ended streams whose state record was removed (a null record).", 0, NULL);
    w->m_streams = metrics_gauge(w->metrics, "stagehand_worker_streams", "Streams held in memory.", 0, NULL);
    static const char *const outcome[] = {"outcome"};
    w->m_checkpoints = metrics_counter(w->metrics, "stagehand_worker_checkpoints_total",
                                       "Checkpoints of a partition's fold published to stagehand.state.", 0, NULL);
    w->m_checkpoint_loads = metrics_counter(w->metrics, "stagehand_worker_checkpoint_loads_total",
                                            "Checkpoints met on assignment: loaded (the partition re-read from "
                                            "its offset), or fallback (re-read from 0).",
                                            1, outcome);
    w->m_checkpoint_bytes = metrics_gauge(w->metrics, "stagehand_worker_checkpoint_bytes",
                                          "Size of the last checkpoint published (all its chunks).", 0, NULL);
    w->m_partitions = metrics_gauge(w->metrics, "stagehand_worker_partitions",
                                    "Partitions of stagehand.events assigned.", 0, NULL);
    static const char *const partition[] = {"partition"};
    w->m_lag = metrics_gauge(w->metrics, "stagehand_worker_consumer_lag",
                             "Events of an assigned partition not yet consumed (high watermark - position).", 1,
                             partition);
    w->m_unapplied = metrics_gauge(w->metrics, "stagehand_worker_oldest_unapplied_seconds",
                                   "Age of an assigned partition's oldest event not yet applied, from the events' "
                                   "timestamps (exact for an event held or awaiting its DLQ record, else an upper "
                                   "bound; 0 when caught up).",
                                   1, partition);
    w->unapplied = unapplied_new();
    return w->m_unapplied && w->unapplied && w->m_events && w->m_twilio && w->m_retries && w->m_dlq &&
                   w->m_dlq_failures && w->m_held && w->m_state_records && w->m_tombstones && w->m_streams &&
                   w->m_partitions && w->m_lag && w->m_checkpoints && w->m_checkpoint_loads && w->m_checkpoint_bytes
               ? 0
               : -1;
}

/* --- start and run ------------------------------------------------------------------------------ */

static int load_config(struct worker *w, char *err, size_t errlen)
{
    const struct {
        const struct config_spec *specs;
        size_t n;
    } tables[] = {
        {settings_logging, settings_logging_count},   {settings_kafka, settings_kafka_count},
        {settings_twilio, settings_twilio_count},     {settings_public, settings_public_count},
        {settings_workers, settings_workers_count},   {settings_streams, settings_streams_count},
        {w->role->settings, w->role->settings_count},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (tables[i].n && config_register(w->cfg, tables[i].specs, tables[i].n, err, errlen) < 0)
            return -1;
    return config_load(w->cfg, err, errlen);
}

static int start_clients(struct worker *w, char *err, size_t errlen)
{
    const struct config *c = w->cfg;
    struct twilio_options topt = {
        .account_sid = config_str(c, "TWILIO_ACCOUNT_SID"),
        .api_key_sid = config_str(c, "TWILIO_API_KEY_SID"),
        .api_key_secret = config_str(c, "TWILIO_API_KEY_SECRET"),
        .api_base = config_str(c, "TWILIO_API_BASE"),
        .video_base = config_str(c, "TWILIO_VIDEO_BASE"),
        .sync_base = config_str(c, "TWILIO_SYNC_BASE"),
        .media_base = config_str(c, "TWILIO_MEDIA_BASE"),
        .timeout_ms = (long)config_int(c, "TWILIO_TIMEOUT_MS"),
        .max_retries = 0, /* the poll loop schedules retries itself */
        .retry_base_ms = w->retry_base_ms,
        .retry_max_ms = w->retry_max_ms,
    };
    if (!(w->twilio = twilio_client_new(&topt, err, errlen)))
        return -1;
    struct kv_list pprops;
    kv_init(&pprops);
    kv_add(&pprops, "message.timeout.ms", PRODUCE_TIMEOUT_MS);
    struct kafka_producer_options popt = {.brokers = config_str(c, "KAFKA_BROKERS"),
                                          .properties = &pprops,
                                          .on_delivery = on_delivery};
    w->producer = kafka_producer_new(&popt, err, errlen);
    kv_free(&pprops);
    if (!w->producer)
        return -1;
    char session[24], heartbeat[24];
    long session_ms = (long)config_int(c, "KAFKA_SESSION_TIMEOUT_MS");
    snprintf(session, sizeof session, "%ld", session_ms);
    snprintf(heartbeat, sizeof heartbeat, "%ld", session_ms / 10 < 500 ? 500 : session_ms / 10);
    struct kv_list props;
    kv_init(&props);
    kv_add(&props, "session.timeout.ms", session);
    kv_add(&props, "heartbeat.interval.ms", heartbeat);
    const char *const topics[] = {TOPIC_EVENTS};
    snprintf(w->group, sizeof w->group, "%s%s", GROUP_PREFIX, w->role->name);
    struct kafka_consumer_options copt = {.brokers = config_str(c, "KAFKA_BROKERS"),
                                          .group_id = w->group,
                                          .topics = topics,
                                          .topic_count = 1,
                                          .properties = &props,
                                          .on_assign = on_assign,
                                          .on_revoke = on_revoke,
                                          .ctx = w};
    w->consumer = kafka_consumer_new(&copt, err, errlen);
    kv_free(&props);
    return w->consumer ? 0 : -1;
}

static void *stopper(void *arg)
{
    struct worker *w = arg;
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigwait(&set, &sig);
    atomic_store(&w->stop, 1);
    return NULL;
}

static int free_stream_entry(void *ctx, const char *key, void *value)
{
    (void)key;
    stream_free(ctx, value);
    return 0;
}

/* What the poll loop does besides handling events, every HOUSEKEEPING_MS
 * (*next_ms is when next). */
static void housekeeping_due(struct worker *w, int64_t now, int64_t *next_ms)
{
    if (now < *next_ms)
        return;
    *next_ms = now + HOUSEKEEPING_MS;
    flush_stores(w);
    kafka_producer_poll(w->producer, 0);
    settle_dlq(w);
    finish_loads(w);
    resume_due(w, now);
    measure_lag(w, now);
    if (w->role->tick)
        w->role->tick(w, now);
    publish_due(w, now);
    expire_ended(w, now);
    checkpoint_due(w, now);
    serve_debug(w);
}

/* Polls a batch of events into the parse-ahead ring: waits up to wait_ms
 * for the first, then takes what librdkafka has already fetched. A full
 * batch (the queue is long) is offered to the parsing thread. Returns the
 * number polled. */
static size_t poll_batch(struct worker *w, int wait_ms)
{
    struct parse_batch *b = parse_ahead_slot(w->ahead);
    if (!b)
        return 0;
    while (b->n < PARSE_AHEAD_BATCH) {
        rd_kafka_message_t *msg = kafka_consumer_poll(w->consumer, b->n == 0 ? wait_ms : 0);
        if (!msg)
            break;
        /* The epoch after the poll: a rebalance in the poll came before msg. */
        struct partition_state *ps = find_partition(w, msg->partition);
        b->items[b->n].msg = msg;
        b->items[b->n].tag = ps ? ps->epoch : 0;
        b->n++;
    }
    size_t n = b->n;
    parse_ahead_submit(w->ahead, b, n == PARSE_AHEAD_BATCH);
    return n;
}

/* Fills the ring while the queue is long: batch after full batch, up to
 * PARSE_AHEAD_PENDING waiting. With none waiting, the first poll waits up to
 * POLL_MS. */
static void poll_ahead(struct worker *w)
{
    for (int pending = parse_ahead_pending(w->ahead); pending < PARSE_AHEAD_PENDING; pending++)
        if (poll_batch(w, pending > 0 ? 0 : POLL_MS) < PARSE_AHEAD_BATCH)
            break;
}

int worker_main(const struct worker_role *role, int argc, char **argv)
{
    char err[2048], name[64];
    struct worker w = {.role = role};
    snprintf(name, sizeof name, "stagehand-%s-worker", role->name);
    const char *unknown = note_handled_types(&w);
    if (unknown) {
        fprintf(stderr, "%s: handles %s, which is not in the event catalogue\n", name, unknown);
        return 1;
    }
    w.cfg = config_new();
    w.streams = strmap_new();
    if (!w.cfg || !w.streams) {
        fprintf(stderr, "%s: out of memory\n", name);
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        load_config(&w, err, sizeof err);
        printf("usage: %s [--help]\nConfiguration comes from the environment:\n", name);
        config_print_help(w.cfg, stdout);
        return 0;
    }
    if (argc != 1 || load_config(&w, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", name, argc != 1 ? "takes no arguments (see --help)" : err);
        return 2;
    }
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(config_str(w.cfg, "LOG_LEVEL"), &level);
    log_init(name, level);
    json_t *settings = config_to_json(w.cfg);
    log_write_json(LOG_LEVEL_INFO, "configuration", settings);
    json_decref(settings);
    w.max_attempts = (int)config_int(w.cfg, "MAX_ATTEMPTS");
    w.retry_base_ms = (long)config_int(w.cfg, "TWILIO_RETRY_BASE_MS");
    w.retry_max_ms = (long)config_int(w.cfg, "TWILIO_RETRY_MAX_MS");
    w.publish_interval_ms = (long)config_int(w.cfg, "STATE_PUBLISH_INTERVAL_MS");
    w.tombstone_after_ms = config_int(w.cfg, "STATE_TOMBSTONE_AFTER_S") * 1000;
    w.snapshot_interval_ms = config_int(w.cfg, "SNAPSHOT_INTERVAL_S") * 1000;
    pthread_mutex_init(&w.debug_lock, NULL);
    pthread_cond_init(&w.debug_cond, NULL);
    if (random_bytes(w.digest_key, sizeof w.digest_key) < 0) {
        fprintf(stderr, "%s: no random bytes for the state records' digests\n", name);
        return 1;
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    pthread_t stop_thread;
    if (create_metrics(&w) < 0 || (role->init && role->init(&w, err, sizeof err) < 0) ||
        !(w.ahead = parse_ahead_new(config_int(w.cfg, "PARSE_AHEAD") != 0, rd_kafka_message_destroy, err,
                                    sizeof err)) ||
        start_clients(&w, err, sizeof err) < 0 || pthread_create(&stop_thread, NULL, stopper, &w) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    w.http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                              (uint16_t)config_int(w.cfg, "METRICS_PORT"), NULL, NULL, on_http, &w,
                              MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
    if (!w.http) {
        fprintf(stderr, "%s: cannot listen on METRICS_PORT\n", name);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w.http, MHD_DAEMON_INFO_BIND_PORT);
    printf("metrics port %u\n", info ? (unsigned)info->port : 0U);
    fflush(stdout);
    log_info("worker running", "group", w.group, NULL);

    int64_t next_housekeeping_ms = 0;
    while (!atomic_load(&w.stop)) {
        poll_ahead(&w);
        struct parse_batch *b = parse_ahead_take(w.ahead);
        if (!b) {
            flush_stores(&w); /* nothing waiting: librdkafka hears of them at once */
            housekeeping_due(&w, time_monotonic_ms(), &next_housekeeping_ms);
            continue;
        }
        /* At a stop, what is left of the batch stays unhandled (and unstored). */
        for (size_t i = 0; i < b->n && !atomic_load(&w.stop); i++) {
            int64_t now = time_monotonic_coarse_ms();
            if (process(&w, &b->items[i], now))
                note_unapplied(&w, b->items[i].msg);
            housekeeping_due(&w, now, &next_housekeeping_ms);
        }
        parse_ahead_release(w.ahead, b);
    }
    parse_ahead_free(w.ahead); /* the messages polled ahead go with it */

    log_info("worker stopping", NULL);
    for (int i = 0; i < w.nloads; i++)
        state_loader_free(w.loads[i].loader); /* their partitions go with the group */
    w.nloads = 0;
    settle_dlq_before_leaving(&w, NULL, STOP_DLQ_WAIT_MS);
    flush_stores(&w);
    publish_all(&w, -1);
    for (size_t i = 0; i < w.nparts; i++)
        checkpoint_leaving(&w, w.parts[i].partition);
    int rc = kafka_consumer_close(w.consumer) < 0 ? 1 : 0;
    for (size_t i = 0; i < w.nparts; i++)
        reset_partition(&w.parts[i]); /* a DLQ record still out is its report's to free */
    int lost = kafka_producer_close(w.producer, 10000);
    pthread_join(stop_thread, NULL);
    MHD_stop_daemon(w.http);
    twilio_client_free(w.twilio);
    strmap_each(w.streams, free_stream_entry, &w);
    strmap_free(w.streams);
    free(w.parts);
    metrics_free(w.metrics);
    unapplied_free(w.unapplied);
    free(w.debug_answer);
    config_free(w.cfg);
    log_info("worker stopped", NULL);
    return rc || lost ? 1 : 0;
}
