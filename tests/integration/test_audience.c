/* A large audience and the sync worker, with the whole pipeline around it
 * (see sync_fixture.h).
 *
 * test_interaction_beside_backlog: 5,000 eager viewers of one stream wait
 * for Sync access, which Twilio's per-object limit lets through at about
 * 18 a second. Meanwhile a hand raised by the last of them, an invitation
 * and a speaker joining reach Sync, and a second stream on the same
 * partition plays its story: all of it while most of the backlog is still
 * there, which shows none of it waited behind the joins.
 *
 * test_provisioned_once_across_kill: 600 viewers are provisioned while
 * the sync worker is killed with SIGKILL half-way and started again; in
 * the end every viewer has its document and permissions, each written
 * exactly once, and Twilio never said 429.
 *
 * test_small_stream_eager: with the default tiers, a small stream is the
 * reference's: every viewer who joins gets a user document and read access
 * without raising a hand; beyond SYNC_EAGER_VIEWERS a viewer gets it only
 * on raising a hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/pipeline_helpers.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "timeutil.h"
#include "token.h"
#include "twilio.h"

#define BACKLOG 5000
#define CROWD 600

/* CRC-32 (IEEE), as librdkafka's default partitioner hashes keys. */
static uint32_t crc32_of(const char *s)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        crc ^= *p;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Produces user.joined (role viewer, sync_access as given) for viewers
 * prefix0 .. prefix(n-1) of stream, and waits for every ack. */
static void produce_joins(struct fixture *f, const char *stream, const char *prefix, int n, int sync_access)
{
    char err[256], identity[64];
    for (int i = 0; i < n; i++) {
        struct event ev;
        snprintf(identity, sizeof identity, "%s%d", prefix, i);
        json_t *data = json_pack("{s:s, s:s, s:b}", "identity", identity, "role", "viewer", "sync_access", sync_access);
        assert_int_equal(event_init(&ev, "user.joined", stream, "api", identity, data, err, sizeof err), 0);
        char *value = event_serialize(&ev);
        assert_non_null(value);
        struct kafka_record rec = {.topic = f->s.topic_events,
                                   .partition = RD_KAFKA_PARTITION_UA,
                                   .key = stream,
                                   .key_len = strlen(stream),
                                   .value = value,
                                   .value_len = strlen(value)};
        assert_int_equal(kafka_produce_waiting(f->producer, &rec, err, sizeof err), 0);
        free(value);
        event_free(&ev);
    }
    wait_produced(f);
}

/* How many user documents the stream's Sync service holds. */
static long user_documents(struct fixture *f, const char *stream)
{
    json_t *service = sync_service(f, stream);
    long n = 0;
    json_t *d;
    size_t i;
    json_array_foreach (json_object_get(service, "documents"), i, d)
        if (strncmp(json_string_value(json_object_get(d, "unique_name")), "user-", 5) == 0)
            n++;
    json_decref(service);
    return n;
}

/* The partition of the first event keyed stream on stagehand.events. */
static int partition_of(struct fixture *f, const char *stream)
{
    char err[256];
    struct kafka_reader_options opt = {.brokers = f->s.brokers, .topic = f->s.topic_events};
    struct kafka_reader *r = kafka_reader_new(&opt, err, sizeof err);
    assert_non_null(r);
    int partition = -1;
    while (partition < 0 && !kafka_reader_caught_up(r)) {
        rd_kafka_message_t *msg = kafka_reader_poll(r, 100);
        if (msg && msg->key_len == strlen(stream) && memcmp(msg->key, stream, msg->key_len) == 0)
            partition = (int)msg->partition;
        if (msg)
            rd_kafka_message_destroy(msg);
    }
    kafka_reader_close(r);
    return partition;
}

static void create_stream(struct fixture *f, const char *host, const char *stream)
{
    char body[160];
    snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"%s\"}", host, stream);
    assert_int_equal(api(f, "/create-stream", body, NULL), 200);
}

static void call(struct fixture *f, const char *path, const char *identity, const char *extra)
{
    char body[256];
    snprintf(body, sizeof body, "{\"user_identity\":\"%s\",\"stream_name\":\"%s\"%s}", identity, f->stream,
             extra ? extra : "");
    assert_int_equal(api(f, path, body, NULL), 200);
}

