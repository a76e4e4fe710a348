/* state_loader.h - reads a worker's records and checkpoints from
 * stagehand.state on a thread of its own.
 *
 * When a worker is given partitions, what it knew of their streams is on the
 * compacted state topic, and reading all of it takes a while (seconds for a
 * large topic). Read in the poll loop, that time would stop the partitions
 * the member already had. A loader reads on its own thread instead, while
 * the poll loop goes on with those; the new partitions stay paused until the
 * loader is done and the poll loop has put what it read in place.
 *
 * What a loader keeps, for the role and partitions it was given: the latest
 * record of each "<stream>/<role>" key (a null record removes the key, as
 * compaction would), parsed, and the checkpoint chunks of each partition. It
 * touches nothing of the worker's. */
#ifndef STAGEHAND_STATE_LOADER_H
#define STAGEHAND_STATE_LOADER_H

#include <jansson.h>
#include <stdint.h>

#include "snapshot.h"

struct state_loader;

/* Starts reading topic on brokers for role's records of the n partitions.
 * With checkpoints set, their chunks are gathered too. NULL when the thread
 * could not start (out of memory); then err says why. */
struct state_loader *state_loader_start(const char *brokers, const char *topic, const char *role,
                                        const int32_t *partitions, int n, int checkpoints, long catch_up_ms, char *err,
                                        size_t errlen);

/* 1 once the loader has finished reading (caught up, timed out or failed);
 * never blocks. */
int state_loader_done(struct state_loader *l);

/* Calls fn for each record kept (the latest of its key), in no set order;
 * only once done. */
void state_loader_each_record(const struct state_loader *l, void (*fn)(void *ctx, json_t *record), void *ctx);

/* The checkpoint chunks gathered for partition, or NULL (not one of the
 * loader's, or checkpoints were not asked for); only once done. */
struct snapshot_parts *state_loader_parts(struct state_loader *l, int32_t partition);

/* The loader's partitions, and how many. */
const int32_t *state_loader_partitions(const struct state_loader *l, int *n);

/* 0 when the topic was read to its end; -1 when it could not be read or
 * timed out (what was read is kept); why says which. Only once done. */
int state_loader_status(const struct state_loader *l, const char **why);

/* Asks the thread to stop (if it still reads), joins it, frees everything. */
void state_loader_free(struct state_loader *l);

#endif
