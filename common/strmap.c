/* A string-keyed hash map with separate chaining (see strmap.h). */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_entry {
    char *key;
    void *value;
    uint64_t hash;
    struct strmap_entry *next;
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t size;
};

#define INITIAL_BUCKETS 16

/* FNV-1a, 64 bits. */
static uint64_t hash_of(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

struct strmap *strmap_new(void)
{
    struct strmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->buckets = calloc(INITIAL_BUCKETS, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    m->nbuckets = INITIAL_BUCKETS;
    return m;
}

static struct strmap_entry **slot_of(const struct strmap *m, const char *key, uint64_t hash)
{
    struct strmap_entry **slot = &m->buckets[hash & (m->nbuckets - 1)];
    while (*slot && ((*slot)->hash != hash || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct strmap_entry *e = *slot_of(m, key, hash_of(key));
    return e ? e->value : NULL;
}

/* Doubles the bucket array when the map is fuller than one entry per
 * bucket; stays as it is when memory is short (chains just get longer). */
static void grow(struct strmap *m)
{
    if (m->size < m->nbuckets)
        return;
    size_t n = m->nbuckets * 2;
    struct strmap_entry **buckets = calloc(n, sizeof *buckets);
    if (!buckets)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->nbuckets = n;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **old)
{
    uint64_t hash = hash_of(key);
    struct strmap_entry **slot = slot_of(m, key, hash);
    if (old)
        *old = *slot ? (*slot)->value : NULL;
    if (*slot) {
        (*slot)->value = value;
        return 0;
    }
    struct strmap_entry *e = malloc(sizeof *e);
    char *copy = strdup(key);
    if (!e || !copy) {
        free(e);
        free(copy);
        return -1;
    }
    *e = (struct strmap_entry){copy, value, hash, NULL};
    *slot = e;
    m->size++;
    grow(m);
    return 0;
}

void *strmap_remove(struct strmap *m, const char *key)
{
    struct strmap_entry **slot = slot_of(m, key, hash_of(key));
    struct strmap_entry *e = *slot;
    if (!e)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e->key);
    free(e);
    m->size--;
    return value;
}

size_t strmap_size(const struct strmap *m)
{
    return m->size;
}

int strmap_each(const struct strmap *m, int (*fn)(void *ctx, const char *key, void *value), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct strmap_entry *e = m->buckets[i]; e; e = e->next) {
            int rc = fn(ctx, e->key, e->value);
            if (rc)
                return rc;
        }
    return 0;
}

void strmap_free(struct strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}
