/* workers/unapplied: the age of a partition's oldest unapplied event. A
 * held event's age is exact; a partition that is not behind reads 0; one
 * that is behind reads at most the time since the newest event done or since
 * it was last seen caught up, whichever is later; forgetting a partition
 * starts it afresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unapplied.h"

static void test_caught_up_reads_zero(void **state)
{
    (void)state;
    struct unapplied *u = unapplied_new();
    assert_non_null(u);
    assert_true(unapplied_age(u, 0, 0, 10000) == 0);
    assert_int_equal(unapplied_seen(u, 0, 9000, 0), 0);
    assert_true(unapplied_age(u, 0, 0, 10000) == 0);
    unapplied_free(u);
}

static void test_held_event_exact(void **state)
{
    (void)state;
    struct unapplied *u = unapplied_new();
    assert_non_null(u);
    assert_int_equal(unapplied_seen(u, 3, 1000, 0), 0);
    assert_int_equal(unapplied_seen(u, 3, 2000, 1), 0); /* held for a retry */
    assert_int_equal(unapplied_seen(u, 3, 2500, 1), 0); /* fetched past it, kept out */
    assert_true(unapplied_age(u, 3, 1, 7000) == 5.0);
    assert_true(unapplied_age(u, 3, 0, 8000) == 6.0);   /* held, even with nothing behind it */
    assert_int_equal(unapplied_seen(u, 3, 2000, 0), 0); /* done at last */
    assert_true(unapplied_age(u, 3, 0, 9000) == 0);
    unapplied_free(u);
}

static void test_behind_bounded_by_done_and_clear(void **state)
{
    (void)state;
    struct unapplied *u = unapplied_new();
    assert_non_null(u);
    /* First seen behind at 10 s: nothing older is known. */
    assert_true(unapplied_age(u, 1, 1, 10000) == 0);
    assert_true(unapplied_age(u, 1, 1, 13000) == 3.0);
    /* Events done up to one produced at 12 s: the next is at most 4 s old at 16 s. */
    assert_int_equal(unapplied_seen(u, 1, 11000, 0), 0);
    assert_int_equal(unapplied_seen(u, 1, 12000, 0), 0);
    assert_int_equal(unapplied_seen(u, 1, 11500, 0), 0); /* an older timestamp moves nothing back */
    assert_true(unapplied_age(u, 1, 1, 16000) == 4.0);
    /* Seen caught up at 20 s, then behind at 21 s: at most 1 s, however old
     * the last event done was. */
    assert_true(unapplied_age(u, 1, 0, 20000) == 0);
    assert_true(unapplied_age(u, 1, 1, 21000) == 1.0);
    /* Partitions are independent. */
    assert_true(unapplied_age(u, 2, 1, 21000) == 0);
    unapplied_free(u);
}

static void test_forget(void **state)
{
    (void)state;
    struct unapplied *u = unapplied_new();
    assert_non_null(u);
    assert_int_equal(unapplied_seen(u, 5, 1000, 1), 0);
    assert_true(unapplied_age(u, 5, 1, 4000) == 3.0);
    unapplied_forget(u, 5, 5000);
    assert_true(unapplied_age(u, 5, 1, 6000) == 1.0); /* rebuilt since 5 s */
    unapplied_forget(u, 9, 6000);                     /* unknown: nothing happens */
    assert_true(unapplied_age(u, 9, 0, 6000) == 0);
    assert_int_equal(unapplied_seen(u, 5, -1, 1), 0); /* no timestamp: not an age */
    assert_true(unapplied_age(u, 5, 0, 7000) == 0);
    unapplied_free(u);
    unapplied_free(NULL);
}

static void test_many_partitions(void **state)
{
    (void)state;
    struct unapplied *u = unapplied_new();
    assert_non_null(u);
    for (int p = 0; p < 100; p++)
        assert_int_equal(unapplied_seen(u, p, 1000 + p, p % 2), 0);
    for (int p = 0; p < 100; p++)
        assert_true(unapplied_age(u, p, 0, 11000) == (p % 2 ? (10000 - p) / 1000.0 : 0));
    unapplied_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caught_up_reads_zero),
        cmocka_unit_test(test_held_event_exact),
        cmocka_unit_test(test_behind_bounded_by_done_and_clear),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_many_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
