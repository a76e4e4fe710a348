/* The ingress's HTTP server (see server.h and ingress.h for the life of a
 * request). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "loop.h"
#include "timeutil.h"

#define CHORES_INTERVAL_MS 100              /* slow connections, the view's gauge */
#define CONNECTION_MEMORY_LIMIT (32 * 1024) /* headers and buffers of one connection */
/* Request line and headers we accept: the rest of the connection's memory
 * must stay free for the answer, or libmicrohttpd would drop a request we
 * had already turned into an event without answering it. */
#define HEADERS_MAX_BYTES (16 * 1024)
#define FORGET_EVERY_CHORES 10 /* ended streams past their retention, every second */
/* A body announced larger than this has the credentials checked on the
 * headers, before any of it is read (see on_request). */
#define EARLY_AUTH_BYTES 1024

struct server {
    struct ingress *ing;
    struct loop *loops;
    int loop_count;
    int listen_fd;
    unsigned port;
    atomic_uint turn; /* which loop takes the next connection */
    pthread_t chores; /* slow connections, ended streams, the view's gauge */
    atomic_int stop_chores;
    int chores_started;
    struct conn_guard *guard; /* per-IP connections, header and body deadlines */
    struct metric *m_slow;    /* connections cut for slowness, by part */
    struct metric *m_refused; /* connections refused: their address held too many */
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

/* --- waiting requests (each on its loop's thread only, see loop.h) ---------------- */

static void pending_link(struct loop *l, struct request *req)
{
    req->prev = NULL;
    req->next = l->pending;
    if (l->pending)
        l->pending->prev = req;
    l->pending = req;
    atomic_fetch_add(&l->pending_count, 1);
    req->waiting = 1;
}

static void pending_unlink(struct loop *l, struct request *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        l->pending = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    atomic_fetch_sub(&l->pending_count, 1);
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

int request_emit(struct request *req, struct event *ev, char *value, int64_t deadline_ms, request_step *on_ack,
                 request_step *on_tick, int ack_status, json_t *ack_body)
{
    struct ingress *ing = req->ing;
    struct loop *l = req->loop;
    char traceparent[EVENT_TRACEPARENT_LEN + 1] = "";
    struct kv_list headers;
    kv_init(&headers);
    kv_add(&headers, "id", ev->id);
    kv_add(&headers, "type", ev->type);
    if (event_traceparent(traceparent) == 0)
        kv_add(&headers, "traceparent", traceparent);
    metrics_add(ing->m_events, (const char *const[]){ev->type}, 1);

    /* Suspended before its delivery report can be served (on this same
     * thread, after this callback returns). */
    MHD_suspend_connection(req->conn);
    req->on_ack = on_ack;
    req->on_tick = on_tick;
    req->ack_status = ack_status;
    req->ack_body = ack_body;
    req->deadline_ms = deadline_ms;
    req->refs++; /* for the delivery report */
    pending_link(l, req);

    struct kafka_record rec = {
        .topic = TOPIC_EVENTS,
        .partition = RD_KAFKA_PARTITION_UA,
        .key = ev->stream,
        .key_len = strlen(ev->stream),
        .value = value,
        .value_len = strlen(value),
        .headers = &headers,
        .opaque = req,
    };
    char err[256];
    rd_kafka_resp_err_t rc = kafka_produce(l->producer, &rec, err, sizeof err);
    kv_free(&headers);
    free(value);
    event_free(ev);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;

    /* No delivery report will come: answer now. */
    log_warn("event not queued for Kafka", "error", err, NULL);
    metrics_add(ing->m_produce_errors, NULL, 1);
    req->refs--;
    pending_unlink(l, req);
    unavailable(req, "The event log is not accepting events; retry in a moment.");
    MHD_resume_connection(req->conn);
    return -1;
}

void server_on_delivery(void *opaque, const struct kafka_delivery *d)
{
    struct request *req = opaque;
    struct ingress *ing = req->ing;
    struct MHD_Connection *resume = NULL;
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
            pending_unlink(req->loop, req);
            resume = req->conn;
        }
    }
    request_unref(req);
    if (resume)
        MHD_resume_connection(resume);
}

/* The loop's tick: answers its waiting requests that are done or past
 * their deadline (all of them when the server is stopping and its grace
 * is over). */
static void sweep(struct loop *l, int64_t now)
{
    int expire_all = atomic_load(&l->expire);
    struct request *req = l->pending;
    while (req) {
        struct request *next = req->next;
        if (expire_all)
            req->deadline_ms = 0;
        int expired = now >= req->deadline_ms;
        if (req->acked && req->on_tick)
            req->on_tick(req, expired);
        else if (expired)
            unavailable(req, "The event log did not acknowledge the event in time; retry in a moment.");
        if (req->ready) {
            pending_unlink(l, req);
            MHD_resume_connection(req->conn);
        }
        req = next;
    }
}

