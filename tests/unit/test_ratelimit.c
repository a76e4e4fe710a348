/* common/ratelimit: bursts, refills, waits, independent keys, bounded
 * memory under many keys, the whole table used, and exact counts under
 * concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>

#include "ratelimit.h"

static void test_unlimited(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(0, 0, 10);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(rl, "10.0.0.1", 0), 0);
    assert_int_equal(ratelimit_size(rl), 0);
    ratelimit_free(rl);
    assert_null(ratelimit_new(5, 0.5, 10)); /* a burst under one token admits nothing */
}

static void test_burst_refill_and_wait(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(2, 3, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "alice", 1000), 0);
    long wait = ratelimit_take(rl, "alice", 1000);
    assert_in_range(wait, 499, 501);                      /* 2 tokens/s: one token in 500 ms */
    assert_int_equal(ratelimit_take(rl, "bob", 1000), 0); /* keys are independent */
    assert_true(ratelimit_take(rl, "alice", 1250) > 0);
    assert_int_equal(ratelimit_take(rl, "alice", 1500), 0);
    assert_true(ratelimit_take(rl, "alice", 1500) > 0);
    /* A long pause refills to the burst, not beyond. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "alice", 100000), 0);
    assert_true(ratelimit_take(rl, "alice", 100000) > 0);
    assert_int_equal(ratelimit_size(rl), 2);
    ratelimit_free(rl);
}

/* A taker that keeps headroom stops while that much is left, and the
 * headroom stays for an ordinary taker. */
static void test_keeping_headroom(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 10, 100);
    for (int i = 0; i < 6; i++)
        assert_int_equal(ratelimit_take_keeping(rl, "map", 1000, 4), 0);
    long wait = ratelimit_take_keeping(rl, "map", 1000, 4);
    assert_in_range(wait, 99, 101); /* 10 tokens/s: one more above the 4 kept in 100 ms */
    for (int i = 0; i < 4; i++)
        assert_int_equal(ratelimit_take(rl, "map", 1000), 0);
    assert_true(ratelimit_take(rl, "map", 1000) > 0);
    /* Refilled, the ordinary taker's claim comes first: the keeper waits
     * until the bucket holds more than it keeps. */
    assert_true(ratelimit_take_keeping(rl, "map", 1300, 4) > 0); /* 3 tokens */
    assert_int_equal(ratelimit_take(rl, "map", 1300), 0);
    assert_int_equal(ratelimit_take_keeping(rl, "map", 1900, 4), 0); /* 8 tokens */
    /* Keeping more than the bucket holds means keeping all but one. */
    assert_int_equal(ratelimit_take_keeping(rl, "other", 1000, 1000), 0);
    assert_true(ratelimit_take_keeping(rl, "other", 1000, 1000) > 0);
    ratelimit_free(rl);
}

static void test_bounded_keys(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 1, 1000);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "198.51.%d.%d", i / 256, i % 256);
        assert_int_equal(ratelimit_take(rl, key, 0), 0); /* a new key is never refused */
        assert_true(ratelimit_size(rl) <= 1008);         /* 1000 rounded up to 16 stripes */
    }
    /* A key evicted while busy starts full again; one still tracked does not. */
    snprintf(key, sizeof key, "198.51.%d.%d", 99999 / 256, 99999 % 256);
    assert_true(ratelimit_take(rl, key, 0) > 0);
    /* Idle entries are dropped first when room is needed. */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "203.0.%d.%d", i / 256, i % 256);
        assert_int_equal(ratelimit_take(rl, key, 5000), 0);
    }
    assert_true(ratelimit_size(rl) <= 1008);
    ratelimit_free(rl);
}

/* Keys spread over every slot of every stripe (issue 15 item 7: the stripe
 * and the slot came from the same low bits, so 1 slot in 16 was used), and
 * no chain grows long, for keys as alike as consecutive addresses. */
static void test_whole_table_used(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 1, 16384);
    assert_non_null(rl);
    char key[48];
    for (int i = 0; i < 8192; i++) {
        snprintf(key, sizeof key, "2001:db8:%x:%x::/64", i / 256, i % 256);
        assert_int_equal(ratelimit_take(rl, key, 0), 0);
    }
    struct ratelimit_stats st;
    ratelimit_stats(rl, &st);
    assert_int_equal(st.keys, 8192);
    assert_int_equal(st.slots, 16384);
    /* Uniform hashing fills 1 - e^-0.5 of the slots, about 6,450. */
    assert_true(st.slots_used > 5800);
    assert_true(st.longest_chain <= 10);
    ratelimit_free(rl);
}

struct hammer {
    struct ratelimit *rl;
    long allowed;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char key[32];
    for (int round = 0; round < 50; round++)
        for (int k = 0; k < 20; k++) {
            snprintf(key, sizeof key, "user-%d", k);
            if (ratelimit_take(h->rl, key, 42) == 0)
                h->allowed++;
        }
    return NULL;
}

static void test_concurrent_exact(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 7, 100);
    struct hammer h[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){rl, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_main, &h[i]), 0);
    }
    long total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 20 * 7); /* time stands still: each key gives its burst once */
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),        cmocka_unit_test(test_burst_refill_and_wait),
        cmocka_unit_test(test_keeping_headroom), cmocka_unit_test(test_bounded_keys),
        cmocka_unit_test(test_whole_table_used), cmocka_unit_test(test_concurrent_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
