/* aq_token.c — token creation, parsing and keyed hashing (see aq_token.h). */
#include "aq_token.h"
#include "aq_error.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

int aq_secret_key_parse(const char *text, unsigned char key[32], char *err, size_t errlen)
{
    size_t n = text ? strlen(text) : 0, got = 0;
    if (n == 64 && sodium_hex2bin(key, 32, text, n, NULL, &got, NULL) == 0 && got == 32) return 0;
    unsigned char buf[64];
    if (n && sodium_base642bin(buf, sizeof buf, text, n, NULL, &got, NULL,
                               sodium_base64_VARIANT_ORIGINAL) == 0 && got == 32) {
        memcpy(key, buf, 32);
        sodium_memzero(buf, sizeof buf);
        return 0;
    }
    snprintf(err, errlen, "AGENTQ_SECRET_KEY must be 32 bytes as 64 hex digits or base64%s",
             n ? "" : " (it is not set; e.g. `openssl rand -hex 32`)");
    return AQ_ECONFIG;
}

static void hash_secret(const unsigned char key[32], const unsigned char secret[32], unsigned char *out)
{
    crypto_generichash(out, AQ_TOKEN_HASH_LEN, secret, 32, key, 32);
}

void aq_token_new(const unsigned char key[32], char *token, char *id, unsigned char hash[AQ_TOKEN_HASH_LEN])
{
    unsigned char idb[AQ_TOKEN_ID_LEN / 2], secret[32];
    randombytes_buf(idb, sizeof idb);
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(id, AQ_TOKEN_ID_LEN + 1, idb, sizeof idb);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, secret, sizeof secret);
    snprintf(token, AQ_TOKEN_LEN + 1, "aq_%s_%s", id, hex);
    hash_secret(key, secret, hash);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(hex, sizeof hex);
}

int aq_token_parse(const unsigned char key[32], const char *token, size_t len, char *id,
                   unsigned char hash[AQ_TOKEN_HASH_LEN])
{
    if (len != AQ_TOKEN_LEN || memcmp(token, "aq_", 3) != 0 || token[3 + AQ_TOKEN_ID_LEN] != '_')
        return AQ_EAUTH;
    for (size_t i = 3; i < len; i++) {
        char c = token[i];
        if (i == 3 + AQ_TOKEN_ID_LEN) continue;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return AQ_EAUTH;
    }
    memcpy(id, token + 3, AQ_TOKEN_ID_LEN);
    id[AQ_TOKEN_ID_LEN] = '\0';
    unsigned char secret[32];
    size_t got = 0;
    if (sodium_hex2bin(secret, sizeof secret, token + 4 + AQ_TOKEN_ID_LEN, 64, NULL, &got, NULL) || got != 32)
        return AQ_EAUTH;
    hash_secret(key, secret, hash);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

int aq_token_hash_equal(const unsigned char *a, const unsigned char *b)
{
    return sodium_memcmp(a, b, AQ_TOKEN_HASH_LEN) == 0;
}
