/* The Twilio emulator's shared state: credentials, options and every
 * resource it holds. One mutex guards it all; handlers run with it held. */
#ifndef STAGEHAND_EMULATOR_H
#define STAGEHAND_EMULATOR_H

#include <pthread.h>
#include <stdint.h>

#include "http.h"

#define EMU_SID_LEN 34 /* two-letter prefix + 32 hex digits */

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
    char *status_callback;        /* NULL when none */
    char status_callback_method[8];
    int max_participants;
    int max_participant_duration;
    int empty_room_timeout;       /* minutes */
    int unused_room_timeout;      /* minutes */
    int audio_only;
    int record_participants_on_connect;
    int64_t created_ms, updated_ms, ended_ms;
    struct emu_participant *participants;
    size_t nparticipants;
};

struct emulator {
    pthread_mutex_t lock;
    const char *account_sid;
    const char *api_key_sid;
    const char *api_key_secret;
    const char *auth_token;
    struct emu_room *rooms;
    size_t nrooms;
};

/* Writes prefix + 32 random hex digits into out. */
void emu_new_sid(const char *prefix, char out[EMU_SID_LEN + 1]);

/* Twilio's date format for resource fields: "2026-11-23T22:59:01Z". */
void emu_format_date(int64_t epoch_ms, char out[21]);

/* Handles /v1/Rooms...; returns 0 when the path is not Video's. */
int video_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp);

void video_free(struct emulator *emu);

#endif
