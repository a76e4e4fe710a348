/* The flat JSON object reader (see flatjson.h). */
#include "flatjson.h"

#include <stdint.h>
#include <string.h>

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Byte-parallel tests on 8 bytes at a time ("Bit Twiddling Hacks"). Each
 * flags, in the byte's high bit, the bytes of x below n (n <= 128), above
 * n (n <= 127) or equal to b. Past the lowest flagged byte a flag may be
 * false (borrows and carries run upwards), so only "any" and "the lowest"
 * are read from them. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t bytes_below(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

static uint64_t bytes_above(uint64_t x, unsigned n)
{
    return ((x + ONES * (127 - n)) | x) & HIGHS;
}

static uint64_t bytes_equal(uint64_t x, unsigned char b)
{
    return bytes_below(x ^ (ONES * b), 1);
}

/* The bytes of the 8 at p that end a run of a plain string: controls,
 * DEL and non-ASCII, quotes and backslashes. */
static uint64_t string_stops(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return bytes_below(x, 0x20) | bytes_above(x, 0x7e) | bytes_equal(x, '"') | bytes_equal(x, '\\');
}

/* A string of printable ASCII without escapes; c->p is on its opening
 * quote. Leaves c->p after the closing quote. The bytes are looked at 8 at
 * a time while 8 are left (the envelope's strings are most of its bytes),
 * up to the first that stops the run; the byte loop then judges that one
 * (and the last few bytes of the buffer). */
static int plain_string(struct cursor *c, const char **s, size_t *len)
{
    const char *start = ++c->p;
    while (c->end - c->p >= 8) {
        uint64_t stops = string_stops(c->p);
        if (stops) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            c->p += __builtin_ctzll(stops) / 8; /* the lowest byte is the first in memory */
#endif
            break;
        }
        c->p += 8;
    }
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            return -1;
        c->p++;
    }
    if (c->p == c->end)
        return -1;
    *s = start;
    *len = (size_t)(c->p - start);
    c->p++;
    return 0;
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* -?(0|[1-9][0-9]*), not followed by a fraction or exponent. */
static int integer(struct cursor *c, const char **s, size_t *len)
{
    const char *start = c->p;
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p == c->end || !is_digit(*c->p))
        return -1;
    if (*c->p == '0')
        c->p++;
    else
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E' || is_digit(*c->p)))
        return -1;
    *s = start;
    *len = (size_t)(c->p - start);
    return 0;
}

/* An object, array or literal: only its end is found (strings inside are
 * skipped with their escapes, brackets counted); the caller parses it. */
static int delimited(struct cursor *c, const char **s, size_t *len)
{
    const char *start = c->p;
    size_t depth = 0;
    while (c->p < c->end) {
        char ch = *c->p;
        if (ch == '"') {
            for (c->p++; c->p < c->end && *c->p != '"'; c->p++)
                if (*c->p == '\\' && ++c->p == c->end)
                    return -1;
            if (c->p == c->end)
                return -1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                break; /* the enclosing object's end */
            if (--depth == 0) {
                c->p++;
                break;
            }
        } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
            break;
        }
        c->p++;
    }
    if (depth != 0 || c->p == start)
        return -1;
    *s = start;
    *len = (size_t)(c->p - start);
    return 0;
}

int flatjson_members(const char *buf, size_t len, struct flatjson_member *out, size_t max)
{
    struct cursor c = {buf, buf + len};
    size_t n = 0;
    skip_space(&c);
    if (c.p == c.end || *c.p != '{')
        return -1;
    c.p++;
    skip_space(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            if (n == max || c.p == c.end || *c.p != '"')
                return -1;
            struct flatjson_member *m = &out[n++];
            if (plain_string(&c, &m->key, &m->key_len) < 0)
                return -1;
            skip_space(&c);
            if (c.p == c.end || *c.p != ':')
                return -1;
            c.p++;
            skip_space(&c);
            if (c.p == c.end)
                return -1;
            int rc;
            if (*c.p == '"') {
                m->kind = FLATJSON_STRING;
                rc = plain_string(&c, &m->value, &m->value_len);
            } else if (*c.p == '-' || is_digit(*c.p)) {
                m->kind = FLATJSON_INTEGER;
                rc = integer(&c, &m->value, &m->value_len);
            } else {
                m->kind = FLATJSON_OTHER;
                rc = delimited(&c, &m->value, &m->value_len);
            }
            if (rc < 0)
                return -1;
            skip_space(&c);
            if (c.p == c.end)
                return -1;
            if (*c.p == '}') {
                c.p++;
                break;
            }
            if (*c.p != ',')
                return -1;
            c.p++;
            skip_space(&c);
        }
    }
    skip_space(&c);
    return c.p == c.end ? (int)n : -1;
}
