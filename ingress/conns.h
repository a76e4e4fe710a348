/* Guards the ingress's connections against slow and greedy clients:
 *
 * - a per-IP connection limit (MAX_CONNECTIONS_PER_IP): a new connection
 *   from an address (an IPv6 client: its /64) that already holds that many
 *   is refused at accept, before anything is read. Trusted proxies are
 *   exempt, since they carry many clients;
 * - deadlines for a request's parts. libmicrohttpd's own timeout measures
 *   inactivity only, so a client that sends one byte every few seconds is
 *   never timed out. Here the request line and headers must be complete
 *   within HEADER_TIMEOUT_MS of the connection opening (or, on a kept-alive
 *   connection, of the previous answer), and the body within
 *   BODY_TIMEOUT_MS of the headers. A connection past its deadline is shut
 *   down (shutdown(2) on its socket, from the server's chores thread), and
 *   libmicrohttpd closes it in its event loop, unanswered. While a request
 *   is being handled (waiting for Kafka, answering) no deadline runs.
 *
 * libmicrohttpd tells us when a connection opens and closes (its notify
 * callback) and closes the socket only after the closed notification, so
 * under the guard's lock a registered connection's descriptor is still
 * its own. */
#ifndef STAGEHAND_INGRESS_CONNS_H
#define STAGEHAND_INGRESS_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netaddr.h"

struct conn_guard_options {
    long per_ip_limit; /* 0: none */
    int header_timeout_ms;
    int body_timeout_ms;
    size_t max_connections;              /* sizes the table of addresses */
    const struct netaddr_ranges *exempt; /* addresses without a limit (may be NULL) */
};

/* What conn_guard_expire cut, by the part that was late. */
struct conn_guard_cut {
    size_t headers;
    size_t body;
};

struct conn_guard;
struct conn_entry;

/* NULL when out of memory or the random generator failed. */
struct conn_guard *conn_guard_new(const struct conn_guard_options *opt);
void conn_guard_free(struct conn_guard *g);

/* 1 when a new connection from addr may be accepted (below its address's
 * limit); 0 to refuse it. Connections are counted when they open, so
 * threads accepting at once may pass the limit by one each. */
int conn_guard_admit(struct conn_guard *g, const struct sockaddr *addr);

/* A connection opened on socket fd from addr: counted, and its header
 * deadline starts. Returns its entry, or NULL when out of memory (the
 * connection is then neither counted nor guarded). */
struct conn_entry *conn_guard_opened(struct conn_guard *g, int fd, const struct sockaddr *addr, int64_t now_ms);

/* The connection closed (e may be NULL): uncounted and forgotten. */
void conn_guard_closed(struct conn_guard *g, struct conn_entry *e);

/* The request's headers are in: the body deadline starts. */
void conn_guard_body_started(struct conn_guard *g, struct conn_entry *e, int64_t now_ms);

/* The whole request is in: no deadline while it is handled. */
void conn_guard_request_read(struct conn_entry *e);

/* The request is over; the next one on the connection has until
 * HEADER_TIMEOUT_MS from now for its headers. */
void conn_guard_request_done(struct conn_guard *g, struct conn_entry *e, int64_t now_ms);

/* Shuts down every connection past its deadline; adds what it cut to
 * *cut. Returns how many it cut. */
size_t conn_guard_expire(struct conn_guard *g, int64_t now_ms, struct conn_guard_cut *cut);

/* Open connections counted against addr's key (tests). */
long conn_guard_count(struct conn_guard *g, const struct sockaddr *addr);

#endif
