/* telegram_chat.c — moving a channel to a chat's new id (see telegram_chat.h). */
#include "telegram_chat.h"
#include "aq_db.h"
#include <stdio.h>

int aq_tg_chat_move(PGconn *db, long long from, long long to)
{
    char from_s[24], to_s[24];
    snprintf(from_s, sizeof from_s, "%lld", from);
    snprintf(to_s, sizeof to_s, "%lld", to);
    const char *p[] = {from_s, to_s};
    return aq_db_query(db, "moving a chat", "WITH moved AS (UPDATE channels SET address = $2, updated_at = now()"
                       " WHERE kind = 'telegram' AND address = $1 AND NOT EXISTS (SELECT 1 FROM channels"
                       " WHERE kind = 'telegram' AND address = $2) RETURNING id)"
                       " DELETE FROM channels WHERE kind = 'telegram' AND address = $1"
                       " AND NOT EXISTS (SELECT 1 FROM moved)", 2, p, NULL);
}
