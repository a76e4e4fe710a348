/* Delivers the emulator's webhooks (status callbacks) the way Twilio does:
 * form-encoded POSTs (or GETs) signed with X-Twilio-Signature under the
 * account's auth token, in order, from one background thread, retried a few
 * times on failure. An option delivers each webhook twice, to test that
 * receivers are idempotent. */
#ifndef STAGEHAND_EMULATOR_WEBHOOK_H
#define STAGEHAND_EMULATOR_WEBHOOK_H

#include "kv.h"

struct webhook_sender;

/* Starts the delivery thread. auth_token is borrowed and must outlive it. */
struct webhook_sender *webhook_sender_new(const char *auth_token, int deliver_twice, int max_attempts);

/* Queues a webhook; params are moved into the queue (the list is left empty).
 * method is "POST" or "GET". Never blocks on the network. */
void webhook_send(struct webhook_sender *ws, const char *url, const char *method, struct kv_list *params);

/* Counts so far: deliveries answered 2xx, webhooks given up on, still queued. */
void webhook_sender_counts(struct webhook_sender *ws, long *sent, long *failed, long *queued);

/* Delivers what is queued (bounded by the retry policy), then stops. */
void webhook_sender_free(struct webhook_sender *ws);

#endif
