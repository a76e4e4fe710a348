/* The ingress's HTTP server on libmicrohttpd: a thread pool (poll or epoll),
 * requests read whole and routed (health, metrics, webhooks, client API),
 * suspended while they wait for Kafka or the state view, resumed from the
 * producer's delivery callback or by the sweeper thread that enforces
 * their deadlines, and answered with the metrics recorded. */
#ifndef STAGEHAND_INGRESS_SERVER_H
#define STAGEHAND_INGRESS_SERVER_H

#include <stddef.h>

#include "ingress.h"

struct server_options {
    int port;                  /* 0: a free one */
    int threads;
    int use_epoll;             /* 0: poll() */
    int max_connections;
    int connection_timeout_s;
    long max_connections_per_ip; /* 0: no limit; trusted proxies are exempt */
    int header_timeout_ms;     /* request line and headers, from the connection or the last answer */
    int body_timeout_ms;       /* the body, from the end of the headers */
};

struct server;

/* Creates the metrics of ing, starts the sweeper and the daemon. Returns
 * the server, or NULL with err. */
struct server *server_start(struct ingress *ing, const struct server_options *opt, char *err,
                            size_t errlen);

/* The port it listens on. */
unsigned server_port(const struct server *s);

/* The producer's delivery callback; opaque is the request. */
void server_on_delivery(void *opaque, const struct kafka_delivery *d);

/* Graceful stop: stops accepting connections, lets every waiting request
 * be answered (by Kafka or by its deadline, at most grace_ms), then stops
 * the daemon and the sweeper and frees s. */
void server_stop(struct server *s, int grace_ms);

#endif
