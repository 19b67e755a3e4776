/* agent_turn.c — one user message in, one assistant reply out (SPEC §5).
 *
 * DESIGN: the session's stored history is the turn's state. Each step first
 * finishes any tool calls of this job's latest assistant message that have
 * no stored result; only then does it call the model. So a retry after a
 * crash or a provider error resumes where the turn stopped (a tool whose
 * result is stored never runs twice: its effect and its tool message commit
 * together), and an approval resumes the same way: a call of tier `approval`
 * writes a pending_actions row and parks the job 'waiting'; the decision
 * re-queues this job, and the step finds the decided action and runs the
 * tool (or tells the model it was declined).
 *
 * Consent is exact. Every call carries an id of ours (llm.c), so an
 * approval, looked up by (job, call id), binds to one call: a repeated or
 * missing provider id never lets a second call ride on it. Arguments must
 * read alike to every parser (aq_json_strict: no repeated key, no trailing
 * bytes, no \u0000), and an approved call runs with the arguments stored in
 * its pending_actions row, the form the user was shown. Calls that must not
 * run at all (from a reply cut off at the length limit, without a function,
 * beyond AGENTQ_AGENT_MAX_TOOL_CALLS) are answered with an error result in
 * the transaction that stores the reply; invalid arguments are answered
 * when the call's turn comes. Either way the model reads why and the turn
 * goes on.
 *
 * input: {"message": text, "session_id": uuid, "channel": "web"|"telegram"|"scheduled"}
 * output: {reply, tool_calls: [{name, arguments, result}], usage[, truncated:
 * true][, stopped: "max_steps"]}; while waiting: {status:
 * "waiting_for_approval", pending_action, reply, ...}. */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "agent_context.h"
#include "aq_json.h"
#include "aq_db.h"
#include "aq_error.h"
#include "handlers.h"
#include "llm.h"
#include "tools.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a turn keeps between its steps (aq_ctx_set_state): only what this
 * run did, for its output; the turn's real state is the stored history. */
typedef struct turn_state {
    cJSON *made;                 /* tool calls made: [{name, arguments, result}] */
    long prompt_tokens, completion_tokens, model_calls;
} turn_state;

typedef struct turn {
    aq_ctx *ctx;
    PGconn *db;
    const aq_job *job;
    const aq_config *cfg;
    const char *session;
    char uid[24], jid[24];
    turn_state *s;
} turn;

static void state_free(void *p)
{
    turn_state *s = p;
    cJSON_Delete(s->made);
    free(s);
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define INSERT_MESSAGE "INSERT INTO chat_message_history (session_id, role, content, tool_calls, tool_call_id, job_id)" \
    " VALUES ($1, $2, $3, $4::jsonb, $5, $6)"

/* Inside a transaction begun with aq_ctx_begin_owned. */
static int insert_message(turn *t, const char *role, const char *content, const char *tool_calls, const char *call_id)
{
    const char *p[] = {t->session, role, content, tool_calls, call_id, t->jid};
    return !aq_db_query(t->db, "agent turn: storing a message", INSERT_MESSAGE, 6, p, NULL);
}

/* On its own, only while this run owns the job (a late run writes nothing). */
static int store_message(turn *t, const char *role, const char *content, const char *tool_calls, const char *call_id)
{
    const char *p[] = {t->session, role, content, tool_calls, call_id, t->jid};
    return aq_ctx_exec_owned(t->ctx, INSERT_MESSAGE, 6, p, NULL) == 0;
}

static cJSON *usage(const turn *t)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)t->s->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)t->s->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(t->s->prompt_tokens + t->s->completion_tokens));
    cJSON_AddNumberToObject(u, "model_calls", (double)t->s->model_calls);
    return u;
}

static cJSON *output(turn *t, const char *reply)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "reply", reply);
    cJSON_AddItemToObject(o, "tool_calls", t->s->made);
    t->s->made = NULL;
    cJSON_AddItemToObject(o, "usage", usage(t));
    return o;
}

