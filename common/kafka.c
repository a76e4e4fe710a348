/* Kafka producer and consumer on librdkafka (see kafka.h): configuration,
 * delivery reports, rebalance handling with explicit offset storage,
 * librdkafka's logs and errors routed to common/log, and the tests' fault
 * hook (STAGEHAND_KAFKA_FAULTS). */
#include "kafka.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "timeutil.h"

/* How long close waits for the delivery reports of purged messages. */
#define PURGE_REPORT_WAIT_MS 5000
/* How long kafka_consumer_close waits for a rebalance to let it commit. */
#define CLOSE_COMMIT_WAIT_MS 15000
/* How long kafka_consumer_close waits for a member's first assignment (see
 * there why). */
#define FIRST_ASSIGNMENT_WAIT_MS 15000
/* Poll interval of the producer's poller thread (also its stop latency). */
#define POLLER_INTERVAL_MS 100
/* A parked fetcher (see nudge_fetcher): how long librdkafka 2.2 and later
 * wait before fetching again (fetch.queue.backoff.ms), and, before 2.2, how
 * often at most a consumer or reader with nothing to hand out nudges one,
 * how long a nudge may take (short: the request wakes the fetcher when it
 * is queued, the answer is not needed), and the pause after one that failed. */
#define FETCH_QUEUE_BACKOFF_MS "10"
#define NUDGE_INTERVAL_MS 20
#define NUDGE_TIMEOUT_MS 100
#define NUDGE_FAILED_PAUSE_MS 1000
/* The queue is looked at every NUDGE_SAMPLE_EVERY messages handed out; at
 * NUDGE_ARM_QUEUE messages or more the fetcher may park (a tenth of
 * librdkafka's queued.min.messages; events are small, so the byte limit
 * comes later), which arms the next nudge. */
#define NUDGE_SAMPLE_EVERY 1024
#define NUDGE_ARM_QUEUE 10000

/* --- configuration ------------------------------------------------------------ */

/* Properties under these prefixes may hold keys or passwords, so librdkafka's
 * error text (which can quote the value) is not passed on for them. */
static int property_is_sensitive(const char *name)
{
    return log_is_secret_name(name) || strncasecmp(name, "sasl.", 5) == 0 || strncasecmp(name, "ssl.", 4) == 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, why, sizeof why);
    if (res == RD_KAFKA_CONF_OK)
        return 0;
    if (res == RD_KAFKA_CONF_UNKNOWN)
        snprintf(err, errlen, "unknown kafka property \"%s\"", name);
    else if (property_is_sensitive(name))
        snprintf(err, errlen, "invalid value for kafka property \"%s\"", name);
    else
        snprintf(err, errlen, "invalid value for kafka property \"%s\": %s", name, why);
    return -1;
}

/* Applies the caller's extra properties on top of the defaults, refusing the
 * ones named in fixed (NULL-terminated): the module's contract rests on them. */
