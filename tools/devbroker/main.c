/* stagehand-devbroker: a Kafka broker for development and tests, built on
 * librdkafka's in-process mock cluster (real Kafka protocol on localhost
 * TCP ports, in memory only).
 *
 * It creates stagehand.events, stagehand.dlq and stagehand.state, prints the
 * bootstrap.servers string as the only line on stdout (and writes it to
 * --bootstrap-file, atomically), logs JSON lines to stderr, and runs until
 * SIGTERM or SIGINT, then removes the bootstrap file and exits 0.
 *
 * What the librdkafka 2.0.2 mock does not model, and what clients should
 * know:
 * - No log compaction: stagehand.state keeps every record (readers must
 *   take the last record per key, which they do anyway).
 * - No CreateTopics: other topics are auto-created with 4 partitions when a
 *   client asks for them.
 * - Consumer groups: the first join of an empty group waits 3 s (the mock's
 *   fixed group.initial.rebalance.delay.ms); a later join waits
 *   session.timeout.ms - 1 s of the joining client for the others to
 *   rejoin, and a cooperative handover takes two such rounds. Nothing in the
 *   mock's API tunes this (the coordinator itself needs no setup: groups are
 *   mapped to brokers by hashing), so clients of the dev broker should use a
 *   short session.timeout.ms (e.g. 6000, heartbeat.interval.ms 500).
 * - Replication is nominal: replicas are min(3, brokers), nothing fails over
 *   on its own. */
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"
#include "settings.h"

#define MAX_PARTITIONS 1000
#define MAX_BROKERS 16

struct options {
    int partitions;
    int state_partitions; /* 0: same as partitions */
    int brokers;
    const char *bootstrap_file;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: stagehand-devbroker [options]\n"
            "  --partitions N        partitions of stagehand.events and stagehand.dlq "
            "(default 12)\n"
            "  --state-partitions N  partitions of stagehand.state (default: --partitions;\n"
            "                        not compacted: the mock does not model compaction)\n"
            "  --brokers N           mock brokers in the cluster (default 1, max %d)\n"
            "  --bootstrap-file PATH also write bootstrap.servers to PATH (removed on exit)\n"
            "  --help                show this help\n"
            "Prints bootstrap.servers on stdout and runs until SIGTERM or SIGINT.\n"
            "LOG_LEVEL (debug, info, warn, error) sets the log threshold.\n",
            MAX_BROKERS);
}

/* Parses a decimal integer in [min, max]. Returns 0, or -1. */
static int parse_int(const char *s, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Returns 0, 1 when --help was asked, or -1 (message on stderr). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"partitions", required_argument, NULL, 'p'},
        {"state-partitions", required_argument, NULL, 's'},
        {"brokers", required_argument, NULL, 'b'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->partitions = 12;
    o->state_partitions = 0;
    o->brokers = 1;
    o->bootstrap_file = NULL;
    opterr = 0; /* our own messages below */
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_int(optarg, 1, MAX_PARTITIONS, &o->partitions) != 0) {
                fprintf(stderr, "--partitions: expected 1..%d, got \"%s\"\n", MAX_PARTITIONS, optarg);
                return -1;
            }
            break;
        case 's':
            if (parse_int(optarg, 1, MAX_PARTITIONS, &o->state_partitions) != 0) {
                fprintf(stderr, "--state-partitions: expected 1..%d, got \"%s\"\n", MAX_PARTITIONS, optarg);
                return -1;
            }
            break;
        case 'b':
            if (parse_int(optarg, 1, MAX_BROKERS, &o->brokers) != 0) {
                fprintf(stderr, "--brokers: expected 1..%d, got \"%s\"\n", MAX_BROKERS, optarg);
                return -1;
            }
            break;
        case 'f':
            if (!optarg[0]) {
                fprintf(stderr, "--bootstrap-file: empty path\n");
                return -1;
            }
            o->bootstrap_file = optarg;
            break;
        case 'h':
            return 1;
        case ':':
            fprintf(stderr, "option \"%s\" needs a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "unknown option \"%s\"\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (o->state_partitions == 0)
        o->state_partitions = o->partitions;
    return 0;
}

/* Writes line + "\n" to path through a temporary file (path.tmp.PID) and
 * rename(2), so a reader sees either no file or the whole line. Returns 0,
 * or -1 with err. */
static int write_file_atomically(const char *path, const char *line, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot create the temporary file: %s", strerror(errno));
        return -1;
    }
    int ok = fprintf(f, "%s\n", line) >= 0;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        snprintf(err, errlen, "cannot write the temporary file: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename the temporary file: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions, int brokers)
{
    int replicas = brokers < 3 ? brokers : 3;
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, partitions, replicas);
    if (e) {
        log_error("cannot create topic", "topic", name, "error", rd_kafka_err2str(e), NULL);
        return -1;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", partitions);
    log_info("topic created", "topic", name, "partitions", count, NULL);
    return 0;
}

/* Blocks until SIGTERM or SIGINT (which are blocked in every thread). */
static int wait_for_stop_signal(const sigset_t *set)
{
    for (;;) {
        int sig;
        if (sigwait(set, &sig) == 0)
            return sig;
    }
}

int main(int argc, char **argv)
{
    enum log_level level = LOG_LEVEL_INFO;
    const char *env_level = getenv("LOG_LEVEL");
    if (env_level && log_level_parse(env_level, &level) != 0)
        level = LOG_LEVEL_INFO;
    log_init("devbroker", level);

    struct options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed == 1) {
        usage(stdout);
        return 0;
    }
    if (parsed != 0) {
        usage(stderr);
        return 2;
    }

    /* Block the stop signals before librdkafka starts its threads, so they
     * inherit the mask and only sigwait() below sees the signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kafka_conf_set_log(conf);
    if (rd_kafka_conf_set(conf, "client.id", "stagehand-devbroker", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        log_error("cannot configure the mock cluster handle", "reason", errstr, NULL);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        log_error("cannot create the mock cluster handle", "reason", errstr, NULL);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o.brokers);
    if (!mc) {
        log_error("cannot create the mock cluster", NULL);
        rd_kafka_destroy(rk);
        return 1;
    }

    int rc = 0;
    if (create_topic(mc, TOPIC_EVENTS, o.partitions, o.brokers) != 0 ||
        create_topic(mc, TOPIC_DLQ, o.partitions, o.brokers) != 0 ||
        create_topic(mc, TOPIC_STATE, o.state_partitions, o.brokers) != 0)
        rc = 1;

    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    int wrote_file = 0;
    if (rc == 0 && o.bootstrap_file) {
        if (write_file_atomically(o.bootstrap_file, bootstrap, errstr, sizeof errstr) != 0) {
            log_error("cannot write the bootstrap file", "path", o.bootstrap_file, "reason", errstr, NULL);
            rc = 1;
        } else {
            wrote_file = 1;
        }
    }
    if (rc == 0) {
        printf("%s\n", bootstrap);
        fflush(stdout);
        char brokers[16];
        snprintf(brokers, sizeof brokers, "%d", o.brokers);
        log_info("dev broker ready", "bootstrap_servers", bootstrap, "brokers", brokers, "bootstrap_file",
                 o.bootstrap_file ? o.bootstrap_file : "", NULL);

        int sig = wait_for_stop_signal(&stop);
        log_info("stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    }

    if (wrote_file && unlink(o.bootstrap_file) != 0 && errno != ENOENT)
        log_warn("cannot remove the bootstrap file", "path", o.bootstrap_file, "reason", strerror(errno), NULL);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    if (rc == 0)
        log_info("stopped", NULL);
    return rc;
}