/* a call and its result in the output's tool_calls */
static void note_made(turn *t, const char *name, const char *args_text, const char *result)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "arguments", args_text);
    cJSON *parsed = cJSON_Parse(result);
    if (parsed) cJSON_AddItemToObject(m, "result", parsed); else cJSON_AddStringToObject(m, "result", result);
    cJSON_AddItemToArray(t->s->made, m);
}

/* Store a tool's result; for a normal tool run it in the same transaction. */
static int finish_call(turn *t, const aq_tool *tool, const char *call_id, const char *name, const char *args_text,
                       const cJSON *args, const char *given_result)
{
    if (aq_ctx_begin_owned(t->ctx)) return -1;
    char *result = NULL, *err = NULL;
    if (given_result) {
        result = aq_strdup(given_result);
    } else {
        aq_db_query(t->db, "agent turn: savepoint", "SAVEPOINT tool", 0, NULL, NULL);
        result = aq_tool_run(tool, t->db, t->job->user_id, args, &err);
        if (!result) {
            aq_db_query(t->db, "agent turn: undoing a failed tool", "ROLLBACK TO SAVEPOINT tool", 0, NULL, NULL);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "error", err ? err : "failed");
            result = cJSON_PrintUnformatted(e);
            cJSON_Delete(e);
        }
    }
    aq_utf8_sanitize(result);
    int ok = insert_message(t, "tool", result, NULL, call_id) &&
             !aq_db_query(t->db, "agent turn: commit", "COMMIT", 0, NULL, NULL);
    if (!ok) aq_db_query(t->db, "agent turn: rollback", "ROLLBACK", 0, NULL, NULL);
    if (ok) note_made(t, name, args_text, result);
    free(result);
    free(err);
    return ok ? 0 : -1;
}

enum { STEP_DONE_CALLS, STEP_NO_CALLS, STEP_WAIT, STEP_ERROR, STEP_REFUSED };
enum { DECIDED_RUN, DECIDED_NOT, UNDECIDED, DECISION_DB_FAILED };

/* The user's decision on the approval call `id` (ids are ours and unique, so
 * an approval binds to this one call). DECIDED_RUN sets *shown to the
 * arguments as stored and shown to the user (heap): those are what runs.
 * DECIDED_NOT sets *given to the result telling the model why not. */
static int decision(turn *t, const char *id, char **shown, char **given)
{
    const char *q[] = {t->jid, id};
    PGresult *pa = NULL;
    if (aq_db_query(t->db, "agent turn: reading an approval",
                    "SELECT status, arguments::text FROM pending_actions WHERE job_id = $1 AND tool_call_id = $2",
                    2, q, &pa))
        return DECISION_DB_FAILED;
    const char *status = PQntuples(pa) ? PQgetvalue(pa, 0, 0) : "pending";
    int d = UNDECIDED;
    if (!strcmp(status, "rejected")) {
        *given = aq_tool_error_json("%s", "the user declined this action; do not retry it");
        d = DECIDED_NOT;
    } else if (!strcmp(status, "expired")) {
        *given = aq_tool_error_json("%s", "the approval request expired");
        d = DECIDED_NOT;
    } else if (!strcmp(status, "approved")) {
        *shown = aq_strdup(PQgetvalue(pa, 0, 1));
        d = DECIDED_RUN;
    }
    PQclear(pa);
    return d;
}

/* Ask the user to approve call `id`: a pending_actions row (kept if a retry
 * asks again), an expiry job, and the waiting output in *wait_out.
 * Returns STEP_WAIT, STEP_ERROR, or STEP_REFUSED with *given set when
 * Postgres refuses the arguments as data (a number beyond numeric's range):
 * what cannot be stored as shown cannot be approved. */
