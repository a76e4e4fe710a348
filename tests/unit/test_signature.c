/* Unit tests for common/signature and common/secure, on Twilio's published
 * test vectors (twilio-node and twilio-python use the same ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kv.h"
#include "secure.h"
#include "signature.h"

#define TOKEN "12345"
#define URL "https://mycompany.com/myapp.php?foo=1&bar=2"
#define FORM_SIG "RSOYDt4T1cUTdK1PDd93/VVr8B8="

static void vector_params(struct kv_list *kv)
{
    kv_init(kv);
    /* Deliberately not in sorted order: the signer sorts. */
    kv_add(kv, "To", "+18005551212");
    kv_add(kv, "CallSid", "CA1234567890ABCDE");
    kv_add(kv, "Digits", "1234");
    kv_add(kv, "From", "+14158675309");
    kv_add(kv, "Caller", "+14158675309");
}

static void test_published_form_vector(void **state)
{
    (void)state;
    struct kv_list kv;
    vector_params(&kv);
    char sig[SIGNATURE_LEN + 1];
    assert_int_equal(signature_compute(TOKEN, URL, &kv, sig), 0);
    assert_string_equal(sig, FORM_SIG);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, FORM_SIG), 1);
    kv_free(&kv);
}

static void test_port_variants(void **state)
{
    (void)state;
    struct kv_list kv;
    vector_params(&kv);
    /* twilio-python's vector: an http URL signed with its port 1234 kept. */
    assert_int_equal(signature_valid(TOKEN, "http://mycompany.com:1234/myapp.php?foo=1&bar=2", &kv,
                                     "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
                     1);
    /* Signed without the port, received with :443 (and the reverse). */
    assert_int_equal(signature_valid(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", &kv, FORM_SIG), 1);
    char with_port[SIGNATURE_LEN + 1];
    assert_int_equal(signature_compute(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", &kv, with_port), 0);
    assert_string_not_equal(with_port, FORM_SIG);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, with_port), 1);
    /* A non-default port is not interchangeable with another one. */
    assert_int_equal(signature_valid(TOKEN, "https://mycompany.com:8443/myapp.php?foo=1&bar=2", &kv, with_port), 0);
    kv_free(&kv);
}

static void test_tampering_is_refused(void **state)
{
    (void)state;
    struct kv_list kv;
    vector_params(&kv);
    assert_int_equal(signature_valid("54321", URL, &kv, FORM_SIG), 0);
    assert_int_equal(signature_valid(TOKEN, URL "&baz=3", &kv, FORM_SIG), 0);
    assert_int_equal(signature_valid(TOKEN, "https://evil.example/myapp.php?foo=1&bar=2", &kv, FORM_SIG), 0);
    kv_add(&kv, "Extra", "1");
    assert_int_equal(signature_valid(TOKEN, URL, &kv, FORM_SIG), 0);
    kv_free(&kv);

    kv_init(&kv);
    kv_add(&kv, "CallSid", "CA1234567890ABCDE");
    kv_add(&kv, "Caller", "+14158675309");
    kv_add(&kv, "Digits", "1234");
    kv_add(&kv, "From", "+14158675309"); /* To missing */
    assert_int_equal(signature_valid(TOKEN, URL, &kv, FORM_SIG), 0);
    kv_add(&kv, "To", "+18005551213"); /* changed value */
    assert_int_equal(signature_valid(TOKEN, URL, &kv, FORM_SIG), 0);
    kv_free(&kv);
}

static void test_bad_headers_and_urls_never_crash(void **state)
{
    (void)state;
    struct kv_list kv;
    vector_params(&kv);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, NULL), 0);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, ""), 0);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, "not a signature at all, far too long!!"), 0);
    assert_int_equal(signature_valid(TOKEN, URL, &kv, "RSOYDt4T1cUTdK1PDd93/VVr8B8"), 0);
    assert_int_equal(signature_valid(TOKEN, "", &kv, FORM_SIG), 0);
    assert_int_equal(signature_valid(TOKEN, "no scheme here", &kv, FORM_SIG), 0);
    assert_int_equal(signature_valid(TOKEN, "https://", &kv, FORM_SIG), 0);
    assert_int_equal(signature_valid(TOKEN, "https://[::1/x", &kv, FORM_SIG), 0);
    kv_free(&kv);
}

static void test_repeated_names_sorted_and_deduplicated(void **state)
{
    (void)state;
    struct kv_list a, b, c;
    kv_init(&a);
    kv_init(&b);
    kv_init(&c);
    kv_add(&a, "Tag", "b");
    kv_add(&a, "Tag", "a");
    kv_add(&b, "Tag", "a");
    kv_add(&b, "Tag", "b");
    kv_add(&c, "Tag", "a");
    kv_add(&c, "Tag", "b");
    kv_add(&c, "Tag", "a");
    char sa[SIGNATURE_LEN + 1], sb[SIGNATURE_LEN + 1], sc[SIGNATURE_LEN + 1];
    assert_int_equal(signature_compute(TOKEN, URL, &a, sa), 0);
    assert_int_equal(signature_compute(TOKEN, URL, &b, sb), 0);
    assert_int_equal(signature_compute(TOKEN, URL, &c, sc), 0);
    assert_string_equal(sa, sb);
    assert_string_equal(sa, sc);
    kv_free(&a);
    kv_free(&b);
    kv_free(&c);
}

#define BODY "{\"property\": \"value\", \"boolean\": true}"
#define BODY_HASH "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
#define JSON_URL URL "&bodySHA256=" BODY_HASH
#define JSON_SIG "a9nBmqA0ju/hNViExpshrM61xv4="

static void test_published_json_vector(void **state)
{
    (void)state;
    assert_int_equal(signature_valid_json(TOKEN, JSON_URL, BODY, strlen(BODY), JSON_SIG), 1);
    /* Body changed: the hash no longer matches. */
    const char *other = "{\"property\": \"other\", \"boolean\": true}";
    assert_int_equal(signature_valid_json(TOKEN, JSON_URL, other, strlen(other), JSON_SIG), 0);
    /* No bodySHA256 in the URL: not a JSON-mode request. */
    assert_int_equal(signature_valid_json(TOKEN, URL, BODY, strlen(BODY), JSON_SIG), 0);
    assert_int_equal(signature_valid_json("54321", JSON_URL, BODY, strlen(BODY), JSON_SIG), 0);
    assert_int_equal(signature_valid_json(TOKEN, JSON_URL, BODY, strlen(BODY), ""), 0);
    /* Empty body: the hash of "" is what must be claimed. */
    assert_int_equal(signature_valid_json(TOKEN, JSON_URL, NULL, 0, JSON_SIG), 0);
}

static void test_secure_equal(void **state)
{
    (void)state;
    assert_int_equal(secure_equal("abc", 3, "abc", 3), 1);
    assert_int_equal(secure_equal("abc", 3, "abd", 3), 0);
    assert_int_equal(secure_equal("abc", 3, "abcd", 4), 0);
    assert_int_equal(secure_equal("", 0, "", 0), 1);
    assert_int_equal(secure_equal("a\0b", 3, "a\0c", 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_form_vector),
        cmocka_unit_test(test_port_variants),
        cmocka_unit_test(test_tampering_is_refused),
        cmocka_unit_test(test_bad_headers_and_urls_never_crash),
        cmocka_unit_test(test_repeated_names_sorted_and_deduplicated),
        cmocka_unit_test(test_published_json_vector),
        cmocka_unit_test(test_secure_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
