/* The runtime the three worker roles share (ARCHITECTURE.md follows one
 * event through it).
 *
 * One process is one member of its role's consumer group
 * ("stagehand-<role>") on stagehand.events. Its poll loop never blocks on
 * Twilio's retries: an event that must wait pauses its partition, which is
 * rewound to the event and resumed when the backoff is over; until the
 * event is done, no later event of the partition is handled or stored, even
 * when the pause or the rewind failed. An offset is stored only after the
 * event's side effects succeeded, or after Kafka acknowledged the event's
 * record on stagehand.dlq (after MAX_ATTEMPTS, at once for a permanent
 * error; headers say why): the partition waits for that acknowledgement,
 * and a DLQ record that is refused sends the event round again. What the
 * runtime decides about an event is in decide.h. No wait in the poll loop
 * is longer than worker_emit's 10 s.
 *
 * Per stream the worker keeps a fold of the events (struct stream, plus
 * what the role adds) and the offset of the last event whose side effects
 * it applied. Replays and redeliveries never apply anything twice:
 *   - an event at or below the stream's applied offset is folded only;
 *   - an event whose id is among the last ids handled for the stream is
 *     skipped, neither applied nor folded (the same webhook delivered twice,
 *     a log imported again); when rebuilding, the window is rebuilt too;
 *   - side effects themselves are idempotent (create-or-adopt, "not found"
 *     counts as done, desired state rather than deltas).
 * The applied offset and what others need (SIDs, readiness) go to
 * stagehand.state under "<stream>/<role>" (README, "State records"), at
 * once when something important changed, else at most every
 * STATE_PUBLISH_INTERVAL_MS. When partitions are assigned, the worker
 * pauses them and reads its records from stagehand.state on a loader's
 * thread (state_loader.h; the partitions it had go on meanwhile), then
 * re-reads the new partitions
 * from their beginning, folding without side effects up to each stream's
 * applied offset, before it acts again. A stream with no record is not
 * applied again below the group's committed offset (decide.h).
 *
 * Checkpoints (snapshot.h): every SNAPSHOT_INTERVAL_S, for each partition
 * that advanced and has no event held, retried or awaiting its DLQ record,
 * the fold of all its streams as of the partition's next offset X goes to
 * stagehand.state in chunks. On assignment a valid checkpoint of the
 * partition is loaded over the records and the partition is re-read from X
 * instead of 0 (from 0 when a `stagehand-replay offsets` mark lies below
 * X, or SNAPSHOT_INTERVAL_S is 0).
 *
 * STATE_TOMBSTONE_AFTER_S after a stream ended, once its last event is
 * below the committed offset, the role's record is replaced by a null
 * record (a tombstone, which compaction removes with the records before
 * it) and the stream is forgotten.
 *
 * Events are polled in batches; while the queue is long, a second thread
 * parses the batches ahead of the one handled (parse_ahead.h,
 * PARSE_AHEAD). They are handled one at a time, in the order polled, all on
 * the poll loop; one polled before a rewind of its partition is dropped.
 *
 * SIGTERM or SIGINT: the event in hand is finished, offsets are committed,
 * the group is left, pending state records are flushed. /metrics and
 * /healthz are served on METRICS_PORT. */
#ifndef STAGEHAND_WORKER_H
#define STAGEHAND_WORKER_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "id_window.h"
#include "kafka.h"
#include "metrics.h"
#include "text.h"
#include "twilio.h"

enum stream_phase { PHASE_NONE = 0, PHASE_CREATING, PHASE_READY, PHASE_ENDED };

/* What every role knows of a stream. */
struct stream {
    char *name;
    int32_t partition;
    enum stream_phase phase;
    int64_t since; /* ms timestamp of the create that began this life */
    char host[IDENTITY_MAX_CHARS * 4 + 1];
    int64_t applied_offset;    /* -1: nothing applied yet */
    int64_t last_offset;       /* its newest event read (-1: none) */
    int64_t ended_ms;          /* time of the event that ended this life (0: not ended) */
    struct id_window recent;   /* ids of the last events handled */
    struct id_window restored; /* the window as last published, for live events */
    int64_t reapply_until;     /* stagehand-replay offsets: the applied offset before (-1: none) */
    int rebuilding;            /* events up to applied_offset (or reapply_until) are still being
                                   * re-read; with apply set, memory may lag what Twilio has */
    int dirty;                 /* its state record must be published */
    int has_record;            /* stagehand.state holds a record of it (published or restored) */
    uint64_t record_digest;    /* of that record without its "ts" (0: unknown): one saying the same is
                             * not published again */
    int urgent;                /* ... now, not at the next interval */
    void *role;                /* the role's own data, or NULL */
};

/* How handling one event went. RETRY is a failed attempt: after
 * MAX_ATTEMPTS of them the event goes to the DLQ. WAIT is not a failure (a
 * budget is empty, say): the event comes again after retry_after_ms and no
 * attempt is counted, however often it waits. */
