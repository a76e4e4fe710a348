/* twilio-emulator: a stateful local Twilio for stagehand's development and
 * tests. It serves Video, Media v1 and Sync from one
 * base URL, with Twilio's paths, parameter names, status codes and error
 * bodies, and checks HTTP Basic credentials as Twilio does: the API key SID
 * and secret, or the account SID and auth token, from the same environment
 * variables stagehand reads (TWILIO_ACCOUNT_SID, TWILIO_API_KEY_SID,
 * TWILIO_API_KEY_SECRET, TWILIO_AUTH_TOKEN).
 *
 * Usage: twilio-emulator [--port N] [options] (port 0 picks a free one; the
 * port in use is printed on stdout as "port N"); --help lists the options.
 * Each connection has its own thread, so an added latency delays only its
 * own requests, and the REST concurrency limit counts requests in progress
 * the way Twilio's does. TWILIO_EMULATOR_FAULTS may hold the parameters of
 * POST /_emulator/faults as a form string (e.g. "ErrorRate=0.1&Seed=7"). */
#include <curl/curl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "emulator.h"
#include "encode.h"
#include "form.h"
#include "log.h"
#include "secure.h"
#include "settings.h"
#include "text.h"
#include "timeutil.h"

#define MAX_BODY (64 * 1024)

#include <openssl/rand.h>

void emu_new_sid(const char *prefix, char out[EMU_SID_LEN + 1])
{
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        /* Uniqueness matters more than unpredictability for an emulator. */
        static unsigned long counter;
        memset(bytes, 0, sizeof bytes);
        counter++;
        memcpy(bytes, &counter, sizeof counter);
    }
    out[0] = prefix[0];
    out[1] = prefix[1];
    hex_encode(bytes, sizeof bytes, out + 2);
}

void emu_format_date(int64_t epoch_ms, char out[21])
{
    char full[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(epoch_ms, full);
    memcpy(out, full, 19);
    out[19] = 'Z';
    out[20] = '\0';
}

struct upload {
    char *data;
    size_t len;
    int too_big;
};

static int authorized(const struct emulator *emu, struct MHD_Connection *conn)
{
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!header || strncasecmp(header, "Basic ", 6) != 0)
        return 0;
    const char *b64 = header + 6;
    size_t len = strlen(b64);
    if (len > 512)
        return 0;
    unsigned char decoded[512];
    long n = base64_decode(b64, len, decoded);
    if (n <= 0)
        return 0;
    const unsigned char *colon = memchr(decoded, ':', (size_t)n);
    if (!colon)
        return 0;
    size_t user_len = (size_t)(colon - decoded), pass_len = (size_t)n - user_len - 1;
    const char *pass = (const char *)colon + 1;
    int key_ok = secure_equal(decoded, user_len, emu->api_key_sid, strlen(emu->api_key_sid)) &
                 secure_equal(pass, pass_len, emu->api_key_secret, strlen(emu->api_key_secret));
    int account_ok = secure_equal(decoded, user_len, emu->account_sid, strlen(emu->account_sid)) &
                     secure_equal(pass, pass_len, emu->auth_token, strlen(emu->auth_token));
    return key_ok | account_ok;
}

static enum MHD_Result add_query_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    kv_add(cls, key, value ? value : "");
    return MHD_YES;
}

/* Splits the path on '/'. A path with an empty segment ("//", or a trailing
 * '/') or a dot segment ("." or "..", also once decoded from %2E) names no
 * resource: Twilio answers it 404, and resolving it instead would let
 * DELETE .../Maps/raised_hands/Items/.. (or .../raised_hands/) delete the
 * map. Returns 0, or -1 for such a path or too many segments. */
static int split_path(struct emu_request *req)
{
    const char *p = req->path;
    if (*p != '/')
        return -1;
    p++;
    if (!*p)
        return 0; /* "/" */
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || is_dot_segment(p, n) || req->nsegments == EMU_MAX_SEGMENTS)
            return -1;
        char *segment = strndup(p, n);
        if (!segment)
            return -1;
        req->segments[req->nsegments++] = segment;
        p += n;
        if (!*p)
            return 0;
        p++; /* the '/'; what follows must be a segment */
    }
}