static void wait_user_joined_folded(struct fixture *f, double at_least)
{
    for (int i = 0; i < 1200; i++) {
        if (metric(f, 2, "stagehand_worker_events_total{type=\"user.joined\",outcome=\"applied\"}") >= at_least)
            return;
        usleep(50 * 1000);
    }
    fail_msg("the sync worker never took %g user.joined", at_least);
}

/* --- interaction beside a backlog ---------------------------------------------------------------- */

static const char *const backlog_env[] = {"SYNC_EAGER_VIEWERS=1000000", "COUNT_INTERVAL_MS=200", "HOST_GRACE_S=600",
                                          NULL};

static void test_interaction_beside_backlog(void **state)
{
    struct fixture *f = *state;
    f->stream = "big";
    create_stream(f, "hostA", "big");
    /* A second stream whose key lands on big's partition. */
    char small[32] = "";
    for (int i = 0; i < 100 && !small[0]; i++) {
        char name[24];
        snprintf(name, sizeof name, "small%d", i);
        if (crc32_of(name) % 3 == crc32_of("big") % 3)
            snprintf(small, sizeof small, "%s", name);
    }
    assert_true(small[0] != '\0');

    produce_joins(f, "big", "v", BACKLOG, 1);
    wait_user_joined_folded(f, BACKLOG);

    /* The last viewer raises a hand, the host invites another, a third
     * goes on stage: all of it shows in Sync while the joins still wait. */
    call(f, "/raise-hand", "v4999", ",\"hand_raised\":true");
    call(f, "/send-speaker-invite", "v4998", NULL);
    call(f, "/join-stream-as-speaker", "v4997", NULL);
    room_join(f, "hostA");
    room_join(f, "v4997");
    expect_items(f, "raised_hands", 1, "v4999", NULL);
    expect_doc(f, "user-v4998", "speaker_invite", 1);
    expect_doc(f, "user-v4999", "speaker_invite", 0); /* the hand gave access: the invitation can come */
    expect_items(f, "speakers", 2, "v4997", NULL);
    long provisioned = user_documents(f, "big");
    print_message("# big: %ld of %d viewers provisioned when the hand, the invitation and the speaker showed\n",
                  provisioned, BACKLOG);
    assert_true(provisioned < BACKLOG / 2);

    /* The second stream's story on the same partition. */
    f->stream = small;
    create_stream(f, "hostB", small);
    call(f, "/join-stream-as-viewer", "w1", NULL);
    call(f, "/viewer-connected-to-player", "w1", NULL);
    call(f, "/raise-hand", "w1", ",\"hand_raised\":true");
    expect_items(f, "raised_hands", 1, "w1", NULL);
    expect_doc(f, "stream", "viewer_count", 1);
    call(f, "/send-speaker-invite", "w1", NULL);
    expect_doc(f, "user-w1", "speaker_invite", 1);
    assert_int_equal(partition_of(f, small), partition_of(f, "big"));
    provisioned = user_documents(f, "big");
    print_message("# big: %ld of %d viewers provisioned when the second stream's story was done\n", provisioned,
                  BACKLOG);
    assert_true(provisioned < BACKLOG / 2);

    /* The backlog is in the metrics and the state record the ingress shows. */
    double backlog = -1;
    for (int i = 0; i < 100 && backlog < 0; i++) {
        backlog = metric(f, 2, "stagehand_sync_provisioning_backlog{stream=\"big\"}");
        usleep(50 * 1000);
    }
    assert_true(backlog >= BACKLOG / 2);
    json_t *stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(stats);
}

/* --- provisioned once, across a kill ----------------------------------------------------------- */

static const char *const crowd_env[] = {"SYNC_EAGER_VIEWERS=1000000", "SYNC_WRITES_PER_S=40", "COUNT_INTERVAL_MS=200",
                                        "HOST_GRACE_S=600", NULL};
static const char *const crowd_emulator[] = {"--sync-write-rate", "40", "--sync-create-rate", "40", NULL};

/* The emulator's write count per object SID, and the SIDs of the crowd
 * stream's objects by unique name. */
static long writes_of(json_t *stats, const char *sid)
{
    return (long)json_integer_value(json_object_get(json_object_get(stats, "sync_writes"), sid));
}

static const char *sid_of_map(json_t *service, const char *map)
{
    json_t *m;
    size_t i;
    json_array_foreach (json_object_get(service, "maps"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "unique_name")), map) == 0)
            return json_string_value(json_object_get(m, "sid"));
    return NULL;
}

