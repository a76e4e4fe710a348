/* X-Twilio-Signature computation and validation (see signature.h). */
#include "signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "form.h"
#include "secure.h"

#define MAX_URL_LEN 8192

/* A growable byte buffer for the signed string. */
struct buf {
    char *data;
    size_t len, cap;
};

static int buf_append(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int compare_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Orders pairs by name, then by value, bytewise. */
static int compare_pairs(const void *x, const void *y)
{
    const struct kv_pair *a = *(const struct kv_pair *const *)x;
    const struct kv_pair *b = *(const struct kv_pair *const *)y;
    int c = compare_bytes(a->name, a->name_len, b->name, b->name_len);
    return c ? c : compare_bytes(a->value, a->value_len, b->value, b->value_len);
}

static void hmac_sha1_base64(const char *key, const char *data, size_t len, char out[SIGNATURE_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)data, len, mac, &mac_len);
    base64_encode(mac, mac_len, out);
}

int signature_compute(const char *auth_token, const char *url, const struct kv_list *params,
                      char out[SIGNATURE_LEN + 1])
{
    struct buf b = {0};
    size_t n = params ? params->len : 0;
    const struct kv_pair **sorted = NULL;
    int rc = -1;

    if (buf_append(&b, url, strlen(url)) < 0)
        goto done;
    if (n > 0) {
        sorted = malloc(n * sizeof *sorted);
        if (!sorted)
            goto done;
        for (size_t i = 0; i < n; i++)
            sorted[i] = &params->items[i];
        qsort(sorted, n, sizeof *sorted, compare_pairs);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && compare_pairs(&sorted[i - 1], &sorted[i]) == 0)
                continue; /* a repeated name=value counts once */
            if (buf_append(&b, sorted[i]->name, sorted[i]->name_len) < 0 ||
                buf_append(&b, sorted[i]->value, sorted[i]->value_len) < 0)
                goto done;
        }
    }
    hmac_sha1_base64(auth_token, b.data, b.len, out);
    rc = 0;
done:
    free(sorted);
    free(b.data);
    return rc;
}

/* The parts of "scheme://authority/rest" that the port variants need. */
struct url_parts {
    const char *scheme_end; /* points at "://" */
    const char *host_start; /* after "://" and any userinfo */
    const char *port_colon; /* ':' before the port, or NULL */
    const char *rest;       /* '/', '?', '#' or the end */
};

static int split_url(const char *url, struct url_parts *p)
{
    p->scheme_end = strstr(url, "://");
    if (!p->scheme_end || p->scheme_end == url)
        return -1;
    const char *authority = p->scheme_end + 3;
    p->rest = authority + strcspn(authority, "/?#");
    const char *at = memchr(authority, '@', (size_t)(p->rest - authority));
    p->host_start = at ? at + 1 : authority;
    p->port_colon = NULL;
    const char *h = p->host_start;
    if (*h == '[') { /* IPv6 literal: the port colon comes after ']' */
        const char *close = memchr(h, ']', (size_t)(p->rest - h));
        if (!close)
            return -1;
        h = close;
    }
    const char *colon = memchr(h, ':', (size_t)(p->rest - h));
    if (colon)
        p->port_colon = colon;
    return p->host_start < p->rest ? 0 : -1;
}

static const char *default_port(const char *url, const struct url_parts *p)
{
    size_t len = (size_t)(p->scheme_end - url);
    if (len == 5 && strncmp(url, "https", 5) == 0)
        return "443";
    if (len == 4 && strncmp(url, "http", 4) == 0)
        return "80";
    return NULL;
}

/* Writes the URL variant (0 = as given, 1 = without port, 2 = with default
 * port) into out. Returns 0, or -1 when the variant does not apply. */
static int url_variant(const char *url, int variant, char *out, size_t outlen)
{
    struct url_parts p;
    if (split_url(url, &p) < 0)
        return variant == 0 && strlen(url) < outlen ? (strcpy(out, url), 0) : -1;
    size_t head;
    switch (variant) {
    case 0:
        if (strlen(url) >= outlen)
            return -1;
        strcpy(out, url);
        return 0;
    case 1:
        if (!p.port_colon)
            return -1;
        head = (size_t)(p.port_colon - url);
        if (head + strlen(p.rest) >= outlen)
            return -1;
        memcpy(out, url, head);
        strcpy(out + head, p.rest);
        return 0;
    case 2: {
        const char *port = default_port(url, &p);
        if (p.port_colon || !port)
            return -1;
        head = (size_t)(p.rest - url);
        if (head + 1 + strlen(port) + strlen(p.rest) >= outlen)
            return -1;
        memcpy(out, url, head);
        out[head] = ':';
        strcpy(out + head + 1, port);
        strcat(out, p.rest);
        return 0;
    }
    }
    return -1;
}

static int header_shape_ok(const char *header_value)
{
    return header_value && strlen(header_value) == SIGNATURE_LEN;
}

int signature_valid(const char *auth_token, const char *url, const struct kv_list *params, const char *header_value)
{
    if (!auth_token || !url || !header_shape_ok(header_value) || strlen(url) >= MAX_URL_LEN)
        return 0;
    char variant[MAX_URL_LEN + 16];
    int valid = 0;
    for (int v = 0; v < 3; v++) {
        char expected[SIGNATURE_LEN + 1];
        if (url_variant(url, v, variant, sizeof variant) < 0)
            continue;
        if (signature_compute(auth_token, variant, params, expected) < 0)
            return 0;
        /* No early exit: every variant is checked the same way. */
        valid |= secure_equal(expected, SIGNATURE_LEN, header_value, SIGNATURE_LEN);
    }
    return valid;
}

/* Finds bodySHA256 in the URL's query; copies its decoded value into out. */
static int query_body_hash(const char *url, char *out, size_t outlen)
{
    const char *q = strchr(url, '?');
    if (!q)
        return -1;
    size_t qlen = strcspn(q + 1, "#");
    struct kv_list pairs;
    kv_init(&pairs);
    char err[128];
    int rc = -1;
    if (form_parse(q + 1, qlen, &pairs, err, sizeof err) == 0) {
        const struct kv_pair *p = kv_find(&pairs, "bodySHA256");
        if (p && p->value_len < outlen) {
            memcpy(out, p->value, p->value_len + 1);
            rc = 0;
        }
    }
    kv_free(&pairs);
    return rc;
}

int signature_valid_json(const char *auth_token, const char *url, const char *body, size_t body_len,
                         const char *header_value)
{
    char claimed[2 * SHA256_DIGEST_LENGTH + 1];
    if (!url || query_body_hash(url, claimed, sizeof claimed) < 0)
        return 0;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char actual[2 * SHA256_DIGEST_LENGTH + 1];
    SHA256((const unsigned char *)(body ? body : ""), body ? body_len : 0, digest);
    hex_encode(digest, sizeof digest, actual);
    int body_ok = secure_equal(actual, strlen(actual), claimed, strlen(claimed));
    int sig_ok = signature_valid(auth_token, url, NULL, header_value);
    return body_ok && sig_ok;
}
