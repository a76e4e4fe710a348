/* The users of one stream as the sync worker tracks them, by identity.
 *
 * A hash table whose entries are the users themselves: a tracked viewer
 * costs one small allocation (its flags, its links and its name) and a
 * bucket pointer, which is what lets one worker follow a million viewers
 * of a stream. Not thread-safe; the sync worker has one thread. */
#ifndef STAGEHAND_USERS_H
#define STAGEHAND_USERS_H

#include <stddef.h>
#include <stdint.h>

struct user {
    struct user *chain;       /* the next user in the same bucket */
    struct user *prev, *next; /* on a user_list, when on one */
    uint32_t hash;
    unsigned viewer : 1, listed : 1, hand : 1, invited : 1, refused : 1, speaker : 1;
    unsigned joined : 1; /* document and permissions made */
    char name[];
};

/* Users in the order they were pushed, linked through their prev/next: a
 * user is on one list at most. */
struct user_list {
    struct user *head, *tail;
    long count;
};

struct users {
    struct user **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first user */
    size_t count;
};

/* The user with this identity, or NULL. */
struct user *users_find(const struct users *t, const char *identity);

/* The user with this identity, made (all flags clear) when it was not
 * there; NULL when out of memory. */
struct user *users_add(struct users *t, const char *identity);

/* True when nothing is known of u that a later event could need: it can be
 * forgotten (users_remove) and made again as new. */
int user_is_idle(const struct user *u);

/* Takes u out of the table and frees it. u must not be linked in a list. */
void users_remove(struct users *t, struct user *u);

/* Frees every user and the table; t is empty afterwards and can be used
 * again. */
void users_clear(struct users *t);

/* Appends u (on no list) to l. */
void user_list_push(struct user_list *l, struct user *u);

/* Takes u off l, which it is on. */
void user_list_remove(struct user_list *l, struct user *u);

#endif
