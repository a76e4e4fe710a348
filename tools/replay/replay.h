/* stagehand-replay: the operators' tool for the event log. One file per
 * command: export.c (events out as NDJSON), import.c (NDJSON in), dlq.c
 * (list and re-drive dead letters), offsets.c (make a worker group apply
 * again from a time); main.c picks the command. */
#ifndef STAGEHAND_REPLAY_H
#define STAGEHAND_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "settings.h"

/* Each command takes the arguments after its name (argv[0] is the command)
 * and the brokers; returns the exit status: 0 done, 1 failed, 2 bad usage
 * or input. Results go to stdout, diagnostics to stderr. */
int replay_export(int argc, char **argv, const char *brokers);
int replay_import(int argc, char **argv, const char *brokers);
int replay_dlq(int argc, char **argv, const char *brokers);
int replay_offsets(int argc, char **argv, const char *brokers);

struct kafka_producer;

/* A producer for stagehand.events whose delivery reports are counted.
 * NULL with the reason on stderr. */
struct kafka_producer *replay_producer(const char *brokers);

/* Queues value (a serialised event of stream, with its id and type) onto
 * stagehand.events, keyed by stream, with the id and type headers, and a
 * redriven_from header when that is not NULL. Returns 0, or -1 with the
 * reason on stderr. */
int replay_produce(struct kafka_producer *p, const char *stream, const char *id, const char *type,
                   const char *redriven_from, const char *value);

/* Waits for the delivery reports of what was queued, closes p, and
 * returns how many messages Kafka acknowledged. */
long replay_close(struct kafka_producer *p, long queued);

/* Reads "2026-12-02T10:00:00Z" (RFC 3339) or a number of milliseconds
 * since the epoch into *ms. Returns 0, or -1 with a message on stderr
 * naming option. */
int replay_parse_time(const char *option, const char *text, int64_t *ms);

/* Reads a non-negative decimal into *out. Returns 0, or -1 with a message
 * on stderr naming option. */
int replay_parse_count(const char *option, const char *text, int64_t *out);

#endif
