/* The users of one stream, by identity (see users.h). Open addressing
 * with linear probing over two parallel arrays (the users and their
 * hashes); the table doubles when it would be more than three quarters
 * full and never shrinks. A removal shifts the entries after it back, so
 * no slot is ever marked deleted. */
#include "users.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_SLOTS 64

/* FNV-1a, 32 bits. */
static uint32_t hash_of(const char *s)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

/* The slot holding identity, or else the free slot where it would go. */
static size_t slot_of(const struct users *t, const char *identity, uint32_t hash)
{
    size_t mask = t->nslots - 1, i = hash & mask;
    while (t->slots[i] && (t->hashes[i] != hash || strcmp(t->slots[i]->name, identity) != 0))
        i = (i + 1) & mask;
    return i;
}

struct user *users_find(const struct users *t, const char *identity)
{
    if (t->nslots == 0)
        return NULL;
    return t->slots[slot_of(t, identity, hash_of(identity))];
}

/* Moves every user into a table of n slots. -1 when out of memory (t is
 * left as it was). */
static int rehash(struct users *t, size_t n)
{
    struct user **slots = calloc(n, sizeof *slots);
    uint32_t *hashes = malloc(n * sizeof *hashes);
    if (!slots || !hashes) {
        free(slots);
        free(hashes);
        return -1;
    }
    for (size_t i = 0; i < t->nslots; i++) {
        if (!t->slots[i])
            continue;
        size_t j = t->hashes[i] & (n - 1);
        while (slots[j])
            j = (j + 1) & (n - 1);
        slots[j] = t->slots[i];
        hashes[j] = t->hashes[i];
    }
    free(t->slots);
    free(t->hashes);
    t->slots = slots;
    t->hashes = hashes;
    t->nslots = n;
    return 0;
}

/* Makes room for one more user: the first slots, or twice as many when
 * the table would be more than three quarters full. A failed doubling
 * leaves a fuller table, which still works while a slot stays free after
 * the addition (probes end at a free slot); -1 when it would not. */
static int grow(struct users *t)
{
    if (t->nslots == 0)
        return rehash(t, FIRST_SLOTS);
    if ((t->count + 1) * 4 <= t->nslots * 3)
        return 0;
    if (rehash(t, t->nslots * 2) < 0 && t->count + 2 > t->nslots)
        return -1;
    return 0;
}

struct user *users_add(struct users *t, const char *identity)
{
    /* Hashed once: this runs for every event about a user. */
    uint32_t hash = hash_of(identity);
    if (t->nslots) {
        struct user *u = t->slots[slot_of(t, identity, hash)];
        if (u)
            return u;
    }
    if (grow(t) < 0)
        return NULL;
    size_t len = strlen(identity);
    struct user *u = calloc(1, sizeof *u + len + 1);
    if (!u)
        return NULL;
    memcpy(u->name, identity, len + 1);
    u->hash = hash;
    size_t i = slot_of(t, identity, hash);
    t->slots[i] = u;
    t->hashes[i] = hash;
    t->count++;
    return u;
}

int user_is_idle(const struct user *u)
{
    return !u->viewer && !u->listed && !u->hand && !u->invited && !u->refused && !u->speaker && !u->wants_access &&
           !u->touched && !u->hand_shown && !u->speaker_shown && !u->provisioned && !u->queued && !u->working;
}

/* 1 when an entry whose home slot is home may sit at slot j with slot i
 * free before it: home is not in the cyclic run (i, j]. */
static int may_move_back(size_t home, size_t i, size_t j)
{
    return i <= j ? home <= i || home > j : home <= i && home > j;
}

void users_remove(struct users *t, struct user *u)
{
    if (t->nslots == 0)
        return;
    size_t mask = t->nslots - 1, i = u->hash & mask;
    while (t->slots[i] && t->slots[i] != u)
        i = (i + 1) & mask;
    if (t->slots[i] != u)
        return;
    /* Shift back the entries after the freed slot that would otherwise be
     * cut off from their home slot by it. */
    for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        if (may_move_back(t->hashes[j] & mask, i, j)) {
            t->slots[i] = t->slots[j];
            t->hashes[i] = t->hashes[j];
            i = j;
        }
    }
    t->slots[i] = NULL;
    t->count--;
    free(u);
}

struct user *users_next(const struct users *t, size_t *cursor)
{
    while (*cursor < t->nslots) {
        struct user *u = t->slots[(*cursor)++];
        if (u)
            return u;
    }
    return NULL;
}

void users_clear(struct users *t)
{
    for (size_t i = 0; i < t->nslots; i++)
        free(t->slots[i]);
    free(t->slots);
    free(t->hashes);
    memset(t, 0, sizeof *t);
}

static void push(struct user_list *l, struct user *u, enum user_link_kind k)
{
    u->links[k].prev = l->tail;
    u->links[k].next = NULL;
    if (l->tail)
        l->tail->links[k].next = u;
    else
        l->head = u;
    l->tail = u;
    l->count++;
}

static void unlink_user(struct user_list *l, struct user *u, enum user_link_kind k)
{
    struct user_link *link = &u->links[k];
    if (link->prev)
        link->prev->links[k].next = link->next;
    else
        l->head = link->next;
    if (link->next)
        link->next->links[k].prev = link->prev;
    else
        l->tail = link->prev;
    link->prev = link->next = NULL;
    l->count--;
}

void user_list_push(struct user_list *l, struct user *u)
{
    push(l, u, USER_LINK_VIEWERS);
}

void user_list_remove(struct user_list *l, struct user *u)
{
    unlink_user(l, u, USER_LINK_VIEWERS);
}

void user_queue_push(struct user_list *l, struct user *u)
{
    push(l, u, USER_LINK_WORK);
}

void user_queue_remove(struct user_list *l, struct user *u)
{
    unlink_user(l, u, USER_LINK_WORK);
}
