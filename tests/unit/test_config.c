/* Unit tests for common/config (environment variables, validation,
 * redaction) and common/settings (stagehand's variable tables). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "settings.h"

#define SECRET_VALUE "s3cr3t-Value-xyz"

static const char *check_even(const char *value)
{
    size_t len = strlen(value);
    return (value[len - 1] - '0') % 2 == 0 ? NULL : "must be even";
}

static const char *check_starts_with_k(const char *value)
{
    return value[0] == 'k' ? NULL : "must start with k";
}

static const struct config_spec TEST_SPECS[] = {
    {.name = "SHT_STR", .type = CONFIG_STRING, .default_value = "hello", .description = "a string"},
    {.name = "SHT_INT",
     .type = CONFIG_INT,
     .default_value = "3600",
     .min = 1,
     .max = 86400,
     .description = "an integer"},
    {.name = "SHT_BOOL", .type = CONFIG_BOOL, .default_value = "false", .description = "a boolean"},
    {.name = "SHT_ENUM",
     .type = CONFIG_ENUM,
     .default_value = "passcode",
     .choices = "passcode|jwt",
     .description = "an enum"},
    {.name = "SHT_URL", .type = CONFIG_URL, .default_value = "http://127.0.0.1:8080/", .description = "a URL"},
    {.name = "SHT_URL_EMPTY", .type = CONFIG_URL, .default_value = "", .description = "a URL unset by default"},
    {.name = "SHT_EVEN",
     .type = CONFIG_INT,
     .default_value = "2",
     .min = 0,
     .max = 100,
     .check = check_even,
     .description = "an even integer"},
    {.name = "SHT_SECRET",
     .type = CONFIG_STRING,
     .default_value = "",
     .secret = 1,
     .check = check_starts_with_k,
     .description = "a secret"},
};
#define TEST_SPECS_COUNT (sizeof TEST_SPECS / sizeof TEST_SPECS[0])

static const char *const TEST_NAMES[] = {
    "SHT_STR",       "SHT_INT",  "SHT_BOOL",   "SHT_ENUM", "SHT_URL",
    "SHT_URL_EMPTY", "SHT_EVEN", "SHT_SECRET", "SHT_REQ",  "SHT_WIDE",
};

static const char *const SETTINGS_NAMES[] = {
    "LOG_LEVEL",         "KAFKA_BROKERS",      "TWILIO_ACCOUNT_SID",   "TWILIO_API_KEY_SID",  "TWILIO_API_KEY_SECRET",
    "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE",    "TWILIO_VIDEO_BASE",    "TWILIO_SYNC_BASE",    "TWILIO_MEDIA_BASE",
    "TWILIO_TIMEOUT_MS", "TWILIO_MAX_RETRIES", "TWILIO_RETRY_BASE_MS", "TWILIO_RETRY_MAX_MS", "PUBLIC_BASE_URL",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof TEST_NAMES / sizeof TEST_NAMES[0]; i++)
        unsetenv(TEST_NAMES[i]);
    for (size_t i = 0; i < sizeof SETTINGS_NAMES / sizeof SETTINGS_NAMES[0]; i++)
        unsetenv(SETTINGS_NAMES[i]);
    return 0;
}

/* A config with TEST_SPECS registered. */
static struct config *test_config(void)
{
    char err[256];
    struct config *cfg = config_new();
    assert_non_null(cfg);
    assert_int_equal(config_register(cfg, TEST_SPECS, TEST_SPECS_COUNT, err, sizeof err), 0);
    return cfg;
}

/* Loads cfg with name=value set and expects failure; returns the error in err. */
static void expect_bad(const char *name, const char *value, char *err, size_t errlen)
{
    struct config *cfg = test_config();
    setenv(name, value, 1);
    if (config_load(cfg, err, errlen) == 0)
        fail_msg("%s=\"%s\" was accepted", name, value);
    unsetenv(name);
    config_free(cfg);
    if (!strstr(err, name))
        fail_msg("error for %s=\"%s\" does not name the variable: %s", name, value, err);
}

