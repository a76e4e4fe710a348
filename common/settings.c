/* The tables of stagehand's environment variables (see settings.h). */
#include "settings.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kv.h"
#include "log.h"
#include "netaddr.h"

#define COUNT(table) (sizeof(table) / sizeof(table)[0])

static const char *check_log_level(const char *value)
{
    enum log_level level;
    if (log_level_parse(value, &level) < 0)
        return "must be debug, info, warn or error";
    return NULL;
}

/* Addresses and CIDR ranges, comma-separated (see netaddr.h). */
static const char *check_trusted_proxies(const char *value)
{
    struct netaddr_ranges ranges;
    char err[128];
    if (netaddr_ranges_parse(value, &ranges, err, sizeof err) < 0)
        return "must be a comma-separated list of IP addresses and CIDR ranges";
    return NULL;
}

/* A literal address and a port: 127.0.0.1:9100, [::1]:9100. */
static const char *check_listen(const char *value)
{
    struct sockaddr_storage addr;
    socklen_t len;
    if (netaddr_listen_parse(value, &addr, &len) < 0)
        return "must be an IPv4 address and a port (127.0.0.1:9100) or [IPv6]:port, port 0 to 65535";
    return NULL;
}

/* A comma-separated list of host:port, no empty item, no spaces. */
static const char *check_brokers(const char *value)
{
    const char *p = value;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (config_host_port_problem(p, n, 1))
            return "must be a comma-separated list of host:port, port from 1 to 65535";
        if (!p[n])
            return NULL;
        p += n + 1;
    }
}

