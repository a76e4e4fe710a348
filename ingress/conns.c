/* The connection guard (see conns.h): a list of open connections with
 * their deadlines, and a table of open connections per client key
 * (address, or IPv6 /64), hashed with SipHash under a random key since
 * clients choose their addresses. One mutex guards both; a deadline is
 * also an atomic, so request threads set it without the lock. */
#include "conns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "random.h"
#include "siphash.h"

enum phase { PHASE_NONE = 0, PHASE_HEADERS, PHASE_BODY };

struct conn_entry {
    int fd;
    char key[INET6_ADDRSTRLEN]; /* "" when not counted */
    atomic_llong deadline_ms;   /* 0: none */
    atomic_int phase;
    struct conn_entry *prev, *next;
};

struct ip_count {
    char key[INET6_ADDRSTRLEN];
    long count;
    struct ip_count *chain;
};

struct conn_guard {
    struct conn_guard_options opt;
    unsigned char hash_key[SIPHASH_KEY_BYTES];
    pthread_mutex_t lock;
    struct conn_entry *entries;
    struct ip_count **slots;
    size_t nslots; /* a power of two */
};

struct conn_guard *conn_guard_new(const struct conn_guard_options *opt)
{
    struct conn_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->opt = *opt;
    g->nslots = 64;
    while (g->nslots < opt->max_connections && g->nslots < ((size_t)1 << 20))
        g->nslots *= 2;
    g->slots = calloc(g->nslots, sizeof *g->slots);
    if (!g->slots || random_bytes(g->hash_key, sizeof g->hash_key) < 0) {
        free(g->slots);
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    return g;
}

void conn_guard_free(struct conn_guard *g)
{
    if (!g)
        return;
    while (g->entries) {
        struct conn_entry *e = g->entries;
        g->entries = e->next;
        free(e);
    }
    for (size_t i = 0; i < g->nslots; i++)
        while (g->slots[i]) {
            struct ip_count *c = g->slots[i];
            g->slots[i] = c->chain;
            free(c);
        }
    free(g->slots);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* The limit's key of addr into out, or "" when addr is exempt, unlimited
 * or not an IP address. */
static void key_of(const struct conn_guard *g, const struct sockaddr *addr, char out[INET6_ADDRSTRLEN])
{
    char text[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (g->opt.per_ip_limit <= 0 || !addr)
        return;
    if (addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, text, sizeof text);
    else if (addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, text, sizeof text);
    if (!text[0] || (g->opt.exempt && netaddr_ranges_contain(g->opt.exempt, text)))
        return;
    netaddr_limit_key(text, out);
}

/* The slot of key's count (under the lock). */
static struct ip_count **slot_of(struct conn_guard *g, const char *key)
{
    uint64_t h = siphash24(g->hash_key, key, strlen(key));
    struct ip_count **slot = &g->slots[h & (g->nslots - 1)];
    while (*slot && strcmp((*slot)->key, key) != 0)
        slot = &(*slot)->chain;
    return slot;
}

int conn_guard_admit(struct conn_guard *g, const struct sockaddr *addr)
{
    char key[INET6_ADDRSTRLEN];
    key_of(g, addr, key);
    if (!key[0])
        return 1;
    pthread_mutex_lock(&g->lock);
    struct ip_count *c = *slot_of(g, key);
    int ok = !c || c->count < g->opt.per_ip_limit;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

long conn_guard_count(struct conn_guard *g, const struct sockaddr *addr)
{
    char key[INET6_ADDRSTRLEN];
    key_of(g, addr, key);
    if (!key[0])
        return 0;
    pthread_mutex_lock(&g->lock);
    struct ip_count *c = *slot_of(g, key);
    long n = c ? c->count : 0;
    pthread_mutex_unlock(&g->lock);
    return n;
}

struct conn_entry *conn_guard_opened(struct conn_guard *g, int fd, const struct sockaddr *addr, int64_t now_ms)
{
    struct conn_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->fd = fd;
    key_of(g, addr, e->key);
    atomic_store(&e->phase, PHASE_HEADERS);
    atomic_store(&e->deadline_ms, now_ms + g->opt.header_timeout_ms);
    pthread_mutex_lock(&g->lock);
    if (e->key[0]) {
        struct ip_count **slot = slot_of(g, e->key);
        if (!*slot && (*slot = calloc(1, sizeof **slot)))
            memcpy((*slot)->key, e->key, sizeof e->key);
        if (*slot)
            (*slot)->count++;
        else
            e->key[0] = '\0'; /* out of memory: not counted */
    }
    e->next = g->entries;
    if (g->entries)
        g->entries->prev = e;
    g->entries = e;
    pthread_mutex_unlock(&g->lock);
    return e;
}

void conn_guard_closed(struct conn_guard *g, struct conn_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&g->lock);
    if (e->key[0]) {
        struct ip_count **slot = slot_of(g, e->key);
        if (*slot && --(*slot)->count <= 0) {
            struct ip_count *gone = *slot;
            *slot = gone->chain;
            free(gone);
        }
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        g->entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&g->lock);
    free(e);
}

void conn_guard_body_started(struct conn_guard *g, struct conn_entry *e, int64_t now_ms)
{
    if (!e)
        return;
    atomic_store(&e->phase, PHASE_BODY);
    atomic_store(&e->deadline_ms, now_ms + g->opt.body_timeout_ms);
}

void conn_guard_request_read(struct conn_entry *e)
{
    if (!e)
        return;
    atomic_store(&e->phase, PHASE_NONE);
    atomic_store(&e->deadline_ms, 0);
}

void conn_guard_request_done(struct conn_guard *g, struct conn_entry *e, int64_t now_ms)
{
    if (!e)
        return;
    atomic_store(&e->phase, PHASE_HEADERS);
    atomic_store(&e->deadline_ms, now_ms + g->opt.header_timeout_ms);
}

size_t conn_guard_expire(struct conn_guard *g, int64_t now_ms, struct conn_guard_cut *cut)
{
    size_t n = 0;
    pthread_mutex_lock(&g->lock);
    for (struct conn_entry *e = g->entries; e; e = e->next) {
        long long deadline = atomic_load(&e->deadline_ms);
        if (deadline == 0 || now_ms < deadline)
            continue;
        /* Only this thread clears a deadline it did not set, and the
         * exchange keeps a request thread's newer deadline. */
        if (!atomic_compare_exchange_strong(&e->deadline_ms, &deadline, 0))
            continue;
        if (atomic_load(&e->phase) == PHASE_BODY)
            cut->body++;
        else
            cut->headers++;
        shutdown(e->fd, SHUT_RDWR); /* still open: closed only after conn_guard_closed */
        n++;
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}
