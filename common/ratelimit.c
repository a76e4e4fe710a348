/* Striped per-key token buckets (see ratelimit.h). Each stripe is a small
 * chained hash table plus a least-recently-used list of its entries. Keys
 * are hashed with SipHash-2-4 under a random key of the table's own: the
 * top bits of a hash pick the stripe and the low bits the slot, so every
 * slot of every stripe can be used, and a client cannot aim its keys. */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "random.h"
#include "siphash.h"

#define STRIPES 16
#define STRIPE_SHIFT 60 /* the hash's top 4 bits: 16 stripes */

struct bucket {
    char *key;
    uint64_t hash;
    double tokens;
    int64_t updated_ms;
    struct bucket *chain;         /* next in the hash chain */
    struct bucket *newer, *older; /* the stripe's use order */
};

struct stripe {
    pthread_mutex_t lock;
    struct bucket **table;
    size_t nslots;
    size_t count;
    struct bucket *newest, *oldest;
};

struct ratelimit {
    unsigned char hash_key[SIPHASH_KEY_BYTES];
    double rate_per_s;
    double burst;
    size_t per_stripe; /* most keys in one stripe */
    struct stripe stripes[STRIPES];
};

static uint64_t hash_of(const struct ratelimit *rl, const char *key)
{
    return siphash24(rl->hash_key, key, strlen(key));
}

struct ratelimit *ratelimit_new(double rate_per_s, double burst, size_t max_keys)
{
    if (rate_per_s > 0 && !(burst >= 1))
        return NULL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    if (random_bytes(rl->hash_key, sizeof rl->hash_key) < 0) {
        free(rl);
        return NULL;
    }
    rl->rate_per_s = rate_per_s;
    rl->burst = burst;
    rl->per_stripe = max_keys / STRIPES + (max_keys % STRIPES != 0);
    if (rl->per_stripe == 0)
        rl->per_stripe = 1;
    size_t slots = 16;
    while (slots < rl->per_stripe)
        slots *= 2;
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nslots = rate_per_s > 0 ? slots : 0;
        s->table = s->nslots ? calloc(s->nslots, sizeof *s->table) : NULL;
        if (s->nslots && !s->table) {
            ratelimit_free(rl);
            return NULL;
        }
    }
    return rl;
}

static void use_order_unlink(struct stripe *s, struct bucket *b)
{
    if (b->newer)
        b->newer->older = b->older;
    else
        s->newest = b->older;
    if (b->older)
        b->older->newer = b->newer;
    else
        s->oldest = b->newer;
    b->newer = b->older = NULL;
}

static void use_order_push(struct stripe *s, struct bucket *b)
{
    b->older = s->newest;
    b->newer = NULL;
    if (s->newest)
        s->newest->newer = b;
    s->newest = b;
    if (!s->oldest)
        s->oldest = b;
}

static void remove_bucket(struct stripe *s, struct bucket *b)
{
    struct bucket **slot = &s->table[b->hash & (s->nslots - 1)];
    while (*slot != b)
        slot = &(*slot)->chain;
    *slot = b->chain;
    use_order_unlink(s, b);
    s->count--;
    free(b->key);
    free(b);
}

/* Makes room for one more key: drops the entries that are full again,
 * oldest first, else the least recently used one. */
static void make_room(struct ratelimit *rl, struct stripe *s, int64_t now_ms)
{
    double full_after_ms = rl->burst / rl->rate_per_s * 1000.0;
    while (s->oldest && (double)(now_ms - s->oldest->updated_ms) >= full_after_ms)
        remove_bucket(s, s->oldest);
    if (s->count >= rl->per_stripe && s->oldest)
        remove_bucket(s, s->oldest);
}

long ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms)
{
    return ratelimit_take_keeping(rl, key, now_ms, 0.0);
}

long ratelimit_take_keeping(struct ratelimit *rl, const char *key, int64_t now_ms, double keep)
{
    if (rl->rate_per_s <= 0)
        return 0;
    uint64_t hash = hash_of(rl, key);
    struct stripe *s = &rl->stripes[hash >> STRIPE_SHIFT];
    long wait_ms = 0;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = s->table[hash & (s->nslots - 1)];
    while (b && (b->hash != hash || strcmp(b->key, key) != 0))
        b = b->chain;
    if (b) {
        double elapsed_ms = (double)(now_ms - b->updated_ms);
        if (elapsed_ms > 0)
            b->tokens = fmin(rl->burst, b->tokens + elapsed_ms * rl->rate_per_s / 1000.0);
        if (now_ms > b->updated_ms)
            b->updated_ms = now_ms;
        use_order_unlink(s, b);
        use_order_push(s, b);
    } else {
        if (s->count >= rl->per_stripe)
            make_room(rl, s, now_ms);
        b = calloc(1, sizeof *b);
        char *copy = strdup(key);
        if (!b || !copy) {
            /* Out of memory: let the request through rather than fail it. */
            free(b);
            free(copy);
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        b->key = copy;
        b->hash = hash;
        b->tokens = rl->burst;
        b->updated_ms = now_ms;
        struct bucket **slot = &s->table[hash & (s->nslots - 1)];
        b->chain = *slot;
        *slot = b;
        use_order_push(s, b);
        s->count++;
    }
    double need = 1.0 + (keep > 0 ? fmin(keep, rl->burst - 1.0) : 0.0);
    if (b->tokens >= need) {
        b->tokens -= 1.0;
    } else {
        wait_ms = (long)ceil((need - b->tokens) * 1000.0 / rl->rate_per_s);
        if (wait_ms < 1)
            wait_ms = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return wait_ms;
}

size_t ratelimit_size(struct ratelimit *rl)
{
    size_t n = 0;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].lock);
        n += rl->stripes[i].count;
        pthread_mutex_unlock(&rl->stripes[i].lock);
    }
    return n;
}

void ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        pthread_mutex_lock(&s->lock);
        out->keys += s->count;
        out->slots += s->nslots;
        for (size_t j = 0; j < s->nslots; j++) {
            size_t chain = 0;
            for (struct bucket *b = s->table[j]; b; b = b->chain)
                chain++;
            if (chain > 0)
                out->slots_used++;
            if (chain > out->longest_chain)
                out->longest_chain = chain;
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        while (s->oldest)
            remove_bucket(s, s->oldest);
        free(s->table);
        pthread_mutex_destroy(&s->lock);
    }
    free(rl);
}
