/* Random bytes in per-thread blocks, and random fractions (see random.h). */
#include "random.h"

#include <openssl/rand.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define RANDOM_BLOCK 4096

struct random_block {
    unsigned char bytes[RANDOM_BLOCK];
    size_t used; /* bytes already handed out; RANDOM_BLOCK when empty */
};

static _Thread_local struct random_block block = {.used = RANDOM_BLOCK};
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

/* In a forked child only the forking thread lives on: its block must not be
 * handed out by both processes. */
static void forget_block_in_child(void)
{
    memset(block.bytes, 0, sizeof block.bytes);
    block.used = RANDOM_BLOCK;
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, forget_block_in_child);
}

int random_bytes(void *out, size_t n)
{
    unsigned char *dst = out;
    pthread_once(&fork_handler_once, register_fork_handler);
    if (n > RANDOM_BLOCK / 4) /* large draws go straight to the generator */
        return n <= INT_MAX && RAND_bytes(dst, (int)n) == 1 ? 0 : -1;
    while (n > 0) {
        if (block.used == RANDOM_BLOCK) {
            if (RAND_bytes(block.bytes, RANDOM_BLOCK) != 1)
                return -1;
            block.used = 0;
        }
        size_t take = RANDOM_BLOCK - block.used;
        if (take > n)
            take = n;
        memcpy(dst, block.bytes + block.used, take);
        block.used += take;
        dst += take;
        n -= take;
    }
    return 0;
}

double random_unit(void)
{
    uint64_t r = 0;
    if (random_bytes(&r, sizeof r) != 0)
        return 1.0;
    return (double)(r >> 11) / 9007199254740992.0; /* 2^53 */
}
