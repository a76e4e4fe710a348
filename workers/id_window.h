/* The ids of the last events handled for one stream: a ring that answers
 * "was this event one of them?" for every event a worker reads.
 *
 * Ids are 32 hex digits, random or hashed, so their first eight bytes
 * tell nearly all of them apart. Those eight bytes are kept apart in one
 * array and compared in one pass without a branch per slot; the whole id
 * is compared only where they agree. An empty slot holds "" (head 0),
 * which no id matches. */
#ifndef STAGEHAND_ID_WINDOW_H
#define STAGEHAND_ID_WINDOW_H

#include <stdint.h>

#include "event.h"

#define ID_WINDOW_SIZE 64

struct id_window {
    uint64_t heads[ID_WINDOW_SIZE]; /* the first eight bytes of ids[i] */
    char ids[ID_WINDOW_SIZE][EVENT_ID_LEN + 1];
    unsigned next; /* where the next id goes; the oldest is there too once full */
};

/* Empties the window. */
void id_window_clear(struct id_window *w);

/* Adds an id (EVENT_ID_LEN characters), in place of the oldest when full. */
void id_window_add(struct id_window *w, const char *id);

/* 1 when id is in the window. */
int id_window_has(const struct id_window *w, const char *id);

/* The i-th id, oldest first (0 <= i < ID_WINDOW_SIZE): "" for an empty
 * slot. */
const char *id_window_at(const struct id_window *w, unsigned i);

#endif