static int conf_apply_extra(rd_kafka_conf_t *conf, const struct kv_list *props, const char *const *fixed, char *err,
                            size_t errlen)
{
    if (!props)
        return 0;
    for (size_t i = 0; i < props->len; i++) {
        const struct kv_pair *kv = &props->items[i];
        for (const char *const *f = fixed; *f; f++) {
            if (strcasecmp(kv->name, *f) == 0) {
                snprintf(err, errlen, "kafka property \"%s\" is set by stagehand and cannot be overridden", kv->name);
                return -1;
            }
        }
        if (strlen(kv->value) != kv->value_len) {
            snprintf(err, errlen, "kafka property \"%s\": value contains a NUL byte", kv->name);
            return -1;
        }
        if (conf_set(conf, kv->name, kv->value, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* --- site properties (KAFKA_PROPERTIES, KAFKA_PROPERTIES_FILE) ------------------ */

#define SITE_FILE_MAX (64 * 1024)

static int property_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._", s[i]))
            return 0;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Error texts name the item by its number only: an item is possibly a
 * secret typed in the wrong place. */
int kafka_properties_parse(const char *text, char sep, struct kv_list *out, char *err, size_t errlen)
{
    const char *p = text ? text : "";
    for (int item = 1; *p; item++) {
        const char seps[2] = {sep, '\0'};
        size_t n = strcspn(p, seps);
        const char *end = p + n;
        const char *a = p;
        while (a < end && is_blank(*a))
            a++;
        const char *b = end;
        while (b > a && is_blank(b[-1]))
            b--;
        if (b > a && !(sep == '\n' && *a == '#')) {
            const char *eq = memchr(a, '=', (size_t)(b - a));
            if (!eq) {
                snprintf(err, errlen, "item %d is not name=value", item);
                return -1;
            }
            const char *ne = eq;
            while (ne > a && is_blank(ne[-1]))
                ne--;
            const char *v = eq + 1;
            while (v < b && is_blank(*v))
                v++;
            if (!property_name_ok(a, (size_t)(ne - a))) {
                snprintf(err, errlen, "item %d: the name must be a librdkafka property (a-z, 0-9, '.', '_')", item);
                return -1;
            }
            if (kv_addn(out, a, (size_t)(ne - a), v, (size_t)(b - v)) < 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Reads path whole (at most SITE_FILE_MAX bytes) into a NUL-terminated
 * string, or NULL with err. */
static char *read_small_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "KAFKA_PROPERTIES_FILE %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(SITE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, SITE_FILE_MAX + 1, f) : 0;
    int bad = !buf || ferror(f) || n > SITE_FILE_MAX;
    if (!buf)
        snprintf(err, errlen, "out of memory");
    else if (ferror(f))
        snprintf(err, errlen, "KAFKA_PROPERTIES_FILE %s: read error", path);
    else if (n > SITE_FILE_MAX)
        snprintf(err, errlen, "KAFKA_PROPERTIES_FILE %s: larger than %d bytes", path, SITE_FILE_MAX);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        snprintf(err, errlen, "KAFKA_PROPERTIES_FILE %s: contains a NUL byte", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int kafka_site_properties(struct kv_list *out, char *err, size_t errlen)
{
    char why[256];
    const char *path = getenv("KAFKA_PROPERTIES_FILE");
    if (path && *path) {
        char *text = read_small_file(path, err, errlen);
        if (!text)
            return -1;
        int rc = kafka_properties_parse(text, '\n', out, why, sizeof why);
        free(text);
        if (rc < 0) {
            snprintf(err, errlen, "KAFKA_PROPERTIES_FILE %s: %s", path, why);
            return -1;
        }
    }
    const char *list = getenv("KAFKA_PROPERTIES");
    if (list && *list && kafka_properties_parse(list, ',', out, why, sizeof why) < 0) {
        snprintf(err, errlen, "KAFKA_PROPERTIES: %s", why);
        return -1;
    }
    return 0;
}

/* Applies the operator's properties (TLS, SASL, ...) to conf, refusing the
 * ones named in fixed like the caller's extras. */
static int conf_apply_site(rd_kafka_conf_t *conf, const char *const *fixed, char *err, size_t errlen)
{
    struct kv_list site;
    kv_init(&site);
    int rc = kafka_site_properties(&site, err, errlen);
    if (rc == 0)
        rc = conf_apply_extra(conf, &site, fixed, err, errlen);
    kv_free(&site);
    return rc;
}

/* librdkafka log lines (syslog levels) into the JSON log. */
static void log_from_librdkafka(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum log_level ours;
    if (level <= 3)
        ours = LOG_LEVEL_ERROR;
    else if (level == 4)
        ours = LOG_LEVEL_WARN;
    else if (level <= 6)
        ours = LOG_LEVEL_INFO;
    else
        ours = LOG_LEVEL_DEBUG;
    log_write(ours, buf, "kafka_client", rd_kafka_name(rk), "facility", fac, NULL);
}

void kafka_conf_set_log(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_log_cb(conf, log_from_librdkafka);
}

/* Logs a global error and passes it on. For RD_KAFKA_RESP_ERR__FATAL the
 * underlying error is looked up and reported instead. */
static void report_error(rd_kafka_t *rk, kafka_error_cb *cb, void *ctx, rd_kafka_resp_err_t err, const char *reason)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char cause[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, cause, sizeof cause);
        log_error("kafka fatal error: the client must be recreated", "kafka_client", rd_kafka_name(rk), "error",
                  rd_kafka_err2name(orig), "reason", cause, NULL);
        if (cb)
            cb(ctx, orig, 1, cause);
        return;
    }
    /* A connection failure is already in librdkafka's own log. */
    log_write(err == RD_KAFKA_RESP_ERR__TRANSPORT ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, "kafka error", "kafka_client",
              rd_kafka_name(rk), "error", rd_kafka_err2name(err), "reason", reason, NULL);
    if (cb)
        cb(ctx, err, 0, reason);
}

/* Creates the client from conf (which it takes over, also on failure). */
static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot create kafka %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
    }
    return rk;
}

/* --- parked fetchers ---------------------------------------------------------------- */

/* librdkafka stops fetching a partition while its queue of fetched messages
 * is over queued.min.messages or queued.max.messages.kbytes. Since 2.2 it
 * looks again after fetch.queue.backoff.ms; before (Debian 12 ships 2.0.2)
 * only when the broker's thread next wakes up, up to a second later. A
 * reader slower than its fetcher, such as a worker replaying a log, then
 * sat idle most of every second: replay ran at whatever that queue holds
 * per second, not at the speed of its CPU. */
struct fetch_nudge {
    int enabled;     /* librdkafka has no fetch.queue.backoff.ms */
    int armed;       /* the queue was seen long enough for the fetcher to park */
    unsigned taken;  /* messages handed out (the queue is looked at now and then) */
    int64_t next_ms; /* monotonic: no nudge before */
    int from;        /* where the next look for a lagging partition starts */
};

/* Sets fetch.queue.backoff.ms where librdkafka knows it; otherwise enables
 * the nudge. Returns 0, or -1 with err. */
static int fetch_nudge_setup(rd_kafka_conf_t *conf, struct fetch_nudge *n, char *err, size_t errlen)
{
    char why[256];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, "fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS, why,
                                                sizeof why);
    n->enabled = res == RD_KAFKA_CONF_UNKNOWN;
    if (res != RD_KAFKA_CONF_OK && res != RD_KAFKA_CONF_UNKNOWN) {
        snprintf(err, errlen, "kafka property fetch.queue.backoff.ms: %s", why);
        return -1;
    }
    return 0;
}

/* Called for each message rk hands out: now and then looks at the length
 * of its queue, and a long one arms the next nudge. A reader that keeps up
 * with its fetcher never arms it, so it sends no requests; nor does one at
 * the end of a log whose last offsets were compacted away (its position
 * stays under the high watermark for good). */
static void nudge_note_message(rd_kafka_t *rk, struct fetch_nudge *n)
{
    if (!n->enabled || ++n->taken % NUDGE_SAMPLE_EVERY != 0)
        return;
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);
    if (!queue)
        return;
    if (rd_kafka_queue_length(queue) >= NUDGE_ARM_QUEUE)
        n->armed = 1;
    rd_kafka_queue_destroy(queue);
}

/* Called when rk has nothing to hand out. When the nudge is armed and an
 * assigned partition's log goes further than its position (the high
 * watermark of its last fetch) and it is not in paused, asks its leader for
 * its watermarks: the request wakes the thread that fetches from that
 * broker, which then fetches again. One partition per nudge, taken in turn;
 * at most every NUDGE_INTERVAL_MS. */
static void nudge_fetcher(rd_kafka_t *rk, struct fetch_nudge *n, const rd_kafka_topic_partition_list_t *paused)
{
    int64_t now = time_monotonic_ms();
    if (!n->enabled || !n->armed || now < n->next_ms)
        return;
    n->next_ms = now + NUDGE_INTERVAL_MS;
    n->armed = 0;
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR || !assigned)
        return;
    if (assigned->cnt > 0 && rd_kafka_position(rk, assigned) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int k = 0; k < assigned->cnt; k++) {
            int at = (n->from + k) % assigned->cnt;
            const rd_kafka_topic_partition_t *tp = &assigned->elems[at];
            int64_t low = 0, high = 0;
            if (tp->offset < 0 || (paused && rd_kafka_topic_partition_list_find(paused, tp->topic, tp->partition)) ||
                rd_kafka_get_watermark_offsets(rk, tp->topic, tp->partition, &low, &high) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR ||
                high <= tp->offset)
                continue;
            n->from = at + 1;
            if (rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &low, &high, NUDGE_TIMEOUT_MS) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
                n->next_ms = time_monotonic_ms() + NUDGE_FAILED_PAUSE_MS;
            break;
        }
    }
    rd_kafka_topic_partition_list_destroy(assigned);
}

/* --- fault injection (tests only, see kafka.h) ------------------------------------- */

enum fault_op { FAULT_PAUSE, FAULT_RESUME, FAULT_REWIND, FAULT_PRODUCE, FAULT_DELIVER };

struct fault {
    enum fault_op op;
    char topic[256]; /* produce, deliver: the topic it concerns */
    long skip;       /* calls still let through */
    long count;      /* calls still to fail (-1: all) */
};

#define MAX_FAULTS 8

static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault faults[MAX_FAULTS];
static size_t nfaults;
static atomic_int faults_armed; /* fast path: nothing to look at */
static int faults_env_read;     /* under faults_lock */

static int fault_parse(const char *item, size_t len, struct fault *f, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        enum fault_op op;
        int topic;
    } ops[] = {{"pause", FAULT_PAUSE, 0},
               {"resume", FAULT_RESUME, 0},
               {"rewind", FAULT_REWIND, 0},
               {"produce@", FAULT_PRODUCE, 1},
               {"deliver@", FAULT_DELIVER, 1}};
    char buf[320];
    if (len == 0 || len >= sizeof buf)
        goto bad;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *colon = strchr(buf, ':');
    if (!colon)
        goto bad;
    *colon = '\0';
    memset(f, 0, sizeof *f);
    size_t i;
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t n = strlen(ops[i].name);
        if (ops[i].topic ? strncmp(buf, ops[i].name, n) == 0 && buf[n] : strcmp(buf, ops[i].name) == 0) {
            f->op = ops[i].op;
            if (ops[i].topic)
                snprintf(f->topic, sizeof f->topic, "%s", buf + n);
            break;
        }
    }
    if (i == sizeof ops / sizeof ops[0])
        goto bad;
    char *end;
    f->count = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || f->count < -1)
        goto bad;
    if (*end == ':') {
        char *skip = end + 1;
        f->skip = strtol(skip, &end, 10);
        if (end == skip || f->skip < 0)
            goto bad;
    }
    if (*end == '\0')
        return 0;
