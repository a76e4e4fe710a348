/* Unit tests for common/event: round trips, every catalogue type, ids,
 * traceparent, and a bad-envelope matrix that must never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "timeutil.h"

#define RM "RM0123456789abcdef0123456789abcdef"
#define PA "PA0123456789abcdef0123456789abcdef"

/* A valid data example for each catalogue type. */
static const char *example_data(const char *type)
{
    static const struct {
        const char *type, *data;
    } examples[] = {
        {"stream.create_requested", "{\"host\":\"alice\"}"},
        {"room.created", "{\"room_sid\":\"" RM "\"}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":42}"},
        {"media.started", "{\"player_streamer_sid\":\"VJ0123456789abcdef0123456789abcdef\","
                          "\"media_processor_sid\":\"ZX0123456789abcdef0123456789abcdef\"}"},
        {"media.ended", "{\"reason\":\"ended-via-api\"}"},
        {"sync.ready", "{\"service_sid\":\"IS0123456789abcdef0123456789abcdef\"}"},
        {"stream.end_requested", "{\"reason\":\"host_left\"}"},
        {"user.joined", "{\"identity\":\"Zo\\u00eb\",\"role\":\"viewer\"}"},
        {"viewer.connected", "{\"identity\":\"bob\"}"},
        {"viewer.disconnected", "{\"identity\":\"bob\"}"},
        {"hand.raised", "{\"identity\":\"bob\"}"},
        {"hand.lowered", "{\"identity\":\"bob\"}"},
        {"speaker.invited", "{\"identity\":\"bob\"}"},
        {"speaker.remove_requested", "{\"identity\":\"bob\"}"},
        {"participant.connected", "{\"identity\":\"bob\",\"participant_sid\":\"" PA "\",\"room_sid\":\"" RM
                                  "\",\"timestamp\":\"2026-11-23T22:59:01.123Z\"}"},
        {"participant.disconnected", "{\"identity\":\"bob\",\"participant_sid\":\"" PA "\",\"room_sid\":\"" RM
                                     "\",\"timestamp\":\"2026-11-23T22:59:01Z\",\"duration_s\":7}"},
    };
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++)
        if (strcmp(examples[i].type, type) == 0)
            return examples[i].data;
    return NULL;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct event ev, back;
    char err[256];
    assert_int_equal(event_init(&ev, "hand.raised", "friday townhall", "api", "bob",
                                json_pack("{s:s}", "identity", "bob"), err, sizeof err),
                     0);
    char *text = event_serialize(&ev);
    assert_non_null(text);
    assert_int_equal(strncmp(text, "{\"id\":\"", 7), 0);
    assert_int_equal(event_parse(text, strlen(text), &back, err, sizeof err), 0);
    assert_string_equal(back.id, ev.id);
    assert_string_equal(back.type, "hand.raised");
    assert_string_equal(back.stream, "friday townhall");
    assert_string_equal(back.source, "api");
    assert_string_equal(back.actor, "bob");
    assert_int_equal(back.ts_ms, ev.ts_ms);
    assert_int_equal(back.v, 1);
    assert_true(json_equal(event_data(&back), event_data(&ev)));
    /* ts is written with milliseconds. */
    const char *ts = strstr(text, "\"ts\":\"") + 6;
    assert_int_equal(strcspn(ts, "\""), RFC3339_MS_LEN);
    assert_int_equal(ts[19], '.');
    free(text);
    event_free(&ev);
    event_free(&back);
}

static void test_every_catalogue_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < event_catalogue_count; i++) {
        const char *type = event_catalogue[i];
        const char *data = example_data(type);
        if (!data)
            fail_msg("no example for %s", type);
        char text[2048], err[256];
        snprintf(text, sizeof text,
                 "{\"id\":\"0123456789abcdef0123456789abcdef\",\"type\":\"%s\",\"stream\":\"s1\","
                 "\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"rooms-webhook\",\"data\":%s,\"v\":1}",
                 type, data);
        struct event ev;
        if (event_parse(text, strlen(text), &ev, err, sizeof err) != 0)
            fail_msg("%s: %s", type, err);
        assert_null(ev.actor);
        event_free(&ev);
    }
}