/* Which product a Twilio path belongs to, or -1. */
static int product_of(const struct emu_request *req)
{
    if (req->nsegments < 2 || strcmp(req->segments[0], "v1") != 0)
        return -1;
    const char *what = req->segments[1];
    if (strcmp(what, "Rooms") == 0)
        return EMU_VIDEO;
    if (strcmp(what, "PlayerStreamers") == 0 || strcmp(what, "MediaProcessors") == 0)
        return EMU_MEDIA;
    if (strcmp(what, "Services") == 0)
        return EMU_SYNC;
    return -1;
}

static void dispatch(struct emulator *emu, struct emu_request *req, struct emu_response *resp)
{
    int product = product_of(req);
    pthread_mutex_lock(&emu->lock);
    emu->requests++;
    enum fault_action fault = product >= 0 ? faults_decide(&emu->faults, product) : FAULT_NONE;
    resp->delay_ms = emu->faults.latency_ms;
    if (product >= 0)
        emu->requests_by_product[product]++;
    if (fault == FAULT_429) {
        emu->responses_429++;
        emu_error(resp, 429, 20429, "Too Many Requests");
    } else if (fault == FAULT_500) {
        emu_error(resp, 500, 20500, "Internal Server Error");
    } else if (fault == FAULT_DROP) {
        resp->drop = 1;
    } else if (product == EMU_VIDEO) {
        video_handle(emu, req, resp);
    } else if (product == EMU_MEDIA) {
        media_handle(emu, req, resp);
    } else if (product == EMU_SYNC) {
        sync_handle(emu, req, resp);
    } else {
        emu_not_found(resp);
    }
    pthread_mutex_unlock(&emu->lock);
}

/* Counts the request as in progress; over Twilio's concurrency limit it is
 * answered 429 / 20429 instead (and stays counted until answered). Returns
 * 1 when it may go on. */
static int admit(struct emulator *emu, struct emu_response *resp)
{
    long now = atomic_fetch_add(&emu->in_flight, 1) + 1;
    if (emu->max_in_flight <= 0 || now <= emu->max_in_flight)
        return 1;
    pthread_mutex_lock(&emu->lock);
    emu->requests++;
    emu->responses_429++;
    pthread_mutex_unlock(&emu->lock);
    emu_error(resp, 429, 20429, "Too many requests: the account's REST concurrency limit is reached");
    return 0;
}

static void reset_state(struct emulator *emu)
{
    sync_free(emu);
    media_free(emu);
    video_free(emu);
    json_object_clear(emu->sync_writes);
    faults_init(&emu->faults, emu->faults.seed);
    emu->requests = emu->responses_429 = 0;
    memset(emu->requests_by_product, 0, sizeof emu->requests_by_product);
}

/* The emulator's own API under /_emulator/ (no Twilio credentials needed):
 * GET state, GET stats, POST reset, and the simulation endpoints. */
