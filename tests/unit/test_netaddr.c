/* common/netaddr: trusted-proxy lists (addresses and CIDR ranges, IPv4 and
 * IPv6) and the client found behind them in X-Forwarded-For, including
 * forged and malformed headers, entries with ports; the keys of per-IP
 * limits (IPv6 by /64); listen addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "netaddr.h"

static void test_parse_lists(void **state)
{
    (void)state;
    struct netaddr_ranges r;
    char err[128];
    assert_int_equal(netaddr_ranges_parse("", &r, err, sizeof err), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(netaddr_ranges_parse("  ", &r, err, sizeof err), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(netaddr_ranges_parse("10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1", &r, err, sizeof err), 0);
    assert_int_equal(r.count, 4);
    assert_int_equal(netaddr_ranges_parse("0.0.0.0/0", &r, err, sizeof err), 0);
    assert_int_equal(netaddr_ranges_parse("::ffff:10.0.0.0/104", &r, err, sizeof err), 0);

    static const char *const bad[] = {
        "10.0.0.0/33",        "10.0.0.0/",    "10.0.0.0/-1",       "10.0.0.0/8x",        "10.0.0",
        "proxy.local",        "10.0.0.1,",    ",10.0.0.1",         "10.0.0.1,,10.0.0.2", "fd00::/129",
        "::ffff:10.0.0.0/95", "1.2.3.4/0001", "10.0.0.1 10.0.0.2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(netaddr_ranges_parse(bad[i], &r, err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_contain(void **state)
{
    (void)state;
    struct netaddr_ranges r;
    char err[128];
    assert_int_equal(netaddr_ranges_parse("10.1.0.0/16, 192.168.1.7, fd00::/8, 172.16.0.0/12", &r, err, sizeof err), 0);
    assert_true(netaddr_ranges_contain(&r, "10.1.200.3"));
    assert_false(netaddr_ranges_contain(&r, "10.2.0.1"));
    assert_true(netaddr_ranges_contain(&r, "192.168.1.7"));
    assert_false(netaddr_ranges_contain(&r, "192.168.1.8"));
    assert_true(netaddr_ranges_contain(&r, "fd12:3456::1"));
    assert_false(netaddr_ranges_contain(&r, "fe80::1"));
    assert_true(netaddr_ranges_contain(&r, "172.31.255.255")); /* a prefix not on a byte boundary */
    assert_false(netaddr_ranges_contain(&r, "172.32.0.0"));
    assert_true(netaddr_ranges_contain(&r, "::ffff:10.1.0.9")); /* mapped IPv4 */
    assert_false(netaddr_ranges_contain(&r, "not an address"));
    assert_false(netaddr_ranges_contain(&r, NULL));
}

static void expect_client(const struct netaddr_ranges *r, const char *peer, const char *xff, const char *want)
{
    char out[INET6_ADDRSTRLEN];
    netaddr_client(r, peer, xff, out);
    assert_string_equal(out, want);
}

