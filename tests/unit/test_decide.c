/* Unit tests for workers/decide: every branch of what the worker runtime
 * decides about one event (admitted or not, applied or folded, retried,
 * waiting, dead-lettered) and which offset it may store, and when. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "decide.h"

/* A readable event of the role, new, past the stream's applied offset 5. */
static struct admit_facts fresh(void)
{
    struct admit_facts f = {.parsed = 1,
                            .ours = 1,
                            .have_stream = 1,
                            .offset = 10,
                            .ts_ms = 2000,
                            .since = 1000,
                            .applied_offset = 5,
                            .reapply_until = -1};
    return f;
}

static void test_admit_unreadable(void **state)
{
    (void)state;
    struct admit_facts f = {.parsed = 0, .offset = 3};
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_DLQ);
    assert_null(a.label); /* counted when the DLQ acknowledges it */
    /* Read again below the committed offset: it went to the DLQ before. */
    f.below_committed = 1;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_SKIP);
    assert_string_equal(a.label, "skipped");
}

static void test_admit_not_ours(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    f.ours = 0;
    f.have_stream = 0;
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_SKIP);
    assert_null(a.label);
}

static void test_admit_no_memory(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    f.have_stream = 0;
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_LATER);
    assert_string_equal(a.label, "wait");
}

static void test_admit_earlier_life(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    f.ts_ms = f.since - 1;
    f.in_recent = 1; /* an earlier life wins over a duplicate */
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_FOLDED);
    assert_string_equal(a.label, "folded");
    f.ts_ms = f.since; /* the create that began this life is of it */
    f.in_recent = 0;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_HANDLE);
}

static void test_admit_duplicates(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    struct admit a;
    f.in_recent = 1;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_DUPLICATE);
    assert_string_equal(a.label, "duplicate");
    /* The published window counts past the applied offset only. */
    f.in_recent = 0;
    f.in_restored = 1;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_DUPLICATE);
    f.offset = 4;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_HANDLE);
    assert_false(a.apply);
}

static void test_admit_apply_or_fold(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_HANDLE);
    assert_true(a.apply);
    assert_false(a.rebuilding);
    assert_null(a.label);
    f.offset = 5; /* the applied one itself: folded */
    decide_admit(&f, &a);
    assert_false(a.apply);
    assert_false(a.rebuilding);
    f.offset = 2;
    decide_admit(&f, &a);
    assert_false(a.apply);
    assert_true(a.rebuilding);
    /* stagehand-replay offsets: applied again, but still rebuilding. */
    f.offset = 8;
    f.applied_offset = 6;
    f.reapply_until = 9;
    decide_admit(&f, &a);
    assert_true(a.apply);
    assert_true(a.rebuilding);
}

static struct outcome_facts facts(enum outcome_kind kind, int attempts)
{
    struct outcome_facts f = {.kind = kind,
                              .retry_after_ms = -1,
                              .attempts = attempts,
                              .max_attempts = 3,
                              .base_ms = 100,
                              .max_ms = 5000,
                              .jitter = 0.5,
                              .apply = 1,
                              .offset = 10,
                              .applied_offset = 5};
    return f;
}

static void test_outcome_done(void **state)
{
    (void)state;
    struct outcome_facts f = facts(OUTCOME_DONE, 2);
    struct verdict v;
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_DONE);
    assert_int_equal(v.store, 11);
    assert_int_equal(v.applied_offset, 10);
    assert_true(v.remember);
    assert_string_equal(v.label, "applied");
    f.apply = 0; /* folded: the applied offset stays */
    f.offset = 4;
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_DONE);
    assert_int_equal(v.store, 5);
    assert_int_equal(v.applied_offset, 5);
    assert_string_equal(v.label, "folded");
}

static void test_outcome_retry_then_dlq(void **state)
{
    (void)state;
    struct outcome_facts f = facts(OUTCOME_RETRY, 0);
    struct verdict v;
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_RETRY);
    assert_int_equal(v.attempts, 1);
    assert_int_equal(v.store, -1); /* nothing stored: the partition is rewound */
    assert_int_equal(v.applied_offset, 5);
    assert_false(v.remember);
    assert_int_equal(v.delay_ms, 50); /* half (jitter) of the first step */
    assert_string_equal(v.label, "retry");
    f.attempts = 1;
    f.retry_after_ms = 2000; /* Retry-After is a floor */
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_RETRY);
    assert_int_equal(v.attempts, 2);
    assert_int_equal(v.delay_ms, 2000);
    f.attempts = 2; /* the third attempt of three failed */
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_DLQ);
    assert_int_equal(v.attempts, 3);
    assert_int_equal(v.store, 11);
    assert_int_equal(v.applied_offset, 10);
    assert_true(v.remember);
    assert_string_equal(v.label, "dlq");
    /* MAX_ATTEMPTS 1: no retry at all. */
    f.attempts = 0;
    f.max_attempts = 1;
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_DLQ);
    assert_int_equal(v.attempts, 1);
}

