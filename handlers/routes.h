/* routes.h — reply routes: where a job's result goes once it is final
 * (succeeded, or failed for good) or parks waiting for an approval. Each
 * destination becomes one `notify` job, queued as a follow-up, so it is
 * inserted in the same transaction as the completion: a reply is never lost
 * and a retry of the producing job never sends it twice.
 *
 * A job's input may say where with "reply_to": an array of
 *   {"to": "web"}                      the owner's web inbox
 *   {"to": "telegram", "chat_id": N}   one Telegram chat
 *   {"to": "owner"}                    the web inbox and every active linked chat
 * Without reply_to, the input's "channel" decides (the session's channel):
 * "web" → web, "telegram" (with "chat_id") → that chat; with neither, an
 * email_processing job goes to the owner. (scheduled_run jobs carry reply_to
 * owner, set by the scheduler.)
 * Approvals always go to the owner, and so does a job whose input is NULL
 * (it could not say where). The texts people read are made here, in
 * handlers/, not in the generic worker: the registry hands both functions to
 * the dispatcher as the completion hook (aq_handler.h). Pool threads only. */
#ifndef AQ_ROUTES_H
#define AQ_ROUTES_H
#include <cJSON.h>
#include "aq_handler.h"

/* NULL when input.reply_to is absent or well-formed, else why (static). */
const char *aq_routes_check(const cJSON *input);
/* Queue the notify jobs for a job that ended in status ("succeeded",
 * "failed" or "waiting") with output (may be NULL) and error (may be NULL);
 * input NULL: to the owner. */
void aq_routes_enqueue(aq_ctx *ctx, const cJSON *input, const cJSON *output, const char *status, const char *error);

#endif
