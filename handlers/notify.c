/* notify.c — delivers one message to one destination (SPEC §5 notify).
 * Queued by reply routes (worker/routes.c) and by telegram_update.
 *
 * input: {"to": "web"|"telegram", "chat_id": N (telegram), "kind":
 * "reply"|"failure"|"approval"|"info", "text": "...", "job_id": N,
 * "action_id": N (approvals), "session_id": uuid}
 *
 * web: one notifications row for the job's user; the row names this notify
 * job (unique), so a retry writes nothing new.
 * telegram: sendMessage per chunk of the text (aq_tg_split; an approval's
 * Approve/Reject buttons ride on the last chunk). DESIGN: each chunk
 * Telegram accepts is recorded at once in telegram_sent (its own commit),
 * and a retry skips recorded chunks: a chunk is sent twice only if the
 * worker dies between Telegram's answer and that insert. 429 waits for
 * retry_after; 5xx and network errors back off (capped); both are transient
 * (aq_ctx_retry_transient: no attempt spent within the outage budget); 403
 * (bot blocked) fails for good and marks the chat's channel inactive; a 400
 * saying the group became a supergroup (migrate_to_chat_id) moves the chat's
 * channel to the new id and sends the rest there; other 4xx fail for good.
 * Writes and sends happen only while the run owns the job. Each send is a
 * step of its own (see to_telegram). A chunk Telegram accepted while the
 * database is unreachable (a restart) is not given up: the step waits for
 * the database, up to RECORD_WAIT_MS, to record it (a handler step's one
 * sleep, bounded, and only in an outage), since a retry would send it again. */
#include "aq_alloc.h"
#include "aq_error.h"
#include "aq_db.h"
#include "aq_json.h"
#include "aq_time.h"
#include "handlers.h"
#include "aq_tg_api.h"
#include "telegram_chat.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNKS 64
#define RECORD_WAIT_MS 15000

static const char *str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* o's integer key as text in buf; NULL when it is not an integer */
static const char *num_text(const cJSON *o, const char *key, char buf[24])
{
    long long n;
    if (!aq_json_int(cJSON_GetObjectItemCaseSensitive(o, key), -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX, &n)) return NULL;
    snprintf(buf, 24, "%lld", n);
    return buf;
}

static aq_job_status to_web(aq_ctx *ctx, PGconn *db, const cJSON *input, const char *kind, const char *text,
                            cJSON **out)
{
    const aq_job *job = aq_ctx_job(ctx);
    if (!job->user_id) { aq_ctx_error(ctx, "a web notification needs a job with a user_id"); return AQ_JOB_FAIL; }
    char uid[24], nid[24], jb[24], ab[24];
    snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
    snprintf(nid, sizeof nid, "%lld", (long long)job->id);
    const char *sid = str(input, "session_id");
    const char *p[] = {uid, kind, text, num_text(input, "job_id", jb), num_text(input, "action_id", ab),
                       sid, nid};
    PGresult *r = NULL;
    int rc = aq_ctx_exec_owned(ctx, "INSERT INTO notifications (user_id, kind, body, job_id, action_id, session_id,"
                                    " notify_job_id) VALUES ($1, $2, $3, $4, $5, $6::uuid, $7)"
                                    " ON CONFLICT (notify_job_id) DO UPDATE SET kind = notifications.kind"
                                    " RETURNING id", 7, p, &r);
    if (rc == AQ_ECONFLICT || rc == AQ_EUNAVAIL) {
        if (rc == AQ_EUNAVAIL) aq_ctx_error(ctx, "storing the notification: %s", PQerrorMessage(db));
        return AQ_JOB_RETRY;
    }
    if (rc) {
        const char *state = aq_db_error_state();
        aq_ctx_error(ctx, "storing the notification: %s", aq_db_error_message());
        int bad = !strncmp(state, "22", 2) || !strncmp(state, "23", 2);   /* bad value: no retry helps */
        return bad ? AQ_JOB_FAIL : AQ_JOB_RETRY;
    }
    *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(*out, "notification_id", strtod(PQgetvalue(r, 0, 0), NULL));
    PQclear(r);
    return AQ_JOB_OK;
}

