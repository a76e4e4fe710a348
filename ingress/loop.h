/* One event loop of the ingress: a thread that owns one libmicrohttpd
 * daemon (external epoll mode) and one Kafka producer, and waits in a
 * single epoll_wait for both: the daemon's epoll descriptor, the
 * producer's main queue (rd_kafka_queue_io_event_enable writes to an
 * eventfd when a delivery report arrives on an empty queue) and a wake-up
 * eventfd for the stopping thread. Delivery reports are therefore served
 * on the thread that owns the request's connection, and resuming it needs
 * no other thread. Every request of a loop (its pending list, its
 * answer) is touched only by the loop's own thread, so none of it is
 * locked; other threads read pending_count and set the flags.
 *
 * The loops of a server share one listening socket, watched by each with
 * EPOLLEXCLUSIVE; the loop that wakes accepts and deals the connections
 * out in turn, handing a sibling's over through its inbox (a wake-up per
 * new connection, none per request), so that each loop holds its share
 * of the connections and of MAX_CONNECTIONS (libmicrohttpd closes a
 * connection beyond its daemon's share). */
#ifndef STAGEHAND_INGRESS_LOOP_H
#define STAGEHAND_INGRESS_LOOP_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kafka.h"

struct server;
struct request;
struct loop;

/* Called on the loop's thread every LOOP_TICK_MS while requests wait
 * (deadlines, requests waiting for the state view). */
typedef void loop_tick_cb(struct loop *l, int64_t now_ms);

#define LOOP_TICK_MS 5

struct loop_conn; /* a connection handed over, in an inbox */

struct loop {
    struct server *server;
    int index;
    struct loop *all; /* every loop of the server (all[index] is this one) */
    int all_count;
    atomic_uint *turn; /* whose turn the next connection is, shared */
    int listen_fd;     /* shared, not owned */
    pthread_mutex_t inbox_lock;
    struct loop_conn *inbox;         /* connections handed over, not yet added */
    struct MHD_Daemon *daemon;       /* set before loop_start */
    struct kafka_producer *producer; /* not owned */
    loop_tick_cb *tick;
    int epoll_fd, wake_fd, kafka_fd;
    pthread_t thread;
    int running;
    atomic_int quiesce;  /* asked: stop accepting */
    atomic_int quiesced; /* done: the loop no longer watches the listening socket */
    atomic_int expire;   /* asked: answer every waiting request now (503) */
    atomic_int stop;     /* asked: leave the loop */
    /* Waiting requests: the loop's thread only. */
    struct request *pending;
    atomic_long pending_count;
};

/* Makes the loop's descriptors and routes the producer's delivery reports
 * to it (l->producer and l->listen_fd set). Returns 0, or -1 with err. */
int loop_open(struct loop *l, char *err, size_t errlen);

/* Starts the thread (l->daemon set). Returns 0, or -1 with err. */
int loop_start(struct loop *l, char *err, size_t errlen);

/* Wakes the thread so that it looks at its flags. */
void loop_wake(struct loop *l);

/* Asks the thread to leave and waits for it (no-op when not running). */
void loop_join(struct loop *l);

/* Takes the producer's reports off the loop's descriptor, closes the
 * descriptors and the connections still in the inbox (after loop_join,
 * before the producer is closed). */
void loop_close(struct loop *l);

#endif
