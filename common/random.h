/* Random bytes for event ids and trace ids, drawn from OpenSSL's generator
 * in blocks, and random fractions for retry jitter.
 *
 * RAND_bytes takes a lock, checks for a fork (getpid) and runs its cipher
 * on every call; the ingress draws an id and a trace id for every request,
 * where those calls were a sixth of its time. Each thread therefore keeps a
 * block of generator output and hands it out in pieces; every byte is still
 * OpenSSL's, none is handed out twice, and a forked child throws away the
 * block it inherited. */
#ifndef STAGEHAND_RANDOM_H
#define STAGEHAND_RANDOM_H

#include <stddef.h>

/* Fills out with n random bytes. 0, or -1 when the generator failed (out is
 * then unspecified). */
int random_bytes(void *out, size_t n);

/* A uniform random number in [0, 1) with 53 random bits, for backoff
 * jitter (the Twilio client's and the workers' retries). When the generator
 * fails: 1.0, so a retry waits its whole step rather than none. */
double random_unit(void);

#endif
