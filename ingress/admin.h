/* The ingress's operator listener: /metrics, /healthz and /readyz on their
 * own address (METRICS_LISTEN, loopback by default), apart from the public
 * port, so that who can reach the API cannot read the metrics. One small
 * libmicrohttpd daemon with one thread; GET (and HEAD) only. */
#ifndef STAGEHAND_INGRESS_ADMIN_H
#define STAGEHAND_INGRESS_ADMIN_H

#include <stddef.h>

#include "ingress.h"

struct admin;

/* Listens on listen ("127.0.0.1:9100", "[::1]:0"; see
 * netaddr_listen_parse) and serves ing's metrics and health. Returns the
 * listener, or NULL with err. */
struct admin *admin_start(struct ingress *ing, const char *listen, char *err, size_t errlen);

/* The port it listens on (0 when unknown). */
unsigned admin_port(const struct admin *a);

/* Stops the listener and frees a (NULL is fine). */
void admin_stop(struct admin *a);

#endif
