/* Unit tests for ingress/params: request bodies as JSON or forms (media
 * types, empty bodies, malformed and repeated fields), the field getters
 * with the identity and stream-name rules, booleans, and the error
 * envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../ingress/params.h"

#define JSON "application/json"
#define FORM "application/x-www-form-urlencoded"

static int parse(const char *type, const char *body, struct params *p, struct api_error *e)
{
    memset(e, 0, sizeof *e);
    return params_parse(type, body, strlen(body), p, e);
}

static void test_media_types(void **state)
{
    (void)state;
    assert_true(params_media_type_is("application/json", JSON));
    assert_true(params_media_type_is("Application/JSON; charset=utf-8", JSON));
    assert_true(params_media_type_is("application/json ;charset=utf-8", JSON));
    assert_false(params_media_type_is("application/jsonx", JSON));
    assert_false(params_media_type_is("application/js", JSON));
    assert_false(params_media_type_is(NULL, JSON));
    assert_false(params_media_type_is("text/plain", JSON));
}

static void test_empty_body_is_empty_object(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    assert_int_equal(parse(NULL, "", &p, &e), 0);
    assert_true(json_is_object(p.fields));
    assert_int_equal(json_object_size(p.fields), 0);
    assert_false(p.from_form);
    params_free(&p);
    assert_null(p.fields);
    assert_int_equal(parse("text/plain", "", &p, &e), 0); /* no body: any type */
    params_free(&p);
}

static void test_content_type_refused(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    assert_int_equal(parse(NULL, "{}", &p, &e), -1);
    assert_int_equal(e.status, 415);
    assert_string_equal(e.message, "unsupported content type");
    assert_int_equal(parse("text/plain", "{}", &p, &e), -1);
    assert_int_equal(e.status, 415);
    assert_null(p.fields);
}

static void test_json_bodies(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    assert_int_equal(parse(JSON "; charset=utf-8", "{\"user_identity\":\"alice\",\"n\":1}", &p, &e), 0);
    assert_false(p.from_form);
    assert_true(params_has(&p, "user_identity"));
    assert_true(params_has(&p, "n"));
    assert_false(params_has(&p, "stream_name"));
    params_free(&p);

    static const char *const bad[] = {"{", "[]", "\"x\"", "{\"a\":1,\"a\":2}", "{\"a\":\"\xff\"}", "{} {}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(JSON, bad[i], &p, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.message, "invalid body");
        assert_null(p.fields);
    }
}