static cJSON *approval_buttons(long long action)
{
    char yes[48], no[48];
    snprintf(yes, sizeof yes, "act:%lld:approve", action);
    snprintf(no, sizeof no, "act:%lld:reject", action);
    cJSON *markup = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(markup, "inline_keyboard");
    cJSON *row = cJSON_CreateArray();
    cJSON *b1 = cJSON_CreateObject(), *b2 = cJSON_CreateObject();
    cJSON_AddStringToObject(b1, "text", "Approve");
    cJSON_AddStringToObject(b1, "callback_data", yes);
    cJSON_AddStringToObject(b2, "text", "Reject");
    cJSON_AddStringToObject(b2, "callback_data", no);
    cJSON_AddItemToArray(row, b1);
    cJSON_AddItemToArray(row, b2);
    cJSON_AddItemToArray(rows, row);
    return markup;
}

/* Chunks already accepted by Telegram for this job: bit i set for chunk i. */
static int sent_chunks(PGconn *db, const char *jid, unsigned char *sent, cJSON *ids)
{
    const char *p[] = {jid};
    PGresult *r;
    if (aq_db_query(db, "notify: reading sent chunks",
                    "SELECT chunk, message_id FROM telegram_sent WHERE job_id = $1 ORDER BY chunk", 1, p, &r))
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        int c = atoi(PQgetvalue(r, i, 0));
        if (c >= 0 && c < MAX_CHUNKS) sent[c] = 1;
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(strtod(PQgetvalue(r, i, 1), NULL)));
    }
    PQclear(r);
    return 0;
}

static void deactivate(aq_ctx *ctx, const char *chat, const char *why)
{
    const char *p[] = {chat, why};
    aq_ctx_exec_owned(ctx, "UPDATE channels SET active = false, inactive_reason = $2, updated_at = now()"
                           " WHERE kind = 'telegram' AND address = $1", 2, p, NULL);
}

/* 1 while this run still owns the job: a run past its timeout sends nothing more. */
static int still_owner(aq_ctx *ctx, PGconn *db)
{
    if (aq_ctx_begin_owned(ctx)) return 0;
    aq_db_query(db, "notify: ownership check", "COMMIT", 0, NULL, NULL);
    return 1;
}

/* A connection for recording an accepted chunk: waits through a database
 * outage (up to RECORD_WAIT_MS, never past the job's timeout); NULL if the
 * database did not come back. */
static PGconn *db_to_record(aq_ctx *ctx)
{
    PGconn *db;
    long waited = 0;
    while (!(db = aq_ctx_db(ctx)) && waited < RECORD_WAIT_MS && aq_ctx_time_left_ms(ctx) > 1000) {
        aq_sleep_ms(250);
        waited += 250;
    }
    return db;
}

/* What a Telegram delivery keeps between its steps: the chunk whose
 * sendMessage is in flight and the chat it went to (a migration moves it). */
typedef struct tg_state {
    long long chat;
    int chunk;
    int migrated;
} tg_state;

static void tg_state_free(void *p) { free(p); }

/* Telegram's answer to the chunk in flight. AQ_JOB_AWAIT: go on with the next
 * chunk (this one recorded, or to be sent again to a migrated chat); else
 * the job's answer. */
