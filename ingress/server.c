/* The ingress's HTTP server (see server.h and ingress.h for the life of a
 * request). */
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "log.h"
#include "timeutil.h"

#define SWEEP_INTERVAL_MS 5
#define CONNECTION_MEMORY_LIMIT (32 * 1024) /* headers and buffers of one connection */
/* Request line and headers we accept: the rest of the connection's memory
 * must stay free for the answer, or libmicrohttpd would drop a request we
 * had already turned into an event without answering it. */
#define HEADERS_MAX_BYTES (16 * 1024)
#define RESUME_BATCH 64
#define EXPIRE_EVERY_SWEEPS 20 /* slow connections are looked for every 100 ms */
#define FORGET_EVERY_SWEEPS 200 /* ended streams past their retention, every second */
/* A body announced larger than this has the credentials checked on the
 * headers, before any of it is read (see on_request). */
#define EARLY_AUTH_BYTES 1024

struct server {
    struct ingress *ing;
    struct MHD_Daemon *daemon;
    pthread_t sweeper;
    atomic_int stop_sweeper;
    int sweeper_started;
    struct conn_guard *guard;  /* per-IP connections, header and body deadlines */
    struct metric *m_slow;     /* connections cut for slowness, by part */
    struct metric *m_refused;  /* connections refused: their address held too many */
};

/* --- answers ---------------------------------------------------------------------- */

void request_answer(struct request *req, int status, json_t *body)
{
    json_decref(req->response);
    req->response = body;
    req->status = status;
    req->ready = 1;
}

void request_fail(struct request *req, const struct api_error *e)
{
    req->response_retry_after_s = e->retry_after_s;
    request_answer(req, e->status, api_error_json(e));
}

void request_answer_text(struct request *req, int status, const char *content_type, char *text)
{
    free(req->response_text);
    req->response_text = text;
    req->response_type = content_type;
    req->status = status;
    req->ready = 1;
}

static void unavailable(struct request *req, const char *explanation)
{
    struct api_error e;
    api_fail(&e, 503, "unavailable", "%s", explanation);
    e.retry_after_s = 1;
    request_fail(req, &e);
}

/* --- waiting requests (all under ing->pending_lock) -------------------------------- */

static void pending_link(struct ingress *ing, struct request *req)
{
    req->prev = NULL;
    req->next = ing->pending;
    if (ing->pending)
        ing->pending->prev = req;
    ing->pending = req;
    ing->pending_count++;
    req->waiting = 1;
}

static void pending_unlink(struct ingress *ing, struct request *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        ing->pending = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    ing->pending_count--;
    req->waiting = 0;
}

static void request_free(struct request *req)
{
    free(req->raw_uri);
    free(req->body);
    json_decref(req->ctx);
    json_decref(req->ack_body);
    json_decref(req->response);
    free(req->response_text);
    free(req);
}

/* Drops one reference; frees the request with the last. */
static void request_unref(struct request *req)
{
    if (--req->refs == 0)
        request_free(req);
}

