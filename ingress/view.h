/* The ingress's view of the streams, folded from the compacted topic
 * stagehand.state. Each worker role publishes one record per stream under
 * the key "<stream>/<role>" (role = room, stream or sync; '/' cannot occur
 * in a stream name), a JSON object:
 *
 *   common   "stream", "role", "status" (creating | ready | ended),
 *            "since" (ms timestamp of the stream.create_requested that began
 *            this life of the stream), "host" (identity), "ts"
 *   room     "room_sid"
 *   stream   "player_streamer_sid", "media_processor_sid", "playback_grant"
 *            (the PlaybackGrant API's grant object), "playback_grant_expires_ms"
 *   sync     "service_sid", "viewer_count", "raised_hands", "raised_hands_cap"
 *
 * Anything else in a record (applied offsets, ...) is ignored here. A null
 * value (tombstone) removes the role's record. Per stream, only the records
 * of the newest life ("since") count: the stream is ENDED when one of them
 * says ended, LIVE when the room and sync records are ready, else CREATING.
 * Thread-safe: one thread applies records, request threads read copies. */
#ifndef STAGEHAND_INGRESS_VIEW_H
#define STAGEHAND_INGRESS_VIEW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "text.h"

#define VIEW_SID_LEN 34

enum stream_status { STREAM_UNKNOWN = 0, STREAM_CREATING, STREAM_LIVE, STREAM_ENDED };

/* A copy of what the view knows of one stream ("" for what it does not). */
struct stream_info {
    enum stream_status status;
    char host[IDENTITY_MAX_CHARS * 4 + 1];
    char room_sid[VIEW_SID_LEN + 1];
    char service_sid[VIEW_SID_LEN + 1];
    char player_streamer_sid[VIEW_SID_LEN + 1];
    char media_processor_sid[VIEW_SID_LEN + 1];
    char playback_grant[1024];    /* JSON text of the grant object */
    int64_t playback_grant_expires_ms;
    long viewer_count;            /* -1 when unknown */
    long raised_hands;            /* -1 when unknown */
    long raised_hands_cap;        /* -1 when unknown */
    int room_ready, sync_ready, media_ready;
};

struct view;

struct view *view_new(void);
void view_free(struct view *v);

/* Applies one record of stagehand.state. Returns 0, or -1 when the key or
 * the value is malformed (the record is ignored). */
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
 * (never the playback grant). NULL when the stream is unknown. */
json_t *view_stream_json(struct view *v, const char *stream);

const char *view_status_name(enum stream_status status);

#endif
