/* common/siphash: SipHash-2-4 against the reference vectors of the paper
 * (key 00..0f, messages 00..(n-1)), and keys that change the hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "siphash.h"

static void test_reference_vectors(void **state)
{
    (void)state;
    unsigned char key[SIPHASH_KEY_BYTES], msg[64];
    for (int i = 0; i < SIPHASH_KEY_BYTES; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    assert_true(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(siphash24(key, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL); /* the paper's worked example */
}

static void test_key_matters(void **state)
{
    (void)state;
    unsigned char a[SIPHASH_KEY_BYTES] = {0}, b[SIPHASH_KEY_BYTES] = {0};
    b[15] = 1;
    const char *text = "198.51.100.7";
    assert_true(siphash24(a, text, strlen(text)) != siphash24(b, text, strlen(text)));
    assert_true(siphash24(a, text, strlen(text)) == siphash24(a, text, strlen(text)));
    assert_true(siphash24(a, "ab", 2) != siphash24(a, "ab\0", 3)); /* the length counts */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_key_matters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
