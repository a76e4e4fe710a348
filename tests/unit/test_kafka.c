/* Unit tests for common/kafka that need no broker: option and property
 * validation, the delivery-report guarantees of a producer whose broker
 * cannot be reached (every message gets exactly one report, on close or from
 * the poller thread), the operator's properties (KAFKA_PROPERTIES and
 * KAFKA_PROPERTIES_FILE reach every kind of client, secrets never reach the
 * log), and the test-only fault hook. Broker-backed behaviour is in
 * tests/integration/test_devbroker.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "kv.h"
#include "log.h"
#include "settings.h"
#include "../support/process.h"
#include "timeutil.h"

#define N_MESSAGES 5

/* A broker address nobody listens on. */
static void dead_broker(char *out, size_t outlen)
{
    int port = process_free_port();
    assert_true(port > 0);
    snprintf(out, outlen, "127.0.0.1:%d", port);
}

/* Creates a producer with one extra property; returns it or NULL (err set). */
static struct kafka_producer *producer_with(const char *name, const char *value, size_t value_len, char *err,
                                            size_t errlen)
{
    struct kv_list props;
    kv_init(&props);
    assert_int_equal(kv_addn(&props, name, strlen(name), value, value_len), 0);
    struct kafka_producer_options opt = {.brokers = "127.0.0.1:9", .properties = &props};
    struct kafka_producer *p = kafka_producer_new(&opt, err, errlen);
    kv_free(&props);
    return p;
}

static void test_producer_rejects_bad_options(void **state)
{
    (void)state;
    char err[512];
    struct kafka_producer_options none = {.brokers = NULL};
    assert_null(kafka_producer_new(&none, err, sizeof err));
    assert_non_null(strstr(err, "no kafka brokers"));
    struct kafka_producer_options empty = {.brokers = ""};
    assert_null(kafka_producer_new(&empty, err, sizeof err));
    assert_non_null(strstr(err, "no kafka brokers"));

    assert_null(producer_with("no.such.property", "1", 1, err, sizeof err));
    assert_string_equal(err, "unknown kafka property \"no.such.property\"");

    assert_null(producer_with("linger.ms", "soon", 4, err, sizeof err));
    assert_non_null(strstr(err, "invalid value for kafka property \"linger.ms\""));

    /* Properties that may hold secrets never have their value echoed. */
    assert_null(producer_with("ssl.endpoint.identification.algorithm", "hunter2", 7, err, sizeof err));
    assert_non_null(strstr(err, "ssl.endpoint.identification.algorithm"));
    assert_null(strstr(err, "hunter2"));

    assert_null(producer_with("linger.ms",
                              "5\0"
                              "0",
                              3, err, sizeof err));
    assert_non_null(strstr(err, "NUL byte"));

    /* The guarantees of the module cannot be switched off. */
    const char *fixed[] = {"enable.idempotence", "acks", "request.required.acks", "bootstrap.servers"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        assert_null(producer_with(fixed[i], "1", 1, err, sizeof err));
        assert_non_null(strstr(err, "cannot be overridden"));
        assert_non_null(strstr(err, fixed[i]));
    }
}

static void test_consumer_rejects_bad_options(void **state)
{
    (void)state;
    char err[512];
    const char *topics[] = {TOPIC_EVENTS};
    const char *empty_topic[] = {""};
    struct kafka_consumer_options opt = {.brokers = "127.0.0.1:9", .group_id = "g", .topics = topics, .topic_count = 1};

    struct kafka_consumer_options o = opt;
    o.brokers = NULL;
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "no kafka brokers"));

    o = opt;
    o.group_id = "";
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_string_equal(err, "no kafka consumer group given");

    o = opt;
    o.topic_count = 0;
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_string_equal(err, "no kafka topics to consume given");

    o = opt;
    o.topics = empty_topic;
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_string_equal(err, "empty kafka topic name");

    o = opt;
    o.auto_offset_reset = "whenever";
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "auto.offset.reset"));

    struct kv_list props;
    kv_init(&props);
    assert_int_equal(kv_add(&props, "enable.auto.offset.store", "true"), 0);
    o = opt;
    o.properties = &props;
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "\"enable.auto.offset.store\" is set by stagehand"));
    kv_free(&props);

    kv_init(&props);
    assert_int_equal(kv_add(&props, "session.timeout.ms", "-5"), 0);
    o.properties = &props;
    assert_null(kafka_consumer_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "session.timeout.ms"));
    kv_free(&props);
}

/* Delivery reports seen by the callbacks below, per message. */
struct reports {
    atomic_int calls[N_MESSAGES];
    atomic_int last_err[N_MESSAGES];
    atomic_int errors_reported;
};

