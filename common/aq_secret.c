/* aq_secret.c — see aq_secret.h. */
#include "aq_secret.h"
#include "aq_alloc.h"
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void subkey(const unsigned char key[32], unsigned char out[crypto_secretbox_KEYBYTES])
{
    crypto_kdf_derive_from_key(out, crypto_secretbox_KEYBYTES, 1, "aqsecret", key);
}

unsigned char *aq_secret_seal(const unsigned char key[32], const char *plain, size_t n, size_t *out_len)
{
    unsigned char k[crypto_secretbox_KEYBYTES];
    subkey(key, k);
    unsigned char *out = aq_malloc(n + AQ_SECRET_OVERHEAD);
    randombytes_buf(out, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, n, out, k);
    sodium_memzero(k, sizeof k);
    *out_len = n + AQ_SECRET_OVERHEAD;
    return out;
}

char *aq_secret_open(const unsigned char key[32], const unsigned char *sealed, size_t n)
{
    if (n < AQ_SECRET_OVERHEAD) return NULL;
    unsigned char k[crypto_secretbox_KEYBYTES];
    subkey(key, k);
    size_t plen = n - AQ_SECRET_OVERHEAD;
    char *plain = aq_malloc(plen + 1);
    int bad = crypto_secretbox_open_easy((unsigned char *)plain, sealed + crypto_secretbox_NONCEBYTES,
                                         n - crypto_secretbox_NONCEBYTES, sealed, k);
    sodium_memzero(k, sizeof k);
    if (bad || memchr(plain, '\0', plen)) {
        sodium_memzero(plain, plen);
        free(plain);
        return NULL;
    }
    plain[plen] = '\0';
    return plain;
}
