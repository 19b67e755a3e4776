/* aq_token.h — API tokens: "aq_<id>_<secret>", where id is 16 hex digits
 * (looked up in users.token_id) and secret is 64 hex digits (32 random bytes)
 * whose keyed BLAKE2b-256 hash, keyed by AGENTQ_SECRET_KEY, is users.token_hash.
 * The secret is shown once and never stored. Requires sodium_init(). */
#ifndef AQ_TOKEN_H
#define AQ_TOKEN_H
#include <stddef.h>

#define AQ_TOKEN_ID_LEN 16
#define AQ_TOKEN_LEN (3 + AQ_TOKEN_ID_LEN + 1 + 64)
#define AQ_TOKEN_HASH_LEN 32

/* AGENTQ_SECRET_KEY: 64 hex digits, or base64 of exactly 32 bytes. 0, or
 * AQ_ECONFIG with the reason in err (an empty key is an error too). */
int aq_secret_key_parse(const char *text, unsigned char key[32], char *err, size_t errlen);
/* A new random token (token: AQ_TOKEN_LEN+1 bytes, id: AQ_TOKEN_ID_LEN+1). */
void aq_token_new(const unsigned char key[32], char *token, char *id, unsigned char hash[AQ_TOKEN_HASH_LEN]);
/* Split a presented token (len bytes, not NUL-terminated) into its id and the
 * hash of its secret. 0, or AQ_EAUTH when it is not of the token's shape. */
int aq_token_parse(const unsigned char key[32], const char *token, size_t len, char *id,
                   unsigned char hash[AQ_TOKEN_HASH_LEN]);
/* Constant-time comparison of two hashes: 1 when equal. */
int aq_token_hash_equal(const unsigned char *a, const unsigned char *b);

#endif
