/* The Twilio emulator's shared state: credentials, options and every
 * resource it holds. One mutex guards it all; handlers run with it held. */
#ifndef STAGEHAND_EMULATOR_H
#define STAGEHAND_EMULATOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "faults.h"
#include "http.h"
#include "webhook.h"

#define EMU_SID_LEN 34 /* two-letter prefix + 32 hex digits */

/* Identities of the video composer's participants start with this. */
#define COMPOSER_PREFIX "video-composer"

struct emu_participant {
    char sid[EMU_SID_LEN + 1];
    char *identity;
    char status[16]; /* connected, disconnected */
    int64_t start_ms, end_ms;
};

struct emu_room {
    char sid[EMU_SID_LEN + 1];
    char *unique_name;
    char status[16]; /* in-progress, completed */
    char type[16];
    char *status_callback; /* NULL when none */
    char status_callback_method[8];
    long sequence_number; /* of its status callbacks */
    int max_participants;
    int max_participant_duration;
    int empty_room_timeout;  /* minutes */
    int unused_room_timeout; /* minutes */
    int audio_only;
    int record_participants_on_connect;
    int64_t created_ms, updated_ms, ended_ms;
    int64_t empty_since_ms; /* when the last participant left; 0 while occupied or unused */
    int ever_occupied;
    int64_t composer_alone_since_ms; /* the video composer is the only one connected */
    struct emu_participant *participants;
    size_t nparticipants;
};

/* A playback grant handed out for a PlayerStreamer: players must present
 * one that has not expired. */
struct emu_playback_grant {
    char token[33];
    int64_t expires_ms;
};

#define EMU_GRANTS_KEPT 16

struct emu_player_streamer {
    char sid[EMU_SID_LEN + 1];
    char status[16];       /* created, started, ended, failed */
    char ended_reason[32]; /* "" while running */
    int video;
    int max_duration;
    char *status_callback; /* NULL when none */
    char status_callback_method[8];
    long sequence_number;                              /* of its status callbacks */
    struct emu_playback_grant grants[EMU_GRANTS_KEPT]; /* the latest ones, a ring */
    size_t next_grant;
    long players; /* players connected with a valid grant */
    int64_t created_ms, updated_ms;
};

struct emu_media_processor {
    char sid[EMU_SID_LEN + 1];
    char status[16]; /* started, ended, failed */
    char ended_reason[32];
    char *extension;
    char *extension_context; /* the JSON text as sent */
    char *extension_environment;
    char room_sid[EMU_SID_LEN + 1];
    int max_duration;
    char *status_callback;
    char status_callback_method[8];
    long sequence_number;
    char *composer_identity; /* the participant it joined the room as, or NULL */
    int64_t created_ms, updated_ms;
};

struct emu_sync_service; /* sync.c */

struct emulator {
    pthread_mutex_t lock;
    const char *account_sid;
    const char *api_key_sid;
    const char *api_key_secret;
    const char *auth_token;
    struct emu_room *rooms;
    size_t nrooms;
    struct emu_player_streamer *streamers;
    size_t nstreamers;
    struct emu_media_processor *processors;
    size_t nprocessors;
    struct emu_sync_service **services;
    size_t nservices;

    /* Twilio's Sync limit: writes per second per object (a map's items, and
     * an object's permissions, count against it), with a burst of that many
     * seconds; 0 disables it. */
    double sync_writes_per_s;
    double sync_burst_s;
    /* Object creations and deletions per second per service (same burst). */
    double sync_creates_per_s;
    /* Twilio's REST concurrency limit: requests in progress at once, beyond
     * which 429 / 20429; 0 disables it. in_flight is guarded by its own lock. */
    long max_in_flight;
    atomic_long in_flight;

    struct webhook_sender *webhooks;
    double time_scale; /* > 1 shortens the rooms' empty/unused timeouts */
    struct emu_faults faults;

    /* Counters for GET /_emulator/stats. */
    long requests;
    long requests_by_product[EMU_PRODUCTS];
    long responses_429;
    json_t *sync_writes; /* object SID -> writes accepted (items, data, permissions) */
};

