/* The flat JSON object reader (see flatjson.h). */
#include "flatjson.h"

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A string of printable ASCII without escapes; c->p is on its opening
 * quote. Leaves c->p after the closing quote. */
static int plain_string(struct cursor *c, const char **s, size_t *len)
{
    const char *start = ++c->p;
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
