/* Helpers of the tests that watch the workers with the emulator around
 * them (cmocka; the fixture is fixture.h's): the emulator's Video, Media
 * and Sync state and request counts, participants joining and leaving its
 * rooms, the ingress's client API, events and state records read back
 * from Kafka, and events produced as the ingress would. */
#ifndef STAGEHAND_TEST_PIPELINE_HELPERS_H
#define STAGEHAND_TEST_PIPELINE_HELPERS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "fixture.h"

/* The whole pipeline's workers: room, stream and sync are workers 0, 1 and 2. */
#define ROLES 3

/* --- setups (cmocka) ----------------------------------------------------------------------------- */

/* Broker, emulator, an ingress on a public port (the emulator's webhooks
 * reach it; CREATE_WAIT_MS=20000, PRODUCE_TIMEOUT_MS=1000, no rate
 * limits, then ingress_env), the room, stream and sync workers
 * (VIEWERS_MAP_CAP=20, COUNT_INTERVAL_MS=200), env for all of them, and a
 * producer. */
int setup_whole_pipeline(void **state, const char *const env[], const char *const ingress_env[]);
/* Its options, for a test that changes some before fixture_setup (the
 * lists live in static storage: one fixture at a time). */
void whole_pipeline_options(struct fixture_options *o, const char *const env[], const char *const ingress_env[]);

/* The same processes for watching the sync worker: the emulator started
 * with emulator_args, the ingress with CREATE_WAIT_MS=20000, and env (the
 * caps and tiers the ingress shares with the workers) for all of them. */
int setup_sync_pipeline(void **state, const char *const env[], const char *const emulator_args[]);

/* --- the emulator ------------------------------------------------------------------------------ */

/* GET path of the emulator (its state, stats, any product: one base URL). */
json_t *emulator_get(struct fixture *f, const char *path);

/* How many requests the emulator served, per product (its stats), and how
 * many Sync writes in all. */
long video_requests(struct fixture *f);

long media_requests(struct fixture *f);

long sync_requests(struct fixture *f);

long sync_writes_total(struct fixture *f);
/* The emulator's whole state and stats (its webhooks left out: they are sent
 * asynchronously, not the workers' doing) as one JSON text, keys sorted, to
 * compare before and after (malloc'd). */
char *emulator_snapshot(struct fixture *f);
/* emulator_snapshot once it has stayed the same for two seconds (at most a
 * minute). */
char *settled_snapshot(struct fixture *f);
/* The entry of a service's list (kind: "maps", "documents", ...) whose
 * unique_name is name, or NULL (borrowed). */
json_t *named(json_t *service, const char *kind, const char *name);
/* How many objects of a JSON list have field equal to value. */
int count_named(json_t *list, const char *field, const char *value);

/* The emulator's room called name (the newest), or NULL. */
json_t *find_room(struct fixture *f, const char *name);

/* Waits up to 15 s for the room called name to have status; returns it. */
json_t *wait_room(struct fixture *f, const char *name, const char *status);

/* The emulator's Media resource (kind: player_streamers, media_processors). */
json_t *media_resource(struct fixture *f, const char *kind, const char *sid);

/* Waits up to 15 s for a Media resource to have status. */
void wait_media_status(struct fixture *f, const char *kind, const char *sid, const char *status);

/* POSTs a form to the emulator (its simulation API, unsigned); the status,
 * the body parsed into *body when body is not NULL. */
long emulator_post(struct fixture *f, const char *path, const char *form, json_t **body);

/* An access token for identity with a video grant for room and a Sync
 * grant for service (either NULL: none), valid ten minutes; malloc'd. */
char *token_for(const char *identity, const char *room, const char *service);

/* A participant joins the emulator's room of f->stream (or leaves). */
void room_join(struct fixture *f, const char *identity);

void room_leave(struct fixture *f, const char *identity);

/* The status of identity's latest participant in the emulator's room of
 * f->stream ("" when it never joined). */
void participant_status(struct fixture *f, const char *identity, char *out, size_t outlen);

/* Waits up to 15 s for participant_status to be status. */
void expect_participant(struct fixture *f, const char *identity, const char *status);

/* The stream's Sync service in the emulator's state (the newest with the
 * stream's friendly name), or NULL. */
json_t *sync_service(struct fixture *f, const char *stream);

/* The items of a Sync map, and the data of a document, of a service as
 * sync_service returns it (borrowed), or NULL. */
json_t *map_items(json_t *service, const char *map);

json_t *document(json_t *service, const char *name);

/* Waits until check(service) holds; returns the service (caller decrefs). */
json_t *wait_sync(struct fixture *f, const char *stream, int (*check)(json_t *service, const void *arg),
                  const void *arg, const char *what);

/* Waits until f->stream's map has count items, with present and without
 * absent (either NULL: not checked). */
void expect_items(struct fixture *f, const char *map, size_t count, const char *present, const char *absent);

/* Waits until f->stream's document has field = value (booleans as 0/1). */
void expect_doc(struct fixture *f, const char *doc, const char *field, json_int_t value);

/* --- the ingress -------------------------------------------------------------------------------- */

/* POSTs body to the ingress with the passcode and "Prefer: respond-async"; the status. */
long post_async(struct fixture *f, const char *path, const char *body);

/* POSTs body to the ingress with the passcode; returns the status (-503
 * for a 503 without Retry-After: a 503 must say when to come back), the
 * body parsed into *answer when answer is not NULL (caller decrefs). */
long api(struct fixture *f, const char *path, const char *body, json_t **answer);

/* --- Kafka -------------------------------------------------------------------------------------- */

/* The next event of type on the events topic (others are skipped). */
rd_kafka_message_t *next_of_type(struct fixture *f, const char *type);

/* The newest state record under key, waiting until its status is status. */
json_t *wait_state(struct fixture *f, const char *key, const char *status);

/* Produces one event about identity straight onto the events topic, as
 * the ingress would; does not wait for the ack. */
void produce_event(struct fixture *f, const char *type, const char *stream, const char *identity);

/* Waits until f->producer has no message waiting for its report. */
void wait_produced(struct fixture *f);

/* Produces again every event of stream found on the events topic (same
 * key, value and id header). Returns how many. */
int copy_stream_events(struct fixture *f, const char *stream);

#endif