static void test_outcome_fail(void **state)
{
    (void)state;
    struct outcome_facts f = facts(OUTCOME_FAIL, 0);
    struct verdict v;
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_DLQ);
    assert_int_equal(v.attempts, 1);
    assert_int_equal(v.store, 11);
    f.apply = 0; /* a fold that fails moves no applied offset */
    decide_outcome(&f, &v);
    assert_int_equal(v.applied_offset, 5);
}

/* Waiting is not failing: no attempt counted, however often, and a wait
 * between retries keeps the count the retries reached. */
static void test_outcome_wait_is_no_attempt(void **state)
{
    (void)state;
    struct outcome_facts f = facts(OUTCOME_WAIT, 0);
    struct verdict v;
    f.retry_after_ms = 1500;
    for (int i = 0; i < 100; i++) {
        decide_outcome(&f, &v);
        assert_int_equal(v.kind, VERDICT_WAIT);
        assert_int_equal(v.attempts, 0);
        assert_int_equal(v.store, -1);
        assert_int_equal(v.delay_ms, 1500);
        assert_string_equal(v.label, "wait");
        f.attempts = v.attempts;
    }
    f.attempts = 2; /* one short of MAX_ATTEMPTS */
    decide_outcome(&f, &v);
    assert_int_equal(v.kind, VERDICT_WAIT);
    assert_int_equal(v.attempts, 2);
    /* Bounds: none given takes the base step; the longest is a minute. */
    f.retry_after_ms = -1;
    decide_outcome(&f, &v);
    assert_int_equal(v.delay_ms, 100);
    f.retry_after_ms = 1;
    decide_outcome(&f, &v);
    assert_int_equal(v.delay_ms, DECIDE_WAIT_MIN_MS);
    f.retry_after_ms = 3600000;
    decide_outcome(&f, &v);
    assert_int_equal(v.delay_ms, DECIDE_WAIT_MAX_MS);
}

/* Below the group's committed offset, the event of a stream with no
 * applied offset (its record was removed by a tombstone) is folded only. */
static void test_admit_floor_is_the_committed_offset(void **state)
{
    (void)state;
    struct admit_facts f = fresh();
    f.applied_offset = -1;
    f.below_committed = 1;
    struct admit a;
    decide_admit(&f, &a);
    assert_int_equal(a.kind, ADMIT_HANDLE);
    assert_false(a.apply);
    assert_true(a.rebuilding);
    /* At the committed offset and past it: applied. */
    f.below_committed = 0;
    decide_admit(&f, &a);
    assert_true(a.apply);
    assert_false(a.rebuilding);
    /* A stream with a record goes by its applied offset, below the
     * committed offset too (the sync worker commits before it writes). */
    f.applied_offset = f.offset - 1;
    f.reapply_until = -1;
    f.below_committed = 1;
    decide_admit(&f, &a);
    assert_true(a.apply);
    assert_false(a.rebuilding);
    f.below_committed = 0;
    /* stagehand-replay's mark lowers the committed offset itself: from it,
     * events below the old applied offset are applied again. */
    f.applied_offset = f.offset - 1; /* reapply_stream: mark - 1 */
    f.reapply_until = f.offset + 5;
    decide_admit(&f, &a);
    assert_true(a.apply);
    assert_true(a.rebuilding);
}

static void test_tombstone(void **state)
{
    (void)state;
    const struct tombstone_facts base = {.ended = 1,
                                         .ended_ms = 1000,
                                         .now_ms = 5000,
                                         .after_ms = 4000,
                                         .last_offset = 41,
                                         .committed = 42,
                                         .read_to = 42,
                                         .floor = 30};
    struct tombstone_facts f = base;
    assert_true(decide_expired(&f));
    assert_true(decide_tombstone(&f));
    f.now_ms = 4999; /* not long enough */
    assert_false(decide_expired(&f));
    assert_false(decide_tombstone(&f));
    f = base;
    f.ended = 0; /* a new life began */
    assert_false(decide_tombstone(&f));
    f = base;
    f.ended_ms = 0;
    assert_false(decide_tombstone(&f));
    f = base;
    f.committed = 41; /* its last event is not committed yet */
    assert_false(decide_tombstone(&f));
    assert_true(decide_expired(&f)); /* ... but its record is not published again */
    f.committed = -1;                /* unknown */
    assert_false(decide_tombstone(&f));
    f = base;
    f.read_to = 29; /* a rebuild has not reached the floor: older events may follow */
    assert_false(decide_tombstone(&f));
    f.floor = -1; /* a new group: no floor */
    assert_true(decide_tombstone(&f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_unreadable),
        cmocka_unit_test(test_admit_not_ours),
        cmocka_unit_test(test_admit_no_memory),
        cmocka_unit_test(test_admit_earlier_life),
        cmocka_unit_test(test_admit_duplicates),
        cmocka_unit_test(test_admit_apply_or_fold),
        cmocka_unit_test(test_outcome_done),
        cmocka_unit_test(test_outcome_retry_then_dlq),
        cmocka_unit_test(test_outcome_fail),
        cmocka_unit_test(test_outcome_wait_is_no_attempt),
        cmocka_unit_test(test_admit_floor_is_the_committed_offset),
        cmocka_unit_test(test_tombstone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
