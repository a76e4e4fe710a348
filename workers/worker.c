/* The worker runtime (see worker.h). */
#include "worker.h"

#include <microhttpd.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "strmap.h"
#include "timeutil.h"

#define EVENTS_TOPIC TOPIC_EVENTS
#define STATE_TOPIC TOPIC_STATE
#define DLQ_TOPIC TOPIC_DLQ
#define POLL_MS 50
/* Housekeeping (resuming paused partitions, the role's tick, publishing
 * state) walks every stream, so it runs at most this often, not after
 * every event: a replay of many small events is not slowed by it. */
#define HOUSEKEEPING_MS 5
#define STATE_CATCH_UP_MS 30000
#define EMIT_WAIT_MS 10000

/* A partition waiting out a retry, or counting attempts at its head event. */
struct partition_state {
    int32_t partition;
    int64_t offset;         /* the event the attempts are for */
    int attempts;
    int paused;
    int64_t resume_at_ms;
};

struct worker {
    const struct worker_role *role;
    struct config *cfg;
    void *role_ctx;
    struct twilio_client *twilio;
    struct kafka_producer *producer;
    struct kafka_consumer *consumer;
    struct strmap *streams;          /* name -> struct stream */
    struct partition_state *parts;
    size_t nparts;
    int max_attempts;
    long retry_base_ms, retry_max_ms;
    long publish_interval_ms;
    int64_t last_publish_ms;         /* of the last periodic round */
    char group[64];
    int assigned;                    /* partitions held */
    char current_id[EVENT_ID_LEN + 1]; /* the event in hand, for the logs */
    atomic_int stop;