/* Captures what print(cfg, FILE *) writes, as a malloc'd string. */
static char *capture(struct config *cfg, void (*print)(const struct config *, FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    print(cfg, out);
    assert_int_equal(fclose(out), 0);
    return text;
}

static void test_defaults_apply(void **state)
{
    (void)state;
    char err[256];
    struct config *cfg = test_config();
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "SHT_STR"), "hello");
    assert_int_equal(config_int(cfg, "SHT_INT"), 3600);
    assert_int_equal(config_bool(cfg, "SHT_BOOL"), 0);
    assert_string_equal(config_str(cfg, "SHT_ENUM"), "passcode");
    assert_string_equal(config_str(cfg, "SHT_URL"), "http://127.0.0.1:8080");
    assert_string_equal(config_str(cfg, "SHT_URL_EMPTY"), "");
    assert_string_equal(config_str(cfg, "SHT_SECRET"), "");
    assert_int_equal(config_is_set(cfg, "SHT_INT"), 0);
    assert_int_equal(config_is_set(cfg, "SHT_URL_EMPTY"), 0);
    config_free(cfg);
}

static void test_set_values_and_empty_is_unset(void **state)
{
    (void)state;
    char err[256];
    struct config *cfg = test_config();
    setenv("SHT_STR", "  spaced value ", 1);
    setenv("SHT_INT", "", 1); /* empty: the default applies */
    setenv("SHT_URL_EMPTY", "https://emulator.local:3000/v1/", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "SHT_STR"), "  spaced value ");
    assert_int_equal(config_is_set(cfg, "SHT_STR"), 1);
    assert_int_equal(config_int(cfg, "SHT_INT"), 3600);
    assert_int_equal(config_is_set(cfg, "SHT_INT"), 0);
    assert_string_equal(config_str(cfg, "SHT_URL_EMPTY"), "https://emulator.local:3000/v1");
    assert_int_equal(config_is_set(cfg, "SHT_URL_EMPTY"), 1);

    /* Loading again sees the new environment. */
    setenv("SHT_INT", "7", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, "SHT_INT"), 7);
    assert_int_equal(config_is_set(cfg, "SHT_INT"), 1);
    config_free(cfg);
}

static void test_int_good_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long value;
    } cases[] = {{"1", 1}, {"86400", 86400}, {"42", 42}, {"007", 7}};
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config *cfg = test_config();
        setenv("SHT_INT", cases[i].text, 1);
        assert_int_equal(config_load(cfg, err, sizeof err), 0);
        assert_int_equal(config_int(cfg, "SHT_INT"), cases[i].value);
        config_free(cfg);
    }

    /* The full 64-bit range, both ends. */
    static const struct config_spec wide[] = {
        {.name = "SHT_WIDE",
         .type = CONFIG_INT,
         .default_value = "0",
         .min = LLONG_MIN,
         .max = LLONG_MAX,
         .description = "any integer"},
    };
    struct config *cfg = config_new();
    assert_int_equal(config_register(cfg, wide, 1, err, sizeof err), 0);
    setenv("SHT_WIDE", "9223372036854775807", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_true(config_int(cfg, "SHT_WIDE") == LLONG_MAX);
    setenv("SHT_WIDE", "-9223372036854775808", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_true(config_int(cfg, "SHT_WIDE") == LLONG_MIN);
    setenv("SHT_WIDE", "-12", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_true(config_int(cfg, "SHT_WIDE") == -12);
    setenv("SHT_WIDE", "9223372036854775808", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "SHT_WIDE: must be an integer"));
    setenv("SHT_WIDE", "-9223372036854775809", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    config_free(cfg);
}

static void test_int_bad_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "abc", "12x", " 12", "12 ", "+5", "0x10", "1.5", "-", "", "99999999999999999999999", "86401", "0", "-1",
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!*bad[i])
            continue; /* empty means unset: tested elsewhere */
        expect_bad("SHT_INT", bad[i], err, sizeof err);
        assert_non_null(strstr(err, "must be an integer from 1 to 86400"));
    }
    expect_bad("SHT_INT", "abc", err, sizeof err);
    assert_string_equal(err, "SHT_INT: must be an integer from 1 to 86400 (got \"abc\")");
}