static void assert_parsers_agree(const char *text, size_t len);

struct bad_case {
    const char *what;
    const char *text;
};

#define ENV(fields) "{\"id\":\"0123456789abcdef0123456789abcdef\"," fields "}"
#define OK_REST "\"stream\":\"s1\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"v\":1"

static void test_bad_envelopes(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"not JSON", "hello"},
        {"truncated", "{\"id\":\"0123"},
        {"array", "[1,2]"},
        {"empty", ""},
        {"no id", "{\"type\":\"hand.raised\"," OK_REST ",\"data\":{\"identity\":\"b\"}}"},
        {"no type", ENV(OK_REST ",\"data\":{}")},
        {"no stream",
         ENV("\"type\":\"hand.raised\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"no ts",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"source\":\"api\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"no source",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"no data", ENV("\"type\":\"hand.raised\"," OK_REST)},
        {"no v",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"data\":{\"identity\":\"b\"}")},
        {"v 2",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"v\":2,\"data\":{\"identity\":\"b\"}")},
        {"type not string", ENV("\"type\":7," OK_REST ",\"data\":{}")},
        {"unknown type", ENV("\"type\":\"hand.waved\"," OK_REST ",\"data\":{}")},
        {"unknown source",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"me\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"extra field", ENV("\"type\":\"hand.raised\"," OK_REST ",\"data\":{\"identity\":\"b\"},\"x\":1")},
        {"bad id", "{\"id\":\"xyz\",\"type\":\"hand.raised\"," OK_REST ",\"data\":{\"identity\":\"b\"}}"},
        {"ts before 1970 (found by fuzzing)",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"0506-12-02T14:46:21.326Z\",\"source\":\"api\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"bad ts",
         ENV("\"type\":\"hand.raised\",\"stream\":\"s1\",\"ts\":\"23/11/2026\",\"source\":\"api\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"stream with slash",
         ENV("\"type\":\"hand.raised\",\"stream\":\"a/b\",\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"v\":1,\"data\":{\"identity\":\"b\"}")},
        {"data not object", ENV("\"type\":\"hand.raised\"," OK_REST ",\"data\":[]")},
        {"data missing identity", ENV("\"type\":\"hand.raised\"," OK_REST ",\"data\":{}")},
        {"data extra field", ENV("\"type\":\"hand.raised\"," OK_REST ",\"data\":{\"identity\":\"b\",\"x\":1}")},
        {"data bad sid", ENV("\"type\":\"room.created\"," OK_REST ",\"data\":{\"room_sid\":\"RM1\"}")},
        {"bad actor",
         ENV("\"type\":\"hand.raised\"," OK_REST ",\"actor\":\"a\\u0000b\",\"data\":{\"identity\":\"b\"}")},
        {"duplicate key",
         ENV("\"type\":\"hand.raised\",\"type\":\"hand.lowered\"," OK_REST ",\"data\":{\"identity\":\"b\"}")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct event ev;
        char err[256] = "";
        if (event_parse(cases[i].text, strlen(cases[i].text), &ev, err, sizeof err) != -1)
            fail_msg("accepted: %s", cases[i].what);
        if (err[0] == '\0')
            fail_msg("no error message for: %s", cases[i].what);
        assert_parsers_agree(cases[i].text, strlen(cases[i].text));
    }
}

/* event_data_string and event_data_bool read the same of every member of
 * full's data (and of a member neither has) from fast, whose data may be
 * kept as fields, as from full, whose data is JSON. Asked before
 * event_data builds fast's JSON. */
