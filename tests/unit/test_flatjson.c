/* Unit tests for common/flatjson: the members of flat objects, and the
 * refusals that send a caller to a full JSON parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flatjson.h"

static int members(const char *text, struct flatjson_member *out, size_t max)
{
    return flatjson_members(text, strlen(text), out, max);
}

static void assert_member(const struct flatjson_member *m, const char *key, enum flatjson_kind kind, const char *value)
{
    assert_int_equal(m->key_len, strlen(key));
    assert_memory_equal(m->key, key, m->key_len);
    assert_int_equal(m->kind, kind);
    assert_int_equal(m->value_len, strlen(value));
    assert_memory_equal(m->value, value, m->value_len);
}

static void test_members_in_order(void **state)
{
    (void)state;
    struct flatjson_member m[8];
    assert_int_equal(members(" {\"a\":\"x y\", \"n\" : -12,\"o\":{\"k\":[1,{\"}\":\"\\\"]\"}]},\"t\":true,\"z\":0}\n",
                             m, 8),
                     5);
    assert_member(&m[0], "a", FLATJSON_STRING, "x y");
    assert_member(&m[1], "n", FLATJSON_INTEGER, "-12");
    assert_member(&m[2], "o", FLATJSON_OTHER, "{\"k\":[1,{\"}\":\"\\\"]\"}]}");
    assert_member(&m[3], "t", FLATJSON_OTHER, "true");
    assert_member(&m[4], "z", FLATJSON_INTEGER, "0");
    assert_int_equal(members("{}", m, 8), 0);
    assert_int_equal(members("{\"\":\"\"}", m, 8), 1);
    assert_member(&m[0], "", FLATJSON_STRING, "");
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "",                                      /* nothing */
        "[1]",                                   /* not an object */
        "{\"a\":\"x\"",                          /* no end */
        "{\"a\":\"x\"} y",                       /* bytes after the end */
        "{\"a\":\"x\",}",                        /* a trailing comma */
        "{\"a\" \"x\"}",                         /* no colon */
        "{a:\"x\"}",                             /* a key without quotes */
        "{\"a\":\"x\\ny\"}",                     /* an escape */
        "{\"a\\u0062\":1}",                      /* an escape in a key */
        "{\"a\":\"caf\xc3\xa9\"}",               /* not ASCII */
        "{\"a\":\"x\ty\"}",                      /* a control character */
        "{\"a\":1.5}",                           /* a fraction */
        "{\"a\":1e3}",                           /* an exponent */
        "{\"a\":01}",                            /* a leading zero */
        "{\"a\":-}",                             /* a sign alone */
        "{\"a\":{\"b\":1}",                      /* an object not closed */
        "{\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}", /* more members than asked for */
    };
    struct flatjson_member m[2];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (members(refused[i], m, 2) != -1)
            fail_msg("taken: %s", refused[i]);
    /* A NUL byte is not whitespace. */
    assert_int_equal(flatjson_members("{}\0", 3, m, 2), -1);
}

/* Strings are read 8 bytes at a time: every byte value at every position
 * of keys and values of every length up to 20 is judged as one by one
 * (taken when it is printable ASCII other than '"' and '\\'). */
static void test_every_byte_everywhere(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 20; len++) {
        for (size_t at = 0; at < len; at++) {
            for (int b = 0; b < 256; b++) {
                char s[21];
                memset(s, 'a', len);
                s[at] = (char)b;
                int plain = b >= 0x20 && b < 0x7f && b != '"' && b != '\\';
                char text[64];
                struct flatjson_member m[2];
                /* as a value */
                int n = snprintf(text, sizeof text, "{\"k\":\"%.*s\"}", (int)len, s);
                memcpy(text + 6, s, len); /* a NUL byte too */
                int got = flatjson_members(text, (size_t)n, m, 2);
                if (got != (plain ? 1 : -1))
                    fail_msg("value of %zu bytes with 0x%02x at %zu: %d", len, b, at, got);
                if (plain)
                    assert_int_equal(m[0].value_len, len);
                /* as a key */
                n = snprintf(text, sizeof text, "{\"%.*s\":1}", (int)len, s);
                memcpy(text + 2, s, len);
                got = flatjson_members(text, (size_t)n, m, 2);
                if (got != (plain ? 1 : -1))
                    fail_msg("key of %zu bytes with 0x%02x at %zu: %d", len, b, at, got);
                if (plain)
                    assert_int_equal(m[0].key_len, len);
            }
        }
    }
}

/* Every prefix of an object is refused, read from a buffer of exactly its
 * length (the address sanitizer sees any read past the end). */
static void test_prefixes(void **state)
{
    (void)state;
    const char *text = "{\"identity\":\"alice-and-bob-with-a-long-name\",\"n\":12345678901234,\"o\":{\"a\":[1]}}";
    size_t len = strlen(text);
    struct flatjson_member m[4];
    for (size_t k = 0; k <= len; k++) {
        char *copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, text, k);
        int got = flatjson_members(copy, k, m, 4);
        free(copy);
        if (got != (k == len ? 3 : -1))
            fail_msg("prefix of %zu bytes: %d", k, got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_in_order),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_every_byte_everywhere),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests_name("flatjson", tests, NULL, NULL);
}
