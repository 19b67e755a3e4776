/* agent_turn.c — STAND-IN until the agent lands (issue 4): one user message
 * in, one reply out, where the reply is an echo marked as such. It already
 * does the bookkeeping the real turn keeps: upserts the chat_sessions row
 * (refusing a session that belongs to another user), stores the user message
 * and the reply in chat_message_history with this job's id, and writes
 * {reply, tool_calls, usage, stand_in} to jobs.output. A retried job does not
 * store its messages twice (they are keyed by job id).
 *
 * input: {"message": text, "session_id": uuid, "channel": "web"|"telegram"|"scheduled"} */
#include "handlers.h"
#include <stdio.h>
#include <string.h>

static const char *str(const cJSON *input, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

aq_job_status aq_handle_agent_turn(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    const aq_job *job = aq_ctx_job(ctx);
    const char *message = str(input, "message");
    const char *session = str(input, "session_id") ? str(input, "session_id") : job->session_id;
    const char *channel = str(input, "channel") ? str(input, "channel") : "web";
    if (!message || !*message) { aq_ctx_error(ctx, "input.message: required, a non-empty string"); return AQ_JOB_FAIL; }
    if (!session) { aq_ctx_error(ctx, "input.session_id: required"); return AQ_JOB_FAIL; }
    if (!job->user_id) { aq_ctx_error(ctx, "agent_turn needs a job with a user_id"); return AQ_JOB_FAIL; }
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }

    char uid[24], jid[24];
    snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
    snprintf(jid, sizeof jid, "%lld", (long long)job->id);
    char reply[600];
    snprintf(reply, sizeof reply, "[stand-in agent, not a model] You said: %.500s", message);
    const char *p[] = {session, uid, channel, message, reply, jid};
    /* one statement: session upsert (ownership kept), both messages unless
     * this job already stored them; returns the owner to detect a foreign session */
    PGresult *r = PQexecParams(db,
        "WITH s AS (INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO UPDATE SET updated_at = now() WHERE chat_sessions.user_id = $2 RETURNING user_id),"
        " m AS (INSERT INTO chat_message_history (session_id, role, content, job_id)"
        " SELECT $1, v.role, v.content, $6 FROM (VALUES (1, 'user', $4), (2, 'assistant', $5)) v(n, role, content)"
        " WHERE EXISTS (SELECT 1 FROM s)"
        " AND NOT EXISTS (SELECT 1 FROM chat_message_history h WHERE h.session_id = $1 AND h.job_id = $6)"
        " ORDER BY v.n)"
        " SELECT count(*) FROM s",
        6, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        aq_ctx_error(ctx, "storing the turn: %s", PQresultErrorMessage(r));
        PQclear(r);
        return AQ_JOB_RETRY;
    }
    int mine = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    if (!mine) { aq_ctx_error(ctx, "session %s belongs to another user", session); return AQ_JOB_FAIL; }
    *output = cJSON_CreateObject();
    cJSON_AddStringToObject(*output, "reply", reply);
    cJSON_AddItemToObject(*output, "tool_calls", cJSON_CreateArray());
    cJSON_AddItemToObject(*output, "usage", cJSON_CreateObject());
    cJSON_AddBoolToObject(*output, "stand_in", 1);
    return AQ_JOB_OK;
}