enum outcome_kind { OUTCOME_DONE, OUTCOME_RETRY, OUTCOME_FAIL, OUTCOME_WAIT };

struct outcome {
    enum outcome_kind kind;
    long retry_after_ms; /* RETRY: at least this long (-1: backoff decides);
                                   * WAIT: this long (10 ms to 60 s; <= 0: TWILIO_RETRY_BASE_MS) */
    char error_code[32]; /* FAIL, RETRY, WAIT: Twilio's code or our reason */
    char error[256];
};

struct worker;

struct worker_role {
    const char *name;               /* "room", "stream", "sync" */
    const char *const *event_types; /* NULL-terminated: the events it handles */
    /* Folds ev into st and, when apply is 1, performs its side effects
     * first. With apply 0 it must not call Twilio. On OUTCOME_RETRY or
     * OUTCOME_FAIL the fold must be left as it was (the event comes again,
     * or goes to the DLQ); fields it already learned (a SID just created)
     * may be kept, and should be, so that a retry adopts them. */
    void (*on_event)(struct worker *w, struct stream *st, const struct event *ev, int apply, struct outcome *out);
    /* Adds the role's fields to st's state record. */
    void (*state_fields)(struct worker *w, const struct stream *st, json_t *record);
    /* Restores the role's fields from its state record (on assignment). */
    void (*restore)(struct worker *w, struct stream *st, const json_t *record);
    /* Checkpoints (issue 20; may be NULL: the role keeps nothing beyond
     * struct stream). snapshot_save returns the role's fold of st as JSON
     * (a new reference; NULL: nothing), what the events said, not what
     * Twilio is known to have. snapshot_load puts it back into st, after
     * restore ran with the stream's state record when there is one (the
     * record is newer: SIDs it names win); what Twilio has must come back
     * as after a restart (unknown, read before written). Returns 0, or -1
     * (the checkpoint is then not used: the partition is re-read from 0). */
    json_t *(*snapshot_save)(struct worker *w, const struct stream *st);
    int (*snapshot_load)(struct worker *w, struct stream *st, const json_t *data);
    /* Periodic work, about every 50 ms (may be NULL). */
    void (*tick)(struct worker *w, int64_t now_ms);
    /* Frees st->role (may be NULL). */
    void (*free_role)(void *role);
    /* Role-specific settings tables to register (may be NULL / 0). */
    const struct config_spec *settings;
    size_t settings_count;
    /* Called once after configuration is loaded (may be NULL). Returns 0, or
     * -1 with err. */
    int (*init)(struct worker *w, char *err, size_t errlen);
};

/* Runs the role until SIGTERM or SIGINT; the process's main(). Returns the
 * exit status. */
int worker_main(const struct worker_role *role, int argc, char **argv);

/* --- for the roles ---------------------------------------------------------------- */

const struct config *worker_config(const struct worker *w);
void *worker_role_context(const struct worker *w);

/* The process's metrics, for a role to add its own (in init). */
struct metrics *worker_metrics(struct worker *w);
void worker_set_role_context(struct worker *w, void *ctx);

/* One Twilio request (no retries inside; counted in the metrics). */
int worker_twilio(struct worker *w, enum twilio_product product, const char *method, const char *path,
                  const struct kv_list *params, const char *if_match, struct twilio_result *res);

/* Turns a failed Twilio result into the outcome: RATE_LIMITED and
 * RETRYABLE retry (honouring Retry-After), others fail with the code and
 * message. */
void worker_outcome_from_twilio(const struct twilio_result *res, struct outcome *out);

/* For a request whose path twilio_path refused to build (a name that is
 * empty, "." or "..", which would address another resource, or a path too
 * long for the caller's buffer): the request is never sent, and out (when
 * not NULL) fails for good with error_code "bad_path". Returns -1. */
int worker_refuse_path(struct outcome *out, const char *path_format);

/* Produces an event the worker itself emits (room.created, sync.ready, ...)
 * to stagehand.events and waits for Kafka's acknowledgement, at most 10 s
 * (less when the worker is stopping); data is taken. Returns 0, or -1
 * (logged; the event is retried by the caller's outcome; a report that comes
 * after the wait is logged by the runtime, so the event may exist twice). */
int worker_emit(struct worker *w, const char *stream, const char *type, json_t *data);

/* Marks st's state record for publishing (urgent: at once). */
void worker_mark_dirty(struct stream *st, int urgent);

/* The streams this process knows, by name (NULL when unknown). */
struct stream *worker_find_stream(struct worker *w, const char *name);

/* Calls fn for every known stream. */
void worker_each_stream(struct worker *w, void (*fn)(struct worker *w, struct stream *st, void *ctx), void *ctx);

#endif
