/* email_processing.c — one email in, suggested tasks out (SPEC §5, issue 14).
 *
 * input: {"raw": "RFC 5322 text"} or {"raw_base64": "..."} (8-bit mail),
 * plus optional "reply_to" (routes.h; absent: the owner is told, web inbox
 * and linked Telegram chats). POST /v1/jobs writes it, and so does
 * imap_poll for each unseen message of a mailbox (with "connection_id").
 *
 * Steps (aq_handler.h): decode and parse (mime.c, with the AGENTQ_EMAIL_*
 * caps); build the prompt (extract.c); hand the model request to the engine
 * (aq_ctx_http, the agent turn's request and response code in llm.c) and
 * return AQ_JOB_AWAIT, holding no thread and no connection while the model
 * thinks; in the next step check the answer (extract.c) and, when it is
 * refused, ask once more with the reason, then fail with it; store the tasks
 * (is_ai_suggested, suggestion 'pending', linked to the message and to this
 * job) and answer {"reply": summary, ...}, which the reply routes deliver. A
 * message with no task answers "skipped" and nobody is bothered. Between
 * steps the state keeps the parsed message and the conversation.
 *
 * At-least-once: the tasks are keyed by (this job, their index), so a re-run
 * stores nothing twice; a re-run that finds them stored does not ask the
 * model again. */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_log.h"
#include "extract.h"
#include "handlers.h"
#include "llm.h"
#include "mime.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_TITLES 5   /* titles named in the notification */

/* $1 user, $2 job, $3 tasks (array), $4 from, $5 subject, $6 Message-ID */
static const char SQL_STORE[] =
    "INSERT INTO tasks (user_id, title, notes, priority, due_at, is_ai_suggested, suggestion, source_job_id,"
    " source_index, source_from, source_subject, source_message_id)"
    " SELECT $1, t->>'title', t->>'notes', (t->>'priority')::smallint, (t->>'due_at')::timestamptz, true,"
    " 'pending', $2, i, $4, $5, nullif($6, '')"
    " FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(t, i)"
    " ON CONFLICT (source_job_id, source_index) WHERE source_job_id IS NOT NULL DO NOTHING";

static const char SQL_STORED[] =
    "SELECT coalesce(json_agg(json_build_object('id', id, 'title', title, 'notes', notes, 'due_at', due_at,"
    " 'priority', priority) ORDER BY source_index), '[]')::text FROM tasks WHERE source_job_id = $1";

/* The raw message from the input (heap, *len its size), or NULL with *why
 * (static) set. Pure: the input check is this decoding. */
static char *raw_message(const cJSON *input, size_t *len, const char **why)
{
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(input, "raw");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(input, "raw_base64");
    if ((raw != NULL) == (b64 != NULL) || (raw && !cJSON_IsString(raw)) || (b64 && !cJSON_IsString(b64))) {
        *why = "input: exactly one of raw (the message as text) or raw_base64 (a string)";
        return NULL;
    }
    if (raw) {
        *len = strlen(raw->valuestring);
        return aq_strndup(raw->valuestring, *len);
    }
    size_t n = strlen(b64->valuestring), cap = n / 4 * 3 + 3;
    char *bin = aq_malloc(cap + 1);
    if (sodium_base642bin((unsigned char *)bin, cap, b64->valuestring, n, " \t\r\n", len, NULL,
                          sodium_base64_VARIANT_ORIGINAL)) {
        *why = "input.raw_base64: not valid base64";
        free(bin);
        return NULL;
    }
    bin[*len] = '\0';
    return bin;
}

const char *aq_check_email_processing(const cJSON *input)
{
    size_t len;
    const char *why = NULL;
    free(raw_message(input, &len, &why));
    return why;
}

/* What the handler keeps between its steps (aq_ctx_set_state). */
typedef struct email_state {
    aq_mime_msg m;
    cJSON *messages;   /* the conversation with the model so far */
    int round, retried;
} email_state;

static void state_free(void *p)
{
    email_state *es = p;
    aq_mime_msg_dispose(&es->m);
    cJSON_Delete(es->messages);
    free(es);
}

/* Hand the conversation to the engine: the next step reads the answer. */
static aq_job_status ask_model(aq_ctx *ctx, email_state *es)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    long left = aq_ctx_time_left_ms(ctx);
    long timeout = left < cfg->llm_timeout_ms ? (left > 1000 ? left : 1000) : cfg->llm_timeout_ms;
    aq_http_request *req = aq_llm_request(cfg, es->messages, NULL, timeout);
    aq_ctx_http(ctx, req);
    aq_http_request_free(req);
    return AQ_JOB_AWAIT;
}

