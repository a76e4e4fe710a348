/* Kafka producer and consumer on librdkafka, with the settings stagehand
 * relies on fixed in one place.
 *
 * Producer: idempotent (enable.idempotence=true, acks=all), linger.ms=5,
 * compression.type=zstd (events are JSON that compresses about ten times
 * over, twice as far as with lz4 at the same producing speed; the dev
 * broker's partitions hold only 5 MB of stored batches).
 * Every message accepted by kafka_produce() gets exactly one delivery
 * callback, success or failure, including the messages still queued when the
 * producer is closed (those fail with RD_KAFKA_RESP_ERR__PURGE_QUEUE or
 * __PURGE_INFLIGHT). Callbacks run on the producer's poller thread when
 * poll_thread is set, else inside kafka_producer_poll() and
 * kafka_producer_close().
 *
 * Reader: all partitions of one topic from their beginning, with no group
 * and no commits (for folding the compacted stagehand.state into a view),
 * telling when it has caught up.
 *
 * Consumer: a member of a consumer group with cooperative-sticky assignment,
 * enable.auto.offset.store=false and enable.auto.commit=true: an offset is
 * stored only by kafka_consumer_done() and the stored offsets are committed
 * by librdkafka every auto.commit.interval.ms (5 s), synchronously before
 * partitions are revoked, and on close. After a crash the group resumes at
 * the last committed offset: never past an event that was not done, possibly
 * before some that were (done within the last commit interval), so event
 * handlers must be idempotent. One thread owns a consumer:
 * the assign/revoke hooks run inside kafka_consumer_poll() and
 * kafka_consumer_close().
 *
 * Both take the bootstrap list as "host:port,host:port" (KAFKA_BROKERS) and
 * an optional kv_list of extra librdkafka properties applied after the
 * defaults; an unknown property or bad value is an error naming the property
 * (values of sasl.*, ssl.* and secret-like names are never repeated in it).
 * Every client (producer, consumer, reader, admin) also takes the operator's
 * properties from the environment, after the defaults and before the
 * caller's: KAFKA_PROPERTIES_FILE (a file of name=value lines, # comments)
 * and then KAFKA_PROPERTIES ("name=value,name=value"); that is how TLS and
 * SASL reach librdkafka. Their values are never logged.
 * Timeouts stay librdkafka's defaults
 * (session.timeout.ms 45000, heartbeat.interval.ms 3000); tests and the dev
 * stack pass shorter ones as extra properties because the dev broker's
 * rebalance waits scale with the session timeout.
 *
 * librdkafka's own log lines go through common/log.h (syslog levels 0-3 ->
 * error, 4 -> warn, 5-6 -> info, 7 -> debug) with fields "kafka_client" and
 * "facility". Global errors are logged (warn; fatal ones as error) and passed
 * to the caller's on_error callback. */
#ifndef STAGEHAND_KAFKA_H
#define STAGEHAND_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* --- shared ------------------------------------------------------------------ */

/* A global client error. fatal is 1 for an unrecoverable error (err is the
 * underlying cause of RD_KAFKA_RESP_ERR__FATAL): the client must be closed and
 * recreated. Other errors (brokers down, ...) are transient and informative. */
typedef void kafka_error_cb(void *ctx, rd_kafka_resp_err_t err, int fatal, const char *reason);

/* Routes the log lines of a client made from conf through common/log (what
 * kafka_producer_new and kafka_consumer_new do; for other rd_kafka_t users
 * such as the dev broker). */
void kafka_conf_set_log(rd_kafka_conf_t *conf);

/* Number of partitions of topic (>0), from a metadata request on rk that
 * waits up to timeout_ms. Returns -1 with err when the request fails or the
 * topic does not exist. Never creates the topic. */
int kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen);

/* Finds the last header called name in msg. Returns 0 and sets *value and
 * *len (value may be NULL for a null header), or -1 when there is none. */
int kafka_header_get(const rd_kafka_message_t *msg, const char *name, const void **value, size_t *len);

/* Copies the last header called name into buf as a NUL-terminated string.
 * Returns 0, or -1 when there is no such header, it is null, it contains a
 * NUL byte, or it does not fit in buflen bytes. */
