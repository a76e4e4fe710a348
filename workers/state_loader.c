/* state_loader.c - reads a worker's records and checkpoints from
 * stagehand.state on a thread of its own (see state_loader.h). */
#include "state_loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "strmap.h"
#include "timeutil.h"

#define POLL_MS 100

struct state_loader {
    pthread_t thread;
    atomic_int done;
    atomic_int cancel;
    char *brokers, *topic, *role;
    int32_t *partitions;
    struct snapshot_parts *parts; /* per partition, or NULL */
    int n;
    long catch_up_ms;
    struct strmap *records; /* key -> json_t * (the latest record) */
    int status;
    char why[256];
};

static int index_of(const struct state_loader *l, int32_t partition)
{
    for (int i = 0; i < l->n; i++)
        if (l->partitions[i] == partition)
            return i;
    return -1;
}

static void take_checkpoint_record(struct state_loader *l, const rd_kafka_message_t *msg)
{
    int32_t partition;
    long chunk;
    if (!l->parts || !snapshot_parse_key(msg->key, msg->key_len, l->role, &partition, &chunk))
        return;
    int i = index_of(l, partition);
    if (i >= 0)
        snapshot_parts_offer(&l->parts[i], chunk, msg->payload, msg->len); /* a malformed one counts as removed */
}

/* A "<stream>/<role>" record: kept when it is the role's, of one of the
 * partitions; a null record removes what the key held. */
static void take_record(struct state_loader *l, const rd_kafka_message_t *msg)
{
    char *key = strndup(msg->key, msg->key_len);
    if (!key)
        return;
    void *old = NULL;
    if (!msg->payload) {
        old = strmap_remove(l->records, key);
    } else {
        json_t *record = json_loadb(msg->payload, msg->len, 0, NULL);
        const char *role = json_string_value(json_object_get(record, "role"));
        json_t *partition = json_object_get(record, "partition");
        if (role && strcmp(role, l->role) == 0 && json_is_integer(partition) &&
            index_of(l, (int32_t)json_integer_value(partition)) >= 0 && strmap_put(l->records, key, record, &old) == 0)
            record = NULL; /* kept */
        json_decref(record);
    }
    json_decref(old);
    free(key);
}

static void *run(void *arg)
{
    struct state_loader *l = arg;
    char err[256];
    struct kafka_reader_options opt = {.brokers = l->brokers, .topic = l->topic};
    struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
    if (!r) {
        l->status = -1;
        snprintf(l->why, sizeof l->why, "%s", err);
        atomic_store(&l->done, 1);
        return NULL;
    }
    int64_t until = time_monotonic_ms() + l->catch_up_ms;
    while (!kafka_reader_caught_up(r) && !atomic_load(&l->cancel) && time_monotonic_ms() < until) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, POLL_MS);
        if (!msg)
            continue;
        if (msg->key && snapshot_is_key(msg->key, msg->key_len))
            take_checkpoint_record(l, msg);
        else if (msg->key)
            take_record(l, msg);
        rd_kafka_message_destroy(msg);
    }
    if (!kafka_reader_caught_up(r)) {
        l->status = -1;
        snprintf(l->why, sizeof l->why, "%s", atomic_load(&l->cancel) ? "cancelled" : "not caught up in time");
    }
    kafka_reader_close(r);
    atomic_store(&l->done, 1);
    return NULL;
}

static void free_fields(struct state_loader *l)
{
    if (l->parts)
        for (int i = 0; i < l->n; i++)
            snapshot_parts_free(&l->parts[i]);
    if (l->records) {
        state_loader_each_record(l, NULL, NULL); /* each record's reference */
        strmap_free(l->records);
    }
    free(l->parts);
    free(l->partitions);
    free(l->brokers);
    free(l->topic);
    free(l->role);
    free(l);
}

struct state_loader *state_loader_start(const char *brokers, const char *topic, const char *role,
                                        const int32_t *partitions, int n, int checkpoints, long catch_up_ms, char *err,
                                        size_t errlen)
{
    struct state_loader *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->n = n;
    l->catch_up_ms = catch_up_ms;
    l->brokers = strdup(brokers);
    l->topic = strdup(topic);
    l->role = strdup(role);
    l->partitions = n > 0 ? calloc((size_t)n, sizeof *l->partitions) : NULL;
    l->records = strmap_new();
    if (checkpoints && n > 0 && (l->parts = calloc((size_t)n, sizeof *l->parts)))
        for (int i = 0; i < n; i++)
            snapshot_parts_init(&l->parts[i]);
    if (!l->brokers || !l->topic || !l->role || (n > 0 && !l->partitions) || !l->records ||
        (checkpoints && n > 0 && !l->parts)) {
        free_fields(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (n > 0)
        memcpy(l->partitions, partitions, (size_t)n * sizeof *partitions);
    int e = pthread_create(&l->thread, NULL, run, l);
    if (e != 0) {
        free_fields(l);
        snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
        return NULL;
    }
    return l;
}

int state_loader_done(struct state_loader *l)
{
    return atomic_load(&l->done);
}

struct each_ctx {
    void (*fn)(void *ctx, json_t *record);
    void *ctx;
};

static int each_record(void *arg, const char *key, void *value)
{
    (void)key;
    struct each_ctx *e = arg;
    if (e->fn)
        e->fn(e->ctx, value);
    else
        json_decref(value); /* freeing */
    return 0;
}

void state_loader_each_record(const struct state_loader *l, void (*fn)(void *ctx, json_t *record), void *ctx)
{
    struct each_ctx e = {fn, ctx};
    strmap_each(l->records, each_record, &e);
}

struct snapshot_parts *state_loader_parts(struct state_loader *l, int32_t partition)
{
    int i = index_of(l, partition);
    return i >= 0 && l->parts ? &l->parts[i] : NULL;
}

const int32_t *state_loader_partitions(const struct state_loader *l, int *n)
{
    *n = l->n;
    return l->partitions;
}

int state_loader_status(const struct state_loader *l, const char **why)
{
    *why = l->why;
    return l->status;
}

void state_loader_free(struct state_loader *l)
{
    if (!l)
        return;
    atomic_store(&l->cancel, 1);
    pthread_join(l->thread, NULL);
    free_fields(l);
}
