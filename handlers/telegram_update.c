/* telegram_update.c — one inbound Telegram update (SPEC §5), stored as a job
 * by POST /v1/telegram/webhook or by `agentq telegram poll`; the job's
 * idempotency key is the update_id, so a redelivered update is one job.
 *
 *   /start CODE          links the chat to the user who made CODE
 *                        (`agentq telegram link NAME`, or POST
 *                        /v1/channels/telegram/link; single use, short-lived),
 *                        and records who sent it (from.id): the linker
 *   text, linked chat    from the linker: an agent_turn in the chat's session,
 *                        replied to in the chat when it finishes (reply route:
 *                        channel telegram); longer than AGENTQ_MAX_MESSAGE_CHARS:
 *                        told the limit, no turn
 *   text, unlinked chat  how to get a link code
 *   callback_query       an Approve/Reject button pressed by the linker:
 *                        decides the pending action (the same action_decision
 *                        job the web API writes, with the same idempotency
 *                        key: decided once, whichever comes first) and answers
 *                        the button press
 *   migrate_to/from_chat_id  a group became a supergroup: its channel moves
 *
 * Who may act. A linked chat acts for one agentq user, so only the Telegram
 * user who linked it may start turns or press its buttons; anyone else (the
 * other members of a group) is refused politely and nothing runs. A chat
 * linked before the linker was recorded (migration 008): a private chat's id
 * is its one user's id, so that user may act; a group must be linked again.
 *
 * Everything this sends goes out as notify jobs or follow-ups, queued with
 * this job's completion: a retried update never answers twice. Updates of
 * other kinds are acknowledged and ignored. */
#include "aq_audit.h"
#include "aq_alloc.h"
#include "aq_log.h"
#include "aq_error.h"
#include "aq_db.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "handlers.h"
#include "aq_tg_api.h"
#include "telegram_chat.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOW_TO_LINK "This chat is not linked to an agentq account yet. To link it, get a link code: " \
    "ask your agentq operator to run `agentq telegram link YOUR-AGENTQ-NAME`, then send the code here " \
    "as: /start CODE (a code works once, for a few minutes)."
#define NOT_THE_LINKER "Sorry, only the person who linked this chat to agentq can use the agent here."
#define RELINK_GROUP "This group was linked before agentq recorded who linked it, so nobody can use the " \
    "agent here until it is linked again: the account's owner sends /start CODE with a new link code."

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static int int_of(const cJSON *v, long long *out)
{
    return aq_json_int(v, -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX, out);
}

const char *aq_check_telegram_update(const cJSON *input)
{
    long long id;
    return int_of(get(input, "update_id"), &id) ? NULL : "update_id: required, an integer";
}

/* Tell the chat something, as a notify follow-up (sent once this job completes). */
static void say(aq_ctx *ctx, long long chat, long long update_id, int n, const char *text, int64_t user_id)
{
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "to", "telegram");
    cJSON_AddNumberToObject(in, "chat_id", (double)chat);
    cJSON_AddStringToObject(in, "kind", "info");
    cJSON_AddStringToObject(in, "text", text);
    char key[64];
    snprintf(key, sizeof key, "telegram-say:%lld:%d", update_id, n);
    aq_enqueue_opts o = {.idempotency_key = key, .priority = AQ_PRIORITY_NOTIFY, .user_id = user_id};
    aq_ctx_enqueue(ctx, "notify", in, &o);
    cJSON_Delete(in);
}

typedef struct link {
    int64_t user_id;
    char session[37];
    long long linked_by;   /* the Telegram user who linked the chat; 0 if not recorded */
} link;

/* The user linked to chat (0 if none); a message from the chat also makes
 * a channel inactive after a block active again. -1 on a database error. */
static int linked(PGconn *db, const char *chat, link *l)
{
    const char *p[] = {chat};
    PGresult *r;
    if (aq_db_query(db, "telegram update: the chat's link", "UPDATE channels SET active = true,"
                    " inactive_reason = NULL, updated_at = now() WHERE kind = 'telegram' AND address = $1"
                    " RETURNING user_id, session_id::text, linked_by", 1, p, &r))
        return -1;
    memset(l, 0, sizeof *l);
    if (PQntuples(r) == 1) {
        l->user_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(l->session, sizeof l->session, "%s", PQgetvalue(r, 0, 1));
        if (!PQgetisnull(r, 0, 2)) l->linked_by = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    }
    PQclear(r);
    return 0;
}

