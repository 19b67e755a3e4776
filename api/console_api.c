/* console_api.c — the endpoints the web console (web/) needs beyond the
 * others, each an ordinary documented /v1 endpoint:
 *   GET  /v1/sessions?limit=         the caller's own chat sessions, latest activity first
 *   GET  /v1/cron/next?cron=&timezone=&count=   the next fire times of a schedule (no database)
 *   GET  /v1/queue                   operators: unfinished jobs by type and status
 *                                    (queued split into runnable and scheduled), jobs
 *                                    finished in the last minute and hour, live workers
 *   POST /v1/jobs/{id}/retry         operators: a failed or cancelled job queued again
 *                                    (the CLI's `jobs retry`, aq_jobs_sql_retry)
 * The operator endpoints answer 404 to anyone else, like /metrics. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_cron.h"
#include "aq_error.h"
#include "aq_audit.h"
#include "aq_jobs.h"
#include "aq_schedule.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- GET /v1/sessions ---- */

void aq_api_sessions_list(api_call *c)
{
    const char *limit = aq_api_query_param(c, "limit");
    long long lim = 50;
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)), aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(json_build_object('id', s.id, 'channel', s.channel,"
                 " 'title', s.title, 'created_at', s.created_at, 'last_message_at', s.last_at)"
                 " ORDER BY s.last_at DESC, s.id), '[]'::json))::text"
                 " FROM (SELECT cs.id, cs.channel, cs.created_at,"
                 " coalesce(cs.title, (SELECT left(m.content, 80) FROM chat_message_history m"
                 " WHERE m.session_id = cs.id AND m.role = 'user' ORDER BY m.id LIMIT 1)) AS title,"
                 " coalesce((SELECT max(m.created_at) FROM chat_message_history m WHERE m.session_id = cs.id),"
                 " cs.created_at) AS last_at"
                 " FROM chat_sessions cs WHERE cs.user_id = $1 ORDER BY last_at DESC LIMIT $2) s",
                 2, p, aq_api_reply_200);
}

/* ---- GET /v1/cron/next ---- */

#define CRON_NEXT_MAX 20

void aq_api_cron_next(api_call *c)
{
    const char *cron = aq_api_query_param(c, "cron"), *zone = aq_api_query_param(c, "timezone");
    const char *count_s = aq_api_query_param(c, "count");
    long long count = 5;
    if (!cron || !*cron) { aq_api_reply_error(c, AQ_EINVAL, "cron: required, a cron expression"); return; }
    if (!zone || !*zone) zone = "UTC";
    if (count_s && aq_api_parse_int(count_s, 1, CRON_NEXT_MAX, &count)) {
        aq_api_reply_error(c, AQ_EINVAL, "count: an integer from 1 to %d", CRON_NEXT_MAX);
        return;
    }
    char err[256];
    int64_t t = (int64_t)time(NULL);
    /* the same checks as creating the schedule, so the preview warns of what POST would refuse */
    if (aq_schedule_check_interval(cron, zone, t, c->t->srv->cfg->schedule_min_interval_s, err, sizeof err)) {
        aq_api_reply_error(c, AQ_EINVAL, "%s", err);
        return;
    }
    aq_cron *cr = aq_cron_parse(cron, err, sizeof err);
    GTimeZone *tz = cr ? aq_tz_open(zone, err, sizeof err) : NULL;
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{\"times\":[");
    for (long long i = 0; tz && i < count; i++) {
        if (aq_cron_next(cr, tz, t, &t)) break;
        struct tm tm;
        time_t s = (time_t)t;
        gmtime_r(&s, &tm);
        aq_buf_addf(&b, "%s\"%04d-%02d-%02dT%02d:%02d:%02dZ\"", i ? "," : "", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    aq_buf_adds(&b, "]}");
    if (!tz) aq_api_reply_error(c, AQ_EINVAL, "%s", err);   /* (checked above; a zone file gone since) */
    else aq_api_reply(c, 200, b.p, b.len);
    aq_buf_dispose(&b);
    if (tz) g_time_zone_unref(tz);
    aq_cron_free(cr);
}

/* ---- GET /v1/queue ---- */

void aq_api_queue(api_call *c)
{
    if (!c->operator) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such endpoint"); return; }
    aq_api_query(c, aq_jobs_sql_queue_overview, 0, NULL, aq_api_reply_200);   /* common/aq_jobs.c */
}

/* ---- POST /v1/jobs/{id}/retry ---- */

static void retried(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such job"); return; }
    if (strcmp(PQgetvalue(res, 0, 1), "1")) {
        aq_api_reply_error(c, AQ_ECONFLICT, "the job is %s: only failed or cancelled jobs are retried",
                           PQgetvalue(res, 0, 0));
        return;
    }
    c->wait_s = 0;
    c->no_wait = 1;
    aq_api_job_get(c);   /* answer with the job as it now is (queued) */
}

void aq_api_job_retry(api_call *c)
{
    if (!c->operator) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such endpoint"); return; }
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)),
                       aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)), AQ_AUDIT_API};
    aq_api_query(c, aq_jobs_sql_retry_audited, 3, p, retried);
}