static void test_bool_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int value;
    } cases[] = {{"true", 1},  {"TRUE", 1},  {"1", 1}, {"yes", 1}, {"On", 1},
                 {"false", 0}, {"False", 0}, {"0", 0}, {"NO", 0},  {"off", 0}};
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config *cfg = test_config();
        setenv("SHT_BOOL", cases[i].text, 1);
        assert_int_equal(config_load(cfg, err, sizeof err), 0);
        assert_int_equal(config_bool(cfg, "SHT_BOOL"), cases[i].value);
        config_free(cfg);
    }
    static const char *const bad[] = {"maybe", "2", "yess", "t", " true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_bad("SHT_BOOL", bad[i], err, sizeof err);
        assert_non_null(strstr(err, "must be true or false"));
    }
}

static void test_enum_values(void **state)
{
    (void)state;
    char err[256];
    struct config *cfg = test_config();
    setenv("SHT_ENUM", "JWT", 1); /* any case, stored as spelled in the choices */
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "SHT_ENUM"), "jwt");
    config_free(cfg);

    static const char *const bad[] = {"oauth", "jw", "jwtx", "passcode|jwt", "|"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_bad("SHT_ENUM", bad[i], err, sizeof err);
        assert_non_null(strstr(err, "must be one of passcode, jwt"));
    }
}

static void test_url_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *value;
    } cases[] = {
        {"https://example.com", "https://example.com"},
        {"https://example.com/", "https://example.com"},
        {"http://127.0.0.1:8080//", "http://127.0.0.1:8080"},
        {"HTTP://Example.com/base/path/", "HTTP://Example.com/base/path"},
        {"http://[::1]:9000/", "http://[::1]:9000"},
        {"http://twilio-emulator_1:3000", "http://twilio-emulator_1:3000"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config *cfg = test_config();
        setenv("SHT_URL", cases[i].text, 1);
        if (config_load(cfg, err, sizeof err) != 0)
            fail_msg("%s refused: %s", cases[i].text, err);
        assert_string_equal(config_str(cfg, "SHT_URL"), cases[i].value);
        config_free(cfg);
    }

    static const struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {"ftp://example.com", "must be an http:// or https:// URL"},
        {"example.com", "must be an http:// or https:// URL"},
        {"http://", "must have a host"},
        {"http:///path", "must have a host"},
        {"http://:8080", "must have a host"},
        {"http://exa mple.com", "must not contain spaces"},
        {"http://example.com/a b", "must not contain spaces"},
        {" http://example.com", "must not contain spaces"},
        {"http://example.com\n", "must not contain spaces"},
        {"http://example.com:0", "must have a port from 1 to 65535"},
        {"http://example.com:65536", "must have a port from 1 to 65535"},
        {"http://example.com:80x", "must have a port from 1 to 65535"},
        {"http://example.com:", "must have a port from 1 to 65535"},
        {"http://example.com/?a=1", "must not have a query or fragment"},
        {"http://example.com#top", "must not have a query or fragment"},
        {"http://user:pw@example.com", "must not contain user information"},
        {"http://[::1", "closing ']'"},
        {"http://[]:80", "must have a host"},
        {"http://exam%ple.com", "must have a host made of"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_bad("SHT_URL", bad[i].text, err, sizeof err);
        if (!strstr(err, bad[i].reason))
            fail_msg("%s: expected \"%s\" in: %s", bad[i].text, bad[i].reason, err);
    }
    /* A control character is quoted escaped, never raw. */
    expect_bad("SHT_URL", "http://example.com\n", err, sizeof err);
    assert_non_null(strstr(err, "(got \"http://example.com\\x0a\")"));
}

static void test_required_missing(void **state)
{
    (void)state;
    static const struct config_spec required[] = {
        {.name = "SHT_REQ", .type = CONFIG_STRING, .description = "required"},
    };
    char err[256];
    struct config *cfg = config_new();
    assert_int_equal(config_register(cfg, required, 1, err, sizeof err), 0);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_string_equal(err, "SHT_REQ: required, not set");
    setenv("SHT_REQ", "", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_string_equal(err, "SHT_REQ: required, not set");
    setenv("SHT_REQ", "x", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "SHT_REQ"), "x");
    config_free(cfg);
}

static void test_custom_check(void **state)
{
    (void)state;
    char err[256];
    expect_bad("SHT_EVEN", "7", err, sizeof err);
    assert_string_equal(err, "SHT_EVEN: must be even (got \"7\")");
    /* The type rule applies before the check. */
    expect_bad("SHT_EVEN", "101", err, sizeof err);
    assert_non_null(strstr(err, "must be an integer from 0 to 100"));

    struct config *cfg = test_config();
    setenv("SHT_EVEN", "64", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, "SHT_EVEN"), 64);
    config_free(cfg);
}