static void *chores_main(void *arg)
{
    struct server *s = arg;
    unsigned rounds = 0;
    while (!atomic_load(&s->stop_chores)) {
        time_sleep_ms(CHORES_INTERVAL_MS);
        metrics_set(s->ing->m_view_streams, NULL, (double)view_size(s->ing->view));
        if (rounds++ % FORGET_EVERY_CHORES == 0)
            view_forget_ended(s->ing->view, time_monotonic_ms(), s->ing->stream_retention_ms);
        struct conn_guard_cut cut = {0, 0};
        if (conn_guard_expire(s->guard, time_monotonic_ms(), &cut) > 0) {
            metrics_add(s->m_slow, (const char *const[]){"headers"}, (double)cut.headers);
            metrics_add(s->m_slow, (const char *const[]){"body"}, (double)cut.body);
        }
    }
    return NULL;
}

/* --- libmicrohttpd callbacks ---------------------------------------------------------- */

/* Called first for every request, with the raw URI: the request starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct loop *l = cls;
    struct server *s = l->server;
    struct request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->ing = s->ing;
    req->loop = l;
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
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, INET6_ADDRSTRLEN);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, INET6_ADDRSTRLEN);
}

/* Keeps the value of the last X-Forwarded-For header: proxies append to
 * the end, so an earlier header can only have come from the client. */
static enum MHD_Result last_forwarded_for(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    if (key && value && strcasecmp(key, "X-Forwarded-For") == 0)
        *(const char **)cls = value;
    return MHD_YES;
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
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
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text ? text : (void *)"",
                                                                text ? mode : MHD_RESPMEM_PERSISTENT);
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
                       json_pack("{s:b, s:b, s:b}", "ready", view && kafka, "view_caught_up", view, "kafka", kafka));
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
static int refuse_before_body(struct server *s, struct MHD_Connection *conn, const char *url, const char *method,
                              struct api_error *e)
{
    long long length = announced_length(conn);
    if (length > s->ing->body_max_bytes)
        return api_fail(e, 413, "body too large", "The request body is larger than %ld bytes.", s->ing->body_max_bytes);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *s = ((struct loop *)cls)->server;
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
            api_fail(&e, 431, "headers too large", "The request line and headers exceed %d bytes.", HEADERS_MAX_BYTES);
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
    if (req->ready)
        return send_answer(req);
    if (req->waiting)
        return MHD_YES;
    if (req->too_big) {
        struct api_error e;
        api_fail(&e, 413, "body too large", "The request body is larger than %ld bytes.", s->ing->body_max_bytes);
        request_fail(req, &e);
    } else {
        route(req, method, url);
    }
    return req->ready && !req->waiting ? send_answer(req) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct server *s = ((struct loop *)cls)->server;
    struct request *req = *con_cls;
    *con_cls = NULL;
    /* On a kept-alive connection the next request's headers are due. */
    conn_guard_request_done(s->guard, guard_entry(conn), time_monotonic_ms());
    if (!req)
        return;
    metrics_gauge_add(s->ing->m_in_flight, NULL, -1);
    request_unref(req);
}

/* A connection opens or closes: the guard counts it and watches its
 * deadlines (socket_context holds its entry). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = ((struct loop *)cls)->server;
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
    struct server *s = ((struct loop *)cls)->server;
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
                                       "Time from the first byte of a request to its answer.", 1, route_only,
                                       metrics_latency_buckets, metrics_latency_buckets_count);
    ing->m_events = metrics_counter(ing->metrics, "stagehand_ingress_events_total", "Events handed to Kafka, by type.",
                                    1, type_only);
    ing->m_produce_errors = metrics_counter(ing->metrics, "stagehand_ingress_produce_errors_total",
                                            "Events Kafka did not take.", 0, NULL);
    ing->m_in_flight = metrics_gauge(ing->metrics, "stagehand_ingress_in_flight",
                                     "Requests being read, waiting or answered.", 0, NULL);
    ing->m_view_streams = metrics_gauge(ing->metrics, "stagehand_ingress_view_streams", "Streams in the state view.", 0,
                                        NULL);
    ing->m_webhooks_rejected = metrics_counter(ing->metrics, "stagehand_ingress_webhooks_refused_total",
                                               "Webhooks refused or ignored, by route or reason.", 1, route_only);
    return ing->m_requests && ing->m_latency && ing->m_events && ing->m_produce_errors && ing->m_in_flight &&
                   ing->m_view_streams && ing->m_webhooks_rejected
               ? 0
               : -1;
}

/* The listening socket every loop's daemon accepts from: port 0 takes a
 * free one (*bound says which). Nonblocking, so that a loop that loses
 * the race for a new connection does not wait in accept. Returns the
 * socket, or -1 with err. */