static void assert_data_readers_agree(const struct event *fast, const struct event *full)
{
    assert_false(full->data_flat);
    const char *key;
    json_t *value;
    json_object_foreach (full->data_json, key, value) {
        const char *a = event_data_string(fast, key), *b = event_data_string(full, key);
        if (a || b) {
            assert_non_null(a);
            assert_non_null(b);
            assert_string_equal(a, b);
        }
        assert_int_equal(event_data_bool(fast, key, 7), event_data_bool(full, key, 7));
    }
    assert_null(event_data_string(fast, "no such member"));
    assert_int_equal(event_data_bool(fast, "no such member", 7), 7);
}

/* event_parse and event_parse_reference agree on text: both refuse it, or
 * both give the same event. */
static void assert_parsers_agree(const char *text, size_t len)
{
    struct event fast, full;
    char err_fast[256], err_full[256];
    int rc_fast = event_parse(text, len, &fast, err_fast, sizeof err_fast);
    int rc_full = event_parse_reference(text, len, &full, err_full, sizeof err_full);
    if (rc_fast != rc_full)
        fail_msg("parsers disagree (%d, %d) on: %.*s", rc_fast, rc_full, (int)len, text);
    if (rc_fast != 0) {
        assert_string_equal(err_fast, err_full); /* the reason comes from the full parse */
        return;
    }
    assert_string_equal(fast.id, full.id);
    assert_string_equal(fast.type, full.type);
    assert_string_equal(fast.stream, full.stream);
    assert_string_equal(fast.source, full.source);
    if (fast.actor || full.actor) {
        assert_non_null(fast.actor);
        assert_non_null(full.actor);
        assert_string_equal(fast.actor, full.actor);
    }
    assert_int_equal(fast.ts_ms, full.ts_ms);
    assert_int_equal(fast.v, full.v);
    assert_int_equal(fast.type_index, full.type_index);
    assert_int_equal(fast.type_index, event_type_index(fast.type));
    assert_true(fast.type_index >= 0); /* the envelope's schema takes only catalogue types */
    assert_data_readers_agree(&fast, &full);
    assert_true(json_equal(event_data(&fast), event_data(&full)));
    event_free(&fast);
    event_free(&full);
}

/* Every one-byte change of text (deleted, or replaced by a byte that
 * matters to JSON): the parsers agree on each. */
static void assert_parsers_agree_on_mutations(const char *text)
{
    static const char replacements[] = {'"', '\\', '{', '}', '[', ']', ',', ':',  ' ',  '0',    '1',    '9',
                                        '-', '.',  'e', 'a', 'A', 't', 'n', '\0', '\n', '\x7f', '\xc3', '\xff'};
    size_t len = strlen(text);
    char *changed = malloc(len + 1);
    assert_non_null(changed);
    assert_parsers_agree(text, len);
    for (size_t i = 0; i < len; i++) {
        memcpy(changed, text, i);
        memcpy(changed + i, text + i + 1, len - i - 1);
        assert_parsers_agree(changed, len - 1);
        memcpy(changed, text, len);
        for (size_t r = 0; r < sizeof replacements; r++) {
            changed[i] = replacements[r];
            assert_parsers_agree(changed, len);
        }
    }
    free(changed);
}

/* Every catalogue type as stagehand writes it, with an actor and without,
 * then every one-byte change of it (deleted, or replaced by a byte that
 * matters to JSON) and a few rewritings: the fast path never accepts what
 * the full parse refuses, nor reads anything differently. */