static void test_provisioned_once_across_kill(void **state)
{
    struct fixture *f = *state;
    f->stream = "crowd";
    create_stream(f, "host", "crowd");
    produce_joins(f, "crowd", "c", CROWD, 1);
    long seen = 0;
    for (int i = 0; i < 1200 && seen < CROWD / 4; i++) {
        seen = user_documents(f, "crowd");
        usleep(20 * 1000);
    }
    assert_true(seen >= CROWD / 4);
    assert_int_equal(process_signal(&f->workers[2], SIGKILL), 0);
    assert_int_equal(process_wait(&f->workers[2], 10000), 0);
    long at_kill = user_documents(f, "crowd");
    print_message("# crowd: killed with %ld of %d documents made\n", at_kill, CROWD);
    assert_true(at_kill < CROWD);
    fixture_restart_worker(f, 2);

    /* Every viewer provisioned: CROWD documents and, on raised_hands, the
     * host's permission and one per viewer (nothing else writes it here). */
    json_t *service = NULL, *stats = NULL;
    long docs = 0, hands_writes = 0;
    for (int i = 0; i < 1200; i++) {
        json_decref(service);
        json_decref(stats);
        service = sync_service(f, "crowd");
        stats = emulator_get(f, "/_emulator/stats");
        docs = user_documents(f, "crowd");
        hands_writes = writes_of(stats, sid_of_map(service, "raised_hands"));
        if (docs == CROWD && hands_writes >= 1 + CROWD)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(docs, CROWD);
    usleep(1000 * 1000); /* anything written twice would show by now */
    json_decref(service);
    json_decref(stats);
    service = sync_service(f, "crowd");
    stats = emulator_get(f, "/_emulator/stats");
    assert_int_equal(writes_of(stats, sid_of_map(service, "raised_hands")), 1 + CROWD);
    assert_int_equal(writes_of(stats, sid_of_map(service, "speakers")), 2 + CROWD); /* + the host's item */
    /* Each document: made with its data, then its permission. */
    json_t *d;
    size_t i;
    json_array_foreach (json_object_get(service, "documents"), i, d) {
        const char *name = json_string_value(json_object_get(d, "unique_name"));
        if (strncmp(name, "user-", 5) == 0 && writes_of(stats, json_string_value(json_object_get(d, "sid"))) != 2)
            fail_msg("%s was written %ld times, not twice", name,
                     writes_of(stats, json_string_value(json_object_get(d, "sid"))));
    }
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(service);
    json_decref(stats);
}

/* --- a small stream --------------------------------------------------------------------------- */

static const char *const small_env[] = {"SYNC_EAGER_VIEWERS=3", "COUNT_INTERVAL_MS=200", "HOST_GRACE_S=600", NULL};

static void test_small_stream_eager(void **state)
{
    struct fixture *f = *state;
    f->stream = "cosy";
    create_stream(f, "host", "cosy");
    const char *viewers[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        call(f, "/join-stream-as-viewer", viewers[i], NULL);
        call(f, "/viewer-connected-to-player", viewers[i], NULL);
    }
    /* The first three, as the reference did at each join. */
    expect_doc(f, "user-a", "speaker_invite", 0);
    expect_doc(f, "user-b", "speaker_invite", 0);
    expect_doc(f, "user-c", "speaker_invite", 0);
    expect_doc(f, "stream", "viewer_count", 4);
    usleep(500 * 1000);
    assert_int_equal(user_documents(f, "cosy"), 3);
    /* The fourth gets access by raising a hand. */
    call(f, "/raise-hand", "d", ",\"hand_raised\":true");
    expect_items(f, "raised_hands", 1, "d", NULL);
    expect_doc(f, "user-d", "speaker_invite", 0);
    call(f, "/send-speaker-invite", "d", NULL);
    expect_doc(f, "user-d", "speaker_invite", 1);
}

static int setup_backlog(void **state)
{
    return setup_sync_pipeline(state, backlog_env, NULL);
}

static int setup_crowd(void **state)
{
    return setup_sync_pipeline(state, crowd_env, crowd_emulator);
}

static int setup_small(void **state)
{
    return setup_sync_pipeline(state, small_env, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_stream_eager, setup_small, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_interaction_beside_backlog, setup_backlog, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_provisioned_once_across_kill, setup_crowd, fixture_teardown),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