int request_emit(struct request *req, struct event *ev, char *value, int64_t deadline_ms,
                 request_step *on_ack, request_step *on_tick, int ack_status, json_t *ack_body)
{
    struct ingress *ing = req->ing;
    char traceparent[EVENT_TRACEPARENT_LEN + 1] = "";
    struct kv_list headers;
    kv_init(&headers);
    kv_add(&headers, "id", ev->id);
    kv_add(&headers, "type", ev->type);
    if (event_traceparent(traceparent) == 0)
        kv_add(&headers, "traceparent", traceparent);
    metrics_add(ing->m_events, (const char *const[]){ev->type}, 1);

    /* Suspended before any other thread can see the request: nothing can
     * resume it earlier, and the lock is not held across the epoll_ctl. */
    MHD_suspend_connection(req->conn);
    pthread_mutex_lock(&ing->pending_lock);
    req->on_ack = on_ack;
    req->on_tick = on_tick;
    req->ack_status = ack_status;
    req->ack_body = ack_body;
    req->deadline_ms = deadline_ms;
    req->refs++; /* for the delivery report */
    pending_link(ing, req);
    pthread_mutex_unlock(&ing->pending_lock);

    struct kafka_record rec = {
        .topic = EVENTS_TOPIC,
        .partition = RD_KAFKA_PARTITION_UA,
        .key = ev->stream,
        .key_len = strlen(ev->stream),
        .value = value,
        .value_len = strlen(value),
        .headers = &headers,
        .opaque = req,
    };
    char err[256];
    rd_kafka_resp_err_t rc = kafka_produce(ing->producer, &rec, err, sizeof err);
    kv_free(&headers);
    free(value);
    event_free(ev);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;

    /* No delivery report will come: answer now. */
    log_warn("event not queued for Kafka", "error", err, NULL);
    metrics_add(ing->m_produce_errors, NULL, 1);
    pthread_mutex_lock(&ing->pending_lock);
    req->refs--;
    pending_unlink(ing, req);
    unavailable(req, "The event log is not accepting events; retry in a moment.");
    pthread_mutex_unlock(&ing->pending_lock);
    MHD_resume_connection(req->conn);
    return -1;
}

void server_on_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct request *req = opaque;
    struct ingress *ing = req->ing;
    struct MHD_Connection *resume = NULL;
    pthread_mutex_lock(&ing->pending_lock);
    if (d->err)
        metrics_add(ing->m_produce_errors, NULL, 1);
    if (req->waiting && !req->ready) {
        if (d->err) {
            log_warn("Kafka did not take an event", "error", d->errstr, NULL);
            unavailable(req, "The event log did not take the event; retry in a moment.");
        } else {
            req->acked = 1;
            if (!req->on_ack) {
                request_answer(req, req->ack_status, req->ack_body);
                req->ack_body = NULL;
            } else {
                req->on_ack(req, 0);
            }
        }
        if (req->ready) {
            pending_unlink(ing, req);
            resume = req->conn;
        }
    }
    request_unref(req);
    pthread_mutex_unlock(&ing->pending_lock);
    if (resume)
        MHD_resume_connection(resume);
}

/* Answers the waiting requests that are done or past their deadline. */
static void sweep(struct ingress *ing)
{
    struct MHD_Connection *resume[RESUME_BATCH];
    size_t n;
    do {
        n = 0;
        int64_t now = time_monotonic_ms();
        pthread_mutex_lock(&ing->pending_lock);
        struct request *req = ing->pending;
        while (req && n < RESUME_BATCH) {
            struct request *next = req->next;
            int expired = now >= req->deadline_ms;
            if (req->acked && req->on_tick)
                req->on_tick(req, expired);
            else if (expired)
                unavailable(req, "The event log did not acknowledge the event in time; retry in a moment.");
            if (req->ready) {
                pending_unlink(ing, req);
                resume[n++] = req->conn;
            }
            req = next;
        }
        pthread_mutex_unlock(&ing->pending_lock);
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(resume[i]);
    } while (n == RESUME_BATCH);
}

static void *sweeper_main(void *arg)
{
    struct server *s = arg;
    unsigned rounds = 0;
    while (!atomic_load(&s->stop_sweeper)) {
        time_sleep_ms(SWEEP_INTERVAL_MS);
        sweep(s->ing);
        metrics_set(s->ing->m_view_streams, NULL, (double)view_size(s->ing->view));
        if (rounds % FORGET_EVERY_SWEEPS == 0)
            view_forget_ended(s->ing->view, time_monotonic_ms(), s->ing->stream_retention_ms);
        if (++rounds % EXPIRE_EVERY_SWEEPS == 0) {
            struct conn_guard_cut cut = {0, 0};
            if (conn_guard_expire(s->guard, time_monotonic_ms(), &cut) > 0) {
                metrics_add(s->m_slow, (const char *const[]){"headers"}, (double)cut.headers);
                metrics_add(s->m_slow, (const char *const[]){"body"}, (double)cut.body);
            }
        }
    }
    return NULL;
}

