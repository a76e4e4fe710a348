/* Twilio REST client on libcurl (see twilio.h). */
#include "twilio.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "form.h"
#include "log.h"
#include "random.h"
#include "text.h"
#include "timeutil.h"

struct twilio_client {
    CURL *curl;
    char *account_sid, *api_key_sid, *api_key_secret;
    char *base[3];
    char *user_agent;
    long timeout_ms, connect_timeout_ms, retry_base_ms, retry_max_ms;
    int max_retries;
    void (*sleep_ms)(long ms);
    double (*random01)(void);
};

/* What one HTTP exchange brought back. */
struct exchange {
    char *body;
    size_t len;
    int too_big;
    long retry_after_ms;
    char etag[64];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void real_sleep(long ms)
{
    time_sleep_ms(ms);
}

static char *dup_trimmed_base(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return strndup(s, n);
}

void twilio_client_free(struct twilio_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->account_sid);
    free(c->api_key_sid);
    free(c->api_key_secret);
    for (int i = 0; i < 3; i++)
        free(c->base[i]);
    free(c->user_agent);
    free(c);
}

struct twilio_client *twilio_client_new(const struct twilio_options *opt, char *err, size_t errlen)
{
    if (!opt->api_key_sid || !opt->api_key_sid[0] || !opt->api_key_secret || !opt->api_key_secret[0] ||
        !opt->account_sid || !opt->account_sid[0]) {
        snprintf(err, errlen, "twilio client needs an account SID, an API key SID and its secret");
        return NULL;
    }
    int use_api_base = opt->api_base && opt->api_base[0];
    const char *bases[3] = {opt->video_base, opt->sync_base, opt->media_base};
    for (int i = 0; i < 3 && !use_api_base; i++) {
        if (!bases[i] || !bases[i][0]) {
            snprintf(err, errlen, "twilio client needs a base URL for each product, or api_base");
            return NULL;
        }
    }
    if (opt->timeout_ms <= 0 || opt->max_retries < 0 || opt->retry_base_ms <= 0 ||
        opt->retry_max_ms < opt->retry_base_ms) {
        snprintf(err, errlen, "twilio client: timeout must be positive and retry base <= retry max");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_result));
        return NULL;
    }

    struct twilio_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->curl = curl_easy_init();
    c->account_sid = strdup(opt->account_sid);
    c->api_key_sid = strdup(opt->api_key_sid);
    c->api_key_secret = strdup(opt->api_key_secret);
    c->user_agent = strdup(opt->user_agent ? opt->user_agent : "stagehand");
    int ok = c->curl && c->account_sid && c->api_key_sid && c->api_key_secret && c->user_agent;
    for (int i = 0; i < 3; i++) {
        c->base[i] = dup_trimmed_base(use_api_base ? opt->api_base : bases[i]);
        ok = ok && c->base[i];
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        twilio_client_free(c);
        return NULL;
    }
    c->timeout_ms = opt->timeout_ms;
    c->connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : opt->timeout_ms;
    c->max_retries = opt->max_retries;
    c->retry_base_ms = opt->retry_base_ms;
    c->retry_max_ms = opt->retry_max_ms;
    c->sleep_ms = opt->sleep_ms ? opt->sleep_ms : real_sleep;
    c->random01 = opt->random01 ? opt->random01 : random_unit;
    return c;
}

const char *twilio_base_url(const struct twilio_client *c, enum twilio_product product)
{
    return c->base[product];
}

/* --- helpers of general use ------------------------------------------------------------ */

int twilio_path(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    size_t used = 0;
    int rc = 0;
    va_start(ap, fmt);
    for (const char *p = fmt; *p && rc == 0; p++) {
        if (*p != '%') {
            if (used + 1 >= outlen)
                rc = -1;
            else
                out[used++] = *p;
            continue;
        }
        if (p[1] != 's') {
            rc = -1;
            break;
        }
        p++;
        const char *arg = va_arg(ap, const char *);
        /* "", "." and ".." would make the path address another resource
         * (the parent, or the collection): refused, never sent. */
        if (!arg || !arg[0] || is_dot_segment(arg, strlen(arg))) {
            rc = -1;
            break;
        }
        char *enc = percent_encode(arg, strlen(arg));
        size_t n = enc ? strlen(enc) : 0;
        if (!enc || used + n >= outlen)
            rc = -1;
        else {
            memcpy(out + used, enc, n);
            used += n;
        }
        free(enc);
    }
    va_end(ap);
    if (outlen > 0)
        out[rc == 0 ? used : 0] = '\0';
    return rc;
}

