/* Unit tests for workers/stage: the stage list of one stream (invitations
 * in, removals and rejoins as a viewer out), its bound, and its round trip
 * through a state record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"

static void test_invite_and_uninvite(void **state)
{
    (void)state;
    struct stage s = {0};
    assert_false(stage_is_invited(&s, "bob"));
    assert_int_equal(stage_invite(&s, "bob"), 1);
    assert_int_equal(stage_invite(&s, "bob"), 0); /* once is enough */
    assert_int_equal(stage_invite(&s, "Zo\xc3\xab"), 1);
    assert_true(stage_is_invited(&s, "bob"));
    assert_false(stage_is_invited(&s, "Bob"));
    assert_int_equal(s.count, 2);
    assert_int_equal(stage_uninvite(&s, "bob"), 1);
    assert_int_equal(stage_uninvite(&s, "bob"), 0);
    assert_false(stage_is_invited(&s, "bob"));
    assert_true(stage_is_invited(&s, "Zo\xc3\xab"));
    stage_clear(&s);
    assert_int_equal(s.count, 0);
    assert_false(stage_is_invited(&s, "Zo\xc3\xab"));
}

/* One invitation past the bound pushes out the oldest; the order stays. */
static void test_bounded(void **state)
{
    (void)state;
    struct stage s = {0};
    char name[16];
    for (int i = 0; i < STAGE_INVITED_MAX + 3; i++) {
        snprintf(name, sizeof name, "u%d", i);
        assert_int_equal(stage_invite(&s, name), 1);
    }
    assert_int_equal(s.count, STAGE_INVITED_MAX);
    assert_false(stage_is_invited(&s, "u0"));
    assert_false(stage_is_invited(&s, "u2"));
    assert_true(stage_is_invited(&s, "u3"));
    assert_string_equal(s.invited[0], "u3");
    snprintf(name, sizeof name, "u%d", STAGE_INVITED_MAX + 2);
    assert_string_equal(s.invited[STAGE_INVITED_MAX - 1], name);
    assert_int_equal(stage_uninvite(&s, "u10"), 1);
    assert_string_equal(s.invited[7], "u11");
    stage_clear(&s);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    struct stage s = {0}, back = {0};
    stage_invite(&s, "bob");
    stage_invite(&s, "carol");
    json_t *list = stage_to_json(&s);
    assert_non_null(list);
    char *text = json_dumps(list, JSON_COMPACT);
    assert_string_equal(text, "[\"bob\",\"carol\"]");
    free(text);
    assert_int_equal(stage_from_json(&back, list), 0);
    assert_int_equal(back.count, 2);
    assert_string_equal(back.invited[1], "carol");
    json_decref(list);

    /* What is not an identity is skipped; a list that is not one is refused. */
    list = json_pack("[s, i, s, s, s]", "dave", 7, "..", "video-composer-1", "erin");
    assert_int_equal(stage_from_json(&back, list), 0);
    assert_int_equal(back.count, 2);
    assert_true(stage_is_invited(&back, "dave"));
    assert_true(stage_is_invited(&back, "erin"));
    assert_false(stage_is_invited(&back, "bob")); /* replaced, not merged */
    json_decref(list);
    list = json_string("bob");
    assert_int_equal(stage_from_json(&back, list), -1);
    assert_int_equal(back.count, 0);
    json_decref(list);
    stage_clear(&s);
    stage_clear(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invite_and_uninvite),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