/* --- libmicrohttpd callbacks ---------------------------------------------------------- */

/* Called first for every request, with the raw URI: the request starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct server *s = cls;
    struct request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->ing = s->ing;
    req->raw_uri = strdup(uri ? uri : "/");
    req->refs = 1; /* the connection's */
    req->started_ms = time_monotonic_ms();
    snprintf(req->route, sizeof req->route, "other");
    if (!req->raw_uri) {
        free(req);
        return NULL;
    }
    metrics_gauge_add(s->ing->m_in_flight, NULL, 1);
    return req;
}

static void peer_ip(struct MHD_Connection *conn, char out[INET6_ADDRSTRLEN])
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, INET6_ADDRSTRLEN);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  INET6_ADDRSTRLEN);
}

/* Keeps the value of the last X-Forwarded-For header: proxies append to
 * the end, so an earlier header can only have come from the client. */
static enum MHD_Result last_forwarded_for(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    (void)kind;
    if (key && value && strcasecmp(key, "X-Forwarded-For") == 0)
        *(const char **)cls = value;
    return MHD_YES;
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    *(size_t *)cls += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4; /* ": ", CRLF */
    return MHD_YES;
}

/* The size of the request line and headers, about as they were sent. */
static size_t headers_size(struct request *req)
{
    size_t size = strlen(req->raw_uri) + 32; /* method, version, spaces */
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, add_header_size, &size);
    return size;
}

/* The key per-IP limits count: the peer, or behind a trusted proxy the
 * client it forwarded (see netaddr.h); an IPv6 client by its /64. "" when
 * there is no address to count. */
static void client_ip(struct ingress *ing, struct MHD_Connection *conn, char out[INET6_ADDRSTRLEN])
{
    char peer[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN];
    peer_ip(conn, peer);
    if (ing->trusted_proxies.count == 0) {
        netaddr_limit_key(peer, out);
        return;
    }
    const char *forwarded_for = NULL;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, last_forwarded_for, &forwarded_for);
    netaddr_client(&ing->trusted_proxies, peer, forwarded_for, client);
    netaddr_limit_key(client, out);
}

static enum MHD_Result send_answer(struct request *req)
{
    char *text = NULL;
    char small[512]; /* most JSON answers: written here, copied by libmicrohttpd */
    size_t len = 0;
    enum MHD_ResponseMemoryMode mode = MHD_RESPMEM_MUST_FREE;
    const char *type = "application/json";
    if (req->response_text) {
        text = req->response_text;
        req->response_text = NULL;
        type = req->response_type;
        len = strlen(text);
    } else if (req->response) {
        len = json_dumpb(req->response, small, sizeof small, JSON_COMPACT);
        if (len > 0 && len <= sizeof small) {
            text = small;
            mode = MHD_RESPMEM_MUST_COPY;
        } else {
            text = json_dumps(req->response, JSON_COMPACT);
            len = text ? strlen(text) : 0;
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, text ? text : (void *)"", text ? mode : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(text);
        return MHD_NO;
    }
    if (text && req->status != 304) /* a 304 has no body, so no type (RFC 9110, 15.4.5) */
        MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", req->cache_control ? req->cache_control : "no-store");
    if (req->etag[0])
        MHD_add_response_header(resp, "ETag", req->etag);
    if (req->response_retry_after_s > 0) {
        char value[24];
        snprintf(value, sizeof value, "%ld", req->response_retry_after_s);
        MHD_add_response_header(resp, "Retry-After", value);
    }
    if (req->location[0])
        MHD_add_response_header(resp, "Location", req->location);
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);

    char status[8];
    snprintf(status, sizeof status, "%d", req->status);
    metrics_add(req->ing->m_requests, (const char *const[]){req->route, status}, 1);
    metrics_observe(req->ing->m_latency, (const char *const[]){req->route},
                    (double)(time_monotonic_ms() - req->started_ms) / 1000.0);
    return ret;
}

