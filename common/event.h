/* The event envelope of stagehand.events: build, serialise, parse, validate.
 *
 *   {"id","type","stream","ts","source","actor"?,"data","v":1}
 *
 * ids are 32 lowercase hex digits: random (OpenSSL) for API requests, or
 * derived from the provider's own fields (SHA-256) for webhooks, so that a
 * retried webhook produces the same id. ts is RFC 3339 with milliseconds.
 * data is checked against schemas/<type>.json, the envelope against
 * schemas/envelope.json. */
#ifndef STAGEHAND_EVENT_H
#define STAGEHAND_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_LEN 32
#define EVENT_TRACEPARENT_LEN 55
#define EVENT_MAX_LEN (64 * 1024) /* longest serialised event accepted */

/* A member of a flat data object (one whose members are all strings,
 * integers, true, false or null) as event_parse found it. name and value
 * are NUL-terminated: a string's characters, an integer's digits, or the
 * literal's word. */
enum event_field_kind { EVENT_FIELD_STRING, EVENT_FIELD_INTEGER, EVENT_FIELD_LITERAL };

struct event_field {
    const char *name;
    const char *value;
    size_t name_len, value_len;
    enum event_field_kind kind;
};

struct event {
    char id[EVENT_ID_LEN + 1];
    char *type;
    char *stream;
    char *source;
    char *actor;    /* NULL when there is none */
    int type_index; /* of type in event_catalogue; -1 when it is not there */
    int64_t ts_ms;
    int v;
    /* data, the type's payload, in one of two forms; read it with
     * event_data, event_data_string and event_data_true, which know both.
     * event_parse gives a flat data object (what stagehand writes) as its
     * fields, without building it: data_json stays NULL until event_data
     * is asked for it. Any other data, and the data given to event_build,
     * is data_json (owned). */
    int data_flat;
    const struct event_field *fields; /* data_flat: data's members, in order */
    size_t nfields;
    json_t *data_json;
    /* When set, type, stream, source, actor and the fields point into this
     * one allocation (event_parse's way); else each is its own. event_free
     * knows both. */
    char *strings;
};

/* The event types of the catalogue: one schemas/<type>.json each (README,
 * "Events"; ARCHITECTURE.md, "Adding an event type"). */
#define EVENT_CATALOGUE_SIZE 16
extern const char *const event_catalogue[EVENT_CATALOGUE_SIZE];
extern const size_t event_catalogue_count; /* EVENT_CATALOGUE_SIZE */

/* The index of type in event_catalogue, or -1 when it is not there. */
int event_type_index(const char *type);

/* A random id. Returns 0, or -1 when the system's random source failed. */
int event_random_id(char out[EVENT_ID_LEN + 1]);

/* An id derived from fields: SHA-256 over each field's length and bytes,
 * truncated to 16 bytes, in hex. Same fields, same id. */
void event_derived_id(const char *const *fields, size_t n, char out[EVENT_ID_LEN + 1]);

/* A fresh W3C traceparent "00-<32 hex>-<16 hex>-01". Returns 0, or -1 when the
 * random source failed. */
int event_traceparent(char out[EVENT_TRACEPARENT_LEN + 1]);

/* Fills ev with a random id, ts = now, v = 1 and copies of the strings; takes
 * data (even on failure). Does not check the event against the schemas:
 * event_encode does, when the event is written. Returns 0, or -1 with the
 * reason in err (and ev left empty). */
int event_build(struct event *ev, const char *type, const char *stream, const char *source, const char *actor,
                json_t *data, char *err, size_t errlen);

/* event_build, then event_validate. Returns 0, or -1 with the reason in err
 * (and ev left empty). */
int event_init(struct event *ev, const char *type, const char *stream, const char *source, const char *actor,
               json_t *data, char *err, size_t errlen);

/* Checks ev against the envelope's and its type's schemas and returns it as
 * compact JSON in envelope order (malloc'd), building the envelope once; the
 * way to write an event that has not been validated. NULL with the reason
 * in err. */
char *event_encode(const struct event *ev, char *err, size_t errlen);

/* event_encode the long way: the envelope built as JSON values, validated
 * and dumped by jansson. event_encode writes the same bytes (it takes a
 * shorter way when no envelope string needs escaping); tests compare them. */
char *event_encode_reference(const struct event *ev, char *err, size_t errlen);

/* Compact JSON in envelope order without a schema check (for events already
 * validated); malloc'd, or NULL when out of memory. */
char *event_serialize(const struct event *ev);

/* Parses and validates a serialised event. Returns 0, or -1 with the reason
 * in err (and out left empty); never crashes on any input. */
int event_parse(const char *buf, size_t len, struct event *out, char *err, size_t errlen);

/* event_parse the long way: the whole envelope as JSON values, through the
 * schemas. event_parse gives the same result (it takes a shorter way for the
 * envelopes stagehand writes); tests compare the two. */
int event_parse_reference(const char *buf, size_t len, struct event *out, char *err, size_t errlen);

/* Validates an event against the envelope and its type's schema. */
int event_validate(const struct event *ev, char *err, size_t errlen);

/* The event's data as JSON (NULL for an event built without data). For a
 * flat parsed event it is built from the fields on the first call and kept
 * with the event: the one thing a call on a const event changes, so not
 * to be called from two threads on one event. The event owns it: neither
 * change nor decref it. NULL also when out of memory. */
json_t *event_data(const struct event *ev);

/* The string member name of data, or NULL when data has no such member or
 * it is not a string. Builds nothing. */
const char *event_data_string(const struct event *ev, const char *name);

/* Data's boolean member name: 1 when true, 0 when false, otherwise when
 * there is no such member or it is not a boolean. Builds nothing. */
int event_data_bool(const struct event *ev, const char *name, int otherwise);

void event_free(struct event *ev);

#endif
