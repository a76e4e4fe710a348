/* A broker dies under a join burst (make test-cluster; not in make test).
 * Three Apache Kafka nodes on loopback (tools/kafka/kafka.sh start-cluster:
 * replication factor 3, min.insync.replicas 2) under the whole pipeline.
 * SENDERS threads post /viewer-connected-to-player for VIEWERS viewers;
 * a quarter of the way in, the leader of the stream's partition (from
 * rd_kafka_metadata) is killed with SIGKILL. Then:
 *   - every viewer answered 2xx has its event on the topic exactly once
 *     (the idempotent producer wrote no duplicate while it retried);
 *   - the others got 503 (nothing else); asked again, they get 2xx;
 *   - the stream's viewer_count in Sync is exactly VIEWERS, with the same
 *     ingress and workers (none restarted, none exited);
 *   - it prints how long the partition had no leader and how long no
 *     request was answered 2xx. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define VIEWERS 3000
#define SENDERS 4
#define STREAM "crowd"

static char cluster_dir[64];
static int status_of[VIEWERS];
static int64_t answered_at[VIEWERS], sent_at[VIEWERS];
static atomic_int answered;

static int run_kafka_sh(const char *args)
{
    const char *root = getenv("STAGEHAND_ROOT");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "KAFKA_NO_TOPICS=1 sh '%s/tools/kafka/kafka.sh' %s", root ? root : ".", args);
    return system(cmd);
}

static int cluster_setup(void **state)
{
    char args[256], path[128], bootstrap[256] = "";
    snprintf(cluster_dir, sizeof cluster_dir, "/tmp/stagehand-cluster.XXXXXX");
    assert_non_null(mkdtemp(cluster_dir));
    int64_t t0 = time_monotonic_ms();
    snprintf(args, sizeof args, "start-cluster %s 0 >/dev/null", cluster_dir);
    assert_int_equal(run_kafka_sh(args), 0);
    snprintf(path, sizeof path, "%s/bootstrap", cluster_dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(bootstrap, sizeof bootstrap, fp));
    fclose(fp);
    bootstrap[strcspn(bootstrap, "\n")] = 0;
    printf("# three-node cluster %s up in %.1f s\n", bootstrap, (time_monotonic_ms() - t0) / 1000.0);
    setenv("STAGEHAND_TEST_KAFKA", bootstrap, 1);
    setenv("STAGEHAND_TEST_KAFKA_REPLICATION", "3", 1);
    return setup_whole_pipeline(state, NULL, NULL);
}

static int cluster_teardown(void **state)
{
    char args[256];
    snprintf(args, sizeof args, "stop-cluster %s", cluster_dir);
    int rc = fixture_teardown(state);
    run_kafka_sh(args);
    if (!getenv("STAGEHAND_KEEP_LOGS")) {
        snprintf(args, sizeof args, "rm -rf '%s'", cluster_dir);
        if (system(args) != 0)
            fprintf(stderr, "could not remove %s\n", cluster_dir);
    } else {
        fprintf(stderr, "# the cluster's logs are kept in %s\n", cluster_dir);
    }
    return rc;
}

static long join(struct fixture *f, int i)
{
    char body[96];
    snprintf(body, sizeof body, "{\"user_identity\":\"cv-%05d\",\"stream_name\":\"" STREAM "\"}", i);
    return api(f, "/viewer-connected-to-player", body, NULL);
}

struct sender {
    struct fixture *f;
    int first;
};

static void *send_joins(void *arg)
{
    struct sender *s = arg;
    for (int i = s->first; i < VIEWERS; i += SENDERS) {
        sent_at[i] = time_monotonic_ms();
        status_of[i] = (int)join(s->f, i);
        answered_at[i] = time_monotonic_ms();
        atomic_fetch_add(&answered, 1);
        usleep(2000); /* a steady burst, long enough to span the failure */
    }
    return NULL;
}

/* The leader (node id) of the partition of the stream's key on the events
 * topic, or -1 when it has none; *partition gets the partition. */
static int32_t stream_leader(struct fixture *f, int32_t *partition)
{
    rd_kafka_t *rk = kafka_producer_handle(f->producer);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, f->s.topic_events, NULL);
    assert_non_null(rkt);
    const struct rd_kafka_metadata *md = NULL;
    int32_t leader = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const rd_kafka_metadata_topic_t *t = &md->topics[0];
        if (t->partition_cnt > 0) {
            /* librdkafka's default partitioner for keyed records. */
            *partition = rd_kafka_msg_partitioner_consistent_random(rkt, STREAM, strlen(STREAM), t->partition_cnt, NULL,
                                                                    NULL);
            for (int i = 0; i < t->partition_cnt; i++)
                if (t->partitions[i].id == *partition && t->partitions[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                    leader = t->partitions[i].leader;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return leader;
}

static pid_t node_pid(int32_t node)
{
    char path[128];
    snprintf(path, sizeof path, "%s/node%d/kafka.pid", cluster_dir, (int)node);
    FILE *fp = fopen(path, "r");
    long pid = 0;
    if (fp) {
        if (fscanf(fp, "%ld", &pid) != 1)
            pid = 0;
        fclose(fp);
    }
    return (pid_t)pid;
}

/* How many viewer.connected events each viewer has on the events topic. */
static void count_events(struct fixture *f, int counts[VIEWERS])
{
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_events};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    memset(counts, 0, sizeof(int) * VIEWERS);
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *m = kafka_reader_poll(r, 100);
        if (!m)
            continue;
        char type[64];
        if (!m->err && kafka_header_string(m, "type", type, sizeof type) == 0 &&
            strcmp(type, "viewer.connected") == 0) {
            char *text = strndup(m->payload, m->len);
            assert_non_null(text);
            const char *at = strstr(text, "\"cv-");
            if (at) {
                int i = atoi(at + 4);
                if (i >= 0 && i < VIEWERS)
                    counts[i]++;
            }
            free(text);
        }
        rd_kafka_message_destroy(m);
    }
    kafka_reader_close(r);
}

