/* Unit tests for common/kv (ordered pairs) and common/log (JSON lines, redaction). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"
#include "log.h"

static void test_kv_order_repeats_and_nul(void **state)
{
    (void)state;
    struct kv_list kv;
    kv_init(&kv);
    assert_int_equal(kv_add(&kv, "b", "2"), 0);
    assert_int_equal(kv_add(&kv, "a", "1"), 0);
    assert_int_equal(kv_add(&kv, "b", "3"), 0);
    assert_int_equal(kv_addn(&kv, "z", 1, "x\0y", 3), 0);
    for (int i = 0; i < 40; i++) /* grows past the first allocation */
        assert_int_equal(kv_add(&kv, "n", "v"), 0);
    assert_int_equal(kv.len, 44);
    assert_string_equal(kv.items[0].name, "b");
    assert_string_equal(kv_get(&kv, "b"), "2");
    assert_int_equal(kv_count(&kv, "b"), 2);
    assert_null(kv_get(&kv, "missing"));
    const struct kv_pair *z = kv_find(&kv, "z");
    assert_non_null(z);
    assert_int_equal(z->value_len, 3);
    assert_memory_equal(z->value, "x\0y", 3);
    kv_free(&kv);
    assert_int_equal(kv.len, 0);
}

/* Captures log output through a pipe and returns it (malloc'd). */
static char *capture(void (*emit)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    emit();
    log_set_fd(2);
    close(fds[1]);
    char *buf = calloc(1, 65536);
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + used, 65535 - used)) > 0)
        used += (size_t)n;
    close(fds[0]);
    return buf;
}

static void emit_two_lines(void)
{
    log_init("test", LOG_LEVEL_INFO);
    log_debug("hidden", NULL);
    log_info("stream created", "stream", "friday", "room_sid", "RM123", NULL);
    log_error("line\nbreak \"quoted\"", "api_key_secret", "s3cr3t", "auth_token", "t0k3n", "Authorization", "Basic abc",
              "passcode", "123456", "token_ttl_s", "3600", NULL);
}

static void test_log_lines_are_json_and_redacted(void **state)
{
    (void)state;
    char *out = capture(emit_two_lines);
    assert_null(strstr(out, "hidden"));
    assert_null(strstr(out, "s3cr3t"));
    assert_null(strstr(out, "t0k3n"));
    assert_null(strstr(out, "Basic abc"));
    assert_null(strstr(out, "123456"));

    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    json_error_t jerr;
    json_t *a = json_loads(out, 0, &jerr);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "component")), "test");
    assert_string_equal(json_string_value(json_object_get(a, "message")), "stream created");
    assert_int_equal(strlen(json_string_value(json_object_get(a, "time"))), 24);
    json_t *fields = json_object_get(a, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "room_sid")), "RM123");

    char *end = strchr(second, '\n');
    assert_non_null(end);
    assert_string_equal(end + 1, ""); /* exactly two lines */
    *end = '\0';
    json_t *b = json_loads(second, 0, &jerr);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "message")), "line\nbreak \"quoted\"");
    fields = json_object_get(b, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "api_key_secret")), "[redacted]");
    assert_string_equal(json_string_value(json_object_get(fields, "passcode")), "[redacted]");
    assert_string_equal(json_string_value(json_object_get(fields, "token_ttl_s")), "3600");
    json_decref(a);
    json_decref(b);
    free(out);
}

static void emit_invalid_utf8(void)
{
    log_init("test", LOG_LEVEL_DEBUG);
    log_warn("bad \xff message", "field", "bad \xfe value", NULL);
}

static void test_log_survives_invalid_utf8(void **state)
{
    (void)state;
    char *out = capture(emit_invalid_utf8);
    json_error_t jerr;
    json_t *line = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    json_decref(line);
    free(out);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    enum log_level level;
    assert_int_equal(log_level_parse("debug", &level), 0);
    assert_int_equal(level, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("WARN", &level), 0);
    assert_int_equal(level, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("verbose", &level), -1);
    assert_int_equal(log_level_parse("", &level), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_order_repeats_and_nul),
        cmocka_unit_test(test_log_lines_are_json_and_redacted),
        cmocka_unit_test(test_log_survives_invalid_utf8),
        cmocka_unit_test(test_log_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
