/* common/random: bytes drawn in per-thread blocks are never handed out
 * twice (within a block, across refills, across threads, and between a
 * parent and a forked child), and large draws work; random_unit gives fractions in [0, 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "random.h"

#define DRAWS 2000 /* 16-byte draws: several refills of a 4 KiB block */

static int compare16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* 1 when two of the n 16-byte values are equal. */
static int any_repeat(unsigned char (*values)[16], size_t n)
{
    qsort(values, n, 16, compare16);
    for (size_t i = 1; i < n; i++)
        if (memcmp(values[i - 1], values[i], 16) == 0)
            return 1;
    return 0;
}

static void test_no_repeats_across_refills(void **state)
{
    (void)state;
    unsigned char(*values)[16] = calloc(DRAWS, 16);
    assert_non_null(values);
    for (size_t i = 0; i < DRAWS; i++)
        assert_int_equal(random_bytes(values[i], 16), 0);
    assert_false(any_repeat(values, DRAWS));
    free(values);
}

static void test_odd_sizes_and_large_draws(void **state)
{
    (void)state;
    unsigned char small[3], odd[1001], large[10000];
    unsigned char zeros[10000] = {0};
    for (int i = 0; i < 50; i++) /* sizes that do not divide the block */
        assert_int_equal(random_bytes(small, sizeof small), 0);
    assert_int_equal(random_bytes(odd, sizeof odd), 0);
    assert_memory_not_equal(odd, zeros, sizeof odd);
    assert_int_equal(random_bytes(large, sizeof large), 0);
    assert_memory_not_equal(large, zeros, sizeof large);
    assert_int_equal(random_bytes(large, 0), 0);
}

static void *draw_thread(void *arg)
{
    unsigned char(*values)[16] = arg;
    for (size_t i = 0; i < DRAWS; i++)
        if (random_bytes(values[i], 16) < 0)
            return (void *)1;
    return NULL;
}

static void test_threads_draw_different_bytes(void **state)
{
    (void)state;
    unsigned char(*values)[16] = calloc(2 * DRAWS, 16);
    assert_non_null(values);
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, draw_thread, values), 0);
    assert_int_equal(pthread_create(&b, NULL, draw_thread, values + DRAWS), 0);
    void *ra, *rb;
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_null(ra);
    assert_null(rb);
    assert_false(any_repeat(values, 2 * DRAWS));
    free(values);
}

static void test_forked_child_does_not_repeat_the_parent(void **state)
{
    (void)state;
    unsigned char first[16];
    assert_int_equal(random_bytes(first, sizeof first), 0); /* the parent's block is filled */
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned char child[16];
        int ok = random_bytes(child, sizeof child) == 0 &&
                 write(pipefd[1], child, sizeof child) == (ssize_t)sizeof child;
        _exit(ok ? 0 : 1);
    }
    close(pipefd[1]);
    unsigned char from_child[16], parent[16];
    assert_int_equal(read(pipefd[0], from_child, sizeof from_child), (ssize_t)sizeof from_child);
    close(pipefd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(random_bytes(parent, sizeof parent), 0);
    /* Without the fork handler both would take the same next 16 bytes. */
    assert_memory_not_equal(from_child, parent, sizeof parent);
}

/* random_unit: in [0, 1), spread over the interval, not repeating. */
static void test_unit_fractions(void **state)
{
    (void)state;
    int low = 0, high = 0;
    double previous = -1;
    for (int i = 0; i < 10000; i++) {
        double r = random_unit();
        assert_true(r >= 0.0 && r < 1.0);
        assert_true(r != previous);
        previous = r;
        low += r < 0.5;
        high += r >= 0.5;
    }
    assert_true(low > 4000 && high > 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_repeats_across_refills),
        cmocka_unit_test(test_odd_sizes_and_large_draws),
        cmocka_unit_test(test_threads_draw_different_bytes),
        cmocka_unit_test(test_forked_child_does_not_repeat_the_parent),
        cmocka_unit_test(test_unit_fractions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
