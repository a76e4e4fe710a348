/* UTF-8 checks and the character rules for identities and stream names.
 *
 * Identity (what a person types as their name):
 *   valid UTF-8, 1..IDENTITY_MAX_CHARS code points; spaces, accents and emoji
 *   are fine; no control characters (U+0000-U+001F, U+007F-U+009F) and no line
 *   or paragraph separators (U+2028, U+2029); no space at either end; no '/'
 *   (Sync cannot address a map item whose key has one); not "." or ".."
 *   (an identity becomes a URL path segment in Twilio requests, and these
 *   two would address the parent: ".." as a map item key is the map); must
 *   not start with "video-composer" (the Live composer joins rooms under such
 *   names and its participant events are ignored).
 *
 * Stream name (also the Room UniqueName, used in URL paths, and the Kafka key):
 *   valid UTF-8, 1..STREAM_NAME_MAX_CHARS code points; the identity rules on
 *   control characters and outer spaces; none of the URL-reserved or unsafe
 *   characters  / ? # [ ] @ : ! $ & ' ( ) * + , ; = % \ " < > ^ ` { | } ;
 *   not made only of dots ("." and ".." are path segments); not shaped like a
 *   Room SID ("RM" + 32 hex digits), which Twilio would read as a SID.
 */
#ifndef STAGEHAND_TEXT_H
#define STAGEHAND_TEXT_H

#include <stddef.h>

#define IDENTITY_MAX_CHARS 128
#define STREAM_NAME_MAX_CHARS 64

/* Number of code points in s[0..len), or -1 when s is not valid UTF-8
 * (overlong forms, surrogates and values above U+10FFFF are invalid). */
long utf8_length(const char *s, size_t len);

/* NULL when s is an acceptable identity, else a short reason such as
 * "must not contain control characters" (no field name, no value). */
const char *identity_problem(const char *s, size_t len);

/* NULL when s is an acceptable stream name, else a short reason. */
const char *stream_name_problem(const char *s, size_t len);

/* The same answers as identity_problem and stream_name_problem, always found
 * by decoding and checking one character at a time, without the shortcut
 * those take for names of plain ASCII. For tests that compare the two. */
const char *identity_problem_reference(const char *s, size_t len);
const char *stream_name_problem_reference(const char *s, size_t len);

/* 1 when s[0..len) is "." or "..", the dot segments of RFC 3986 that URL
 * clients and servers resolve away, else 0. */
int is_dot_segment(const char *s, size_t len);

#endif
