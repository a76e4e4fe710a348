/* The users of one stream as the sync worker tracks them, by identity.
 *
 * An open-addressing hash table (linear probing) of pointers to the users,
 * with each slot's hash kept beside it: a tracked viewer costs one small
 * allocation (its flags, its links and its name) and a slot of 12 bytes
 * (the table is at most three quarters full), which is what lets one
 * worker follow a million viewers of a stream. A lookup compares hashes
 * in the table and reads a user only when its hash matches; the table
 * grows without reading the users. Not thread-safe; the sync worker has
 * one thread. */
#ifndef STAGEHAND_USERS_H
#define STAGEHAND_USERS_H

#include <stddef.h>
#include <stdint.h>

/* A user is on at most two lists at once: one of the viewers lists
 * (waiting, shown) through its viewers link, and one of the work lists
 * (the provisioning queue, the interactive work list) through its work
 * link. */
enum user_link_kind { USER_LINK_VIEWERS = 0, USER_LINK_WORK = 1 };

struct user_link {
    struct user *prev, *next;
};

struct user {
    struct user_link links[2];
    uint32_t hash;
    uint32_t seq;      /* place among the stream's eager viewers (1, 2, ...); 0: none */
    int64_t queued_ms; /* wall clock: when it began to wait for provisioning */
    /* What the events say (desired state): */
    unsigned viewer : 1, hand : 1, invited : 1, refused : 1, speaker : 1;
    unsigned wants_access : 1; /* Sync access due: eager join, speaker, hand or invitation */
    unsigned touched : 1;      /* ever had a hand, an invitation or the stage in this life */
    /* What Sync has (as far as this process knows): */
    unsigned listed : 1;                       /* an item in the viewers map */
    unsigned hand_shown : 1;                   /* an item in raised_hands */
    unsigned speaker_shown : 1;                /* an item in speakers */
    unsigned provisioned : 1;                  /* document and read permissions written */
    unsigned prov_step : 3;                    /* provisioning steps done so far (0..PROVISION_STEPS) */
    unsigned doc_invited : 1, doc_refused : 1; /* the document's content as written */
    unsigned doc_unknown : 1;                  /* read the document before writing it */
    unsigned verify : 1;                       /* the next work reads before each write (after a restart) */
    unsigned checked : 1;                      /* verified once since the restart */
    /* Which work list it is on: */
    unsigned queued : 1;  /* the provisioning queue */
    unsigned working : 1; /* the interactive work list */
    char name[];
};

/* Users in the order they were pushed, linked through one of their links:
 * the viewers link for user_list_*, the work link for user_queue_*. */
struct user_list {
    struct user *head, *tail;
    long count;
};

struct users {
    struct user **slots; /* NULL: a free slot */
    uint32_t *hashes;    /* hashes[i]: the hash of slots[i]'s identity */
    size_t nslots;       /* a power of two, or 0 before the first user */
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

/* The users one after the other, in no particular order: start with
 * *cursor at 0; NULL after the last. The table must not change meanwhile. */
struct user *users_next(const struct users *t, size_t *cursor);

/* Frees every user and the table; t is empty afterwards and can be used
 * again. */
void users_clear(struct users *t);

/* Appends u (on no viewers list) to l. */
void user_list_push(struct user_list *l, struct user *u);

/* Takes u off l, a viewers list it is on. */
void user_list_remove(struct user_list *l, struct user *u);

/* The same for the work lists, through the work link. */
void user_queue_push(struct user_list *l, struct user *u);
void user_queue_remove(struct user_list *l, struct user *u);

/* The next user on the list of the given link. */
static inline struct user *user_next(const struct user *u, enum user_link_kind link)
{
    return u->links[link].next;
}

#endif