static void test_fast_path_agrees_with_full_parse(void **state)
{
    (void)state;
    static const char *const rewritings[][2] = {
        {",", " , "},
        {":", " :\t"},
        {"\"v\":1", "\"v\":1.0"},
        {"\"v\":1", "\"v\":01"},
        {"\"v\":1", "\"v\":-1"},
        {"\"v\":1", "\"v\":1e0"},
        {"\"v\":1", "\"v\":true"},
        {"\"data\":{", "\"data\":{ "},
        {"\"id\"", "\"i\\u0064\""},
        {"}", "} x"},
        {"\"source\"", "\"actor\":\"bob\",\"source\""},
    };
    for (size_t t = 0; t < event_catalogue_count; t++) {
        for (int with_actor = 0; with_actor <= 1; with_actor++) {
            json_t *data = json_loads(example_data(event_catalogue[t]), 0, NULL);
            assert_non_null(data);
            struct event ev;
            char err[256];
            assert_int_equal(event_init(&ev, event_catalogue[t], "friday townhall", "api", with_actor ? "bob" : NULL,
                                        data, err, sizeof err),
                             0);
            char *text = event_serialize(&ev);
            assert_non_null(text);
            size_t len = strlen(text);
            assert_parsers_agree_on_mutations(text);
            char *changed = malloc(len + 64);
            assert_non_null(changed);
            for (size_t r = 0; r < sizeof rewritings / sizeof rewritings[0]; r++) {
                const char *at = strstr(text, rewritings[r][0]);
                if (!at)
                    continue;
                size_t head = (size_t)(at - text), old = strlen(rewritings[r][0]), new = strlen(rewritings[r][1]);
                memcpy(changed, text, head);
                memcpy(changed + head, rewritings[r][1], new);
                memcpy(changed + head + new, at + old, len - head - old);
                assert_parsers_agree(changed, len - old + new);
            }
            free(changed);
            free(text);
            event_free(&ev);
        }
    }
}

/* An envelope as stagehand writes it around the given type, data and v. */
static void envelope(char *out, size_t outlen, const char *type, const char *data, const char *v)
{
    snprintf(out, outlen,
             "{\"id\":\"0123456789abcdef0123456789abcdef\",\"type\":\"%s\",\"stream\":\"friday townhall\","
             "\"ts\":\"2026-11-23T22:59:01.123Z\",\"source\":\"api\",\"actor\":\"bob\",\"data\":%s,\"v\":%s}",
             type, data, v);
}

/* The fast path builds data itself when it is a flat object: strings,
 * integers and literals as jansson reads them, duplicate keys and integers
 * out of range refused as jansson refuses them, and anything else (escapes,
 * nested values, fractions) left to jansson. Each case, and each one-byte
 * change of it, is read alike by both parsers. */
static void test_fast_path_data(void **state)
{
    (void)state;
    static const struct {
        const char *type, *data;
    } cases[] = {
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":0}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":-0}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":-1}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":9223372036854775807}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":9223372036854775808}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":-9223372036854775808}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":-9223372036854775809}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":99999999999999999999999}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":4.0}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":4e1}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":\"4\"}"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_duration_s\":null}"},
        {"room.ended", "{\"room_duration_s\":3,\"room_sid\":\"" RM "\"}"},
        {"room.ended", "{ \"room_sid\" : \"" RM "\" ,\n\"room_duration_s\":\t5 }"},
        {"room.ended", "{\"room_sid\":\"" RM "\",\"room_sid\":\"" RM "\"}"},
        {"room.ended", "{\"room_sid\":\"RM0123\"}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"sync_access\":true}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"sync_access\":false}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"sync_access\":null}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"sync_access\":tru}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"sync_access\":[true]}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"host\"}"},
        {"user.joined", "{\"identity\":\"bob\",\"role\":\"viewer\",\"role\":\"speaker\"}"},
        {"user.joined", "{\"identity\":\"Zo\\u00eb\",\"role\":\"viewer\"}"},
        {"user.joined", "{\"identity\":\"Zo\xc3\xab\",\"role\":\"viewer\"}"},
        {"viewer.connected", "{\"identity\":\"bob\"}"},
        {"viewer.connected", "{\"identity\":\"alice-and-bob-with-a-long-name\"}"},
        {"viewer.connected", "{\"identity\":\"bob\",\"identity\":\"bob\"}"},
        {"viewer.connected", "{\"identity\":\"bob\",\"x\":{}}"},
        {"viewer.connected", "{\"identity\":{\"name\":\"bob\"}}"},
        {"viewer.connected", "{\"identity\":\"video-composer-1\"}"},
        {"viewer.connected", "{\"identity\":\"..\"}"},
        {"viewer.connected", "{\"identity\":\" bob\"}"},
        {"viewer.connected", "{\"identity\":\"\"}"},
        {"viewer.connected", "{\"identity\":7}"},
        {"viewer.connected", "{}"},
        {"viewer.connected", "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
                             "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17}"},
        {"participant.disconnected", "{\"identity\":\"bob\",\"participant_sid\":\"" PA "\",\"room_sid\":\"" RM
                                     "\",\"timestamp\":\"2026-11-23T22:59:01Z\",\"duration_s\":7}"},
        {"participant.disconnected",
         "{\"identity\":\"bob\",\"participant_sid\":\"" PA "\",\"room_sid\":\"" RM "\",\"timestamp\":\"yesterday\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        envelope(text, sizeof text, cases[i].type, cases[i].data, "1");
        assert_parsers_agree_on_mutations(text);
    }
}

