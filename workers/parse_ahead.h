/* parse_ahead.h - parses a worker's fetched events on a second thread
 * while its poll loop handles the ones before them.
 *
 * In a replay, a rebuild from offset 0 or a long burst, the poll loop's
 * queue of fetched events is long, and event_parse is about half of what
 * each event costs the loop. The poll loop polls events in batches; a full
 * batch (the queue had that many waiting at once) is offered to a helper
 * thread that parses it while the loop handles the batch before it. The loop
 * still handles every event itself, one at a time, in the order it polled
 * them. Nothing else moves to the helper: it only calls event_parse, which
 * reads nothing of the worker's.
 *
 * The loop never waits for the helper when there is parsing it can do
 * itself: a batch the helper has not started is parsed by the loop when its
 * turn comes, and while the helper parses the batch the loop needs next,
 * the loop parses a later one. A batch that is not full (the queue ran
 * dry, as in live traffic) is never offered: the loop parses it as it
 * always did, with no hand-over and no wake-up.
 *
 * Batches go round a fixed ring: fill (the poll loop), submit, take (parsed,
 * in submission order), release. The ring owns the messages from submission
 * on and destroys them with their events when a batch is released: the
 * helper does, for the batches it parsed, so that the poll loop frees
 * neither (a free of memory another thread allocated waits for that
 * thread's malloc arena, and librdkafka's fetch thread holds its own most
 * of the time). Only the poll loop's thread calls these functions. */
#ifndef STAGEHAND_PARSE_AHEAD_H
#define STAGEHAND_PARSE_AHEAD_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define PARSE_AHEAD_BATCH 256 /* events per batch */
#define PARSE_AHEAD_PENDING 4 /* batches the poll loop keeps submitted ahead */
/* The ring: those, the one taken, and room for spent ones that the helper
 * has not freed yet. */
#define PARSE_AHEAD_BATCHES 8

/* One polled event and, once its batch is taken, what event_parse made of
 * it. tag is the caller's (the worker keeps its partition's epoch there). */
struct parsed_event {
    rd_kafka_message_t *msg;
    uint64_t tag;
    int parsed; /* 1: ev holds the event; 0: err says why it is not one */
    struct event ev;
    char err[256];
};

struct parse_batch {
    size_t n;
    struct parsed_event items[PARSE_AHEAD_BATCH];
};

struct parse_ahead;

/* The ring, with its helper thread when helper is set (without one, every
 * batch is parsed by take); destroy is how a message is destroyed
 * (rd_kafka_message_destroy). NULL with err set when out of memory or the
 * thread could not start. */
struct parse_ahead *parse_ahead_new(int helper, void (*destroy)(rd_kafka_message_t *msg), char *err, size_t errlen);

/* Stops the helper and frees the ring, with every message still in it
 * (submitted, taken or released). */
void parse_ahead_free(struct parse_ahead *pa);

/* Batches submitted and not yet taken. */
int parse_ahead_pending(const struct parse_ahead *pa);

/* An empty batch to fill (n = 0), or NULL when every batch of the ring is
 * submitted or taken. Fill items[0..n) with msg and tag, then submit it. */
struct parse_batch *parse_ahead_slot(struct parse_ahead *pa);

/* Queues the filled batch; with offer set the helper may parse it. An empty
 * batch goes back to the ring unsubmitted. */
void parse_ahead_submit(struct parse_ahead *pa, struct parse_batch *b, int offer);

/* The oldest submitted batch, every event of it parsed; NULL when none is
 * submitted. Only one batch is taken at a time: release it before the next
 * take. */
struct parse_batch *parse_ahead_take(struct parse_ahead *pa);

/* The taken batch is handled: it goes back to the ring, and its events and
 * messages are freed, here or, when the helper parsed it, on the helper's
 * next round. */
void parse_ahead_release(struct parse_ahead *pa, struct parse_batch *b);

#endif