static int ask_approval(turn *t, const char *id, const char *name, const char *args_text, cJSON **wait_out,
                        char **given)
{
    char hours[24];
    snprintf(hours, sizeof hours, "%ld", t->cfg->action_ttl_hours);
    const char *ins[] = {t->uid, t->jid, t->session, name, args_text, id, hours};
    PGresult *pa = NULL;
    int rc = aq_ctx_exec_owned(t->ctx, "INSERT INTO pending_actions (user_id, job_id, session_id, tool, arguments,"
                               " tool_call_id, expires_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6,"
                               " now() + make_interval(hours => $7::int))"
                               " ON CONFLICT (job_id, tool_call_id) DO UPDATE SET status = pending_actions.status"
                               " RETURNING json_build_object('id', id, 'tool', tool, 'arguments', arguments,"
                               " 'expires_at', expires_at)::text", 7, ins, &pa);
    if (rc) {
        int data = rc == AQ_EDB && !strncmp(aq_db_error_state(), "22", 2);   /* class 22: data exception */
        if (data)
            *given = aq_tool_error_json("the arguments cannot be stored as shown to the user (%.200s); the call did not run",
                                aq_db_error_message());
        return data ? STEP_REFUSED : STEP_ERROR;
    }
    cJSON *o = output(t, "");
    char reply[300];
    snprintf(reply, sizeof reply, "I need your approval to run %s.", name);
    cJSON_ReplaceItemInObject(o, "reply", cJSON_CreateString(reply));
    cJSON_AddStringToObject(o, "status", "waiting_for_approval");
    cJSON *action = cJSON_Parse(PQgetvalue(pa, 0, 0));
    cJSON_AddItemToObject(o, "pending_action", action);
    PQclear(pa);
    /* if nobody decides in time, the action expires and this turn resumes */
    const cJSON *aid = cJSON_GetObjectItemCaseSensitive(action, "id");
    char key[48];
    snprintf(key, sizeof key, "action-expiry:%lld", (long long)cJSON_GetNumberValue(aid));
    cJSON *in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "action_id", cJSON_GetNumberValue(aid));
    cJSON_AddStringToObject(in, "decision", "expired");
    aq_enqueue_opts eo = {.run_in_ms = t->cfg->action_ttl_hours * 3600L * 1000L, .idempotency_key = key};
    aq_ctx_enqueue(t->ctx, "action_decision", in, &eo);
    cJSON_Delete(in);
    *wait_out = o;
    return STEP_WAIT;
}

/* An approval tool's call: STEP_DONE_CALLS once it is decided (run it with
 * *shown, or answer it with *given), else STEP_WAIT (asked) or STEP_ERROR. */
static int approval_gate(turn *t, const char *id, const char *name, const char *args_text, char **shown,
                         char **given, cJSON **wait_out)
{
    int d = decision(t, id, shown, given);
    if (d == DECISION_DB_FAILED) return STEP_ERROR;
    if (d != UNDECIDED) return STEP_DONE_CALLS;
    int rc = ask_approval(t, id, name, args_text, wait_out, given);
    return rc == STEP_REFUSED ? STEP_DONE_CALLS : rc;
}

/* Finish the tool calls of this job's latest assistant message that have no
 * result yet. STEP_WAIT sets *wait_out to the output for a pending approval. */