static void own_api(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    const char *what = req->path + 11;
    const char *method = req->method;
    pthread_mutex_lock(&emu->lock);
    if (video_simulate(emu, req, resp) || sync_simulate(emu, req, resp) || media_simulate(emu, req, resp)) {
        /* answered */
    } else if (strcmp(what, "state") == 0 && strcmp(method, "GET") == 0) {
        emu_reply(resp, 200,
                  json_pack("{s:o, s:o, s:o}", "rooms", video_state(emu), "media", media_state(emu), "sync_services",
                            sync_state(emu)));
    } else if (strcmp(what, "stats") == 0 && strcmp(method, "GET") == 0) {
        long sent = 0, failed = 0, queued = 0;
        if (emu->webhooks)
            webhook_sender_counts(emu->webhooks, &sent, &failed, &queued);
        emu_reply(resp, 200,
                  json_pack("{s:I, s:{s:I, s:I, s:I}, s:I, s:O, s:{s:I, s:I, s:I}}", "requests",
                            (json_int_t)emu->requests, "requests_by_product", "video",
                            (json_int_t)emu->requests_by_product[0], "media", (json_int_t)emu->requests_by_product[1],
                            "sync", (json_int_t)emu->requests_by_product[2], "responses_429",
                            (json_int_t)emu->responses_429, "sync_writes", emu->sync_writes, "webhooks", "sent",
                            (json_int_t)sent, "failed", (json_int_t)failed, "queued", (json_int_t)queued));
    } else if (strcmp(what, "faults") == 0 && strcmp(method, "GET") == 0) {
        emu_reply(resp, 200, faults_json(&emu->faults));
    } else if (strcmp(what, "faults") == 0 && strcmp(method, "POST") == 0) {
        char err[128];
        if (faults_configure(&emu->faults, req, err, sizeof err) < 0)
            emu_error(resp, 400, 20001, err);
        else
            emu_reply(resp, 200, faults_json(&emu->faults));
    } else if (strcmp(what, "reset") == 0 && strcmp(method, "POST") == 0) {
        reset_state(emu);
        emu_reply(resp, 204, NULL);
    } else {
        emu_error(resp, 404, 20404, "No such emulator endpoint");
    }
    pthread_mutex_unlock(&emu->lock);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, const struct emu_response *r)
{
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text ? text : (void *)"",
                                                                text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (text)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    if (r->etag[0])
        MHD_add_response_header(resp, "ETag", r->etag);
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct emulator *emu = cls;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(struct upload));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    struct upload *up = *con_cls;
    if (*upload_size) {
        if (up->len + *upload_size > MAX_BODY) {
            up->too_big = 1;
        } else {
            char *grown = realloc(up->data, up->len + *upload_size + 1);
            if (!grown)
                return MHD_NO;
            memcpy(grown + up->len, upload_data, *upload_size);
            up->data = grown;
            up->len += *upload_size;
            up->data[up->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }

    struct emu_response resp = {0};
    struct emu_request req = {.conn = conn, .method = method, .path = url};
    int counted = 0; /* this request is one of emu->in_flight */
    kv_init(&req.params);
    int own = strncmp(url, "/_emulator/", 11) == 0;
    if (!own && !authorized(emu, conn)) {
        emu_error(&resp, 401, 20003, "Authenticate");
    } else if (up->too_big) {
        emu_error(&resp, 413, 20413, "Request entity too large");
    } else if (split_path(&req) < 0) {
        emu_error(&resp, 404, 20404, "The requested resource was not found");
    } else {
        char err[128];
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        int form = type && strncasecmp(type, "application/x-www-form-urlencoded", 33) == 0;
        if (strcmp(method, "POST") == 0 && form && up->len > 0 &&
            form_parse(up->data, up->len, &req.params, err, sizeof err) < 0) {
            emu_error(&resp, 400, 20001, "Invalid form body");
        } else {
            MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query_param, &req.params);
            if (own)
                own_api(emu, &req, &resp);
            else {
                counted = 1;
                if (admit(emu, &resp))
                    dispatch(emu, &req, &resp);
            }
        }
    }
    log_debug("request", "method", method, "path", url, NULL);
    if (resp.delay_ms > 0)
        time_sleep_ms(resp.delay_ms); /* outside the state lock: other requests go on */
    if (counted)
        atomic_fetch_sub(&emu->in_flight, 1);
    enum MHD_Result ret = resp.drop ? MHD_NO : send_response(conn, &resp);
    json_decref(resp.body);
    for (int i = 0; i < req.nsegments; i++)
        free(req.segments[i]);
    kv_free(&req.params);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct upload *up = *con_cls;
    if (up) {
        free(up->data);
        free(up);
    }
    *con_cls = NULL;
}

struct ticker {
    struct emulator *emu;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
};

/* Every 100 ms, lets time pass: room timeouts, Media MaxDuration, debounced
 * Sync disconnects. */
