/* workers/id_window: the ring of recent event ids. An id is found while it
 * is among the last ID_WINDOW_SIZE added and not after; ids that share
 * their first eight bytes are still told apart; an empty window finds
 * nothing (not even an empty id); the ids read back oldest first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "id_window.h"

/* The n-th test id: 32 hex digits, the same first eight for all. */
static void id_of(unsigned n, char out[EVENT_ID_LEN + 1])
{
    snprintf(out, EVENT_ID_LEN + 1, "00000000%024x", n);
}

static void test_empty_window_finds_nothing(void **state)
{
    (void)state;
    struct id_window w;
    id_window_clear(&w);
    char id[EVENT_ID_LEN + 1];
    id_of(1, id);
    assert_false(id_window_has(&w, id));
    assert_false(id_window_has(&w, "00000000000000000000000000000000"));
    for (unsigned i = 0; i < ID_WINDOW_SIZE; i++)
        assert_string_equal(id_window_at(&w, i), "");
}

static void test_window_keeps_the_last_ids(void **state)
{
    (void)state;
    struct id_window w;
    id_window_clear(&w);
    char id[EVENT_ID_LEN + 1];
    unsigned total = 3 * ID_WINDOW_SIZE + 5;
    for (unsigned n = 0; n < total; n++) {
        id_of(n, id);
        id_window_add(&w, id);
        assert_true(id_window_has(&w, id));
        for (unsigned back = 0; back <= n && back < 2 * ID_WINDOW_SIZE; back++) {
            id_of(n - back, id);
            assert_int_equal(id_window_has(&w, id), back < ID_WINDOW_SIZE);
        }
    }
    for (unsigned i = 0; i < ID_WINDOW_SIZE; i++) {
        id_of(total - ID_WINDOW_SIZE + i, id);
        assert_string_equal(id_window_at(&w, i), id); /* oldest first */
    }
}

static void test_partly_filled_reads_back_in_order(void **state)
{
    (void)state;
    struct id_window w;
    id_window_clear(&w);
    char id[EVENT_ID_LEN + 1];
    for (unsigned n = 0; n < 3; n++) {
        id_of(n, id);
        id_window_add(&w, id);
    }
    unsigned empty = ID_WINDOW_SIZE - 3;
    for (unsigned i = 0; i < empty; i++)
        assert_string_equal(id_window_at(&w, i), "");
    for (unsigned n = 0; n < 3; n++) {
        id_of(n, id);
        assert_string_equal(id_window_at(&w, empty + n), id);
    }
    id_window_clear(&w);
    id_of(0, id);
    assert_false(id_window_has(&w, id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_window_finds_nothing),
        cmocka_unit_test(test_window_keeps_the_last_ids),
        cmocka_unit_test(test_partly_filled_reads_back_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