/* v as the fast path reads it, without a JSON value: only the integer 1
 * is an envelope's version. */
static void test_fast_path_v(void **state)
{
    (void)state;
    static const char *const vs[] = {"1",
                                     "0",
                                     "2",
                                     "-1",
                                     "01",
                                     "1.0",
                                     "1e0",
                                     "true",
                                     "\"1\"",
                                     "null",
                                     "9223372036854775807",
                                     "9223372036854775808",
                                     "-9223372036854775808",
                                     "-9223372036854775809",
                                     "4294967297", /* 1 when cut to 32 bits */
                                     "18446744073709551617",
                                     "100000000000000000000000000001"};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char text[1024];
        envelope(text, sizeof text, "viewer.connected", "{\"identity\":\"bob\"}", vs[i]);
        assert_parsers_agree(text, strlen(text));
        struct event ev;
        char err[256];
        assert_int_equal(event_parse(text, strlen(text), &ev, err, sizeof err), strcmp(vs[i], "1") == 0 ? 0 : -1);
        if (strcmp(vs[i], "1") == 0)
            event_free(&ev);
    }
}

/* The fast path is taken for events as stagehand writes them (else the
 * tests comparing it with the full parse would compare the full parse
 * with itself): its events keep their strings in one allocation. */
static void test_fast_path_taken(void **state)
{
    (void)state;
    for (size_t t = 0; t < event_catalogue_count; t++) {
        json_t *data = json_loads(example_data(event_catalogue[t]), 0, NULL);
        assert_non_null(data);
        struct event ev, back;
        char err[256];
        assert_int_equal(event_init(&ev, event_catalogue[t], "friday townhall", "api", "bob", data, err, sizeof err),
                         0);
        assert_null(ev.strings);
        char *text = event_serialize(&ev);
        assert_non_null(text);
        assert_int_equal(event_parse(text, strlen(text), &back, err, sizeof err), 0);
        assert_non_null(back.strings);
        /* Kept as fields, not built; but for user.joined, whose example
         * identity is not ASCII: flatjson leaves such strings to jansson. */
        int ascii = strcmp(event_catalogue[t], "user.joined") != 0;
        assert_int_equal(back.data_flat, ascii);
        assert_int_equal(back.data_json == NULL, ascii);
        event_free(&back);
        assert_int_equal(event_parse_reference(text, strlen(text), &back, err, sizeof err), 0);
        assert_null(back.strings);
        event_free(&back);
        free(text);
        event_free(&ev);
    }
}

/* event_encode and event_encode_reference write the same bytes, or both
 * refuse: every catalogue type, with and without an actor, and envelope
 * strings that need escaping, are not ASCII, or are not valid at all. */