static int finish_pending(turn *t, cJSON **wait_out)
{
    PGresult *r = NULL;
    const char *p[] = {t->session, t->jid};
    if (aq_db_query(t->db, "agent turn: finding unanswered calls",
                    "SELECT m.id, m.tool_calls::text, coalesce((SELECT json_agg(h.tool_call_id)"
                        " FROM chat_message_history h WHERE h.session_id = $1 AND h.role = 'tool' AND h.id > m.id),"
                        " '[]')::text FROM chat_message_history m WHERE m.session_id = $1 AND m.job_id = $2"
                        " AND m.role = 'assistant' ORDER BY m.id DESC LIMIT 1", 2, p, &r))
        return STEP_ERROR;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 1)) { PQclear(r); return STEP_NO_CALLS; }
    cJSON *calls = cJSON_Parse(PQgetvalue(r, 0, 1)), *answered = cJSON_Parse(PQgetvalue(r, 0, 2));
    PQclear(r);
    int rc = STEP_NO_CALLS;
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        const char *id = str(call, "id");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const char *name = str(fn, "name"), *args_text = str(fn, "arguments");
        if (!id) continue;
        int done = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, answered) done |= cJSON_IsString(a) && !strcmp(a->valuestring, id);
        if (done) continue;
        rc = STEP_DONE_CALLS;
        const aq_tool *tool;
        cJSON *args;
        char *given = aq_tool_parse_call(name, args_text, &tool, &args), *shown = NULL;
        if (!given && tool->approval) {
            int gate = approval_gate(t, id, name, args_text, &shown, &given, wait_out);
            if (gate != STEP_DONE_CALLS) { rc = gate; cJSON_Delete(args); break; }
            if (shown) {   /* what runs is what the user was shown */
                cJSON_Delete(args);
                args = cJSON_Parse(shown);
            }
        }
        int ok = finish_call(t, tool, id, name ? name : "", shown ? shown : args_text ? args_text : "", args,
                             given) == 0;
        free(given);
        free(shown);
        cJSON_Delete(args);
        if (!ok) { rc = STEP_ERROR; break; }
    }
    cJSON_Delete(calls);
    cJSON_Delete(answered);
    return rc;
}

/* OpenAI's shape for a stored assistant message's tool calls. */
static char *stored_calls(const cJSON *calls)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        cJSON *o = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", str(c, "id"));
        cJSON_AddStringToObject(o, "type", "function");
        cJSON_AddStringToObject(fn, "name", str(c, "name"));
        cJSON_AddStringToObject(fn, "arguments", str(c, "arguments"));
        cJSON_AddItemToObject(o, "function", fn);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return s;
}

/* Why call i of a reply must not run at all (its error result, heap), or NULL. */
static char *refusal(const turn *t, const aq_llm_reply *reply, const cJSON *call, int i)
{
    if (reply->truncated)
        return aq_tool_error_json("%s", "your reply was cut off at the length limit (finish_reason \"length\"), so this "
                                "call did not run; send it again, shorter");
    if (str(call, "error")) return aq_tool_error_json("%s", str(call, "error"));
    if (i >= t->cfg->agent_max_tool_calls)
        return aq_tool_error_json("too many tool calls in one reply: only the first %ld run; this one did not",
                          t->cfg->agent_max_tool_calls);
    return NULL;
}

/* Store a reply with tool calls: the assistant message and, in the same
 * transaction, an error result for every call that must not run, so
 * finish_pending only ever sees calls it may run. Returns 0, or -1 when the
 * database failed. */
static int take_calls(turn *t, const aq_llm_reply *reply)
{
    char *calls = stored_calls(reply->tool_calls);
    int ok = aq_ctx_begin_owned(t->ctx) == 0;
    int open = ok;
    ok = ok && insert_message(t, "assistant", reply->content && *reply->content ? reply->content : NULL, calls, NULL);
    free(calls);
    cJSON *refused = cJSON_CreateArray();
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, reply->tool_calls) {
        char *why = refusal(t, reply, c, i++);
        if (why && ok) ok = insert_message(t, "tool", why, NULL, str(c, "id"));
        if (why) cJSON_AddItemToArray(refused, cJSON_CreateString(why));
        else cJSON_AddItemToArray(refused, cJSON_CreateNull());
        free(why);
    }
    ok = ok && !aq_db_query(t->db, "agent turn: commit", "COMMIT", 0, NULL, NULL);
    if (!ok && open) aq_db_query(t->db, "agent turn: rollback", "ROLLBACK", 0, NULL, NULL);
    i = 0;
    cJSON_ArrayForEach(c, reply->tool_calls) {
        const cJSON *why = cJSON_GetArrayItem(refused, i++);
        if (ok && cJSON_IsString(why)) note_made(t, str(c, "name"), str(c, "arguments"), why->valuestring);
    }
    cJSON_Delete(refused);
    return ok ? 0 : -1;
}

enum { NEXT_CALL, NEXT_DONE };