static void test_all_problems_reported(void **state)
{
    (void)state;
    char err[512];
    struct config *cfg = test_config();
    setenv("SHT_INT", "abc", 1);
    setenv("SHT_BOOL", "maybe", 1);
    setenv("SHT_URL", "ftp://x", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "SHT_INT: "));
    assert_non_null(strstr(err, "; SHT_BOOL: "));
    assert_non_null(strstr(err, "; SHT_URL: "));

    /* A small buffer is cut, still NUL-terminated. */
    char small[16];
    assert_int_equal(config_load(cfg, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "SHT_INT: must b", 15);
    config_free(cfg);
}

static void test_secret_never_shown(void **state)
{
    (void)state;
    char err[512];

    /* Refused by its check: the value is not quoted. */
    expect_bad("SHT_SECRET", SECRET_VALUE, err, sizeof err);
    assert_null(strstr(err, SECRET_VALUE));
    assert_string_equal(err, "SHT_SECRET: must start with k (value not shown: secret)");

    /* Refused by a type rule of a secret variable. */
    static const struct config_spec secret_int[] = {
        {.name = "SHT_WIDE",
         .type = CONFIG_INT,
         .default_value = "1",
         .min = 1,
         .max = 9,
         .secret = 1,
         .description = "secret number"},
    };
    struct config *cfg = config_new();
    assert_int_equal(config_register(cfg, secret_int, 1, err, sizeof err), 0);
    setenv("SHT_WIDE", "12345678", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_null(strstr(err, "12345678"));
    assert_non_null(strstr(err, "SHT_WIDE: must be an integer from 1 to 9"));
    config_free(cfg);

    /* Accepted: print, JSON and help show no value. */
    cfg = test_config();
    char *text = capture(cfg, config_print_help);
    assert_null(strstr(text, SECRET_VALUE));
    free(text);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    text = capture(cfg, config_print);
    assert_non_null(strstr(text, "SHT_SECRET=[unset]\n"));
    free(text);

    setenv("SHT_SECRET", "k" SECRET_VALUE, 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "SHT_SECRET"), "k" SECRET_VALUE);
    text = capture(cfg, config_print);
    assert_null(strstr(text, SECRET_VALUE));
    assert_non_null(strstr(text, "SHT_SECRET=[redacted]\n"));
    free(text);
    json_t *json = config_to_json(cfg);
    assert_non_null(json);
    char *dumped = json_dumps(json, JSON_COMPACT);
    assert_non_null(dumped);
    assert_null(strstr(dumped, SECRET_VALUE));
    assert_string_equal(json_string_value(json_object_get(json, "SHT_SECRET")), "[redacted]");
    free(dumped);
    json_decref(json);
    config_free(cfg);
}

static void test_print_json_and_help(void **state)
{
    (void)state;
    char err[256];
    struct config *cfg = test_config();
    setenv("SHT_INT", "42", 1);
    setenv("SHT_BOOL", "yes", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);

    char *text = capture(cfg, config_print);
    assert_string_equal(text, "SHT_STR=hello\n"
                              "SHT_INT=42\n"
                              "SHT_BOOL=true\n"
                              "SHT_ENUM=passcode\n"
                              "SHT_URL=http://127.0.0.1:8080\n"
                              "SHT_URL_EMPTY=\n"
                              "SHT_EVEN=2\n"
                              "SHT_SECRET=[unset]\n");
    free(text);

    json_t *json = config_to_json(cfg);
    assert_non_null(json);
    assert_true(json_is_integer(json_object_get(json, "SHT_INT")));
    assert_int_equal(json_integer_value(json_object_get(json, "SHT_INT")), 42);
    assert_true(json_is_true(json_object_get(json, "SHT_BOOL")));
    assert_string_equal(json_string_value(json_object_get(json, "SHT_URL")), "http://127.0.0.1:8080");
    assert_int_equal(json_object_size(json), TEST_SPECS_COUNT);
    json_decref(json);

    text = capture(cfg, config_print_help);
    assert_non_null(strstr(text, "SHT_INT (integer 1..86400, default: 3600)\n    an integer\n"));
    assert_non_null(strstr(text, "SHT_ENUM (passcode|jwt, default: passcode)\n"));
    assert_non_null(strstr(text, "SHT_URL_EMPTY (http(s) URL, default: unset)\n"));
    assert_non_null(strstr(text, "SHT_SECRET (string, secret, default: unset)\n"));
    free(text);
    config_free(cfg);
}

