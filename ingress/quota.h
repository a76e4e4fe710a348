/* Limits on live streams (issue 15 item 4). Every stream costs a Video
 * Room, a Sync service, a PlayerStreamer and a MediaProcessor, so
 * create-stream is refused when its host already has MAX_STREAMS_PER_HOST
 * live or starting streams, when MAX_STREAMS are live in all, and in
 * passcode mode (where the host is whatever the body says) when the
 * client's address already started MAX_STREAMS_PER_CLIENT of them.
 *
 * Counts come from the state view (every ingress sees every stream) plus
 * this process's own claims: a stream it accepted a create for but that
 * the view does not show yet (the view lags a create by the workers'
 * first records). Per-client counts are this process's claims alone,
 * kept while the stream lives: with several ingress replicas, a client
 * can start that many streams through each. A claim ends when the view
 * shows the stream ended, or shows another host, or when the view has
 * not shown it within claim_ttl_ms (the create never took). */
#ifndef STAGEHAND_INGRESS_QUOTA_H
#define STAGEHAND_INGRESS_QUOTA_H

#include <stdint.h>

#include "view.h"

struct quota_limits {
    long per_host;        /* 0: no limit */
    long total;           /* 0: no limit */
    long per_client;      /* 0: no limit */
    int64_t claim_ttl_ms; /* how long a claim waits for the view */
};

enum quota_verdict { QUOTA_OK = 0, QUOTA_HOST, QUOTA_TOTAL, QUOTA_CLIENT };

struct quota;

struct quota *quota_new(const struct quota_limits *l);
void quota_free(struct quota *q);

/* Decides host's create of stream from the client key client ("" or NULL
 * for none) at now_ms (monotonic). A stream already counted for this host
 * (a retried create) is always allowed. On QUOTA_OK the claim is recorded
 * (or refreshed); otherwise nothing changes. Out of memory counts as
 * allowed, without a claim. */
enum quota_verdict quota_claim(struct quota *q, struct view *v, const char *stream, const char *host,
                               const char *client, int64_t now_ms);

#endif