/* The Telegram user who sent msg (a Message or CallbackQuery): from.id, or
 * 0 when there is none or it is a bot (an anonymous group admin shows up as
 * a bot). */
static long long sender(const cJSON *msg)
{
    const cJSON *from = get(msg, "from");
    long long id;
    if (!int_of(get(from, "id"), &id) || id <= 0 || cJSON_IsTrue(get(from, "is_bot"))) return 0;
    return id;
}

/* May Telegram user `from` act for the agentq user linked to chat? The
 * linker may; for a chat linked before linkers were recorded, the user of a
 * private chat (whose id is the chat's id, and positive; groups are negative). */
static int may_act(const link *l, long long chat, long long from)
{
    long long who = l->linked_by ? l->linked_by : chat > 0 ? chat : 0;
    return from && who == from;
}

static const char *refusal(const link *l, long long chat)
{
    return !l->linked_by && chat < 0 ? RELINK_GROUP : NOT_THE_LINKER;
}

static aq_job_status start_command(aq_ctx *ctx, PGconn *db, long long chat, const char *chat_s, long long update_id,
                                   long long from, const char *code, cJSON **out)
{
    while (*code == ' ') code++;
    if (!*code) {
        link l;
        if (linked(db, chat_s, &l)) { aq_ctx_error(ctx, "reading the link: %s", PQerrorMessage(db)); return AQ_JOB_RETRY; }
        say(ctx, chat, update_id, 0, l.user_id ? "Hello again. Send me a message and I will answer." : HOW_TO_LINK, l.user_id);
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "start", l.user_id ? "already linked" : "not linked");
        return AQ_JOB_OK;
    }
    if (!from) {   /* nobody to record as the linker: nobody could act in the chat */
        say(ctx, chat, update_id, 0, "Send /start CODE as yourself (not anonymously) to link this chat.", 0);
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "start", "no sender");
        return AQ_JOB_OK;
    }
    char from_s[24];
    snprintf(from_s, sizeof from_s, "%lld", from);
    /* in one statement: use the code if it is valid, and link (or relink) the chat,
     * recording who linked it.
     * A code this chat already used, while the chat still belongs to the code's
     * user, answers "linked" again: that is what a retry of this job sees when
     * an earlier attempt linked the chat and died before completing. */
    const char *p[] = {code, chat_s, from_s};
    PGresult *r = NULL;
    int rc = aq_ctx_exec_owned(ctx,   /* only while this run owns the job: a late run links nothing */
        "WITH c AS (SELECT code, user_id, expires_at <= now() AS expired, used_at IS NOT NULL AS used, used_by"
        "  FROM link_codes WHERE code = $1 FOR UPDATE),"
        " again AS (SELECT c.user_id FROM c JOIN channels h ON h.kind = 'telegram' AND h.address = $2"
        "  AND h.user_id = c.user_id WHERE c.used AND c.used_by = $2),"
        " use AS (UPDATE link_codes SET used_at = now(), used_by = $2 WHERE code = (SELECT code FROM c"
        "  WHERE NOT expired AND NOT used) RETURNING user_id),"
        " ch AS (INSERT INTO channels (user_id, kind, address, linked_by) SELECT user_id, 'telegram', $2, $3::bigint"
        "  FROM use ON CONFLICT (kind, address) DO UPDATE SET user_id = EXCLUDED.user_id, active = true,"
        "  linked_by = EXCLUDED.linked_by,"
        "  inactive_reason = NULL, updated_at = now(),"
        "  session_id = CASE WHEN channels.user_id = EXCLUDED.user_id THEN channels.session_id"
        "  ELSE gen_random_uuid() END RETURNING user_id)"
        " SELECT (SELECT expired FROM c), (SELECT used FROM c), coalesce((SELECT user_id FROM ch),"
        " (SELECT user_id FROM again)), (SELECT name FROM users WHERE id = coalesce((SELECT user_id FROM ch),"
        " (SELECT user_id FROM again)))",
        3, p, &r);
    if (rc) {
        if (rc == AQ_EUNAVAIL) aq_ctx_error(ctx, "linking: database unreachable");
        return AQ_JOB_RETRY;
    }
    const char *result;
    int64_t user = 0;
    if (!PQgetisnull(r, 0, 2)) { result = "linked"; user = strtoll(PQgetvalue(r, 0, 2), NULL, 10); }
    else if (PQgetisnull(r, 0, 0)) result = "unknown code";
    else if (PQgetvalue(r, 0, 0)[0] == 't') result = "expired code";
    else result = "used code";
    char msg[300];
    if (user) snprintf(msg, sizeof msg, "Linked: this chat now talks to the agent of %.100s. Send me a message.",
                       PQgetvalue(r, 0, 3));
    else if (!strcmp(result, "expired code")) snprintf(msg, sizeof msg, "That link code has expired. Create a new one and send /start CODE again.");
    else snprintf(msg, sizeof msg, "That link code is not valid (each code works once). Create a new one and send /start CODE.");
    PQclear(r);
    say(ctx, chat, update_id, 0, msg, user);
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "start", result);
    if (user) cJSON_AddNumberToObject(*out, "user_id", (double)user);
    return AQ_JOB_OK;
}

