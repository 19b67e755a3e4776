/* tasks_api.c — the user's tasks, suggested ones included (issue 14):
 *   GET  /v1/tasks?status=&suggested=&limit=&before=   newest first, cursor on id
 *   POST /v1/tasks/{id}/accept    a pending suggestion becomes an ordinary open task
 *   POST /v1/tasks/{id}/dismiss   a pending suggestion leaves the lists (status 'dismissed')
 * status: open, done, dismissed or all (default: open and done); suggested:
 * true (pending suggestions only) or false (everything else). Accepting or
 * dismissing twice answers the task as it is; accepting a dismissed task, or
 * deciding a task that was never suggested, is 409. Owner-scoped: someone
 * else's task is 404. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <stdio.h>
#include <string.h>

#define TASK_JSON \
    "json_build_object('id', id, 'title', title, 'notes', notes, 'status', status, 'priority', priority," \
    " 'due_at', due_at, 'is_ai_suggested', is_ai_suggested, 'suggestion', suggestion, 'source'," \
    " CASE WHEN source_job_id IS NULL THEN NULL ELSE json_build_object('job_id', source_job_id, 'from'," \
    " source_from, 'subject', source_subject, 'message_id', source_message_id) END," \
    " 'created_at', created_at, 'updated_at', updated_at)"

static void got_json(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 200, "no such task"); }

void aq_api_tasks_list(api_call *c)
{
    const char *status = aq_api_query_param(c, "status"), *suggested = aq_api_query_param(c, "suggested");
    const char *limit = aq_api_query_param(c, "limit"), *before = aq_api_query_param(c, "before");
    long long lim = 50, bef = 0;
    if (status && strcmp(status, "open") && strcmp(status, "done") && strcmp(status, "dismissed") &&
        strcmp(status, "all")) {
        aq_api_reply_error(c, AQ_EINVAL, "status: open, done, dismissed or all");
        return;
    }
    if (suggested && strcmp(suggested, "true") && strcmp(suggested, "false")) {
        aq_api_reply_error(c, AQ_EINVAL, "suggested: true or false");
        return;
    }
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    if (before && aq_api_parse_int(before, 1, INT64_MAX, &bef)) {
        aq_api_reply_error(c, AQ_EINVAL, "before: a task id (the previous page's next)");
        return;
    }
    const char *p[] = {aq_api_owner_param(c), status ? status : "", suggested, before,
                       aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(t.doc ORDER BY t.id DESC), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $5 THEN min(t.id) END)::text"
                 " FROM (SELECT id, " TASK_JSON " AS doc FROM tasks"
                 " WHERE ($1::bigint IS NULL OR user_id = $1)"
                 " AND CASE $2 WHEN '' THEN status <> 'dismissed' WHEN 'all' THEN true ELSE status = $2 END"
                 " AND ($3::boolean IS NULL OR (suggestion IS NOT DISTINCT FROM 'pending') = $3)"
                 " AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5) t",
                 5, p, got_json);
}

/* The decision's answer: the task, {"conflict": why} (409), or no row (404). */
static void decided(api_call *c, PGresult *res)
{
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
        aq_api_reply_error(c, AQ_ECONFLICT, "%s", PQgetvalue(res, 0, 1));
        return;
    }
    aq_api_reply_row(c, res, 200, "no such task");
}

/* $1 id, $2 owner, $3 the new suggestion state, $4 the new status */
static void decide(api_call *c, const char *to, const char *status)
{
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)), aq_api_owner_param(c), to, status};
    aq_api_query(c,
                 "WITH t AS (SELECT id AS tid, suggestion AS was FROM tasks"
                 " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) FOR UPDATE),"
                 " u AS (UPDATE tasks SET suggestion = $3, status = CASE WHEN $4 = '' THEN status ELSE $4 END,"
                 " updated_at = now() FROM t WHERE tasks.id = t.tid AND t.was = 'pending'"
                 " RETURNING " TASK_JSON " AS doc)"
                 " SELECT coalesce((SELECT doc FROM u), (SELECT " TASK_JSON " FROM tasks WHERE id = $1))::text,"
                 " CASE WHEN t.was IS NULL THEN 'this task was not suggested: there is nothing to decide'"
                 " WHEN t.was NOT IN ('pending', $3) THEN 'this suggestion was already ' || t.was"
                 " END FROM t",
                 4, p, decided);
}

void aq_api_task_accept(api_call *c) { decide(c, "accepted", ""); }
void aq_api_task_dismiss(api_call *c) { decide(c, "dismissed", "dismissed"); }