static void health(struct request *req, const char *path)
{
    struct ingress *ing = req->ing;
    snprintf(req->route, sizeof req->route, "%s", path);
    if (strcmp(path, "/healthz") == 0) {
        request_answer(req, 200, json_pack("{s:b}", "ok", 1));
    } else {
        int view = atomic_load(&ing->view_caught_up);
        int kafka = !atomic_load(&ing->producer_failed);
        request_answer(req, view && kafka ? 200 : 503,
                       json_pack("{s:b, s:b, s:b}", "ready", view && kafka, "view_caught_up", view,
                                 "kafka", kafka));
    }
}

static void route(struct request *req, const char *method, const char *path)
{
    /* /metrics is not served here but on METRICS_LISTEN (admin.c). */
    if (strcmp(method, "GET") == 0 && (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)) {
        health(req, path);
    } else if (webhook_path(path)) {
        if (strcmp(method, "POST") != 0) {
            struct api_error e;
            snprintf(req->route, sizeof req->route, "%s", path);
            api_fail(&e, 405, "method not allowed", "Twilio webhooks are POSTed.");
            request_fail(req, &e);
        } else {
            webhook_handle(req, path);
        }
    } else {
        api_handle(req, method, path);
    }
}

/* The connection guard's entry of conn (NULL when it has none). */
static struct conn_entry *guard_entry(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* The body's announced length: Content-Length as a number, -1 when the
 * header is absent (a chunked body, or none) or not a plain number. */
static long long announced_length(struct MHD_Connection *conn)
{
    const char *text = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > 18 || strspn(text, "0123456789") != n)
        return -1;
    return strtoll(text, NULL, 10);
}

/* Checks, on the headers alone, what can be refused before a body is
 * read: a body announced larger than BODY_MAX_BYTES (413), and for a
 * request that takes credentials and brings a body of more than
 * EARLY_AUTH_BYTES (or of unannounced length), the credentials (401), so
 * that nobody unauthenticated can make the ingress read and buffer a large
 * body. Returns 0, or -1 with e filled. */