static void test_registration_refusals(void **state)
{
    (void)state;
    char err[256];
    struct config *cfg = test_config();

    /* The same table again. */
    assert_int_equal(config_register(cfg, TEST_SPECS, TEST_SPECS_COUNT, err, sizeof err), -1);
    assert_string_equal(err, "SHT_STR: registered twice");

    /* A table clashing on its second entry registers nothing. */
    static const struct config_spec clash[] = {
        {.name = "SHT_REQ", .type = CONFIG_STRING, .default_value = "a", .description = "new"},
        {.name = "SHT_INT", .type = CONFIG_STRING, .default_value = "b", .description = "dup"},
    };
    assert_int_equal(config_register(cfg, clash, 2, err, sizeof err), -1);
    assert_string_equal(err, "SHT_INT: registered twice");
    assert_int_equal(config_register(cfg, clash, 1, err, sizeof err), 0);

    /* Duplicates inside one table. */
    static const struct config_spec twice[] = {
        {.name = "SHT_WIDE", .type = CONFIG_BOOL, .default_value = "1", .description = "a"},
        {.name = "SHT_WIDE", .type = CONFIG_BOOL, .default_value = "0", .description = "b"},
    };
    assert_int_equal(config_register(cfg, twice, 2, err, sizeof err), -1);
    assert_string_equal(err, "SHT_WIDE: registered twice");

    /* Malformed specs. */
    static const struct config_spec malformed[][1] = {
        {{.name = "SHT_WIDE",
          .type = CONFIG_INT,
          .default_value = "abc",
          .min = 0,
          .max = 9,
          .description = "bad default"}},
        {{.name = "SHT_WIDE",
          .type = CONFIG_INT,
          .default_value = "5",
          .min = 9,
          .max = 0,
          .description = "min above max"}},
        {{.name = "SHT_WIDE",
          .type = CONFIG_ENUM,
          .default_value = "a",
          .choices = "a||b",
          .description = "empty choice"}},
        {{.name = "SHT_WIDE",
          .type = CONFIG_ENUM,
          .default_value = "c",
          .choices = "a|b",
          .description = "default not a choice"}},
        {{.name = "SHT_WIDE",
          .type = CONFIG_INT,
          .default_value = "",
          .min = 0,
          .max = 9,
          .description = "empty default for an integer"}},
        {{.name = "SHT_WIDE", .type = CONFIG_STRING, .default_value = "x"}},
        {{.name = "", .type = CONFIG_STRING, .default_value = "x", .description = "no name"}},
        {{.name = "SHT_WIDE", .type = CONFIG_URL, .default_value = "ftp://x", .description = "bad URL default"}},
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        err[0] = '\0';
        if (config_register(cfg, malformed[i], 1, err, sizeof err) != -1)
            fail_msg("malformed spec %zu accepted", i);
        assert_true(strlen(err) > 0);
    }
    config_register(cfg, malformed[0], 1, err, sizeof err);
    assert_string_equal(err, "invalid default: SHT_WIDE: must be an integer from 0 to 9 "
                             "(got \"abc\")");
    config_free(cfg);
}