/* A model reply (or its failure) becomes history, the output, or the
 * job's error. NEXT_CALL: call the model again; NEXT_DONE: *st is the answer. */
static int take_reply(turn *t, aq_llm_reply *reply, cJSON **out, aq_job_status *st)
{
    aq_ctx *ctx = t->ctx;
    t->s->model_calls++;
    int next = NEXT_DONE;
    if (aq_ctx_cancelled(ctx)) {   /* cancelled while the model thought: its answer is dropped */
    } else if (reply->error) {
        /* a final failure's apology is the registry hook's (handlers/apology.c) */
        aq_ctx_error(ctx, "%s", reply->error);
        if (reply->transient) aq_ctx_retry_transient(ctx, reply->retry_after_ms);
        *st = reply->transient ? AQ_JOB_RETRY : AQ_JOB_FAIL;
    } else {
        t->s->prompt_tokens += reply->prompt_tokens;
        t->s->completion_tokens += reply->completion_tokens;
        if (reply->content) aq_utf8_sanitize(reply->content);
        if (reply->tool_calls) {
            if (take_calls(t, reply) == 0) {
                next = NEXT_CALL;
            } else {
                aq_ctx_error(ctx, "storing the reply: %s", PQerrorMessage(t->db));
                *st = AQ_JOB_RETRY;
            }
        } else if (store_message(t, "assistant", reply->content, NULL, NULL)) {
            *out = output(t, reply->content);
            if (reply->truncated) cJSON_AddBoolToObject(*out, "truncated", 1);   /* cut off at the length limit */
        } else {
            aq_ctx_error(ctx, "storing the reply: %s", PQerrorMessage(t->db));
            *st = AQ_JOB_RETRY;
        }
    }
    aq_llm_reply_dispose(reply);
    return next;
}

/* Store the session (kept by its owner) and this turn's user message, once.
 * 1 stored (or there already), 0 the session is another user's, -1 database. */