static void *tick(void *arg)
{
    struct ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->wake, &t->lock, &until);
        if (t->stop)
            break;
        pthread_mutex_lock(&t->emu->lock);
        int64_t now = time_now_ms();
        video_tick(t->emu, now);
        media_tick(t->emu, now);
        sync_tick(t->emu, now);
        pthread_mutex_unlock(&t->emu->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Applies TWILIO_EMULATOR_FAULTS, when set. Returns 0, or -1 with the reason. */
static int faults_from_env(struct emu_faults *faults, char *err, size_t errlen)
{
    const char *text = getenv("TWILIO_EMULATOR_FAULTS");
    if (!text || !text[0])
        return 0;
    struct emu_request req = {.method = "POST", .path = "/_emulator/faults"};
    kv_init(&req.params);
    int rc = form_parse(text, strlen(text), &req.params, err, errlen);
    if (rc == 0)
        rc = faults_configure(faults, &req, err, errlen);
    kv_free(&req.params);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: twilio-emulator [options]\n"
                 "  --port N             listen on N (default 8090; 0 picks a free port)\n"
                 "  --sync-write-rate R  Sync writes per second per object (default 20; 0: no limit)\n"
                 "  --sync-burst-s S     seconds of writes an object may burst (default 10)\n"
                 "  --sync-create-rate R Sync object creations+deletions per second per service\n"
                 "                       (default 20, same burst; 0: no limit)\n"
                 "  --max-concurrency N  REST requests in progress at once, else 429/20429\n"
                 "                       (default 100; 0: no limit)\n"
                 "  --time-scale X       run room timeouts X times faster (default 1)\n"
                 "  --seed N             seed of the fault-injection generator (default 1)\n"
                 "  --webhook-twice      deliver every webhook twice (idempotency tests)\n"
                 "  --webhook-attempts N delivery attempts per webhook (default 5)\n"
                 "Credentials come from TWILIO_ACCOUNT_SID, TWILIO_API_KEY_SID,\n"
                 "TWILIO_API_KEY_SECRET and TWILIO_AUTH_TOKEN; initial faults from\n"
                 "TWILIO_EMULATOR_FAULTS (form parameters of POST /_emulator/faults).\n"
                 "Own API: GET /_emulator/state, GET /_emulator/stats, POST /_emulator/reset,\n"
                 "GET|POST /_emulator/faults, and the simulation endpoints (see README).\n");
}