/* Runs fn in a child process and expects it to abort. */
static void expect_abort(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void get_unregistered(void)
{
    char err[64];
    struct config *cfg = config_new();
    config_register(cfg, TEST_SPECS, TEST_SPECS_COUNT, err, sizeof err);
    config_load(cfg, err, sizeof err);
    config_str(cfg, "SHT_NOT_REGISTERED");
}

static void get_wrong_type(void)
{
    char err[64];
    struct config *cfg = config_new();
    config_register(cfg, TEST_SPECS, TEST_SPECS_COUNT, err, sizeof err);
    config_load(cfg, err, sizeof err);
    config_int(cfg, "SHT_STR");
}

static void get_before_load(void)
{
    char err[64];
    struct config *cfg = config_new();
    config_register(cfg, TEST_SPECS, TEST_SPECS_COUNT, err, sizeof err);
    config_str(cfg, "SHT_STR");
}

static void test_getter_misuse_aborts(void **state)
{
    (void)state;
    expect_abort(get_unregistered);
    expect_abort(get_wrong_type);
    expect_abort(get_before_load);
}

/* --- settings ------------------------------------------------------------------ */

static struct config *settings_config(void)
{
    char err[256];
    struct config *cfg = config_new();
    assert_non_null(cfg);
    assert_int_equal(config_register(cfg, settings_logging, settings_logging_count, err, sizeof err), 0);
    assert_int_equal(config_register(cfg, settings_kafka, settings_kafka_count, err, sizeof err), 0);
    assert_int_equal(config_register(cfg, settings_twilio, settings_twilio_count, err, sizeof err), 0);
    assert_int_equal(config_register(cfg, settings_public, settings_public_count, err, sizeof err), 0);
    return cfg;
}

static void set_valid_twilio_env(void)
{
    setenv("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef", 1);
    setenv("TWILIO_API_KEY_SID", "SK0123456789ABCDEF0123456789abcdef", 1);
    setenv("TWILIO_API_KEY_SECRET", SECRET_VALUE, 1);
    setenv("TWILIO_AUTH_TOKEN", "tok-" SECRET_VALUE, 1);
}

static void test_settings_valid_environment(void **state)
{
    (void)state;
    char err[512];
    struct config *cfg = settings_config();
    set_valid_twilio_env();
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "LOG_LEVEL"), "info");
    assert_string_equal(config_str(cfg, "KAFKA_BROKERS"), "127.0.0.1:9092");
    assert_string_equal(config_str(cfg, "TWILIO_API_BASE"), "");
    assert_string_equal(config_str(cfg, "TWILIO_VIDEO_BASE"), "https://video.twilio.com");
    assert_string_equal(config_str(cfg, "TWILIO_SYNC_BASE"), "https://sync.twilio.com");
    assert_string_equal(config_str(cfg, "TWILIO_MEDIA_BASE"), "https://media.twilio.com");
    assert_int_equal(config_int(cfg, "TWILIO_TIMEOUT_MS"), 10000);
    assert_int_equal(config_int(cfg, "TWILIO_MAX_RETRIES"), 4);
    assert_int_equal(config_int(cfg, "TWILIO_RETRY_BASE_MS"), 100);
    assert_int_equal(config_int(cfg, "TWILIO_RETRY_MAX_MS"), 5000);
    assert_string_equal(config_str(cfg, "PUBLIC_BASE_URL"), "http://127.0.0.1:8080");

    char *text = capture(cfg, config_print);
    assert_null(strstr(text, SECRET_VALUE));
    assert_non_null(strstr(text, "TWILIO_API_KEY_SECRET=[redacted]\n"));
    assert_non_null(strstr(text, "TWILIO_AUTH_TOKEN=[redacted]\n"));
    free(text);
    json_t *json = config_to_json(cfg);
    char *dumped = json_dumps(json, JSON_COMPACT);
    assert_null(strstr(dumped, SECRET_VALUE));
    free(dumped);
    json_decref(json);

    /* Overrides, as the emulator setup uses them. */
    setenv("LOG_LEVEL", "WARN", 1);
    setenv("KAFKA_BROKERS", "kafka-1:9092,kafka-2:19092,[::1]:9093", 1);
    setenv("TWILIO_API_BASE", "http://127.0.0.1:4010/", 1);
    setenv("PUBLIC_BASE_URL", "https://stagehand.example.com/", 1);
    assert_int_equal(config_load(cfg, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, "LOG_LEVEL"), "warn");
    assert_string_equal(config_str(cfg, "TWILIO_API_BASE"), "http://127.0.0.1:4010");
    assert_int_equal(config_is_set(cfg, "TWILIO_API_BASE"), 1);
    assert_string_equal(config_str(cfg, "PUBLIC_BASE_URL"), "https://stagehand.example.com");

    /* Every variable has a description for --help. */
    text = capture(cfg, config_print_help);
    for (size_t i = 0; i < sizeof SETTINGS_NAMES / sizeof SETTINGS_NAMES[0]; i++)
        assert_non_null(strstr(text, SETTINGS_NAMES[i]));
    free(text);
    config_free(cfg);
}

