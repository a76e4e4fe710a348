/* ingress/view: the sync record's speakers, viewers_listed and
 * provisioning (parsed, checked, dropped alone when malformed, lists
 * bounded), the public state rendered once per change with its ETag and
 * nothing private in it, GET /streams/{name}'s provisioning, and the eager
 * tier's count (max of the view's and this process's, per life). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingress/view.h"
#include "log.h"

#define ROOM_SID "RM0123456789abcdef0123456789abcdef"
#define SERVICE_SID "IS0123456789abcdef0123456789abcdef"

/* Applies record (taken) under "<stream>/<role>", with stream and role set. */
static int apply(struct view *v, const char *stream, const char *role, json_t *record)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", stream, role);
    assert_non_null(record);
    json_object_set_new(record, "stream", json_string(stream));
    json_object_set_new(record, "role", json_string(role));
    char *text = json_dumps(record, JSON_COMPACT);
    json_decref(record);
    assert_non_null(text);
    int rc = view_apply(v, key, strlen(key), text, strlen(text));
    free(text);
    return rc;
}

static void apply_room(struct view *v, const char *stream, int64_t since)
{
    assert_int_equal(apply(v, stream, "room",
                           json_pack("{s:s, s:I, s:s, s:s}", "status", "ready", "since", (json_int_t)since, "host",
                                     "alice", "room_sid", ROOM_SID)),
                     0);
}

/* A ready sync record of life since, with extras (taken, may be NULL)
 * merged in. */
static int apply_sync(struct view *v, const char *stream, int64_t since, json_t *extras)
{
    json_t *record = json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i}", "status", "ready", "since", (json_int_t)since,
                               "host", "alice", "service_sid", SERVICE_SID, "viewer_count", 12, "raised_hands", 1,
                               "raised_hands_cap", 2);
    if (extras) {
        json_object_update(record, extras);
        json_decref(extras);
    }
    return apply(v, stream, "sync", record);
}

/* The public state of stream, parsed, and its ETag copied into etag. */
static json_t *public_json(struct view *v, const char *stream, char etag[ETAG_SIZE])
{
    int oom = 1;
    struct view_public *p = view_public_get(v, stream, &oom);
    assert_int_equal(oom, 0);
    assert_non_null(p);
    assert_int_equal(strlen(p->body), p->len);
    char expected[ETAG_SIZE];
    etag_of(p->body, p->len, expected);
    assert_string_equal(p->etag, expected);
    if (etag)
        memcpy(etag, p->etag, ETAG_SIZE);
    json_t *doc = json_loads(p->body, 0, NULL);
    view_public_release(p);
    assert_non_null(doc);
    return doc;
}

static void test_public_state_fields(void **state)
{
    (void)state;
    struct view *v = view_new();
    assert_non_null(v);
    apply_room(v, "friday", 1000);
    assert_int_equal(apply_sync(v, "friday", 1000,
                                json_pack("{s:[{s:s, s:b}, {s:s}], s:[s, s], s:{s:i, s:i, s:i, s:i, s:i}}", "speakers",
                                          "identity", "alice", "host", 1, "identity", "Zo\xc3\xab K", "viewers_listed",
                                          "carol", "dave", "provisioning", "eager_limit", 1000, "eager_admitted", 40,
                                          "provisioned", 30, "backlog", 10, "oldest_wait_ms", 2500)),
                     0);
    json_t *doc = public_json(v, "friday", NULL);
    /* A speaker without "host" is not the host; the hand queue is full at the cap. */
    json_t *want = json_pack("{s:s, s:s, s:s, s:[{s:s, s:b}, {s:s, s:b}], s:i, s:[s, s], s:i, s:i, s:b}", "stream",
                             "friday", "status", "live", "host", "alice", "speakers", "identity", "alice", "host", 1,
                             "identity", "Zo\xc3\xab K", "host", 0, "viewer_count", 12, "viewers", "carol", "dave",
                             "raised_hands", 1, "raised_hands_cap", 2, "hand_queue_full", 0);
    if (!json_equal(doc, want)) {
        char *text = json_dumps(doc, JSON_COMPACT);
        fail_msg("public state %s", text);
    }
    json_decref(doc);
    json_decref(want);

    /* The operators' view has the provisioning numbers. */
    doc = view_stream_json(v, "friday");
    want = json_pack("{s:i, s:i, s:i, s:i, s:i}", "backlog", 10, "oldest_wait_ms", 2500, "provisioned", 30,
                     "eager_admitted", 40, "eager_limit", 1000);
    assert_true(json_equal(json_object_get(doc, "provisioning"), want));
    json_decref(doc);
    json_decref(want);
    struct stream_info info;
    assert_true(view_get(v, "friday", &info));
    assert_int_equal(info.provisioning.known, 1);
    assert_int_equal(info.provisioning.backlog, 10);

    /* Unknown streams have no public state. */
    int oom = 1;
    assert_null(view_public_get(v, "nope", &oom));
    assert_int_equal(oom, 0);
    view_free(v);
}

