/* The worker runtime's decisions about one event (see decide.h). */
#include "decide.h"

#include "twilio.h"

void decide_admit(const struct admit_facts *f, struct admit *out)
{
    out->apply = 0;
    out->rebuilding = 0;
    out->label = NULL;
    if (!f->parsed) {
        /* Read again in a rebuild after it was committed: it went to the DLQ then. */
        out->kind = f->below_committed ? ADMIT_SKIP : ADMIT_DLQ;
        out->label = f->below_committed ? "skipped" : NULL;
        return;
    }
    if (!f->ours) {
        out->kind = ADMIT_SKIP;
        return;
    }
    if (!f->have_stream) {
        out->kind = ADMIT_LATER;
        out->label = "wait";
        return;
    }
    if (f->ts_ms < f->since) {
        out->kind = ADMIT_FOLDED;
        out->label = "folded";
        return;
    }
    /* Past the applied offset the window as last published counts too: it
     * is being rebuilt. */
    if (f->in_recent || (f->offset > f->applied_offset && f->in_restored)) {
        out->kind = ADMIT_DUPLICATE;
        out->label = "duplicate";
        return;
    }
    out->kind = ADMIT_HANDLE;
    /* A stream with no record (never published, or removed once it ended)
     * has no applied offset: below the committed offset, its events were
     * done by an earlier member. A stream with a record goes by its applied
     * offset, as a role may commit an event before its effect is written
     * (the sync worker folds, commits, and writes in rounds). */
    int floor = f->below_committed && f->applied_offset < 0;
    out->apply = f->offset > f->applied_offset && !floor;
    /* With reapply, apply is set while the stream is still below what an
     * earlier process reached: memory may lag what Twilio has. */
    out->rebuilding = f->offset < f->applied_offset || f->offset < f->reapply_until || floor;
}

int decide_expired(const struct tombstone_facts *f)
{
    return f->ended && f->ended_ms > 0 && f->now_ms - f->ended_ms >= f->after_ms;
}

int decide_tombstone(const struct tombstone_facts *f)
{
    if (!decide_expired(f) || f->committed < 0)
        return 0;
    if (f->last_offset >= f->committed)
        return 0; /* a crash now would apply its last events again */
    return f->floor < 0 || f->read_to >= f->floor;
}

static void finished(const struct outcome_facts *f, struct verdict *out, enum verdict_kind kind)
{
    out->kind = kind;
    out->store = f->offset + 1;
    out->remember = 1;
    out->applied_offset = f->apply && f->offset > f->applied_offset ? f->offset : f->applied_offset;
}

void decide_outcome(const struct outcome_facts *f, struct verdict *out)
{
    out->attempts = f->attempts;
    out->delay_ms = 0;
    out->store = -1;
    out->applied_offset = f->applied_offset;
    out->remember = 0;
    switch (f->kind) {
    case OUTCOME_DONE:
        finished(f, out, VERDICT_DONE);
        out->label = f->apply ? "applied" : "folded";
        return;
    case OUTCOME_WAIT: {
        /* Waiting for a budget is no failure: the attempts stay as they are. */
        long wait = f->retry_after_ms > 0 ? f->retry_after_ms : f->base_ms;
        out->kind = VERDICT_WAIT;
        out->delay_ms = wait < DECIDE_WAIT_MIN_MS   ? DECIDE_WAIT_MIN_MS
                        : wait > DECIDE_WAIT_MAX_MS ? DECIDE_WAIT_MAX_MS
                                                    : wait;
        out->label = "wait";
        return;
    }
    case OUTCOME_RETRY:
        out->attempts = f->attempts + 1;
        if (out->attempts < f->max_attempts) {
            out->kind = VERDICT_RETRY;
            out->delay_ms = twilio_backoff_ms(out->attempts - 1, f->base_ms, f->max_ms, f->retry_after_ms, f->jitter);
            out->label = "retry";
            return;
        }
        break;
    case OUTCOME_FAIL:
    default:
        out->attempts = f->attempts + 1;
        break;
    }
    finished(f, out, VERDICT_DLQ);
    out->label = "dlq";
}
