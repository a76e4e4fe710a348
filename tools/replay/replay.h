/* stagehand-replay: the operators' tool for the event log. One file per
 * command: export.c (events out as NDJSON), import.c (NDJSON in), dlq.c
 * (list and re-drive dead letters), offsets.c (make a worker group apply
 * again from a time); main.c picks the command. */
#ifndef STAGEHAND_REPLAY_H
#define STAGEHAND_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#define EVENTS_TOPIC "stagehand.events"
#define DLQ_TOPIC "stagehand.dlq"

/* Each command takes the arguments after its name (argv[0] is the command)
 * and the brokers; returns the exit status: 0 done, 1 failed, 2 bad usage
 * or input. Results go to stdout, diagnostics to stderr. */
int replay_export(int argc, char **argv, const char *brokers);
int replay_import(int argc, char **argv, const char *brokers);
int replay_dlq(int argc, char **argv, const char *brokers);
int replay_offsets(int argc, char **argv, const char *brokers);

/* Reads "2026-12-02T10:00:00Z" (RFC 3339) or a number of milliseconds
 * since the epoch into *ms. Returns 0, or -1 with a message on stderr
 * naming option. */
int replay_parse_time(const char *option, const char *text, int64_t *ms);

/* Reads a non-negative decimal into *out. Returns 0, or -1 with a message
 * on stderr naming option. */
int replay_parse_count(const char *option, const char *text, int64_t *out);

#endif
