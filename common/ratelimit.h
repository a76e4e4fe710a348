/* Per-key token buckets (keys: client IP addresses, user identities) for
 * the ingress, safe to use from many threads at once.
 *
 * Each key's bucket refills at rate_per_s tokens per second up to burst
 * tokens; a new key starts full. The table is split into stripes, each with
 * its own mutex and its share of max_keys. When a stripe is full and a new
 * key arrives, entries idle long enough to be full again are dropped first
 * (they carry no information), else the least recently used entry of the
 * stripe is evicted: a new key is never refused because the table is full,
 * and the table never holds more than max_keys keys (rounded up to a
 * multiple of the stripe count). Time is given by the caller (a monotonic
 * clock in milliseconds), so tests control it.
 *
 * Keys are hashed with SipHash-2-4 under a random key drawn for each table
 * (common/random), and the whole table is used: a client that picks its
 * keys (identities, IPv6 addresses) cannot tell which of them collide. */
#ifndef STAGEHAND_RATELIMIT_H
#define STAGEHAND_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* rate_per_s <= 0 means unlimited: ratelimit_take always allows and stores
 * nothing. NULL when out of memory, when the random generator fails, or
 * when burst < 1 with a positive rate. */
struct ratelimit *ratelimit_new(double rate_per_s, double burst, size_t max_keys);

/* Takes one token from key's bucket at now_ms. Returns 0 when allowed;
 * otherwise the milliseconds until a token will be there (>= 1), for a
 * Retry-After header. */
long ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms);

/* Like ratelimit_take, but takes the token only when at least keep tokens
 * stay in the bucket afterwards: a lower-priority user of a budget leaves
 * that headroom to others. Returns 0, or the milliseconds until it could
 * take one. */
long ratelimit_take_keeping(struct ratelimit *rl, const char *key, int64_t now_ms, double keep);

/* Keys currently tracked. */
size_t ratelimit_size(struct ratelimit *rl);

/* How the table is filled, for tests and diagnostics (takes every lock). */
struct ratelimit_stats {
    size_t keys;
    size_t slots;      /* hash slots, all stripes */
    size_t slots_used; /* slots holding at least one key */
    size_t longest_chain;
};
void ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *out);

void ratelimit_free(struct ratelimit *rl);

#endif