/* The summary people get: count, sender, subject and the first titles (heap). */
static char *summary(const aq_mime_msg *m, const cJSON *tasks, int capped)
{
    aq_buf b;
    aq_buf_init(&b);
    int n = cJSON_GetArraySize(tasks);
    aq_buf_addf(&b, "%d suggested task%s from %s", n, n == 1 ? "" : "s", m->from[0] ? m->from : "(no sender)");
    if (m->subject[0]) aq_buf_addf(&b, " (\"%.200s\")", m->subject);
    aq_buf_adds(&b, ":");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        if (i++ == SUMMARY_TITLES) { aq_buf_addf(&b, "\n... and %d more", n - SUMMARY_TITLES); break; }
        aq_buf_addf(&b, "\n- %s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "title")));
    }
    if (capped) aq_buf_addf(&b, "\n(the model listed more; the first %d are kept)", AQ_EXTRACT_MAX_TASKS);
    aq_buf_adds(&b, "\nAccept or dismiss them in your task list.");
    return aq_buf_take(&b);
}

/* The model's answer to the request of the step before: checked, and when
 * refused the first time asked again with the reason (AQ_JOB_AWAIT). 0...:
 * AQ_JOB_OK with *tasks, or the status to return (the reason is on ctx). */
static aq_job_status take_answer(aq_ctx *ctx, email_state *es, const aq_http_resp *resp, cJSON **tasks,
                                 int *capped)
{
    aq_llm_reply reply;
    aq_job_status st;
    char why[300] = "";
    if (aq_llm_response(aq_ctx_config(ctx), resp->error ? AQ_EIO : 0, resp, &reply)) {
        aq_ctx_error(ctx, "%s", reply.error ? reply.error : "the model call failed");
        if (reply.transient) aq_ctx_retry_transient(ctx, reply.retry_after_ms);
        st = reply.transient ? AQ_JOB_RETRY : AQ_JOB_FAIL;
    } else if (aq_extract_check(reply.content, tasks, capped, why, sizeof why) == 0) {
        st = AQ_JOB_OK;
    } else if (es->round++ == 0) {   /* feed the reason back, once */
        aq_log(AQ_LOG_INFO, "email", aq_ctx_job(ctx)->id, "the model's answer was refused: %s", why);
        es->retried = 1;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddStringToObject(a, "content", reply.content ? reply.content : "");
        cJSON_AddItemToArray(es->messages, a);
        char *text = aq_extract_retry_text(why);
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddStringToObject(u, "content", text);
        cJSON_AddItemToArray(es->messages, u);
        free(text);
        st = aq_ctx_cancelled(ctx) ? AQ_JOB_FAIL : ask_model(ctx, es);
        if (st == AQ_JOB_FAIL) aq_ctx_error(ctx, "cancelled");
    } else {
        aq_log(AQ_LOG_INFO, "email", aq_ctx_job(ctx)->id, "the model's answer was refused: %s", why);
        aq_ctx_error(ctx, "the model's answer was refused twice; the last: %s", why);
        st = AQ_JOB_FAIL;
    }
    aq_llm_reply_dispose(&reply);
    return st;
}

/* Tasks this job already stored (a re-run), as an array, or NULL when none
 * or the database is unreachable (*down set). */
static cJSON *stored_tasks(aq_ctx *ctx, int *down)
{
    PGconn *db = aq_ctx_db(ctx);
    *down = !db;
    if (!db) return NULL;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)aq_ctx_job(ctx)->id);
    const char *p[] = {id};
    PGresult *r;
    if (aq_db_query(db, "email: tasks stored by an earlier run", SQL_STORED, 1, p, &r)) { *down = 1; return NULL; }
    cJSON *t = cJSON_Parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (cJSON_GetArraySize(t) == 0) { cJSON_Delete(t); return NULL; }
    return t;
}

