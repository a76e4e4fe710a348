/* The ids of the last events handled for one stream: a ring that answers
 * "was this event one of them?" for every event a worker reads.
 *
 * The ring is indexed by a small hash table (separate chaining by slot
 * number), so a lookup compares about one id instead of all of them. An
 * id leaves the index when the ring overwrites its slot. */
#ifndef STAGEHAND_ID_WINDOW_H
#define STAGEHAND_ID_WINDOW_H

#include <stdint.h>

#include "event.h"

#define ID_WINDOW_SIZE 64     /* ids kept; at most 255 (slots are numbered in a byte) */
#define ID_WINDOW_BUCKETS 128 /* a power of two */

struct id_window {
    char ids[ID_WINDOW_SIZE][EVENT_ID_LEN + 1]; /* "" for an empty slot */
    uint8_t bucket[ID_WINDOW_BUCKETS];          /* 1 + the slot of an id in this bucket; 0: none */
    uint8_t chain[ID_WINDOW_SIZE];              /* 1 + the slot of the next id in the same bucket; 0: none */
    unsigned next;                              /* where the next id goes (the oldest, once full) */
};

/* Empties the window. */
void id_window_clear(struct id_window *w);

/* Adds an id (EVENT_ID_LEN characters), in place of the oldest when full. */
void id_window_add(struct id_window *w, const char *id);

/* 1 when id (EVENT_ID_LEN characters) is in the window. */
int id_window_has(const struct id_window *w, const char *id);

/* The i-th id, oldest first (0 <= i < ID_WINDOW_SIZE): "" for an empty
 * slot. */
const char *id_window_at(const struct id_window *w, unsigned i);

#endif
