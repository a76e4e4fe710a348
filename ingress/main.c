/* stagehand-ingress: the front door. It authenticates and validates client
 * requests and Twilio webhooks, mints access tokens from its view of
 * stagehand.state, and turns each accepted request into one event on
 * stagehand.events, answering only after Kafka acknowledged it. It makes no
 * Twilio call. Configuration comes from the environment (README,
 * "Configuration"); `--help` lists the variables it reads.
 *
 * Threads: INGRESS_THREADS event loops, each with its libmicrohttpd daemon
 * and its own Kafka producer, whose delivery reports it serves itself
 * (server.h, loop.h); librdkafka's threads; a chores thread (slow
 * connections); and the view thread, which reads stagehand.state from its
 * beginning; /readyz is false until it has caught up. SIGTERM or SIGINT: stop accepting, answer every
 * waiting request, flush the producer, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "ingress.h"
#include "log.h"
#include "secure.h"
#include "server.h"
#include "settings.h"
#include "timeutil.h"

#define RATE_LIMIT_KEYS 100000
#define MIN_JWT_SECRET_BYTES 16

struct view_reader {
    struct ingress *ing;
    const char *brokers;
    pthread_t thread;
    atomic_int stop;
};

/* Folds stagehand.state into the view, forever; creates the reader first,
 * retrying while Kafka cannot be reached. */
static void *view_main(void *arg)
{
    struct view_reader *vr = arg;
    struct kafka_reader *reader = NULL;
    char err[256];
    while (!atomic_load(&vr->stop) && !reader) {
        struct kafka_reader_options opt = {.brokers = vr->brokers, .topic = TOPIC_STATE, .metadata_timeout_ms = 2000};
        reader = kafka_reader_new(&opt, err, sizeof err);
        if (!reader) {
            log_warn("cannot read the state topic yet; retrying", "error", err, NULL);
            time_sleep_ms(1000);
        }
    }
    while (!atomic_load(&vr->stop)) {
        rd_kafka_message_t *msg = kafka_reader_poll(reader, 100);
        if (msg) {
            if (!msg->err && msg->key && view_apply(vr->ing->view, msg->key, msg->key_len, msg->payload, msg->len) < 0)
                log_warn("malformed state record ignored", NULL);
            rd_kafka_message_destroy(msg);
        }
        if (!atomic_load(&vr->ing->view_caught_up) && kafka_reader_caught_up(reader)) {
            atomic_store(&vr->ing->view_caught_up, 1);
            char streams[24];
            snprintf(streams, sizeof streams, "%zu", view_size(vr->ing->view));
            log_info("state view caught up", "streams", streams, NULL);
        }
    }
    kafka_reader_close(reader);
    return NULL;
}

static void on_producer_error(void *ctx, rd_kafka_resp_err_t err, int fatal, const char *reason)
{
    (void)err;
    (void)reason;
    struct ingress *ing = ctx;
    if (fatal)
        atomic_store(&ing->producer_failed, 1);
}

/* Closes the producers (those not NULL), all within timeout_ms of now
 * for their reports; frees the array. Returns how many messages failed. */
static int close_producers(struct kafka_producer **producers, int n, int timeout_ms)
{
    int failed = 0;
    int64_t until = time_monotonic_ms() + timeout_ms;
    for (int i = 0; i < n; i++) {
        int64_t left = until - time_monotonic_ms();
        if (producers[i])
            failed += kafka_producer_close(producers[i], left > 0 ? (int)left : 0);
    }
    free(producers);
    return failed;
}

/* One producer per event loop, its delivery reports served by the loop
 * (no poller thread). librdkafka gives up on a message after our own
 * deadline. Every request waits for its ack, so batches are not held back
 * for long (linger.ms 1, not common/kafka's 5; 0 sends a request to the
 * broker per message, 3 halves the rate with 64 connections): under load,
 * what queues while a batch is in flight still goes out together. The
 * batches of each loop are small (tens of events), and zstd's set-up per
 * batch cost about 4 us of CPU per request (a tenth of the ingress's), lz4
 * next to nothing: the ingress compresses with lz4. Returns 0, or -1 with
 * err and none left open. */
static int start_producers(struct config *cfg, struct ingress *ing, struct kafka_producer **producers, int n, char *err,
                           size_t errlen)
{
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%d", ing->produce_timeout_ms);
    struct kv_list properties;
    kv_init(&properties);
    kv_add(&properties, "message.timeout.ms", timeout);
    kv_add(&properties, "linger.ms", "1");
    kv_add(&properties, "compression.type", "lz4");
    struct kafka_producer_options popt = {
        .brokers = config_str(cfg, "KAFKA_BROKERS"),
        .properties = &properties,
        .on_delivery = server_on_delivery,
        .on_error = on_producer_error,
        .error_ctx = ing,
        .poll_thread = 0,
    };
    for (int i = 0; i < n; i++) {
        producers[i] = kafka_producer_new(&popt, err, errlen);
        if (!producers[i]) {
            kv_free(&properties);
            for (int j = 0; j < i; j++)
                kafka_producer_close(producers[j], 0);
            return -1;
        }
        /* Asks for the topic's metadata now rather than at the first
         * request, which would wait for it. */
        rd_kafka_topic_t *topic = rd_kafka_topic_new(kafka_producer_handle(producers[i]), TOPIC_EVENTS, NULL);
        if (topic)
            rd_kafka_topic_destroy(topic);
    }
    kv_free(&properties);
    return 0;
}