/* 1 when value is prefix followed by exactly 32 hex digits. */
static int is_sid(const char *value, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (strncmp(value, prefix, plen) != 0 || strlen(value) != plen + 32)
        return 0;
    for (const char *p = value + plen; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

static const char *check_account_sid(const char *value)
{
    return is_sid(value, "AC") ? NULL : "must be AC followed by 32 hex digits";
}

static const char *check_api_key_sid(const char *value)
{
    return is_sid(value, "SK") ? NULL : "must be SK followed by 32 hex digits";
}

const struct config_spec settings_logging[] = {
    {.name = "LOG_LEVEL",
     .type = CONFIG_ENUM,
     .default_value = "info",
     .choices = "debug|info|warn|error",
     .check = check_log_level,
     .description = "Lowest level of log lines written to stderr"},
};
const size_t settings_logging_count = COUNT(settings_logging);

/* A Kafka topic name (or a part of one): 1 to 200 of [A-Za-z0-9._-]. */
static const char *check_topic_chars(const char *value)
{
    size_t n = strlen(value);
    if (n < 1 || n > 200 || strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
        return "must be 1 to 200 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
    return NULL;
}

static const char *check_topic(const char *value)
{
    if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
        return "must be a Kafka topic name, not . or ..";
    return check_topic_chars(value);
}

/* KAFKA_PROPERTIES: name=value items, comma-separated (the value is secret,
 * so the reason never quotes it). */
static const char *check_kafka_properties(const char *value)
{
    struct kv_list props;
    char err[256];
    kv_init(&props);
    int rc = kafka_properties_parse(value, ',', &props, err, sizeof err);
    kv_free(&props);
    return rc < 0 ? "must be name=value items separated by commas, names of librdkafka properties" : NULL;
}

/* KAFKA_PROPERTIES_FILE: a readable file (its lines are checked when the
 * first Kafka client is made, which the programs do at start). */
static const char *check_kafka_properties_file(const char *value)
{
    if (!*value)
        return NULL;
    FILE *f = fopen(value, "r");
    if (!f)
        return "must be a readable file";
    fclose(f);
    return NULL;
}

const struct config_spec settings_kafka[] = {
    {.name = "KAFKA_BROKERS",
     .type = CONFIG_STRING,
     .default_value = "127.0.0.1:9092",
     .check = check_brokers,
     .description = "Kafka bootstrap brokers, comma-separated host:port"},
    {.name = "KAFKA_TOPIC_EVENTS",
     .type = CONFIG_STRING,
     .default_value = "stagehand.events",
     .check = check_topic,
     .description = "The event log topic (key = stream)"},
    {.name = "KAFKA_TOPIC_STATE",
     .type = CONFIG_STRING,
     .default_value = "stagehand.state",
     .check = check_topic,
     .description = "The compacted topic of the workers' state records"},
    {.name = "KAFKA_TOPIC_DLQ",
     .type = CONFIG_STRING,
     .default_value = "stagehand.dlq",
     .check = check_topic,
     .description = "The dead-letter topic"},
    {.name = "KAFKA_GROUP_PREFIX",
     .type = CONFIG_STRING,
     .default_value = "stagehand-",
     .check = check_topic_chars,
     .description = "Prefix of the workers' consumer group ids (the role follows it)"},
    {.name = "KAFKA_PROPERTIES",
     .type = CONFIG_STRING,
     .default_value = "",
     .secret = 1,
     .check = check_kafka_properties,
     .description = "Extra librdkafka properties for every client, name=value,name=value (TLS, SASL)"},
    {.name = "KAFKA_PROPERTIES_FILE",
     .type = CONFIG_STRING,
     .default_value = "",
     .check = check_kafka_properties_file,
     .description = "A file of librdkafka properties, name=value per line, applied before KAFKA_PROPERTIES"},
};
const size_t settings_kafka_count = COUNT(settings_kafka);

const char *settings_kafka_value(const char *name)
{
    const char *value = getenv(name);
    if (value && *value)
        return value;
    for (size_t i = 0; i < settings_kafka_count; i++)
        if (strcmp(settings_kafka[i].name, name) == 0)
            return settings_kafka[i].default_value;
    return NULL;
}

const struct config_spec settings_twilio[] = {
    {.name = "TWILIO_ACCOUNT_SID",
     .type = CONFIG_STRING,
     .check = check_account_sid,
     .description = "Twilio account SID (AC...)"},
    {.name = "TWILIO_API_KEY_SID",
     .type = CONFIG_STRING,
     .check = check_api_key_sid,
     .description = "Twilio API key SID (SK...), for REST calls and access tokens"},
    {.name = "TWILIO_API_KEY_SECRET",
     .type = CONFIG_STRING,
     .secret = 1,
     .description = "Secret of the Twilio API key"},
    {.name = "TWILIO_AUTH_TOKEN",
     .type = CONFIG_STRING,
     .secret = 1,
     .description = "Twilio account auth token, to check webhook signatures"},
    {.name = "TWILIO_API_BASE",
     .type = CONFIG_URL,
     .default_value = "",
     .description = "When set, replaces the Video, Sync and Media base URLs (emulator)"},
    {.name = "TWILIO_VIDEO_BASE",
     .type = CONFIG_URL,
     .default_value = "https://video.twilio.com",
     .description = "Base URL of the Twilio Video API"},
    {.name = "TWILIO_SYNC_BASE",
     .type = CONFIG_URL,
     .default_value = "https://sync.twilio.com",
     .description = "Base URL of the Twilio Sync API"},
    {.name = "TWILIO_MEDIA_BASE",
     .type = CONFIG_URL,
     .default_value = "https://media.twilio.com",
     .description = "Base URL of the Twilio Media (Live) API"},
    {.name = "TWILIO_TIMEOUT_MS",
     .type = CONFIG_INT,
     .default_value = "10000",
     .min = 100,
     .max = 120000,
     .description = "Timeout of one Twilio REST request, milliseconds"},
    {.name = "TWILIO_MAX_RETRIES",
     .type = CONFIG_INT,
     .default_value = "4",
     .min = 0,
     .max = 20,
     .description = "How many times a Twilio request is retried after a 429 or a 5xx"},
    {.name = "TWILIO_RETRY_BASE_MS",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 1,
     .max = 60000,
     .description = "Base of the exponential retry backoff (full jitter), milliseconds"},
    {.name = "TWILIO_RETRY_MAX_MS",
     .type = CONFIG_INT,
     .default_value = "5000",
     .min = 1,
     .max = 600000,
     .description = "Cap of the retry backoff, milliseconds"},
};
const size_t settings_twilio_count = COUNT(settings_twilio);

const struct config_spec settings_public[] = {
    {.name = "PUBLIC_BASE_URL",
     .type = CONFIG_URL,
     .default_value = "http://127.0.0.1:8080",
     .description = "URL at which Twilio reaches the ingress; webhook URLs and signatures use it"},
};
const size_t settings_public_count = COUNT(settings_public);

const struct config_spec settings_ingress[] = {
    {.name = "INGRESS_PORT",
     .type = CONFIG_INT,
     .default_value = "8080",
     .min = 0,
     .max = 65535,
     .description = "TCP port of the ingress (0 picks a free one, printed on stdout)"},
    {.name = "INGRESS_THREADS",
     .type = CONFIG_INT,
     .default_value = "2",
     .min = 1,
     .max = 64,
     .description = "event loops of the ingress, one thread each with its own libmicrohttpd daemon (epoll) "
                    "and Kafka producer"},
    {.name = "METRICS_LISTEN",
     .type = CONFIG_STRING,
     .default_value = "127.0.0.1:9100",
     .check = check_listen,
     .description = "Address and port of the ingress's /metrics (also /healthz, /readyz); port 0 picks a free "
                    "one, printed on stdout"},
    {.name = "PASSCODE",
     .type = CONFIG_STRING,
     .default_value = "",
     .secret = 1,
     .description = "The shared passcode (required with AUTH_MODE=passcode)"},
    {.name = "AUTH_JWT_SECRET",
     .type = CONFIG_STRING,
     .default_value = "",
     .secret = 1,
     .description = "HS256 secret of client bearer tokens (required with AUTH_MODE=jwt)"},
    {.name = "AUTH_JWT_ISSUER",
     .type = CONFIG_STRING,
     .default_value = "",
     .description = "When set, the iss every bearer token must carry (AUTH_MODE=jwt)"},
    {.name = "AUTH_JWT_AUDIENCE",
     .type = CONFIG_STRING,
     .default_value = "",
     .description = "When set, the aud every bearer token must name (AUTH_MODE=jwt)"},
    {.name = "TOKEN_TTL_S",
     .type = CONFIG_INT,
     .default_value = "14400",
     .min = 60,
     .max = 86400,
     .description = "Lifetime of the access tokens the ingress mints, seconds"},
    {.name = "SPEAKER_TOKEN_TTL_S",
     .type = CONFIG_INT,
     .default_value = "300",
     .min = 60,
     .max = 86400,
     .description = "AUTH_MODE=jwt: lifetime of a speaker's access token (not the host's), seconds"},
    {.name = "PRODUCE_TIMEOUT_MS",
     .type = CONFIG_INT,
     .default_value = "5000",
     .min = 100,
     .max = 60000,
     .description = "How long a request waits for Kafka's acknowledgement before 503"},
    {.name = "CREATE_WAIT_MS",
     .type = CONFIG_INT,
     .default_value = "10000",
     .min = 0,
     .max = 120000,
     .description = "How long create-stream and joins wait for the stream to be ready"},
    {.name = "BODY_MAX_BYTES",
     .type = CONFIG_INT,
     .default_value = "16384",
     .min = 256,
     .max = 1048576,
     .description = "Largest request body accepted (larger: 413)"},
    {.name = "MAX_CONNECTIONS",
     .type = CONFIG_INT,
     .default_value = "10000",
     .min = 1,
     .max = 1000000,
     .description = "Most client connections open at once"},
    {.name = "CONNECTION_TIMEOUT_S",
     .type = CONFIG_INT,
     .default_value = "30",
     .min = 1,
     .max = 3600,
     .description = "An idle or too slow client connection is closed after this long"},
    {.name = "MAX_CONNECTIONS_PER_IP",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 0,
     .max = 1000000,
     .description = "Most open connections from one client address (an IPv6 client: its /64; trusted proxies "
                    "exempt); more are refused at accept. 0: no limit"},
    {.name = "HEADER_TIMEOUT_MS",
     .type = CONFIG_INT,
     .default_value = "10000",
     .min = 100,
     .max = 600000,
     .description = "The request line and headers must arrive within this of the connection opening (or the "
                    "previous answer); else the connection is closed"},
    {.name = "BODY_TIMEOUT_MS",
     .type = CONFIG_INT,
     .default_value = "10000",
     .min = 100,
     .max = 600000,
     .description = "The body must arrive within this of the headers; else the connection is closed"},
    {.name = "RATE_LIMIT_IP_PER_S",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 0,
     .max = 1000000,
     .description = "Requests per second per client IP (0: no limit)"},
    {.name = "RATE_LIMIT_IP_BURST",
     .type = CONFIG_INT,
     .default_value = "200",
     .min = 1,
     .max = 10000000,
     .description = "Requests a client IP may burst above its rate"},
    {.name = "TRUSTED_PROXIES",
     .type = CONFIG_STRING,
     .default_value = "",
     .check = check_trusted_proxies,
     .description = "Proxies (IP addresses, CIDR ranges) whose X-Forwarded-For names the client for per-IP limits"},
    {.name = "RATE_LIMIT_IDENTITY_PER_S",
     .type = CONFIG_INT,
     .default_value = "10",
     .min = 0,
     .max = 1000000,
     .description = "Requests per second per user identity (0: no limit)"},
    {.name = "RATE_LIMIT_IDENTITY_BURST",
     .type = CONFIG_INT,
     .default_value = "20",
     .min = 1,
     .max = 10000000,
     .description = "Requests an identity may burst above its rate"},
    {.name = "MAX_STREAMS_PER_HOST",
     .type = CONFIG_INT,
     .default_value = "3",
     .min = 0,
     .max = 1000000,
     .description = "Most live or starting streams one host identity may have (0: no limit)"},
    {.name = "MAX_STREAMS_PER_CLIENT",
     .type = CONFIG_INT,
     .default_value = "10",
     .min = 0,
     .max = 1000000,
     .description = "AUTH_MODE=passcode: most live streams one client address may start through this ingress "
                    "(0: no limit)"},
    {.name = "MAX_STREAMS",
     .type = CONFIG_INT,
     .default_value = "1000",
     .min = 0,
     .max = 10000000,
     .description = "Most live or starting streams in all (0: no limit)"},
    {.name = "STREAM_RETENTION_S",
     .type = CONFIG_INT,
     .default_value = "3600",
     .min = 1,
     .max = 2592000,
     .description = "How long the ingress's view keeps an ended stream before forgetting it"},
    {.name = "WEBHOOK_REPLAY_WINDOW_S",
     .type = CONFIG_INT,
     .default_value = "900",
     .min = 10,
     .max = 86400,
     .description = "A webhook whose timestamp is further than this from the ingress's clock is refused"},
};
const size_t settings_ingress_count = COUNT(settings_ingress);

const struct config_spec settings_streams[] = {
    {.name = "AUTH_MODE",
     .type = CONFIG_ENUM,
     .default_value = "passcode",
     .choices = "passcode|jwt",
     .description = "passcode: Authorization carries the shared passcode; jwt: an HS256 bearer token, "
                    "and the room worker keeps the stage to the host and invited speakers"},
    {.name = "RAISED_HANDS_CAP",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 1,
     .max = 100000,
     .description = "Most raised hands kept per stream; more are refused"},
    {.name = "SYNC_EAGER_VIEWERS",
     .type = CONFIG_INT,
     .default_value = "1000",
     .min = 0,
     .max = 10000000,
     .description =
         "Viewers per stream given Sync access in join order; later ones get it on raising a hand or an invitation"},
};
const size_t settings_streams_count = COUNT(settings_streams);

const struct config_spec settings_workers[] = {
    {.name = "METRICS_PORT",
     .type = CONFIG_INT,
     .default_value = "0",
     .min = 0,
     .max = 65535,
     .description = "Port of a worker's /metrics and /healthz (0 picks a free one, printed on stdout)"},
    {.name = "MAX_ATTEMPTS",
     .type = CONFIG_INT,
     .default_value = "8",
     .min = 1,
     .max = 1000,
     .description = "Attempts at an event's side effects before it goes to the DLQ"},
    {.name = "STATE_PUBLISH_INTERVAL_MS",
     .type = CONFIG_INT,
     .default_value = "200",
     .min = 10,
     .max = 60000,
     .description = "How often a worker publishes the state records that changed"},
    {.name = "STATE_TOMBSTONE_AFTER_S",
     .type = CONFIG_INT,
     .default_value = "3600",
     .min = 1,
     .max = 30 * 86400,
     .description = "How long after a stream ended the workers remove its state records"},
    {.name = "SNAPSHOT_INTERVAL_S",
     .type = CONFIG_INT,
     .default_value = "30",
     .min = 0,
     .max = 86400,
     .description = "How often a worker checkpoints each partition's fold to stagehand.state, read back on "
                    "assignment instead of re-reading from offset 0 (0: neither written nor read)"},
    {.name = "PARSE_AHEAD",
     .type = CONFIG_INT,
     .default_value = "1",
     .min = 0,
     .max = 1,
     .description = "1: while its queue of fetched events is long, a worker parses them on a second thread ahead of "
                    "the one it handles; 0: it parses each on its poll loop"},
    {.name = "KAFKA_SESSION_TIMEOUT_MS",
     .type = CONFIG_INT,
     .default_value = "45000",
     .min = 1000,
     .max = 300000,
     .description = "Consumer group session timeout of the workers"},
};
const size_t settings_workers_count = COUNT(settings_workers);

const struct config_spec settings_rooms[] = {
    {.name = "ROOM_MAX_PARTICIPANTS",
     .type = CONFIG_INT,
     .default_value = "50",
     .min = 2,
     .max = 50,
     .description = "MaxParticipants of a stream's Video Room (the composer takes one)"},
    {.name = "ROOM_EMPTY_TIMEOUT_MIN",
     .type = CONFIG_INT,
     .default_value = "5",
     .min = 1,
     .max = 1440,
     .description = "Minutes an emptied room lives before Twilio ends it"},
    {.name = "ROOM_UNUSED_TIMEOUT_MIN",
     .type = CONFIG_INT,
     .default_value = "5",
     .min = 1,
     .max = 1440,
     .description = "Minutes a room nobody joined lives before Twilio ends it"},
};
const size_t settings_rooms_count = COUNT(settings_rooms);

const struct config_spec settings_media[] = {
    {.name = "STREAM_MAX_DURATION_S",
     .type = CONFIG_INT,
     .default_value = "1800",
     .min = 60,
     .max = 90000,
     .description = "MaxDuration of a stream's PlayerStreamer and MediaProcessor, seconds"},
    {.name = "GRANT_TTL_S",
     .type = CONFIG_INT,
     .default_value = "60",
     .min = 1,
     .max = 60,
     .description = "Ttl of the PlaybackGrants the stream worker fetches (Twilio allows 60 at most)"},
    {.name = "GRANT_REFRESH_S",
     .type = CONFIG_INT,
     .default_value = "30",
     .min = 1,
     .max = 3600,
     .description = "How often a live stream gets a fresh PlaybackGrant"},
    {.name = "COMPOSER_EXTENSION",
     .type = CONFIG_STRING,
     .default_value = "video-composer-v2",
     .description = "The Media Extension the MediaProcessor runs"},
    {.name = "COMPOSER_RESOLUTION",
     .type = CONFIG_STRING,
     .default_value = "1920x1080",
     .description = "Resolution of the composed stream"},
    {.name = "RECONCILE_INTERVAL_S",
     .type = CONFIG_INT,
     .default_value = "300",
     .min = 1,
     .max = 86400,
     .description = "How often the stream worker ends Live resources no live stream owns"},
    {.name = "RECONCILE_GRACE_S",
     .type = CONFIG_INT,
     .default_value = "600",
     .min = 0,
     .max = 86400,
     .description = "Age under which an unowned Live resource is left alone (it may be being created)"},
};
const size_t settings_media_count = COUNT(settings_media);

const struct config_spec settings_sync[] = {
    {.name = "VIEWERS_MAP_CAP",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 1,
     .max = 100000,
     .description = "Most viewers listed in a stream's Sync viewers map (the count is exact)"},
    {.name = "COUNT_INTERVAL_MS",
     .type = CONFIG_INT,
     .default_value = "1000",
     .min = 50,
     .max = 600000,
     .description = "Least time between two writes of a stream's viewer count"},
    {.name = "HOST_GRACE_S",
     .type = CONFIG_INT,
     .default_value = "30",
     .min = 1,
     .max = 86400,
     .description = "How long the host may be gone from the room before the stream ends"},
    {.name = "SYNC_WRITES_PER_S",
     .type = CONFIG_INT,
     .default_value = "18",
     .min = 1,
     .max = 1000,
     .description = "Writes per second per Sync object, and creations per service (Twilio allows 20)"},
    {.name = "SYNC_BURST_S",
     .type = CONFIG_INT,
     .default_value = "10",
     .min = 1,
     .max = 60,
     .description = "Seconds of writes a Sync object may burst (Twilio allows 10)"},
    {.name = "SYNC_LANE_RESERVE_S",
     .type = CONFIG_INT,
     .default_value = "5",
     .min = 0,
     .max = 60,
     .description = "Seconds of each Sync budget that viewer provisioning leaves to interactive writes"},
    {.name = "SYNC_LANE_SLICE_MS",
     .type = CONFIG_INT,
     .default_value = "20",
     .min = 1,
     .max = 1000,
     .description = "Most time per housekeeping round the sync worker spends provisioning viewers"},
    {.name = "SYNC_DEBOUNCE_MS",
     .type = CONFIG_INT,
     .default_value = "5000",
     .min = 1000,
     .max = 3600000,
     .description = "Reachability debouncing window of a stream's Sync service"},
};
const size_t settings_sync_count = COUNT(settings_sync);
