/* agent_context.c — the context of one model call of an agent turn (see
 * agent_context.h).
 *
 * DESIGN: the window is the session's last N messages, plus the turn's own
 * user message when a long tool loop pushed it out (the model must always
 * see what it was asked). Providers refuse an assistant tool call without a
 * result and a result without its call, so each assistant message with
 * calls is followed by the results of its calls, looked up later in the
 * window (another turn's messages may stand between a call and its result
 * when two turns share a session); a call with no stored result gets a
 * stand-in answer that is not stored (a call still awaiting approval, say).
 * Tool messages are sent only there, so one whose call fell out of the
 * window is left out. Stored calls are sent in OpenAI's plain shape,
 * whatever else the row holds. */
#include "agent_context.h"
#include "aq_db.h"
#include "aq_buf.h"
#include <stdio.h>
#include <string.h>

/* the answer sent (not stored) for a call with no stored result */
#define STAND_IN "{\"error\":\"no result: this call has not run (it may still be awaiting the user's approval)\"}"

#define SYSTEM_PROMPT "You are the assistant of agentq. You help the user keep track of their tasks with the " \
    "tools you have. Be brief and concrete. Never invent tasks or ids: use list_tasks."

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *tool_message(const char *call_id, const char *content)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "role", "tool");
    cJSON_AddStringToObject(o, "tool_call_id", call_id);
    cJSON_AddStringToObject(o, "content", content ? content : "");
    return o;
}

/* the stored result of call id: the first tool message after `from` answering it */
static const cJSON *result_of(const cJSON *from, const char *id)
{
    for (const cJSON *m = from; m; m = m->next) {
        const char *role = str(m, "role"), *cid = str(m, "tool_call_id");
        if (role && !strcmp(role, "tool") && cid && !strcmp(cid, id)) return m;
    }
    return NULL;
}

/* An assistant message's calls in OpenAI's plain shape, whatever else the
 * stored row holds; each call's result (or a stand-in) goes to results. */
static cJSON *plain_calls(const cJSON *m, cJSON *results)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *id = str(c, "id"), *name = str(fn, "name"), *args = str(fn, "arguments");
        if (!id) continue;
        cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "type", "function");
        cJSON_AddStringToObject(f, "name", name ? name : "unknown");
        cJSON_AddStringToObject(f, "arguments", args ? args : "{}");
        cJSON_AddItemToObject(o, "function", f);
        cJSON_AddItemToArray(arr, o);
        const cJSON *r = result_of(m->next, id);
        cJSON_AddItemToArray(results, tool_message(id, r ? str(r, "content") : STAND_IN));
    }
    return arr;
}

/* The window's messages: each assistant message followed by the results of
 * its calls; tool messages are sent only there, so one whose call is not in
 * the window is left out. */
static void add_history(cJSON *msgs, const cJSON *hist)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, hist) {
        const char *role = str(m, "role");
        if (!role || !strcmp(role, "system") || !strcmp(role, "tool")) continue;
        cJSON *o = cJSON_CreateObject(), *results = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "role", role);
        const char *content = str(m, "content");
        if (content) cJSON_AddStringToObject(o, "content", content); else cJSON_AddNullToObject(o, "content");
        if (!strcmp(role, "assistant") && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) > 0)
            cJSON_AddItemToObject(o, "tool_calls", plain_calls(m, results));
        cJSON_AddItemToArray(msgs, o);
        while (cJSON_GetArraySize(results)) cJSON_AddItemToArray(msgs, cJSON_DetachItemFromArray(results, 0));
        cJSON_Delete(results);
    }
}

cJSON *aq_agent_context(PGconn *db, const char *session, const char *user_id, const char *job_id, long window)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", window);
    const char *p[] = {session, n, user_id, job_id};
    PGresult *r;
    if (aq_db_query(db, "agent context", "SELECT (SELECT string_agg('- ' || instruction, E'\\n' ORDER BY id) FROM user_instructions"
        " WHERE user_id = $3), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI, FMDay'),"
        " coalesce((SELECT json_agg(m ORDER BY m.id) FROM ("
        "  (SELECT id, role, content, tool_calls, tool_call_id FROM chat_message_history WHERE session_id = $1"
        "   ORDER BY id DESC LIMIT $2::int)"
        "  UNION"
        "  (SELECT id, role, content, tool_calls, tool_call_id FROM chat_message_history WHERE session_id = $1"
        "   AND job_id = $4::bigint AND role = 'user' ORDER BY id LIMIT 1)) m), '[]')::text",
        4, p, &r))
        return NULL;
    aq_buf sys;
    aq_buf_init(&sys);
    aq_buf_adds(&sys, SYSTEM_PROMPT);
    aq_buf_addf(&sys, "\nThe current date and time is %s, in UTC (the user's time zone is not known); "
                "resolve relative dates such as \"tomorrow\" from it.", PQgetvalue(r, 0, 1));
    if (!PQgetisnull(r, 0, 0)) {
        aq_buf_adds(&sys, "\nThe user's standing instructions:\n");
        aq_buf_adds(&sys, PQgetvalue(r, 0, 0));
    }
    cJSON *msgs = cJSON_CreateArray(), *hist = cJSON_Parse(PQgetvalue(r, 0, 2));
    PQclear(r);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", sys.p);
    aq_buf_dispose(&sys);
    cJSON_AddItemToArray(msgs, s);
    add_history(msgs, hist);
    cJSON_Delete(hist);
    return msgs;
}