bad:
    snprintf(err, errlen,
             "bad kafka fault \"%.*s\" (OP:COUNT[:SKIP], OP pause, resume, rewind, "
             "produce@TOPIC or deliver@TOPIC)",
             (int)(len < 64 ? len : 64), item);
    return -1;
}

static int faults_set_locked(const char *spec, char *err, size_t errlen)
{
    struct fault parsed[MAX_FAULTS];
    size_t n = 0;
    for (const char *p = spec; p && *p;) {
        size_t len = strcspn(p, ",");
        if (n == MAX_FAULTS) {
            snprintf(err, errlen, "more than %d kafka faults", MAX_FAULTS);
            return -1;
        }
        if (fault_parse(p, len, &parsed[n++], err, errlen) < 0)
            return -1;
        p += len + (p[len] == ',');
    }
    memcpy(faults, parsed, n * sizeof *parsed);
    nfaults = n;
    atomic_store(&faults_armed, n > 0);
    if (n > 0)
        log_warn("kafka faults armed (a test setting)", "faults", spec, NULL);
    return 0;
}

int kafka_faults_set(const char *spec, char *err, size_t errlen)
{
    pthread_mutex_lock(&faults_lock);
    faults_env_read = 1; /* the caller's spec wins over the environment */
    int rc = faults_set_locked(spec, err, errlen);
    pthread_mutex_unlock(&faults_lock);
    return rc;
}

/* Arms the faults of KAFKA_FAULTS_ENV the first time a client is made. */
static int faults_from_env(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&faults_lock);
    if (!faults_env_read) {
        faults_env_read = 1;
        const char *spec = getenv(KAFKA_FAULTS_ENV);
        if (spec && *spec && faults_set_locked(spec, err, errlen) < 0)
            rc = -1;
    }
    pthread_mutex_unlock(&faults_lock);
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s: %s", KAFKA_FAULTS_ENV, err);
        snprintf(err, errlen, "%s", why);
    }
    return rc;
}

/* 1 when this call of op (on topic, for produce and deliver) must fail. */
static int fault_hit(enum fault_op op, const char *topic)
{
    if (!atomic_load(&faults_armed))
        return 0;
    int hit = 0;
    pthread_mutex_lock(&faults_lock);
    for (size_t i = 0; i < nfaults && !hit; i++) {
        struct fault *f = &faults[i];
        if (f->op != op || f->count == 0 || (f->topic[0] && (!topic || strcmp(f->topic, topic) != 0)))
            continue;
        if (f->skip > 0) {
            f->skip--;
            break;
        }
        if (f->count > 0)
            f->count--;
        hit = 1;
    }
    pthread_mutex_unlock(&faults_lock);
    return hit;
}

/* --- shared helpers ---------------------------------------------------------------- */

int kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    /* all_topics=1 so asking never auto-creates the topic. */
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e) {
        snprintf(err, errlen, "kafka metadata request failed: %s", rd_kafka_err2str(e));
        return -1;
    }
    const struct rd_kafka_metadata_topic *found = NULL;
    for (int i = 0; i < md->topic_cnt && !found; i++)
        if (strcmp(md->topics[i].topic, topic) == 0)
            found = &md->topics[i];
    int count = -1;
    if (!found || found->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        snprintf(err, errlen, "kafka topic \"%s\" does not exist", topic);
    else if (found->err)
        snprintf(err, errlen, "kafka topic \"%s\": %s", topic, rd_kafka_err2str(found->err));
    else if (found->partition_cnt <= 0)
        snprintf(err, errlen, "kafka topic \"%s\" has no partitions", topic);
    else
        count = found->partition_cnt;
    rd_kafka_metadata_destroy(md);
    return count;
}

