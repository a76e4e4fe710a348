/* The ingress's event loops (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

#define LOOP_EVENTS 8
#define LOOP_MAX_WAIT_MS 1000 /* flags are looked at at least this often */
#define ACCEPT_BATCH 32       /* connections accepted per wake-up at most */

enum source { SOURCE_HTTP = 1, SOURCE_KAFKA, SOURCE_WAKE, SOURCE_LISTEN };

struct loop_conn {
    int fd;
    socklen_t addrlen;
    struct sockaddr_storage addr;
    struct loop_conn *next;
};

static int watch(int epoll_fd, int fd, enum source what, uint32_t flags)
{
    struct epoll_event ev = {.events = EPOLLIN | flags, .data.u32 = what};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/* Gives a new connection to the loop's daemon (on its own thread), which
 * closes it when it refuses it (its share of MAX_CONNECTIONS is full, the
 * address holds MAX_CONNECTIONS_PER_IP, no memory). */
static void add_connection(struct loop *l, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    MHD_add_connection(l->daemon, fd, (const struct sockaddr *)addr, len);
}

/* Adds the connections its siblings handed over. */
static void take_inbox(struct loop *l)
{
    pthread_mutex_lock(&l->inbox_lock);
    struct loop_conn *c = l->inbox;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->inbox_lock);
    while (c) {
        struct loop_conn *next = c->next;
        add_connection(l, c->fd, &c->addr, c->addrlen);
        free(c);
        c = next;
    }
}

static void hand_over(struct loop *to, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    struct loop_conn *c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->addr = *addr;
    c->addrlen = len;
    pthread_mutex_lock(&to->inbox_lock);
    c->next = to->inbox;
    to->inbox = c;
    pthread_mutex_unlock(&to->inbox_lock);
    loop_wake(to);
}

/* Accepts what waits on the listening socket and deals it out in turn. */
static void accept_some(struct loop *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(l->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of descriptors or memory: the socket stays readable,
                 * so wait a little rather than spin. */
                log_warn("event loop: cannot accept a connection", "error", strerror(errno), NULL);
                time_sleep_ms(10);
            }
            return;
        }
        struct loop *to = &l->all[atomic_fetch_add(l->turn, 1) % (unsigned)l->all_count];
        if (to == l)
            add_connection(l, fd, &addr, len);
        else
            hand_over(to, fd, &addr, len);
    }
}

/* Empties an eventfd (nonblocking: nothing to read is fine). */
static void drain(int fd)
{
    uint64_t n;
    while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
}

static rd_kafka_queue_t *main_queue(struct loop *l)
{
    return rd_kafka_queue_get_main(kafka_producer_handle(l->producer));
}

int loop_open(struct loop *l, char *err, size_t errlen)
{
    pthread_mutex_init(&l->inbox_lock, NULL);
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->kafka_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epoll_fd < 0 || l->wake_fd < 0 || l->kafka_fd < 0 || watch(l->epoll_fd, l->wake_fd, SOURCE_WAKE, 0) < 0 ||
        watch(l->epoll_fd, l->kafka_fd, SOURCE_KAFKA, 0) < 0 ||
        /* one loop woken per new connection */
        watch(l->epoll_fd, l->listen_fd, SOURCE_LISTEN, EPOLLEXCLUSIVE) < 0) {
        snprintf(err, errlen, "cannot make the event loop's descriptors: %s", strerror(errno));
        loop_close(l);
        return -1;
    }
    rd_kafka_queue_t *q = main_queue(l);
    if (!q) {
        snprintf(err, errlen, "the Kafka producer has no main queue");
        loop_close(l);
        return -1;
    }
    static const uint64_t one = 1; /* an eventfd takes 8 bytes; librdkafka keeps a copy */
    rd_kafka_queue_io_event_enable(q, l->kafka_fd, &one, sizeof one);
    rd_kafka_queue_destroy(q);
    return 0;
}

/* How long epoll_wait may sleep: until libmicrohttpd's next timeout, and
 * the next tick while requests wait. */