/* Parses a non-negative number option. Returns 0, or -1. */
static int parse_rate(const char *text, double max, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(v >= 0 && v <= max))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long port = 8090;
    double write_rate = 20, burst_s = 10, create_rate = 20;
    long max_concurrency = 100;
    int webhook_twice = 0;
    double time_scale = 1, seed = 1;
    long webhook_attempts = 5;
    static const struct option options[] = {{"port", required_argument, NULL, 'p'},
                                            {"sync-write-rate", required_argument, NULL, 'r'},
                                            {"sync-burst-s", required_argument, NULL, 'b'},
                                            {"sync-create-rate", required_argument, NULL, 'c'},
                                            {"max-concurrency", required_argument, NULL, 'm'},
                                            {"webhook-twice", no_argument, NULL, 't'},
                                            {"time-scale", required_argument, NULL, 's'},
                                            {"seed", required_argument, NULL, 'e'},
                                            {"webhook-attempts", required_argument, NULL, 'a'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "twilio-emulator: --port must be 0..65535\n");
                return 2;
            }
            break;
        case 'r':
            if (parse_rate(optarg, 1e6, &write_rate) < 0) {
                fprintf(stderr, "twilio-emulator: --sync-write-rate must be a number >= 0\n");
                return 2;
            }
            break;
        case 'b':
            if (parse_rate(optarg, 3600, &burst_s) < 0 || burst_s <= 0) {
                fprintf(stderr, "twilio-emulator: --sync-burst-s must be a number > 0\n");
                return 2;
            }
            break;
        case 'c':
            if (parse_rate(optarg, 1e6, &create_rate) < 0) {
                fprintf(stderr, "twilio-emulator: --sync-create-rate must be a number >= 0\n");
                return 2;
            }
            break;
        case 'm':
            max_concurrency = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || max_concurrency < 0 || max_concurrency > 100000) {
                fprintf(stderr, "twilio-emulator: --max-concurrency must be 0..100000\n");
                return 2;
            }
            break;
        case 't':
            webhook_twice = 1;
            break;
        case 's':
            if (parse_rate(optarg, 1e6, &time_scale) < 0 || time_scale < 1) {
                fprintf(stderr, "twilio-emulator: --time-scale must be a number >= 1\n");
                return 2;
            }
            break;
        case 'a':
            webhook_attempts = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || webhook_attempts < 1 || webhook_attempts > 20) {
                fprintf(stderr, "twilio-emulator: --webhook-attempts must be 1..20\n");
                return 2;
            }
            break;
        case 'e':
            if (parse_rate(optarg, 9007199254740992.0, &seed) < 0) {
                fprintf(stderr, "twilio-emulator: --seed must be a non-negative integer\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    char err[1024];
    struct config *cfg = config_new();
    if (!cfg || config_register(cfg, settings_logging, settings_logging_count, err, sizeof err) < 0 ||
        config_register(cfg, settings_twilio, settings_twilio_count, err, sizeof err) < 0 ||
        config_load(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "twilio-emulator: %s\n", cfg ? err : "out of memory");
        config_free(cfg);
        return 2;
    }
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(config_str(cfg, "LOG_LEVEL"), &level);
    log_init("twilio-emulator", level);

    struct emulator emu = {
        .account_sid = config_str(cfg, "TWILIO_ACCOUNT_SID"),
        .api_key_sid = config_str(cfg, "TWILIO_API_KEY_SID"),
        .api_key_secret = config_str(cfg, "TWILIO_API_KEY_SECRET"),
        .auth_token = config_str(cfg, "TWILIO_AUTH_TOKEN"),
        .sync_writes_per_s = write_rate,
        .sync_burst_s = burst_s,
        .sync_creates_per_s = create_rate,
        .max_in_flight = max_concurrency,
        .sync_writes = json_object(),
        .time_scale = time_scale,
    };
    pthread_mutex_init(&emu.lock, NULL);
    faults_init(&emu.faults, (uint64_t)seed);
    if (faults_from_env(&emu.faults, err, sizeof err) < 0) {
        fprintf(stderr, "twilio-emulator: TWILIO_EMULATOR_FAULTS: %s\n", err);
        config_free(cfg);
        return 2;
    }
    /* Blocked before any thread starts (the webhook sender's, MHD's, the
     * ticker's inherit it): a stop signal delivered to a thread that did
     * not block it would kill the process instead of stopping it cleanly. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        !(emu.webhooks = webhook_sender_new(emu.auth_token, webhook_twice, (int)webhook_attempts))) {
        fprintf(stderr, "twilio-emulator: cannot start webhook delivery\n");
        config_free(cfg);
        return 1;
    }

    struct MHD_Daemon *daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, (uint16_t)port,
                         NULL, NULL, on_request, &emu, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, 60U, MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "twilio-emulator: cannot listen on port %ld\n", port);
        webhook_sender_free(emu.webhooks);
        json_decref(emu.sync_writes);
        config_free(cfg);
        return 1;
    }
    struct ticker ticker = {.emu = &emu};
    pthread_mutex_init(&ticker.lock, NULL);
    pthread_cond_init(&ticker.wake, NULL);
    if (pthread_create(&ticker.thread, NULL, tick, &ticker) != 0) {
        fprintf(stderr, "twilio-emulator: cannot start the timer thread\n");
        MHD_stop_daemon(daemon);
        webhook_sender_free(emu.webhooks);
        reset_state(&emu);
        json_decref(emu.sync_writes);
        config_free(cfg);
        return 1;
    }
    /* libmicrohttpd may fail to say which port it bound (getsockname
     * failed): then the port we asked for, unless that was 0, in which case
     * nobody could find us and starting is pointless. */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info && info->port ? (unsigned)info->port : (unsigned)port;
    if (bound == 0) {
        fprintf(stderr, "twilio-emulator: cannot tell which port it listens on\n");
        pthread_mutex_lock(&ticker.lock);
        ticker.stop = 1;
        pthread_cond_signal(&ticker.wake);
        pthread_mutex_unlock(&ticker.lock);
        pthread_join(ticker.thread, NULL);
        MHD_stop_daemon(daemon);
        webhook_sender_free(emu.webhooks);
        reset_state(&emu);
        json_decref(emu.sync_writes);
        config_free(cfg);
        return 1;
    }
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", bound);
    printf("port %u\n", bound);
    fflush(stdout);
    log_info("twilio emulator listening", "port", port_text, NULL);

    int sig;
    sigwait(&stop_signals, &sig);
    log_info("twilio emulator stopping", NULL);
    pthread_mutex_lock(&ticker.lock);
    ticker.stop = 1;
    pthread_cond_signal(&ticker.wake);
    pthread_mutex_unlock(&ticker.lock);
    pthread_join(ticker.thread, NULL);
    pthread_cond_destroy(&ticker.wake);
    pthread_mutex_destroy(&ticker.lock);
    MHD_stop_daemon(daemon);
    webhook_sender_free(emu.webhooks); /* after the daemon: nothing queues any more */
    reset_state(&emu);
    json_decref(emu.sync_writes);
    curl_global_cleanup();
    pthread_mutex_destroy(&emu.lock);
    config_free(cfg);
    return 0;
}