static long viewer_count(struct fixture *f)
{
    json_t *state = emulator_get(f, "/_emulator/state");
    long n = -1;
    size_t i, j;
    json_t *svc, *doc;
    json_array_foreach (json_object_get(state, "sync_services"), i, svc)
        json_array_foreach (json_object_get(svc, "documents"), j, doc) {
            const char *u = json_string_value(json_object_get(doc, "unique_name"));
            if (u && strcmp(u, "stream") == 0)
                n = (long)json_integer_value(json_object_get(json_object_get(doc, "data"), "viewer_count"));
        }
    json_decref(state);
    return n;
}

static void test_leader_killed_mid_burst(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(api(f, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"" STREAM "\"}", NULL),
                     200);
    pid_t ingress_pid = f->s.ingress.pid, worker_pid[ROLES];
    for (int r = 0; r < ROLES; r++)
        worker_pid[r] = f->workers[r].pid;
    int32_t partition = -1;
    int32_t leader = stream_leader(f, &partition);
    assert_true(leader >= 1 && leader <= 3);

    pthread_t threads[SENDERS];
    struct sender senders[SENDERS];
    int64_t started = time_monotonic_ms();
    for (int i = 0; i < SENDERS; i++) {
        senders[i] = (struct sender){f, i};
        assert_int_equal(pthread_create(&threads[i], NULL, send_joins, &senders[i]), 0);
    }
    while (atomic_load(&answered) < VIEWERS / 4)
        usleep(1000);
    pid_t victim = node_pid(leader);
    assert_true(victim > 0);
    int64_t killed = time_monotonic_ms();
    assert_int_equal(kill(victim, SIGKILL), 0);
    printf("# killed node %d (pid %ld), leader of partition %d, after %d answers in %.1f s\n", (int)leader,
           (long)victim, (int)partition, atomic_load(&answered), (killed - started) / 1000.0);

    /* A new leader, as the metadata says. */
    int32_t now = -1;
    int64_t elected = 0;
    while (time_monotonic_ms() - killed < 60000) {
        now = stream_leader(f, &partition);
        if (now >= 1 && now != leader) {
            elected = time_monotonic_ms();
            break;
        }
        usleep(100 * 1000);
    }
    assert_true(elected > 0);
    for (int i = 0; i < SENDERS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    int64_t ended = time_monotonic_ms();

    /* Answers: 2xx or 503 (with Retry-After), nothing else. The gap: from
     * the kill to the first 2xx for a request sent after it. */
    int ok = 0, unavailable = 0;
    int64_t first_ok_after = 0;
    for (int i = 0; i < VIEWERS; i++) {
        if (status_of[i] == 200) {
            ok++;
            if (sent_at[i] >= killed && (!first_ok_after || answered_at[i] < first_ok_after))
                first_ok_after = answered_at[i];
        } else if (status_of[i] == 503) {
            unavailable++;
        } else {
            fail_msg("viewer %d was answered %d", i, status_of[i]);
        }
    }
    assert_true(first_ok_after > 0);
    printf("# node %d leads partition %d %.2f s after the kill; the first 2xx for a request sent after the kill "
           "came %.2f s after it\n",
           (int)now, (int)partition, (elected - killed) / 1000.0, (first_ok_after - killed) / 1000.0);
    printf("# %d viewers in %.1f s: %d answered 2xx, %d answered 503\n", VIEWERS, (ended - started) / 1000.0, ok,
           unavailable);

    /* No duplicate of a request answered 2xx. */
    static int counts[VIEWERS];
    count_events(f, counts);
    int landed_503 = 0;
    for (int i = 0; i < VIEWERS; i++) {
        if (status_of[i] == 200 && counts[i] != 1)
            fail_msg("viewer %d was answered 2xx and has %d events", i, counts[i]);
        landed_503 += status_of[i] == 503 && counts[i] > 0;
    }
    printf("# every 2xx has its event once; %d of the %d answered 503 landed all the same\n", landed_503, unavailable);

    /* The clients answered 503 ask again: the same processes answer 2xx. */
    for (int i = 0; i < VIEWERS; i++) {
        if (status_of[i] == 200)
            continue;
        int64_t until = time_monotonic_ms() + 30000;
        while ((status_of[i] = (int)join(f, i)) != 200 && time_monotonic_ms() < until)
            usleep(200 * 1000);
        assert_int_equal(status_of[i], 200);
    }

    /* Sync shows every viewer once. */
    long count = -1;
    for (int i = 0; i < 1200 && count != VIEWERS; i++) {
        count = viewer_count(f);
        if (count != VIEWERS)
            usleep(100 * 1000);
    }
    assert_int_equal(count, VIEWERS);
    usleep(1000 * 1000); /* nothing more comes */
    assert_int_equal(viewer_count(f), VIEWERS);
    printf("# viewer_count %ld in Sync %.1f s after the burst ended\n", count, (time_monotonic_ms() - ended) / 1000.0);

    /* Nobody restarted: the same pids, all alive. */
    assert_int_equal(f->s.ingress.pid, ingress_pid);
    assert_int_equal(kill(ingress_pid, 0), 0);
    for (int r = 0; r < ROLES; r++) {
        assert_int_equal(f->workers[r].pid, worker_pid[r]);
        assert_int_equal(kill(worker_pid[r], 0), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leader_killed_mid_burst, cluster_setup, cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
