/* A hash map from strings (copied) to pointers (borrowed), growing as it
 * fills. Not thread-safe: callers lock. Used for the ingress's state view
 * (stream name -> stream, SID -> stream) and the workers' folds. */
#ifndef STAGEHAND_STRMAP_H
#define STAGEHAND_STRMAP_H

#include <stddef.h>

struct strmap;

/* A new empty map, or NULL when out of memory. */
struct strmap *strmap_new(void);

/* The value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Stores value under key, replacing (and returning in *old, when old is not
 * NULL) any earlier value. Returns 0, or -1 when out of memory (nothing
 * changed). */
int strmap_put(struct strmap *m, const char *key, void *value, void **old);

/* Removes key; returns its value, or NULL when it was not there. */
void *strmap_remove(struct strmap *m, const char *key);

size_t strmap_size(const struct strmap *m);

/* Calls fn for every entry, in no particular order; fn must not change the
 * map. Stops early when fn returns non-zero, and returns that value. */
int strmap_each(const struct strmap *m, int (*fn)(void *ctx, const char *key, void *value), void *ctx);

/* Frees the map and its keys (not the values). */
void strmap_free(struct strmap *m);

#endif