int kafka_header_get(const rd_kafka_message_t *msg, const char *name, const void **value, size_t *len)
{
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    if (rd_kafka_header_get_last(hdrs, name, value, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return 0;
}

int kafka_header_string(const rd_kafka_message_t *msg, const char *name, char *buf, size_t buflen)
{
    const void *value;
    size_t len;
    if (kafka_header_get(msg, name, &value, &len) != 0 || !value)
        return -1;
    if (len >= buflen || memchr(value, '\0', len))
        return -1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    return 0;
}

/* --- administration ------------------------------------------------------------------ */

/* A client for metadata and admin requests (a producer handle, which sends
 * nothing unless asked). NULL with err. */
static rd_kafka_t *admin_client(const char *brokers, const struct kv_list *props, int quiet, char *err, size_t errlen)
{
    if (!brokers || !*brokers) {
        snprintf(err, errlen, "no kafka brokers given");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const fixed[] = {"bootstrap.servers", NULL};
    if (conf_set(conf, "bootstrap.servers", brokers, err, errlen) != 0 ||
        conf_set(conf, "client.id", "stagehand-admin", err, errlen) != 0 ||
        /* Waiting for a broker that is starting: its refusals are expected. */
        (quiet && conf_set(conf, "log_level", "0", err, errlen) != 0) ||
        conf_apply_site(conf, fixed, err, errlen) != 0 || conf_apply_extra(conf, props, fixed, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    kafka_conf_set_log(conf);
    return client_new(RD_KAFKA_PRODUCER, conf, err, errlen);
}

int kafka_wait_ready(const char *brokers, const struct kv_list *properties, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_t *rk = admin_client(brokers, properties, 1, err, errlen);
    if (!rk)
        return -1;
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    int rc = -1;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (;;) {
        int64_t left = deadline - time_monotonic_ms();
        if (left <= 0)
            break;
        const struct rd_kafka_metadata *md = NULL;
        last = rd_kafka_metadata(rk, 0, NULL, &md, (int)(left < 2000 ? left : 2000));
        if (!last) {
            int brokers_seen = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
            if (brokers_seen > 0) {
                rc = 0;
                break;
            }
        }
        time_sleep_ms(100);
    }
    if (rc != 0)
        snprintf(err, errlen, "kafka at %s did not answer a metadata request within %d ms (%s)", brokers, timeout_ms,
                 rd_kafka_err2str(last));
    rd_kafka_destroy(rk);
    return rc;
}

/* Partition count of topic in one metadata answer: >0, 0 when it is not
 * there (or still has no leader for some partition), -1 on a request error. */
static int topic_ready_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return -1;
    int count = 0;
    if (md->topic_cnt == 1 && !md->topics[0].err) {
        count = md->topics[0].partition_cnt;
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            if (md->topics[0].partitions[i].err || md->topics[0].partitions[i].leader < 0)
                count = 0;
    }
    rd_kafka_metadata_destroy(md);
    return count;
}

int kafka_create_topics(const char *brokers, const struct kv_list *properties, const struct kafka_topic_spec *topics,
                        size_t count, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_t *rk = admin_client(brokers, properties, 0, err, errlen);
    if (!rk)
        return -1;
    int rc = -1;
    char why[512];
    rd_kafka_NewTopic_t **news = calloc(count ? count : 1, sizeof *news);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    if (!news || !queue || !options) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, NULL, 0);
    for (size_t i = 0; i < count; i++) {
        const struct kafka_topic_spec *t = &topics[i];
        news[i] = rd_kafka_NewTopic_new(t->name, t->partitions, t->replication > 0 ? t->replication : -1, why,
                                        sizeof why);
        if (!news[i]) {
            snprintf(err, errlen, "kafka topic \"%s\": %s", t->name, why);
            goto out;
        }
        for (size_t j = 0; t->configs && t->configs[j]; j++) {
            char name[256];
            const char *eq = strchr(t->configs[j], '=');
            size_t n = eq ? (size_t)(eq - t->configs[j]) : 0;
            if (!eq || n == 0 || n >= sizeof name) {
                snprintf(err, errlen, "kafka topic \"%s\": config \"%s\" is not name=value", t->name, t->configs[j]);
                goto out;
            }
            memcpy(name, t->configs[j], n);
            name[n] = '\0';
            if (rd_kafka_NewTopic_set_config(news[i], name, eq + 1)) {
                snprintf(err, errlen, "kafka topic \"%s\": bad config \"%s\"", t->name, name);
                goto out;
            }
        }
    }
    rd_kafka_CreateTopics(rk, news, count, options, queue);
    ev = rd_kafka_queue_poll(queue, timeout_ms + 5000);
    if (!ev) {
        snprintf(err, errlen, "kafka did not answer CreateTopics within %d ms", timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "kafka CreateTopics failed: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n_results = 0;
    const rd_kafka_topic_result_t **results = rd_kafka_CreateTopics_result_topics(res, &n_results);
    for (size_t i = 0; i < n_results; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            const char *msg = rd_kafka_topic_result_error_string(results[i]);
            snprintf(err, errlen, "kafka topic \"%s\" not created: %s", rd_kafka_topic_result_name(results[i]),
                     msg ? msg : rd_kafka_err2str(e));
            goto out;
        }
    }
    /* Created (or there): wait until each has its partitions with leaders. */
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    for (size_t i = 0; i < count; i++) {
        int have;
        while ((have = topic_ready_partitions(rk, topics[i].name, 2000)) <= 0 && time_monotonic_ms() < deadline)
            time_sleep_ms(100);
        if (have <= 0) {
            snprintf(err, errlen, "kafka topic \"%s\" has no ready partitions after %d ms", topics[i].name, timeout_ms);
            goto out;
        }
        if (have != topics[i].partitions) {
            snprintf(err, errlen, "kafka topic \"%s\" exists with %d partitions, not %d", topics[i].name, have,
                     topics[i].partitions);
            goto out;
        }
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; news && i < count; i++)
        if (news[i])
            rd_kafka_NewTopic_destroy(news[i]);
    free(news);
    if (options)
        rd_kafka_AdminOptions_destroy(options);
    if (queue)
        rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    return rc;
}

/* --- producer ------------------------------------------------------------------------- */

struct kafka_producer {
    rd_kafka_t *rk;
    kafka_delivery_cb *on_delivery;
    kafka_error_cb *on_error;
    void *error_ctx;
    atomic_long outstanding; /* accepted, delivery report not yet served */
    atomic_int closing;      /* kafka_produce refuses new messages */
    int close_failures;      /* failed reports served by kafka_producer_close */
    rd_kafka_resp_err_t close_last_err;
    int has_poller;
    atomic_int poller_stop;
    pthread_t poller;
};

static void producer_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_producer *p = opaque;
    rd_kafka_resp_err_t e = m->err;
    if (!e && fault_hit(FAULT_DELIVER, rd_kafka_topic_name(m->rkt)))
        e = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
    struct kafka_delivery d = {
        .err = e,
        .errstr = rd_kafka_err2str(e),
        .topic = rd_kafka_topic_name(m->rkt),
        .partition = m->partition,
        .offset = e ? RD_KAFKA_OFFSET_INVALID : m->offset,
    };
    if (e && atomic_load(&p->closing)) {
        p->close_failures++;
        p->close_last_err = e;
    }
    if (p->on_delivery)
        p->on_delivery(m->_private, &d);
    atomic_fetch_sub(&p->outstanding, 1);
}

static void producer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_producer *p = opaque;
    report_error(rk, p->on_error, p->error_ctx, (rd_kafka_resp_err_t)err, reason);
}

static void *producer_poller(void *arg)
{
    struct kafka_producer *p = arg;
    while (!atomic_load(&p->poller_stop))
        rd_kafka_poll(p->rk, POLLER_INTERVAL_MS);
    return NULL;
}

struct kafka_producer *kafka_producer_new(const struct kafka_producer_options *opt, char *err, size_t errlen)
{
    static const char *const fixed[] = {"enable.idempotence",   "acks", "request.required.acks", "bootstrap.servers",
                                        "metadata.broker.list", NULL};
    if (!opt->brokers || !opt->brokers[0]) {
        snprintf(err, errlen, "no kafka brokers given (KAFKA_BROKERS is host:port,...)");
        return NULL;
    }
    if (faults_from_env(err, errlen) < 0)
        return NULL;
    struct kafka_producer *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->on_delivery = opt->on_delivery;
    p->on_error = opt->on_error;
    p->error_ctx = opt->error_ctx;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", opt->brokers, err, errlen) != 0 ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        conf_set(conf, "acks", "all", err, errlen) != 0 || conf_set(conf, "linger.ms", "5", err, errlen) != 0 ||
        conf_set(conf, "compression.type", "zstd", err, errlen) != 0 ||
        conf_apply_site(conf, fixed, err, errlen) != 0 ||
        conf_apply_extra(conf, opt->properties, fixed, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, producer_delivery);
    rd_kafka_conf_set_error_cb(conf, producer_error);
    kafka_conf_set_log(conf);

    p->rk = client_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!p->rk) {
        free(p);
        return NULL;
    }
    if (opt->poll_thread) {
        int e = pthread_create(&p->poller, NULL, producer_poller, p);
        if (e != 0) {
            snprintf(err, errlen, "cannot start the kafka poller thread: %s", strerror(e));
            rd_kafka_destroy(p->rk);
            free(p);
            return NULL;
        }
        p->has_poller = 1;
    }
    return p;
}

/* Builds librdkafka headers from the list; NULL with err on failure. */
static rd_kafka_headers_t *headers_from_kv(const struct kv_list *kv, char *err, size_t errlen)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(kv->len);
    for (size_t i = 0; i < kv->len; i++) {
        const struct kv_pair *h = &kv->items[i];
        rd_kafka_resp_err_t e = rd_kafka_header_add(hdrs, h->name, (ssize_t)h->name_len, h->value,
                                                    (ssize_t)h->value_len);
        if (e) {
            snprintf(err, errlen, "kafka header \"%s\": %s", h->name, rd_kafka_err2str(e));
            rd_kafka_headers_destroy(hdrs);
            return NULL;
        }
    }
    return hdrs;
}

