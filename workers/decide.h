/* The worker runtime's decisions about one event, as pure functions: no
 * Kafka, no clock, no randomness (the caller passes a jitter in), so every
 * branch has a unit test (tests/unit/test_decide.c). workers/worker.c
 * gathers the facts, asks, and does what the answer says.
 *
 * Two questions per event. Before the role sees it (decide_admit): is it
 * readable, the role's, of the stream's current life, new? After the role
 * handled it (decide_outcome): done, try again later (an attempt), wait (not
 * an attempt), or the DLQ; and which offset may be stored, and when. And
 * once a stream ended (decide_tombstone): may its state record be removed?
 *
 * The group's committed offset of a partition, read at assignment, is a
 * floor for the streams with no state record (a stream whose record was
 * removed once it ended has no applied offset): their events below it were
 * done by an earlier member, so they are folded only, never applied. A
 * stream with a record goes by the record's applied offset. `stagehand-replay
 * offsets` lowers the committed offset itself, so re-applying from its mark
 * still works. */
#ifndef STAGEHAND_WORKER_DECIDE_H
#define STAGEHAND_WORKER_DECIDE_H

#include <stdint.h>

#include "worker.h"

/* How long an event waits when the runtime has no memory for its stream. */
#define DECIDE_LATER_MS 1000
/* Bounds of an OUTCOME_WAIT (a role's retry_after_ms is clamped to them). */
#define DECIDE_WAIT_MIN_MS 10
#define DECIDE_WAIT_MAX_MS 60000

enum admit_kind {
    ADMIT_HANDLE,    /* give it to the role */
    ADMIT_DLQ,       /* unreadable: to the DLQ at once */
    ADMIT_SKIP,      /* not the role's, or unreadable and dead-lettered before: store, nothing else */
    ADMIT_FOLDED,    /* of an earlier life of the stream: store */
    ADMIT_DUPLICATE, /* its id was handled lately: store */
    ADMIT_LATER,     /* no memory for its stream: not stored, comes again in DECIDE_LATER_MS */
};

struct admit_facts {
    int parsed;          /* the envelope parsed and passed its schema */
    int below_committed; /* its offset is below the group's committed offset */
    int ours;            /* the role handles its type */
    int have_stream;     /* the stream's memory exists */
    int64_t offset;
    int64_t ts_ms;          /* the event's time */
    int64_t since;          /* start of the stream's current life */
    int in_recent;          /* its id is among the stream's last handled ids */
    int in_restored;        /* ... among those of the stream's last published record */
    int64_t applied_offset; /* the stream's (-1: none) */
    int64_t reapply_until;  /* the stream's (-1: none) */
};

struct admit {
    enum admit_kind kind;
    int apply;         /* HANDLE: side effects are due (past the applied offset) */
    int rebuilding;    /* HANDLE: still below what an earlier process reached */
    const char *label; /* events_total outcome, or NULL for none */
};

void decide_admit(const struct admit_facts *f, struct admit *out);

enum verdict_kind {
    VERDICT_DONE,  /* store offset + 1 now */
    VERDICT_RETRY, /* a failed attempt: rewind to the event, pause delay_ms */
    VERDICT_WAIT,  /* not an attempt: rewind to the event, pause delay_ms */
    VERDICT_DLQ,   /* to the DLQ; store offset + 1 once the DLQ record is acknowledged */
};

struct outcome_facts {
    enum outcome_kind kind;
    long retry_after_ms;  /* the outcome's */
    int attempts;         /* failed attempts already counted for this event */
    int max_attempts;     /* MAX_ATTEMPTS */
    long base_ms, max_ms; /* backoff: TWILIO_RETRY_BASE_MS, TWILIO_RETRY_MAX_MS */
    double jitter;        /* uniform in [0, 1) */
    int apply;            /* the role was asked to apply side effects */
    int64_t offset;
    int64_t applied_offset; /* the stream's before the event */
};

struct verdict {
    enum verdict_kind kind;
    int attempts;           /* attempts counted once this one is (the DLQ's "attempts" header) */
    long delay_ms;          /* RETRY, WAIT */
    int64_t store;          /* DONE, DLQ: the offset to store (offset + 1); else -1 */
    int64_t applied_offset; /* the stream's afterwards (DLQ: once acknowledged) */
    int remember;           /* DONE, DLQ: the id joins the stream's window */
    const char *label;      /* events_total outcome */
};

void decide_outcome(const struct outcome_facts *f, struct verdict *out);

struct tombstone_facts {
    int ended;           /* the stream's phase is PHASE_ENDED */
    int64_t ended_ms;    /* when it ended (the event's time; 0: unknown) */
    int64_t now_ms;      /* wall clock */
    int64_t after_ms;    /* STATE_TOMBSTONE_AFTER_S */
    int64_t last_offset; /* its newest event read (-1: none) */
    int64_t committed;   /* the group's committed offset of its partition now (-1: unknown) */
    int64_t read_to;     /* the partition has been read up to here (next offset; -1: nothing) */
    int64_t floor;       /* the committed offset at assignment (-1: none) */
};

/* 1 when the stream's state record may be replaced by a tombstone and the
 * stream forgotten: ended at least after_ms ago, every event of it read is
 * below the group's committed offset (so a later member folds them without
 * applying), and the partition was read past its floor (no older event of
 * the stream is still to come in a rebuild). With the committed offset
 * unknown (-1), never. */
int decide_tombstone(const struct tombstone_facts *f);

/* Not even worth publishing: ended at least after_ms ago (its record is due
 * to be removed; publishing would bring it back). */
int decide_expired(const struct tombstone_facts *f);

#endif
