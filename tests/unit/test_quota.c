/* ingress/quota and the view's live-stream counts (issue 15 item 4):
 * streams counted per host and in all from the view, this process's claims
 * covering the view's lag, a retried create counted once, claims ended by
 * the view or by their time, per-client counts, and ended streams
 * forgotten after their retention (their SIDs too), while a stream that
 * lives again is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingress/quota.h"
#include "../../ingress/view.h"

/* A record of role for stream: status, life since, host; "" sid for none. */
static void record(struct view *v, const char *stream, const char *role, const char *status, int64_t since,
                   const char *host, const char *sid_name, const char *sid)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", stream, role);
    json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:s}", "stream", stream, "role", role, "status", status, "since",
                          (json_int_t)since, "host", host);
    if (sid_name)
        json_object_set_new(r, sid_name, json_string(sid));
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    assert_int_equal(view_apply(v, key, strlen(key), text, strlen(text)), 0);
    free(text);
}

static void live(struct view *v, const char *stream, const char *host, int64_t since, const char *room_sid)
{
    record(v, stream, "room", "ready", since, host, "room_sid", room_sid);
    record(v, stream, "sync", "ready", since, host, "service_sid", "IS0123456789abcdef0123456789abcdef");
}

static void ended(struct view *v, const char *stream, const char *host, int64_t since)
{
    record(v, stream, "room", "ended", since, host, NULL, NULL);
}

static void test_counts_from_the_view(void **state)
{
    (void)state;
    struct view *v = view_new();
    live(v, "a1", "alice", 1, "RM0123456789abcdef0123456789abcde1");
    live(v, "a2", "alice", 1, "RM0123456789abcdef0123456789abcde2");
    record(v, "b1", "room", "creating", 1, "bob", NULL, NULL);
    live(v, "a3", "alice", 1, "RM0123456789abcdef0123456789abcde3");
    ended(v, "a3", "alice", 1);
    long by_host, total;
    view_count_active(v, "alice", &by_host, &total);
    assert_int_equal(by_host, 2);
    assert_int_equal(total, 3);
    char host[64];
    int64_t since;
    assert_int_equal(view_is_active(v, "b1", host, sizeof host, &since), 1);
    assert_string_equal(host, "bob");
    assert_int_equal(since, 1);
    assert_int_equal(view_is_active(v, "a3", host, sizeof host, NULL), 0);
    assert_int_equal(view_is_active(v, "nope", host, sizeof host, &since), -1);
    assert_int_equal(since, -1);
    view_free(v);
}

static void test_limits(void **state)
{
    (void)state;
    struct view *v = view_new();
    struct quota_limits l = {.per_host = 2, .total = 4, .per_client = 2, .claim_ttl_ms = 10000};
    struct quota *q = quota_new(&l);
    /* Two claims the view does not show yet count for alice. */
    assert_int_equal(quota_claim(q, v, "s1", "alice", "10.0.0.1", 0), QUOTA_OK);
    assert_int_equal(quota_claim(q, v, "s2", "alice", "10.0.0.1", 0), QUOTA_OK);
    assert_int_equal(quota_claim(q, v, "s3", "alice", "10.0.0.1", 0), QUOTA_HOST);
    /* A retried create of one of them is the same stream. */
    assert_int_equal(quota_claim(q, v, "s2", "alice", "10.0.0.1", 100), QUOTA_OK);
    /* Once the view shows them, they are counted once, not twice. */
    live(v, "s1", "alice", 1, "RM0123456789abcdef0123456789abcde1");
    live(v, "s2", "alice", 1, "RM0123456789abcdef0123456789abcde2");
    assert_int_equal(quota_claim(q, v, "s3", "alice", "10.0.0.1", 200), QUOTA_HOST);
    assert_int_equal(quota_claim(q, v, "s1", "alice", "10.0.0.1", 200), QUOTA_OK); /* already hers */
    /* Passcode mode: the third stream from one address under another name. */
    assert_int_equal(quota_claim(q, v, "m1", "mallory", "10.0.0.1", 300), QUOTA_CLIENT);
    assert_int_equal(quota_claim(q, v, "m1", "mallory", "10.0.0.2", 300), QUOTA_OK);
    /* Four in all (two live, one claimed, one more): the fifth waits. */
    assert_int_equal(quota_claim(q, v, "c1", "carol", NULL, 300), QUOTA_OK);
    assert_int_equal(quota_claim(q, v, "d1", "dave", NULL, 300), QUOTA_TOTAL);
    /* An ended stream frees its place (and its client's); so does a claim
     * the view never showed, once its time is over. */
    ended(v, "s1", "alice", 1);
    assert_int_equal(quota_claim(q, v, "s3", "alice", "10.0.0.1", 400), QUOTA_OK);
    assert_int_equal(quota_claim(q, v, "d1", "dave", NULL, 400), QUOTA_TOTAL); /* s2 live; m1, c1, s3 pending */
    assert_int_equal(quota_claim(q, v, "d1", "dave", NULL, 20000), QUOTA_OK);  /* the three timed out */
    quota_free(q);
    view_free(v);
}

static void test_no_limits(void **state)
{
    (void)state;
    struct view *v = view_new();
    struct quota_limits l = {.claim_ttl_ms = 1000};
    struct quota *q = quota_new(&l);
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(quota_claim(q, v, name, "alice", "10.0.0.1", 0), QUOTA_OK);
    }
    quota_free(q);
    view_free(v);
}

static void test_forget_ended(void **state)
{
    (void)state;
    struct view *v = view_new();
    live(v, "old", "alice", 1, "RM0123456789abcdef0123456789abcde1");
    live(v, "again", "alice", 1, "RM0123456789abcdef0123456789abcde2");
    live(v, "alive", "bob", 1, "RM0123456789abcdef0123456789abcde3");
    ended(v, "old", "alice", 1);
    ended(v, "again", "alice", 1);
    assert_int_equal(view_size(v), 3);
    assert_int_equal(view_forget_ended(v, 1000, 5000), 0); /* first seen ended now */
    assert_int_equal(view_forget_ended(v, 5999, 5000), 0);
    live(v, "again", "alice", 2, "RM0123456789abcdef0123456789abcde4"); /* a new life */
    assert_int_equal(view_forget_ended(v, 6000, 5000), 1);
    assert_int_equal(view_size(v), 2);
    char name[64];
    struct stream_info info;
    assert_int_equal(view_get(v, "old", &info), 0);
    assert_int_equal(view_stream_for_sid(v, "RM0123456789abcdef0123456789abcde1", name, sizeof name), 0);
    assert_int_equal(view_stream_for_sid(v, "RM0123456789abcdef0123456789abcde3", name, sizeof name), 1);
    assert_int_equal(view_get(v, "again", &info), 1);
    assert_int_equal(info.status, STREAM_LIVE);
    /* The stream ends again: its retention starts over. */
    ended(v, "again", "alice", 2);
    assert_int_equal(view_forget_ended(v, 7000, 5000), 0);
    assert_int_equal(view_forget_ended(v, 12000, 5000), 1);
    assert_int_equal(view_stream_for_sid(v, "RM0123456789abcdef0123456789abcde2", name, sizeof name), 0);
    assert_int_equal(view_stream_for_sid(v, "RM0123456789abcdef0123456789abcde4", name, sizeof name), 0);
    assert_int_equal(view_size(v), 1);
    view_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_from_the_view),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_no_limits),
        cmocka_unit_test(test_forget_ended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
