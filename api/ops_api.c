/* ops_api.c — GET /healthz (the process answers), GET /readyz (its database
 * connection answers), GET /metrics (Prometheus text, operators only): queue
 * depth by type and status, oldest runnable job's age, jobs finished in the
 * last minute by type and status, live workers' job counters, and this
 * process's request counts, latency, open connections and parked long-polls. Every count reads only unfinished
 * rows or a one-minute slice of finished ones (partial indexes), never the
 * whole table. */
#include "api.h"
#include "aq_buf.h"
#include "aq_error.h"
#include <stdio.h>

void aq_api_healthz(api_call *c)
{
    static const char body[] = "{\"status\":\"ok\"}";
    aq_api_reply(c, 200, body, sizeof body - 1);
}

static void ready(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable");
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    aq_api_reply(c, 200, body, sizeof body - 1);
}

void aq_api_readyz(api_call *c) { aq_api_query(c, "SELECT 1", 0, NULL, ready); }

static void add_label(aq_buf *b, const char *v)
{
    aq_buf_adds(b, "\"");
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"') aq_buf_add(b, "\\", 1);
        if (*p == '\n') { aq_buf_adds(b, "\\n"); continue; }
        aq_buf_add(b, p, 1);
    }
    aq_buf_adds(b, "\"");
}

static void got_metrics(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable");
        return;
    }
    aq_buf b;
    aq_buf_init(&b);
    static const struct { const char *kind, *name, *type, *help; } families[] = {
        {"depth", "agentq_jobs", "gauge", "Unfinished jobs by type and status."},
        {"oldest", "agentq_oldest_queued_seconds", "gauge", "Age of the oldest runnable queued job."},
        {"finished", "agentq_jobs_finished_last_minute", "gauge", "Jobs finished in the last minute by type and status."},
        {"worker", "agentq_worker_jobs_done", "counter", "Jobs finished by each live worker since it started."},
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        aq_buf_addf(&b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help, families[f].name,
                    families[f].type);
        for (int i = 0; i < PQntuples(res); i++) {
            if (strcmp(PQgetvalue(res, i, 0), families[f].kind)) continue;
            aq_buf_adds(&b, families[f].name);
            if (f == 0 || f == 2) {
                aq_buf_adds(&b, "{type=");
                add_label(&b, PQgetvalue(res, i, 1));
                aq_buf_adds(&b, ",status=");
                add_label(&b, PQgetvalue(res, i, 2));
                aq_buf_adds(&b, "}");
            } else if (f == 3) {
                aq_buf_adds(&b, "{worker=");
                add_label(&b, PQgetvalue(res, i, 1));
                aq_buf_adds(&b, "}");
            }
            aq_buf_addf(&b, " %s\n", PQgetvalue(res, i, 3));
        }
    }
    api_server *srv = c->t->srv;
    aq_buf_adds(&b, "# HELP agentq_http_requests_total API requests by route and status class.\n"
                    "# TYPE agentq_http_requests_total counter\n");
    for (int r = 0; r < R_COUNT; r++)
        for (int k = 1; k <= 5; k++) {
            unsigned long long n = atomic_load(&srv->requests[r][k]);
            if (n) aq_buf_addf(&b, "agentq_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n", aq_api_route_names[r], k, n);
        }
    aq_buf_adds(&b, "# HELP agentq_http_request_duration_seconds API request latency.\n"
                    "# TYPE agentq_http_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i <= API_LATENCY_BUCKETS; i++) {
        cum += atomic_load(&srv->latency[i]);
        if (i < API_LATENCY_BUCKETS)
            aq_buf_addf(&b, "agentq_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", aq_api_latency_bounds[i], cum);
        else
            aq_buf_addf(&b, "agentq_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    aq_buf_addf(&b, "agentq_http_request_duration_seconds_sum %.6f\nagentq_http_request_duration_seconds_count %llu\n",
                (double)atomic_load(&srv->latency_sum_us) / 1e6, cum);
    aq_buf_addf(&b, "# HELP agentq_http_connections Open client connections of this API process.\n"
                    "# TYPE agentq_http_connections gauge\nagentq_http_connections %d\n"
                    "# HELP agentq_http_connections_max The cap on them (AGENTQ_MAX_CONNECTIONS, fitted to the fd limit).\n"
                    "# TYPE agentq_http_connections_max gauge\nagentq_http_connections_max %ld\n"
                    "# HELP agentq_http_waits_parked ?wait= long-polls parked in this API process.\n"
                    "# TYPE agentq_http_waits_parked gauge\nagentq_http_waits_parked %d\n",
                atomic_load(&srv->connections), srv->max_connections, atomic_load(&srv->waits));
    aq_api_reply_text(c, 200, "text/plain; version=0.0.4", b.p, b.len);
    aq_buf_dispose(&b);
}

void aq_api_metrics(api_call *c)
{
    if (!c->operator) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such endpoint"); return; }
    aq_api_query(c,
                 "SELECT 'depth', job_type, status, count(*)::text FROM jobs"
                 " WHERE status IN ('queued', 'running', 'waiting') GROUP BY job_type, status"
                 " UNION ALL SELECT 'oldest', '', '', coalesce(extract(epoch FROM now() - min(run_at)), 0)::text"
                 " FROM jobs WHERE status = 'queued' AND run_at <= now()"
                 " UNION ALL SELECT 'finished', job_type, status, count(*)::text FROM jobs"
                 " WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at > now() - interval '1 minute'"
                 " GROUP BY job_type, status"
                 " UNION ALL SELECT 'worker', id, '', jobs_done::text FROM workers"
                 " WHERE last_heartbeat > now() - interval '5 minutes'",
                 0, NULL, got_metrics);
}
