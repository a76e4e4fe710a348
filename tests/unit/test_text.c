/* Unit tests for common/text: UTF-8 length and the identity / stream-name rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
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

/* --- the ASCII shortcut against the per-character path ----------------------
 *
 * identity_problem and stream_name_problem skip the UTF-8 decoding for names
 * of plain ASCII. These tests hold them to the answers of the per-character
 * path (the *_reference functions) on every kind of input: same NULL, same
 * reason. */

/* Fails the test, naming the input in hex, when the two answers differ. */
static void assert_same(const char *kind, const char *got, const char *want, const char *s, size_t len)
{
    if (got == want || (got && want && strcmp(got, want) == 0))
        return;
    char hex[3 * 300 + 1] = "";
    for (size_t i = 0; i < len && i < 300; i++)
        snprintf(hex + 3 * i, 4, "%02x ", (unsigned char)s[i]);
    fail_msg("%s of %zu bytes [%s]: shortcut says \"%s\", per-character path says \"%s\"", kind, len, hex,
             got ? got : "(null)", want ? want : "(null)");
}

static void same_answers(const char *s, size_t len)
{
    assert_same("identity", identity_problem(s, len), identity_problem_reference(s, len), s, len);
    assert_same("stream name", stream_name_problem(s, len), stream_name_problem_reference(s, len), s, len);
}

static void same_answers_str(const char *s)
{
    same_answers(s, strlen(s));
}

static void test_shortcut_single_bytes_and_pairs(void **state)
{
    (void)state;
    same_answers("", 0);
    for (int a = 0; a < 256; a++) {
        char one = (char)a;
        same_answers(&one, 1);
        for (int b = 0; b < 256; b++) {
            char two[2] = {(char)a, (char)b};
            same_answers(two, 2);
        }
    }
}

/* Every byte first, in the middle and last of names that are otherwise fine,
 * both in place of a character and added to it. */
static void test_shortcut_every_byte_at_every_end(void **state)
{
    (void)state;
    static const char *const bases[] = {"viewer-123456", "alice", "replay-07", "my stream", "ab", "caf\xc3\xa9 x"};
    for (size_t k = 0; k < sizeof bases / sizeof bases[0]; k++) {
        size_t n = strlen(bases[k]);
        size_t where[] = {0, n / 2, n - 1};
        for (int c = 0; c < 256; c++) {
            for (size_t w = 0; w < 3; w++) {
                char buf[64];
                memcpy(buf, bases[k], n);
                buf[where[w]] = (char)c; /* replaced */
                same_answers(buf, n);
                memcpy(buf, bases[k], where[w]); /* inserted before where[w] */
                buf[where[w]] = (char)c;
                memcpy(buf + where[w] + 1, bases[k] + where[w], n - where[w]);
                same_answers(buf, n + 1);
            }
            char buf[64]; /* appended */
            memcpy(buf, bases[k], n);
            buf[n] = (char)c;
            same_answers(buf, n + 1);
        }
    }
}

/* Names of count copies of unit, then with a space or a '/' at either end. */
static void lengths_of(const char *unit)
{
    size_t u = strlen(unit);
    char buf[4 * (IDENTITY_MAX_CHARS + 4) + 2];
    for (size_t count = 0; count <= IDENTITY_MAX_CHARS + 3; count++) {
        size_t len = 0;
        for (size_t i = 0; i < count; i++, len += u)
            memcpy(buf + len, unit, u);
        same_answers(buf, len);
        buf[len] = ' ';
        same_answers(buf, len + 1);
        buf[len] = '/';
        same_answers(buf, len + 1);
        if (len > 0) {
            char first = buf[0];
            buf[0] = ' ';
            same_answers(buf, len);
            buf[0] = first;
        }
    }
}

static void test_shortcut_lengths_around_the_limits(void **state)
{
    (void)state;
    lengths_of("x");
    lengths_of(".");
    lengths_of(" ");
    lengths_of("\xc3\xa9");         /* é: two bytes */
    lengths_of("\xe2\x82\xac");     /* €: three bytes */
    lengths_of("\xf0\x9f\x8e\xa4"); /* emoji: four bytes */
    lengths_of("a\xc3\xa9");
    /* The room SID shape (34 bytes) and the reserved identity prefix. */
    same_answers_str("RM0123456789abcdef0123456789ABCDEF");
    same_answers_str("RM0123456789abcdef0123456789abcde");
    same_answers_str("RM0123456789abcdef0123456789abcdef0");
    same_answers_str("RM0123456789abcdef0123456789abcdeg");
    same_answers_str("rm0123456789abcdef0123456789abcdef");
    same_answers_str("video-composer");
    same_answers_str("video-compose");
    same_answers_str("video-composer-7");
    same_answers_str("Video-composer");
}

