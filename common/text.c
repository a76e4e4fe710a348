/* UTF-8 decoding and the identity / stream-name rules described in text.h. */
#include "text.h"

#include <stdint.h>
#include <string.h>

/* Decodes one code point at s[0..len). Returns its byte length and stores the
 * value in *cp, or returns 0 when the sequence is invalid. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        need = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        need = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        need = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return need;
}

long utf8_length(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    long count = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return -1;
        i += n;
        count++;
    }
    return count;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

/* Checks shared by both kinds of name: UTF-8, length, controls, outer spaces.
 * Calls forbidden() for each code point when it is non-NULL. */
static const char *common_problem(const char *s, size_t len, long max_chars, const char *too_long,
                                  const char *(*forbidden)(uint32_t cp))
{
    const unsigned char *p = (const unsigned char *)s;
    if (len == 0)
        return "must not be empty";
    long count = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return "is not valid UTF-8";
        if (is_control(cp))
            return "must not contain control characters";
        if (forbidden) {
            const char *why = forbidden(cp);
            if (why)
                return why;
        }
        i += n;
        count++;
    }
    if (count > max_chars)
        return too_long;
    if (s[0] == ' ' || s[len - 1] == ' ')
        return "must not start or end with a space";
    return NULL;
}

static const char *identity_forbidden(uint32_t cp)
{
    return cp == '/' ? "must not contain '/'" : NULL;
}

int is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

const char *identity_problem(const char *s, size_t len)
{
    const char *why = common_problem(s, len, IDENTITY_MAX_CHARS, "must be at most 128 characters", identity_forbidden);
    if (why)
        return why;
    if (is_dot_segment(s, len))
        return "must not be \".\" or \"..\" (URL path segments)";
    static const char reserved[] = "video-composer";
    if (len >= sizeof reserved - 1 && memcmp(s, reserved, sizeof reserved - 1) == 0)
        return "must not start with \"video-composer\" (reserved)";
    return NULL;
}

static const char *stream_forbidden(uint32_t cp)
{
    if (cp < 0x80 && strchr("/?#[]@:!$&'()*+,;=%\\\"<>^`{|}", (int)cp))
        return "must not contain any of / ? # [ ] @ : ! $ & ' ( ) * + , ; = % \\ \" < > ^ ` { | }";
    return NULL;
}

static int looks_like_room_sid(const char *s, size_t len)
{
    if (len != 34 || s[0] != 'R' || s[1] != 'M')
        return 0;
    for (size_t i = 2; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

const char *stream_name_problem(const char *s, size_t len)
{
    const char *why = common_problem(s, len, STREAM_NAME_MAX_CHARS, "must be at most 64 characters", stream_forbidden);
    if (why)
        return why;
    size_t dots = 0;
    while (dots < len && s[dots] == '.')
        dots++;
    if (dots == len)
        return "must not be made only of dots";
    if (looks_like_room_sid(s, len))
        return "must not look like a Room SID";
    return NULL;
}