    struct metrics *metrics;
    struct metric *m_events;         /* type, outcome */
    struct metric *m_twilio;         /* status */
    struct metric *m_retries;
    struct metric *m_dlq;
    struct metric *m_state_records;
    struct metric *m_streams;
    struct metric *m_partitions;
    struct metric *m_lag;            /* partition */
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

void worker_each_stream(struct worker *w, void (*fn)(struct worker *w, struct stream *st, void *ctx),
                        void *ctx)
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
    log_debug("twilio call", "event_id", w->current_id, "method", method, "path", path, "status", status,
              "outcome", twilio_outcome_name(res->outcome), NULL);
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
    log_warn("no Twilio path can be built (a name that is empty, \".\" or \"..\", or too long); not sent",
             "path", path_format, NULL);
    if (out) {
        out->kind = OUTCOME_FAIL;
        snprintf(out->error_code, sizeof out->error_code, "bad_path");
        snprintf(out->error, sizeof out->error, "a name in %s is empty, \".\" or \"..\", or too long",
                 path_format);
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

static int in_window(const char window[WORKER_RECENT_IDS][EVENT_ID_LEN + 1], const char *id)
{
    for (int i = 0; i < WORKER_RECENT_IDS; i++)
        if (strcmp(window[i], id) == 0)
            return 1;
    return 0;
}

/* An exact duplicate: the id was handled lately. Past the applied offset,
 * the window as last published counts too (it is being rebuilt). */
static int duplicate(const struct stream *st, const char *id, int64_t offset)
{
    return in_window(st->recent, id) || (offset > st->applied_offset && in_window(st->restored, id));
}

static void remember_handled(struct stream *st, const char *id)
{
    memcpy(st->recent[st->recent_next % WORKER_RECENT_IDS], id, EVENT_ID_LEN + 1);
    st->recent_next++;
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

struct emit_wait {
    int done;
    rd_kafka_resp_err_t err;
};

static void on_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct emit_wait *wait = opaque;
    if (wait) {
        wait->done = 1;
        wait->err = d->err;
    } else if (d->err) {
        log_warn("a state or DLQ record was not delivered", "error", d->errstr, NULL);
    }
}

static int produce(struct worker *w, const char *topic, const char *key, const char *value,
                   const struct kv_list *headers, struct emit_wait *wait)
{
    struct kafka_record rec = {.topic = topic, .partition = RD_KAFKA_PARTITION_UA, .key = key,
                               .key_len = strlen(key), .value = value, .value_len = value ? strlen(value) : 0,
                               .headers = headers, .opaque = wait};
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
    struct kv_list headers;
    kv_init(&headers);
    kv_add(&headers, "id", ev.id);
    kv_add(&headers, "type", ev.type);
    if (event_traceparent(traceparent) == 0)
        kv_add(&headers, "traceparent", traceparent);
    struct emit_wait wait = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    int rc = produce(w, EVENTS_TOPIC, stream, value, &headers, &wait);
    kv_free(&headers);
    free(value);
    event_free(&ev);
    int64_t until = time_monotonic_ms() + EMIT_WAIT_MS;
    while (rc == 0 && !wait.done && time_monotonic_ms() < until)
        kafka_producer_poll(w->producer, 10);
    if (rc == 0 && (!wait.done || wait.err)) {
        log_warn("an event of ours was not acknowledged", "type", type, NULL);
        rc = -1;
        /* When it arrives after all, its delivery report must not touch `wait`. */
        while (!wait.done)
            kafka_producer_poll(w->producer, 100);
    }
    return rc;
}

static void publish_state(struct worker *w, struct stream *st)
{
    const char *status = phase_name(st->phase);
    if (!status)
        return; /* nothing worth saying yet */
    char ts[RFC3339_MS_LEN + 1], key[STREAM_NAME_MAX_CHARS * 4 + 16];
    time_format_rfc3339_ms(time_now_ms(), ts);
    json_t *record = json_pack("{s:s, s:s, s:i, s:s, s:I, s:I, s:s}", "stream", st->name, "role",
                               w->role->name, "partition", (int)st->partition, "status", status, "since",
                               (json_int_t)st->since, "applied_offset", (json_int_t)st->applied_offset,
                               "ts", ts);
    if (st->host[0])
        json_object_set_new(record, "host", json_string(st->host));
    json_t *recent = json_array();
    for (unsigned i = 0; i < WORKER_RECENT_IDS; i++) {
        const char *id = st->recent[(st->recent_next + i) % WORKER_RECENT_IDS]; /* oldest first */
        if (id[0])
            json_array_append_new(recent, json_string(id));
    }
    json_object_set_new(record, "recent_ids", recent);
    if (w->role->state_fields)
        w->role->state_fields(w, st, record);
    char *value = json_dumps(record, JSON_COMPACT);
    json_decref(record);
    snprintf(key, sizeof key, "%s/%s", st->name, w->role->name);
    if (value && produce(w, STATE_TOPIC, key, value, NULL, NULL) == 0) {
        st->dirty = st->urgent = 0;
        metrics_add(w->m_state_records, NULL, 1);
    }
    free(value);
}

struct publish_ctx {
    int64_t now_ms;
    int periodic;        /* the periodic round is due */
    int everything;
    int32_t partition;   /* >= 0: only this partition */
};

static void publish_if_due(struct worker *w, struct stream *st, void *arg)
{
    struct publish_ctx *p = arg;
    if (!st->dirty || (p->partition >= 0 && st->partition != p->partition))
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

/* The DLQ record: the event as it came, with why in the headers. */
static void to_dlq(struct worker *w, const rd_kafka_message_t *msg, const struct outcome *out, int attempts)
{
    struct kv_list headers;
    char number[32], tries[16], id[EVENT_ID_LEN + 1] = "", type[64] = "";
    kv_init(&headers);
    if (kafka_header_string(msg, "id", id, sizeof id) == 0)
        kv_add(&headers, "id", id);
    if (kafka_header_string(msg, "type", type, sizeof type) == 0)
        kv_add(&headers, "type", type);
    kv_add(&headers, "error_code", out->error_code);
    kv_add(&headers, "error", out->error);
    snprintf(tries, sizeof tries, "%d", attempts);
    kv_add(&headers, "attempts", tries);
    kv_add(&headers, "role", w->role->name);
    kv_add(&headers, "original_topic", EVENTS_TOPIC);
    snprintf(number, sizeof number, "%d", (int)msg->partition);
    kv_add(&headers, "original_partition", number);
    snprintf(number, sizeof number, "%lld", (long long)msg->offset);
    kv_add(&headers, "original_offset", number);
    char *value = strndup(msg->payload ? (const char *)msg->payload : "", msg->len);
    char *key = strndup(msg->key ? (const char *)msg->key : "", msg->key_len);
    if (value && key)
        produce(w, DLQ_TOPIC, key, value, &headers, NULL);
    free(value);
    free(key);
    kv_free(&headers);
    metrics_add(w->m_dlq, NULL, 1);
    log_warn("event sent to the DLQ", "id", id, "type", type, "error_code", out->error_code, "error",
             out->error, "attempts", tries, NULL);
}

/* --- partitions ------------------------------------------------------------------------------- */

static struct partition_state *partition_state(struct worker *w, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition)
            return &w->parts[i];
    struct partition_state *grown = realloc(w->parts, (w->nparts + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    w->parts = grown;
    struct partition_state *p = &w->parts[w->nparts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    p->offset = -1;
    return p;
}

static void resume_due(struct worker *w, int64_t now_ms)
{
    char err[256];
    for (size_t i = 0; i < w->nparts; i++) {
        struct partition_state *p = &w->parts[i];
        if (p->paused && now_ms >= p->resume_at_ms) {
            if (kafka_consumer_resume(w->consumer, EVENTS_TOPIC, p->partition, err, sizeof err) < 0)
                log_warn("cannot resume a partition", "error", err, NULL);
            p->paused = 0;
        }
    }
}

static double random01(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        return 0.5;
    return (double)r / 4294967296.0;
}

/* --- processing one event -------------------------------------------------------------------- */

static int handles(const struct worker_role *role, const char *type)
{
    for (const char *const *t = role->event_types; *t; t++)
        if (strcmp(*t, type) == 0)
            return 1;
    return 0;
}

static void mark_done(struct worker *w, const rd_kafka_message_t *msg)
{
    char err[256];
    if (kafka_consumer_done(w->consumer, msg, err, sizeof err) < 0)
        log_warn("cannot store an offset", "error", err, NULL);
}

static void count_event(struct worker *w, const char *type, const char *outcome)
{
    metrics_add(w->m_events, (const char *const[]){type, outcome}, 1);
}

static void process(struct worker *w, const rd_kafka_message_t *msg)
{
    struct event ev;
    char err[256];
    struct partition_state *ps = partition_state(w, msg->partition);
    if (event_parse(msg->payload, msg->len, &ev, err, sizeof err) < 0) {
        struct outcome out = {OUTCOME_FAIL, -1, "invalid_event", ""};
        snprintf(out.error, sizeof out.error, "%s", err);
        to_dlq(w, msg, &out, 1);
        count_event(w, "invalid", "dlq");
        mark_done(w, msg);
        return;
    }
    if (!handles(w->role, ev.type)) {
        event_free(&ev);
        mark_done(w, msg);
        return;
    }
    struct stream *st = stream_get(w, ev.stream, msg->partition);
    if (!st) {
        /* Out of memory: try the event again a little later. */
        event_free(&ev);
        kafka_consumer_pause(w->consumer, EVENTS_TOPIC, msg->partition, err, sizeof err);
        kafka_consumer_rewind(w->consumer, EVENTS_TOPIC, msg->partition, msg->offset, err, sizeof err);
        if (ps) {
            ps->paused = 1;
            ps->resume_at_ms = time_monotonic_ms() + 1000;
        }
        return;
    }
    if (ev.ts_ms < st->since) {
        /* An event of an earlier life of the stream (met again when
         * rebuilding): that life is over and folded into the records. */
        count_event(w, ev.type, "folded");
        event_free(&ev);
        mark_done(w, msg);
        return;
    }
    if (duplicate(st, ev.id, msg->offset)) {
        count_event(w, ev.type, "duplicate");
        event_free(&ev);
        mark_done(w, msg);
        return;
    }
    int apply = msg->offset > st->applied_offset;
    /* Periodic work waits until the stream is past what an earlier process
     * had reached, including when it applies events again (reapply: then
     * apply is set while rebuilding, and memory is not yet what Twilio has). */
    st->rebuilding = msg->offset < st->applied_offset || msg->offset < st->reapply_until;
    struct outcome out = {OUTCOME_DONE, -1, "", ""};
    memcpy(w->current_id, ev.id, sizeof w->current_id);
    w->role->on_event(w, st, &ev, apply, &out);
    w->current_id[0] = '\0';
    int attempts = 1;
    if (ps) {
        if (ps->offset != msg->offset)
            ps->attempts = 0;
        ps->offset = msg->offset;
        attempts = ++ps->attempts;
    }
    if (out.kind == OUTCOME_RETRY && attempts < w->max_attempts && ps) {
        long delay = twilio_backoff_ms(attempts - 1, w->retry_base_ms, w->retry_max_ms, out.retry_after_ms,
                                       random01());
        if (kafka_consumer_pause(w->consumer, EVENTS_TOPIC, msg->partition, err, sizeof err) == 0 &&
            kafka_consumer_rewind(w->consumer, EVENTS_TOPIC, msg->partition, msg->offset, err, sizeof err) == 0) {
            ps->paused = 1;
            ps->resume_at_ms = time_monotonic_ms() + delay;
        } else {
            log_warn("cannot pause a partition for a retry", "error", err, NULL);
        }
        metrics_add(w->m_retries, NULL, 1);
        count_event(w, ev.type, "retry");
        log_info("event will be retried", "id", ev.id, "type", ev.type, "error_code", out.error_code,
                 "error", out.error, NULL);
        event_free(&ev);
        return;
    }
    if (out.kind != OUTCOME_DONE) {
        to_dlq(w, msg, &out, attempts);
        count_event(w, ev.type, "dlq");
    } else {
        count_event(w, ev.type, apply ? "applied" : "folded");
    }
    remember_handled(st, ev.id);
    if (apply) {
        st->applied_offset = msg->offset;
        worker_mark_dirty(st, 0);
    }
    if (ps)
        ps->attempts = 0;
    event_free(&ev);
    mark_done(w, msg);
}

/* --- assignment: rebuild before acting -------------------------------------------------------- */

struct drop_ctx {
    int32_t partition;
    struct stream **victims;
    size_t n, cap;
};

static void collect_partition(struct worker *w, struct stream *st, void *arg)
{
    (void)w;
    struct drop_ctx *d = arg;
    if (st->partition != d->partition || d->n == d->cap)
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

static int partition_in(const rd_kafka_topic_partition_list_t *list, int32_t partition)
{
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == partition)
            return 1;
    return 0;
}

/* Restores the streams of the assigned partitions from our records. */
static void read_state(struct worker *w, const rd_kafka_topic_partition_list_t *assigned)
{
    char err[256];
    struct kafka_reader_options opt = {.brokers = config_str(w->cfg, "KAFKA_BROKERS"), .topic = STATE_TOPIC};
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
        json_t *record = msg->payload ? json_loadb(msg->payload, msg->len, 0, NULL) : NULL;
        const char *role = json_string_value(json_object_get(record, "role"));
        const char *name = json_string_value(json_object_get(record, "stream"));
        json_t *partition = json_object_get(record, "partition");
        if (role && name && strcmp(role, w->role->name) == 0 && json_is_integer(partition) &&
            partition_in(assigned, (int32_t)json_integer_value(partition))) {
            struct stream *st = stream_get(w, name, (int32_t)json_integer_value(partition));
            const char *status = json_string_value(json_object_get(record, "status"));
            const char *host = json_string_value(json_object_get(record, "host"));
            if (st) {
                st->applied_offset = json_integer_value(json_object_get(record, "applied_offset"));
                st->rebuilding = st->applied_offset >= 0;
                st->since = json_integer_value(json_object_get(record, "since"));
                st->phase = !status ? PHASE_NONE
                            : strcmp(status, "ready") == 0 ? PHASE_READY
                            : strcmp(status, "ended") == 0 ? PHASE_ENDED
                                                           : PHASE_CREATING;
                snprintf(st->host, sizeof st->host, "%s", host ? host : "");
                size_t k;
                json_t *id;
                memset(st->restored, 0, sizeof st->restored);
                json_array_foreach(json_object_get(record, "recent_ids"), k, id)
                    if (json_is_string(id) && json_string_length(id) == EVENT_ID_LEN && k < WORKER_RECENT_IDS)
                        memcpy(st->restored[k], json_string_value(id), EVENT_ID_LEN + 1);
                if (w->role->restore)
                    w->role->restore(w, st, record);
                restored++;
            }
        }
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
    memset(st->restored, 0, sizeof st->restored); /* those ids are to be applied again */
}

/* Honours `stagehand-replay offsets`: a committed offset marked with
 * KAFKA_REAPPLY_MARK makes everything from it count as not yet applied (the
 * worker's own commits carry no mark, so this happens once). */
static void reapply_marked(struct worker *w, const rd_kafka_topic_partition_list_t *assigned)
{
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(assigned);
    rd_kafka_resp_err_t e = rd_kafka_committed(kafka_consumer_handle(w->consumer), committed, 10000);
    if (e) {
        log_warn("cannot read the committed offsets", "error", rd_kafka_err2str(e), NULL);
    } else {
        for (int i = 0; i < committed->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &committed->elems[i];
            if (tp->err || tp->offset < 0 || tp->metadata_size != strlen(KAFKA_REAPPLY_MARK) ||
                memcmp(tp->metadata, KAFKA_REAPPLY_MARK, tp->metadata_size) != 0)
                continue;
            struct reapply_ctx r = {tp->partition, tp->offset};
            worker_each_stream(w, reapply_stream, &r);
            char partition[16], offset[24];
            snprintf(partition, sizeof partition, "%d", (int)tp->partition);
            snprintf(offset, sizeof offset, "%lld", (long long)tp->offset);
            log_info("applying again from a marked offset", "partition", partition, "offset", offset, NULL);
        }
    }
    rd_kafka_topic_partition_list_destroy(committed);
}

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    struct worker *w = ctx;
    char err[256];
    for (int i = 0; i < partitions->cnt; i++)
        drop_partition(w, partitions->elems[i].partition);
    read_state(w, partitions);
    reapply_marked(w, partitions);
    for (int i = 0; i < partitions->cnt; i++) {
        int32_t p = partitions->elems[i].partition;
        /* Offset 0: when retention removed it, auto.offset.reset=earliest applies. */
        if (kafka_consumer_rewind(w->consumer, EVENTS_TOPIC, p, 0, err, sizeof err) < 0)
            log_warn("cannot re-read a partition from its beginning", "error", err, NULL);
        struct partition_state *ps = partition_state(w, p);
        if (ps) {
            ps->paused = 0;
            ps->attempts = 0;
            ps->offset = -1;
        }
    }
    w->assigned += partitions->cnt;
    metrics_set(w->m_partitions, NULL, w->assigned);
}

static void on_revoke(void *ctx, const rd_kafka_topic_partition_list_t *partitions)
{
    struct worker *w = ctx;
    for (int i = 0; i < partitions->cnt; i++) {
        int32_t p = partitions->elems[i].partition;
        publish_all(w, p);
        drop_partition(w, p);
        struct partition_state *ps = partition_state(w, p);
        if (ps)
            ps->paused = 0;
    }
    kafka_producer_poll(w->producer, 0);
    w->assigned -= partitions->cnt;
    metrics_set(w->m_partitions, NULL, w->assigned);
}

/* Consumer lag per assigned partition, from librdkafka's cached
 * watermarks (no broker round trip), every few seconds. */
static void measure_lag(struct worker *w, int64_t now_ms)
{
    if (now_ms < w->next_lag_ms)
        return;
    w->next_lag_ms = now_ms + 5000;
    rd_kafka_topic_partition_list_t *assigned = kafka_consumer_assignment(w->consumer);
    if (!assigned)
        return;
    rd_kafka_t *rk = kafka_consumer_handle(w->consumer);
    if (rd_kafka_position(rk, assigned) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < assigned->cnt; i++) {
            int64_t low = 0, high = 0;
            const rd_kafka_topic_partition_t *tp = &assigned->elems[i];
            if (rd_kafka_get_watermark_offsets(rk, tp->topic, tp->partition, &low, &high) != 0 || high < 0)
                continue;
            int64_t position = tp->offset >= 0 ? tp->offset : low;
            char label[16];
            snprintf(label, sizeof label, "%d", (int)tp->partition);
            metrics_set(w->m_lag, (const char *const[]){label}, (double)(high > position ? high - position : 0));
        }
    }
    rd_kafka_topic_partition_list_destroy(assigned);
}

/* --- metrics endpoint ------------------------------------------------------------------------- */

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size,
                               void **con_cls)
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
    w->m_events = metrics_counter(w->metrics, "stagehand_worker_events_total",
                                  "Events handled, by type and outcome (applied, folded, duplicate, retry, dlq).", 2,
                                  type_outcome);
    w->m_twilio = metrics_counter(w->metrics, "stagehand_worker_twilio_calls_total",
                                  "Twilio REST calls, by HTTP status (0: no answer).", 1, status);
    w->m_retries = metrics_counter(w->metrics, "stagehand_worker_retries_total",
                                   "Events scheduled for another attempt.", 0, NULL);
    w->m_dlq = metrics_counter(w->metrics, "stagehand_worker_dlq_total", "Events sent to the DLQ.", 0, NULL);
    w->m_state_records = metrics_counter(w->metrics, "stagehand_worker_state_records_total",
                                         "Records published to stagehand.state.", 0, NULL);
    w->m_streams = metrics_gauge(w->metrics, "stagehand_worker_streams", "Streams held in memory.", 0, NULL);
    w->m_partitions = metrics_gauge(w->metrics, "stagehand_worker_partitions",
                                    "Partitions of stagehand.events assigned.", 0, NULL);
    static const char *const partition[] = {"partition"};
    w->m_lag = metrics_gauge(w->metrics, "stagehand_worker_consumer_lag",
                             "Events of an assigned partition not yet consumed (high watermark - position).",
                             1, partition);
    return w->m_events && w->m_twilio && w->m_retries && w->m_dlq && w->m_state_records && w->m_streams &&
                   w->m_partitions && w->m_lag
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
        {settings_logging, settings_logging_count}, {settings_kafka, settings_kafka_count},
        {settings_twilio, settings_twilio_count},   {settings_public, settings_public_count},
        {settings_workers, settings_workers_count}, {settings_streams, settings_streams_count},
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
    struct kafka_producer_options popt = {.brokers = config_str(c, "KAFKA_BROKERS"), .on_delivery = on_delivery};
    if (!(w->producer = kafka_producer_new(&popt, err, errlen)))
        return -1;
    char session[24], heartbeat[24];
    long session_ms = (long)config_int(c, "KAFKA_SESSION_TIMEOUT_MS");
    snprintf(session, sizeof session, "%ld", session_ms);
    snprintf(heartbeat, sizeof heartbeat, "%ld", session_ms / 10 < 500 ? 500 : session_ms / 10);
    struct kv_list props;
    kv_init(&props);
    kv_add(&props, "session.timeout.ms", session);
    kv_add(&props, "heartbeat.interval.ms", heartbeat);
    const char *const topics[] = {EVENTS_TOPIC};
    snprintf(w->group, sizeof w->group, "%s%s", GROUP_PREFIX, w->role->name);
    struct kafka_consumer_options copt = {.brokers = config_str(c, "KAFKA_BROKERS"), .group_id = w->group,
                                          .topics = topics, .topic_count = 1, .properties = &props,
                                          .on_assign = on_assign, .on_revoke = on_revoke, .ctx = w};
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

int worker_main(const struct worker_role *role, int argc, char **argv)
{
    char err[2048], name[64];
    struct worker w = {.role = role};
    snprintf(name, sizeof name, "stagehand-%s-worker", role->name);
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

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    pthread_t stop_thread;
    if (create_metrics(&w) < 0 || (role->init && role->init(&w, err, sizeof err) < 0) ||
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
        rd_kafka_message_t *msg = kafka_consumer_poll(w.consumer, POLL_MS);
        if (msg) {
            process(&w, msg);
            rd_kafka_message_destroy(msg);
        }
        int64_t now = time_monotonic_ms();
        if (now < next_housekeeping_ms)
            continue;
        next_housekeeping_ms = now + HOUSEKEEPING_MS;
        resume_due(&w, now);
        measure_lag(&w, now);
        if (role->tick)
            role->tick(&w, now);
        publish_due(&w, now);
        kafka_producer_poll(w.producer, 0);
    }

    log_info("worker stopping", NULL);
    publish_all(&w, -1);
    int rc = kafka_consumer_close(w.consumer) < 0 ? 1 : 0;
    int lost = kafka_producer_close(w.producer, 10000);
    pthread_join(stop_thread, NULL);
    MHD_stop_daemon(w.http);
    twilio_client_free(w.twilio);
    strmap_each(w.streams, free_stream_entry, &w);
    strmap_free(w.streams);
    free(w.parts);
    metrics_free(w.metrics);
    config_free(w.cfg);
    log_info("worker stopped", NULL);
    return rc || lost ? 1 : 0;
}