/* A service message saying a group became a supergroup (in the old group:
 * migrate_to_chat_id; in the new one: migrate_from_chat_id): the channel
 * moves. 1 when msg is one (and *st says how it went), else 0. */
static int on_migration(aq_ctx *ctx, PGconn *db, long long chat, const cJSON *msg, aq_job_status *st, cJSON **out)
{
    long long from = chat, to = chat;
    if (!int_of(get(msg, "migrate_to_chat_id"), &to) && !int_of(get(msg, "migrate_from_chat_id"), &from)) return 0;
    if (from == to || !from || !to) return 0;
    if (aq_tg_chat_move(db, from, to)) {
        aq_ctx_error(ctx, "moving chat %lld to %lld: %s", from, to, PQerrorMessage(db));
        *st = AQ_JOB_RETRY;
        return 1;
    }
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "message", "chat migrated: channel moved");
    cJSON_AddNumberToObject(*out, "from_chat_id", (double)from);
    cJSON_AddNumberToObject(*out, "to_chat_id", (double)to);
    *st = AQ_JOB_OK;
    return 1;
}

static aq_job_status on_message(aq_ctx *ctx, PGconn *db, long long update_id, const cJSON *msg, cJSON **out)
{
    long long chat;
    if (!int_of(get(get(msg, "chat"), "id"), &chat)) { aq_ctx_error(ctx, "message.chat.id: required, an integer"); return AQ_JOB_FAIL; }
    aq_job_status st;
    if (on_migration(ctx, db, chat, msg, &st, out)) return st;
    char chat_s[24];
    snprintf(chat_s, sizeof chat_s, "%lld", chat);
    long long from = sender(msg);
    const char *text = cJSON_GetStringValue(get(msg, "text"));
    if (text && !strncmp(text, "/start", 6) && (text[6] == '\0' || text[6] == ' ' || text[6] == '@')) {
        const char *code = text + 6;   /* "/start CODE" or, in groups, "/start@bot CODE" */
        if (*code == '@') code = strchr(code, ' ') ? strchr(code, ' ') : "";
        return start_command(ctx, db, chat, chat_s, update_id, from, code, out);
    }
    link l;
    if (linked(db, chat_s, &l)) { aq_ctx_error(ctx, "reading the link: %s", PQerrorMessage(db)); return AQ_JOB_RETRY; }
    *out = cJSON_CreateObject();
    if (!l.user_id) {
        say(ctx, chat, update_id, 0, HOW_TO_LINK, 0);
        cJSON_AddStringToObject(*out, "message", "unlinked chat: told how to link");
        return AQ_JOB_OK;
    }
    if (!may_act(&l, chat, from)) {
        say(ctx, chat, update_id, 0, refusal(&l, chat), l.user_id);
        cJSON_AddStringToObject(*out, "message", "not the linker: refused");
        return AQ_JOB_OK;
    }
    if (!text || !*text) {
        say(ctx, chat, update_id, 0, "I can only read text messages for now.", l.user_id);
        cJSON_AddStringToObject(*out, "message", "not text: told so");
        return AQ_JOB_OK;
    }
    long max = aq_ctx_config(ctx)->max_message_chars, n = (long)aq_utf8_chars(text);
    if (n > max) {
        char msg_text[200];
        snprintf(msg_text, sizeof msg_text, "That message is %ld characters long; the limit is %ld. "
                 "Please send a shorter one.", n, max);
        say(ctx, chat, update_id, 0, msg_text, l.user_id);
        cJSON_AddStringToObject(*out, "message", "too long: told the limit");
        return AQ_JOB_OK;
    }
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "message", text);
    cJSON_AddStringToObject(in, "session_id", l.session);
    cJSON_AddStringToObject(in, "channel", "telegram");
    cJSON_AddNumberToObject(in, "chat_id", (double)chat);
    char key[48];
    snprintf(key, sizeof key, "telegram-turn:%lld", update_id);
    aq_enqueue_opts o = {.idempotency_key = key, .user_id = l.user_id, .session_id = l.session};
    aq_ctx_enqueue(ctx, "agent_turn", in, &o);
    cJSON_Delete(in);
    cJSON_AddStringToObject(*out, "message", "agent turn queued");
    cJSON_AddNumberToObject(*out, "user_id", (double)l.user_id);
    return AQ_JOB_OK;
}

