/* Signed webhook delivery from a background thread (see webhook.h). */
#include "webhook.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "signature.h"
#include "timeutil.h"

#define DELIVERY_TIMEOUT_MS 5000
#define FIRST_RETRY_MS 100

struct pending {
    char *url;
    char method[8];
    struct kv_list params;
    struct pending *next;
};

struct webhook_sender {
    const char *auth_token;
    int deliver_twice;
    int max_attempts;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct pending *head, *tail;
    long queued, sent, failed;
    int stopping;
};

static size_t discard(char *data, size_t size, size_t nmemb, void *userdata)
{
    (void)data;
    (void)userdata;
    return size * nmemb;
}

/* One delivery attempt. Returns the HTTP status, or 0 on a transport error. */
static long deliver_once(struct webhook_sender *ws, CURL *curl, const struct pending *p)
{
    int is_get = strcmp(p->method, "GET") == 0;
    char *body = form_encode(&p->params);
    if (!body)
        return 0;
    char *url = malloc(strlen(p->url) + strlen(body) + 2);
    if (!url) {
        free(body);
        return 0;
    }
    /* A GET carries its parameters in the URL, which alone is signed. */
    if (is_get && body[0])
        sprintf(url, "%s%c%s", p->url, strchr(p->url, '?') ? '&' : '?', body);
    else
        strcpy(url, p->url);
    char signature[SIGNATURE_LEN + 1], header[64];
    long status = 0;
    if (signature_compute(ws->auth_token, url, is_get ? NULL : &p->params, signature) == 0) {
        snprintf(header, sizeof header, "X-Twilio-Signature: %s", signature);
        struct curl_slist *headers = curl_slist_append(NULL, header);
        struct curl_slist *more = headers
                                      ? curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded")
                                      : NULL;
        if (more) {
            headers = more;
            curl_easy_reset(curl);
            curl_easy_setopt(curl, CURLOPT_URL, url);
            curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(curl, CURLOPT_USERAGENT, "TwilioProxy/1.1");
            curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)DELIVERY_TIMEOUT_MS);
            curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
            curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
            if (!is_get) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
                curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, body);
            }
            if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        }
        curl_slist_free_all(headers);
    }
    free(url);
    free(body);
    return status;
}

static int is_stopping(struct webhook_sender *ws)
{
    pthread_mutex_lock(&ws->lock);
    int stopping = ws->stopping;
    pthread_mutex_unlock(&ws->lock);
    return stopping;
}

/* Delivers p, retrying with doubling waits (once stopping, no more retries:
 * the emulator must not outlive its receivers by minutes). Returns 1 when
 * it got a 2xx. */
static int deliver(struct webhook_sender *ws, CURL *curl, const struct pending *p)
{
    int64_t wait_ms = FIRST_RETRY_MS;
    for (int attempt = 1; attempt <= ws->max_attempts; attempt++) {
        long status = deliver_once(ws, curl, p);
        if (status >= 200 && status < 300)
            return 1;
        char text[16];
        snprintf(text, sizeof text, "%ld", status);
        log_warn("webhook delivery failed", "url", p->url, "status", text, NULL);
        if (attempt < ws->max_attempts) {
            if (is_stopping(ws))
                return 0;
            time_sleep_ms(wait_ms);
            wait_ms *= 2;
        }
    }
    return 0;
}

static void free_pending(struct pending *p)
{
    kv_free(&p->params);
    free(p->url);
    free(p);
}

static void *run(void *arg)
{
    struct webhook_sender *ws = arg;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&ws->lock);
    for (;;) {
        while (!ws->head && !ws->stopping)
            pthread_cond_wait(&ws->wake, &ws->lock);
        struct pending *p = ws->head;
        if (!p)
            break; /* stopping, and nothing left */
        ws->head = p->next;
        if (!ws->head)
            ws->tail = NULL;
        pthread_mutex_unlock(&ws->lock);

        int ok = curl && deliver(ws, curl, p);
        if (ok && ws->deliver_twice)
            ok = deliver(ws, curl, p);

        pthread_mutex_lock(&ws->lock);
        ws->queued--;
        if (ok)
            ws->sent++;
        else
            ws->failed++;
        free_pending(p);
    }
    pthread_mutex_unlock(&ws->lock);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

struct webhook_sender *webhook_sender_new(const char *auth_token, int deliver_twice, int max_attempts)
{
    struct webhook_sender *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->auth_token = auth_token;
    ws->deliver_twice = deliver_twice;
    ws->max_attempts = max_attempts > 0 ? max_attempts : 1;
    pthread_mutex_init(&ws->lock, NULL);
    pthread_cond_init(&ws->wake, NULL);
    if (pthread_create(&ws->thread, NULL, run, ws) != 0) {
        pthread_mutex_destroy(&ws->lock);
        pthread_cond_destroy(&ws->wake);
        free(ws);
        return NULL;
    }
    return ws;
}

void webhook_send(struct webhook_sender *ws, const char *url, const char *method, struct kv_list *params)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || !(p->url = strdup(url))) {
        free(p);
        kv_free(params);
        log_error("webhook dropped: out of memory", "url", url, NULL);
        return;
    }
    snprintf(p->method, sizeof p->method, "%s", method);
    p->params = *params;
    kv_init(params);
    pthread_mutex_lock(&ws->lock);
    if (ws->tail)
        ws->tail->next = p;
    else
        ws->head = p;
    ws->tail = p;
    ws->queued++;
    pthread_cond_signal(&ws->wake);
    pthread_mutex_unlock(&ws->lock);
}

void webhook_sender_counts(struct webhook_sender *ws, long *sent, long *failed, long *queued)
{
    pthread_mutex_lock(&ws->lock);
    *sent = ws->sent;
    *failed = ws->failed;
    *queued = ws->queued;
    pthread_mutex_unlock(&ws->lock);
}

void webhook_sender_free(struct webhook_sender *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->stopping = 1;
    pthread_cond_signal(&ws->wake);
    pthread_mutex_unlock(&ws->lock);
    pthread_join(ws->thread, NULL);
    pthread_mutex_destroy(&ws->lock);
    pthread_cond_destroy(&ws->wake);
    free(ws);
}
