/* Helpers of the tests that drive the ingress alone, with the broker and
 * no worker (cmocka; the fixture is fixture_setup_ingress's, see
 * fixture.h): events read back from the events topic (and the proof that
 * none came), state records published as the workers would, HTTP calls
 * with the passcode or a bearer token, and signed Twilio webhooks. */
#ifndef STAGEHAND_TEST_INGRESS_HELPERS_H
#define STAGEHAND_TEST_INGRESS_HELPERS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "event.h"
#include "fixture.h"
#include "kv.h"
#include "timeutil.h"

#define ROOM_SID "RM0123456789abcdef0123456789abcdef"
#define SERVICE_SID "IS0123456789abcdef0123456789abcdef"
#define STREAMER_SID "VJ0123456789abcdef0123456789abcdef"
#define PROCESSOR_SID "ZX0123456789abcdef0123456789abcdef"
#define JWT_SECRET "a-test-secret-of-the-identity-service"

/* Authorization with the passcode and a JSON body. */
extern const char *const json_headers[];

/* cmocka setups: fixture_setup_ingress with no settings of the test's, and
 * with AUTH_MODE=jwt and AUTH_JWT_SECRET=JWT_SECRET. */
int setup_ingress(void **state);
int setup_ingress_jwt(void **state);

/* --- Kafka ------------------------------------------------------------------------------- */

/* The next event on the events topic within timeout_ms, or NULL. */
rd_kafka_message_t *next_event(struct fixture *f, int timeout_ms);

/* How many events the events topic holds (the topic is new in each
 * fixture, and nothing but the ingress and the tests write to it). */
int64_t events_in_kafka(struct fixture *f);

/* Reads the next event and checks it: type, key = stream, envelope and
 * data valid, headers id and type equal to the envelope's. Returns its
 * data (caller decrefs) and copies its id. (The message is destroyed
 * before anything is asserted: librdkafka does not close a reader while
 * one of its messages lives, so a failed test would hang in teardown.) */
json_t *expect_event(struct fixture *f, const char *type, const char *stream, char id[EVENT_ID_LEN + 1]);

/* Fails if the events topic holds an event not read yet. It reads for
 * LATE_EVENT_MS, so that an event produced just before has reached Kafka,
 * then asks Kafka where every partition ends and reads up to there: the
 * answer does not depend on how soon the reader fetches. */
void expect_no_event(struct fixture *f);

/* Publishes one state record as a worker would, and waits for the ack. */
void publish_state(struct fixture *f, const char *stream, const char *role, json_t *record);

/* Room, sync and stream records of a live stream hosted by host. */
void publish_live_stream(struct fixture *f, const char *stream, const char *host, long raised, long cap);

/* --- HTTP ---------------------------------------------------------------------------------- */

/* One request to the ingress (headers NULL-terminated, body may be NULL);
 * the caller frees the reply (http_reply_free). */
struct http_reply call(struct fixture *f, const char *method, const char *path, const char *const headers[],
                       const char *body);

/* POSTs a JSON body with the passcode; returns the status, the body parsed
 * into *out when out is not NULL. */
long post(struct fixture *f, const char *path, const char *body, json_t **out);

/* POSTs body to path and checks the answer is 200 {"<key>": true}. */
void expect_true(struct fixture *f, const char *path, const char *body, const char *key);

/* Waits until GET /streams/{name} shows status. */
void wait_stream_status(struct fixture *f, const char *name, const char *status);

/* --- bearer tokens (AUTH_MODE=jwt) ------------------------------------------------------- */

/* "Authorization: Bearer <HS256 JWT>" for claims as the operator's identity
 * service would issue them (sub and exp are what matter), signed with
 * secret. malloc'd. */
char *bearer_with_claims(json_t *claims, const char *secret);

/* A bearer token for identity that expires in ttl_s (negative: expired). */
char *bearer_expiring(const char *identity, const char *secret, long ttl_s);

/* A bearer token for identity, valid for ten minutes. */
char *bearer_for(const char *identity, const char *secret);

/* POSTs a JSON body with auth_header as the Authorization; the status. */
long post_as(struct fixture *f, const char *auth_header, const char *path, const char *body);

/* --- webhooks ---------------------------------------------------------------------------------- */

/* POSTs a form to path + query, signed for url_signed (NULL: no signature). */
long webhook(struct fixture *f, const char *path_and_query, const char *url_signed, struct kv_list *params);

/* Now as a webhook's timestamp: the ingress refuses deliveries outside
 * WEBHOOK_REPLAY_WINDOW_S of its clock. */
const char *webhook_now(char out[RFC3339_MS_LEN + 1]);

/* A Rooms status callback's fields for the room of "friday", timed now. */
void room_params(struct kv_list *p, const char *event, const char *identity);

#endif
