/* The event envelope (see event.h). */
#include "event.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "flatjson.h"
#include "random.h"
#include "schema.h"
#include "timeutil.h"

const char *const event_catalogue[EVENT_CATALOGUE_SIZE] = {
    "stream.create_requested",
    "room.created",
    "room.ended",
    "media.started",
    "media.ended",
    "sync.ready",
    "stream.end_requested",
    "user.joined",
    "viewer.connected",
    "viewer.disconnected",
    "hand.raised",
    "hand.lowered",
    "speaker.invited",
    "speaker.remove_requested",
    "participant.connected",
    "participant.disconnected",
};
const size_t event_catalogue_count = EVENT_CATALOGUE_SIZE;

int event_type_index(const char *type)
{
    if (!type)
        return -1;
    for (int i = 0; i < EVENT_CATALOGUE_SIZE; i++)
        if (event_catalogue[i][0] == type[0] && strcmp(event_catalogue[i], type) == 0)
            return i;
    return -1;
}

int event_random_id(char out[EVENT_ID_LEN + 1])
{
    unsigned char bytes[EVENT_ID_LEN / 2];
    if (random_bytes(bytes, sizeof bytes) < 0)
        return -1;
    hex_encode(bytes, sizeof bytes, out);
    return 0;
}

void event_derived_id(const char *const *fields, size_t n, char out[EVENT_ID_LEN + 1])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        unsigned char len[8];
        uint64_t l = strlen(f);
        for (int b = 0; b < 8; b++)
            len[b] = (unsigned char)(l >> (56 - 8 * b));
        EVP_DigestUpdate(ctx, len, sizeof len);
        EVP_DigestUpdate(ctx, f, l);
    }
    EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    hex_encode(digest, EVENT_ID_LEN / 2, out);
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

int event_traceparent(char out[EVENT_TRACEPARENT_LEN + 1])
{
    unsigned char trace[16], parent[8];
    do {
        if (random_bytes(trace, sizeof trace) < 0 || random_bytes(parent, sizeof parent) < 0)
            return -1;
    } while (all_zero(trace, sizeof trace) || all_zero(parent, sizeof parent));
    char t[33], p[17];
    hex_encode(trace, sizeof trace, t);
    hex_encode(parent, sizeof parent, p);
    snprintf(out, EVENT_TRACEPARENT_LEN + 1, "00-%s-%s-01", t, p);
    return 0;
}

void event_free(struct event *ev)
{
    if (ev->strings) {
        free(ev->strings);
    } else {
        free(ev->type);
        free(ev->stream);
        free(ev->source);
        free(ev->actor);
    }
    json_decref(ev->data_json);
    memset(ev, 0, sizeof *ev);
}

