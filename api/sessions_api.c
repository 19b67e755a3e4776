/* sessions_api.c — GET /v1/sessions/{id}/messages?after=&limit=: a session's
 * messages, oldest first, paginated by message id. A session with a
 * chat_sessions row is its owner's alone: the API creates the row of a
 * client-chosen id in the statement that queues its first turn (enqueue.c),
 * so a user who lost a race for an id never gets a job or a view into it.
 * A session without a row yet (an id the server chose, whose first turn has
 * not run) is the caller's if one of their jobs names it. Otherwise 404; an
 * operator reads any. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <stdio.h>
#include <stdlib.h>

static void got_messages(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQgetisnull(res, 0, 0)) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such session"); return; }
    aq_api_reply(c, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void aq_api_session_messages(api_call *c)
{
    const char *after = aq_api_query_param(c, "after");
    const char *limit = aq_api_query_param(c, "limit");
    long long lim = 100, aft = 0;
    if (limit && aq_api_parse_int(limit, 1, 500, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 500"); return; }
    if (after && aq_api_parse_int(after, 0, INT64_MAX, &aft)) {
        aq_api_reply_error(c, AQ_EINVAL, "after: a message id (the previous page's next)");
        return;
    }
    const char *owner = aq_api_owner_param(c);
    const char *p[] = {c->uuid, owner, aq_api_keep(c, aq_sprintf("%lld", aft)), aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT CASE WHEN EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = $1"
                 " AND ($2::bigint IS NULL OR s.user_id = $2))"
                 " OR (NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = $1)"
                 " AND EXISTS (SELECT 1 FROM jobs j WHERE j.session_id = $1 AND ($2::bigint IS NULL OR j.user_id = $2)))"
                 " THEN (SELECT json_build_object('items', coalesce(json_agg(m ORDER BY m.id), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $4 THEN max(m.id) END)::text"
                 " FROM (SELECT id, role, content, tool_calls, tool_call_id, job_id, created_at"
                 " FROM chat_message_history WHERE session_id = $1 AND id > $3::bigint ORDER BY id LIMIT $4) m)"
                 " END",
                 4, p, got_messages);
}