int kafka_header_string(const rd_kafka_message_t *msg, const char *name, char *buf, size_t buflen);

/* Parses "name=value" items separated by sep (',' for KAFKA_PROPERTIES,
 * '\n' for a properties file, where lines starting with # are comments) into
 * out, in order; blanks around names, values and items are dropped, empty
 * items skipped, a value may contain '='. Returns 0, or -1 with err naming
 * the item by number only (never its text, which may hold a secret). */
int kafka_properties_parse(const char *text, char sep, struct kv_list *out, char *err, size_t errlen);

/* Appends the operator's properties to out: KAFKA_PROPERTIES_FILE's, then
 * KAFKA_PROPERTIES's (both read from the environment now; empty means
 * unset). Returns 0, or -1 with err. */
int kafka_site_properties(struct kv_list *out, char *err, size_t errlen);

/* --- administration --------------------------------------------------------------- */

/* One topic for kafka_create_topics. configs: "name=value" strings,
 * NULL-terminated, or NULL (e.g. "cleanup.policy=compact"). */
struct kafka_topic_spec {
    const char *name;
    int partitions;
    int replication; /* 0: the broker's default */
    const char *const *configs;
};

/* Waits until a broker of the bootstrap list answers a metadata request
 * (one broker or more listed), retrying until timeout_ms. Returns 0, or -1
 * with err. properties: extra librdkafka properties (TLS, SASL), or NULL. */
int kafka_wait_ready(const char *brokers, const struct kv_list *properties, int timeout_ms, char *err, size_t errlen);

/* Creates the topics through the admin API (CreateTopics) and waits until
 * their metadata shows every partition. A topic that exists already counts
 * as created when its partition count is the one asked for (its configs
 * are left as they are). Returns 0, or -1 with err naming the topic. */
int kafka_create_topics(const char *brokers, const struct kv_list *properties, const struct kafka_topic_spec *topics,
                        size_t count, int timeout_ms, char *err, size_t errlen);

/* --- producer ------------------------------------------------------------------- */

/* The metadata of a committed offset that tells a worker group to apply
 * its events again from that offset (set by `stagehand-replay offsets`,
 * honoured by the workers on assignment). */
#define KAFKA_REAPPLY_MARK "stagehand-replay:reapply"

/* The outcome of one produced message. err is 0 when the broker
 * acknowledged it; then partition and offset are where it was written. */
struct kafka_delivery {
    rd_kafka_resp_err_t err;
    const char *errstr; /* "Success" or librdkafka's text for err */
    const char *topic;
    int32_t partition;
    int64_t offset; /* RD_KAFKA_OFFSET_INVALID when not known */
};

typedef void kafka_delivery_cb(void *opaque, const struct kafka_delivery *d);

struct kafka_producer_options {
    const char *brokers;              /* required */
    const struct kv_list *properties; /* extra librdkafka properties, or NULL */
    kafka_delivery_cb *on_delivery;   /* or NULL; gets each message's opaque */
    kafka_error_cb *on_error;         /* or NULL */
    void *error_ctx;                  /* passed to on_error */
    int poll_thread;                  /* 1: a thread serves the callbacks */
};

/* One message to produce. headers are copied (names and binary values, in
 * order; may be NULL). partition RD_KAFKA_PARTITION_UA lets the partitioner
 * choose from the key. opaque comes back in the delivery callback. */
struct kafka_record {
    const char *topic;
    int32_t partition;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const struct kv_list *headers;
    void *opaque;
};

struct kafka_producer;

/* Creates a producer. Returns NULL with err on a missing broker list, a bad
 * property or a property common/kafka fixes (enable.idempotence, acks,
 * bootstrap.servers). */
struct kafka_producer *kafka_producer_new(const struct kafka_producer_options *opt, char *err, size_t errlen);

/* Queues one message (copies key, value and headers). Returns 0 and the
 * delivery callback will follow exactly once; or an error code with err and
 * no callback: __QUEUE_FULL (local queue full, try later), __STATE (closing),
 * __FATAL, or librdkafka's code for a bad record. Thread-safe. */
