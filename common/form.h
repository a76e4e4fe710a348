/* application/x-www-form-urlencoded bodies and query strings, and
 * percent-encoding of URL path segments. */
#ifndef STAGEHAND_FORM_H
#define STAGEHAND_FORM_H

#include <stddef.h>

#include "kv.h"

#define FORM_MAX_PAIRS 1000

/* Parses "a=1&b=x+y&c=%2F" into out (appended, order kept). '+' is a space,
 * %XX is decoded, a pair without '=' has an empty value, empty pairs are
 * skipped. A bad escape, an empty name or more than FORM_MAX_PAIRS pairs is
 * an error (-1, reason in err); values may hold any bytes, UTF-8 checks are
 * the caller's. Returns 0 on success. */
int form_parse(const char *body, size_t len, struct kv_list *out, char *err, size_t errlen);

/* Encodes pairs as a form body: every byte outside A-Z a-z 0-9 - . _ ~ as
 * upper-case %XX (space as %20), joined with '&', repeated names kept.
 * Returns a malloc'd string, or NULL when out of memory. */
char *form_encode(const struct kv_list *pairs);

/* Percent-encodes one URL path segment with the same rule. malloc'd, or NULL. */
char *percent_encode(const char *s, size_t len);

#endif