/* Old records: no lists (empty), no provisioning (not shown); counts
 * unknown show as null and the queue is not full. */
static void test_old_records(void **state)
{
    (void)state;
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    json_t *doc = public_json(v, "friday", NULL);
    json_t *want = json_pack("{s:s, s:s, s:s, s:[], s:n, s:[], s:n, s:n, s:b}", "stream", "friday", "status",
                             "creating", "host", "alice", "speakers", "viewer_count", "viewers", "raised_hands",
                             "raised_hands_cap", "hand_queue_full", 0);
    assert_true(json_equal(doc, want));
    json_decref(doc);
    json_decref(want);
    assert_int_equal(apply_sync(v, "friday", 1000, NULL), 0);
    doc = public_json(v, "friday", NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "speakers")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "viewer_count")), 12);
    json_decref(doc);
    doc = view_stream_json(v, "friday");
    assert_null(json_object_get(doc, "provisioning"));
    json_decref(doc);
    view_free(v);
}

/* Each malformed new field is dropped alone (view_apply returns 1); the
 * record's other fields are kept. */
static void test_malformed_fields_dropped(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"speakers\": {\"identity\": \"alice\"}}",                 /* not an array */
        "{\"speakers\": [\"alice\"]}",                               /* not objects */
        "{\"speakers\": [{\"host\": true}]}",                        /* no identity */
        "{\"speakers\": [{\"identity\": \"a/b\", \"host\": true}]}", /* not an identity */
        "{\"speakers\": [{\"identity\": \"alice\", \"host\": 1}]}",  /* host not a boolean */
        "{\"speakers\": [{\"identity\": \"video-composer-1\"}]}",
        "{\"speakers\": [{\"identity\": \" alice\"}]}",
        "{\"viewers_listed\": \"carol\"}",
        "{\"viewers_listed\": [\"carol\", 7]}",
        "{\"viewers_listed\": [\"carol\", \"\"]}",
        "{\"viewers_listed\": [\"car\\u0007ol\"]}",
        "{\"provisioning\": [1]}",
        "{\"provisioning\": {\"backlog\": -1}}",
        "{\"provisioning\": {\"backlog\": \"5\"}}",
        "{\"provisioning\": {\"oldest_wait_ms\": 1.5}}",
    };
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    log_init("test", LOG_LEVEL_ERROR); /* the drops are logged as warnings */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *extras = json_loads(bad[i], 0, NULL);
        assert_non_null(extras);
        if (apply_sync(v, "friday", 1000, extras) != 1)
            fail_msg("%s was not dropped", bad[i]);
        json_t *doc = public_json(v, "friday", NULL);
        assert_string_equal(json_string_value(json_object_get(doc, "status")), "live"); /* the record counts */
        assert_int_equal(json_integer_value(json_object_get(doc, "viewer_count")), 12);
        assert_int_equal(json_array_size(json_object_get(doc, "speakers")), 0);
        assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 0);
        json_decref(doc);
        doc = view_stream_json(v, "friday");
        assert_null(json_object_get(doc, "provisioning"));
        json_decref(doc);
    }
    /* One bad field does not take the good ones with it. */
    assert_int_equal(apply_sync(v, "friday", 1000,
                                json_pack("{s:[s], s:s, s:{s:i}}", "viewers_listed", "carol", "speakers", "x",
                                          "provisioning", "backlog", 3)),
                     1);
    json_t *doc = public_json(v, "friday", NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 1);
    json_decref(doc);
    struct stream_info info;
    view_get(v, "friday", &info);
    assert_int_equal(info.provisioning.backlog, 3);
    assert_int_equal(info.provisioning.eager_admitted, -1); /* not given */
    /* The old rules stand: a malformed SID still makes the record ignored. */
    assert_int_equal(apply_sync(v, "friday", 1000, json_pack("{s:s}", "service_sid", "IS1")), -1);
    view_free(v);
}

