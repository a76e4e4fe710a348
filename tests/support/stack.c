/* The dev broker, the ingress and an HTTP client for tests (see stack.h). */
#include "stack.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "emulator_process.h"
#include "kafka.h"
#include "settings.h"

#define START_WAIT_MS 30000
#define TEST_PARTITIONS 3

int stack_real_kafka(void)
{
    const char *b = getenv("STAGEHAND_TEST_KAFKA");
    return b && *b;
}

/* Names the stack's topics and group prefix (unique in the run: pid,
 * a serial and the time) and fills kafka_env. */
static void name_kafka(struct stack *s)
{
    static int serial;
    if (s->real_kafka) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "t%ld-%d-%lx", (long)getpid(), ++serial, (unsigned long)time(NULL));
        snprintf(s->topic_events, sizeof s->topic_events, "%s.events", prefix);
        snprintf(s->topic_state, sizeof s->topic_state, "%s.state", prefix);
        snprintf(s->topic_dlq, sizeof s->topic_dlq, "%s.dlq", prefix);
        snprintf(s->group_prefix, sizeof s->group_prefix, "%s-", prefix);
    } else {
        /* the dev broker's own topics: what its settings name */
        snprintf(s->topic_events, sizeof s->topic_events, "%s", TOPIC_EVENTS);
        snprintf(s->topic_state, sizeof s->topic_state, "%s", TOPIC_STATE);
        snprintf(s->topic_dlq, sizeof s->topic_dlq, "%s", TOPIC_DLQ);
        snprintf(s->group_prefix, sizeof s->group_prefix, "%s", GROUP_PREFIX);
    }
    snprintf(s->kafka_env[0], sizeof s->kafka_env[0], "KAFKA_TOPIC_EVENTS=%s", s->topic_events);
    snprintf(s->kafka_env[1], sizeof s->kafka_env[1], "KAFKA_TOPIC_STATE=%s", s->topic_state);
    snprintf(s->kafka_env[2], sizeof s->kafka_env[2], "KAFKA_TOPIC_DLQ=%s", s->topic_dlq);
    snprintf(s->kafka_env[3], sizeof s->kafka_env[3], "KAFKA_GROUP_PREFIX=%s", s->group_prefix);
    for (int i = 0; i < 4; i++)
        s->kafka_envp[i] = s->kafka_env[i];
    s->kafka_envp[4] = NULL;
}

const char *const *stack_kafka_env(struct stack *s)
{
    return s->kafka_envp;
}

/* This stack's topics on the run's real broker. */
static int create_real_topics(struct stack *s, const char *const state_configs[], char *err, size_t errlen)
{
    snprintf(s->brokers, sizeof s->brokers, "%s", getenv("STAGEHAND_TEST_KAFKA"));
    /* A cluster (test_cluster): STAGEHAND_TEST_KAFKA_REPLICATION replicas,
     * one fewer of them in sync for a write to be acknowledged. */
    const char *rf_env = getenv("STAGEHAND_TEST_KAFKA_REPLICATION");
    int rf = rf_env && atoi(rf_env) > 1 ? atoi(rf_env) : 1;
    char min_isr[48];
    snprintf(min_isr, sizeof min_isr, "min.insync.replicas=%d", rf > 1 ? rf - 1 : 1);
    const char *log_configs[] = {"cleanup.policy=delete", min_isr, NULL};
    const char *state[16] = {"cleanup.policy=compact", min_isr};
    size_t n = 2;
    for (size_t i = 0; state_configs && state_configs[i] && n < 15; i++)
        state[n++] = state_configs[i];
    state[n] = NULL;
    struct kafka_topic_spec topics[] = {
        {s->topic_events, TEST_PARTITIONS, rf, log_configs},
        {s->topic_dlq, TEST_PARTITIONS, rf, log_configs},
        {s->topic_state, TEST_PARTITIONS, rf, state},
    };
    return kafka_create_topics(s->brokers, NULL, topics, 3, 30000, err, errlen);
}

int stack_start_broker(struct stack *s, char *err, size_t errlen)
{
    return stack_start_broker_with(s, NULL, err, errlen);
}

int stack_start_broker_with(struct stack *s, const char *const state_configs[], char *err, size_t errlen)
{
    char bin[1024], out[128], errp[128], file[128];
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/stagehand-stack.XXXXXX");
    if (!mkdtemp(s->dir)) {
        snprintf(err, errlen, "cannot make a scratch directory");
        return -1;
    }
    s->real_kafka = stack_real_kafka();
    name_kafka(s);
    if (s->real_kafka)
        return create_real_topics(s, state_configs, err, errlen);
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "stagehand-devbroker", err, errlen) < 0)
        return -1;
    snprintf(out, sizeof out, "%s/broker.out", s->dir);
    snprintf(errp, sizeof errp, "%s/broker.err", s->dir);
    snprintf(file, sizeof file, "%s/bootstrap", s->dir);
    const char *argv[] = {bin, "--partitions", "3", "--bootstrap-file", file, NULL};
    (void)state_configs; /* the dev broker does not compact */
    if (process_spawn(&s->broker, argv, NULL, out, errp, err, errlen) < 0)
        return -1;
    if (process_wait_file(file, START_WAIT_MS) < 0) {
        snprintf(err, errlen, "the dev broker wrote no bootstrap file (see %s)", errp);
        return -1;
    }
    char *line = process_read_file(file, NULL);
    if (!line) {
        snprintf(err, errlen, "cannot read %s", file);
        return -1;
    }
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(s->brokers, sizeof s->brokers, "%s", line);
    free(line);
    return 0;
}

