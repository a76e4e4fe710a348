/* stagehand-topics: waits for a Kafka cluster and creates stagehand's three
 * topics on it, as compose/docker-compose.yml's kafka-init does:
 *
 *   KAFKA_TOPIC_EVENTS  --partitions, cleanup.policy=delete, retention.ms
 *   KAFKA_TOPIC_DLQ     --partitions, cleanup.policy=delete, retention.ms
 *   KAFKA_TOPIC_STATE   --state-partitions, cleanup.policy=compact
 *
 * A topic that exists already is left as it is (its partition count must
 * match). tools/kafka/kafka.sh runs it after starting the broker; the
 * test fixtures call kafka_create_topics() themselves. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "settings.h"

#define MAX_STATE_CONFIGS 16

static void usage(FILE *out)
{
    fprintf(out, "usage: stagehand-topics [options]\n"
                 "waits until Kafka answers, then creates $KAFKA_TOPIC_EVENTS, $KAFKA_TOPIC_DLQ and\n"
                 "$KAFKA_TOPIC_STATE (compacted); names default to stagehand.events, .dlq, .state\n"
                 "  --brokers B            bootstrap servers (default $KAFKA_BROKERS)\n"
                 "  --partitions N         partitions of the events and DLQ topics (default 12)\n"
                 "  --state-partitions N   partitions of the state topic (default: --partitions)\n"
                 "  --replication N        replication factor (default: the broker's)\n"
                 "  --retention-ms MS      retention of the events and DLQ topics (default 604800000, 7 days)\n"
                 "  --state-config K=V     another config of the state topic (repeatable)\n"
                 "  --wait-ms MS           how long to wait for the cluster (default 60000)\n"
                 "  --wait-only            only wait for the cluster\n");
}

static int read_int(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *brokers = settings_kafka_value("KAFKA_BROKERS");
    long partitions = 12, state_partitions = 0, replication = 0, wait_ms = 60000;
    long retention_ms = 604800000L;
    int wait_only = 0;
    const char *state_configs[MAX_STATE_CONFIGS + 2] = {"cleanup.policy=compact"};
    size_t n_state = 1;
    static const struct option options[] = {{"brokers", required_argument, NULL, 'b'},
                                            {"partitions", required_argument, NULL, 'p'},
                                            {"state-partitions", required_argument, NULL, 's'},
                                            {"replication", required_argument, NULL, 'r'},
                                            {"retention-ms", required_argument, NULL, 't'},
                                            {"state-config", required_argument, NULL, 'c'},
                                            {"wait-ms", required_argument, NULL, 'w'},
                                            {"wait-only", no_argument, NULL, 'o'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            brokers = optarg;
            break;
        case 'p':
            bad |= read_int(optarg, 1, 10000, &partitions);
            break;
        case 's':
            bad |= read_int(optarg, 1, 10000, &state_partitions);
            break;
        case 'r':
            bad |= read_int(optarg, 1, 100, &replication);
            break;
        case 't':
            bad |= read_int(optarg, -1, 1L << 40, &retention_ms);
            break;
        case 'w':
            bad |= read_int(optarg, 0, 3600000, &wait_ms);
            break;
        case 'o':
            wait_only = 1;
            break;
        case 'c':
            if (n_state >= MAX_STATE_CONFIGS || !strchr(optarg, '='))
                bad = 1;
            else
                state_configs[n_state++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (bad || optind != argc) {
        usage(stderr);
        return 2;
    }
    log_init("stagehand-topics", LOG_LEVEL_WARN);
    char err[512];
    if (kafka_wait_ready(brokers, NULL, (int)wait_ms, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-topics: %s\n", err);
        return 1;
    }
    if (wait_only) {
        printf("kafka ready at %s\n", brokers);
        return 0;
    }
    char retention[32];
    snprintf(retention, sizeof retention, "retention.ms=%ld", retention_ms);
    const char *const log_configs[] = {"cleanup.policy=delete", retention, NULL};
    state_configs[n_state] = NULL;
    struct kafka_topic_spec topics[] = {
        {TOPIC_EVENTS, (int)partitions, (int)replication, log_configs},
        {TOPIC_DLQ, (int)partitions, (int)replication, log_configs},
        {TOPIC_STATE, (int)(state_partitions ? state_partitions : partitions), (int)replication, state_configs},
    };
    if (kafka_create_topics(brokers, NULL, topics, 3, 30000, err, sizeof err) < 0) {
        fprintf(stderr, "stagehand-topics: %s\n", err);
        return 1;
    }
    printf("topics ready at %s: %s %s %s\n", brokers, TOPIC_EVENTS, TOPIC_DLQ, TOPIC_STATE);
    return 0;
}