rd_kafka_resp_err_t kafka_produce(struct kafka_producer *p, const struct kafka_record *rec, char *err, size_t errlen)
{
    if (atomic_load(&p->closing)) {
        snprintf(err, errlen, "kafka producer is closing");
        return RD_KAFKA_RESP_ERR__STATE;
    }
    if (!rec->topic || !rec->topic[0]) {
        snprintf(err, errlen, "no kafka topic given");
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }
    if (fault_hit(FAULT_PRODUCE, rec->topic)) {
        snprintf(err, errlen, "cannot produce to %s: injected fault", rec->topic);
        return RD_KAFKA_RESP_ERR__TRANSPORT;
    }
    rd_kafka_headers_t *hdrs = NULL;
    if (rec->headers && rec->headers->len > 0) {
        hdrs = headers_from_kv(rec->headers, err, errlen);
        if (!hdrs)
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }

    /* Counted before producev: the report may arrive on the poller thread
     * before producev returns. */
    atomic_fetch_add(&p->outstanding, 1);
    /* RD_KAFKA_V_VALUE takes a non-const pointer; F_COPY means it is only read. */
    rd_kafka_resp_err_t e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(rec->topic), RD_KAFKA_V_PARTITION(rec->partition),
                                              RD_KAFKA_V_KEY(rec->key, rec->key_len),
                                              RD_KAFKA_V_VALUE((void *)rec->value, rec->value_len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(rec->opaque),
                                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (e) {
        atomic_fetch_sub(&p->outstanding, 1);
        if (hdrs) /* only taken over on success */
            rd_kafka_headers_destroy(hdrs);
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char cause[256];
            rd_kafka_fatal_error(p->rk, cause, sizeof cause);
            snprintf(err, errlen, "kafka producer failed fatally: %s", cause);
        } else {
            snprintf(err, errlen, "cannot produce to %s: %s", rec->topic, rd_kafka_err2str(e));
        }
    }
    return e;
}

