/* The stage of one stream as the room worker keeps it: who besides the
 * host may be on it.
 *
 * An identity is put on the list when the host invites it
 * (speaker.invited) and taken off when the host removes it
 * (speaker.remove_requested) or when it joins the stream as a viewer again
 * (user.joined, role viewer: it left the stage, or answered the invitation
 * by staying in the audience). So a removed speaker needs a new invitation.
 *
 * The list is bounded: STAGE_INVITED_MAX identities in invitation order (a
 * group room holds at most 50 participants); an invitation beyond that
 * pushes out the oldest one. It is published in the room worker's state
 * record as "invited", which the ingress reads to decide who may join as a
 * speaker. */
#ifndef STAGEHAND_STAGE_H
#define STAGEHAND_STAGE_H

#include <jansson.h>
#include <stddef.h>

#define STAGE_INVITED_MAX 50

struct stage {
    char *invited[STAGE_INVITED_MAX]; /* oldest first */
    size_t count;
};

/* Forgets every invitation (a new life of the stream, or freeing). */
void stage_clear(struct stage *s);

/* Puts identity on the list. Returns 1 when the list changed, 0 when it
 * was there already, -1 when memory ran out (the list is unchanged). */
int stage_invite(struct stage *s, const char *identity);

/* Takes identity off the list. Returns 1 when it was there, else 0. */
int stage_uninvite(struct stage *s, const char *identity);

/* 1 when identity is on the list. */
int stage_is_invited(const struct stage *s, const char *identity);

/* The list as a JSON array of identities, oldest first; NULL when memory
 * ran out. */
json_t *stage_to_json(const struct stage *s);

/* Replaces the list with an array read back from a state record: entries
 * that are not valid identities are skipped, and the newest
 * STAGE_INVITED_MAX are kept. Returns 0, or -1 when list is not an array or memory ran out
 * (the list is then empty). */
int stage_from_json(struct stage *s, const json_t *list);

#endif
