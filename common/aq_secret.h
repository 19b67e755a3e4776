/* aq_secret.h — secrets at rest (connections.password): sealed with
 * libsodium's crypto_secretbox_easy under a key derived from
 * AGENTQ_SECRET_KEY (crypto_kdf, context "aqsecret", subkey 1; the token
 * hashes use the key itself), a fresh random nonce per seal. The sealed form
 * is nonce || ciphertext (AQ_SECRET_OVERHEAD bytes longer than the secret).
 * Opening with another key, or a tampered value, fails: never garbage.
 * Requires sodium_init(). Any thread. */
#ifndef AQ_SECRET_H
#define AQ_SECRET_H
#include <stddef.h>

#define AQ_SECRET_OVERHEAD (24 + 16)   /* nonce + MAC */

/* Seal plain[0..n) under key (AGENTQ_SECRET_KEY as parsed by
 * aq_secret_key_parse): heap buffer of n + AQ_SECRET_OVERHEAD bytes. */
unsigned char *aq_secret_seal(const unsigned char key[32], const char *plain, size_t n, size_t *out_len);
/* Open sealed[0..n): a heap NUL-terminated string, or NULL when it was
 * sealed under another key, tampered with, or too short ("cannot decrypt"). */
char *aq_secret_open(const unsigned char key[32], const unsigned char *sealed, size_t n);

#endif