rd_kafka_resp_err_t kafka_produce_waiting(struct kafka_producer *p, const struct kafka_record *rec, char *err,
                                          size_t errlen)
{
    rd_kafka_resp_err_t rc;
    while ((rc = kafka_produce(p, rec, err, errlen)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        kafka_producer_poll(p, 10);
    return rc;
}

int kafka_producer_poll(struct kafka_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int kafka_producer_outstanding(struct kafka_producer *p)
{
    return (int)atomic_load(&p->outstanding);
}

rd_kafka_t *kafka_producer_handle(struct kafka_producer *p)
{
    return p->rk;
}

/* Serves delivery reports until none is outstanding or wait_ms passed. */
static void serve_reports(struct kafka_producer *p, int wait_ms)
{
    int64_t deadline = time_monotonic_ms() + wait_ms;
    while (atomic_load(&p->outstanding) > 0) {
        int64_t left = deadline - time_monotonic_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(p->rk, left < POLLER_INTERVAL_MS ? (int)left : POLLER_INTERVAL_MS);
    }
}

int kafka_producer_close(struct kafka_producer *p, int timeout_ms)
{
    atomic_store(&p->closing, 1);
    if (p->has_poller) {
        atomic_store(&p->poller_stop, 1);
        pthread_join(p->poller, NULL);
    }
    serve_reports(p, timeout_ms);
    long pending = atomic_load(&p->outstanding);
    if (pending > 0) {
        log_warn("kafka producer closing: purging messages not delivered in time", "kafka_client", rd_kafka_name(p->rk),
                 NULL);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        serve_reports(p, PURGE_REPORT_WAIT_MS);
    }
    /* Reports that never came cannot be served after destroy: count them. */
    long unreported = atomic_load(&p->outstanding);
    int failures = p->close_failures + (int)(unreported > 0 ? unreported : 0);
    if (failures > 0) {
        char count[32], missing[32];
        snprintf(count, sizeof count, "%d", failures);
        snprintf(missing, sizeof missing, "%ld", unreported > 0 ? unreported : 0);
        log_error("kafka producer closed with undelivered messages", "kafka_client", rd_kafka_name(p->rk),
                  "undelivered", count, "without_report", missing, "last_error",
                  p->close_failures ? rd_kafka_err2name(p->close_last_err) : "none", NULL);
    }
    rd_kafka_destroy(p->rk);
    free(p);
    return failures;
}

/* --- consumer --------------------------------------------------------------------------- */

struct kafka_consumer {
    rd_kafka_t *rk;
    kafka_partitions_cb *on_assign;
    kafka_partitions_cb *on_revoke;
    kafka_error_cb *on_error;
    void *ctx;
    /* Next offsets stored by kafka_consumer_done(), per assigned partition:
     * what must be committed before a partition is given away. */
    rd_kafka_topic_partition_list_t *stored;
    int assigned_once;                       /* the group gave this member an assignment (maybe empty) */
    int closing;                             /* in kafka_consumer_close: assignments no longer reach on_assign */
    rd_kafka_topic_partition_list_t *paused; /* by kafka_consumer_pause: not nudged */
    struct fetch_nudge nudge;
};

static int is_cooperative(rd_kafka_t *rk)
{
    const char *proto = rd_kafka_rebalance_protocol(rk);
    return proto && strcmp(proto, "COOPERATIVE") == 0;
}

static void log_rd_error(const char *what, rd_kafka_error_t *error)
{
    log_error(what, "error", rd_kafka_error_name(error), "reason", rd_kafka_error_string(error), NULL);
    rd_kafka_error_destroy(error);
}

/* Commits, synchronously, the stored offsets of those of the given
 * partitions that have one. Returns librdkafka's result (0 when there was
 * nothing to commit). */
static rd_kafka_resp_err_t commit_stored(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *partitions)
{
    rd_kafka_topic_partition_list_t *todo = rd_kafka_topic_partition_list_new(partitions->cnt > 0 ? partitions->cnt
                                                                                                  : 1);
    for (int i = 0; i < partitions->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &partitions->elems[i];
        rd_kafka_topic_partition_t *s = rd_kafka_topic_partition_list_find(c->stored, tp->topic, tp->partition);
        if (s)
            rd_kafka_topic_partition_list_add(todo, s->topic, s->partition)->offset = s->offset;
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (todo->cnt > 0)
        e = rd_kafka_commit(c->rk, todo, 0);
    rd_kafka_topic_partition_list_destroy(todo);
    return e == RD_KAFKA_RESP_ERR__NO_OFFSET ? RD_KAFKA_RESP_ERR_NO_ERROR : e;
}

/* Partitions that went (or are committed at close): their stored offsets
 * and pauses are forgotten. */
static void forget_partitions(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *partitions)
{
    for (int i = 0; i < partitions->cnt; i++) {
        rd_kafka_topic_partition_list_del(c->stored, partitions->elems[i].topic, partitions->elems[i].partition);
        rd_kafka_topic_partition_list_del(c->paused, partitions->elems[i].topic, partitions->elems[i].partition);
    }
}

static void log_commit_failure(struct kafka_consumer *c, rd_kafka_resp_err_t e)
{
    log_warn("kafka offset commit failed: the next owner will see those events again", "kafka_client",
             rd_kafka_name(c->rk), "error", rd_kafka_err2name(e), NULL);
}

/* Lets partitions go: the caller's hook first, then (unless the assignment
 * was lost, when the group has already handed them to someone else) the
 * commit of their stored offsets, then the unassignment. */
static void consumer_revoke(struct kafka_consumer *c, rd_kafka_topic_partition_list_t *partitions, int cooperative)
{
    if (c->on_revoke)
        c->on_revoke(c->ctx, partitions);
    if (rd_kafka_assignment_lost(c->rk)) {
        log_warn("kafka assignment lost: stored offsets not committed", "kafka_client", rd_kafka_name(c->rk), NULL);
    } else {
        rd_kafka_resp_err_t e = commit_stored(c, partitions);
        if (e)
            log_commit_failure(c, e);
    }
    forget_partitions(c, partitions);
    if (cooperative) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(c->rk, partitions);
        if (error)
            log_rd_error("kafka incremental unassign failed", error);
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, NULL);
        if (e)
            log_error("kafka unassign failed", "error", rd_kafka_err2name(e), NULL);
    }
}

static void consumer_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
                               void *opaque)
{
    struct kafka_consumer *c = opaque;
    int cooperative = is_cooperative(rk);
    char count[16];
    snprintf(count, sizeof count, "%d", partitions->cnt);

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("kafka partitions assigned", "kafka_client", rd_kafka_name(rk), "partitions", count, "protocol",
                 cooperative ? "cooperative" : "eager", NULL);
        int ok = 1;
        if (cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_assign(rk, partitions);
            if (error) {
                log_rd_error("kafka incremental assign failed", error);
                ok = 0;
            }
        } else {
            rd_kafka_resp_err_t e = rd_kafka_assign(rk, partitions);
            if (e) {
                log_error("kafka assign failed", "error", rd_kafka_err2name(e), NULL);
                ok = 0;
            }
        }
        c->assigned_once = 1;
        if (ok && c->on_assign && !c->closing)
            c->on_assign(c->ctx, partitions);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_info("kafka partitions revoked", "kafka_client", rd_kafka_name(rk), "partitions", count, "protocol",
                 cooperative ? "cooperative" : "eager", NULL);
        consumer_revoke(c, partitions, cooperative);
    } else {
        /* A failed rebalance: give up what it concerned so librdkafka's
         * view and ours agree; the group will assign again. */
        report_error(rk, c->on_error, c->ctx, err, "rebalance failed");
        if (cooperative) {
            if (partitions->cnt > 0)
                consumer_revoke(c, partitions, 1);
        } else {
            rd_kafka_topic_partition_list_t *all = NULL;
            if (rd_kafka_assignment(rk, &all) == RD_KAFKA_RESP_ERR_NO_ERROR && all) {
                if (c->on_revoke && all->cnt > 0)
                    c->on_revoke(c->ctx, all);
                forget_partitions(c, all);
                rd_kafka_topic_partition_list_destroy(all);
            }
            rd_kafka_assign(rk, NULL);
        }
    }
}

static void consumer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_consumer *c = opaque;
    report_error(rk, c->on_error, c->ctx, (rd_kafka_resp_err_t)err, reason);
}

struct kafka_consumer *kafka_consumer_new(const struct kafka_consumer_options *opt, char *err, size_t errlen)
{
    static const char *const fixed[] = {"enable.auto.offset.store", "group.id", "bootstrap.servers",
                                        "metadata.broker.list", NULL};
    if (!opt->brokers || !opt->brokers[0]) {
        snprintf(err, errlen, "no kafka brokers given (KAFKA_BROKERS is host:port,...)");
        return NULL;
    }
    if (!opt->group_id || !opt->group_id[0]) {
        snprintf(err, errlen, "no kafka consumer group given");
        return NULL;
    }
    if (faults_from_env(err, errlen) < 0)
        return NULL;
    if (!opt->topics || opt->topic_count == 0) {
        snprintf(err, errlen, "no kafka topics to consume given");
        return NULL;
    }
    for (size_t i = 0; i < opt->topic_count; i++) {
        if (!opt->topics[i] || !opt->topics[i][0]) {
            snprintf(err, errlen, "empty kafka topic name");
            return NULL;
        }
    }

    struct kafka_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->on_assign = opt->on_assign;
    c->on_revoke = opt->on_revoke;
    c->on_error = opt->on_error;
    c->ctx = opt->ctx;
    c->stored = rd_kafka_topic_partition_list_new(16);
    c->paused = rd_kafka_topic_partition_list_new(16);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *reset = opt->auto_offset_reset ? opt->auto_offset_reset : "earliest";
    if (conf_set(conf, "bootstrap.servers", opt->brokers, err, errlen) != 0 ||
        conf_set(conf, "group.id", opt->group_id, err, errlen) != 0 ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errlen) != 0 ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0 ||
        conf_set(conf, "enable.auto.commit", "true", err, errlen) != 0 ||
        conf_set(conf, "auto.offset.reset", reset, err, errlen) != 0 ||
        fetch_nudge_setup(conf, &c->nudge, err, errlen) != 0 || conf_apply_site(conf, fixed, err, errlen) != 0 ||
        conf_apply_extra(conf, opt->properties, fixed, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        rd_kafka_topic_partition_list_destroy(c->stored);
        rd_kafka_topic_partition_list_destroy(c->paused);
        free(c);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance);
    rd_kafka_conf_set_error_cb(conf, consumer_error);
    kafka_conf_set_log(conf);