rd_kafka_resp_err_t kafka_produce(struct kafka_producer *p, const struct kafka_record *rec, char *err, size_t errlen);

/* kafka_produce(), but while the local queue is full it serves delivery
 * reports (kafka_producer_poll) and tries again, so it never returns
 * __QUEUE_FULL. For single-threaded bulk producers (tools, tests). */
rd_kafka_resp_err_t kafka_produce_waiting(struct kafka_producer *p, const struct kafka_record *rec, char *err,
                                          size_t errlen);

/* Serves delivery and error callbacks, waiting up to timeout_ms for the
 * first. Returns how many events were served. For single-threaded callers
 * (harmless, but unnecessary, with poll_thread). */
int kafka_producer_poll(struct kafka_producer *p, int timeout_ms);

/* Messages produced but not yet reported by a delivery callback. */
int kafka_producer_outstanding(struct kafka_producer *p);

/* The librdkafka handle (for metadata and statistics; do not destroy it). */
rd_kafka_t *kafka_producer_handle(struct kafka_producer *p);

/* Stops accepting messages, stops the poller thread, waits up to timeout_ms
 * for outstanding deliveries, purges what is left (each purged message still
 * gets its failed delivery callback, on this thread), destroys the producer.
 * Returns how many messages failed while closing (0: all were delivered);
 * they are also logged. No other thread may use p once this is called. */
int kafka_producer_close(struct kafka_producer *p, int timeout_ms);

/* --- consumer --------------------------------------------------------------------- */

/* Partitions handed to the caller (on_assign: newly added; on_revoke: about
 * to be taken away; still assigned while the hook runs). The list belongs
 * to librdkafka and is only valid during the call. */
typedef void kafka_partitions_cb(void *ctx, const rd_kafka_topic_partition_list_t *partitions);

struct kafka_consumer_options {
    const char *brokers;       /* required */
    const char *group_id;      /* required */
    const char *const *topics; /* required: topic_count names */
    size_t topic_count;
    const char *auto_offset_reset;    /* NULL: "earliest" */
    const struct kv_list *properties; /* extra librdkafka properties, or NULL */
    kafka_partitions_cb *on_assign;   /* or NULL; after the assignment */
    kafka_partitions_cb *on_revoke;   /* or NULL; before the unassignment */
    kafka_error_cb *on_error;         /* or NULL */
    void *ctx;                        /* passed to all three hooks */
};

struct kafka_consumer;

/* Creates a consumer and subscribes it to the topics (the group join
 * happens while polling). Returns NULL with err on missing options, a bad
 * property, or a property common/kafka fixes (enable.auto.offset.store,
 * group.id, bootstrap.servers). */
struct kafka_consumer *kafka_consumer_new(const struct kafka_consumer_options *opt, char *err, size_t errlen);

/* Returns the next message (destroy it with rd_kafka_message_destroy()), or
 * NULL when none came within timeout_ms or a consumer error was reported
 * (logged and passed to on_error; then NULL comes early). Partition EOF
 * events are skipped. Rebalance hooks run in here. */
rd_kafka_message_t *kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms);

/* Marks msg processed: stores msg offset + 1 for its partition, to be
 * committed. Returns 0, or -1 with err (e.g. the partition was revoked
 * meanwhile, so its new owner will see the message again). */
int kafka_consumer_done(struct kafka_consumer *c, const rd_kafka_message_t *msg, char *err, size_t errlen);

/* Stores next_offset (the offset of the next message to consume) for topic
 * [partition], to be committed: kafka_consumer_done() for a message no longer
 * in hand. Returns 0, or -1 with err (e.g. the partition was revoked). */
int kafka_consumer_store(struct kafka_consumer *c, const char *topic, int32_t partition, int64_t next_offset, char *err,
                         size_t errlen);

/* Pauses or resumes fetching one assigned partition. Returns 0, or -1 with
 * err (e.g. the partition is not assigned to this consumer).
 * Pausing drops the messages already fetched for it; on resume librdkafka
 * 2.0.2 continues after the last message kafka_consumer_poll() returned for
 * that partition, so a message returned but not done must be rewound. */
