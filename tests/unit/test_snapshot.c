/* workers/snapshot: checkpoint keys never look like a stream's record
 * key; a checkpoint cut into small chunks reads back as it was; a missing
 * chunk, a chunk of another generation, an unknown format version or a
 * removed header mean no checkpoint; chunks of an earlier, bigger
 * checkpoint are ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "snapshot.h"
#include "text.h"

static json_t *sample(int users)
{
    json_t *streams = json_array();
    for (int s = 0; s < 3; s++) {
        json_t *list = json_array();
        for (int u = 0; u < users; u++) {
            char name[64];
            snprintf(name, sizeof name, "viewer-%d-é-%d", s, u); /* multibyte text cut anywhere */
            json_array_append_new(list, json_pack("{s:s, s:i}", "n", name, "b", u % 7));
        }
        char stream[32];
        snprintf(stream, sizeof stream, "s%d", s);
        json_array_append_new(streams, json_pack("{s:s, s:o}", "name", stream, "users", list));
    }
    return streams;
}

static void offer_all(struct snapshot_parts *p, const struct snapshot_records *r)
{
    for (size_t k = 0; k < r->count; k++)
        assert_int_equal(snapshot_parts_offer(p, (long)k, r->chunks[k], r->chunk_lens[k]), 0);
    assert_int_equal(snapshot_parts_offer(p, -1, r->header, strlen(r->header)), 0);
}

static void test_keys(void **state)
{
    (void)state;
    char key[SNAPSHOT_KEY_MAX];
    int32_t p;
    long k;
    assert_int_equal(snapshot_key(key, sizeof key, "sync", 11, -1), 0);
    assert_string_equal(key, "#checkpoint/sync/11");
    assert_int_equal(snapshot_parse_key(key, strlen(key), "sync", &p, &k), 1);
    assert_int_equal(p, 11);
    assert_int_equal(k, -1);
    assert_int_equal(snapshot_parse_key(key, strlen(key), "room", &p, &k), 0);
    assert_int_equal(snapshot_key(key, sizeof key, "room", 3, 7), 0);
    assert_string_equal(key, "#checkpoint/room/3/7");
    assert_int_equal(snapshot_parse_key(key, strlen(key), "room", &p, &k), 1);
    assert_int_equal(p, 3);
    assert_int_equal(k, 7);
    assert_true(snapshot_is_key(key, strlen(key)));
    assert_false(snapshot_is_key("a/room", 6));
    assert_int_equal(snapshot_parse_key("s1/room", 7, "room", &p, &k), 0);
    assert_int_equal(snapshot_parse_key("#checkpoint/room/x", 18, "room", &p, &k), 0);
    /* No stream may be called like a checkpoint's prefix. */
    assert_non_null(stream_name_problem("#checkpoint", 11));
}

static void test_round_trip_chunked(void **state)
{
    (void)state;
    json_t *streams = sample(500);
    struct snapshot_records r;
    char err[256];
    assert_int_equal(snapshot_encode("sync", 4, 1234, streams, 1000, 1, &r, err, sizeof err), 0);
    assert_true(r.count > 10);
    for (size_t k = 0; k < r.count; k++)
        assert_true(r.chunk_lens[k] <= 1000 + 128);
    struct snapshot_parts p;
    snapshot_parts_init(&p);
    offer_all(&p, &r);
    int64_t gen = 0;
    json_t *back = snapshot_parts_decode(&p, &gen, err, sizeof err);
    assert_non_null(back);
    assert_true(gen == 1234);
    assert_true(json_equal(back, streams));
    json_decref(back);
    snapshot_parts_free(&p);
    snapshot_records_free(&r);
    /* One chunk when it fits. */
    assert_int_equal(snapshot_encode("sync", 4, 5, streams, SNAPSHOT_CHUNK_BYTES, 1, &r, err, sizeof err), 0);
    assert_int_equal(r.count, 1);
    snapshot_records_free(&r);
    json_decref(streams);
}

static void test_incomplete_or_unknown(void **state)
{
    (void)state;
    json_t *streams = sample(200);
    struct snapshot_records r;
    char err[256], why[256];
    int64_t gen;
    assert_int_equal(snapshot_encode("room", 0, 77, streams, 700, 1, &r, err, sizeof err), 0);
    struct snapshot_parts p;
    /* A chunk missing. */
    snapshot_parts_init(&p);
    offer_all(&p, &r);
    assert_int_equal(snapshot_parts_offer(&p, 1, NULL, 0), 0);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    assert_non_null(strstr(why, "missing"));
    snapshot_parts_free(&p);
    /* A chunk of another generation in its place. */
    struct snapshot_records other;
    assert_int_equal(snapshot_encode("room", 0, 78, streams, 700, 1, &other, err, sizeof err), 0);
    snapshot_parts_init(&p);
    offer_all(&p, &r);
    assert_int_equal(snapshot_parts_offer(&p, 2, other.chunks[2], other.chunk_lens[2]), 0);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    snapshot_parts_free(&p);
    snapshot_records_free(&other);
    /* The header removed, or none. */
    snapshot_parts_init(&p);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    offer_all(&p, &r);
    assert_int_equal(snapshot_parts_offer(&p, -1, NULL, 0), 0);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    snapshot_parts_free(&p);
    /* An unknown version. */
    snapshot_parts_init(&p);
    offer_all(&p, &r);
    const char *v2 = "{\"v\":2,\"generation\":77,\"chunks\":1}";
    assert_int_equal(snapshot_parts_offer(&p, -1, v2, strlen(v2)), 0);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    assert_non_null(strstr(why, "format"));
    /* Malformed records count as absent. */
    assert_int_equal(snapshot_parts_offer(&p, -1, "{", 1), -1);
    assert_null(snapshot_parts_decode(&p, &gen, why, sizeof why));
    assert_int_equal(snapshot_parts_offer(&p, 0, "no header line", 14), -1);
    snapshot_parts_free(&p);
    snapshot_records_free(&r);
    json_decref(streams);
}

static void test_smaller_checkpoint_after_bigger(void **state)
{
    (void)state;
    json_t *big = sample(300), *small = sample(2);
    struct snapshot_records rb, rs;
    char err[256];
    assert_int_equal(snapshot_encode("stream", 9, 100, big, 500, 1, &rb, err, sizeof err), 0);
    assert_int_equal(snapshot_encode("stream", 9, 200, small, 500, 1, &rs, err, sizeof err), 0);
    assert_true(rb.count > rs.count);
    struct snapshot_parts p;
    snapshot_parts_init(&p);
    offer_all(&p, &rb);
    offer_all(&p, &rs); /* chunks rs.count.. of the big one stay, ignored */
    int64_t gen;
    json_t *back = snapshot_parts_decode(&p, &gen, err, sizeof err);
    assert_non_null(back);
    assert_true(gen == 200);
    assert_true(json_equal(back, small));
    json_decref(back);
    snapshot_parts_free(&p);
    snapshot_records_free(&rb);
    snapshot_records_free(&rs);
    json_decref(big);
    json_decref(small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_round_trip_chunked),
        cmocka_unit_test(test_incomplete_or_unknown),
        cmocka_unit_test(test_smaller_checkpoint_after_bigger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
