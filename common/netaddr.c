/* IP addresses, CIDR ranges and X-Forwarded-For (see netaddr.h). */
#include "netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct address {
    int family;
    unsigned char bytes[16];
};

static const unsigned char V4_MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Reads a textual IPv4 or IPv6 address (v4-mapped IPv6 becomes IPv4).
 * Returns 0, or -1 when text is not an address. */
static int address_parse(const char *text, struct address *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) != 1)
        return -1;
    out->family = AF_INET6;
    if (memcmp(out->bytes, V4_MAPPED_PREFIX, sizeof V4_MAPPED_PREFIX) == 0) {
        memmove(out->bytes, out->bytes + 12, 4);
        memset(out->bytes + 4, 0, 12);
        out->family = AF_INET;
    }
    return 0;
}

/* Reads one X-Forwarded-For entry: an address, or one with a port as some
 * proxies write them, "a.b.c.d:port" and "[v6]:port" (also "[v6]").
 * Returns 0, or -1 when it is none of these. */
static int entry_parse(const char *text, struct address *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *port = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        size_t n = close ? (size_t)(close - text - 1) : 0;
        if (!close || n == 0 || n >= sizeof host || !strchr(text + 1, ':'))
            return -1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return -1;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        if (address_parse(host, out) < 0 || (out->family == AF_INET && !strchr(host, ':')))
            return -1;
    } else {
        const char *colon = strchr(text, ':');
        if (!colon || strchr(colon + 1, ':'))
            return address_parse(text, out); /* no port, or IPv6 */
        size_t n = (size_t)(colon - text);
        if (n >= sizeof host)
            return -1;
        memcpy(host, text, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, out->bytes) != 1)
            return -1;
        memset(out->bytes + 4, 0, sizeof out->bytes - 4);
        out->family = AF_INET;
        port = colon + 1;
    }
    size_t digits = port ? strlen(port) : 0;
    if (port && (digits < 1 || digits > 5 || strspn(port, "0123456789") != digits || atol(port) > 65535))
        return -1;
    return 0;
}

static void address_format(const struct address *a, char out[INET6_ADDRSTRLEN])
{
    if (!inet_ntop(a->family, a->bytes, out, INET6_ADDRSTRLEN))
        out[0] = '\0';
}

static int range_contains(const struct netaddr_range *r, const struct address *a)
{
    if (r->family != a->family)
        return 0;
    int full = r->prefix_bits / 8, rest = r->prefix_bits % 8;
    if (memcmp(r->bytes, a->bytes, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (r->bytes[full] & mask) == (a->bytes[full] & mask);
}

static int ranges_contain(const struct netaddr_ranges *ranges, const struct address *a)
{
    for (size_t i = 0; i < ranges->count; i++)
        if (range_contains(&ranges->items[i], a))
            return 1;
    return 0;
}

/* Copies s[0..n) without surrounding spaces into out (at most outlen-1
 * bytes). Returns -1 when it does not fit. */
static int trimmed(const char *s, size_t n, char *out, size_t outlen)
{
    while (n > 0 && isspace((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= outlen)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int range_parse(const char *item, struct netaddr_range *out)
{
    char text[INET6_ADDRSTRLEN + 8];
    snprintf(text, sizeof text, "%s", item);
    char *slash = strchr(text, '/');
    if (slash)
        *slash = '\0';
    struct address a;
    if (address_parse(text, &a) < 0)
        return -1;
    int max_bits = a.family == AF_INET ? 32 : 128;
    int bits = max_bits;
    if (slash) {
        const char *digits = slash + 1;
        if (!*digits || strlen(digits) > 3 || strspn(digits, "0123456789") != strlen(digits))
            return -1;
        bits = atoi(digits);
        /* A mapped IPv6 range (::ffff:10.0.0.0/104) counts in IPv4 bits. */
        if (a.family == AF_INET && strchr(text, ':'))
            bits -= 96;
        if (bits < 0 || bits > max_bits)
            return -1;
    }
    out->family = a.family;
    memcpy(out->bytes, a.bytes, sizeof out->bytes);
    out->prefix_bits = bits;
    return 0;
}

int netaddr_ranges_parse(const char *list, struct netaddr_ranges *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!list)
        return 0;
    const char *p = list;
    char item[INET6_ADDRSTRLEN + 8];
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (trimmed(p, n, item, sizeof item) < 0) {
            snprintf(err, errlen, "an item is too long for an address or range");
            return -1;
        }
        if (item[0] == '\0') {
            if (comma || out->count > 0) {
                snprintf(err, errlen, "empty item in the list");
                return -1;
            }
            return 0; /* "" or spaces: the empty list */
        }
        if (out->count == NETADDR_MAX_RANGES) {
            snprintf(err, errlen, "more than %d items", NETADDR_MAX_RANGES);
            return -1;
        }
        if (range_parse(item, &out->items[out->count]) < 0) {
            snprintf(err, errlen, "\"%.50s\" is not an IP address or CIDR range", item);
            return -1;
        }
        out->count++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int netaddr_ranges_contain(const struct netaddr_ranges *ranges, const char *address)
{
    struct address a;
    return address && address_parse(address, &a) == 0 && ranges_contain(ranges, &a);
}

void netaddr_client(const struct netaddr_ranges *trusted, const char *peer, const char *forwarded_for,
                    char out[INET6_ADDRSTRLEN])
{
    struct address current;
    out[0] = '\0';
    if (!peer || address_parse(peer, &current) < 0)
        return;
    if (forwarded_for && ranges_contain(trusted, &current)) {
        size_t end = strlen(forwarded_for);
        for (;;) {
            /* The entry forwarded_for[start..end), the rightmost not yet read. */
            size_t start = end;
            while (start > 0 && forwarded_for[start - 1] != ',')
                start--;
            char item[INET6_ADDRSTRLEN + 8]; /* [v6]:port */
            struct address next;
            if (trimmed(forwarded_for + start, end - start, item, sizeof item) < 0 || entry_parse(item, &next) < 0)
                break; /* not an address: keep the proxy that wrote it */
            current = next;
            if (!ranges_contain(trusted, &current) || start == 0)
                break;
            end = start - 1; /* before the comma */
        }
    }
    address_format(&current, out);
}

void netaddr_limit_key(const char *address, char out[INET6_ADDRSTRLEN])
{
    struct address a;
    out[0] = '\0';
    if (!address || address_parse(address, &a) < 0)
        return;
    if (a.family == AF_INET6)
        memset(a.bytes + 8, 0, 8); /* the /64 a single site or subscriber gets */
    address_format(&a, out);
    if (a.family == AF_INET6 && out[0] && strlen(out) + 3 < INET6_ADDRSTRLEN)
        strcat(out, "/64");
}

/* "digits" as a port, 0 to 65535, or -1. */
static long port_number(const char *digits)
{
    size_t n = strlen(digits);
    if (n < 1 || n > 5 || strspn(digits, "0123456789") != n)
        return -1;
    long port = strtol(digits, NULL, 10);
    return port <= 65535 ? port : -1;
}

int netaddr_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *outlen)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    memset(out, 0, sizeof *out);
    if (!text)
        return -1;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strchr(text, ':');
        if (!colon || strchr(colon + 1, ':') || (size_t)(colon - text) >= sizeof host)
            return -1;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    long port = port_number(port_text);
    if (port < 0)
        return -1;
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)out;
    if (text[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *outlen = sizeof *v4;
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *outlen = sizeof *v6;
        return 0;
    }
    return -1;
}
