/* aq_tg_api.h — Telegram's Bot API over libcurl (aq_http), and the
 * splitter that cuts long replies to Telegram's message limit. Calls block
 * (handler threads only); the splitter is pure and callable anywhere.
 *
 * A call POSTs JSON to {TELEGRAM_API_BASE}/bot{TELEGRAM_BOT_TOKEN}/{method}
 * and sorts the outcome into what a job should do next:
 *   AQ_TG_OK       HTTP 200 with {"ok":true,"result":...}; result is handed over.
 *   AQ_TG_RETRY    429 (retry_after_ms from parameters.retry_after, else the
 *                  Retry-After header); 5xx; no response at all (connection
 *                  refused, timeout, reply over the cap); a 200 whose body is
 *                  not the expected JSON; any other unexpected status (1xx,
 *                  other 2xx, 3xx). retry_after_ms is -1 unless Telegram
 *                  or the header named a delay.
 *   AQ_TG_BLOCKED  403: the bot was blocked by the user, kicked from the
 *                  group, or the user is deactivated. Permanent for that chat.
 *   AQ_TG_FAILED   any other 4xx (400 "chat not found", 401/404 bad token,
 *                  409 webhook conflict), or TELEGRAM_BOT_TOKEN is empty (no
 *                  request is made then). Permanent — except that a 400 whose
 *                  parameters.migrate_to_chat_id names a chat (the group
 *                  became a supergroup) sets migrate_to_chat_id: the same
 *                  request to that chat may succeed.
 * A 200 that says {"ok":false,"error_code":N} is sorted as HTTP N.
 * error (not OK) reads like "Telegram sendMessage: HTTP 400: Bad Request:
 * chat not found" — the method, the HTTP status and Telegram's description
 * (or curl's reason). The bot token never appears in it, nor in any log. */
#ifndef AQ_TELEGRAM_API_H
#define AQ_TELEGRAM_API_H
#include <cJSON.h>
#include <stddef.h>
#include "aq_config.h"
#include "aq_http.h"

typedef enum { AQ_TG_OK, AQ_TG_RETRY, AQ_TG_BLOCKED, AQ_TG_FAILED } aq_tg_status;

/* Caller-owned; filled by every call below, freed with aq_tg_result_dispose. */
typedef struct aq_tg_result {
    aq_tg_status status;
    long retry_after_ms;     /* RETRY: the delay Telegram asked for in ms, or -1 */
    cJSON *result;           /* OK: the reply's "result" member (owned); NULL otherwise */
    char *error;             /* not OK: the readable reason (heap); NULL when OK */
    long http_status;        /* the status that arrived; 0 when none */
    long long migrate_to_chat_id;   /* FAILED: the supergroup the chat became, or 0 */
} aq_tg_result;

/* Telegram's limit on a message's text, in UTF-16 code units. */
#define AQ_TG_TEXT_LIMIT 4096

/* POST params (a JSON object; NULL: {}) to method, bounded by
 * cfg->telegram_timeout_ms. Always fills *out. Returns 0 when out->status is
 * AQ_TG_OK, else AQ_EIO. */
int aq_tg_call(const aq_config *cfg, const char *method, const cJSON *params, aq_tg_result *out);
/* sendMessage {chat_id, text, reply_markup?}: text must fit AQ_TG_TEXT_LIMIT
 * (see aq_tg_split); reply_markup (e.g. {"inline_keyboard":[[...]]}) is
 * copied. OK: result is the sent Message (result.message_id). */
int aq_tg_send_message(const aq_config *cfg, long long chat_id, const char *text, const cJSON *reply_markup,
                       aq_tg_result *out);
/* answerCallbackQuery {callback_query_id, text?} (text NULL: none). */
int aq_tg_answer_callback(const aq_config *cfg, const char *callback_query_id, const char *text,
                          aq_tg_result *out);
/* getUpdates {offset, timeout: timeout_s, allowed_updates: ["message",
 * "callback_query"]}, a long poll bounded by timeout_s s plus
 * cfg->telegram_timeout_ms. OK: result is an array of Updates. */
int aq_tg_get_updates(const aq_config *cfg, long long offset, int timeout_s, aq_tg_result *out);
void aq_tg_result_dispose(aq_tg_result *r);
/* The two halves of every call above, for a caller that performs the
 * request itself (notify awaiting it on the worker's loop): the request for
 * method with params (heap; free with aq_http_request_free; its URL holds the
 * token), or NULL with *out filled (no token); and the sorting of its outcome
 * (hrc: aq_http_perform's return) into *out, returning as the calls do. */
aq_http_request *aq_tg_request(const aq_config *cfg, const char *method, const cJSON *params, long timeout_ms,
                               aq_tg_result *out);
int aq_tg_response(const aq_config *cfg, const char *method, int hrc, const aq_http_resp *r, aq_tg_result *out);
/* sendMessage's and answerCallbackQuery's params (heap JSON; the caller deletes it). */
cJSON *aq_tg_send_message_params(long long chat_id, const char *text, const cJSON *reply_markup);
cJSON *aq_tg_answer_callback_params(const char *callback_query_id, const char *text);
/* The pure part of a call: sort a reply that arrived (r: its status, body
 * and Retry-After) to method into *out, as in the table above; the caller
 * zeroes *out beforehand, with retry_after_ms -1 and status AQ_TG_FAILED. */
void aq_tg_classify(const aq_config *cfg, const char *method, const aq_http_resp *r, aq_tg_result *out);

/* Split UTF-8 text into chunks of at most `limit` units each, counted as
 * Telegram does in UTF-16 code units (a code point above U+FFFF counts 2).
 * A text that fits is one chunk, verbatim. Otherwise each cut is looked for
 * from the limit back to half the limit, in this order of preference: a
 * paragraph break (a blank line), a line break, a sentence end (". ", "! ",
 * "? "), a space or tab, else a hard cut at the limit on a code-point
 * boundary (never inside a UTF-8 sequence; a malformed byte counts as one
 * unit on its own). Whitespace at a cut is dropped from both sides. No chunk
 * is empty or only whitespace: "" or a text of only whitespace gives 0.
 * Fills starts[i]/lens[i] with byte ranges into text, in order, and returns
 * the count; AQ_ETOOBIG if more than max_chunks would be needed, AQ_EINVAL if
 * limit < 2. */
int aq_tg_split(const char *text, size_t limit, size_t *starts, size_t *lens, int max_chunks);

#endif
