/* Byte encodings used across stagehand: hex, base64 and base64url (RFC 4648). */
#ifndef STAGEHAND_ENCODE_H
#define STAGEHAND_ENCODE_H

#include <stddef.h>

/* Lower-case hex of len bytes into out (needs 2*len+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* Size of the base64 text (without NUL) for len bytes. */
size_t base64_encoded_len(size_t len, int padded);

/* Standard alphabet with '=' padding. out needs base64_encoded_len(len,1)+1. */
void base64_encode(const unsigned char *in, size_t len, char *out);

/* URL-safe alphabet, no padding (JWT). out needs base64_encoded_len(len,0)+1. */
void base64url_encode(const unsigned char *in, size_t len, char *out);

/* Decodes base64url without padding (padding is refused, as JWS requires).
 * out must hold at least len*3/4+1 bytes. Returns the decoded length, or -1
 * on a character outside the alphabet or an impossible length. */
long base64url_decode(const char *in, size_t len, unsigned char *out);

/* Decodes standard base64 with or without padding. Same contract as above. */
long base64_decode(const char *in, size_t len, unsigned char *out);

#endif
