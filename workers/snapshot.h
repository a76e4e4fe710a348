/* Checkpoints of a role's partition in stagehand.state (issue 20), as
 * records: the keys, the chunking of one checkpoint into bounded records,
 * and putting a checkpoint back together from what a reader of the topic
 * met. No Kafka, no clock: tests/unit/test_snapshot.c covers it.
 *
 * A checkpoint is the folded state of every stream of one partition of
 * stagehand.events for one role, as of an offset X (its generation): every
 * event below X folded, none at or above it. Its content is one JSON array
 * (one object per stream, worker.c and the role say what is in it), whose
 * compact text is cut into chunks of at most max_bytes:
 *
 *   key   "#checkpoint/<role>/<partition>/<k>"   (k = 0, 1, ...)
 *   value {"v":1,"role":..,"partition":..,"generation":X,"chunk":k}\n<bytes>
 *
 * followed by the header record, produced after its chunks:
 *
 *   key   "#checkpoint/<role>/<partition>"
 *   value {"v":1,"role":..,"partition":..,"generation":X,"chunks":n,
 *          "bytes":total,"streams":count,"ts":ms}
 *
 * Stream names cannot contain '#' (common/text.c), so no key of a stream's
 * record ("<stream>/<role>") is ever one of these; a chunk's value is not
 * JSON, and the header has no "stream" field, so readers of stream records
 * pass them by. A reader takes a checkpoint only when its header's version
 * is SNAPSHOT_VERSION and chunks 0..n-1 all carry the header's generation
 * (a chunk of an earlier, bigger checkpoint has another generation and is
 * ignored); anything else means no checkpoint (a full re-read). */
#ifndef STAGEHAND_WORKER_SNAPSHOT_H
#define STAGEHAND_WORKER_SNAPSHOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_VERSION 1
#define SNAPSHOT_KEY_PREFIX "#checkpoint/"
/* Kafka's default max.message.bytes is 1 MB: a chunk stays well inside. */
#define SNAPSHOT_CHUNK_BYTES (512 * 1024)
#define SNAPSHOT_KEY_MAX 128

/* Writes the key of a checkpoint's header (chunk < 0) or of chunk k.
 * Returns 0, or -1 when it does not fit. */
int snapshot_key(char *buf, size_t size, const char *role, int32_t partition, long chunk);

/* Parses a state record's key: 1 when it is a checkpoint key of role, with
 * *partition and *chunk (-1: the header); 0 when it is some other key. */
int snapshot_parse_key(const char *key, size_t key_len, const char *role, int32_t *partition, long *chunk);

/* 1 when the key is any checkpoint key (any role). */
int snapshot_is_key(const char *key, size_t key_len);

/* One checkpoint as records to produce: chunks first, then the header. */
struct snapshot_records {
    char **chunks; /* values, NUL-terminated (no NUL inside: the text is JSON) */
    size_t *chunk_lens;
    size_t count;
    char *header;
};

/* Cuts streams (a JSON array) into records. Returns 0, or -1 with err. */
int snapshot_encode(const char *role, int32_t partition, int64_t generation, const json_t *streams, size_t max_bytes,
                    int64_t ts_ms, struct snapshot_records *out, char *err, size_t errlen);

void snapshot_records_free(struct snapshot_records *r);

/* What a reader of stagehand.state met of one partition's checkpoint
 * records (the latest value of each key). */
struct snapshot_parts {
    int have_header;
    int version;
    int64_t generation;
    long chunks; /* the header's chunk count */
    char **data; /* per chunk index: its bytes (NULL: none or removed) */
    size_t *lens;
    int64_t *generations; /* per chunk index */
    long cap;
};

void snapshot_parts_init(struct snapshot_parts *p);
void snapshot_parts_free(struct snapshot_parts *p);

/* Takes one record of the partition (chunk < 0: the header; value NULL: a
 * null record). Returns 0, or -1 when the value is malformed or memory ran
 * out (the record is then as if removed). */
int snapshot_parts_offer(struct snapshot_parts *p, long chunk, const char *value, size_t len);

/* The checkpoint, when complete and of a known version: the streams array
 * (new reference) and *generation. NULL otherwise, with why. */
json_t *snapshot_parts_decode(const struct snapshot_parts *p, int64_t *generation, char *why, size_t whylen);

#endif
