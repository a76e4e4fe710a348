/* The users of one stream, by identity (see users.h). Separate chaining
 * through the users' own chain field; the bucket array doubles when there
 * are more users than buckets and never shrinks. */
#include "users.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_BUCKETS 64

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

static struct user **slot_of(const struct users *t, const char *identity, uint32_t hash)
{
    struct user **slot = &t->buckets[hash & (t->nbuckets - 1)];
    while (*slot && ((*slot)->hash != hash || strcmp((*slot)->name, identity) != 0))
        slot = &(*slot)->chain;
    return slot;
}

struct user *users_find(const struct users *t, const char *identity)
{
    if (t->nbuckets == 0)
        return NULL;
    return *slot_of(t, identity, hash_of(identity));
}

/* Makes room for one more user: the first buckets, or twice as many when
 * the table is as full as it has buckets. -1 only when the first
 * allocation fails; a failed doubling leaves longer chains, nothing worse. */
static int grow(struct users *t)
{
    if (t->nbuckets == 0) {
        t->buckets = calloc(FIRST_BUCKETS, sizeof *t->buckets);
        if (!t->buckets)
            return -1;
        t->nbuckets = FIRST_BUCKETS;
        return 0;
    }
    if (t->count < t->nbuckets)
        return 0;
    size_t n = t->nbuckets * 2;
    struct user **buckets = calloc(n, sizeof *buckets);
    if (!buckets)
        return 0;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct user *u = t->buckets[i];
        while (u) {
            struct user *chain = u->chain;
            u->chain = buckets[u->hash & (n - 1)];
            buckets[u->hash & (n - 1)] = u;
            u = chain;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = n;
    return 0;
}

struct user *users_add(struct users *t, const char *identity)
{
    /* Hashed once: this runs for every event about a user. */
    uint32_t hash = hash_of(identity);
    struct user *u = t->nbuckets ? *slot_of(t, identity, hash) : NULL;
    if (u)
        return u;
    if (grow(t) < 0)
        return NULL;
    size_t len = strlen(identity);
    u = calloc(1, sizeof *u + len + 1);
    if (!u)
        return NULL;
    memcpy(u->name, identity, len + 1);
    u->hash = hash;
    struct user **bucket = &t->buckets[u->hash & (t->nbuckets - 1)];
    u->chain = *bucket;
    *bucket = u;
    t->count++;
    return u;
}

int user_is_idle(const struct user *u)
{
    return !u->viewer && !u->listed && !u->hand && !u->invited && !u->refused && !u->speaker && !u->wants_access &&
           !u->touched && !u->hand_shown && !u->speaker_shown && !u->provisioned && !u->queued && !u->working;
}

void users_remove(struct users *t, struct user *u)
{
    struct user **slot = slot_of(t, u->name, u->hash);
    if (*slot != u)
        return;
    *slot = u->chain;
    t->count--;
    free(u);
}

void users_clear(struct users *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct user *u = t->buckets[i];
        while (u) {
            struct user *chain = u->chain;
            free(u);
            u = chain;
        }
    }
    free(t->buckets);
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