static aq_job_status take_answer(aq_ctx *ctx, PGconn *db, tg_state *s, const char *jid, int n,
                                 const aq_http_resp *resp)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    aq_tg_result res;
    aq_tg_response(cfg, "sendMessage", resp->error ? AQ_EIO : 0, resp, &res);
    aq_job_status st = AQ_JOB_AWAIT;
    char chat_s[24];
    snprintf(chat_s, sizeof chat_s, "%lld", s->chat);
    if (res.status == AQ_TG_OK) {
        char ci[16], mi[24];
        snprintf(ci, sizeof ci, "%d", s->chunk);
        const char *p[] = {jid, ci, num_text(res.result, "message_id", mi)};
        static const char record[] = "INSERT INTO telegram_sent (job_id, chunk, message_id) VALUES ($1, $2, $3)"
                                     " ON CONFLICT DO NOTHING";
        int rc = aq_db_query(db, "notify: recording a chunk", record, 3, p, NULL);
        if (rc == AQ_EUNAVAIL && (db = db_to_record(ctx)))   /* the connection went: once more, once it is back */
            rc = aq_db_query(db, "notify: recording a chunk", record, 3, p, NULL);
        if (rc) {
            /* sent but not recorded: the retry may repeat this one chunk */
            aq_ctx_error(ctx, "recording chunk %d: %s", s->chunk, aq_db_error_message());
            st = AQ_JOB_RETRY;
        }
    } else if (res.status == AQ_TG_FAILED && res.migrate_to_chat_id && !s->migrated) {
        /* the group became a supergroup: move the channel, send this chunk there */
        s->migrated = 1;
        long long to = res.migrate_to_chat_id;
        if (aq_tg_chat_move(db, s->chat, to)) {
            aq_ctx_error(ctx, "moving chat %s to %lld: %s", chat_s, to, PQerrorMessage(db));
            st = AQ_JOB_RETRY;
        }
        s->chat = to;
    } else {
        aq_ctx_error(ctx, "chunk %d of %d: %s", s->chunk + 1, n, res.error ? res.error : "Telegram refused it");
        if (res.status == AQ_TG_RETRY) {
            aq_ctx_retry_transient(ctx, res.retry_after_ms);   /* an outage or retry_after: no attempt spent */
            st = AQ_JOB_RETRY;
        } else {
            if (res.status == AQ_TG_BLOCKED) deactivate(ctx, chat_s, res.error ? res.error : "blocked");
            st = AQ_JOB_FAIL;
        }
    }
    aq_tg_result_dispose(&res);
    return st;
}

/* DESIGN (steps): one sendMessage per step, awaited on the worker's loop
 * (aq_ctx_http), so a slow Bot API holds no thread and no connection. Each
 * step reads which chunks telegram_sent holds and sends the first missing
 * one; the step after records Telegram's answer. */
