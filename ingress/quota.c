/* Stream limits (see quota.h): a short list of claims under one mutex.
 * The list holds at most the streams this process started that are still
 * alive, so it is walked whole on each create, which is rare next to the
 * other requests. */
#include "quota.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

/* A life begins with the create event this ingress stamps just after the
 * claim; the margin covers the two clock readings. */
#define LIFE_SKEW_MS 1000

struct claim {
    char *stream, *host, *client;
    int64_t made_ms;      /* monotonic, for its time */
    int64_t made_wall_ms; /* wall clock, to tell its life from an older one */
    int seen;             /* the view has shown it active */
    struct claim *next;
};

struct quota {
    struct quota_limits limits;
    pthread_mutex_t lock;
    struct claim *claims;
};

struct quota *quota_new(const struct quota_limits *l)
{
    struct quota *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->limits = *l;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

static void claim_free(struct claim *c)
{
    free(c->stream);
    free(c->host);
    free(c->client);
    free(c);
}

void quota_free(struct quota *q)
{
    if (!q)
        return;
    while (q->claims) {
        struct claim *c = q->claims;
        q->claims = c->next;
        claim_free(c);
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* Drops the claims that are over (under the lock); marks those the view
 * shows. */
static void prune(struct quota *q, struct view *v, int64_t now_ms)
{
    struct claim **link = &q->claims;
    while (*link) {
        struct claim *c = *link;
        char host[IDENTITY_MAX_CHARS * 4 + 1];
        int64_t since;
        int active = view_is_active(v, c->stream, host, sizeof host, &since);
        int over;
        if (active == 1) {
            c->seen = 1;
            over = host[0] && strcmp(host, c->host) != 0; /* someone else's stream */
        } else if (active == 0 && (c->seen || since >= c->made_wall_ms - LIFE_SKEW_MS)) {
            over = 1; /* this life ended (a life that began before the claim is an older one) */
        } else {
            over = now_ms - c->made_ms >= q->limits.claim_ttl_ms; /* never appeared */
        }
        if (over) {
            *link = c->next;
            claim_free(c);
        } else {
            link = &c->next;
        }
    }
}

enum quota_verdict quota_claim(struct quota *q, struct view *v, const char *stream, const char *host,
                               const char *client, int64_t now_ms)
{
    const struct quota_limits *l = &q->limits;
    long view_host = 0, view_total = 0;
    view_count_active(v, host, &view_host, &view_total);
    char owner[IDENTITY_MAX_CHARS * 4 + 1];
    int active = view_is_active(v, stream, owner, sizeof owner, NULL);
    if (active == 1 && strcmp(owner, host) == 0)
        return QUOTA_OK; /* already this host's: a retried create */

    pthread_mutex_lock(&q->lock);
    prune(q, v, now_ms);
    struct claim *mine = NULL;
    long unseen_host = 0, unseen_total = 0, by_client = 0;
    for (struct claim *c = q->claims; c; c = c->next) {
        if (strcmp(c->stream, stream) == 0 && strcmp(c->host, host) == 0)
            mine = c;
        if (!c->seen) { /* not in the view's counts yet */
            unseen_total++;
            unseen_host += strcmp(c->host, host) == 0;
        }
        by_client += client && client[0] && c->client && strcmp(c->client, client) == 0;
    }
    enum quota_verdict verdict = QUOTA_OK;
    if (mine) {
        mine->made_ms = now_ms; /* a retry: the same stream, counted once */
    } else if (l->per_host > 0 && view_host + unseen_host >= l->per_host) {
        verdict = QUOTA_HOST;
    } else if (l->total > 0 && view_total + unseen_total >= l->total) {
        verdict = QUOTA_TOTAL;
    } else if (l->per_client > 0 && client && client[0] && by_client >= l->per_client) {
        verdict = QUOTA_CLIENT;
    } else {
        struct claim *c = calloc(1, sizeof *c);
        if (c && (c->stream = strdup(stream)) && (c->host = strdup(host)) &&
            (c->client = strdup(client ? client : ""))) {
            c->made_ms = now_ms;
            c->made_wall_ms = time_now_ms();
            c->next = q->claims;
            q->claims = c;
        } else if (c) {
            claim_free(c); /* out of memory: allowed, not counted */
        }
    }
    pthread_mutex_unlock(&q->lock);
    return verdict;
}
