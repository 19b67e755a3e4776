/* fz_token.c — presented API tokens (the Authorization header's value,
 * aq_token_parse) and AGENTQ_SECRET_KEY text (aq_secret_key_parse).
 * Contracts: an accepted token has the token's exact shape, its id is the
 * 16 hex digits after "aq_", and its hash is the same on a second parse; a
 * freshly made token parses back to its own id and hash. */
#include "fuzz.h"
#include "aq_token.h"
#include <sodium.h>

static unsigned char key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (sodium_init() < 0) abort();
    memset(key, 0x5a, sizeof key);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tok = (const char *)data;
    char id[AQ_TOKEN_ID_LEN + 1], id2[AQ_TOKEN_ID_LEN + 1];
    unsigned char hash[AQ_TOKEN_HASH_LEN], hash2[AQ_TOKEN_HASH_LEN];
    if (aq_token_parse(key, tok, size, id, hash) == 0) {
        FZ_CHECK(size == AQ_TOKEN_LEN && !memcmp(tok, "aq_", 3) && tok[3 + AQ_TOKEN_ID_LEN] == '_');
        FZ_CHECK(strlen(id) == AQ_TOKEN_ID_LEN && !memcmp(id, tok + 3, AQ_TOKEN_ID_LEN));
        FZ_CHECK(aq_token_parse(key, tok, size, id2, hash2) == 0 && aq_token_hash_equal(hash, hash2));
    }

    char token[AQ_TOKEN_LEN + 1];
    aq_token_new(key, token, id, hash);
    FZ_CHECK(aq_token_parse(key, token, strlen(token), id2, hash2) == 0);
    FZ_CHECK(!strcmp(id, id2) && aq_token_hash_equal(hash, hash2));

    char *text = fz_cstr(data, size), err[160];
    unsigned char k[32];
    if (aq_secret_key_parse(text, k, err, sizeof err) != 0) FZ_CHECK(err[0] != '\0');
    free(text);
    return 0;
}
