/* workers/id_window: the ring of recent event ids and its hash index. An
 * id is found while it is among the last ID_WINDOW_SIZE added and not
 * after, whether the ids spread over the buckets or all fall in one (the
 * same first eight bytes); an id added twice stays found while either copy
 * is in the ring; an empty window finds nothing; the ids read back oldest
 * first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "id_window.h"

static int same_head; /* the test ids share their first eight bytes */

/* The n-th test id: 32 hex digits. */
static void id_of(unsigned n, char out[EVENT_ID_LEN + 1])
{
    snprintf(out, EVENT_ID_LEN + 1, "%08x%024x", same_head ? 0u : n * 2654435761u, n);
}

static void assert_window_keeps_the_last_ids(void);

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
    for (same_head = 0; same_head <= 1; same_head++)
        assert_window_keeps_the_last_ids();
}

static void test_id_added_twice(void **state)
{
    (void)state;
    struct id_window w;
    id_window_clear(&w);
    char id[EVENT_ID_LEN + 1], other[EVENT_ID_LEN + 1];
    id_of(7, id);
    id_window_add(&w, id);
    id_window_add(&w, id);
    /* The first copy is overwritten by the 63rd other id, the second by
     * the 64th. */
    for (unsigned n = 0; n < ID_WINDOW_SIZE; n++) {
        id_of(1000 + n, other);
        id_window_add(&w, other);
        assert_int_equal(id_window_has(&w, id), n < ID_WINDOW_SIZE - 1);
    }
}

static void assert_window_keeps_the_last_ids(void)
{
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
        cmocka_unit_test(test_id_added_twice),
        cmocka_unit_test(test_partly_filled_reads_back_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
