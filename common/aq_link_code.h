/* aq_link_code.h — Telegram link codes ("/start CODE"), made the same way by
 * the API (POST /v1/channels/telegram/link) and the CLI (`agentq telegram
 * link NAME`): the code's alphabet and the statement that stores it. The
 * telegram_update handler uses a code up (single use, short-lived). */
#ifndef AQ_LINK_CODE_H
#define AQ_LINK_CODE_H

#define AQ_LINK_CODE_LEN 10

/* A fresh code: AQ_LINK_CODE_LEN characters from an alphabet without
 * look-alikes (about 50 bits, libsodium's RNG; sodium_init must have run).
 * out gets AQ_LINK_CODE_LEN + 1 bytes. Any thread. */
void aq_link_code_new(char *out);

/* Stores a code. Parameters: $1 the code, $2 the user's id, $3 minutes it
 * stays valid. One row, one column: the JSON text {"code", "expires_at",
 * "start": "/start CODE"}. */
extern const char aq_link_code_insert_sql[];

#endif