/* Builds the envelope as a JSON object (envelope order). NULL on failure. */
static json_t *to_json(const struct event *ev)
{
    char ts[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(ev->ts_ms, ts);
    json_t *data = event_data(ev);
    if (ev->data_flat && !data)
        return NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = 0;
    rc |= json_object_set_new(o, "id", json_string(ev->id));
    rc |= json_object_set_new(o, "type", json_string(ev->type ? ev->type : ""));
    rc |= json_object_set_new(o, "stream", json_string(ev->stream ? ev->stream : ""));
    rc |= json_object_set_new(o, "ts", json_string(ts));
    rc |= json_object_set_new(o, "source", json_string(ev->source ? ev->source : ""));
    if (ev->actor)
        rc |= json_object_set_new(o, "actor", json_string(ev->actor));
    rc |= json_object_set(o, "data", data ? data : json_null());
    rc |= json_object_set_new(o, "v", json_integer(ev->v));
    if (rc) { /* a string was not valid UTF-8, or out of memory */
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The envelope as compact JSON (malloc'd), or NULL. Most events fit the
 * stack buffer, which spares json_dumps's growing buffer and its copy. */
static char *dump(const json_t *o)
{
    char buf[1024];
    size_t len = json_dumpb(o, buf, sizeof buf, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (len == 0)
        return NULL;
    if (len >= sizeof buf)
        return json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    return strndup(buf, len);
}

static int validate_json(const json_t *o, char *err, size_t errlen)
{
    if (schema_validate("envelope", o, err, errlen) < 0)
        return -1;
    const char *type = json_string_value(json_object_get(o, "type"));
    return schema_validate_at(type, json_object_get(o, "data"), "data", err, errlen);
}

int event_validate(const struct event *ev, char *err, size_t errlen)
{
    json_t *o = to_json(ev);
    if (!o) {
        snprintf(err, errlen, "event has a field that is not valid UTF-8");
        return -1;
    }
    int rc = validate_json(o, err, errlen);
    json_decref(o);
    return rc;
}

static char *copy(const char *s)
{
    return s ? strdup(s) : NULL;
}

int event_build(struct event *ev, const char *type, const char *stream, const char *source, const char *actor,
                json_t *data, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    ev->data_json = data;
    if (event_random_id(ev->id) < 0) {
        snprintf(err, errlen, "cannot make an event id: random source failed");
        event_free(ev);
        return -1;
    }
    ev->type = copy(type);
    ev->stream = copy(stream);
    ev->source = copy(source);
    ev->actor = copy(actor);
    ev->type_index = event_type_index(ev->type);
    ev->ts_ms = time_now_ms();
    ev->v = 1;
    if (!ev->type || !ev->stream || !ev->source || (actor && !ev->actor)) {
        snprintf(err, errlen, "event is missing type, stream or source (or out of memory)");
        event_free(ev);
        return -1;
    }
    return 0;
}

int event_init(struct event *ev, const char *type, const char *stream, const char *source, const char *actor,
               json_t *data, char *err, size_t errlen)
{
    if (event_build(ev, type, stream, source, actor, data, err, errlen) < 0)
        return -1;
    if (event_validate(ev, err, errlen) < 0) {
        event_free(ev);
        return -1;
    }
    return 0;
}

/* The envelope's members, in the order they are written. */
enum { M_ID, M_TYPE, M_STREAM, M_TS, M_SOURCE, M_ACTOR, M_DATA, M_V, M_COUNT };

/* The members given to schema_members_valid are filled field by field
 * (only those their kind reads): a compound literal per member went through
 * a stack copy that cost more than building the rest of the array. Each
 * returns the next slot. */
static struct schema_member *string_member(struct schema_member *m, const char *name, const char *s, size_t len)
{
    m->name = name;
    m->name_len = strlen(name);
    m->kind = SCHEMA_MEMBER_STRING;
    m->str = s;
    m->len = len;
    return m + 1;
}

static struct schema_member *integer_member(struct schema_member *m, const char *name, json_int_t n)
{
    m->name = name;
    m->name_len = strlen(name);
    m->kind = SCHEMA_MEMBER_INTEGER;
    m->integer = n;
    return m + 1;
}

static struct schema_member *json_member(struct schema_member *m, const char *name, const json_t *value)
{
    m->name = name;
    m->name_len = strlen(name);
    m->kind = SCHEMA_MEMBER_JSON;
    m->value = value;
    return m + 1;
}

static struct schema_member *object_member(struct schema_member *m, const char *name,
                                           const struct schema_member *members, size_t n)
{
    m->name = name;
    m->name_len = strlen(name);
    m->kind = SCHEMA_MEMBER_OBJECT;
    m->members = members;
    m->nmembers = n;
    return m + 1;
}

/* 1 when s is written into JSON as it is: printable ASCII without a quote
 * or a backslash. */
static int plain_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s >= 0x7f || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

/* The fast path of event_encode, for events whose envelope strings need no
 * escaping: the members checked as they are, and the envelope written by
 * hand around data's own JSON, byte for byte what the full way writes
 * (tests/unit/test_event.c compares the two). NULL for anything else,
 * valid or not: the full way then decides, and says why. */
static char *encode_flat(const struct event *ev)
{
    json_t *data = event_data(ev);
    if (!ev->type || !ev->stream || !ev->source || !json_is_object(data) || !plain_ascii(ev->id) ||
        !plain_ascii(ev->type) || !plain_ascii(ev->stream) || !plain_ascii(ev->source) ||
        (ev->actor && !plain_ascii(ev->actor)))
        return NULL;
    char ts[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(ev->ts_ms, ts);
    struct schema_member m[M_COUNT], *next = m;
    next = string_member(next, "id", ev->id, strlen(ev->id));
    next = string_member(next, "type", ev->type, strlen(ev->type));
    next = string_member(next, "stream", ev->stream, strlen(ev->stream));
    next = string_member(next, "ts", ts, strlen(ts));
    next = string_member(next, "source", ev->source, strlen(ev->source));
    if (ev->actor)
        next = string_member(next, "actor", ev->actor, strlen(ev->actor));
    next = json_member(next, "data", data);
    next = integer_member(next, "v", ev->v);
    char err[8];
    int valid = schema_members_valid("envelope", m, (size_t)(next - m)) &&
                schema_validate_at(ev->type, data, "data", err, sizeof err) == 0;
    if (!valid)
        return NULL;
    char data_text[1024];
    size_t data_len = json_dumpb(data, data_text, sizeof data_text, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (data_len == 0 || data_len >= sizeof data_text)
        return NULL; /* larger data: the full way */
    char v_text[16];
    snprintf(v_text, sizeof v_text, "%d", ev->v);
    /* The pieces in envelope order; what the full way writes, with no
     * format string to interpret per event. */
    const char *pieces[] = {"{\"id\":\"",
                            ev->id,
                            "\",\"type\":\"",
                            ev->type,
                            "\",\"stream\":\"",
                            ev->stream,
                            "\",\"ts\":\"",
                            ts,
                            "\",\"source\":\"",
                            ev->source,
                            "\"",
                            ev->actor ? ",\"actor\":\"" : "",
                            ev->actor ? ev->actor : "",
                            ev->actor ? "\"" : "",
                            ",\"data\":",
                            NULL /* data */,
                            ",\"v\":",
                            v_text,
                            "}"};
    enum { NPIECES = sizeof pieces / sizeof pieces[0] };
    size_t lengths[NPIECES], total = 0;
    for (size_t i = 0; i < NPIECES; i++) {
        lengths[i] = pieces[i] ? strlen(pieces[i]) : data_len;
        total += lengths[i];
    }
    char *text = malloc(total + 1), *at = text;
    if (!text)
        return NULL;
    for (size_t i = 0; i < NPIECES; i++) {
        memcpy(at, pieces[i] ? pieces[i] : data_text, lengths[i]);
        at += lengths[i];
    }
    *at = '\0';
    return text;
}

char *event_encode(const struct event *ev, char *err, size_t errlen)
{
    char *text = encode_flat(ev);
    return text ? text : event_encode_reference(ev, err, errlen);
}

char *event_encode_reference(const struct event *ev, char *err, size_t errlen)
{
    json_t *o = to_json(ev);
    if (!o) {
        snprintf(err, errlen, "event has a field that is not valid UTF-8 (or out of memory)");
        return NULL;
    }
    char *text = NULL;
    if (validate_json(o, err, errlen) == 0) {
        text = dump(o);
        if (!text)
            snprintf(err, errlen, "out of memory");
    }
    json_decref(o);
    return text;
}

char *event_serialize(const struct event *ev)
{
    json_t *o = to_json(ev);
    if (!o)
        return NULL;
    char *text = dump(o);
    json_decref(o);
    return text;
}

/* --- parsing ------------------------------------------------------------------------------------- */

/* With their lengths, so that most names are told apart without memcmp. */
static const struct {
    const char *s;
    size_t len;
} MEMBER_NAMES[M_COUNT] = {{"id", 2},     {"type", 4},  {"stream", 6}, {"ts", 2},
                           {"source", 6}, {"actor", 5}, {"data", 4},   {"v", 1}};

static int member_index(const struct flatjson_member *m)
{
    for (int i = 0; i < M_COUNT; i++)
        if (MEMBER_NAMES[i].len == m->key_len && MEMBER_NAMES[i].s[0] == m->key[0] &&
            memcmp(MEMBER_NAMES[i].s, m->key, m->key_len) == 0)
            return i;
    return -1;
}

/* Splits the envelope and files each member under its M_* index (actor
 * may be missing). -1 when it is not flat, has an unknown or repeated
 * member, misses one, or one is of a kind the envelope never has. */
static int envelope_members(const char *buf, size_t len, struct flatjson_member members[M_COUNT],
                            const struct flatjson_member *found[M_COUNT])
{
    int n = flatjson_members(buf, len, members, M_COUNT);
    if (n < 0)
        return -1;
    for (int k = 0; k < M_COUNT; k++)
        found[k] = NULL;
    for (int i = 0; i < n; i++) {
        int k = member_index(&members[i]);
        if (k < 0 || found[k])
            return -1; /* unknown or repeated */
        found[k] = &members[i];
    }
    for (int k = 0; k < M_COUNT; k++) {
        enum flatjson_kind want = k == M_V ? FLATJSON_INTEGER : k == M_DATA ? FLATJSON_OTHER : FLATJSON_STRING;
        if (found[k] ? found[k]->kind != want : k != M_ACTOR)
            return -1;
    }
    return 0;
}

_Static_assert(sizeof(json_int_t) == sizeof(long long), "json_int_t is long long");

/* The value of a flatjson integer (-?(0|[1-9][0-9]*)) as jansson reads it.
 * -1 when it does not fit json_int_t: jansson refuses those ("too big
 * integer"), and so does the full parse. */
static int integer_value(const char *s, size_t len, json_int_t *out)
{
    int negative = s[0] == '-';
    unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    unsigned long long n = 0;
    for (size_t i = (size_t)negative; i < len; i++) {
        unsigned digit = (unsigned)(s[i] - '0');
        if (n > (limit - digit) / 10)
            return -1;
        n = n * 10 + digit;
    }
    /* -n without overflowing when n is LLONG_MAX + 1 */
    *out = negative && n ? -(json_int_t)(n - 1) - 1 : (json_int_t)n;
    return 0;
}

#define DATA_MAX_MEMBERS 16

/* The literal (true, false or null) these bytes are, or NULL. The literals
 * are jansson's singletons: nothing to free. */
static json_t *literal(const char *s, size_t len)
{
    if (len == 4 && memcmp(s, "true", 4) == 0)
        return json_true();
    if (len == 5 && memcmp(s, "false", 5) == 0)
        return json_false();
    if (len == 4 && memcmp(s, "null", 4) == 0)
        return json_null();
    return NULL;
}

/* 1 when two members have the same key (jansson, asked to, refuses such
 * an object). */
static int has_duplicate(const struct flatjson_member *m, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (m[i].key_len == m[j].key_len && memcmp(m[i].key, m[j].key, m[i].key_len) == 0)
                return 1;
    return 0;
}

/* Splits data into fm when it is a flat object: every member a string, an
 * integer or a literal, and no key twice. The number of members, or -1
 * when it is not (jansson then parses it, and refuses what is not JSON). */
static int flat_data_members(const struct flatjson_member *data, struct flatjson_member fm[DATA_MAX_MEMBERS])
{
    int n = flatjson_members(data->value, data->value_len, fm, DATA_MAX_MEMBERS);
    if (n < 0 || has_duplicate(fm, n))
        return -1;
    for (int i = 0; i < n; i++)
        if (fm[i].kind == FLATJSON_OTHER && !literal(fm[i].value, fm[i].value_len))
            return -1;
    return n;
}

static char *copy_bytes(char *at, const char *s, size_t len)
{
    memcpy(at, s, len);
    at[len] = '\0';
    return at + len + 1;
}

/* Copies type, stream, source and actor (when there is one), and data's
 * flat members (nfm of them) as the event's fields, into one allocation:
 * the fields first, then the strings. One malloc per event. */
static int copy_strings(struct event *out, const struct flatjson_member *const found[M_COUNT],
                        const struct flatjson_member *fm, size_t nfm)
{
    static const int which[] = {M_TYPE, M_STREAM, M_SOURCE, M_ACTOR};
    char **envelope[] = {&out->type, &out->stream, &out->source, &out->actor};
    size_t total = nfm * sizeof(struct event_field);
    for (size_t i = 0; i < 4; i++)
        if (found[which[i]])
            total += found[which[i]]->value_len + 1;
    for (size_t i = 0; i < nfm; i++)
        total += fm[i].key_len + 1 + fm[i].value_len + 1;
    char *block = malloc(total);
    if (!block)
        return -1;
    struct event_field *fields = (struct event_field *)(void *)block; /* malloc's alignment suits any type */
    char *at = block + nfm * sizeof *fields;
    for (size_t i = 0; i < 4; i++) {
        const struct flatjson_member *m = found[which[i]];
        if (m) {
            *envelope[i] = at;
            at = copy_bytes(at, m->value, m->value_len);
        }
    }
    for (size_t i = 0; i < nfm; i++) {
        struct event_field *f = &fields[i];
        f->name = at;
        f->name_len = fm[i].key_len;
        at = copy_bytes(at, fm[i].key, fm[i].key_len);
        f->value = at;
        f->value_len = fm[i].value_len;
        at = copy_bytes(at, fm[i].value, fm[i].value_len);
        f->kind = fm[i].kind == FLATJSON_STRING    ? EVENT_FIELD_STRING
                  : fm[i].kind == FLATJSON_INTEGER ? EVENT_FIELD_INTEGER
                                                   : EVENT_FIELD_LITERAL;
    }
    out->strings = block;
    out->fields = fields;
    out->nfields = nfm;
    return 0;
}

/* The fields described for the schema, as json_loadb would make them: -1
 * when an integer does not fit json_int_t (jansson refuses it, and so does
 * the full parse). */
static int field_members(const struct event *ev, struct schema_member sm[DATA_MAX_MEMBERS])
{
    for (size_t i = 0; i < ev->nfields; i++) {
        const struct event_field *f = &ev->fields[i];
        sm[i].name = f->name;
        sm[i].name_len = f->name_len;
        if (f->kind == EVENT_FIELD_STRING) {
            sm[i].kind = SCHEMA_MEMBER_STRING;
            sm[i].str = f->value;
            sm[i].len = f->value_len;
        } else if (f->kind == EVENT_FIELD_INTEGER) {
            sm[i].kind = SCHEMA_MEMBER_INTEGER;
            if (integer_value(f->value, f->value_len, &sm[i].integer) < 0)
                return -1;
        } else {
            sm[i].kind = SCHEMA_MEMBER_JSON;
            sm[i].value = literal(f->value, f->value_len);
        }
    }
    return 0;
}

/* data, when it is not flat, parsed by jansson and checked against the
 * type's schema. -1 when not valid (or out of memory). */
static int parse_data(const char *type, const struct flatjson_member *data, json_t **out)
{
    *out = json_loadb(data->value, data->value_len, JSON_REJECT_DUPLICATES, NULL);
    char err[8];
    if (!*out || schema_validate_at(type, *out, "data", err, sizeof err) < 0) {
        json_decref(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* The fast path of event_parse, for envelopes as stagehand writes them:
 * flatjson splits the envelope without building it, data is kept as its
 * fields when it is flat too (parsed by jansson when not), and the schemas
 * check the members as they are. It accepts only what the full parse
 * accepts, with the same result (tests/unit/test_event.c and the fuzzer
 * compare the two), and says -1 for anything else, valid or not: the full
 * parse then decides. */
static int parse_flat(const char *buf, size_t len, struct event *out)
{
    struct flatjson_member members[M_COUNT];
    const struct flatjson_member *found[M_COUNT];
    if (envelope_members(buf, len, members, found) < 0)
        return -1;
    char ts[64];
    json_int_t v;
    if (found[M_ID]->value_len != EVENT_ID_LEN || found[M_TS]->value_len >= sizeof ts ||
        found[M_DATA]->value[0] != '{' || integer_value(found[M_V]->value, found[M_V]->value_len, &v) < 0)
        return -1;
    struct flatjson_member fm[DATA_MAX_MEMBERS];
    int nfm = flat_data_members(found[M_DATA], fm);
    memcpy(out->id, found[M_ID]->value, EVENT_ID_LEN);
    out->id[EVENT_ID_LEN] = '\0';
    memcpy(ts, found[M_TS]->value, found[M_TS]->value_len);
    ts[found[M_TS]->value_len] = '\0';
    if (copy_strings(out, found, fm, nfm < 0 ? 0 : (size_t)nfm) < 0)
        return -1;
    struct schema_member data[DATA_MAX_MEMBERS];
    int ok;
    if (nfm >= 0) {
        out->data_flat = 1;
        ok = field_members(out, data) == 0 && schema_members_valid(out->type, data, out->nfields);
    } else {
        ok = parse_data(out->type, found[M_DATA], &out->data_json) == 0;
    }
    if (ok) {
        struct schema_member m[M_COUNT], *at = m;
        at = string_member(at, "id", out->id, EVENT_ID_LEN);
        at = string_member(at, "type", out->type, found[M_TYPE]->value_len);
        at = string_member(at, "stream", out->stream, found[M_STREAM]->value_len);
        at = string_member(at, "ts", ts, found[M_TS]->value_len);
        at = string_member(at, "source", out->source, found[M_SOURCE]->value_len);
        if (out->actor)
            at = string_member(at, "actor", out->actor, found[M_ACTOR]->value_len);
        at = out->data_flat ? object_member(at, "data", data, out->nfields) : json_member(at, "data", out->data_json);
        at = integer_member(at, "v", v);
        ok = schema_members_valid("envelope", m, (size_t)(at - m));
    }
    if (ok) {
        out->v = (int)v;
        out->type_index = event_type_index(out->type);
        time_parse_rfc3339(ts, &out->ts_ms); /* validated above */
        ok = out->ts_ms >= 0;
    }
    if (!ok) {
        event_free(out);
        return -1;
    }
    return 0;
}

/* The full parse: the whole envelope through jansson and the schemas. */
int event_parse_reference(const char *buf, size_t len, struct event *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > EVENT_MAX_LEN) {
        snprintf(err, errlen, "event larger than %d bytes", EVENT_MAX_LEN);
        return -1;
    }
    json_error_t jerr;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        snprintf(err, errlen, "event is not valid JSON (position %d: %s)", jerr.position, jerr.text);
        return -1;
    }
    if (validate_json(o, err, errlen) < 0) {
        json_decref(o);
        return -1;
    }
    int64_t ts;
    time_parse_rfc3339(json_string_value(json_object_get(o, "ts")), &ts); /* validated above */
    if (ts < 0) {
        /* Before 1970: a valid RFC 3339 time, but not one an event can carry
         * (found by fuzzing: it could not be written back out). */
        json_decref(o);
        snprintf(err, errlen, "ts: must not be before 1970");
        return -1;
    }
    memcpy(out->id, json_string_value(json_object_get(o, "id")), EVENT_ID_LEN + 1);
    out->type = copy(json_string_value(json_object_get(o, "type")));
    out->stream = copy(json_string_value(json_object_get(o, "stream")));
    out->source = copy(json_string_value(json_object_get(o, "source")));
    out->actor = copy(json_string_value(json_object_get(o, "actor")));
    out->type_index = event_type_index(out->type);
    out->ts_ms = ts;
    out->v = (int)json_integer_value(json_object_get(o, "v"));
    out->data_json = json_incref(json_object_get(o, "data"));
    int actor_lost = json_object_get(o, "actor") && !out->actor;
    json_decref(o);
    if (!out->type || !out->stream || !out->source || actor_lost) {
        event_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int event_parse(const char *buf, size_t len, struct event *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len <= EVENT_MAX_LEN && parse_flat(buf, len, out) == 0)
        return 0;
    return event_parse_reference(buf, len, out, err, errlen);
}

/* --- reading data ------------------------------------------------------------------------------ */

static const struct event_field *find_field(const struct event *ev, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < ev->nfields; i++)
        if (ev->fields[i].name_len == len && memcmp(ev->fields[i].name, name, len) == 0)
            return &ev->fields[i];
    return NULL;
}

/* A field as the JSON value json_loadb makes of it (flat strings are
 * printable ASCII without escapes: valid UTF-8 as they are). */
static json_t *field_json(const struct event_field *f)
{
    json_int_t n;
    switch (f->kind) {
    case EVENT_FIELD_STRING:
        return json_stringn_nocheck(f->value, f->value_len);
    case EVENT_FIELD_INTEGER:
        return integer_value(f->value, f->value_len, &n) == 0 ? json_integer(n) : NULL;
    case EVENT_FIELD_LITERAL:
        return literal(f->value, f->value_len);
    }
    return NULL;
}

json_t *event_data(const struct event *ev)
{
    if (!ev->data_flat || ev->data_json)
        return ev->data_json;
    json_t *o = json_object();
    for (size_t i = 0; o && i < ev->nfields; i++) {
        const struct event_field *f = &ev->fields[i];
        /* takes the value, even on failure */
        if (json_object_setn_new_nocheck(o, f->name, f->name_len, field_json(f)) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    /* Kept for the next call: the event is never defined const, only
     * handed round as const (event.h). */
    ((struct event *)ev)->data_json = o;
    return o;
}

const char *event_data_string(const struct event *ev, const char *name)
{
    if (!ev->data_flat)
        return json_string_value(json_object_get(ev->data_json, name));
    const struct event_field *f = find_field(ev, name);
    return f && f->kind == EVENT_FIELD_STRING ? f->value : NULL;
}

int event_data_bool(const struct event *ev, const char *name, int otherwise)
{
    if (!ev->data_flat) {
        const json_t *v = json_object_get(ev->data_json, name);
        return json_is_boolean(v) ? json_is_true(v) : otherwise;
    }
    const struct event_field *f = find_field(ev, name);
    if (!f || f->kind != EVENT_FIELD_LITERAL || strcmp(f->value, "null") == 0)
        return otherwise;
    return strcmp(f->value, "true") == 0;
}
