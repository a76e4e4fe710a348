/* A REST client for Twilio's Video, Sync and Media (Live) APIs on libcurl.
 *
 * - HTTP Basic auth with the API key (SID as user, secret as password).
 * - Parameters are form-encoded as Twilio expects: PascalCase names chosen by
 *   the caller, booleans as true/false, JSON-valued fields as one JSON string,
 *   arrays as repeated keys (twilio_form_add_*); GET sends them as a query.
 * - Each product has its base URL; api_base, when set, replaces all three
 *   (the emulator serves every product from one address).
 * - Every answer is classified (enum twilio_outcome), reading both error body
 *   shapes: {code, message, more_info, status} and the newer
 *   {type, title, status, code, detail}.
 * - RATE_LIMITED and RETRYABLE answers are retried up to max_retries times
 *   with capped exponential backoff and full jitter, never sooner than the
 *   server's Retry-After. THIS SLEEPS IN THE CALLING THREAD: callers that
 *   must not block (the workers' poll loops) set max_retries = 0, read
 *   outcome and retry_after_ms, and schedule the retry themselves with
 *   twilio_backoff_ms.
 * - Paths are sent as given (CURLOPT_PATH_AS_IS): no dot segment is
 *   resolved away on the way out; twilio_path refuses to build one.
 * - A client owns one curl handle, so connections are kept alive and
 *   reused; a client must be used by one thread at a time.
 * Credentials never appear in URLs, logs or error messages. */
#ifndef STAGEHAND_TWILIO_H
#define STAGEHAND_TWILIO_H

#include <jansson.h>
#include <stddef.h>

#include "kv.h"

#define TWILIO_MAX_BODY (4 * 1024 * 1024) /* larger answers are refused */
#define TWILIO_MAX_RETRY_AFTER_MS 60000   /* Retry-After is honoured up to this */
/* Room for any path stagehand builds: an identity of 128 code points may be
 * 512 bytes of UTF-8, 1536 once percent-encoded, and the permission on a
 * user's document names it twice, plus SIDs and names. */
#define TWILIO_PATH_MAX 4096

enum twilio_product { TWILIO_VIDEO, TWILIO_SYNC, TWILIO_MEDIA };

enum twilio_outcome {
    TWILIO_OK,           /* 2xx */
    TWILIO_EXISTS,       /* 53113, 54208, 54301: the thing already exists */
    TWILIO_NOT_FOUND,    /* 404 / 20404 */
    TWILIO_RATE_LIMITED, /* 429 (20429, 54009): not processed, safe to retry */
    TWILIO_RETRYABLE,    /* 5xx, timeouts, transport failures */
    TWILIO_PERMANENT,    /* any other 4xx: retrying will not help */
};

struct twilio_options {
    const char *account_sid;
    const char *api_key_sid;
    const char *api_key_secret;
    const char *api_base;   /* "" or NULL: use the product bases */
    const char *video_base; /* e.g. https://video.twilio.com (paths carry /v1) */
    const char *sync_base;
    const char *media_base;
    long timeout_ms;
    long connect_timeout_ms;
    int max_retries;
    long retry_base_ms;
    long retry_max_ms;
    const char *user_agent;    /* NULL: "stagehand" */
    void (*sleep_ms)(long ms); /* NULL: really sleep (tests record instead) */
    double (*random01)(void);  /* NULL: random_unit() of common/random, in [0, 1) */
};

struct twilio_result {
    enum twilio_outcome outcome;
    long http_status;    /* 0 when there was no HTTP answer */
    int code;            /* Twilio's error code, else the HTTP status */
    char message[256];   /* Twilio's message or the transport error */
    json_t *body;        /* parsed JSON body of a success (NULL for 204) */
    long retry_after_ms; /* the last answer's Retry-After, -1 if none */
    char etag[64];       /* ETag of the last answer (Sync revisions) */
    int attempts;
};

struct twilio_client;

/* Checks the options and makes a client. NULL with the reason in err. */
struct twilio_client *twilio_client_new(const struct twilio_options *opt, char *err, size_t errlen);
void twilio_client_free(struct twilio_client *c);

/* Performs method ("GET", "POST", "DELETE") on path ("/v1/Rooms"), with params
 * as the form body (POST) or the query (GET, DELETE), and an If-Match header
 * when if_match is not NULL. Fills res (free it with twilio_result_free).
 * Returns 0 when the outcome is TWILIO_OK, else -1. */
int twilio_request(struct twilio_client *c, enum twilio_product product, const char *method, const char *path,
                   const struct kv_list *params, const char *if_match, struct twilio_result *res);
void twilio_result_free(struct twilio_result *res);

/* The base URL a product's requests go to. */
const char *twilio_base_url(const struct twilio_client *c, enum twilio_product product);

/* Formats a path where every %s argument is percent-encoded as one path
 * segment ("/v1/Rooms/%s" with "my room" -> "/v1/Rooms/my%20room"). Only %s
 * is supported. Returns 0, or -1 (out is then "") if it does not fit, fmt is
 * bad, or an argument is NULL, empty, "." or ".." (a segment that would
 * address the parent or the collection instead). Callers must check it. */
int twilio_path(char *out, size_t outlen, const char *fmt, ...) __attribute__((warn_unused_result));

/* Delay before retry number attempt (0 = first retry): random01 *
 * min(max_ms, base_ms * 2^attempt), and never less than retry_after_ms
 * (capped at TWILIO_MAX_RETRY_AFTER_MS) when that is >= 0. */
long twilio_backoff_ms(int attempt, long base_ms, long max_ms, long retry_after_ms, double random01);

enum twilio_outcome twilio_classify(long http_status, int code);
const char *twilio_outcome_name(enum twilio_outcome outcome);

/* Reads Twilio's error code and message from an error body of either shape;
 * falls back to the HTTP status and a generic message. Always fills both. */
void twilio_parse_error(const char *body, size_t len, long http_status, int *code, char *message, size_t msglen);

/* Parameter helpers; each returns 0, or -1 when out of memory (or, for JSON,
 * when value cannot be serialised). */
int twilio_form_add(struct kv_list *form, const char *name, const char *value);
int twilio_form_add_bool(struct kv_list *form, const char *name, int value);
int twilio_form_add_int(struct kv_list *form, const char *name, long long value);
int twilio_form_add_json(struct kv_list *form, const char *name, const json_t *value);

#endif