static void delete_json(void *p) { cJSON_Delete(p); }

/* Answer the button (cosmetic: the spinner stops) in a step of its own,
 * awaited on the worker's loop (aq_ctx_http): the output waits in the
 * state meanwhile. Returns AQ_JOB_AWAIT, or AQ_JOB_OK when nothing can be
 * sent (no token). */
static aq_job_status answer_button(aq_ctx *ctx, const char *query_id, const char *text, cJSON **out)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    cJSON *params = aq_tg_answer_callback_params(query_id, text);
    aq_tg_result res;
    aq_http_request *req = aq_tg_request(cfg, "answerCallbackQuery", params, cfg->telegram_timeout_ms, &res);
    cJSON_Delete(params);
    if (!req) {
        aq_log(AQ_LOG_WARN, "telegram", aq_ctx_job(ctx)->id, "answerCallbackQuery: %s", res.error ? res.error : "failed");
        aq_tg_result_dispose(&res);
        return AQ_JOB_OK;
    }
    aq_tg_result_dispose(&res);
    aq_ctx_http(ctx, req);
    aq_http_request_free(req);
    aq_ctx_set_state(ctx, *out, delete_json);
    *out = NULL;
    return AQ_JOB_AWAIT;
}

/* The step after answer_button: log a refusal, hand the output over. */
static aq_job_status answered(aq_ctx *ctx, const aq_http_resp *resp, cJSON **out)
{
    aq_tg_result res;
    if (aq_tg_response(aq_ctx_config(ctx), "answerCallbackQuery", resp->error ? AQ_EIO : 0, resp, &res))
        aq_log(AQ_LOG_WARN, "telegram", aq_ctx_job(ctx)->id, "answerCallbackQuery: %s",
               res.error ? res.error : "failed");
    aq_tg_result_dispose(&res);
    const cJSON *kept = aq_ctx_state(ctx);
    *out = kept ? cJSON_Duplicate(kept, 1) : NULL;
    return AQ_JOB_OK;
}

