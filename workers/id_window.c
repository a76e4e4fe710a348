/* The ring of recent event ids and its hash index (see id_window.h). */
#include "id_window.h"

#include <string.h>

_Static_assert(ID_WINDOW_SIZE <= 255, "slots are numbered 1..255 in a byte");
_Static_assert((ID_WINDOW_BUCKETS & (ID_WINDOW_BUCKETS - 1)) == 0, "buckets: a power of two");

void id_window_clear(struct id_window *w)
{
    memset(w, 0, sizeof *w);
}

/* Ids are random or hashed hex digits: their first eight bytes, mixed by
 * a multiplication, spread them over the buckets. */
static unsigned bucket_of(const char *id)
{
    uint64_t head;
    memcpy(&head, id, sizeof head);
    return (unsigned)((head * 0x9e3779b97f4a7c15ull) >> 32) & (ID_WINDOW_BUCKETS - 1);
}

/* Takes the id in slot out of the index. */
static void unlink_slot(struct id_window *w, unsigned slot)
{
    uint8_t *link = &w->bucket[bucket_of(w->ids[slot])];
    while (*link && *link != slot + 1)
        link = &w->chain[*link - 1];
    if (*link)
        *link = w->chain[slot];
}

void id_window_add(struct id_window *w, const char *id)
{
    unsigned slot = w->next % ID_WINDOW_SIZE;
    if (w->ids[slot][0])
        unlink_slot(w, slot);
    memcpy(w->ids[slot], id, EVENT_ID_LEN);
    w->ids[slot][EVENT_ID_LEN] = '\0';
    unsigned b = bucket_of(w->ids[slot]);
    w->chain[slot] = w->bucket[b];
    w->bucket[b] = (uint8_t)(slot + 1);
    w->next = slot + 1;
}

int id_window_has(const struct id_window *w, const char *id)
{
    for (unsigned k = w->bucket[bucket_of(id)]; k; k = w->chain[k - 1])
        if (memcmp(w->ids[k - 1], id, EVENT_ID_LEN + 1) == 0)
            return 1;
    return 0;
}

const char *id_window_at(const struct id_window *w, unsigned i)
{
    return w->ids[(w->next + i) % ID_WINDOW_SIZE];
}
