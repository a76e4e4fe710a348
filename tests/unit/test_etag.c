/* ingress/etag: strong tags from body bytes, and If-None-Match evaluated
 * as RFC 9110 says (the tag, lists, weak comparison, "*", malformed
 * values matching nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../ingress/etag.h"

static void test_tag_of_body(void **state)
{
    (void)state;
    char a[ETAG_SIZE], b[ETAG_SIZE], c[ETAG_SIZE];
    etag_of("{\"x\":1}", 7, a);
    etag_of("{\"x\":1}", 7, b);
    etag_of("{\"x\":2}", 7, c);
    assert_int_equal(strlen(a), ETAG_SIZE - 1);
    assert_true(a[0] == '"' && a[ETAG_SIZE - 2] == '"');
    for (int i = 1; i < ETAG_SIZE - 2; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* SHA-256 of "", first 16 bytes: e3b0c442 98fc1c14 9afbf4c8 996fb924. */
    etag_of("", 0, a);
    assert_string_equal(a, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
}

static void test_matching(void **state)
{
    (void)state;
    const char *tag = "\"e3b0c44298fc1c149afbf4c8996fb924\"";
    static const char *const match[] = {
        "\"e3b0c44298fc1c149afbf4c8996fb924\"",
        "W/\"e3b0c44298fc1c149afbf4c8996fb924\"",      /* weak comparison */
        "\"a\", \"e3b0c44298fc1c149afbf4c8996fb924\"", /* a list */
        "\"a\",W/\"e3b0c44298fc1c149afbf4c8996fb924\",\"b\"",
        " \t\"e3b0c44298fc1c149afbf4c8996fb924\" \t", /* optional whitespace */
        ", ,\"e3b0c44298fc1c149afbf4c8996fb924\",",   /* empty list elements */
        "*",
        "  *  ",
    };
    static const char *const no_match[] = {
        "",
        "\"a\"",
        "W/\"a\", \"b\"",
        "e3b0c44298fc1c149afbf4c8996fb924",              /* not quoted: malformed */
        "\"e3b0c44298fc1c149afbf4c8996fb924",            /* not closed */
        "w/\"e3b0c44298fc1c149afbf4c8996fb924\"",        /* W/ is case-sensitive */
        "\"e3b0c44298fc1c149afbf4c8996fb924\" \"x\"",    /* no comma */
        "\"x y\", \"e3b0c44298fc1c149afbf4c8996fb924\"", /* a space in a tag: malformed, all of it */
        "*, \"e3b0c44298fc1c149afbf4c8996fb924\"",       /* * is alone or nothing */
        "\"E3B0C44298FC1C149AFBF4C8996FB924\"",          /* tags are compared octet by octet */
        "\"e3b0c44298fc1c149afbf4c8996fb92\"",           /* a prefix */
        "\"e3b0c44298fc1c149afbf4c8996fb9244\"",         /* longer */
    };
    for (size_t i = 0; i < sizeof match / sizeof match[0]; i++)
        if (!etag_matches(match[i], tag))
            fail_msg("If-None-Match: %s should match", match[i]);
    for (size_t i = 0; i < sizeof no_match / sizeof no_match[0]; i++)
        if (etag_matches(no_match[i], tag))
            fail_msg("If-None-Match: %s should not match", no_match[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_of_body),
        cmocka_unit_test(test_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
