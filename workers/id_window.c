/* The ring of recent event ids (see id_window.h). */
#include "id_window.h"

#include <string.h>

void id_window_clear(struct id_window *w)
{
    memset(w, 0, sizeof *w);
}

static uint64_t head_of(const char *id)
{
    uint64_t head;
    memcpy(&head, id, sizeof head);
    return head;
}

void id_window_add(struct id_window *w, const char *id)
{
    unsigned slot = w->next % ID_WINDOW_SIZE;
    memcpy(w->ids[slot], id, EVENT_ID_LEN);
    w->ids[slot][EVENT_ID_LEN] = '\0';
    w->heads[slot] = head_of(w->ids[slot]);
    w->next = slot + 1;
}

int id_window_has(const struct id_window *w, const char *id)
{
    uint64_t head = head_of(id);
    int any = 0;
    for (unsigned i = 0; i < ID_WINDOW_SIZE; i++) /* no early exit: the compiler compares several at once */
        any |= w->heads[i] == head;
    if (!any)
        return 0;
    for (unsigned i = 0; i < ID_WINDOW_SIZE; i++)
        if (w->heads[i] == head && memcmp(w->ids[i], id, EVENT_ID_LEN + 1) == 0)
            return 1;
    return 0;
}

const char *id_window_at(const struct id_window *w, unsigned i)
{
    return w->ids[(w->next + i) % ID_WINDOW_SIZE];
}