static int load_config(struct config *cfg, char *err, size_t errlen)
{
    const struct {
        const struct config_spec *specs;
        size_t n;
    } tables[] = {
        {settings_logging, settings_logging_count}, {settings_kafka, settings_kafka_count},
        {settings_twilio, settings_twilio_count},   {settings_public, settings_public_count},
        {settings_ingress, settings_ingress_count}, {settings_streams, settings_streams_count},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (config_register(cfg, tables[i].specs, tables[i].n, err, errlen) < 0)
            return -1;
    if (config_load(cfg, err, errlen) < 0)
        return -1;
    const char *mode = config_str(cfg, "AUTH_MODE");
    if (strcmp(mode, "passcode") == 0 && !config_str(cfg, "PASSCODE")[0]) {
        snprintf(err, errlen, "PASSCODE: required when AUTH_MODE=passcode");
        return -1;
    }
    if (strcmp(mode, "jwt") == 0 && strlen(config_str(cfg, "AUTH_JWT_SECRET")) < MIN_JWT_SECRET_BYTES) {
        snprintf(err, errlen, "AUTH_JWT_SECRET: required when AUTH_MODE=jwt, at least %d bytes", MIN_JWT_SECRET_BYTES);
        return -1;
    }
    /* The same secret would make every access token the ingress mints a
     * valid login token for its Twilio identity. */
    const char *jwt_secret = config_str(cfg, "AUTH_JWT_SECRET");
    const char *api_secret = config_str(cfg, "TWILIO_API_KEY_SECRET");
    if (jwt_secret[0] && secure_equal(jwt_secret, strlen(jwt_secret), api_secret, strlen(api_secret))) {
        snprintf(err, errlen, "AUTH_JWT_SECRET: must not be the same as TWILIO_API_KEY_SECRET");
        return -1;
    }
    return 0;
}

static void usage(FILE *out, struct config *cfg)
{
    fprintf(out, "usage: stagehand-ingress [--help]\nConfiguration comes from the environment:\n");
    config_print_help(cfg, out);
}

int main(int argc, char **argv)
{
    char err[2048];
    struct config *cfg = config_new();
    if (!cfg) {
        fprintf(stderr, "stagehand-ingress: out of memory\n");
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        load_config(cfg, err, sizeof err); /* registers the tables; values do not matter */
        usage(stdout, cfg);
        config_free(cfg);
        return 0;
    }
    if (argc != 1 || load_config(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-ingress: %s\n", argc != 1 ? "takes no arguments (see --help)" : err);
        config_free(cfg);
        return 2;
    }
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(config_str(cfg, "LOG_LEVEL"), &level);
    log_init("ingress", level);
    json_t *settings = config_to_json(cfg); /* secrets appear as [redacted] */
    log_write_json(LOG_LEVEL_INFO, "configuration", settings);
    json_decref(settings);

    struct ingress ing = {
        .public_base_url = config_str(cfg, "PUBLIC_BASE_URL"),
        .auth_token = config_str(cfg, "TWILIO_AUTH_TOKEN"),
        .token_key = {config_str(cfg, "TWILIO_ACCOUNT_SID"), config_str(cfg, "TWILIO_API_KEY_SID"),
                      config_str(cfg, "TWILIO_API_KEY_SECRET"), NULL},
        .token_ttl_s = (long)config_int(cfg, "TOKEN_TTL_S"),
        .speaker_token_ttl_s = (long)config_int(cfg, "SPEAKER_TOKEN_TTL_S"),
        .produce_timeout_ms = (int)config_int(cfg, "PRODUCE_TIMEOUT_MS"),
        .create_wait_ms = (int)config_int(cfg, "CREATE_WAIT_MS"),
        .body_max_bytes = (long)config_int(cfg, "BODY_MAX_BYTES"),
        .raised_hands_cap = (long)config_int(cfg, "RAISED_HANDS_CAP"),
        .sync_eager_viewers = (long)config_int(cfg, "SYNC_EAGER_VIEWERS"),
        .webhook_replay_window_s = (long)config_int(cfg, "WEBHOOK_REPLAY_WINDOW_S"),
        .stream_retention_ms = (int64_t)config_int(cfg, "STREAM_RETENTION_S") * 1000,
        .auth = {strcmp(config_str(cfg, "AUTH_MODE"), "jwt") == 0 ? AUTH_JWT : AUTH_PASSCODE,
                 config_str(cfg, "PASSCODE"), config_str(cfg, "AUTH_JWT_SECRET"), config_str(cfg, "AUTH_JWT_ISSUER"),
                 config_str(cfg, "AUTH_JWT_AUDIENCE")},
    };
    ing.view = view_new();
    ing.by_ip = ratelimit_new((double)config_int(cfg, "RATE_LIMIT_IP_PER_S"),
                              (double)config_int(cfg, "RATE_LIMIT_IP_BURST"), RATE_LIMIT_KEYS);
    ing.by_identity = ratelimit_new((double)config_int(cfg, "RATE_LIMIT_IDENTITY_PER_S"),
                                    (double)config_int(cfg, "RATE_LIMIT_IDENTITY_BURST"), RATE_LIMIT_KEYS);
    if (netaddr_ranges_parse(config_str(cfg, "TRUSTED_PROXIES"), &ing.trusted_proxies, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-ingress: TRUSTED_PROXIES: %s\n", err); /* checked at load: not reached */
        return 1;
    }
    /* A claim waits for the view as long as a create can take, and more. */
    struct quota_limits limits = {
        .per_host = (long)config_int(cfg, "MAX_STREAMS_PER_HOST"),
        .total = (long)config_int(cfg, "MAX_STREAMS"),
        .per_client = (long)config_int(cfg, "MAX_STREAMS_PER_CLIENT"),
        .claim_ttl_ms = (int64_t)ing.produce_timeout_ms + ing.create_wait_ms + 30000,
    };
    ing.quota = quota_new(&limits);
    if (!ing.view || !ing.by_ip || !ing.by_identity || !ing.quota) {
        fprintf(stderr, "stagehand-ingress: out of memory\n");
        return 1;
    }

    int threads = (int)config_int(cfg, "INGRESS_THREADS");
    struct kafka_producer **producers = calloc((size_t)threads, sizeof *producers);
    if (!producers || start_producers(cfg, &ing, producers, threads, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-ingress: Kafka producer: %s\n", producers ? err : "out of memory");
        return 1;
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits this */

    struct view_reader vr = {.ing = &ing, .brokers = config_str(cfg, "KAFKA_BROKERS")};
    if (pthread_create(&vr.thread, NULL, view_main, &vr) != 0) {
        fprintf(stderr, "stagehand-ingress: cannot start the view thread\n");
        return 1;
    }
    struct server_options sopt = {
        .port = (int)config_int(cfg, "INGRESS_PORT"),
        .threads = threads,
        .producers = producers,
        .max_connections = (int)config_int(cfg, "MAX_CONNECTIONS"),
        .connection_timeout_s = (int)config_int(cfg, "CONNECTION_TIMEOUT_S"),
        .max_connections_per_ip = (long)config_int(cfg, "MAX_CONNECTIONS_PER_IP"),
        .header_timeout_ms = (int)config_int(cfg, "HEADER_TIMEOUT_MS"),
        .body_timeout_ms = (int)config_int(cfg, "BODY_TIMEOUT_MS"),
    };
    struct server *server = server_start(&ing, &sopt, err, sizeof err);
    if (!server) {
        fprintf(stderr, "stagehand-ingress: %s\n", err);
        atomic_store(&vr.stop, 1);
        pthread_join(vr.thread, NULL);
        close_producers(producers, threads, 1000);
        return 1;
    }
    struct admin *admin = admin_start(&ing, config_str(cfg, "METRICS_LISTEN"), err, sizeof err);
    if (!admin) {
        fprintf(stderr, "stagehand-ingress: %s\n", err);
        server_stop(server, 0);
        atomic_store(&vr.stop, 1);
        pthread_join(vr.thread, NULL);
        close_producers(producers, threads, 1000);
        return 1;
    }
    char port[16], metrics_port[16];
    snprintf(port, sizeof port, "%u", server_port(server));
    snprintf(metrics_port, sizeof metrics_port, "%u", admin_port(admin));
    printf("port %s\nmetrics port %s\n", port, metrics_port);
    fflush(stdout);
    log_info("ingress listening", "port", port, "metrics_port", metrics_port, "auth_mode", config_str(cfg, "AUTH_MODE"),
             NULL);

    int sig;
    sigwait(&stop_signals, &sig);
    log_info("ingress stopping", NULL);
    server_stop(server, ing.produce_timeout_ms + ing.create_wait_ms + 1000);
    admin_stop(admin);
    /* Anything still undelivered was never acknowledged to a client (each
     * got its 503), so nothing promised is lost; it is only logged. */
    int undelivered = close_producers(producers, threads, 5000);
    atomic_store(&vr.stop, 1);
    pthread_join(vr.thread, NULL);
    metrics_free(ing.metrics);
    ratelimit_free(ing.by_ip);
    ratelimit_free(ing.by_identity);
    quota_free(ing.quota);
    view_free(ing.view);
    config_free(cfg);
    char count[24];
    snprintf(count, sizeof count, "%d", undelivered);
    log_info("ingress stopped", "undelivered_unacknowledged", count, NULL);
    return 0;
}