/* Lists longer than the bounds keep their first entries. */
static void test_lists_bounded(void **state)
{
    (void)state;
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    json_t *speakers = json_array(), *viewers = json_array();
    char name[32];
    for (int i = 0; i < VIEW_SPEAKERS_MAX + 10; i++) {
        snprintf(name, sizeof name, "s%d", i);
        json_array_append_new(speakers, json_pack("{s:s, s:b}", "identity", name, "host", i == 0));
    }
    for (int i = 0; i < VIEW_VIEWERS_MAX + 200; i++) {
        snprintf(name, sizeof name, "v%d", i);
        json_array_append_new(viewers, json_string(name));
    }
    assert_int_equal(apply_sync(v, "friday", 1000,
                                json_pack("{s:o, s:o}", "speakers", speakers, "viewers_listed", viewers)),
                     0);
    json_t *doc = public_json(v, "friday", NULL);
    json_t *listed = json_object_get(doc, "viewers");
    assert_int_equal(json_array_size(json_object_get(doc, "speakers")), VIEW_SPEAKERS_MAX);
    assert_int_equal(json_array_size(listed), VIEW_VIEWERS_MAX);
    assert_string_equal(json_string_value(json_array_get(listed, 0)), "v0");
    snprintf(name, sizeof name, "v%d", VIEW_VIEWERS_MAX - 1);
    assert_string_equal(json_string_value(json_array_get(listed, VIEW_VIEWERS_MAX - 1)), name);
    json_decref(doc);
    view_free(v);
}

/* Rendered once per change: the same shared answer until a record comes;
 * a reference held across a change stays valid; only the newest life's
 * sync record counts. */
static void test_rendered_once_per_change(void **state)
{
    (void)state;
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    apply_sync(v, "friday", 1000, json_pack("{s:[s]}", "viewers_listed", "carol"));
    int oom;
    struct view_public *first = view_public_get(v, "friday", &oom);
    struct view_public *again = view_public_get(v, "friday", &oom);
    assert_non_null(first);
    assert_ptr_equal(first, again);
    view_public_release(again);

    apply_sync(v, "friday", 1000, json_pack("{s:[s, s]}", "viewers_listed", "carol", "dave"));
    char etag[ETAG_SIZE];
    json_t *doc = public_json(v, "friday", etag);
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 2);
    json_decref(doc);
    assert_string_not_equal(etag, first->etag);
    assert_non_null(strstr(first->body, "carol")); /* still readable */
    view_public_release(first);

    /* The same content again: the same tag (it comes from the bytes). */
    apply_sync(v, "friday", 1000, json_pack("{s:[s, s]}", "viewers_listed", "carol", "dave"));
    char same[ETAG_SIZE];
    json_decref(public_json(v, "friday", same));
    assert_string_equal(same, etag);

    /* A new life: the old life's sync record (its lists) no longer counts. */
    apply_room(v, "friday", 2000);
    doc = public_json(v, "friday", NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "viewers")), 0);
    assert_true(json_is_null(json_object_get(doc, "viewer_count")));
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "creating");
    json_decref(doc);

    /* Every record removed: no public state. */
    const char *keys[] = {"friday/room", "friday/sync"};
    for (int i = 0; i < 2; i++)
        assert_int_equal(view_apply(v, keys[i], strlen(keys[i]), NULL, 0), 0);
    assert_null(view_public_get(v, "friday", &oom));
    assert_int_equal(oom, 0);
    view_free(v);
}

