/* Parsing fetched events on a second thread (see parse_ahead.h). */
#include "parse_ahead.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum batch_state {
    BATCH_FREE,    /* in the ring, to be filled */
    BATCH_FILLING, /* given out by parse_ahead_slot */
    BATCH_QUEUED,  /* submitted, for the poll loop to parse */
    BATCH_OFFERED, /* submitted, for whichever thread gets to it first */
    BATCH_PARSING, /* being parsed (by either thread) */
    BATCH_PARSED,  /* submitted and parsed */
    BATCH_TAKEN,   /* given out by parse_ahead_take */
    BATCH_SPENT,   /* released; the helper parsed it and is to free it */
    BATCH_FREEING  /* the helper is freeing it */
};

struct parse_ahead {
    pthread_mutex_t lock;
    pthread_cond_t work;   /* a batch was offered, or stop */
    pthread_cond_t parsed; /* the helper finished a batch */
    pthread_t helper;
    int has_helper;
    int stop;
    void (*destroy)(rd_kafka_message_t *msg);
    struct parse_batch batches[PARSE_AHEAD_BATCHES];
    enum batch_state state[PARSE_AHEAD_BATCHES];
    int helper_parsed[PARSE_AHEAD_BATCHES]; /* it frees the batch too */
    /* Submitted batches, oldest first: order[(first + i) % N], i < pending. */
    int order[PARSE_AHEAD_BATCHES];
    int first, pending;
};

static void parse_batch(struct parse_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct parsed_event *it = &b->items[i];
        it->parsed = event_parse(it->msg->payload, it->msg->len, &it->ev, it->err, sizeof it->err) == 0;
    }
}

/* Frees the events of a parsed batch and, with destroy set, its
 * messages; the batch is empty afterwards. */
static void free_batch(struct parse_batch *b, int parsed, void (*destroy)(rd_kafka_message_t *msg))
{
    for (size_t i = 0; i < b->n; i++) {
        if (parsed && b->items[i].parsed)
            event_free(&b->items[i].ev);
        if (destroy)
            destroy(b->items[i].msg);
    }
    b->n = 0;
}

/* The oldest submitted batch in state s, or -1; with newest set, the newest
 * one. Under the lock. */
static int find_submitted(const struct parse_ahead *pa, enum batch_state s, int newest)
{
    for (int i = 0; i < pa->pending; i++) {
        int at = newest ? pa->pending - 1 - i : i;
        int id = pa->order[(pa->first + at) % PARSE_AHEAD_BATCHES];
        if (pa->state[id] == s)
            return id;
    }
    return -1;
}

/* Parses batch id, which the caller has just marked BATCH_PARSING, with the
 * lock released meanwhile; back under the lock, it is BATCH_PARSED. */
static void parse_unlocked(struct parse_ahead *pa, int id, int by_helper)
{
    pa->helper_parsed[id] = by_helper;
    pthread_mutex_unlock(&pa->lock);
    parse_batch(&pa->batches[id]);
    pthread_mutex_lock(&pa->lock);
    pa->state[id] = BATCH_PARSED;
}

/* The first batch in state s, or -1. Under the lock. */
static int find_state(const struct parse_ahead *pa, enum batch_state s)
{
    for (int i = 0; i < PARSE_AHEAD_BATCHES; i++)
        if (pa->state[i] == s)
            return i;
    return -1;
}

static void *helper_main(void *arg)
{
    struct parse_ahead *pa = arg;
    pthread_mutex_lock(&pa->lock);
    for (;;) {
        int spent = find_state(pa, BATCH_SPENT);
        if (spent >= 0) {
            pa->state[spent] = BATCH_FREEING;
            pthread_mutex_unlock(&pa->lock);
            free_batch(&pa->batches[spent], 1, pa->destroy);
            pthread_mutex_lock(&pa->lock);
            pa->state[spent] = BATCH_FREE;
            continue;
        }
        int id = find_submitted(pa, BATCH_OFFERED, 0);
        if (id < 0) {
            if (pa->stop)
                break;
            pthread_cond_wait(&pa->work, &pa->lock);
            continue;
        }
        pa->state[id] = BATCH_PARSING;
        parse_unlocked(pa, id, 1);
        pthread_cond_signal(&pa->parsed);
    }
    pthread_mutex_unlock(&pa->lock);
    return NULL;
}

struct parse_ahead *parse_ahead_new(int helper, void (*destroy)(rd_kafka_message_t *msg), char *err, size_t errlen)
{
    struct parse_ahead *pa = calloc(1, sizeof *pa);
    if (!pa) {
        snprintf(err, errlen, "out of memory for the parse-ahead ring");
        return NULL;
    }
    pthread_mutex_init(&pa->lock, NULL);
    pthread_cond_init(&pa->work, NULL);
    pthread_cond_init(&pa->parsed, NULL);
    pa->destroy = destroy;
    for (int i = 0; i < PARSE_AHEAD_BATCHES; i++)
        pa->state[i] = BATCH_FREE;
    if (helper) {
        if (pthread_create(&pa->helper, NULL, helper_main, pa) != 0) {
            snprintf(err, errlen, "cannot start the parse-ahead thread");
            parse_ahead_free(pa);
            return NULL;
        }
        pa->has_helper = 1;
        pthread_setname_np(pa->helper, "parse-ahead"); /* for top -H and the bench; only a name */
    }
    return pa;
}

