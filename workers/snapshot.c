/* Checkpoint records: keys, chunking and reassembly (see snapshot.h). */
#include "snapshot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header naming more chunks than this is not believed (2 GB at 512 KB). */
#define SNAPSHOT_MAX_CHUNKS 4096

int snapshot_key(char *buf, size_t size, const char *role, int32_t partition, long chunk)
{
    int n = chunk < 0 ? snprintf(buf, size, SNAPSHOT_KEY_PREFIX "%s/%d", role, (int)partition)
                      : snprintf(buf, size, SNAPSHOT_KEY_PREFIX "%s/%d/%ld", role, (int)partition, chunk);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int snapshot_is_key(const char *key, size_t key_len)
{
    size_t plen = strlen(SNAPSHOT_KEY_PREFIX);
    return key && key_len >= plen && memcmp(key, SNAPSHOT_KEY_PREFIX, plen) == 0;
}

/* Parses a decimal number of s[0..len): 0 with *out, or -1. */
static int parse_number(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int snapshot_parse_key(const char *key, size_t key_len, const char *role, int32_t *partition, long *chunk)
{
    size_t plen = strlen(SNAPSHOT_KEY_PREFIX), rlen = strlen(role);
    if (!snapshot_is_key(key, key_len) || key_len < plen + rlen + 2 || memcmp(key + plen, role, rlen) != 0 ||
        key[plen + rlen] != '/')
        return 0;
    const char *rest = key + plen + rlen + 1;
    size_t rest_len = key_len - plen - rlen - 1;
    const char *slash = memchr(rest, '/', rest_len);
    long p, k = -1;
    if (parse_number(rest, slash ? (size_t)(slash - rest) : rest_len, &p) < 0)
        return 0;
    if (slash && parse_number(slash + 1, rest_len - (size_t)(slash - rest) - 1, &k) < 0)
        return 0;
    *partition = (int32_t)p;
    *chunk = k;
    return 1;
}

void snapshot_records_free(struct snapshot_records *r)
{
    for (size_t i = 0; r->chunks && i < r->count; i++)
        free(r->chunks[i]);
    free(r->chunks);
    free(r->chunk_lens);
    free(r->header);
    memset(r, 0, sizeof *r);
}

int snapshot_encode(const char *role, int32_t partition, int64_t generation, const json_t *streams, size_t max_bytes,
                    int64_t ts_ms, struct snapshot_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_array(streams) || max_bytes < 1) {
        snprintf(err, errlen, "not an array of streams, or no room for a chunk");
        return -1;
    }
    char *text = json_dumps(streams, JSON_COMPACT);
    if (!text) {
        snprintf(err, errlen, "out of memory encoding a checkpoint");
        return -1;
    }
    size_t total = strlen(text);
    size_t n = total == 0 ? 1 : (total + max_bytes - 1) / max_bytes;
    if (n > SNAPSHOT_MAX_CHUNKS) {
        snprintf(err, errlen, "checkpoint too big: %zu bytes", total);
        free(text);
        return -1;
    }
    out->chunks = calloc(n, sizeof *out->chunks);
    out->chunk_lens = calloc(n, sizeof *out->chunk_lens);
    if (!out->chunks || !out->chunk_lens)
        goto oom;
    out->count = n;
    for (size_t k = 0; k < n; k++) {
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "{\"v\":%d,\"role\":\"%s\",\"partition\":%d,\"generation\":%" PRId64 ",\"chunk\":%zu}\n",
                          SNAPSHOT_VERSION, role, (int)partition, generation, k);
        if (hl < 0 || (size_t)hl >= sizeof head) {
            snprintf(err, errlen, "role name too long");
            free(text);
            snapshot_records_free(out);
            return -1;
        }
        size_t from = k * max_bytes, len = total - from < max_bytes ? total - from : max_bytes;
        char *v = malloc((size_t)hl + len + 1);
        if (!v)
            goto oom;
        memcpy(v, head, (size_t)hl);
        memcpy(v + hl, text + from, len);
        v[(size_t)hl + len] = '\0';
        out->chunks[k] = v;
        out->chunk_lens[k] = (size_t)hl + len;
    }
    json_t *header = json_pack("{s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:I}", "v", SNAPSHOT_VERSION, "role", role,
                               "partition", (int)partition, "generation", (json_int_t)generation, "chunks",
                               (json_int_t)n, "bytes", (json_int_t)total, "streams",
                               (json_int_t)json_array_size(streams), "ts", (json_int_t)ts_ms);
    out->header = header ? json_dumps(header, JSON_COMPACT) : NULL;
    json_decref(header);
    if (!out->header)
        goto oom;
    free(text);
    return 0;
oom:
    snprintf(err, errlen, "out of memory encoding a checkpoint");
    free(text);
    snapshot_records_free(out);
    return -1;
}