/* Nothing private: no SID, no grant, no provisioning in the public state. */
static void test_nothing_private(void **state)
{
    (void)state;
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    apply_sync(v, "friday", 1000, json_pack("{s:{s:i}}", "provisioning", "backlog", 3));
    assert_int_equal(apply(v, "friday", "stream",
                           json_pack("{s:s, s:i, s:s, s:s, s:{s:s}, s:I}", "status", "ready", "since", 1000,
                                     "player_streamer_sid", "VJ0123456789abcdef0123456789abcdef", "media_processor_sid",
                                     "ZX0123456789abcdef0123456789abcdef", "playback_grant", "playbackUrl",
                                     "https://secret.example/x", "playback_grant_expires_ms",
                                     (json_int_t)4102444800000)),
                     0);
    int oom;
    struct view_public *p = view_public_get(v, "friday", &oom);
    assert_non_null(p);
    static const char *const private_bits[] = {"RM0",   "IS0",          "VJ0",     "ZX0", "secret",
                                               "grant", "provisioning", "backlog", "sid"};
    for (size_t i = 0; i < sizeof private_bits / sizeof private_bits[0]; i++)
        if (strstr(p->body, private_bits[i]))
            fail_msg("the public state shows %s: %s", private_bits[i], p->body);
    view_public_release(p);
    view_free(v);
}

static void test_eager_admission(void **state)
{
    (void)state;
    struct view *v = view_new();
    apply_room(v, "friday", 1000);
    /* Three per stream, counted here while the view says nothing. */
    assert_true(view_admit_eager(v, "friday", 3));
    assert_true(view_admit_eager(v, "friday", 3));
    assert_true(view_admit_eager(v, "friday", 3));
    assert_false(view_admit_eager(v, "friday", 3));
    /* A view behind this process's count does not reopen the tier... */
    apply_sync(v, "friday", 1000, json_pack("{s:{s:i}}", "provisioning", "eager_admitted", 1));
    assert_false(view_admit_eager(v, "friday", 3));
    assert_true(view_admit_eager(v, "friday", 5)); /* (a larger limit: the 4th) */
    /* ...and a view ahead of it (other replicas admitted) counts. */
    apply_sync(v, "friday", 1000, json_pack("{s:{s:i}}", "provisioning", "eager_admitted", 9));
    assert_false(view_admit_eager(v, "friday", 9));
    assert_true(view_admit_eager(v, "friday", 10)); /* the 10th: from the view's 9 */
    assert_false(view_admit_eager(v, "friday", 10));

    /* A new life of the stream counts from zero. */
    apply_room(v, "friday", 2000);
    assert_true(view_admit_eager(v, "friday", 1));
    assert_false(view_admit_eager(v, "friday", 1));

    /* Another stream has its own count; a process that never admitted
     * starts from the view's number. */
    apply_room(v, "saturday", 1000);
    apply_sync(v, "saturday", 1000, json_pack("{s:{s:i}}", "provisioning", "eager_admitted", 2));
    assert_true(view_admit_eager(v, "saturday", 3));
    assert_false(view_admit_eager(v, "saturday", 3));

    /* 0: nobody is eager. */
    apply_room(v, "sunday", 1000);
    assert_false(view_admit_eager(v, "sunday", 0));
    view_free(v);
}

/* A ready room record of life since with the stage list invited (taken). */
static int apply_room_invited(struct view *v, const char *stream, int64_t since, json_t *invited)
{
    return apply(v, stream, "room",
                 json_pack("{s:s, s:I, s:s, s:s, s:o}", "status", "ready", "since", (json_int_t)since, "host", "alice",
                           "room_sid", ROOM_SID, "invited", invited));
}

/* Issue 15, item 2: who may join the stage is the host of the newest life,
 * or someone on that life's room record's "invited" list. */
