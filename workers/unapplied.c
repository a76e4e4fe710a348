/* The age of each partition's oldest unapplied event (see unapplied.h): a
 * small table of partitions, each with the timestamp of its oldest pending
 * event, of its newest done event, and the last time it was seen caught
 * up. */
#include "unapplied.h"

#include <stdlib.h>

struct entry {
    int32_t partition;
    int64_t pending_ts; /* the oldest event not done (-1: none) */
    int64_t done_ts;    /* the newest event done (-1: none) */
    int64_t clear_ms;   /* last seen not behind, or first seen (-1: not yet asked) */
};

struct unapplied {
    struct entry *entries;
    size_t n, cap;
};

struct unapplied *unapplied_new(void)
{
    return calloc(1, sizeof(struct unapplied));
}

void unapplied_free(struct unapplied *u)
{
    if (!u)
        return;
    free(u->entries);
    free(u);
}

static struct entry *find(struct unapplied *u, int32_t partition, int create)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->entries[i].partition == partition)
            return &u->entries[i];
    if (!create)
        return NULL;
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 8;
        struct entry *grown = realloc(u->entries, cap * sizeof *grown);
        if (!grown)
            return NULL;
        u->entries = grown;
        u->cap = cap;
    }
    struct entry *e = &u->entries[u->n++];
    *e = (struct entry){.partition = partition, .pending_ts = -1, .done_ts = -1, .clear_ms = -1};
    return e;
}

int unapplied_seen(struct unapplied *u, int32_t partition, int64_t ts_ms, int pending)
{
    struct entry *e = find(u, partition, 1);
    if (!e)
        return -1;
    if (pending) {
        if (e->pending_ts < 0 && ts_ms >= 0)
            e->pending_ts = ts_ms; /* later events fetched past the held one are younger */
        return 0;
    }
    e->pending_ts = -1;
    if (ts_ms > e->done_ts)
        e->done_ts = ts_ms;
    return 0;
}

void unapplied_forget(struct unapplied *u, int32_t partition, int64_t now_ms)
{
    struct entry *e = find(u, partition, 0);
    if (e)
        *e = (struct entry){.partition = partition, .pending_ts = -1, .done_ts = -1, .clear_ms = now_ms};
}

double unapplied_age(struct unapplied *u, int32_t partition, int behind, int64_t now_ms)
{
    struct entry *e = find(u, partition, 1);
    if (!e)
        return 0;
    if (e->clear_ms < 0)
        e->clear_ms = now_ms;
    int64_t since;
    if (e->pending_ts >= 0) {
        since = e->pending_ts;
    } else if (!behind) {
        e->clear_ms = now_ms;
        return 0;
    } else {
        since = e->done_ts > e->clear_ms ? e->done_ts : e->clear_ms;
    }
    return now_ms > since ? (double)(now_ms - since) / 1000.0 : 0;
}