static void test_shortcut_dots_spaces_and_utf8(void **state)
{
    (void)state;
    static const char *const cases[] = {".",
                                        "..",
                                        "...",
                                        ". ",
                                        " .",
                                        " ",
                                        "  ",
                                        "a ",
                                        " a",
                                        "a b",
                                        "a  b",
                                        ".a",
                                        "a.",
                                        "..a",
                                        "J. R. R.",
                                        "Zo\xc3\xab",
                                        "\xe5\xb1\xb1\xe7\x94\xb0",
                                        "dj \xf0\x9f\x8e\xa7",
                                        "\xc2\x85",
                                        "\xc2\x9f",
                                        "\xc2\xa0",
                                        "\xe2\x80\xa8",
                                        "\xe2\x80\xa9",
                                        "\xe2\x80\xaa",
                                        "\xc0\xaf",
                                        "\xc1\xbf",
                                        "\xe0\x80\xaf",
                                        "\xf0\x80\x80\xaf",
                                        "\xed\xa0\x80",
                                        "\xed\x9f\xbf",
                                        "\xee\x80\x80",
                                        "\xf4\x8f\xbf\xbf",
                                        "\xf4\x90\x80\x80",
                                        "\xf8\x88\x80\x80\x80",
                                        "\xfe",
                                        "\xff",
                                        "\x80",
                                        "a\x80",
                                        "\xc3",
                                        "a\xc3",
                                        "\xe2\x82",
                                        "\xf0\x9f\x8e",
                                        "\xc3\x28",
                                        "\xc3\xa9/",
                                        "\xc3\xa9?",
                                        "/\xc3\xa9",
                                        "\xc3\xa9 ",
                                        " \xc3\xa9",
                                        "\xc3\xa9\x01",
                                        "\x01\xc3\xa9",
                                        "\x7f\xc3\xa9"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_answers_str(cases[i]);
    same_answers("a\0b", 3);
    same_answers("\0", 1);
}

static uint64_t next_random(uint64_t *x)
{
    /* xorshift64: fixed seed, so a failure repeats */
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Appends one piece to buf at *len: mostly plain ASCII, else a character
 * that some rule cares about, a valid multi-byte character or broken UTF-8.
 * With tame set, only characters every name may hold (and spaces, dots). */
static void random_piece(uint64_t *x, int tame, char *buf, size_t *len)
{
    static const char tame_chars[] = "abcxyzABCXYZ0189-_~. ";
    static const char *const pieces[] = {" ",
                                         ".",
                                         "/",
                                         "?",
                                         "%",
                                         "\\",
                                         "\"",
                                         "\x01",
                                         "\x7f",
                                         "\t",
                                         "\xc3\xa9",
                                         "\xc2\x85",
                                         "\xe2\x80\xa8",
                                         "\xf0\x9f\x8e\xa4",
                                         "\xc3",
                                         "\x80",
                                         "\xff",
                                         "\xc0\xaf",
                                         "\xed\xa0\x80",
                                         "\xf4\x90\x80\x80"};
    uint64_t r = next_random(x);
    if (tame) {
        buf[(*len)++] = tame_chars[(r >> 8) % (sizeof tame_chars - 1)];
    } else if (r % 4 != 0) {
        buf[(*len)++] = (char)(0x20 + (r >> 8) % 95);
    } else if (r % 16 == 0) {
        buf[(*len)++] = (char)((r >> 8) & 0xff);
    } else {
        const char *p = pieces[(r >> 8) % (sizeof pieces / sizeof pieces[0])];
        size_t n = strlen(p);
        memcpy(buf + *len, p, n);
        *len += n;
    }
}

static void test_shortcut_random_names(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 20000; round++) {
        char buf[4 * 150];
        size_t len = 0;
        size_t pieces = next_random(&x) % (round % 4 == 1 ? 20 : 140); /* short tame names too */
        for (size_t i = 0; i < pieces; i++)
            random_piece(&x, round % 2, buf, &len);
        same_answers(buf, len);
    }
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
        cmocka_unit_test(test_shortcut_single_bytes_and_pairs),
        cmocka_unit_test(test_shortcut_every_byte_at_every_end),
        cmocka_unit_test(test_shortcut_lengths_around_the_limits),
        cmocka_unit_test(test_shortcut_dots_spaces_and_utf8),
        cmocka_unit_test(test_shortcut_random_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
