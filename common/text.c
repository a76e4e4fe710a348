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

/* What each kind of name asks of its characters beyond valid UTF-8 and no
 * control characters. */
struct name_rules {
    long max_chars;
    const char *too_long;
    const char *(*forbidden)(uint32_t cp); /* NULL: nothing more is forbidden */
    unsigned char plain;                   /* this kind's bit in plain_ascii[] */
};

/* The bits of plain_ascii[]: which names may hold the byte as it stands. */
enum { PLAIN_ID = 1, PLAIN_STREAM = 2 };
#define B (PLAIN_ID | PLAIN_STREAM)
#define I PLAIN_ID

/* For each byte, the kinds of name whose per-character checks always let it
 * through as a one-byte character: printable ASCII, less '/' for identities
 * and the URL-reserved characters for stream names. Control characters and
 * every byte >= 0x80 stay 0, so they always take the full per-character path.
 * The unit tests compare this table with that path byte by byte. */
static const unsigned char plain_ascii[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00-0x0f: control characters */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10-0x1f: control characters */
    B, I, I, I, I, I, I, I, I, I, I, I, I, B, B, 0, /* sp ! " # $ % & ' ( ) * + , - . / */
    B, B, B, B, B, B, B, B, B, B, I, I, I, I, I, I, /* 0 1 2 3 4 5 6 7 8 9 : ; < = > ? */
    I, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* @ A B C D E F G H I J K L M N O */
    B, B, B, B, B, B, B, B, B, B, B, I, I, I, I, B, /* P Q R S T U V W X Y Z [ \ ] ^ _ */
    I, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* ` a b c d e f g h i j k l m n o */
    B, B, B, B, B, B, B, B, B, B, B, I, I, I, B, 0, /* p q r s t u v w x y z { | } ~ DEL */
    /* 0x80-0xff: left 0 */
};

#undef B
#undef I

/* 1 when every byte of s[0..len) has the bit plain in plain_ascii[]: then
 * each byte is one character that no per-character check refuses. */
static int all_plain(const unsigned char *p, size_t len, unsigned char plain)
{
    for (size_t i = 0; i < len; i++)
        if (!(plain_ascii[p[i]] & plain))
            return 0;
    return 1;
}

/* The checks on the whole name once each character has passed. */
static const char *length_and_ends(const char *s, size_t len, long count, const struct name_rules *rules)
{
    if (count > rules->max_chars)
        return rules->too_long;
    if (s[0] == ' ' || s[len - 1] == ' ')
        return "must not start or end with a space";
    return NULL;
}

/* Decodes and checks each character in turn; the first refused one decides. */
static const char *per_character_problem(const char *s, size_t len, const struct name_rules *rules)
{
    const unsigned char *p = (const unsigned char *)s;
    long count = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return "is not valid UTF-8";
        if (is_control(cp))
            return "must not contain control characters";
        if (rules->forbidden) {
            const char *why = rules->forbidden(cp);
            if (why)
                return why;
        }
        i += n;
        count++;
    }
    return length_and_ends(s, len, count, rules);
}

/* Checks shared by both kinds of name: UTF-8, length, controls, outer spaces.
 * With shortcut set, a name of plain ASCII (the usual case) skips the
 * decoding: its byte count is its character count and no character can be
 * refused; anything else goes through the per-character path. */
static const char *common_problem(const char *s, size_t len, const struct name_rules *rules, int shortcut)
{
    if (len == 0)
        return "must not be empty";
    if (shortcut && all_plain((const unsigned char *)s, len, rules->plain)) {
        /* Clamped so that a huge len cannot overflow long. */
        long count = len > (size_t)rules->max_chars ? rules->max_chars + 1 : (long)len;
        return length_and_ends(s, len, count, rules);
    }
    return per_character_problem(s, len, rules);
}

static const char *identity_forbidden(uint32_t cp)
{
    return cp == '/' ? "must not contain '/'" : NULL;
}

static const struct name_rules identity_rules = {IDENTITY_MAX_CHARS, "must be at most 128 characters",
                                                 identity_forbidden, PLAIN_ID};

int is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

static const char *identity_check(const char *s, size_t len, int shortcut)
{
    const char *why = common_problem(s, len, &identity_rules, shortcut);
    if (why)
        return why;
    if (is_dot_segment(s, len))
        return "must not be \".\" or \"..\" (URL path segments)";
    static const char reserved[] = "video-composer";
    if (len >= sizeof reserved - 1 && memcmp(s, reserved, sizeof reserved - 1) == 0)
        return "must not start with \"video-composer\" (reserved)";
    return NULL;
}

const char *identity_problem(const char *s, size_t len)
{
    return identity_check(s, len, 1);
}

const char *identity_problem_reference(const char *s, size_t len)
{
    return identity_check(s, len, 0);
}

static const char *stream_forbidden(uint32_t cp)
{
    if (cp < 0x80 && strchr("/?#[]@:!$&'()*+,;=%\\\"<>^`{|}", (int)cp))
        return "must not contain any of / ? # [ ] @ : ! $ & ' ( ) * + , ; = % \\ \" < > ^ ` { | }";
    return NULL;
}

static const struct name_rules stream_name_rules = {STREAM_NAME_MAX_CHARS, "must be at most 64 characters",
                                                    stream_forbidden, PLAIN_STREAM};

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

static const char *stream_name_check(const char *s, size_t len, int shortcut)
{
    const char *why = common_problem(s, len, &stream_name_rules, shortcut);
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

const char *stream_name_problem(const char *s, size_t len)
{
    return stream_name_check(s, len, 1);
}

const char *stream_name_problem_reference(const char *s, size_t len)
{
    return stream_name_check(s, len, 0);
}
