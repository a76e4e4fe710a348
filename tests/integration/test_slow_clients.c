/* Slow and greedy clients against the ingress as a real process
 * (issue 15 item 3), over raw sockets so that the test controls every
 * byte and its timing:
 *
 * - a client that sends one header byte every 300 ms (each within
 *   CONNECTION_TIMEOUT_S, so libmicrohttpd's inactivity timeout never
 *   fires) is cut off once HEADER_TIMEOUT_MS has passed, unanswered; so is
 *   a client that connects and sends nothing, and one whose body trickles
 *   in past BODY_TIMEOUT_MS; the metrics count both parts;
 * - a kept-alive connection serves request after request;
 * - MAX_CONNECTIONS_PER_IP: the connection over the limit is closed at
 *   accept, another is accepted once one closes; trusted proxies are
 *   exempt;
 * - credentials are checked on the headers when a body of more than 1 KiB
 *   is announced (401 before a byte of it is sent), and a body announced
 *   over BODY_MAX_BYTES is refused at once (413); webhooks, which are
 *   checked by their signature over the body, are read as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

#define HEADER_MS 1500
#define BODY_MS 1500
#define TRICKLE_MS 300

static int setup_deadlines(void **state)
{
    static const char *const env[] = {"HEADER_TIMEOUT_MS=1500", "BODY_TIMEOUT_MS=1500", "CONNECTION_TIMEOUT_S=30",
                                      NULL};
    return fixture_setup_ingress(state, env);
}

static int setup_per_ip(void **state)
{
    static const char *const env[] = {"MAX_CONNECTIONS_PER_IP=3", NULL};
    return fixture_setup_ingress(state, env);
}

static int setup_per_ip_behind_proxy(void **state)
{
    static const char *const env[] = {"MAX_CONNECTIONS_PER_IP=2", "TRUSTED_PROXIES=127.0.0.1", NULL};
    return fixture_setup_ingress(state, env);
}

/* A connection to the ingress's port; the descriptor. */
static int connect_ingress(struct fixture *f)
{
    unsigned port = 0;
    assert_int_equal(sscanf(f->s.ingress_url, "http://127.0.0.1:%u", &port), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(send(fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Waits up to timeout_ms for the peer to close fd, keeping what arrives
 * in got (got_len bytes). 1 when it closed, 0 when still open. */
static int wait_closed(int fd, int timeout_ms, char *got, size_t got_len)
{
    size_t have = strlen(got);
    int64_t until = time_monotonic_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - time_monotonic_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, got + have, got_len - have - 1, 0);
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return 1;
        if (n > 0) {
            have += (size_t)n;
            got[have] = '\0';
            if (have + 1 >= got_len)
                return 0;
        }
    }
}

/* Reads until the end of an answer's headers (or timeout_ms): the status,
 * 0 when none came. */
static long read_status(int fd, int timeout_ms)
{
    char got[4096] = "";
    size_t have = 0;
    int64_t until = time_monotonic_ms() + timeout_ms;
    while (!strstr(got, "\r\n\r\n") && time_monotonic_ms() < until && have + 1 < sizeof got) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, got + have, sizeof got - have - 1, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        got[have] = '\0';
    }
    long status = 0;
    if (sscanf(got, "HTTP/1.1 %ld", &status) != 1)
        return 0;
    return status;
}

/* Sends text a byte every TRICKLE_MS until the ingress closes the
 * connection; the milliseconds that took (-1: it never did within
 * give_up_ms). Nothing may have been answered. */
static int64_t trickle_until_closed(int fd, const char *text, int give_up_ms)
{
    int64_t start = time_monotonic_ms();
    char got[512] = "";
    for (size_t i = 0; time_monotonic_ms() - start < give_up_ms; i = (i + 1) % strlen(text)) {
        if (send(fd, text + i, 1, MSG_NOSIGNAL) != 1)
            return time_monotonic_ms() - start; /* already shut */
        if (wait_closed(fd, TRICKLE_MS, got, sizeof got)) {
            if (got[0])
                fail_msg("a slow client was answered: %s", got);
            return time_monotonic_ms() - start;
        }
    }
    return -1;
}

/* The value of sample (its name and labels, a space) in the ingress's
 * metrics, 0 when absent. */
static double ingress_metric(struct fixture *f, const char *sample)
{
    char url[160];
    snprintf(url, sizeof url, "%s/metrics", f->s.metrics_url);
    struct http_reply r;
    assert_int_equal(http_call("GET", url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    const char *at = strstr(r.body, sample);
    double value = at ? atof(at + strlen(sample)) : 0;
    http_reply_free(&r);
    return value;
}

/* The sample once it reaches want, or its value after 2 s: the ingress
 * counts a cut connection just after it closes it, so the client may see
 * the close first. */
static double ingress_metric_reaching(struct fixture *f, const char *sample, double want)
{
    int64_t until = time_monotonic_ms() + 2000;
    double value = ingress_metric(f, sample);
    while (value < want && time_monotonic_ms() < until) {
        time_sleep_ms(20);
        value = ingress_metric(f, sample);
    }
    return value;
}

static void test_slow_headers(void **state)
{
    struct fixture *f = *state;
    /* One header byte every 300 ms: before the fix, never cut off. */
    int fd = connect_ingress(f);
    send_text(fd, "POST /verify-passcode HTTP/1.1\r\nHost: stagehand\r\nAuthorization: " TEST_PASSCODE "\r\n");
    int64_t took = trickle_until_closed(fd, "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 8000);
    close(fd);
    if (took < 0)
        fail_msg("a client trickling its headers was never cut off");
    assert_true(took >= HEADER_MS - 300 && took < HEADER_MS + 2500);

    /* The request line itself, slowly. */
    fd = connect_ingress(f);
    took = trickle_until_closed(fd, "GET /healthz HTTP/1.1", 8000);
    close(fd);
    assert_true(took >= 0 && took < HEADER_MS + 2500);

    /* A client that connects and says nothing. */
    fd = connect_ingress(f);
    char got[64] = "";
    int64_t start = time_monotonic_ms();
    assert_int_equal(wait_closed(fd, HEADER_MS + 2500, got, sizeof got), 1);
    assert_true(time_monotonic_ms() - start >= HEADER_MS - 300);
    assert_string_equal(got, "");
    close(fd);

    assert_true(ingress_metric_reaching(f, "stagehand_ingress_slow_clients_total{part=\"headers\"} ", 3) >= 3);
    expect_no_event(f);
}

static void test_slow_body(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    int fd = connect_ingress(f);
    send_text(fd, "POST /viewer-connected-to-player HTTP/1.1\r\nHost: stagehand\r\nAuthorization: " TEST_PASSCODE
                  "\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n");
    int64_t took = trickle_until_closed(fd, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"          ", 8000);
    close(fd);
    if (took < 0)
        fail_msg("a client trickling its body was never cut off");
    assert_true(took >= BODY_MS - 300 && took < BODY_MS + 2500);
    assert_true(ingress_metric_reaching(f, "stagehand_ingress_slow_clients_total{part=\"body\"} ", 1) >= 1);
    expect_no_event(f);

    /* A kept-alive connection: one request after another, each in time. */
    fd = connect_ingress(f);
    for (int i = 0; i < 3; i++) {
        send_text(fd, "POST /verify-passcode HTTP/1.1\r\nHost: stagehand\r\nAuthorization: " TEST_PASSCODE
                      "\r\nContent-Length: 0\r\n\r\n");
        assert_int_equal(read_status(fd, 3000), 200);
        usleep(500 * 1000); /* idle between requests, within HEADER_TIMEOUT_MS */
    }
    close(fd);
}

static void test_connections_per_ip(void **state)
{
    struct fixture *f = *state;
    int held[3];
    for (int i = 0; i < 3; i++)
        held[i] = connect_ingress(f);
    usleep(200 * 1000); /* libmicrohttpd has accepted them */
    /* The fourth: the kernel accepts it, the ingress closes it at once. */
    int fd = connect_ingress(f);
    char got[64] = "";
    assert_int_equal(wait_closed(fd, 2000, got, sizeof got), 1);
    assert_string_equal(got, "");
    close(fd);
    struct http_reply r;
    char url[160];
    snprintf(url, sizeof url, "%s/healthz", f->s.ingress_url);
    http_call("GET", url, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 0); /* curl too: no answer */
    http_reply_free(&r);
    assert_true(ingress_metric(f, "\nstagehand_ingress_connections_refused_total ") >= 2);

    /* One closes: room for another. */
    close(held[0]);
    usleep(200 * 1000);
    http_call("GET", url, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    http_reply_free(&r);
    close(held[1]);
    close(held[2]);
}

static void test_proxy_exempt(void **state)
{
    struct fixture *f = *state;
    int held[4];
    for (int i = 0; i < 4; i++)
        held[i] = connect_ingress(f);
    usleep(200 * 1000);
    struct http_reply r;
    char url[160];
    snprintf(url, sizeof url, "%s/healthz", f->s.ingress_url);
    http_call("GET", url, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200); /* 127.0.0.1 is a trusted proxy: no per-IP limit */
    http_reply_free(&r);
    for (int i = 0; i < 4; i++)
        close(held[i]);
}

static void test_auth_before_body(void **state)
{
    struct fixture *f = *state;
    /* A large body announced with a wrong passcode: 401 on the headers,
     * before a byte of the body is sent. */
    int fd = connect_ingress(f);
    send_text(fd, "POST /create-stream HTTP/1.1\r\nHost: stagehand\r\nAuthorization: 4242\r\n"
                  "Content-Type: application/json\r\nContent-Length: 8000\r\n\r\n");
    assert_int_equal(read_status(fd, 3000), 401);
    close(fd);
    /* No credentials, a chunked body: the same. */
    fd = connect_ingress(f);
    send_text(fd, "POST /create-stream HTTP/1.1\r\nHost: stagehand\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(read_status(fd, 3000), 401);
    close(fd);
    /* Over BODY_MAX_BYTES: 413 at once, even with the passcode. */
    fd = connect_ingress(f);
    send_text(fd, "POST /create-stream HTTP/1.1\r\nHost: stagehand\r\nAuthorization: " TEST_PASSCODE
                  "\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n");
    assert_int_equal(read_status(fd, 3000), 413);
    close(fd);
    /* The right passcode and a large body within the limit: the ingress
     * waits for the body. */
    fd = connect_ingress(f);
    send_text(fd, "POST /create-stream HTTP/1.1\r\nHost: stagehand\r\nAuthorization: " TEST_PASSCODE
                  "\r\nContent-Type: application/json\r\nContent-Length: 8000\r\n\r\n");
    assert_int_equal(read_status(fd, 700), 0);
    close(fd);
    /* A webhook is judged by its signature over the body: it waits too. */
    fd = connect_ingress(f);
    send_text(fd, "POST /rooms-webhook HTTP/1.1\r\nHost: stagehand\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 8000\r\n\r\n");
    assert_int_equal(read_status(fd, 700), 0);
    close(fd);
    expect_no_event(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_headers, setup_deadlines, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_slow_body, setup_deadlines, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connections_per_ip, setup_per_ip, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_proxy_exempt, setup_per_ip_behind_proxy, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_before_body, setup_ingress, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