static int store_user_message(turn *t, const char *channel, const char *message)
{
    const char *p[] = {t->session, t->uid, channel, message, t->jid};
    PGresult *r = NULL;
    if (aq_db_query(t->db, "agent turn: storing the user message",
                    "WITH s AS (INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, $3)"
                       " ON CONFLICT (id) DO UPDATE SET updated_at = now() WHERE chat_sessions.user_id = $2"
                       " RETURNING user_id),"
                       " m AS (INSERT INTO chat_message_history (session_id, role, content, job_id)"
                       " SELECT $1, 'user', $4, $5 WHERE EXISTS (SELECT 1 FROM s) AND NOT EXISTS"
                       " (SELECT 1 FROM chat_message_history h WHERE h.session_id = $1 AND h.job_id = $5"
                       " AND h.role = 'user'))"
                       " SELECT count(*) FROM s", 5, p, &r))
        return -1;
    int mine = !strcmp(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    return mine;
}

/* DESIGN (steps): the turn runs as steps (aq_handler.h). A step finishes
 * pending tool calls and builds the next model request from the stored
 * history, hands it to the worker's loop and ends (AQ_JOB_AWAIT): no thread
 * and no database connection waits on the model. The next step reads the
 * reply, stores it, and goes on. The offline responder answers at once, in
 * the same step. */
const char *aq_check_agent_turn(const cJSON *input)
{
    const char *message = str(input, "message"), *channel = str(input, "channel");
    if (!message || !*message) return "input.message: required, a non-empty string";
    if (channel && strcmp(channel, "web") && strcmp(channel, "telegram") && strcmp(channel, "scheduled"))
        return "input.channel: web, telegram or scheduled";
    return NULL;
}

aq_job_status aq_handle_agent_turn(aq_ctx *ctx, const cJSON *input, cJSON **out)
{
    turn t = {.ctx = ctx, .job = aq_ctx_job(ctx), .cfg = aq_ctx_config(ctx), .s = aq_ctx_state(ctx)};
    const char *message = str(input, "message"), *channel = str(input, "channel");
    t.session = str(input, "session_id") ? str(input, "session_id") : t.job->session_id;
    if (!channel) channel = "web";
    const char *why = aq_check_agent_turn(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    if (!t.session) { aq_ctx_error(ctx, "input.session_id: required"); return AQ_JOB_FAIL; }
    if (!t.job->user_id) { aq_ctx_error(ctx, "agent_turn needs a job with a user_id"); return AQ_JOB_FAIL; }
    t.db = aq_ctx_db(ctx);
    if (!t.db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    snprintf(t.uid, sizeof t.uid, "%lld", (long long)t.job->user_id);
    snprintf(t.jid, sizeof t.jid, "%lld", (long long)t.job->id);

    if (!t.s) {   /* the first step */
        int mine = store_user_message(&t, channel, message);
        if (mine < 0) { aq_ctx_error(ctx, "storing the message: %s", PQerrorMessage(t.db)); return AQ_JOB_RETRY; }
        if (!mine) { aq_ctx_error(ctx, "session %s belongs to another user", t.session); return AQ_JOB_FAIL; }
        t.s = aq_calloc(1, sizeof *t.s);
        t.s->made = cJSON_CreateArray();
        aq_ctx_set_state(ctx, t.s, state_free);
    }

    aq_job_status st = AQ_JOB_OK;
    const aq_http_resp *resp = aq_ctx_http_response(ctx);
    if (resp) {   /* the model answered (or failed): the request of the step before */
        aq_llm_reply reply;
        aq_llm_response(t.cfg, resp->error ? AQ_EIO : 0, resp, &reply);
        if (take_reply(&t, &reply, out, &st) == NEXT_DONE) return st;
    }
    cJSON *tools = aq_tools_schema();
    for (;;) {
        /* a cancel stops the turn between steps (and the owned writes refuse after it on their own) */
        if (aq_ctx_cancelled(ctx)) break;
        cJSON *wait = NULL;
        int step = finish_pending(&t, &wait);
        if (step == STEP_WAIT) { *out = wait; st = AQ_JOB_WAIT; break; }
        if (step == STEP_ERROR) { aq_ctx_error(ctx, "running a tool: %s", PQerrorMessage(t.db)); st = AQ_JOB_RETRY; break; }
        if (step == STEP_DONE_CALLS) continue;
        if (t.s->model_calls >= t.cfg->agent_max_steps) {
            char msg[200];
            snprintf(msg, sizeof msg, "I stopped after %ld steps without finishing; please rephrase or split the request.",
                     t.s->model_calls);
            store_message(&t, "assistant", msg, NULL, NULL);
            *out = output(&t, msg);
            cJSON_AddStringToObject(*out, "stopped", "max_steps");
            break;
        }
        cJSON *msgs = aq_agent_context(t.db, t.session, t.uid, t.jid, t.cfg->context_messages);
        if (!msgs) { aq_ctx_error(ctx, "loading the context: %s", PQerrorMessage(t.db)); st = AQ_JOB_RETRY; break; }
        long left = aq_ctx_time_left_ms(ctx) - 1000;
        long timeout = left < t.cfg->llm_timeout_ms ? (left > 1000 ? left : 1000) : t.cfg->llm_timeout_ms;
        if (!strcmp(t.cfg->llm_provider, "openai")) {   /* the loop asks the model; the next step reads it */
            aq_http_request *req = aq_llm_request(t.cfg, msgs, tools, timeout);
            aq_ctx_http(ctx, req);
            aq_http_request_free(req);
            cJSON_Delete(msgs);
            st = AQ_JOB_AWAIT;
            break;
        }
        aq_llm_reply reply;   /* offline (or a bad LLM_PROVIDER): answered here */
        aq_llm_complete(t.cfg, msgs, tools, timeout, &reply);
        cJSON_Delete(msgs);
        if (take_reply(&t, &reply, out, &st) == NEXT_DONE) break;
    }
    cJSON_Delete(tools);
    return st;
}
