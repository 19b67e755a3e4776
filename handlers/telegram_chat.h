/* telegram_chat.h — a linked Telegram chat's channel row when Telegram moves
 * the chat: a group that becomes a supergroup gets a new chat id (a 400 with
 * parameters.migrate_to_chat_id to a send, and the service messages
 * migrate_to_chat_id / migrate_from_chat_id). Used by notify and
 * telegram_update; blocking libpq, handler threads only. */
#ifndef AQ_TELEGRAM_CHAT_H
#define AQ_TELEGRAM_CHAT_H
#include <libpq-fe.h>

/* Move the channel of chat `from` to chat `to`, keeping its user, session,
 * linker and state. If `to` is already a channel, the row of `from` is
 * deleted instead (the new chat's own link wins); if `from` is no channel
 * (moved already), nothing changes. 0, or -1 on a database error
 * (PQerrorMessage(db) says why). */
int aq_tg_chat_move(PGconn *db, long long from, long long to);

#endif