static void test_settings_required_twilio(void **state)
{
    (void)state;
    char err[512];
    struct config *cfg = settings_config();
    assert_int_equal(config_load(cfg, err, sizeof err), -1);
    assert_string_equal(err, "TWILIO_ACCOUNT_SID: required, not set; "
                             "TWILIO_API_KEY_SID: required, not set; "
                             "TWILIO_API_KEY_SECRET: required, not set; "
                             "TWILIO_AUTH_TOKEN: required, not set");
    config_free(cfg);
}

/* Sets name=value over a valid environment and expects reason in the error. */
static void expect_settings_bad(const char *name, const char *value, const char *reason)
{
    char err[512];
    struct config *cfg = settings_config();
    set_valid_twilio_env();
    setenv(name, value, 1);
    if (config_load(cfg, err, sizeof err) == 0)
        fail_msg("%s=\"%s\" was accepted", name, value);
    if (strncmp(err, name, strlen(name)) != 0 || !strstr(err, reason))
        fail_msg("%s=\"%s\": unexpected error: %s", name, value, err);
    config_free(cfg);
    clear_env(NULL);
}

static void test_settings_bad_values(void **state)
{
    (void)state;
    static const char *const sid_reason = "must be AC followed by 32 hex digits";
    expect_settings_bad("TWILIO_ACCOUNT_SID", "AC0123", sid_reason);
    expect_settings_bad("TWILIO_ACCOUNT_SID", "SK0123456789abcdef0123456789abcdef", sid_reason);
    expect_settings_bad("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdeg", sid_reason);
    expect_settings_bad("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef0", sid_reason);
    expect_settings_bad("TWILIO_API_KEY_SID", "AC0123456789abcdef0123456789abcdef",
                        "must be SK followed by 32 hex digits");

    static const char *const brokers_reason = "must be a comma-separated list of host:port";
    static const char *const bad_brokers[] = {
        "localhost", "localhost:0", "localhost:65536", "a:1,,b:2", "a:1,",       ",a:1",
        "a:1, b:2",  ":9092",       "host:port",       "[::1]",    "bad host:1",
    };
    for (size_t i = 0; i < sizeof bad_brokers / sizeof bad_brokers[0]; i++)
        expect_settings_bad("KAFKA_BROKERS", bad_brokers[i], brokers_reason);

    expect_settings_bad("LOG_LEVEL", "verbose", "must be one of debug, info, warn, error");
    expect_settings_bad("LOG_LEVEL", "warning", "must be one of debug, info, warn, error");
    expect_settings_bad("TWILIO_TIMEOUT_MS", "99", "must be an integer from 100 to 120000");
    expect_settings_bad("TWILIO_MAX_RETRIES", "21", "must be an integer from 0 to 20");
    expect_settings_bad("TWILIO_API_BASE", "localhost:4010", "must be an http:// or https://");
    expect_settings_bad("PUBLIC_BASE_URL", "https://", "must have a host");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_apply, clear_env),
        cmocka_unit_test_setup(test_set_values_and_empty_is_unset, clear_env),
        cmocka_unit_test_setup(test_int_good_values, clear_env),
        cmocka_unit_test_setup(test_int_bad_values, clear_env),
        cmocka_unit_test_setup(test_bool_values, clear_env),
        cmocka_unit_test_setup(test_enum_values, clear_env),
        cmocka_unit_test_setup(test_url_values, clear_env),
        cmocka_unit_test_setup(test_required_missing, clear_env),
        cmocka_unit_test_setup(test_custom_check, clear_env),
        cmocka_unit_test_setup(test_all_problems_reported, clear_env),
        cmocka_unit_test_setup(test_secret_never_shown, clear_env),
        cmocka_unit_test_setup(test_print_json_and_help, clear_env),
        cmocka_unit_test_setup(test_registration_refusals, clear_env),
        cmocka_unit_test_setup(test_getter_misuse_aborts, clear_env),
        cmocka_unit_test_setup(test_settings_valid_environment, clear_env),
        cmocka_unit_test_setup(test_settings_required_twilio, clear_env),
        cmocka_unit_test_setup(test_settings_bad_values, clear_env),
    };
    return cmocka_run_group_tests(tests, clear_env, NULL);
}
