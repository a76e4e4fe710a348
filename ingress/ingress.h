/* The ingress's shared context and the life of one HTTP request.
 *
 * A request is read whole (up to BODY_MAX_BYTES), routed, and answered
 * either at once or after waiting: for Kafka's acknowledgement of the event
 * it produced (the connection is suspended, and resumed from the delivery
 * callback), then possibly for the state view to show what the answer needs
 * (create-stream, joins), each wait bounded by a deadline of our own, since
 * libmicrohttpd never times out a suspended connection. Everything about
 * a request happens on the thread of the event loop that owns its
 * connection (loop.h): its callbacks, its delivery report, and the loop's
 * tick that checks the waiting requests every few milliseconds, so no lock
 * guards it; a request is freed when both its connection and its
 * outstanding delivery report (if any) are done. */
#ifndef STAGEHAND_INGRESS_H
#define STAGEHAND_INGRESS_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "auth.h"
#include "etag.h"
#include "event.h"
#include "kafka.h"
#include "metrics.h"
#include "netaddr.h"
#include "params.h"
#include "quota.h"
#include "ratelimit.h"
#include "settings.h"
#include "token.h"
#include "view.h"

struct request;

/* Called on the request's loop thread after Kafka acknowledged the request's
 * event; returns 1 when the response is ready, 0 to keep waiting (then
 * on_tick is called every sweep until it returns 1 or the deadline passes,
 * when it is called with expired = 1 and must answer). */
typedef int request_step(struct request *req, int expired);

struct loop;

struct request {
    struct ingress *ing;
    struct loop *loop; /* the event loop that owns its connection */
    struct MHD_Connection *conn;
    char *raw_uri;  /* as received, query included (for signatures) */
    char route[32]; /* for metrics: "/create-stream", "other", ... */
    int64_t started_ms;
    char *body;
    size_t body_len;
    int too_big;
    int answered_early;               /* answered (429, 431) before the body was read */
    char client_ip[INET6_ADDRSTRLEN]; /* the per-IP limit's key (an IPv6 client's /64), or "" */
    long retry_after_ms;

    /* Waiting (touched by its loop's thread only). */
    int refs;    /* connection + outstanding delivery report */
    int waiting; /* in the pending list, connection suspended */
    int64_t deadline_ms;
    request_step *on_ack; /* NULL: answer ack_status + ack_body */
    request_step *on_tick;
    int acked; /* Kafka acknowledged the event */
    int ack_status;
    json_t *ack_body;
    json_t *ctx; /* what the steps need (stream, identity, ...) */
    struct request *prev, *next;

    /* The answer, once ready. */
    int ready;
    int status;
    json_t *response;          /* JSON body, or NULL for none */
    char *response_text;       /* or a text body (taken) */
    const char *response_type; /* its Content-Type */
    long response_retry_after_s;
    char location[800];        /* Location header (a path, percent-encoded), or "" */
    char etag[ETAG_SIZE];      /* ETag header, or "" */
    const char *cache_control; /* Cache-Control header; NULL: no-store */
};

struct ingress {
    /* Configuration. */
    const char *public_base_url;
    const char *auth_token;
    struct token_key token_key;
    long token_ttl_s;
    long speaker_token_ttl_s; /* jwt mode, speakers but the host */
    int produce_timeout_ms;
    int create_wait_ms;
    long body_max_bytes;
    long raised_hands_cap;
    long sync_eager_viewers;      /* SYNC_EAGER_VIEWERS */
    long webhook_replay_window_s; /* WEBHOOK_REPLAY_WINDOW_S */
    int64_t stream_retention_ms;  /* STREAM_RETENTION_S: ended streams leave the view after it */
    struct auth auth;

    atomic_int producer_failed; /* a fatal producer error: not ready */
    struct view *view;
    atomic_int view_caught_up;
    struct ratelimit *by_ip;
    struct netaddr_ranges trusted_proxies; /* their X-Forwarded-For names the client */
    struct ratelimit *by_identity;
    struct quota *quota; /* live streams per host, per client, in all */

    struct metrics *metrics;
    struct metric *m_requests; /* route, status */
    struct metric *m_latency;  /* route */
    struct metric *m_events;   /* type */
    struct metric *m_produce_errors;
    struct metric *m_in_flight;
    struct metric *m_view_streams;
    struct metric *m_webhooks_rejected; /* route */
};

/* --- answering (server.c) ------------------------------------------------------ */

/* Makes the answer ready: status and body (taken). */
void request_answer(struct request *req, int status, json_t *body);

/* Makes the error answer ready. */
void request_fail(struct request *req, const struct api_error *e);

/* Makes a plain-text answer ready (for /metrics). */
void request_answer_text(struct request *req, int status, const char *content_type, char *text);

/* Produces ev (taken, freed here), written as value (event_encode's text,
 * taken), to stagehand.events and makes the request wait for the
 * acknowledgement; then on_ack (or, when NULL, the answer
 * ack_status / ack_body, body taken) and on_tick as described above. The
 * whole wait ends by deadline_ms; when Kafka does not acknowledge in time,
 * or refuses, the answer is 503 with Retry-After. Returns 0; on an
 * immediate failure the 503 is made ready and -1 returned. */
int request_emit(struct request *req, struct event *ev, char *value, int64_t deadline_ms, request_step *on_ack,
                 request_step *on_tick, int ack_status, json_t *ack_body);

/* --- routes (api.c, webhooks.c) ------------------------------------------------- */

/* Each handles a complete request: makes the answer ready, or starts a wait
 * with request_emit. method and path are libmicrohttpd's (path decoded). */
void api_handle(struct request *req, const char *method, const char *path);
void webhook_handle(struct request *req, const char *path);

/* 1 when path is one of the webhook paths. */
int webhook_path(const char *path);

#endif
