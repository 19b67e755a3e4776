/* agent_context.c — the context of one model call of an agent turn (see
 * agent_context.h).
 *
 * DESIGN: the window is the session's last N messages, plus the turn's own
 * user message when a long tool loop pushed it out (the model must always
 * see what it was asked). Providers refuse an assistant tool call without a
 * result and a result without its call, so the pass over the window keeps
 * the set of calls still open: a tool message is sent only as the answer to
 * an open call, and when the next user or assistant message (or the end)
 * arrives, every call still open gets a stand-in answer that is not stored
 * (a call of an earlier turn that is still awaiting approval, say). Stored
 * calls are sent in OpenAI's plain shape, whatever else the row holds. */
#include "agent_context.h"
#include "aq_buf.h"
#include <stdio.h>
#include <string.h>

#define SYSTEM_PROMPT "You are the assistant of agentq. You help the user keep track of their tasks with the " \
    "tools you have. Be brief and concrete. Never invent tasks or ids: use list_tasks."

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* a stand-in answer for each call still open (not stored) */
static void close_calls(cJSON *msgs, cJSON *open)
{
    const cJSON *id;
    cJSON_ArrayForEach(id, open) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", "tool");
        cJSON_AddStringToObject(o, "tool_call_id", id->valuestring);
        cJSON_AddStringToObject(o, "content", "{\"error\":\"no result: this call has not run (it may still be "
                                              "awaiting the user's approval)\"}");
        cJSON_AddItemToArray(msgs, o);
    }
    while (cJSON_GetArraySize(open)) cJSON_DeleteItemFromArray(open, 0);
}

/* removes id from open; 1 if it was there */
static int take_open(cJSON *open, const char *id)
{
    for (int i = 0; id && i < cJSON_GetArraySize(open); i++)
        if (!strcmp(cJSON_GetArrayItem(open, i)->valuestring, id)) {
            cJSON_DeleteItemFromArray(open, i);
            return 1;
        }
    return 0;
}

/* OpenAI's shape of stored calls; their ids go to open */
static cJSON *plain_calls(const cJSON *stored, cJSON *open)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, stored) {
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
        cJSON_AddItemToArray(open, cJSON_CreateString(id));
    }
    return arr;
}

static void add_history(cJSON *msgs, const cJSON *hist)
{
    cJSON *open = cJSON_CreateArray();   /* calls of the last assistant message not answered yet */
    const cJSON *m;
    cJSON_ArrayForEach(m, hist) {
        const char *role = str(m, "role");
        if (!role || !strcmp(role, "system")) continue;
        const char *cid = str(m, "tool_call_id");
        if (!strcmp(role, "tool")) {
            if (!take_open(open, cid)) continue;   /* its call fell out of the window, or was answered */
        } else {
            close_calls(msgs, open);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", role);
        const char *content = str(m, "content");
        if (content) cJSON_AddStringToObject(o, "content", content); else cJSON_AddNullToObject(o, "content");
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (!strcmp(role, "assistant") && cJSON_GetArraySize(tc) > 0)
            cJSON_AddItemToObject(o, "tool_calls", plain_calls(tc, open));
        if (!strcmp(role, "tool")) cJSON_AddStringToObject(o, "tool_call_id", cid);
        cJSON_AddItemToArray(msgs, o);
    }
    close_calls(msgs, open);
    cJSON_Delete(open);
}

cJSON *aq_agent_context(PGconn *db, const char *session, const char *user_id, const char *job_id, long window)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", window);
    const char *p[] = {session, n, user_id, job_id};
    PGresult *r = PQexecParams(db,
        "SELECT (SELECT string_agg('- ' || instruction, E'\\n' ORDER BY id) FROM user_instructions"
        " WHERE user_id = $3), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI, FMDay'),"
        " coalesce((SELECT json_agg(m ORDER BY m.id) FROM ("
        "  (SELECT id, role, content, tool_calls, tool_call_id FROM chat_message_history WHERE session_id = $1"
        "   ORDER BY id DESC LIMIT $2::int)"
        "  UNION"
        "  (SELECT id, role, content, tool_calls, tool_call_id FROM chat_message_history WHERE session_id = $1"
        "   AND job_id = $4::bigint AND role = 'user' ORDER BY id LIMIT 1)) m), '[]')::text",
        4, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) { PQclear(r); return NULL; }
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