static void test_stage(void **state)
{
    (void)state;
    struct view *v = view_new();
    assert_false(view_may_speak(v, "friday", "alice")); /* unknown stream */
    apply_room(v, "friday", 1000);
    assert_int_equal(apply_sync(v, "friday", 1000, NULL), 0);
    assert_true(view_may_speak(v, "friday", "alice"));
    assert_false(view_may_speak(v, "friday", "bob"));

    assert_int_equal(apply_room_invited(v, "friday", 1000, json_pack("[s, s]", "bob", "carol")), 0);
    assert_true(view_may_speak(v, "friday", "bob"));
    assert_true(view_may_speak(v, "friday", "carol"));
    assert_false(view_may_speak(v, "friday", "dave"));
    assert_false(view_may_speak(v, "friday", "Bob"));

    /* The next record without bob (removed): refused again. */
    assert_int_equal(apply_room_invited(v, "friday", 1000, json_pack("[s]", "carol")), 0);
    assert_false(view_may_speak(v, "friday", "bob"));
    apply_room(v, "friday", 1000); /* no field: nobody invited */
    assert_false(view_may_speak(v, "friday", "carol"));

    /* A malformed list is dropped alone: the record stands, nobody invited. */
    assert_int_equal(apply_room_invited(v, "friday", 1000, json_pack("[s, i]", "bob", 7)), 1);
    assert_false(view_may_speak(v, "friday", "bob"));
    assert_true(view_may_speak(v, "friday", "alice"));
    assert_int_equal(apply_room_invited(v, "friday", 1000, json_string("bob")), 1);
    assert_false(view_may_speak(v, "friday", "bob"));

    /* An older life's invitations do not count in a newer life. */
    assert_int_equal(apply_room_invited(v, "friday", 1000, json_pack("[s]", "bob")), 0);
    assert_int_equal(apply_sync(v, "friday", 2000, NULL), 0);
    assert_false(view_may_speak(v, "friday", "bob"));
    assert_true(view_may_speak(v, "friday", "alice"));

    /* Bounded: the first VIEW_INVITED_MAX are kept. */
    json_t *many = json_array();
    char name[16];
    for (int i = 0; i < VIEW_INVITED_MAX + 5; i++) {
        snprintf(name, sizeof name, "u%d", i);
        json_array_append_new(many, json_string(name));
    }
    assert_int_equal(apply_room_invited(v, "friday", 2000, many), 0);
    snprintf(name, sizeof name, "u%d", VIEW_INVITED_MAX - 1);
    assert_true(view_may_speak(v, "friday", name));
    snprintf(name, sizeof name, "u%d", VIEW_INVITED_MAX);
    assert_false(view_may_speak(v, "friday", name));
    view_free(v);
}

/* The workers' checkpoint records (header and chunks, null or not) are
 * neither streams nor malformed records. */
static void test_checkpoints_ignored(void **state)
{
    (void)state;
    struct view *v = view_new();
    assert_non_null(v);
    static const char *const keys[] = {"#checkpoint/sync/3", "#checkpoint/sync/3/0", "#checkpoint/room/11/2"};
    const char *header = "{\"v\":1,\"role\":\"sync\",\"partition\":3,\"generation\":9,\"chunks\":1}";
    const char *chunk = "{\"v\":1,\"generation\":9,\"chunk\":0}\n[{\"stream\":\"s\"}]";
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *value = i == 0 ? header : chunk;
        assert_int_equal(view_apply(v, keys[i], strlen(keys[i]), value, strlen(value)), 0);
        assert_int_equal(view_apply(v, keys[i], strlen(keys[i]), NULL, 0), 0);
    }
    assert_int_equal(view_size(v), 0);
    view_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_state_fields),      cmocka_unit_test(test_old_records),
        cmocka_unit_test(test_malformed_fields_dropped), cmocka_unit_test(test_lists_bounded),
        cmocka_unit_test(test_rendered_once_per_change), cmocka_unit_test(test_nothing_private),
        cmocka_unit_test(test_eager_admission),          cmocka_unit_test(test_stage),
        cmocka_unit_test(test_checkpoints_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