static void test_form_bodies(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    assert_int_equal(parse(FORM, "user_identity=Zo%C3%AB+B&raised=true", &p, &e), 0);
    assert_true(p.from_form);
    assert_string_equal(json_string_value(json_object_get(p.fields, "user_identity")), "Zo\xc3\xab B");
    params_free(&p);

    assert_int_equal(parse(FORM, "a=1&a=2", &p, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.explanation, "repeats"));
    assert_null(p.fields);
    assert_int_equal(parse(FORM, "a=%ff", &p, &e), -1);
    assert_non_null(strstr(e.explanation, "UTF-8"));
    assert_int_equal(parse(FORM, "a%00b=1", &p, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(parse(FORM, "a=%zz", &p, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.explanation, "malformed"));
}

static void test_identity_and_stream(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    assert_int_equal(parse(JSON,
                           "{\"user_identity\":\"Zo\xc3\xab\",\"stream_name\":\"friday night\",\"n\":3,"
                           "\"dot\":\"..\",\"slash\":\"a/b\",\"sid\":\"RM0123456789abcdef0123456789abcdef\"}",
                           &p, &e),
                     0);
    assert_string_equal(params_identity(&p, "user_identity", &e), "Zo\xc3\xab");
    assert_string_equal(params_stream(&p, "stream_name", &e), "friday night");

    assert_null(params_identity(&p, "missing", &e));
    assert_int_equal(e.status, 400);
    assert_string_equal(e.message, "missing missing");
    assert_string_equal(e.explanation, "The missing parameter is missing.");

    assert_null(params_identity(&p, "n", &e));
    assert_string_equal(e.message, "invalid n");
    assert_non_null(strstr(e.explanation, "must be a string"));

    assert_null(params_identity(&p, "dot", &e));
    assert_string_equal(e.message, "invalid dot");
    assert_null(params_identity(&p, "slash", &e));
    assert_null(params_stream(&p, "slash", &e));
    assert_null(params_stream(&p, "sid", &e)); /* shaped like a Room SID */
    assert_string_equal(e.message, "invalid sid");

    const char *out = "unset";
    assert_int_equal(params_optional_identity(&p, "absent", &out, &e), 0);
    assert_null(out);
    assert_int_equal(params_optional_identity(&p, "user_identity", &out, &e), 0);
    assert_string_equal(out, "Zo\xc3\xab");
    assert_int_equal(params_optional_identity(&p, "dot", &out, &e), -1);
    assert_null(out);
    params_free(&p);

    /* A form value with a NUL in it is refused by the getters. */
    assert_int_equal(parse(FORM, "user_identity=al%00ice", &p, &e), 0);
    assert_null(params_identity(&p, "user_identity", &e));
    assert_non_null(strstr(e.explanation, "NUL"));
    params_free(&p);
}

static void test_booleans(void **state)
{
    (void)state;
    struct params p;
    struct api_error e;
    int value = -1;
    assert_int_equal(parse(JSON, "{\"t\":true,\"f\":false,\"s\":\"true\",\"n\":1}", &p, &e), 0);
    assert_int_equal(params_bool(&p, "t", &value, &e), 0);
    assert_int_equal(value, 1);
    assert_int_equal(params_bool(&p, "f", &value, &e), 0);
    assert_int_equal(value, 0);
    assert_int_equal(params_bool(&p, "s", &value, &e), -1); /* JSON strings are not booleans */
    assert_string_equal(e.message, "invalid s");
    assert_int_equal(params_bool(&p, "n", &value, &e), -1);
    assert_int_equal(params_bool(&p, "x", &value, &e), -1);
    assert_string_equal(e.message, "missing x");
    params_free(&p);

    assert_int_equal(parse(FORM, "t=true&f=false&y=yes&c=True", &p, &e), 0);
    assert_int_equal(params_bool(&p, "t", &value, &e), 0);
    assert_int_equal(value, 1);
    assert_int_equal(params_bool(&p, "f", &value, &e), 0);
    assert_int_equal(value, 0);
    assert_int_equal(params_bool(&p, "y", &value, &e), -1);
    assert_int_equal(params_bool(&p, "c", &value, &e), -1);
    assert_int_equal(e.status, 400);
    params_free(&p);
}

static void test_error_envelope(void **state)
{
    (void)state;
    struct api_error e;
    e.retry_after_s = 7;
    assert_int_equal(api_fail(&e, 409, "too many raised hands", "At most %d hands.", 100), -1);
    assert_int_equal(e.status, 409);
    assert_int_equal(e.retry_after_s, 0);
    json_t *body = api_error_json(&e);
    assert_non_null(body);
    json_t *error = json_object_get(body, "error");
    assert_string_equal(json_string_value(json_object_get(error, "message")), "too many raised hands");
    assert_string_equal(json_string_value(json_object_get(error, "explanation")), "At most 100 hands.");
    assert_int_equal(json_object_size(body), 1);
    assert_int_equal(json_object_size(error), 2);
    json_decref(body);
    /* Long texts are cut, never overflowed. */
    char long_text[600];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    api_fail(&e, 400, long_text, "%s", long_text);
    assert_int_equal(strlen(e.message), sizeof e.message - 1);
    assert_int_equal(strlen(e.explanation), sizeof e.explanation - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_types),
        cmocka_unit_test(test_empty_body_is_empty_object),
        cmocka_unit_test(test_content_type_refused),
        cmocka_unit_test(test_json_bodies),
        cmocka_unit_test(test_form_bodies),
        cmocka_unit_test(test_identity_and_stream),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_error_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