static void test_fast_encode_agrees_with_full_encode(void **state)
{
    (void)state;
    static const char *const streams[] = {
        "friday townhall", "Zo\xc3\xab's stream", "a\"b", "a\\b", "tab\there", "", "a/b", " lead", "del\x7f"};
    static const char *const actors[] = {NULL, "bob", "Zo\xc3\xab", "b\"ob", "video-composer-1", "..", "bad\xff"};
    for (size_t t = 0; t < event_catalogue_count; t++) {
        for (size_t s = 0; s < sizeof streams / sizeof streams[0]; s++) {
            for (size_t a = 0; a < sizeof actors / sizeof actors[0]; a++) {
                struct event ev;
                char err[256], err_full[256];
                json_t *data = json_loads(example_data(event_catalogue[t]), 0, NULL);
                assert_non_null(data);
                assert_int_equal(event_build(&ev, event_catalogue[t], streams[s], "api", actors[a], data, err,
                                             sizeof err),
                                 0);
                char *fast = event_encode(&ev, err, sizeof err);
                char *full = event_encode_reference(&ev, err_full, sizeof err_full);
                if ((fast == NULL) != (full == NULL))
                    fail_msg("encoders disagree on %s, stream %zu, actor %zu", event_catalogue[t], s, a);
                if (fast)
                    assert_string_equal(fast, full);
                else
                    assert_string_equal(err, err_full);
                free(fast);
                free(full);
                event_free(&ev);
            }
        }
    }
    /* Data that is not an object, and an unknown type. */
    struct event ev;
    char err[256];
    assert_int_equal(event_build(&ev, "hand.raised", "s1", "api", NULL, json_array(), err, sizeof err), 0);
    assert_null(event_encode(&ev, err, sizeof err));
    event_free(&ev);
    assert_int_equal(event_build(&ev, "hand.waved", "s1", "api", NULL, json_object(), err, sizeof err), 0);
    assert_null(event_encode(&ev, err, sizeof err));
    event_free(&ev);
}