long twilio_backoff_ms(int attempt, long base_ms, long max_ms, long retry_after_ms, double random01)
{
    long step = max_ms;
    if (attempt < 30) {
        long long grown = (long long)base_ms << attempt;
        if (grown < max_ms)
            step = (long)grown;
    }
    if (random01 < 0)
        random01 = 0;
    if (random01 > 1)
        random01 = 1;
    long delay = (long)(random01 * (double)step);
    if (retry_after_ms >= 0) {
        long floor = retry_after_ms < TWILIO_MAX_RETRY_AFTER_MS ? retry_after_ms : TWILIO_MAX_RETRY_AFTER_MS;
        if (delay < floor)
            delay = floor;
    }
    return delay;
}

enum twilio_outcome twilio_classify(long http_status, int code)
{
    if (http_status >= 200 && http_status < 300)
        return TWILIO_OK;
    if (code == 53113 || code == 54208 || code == 54301)
        return TWILIO_EXISTS;
    if (http_status == 404 || code == 20404)
        return TWILIO_NOT_FOUND;
    if (http_status == 429)
        return TWILIO_RATE_LIMITED;
    if (http_status == 0 || http_status >= 500)
        return TWILIO_RETRYABLE;
    return TWILIO_PERMANENT;
}

const char *twilio_outcome_name(enum twilio_outcome outcome)
{
    static const char *const names[] = {"ok", "exists", "not_found", "rate_limited", "retryable", "permanent"};
    return outcome <= TWILIO_PERMANENT ? names[outcome] : "unknown";
}

void twilio_parse_error(const char *body, size_t len, long http_status, int *code, char *message, size_t msglen)
{
    *code = (int)http_status;
    snprintf(message, msglen, "HTTP %ld", http_status);
    if (!body || len == 0)
        return;
    json_t *doc = json_loadb(body, len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    json_t *c = json_object_get(doc, "code");
    if (json_is_integer(c) && json_integer_value(c) > 0 && json_integer_value(c) < 1000000)
        *code = (int)json_integer_value(c);
    /* Classic shape: message. Newer shape: title, with detail when present. */
    const char *msg = json_string_value(json_object_get(doc, "message"));
    const char *title = json_string_value(json_object_get(doc, "title"));
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    if (msg)
        snprintf(message, msglen, "%s", msg);
    else if (title && detail)
        snprintf(message, msglen, "%s: %s", title, detail);
    else if (title || detail)
        snprintf(message, msglen, "%s", title ? title : detail);
    json_decref(doc);
}

int twilio_form_add(struct kv_list *form, const char *name, const char *value)
{
    return kv_add(form, name, value);
}

int twilio_form_add_bool(struct kv_list *form, const char *name, int value)
{
    return kv_add(form, name, value ? "true" : "false");
}

int twilio_form_add_int(struct kv_list *form, const char *name, long long value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    return kv_add(form, name, text);
}

int twilio_form_add_json(struct kv_list *form, const char *name, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!text)
        return -1;
    int rc = kv_add(form, name, text);
    free(text);
    return rc;
}

/* --- one HTTP exchange ------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct exchange *x = userdata;
    size_t n = size * nmemb;
    if (x->len + n > TWILIO_MAX_BODY) {
        x->too_big = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(x->body, x->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + x->len, data, n);
    x->body = grown;
    x->len += n;
    x->body[x->len] = '\0';
    return n;
}

/* Copies a header's value (trimmed) when line is "name: value". */
static int header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return 0;
    const char *v = line + nlen + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - v) < outlen - 1 ? (size_t)(end - v) : outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

static long parse_retry_after(const char *value)
{
    char *end;
    long secs = strtol(value, &end, 10);
    if (end != value && *end == '\0' && secs >= 0)
        return secs > TWILIO_MAX_RETRY_AFTER_MS / 1000 ? TWILIO_MAX_RETRY_AFTER_MS : secs * 1000;
    time_t when = curl_getdate(value, NULL);
    if (when < 0)
        return -1;
    long ms = (long)(when - time(NULL)) * 1000;
    return ms < 0 ? 0 : (ms > TWILIO_MAX_RETRY_AFTER_MS ? TWILIO_MAX_RETRY_AFTER_MS : ms);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct exchange *x = userdata;
    size_t n = size * nmemb;
    char value[128];
    if (header_value(data, n, "Retry-After", value, sizeof value))
        x->retry_after_ms = parse_retry_after(value);
    else
        header_value(data, n, "ETag", x->etag, sizeof x->etag);
    return n;
}

/* Appends a header line; on failure keeps the list and sets *failed. */
static struct curl_slist *add_header(struct curl_slist *list, const char *line, int *failed)
{
    struct curl_slist *grown = curl_slist_append(list, line);
    if (!grown) {
        *failed = 1;
        return list;
    }
    return grown;
}

static int is_get_like(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0;
}

