/* Wall-clock and monotonic time, and RFC 3339 timestamps with milliseconds. */
#ifndef STAGEHAND_TIMEUTIL_H
#define STAGEHAND_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define RFC3339_MS_LEN 24 /* "2026-11-23T22:59:01.123Z" */

/* Milliseconds since the Unix epoch. */
int64_t time_now_ms(void);

/* Milliseconds from an arbitrary fixed point; never goes backwards. */
int64_t time_monotonic_ms(void);

/* time_monotonic_ms at the resolution of the kernel's tick (1 to 10 ms),
 * at a fraction of its cost: for a check made once per event. Never ahead
 * of time_monotonic_ms. */
int64_t time_monotonic_coarse_ms(void);

/* Formats ms-since-epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into out, which
 * needs RFC3339_MS_LEN+1 bytes. */
void time_format_rfc3339_ms(int64_t epoch_ms, char *out);

/* Parses an RFC 3339 date-time ("T" or " " separator not accepted: only "T"),
 * with optional fraction and a "Z" or +hh:mm/-hh:mm offset. Stores ms since
 * the epoch. Returns 0, or -1 when s is not such a timestamp. */
int time_parse_rfc3339(const char *s, int64_t *epoch_ms);

/* Sleeps for ms milliseconds (restarting after signals). */
void time_sleep_ms(int64_t ms);

#endif
