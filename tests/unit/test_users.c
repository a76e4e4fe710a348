/* workers/users: the sync worker's users by identity: add, find, remove,
 * growth past many doublings, removals in a nearly full table against a
 * plain list, iteration, and idleness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "users.h"

static void test_add_find_remove(void **state)
{
    (void)state;
    struct users t = {0};
    assert_null(users_find(&t, "ana"));
    struct user *ana = users_add(&t, "ana");
    assert_non_null(ana);
    assert_string_equal(ana->name, "ana");
    assert_true(user_is_idle(ana));
    assert_ptr_equal(users_add(&t, "ana"), ana); /* adding again finds it */
    assert_ptr_equal(users_find(&t, "ana"), ana);
    struct user *empty = users_add(&t, ""); /* the empty identity is an identity */
    assert_non_null(empty);
    assert_ptr_equal(users_find(&t, ""), empty);
    assert_int_equal(t.count, 2);
    users_remove(&t, ana);
    assert_null(users_find(&t, "ana"));
    assert_ptr_equal(users_find(&t, ""), empty);
    assert_int_equal(t.count, 1);
    users_clear(&t);
    assert_int_equal(t.count, 0);
    assert_null(users_find(&t, ""));
    assert_non_null(users_add(&t, "again")); /* a cleared table works */
    users_clear(&t);
}

static void test_idle(void **state)
{
    (void)state;
    struct users t = {0};
    struct user *u = users_add(&t, "bo");
    u->viewer = 1;
    assert_false(user_is_idle(u));
    u->viewer = 0;
    u->provisioned = 1;
    assert_false(user_is_idle(u));
    u->provisioned = 0;
    u->queued = 1;
    assert_false(user_is_idle(u));
    u->queued = 0;
    u->hand_shown = 1;
    assert_false(user_is_idle(u));
    u->hand_shown = 0;
    u->refused = 1;
    assert_false(user_is_idle(u));
    u->refused = 0;
    assert_true(user_is_idle(u));
    users_clear(&t);
}

/* A user on a viewers list and a work list at once: each list keeps its
 * own order, and leaving one leaves the other as it was. */
static void test_two_links(void **state)
{
    (void)state;
    struct users t = {0};
    struct user_list waiting = {0}, queue = {0};
    struct user *a = users_add(&t, "a"), *b = users_add(&t, "b"), *c = users_add(&t, "c");
    user_list_push(&waiting, a);
    user_list_push(&waiting, b);
    user_list_push(&waiting, c);
    user_queue_push(&queue, c);
    user_queue_push(&queue, a);
    user_list_remove(&waiting, a);
    assert_ptr_equal(waiting.head, b);
    assert_ptr_equal(user_next(b, USER_LINK_VIEWERS), c);
    assert_ptr_equal(queue.head, c);
    assert_ptr_equal(user_next(c, USER_LINK_WORK), a);
    user_queue_remove(&queue, c);
    assert_ptr_equal(queue.head, a);
    assert_ptr_equal(queue.tail, a);
    assert_int_equal(queue.count, 1);
    assert_int_equal(waiting.count, 2);
    assert_null(user_next(c, USER_LINK_VIEWERS));
    user_queue_remove(&queue, a);
    assert_null(queue.head);
    assert_null(queue.tail);
    users_clear(&t);
}

/* 200,000 users: every one found after the table doubled many times, half
 * removed (from the middle of chains too), the other half still found. */
static void test_many(void **state)
{
    (void)state;
    enum { N = 200000 };
    struct users t = {0};
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "viewer-%d", i);
        struct user *u = users_add(&t, name);
        assert_non_null(u);
        u->viewer = 1;
    }
    assert_int_equal(t.count, N);
    assert_true(t.nslots * 3 >= (size_t)N * 4); /* at most three quarters full */
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof name, "viewer-%d", i);
        struct user *u = users_find(&t, name);
        assert_non_null(u);
        assert_string_equal(u->name, name);
        users_remove(&t, u);
    }
    assert_int_equal(t.count, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "viewer-%d", i);
        struct user *u = users_find(&t, name);
        if (i % 2) {
            assert_non_null(u);
            assert_true(u->viewer);
        } else {
            assert_null(u);
        }
    }
    users_clear(&t);
}

/* A table kept near three quarters full of its first 64 slots, so that
 * probes run long and wrap around the end, through 20,000 random additions
 * and removals: after each, every user the plain list holds is found and
 * no other, and users_next visits each exactly once. */
static void test_churn_in_a_full_table(void **state)
{
    (void)state;
    enum { NAMES = 200, KEEP = 47 };
    struct users t = {0};
    struct user *held[NAMES] = {0}; /* the plain list: held[i] is user "u<i>" or NULL */
    size_t count = 0;
    unsigned seed = 12345;
    char name[16];
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % NAMES);
        snprintf(name, sizeof name, "u%d", i);
        if (held[i]) {
            users_remove(&t, held[i]);
            held[i] = NULL;
            count--;
        } else if (count < KEEP) {
            held[i] = users_add(&t, name);
            assert_non_null(held[i]);
            count++;
        }
        assert_int_equal(t.count, count);
        assert_int_equal(t.nslots, 64);
        if (step % 97 != 0)
            continue;
        for (int k = 0; k < NAMES; k++) {
            snprintf(name, sizeof name, "u%d", k);
            assert_ptr_equal(users_find(&t, name), held[k]);
        }
        size_t at = 0, seen = 0;
        for (struct user *u; (u = users_next(&t, &at));) {
            int k = atoi(u->name + 1);
            assert_ptr_equal(held[k], u);
            seen++;
        }
        assert_int_equal(seen, count);
    }
    users_clear(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_churn_in_a_full_table),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_two_links),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
