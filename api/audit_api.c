/* audit_api.c — GET /v1/audit, the audit log for operators (sql/019_audit.sql):
 * approvals and rejections, operator actions, schedule changes; newest
 * first, cursor on id. Filters: actor (the recorded name), action (exact, or
 * every action of a kind when it ends in "."), target, channel; limit 1-200
 * (default 50), before = the previous page's next. Anyone else: 403. The
 * items have the same names as `agentq audit ls --json`'s. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include "aq_json.h"
#include <string.h>

static void got_page(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 200, "no entries"); }

void aq_api_audit_list(api_call *c)
{
    if (!c->operator) { aq_api_reply_error(c, AQ_EFORBIDDEN, "the audit log is for operators only"); return; }
    const char *names[] = {"actor", "action", "target", "channel"};
    const char *f[4];
    for (int i = 0; i < 4; i++) {
        f[i] = aq_api_query_param(c, names[i]);
        if (f[i] && (strlen(f[i]) > 200 || !aq_utf8_valid(f[i], strlen(f[i])))) {
            aq_api_reply_error(c, AQ_EINVAL, "%s: at most 200 bytes of UTF-8", names[i]);
            return;
        }
    }
    const char *limit = aq_api_query_param(c, "limit"), *before = aq_api_query_param(c, "before");
    long long lim = 50, bef = 0;
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    if (before && aq_api_parse_int(before, 1, INT64_MAX, &bef)) {
        aq_api_reply_error(c, AQ_EINVAL, "before: an audit entry id (the previous page's next)");
        return;
    }
    const char *p[] = {f[0], f[1], f[2], f[3], before, aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(a.doc ORDER BY a.id DESC), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $6 THEN min(a.id) END)::text"
                 " FROM (SELECT id, json_build_object('id', id, 'at', at, 'actor_id', actor_id, 'actor', actor,"
                 " 'channel', channel, 'action', action, 'target', target, 'details', details) AS doc"
                 " FROM audit_log WHERE ($1::text IS NULL OR actor = $1)"
                 " AND ($2::text IS NULL OR action = $2 OR (right($2, 1) = '.' AND starts_with(action, $2)))"
                 " AND ($3::text IS NULL OR target = $3) AND ($4::text IS NULL OR channel = $4)"
                 " AND ($5::bigint IS NULL OR id < $5) ORDER BY id DESC LIMIT $6) a",
                 6, p, got_page);
}
