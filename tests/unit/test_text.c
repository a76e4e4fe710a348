/* Unit tests for common/text: UTF-8 length and the identity / stream-name rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "text.h"

#define IDENTITY_OK(s) assert_null(identity_problem((s), strlen(s)))
#define IDENTITY_BAD(s) assert_non_null(identity_problem((s), strlen(s)))
#define STREAM_OK(s) assert_null(stream_name_problem((s), strlen(s)))
#define STREAM_BAD(s) assert_non_null(stream_name_problem((s), strlen(s)))

static void test_utf8_length(void **state)
{
    (void)state;
    assert_int_equal(utf8_length("", 0), 0);
    assert_int_equal(utf8_length("abc", 3), 3);
    assert_int_equal(utf8_length("Zo\xc3\xab", 4), 3);        /* Zoë */
    assert_int_equal(utf8_length("\xf0\x9f\x8e\xa4", 4), 1);  /* microphone emoji */
    assert_int_equal(utf8_length("\xff", 1), -1);             /* never valid */
    assert_int_equal(utf8_length("\xc3", 1), -1);             /* truncated */
    assert_int_equal(utf8_length("\xc0\xaf", 2), -1);         /* overlong '/' */
    assert_int_equal(utf8_length("\xed\xa0\x80", 3), -1);     /* surrogate */
    assert_int_equal(utf8_length("\xf4\x90\x80\x80", 4), -1); /* above U+10FFFF */
    assert_int_equal(utf8_length("a\x80", 2), -1);            /* stray continuation */
}

static void test_identity_accepts_what_people_type(void **state)
{
    (void)state;
    IDENTITY_OK("alice");
    IDENTITY_OK("Zo\xc3\xab Kravitz");
    IDENTITY_OK("\xe5\xb1\xb1\xe7\x94\xb0 \xe5\xa4\xaa\xe9\x83\x8e"); /* 山田 太郎 */
    IDENTITY_OK("dj \xf0\x9f\x8e\xa7 night");
    IDENTITY_OK("o'brien-smith (host)");
    char longest[IDENTITY_MAX_CHARS + 1];
    memset(longest, 'x', IDENTITY_MAX_CHARS);
    longest[IDENTITY_MAX_CHARS] = '\0';
    IDENTITY_OK(longest);
}

static void test_identity_rejects(void **state)
{
    (void)state;
    IDENTITY_BAD("");
    IDENTITY_BAD("tab\there");
    IDENTITY_BAD("new\nline");
    IDENTITY_BAD("del\x7f");
    IDENTITY_BAD("c1\xc2\x85");     /* U+0085 NEL */
    IDENTITY_BAD("ls\xe2\x80\xa8"); /* U+2028 */
    IDENTITY_BAD("bad\xff");
    IDENTITY_BAD(" leading");
    IDENTITY_BAD("trailing ");
    IDENTITY_BAD("ac/dc");
    IDENTITY_BAD("video-composer-1");
    assert_non_null(identity_problem("nul\0byte", 8));
    char too_long[IDENTITY_MAX_CHARS + 2];
    memset(too_long, 'x', IDENTITY_MAX_CHARS + 1);
    too_long[IDENTITY_MAX_CHARS + 1] = '\0';
    IDENTITY_BAD(too_long);
    assert_string_equal(identity_problem("ac/dc", 5), "must not contain '/'");
}

static void test_stream_name_rules(void **state)
{
    (void)state;
    STREAM_OK("friday-townhall");
    STREAM_OK("Friday Townhall 2026");
    STREAM_OK("caf\xc3\xa9.live_1~x");
    STREAM_OK("...a");
    STREAM_BAD("");
    STREAM_BAD("a/b");
    STREAM_BAD("a?b");
    STREAM_BAD("a#b");
    STREAM_BAD("100%");
    STREAM_BAD("a:b");
    STREAM_BAD("a\\b");
    STREAM_BAD(".");
    STREAM_BAD("..");
    STREAM_BAD(" padded");
    STREAM_BAD("ctl\x01");
    STREAM_BAD("bad\xc3");
    STREAM_BAD("RM0123456789abcdef0123456789abcdef");
    STREAM_OK("RM0123456789abcdef0123456789abcdeg");
    char too_long[STREAM_NAME_MAX_CHARS + 2];
    memset(too_long, 's', STREAM_NAME_MAX_CHARS + 1);
    too_long[STREAM_NAME_MAX_CHARS + 1] = '\0';
    STREAM_BAD(too_long);
    too_long[STREAM_NAME_MAX_CHARS] = '\0';
    STREAM_OK(too_long);
}

/* "." and ".." are URL dot segments: as a Twilio path segment they would
 * address the parent resource (a raised hand keyed ".." is the whole
 * raised_hands map), so neither kind of name may be one. Names that merely
 * contain dots are fine. */
static void test_dot_segments_refused_everywhere(void **state)
{
    (void)state;
    static const char *const dots[] = {".", ".."};
    for (int i = 0; i < 2; i++) {
        IDENTITY_BAD(dots[i]);
        STREAM_BAD(dots[i]);
        assert_int_equal(is_dot_segment(dots[i], strlen(dots[i])), 1);
    }
    assert_string_equal(identity_problem("..", 2), "must not be \".\" or \"..\" (URL path segments)");
    IDENTITY_OK("...");
    IDENTITY_OK(".a");
    IDENTITY_OK("a..");
    IDENTITY_OK("J. R. R.");
    STREAM_BAD("..."); /* stream names: no name made only of dots */
    assert_int_equal(is_dot_segment("...", 3), 0);
    assert_int_equal(is_dot_segment("", 0), 0);
    assert_int_equal(is_dot_segment(".a", 2), 0);
    assert_int_equal(is_dot_segment("..x", 2), 1); /* only len bytes count */
    IDENTITY_BAD(". ");                            /* a trailing space is refused anyway */
}

static void test_length_counts_characters_not_bytes(void **state)
{
    (void)state;
    /* 64 two-byte characters is 128 bytes but still a valid stream name. */
    char name[2 * STREAM_NAME_MAX_CHARS + 1];
    for (int i = 0; i < STREAM_NAME_MAX_CHARS; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[2 * STREAM_NAME_MAX_CHARS] = '\0';
    STREAM_OK(name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_length),
        cmocka_unit_test(test_identity_accepts_what_people_type),
        cmocka_unit_test(test_identity_rejects),
        cmocka_unit_test(test_stream_name_rules),
        cmocka_unit_test(test_dot_segments_refused_everywhere),
        cmocka_unit_test(test_length_counts_characters_not_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