static aq_job_status to_telegram(aq_ctx *ctx, PGconn *db, const cJSON *input, const char *kind, const char *text,
                                 cJSON **out)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    long long chat = 0;
    aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "chat_id"), -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX, &chat);
    char jid[24];
    snprintf(jid, sizeof jid, "%lld", (long long)aq_ctx_job(ctx)->id);
    size_t starts[MAX_CHUNKS], lens[MAX_CHUNKS];
    int n = aq_tg_split(text, AQ_TG_TEXT_LIMIT, starts, lens, MAX_CHUNKS);
    if (n < 0) { aq_ctx_error(ctx, "text too long: more than %d Telegram messages", MAX_CHUNKS); return AQ_JOB_FAIL; }
    if (n == 0) { aq_ctx_error(ctx, "input.text: only whitespace, nothing to send"); return AQ_JOB_FAIL; }

    tg_state *s = aq_ctx_state(ctx);
    const aq_http_resp *resp = aq_ctx_http_response(ctx);
    if (s && resp) {
        aq_job_status st = take_answer(ctx, db, s, jid, n, resp);
        if (st != AQ_JOB_AWAIT) return st;
    }
    if (!s) {   /* the first step */
        s = aq_calloc(1, sizeof *s);
        s->chat = chat;
        aq_ctx_set_state(ctx, s, tg_state_free);
        /* a chat whose bot was blocked stays quiet until it writes again */
        char chat_s[24];
        snprintf(chat_s, sizeof chat_s, "%lld", s->chat);
        const char *cp[] = {chat_s};
        PGresult *r;
        if (aq_db_query(db, "notify: reading the channel",
                        "SELECT active FROM channels WHERE kind = 'telegram' AND address = $1", 1, cp, &r)) {
            aq_ctx_error(ctx, "reading the channel: %s", aq_db_error_message());
            return AQ_JOB_RETRY;
        }
        int inactive = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f';
        PQclear(r);
        if (inactive) {
            aq_ctx_error(ctx, "telegram chat %s is inactive (the bot was blocked)", chat_s);
            return AQ_JOB_FAIL;
        }
    }
    unsigned char sent[MAX_CHUNKS] = {0};
    cJSON *ids = cJSON_CreateArray();
    if (sent_chunks(db, jid, sent, ids)) {
        aq_ctx_error(ctx, "reading sent chunks: %s", aq_db_error_message());
        cJSON_Delete(ids);
        return AQ_JOB_RETRY;
    }
    int next = 0;
    while (next < n && sent[next]) next++;
    if (next == n) {
        *out = cJSON_CreateObject();
        cJSON_AddNumberToObject(*out, "chat_id", (double)s->chat);
        cJSON_AddNumberToObject(*out, "chunks", n);
        cJSON_AddItemToObject(*out, "message_ids", ids);
        return AQ_JOB_OK;
    }
    cJSON_Delete(ids);
    if (!still_owner(ctx, db)) return AQ_JOB_RETRY;   /* a run past its timeout sends nothing more */
    long long action;
    cJSON *markup = next == n - 1 && !strcmp(kind, "approval") &&
                    aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "action_id"), 1, AQ_JSON_INT_MAX, &action)
                  ? approval_buttons(action) : NULL;
    char *chunk = aq_strndup(text + starts[next], lens[next]);
    cJSON *params = aq_tg_send_message_params(s->chat, chunk, markup);
    free(chunk);
    cJSON_Delete(markup);
    aq_tg_result res;
    aq_http_request *req = aq_tg_request(cfg, "sendMessage", params, cfg->telegram_timeout_ms, &res);
    cJSON_Delete(params);
    if (!req) {   /* no token: nothing can be sent */
        aq_ctx_error(ctx, "chunk %d of %d: %s", next + 1, n, res.error ? res.error : "Telegram refused it");
        aq_tg_result_dispose(&res);
        return AQ_JOB_FAIL;
    }
    aq_tg_result_dispose(&res);
    s->chunk = next;
    aq_ctx_http(ctx, req);
    aq_http_request_free(req);
    return AQ_JOB_AWAIT;
}

const char *aq_check_notify(const cJSON *input)
{
    const char *to = str(input, "to"), *text = str(input, "text"), *kind = str(input, "kind");
    if (!to || (strcmp(to, "web") && strcmp(to, "telegram"))) return "input.to: web or telegram";
    if (!text || !*text) return "input.text: required, a non-empty string";
    if (kind && strcmp(kind, "reply") && strcmp(kind, "failure") && strcmp(kind, "approval") && strcmp(kind, "info"))
        return "input.kind: reply, failure, approval or info";
    char buf[24];
    if (!strcmp(to, "telegram") && !num_text(input, "chat_id", buf)) return "input.chat_id: required for telegram, an integer";
    return NULL;
}

aq_job_status aq_handle_notify(aq_ctx *ctx, const cJSON *input, cJSON **out)
{
    const char *to = str(input, "to"), *text = str(input, "text"), *kind = str(input, "kind");
    if (!kind) kind = "info";
    const char *why = aq_check_notify(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    PGconn *db = aq_ctx_db(ctx);
    /* a step carrying Telegram's answer must record it: wait for the database */
    if (!db && !strcmp(to, "telegram") && aq_ctx_http_response(ctx)) db = db_to_record(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    return !strcmp(to, "web") ? to_web(ctx, db, input, kind, text, out) : to_telegram(ctx, db, input, kind, text, out);
}