static int wait_ms(struct loop *l, int64_t next_tick)
{
    int64_t wait = LOOP_MAX_WAIT_MS;
    MHD_UNSIGNED_LONG_LONG mhd;
    if (MHD_get_timeout(l->daemon, &mhd) == MHD_YES && (int64_t)mhd < wait)
        wait = (int64_t)mhd;
    if (atomic_load_explicit(&l->pending_count, memory_order_relaxed) > 0) {
        int64_t until_tick = next_tick - time_monotonic_ms();
        if (until_tick < wait)
            wait = until_tick < 0 ? 0 : until_tick;
    }
    return (int)wait;
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    char name[16];
    snprintf(name, sizeof name, "ingress-loop%d", l->index);
    pthread_setname_np(pthread_self(), name);
    struct epoll_event events[LOOP_EVENTS];
    int64_t next_tick = 0;
    while (!atomic_load(&l->stop)) {
        if (atomic_load(&l->quiesce) && !atomic_load(&l->quiesced)) {
            /* The server closes the shared socket once no loop watches it. */
            if (epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, l->listen_fd, NULL) < 0)
                log_warn("event loop: cannot stop watching the listening socket", "error", strerror(errno), NULL);
            atomic_store(&l->quiesced, 1);
        }
        int n = epoll_wait(l->epoll_fd, events, LOOP_EVENTS, wait_ms(l, next_tick));
        if (n < 0 && errno != EINTR) {
            log_error("event loop: epoll_wait failed", "error", strerror(errno), NULL);
            time_sleep_ms(10);
            continue;
        }
        int kafka = 0, listen = 0;
        for (int i = 0; i < n; i++) {
            if (events[i].data.u32 == SOURCE_KAFKA) {
                drain(l->kafka_fd);
                kafka = 1;
            } else if (events[i].data.u32 == SOURCE_WAKE) {
                drain(l->wake_fd);
                take_inbox(l);
            } else if (events[i].data.u32 == SOURCE_LISTEN) {
                listen = 1;
            }
        }
        if (listen && !atomic_load(&l->quiesced))
            accept_some(l);
        /* Delivery reports first: the connections they resume are then
         * answered by the MHD_run below, in the same round. */
        if (kafka)
            kafka_producer_poll(l->producer, 0);
        MHD_run(l->daemon);
        if (atomic_load_explicit(&l->pending_count, memory_order_relaxed) > 0 || atomic_load(&l->expire)) {
            int64_t now = time_monotonic_ms();
            if (now >= next_tick) {
                kafka_producer_poll(l->producer, 0); /* in case a report's wake-up was missed */
                l->tick(l, now);
                next_tick = now + LOOP_TICK_MS;
                MHD_run(l->daemon);
            }
        }
    }
    return NULL;
}

int loop_start(struct loop *l, char *err, size_t errlen)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0 || watch(l->epoll_fd, info->epoll_fd, SOURCE_HTTP, 0) < 0) {
        snprintf(err, errlen, "cannot watch libmicrohttpd's epoll descriptor");
        return -1;
    }
    int e = pthread_create(&l->thread, NULL, loop_main, l);
    if (e != 0) {
        snprintf(err, errlen, "cannot start an event loop thread: %s", strerror(e));
        return -1;
    }
    l->running = 1;
    return 0;
}

void loop_wake(struct loop *l)
{
    static const uint64_t one = 1;
    if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("event loop: cannot wake a loop", "error", strerror(errno), NULL);
}

void loop_join(struct loop *l)
{
    if (!l->running)
        return;
    atomic_store(&l->stop, 1);
    loop_wake(l);
    pthread_join(l->thread, NULL);
    l->running = 0;
}

void loop_close(struct loop *l)
{
    if (l->producer && l->kafka_fd >= 0) {
        rd_kafka_queue_t *q = main_queue(l);
        if (q) {
            rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
            rd_kafka_queue_destroy(q);
        }
    }
    struct loop_conn *c = l->inbox;
    l->inbox = NULL;
    while (c) {
        struct loop_conn *next = c->next;
        close(c->fd);
        free(c);
        c = next;
    }
    if (l->epoll_fd >= 0)
        close(l->epoll_fd);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->kafka_fd >= 0)
        close(l->kafka_fd);
    l->epoll_fd = l->wake_fd = l->kafka_fd = -1;
}
