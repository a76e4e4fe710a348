/* stagehand-replay offsets: makes a worker group apply its events again
 * from a time (or from the beginning of the log).
 *
 *   offsets --group G (--to-time TIME | --to-beginning)
 *
 * A worker always re-reads its partitions from offset 0 on assignment,
 * folding without side effects up to the last offset it applied; so the
 * group's committed offsets alone would change nothing. This command
 * commits, for every partition of stagehand.events, the first offset at or
 * after TIME with the metadata KAFKA_REAPPLY_MARK; a worker that finds that
 * mark treats everything from there as not yet applied (and its own next
 * commit replaces the mark). Side effects are idempotent, so what Twilio
 * already has is not written twice; what went missing is made again.
 *
 * The group's workers must be stopped: the command joins the group itself
 * (a commit from outside a group is not accepted everywhere), and goes on
 * only when it is the one member and holds every partition. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "kafka.h"
#include "replay.h"

#define TIMEOUT_MS 10000

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-replay offsets --group G (--to-time TIME | --to-beginning)\n"
                 "makes the stopped worker group G (stagehand-room, stagehand-stream, stagehand-sync)\n"
                 "apply again every event of stagehand.events from TIME on\n");
}

/* The partitions this member holds: -1 until the group's first answer. */
static int assigned_count = -1;

/* The workers' protocol (cooperative-sticky, incremental): a group's
 * members must all speak the same one. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
                         void *opaque)
{
    (void)opaque;
    rd_kafka_error_t *error;
    if (assigned_count < 0)
        assigned_count = 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        error = rd_kafka_incremental_assign(rk, partitions);
        assigned_count += partitions->cnt;
    } else {
        error = rd_kafka_incremental_unassign(rk, partitions);
        assigned_count -= partitions->cnt;
    }
    if (error) {
        fprintf(stderr, "stagehand-replay: %s\n", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

static rd_kafka_t *client_for(const char *brokers, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, sizeof err) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "stagehand-replay: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "stagehand-replay: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Joins the group and waits for its answer. Returns how many partitions
 * of the events topic this member holds (0 when the others hold them all),
 * or -1. */
static int join_group(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, TOPIC_EVENTS, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        fprintf(stderr, "stagehand-replay: cannot join the group: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    for (int waited_ms = 0; waited_ms < 30000 && assigned_count < 0; waited_ms += 200) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m)
            rd_kafka_message_destroy(m); /* nothing is read: positions do not matter here */
    }
    if (assigned_count < 0)
        fprintf(stderr, "stagehand-replay: the group did not answer within 30 s\n");
    return assigned_count;
}

/* Every partition of the events topic, or NULL (reported). */
static rd_kafka_topic_partition_list_t *all_partitions(rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, TOPIC_EVENTS, NULL);
    rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS) : RD_KAFKA_RESP_ERR__FAIL;
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "stagehand-replay: cannot read the partitions of %s: %s\n", TOPIC_EVENTS,
                rd_kafka_err2str(e ? e : md->topics[0].err));
        if (md)
            rd_kafka_metadata_destroy(md);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(list, TOPIC_EVENTS, md->topics[0].partitions[i].id);
    rd_kafka_metadata_destroy(md);
    return list;
}

/* Fills each partition's offset: the first at or after time_ms (the end
 * when there is none), or the log's beginning when time_ms < 0. */
static int find_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int64_t time_ms)
{
    if (time_ms >= 0) {
        for (int i = 0; i < list->cnt; i++)
            list->elems[i].offset = time_ms;
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, list, TIMEOUT_MS);
        if (e) {
            fprintf(stderr, "stagehand-replay: cannot find offsets for the time: %s\n", rd_kafka_err2str(e));
            return -1;
        }
    }
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        if (time_ms >= 0 && tp->offset >= 0)
            continue;
        int64_t low, high;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &low, &high, TIMEOUT_MS);
        if (e) {
            fprintf(stderr, "stagehand-replay: cannot read partition %d's offsets: %s\n", (int)tp->partition,
                    rd_kafka_err2str(e));
            return -1;
        }
        tp->offset = time_ms >= 0 ? high : low; /* nothing at or after the time: nothing to apply again */
    }
    return 0;
}

static int commit_marked(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        tp->metadata = strdup(KAFKA_REAPPLY_MARK);
        if (!tp->metadata) {
            fprintf(stderr, "stagehand-replay: out of memory\n");
            return -1;
        }
        tp->metadata_size = strlen(KAFKA_REAPPLY_MARK);
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, list, 0);
    for (int i = 0; !e && i < list->cnt; i++)
        e = list->elems[i].err;
    if (e) {
        fprintf(stderr, "stagehand-replay: the commit was refused (%s); are the group's workers stopped?\n",
                rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int replay_offsets(int argc, char **argv, const char *brokers)
{
    const char *group = NULL;
    int64_t time_ms = -1;
    int beginning = 0, bad = 0;
    static const struct option options[] = {{"group", required_argument, NULL, 'g'},
                                            {"to-time", required_argument, NULL, 't'},
                                            {"to-beginning", no_argument, NULL, 'b'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'g':
            group = optarg;
            break;
        case 't':
            bad |= replay_parse_time("--to-time", optarg, &time_ms);
            break;
        case 'b':
            beginning = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc || !group || !*group || beginning == (time_ms >= 0)) {
        usage(stderr);
        return 2;
    }
    rd_kafka_t *rk = client_for(brokers, group);
    if (!rk)
        return 1;
    int rc = 1;
    rd_kafka_topic_partition_list_t *list = NULL;
    if ((list = all_partitions(rk)) && find_offsets(rk, list, time_ms) == 0) {
        int held = join_group(rk);
        if (held >= 0 && held < list->cnt)
            fprintf(stderr,
                    "stagehand-replay: group %s has other members (this one holds %d of %d partitions): "
                    "stop its workers first\n",
                    group, held, list->cnt);
        else if (held == list->cnt && commit_marked(rk, list) == 0)
            rc = 0;
        rd_kafka_consumer_close(rk);
    }
    if (rc == 0)
        for (int i = 0; i < list->cnt; i++)
            printf("partition %d: applies again from offset %lld\n", (int)list->elems[i].partition,
                   (long long)list->elems[i].offset);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return rc;
}