aq_job_status aq_handle_email_processing(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    const aq_job *job = aq_ctx_job(ctx);
    aq_job_status st = AQ_JOB_FAIL;
    cJSON *tasks = NULL;
    int capped = 0, down = 0;
    email_state *es = aq_ctx_state(ctx);
    const aq_http_resp *resp = aq_ctx_http_response(ctx);
    if (!es) {   /* the first step: the message, and what an earlier run left */
        size_t len = 0;
        const char *why = NULL;
        char *raw = raw_message(input, &len, &why);
        if (!raw) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
        if (!job->user_id) {
            free(raw);
            aq_ctx_error(ctx, "the job has no owner to give tasks to");
            return AQ_JOB_FAIL;
        }
        aq_mime_limits lim = {(size_t)cfg->max_email_bytes, (int)cfg->email_max_parts, (int)cfg->email_max_depth,
                              (size_t)cfg->email_text_bytes};
        char err[256];
        es = aq_calloc(1, sizeof *es);
        int bad = aq_mime_parse(raw, len, &lim, &es->m, err, sizeof err);
        free(raw);
        if (bad) {
            free(es);
            aq_ctx_error(ctx, "%s", err);
            /* a worker deployed without agentq-mime.so: retried, so the
             * message is read once the file is in place */
            return bad == AQ_ECONFIG ? AQ_JOB_RETRY : AQ_JOB_FAIL;
        }
        aq_ctx_set_state(ctx, es, state_free);
        if (!strcmp(cfg->llm_provider, "offline")) {
            *output = cJSON_CreateObject();
            cJSON_AddStringToObject(*output, "skipped", "LLM_PROVIDER=offline: no model reads mail; no tasks suggested");
            return AQ_JOB_OK;
        }
        tasks = stored_tasks(ctx, &down);
        if (down) { aq_ctx_error(ctx, "the database is unreachable"); return AQ_JOB_RETRY; }
        if (!tasks) {
            if (aq_ctx_cancelled(ctx)) { aq_ctx_error(ctx, "cancelled"); return AQ_JOB_FAIL; }
            es->messages = aq_extract_prompt(&es->m);
            return ask_model(ctx, es);
        }
    } else if (resp) {   /* the model answered (or failed) */
        st = take_answer(ctx, es, resp, &tasks, &capped);
        if (st != AQ_JOB_OK) return st;
        char uid[24], jid[24];
        snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
        snprintf(jid, sizeof jid, "%lld", (long long)job->id);
        char *tj = cJSON_PrintUnformatted(tasks);
        const char *p[] = {uid, jid, tj, es->m.from, es->m.subject, es->m.message_id};
        int rc = cJSON_GetArraySize(tasks) ? aq_ctx_exec_owned(ctx, SQL_STORE, 6, p, NULL) : 0;
        cJSON_free(tj);
        cJSON_Delete(tasks);
        tasks = NULL;
        if (rc == AQ_EUNAVAIL || rc == AQ_EDB) return AQ_JOB_RETRY;
        if (rc) return AQ_JOB_FAIL;   /* no longer ours (cancelled, lost): the error says so */
        tasks = stored_tasks(ctx, &down);   /* with their ids */
        if (down) { aq_ctx_error(ctx, "the database is unreachable"); return AQ_JOB_RETRY; }
        if (!tasks) tasks = cJSON_CreateArray();
    } else {
        aq_ctx_error(ctx, "email_processing: a step with neither a message nor an answer (handler bug)");
        return AQ_JOB_FAIL;
    }
    const aq_mime_msg *m = &es->m;
    *output = cJSON_CreateObject();
    if (cJSON_GetArraySize(tasks)) {
        char *s = summary(m, tasks, capped);
        cJSON_AddStringToObject(*output, "reply", s);
        free(s);
    } else {
        cJSON_AddStringToObject(*output, "skipped", "no tasks in the message");
    }
    cJSON_AddItemToObject(*output, "tasks", tasks);
    cJSON *msg = cJSON_AddObjectToObject(*output, "message");
    cJSON_AddStringToObject(msg, "from", m->from);
    cJSON_AddStringToObject(msg, "subject", m->subject);
    cJSON_AddStringToObject(msg, "date", m->date);
    cJSON_AddStringToObject(msg, "message_id", m->message_id);
    cJSON_AddItemToObject(msg, "attachments", cJSON_Duplicate(m->attachments, 1));
    cJSON_AddBoolToObject(msg, "text_cut", m->text_cut);
    cJSON_AddNumberToObject(msg, "parts_skipped", m->parts_skipped);
    cJSON_AddBoolToObject(*output, "capped", capped);
    cJSON_AddBoolToObject(*output, "retried", es->retried);
    return AQ_JOB_OK;
}