/* Writes prefix + 32 random hex digits into out. */
void emu_new_sid(const char *prefix, char out[EMU_SID_LEN + 1]);

/* Twilio's date format for resource fields: "2026-11-23T22:59:01Z". */
void emu_format_date(int64_t epoch_ms, char out[21]);

/* Handles /v1/Rooms...; returns 0 when the path is not Video's. */
int video_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

void video_free(struct emulator *emu);

/* The simulation API for rooms (not Twilio's), path segments after
 * "_emulator": POST rooms/{room}/participants with Token (an access token
 * with a video grant for the room) connects a participant;
 * POST rooms/{room}/participants/{identity}/leave disconnects it.
 * Returns 0 when the path is not one of these. */
int video_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

/* Ends the rooms whose unused or empty timeout has passed (Twilio ends a
 * REST-created room nobody joined, or everybody left, after those minutes). */
void video_tick(struct emulator *emu, int64_t now_ms);

/* Connects identity (taken over, freed on failure) to the in-progress room r,
 * replacing an earlier connection of the same identity, and sends
 * participant-connected. Returns the participant (valid until the next
 * change to the room), or NULL with the Twilio error code in *code (53105
 * when the room is full). */
struct emu_participant *video_connect(struct emulator *emu, struct emu_room *r, char *identity, int *code);

/* Disconnects the connected participant with this identity, if there is one. */
void video_disconnect(struct emulator *emu, struct emu_room *r, const char *identity);

/* A room by SID (any status) or by unique name (in progress only), or NULL. */
struct emu_room *video_find_room(struct emulator *emu, const char *id);

/* Handles /v1/PlayerStreamers... and /v1/MediaProcessors...; 0 when the path
 * is not Media's. */
int media_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

void media_free(struct emulator *emu);

/* Ends PlayerStreamers and MediaProcessors that outlived their MaxDuration. */
void media_tick(struct emulator *emu, int64_t now_ms);

/* The simulation API for players (not Twilio's), path segments after
 * "_emulator": POST player-streamers/{VJ...}/players with Token (an access
 * token whose player grant is a current PlaybackGrant of that streamer)
 * connects a player. Returns 0 when the path is not this one. */
int media_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

/* Handles /v1/Services...; 0 when the path is not Sync's. */
int sync_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

void sync_free(struct emulator *emu);

/* The simulation API for Sync clients, path segments after "_emulator":
 * POST sync/{service}/endpoints with Token (an access token with a data_sync
 * grant for the service) connects an endpoint (endpoint_connected webhook)
 * and answers its endpoint_id; POST sync/{service}/endpoints/{id}/disconnect
 * disconnects it (endpoint_disconnected, after the debouncing window when the
 * service debounces; a reconnection of the same identity within the window
 * cancels it). Returns 0 when the path is not one of these. */
int sync_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

/* Sends the debounced endpoint_disconnected webhooks that are due. */
void sync_tick(struct emulator *emu, int64_t now_ms);

/* Every resource of a product as JSON, for GET /_emulator/state. */
json_t *video_state(const struct emulator *emu);
json_t *media_state(const struct emulator *emu);
json_t *sync_state(const struct emulator *emu);

/* Checks an access token as Twilio would when a client connects: signed with
 * the API key secret, issued by the API key for the account, with an
 * identity, and with grants[grant][field] equal to one of want1 or want2
 * (want2 may be NULL). Returns the identity (malloc'd), or NULL after
 * answering with the error (401 for a bad token, 403 for missing grants).
 * When grant_out is not NULL it receives a reference to the grant object. */
char *emu_check_access_token(const struct emulator *emu, const char *token, const char *grant, const char *field,
                             const char *want1, const char *want2, json_t **grant_out, struct emu_response *resp);

/* Shared by the products: Twilio's "not found" and list envelope. */
void emu_not_found(struct emu_response *resp);
json_t *emu_list_page(const char *key, json_t *all, const struct emu_request *req, const char *url);
json_t *emu_date_or_null(int64_t epoch_ms);

#endif
