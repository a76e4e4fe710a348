/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for hash
 * tables whose keys come from outside. With a secret random key, a client
 * cannot choose keys that all land in one chain, as it can with an unkeyed
 * hash such as FNV. Not a MAC for anything that must last: 64 bits. */
#ifndef STAGEHAND_SIPHASH_H
#define STAGEHAND_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

/* The hash of data[0..len) under the 16-byte key. */
uint64_t siphash24(const unsigned char key[SIPHASH_KEY_BYTES], const void *data, size_t len);

#endif
