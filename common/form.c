/* Form/query decoding and percent-encoding (see form.h). */
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..len) into out (at least len bytes). Returns the decoded length,
 * or -1 on a bad escape. */
static long decode_component(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

int form_parse(const char *body, size_t len, struct kv_list *out, char *err, size_t errlen)
{
    size_t pos = 0, pairs = 0;
    char *scratch = malloc(len + 1);
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (pos < len) {
        const char *pair = body + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - pos;
        pos += pair_len + 1;
        if (pair_len == 0)
            continue;
        if (++pairs > FORM_MAX_PAIRS) {
            snprintf(err, errlen, "more than %d fields", FORM_MAX_PAIRS);
            goto fail;
        }
        const char *eq = memchr(pair, '=', pair_len);
        size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
        const char *value = eq ? eq + 1 : pair + pair_len;
        size_t value_len = eq ? pair_len - name_len - 1 : 0;

        long n = decode_component(pair, name_len, scratch);
        if (n < 0) {
            snprintf(err, errlen, "field %zu: bad percent-escape in the name", pairs);
            goto fail;
        }
        if (n == 0) {
            snprintf(err, errlen, "field %zu: empty name", pairs);
            goto fail;
        }
        size_t decoded_name_len = (size_t)n;
        char *name = scratch;
        char *decoded_value = scratch + decoded_name_len;
        /* The value decodes right after the name: both fit in len bytes. */
        long v = decode_component(value, value_len, decoded_value);
        if (v < 0) {
            snprintf(err, errlen, "field %zu: bad percent-escape in the value", pairs);
            goto fail;
        }
        if (kv_addn(out, name, decoded_name_len, decoded_value, (size_t)v) < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    free(scratch);
    return 0;
fail:
    free(scratch);
    return -1;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* Appends the encoding of s[0..len) at out; returns the new end. */
static char *encode_into(char *out, const char *s, size_t len)
{
    static const char HEX[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 15];
        }
    }
    return out;
}

char *percent_encode(const char *s, size_t len)
{
    char *out = malloc(3 * len + 1);
    if (!out)
        return NULL;
    *encode_into(out, s, len) = '\0';
    return out;
}

char *form_encode(const struct kv_list *pairs)
{
    size_t size = 1;
    for (size_t i = 0; i < pairs->len; i++)
        size += 3 * (pairs->items[i].name_len + pairs->items[i].value_len) + 2;
    char *out = malloc(size);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < pairs->len; i++) {
        if (i > 0)
            *p++ = '&';
        p = encode_into(p, pairs->items[i].name, pairs->items[i].name_len);
        *p++ = '=';
        p = encode_into(p, pairs->items[i].value, pairs->items[i].value_len);
    }
    *p = '\0';
    return out;
}
