/* Entity tags for GET answers that clients and caches revalidate
 * (RFC 9110, section 8.8.3 and 13.1.2).
 *
 * etag_of gives a strong tag computed from the body's bytes: the same body
 * always gets the same tag, in every ingress process. etag_matches
 * evaluates an If-None-Match field value against the current tag: "*"
 * matches any current representation; otherwise the value is a
 * comma-separated list of entity tags, compared weakly (W/"x" matches "x"),
 * as the RFC requires for If-None-Match. A list that is not well formed
 * matches nothing, so the full answer is sent. */
#ifndef STAGEHAND_INGRESS_ETAG_H
#define STAGEHAND_INGRESS_ETAG_H

#include <stddef.h>

/* A quote, 32 lowercase hex digits (128 bits of SHA-256), a quote, NUL. */
#define ETAG_SIZE 35

/* Writes the strong tag of body[0..len) into out. */
void etag_of(const void *body, size_t len, char out[ETAG_SIZE]);

/* 1 when the If-None-Match field value matches etag (a strong tag in
 * etag_of's form, quotes included), else 0. */
int etag_matches(const char *if_none_match, const char *etag);

#endif