static int listen_on(int port, unsigned *bound, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot make a socket: %s", strerror(errno));
        return -1;
    }
    int on = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof addr;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        snprintf(err, errlen, "cannot listen on port %d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    *bound = ntohs(addr.sin_port);
    return fd;
}

/* Stops and frees whatever of s was started (loops, daemons, socket,
 * chores thread). */
static void server_free(struct server *s)
{
    for (int i = 0; i < s->loop_count; i++)
        loop_join(&s->loops[i]);
    for (int i = 0; i < s->loop_count; i++) {
        if (s->loops[i].daemon)
            MHD_stop_daemon(s->loops[i].daemon);
        loop_close(&s->loops[i]);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->chores_started) {
        atomic_store(&s->stop_chores, 1);
        pthread_join(s->chores, NULL);
    }
    conn_guard_free(s->guard); /* every connection has closed */
    free(s->loops);
    free(s);
}

/* One loop per thread asked for (at most one per allowed connection),
 * each with its producer, its daemon and its share of MAX_CONNECTIONS. */
static int start_loops(struct server *s, const struct server_options *opt, char *err, size_t errlen)
{
    s->listen_fd = listen_on(opt->port, &s->port, err, errlen);
    if (s->listen_fd < 0)
        return -1;
    int n = opt->threads < opt->max_connections ? opt->threads : opt->max_connections;
    s->loops = calloc((size_t)n, sizeof *s->loops);
    if (!s->loops) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct loop *l = &s->loops[i];
        l->server = s;
        l->index = i;
        l->all = s->loops;
        l->all_count = n;
        l->turn = &s->turn;
        l->listen_fd = s->listen_fd;
        l->producer = opt->producers[i];
        l->tick = sweep;
        l->epoll_fd = l->wake_fd = l->kafka_fd = -1;
        s->loop_count = i + 1;
        if (loop_open(l, err, errlen) < 0)
            return -1;
        unsigned share = (unsigned)(opt->max_connections / n + (i < opt->max_connections % n ? 1 : 0));
        /* External epoll: the loop waits, libmicrohttpd runs in MHD_run;
         * the loop accepts (loop.h) and adds the connections. */
        l->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET, 0, on_accept,
                                     l, on_request, l, MHD_OPTION_CONNECTION_LIMIT, share,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opt->connection_timeout_s,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_LIMIT,
                                     MHD_OPTION_URI_LOG_CALLBACK, on_uri, l, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                                     l, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
        if (!l->daemon) {
            snprintf(err, errlen, "cannot start the HTTP daemon on port %u", s->port);
            return -1;
        }
    }
    /* Started once all are ready: any of them may hand a connection to another. */
    for (int i = 0; i < n; i++)
        if (loop_start(&s->loops[i], err, errlen) < 0)
            return -1;
    return 0;
}

struct server *server_start(struct ingress *ing, const struct server_options *opt, char *err, size_t errlen)
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
                                   "Connections refused at accept: the address held MAX_CONNECTIONS_PER_IP.", 0, NULL);
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
    s->listen_fd = -1;
    if (pthread_create(&s->chores, NULL, chores_main, s) != 0) {
        snprintf(err, errlen, "cannot start the chores thread");
        conn_guard_free(s->guard);
        free(s);
        return NULL;
    }
    s->chores_started = 1;
    if (start_loops(s, opt, err, errlen) < 0) {
        server_free(s);
        return NULL;
    }
    return s;
}

unsigned server_port(const struct server *s)
{
    return s->port;
}

void server_stop(struct server *s, int grace_ms)
{
    if (!s)
        return;
    for (int i = 0; i < s->loop_count; i++) {
        atomic_store(&s->loops[i].quiesce, 1);
        loop_wake(&s->loops[i]);
    }
    int64_t until = time_monotonic_ms() + 1000;
    for (int i = 0; i < s->loop_count; i++)
        while (!atomic_load(&s->loops[i].quiesced) && time_monotonic_ms() < until)
            time_sleep_ms(1);
    if (s->listen_fd >= 0) {
        close(s->listen_fd); /* no loop polls it any more: new clients are refused */
        s->listen_fd = -1;
    }
    until = time_monotonic_ms() + grace_ms;
    for (;;) {
        long waiting = 0;
        for (int i = 0; i < s->loop_count; i++)
            waiting += atomic_load(&s->loops[i].pending_count);
        if (waiting == 0)
            break;
        if (time_monotonic_ms() >= until) {
            /* Answer what is left: the daemons must not stop with suspended connections. */
            for (int i = 0; i < s->loop_count; i++) {
                atomic_store(&s->loops[i].expire, 1);
                loop_wake(&s->loops[i]);
            }
        }
        time_sleep_ms(10);
    }
    time_sleep_ms(50); /* let the resumed answers go out */
    server_free(s);
}
