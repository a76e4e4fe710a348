/* Unit tests for common/timeutil: RFC 3339 formatting and strict parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

static void test_format_has_milliseconds_and_z(void **state)
{
    (void)state;
    char out[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    time_format_rfc3339_ms(1795474741123LL, out);
    assert_string_equal(out, "2026-11-23T22:59:01.123Z");
    time_format_rfc3339_ms(951782400007LL, out); /* leap day */
    assert_string_equal(out, "2000-02-29T00:00:00.007Z");
}

static void test_parse_round_trip_and_offsets(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(time_parse_rfc3339("2026-11-23T22:59:01.123Z", &ms), 0);
    assert_int_equal(ms, 1795474741123LL);
    assert_int_equal(time_parse_rfc3339("2026-11-23T22:59:01Z", &ms), 0);
    assert_int_equal(ms, 1795474741000LL);
    assert_int_equal(time_parse_rfc3339("2026-11-23T23:59:01.5+01:00", &ms), 0);
    assert_int_equal(ms, 1795474741500LL);
    assert_int_equal(time_parse_rfc3339("2026-11-23T21:59:01.123456-01:00", &ms), 0);
    assert_int_equal(ms, 1795474741123LL);

    char out[RFC3339_MS_LEN + 1];
    int64_t now = time_now_ms();
    time_format_rfc3339_ms(now, out);
    assert_int_equal(time_parse_rfc3339(out, &ms), 0);
    assert_int_equal(ms, now);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11-23",
        "2026-11-23 22:59:01Z",
        "2026-11-23T22:59:01",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T22:60:00Z",
        "2026-11-23T22:59:01.Z",
        "2026-11-23T22:59:01Zjunk",
        "2026-11-23T22:59:01+0100",
        "26-11-23T22:59:01Z",
        "2026-11-23T22:59:01+25:00",
        "2026-1a-23T22:59:01Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -1;
        if (time_parse_rfc3339(bad[i], &ms) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

/* The parser's own calendar arithmetic agrees with the C library's timegm
 * on the first day of every month, and the last, from year 0 to 9999. */
static void test_parse_agrees_with_timegm(void **state)
{
    (void)state;
    static const int last_day[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int year = 0; year <= 9999; year++) {
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        for (int month = 1; month <= 12; month++) {
            int days[2] = {1, last_day[month - 1] + (month == 2 && leap)};
            for (int d = 0; d < 2; d++) {
                char text[96];
                snprintf(text, sizeof text, "%04d-%02d-%02dT23:59:58.250Z", year, month, days[d]);
                int64_t ms;
                assert_int_equal(time_parse_rfc3339(text, &ms), 0);
                struct tm tm = {.tm_year = year - 1900,
                                .tm_mon = month - 1,
                                .tm_mday = days[d],
                                .tm_hour = 23,
                                .tm_min = 59,
                                .tm_sec = 58};
                int64_t expected = (int64_t)timegm(&tm) * 1000 + 250;
                if (ms != expected)
                    fail_msg("%s: %lld, timegm says %lld", text, (long long)ms, (long long)expected);
            }
        }
    }
}

static void test_monotonic_never_goes_back(void **state)
{
    (void)state;
    int64_t a = time_monotonic_ms();
    time_sleep_ms(2);
    int64_t b = time_monotonic_ms();
    assert_true(b >= a + 1);
}

/* The coarse clock is the same clock, read at the tick: never ahead of
 * the fine one, never behind it by more than a tick (10 ms at the most
 * common HZ of 100; a second allows for a preempted test), and it moves
 * on. */
static void test_coarse_clock_follows_the_fine_one(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        int64_t before = time_monotonic_ms();
        int64_t coarse = time_monotonic_coarse_ms();
        int64_t after = time_monotonic_ms();
        assert_true(coarse <= after);
        assert_true(coarse > before - 1000);
    }
    int64_t a = time_monotonic_coarse_ms();
    time_sleep_ms(30);
    assert_true(time_monotonic_coarse_ms() > a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_has_milliseconds_and_z),
        cmocka_unit_test(test_parse_round_trip_and_offsets),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_agrees_with_timegm),
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_coarse_clock_follows_the_fine_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