/* Waits for the line format ("port %u") on a program's stdout. */
static int read_port(const char *path, const char *format, unsigned *port)
{
    for (int i = 0; i < START_WAIT_MS / 50; i++) {
        char *text = process_read_file(path, NULL);
        if (text && sscanf(text, format, port) == 1) {
            free(text);
            return 0;
        }
        free(text);
        usleep(50 * 1000);
    }
    return -1;
}

/* defaults then extras into env (at most max - 1 entries and a NULL); an
 * extra replaces the default of the same name, since a child would see only
 * the first of two. */
static void merge_env(const char **env, size_t max, const char *const defaults[], const char *const extras[])
{
    size_t n = 0;
    for (size_t i = 0; defaults[i] && n < max - 1; i++)
        env[n++] = defaults[i];
    for (size_t i = 0; extras && extras[i] && n < max - 1; i++) {
        size_t name_len = strcspn(extras[i], "=");
        size_t j = 0;
        while (j < n && !(strncmp(env[j], extras[i], name_len) == 0 && env[j][name_len] == '='))
            j++;
        env[j] = extras[i];
        if (j == n)
            n++;
    }
    env[n] = NULL;
}

/* defaults, then middle, then extras (later ones win). */
static void merge_env3(const char **env, size_t max, const char *const defaults[], const char *const middle[],
                       const char *const extras[])
{
    const char *first[64];
    merge_env(first, 64, defaults, middle);
    merge_env(env, max, first, extras);
}

int stack_start_ingress(struct stack *s, const char *const env_extra[], char *err, size_t errlen)
{
    char bin[1024], out[128], errp[128], brokers[160];
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", "stagehand-ingress", err, errlen) < 0)
        return -1;
    s->ingress_serial++;
    snprintf(out, sizeof out, "%s/ingress-%d.out", s->dir, s->ingress_serial);
    snprintf(errp, sizeof errp, "%s/ingress-%d.err", s->dir, s->ingress_serial);
    snprintf(brokers, sizeof brokers, "KAFKA_BROKERS=%s", s->brokers);
    const char *const defaults[] = {"TWILIO_ACCOUNT_SID=" TEST_ACCOUNT_SID,
                                    "TWILIO_API_KEY_SID=" TEST_API_KEY_SID,
                                    "TWILIO_API_KEY_SECRET=" TEST_API_KEY_SECRET,
                                    "TWILIO_AUTH_TOKEN=" TEST_AUTH_TOKEN,
                                    "PASSCODE=" TEST_PASSCODE,
                                    "PUBLIC_BASE_URL=" TEST_PUBLIC_BASE_URL,
                                    "INGRESS_PORT=0",
                                    "PRODUCE_TIMEOUT_MS=3000",
                                    "CREATE_WAIT_MS=3000",
                                    "RATE_LIMIT_IP_PER_S=0",
                                    "RATE_LIMIT_IDENTITY_PER_S=0",
                                    "METRICS_LISTEN=127.0.0.1:0",
                                    "MAX_STREAMS_PER_HOST=0",
                                    "MAX_STREAMS_PER_CLIENT=0",
                                    "MAX_STREAMS=0",
                                    "LOG_LEVEL=warn",
                                    brokers,
                                    NULL};
    const char *env[64];
    merge_env3(env, 64, defaults, s->kafka_envp, env_extra);
    const char *argv[] = {bin, NULL};
    if (process_spawn(&s->ingress, argv, env, out, errp, err, errlen) < 0)
        return -1;
    unsigned port, metrics_port;
    if (read_port(out, "port %u", &port) < 0 || read_port(out, "port %*u metrics port %u", &metrics_port) < 0) {
        snprintf(err, errlen, "the ingress did not start (see %s)", errp);
        return -1;
    }
    snprintf(s->ingress_url, sizeof s->ingress_url, "http://127.0.0.1:%u", port);
    snprintf(s->metrics_url, sizeof s->metrics_url, "http://127.0.0.1:%u", metrics_port);
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", s->ingress_url);
    for (int i = 0; i < START_WAIT_MS / 100; i++) {
        struct http_reply r;
        http_call("GET", url, NULL, NULL, 0, &r);
        long status = r.status;
        http_reply_free(&r);
        if (status == 200)
            return 0;
        usleep(100 * 1000);
    }
    snprintf(err, errlen, "the ingress never became ready (see %s)", errp);
    return -1;
}

