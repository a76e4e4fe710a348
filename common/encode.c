/* Hex and base64 encoders/decoders; small, strict, and free of allocation. */
#include "encode.h"

#include <string.h>

static const char HEX[] = "0123456789abcdef";
static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

size_t base64_encoded_len(size_t len, int padded)
{
    if (padded)
        return 4 * ((len + 2) / 3);
    return (len / 3) * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

static void encode_with(const char *alphabet, int pad, const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
}

void base64_encode(const unsigned char *in, size_t len, char *out)
{
    encode_with(B64_STD, 1, in, len, out);
}

void base64url_encode(const unsigned char *in, size_t len, char *out)
{
    encode_with(B64_URL, 0, in, len, out);
}

static int sextet(const char *alphabet, char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

static long decode_with(const char *alphabet, const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = sextet(alphabet, in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero, or the text is not canonical. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

long base64url_decode(const char *in, size_t len, unsigned char *out)
{
    return decode_with(B64_URL, in, len, out);
}

long base64_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 0 && len >= 4) {
        if (in[len - 1] == '=')
            len--;
        if (in[len - 1] == '=')
            len--;
    }
    return decode_with(B64_STD, in, len, out);
}