static int refuse_before_body(struct server *s, struct MHD_Connection *conn, const char *url,
                              const char *method, struct api_error *e)
{
    long long length = announced_length(conn);
    if (length > s->ing->body_max_bytes)
        return api_fail(e, 413, "body too large", "The request body is larger than %ld bytes.",
                        s->ing->body_max_bytes);
    int has_body = length > EARLY_AUTH_BYTES ||
                   (length < 0 && MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding"));
    int health = strcmp(method, "GET") == 0 && (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0);
    if (!has_body || health || webhook_path(url))
        return 0; /* webhooks are checked by their signature, over the body */
    char *caller = NULL;
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    int rc = auth_check(&s->ing->auth, header, &caller, e);
    free(caller);
    return rc < 0 ? -1 : 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct request *req = *con_cls;
    if (!req)
        return MHD_NO; /* out of memory in on_uri */
    if (!req->conn) {
        /* First call: headers only. Refuse a flooding client before reading. */
        req->conn = conn;
        conn_guard_body_started(s->guard, guard_entry(conn), time_monotonic_ms());
        char ip[INET6_ADDRSTRLEN];
        client_ip(s->ing, conn, ip);
        snprintf(req->client_ip, sizeof req->client_ip, "%s", ip);
        long wait_ms = ip[0] ? ratelimit_take(s->ing->by_ip, ip, time_monotonic_ms()) : 0;
        if (wait_ms > 0) {
            struct api_error e;
            api_fail(&e, 429, "too many requests", "Too many requests from this address; retry later.");
            e.retry_after_s = (wait_ms + 999) / 1000;
            request_fail(req, &e);
            req->answered_early = 1;
            return send_answer(req);
        }
        if (headers_size(req) > HEADERS_MAX_BYTES) {
            struct api_error e;
            api_fail(&e, 431, "headers too large", "The request line and headers exceed %d bytes.",
                     HEADERS_MAX_BYTES);
            request_fail(req, &e);
            req->answered_early = 1;
            return send_answer(req);
        }
        struct api_error e;
        if (refuse_before_body(s, conn, url, method, &e) < 0) {
            request_fail(req, &e);
            req->answered_early = 1;
            return send_answer(req);
        }
        return MHD_YES;
    }
    if (req->answered_early) {
        *upload_size = 0; /* the answer is queued; the body is not read */
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->body_len + *upload_size > (size_t)s->ing->body_max_bytes) {
            req->too_big = 1;
        } else if (!req->too_big) {
            char *grown = realloc(req->body, req->body_len + *upload_size + 1);
            if (!grown)
                return MHD_NO;
            memcpy(grown + req->body_len, upload_data, *upload_size);
            req->body = grown;
            req->body_len += *upload_size;
            req->body[req->body_len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* The whole request is here, or we were resumed with the answer ready. */
    conn_guard_request_read(guard_entry(conn));
    pthread_mutex_lock(&s->ing->pending_lock);
    int ready = req->ready, waiting = req->waiting;
    pthread_mutex_unlock(&s->ing->pending_lock);
    if (ready)
        return send_answer(req);
    if (waiting)
        return MHD_YES;
    if (req->too_big) {
        struct api_error e;
        api_fail(&e, 413, "body too large", "The request body is larger than %ld bytes.",
                 s->ing->body_max_bytes);
        request_fail(req, &e);
    } else {
        route(req, method, url);
    }
    pthread_mutex_lock(&s->ing->pending_lock);
    ready = req->ready && !req->waiting;
    pthread_mutex_unlock(&s->ing->pending_lock);
    return ready ? send_answer(req) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct server *s = cls;
    struct request *req = *con_cls;
    *con_cls = NULL;
    /* On a kept-alive connection the next request's headers are due. */
    conn_guard_request_done(s->guard, guard_entry(conn), time_monotonic_ms());
    if (!req)
        return;
    metrics_gauge_add(s->ing->m_in_flight, NULL, -1);
    pthread_mutex_lock(&s->ing->pending_lock);
    request_unref(req);
    pthread_mutex_unlock(&s->ing->pending_lock);
}

/* A connection opens or closes: the guard counts it and watches its
 * deadlines (socket_context holds its entry). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = fd ? conn_guard_opened(s->guard, fd->connect_fd, addr ? addr->client_addr : NULL,
                                                 time_monotonic_ms())
                             : NULL;
    } else {
        conn_guard_closed(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* Accept policy: refuses a connection whose address already holds
 * MAX_CONNECTIONS_PER_IP. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    struct server *s = cls;
    if (conn_guard_admit(s->guard, addr))
        return MHD_YES;
    metrics_add(s->m_refused, NULL, 1);
    return MHD_NO;
}

/* --- start and stop ----------------------------------------------------------------- */

static int create_metrics(struct ingress *ing)
{
    static const char *const route_status[] = {"route", "status"};
    static const char *const route_only[] = {"route"};
    static const char *const type_only[] = {"type"};
    ing->metrics = metrics_new();
    if (!ing->metrics)
        return -1;
    ing->m_requests = metrics_counter(ing->metrics, "stagehand_ingress_requests_total",
                                      "HTTP requests answered, by route and status.", 2, route_status);
    ing->m_latency = metrics_histogram(ing->metrics, "stagehand_ingress_request_seconds",
                                       "Time from the first byte of a request to its answer.", 1,
                                       route_only, metrics_latency_buckets,
                                       metrics_latency_buckets_count);
    ing->m_events = metrics_counter(ing->metrics, "stagehand_ingress_events_total",
                                    "Events handed to Kafka, by type.", 1, type_only);
    ing->m_produce_errors = metrics_counter(ing->metrics, "stagehand_ingress_produce_errors_total",
                                            "Events Kafka did not take.", 0, NULL);
    ing->m_in_flight = metrics_gauge(ing->metrics, "stagehand_ingress_in_flight",
                                     "Requests being read, waiting or answered.", 0, NULL);
    ing->m_view_streams = metrics_gauge(ing->metrics, "stagehand_ingress_view_streams",
                                        "Streams in the state view.", 0, NULL);
    ing->m_webhooks_rejected = metrics_counter(ing->metrics, "stagehand_ingress_webhooks_refused_total",
                                               "Webhooks refused or ignored, by route or reason.", 1,
                                               route_only);
    return ing->m_requests && ing->m_latency && ing->m_events && ing->m_produce_errors &&
                   ing->m_in_flight && ing->m_view_streams && ing->m_webhooks_rejected
               ? 0
               : -1;
}

struct server *server_start(struct ingress *ing, const struct server_options *opt, char *err,
                            size_t errlen)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s || create_metrics(ing) < 0) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    s->ing = ing;
    static const char *const part_only[] = {"part"};
    s->m_slow = metrics_counter(ing->metrics, "stagehand_ingress_slow_clients_total",
                                "Connections shut down for not sending their request line and headers "
                                "(headers) or body (body) in time.",
                                1, part_only);
    s->m_refused = metrics_counter(ing->metrics, "stagehand_ingress_connections_refused_total",
                                   "Connections refused at accept: the address held MAX_CONNECTIONS_PER_IP.", 0,
                                   NULL);
    struct conn_guard_options gopt = {
        .per_ip_limit = opt->max_connections_per_ip,
        .header_timeout_ms = opt->header_timeout_ms,
        .body_timeout_ms = opt->body_timeout_ms,
        .max_connections = (size_t)opt->max_connections,
        .exempt = &ing->trusted_proxies,
    };
    s->guard = conn_guard_new(&gopt);
    if (!s->m_slow || !s->m_refused || !s->guard) {
        snprintf(err, errlen, "out of memory");
        conn_guard_free(s->guard);
        free(s);
        return NULL;
    }
    if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0) {
        snprintf(err, errlen, "cannot start the sweeper thread");
        conn_guard_free(s->guard);
        free(s);
        return NULL;
    }
    s->sweeper_started = 1;
    /* poll() or epoll: libmicrohttpd's epoll mode takes a connection out of
     * its epoll set when it is suspended and puts it back when resumed, two
     * epoll_ctl calls for every request that waits for Kafka; its poll mode
     * needs none, but each poll() call costs in proportion to the
     * connections held (see INGRESS_EVENT_LOOP in the README). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (opt->use_epoll ? MHD_USE_EPOLL : MHD_USE_POLL) |
                     MHD_ALLOW_SUSPEND_RESUME;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)opt->port, on_accept, s, on_request, s,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opt->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)opt->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opt->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_LIMIT,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on port %d", opt->port);
        atomic_store(&s->stop_sweeper, 1);
        pthread_join(s->sweeper, NULL);
        conn_guard_free(s->guard);
        free(s);
        return NULL;
    }
    return s;
}

unsigned server_port(const struct server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void server_stop(struct server *s, int grace_ms)
{
    if (!s)
        return;
    struct ingress *ing = s->ing;
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    int64_t until = time_monotonic_ms() + grace_ms;
    for (;;) {
        pthread_mutex_lock(&ing->pending_lock);
        long waiting = ing->pending_count;
        pthread_mutex_unlock(&ing->pending_lock);
        if (waiting == 0)
            break;
        if (time_monotonic_ms() >= until) {
            /* Answer what is left: the daemon must not stop with suspended connections. */
            pthread_mutex_lock(&ing->pending_lock);
            for (struct request *req = ing->pending; req; req = req->next)
                req->deadline_ms = 0;
            pthread_mutex_unlock(&ing->pending_lock);
        }
        time_sleep_ms(10);
    }
    time_sleep_ms(50); /* let the resumed answers go out */
    MHD_stop_daemon(s->daemon);
    atomic_store(&s->stop_sweeper, 1);
    pthread_join(s->sweeper, NULL);
    conn_guard_free(s->guard); /* every connection has closed */
    free(s);
}