/* Performs one request and fills res from its answer. */
static void perform_once(struct twilio_client *c, enum twilio_product product, const char *method, const char *path,
                         const char *encoded, const char *if_match, struct twilio_result *res)
{
    struct exchange x = {.retry_after_ms = -1};
    char *url = malloc(strlen(c->base[product]) + strlen(path) + strlen(encoded) + 2);
    char if_match_header[128];
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *curl = c->curl;

    res->http_status = 0;
    res->code = 0;
    res->retry_after_ms = -1;
    res->etag[0] = '\0';
    json_decref(res->body);
    res->body = NULL;
    if (!url) {
        res->outcome = TWILIO_RETRYABLE;
        snprintf(res->message, sizeof res->message, "out of memory");
        return;
    }
    sprintf(url, "%s%s%s%s", c->base[product], path, is_get_like(method) && encoded[0] ? "?" : "",
            is_get_like(method) ? encoded : "");

    int header_failed = 0;
    headers = add_header(headers, "Accept: application/json", &header_failed);
    headers = add_header(headers, "Accept-Charset: utf-8", &header_failed);
    if (strcmp(method, "POST") == 0)
        headers = add_header(headers, "Content-Type: application/x-www-form-urlencoded", &header_failed);
    if (if_match) {
        snprintf(if_match_header, sizeof if_match_header, "If-Match: %.100s", if_match);
        headers = add_header(headers, if_match_header, &header_failed);
    }
    if (header_failed) {
        res->outcome = TWILIO_RETRYABLE;
        snprintf(res->message, sizeof res->message, "out of memory");
        curl_slist_free_all(headers);
        free(url);
        return;
    }

    /* Reset keeps the live connections: only options are cleared. */
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    /* The path goes out exactly as built: libcurl would otherwise resolve
     * dot segments, and DELETE .../Items/.. would delete the map. */
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, c->api_key_sid);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, c->api_key_secret);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &x);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(encoded));
        curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, encoded);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = status;
    res->retry_after_ms = x.retry_after_ms;
    snprintf(res->etag, sizeof res->etag, "%s", x.etag);

    if (rc != CURLE_OK) {
        res->outcome = TWILIO_RETRYABLE;
        if (x.too_big)
            snprintf(res->message, sizeof res->message, "response larger than %d bytes", TWILIO_MAX_BODY);
        else
            snprintf(res->message, sizeof res->message, "%s%s%.200s", curl_easy_strerror(rc), errbuf[0] ? ": " : "",
                     errbuf);
    } else if (status >= 200 && status < 300) {
        res->outcome = TWILIO_OK;
        res->code = 0;
        res->message[0] = '\0';
        if (x.len > 0) {
            res->body = json_loadb(x.body, x.len, 0, NULL);
            if (!res->body) {
                res->outcome = TWILIO_RETRYABLE;
                snprintf(res->message, sizeof res->message, "HTTP %ld with a body that is not JSON", status);
            }
        }
    } else {
        twilio_parse_error(x.body, x.len, status, &res->code, res->message, sizeof res->message);
        res->outcome = twilio_classify(status, res->code);
    }
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    free(x.body);
    free(url);
}

int twilio_request(struct twilio_client *c, enum twilio_product product, const char *method, const char *path,
                   const struct kv_list *params, const char *if_match, struct twilio_result *res)
{
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    struct kv_list none;
    kv_init(&none);
    char *encoded = form_encode(params ? params : &none);
    if (!encoded) {
        res->outcome = TWILIO_RETRYABLE;
        snprintf(res->message, sizeof res->message, "out of memory");
        return -1;
    }
    static const char *const product_names[] = {"video", "sync", "media"};
    for (int attempt = 0;; attempt++) {
        perform_once(c, product, method, path, encoded, if_match, res);
        res->attempts = attempt + 1;
        if (log_enabled(LOG_LEVEL_DEBUG)) {
            char status[16], tries[16];
            snprintf(status, sizeof status, "%ld", res->http_status);
            snprintf(tries, sizeof tries, "%d", res->attempts);
            log_debug("twilio request", "method", method, "product", product_names[product], "path", path, "status",
                      status, "attempt", tries, "outcome", twilio_outcome_name(res->outcome), NULL);
        }
        int retry = res->outcome == TWILIO_RATE_LIMITED || res->outcome == TWILIO_RETRYABLE;
        if (!retry || attempt >= c->max_retries)
            break;
        c->sleep_ms(twilio_backoff_ms(attempt, c->retry_base_ms, c->retry_max_ms, res->retry_after_ms, c->random01()));
    }
    free(encoded);
    return res->outcome == TWILIO_OK ? 0 : -1;
}

void twilio_result_free(struct twilio_result *res)
{
    json_decref(res->body);
    res->body = NULL;
}