void snapshot_parts_init(struct snapshot_parts *p)
{
    memset(p, 0, sizeof *p);
}

void snapshot_parts_free(struct snapshot_parts *p)
{
    for (long i = 0; p->data && i < p->cap; i++)
        free(p->data[i]);
    free(p->data);
    free(p->lens);
    free(p->generations);
    memset(p, 0, sizeof *p);
}

static int parts_grow(struct snapshot_parts *p, long index)
{
    if (index < p->cap)
        return 0;
    long cap = p->cap ? p->cap : 4;
    while (cap <= index)
        cap *= 2;
    char **data = realloc(p->data, (size_t)cap * sizeof *data);
    if (!data)
        return -1;
    p->data = data;
    size_t *lens = realloc(p->lens, (size_t)cap * sizeof *lens);
    if (!lens)
        return -1;
    p->lens = lens;
    int64_t *gens = realloc(p->generations, (size_t)cap * sizeof *gens);
    if (!gens)
        return -1;
    p->generations = gens;
    for (long i = p->cap; i < cap; i++) {
        p->data[i] = NULL;
        p->lens[i] = 0;
        p->generations[i] = -1;
    }
    p->cap = cap;
    return 0;
}

int snapshot_parts_offer(struct snapshot_parts *p, long chunk, const char *value, size_t len)
{
    if (chunk < 0) {
        p->have_header = 0;
        if (!value)
            return 0;
        json_t *h = json_loadb(value, len, 0, NULL);
        json_t *v = json_object_get(h, "v"), *gen = json_object_get(h, "generation"), *n = json_object_get(h, "chunks");
        int ok = json_is_integer(v) && json_is_integer(gen) && json_is_integer(n) && json_integer_value(n) >= 1 &&
                 json_integer_value(n) <= SNAPSHOT_MAX_CHUNKS && json_integer_value(gen) >= 0;
        if (ok) {
            p->have_header = 1;
            p->version = (int)json_integer_value(v);
            p->generation = json_integer_value(gen);
            p->chunks = (long)json_integer_value(n);
        }
        json_decref(h);
        return ok ? 0 : -1;
    }
    if (chunk >= SNAPSHOT_MAX_CHUNKS)
        return -1;
    if (parts_grow(p, chunk) < 0)
        return -1;
    free(p->data[chunk]);
    p->data[chunk] = NULL;
    p->lens[chunk] = 0;
    p->generations[chunk] = -1;
    if (!value)
        return 0;
    const char *nl = memchr(value, '\n', len);
    json_t *h = nl ? json_loadb(value, (size_t)(nl - value), 0, NULL) : NULL;
    json_t *gen = json_object_get(h, "generation"), *k = json_object_get(h, "chunk");
    int ok = json_is_integer(gen) && json_is_integer(k) && json_integer_value(k) == chunk;
    int64_t g = ok ? json_integer_value(gen) : -1;
    json_decref(h);
    if (!ok)
        return -1;
    size_t body = len - (size_t)(nl + 1 - value);
    char *copy = malloc(body ? body : 1);
    if (!copy)
        return -1;
    memcpy(copy, nl + 1, body);
    p->data[chunk] = copy;
    p->lens[chunk] = body;
    p->generations[chunk] = g;
    return 0;
}

json_t *snapshot_parts_decode(const struct snapshot_parts *p, int64_t *generation, char *why, size_t whylen)
{
    if (!p->have_header) {
        snprintf(why, whylen, "no checkpoint");
        return NULL;
    }
    if (p->version != SNAPSHOT_VERSION) {
        snprintf(why, whylen, "checkpoint format %d unknown (this build reads %d)", p->version, SNAPSHOT_VERSION);
        return NULL;
    }
    size_t total = 0;
    for (long k = 0; k < p->chunks; k++) {
        if (k >= p->cap || !p->data[k] || p->generations[k] != p->generation) {
            snprintf(why, whylen, "chunk %ld of the checkpoint missing", k);
            return NULL;
        }
        total += p->lens[k];
    }
    char *text = malloc(total + 1);
    if (!text) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    size_t at = 0;
    for (long k = 0; k < p->chunks; k++) {
        memcpy(text + at, p->data[k], p->lens[k]);
        at += p->lens[k];
    }
    json_error_t jerr;
    json_t *streams = json_loadb(text, total, 0, &jerr);
    free(text);
    if (!json_is_array(streams)) {
        snprintf(why, whylen, "checkpoint unreadable: %s", streams ? "not an array" : jerr.text);
        json_decref(streams);
        return NULL;
    }
    *generation = p->generation;
    return streams;
}
