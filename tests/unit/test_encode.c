/* Unit tests for common/encode: hex and base64 (RFC 4648 test vectors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "encode.h"

static void test_hex(void **state)
{
    (void)state;
    char out[9];
    hex_encode((const unsigned char *)"\x00\xab\xff\x10", 4, out);
    assert_string_equal(out, "00abff10");
}

static void test_base64_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const bare[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        size_t n = strlen(plain[i]);
        assert_int_equal(base64_encoded_len(n, 1), strlen(padded[i]));
        assert_int_equal(base64_encoded_len(n, 0), strlen(bare[i]));
        base64_encode((const unsigned char *)plain[i], n, out);
        assert_string_equal(out, padded[i]);
        base64url_encode((const unsigned char *)plain[i], n, out);
        assert_string_equal(out, bare[i]);
        assert_int_equal(base64url_decode(bare[i], strlen(bare[i]), back), (long)n);
        assert_memory_equal(back, plain[i], n);
        assert_int_equal(base64_decode(padded[i], strlen(padded[i]), back), (long)n);
        assert_memory_equal(back, plain[i], n);
    }
}

static void test_base64url_alphabet(void **state)
{
    (void)state;
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    unsigned char back[8];
    base64url_encode(bytes, 3, out);
    assert_string_equal(out, "-_-_");
    base64_encode(bytes, 3, out);
    assert_string_equal(out, "+/+/");
    assert_int_equal(base64url_decode("-_-_", 4, back), 3);
    assert_memory_equal(back, bytes, 3);
}

static void test_base64_rejects_bad_input(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(base64url_decode("Zm9v=", 5, out), -1); /* padding not allowed */
    assert_int_equal(base64url_decode("Zm+v", 4, out), -1);  /* wrong alphabet */
    assert_int_equal(base64url_decode("Z", 1, out), -1);     /* impossible length */
    assert_int_equal(base64url_decode("Zh", 2, out), -1);    /* non-zero leftover bits */
    assert_int_equal(base64url_decode("Zm\0v", 4, out), -1); /* NUL inside */
    assert_int_equal(base64_decode("Zm9v!A==", 8, out), -1);
    assert_int_equal(base64_decode("Zm-v", 4, out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64url_alphabet),
        cmocka_unit_test(test_base64_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