    c->rk = client_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!c->rk) {
        rd_kafka_topic_partition_list_destroy(c->stored);
        rd_kafka_topic_partition_list_destroy(c->paused);
        free(c);
        return NULL;
    }
    /* Error events then come out of rd_kafka_consumer_poll() too. */
    rd_kafka_poll_set_consumer(c->rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)opt->topic_count);
    for (size_t i = 0; i < opt->topic_count; i++)
        rd_kafka_topic_partition_list_add(topics, opt->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "cannot subscribe to the kafka topics: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(c->rk);
        rd_kafka_topic_partition_list_destroy(c->stored);
        rd_kafka_topic_partition_list_destroy(c->paused);
        free(c);
        return NULL;
    }
    return c;
}

rd_kafka_message_t *kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms)
{
    /* After an end-of-partition the rest is taken without waiting, so the
     * call never outlasts timeout_ms without reading the clock per event.
     * Before waiting, a parked fetcher is nudged (see nudge_fetcher). */
    int wait_ms = timeout_ms > 0 ? timeout_ms : 0;
    int nudged = !c->nudge.enabled;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, nudged ? wait_ms : 0);
        if (!m && !nudged) {
            nudge_fetcher(c->rk, &c->nudge, c->paused);
            nudged = 1;
            continue;
        }
        if (!m)
            return NULL;
        if (!m->err) {
            nudge_note_message(c->rk, &c->nudge);
            return m;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            wait_ms = 0;
            continue;
        }
        /* A consumer error: report it and let the caller's loop go on. */
        report_error(c->rk, c->on_error, c->ctx, m->err, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return NULL;
    }
}

int kafka_consumer_store(struct kafka_consumer *c, const char *topic, int32_t partition, int64_t next_offset, char *err,
                         size_t errlen)
{
    /* The list form: the legacy single-partition rd_kafka_offset_store()
     * left librdkafka 2.0.2 unable to close the consumer (a reference
     * leak, seen as rd_kafka_destroy() hanging in the tests). */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    if (!e)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "cannot store offset %lld of %s [%d]: %s", (long long)next_offset, topic, (int)partition,
                 rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_topic_partition_t *s = rd_kafka_topic_partition_list_find(c->stored, topic, partition);
    if (!s)
        s = rd_kafka_topic_partition_list_add(c->stored, topic, partition);
    s->offset = next_offset;
    return 0;
}

int kafka_consumer_done(struct kafka_consumer *c, const rd_kafka_message_t *msg, char *err, size_t errlen)
{
    return kafka_consumer_store(c, rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset + 1, err, errlen);
}

/* 1 when topic [partition] is in the current assignment, else 0 with err. */
static int check_assigned(struct kafka_consumer *c, const char *topic, int32_t partition, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *all = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(c->rk, &all);
    if (e) {
        snprintf(err, errlen, "cannot read the kafka assignment: %s", rd_kafka_err2str(e));
        return 0;
    }
    int found = rd_kafka_topic_partition_list_find(all, topic, partition) != NULL;
    rd_kafka_topic_partition_list_destroy(all);
    if (!found)
        snprintf(err, errlen, "%s [%d] is not assigned to this consumer", topic, (int)partition);
    return found;
}

static int pause_or_resume(struct kafka_consumer *c, const char *topic, int32_t partition, int pause, char *err,
                           size_t errlen)
{
    if (!check_assigned(c, topic, partition, err, errlen))
        return -1;
    if (fault_hit(pause ? FAULT_PAUSE : FAULT_RESUME, NULL)) {
        snprintf(err, errlen, "cannot %s %s [%d]: injected fault", pause ? "pause" : "resume", topic, (int)partition);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    if (!e)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "cannot %s %s [%d]: %s", pause ? "pause" : "resume", topic, (int)partition,
                 rd_kafka_err2str(e));
        return -1;
    }
    int listed = rd_kafka_topic_partition_list_find(c->paused, topic, partition) != NULL;
    if (pause && !listed)
        rd_kafka_topic_partition_list_add(c->paused, topic, partition);
    else if (!pause && listed)
        rd_kafka_topic_partition_list_del(c->paused, topic, partition);
    return 0;
}

int kafka_consumer_pause(struct kafka_consumer *c, const char *topic, int32_t partition, char *err, size_t errlen)
{
    return pause_or_resume(c, topic, partition, 1, err, errlen);
}

int kafka_consumer_resume(struct kafka_consumer *c, const char *topic, int32_t partition, char *err, size_t errlen)
{
    return pause_or_resume(c, topic, partition, 0, err, errlen);
}