static aq_job_status on_callback(aq_ctx *ctx, PGconn *db, long long update_id, const cJSON *cq, cJSON **out)
{
    const char *qid = cJSON_GetStringValue(get(cq, "id")), *data = cJSON_GetStringValue(get(cq, "data"));
    long long chat;
    if (!qid) { aq_ctx_error(ctx, "callback_query.id: required"); return AQ_JOB_FAIL; }
    if (!int_of(get(get(get(cq, "message"), "chat"), "id"), &chat) && !int_of(get(get(cq, "from"), "id"), &chat)) {
        aq_ctx_error(ctx, "callback_query: no chat");
        return AQ_JOB_FAIL;
    }
    char chat_s[24];
    snprintf(chat_s, sizeof chat_s, "%lld", chat);
    *out = cJSON_CreateObject();
    long long action = 0;
    char verb[16] = "";
    if (!data || sscanf(data, "act:%lld:%15[a-z]", &action, verb) != 2 || action <= 0 ||
        (strcmp(verb, "approve") && strcmp(verb, "reject"))) {
        cJSON_AddStringToObject(*out, "callback", "unknown button");
        return answer_button(ctx, qid, "Unknown button.", out);
    }
    link l;
    if (linked(db, chat_s, &l)) { aq_ctx_error(ctx, "reading the link: %s", PQerrorMessage(db)); return AQ_JOB_RETRY; }
    if (l.user_id && !may_act(&l, chat, sender(cq))) {   /* a group member who is not the linker */
        cJSON_AddStringToObject(*out, "callback", "not the linker");
        cJSON_AddNumberToObject(*out, "action_id", (double)action);
        return answer_button(ctx, qid, !l.linked_by && chat < 0
                                           ? "This group must be linked again before its buttons work."
                                           : "Sorry, only the person who linked this chat can decide this.", out);
    }
    char aid[24], uid[24];
    snprintf(aid, sizeof aid, "%lld", action);
    snprintf(uid, sizeof uid, "%lld", (long long)l.user_id);
    const char *p[] = {aid, uid};
    PGresult *r;
    if (aq_db_query(db, "telegram update: reading the action",
                    "SELECT status, expires_at <= now() FROM pending_actions WHERE id = $1 AND user_id = $2", 2, p, &r)) {
        aq_ctx_error(ctx, "reading the action: %s", aq_db_error_message());
        return AQ_JOB_RETRY;
    }
    const char *answer, *result;
    if (!l.user_id || PQntuples(r) == 0) { answer = "This is not an action of yours."; result = "not found"; }
    else if (strcmp(PQgetvalue(r, 0, 0), "pending")) { answer = "Already decided."; result = "already decided"; }
    else if (PQgetvalue(r, 0, 1)[0] == 't') { answer = "This request has expired."; result = "expired"; }
    else {
        int yes = !strcmp(verb, "approve");
        cJSON *in = cJSON_CreateObject();
        cJSON_AddNumberToObject(in, "action_id", (double)action);
        cJSON_AddStringToObject(in, "decision", yes ? "approved" : "rejected");
        cJSON_AddNumberToObject(in, "by", (double)l.user_id);   /* for the audit log */
        cJSON_AddStringToObject(in, "channel", AQ_AUDIT_TELEGRAM);
        cJSON_AddNumberToObject(in, "telegram_user", (double)sender(cq));
        char key[48];
        snprintf(key, sizeof key, "action:%lld", action);   /* the API's key: decided once */
        aq_enqueue_opts o = {.idempotency_key = key, .priority = -10, .user_id = l.user_id};
        aq_ctx_enqueue(ctx, "action_decision", in, &o);
        cJSON_Delete(in);
        answer = yes ? "Approved." : "Rejected.";
        result = yes ? "approved" : "rejected";
    }
    PQclear(r);
    cJSON_AddStringToObject(*out, "callback", result);
    cJSON_AddNumberToObject(*out, "action_id", (double)action);
    return answer_button(ctx, qid, answer, out);
}

aq_job_status aq_handle_telegram_update(aq_ctx *ctx, const cJSON *input, cJSON **out)
{
    const aq_http_resp *resp = aq_ctx_http_response(ctx);
    if (resp) return answered(ctx, resp, out);   /* the button was answered (a step of its own) */
    const char *why = aq_check_telegram_update(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    long long update_id = 0;
    int_of(get(input, "update_id"), &update_id);
    const cJSON *msg = get(input, "message"), *cq = get(input, "callback_query");
    if (!cJSON_IsObject(msg) && !cJSON_IsObject(cq)) {
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "ignored", input->child ? "an update kind agentq does not handle" : "empty update");
        return AQ_JOB_OK;
    }
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    return cJSON_IsObject(msg) ? on_message(ctx, db, update_id, msg, out) : on_callback(ctx, db, update_id, cq, out);
}