void parse_ahead_free(struct parse_ahead *pa)
{
    if (!pa)
        return;
    if (pa->has_helper) {
        pthread_mutex_lock(&pa->lock);
        pa->stop = 1;
        /* Offered batches are not parsed any more: the helper stops at once. */
        for (int i = 0; i < PARSE_AHEAD_BATCHES; i++)
            if (pa->state[i] == BATCH_OFFERED)
                pa->state[i] = BATCH_QUEUED;
        pthread_cond_signal(&pa->work);
        pthread_mutex_unlock(&pa->lock);
        pthread_join(pa->helper, NULL);
    }
    /* The helper is gone: no batch is being parsed or freed. */
    for (int i = 0; i < PARSE_AHEAD_BATCHES; i++) {
        enum batch_state s = pa->state[i];
        free_batch(&pa->batches[i], s == BATCH_PARSED || s == BATCH_TAKEN || s == BATCH_SPENT, pa->destroy);
    }
    pthread_cond_destroy(&pa->parsed);
    pthread_cond_destroy(&pa->work);
    pthread_mutex_destroy(&pa->lock);
    free(pa);
}

int parse_ahead_pending(const struct parse_ahead *pa)
{
    /* Only the poll loop submits and takes: it reads its own writes. */
    return pa->pending;
}

struct parse_batch *parse_ahead_slot(struct parse_ahead *pa)
{
    pthread_mutex_lock(&pa->lock);
    int id = find_state(pa, BATCH_FREE);
    if (id < 0 && (id = find_state(pa, BATCH_SPENT)) >= 0) {
        /* The helper has not freed it yet: rather than wait, free it here. */
        pa->state[id] = BATCH_FILLING;
        pthread_mutex_unlock(&pa->lock);
        free_batch(&pa->batches[id], 1, pa->destroy);
        pthread_mutex_lock(&pa->lock);
    }
    if (id >= 0) {
        pa->state[id] = BATCH_FILLING;
        pa->batches[id].n = 0;
    }
    pthread_mutex_unlock(&pa->lock);
    return id >= 0 ? &pa->batches[id] : NULL;
}

void parse_ahead_submit(struct parse_ahead *pa, struct parse_batch *b, int offer)
{
    int id = (int)(b - pa->batches);
    pthread_mutex_lock(&pa->lock);
    if (b->n == 0) {
        pa->state[id] = BATCH_FREE;
    } else {
        pa->state[id] = offer && pa->has_helper ? BATCH_OFFERED : BATCH_QUEUED;
        pa->order[(pa->first + pa->pending) % PARSE_AHEAD_BATCHES] = id;
        pa->pending++;
        if (pa->state[id] == BATCH_OFFERED)
            pthread_cond_signal(&pa->work);
    }
    pthread_mutex_unlock(&pa->lock);
}

struct parse_batch *parse_ahead_take(struct parse_ahead *pa)
{
    pthread_mutex_lock(&pa->lock);
    if (pa->pending == 0) {
        pthread_mutex_unlock(&pa->lock);
        return NULL;
    }
    int id = pa->order[pa->first];
    for (;;) {
        if (pa->state[id] == BATCH_QUEUED || pa->state[id] == BATCH_OFFERED) {
            pa->state[id] = BATCH_PARSING;
            parse_unlocked(pa, id, 0);
        } else if (pa->state[id] == BATCH_PARSED) {
            break;
        } else {
            /* The helper is parsing it: parse the newest offered batch
             * meanwhile (the helper takes the oldest), else wait. */
            int other = find_submitted(pa, BATCH_OFFERED, 1);
            if (other >= 0) {
                pa->state[other] = BATCH_PARSING;
                parse_unlocked(pa, other, 0);
            } else {
                pthread_cond_wait(&pa->parsed, &pa->lock);
            }
        }
    }
    pa->state[id] = BATCH_TAKEN;
    pa->first = (pa->first + 1) % PARSE_AHEAD_BATCHES;
    pa->pending--;
    pthread_mutex_unlock(&pa->lock);
    return &pa->batches[id];
}

void parse_ahead_release(struct parse_ahead *pa, struct parse_batch *b)
{
    int id = (int)(b - pa->batches);
    pthread_mutex_lock(&pa->lock);
    if (pa->helper_parsed[id]) {
        /* The helper is not woken for it (a wake-up per batch preempted
         * the poll loop): it frees it before it parses its next batch, or
         * parse_ahead_slot does when the ring needs it first. */
        pa->state[id] = BATCH_SPENT;
        pthread_mutex_unlock(&pa->lock);
        return;
    }
    pthread_mutex_unlock(&pa->lock);
    free_batch(b, 1, pa->destroy);
    pthread_mutex_lock(&pa->lock);
    pa->state[id] = BATCH_FREE;
    pthread_mutex_unlock(&pa->lock);
}
