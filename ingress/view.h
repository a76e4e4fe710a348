/* The ingress's view of the streams, folded from the compacted topic
 * stagehand.state. Each worker role publishes one record per stream under
 * the key "<stream>/<role>" (role = room, stream or sync; '/' cannot occur
 * in a stream name), a JSON object:
 *
 *   common   "stream", "role", "status" (creating | ready | ended),
 *            "since" (ms timestamp of the stream.create_requested that began
 *            this life of the stream), "host" (identity), "ts"
 *   room     "room_sid", and optionally "invited" ([identity], who may
 *            join the stage besides the host: invited by the host and not
 *            removed since; see workers/stage.h)
 *   stream   "player_streamer_sid", "media_processor_sid", "playback_grant"
 *            (the PlaybackGrant API's grant object), "playback_grant_expires_ms"
 *   sync     "service_sid", "viewer_count", "raised_hands", "raised_hands_cap",
 *            and optionally "speakers" ([{"identity", "host"}], who is on
 *            stage), "viewers_listed" (the identities in the Sync viewers
 *            map, join order) and "provisioning" ({"eager_limit",
 *            "eager_admitted", "provisioned", "backlog", "oldest_wait_ms"})
 *
 * Anything else in a record (applied offsets, ...) is ignored here, and so
 * are the workers' checkpoint records (keys beginning with '#': view_apply
 * returns 0 and the view is unchanged). A null
 * value (tombstone) removes the role's record. A record whose common
 * fields, SIDs or grant are malformed is ignored as a whole (view_apply
 * returns -1). The three optional sync fields and the room's "invited" are
 * checked too (identities by the identity rules, counts non-negative
 * integers), but one that is
 * malformed is dropped alone and the rest of the record kept, since the
 * record also carries what joins need: a dropped field reads as absent
 * (unknown counts, empty lists), is logged, and view_apply returns 1.
 * Lists longer than VIEW_SPEAKERS_MAX / VIEW_VIEWERS_MAX keep their first
 * entries. Per stream, only the records
 * of the newest life ("since") count: the stream is ENDED when one of them
 * says ended, LIVE when the room and sync records are ready, else CREATING.
 * Thread-safe: one thread applies records, request threads read copies. */
#ifndef STAGEHAND_INGRESS_VIEW_H
#define STAGEHAND_INGRESS_VIEW_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "etag.h"
#include "text.h"

#define VIEW_SID_LEN 34
#define VIEW_SPEAKERS_MAX 50  /* a Video Room holds at most 50 participants */
#define VIEW_VIEWERS_MAX 1000 /* listed viewers kept (VIEWERS_MAP_CAP defaults to 100) */
#define VIEW_INVITED_MAX 50   /* invitations kept (the room worker keeps as many) */

enum stream_status { STREAM_UNKNOWN = 0, STREAM_CREATING, STREAM_LIVE, STREAM_ENDED };

/* The sync worker's provisioning of viewers (-1 for a count not given). */
struct view_provisioning {
    int known; /* the record had the field */
    long eager_limit, eager_admitted, provisioned, backlog, oldest_wait_ms;
};

/* A copy of what the view knows of one stream ("" for what it does not). */
struct stream_info {
    enum stream_status status;
    char host[IDENTITY_MAX_CHARS * 4 + 1];
    char room_sid[VIEW_SID_LEN + 1];
    char service_sid[VIEW_SID_LEN + 1];
    char player_streamer_sid[VIEW_SID_LEN + 1];
    char media_processor_sid[VIEW_SID_LEN + 1];
    char playback_grant[1024]; /* JSON text of the grant object */
    int64_t playback_grant_expires_ms;
    long viewer_count;     /* -1 when unknown */
    long raised_hands;     /* -1 when unknown */
    long raised_hands_cap; /* -1 when unknown */
    int room_ready, sync_ready, media_ready;
    struct view_provisioning provisioning;
};

/* What GET /streams/{name}/state answers: the JSON body, rendered once per
 * change of the stream's records and shared by every request until the
 * next change, and its strong ETag. Read-only for its holders. */
struct view_public {
    atomic_int refs;
    char etag[ETAG_SIZE];
    size_t len;
    char body[]; /* len bytes and a NUL */
};

struct view;

struct view *view_new(void);
void view_free(struct view *v);

/* Applies one record of stagehand.state (from one thread at a time).
 * Returns 0; 1 when an optional field was malformed and dropped (the rest
 * was applied); -1 when the key or the value is malformed (the record is
 * ignored). */
int view_apply(struct view *v, const char *key, size_t key_len, const char *value, size_t value_len);

/* Copies what is known of stream into out. Returns 1 when the stream is
 * known, else 0 (out->status is STREAM_UNKNOWN). */
int view_get(struct view *v, const char *stream, struct stream_info *out);

/* The stream that owns a Room, Sync service, PlayerStreamer or
 * MediaProcessor SID. Returns 1 and copies its name into out (outlen
 * bytes), or 0 when no stream is known to own it. */
int view_stream_for_sid(struct view *v, const char *sid, char *out, size_t outlen);

/* Streams known. */
size_t view_size(struct view *v);

/* What GET /streams/{name} shows: status, host, SIDs, counts, readiness
 * (never the playback grant), and "provisioning" when the sync record has
 * it. NULL when the stream is unknown. */
json_t *view_stream_json(struct view *v, const char *stream);

const char *view_status_name(enum stream_status status);

/* The public state of stream, for everyone who may watch it:
 *   {"stream", "status" (creating | live | ended), "host" (or null),
 *    "speakers": [{"identity", "host"}], "viewer_count" (or null),
 *    "viewers": [identity, ...], "raised_hands" (or null),
 *    "raised_hands_cap" (or null), "hand_queue_full"}
 * and nothing else (no SID, no grant, no provisioning). Rendered on the
 * first call after the stream's records changed, then shared. Returns a
 * reference the caller gives back with view_public_release, or NULL when
 * the stream is unknown or memory ran out (*oom set to 1 then). */
struct view_public *view_public_get(struct view *v, const char *stream, int *oom);
void view_public_release(struct view_public *p);

/* Whether identity may join stream's stage: it is the host of the
 * stream's newest life, or in the invited list of that life's room record.
 * 0 for an unknown stream. */
int view_may_speak(struct view *v, const char *stream, const char *identity);

/* Decides whether a viewer joining stream now is admitted to the eager
 * tier (Sync access in join order, up to limit per stream): the stream's
 * eager admissions are counted as the larger of the sync record's
 * provisioning.eager_admitted and this process's own count for the
 * stream's current life (which starts from the record's number and grows
 * by one with each admission made here, since the record lags during a
 * burst). Returns 1 and counts the admission, or 0. */
int view_admit_eager(struct view *v, const char *stream, long limit);

/* Streams whose newest life has not ended (creating or live): in total,
 * and those whose host is host (may be NULL). */
void view_count_active(struct view *v, const char *host, long *by_host, long *total);

/* Whether stream is active (1; its host copied into host, "" when not
 * known), known but ended or without records (0), or unknown (-1); since
 * (may be NULL) gets its newest life's since, -1 when unknown. */
int view_is_active(struct view *v, const char *stream, char *host, size_t hostlen, int64_t *since);

/* Forgets the streams that have been ended (or left without records) for
 * retention_ms, counted from the first call that saw them so (times are
 * the caller's, monotonic). A stream that lives again is kept. Returns how
 * many were forgotten. */
size_t view_forget_ended(struct view *v, int64_t now_ms, int64_t retention_ms);

#endif