int kafka_consumer_rewind(struct kafka_consumer *c, const char *topic, int32_t partition, int64_t offset, char *err,
                          size_t errlen)
{
    if (offset < 0) {
        snprintf(err, errlen, "cannot rewind %s [%d] to negative offset %lld", topic, (int)partition,
                 (long long)offset);
        return -1;
    }
    if (!check_assigned(c, topic, partition, err, errlen))
        return -1;
    if (fault_hit(FAULT_REWIND, NULL)) {
        snprintf(err, errlen, "cannot rewind %s [%d] to offset %lld: injected fault", topic, (int)partition,
                 (long long)offset);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, l, 0);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error) {
        e = rd_kafka_error_code(error);
        rd_kafka_error_destroy(error);
    } else if (l->elems[0].err != RD_KAFKA_RESP_ERR__IN_PROGRESS) {
        e = l->elems[0].err;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "cannot rewind %s [%d] to offset %lld: %s", topic, (int)partition, (long long)offset,
                 rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

rd_kafka_topic_partition_list_t *kafka_consumer_assignment(struct kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *all = NULL;
    if (rd_kafka_assignment(c->rk, &all) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return all;
}

rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c)
{
    return c->rk;
}

/* Commits every stored offset before close. A group that is rebalancing
 * refuses commits (REBALANCE_IN_PROGRESS, or ILLEGAL_GENERATION just after),
 * e.g. while another member is leaving at the same moment; then the group is
 * served, with our partitions paused, until the rebalance is over and the
 * commit can be retried, for at most CLOSE_COMMIT_WAIT_MS. */
static int commit_before_close(struct kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *assigned = kafka_consumer_assignment(c);
    if (assigned) {
        rd_kafka_pause_partitions(c->rk, assigned);
        rd_kafka_topic_partition_list_destroy(assigned);
    }
    int64_t deadline = time_monotonic_ms() + CLOSE_COMMIT_WAIT_MS;
    for (;;) {
        if (c->stored->cnt == 0)
            return 0;
        rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_copy(c->stored);
        rd_kafka_resp_err_t e = commit_stored(c, all);
        if (!e)
            forget_partitions(c, all);
        rd_kafka_topic_partition_list_destroy(all);
        if (!e)
            return 0;
        int retriable = e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION;
        if (!retriable || time_monotonic_ms() >= deadline) {
            log_commit_failure(c, e);
            return -1;
        }
        /* Serves the rebalance (our hooks may run). A message from a newly
         * assigned partition is dropped unstored: its next owner gets it. */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
}

/* librdkafka 2.0.2 aborts in rd_kafka_destroy() when a cooperative-sticky
 * member is destroyed after its JoinGroup and before its first assignment
 * (the assignor's state is still NULL; librdkafka issue 4312, fixed in
 * 2.3.0). A member stopped that early, which a restart in the middle of a
 * rebalance makes likely, first waits for that assignment; if it never
 * comes, the handle is left to the end of the process rather than
 * destroyed. */
static rd_kafka_t *abandoned_handle;

static void wait_first_assignment(struct kafka_consumer *c)
{
    int64_t until = time_monotonic_ms() + FIRST_ASSIGNMENT_WAIT_MS;
    c->closing = 1;
    while (!c->assigned_once && time_monotonic_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m)
            rd_kafka_message_destroy(m); /* unstored: the partition's next owner gets it */
    }
}

int kafka_consumer_close(struct kafka_consumer *c)
{
    if (!c->assigned_once && is_cooperative(c->rk))
        wait_first_assignment(c);
    int rc = commit_before_close(c);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e) {
        log_warn("kafka consumer close failed", "kafka_client", rd_kafka_name(c->rk), "error", rd_kafka_err2name(e),
                 NULL);
        rc = -1;
    }
    /* The group is left: no JoinGroup can set the assignor now. */
    if (!c->assigned_once && is_cooperative(c->rk)) {
        log_warn("kafka consumer left undestroyed: it never had an assignment (librdkafka 2.0.2 would abort)",
                 "kafka_client", rd_kafka_name(c->rk), NULL);
        abandoned_handle = c->rk;
    } else {
        rd_kafka_destroy(c->rk);
    }
    rd_kafka_topic_partition_list_destroy(c->stored);
    rd_kafka_topic_partition_list_destroy(c->paused);
    free(c);
    return rc;
}

/* --- reader --------------------------------------------------------------------------- */

struct kafka_reader {
    rd_kafka_t *rk;
    kafka_error_cb *on_error;
    void *ctx;
    int partitions;
    unsigned char *at_end; /* per partition: its end was reached once */
    int ends_missing;      /* partitions whose end was not reached yet */
    atomic_int caught_up;
    struct fetch_nudge nudge;
};

static void reader_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_reader *r = opaque;
    report_error(rk, r->on_error, r->ctx, (rd_kafka_resp_err_t)err, reason);
}

struct kafka_reader *kafka_reader_new(const struct kafka_reader_options *opt, char *err, size_t errlen)
{
    static const char *const fixed[] = {"group.id",           "bootstrap.servers",    "metadata.broker.list",
                                        "enable.auto.commit", "enable.partition.eof", NULL};
    if (!opt->brokers || !opt->brokers[0] || !opt->topic || !opt->topic[0]) {
        snprintf(err, errlen, "a kafka reader needs brokers and a topic");
        return NULL;
    }
    struct kafka_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->on_error = opt->on_error;
    r->ctx = opt->ctx;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", opt->brokers, err, errlen) != 0 ||
        conf_set(conf, "group.id", "stagehand-reader-unused", err, errlen) != 0 ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        conf_set(conf, "enable.partition.eof", "true", err, errlen) != 0 ||
        /* A fetch at the end of a partition waits this long before it
         * says so (500 ms by default): what a worker's rebuild waits
         * after its last record. */
        conf_set(conf, "fetch.wait.max.ms", "100", err, errlen) != 0 ||
        fetch_nudge_setup(conf, &r->nudge, err, errlen) != 0 || conf_apply_site(conf, fixed, err, errlen) != 0 ||
        conf_apply_extra(conf, opt->properties, fixed, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        free(r);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, r);
    rd_kafka_conf_set_error_cb(conf, reader_error);
    kafka_conf_set_log(conf);
    r->rk = client_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!r->rk) {
        free(r);
        return NULL;
    }
    rd_kafka_poll_set_consumer(r->rk);
    int timeout = opt->metadata_timeout_ms > 0 ? opt->metadata_timeout_ms : 10000;
    r->partitions = kafka_partition_count(r->rk, opt->topic, timeout, err, errlen);
    r->at_end = r->partitions > 0 ? calloc((size_t)r->partitions, 1) : NULL;
    if (r->partitions <= 0 || !r->at_end) {
        if (r->partitions > 0)
            snprintf(err, errlen, "out of memory");
        kafka_reader_close(r);
        return NULL;
    }
    r->ends_missing = r->partitions;
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(r->partitions);
    for (int p = 0; p < r->partitions; p++)
        rd_kafka_topic_partition_list_add(all, opt->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, all);
    rd_kafka_topic_partition_list_destroy(all);
    if (e) {
        snprintf(err, errlen, "cannot assign the partitions of \"%s\": %s", opt->topic, rd_kafka_err2str(e));
        kafka_reader_close(r);
        return NULL;
    }
    return r;
}

rd_kafka_message_t *kafka_reader_poll(struct kafka_reader *r, int timeout_ms)
{
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(r->rk, 0);
    if (!msg && timeout_ms > 0) {
        nudge_fetcher(r->rk, &r->nudge, NULL); /* nothing to hand out: see there */
        msg = rd_kafka_consumer_poll(r->rk, timeout_ms);
    }
    if (!msg)
        return NULL;
    if (!msg->err) {
        nudge_note_message(r->rk, &r->nudge);
        return msg;
    }
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (msg->partition >= 0 && msg->partition < r->partitions && !r->at_end[msg->partition]) {
            r->at_end[msg->partition] = 1;
            if (--r->ends_missing == 0)
                atomic_store(&r->caught_up, 1);
        }
    } else {
        report_error(r->rk, r->on_error, r->ctx, msg->err, rd_kafka_message_errstr(msg));
    }
    rd_kafka_message_destroy(msg);
    return NULL;
}

int kafka_reader_caught_up(const struct kafka_reader *r)
{
    return atomic_load(&r->caught_up);
}

int kafka_reader_partition_count(const struct kafka_reader *r)
{
    return r->partitions;
}

void kafka_reader_close(struct kafka_reader *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    free(r->at_end);
    free(r);
}
