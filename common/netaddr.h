/* IP addresses and CIDR ranges, for the ingress's trusted proxies: parse a
 * list such as "10.0.0.0/8, 192.168.1.7, fd00::/8", test an address
 * against it, and find the client behind trusted proxies from an
 * X-Forwarded-For header.
 *
 * The header is read from the right: each proxy appends the address it
 * received the request from, so the rightmost entries were written by our
 * own proxies and the first entry from the right that is not a trusted
 * proxy is the client. Entries further left were written by the client
 * and are never believed. An entry may carry a port, as some proxies
 * write it ("a.b.c.d:port", "[v6]:port"); the port is dropped. IPv4-mapped
 * IPv6 addresses (::ffff:a.b.c.d) count as their IPv4 address.
 *
 * Per-IP limits count an IPv4 client by its address and an IPv6 client by
 * its /64 (netaddr_limit_key): one subscriber or site usually holds a
 * whole /64 and could otherwise take a new address for every request. */
#ifndef STAGEHAND_NETADDR_H
#define STAGEHAND_NETADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#ifndef INET6_ADDRSTRLEN
#define INET6_ADDRSTRLEN 46
#endif

#define NETADDR_MAX_RANGES 64

struct netaddr_range {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char bytes[16]; /* 4 used for AF_INET */
    int prefix_bits;
};

struct netaddr_ranges {
    struct netaddr_range items[NETADDR_MAX_RANGES];
    size_t count;
};

/* Parses a comma-separated list of addresses and CIDR ranges (spaces
 * around items allowed; "" is the empty list). Returns 0, or -1 with the
 * reason in err. */
int netaddr_ranges_parse(const char *list, struct netaddr_ranges *out, char *err, size_t errlen);

/* 1 when the textual address is in one of the ranges; 0 when it is not or
 * is not an address. */
int netaddr_ranges_contain(const struct netaddr_ranges *ranges, const char *address);

/* The client's address: peer itself unless peer is a trusted proxy and
 * forwarded_for (the X-Forwarded-For value, may be NULL) names addresses;
 * then the rightmost entry that is not a trusted proxy, or the leftmost
 * when all are. An entry that is not an address stops the walk: the last
 * address read (a trusted proxy's) is used. out gets a normalised address. */
void netaddr_client(const struct netaddr_ranges *trusted, const char *peer, const char *forwarded_for,
                    char out[INET6_ADDRSTRLEN]);

/* The key per-IP limits count address under (a normalised address, as
 * netaddr_client gives): the IPv4 address itself, or the IPv6 address's
 * /64 written "2001:db8:1:2::/64". "" when address is not an address. */
void netaddr_limit_key(const char *address, char out[INET6_ADDRSTRLEN]);

/* Parses a listen address, "a.b.c.d:port" or "[v6]:port" (literal
 * addresses only, no names; port 0 to 65535, 0 for a free one), into out
 * and *outlen. Returns 0, or -1 when text is not of that form. */
int netaddr_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *outlen);

#endif