int stack_start_worker(struct stack *s, const char *role, const char *twilio_base, const char *const env_extra[],
                       struct process *p, char *err, size_t errlen)
{
    char bin[1024], name[64], out[160], errp[160], brokers[160], base[160];
    snprintf(name, sizeof name, "stagehand-%s-worker", role);
    if (process_path_from_env(bin, sizeof bin, "STAGEHAND_BUILD", name, err, errlen) < 0)
        return -1;
    s->worker_serial++;
    snprintf(out, sizeof out, "%s/%s-%d.out", s->dir, role, s->worker_serial);
    snprintf(errp, sizeof errp, "%s/%s-%d.err", s->dir, role, s->worker_serial);
    snprintf(brokers, sizeof brokers, "KAFKA_BROKERS=%s", s->brokers);
    snprintf(base, sizeof base, "TWILIO_API_BASE=%s", twilio_base);
    const char *const defaults[] = {"TWILIO_ACCOUNT_SID=" TEST_ACCOUNT_SID,
                                    "TWILIO_API_KEY_SID=" TEST_API_KEY_SID,
                                    "TWILIO_API_KEY_SECRET=" TEST_API_KEY_SECRET,
                                    "TWILIO_AUTH_TOKEN=" TEST_AUTH_TOKEN,
                                    "PUBLIC_BASE_URL=" TEST_PUBLIC_BASE_URL,
                                    "METRICS_PORT=0",
                                    "KAFKA_SESSION_TIMEOUT_MS=6000",
                                    "TWILIO_RETRY_BASE_MS=20",
                                    "TWILIO_RETRY_MAX_MS=200",
                                    "STATE_PUBLISH_INTERVAL_MS=50",
                                    "LOG_LEVEL=warn",
                                    brokers,
                                    base,
                                    NULL};
    const char *env[64];
    merge_env3(env, 64, defaults, s->kafka_envp, env_extra);
    const char *argv[] = {bin, NULL};
    if (process_spawn(p, argv, env, out, errp, err, errlen) < 0)
        return -1;
    unsigned port;
    if (read_port(out, "metrics port %u", &port) < 0) {
        snprintf(err, errlen, "the %s worker did not start (see %s)", role, errp);
        return -1;
    }
    return (int)port;
}

int stack_stop_ingress(struct stack *s)
{
    return process_stop(&s->ingress, 20000);
}

static pid_t real_broker_pid(void)
{
    const char *pid = getenv("STAGEHAND_TEST_KAFKA_PID");
    return pid && *pid ? (pid_t)atol(pid) : 0;
}

int stack_broker_freeze(struct stack *s)
{
    pid_t pid = s->real_kafka ? real_broker_pid() : s->broker.pid;
    if (pid <= 0 || kill(pid, SIGSTOP) != 0)
        return -1;
    if (s->real_kafka)
        s->frozen = 1;
    return 0;
}

int stack_broker_thaw(struct stack *s)
{
    pid_t pid = s->real_kafka ? real_broker_pid() : s->broker.pid;
    if (pid <= 0 || kill(pid, SIGCONT) != 0)
        return -1;
    s->frozen = 0;
    return 0;
}

int stack_broker_gone(struct stack *s)
{
    if (!s->real_kafka)
        return process_stop(&s->broker, 10000);
    return stack_broker_freeze(s);
}

int stack_stop(struct stack *s)
{
    if (s->frozen)
        stack_broker_thaw(s);
    process_stop(&s->ingress, 20000);
    int broker_status = process_stop(&s->broker, 10000);
    if (s->dir[0] && getenv("STAGEHAND_KEEP_LOGS")) {
        fprintf(stderr, "logs kept in %s\n", s->dir);
    } else if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
    return broker_status < 0 ? 0 : broker_status; /* -1: no broker was started */
}

struct buffer {
    char *data;
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, ptr, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void copy_header(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t name_len = strlen(name);
    if (n <= name_len + 1 || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
        return;
    const char *v = line + name_len + 1;
    size_t vlen = n - name_len - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    snprintf(out, outlen, "%.*s", (int)vlen, v);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct http_reply *r = userdata;
    size_t n = size * nmemb;
    copy_header(line, n, "Retry-After", r->retry_after, sizeof r->retry_after);
    copy_header(line, n, "Location", r->location, sizeof r->location);
    copy_header(line, n, "Content-Type", r->content_type, sizeof r->content_type);
    return n;
}

int http_call(const char *method, const char *url, const char *const headers[], const char *body, size_t body_len,
              struct http_reply *out)
{
    memset(out, 0, sizeof *out);
    struct buffer b = {NULL, 0};
    CURL *curl = curl_easy_init();
    if (!curl) {
        out->body = strdup("");
        return -1;
    }
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    out->body = b.data ? b.data : strdup("");
    return rc == CURLE_OK ? 0 : -1;
}

void http_reply_free(struct http_reply *r)
{
    free(r->body);
    r->body = NULL;
}
