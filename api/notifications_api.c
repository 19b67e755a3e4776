/* notifications_api.c — the web inbox (rows written by notify jobs, see
 * handlers/notify.c):
 *   GET  /v1/notifications?unread=1&limit=&before=   newest first, cursor on id
 *   POST /v1/notifications/{id}/read                 marks it read (idempotent)
 * Owner-scoped: someone else's notification is 404. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <stdio.h>
#include <string.h>

#define NOTIFICATION_JSON \
    "json_build_object('id', id, 'user_id', user_id, 'kind', kind, 'body', body, 'job_id', job_id," \
    " 'action_id', action_id, 'session_id', session_id, 'created_at', created_at, 'read_at', read_at)"

static void got_json(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 200, "no such notification"); }

void aq_api_notifications_list(api_call *c)
{
    const char *unread = aq_api_query_param(c, "unread");
    const char *limit = aq_api_query_param(c, "limit"), *before = aq_api_query_param(c, "before");
    long long lim = 50, bef = 0;
    if (unread && strcmp(unread, "0") && strcmp(unread, "1") && strcmp(unread, "true") && strcmp(unread, "false")) {
        aq_api_reply_error(c, AQ_EINVAL, "unread: 1 or 0");
        return;
    }
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    if (before && aq_api_parse_int(before, 1, INT64_MAX, &bef)) {
        aq_api_reply_error(c, AQ_EINVAL, "before: a notification id (the previous page's next)");
        return;
    }
    int only_unread = unread && (!strcmp(unread, "1") || !strcmp(unread, "true"));
    const char *p[] = {aq_api_owner_param(c), only_unread ? "true" : "false", before,
                       aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(n.doc ORDER BY n.id DESC), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $4 THEN min(n.id) END)::text"
                 " FROM (SELECT id, " NOTIFICATION_JSON " AS doc FROM notifications"
                 " WHERE ($1::bigint IS NULL OR user_id = $1) AND (NOT $2::boolean OR read_at IS NULL)"
                 " AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4) n",
                 4, p, got_json);
}

void aq_api_notification_read(api_call *c)
{
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)), aq_api_owner_param(c)};
    aq_api_query(c, "UPDATE notifications SET read_at = coalesce(read_at, now())"
                 " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) RETURNING " NOTIFICATION_JSON "::text",
              2, p, got_json);
}
