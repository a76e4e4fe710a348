/* The age of each partition's oldest unapplied event, a scaling signal
 * beside the consumer lag (issue 19, README "Operations"): how long the
 * oldest event of stagehand.events that this member must still handle has
 * been waiting, in seconds, from the events' Kafka timestamps alone (no
 * broker round trip, no fetch of its own).
 *
 * Per partition the worker reports what it fetches (unapplied_seen) and,
 * every few seconds, asks for the age (unapplied_age) given whether the
 * partition is behind (its position below the high watermark it has
 * cached). The age is
 *   - the exact age of the oldest event fetched and not done (held for a
 *     retry, or waiting for its DLQ record's acknowledgement);
 *   - else 0 when the partition is not behind;
 *   - else an upper bound on the age of the next event: it was produced
 *     after the newest event done, and after the last time the partition
 *     was seen not behind (or first seen here), so its age is at most now
 *     minus the later of the two. While a partition is rebuilt after an
 *     assignment (old events re-read, folded) this is the time since
 *     assignment: the partition applied nothing new for that long.
 * Plain data, no locking: the worker's poll thread owns it. */
#ifndef STAGEHAND_UNAPPLIED_H
#define STAGEHAND_UNAPPLIED_H

#include <stddef.h>
#include <stdint.h>

struct unapplied;

/* NULL when out of memory. */
struct unapplied *unapplied_new(void);
void unapplied_free(struct unapplied *u);

/* An event of partition was fetched and handled as far as it goes: ts_ms is
 * its Kafka timestamp (< 0: none), pending 1 when it (or an earlier event
 * of the partition) is not done yet. Returns 0, or -1 when out of memory
 * (the partition is then not tracked; its age reads 0). */
int unapplied_seen(struct unapplied *u, int32_t partition, int64_t ts_ms, int pending);

/* The partition left this member (revoked, or assigned again): what was
 * known of it is forgotten, as of now_ms. */
void unapplied_forget(struct unapplied *u, int32_t partition, int64_t now_ms);

/* Age in seconds at now_ms (wall clock, ms) of the partition's oldest
 * unapplied event (see above); behind is 1 when its position is below the
 * high watermark. Never negative. */
double unapplied_age(struct unapplied *u, int32_t partition, int behind, int64_t now_ms);

#endif