int kafka_consumer_pause(struct kafka_consumer *c, const char *topic, int32_t partition, char *err, size_t errlen);
int kafka_consumer_resume(struct kafka_consumer *c, const char *topic, int32_t partition, char *err, size_t errlen);

/* Makes the message at offset the next one delivered for an assigned
 * partition (paused or not): once resumed it comes again. Messages fetched
 * before the call are never returned afterwards. The seek is started
 * asynchronously because librdkafka 2.0.2 shortens a synchronous seek's
 * timeout 1000-fold (fixed in 2.1.0, #4230). Returns 0, or -1 with err
 * (e.g. the partition is not assigned to this consumer). */
int kafka_consumer_rewind(struct kafka_consumer *c, const char *topic, int32_t partition, int64_t offset, char *err,
                          size_t errlen);

/* The current assignment (rd_kafka_topic_partition_list_destroy() it), or
 * NULL when it cannot be read. */
rd_kafka_topic_partition_list_t *kafka_consumer_assignment(struct kafka_consumer *c);

/* The librdkafka handle (do not destroy it or poll it directly). */
rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c);

/* Commits the stored offsets, leaves the group (the revoke hook runs for
 * the last assignment) and destroys the consumer. A group in the middle of
 * a rebalance refuses commits (e.g. another member is leaving too), so the
 * commit is retried while the rebalance is served with our partitions
 * paused, for up to 15 s; the hooks may run meanwhile. Returns 0, or -1
 * when a commit or the close failed (logged; the consumer is destroyed
 * anyway, and the uncommitted events go to the next owner again). */
int kafka_consumer_close(struct kafka_consumer *c);

/* --- reader -------------------------------------------------------------------------- */

struct kafka_reader_options {
    const char *brokers;              /* required */
    const char *topic;                /* required */
    const struct kv_list *properties; /* extra librdkafka properties, or NULL */
    kafka_error_cb *on_error;         /* or NULL */
    void *ctx;                        /* passed to on_error */
    int metadata_timeout_ms;          /* 0: 10000; waiting for the partition count */
};

struct kafka_reader;

/* Looks up the topic's partitions and assigns them all at their beginning,
 * with no group subscription and auto commit off (group.id is set only
 * because librdkafka wants one; it is never joined or committed to).
 * Returns NULL with err when options are missing, a property is bad, or
 * the topic cannot be found in time. */
struct kafka_reader *kafka_reader_new(const struct kafka_reader_options *opt, char *err, size_t errlen);

/* The next message (destroy it with rd_kafka_message_destroy()), or NULL
 * when none came within timeout_ms. End-of-partition events are recorded,
 * not returned; consumer errors are logged and passed to on_error. One
 * thread polls a reader. */
rd_kafka_message_t *kafka_reader_poll(struct kafka_reader *r, int timeout_ms);

/* 1 once every partition has reported its end at least once: the reader
 * has read what the topic held when it got there. Any thread may ask. */
int kafka_reader_caught_up(const struct kafka_reader *r);

int kafka_reader_partition_count(const struct kafka_reader *r);

/* Closes and frees it (NULL is fine). */
void kafka_reader_close(struct kafka_reader *r);

/* --- fault injection, for the tests -------------------------------------------------- */

/* The environment variable kafka_producer_new and kafka_consumer_new read
 * (once per process) to arm faults; never set it in production. */
#define KAFKA_FAULTS_ENV "STAGEHAND_KAFKA_FAULTS"

/* Arms faults from spec, replacing those armed (NULL or "": none). spec is
 * a comma-separated list of OP:COUNT[:SKIP]: after SKIP calls of OP that
 * succeed normally, COUNT calls (-1: all) fail as if Kafka had refused them.
 * OP is pause, resume or rewind (the kafka_consumer_ calls, which then
 * return -1), produce@TOPIC (kafka_produce returns __TRANSPORT and produces
 * nothing) or deliver@TOPIC (the message is produced but its delivery
 * report says __MSG_TIMED_OUT, as when an acknowledgement is lost).
 * Returns 0, or -1 with err for a bad spec. Thread-safe; logged at warn. */
int kafka_faults_set(const char *spec, char *err, size_t errlen);

#endif
