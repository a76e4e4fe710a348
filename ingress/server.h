/* The ingress's HTTP server on libmicrohttpd: one event loop per thread
 * (loop.h: a daemon in external epoll mode and a Kafka producer whose
 * delivery reports the same loop serves), requests read whole and routed
 * (health, webhooks, client API), suspended while they wait for Kafka or
 * the state view, resumed from the delivery callback or by the loop's
 * tick that enforces their deadlines, and answered with the metrics
 * recorded. A chores thread cuts slow connections and forgets ended
 * streams. */
#ifndef STAGEHAND_INGRESS_SERVER_H
#define STAGEHAND_INGRESS_SERVER_H

#include <stddef.h>

#include "ingress.h"

struct server_options {
    int port;                                /* 0: a free one */
    int threads;                             /* event loops */
    struct kafka_producer *const *producers; /* one per thread, not owned (closed after server_stop) */
    int max_connections;
    int connection_timeout_s;
    long max_connections_per_ip; /* 0: no limit; trusted proxies are exempt */
    int header_timeout_ms;       /* request line and headers, from the connection or the last answer */
    int body_timeout_ms;         /* the body, from the end of the headers */
};

struct server;

/* Creates the metrics of ing, starts the chores thread and the loops. Returns
 * the server, or NULL with err. */
struct server *server_start(struct ingress *ing, const struct server_options *opt, char *err, size_t errlen);

/* The port it listens on. */
unsigned server_port(const struct server *s);

/* The producer's delivery callback; opaque is the request. */
void server_on_delivery(void *opaque, const struct kafka_delivery *d);

/* Graceful stop: stops accepting connections, lets every waiting request
 * be answered (by Kafka or by its deadline, at most grace_ms), then stops
 * the loops, their daemons and the chores thread and frees s (the
 * producers are the caller's to close afterwards). */
void server_stop(struct server *s, int grace_ms);

#endif
