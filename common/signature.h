/* X-Twilio-Signature validation for webhooks.
 *
 * Form mode: HMAC-SHA1, keyed with the account's auth token, over the full
 * URL Twilio requested followed by every parameter as name+value (decoded),
 * names in byte order, the values of a repeated name sorted and duplicates
 * counted once; standard base64 with padding.
 *
 * JSON mode: when the URL's query carries bodySHA256, the signature covers
 * the URL alone and the lower-case hex SHA-256 of the raw body must equal
 * bodySHA256.
 *
 * Twilio has signed some callbacks with the port in the URL and some
 * without, so a signature is accepted when it matches the URL as given, the
 * URL without its port, or the URL with the scheme's default port (443 for
 * https, 80 for http) added. twilio-node also retries with the query string
 * re-serialised by Node's legacy querystring module; that variant only
 * undoes Node's own parsing of the request URL, and stagehand checks the
 * query exactly as it arrived, so it is not needed here.
 *
 * All comparisons are constant-time. */
#ifndef STAGEHAND_SIGNATURE_H
#define STAGEHAND_SIGNATURE_H

#include <stddef.h>

#include "kv.h"

#define SIGNATURE_LEN 28 /* base64 of a 20-byte HMAC-SHA1 */

/* Computes the form-mode signature of url + params (params may be NULL).
 * out needs SIGNATURE_LEN + 1 bytes. Returns 0, or -1 when out of memory. */
int signature_compute(const char *auth_token, const char *url, const struct kv_list *params,
                      char out[SIGNATURE_LEN + 1]);

/* 1 when header_value is a valid form-mode signature of url + params under
 * any of the URL variants above, else 0 (also for a missing header). */
int signature_valid(const char *auth_token, const char *url, const struct kv_list *params, const char *header_value);

/* 1 when header_value signs url (JSON mode) and the body matches the URL's
 * bodySHA256, else 0. */
int signature_valid_json(const char *auth_token, const char *url, const char *body, size_t body_len,
                         const char *header_value);

#endif