static struct reports reports;

static void record_delivery(void *opaque, const struct kafka_delivery *d)
{
    atomic_int *slot = opaque;
    int i = (int)(slot - reports.calls);
    assert_true(i >= 0 && i < N_MESSAGES);
    assert_string_equal(d->topic, TOPIC_EVENTS);
    assert_non_null(d->errstr);
    atomic_store(&reports.last_err[i], (int)d->err);
    atomic_fetch_add(slot, 1);
}

static void record_error(void *ctx, rd_kafka_resp_err_t err, int fatal, const char *reason)
{
    (void)err;
    (void)reason;
    assert_ptr_equal(ctx, &reports);
    assert_int_equal(fatal, 0);
    atomic_fetch_add(&reports.errors_reported, 1);
}

static void produce_n(struct kafka_producer *p)
{
    char err[256];
    struct kv_list headers;
    kv_init(&headers);
    assert_int_equal(kv_add(&headers, "type", "test.event"), 0);
    for (int i = 0; i < N_MESSAGES; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        struct kafka_record rec = {.topic = TOPIC_EVENTS,
                                   .partition = RD_KAFKA_PARTITION_UA,
                                   .key = key,
                                   .key_len = strlen(key),
                                   .value = "v",
                                   .value_len = 1,
                                   .headers = &headers,
                                   .opaque = &reports.calls[i]};
        assert_int_equal(kafka_produce(p, &rec, err, sizeof err), RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    kv_free(&headers);
    struct kafka_record no_topic = {.topic = NULL, .opaque = &reports};
    assert_int_equal(kafka_produce(p, &no_topic, err, sizeof err), RD_KAFKA_RESP_ERR__INVALID_ARG);
    assert_string_equal(err, "no kafka topic given");
}

static void test_close_reports_every_undelivered_message(void **state)
{
    (void)state;
    memset(&reports, 0, sizeof reports);
    char brokers[64], err[256];
    dead_broker(brokers, sizeof brokers);
    struct kafka_producer_options opt = {.brokers = brokers, .on_delivery = record_delivery};
    struct kafka_producer *p = kafka_producer_new(&opt, err, sizeof err);
    assert_non_null(p);
    produce_n(p);
    assert_int_equal(kafka_producer_outstanding(p), N_MESSAGES);
    kafka_producer_poll(p, 0);
    for (int i = 0; i < N_MESSAGES; i++)
        assert_int_equal(atomic_load(&reports.calls[i]), 0);

    /* Nothing can be delivered: close purges, reports each once, counts them. */
    assert_int_equal(kafka_producer_close(p, 200), N_MESSAGES);
    for (int i = 0; i < N_MESSAGES; i++) {
        assert_int_equal(atomic_load(&reports.calls[i]), 1);
        assert_int_equal(atomic_load(&reports.last_err[i]), RD_KAFKA_RESP_ERR__PURGE_QUEUE);
    }
}

static void test_poller_thread_serves_reports_and_errors(void **state)
{
    (void)state;
    memset(&reports, 0, sizeof reports);
    char brokers[64], err[256];
    dead_broker(brokers, sizeof brokers);
    struct kv_list props;
    kv_init(&props);
    assert_int_equal(kv_add(&props, "message.timeout.ms", "300"), 0);
    struct kafka_producer_options opt = {.brokers = brokers,
                                         .properties = &props,
                                         .on_delivery = record_delivery,
                                         .on_error = record_error,
                                         .error_ctx = &reports,
                                         .poll_thread = 1};
    struct kafka_producer *p = kafka_producer_new(&opt, err, sizeof err);
    kv_free(&props);
    assert_non_null(p);
    produce_n(p);

    /* The reports (message timeouts) arrive without this thread polling. */
    int64_t deadline = time_monotonic_ms() + 30000;
    while (kafka_producer_outstanding(p) > 0 || atomic_load(&reports.errors_reported) == 0) {
        assert_true(time_monotonic_ms() < deadline);
        time_sleep_ms(10);
    }
    for (int i = 0; i < N_MESSAGES; i++) {
        assert_int_equal(atomic_load(&reports.calls[i]), 1);
        assert_int_equal(atomic_load(&reports.last_err[i]), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    }
    /* They were reported before close: nothing left to fail on close. */
    assert_int_equal(kafka_producer_close(p, 1000), 0);
    for (int i = 0; i < N_MESSAGES; i++)
        assert_int_equal(atomic_load(&reports.calls[i]), 1);
}

/* The test-only fault hook: specs are checked, and an armed produce fault
 * refuses its topic's messages (only those, only as often as asked). */
static void test_faults(void **state)
{
    (void)state;
    char err[256], broker[64];
    static const char *const bad[] = {"pause",
                                      "pause:",
                                      "pause:x",
                                      "pause:-2",
                                      "pause:1:",
                                      "pause:1:-1",
                                      "jump:1",
                                      "produce@:1",
                                      "produce:1",
                                      "pause:1,,rewind:1",
                                      "pause:1,pause:1,pause:1,pause:1,pause:1,pause:1,pause:1,pause:1,pause:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(kafka_faults_set(bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "kafka fault"));
    }
    assert_int_equal(kafka_faults_set("pause:-1,rewind:2:3,resume:1,deliver@a.b-c_d:1", err, sizeof err), 0);

    dead_broker(broker, sizeof broker);
    struct kafka_producer_options opt = {.brokers = broker};
    struct kafka_producer *p = kafka_producer_new(&opt, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(kafka_faults_set("produce@refused:2:1", err, sizeof err), 0);
    struct kafka_record rec = {.topic = "refused", .partition = RD_KAFKA_PARTITION_UA, .value = "v", .value_len = 1};
    struct kafka_record other = rec;
    other.topic = "other";
    assert_int_equal(kafka_produce(p, &rec, err, sizeof err), 0); /* skipped */
    assert_int_equal(kafka_produce(p, &other, err, sizeof err), 0);
    assert_int_equal(kafka_produce(p, &rec, err, sizeof err), RD_KAFKA_RESP_ERR__TRANSPORT);
    assert_non_null(strstr(err, "injected fault"));
    assert_int_equal(kafka_produce(p, &rec, err, sizeof err), RD_KAFKA_RESP_ERR__TRANSPORT);
    assert_int_equal(kafka_produce(p, &rec, err, sizeof err), 0); /* spent */
    assert_int_equal(kafka_faults_set(NULL, err, sizeof err), 0);
    assert_int_equal(kafka_producer_close(p, 100), 3); /* the three accepted, never delivered */
}

static void test_properties_parse(void **state)
{
    (void)state;
    char err[256];
    struct kv_list kv;
    kv_init(&kv);
    assert_int_equal(kafka_properties_parse(" security.protocol = SASL_SSL,,sasl.jaas_x=a=b ,", ',', &kv, err,
                                            sizeof err),
                     0);
    assert_int_equal(kv.len, 2);
    assert_string_equal(kv.items[0].name, "security.protocol");
    assert_string_equal(kv.items[0].value, "SASL_SSL");
    assert_string_equal(kv.items[1].name, "sasl.jaas_x");
    assert_string_equal(kv.items[1].value, "a=b");
    kv_free(&kv);

    kv_init(&kv);
    assert_int_equal(kafka_properties_parse("# TLS\r\nssl.ca.location=/etc/ca.pem\r\n\n  # x=y\nsasl.password=p,w\n",
                                            '\n', &kv, err, sizeof err),
                     0);
    assert_int_equal(kv.len, 2);
    assert_string_equal(kv_get(&kv, "ssl.ca.location"), "/etc/ca.pem");
    assert_string_equal(kv_get(&kv, "sasl.password"), "p,w");
    kv_free(&kv);

    /* A malformed item is named by its number, never quoted. */
    const char *bad[] = {"linger.ms=5,hunter2", "linger.ms=5,Hunter2.Name=1", "=hunter2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_init(&kv);
        assert_int_equal(kafka_properties_parse(bad[i], ',', &kv, err, sizeof err), -1);
        assert_non_null(strstr(err, "item "));
        assert_null(strcasestr(err, "hunter2"));
        kv_free(&kv);
    }
}

static char captured[65536];

/* Makes a producer (logging at debug level into captured) from the
 * environment's properties; returns it or NULL with err. */
static struct kafka_producer *producer_logged(char *err, size_t errlen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_init("test", LOG_LEVEL_DEBUG);
    log_set_fd(fds[1]);
    struct kafka_producer_options opt = {.brokers = "127.0.0.1:9"};
    struct kafka_producer *p = kafka_producer_new(&opt, err, errlen);
    if (p)
        kafka_producer_poll(p, 200); /* librdkafka's first log lines */
    log_set_fd(2);
    log_init("test", LOG_LEVEL_INFO);
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    while (used < sizeof captured - 1 && (n = read(fds[0], captured + used, sizeof captured - 1 - used)) > 0)
        used += (size_t)n;
    captured[used] = '\0';
    close(fds[0]);
    return p;
}

static void test_site_properties_reach_every_client(void **state)
{
    (void)state;
    char err[512], path[] = "/tmp/stagehand-kafka-props-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char file[] = "# from a file\nsasl.username = alice\nclient.id=from-file\nsasl.password=s3cr3t-file\n";
    assert_int_equal(write(fd, file, sizeof file - 1), (ssize_t)(sizeof file - 1));
    close(fd);
    assert_int_equal(setenv("KAFKA_PROPERTIES_FILE", path, 1), 0);
    /* debug=conf makes librdkafka log its whole configuration. */
    assert_int_equal(setenv("KAFKA_PROPERTIES",
                            "security.protocol=sasl_plaintext,sasl.mechanism=PLAIN,"
                            "sasl.password=hunter2,client.id=from-env,debug=conf",
                            1),
                     0);

    struct kafka_producer *p = producer_logged(err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    const rd_kafka_conf_t *conf = rd_kafka_conf(kafka_producer_handle(p));
    char value[256];
    size_t len = sizeof value;
    assert_int_equal(rd_kafka_conf_get(conf, "security.protocol", value, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(value, "sasl_plaintext");
    len = sizeof value;
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.username", value, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(value, "alice");
    len = sizeof value; /* KAFKA_PROPERTIES comes after the file */
    assert_int_equal(rd_kafka_conf_get(conf, "client.id", value, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(value, "from-env");
    /* stagehand's own settings stay. */
    len = sizeof value;
    assert_int_equal(rd_kafka_conf_get(conf, "enable.idempotence", value, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(value, "true");
    kafka_producer_close(p, 0);
    /* The configuration was logged, the passwords were not. */
    assert_non_null(strstr(captured, "sasl.username"));
    assert_null(strstr(captured, "hunter2"));
    assert_null(strstr(captured, "s3cr3t-file"));

    /* A bad value of a secret-looking property is refused without its value. */
    assert_int_equal(setenv("KAFKA_PROPERTIES", "sasl.kerberos.min.time.before.relogin=hunter2", 1), 0);
    assert_null(producer_logged(err, sizeof err));
    assert_non_null(strstr(err, "sasl.kerberos.min.time.before.relogin"));
    assert_null(strstr(err, "hunter2"));
    assert_null(strstr(captured, "hunter2"));
    assert_int_equal(setenv("KAFKA_PROPERTIES", "sasl.password=hunter2,hunter2", 1), 0);
    assert_null(producer_logged(err, sizeof err));
    assert_non_null(strstr(err, "KAFKA_PROPERTIES: item 2"));
    assert_null(strstr(err, "hunter2"));

    /* Consumers, readers and admin clients take them too: each refuses
     * a property stagehand sets itself before it connects anywhere. */
    const char *topics[] = {"t"};
    struct kafka_consumer_options copt = {.brokers = "127.0.0.1:9",
                                          .group_id = "g",
                                          .topics = topics,
                                          .topic_count = 1};
    assert_int_equal(setenv("KAFKA_PROPERTIES", "enable.auto.offset.store=true", 1), 0);
    assert_null(kafka_consumer_new(&copt, err, sizeof err));
    assert_non_null(strstr(err, "\"enable.auto.offset.store\" is set by stagehand"));
    struct kafka_reader_options ropt = {.brokers = "127.0.0.1:9", .topic = "t"};
    assert_int_equal(setenv("KAFKA_PROPERTIES", "enable.partition.eof=false", 1), 0);
    assert_null(kafka_reader_new(&ropt, err, sizeof err));
    assert_non_null(strstr(err, "\"enable.partition.eof\" is set by stagehand"));
    assert_int_equal(setenv("KAFKA_PROPERTIES", "bootstrap.servers=elsewhere:9092", 1), 0);
    assert_int_equal(kafka_wait_ready("127.0.0.1:9", NULL, 100, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"bootstrap.servers\" is set by stagehand"));

    /* An unreadable file stops every client. */
    unsetenv("KAFKA_PROPERTIES");
    assert_int_equal(unlink(path), 0);
    assert_null(producer_logged(err, sizeof err));
    assert_non_null(strstr(err, "KAFKA_PROPERTIES_FILE"));
    unsetenv("KAFKA_PROPERTIES_FILE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_rejects_bad_options),
        cmocka_unit_test(test_consumer_rejects_bad_options),
        cmocka_unit_test(test_close_reports_every_undelivered_message),
        cmocka_unit_test(test_poller_thread_serves_reports_and_errors),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_properties_parse),
        cmocka_unit_test(test_site_properties_reach_every_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
