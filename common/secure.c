/* Constant-time equality on top of OpenSSL's CRYPTO_memcmp. */
#include "secure.h"

#include <openssl/crypto.h>

int secure_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return 0;
    if (alen == 0)
        return 1;
    return CRYPTO_memcmp(a, b, alen) == 0;
}