static void test_huge_input_refused(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *text = malloc(n + 64);
    int k = snprintf(text, 64, "{\"id\":\"");
    memset(text + k, 'a', n);
    strcpy(text + k + n, "\"}");
    struct event ev;
    char err[256];
    assert_int_equal(event_parse(text, strlen(text), &ev, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger"));
    free(text);
}

static void test_init_refuses_bad_events(void **state)
{
    (void)state;
    struct event ev;
    char err[256];
    assert_int_equal(event_init(&ev, "hand.raised", "a/b", "api", NULL, json_pack("{s:s}", "identity", "bob"), err,
                                sizeof err),
                     -1);
    assert_non_null(strstr(err, "stream"));
    assert_int_equal(event_init(&ev, "hand.raised", "s", "api", NULL, json_object(), err, sizeof err), -1);
    assert_string_equal(err, "data.identity: is required");
    assert_int_equal(event_init(&ev, NULL, "s", "api", NULL, json_object(), err, sizeof err), -1);
}

/* event_build checks nothing; event_encode checks what event_init does and
 * writes what event_serialize writes. */
static void test_build_then_encode(void **state)
{
    (void)state;
    struct event ev;
    char err[256];
    assert_int_equal(event_build(&ev, "hand.raised", "friday", "api", "bob", json_pack("{s:s}", "identity", "bob"), err,
                                 sizeof err),
                     0);
    char *encoded = event_encode(&ev, err, sizeof err);
    char *serialized = event_serialize(&ev);
    assert_non_null(encoded);
    assert_non_null(serialized);
    assert_string_equal(encoded, serialized);
    free(encoded);
    free(serialized);
    event_free(&ev);

    /* Built without a check; refused when written. */
    assert_int_equal(event_build(&ev, "hand.raised", "a/b", "api", NULL, json_pack("{s:s}", "identity", "bob"), err,
                                 sizeof err),
                     0);
    assert_null(event_encode(&ev, err, sizeof err));
    assert_non_null(strstr(err, "stream"));
    event_free(&ev);
    assert_int_equal(event_build(&ev, "hand.raised", "s", "api", NULL, json_object(), err, sizeof err), 0);
    assert_null(event_encode(&ev, err, sizeof err));
    assert_string_equal(err, "data.identity: is required");
    event_free(&ev);
    assert_int_equal(event_build(&ev, "hand.raised", "s", "api", "bad \xff utf-8",
                                 json_pack("{s:s}", "identity", "bob"), err, sizeof err),
                     0);
    assert_null(event_encode(&ev, err, sizeof err));
    assert_non_null(strstr(err, "UTF-8"));
    event_free(&ev);
    assert_int_equal(event_build(&ev, NULL, "s", "api", NULL, json_object(), err, sizeof err), -1);
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_ids(void **state)
{
    (void)state;
    char a[EVENT_ID_LEN + 1], b[EVENT_ID_LEN + 1];
    assert_int_equal(event_random_id(a), 0);
    assert_int_equal(event_random_id(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_true(is_lower_hex(a, 32));
    assert_string_not_equal(a, b);

    const char *f1[] = {RM, PA, "participant-connected", "2026-11-23T22:59:01.123Z"};
    const char *f2[] = {RM, PA, "participant-connected", "2026-11-23T22:59:01.123Z"};
    event_derived_id(f1, 4, a);
    event_derived_id(f2, 4, b);
    assert_string_equal(a, b);
    assert_true(is_lower_hex(a, 32));
    const char *g1[] = {"ab", "c"};
    const char *g2[] = {"a", "bc"};
    event_derived_id(g1, 2, a);
    event_derived_id(g2, 2, b);
    assert_string_not_equal(a, b);
}

static void test_type_index(void **state)
{
    (void)state;
    for (size_t i = 0; i < event_catalogue_count; i++)
        assert_int_equal(event_type_index(event_catalogue[i]), (int)i);
    assert_int_equal(event_type_index("hand.raise"), -1);
    assert_int_equal(event_type_index("hand.raised "), -1);
    assert_int_equal(event_type_index(""), -1);
    assert_int_equal(event_type_index(NULL), -1);
    struct event ev;
    char err[256];
    assert_int_equal(event_build(&ev, "sync.ready", "s", "api", NULL, json_object(), err, sizeof err), 0);
    assert_int_equal(ev.type_index, event_type_index("sync.ready"));
    event_free(&ev);
    assert_int_equal(event_build(&ev, "no.such_type", "s", "api", NULL, json_object(), err, sizeof err), 0);
    assert_int_equal(ev.type_index, -1);
    event_free(&ev);
}

static void test_traceparent(void **state)
{
    (void)state;
    char t[EVENT_TRACEPARENT_LEN + 1], u[EVENT_TRACEPARENT_LEN + 1];
    assert_int_equal(event_traceparent(t), 0);
    assert_int_equal(event_traceparent(u), 0);
    assert_int_equal(strlen(t), 55);
    assert_int_equal(strncmp(t, "00-", 3), 0);
    assert_true(is_lower_hex(t + 3, 32));
    assert_int_equal(t[35], '-');
    assert_true(is_lower_hex(t + 36, 16));
    assert_string_equal(t + 52, "-01");
    assert_string_not_equal(t, u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_every_catalogue_type),
        cmocka_unit_test(test_bad_envelopes),      cmocka_unit_test(test_fast_path_agrees_with_full_parse),
        cmocka_unit_test(test_fast_path_data),     cmocka_unit_test(test_fast_path_v),
        cmocka_unit_test(test_fast_path_taken),    cmocka_unit_test(test_fast_encode_agrees_with_full_encode),
        cmocka_unit_test(test_huge_input_refused), cmocka_unit_test(test_init_refuses_bad_events),
        cmocka_unit_test(test_build_then_encode),  cmocka_unit_test(test_ids),
        cmocka_unit_test(test_traceparent),        cmocka_unit_test(test_type_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
