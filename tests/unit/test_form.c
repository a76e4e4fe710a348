/* Unit tests for common/form: form bodies and query strings in and out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

static void test_parse_basics(void **state)
{
    (void)state;
    struct kv_list kv;
    kv_init(&kv);
    char err[128];
    const char *body = "stream_name=friday+townhall&user_identity=Zo%C3%AB&x=a%2Bb&flag&&empty=&t=%2f";
    assert_int_equal(form_parse(body, strlen(body), &kv, err, sizeof err), 0);
    assert_int_equal(kv.len, 6);
    assert_string_equal(kv_get(&kv, "stream_name"), "friday townhall");
    assert_string_equal(kv_get(&kv, "user_identity"), "Zo\xc3\xab");
    assert_string_equal(kv_get(&kv, "x"), "a+b");
    assert_string_equal(kv_get(&kv, "flag"), "");
    assert_string_equal(kv_get(&kv, "empty"), "");
    assert_string_equal(kv_get(&kv, "t"), "/");
    kv_free(&kv);

    assert_int_equal(form_parse("", 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv.len, 0);
    const char *nul = "a=x%00y&b%3D=1";
    assert_int_equal(form_parse(nul, strlen(nul), &kv, err, sizeof err), 0);
    assert_int_equal(kv.items[0].value_len, 3);
    assert_memory_equal(kv.items[0].value, "x\0y", 3);
    assert_string_equal(kv.items[1].name, "b=");
    kv_free(&kv);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {"a=%", "a=%4", "a=%zz", "a=1&%g1=2", "=value", "a=1&=2", "%=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kv_list kv;
        kv_init(&kv);
        char err[128] = "";
        if (form_parse(bad[i], strlen(bad[i]), &kv, err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
        kv_free(&kv);
    }
}

static void test_too_many_pairs(void **state)
{
    (void)state;
    size_t n = FORM_MAX_PAIRS + 1;
    char *body = malloc(n * 4 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(body + len, "%sa=1", i ? "&" : "");
    struct kv_list kv;
    kv_init(&kv);
    char err[128];
    assert_int_equal(form_parse(body, len, &kv, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
    kv_free(&kv);
    free(body);
}

static void test_encode_and_round_trip(void **state)
{
    (void)state;
    struct kv_list kv, back;
    kv_init(&kv);
    kv_init(&back);
    kv_add(&kv, "UniqueName", "my room");
    kv_add(&kv, "Data", "{\"a\":\"b&c=d\"}");
    kv_add(&kv, "VideoCodecs", "VP8");
    kv_add(&kv, "VideoCodecs", "H264");
    kv_add(&kv, "Identity", "Zo\xc3\xab~.-_");
    char *enc = form_encode(&kv);
    assert_string_equal(enc, "UniqueName=my%20room&Data=%7B%22a%22%3A%22b%26c%3Dd%22%7D"
                             "&VideoCodecs=VP8&VideoCodecs=H264&Identity=Zo%C3%AB~.-_");
    char err[128];
    assert_int_equal(form_parse(enc, strlen(enc), &back, err, sizeof err), 0);
    assert_int_equal(back.len, kv.len);
    for (size_t i = 0; i < kv.len; i++) {
        assert_string_equal(back.items[i].name, kv.items[i].name);
        assert_string_equal(back.items[i].value, kv.items[i].value);
    }
    free(enc);
    kv_free(&kv);
    kv_free(&back);
}

static void test_percent_encode(void **state)
{
    (void)state;
    char *a = percent_encode("a b/c", 5);
    assert_string_equal(a, "a%20b%2Fc");
    char *b = percent_encode("\xf0\x9f\x8e\xa4", 4);
    assert_string_equal(b, "%F0%9F%8E%A4");
    char *c = percent_encode("", 0);
    assert_string_equal(c, "");
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basics),   cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_too_many_pairs), cmocka_unit_test(test_encode_and_round_trip),
        cmocka_unit_test(test_percent_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