static void test_client_behind_proxies(void **state)
{
    (void)state;
    struct netaddr_ranges r;
    char err[128];
    assert_int_equal(netaddr_ranges_parse("127.0.0.1, 10.0.0.0/8", &r, err, sizeof err), 0);

    /* Not from a trusted proxy: the header is ignored. */
    expect_client(&r, "203.0.113.9", "198.51.100.1", "203.0.113.9");
    /* From a proxy: the address it forwarded. */
    expect_client(&r, "127.0.0.1", "198.51.100.1", "198.51.100.1");
    expect_client(&r, "::ffff:127.0.0.1", " 198.51.100.1 ", "198.51.100.1");
    /* Through two of ours: skip them from the right. */
    expect_client(&r, "127.0.0.1", "198.51.100.1, 10.0.0.5", "198.51.100.1");
    /* A client that forges the header only adds entries on the left. */
    expect_client(&r, "127.0.0.1", "1.1.1.1, 198.51.100.1", "198.51.100.1");
    expect_client(&r, "127.0.0.1", "10.9.9.9, 198.51.100.1, 10.0.0.5", "198.51.100.1");
    /* Every hop is ours: the leftmost. */
    expect_client(&r, "127.0.0.1", "10.0.0.7, 10.0.0.5", "10.0.0.7");
    /* No header, an empty one, garbage: the last address read. */
    expect_client(&r, "127.0.0.1", NULL, "127.0.0.1");
    expect_client(&r, "127.0.0.1", "", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "unknown", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "198.51.100.1, , 10.0.0.5", "10.0.0.5");
    expect_client(&r, "127.0.0.1", "198.51.100.1,", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "2001:db8::1", "2001:db8::1");
    expect_client(&r, "127.0.0.1", "2001:DB8:0::1", "2001:db8::1"); /* normalised */
    expect_client(&r, "127.0.0.1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "127.0.0.1");
    /* Entries with a port, as some proxies write them (issue 15 item 7):
     * the address, not the proxy's. */
    expect_client(&r, "127.0.0.1", "198.51.100.1:51234", "198.51.100.1");
    expect_client(&r, "127.0.0.1", "[2001:db8::7]:443", "2001:db8::7");
    expect_client(&r, "127.0.0.1", "[2001:db8::7]", "2001:db8::7");
    expect_client(&r, "127.0.0.1", "[::ffff:198.51.100.1]:80", "198.51.100.1");
    expect_client(&r, "127.0.0.1", "198.51.100.1:80, 10.0.0.5:3128", "198.51.100.1");
    expect_client(&r, "127.0.0.1", "1.1.1.1, 198.51.100.1:80", "198.51.100.1");
    /* Malformed ports and brackets are not addresses. */
    expect_client(&r, "127.0.0.1", "198.51.100.1:", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "198.51.100.1:65536", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "198.51.100.1:8x", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "[2001:db8::7]443", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "[2001:db8::7", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "[198.51.100.1]:80", "127.0.0.1");
    expect_client(&r, "127.0.0.1", "[]:80", "127.0.0.1");
    /* An unparseable peer gives nothing (no bucket is shared by accident). */
    expect_client(&r, "", "198.51.100.1", "");

    /* No trusted proxies: always the peer. */
    struct netaddr_ranges none;
    assert_int_equal(netaddr_ranges_parse("", &none, err, sizeof err), 0);
    expect_client(&none, "127.0.0.1", "198.51.100.1", "127.0.0.1");
}

static void expect_key(const char *address, const char *want)
{
    char out[INET6_ADDRSTRLEN];
    netaddr_limit_key(address, out);
    assert_string_equal(out, want);
}

/* IPv4 clients by address, IPv6 clients by their /64 (issue 15 item 7). */
static void test_limit_keys(void **state)
{
    (void)state;
    expect_key("198.51.100.7", "198.51.100.7");
    expect_key("::ffff:198.51.100.7", "198.51.100.7");
    expect_key("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
    expect_key("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64");
    expect_key("2001:DB8:1:3::1", "2001:db8:1:3::/64");
    expect_key("::1", "::/64");
    expect_key("fe80::1", "fe80::/64");
    expect_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64");
    expect_key("", "");
    expect_key(NULL, "");
    expect_key("not an address", "");
    expect_key("2001:db8::/64", ""); /* a key is not an address */
}

static void test_listen_addresses(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len = 0;
    assert_int_equal(netaddr_listen_parse("127.0.0.1:9100", &a, &len), 0);
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)(void *)&a)->sin_port), 9100);
    assert_int_equal(netaddr_listen_parse("0.0.0.0:0", &a, &len), 0);
    assert_int_equal(netaddr_listen_parse("[::1]:65535", &a, &len), 0);
    assert_int_equal(a.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)(void *)&a)->sin6_port), 65535);
    static const char *const bad[] = {"",
                                      "127.0.0.1",
                                      "127.0.0.1:",
                                      ":9100",
                                      "localhost:9100",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:-1",
                                      "127.0.0.1:9100x",
                                      "127.0.0.1:123456",
                                      "::1:9100",
                                      "[::1]",
                                      "[::1]9100",
                                      "[127.0.0.1]:9100",
                                      "[::1:9100",
                                      "1.2.3:80",
                                      " 127.0.0.1:9100",
                                      NULL};
    for (int i = 0; bad[i]; i++)
        if (netaddr_listen_parse(bad[i], &a, &len) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(netaddr_listen_parse(NULL, &a, &len), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lists),           cmocka_unit_test(test_contain),
        cmocka_unit_test(test_client_behind_proxies), cmocka_unit_test(test_limit_keys),
        cmocka_unit_test(test_listen_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
