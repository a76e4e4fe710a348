/* A reader of flat JSON objects that builds nothing: it splits
 * {"key":"value",...} into its members in place, for the event parser's
 * fast path (an envelope has about eight members; building them as JSON
 * values costs more than the rest of a worker's work on an event).
 *
 * It takes a strict subset of JSON and says no to anything else, so that a
 * caller can fall back to a full parser and lose nothing: keys and strings
 * of printable ASCII without escapes, integers without fraction or
 * exponent, and any other value (an object, an array, true ...) only
 * delimited, not checked; the caller parses such a value itself. */
#ifndef STAGEHAND_FLATJSON_H
#define STAGEHAND_FLATJSON_H

#include <stddef.h>

enum flatjson_kind {
    FLATJSON_STRING,  /* value: the bytes between the quotes */
    FLATJSON_INTEGER, /* value: the digits, with a leading '-' if any */
    FLATJSON_OTHER,   /* value: the whole text of an object, array or literal */
};

struct flatjson_member {
    const char *key; /* not NUL-terminated: key_len bytes */
    size_t key_len;
    enum flatjson_kind kind;
    const char *value; /* not NUL-terminated: value_len bytes */
    size_t value_len;
};

/* Splits buf (len bytes) into at most max members, in the order written.
 * Returns how many, or -1 when buf is not a flat object this reader takes:
 * not JSON, an escape or a byte outside printable ASCII in a key or string,
 * a number with a fraction or exponent, more than max members, or anything
 * but whitespace after the closing brace. Duplicate keys are the caller's
 * to find. */
int flatjson_members(const char *buf, size_t len, struct flatjson_member *out, size_t max);

#endif
