/* workers/parse_ahead: batches come back in the order they were submitted,
 * each event parsed as event_parse parses it, whichever thread parsed it;
 * the ring runs out and refills; freeing it hands back the messages still
 * in it. The messages are made here (payload and length are all the ring
 * reads of them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_ahead.h"

/* Event number i as a message: most valid, every seventh not. */
static rd_kafka_message_t *message(long i)
{
    rd_kafka_message_t *m = calloc(1, sizeof *m);
    char *text = malloc(512);
    assert_non_null(m);
    assert_non_null(text);
    int len;
    if (i % 7 == 3)
        len = snprintf(text, 512, "{\"id\":\"%032lx\",\"type\":\"viewer.connected\"}", i);
    else
        len = snprintf(text, 512,
                       "{\"id\":\"%032lx\",\"type\":\"viewer.connected\",\"stream\":\"s-%ld\","
                       "\"ts\":\"2026-12-03T10:00:00.000Z\",\"source\":\"api\",\"actor\":\"v-%ld\","
                       "\"data\":{\"identity\":\"v-%ld\"},\"v\":1}",
                       i, i % 5, i, i);
    m->payload = text;
    m->len = (size_t)len;
    m->offset = i;
    return m;
}

static atomic_long destroyed; /* the helper destroys too */

static void destroy(rd_kafka_message_t *m)
{
    free(m->payload);
    free(m);
    destroyed++;
}

/* Fills a slot with n messages numbered from *next and submits it. */
static void submit(struct parse_ahead *pa, long *next, size_t n, int offer)
{
    struct parse_batch *b = parse_ahead_slot(pa);
    assert_non_null(b);
    assert_int_equal(b->n, 0);
    for (size_t k = 0; k < n; k++) {
        b->items[k].msg = message(*next);
        b->items[k].tag = (uint64_t)*next;
        (*next)++;
    }
    b->n = n;
    parse_ahead_submit(pa, b, offer);
}

/* Takes the oldest batch and checks it holds the events numbered from
 * *expect on, each as event_parse makes it; then releases it. */
static void take_and_check(struct parse_ahead *pa, long *expect)
{
    struct parse_batch *b = parse_ahead_take(pa);
    assert_non_null(b);
    for (size_t k = 0; k < b->n; k++) {
        struct parsed_event *it = &b->items[k];
        assert_int_equal(it->msg->offset, *expect);
        assert_int_equal(it->tag, (uint64_t)*expect);
        struct event ev;
        char err[256];
        int parsed = event_parse(it->msg->payload, it->msg->len, &ev, err, sizeof err) == 0;
        assert_int_equal(it->parsed, parsed);
        if (parsed) {
            assert_string_equal(it->ev.id, ev.id);
            assert_string_equal(it->ev.stream, ev.stream);
            assert_string_equal(event_data_string(&it->ev, "identity"), event_data_string(&ev, "identity"));
            event_free(&ev);
        } else {
            assert_string_equal(it->err, err);
        }
        (*expect)++;
    }
    parse_ahead_release(pa, b);
}

/* Many rounds of full (offered) and partial (not offered) batches, kept up
 * to PARSE_AHEAD_PENDING ahead, as the worker's poll loop keeps them. */
static void run_rounds(int helper)
{
    char err[128];
    struct parse_ahead *pa = parse_ahead_new(helper, destroy, err, sizeof err);
    assert_non_null(pa);
    destroyed = 0;
    long next = 0, expect = 0;
    for (int round = 0; round < 3000; round++) {
        while (parse_ahead_pending(pa) < PARSE_AHEAD_PENDING) {
            int partial = (next / PARSE_AHEAD_BATCH + round) % 11 == 0;
            submit(pa, &next, partial ? 1 + (size_t)(round % PARSE_AHEAD_BATCH) : PARSE_AHEAD_BATCH, !partial);
        }
        take_and_check(pa, &expect);
    }
    while (parse_ahead_pending(pa) > 0)
        take_and_check(pa, &expect);
    assert_int_equal(expect, next);
    assert_null(parse_ahead_take(pa));
    parse_ahead_free(pa);
    assert_int_equal(destroyed, next); /* every message, once */
}

static void test_in_order_with_helper(void **state)
{
    (void)state;
    run_rounds(1);
}

static void test_in_order_without_helper(void **state)
{
    (void)state;
    run_rounds(0);
}

/* Every batch submitted: no slot is left until one is taken and released;
 * an empty batch goes back unsubmitted. */
static void test_ring_runs_out(void **state)
{
    (void)state;
    char err[128];
    struct parse_ahead *pa = parse_ahead_new(1, destroy, err, sizeof err);
    assert_non_null(pa);
    struct parse_batch *empty = parse_ahead_slot(pa);
    assert_non_null(empty);
    parse_ahead_submit(pa, empty, 1);
    assert_int_equal(parse_ahead_pending(pa), 0);
    long next = 0, expect = 0;
    for (int i = 0; i < PARSE_AHEAD_BATCHES; i++)
        submit(pa, &next, PARSE_AHEAD_BATCH, 1);
    assert_int_equal(parse_ahead_pending(pa), PARSE_AHEAD_BATCHES);
    assert_null(parse_ahead_slot(pa));
    take_and_check(pa, &expect);
    /* The released batch comes back (freed by the helper or, if it has not
     * got to it yet, by parse_ahead_slot). */
    submit(pa, &next, 3, 0);
    while (parse_ahead_pending(pa) > 0)
        take_and_check(pa, &expect);
    assert_int_equal(expect, next);
    parse_ahead_free(pa);
}

/* Freed with batches in it, offered, parsed, taken and released: their
 * messages go to destroy, once each, and their events are freed (the
 * sanitizers' leak check sees the rest). */
static void test_free_hands_back_messages(void **state)
{
    (void)state;
    char err[128];
    for (int helper = 0; helper <= 1; helper++) {
        struct parse_ahead *pa = parse_ahead_new(helper, destroy, err, sizeof err);
        assert_non_null(pa);
        destroyed = 0;
        long next = 0;
        for (int i = 0; i < PARSE_AHEAD_PENDING; i++)
            submit(pa, &next, PARSE_AHEAD_BATCH, i % 2 == 0);
        parse_ahead_release(pa, parse_ahead_take(pa));    /* spent: perhaps freed by the helper meanwhile */
        struct parse_batch *taken = parse_ahead_take(pa); /* parsed, never released */
        assert_non_null(taken);
        parse_ahead_free(pa);
        assert_int_equal(destroyed, next);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_with_helper),
        cmocka_unit_test(test_in_order_without_helper),
        cmocka_unit_test(test_ring_runs_out),
        cmocka_unit_test(test_free_hands_back_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
