/* Entity tags: making them and matching If-None-Match (see etag.h). */
#include "etag.h"

#include <openssl/evp.h>
#include <string.h>

#include "encode.h"

#define ETAG_HEX_BYTES 16

void etag_of(const void *body, size_t len, char out[ETAG_SIZE])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(body, len, digest, &digest_len, EVP_sha256(), NULL) || digest_len < ETAG_HEX_BYTES)
        memset(digest, 0, ETAG_HEX_BYTES); /* not reached with OpenSSL's SHA-256 */
    out[0] = '"';
    hex_encode(digest, ETAG_HEX_BYTES, out + 1);
    out[ETAG_SIZE - 2] = '"';
    out[ETAG_SIZE - 1] = '\0';
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int etag_matches(const char *value, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = skip_ows(value);
    if (*p == '*')
        return *skip_ows(p + 1) == '\0';
    int matched = 0;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t') /* empty list elements are allowed */
            p++;
        if (!*p)
            return matched;
        if (p[0] == 'W' && p[1] == '/') /* weak comparison: the prefix does not count */
            p += 2;
        if (*p != '"')
            return 0;
        const char *tag = p++;
        while (*p && *p != '"') {
            unsigned char c = (unsigned char)*p++;
            if (c < 0x21 || c == 0x7f)
                return 0;
        }
        if (*p != '"')
            return 0;
        p++;
        if ((size_t)(p - tag) == etag_len && memcmp(tag, etag, etag_len) == 0)
            matched = 1;
        p = skip_ows(p);
        if (*p && *p != ',')
            return 0;
    }
}
