/* aq_tg_update.h — what an inbound Telegram update must be before it is
 * stored as a telegram_update job. The webhook (agentq-api) and `agentq
 * telegram poll` both ask here, so an update either path can store is one
 * Postgres accepts as jsonb and the handler reads as Telegram sent it. An
 * update that fails is dropped (logged), never retried: Telegram would
 * resend it forever, and no retry can make it valid. Pure; any thread. */
#ifndef AQ_TG_UPDATE_H
#define AQ_TG_UPDATE_H
#include <cJSON.h>
#include <stddef.h>

/* Largest update_id accepted (2^53: exact in a double, as in the jsonb). */
#define AQ_TG_UPDATE_ID_MAX 9007199254740992LL

/* Parse raw[0..len) as one storable Update: well-formed UTF-8 with no NUL
 * byte, no \u0000 escape (cJSON would cut the string there), one JSON object
 * with nothing after it but whitespace, and an integer update_id from 0 to
 * AQ_TG_UPDATE_ID_MAX. Returns the object (the caller cJSON_Deletes it) and
 * sets *update_id; or returns NULL and sets *why to a static reason. */
cJSON *aq_tg_update_parse(const char *raw, size_t len, long long *update_id, const char **why);

#endif
