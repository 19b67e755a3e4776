/* ops_api.c — GET /healthz (the process answers), GET /readyz (its database
 * connection answers), GET /metrics (Prometheus text format 0.0.4, operators
 * only).
 *
 * /metrics is one query and this process's own counters:
 *   - queue gauges per type and queue (queue_gauges(), sql/018_metrics.sql):
 *     runnable, scheduled (run_at in the future), running, waiting, the
 *     oldest runnable job's age; zeros for every known type. They read only
 *     unfinished rows, through the partial indexes;
 *   - live workers (a heartbeat within AGENTQ_LEASE_SECONDS);
 *   - the workers' counters and histograms (metric_counters: cluster-wide
 *     totals the workers add their increments to), printed under the
 *     families listed below; a row of a family this API does not know (a
 *     newer worker's) is left out;
 *   - this process's HTTP counters by route and status, latency by route
 *     (long-polls apart), open connections and parked long-polls. */
#include "api.h"
#include "aq_alloc.h"
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

/* Prometheus label value: backslash, double quote and newline escaped. */
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

static void family(aq_buf *b, const char *name, const char *type, const char *help)
{
    aq_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The query's rows: (kind, a, b, c, value, le), ordered by kind, a, b, c, le.
 *   'g' gauge name, job type, queue, value
 *   'w' -, -, live-worker figure, value
 *   'm' family, labels (Prometheus text), suffix, value, le */
static const char SQL_METRICS[] =
    "SELECT 'g', v.name, g.job_type, g.queue, v.val, 0::float8 FROM queue_gauges($1::int) g"
    " CROSS JOIN LATERAL (VALUES ('oldest', g.oldest_runnable_seconds::text), ('runnable', g.runnable::text),"
    " ('running', g.running::text), ('scheduled', g.scheduled::text), ('waiting', g.waiting::text)) v(name, val)"
    " UNION ALL SELECT 'w', '', '', v.name, v.val, 0 FROM (SELECT count(*) AS n,"
    " coalesce(sum(concurrency), 0) AS slots, coalesce(sum(running), 0) AS busy FROM workers"
    " WHERE last_heartbeat > now() - make_interval(secs => $1::int)) w"
    " CROSS JOIN LATERAL (VALUES ('live', w.n::text), ('concurrency', w.slots::text), ('running', w.busy::text))"
    " v(name, val)"
    " UNION ALL SELECT 'm', family, labels, suffix,"
    " CASE WHEN value = trunc(value) AND abs(value) < 1e15 THEN value::bigint::text ELSE value::text END, le"
    " FROM metric_counters"
    " ORDER BY 1, 2, 3, 4, 6";

static const struct { const char *name, *metric, *help; } queue_gauges[] = {
    {"runnable", "agentq_jobs_runnable", "Queued jobs whose run_at has come, by type and queue."},
    {"scheduled", "agentq_jobs_scheduled", "Queued jobs whose run_at is in the future, by type and queue."},
    {"running", "agentq_jobs_running", "Running jobs by type and queue."},
    {"waiting", "agentq_jobs_waiting", "Jobs parked until an outside event (an approval), by type and queue."},
    {"oldest", "agentq_oldest_runnable_age_seconds",
     "Age of the oldest runnable job (now - run_at), by type and queue; 0 when none."},
};

static const struct { const char *name, *metric, *help; } worker_gauges[] = {
    {"live", "agentq_workers_live", "Workers with a heartbeat within AGENTQ_LEASE_SECONDS."},
    {"concurrency", "agentq_workers_concurrency", "Job slots of the live workers."},
    {"running", "agentq_workers_jobs_running", "Jobs the live workers are running (their last heartbeat)."},
};

/* The workers' families (common/aq_metrics.c, worker/metrics.c count them). */
static const struct { const char *name, *type, *help; } worker_families[] = {
    {"agentq_jobs_finished_total", "counter",
     "Jobs finished by type and status (succeeded, failed, cancelled)."},
    {"agentq_job_retries_total", "counter",
     "Runs that ended in a retry (the job went back to the queue), by type."},
    {"agentq_job_timeouts_total", "counter", "Runs past their handler's timeout, by type (each also a retry)."},
    {"agentq_job_duration_seconds", "histogram", "Handler run time by type."},
    {"agentq_job_queue_wait_seconds", "histogram",
     "Time from run_at (enqueue, or a retry's due time) to the handler's start, by type."},
    {"agentq_model_calls_total", "counter", "LLM calls by provider and model."},
    {"agentq_model_errors_total", "counter",
     "Failed LLM calls by provider, model and kind (transient, permanent)."},
    {"agentq_model_tokens_total", "counter",
     "Tokens the model reported, by provider, model and kind (prompt, completion)."},
    {"agentq_telegram_sends_total", "counter", "Telegram sendMessage calls."},
    {"agentq_telegram_send_failures_total", "counter",
     "Telegram sendMessage calls that failed, by reason (retry, blocked, failed)."},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void db_metrics(aq_buf *b, PGresult *res)
{
    int n = PQntuples(res);
    for (size_t f = 0; f < ARRAY_LEN(queue_gauges); f++) {
        family(b, queue_gauges[f].metric, "gauge", queue_gauges[f].help);
        for (int i = 0; i < n; i++) {
            if (strcmp(PQgetvalue(res, i, 0), "g") || strcmp(PQgetvalue(res, i, 1), queue_gauges[f].name))
                continue;
            aq_buf_addf(b, "%s{type=", queue_gauges[f].metric);
            add_label(b, PQgetvalue(res, i, 2));
            aq_buf_adds(b, ",queue=");
            add_label(b, PQgetvalue(res, i, 3));
            aq_buf_addf(b, "} %s\n", PQgetvalue(res, i, 4));
        }
    }
    for (size_t f = 0; f < ARRAY_LEN(worker_gauges); f++) {
        family(b, worker_gauges[f].metric, "gauge", worker_gauges[f].help);
        for (int i = 0; i < n; i++)
            if (!strcmp(PQgetvalue(res, i, 0), "w") && !strcmp(PQgetvalue(res, i, 3), worker_gauges[f].name))
                aq_buf_addf(b, "%s %s\n", worker_gauges[f].metric, PQgetvalue(res, i, 4));
    }
    for (size_t f = 0; f < ARRAY_LEN(worker_families); f++) {
        const char *name = worker_families[f].name;
        family(b, name, worker_families[f].type, worker_families[f].help);
        for (int i = 0; i < n; i++) {
            if (strcmp(PQgetvalue(res, i, 0), "m") || strcmp(PQgetvalue(res, i, 1), name)) continue;
            const char *labels = PQgetvalue(res, i, 2), *suffix = PQgetvalue(res, i, 3);
            aq_buf_addf(b, "%s%s", name, suffix);
            if (!strcmp(suffix, "_bucket")) {
                const char *le = PQgetvalue(res, i, 5);
                aq_buf_addf(b, "{%s%sle=\"%s\"}", labels, labels[0] ? "," : "",
                            !strcmp(le, "Infinity") ? "+Inf" : le);
            } else if (labels[0]) {
                aq_buf_addf(b, "{%s}", labels);
            }
            aq_buf_addf(b, " %s\n", PQgetvalue(res, i, 4));
        }
    }
}

static void http_metrics(aq_buf *b, api_server *srv)
{
    family(b, "agentq_http_requests_total", "counter", "Requests this API process answered, by route and status.");
    for (int r = 0; r < R_COUNT; r++)
        for (int k = 0; k < API_STATUSES; k++) {
            unsigned long long n = atomic_load(&srv->requests[r][k]);
            if (!n) continue;
            if (k < API_STATUSES - 1)
                aq_buf_addf(b, "agentq_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                            aq_api_route_names[r], aq_api_statuses[k], n);
            else
                aq_buf_addf(b, "agentq_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                            aq_api_route_names[r], n);
        }
    family(b, "agentq_http_request_duration_seconds", "histogram",
           "Request latency of this API process by route; long-polls (?wait=) are left out.");
    for (int r = 0; r < R_COUNT; r++) {
        unsigned long long cum = 0, counts[API_LATENCY_BUCKETS + 1];
        for (int i = 0; i <= API_LATENCY_BUCKETS; i++) cum += counts[i] = atomic_load(&srv->latency[r][i]);
        if (!cum) continue;
        unsigned long long sum_us = atomic_load(&srv->latency_sum_us[r]);
        cum = 0;
        for (int i = 0; i <= API_LATENCY_BUCKETS; i++) {
            cum += counts[i];
            if (i < API_LATENCY_BUCKETS)
                aq_buf_addf(b, "agentq_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                            aq_api_route_names[r], aq_api_latency_bounds[i], cum);
            else
                aq_buf_addf(b, "agentq_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                            aq_api_route_names[r], cum);
        }
        aq_buf_addf(b, "agentq_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", aq_api_route_names[r],
                    (double)sum_us / 1e6);
        aq_buf_addf(b, "agentq_http_request_duration_seconds_count{route=\"%s\"} %llu\n", aq_api_route_names[r],
                    cum);
    }
    family(b, "agentq_http_long_polls_total", "counter",
           "Requests answered after waiting on ?wait= (not in the latency histogram), by route.");
    for (int r = 0; r < R_COUNT; r++) {
        unsigned long long n = atomic_load(&srv->long_polls[r]);
        if (n) aq_buf_addf(b, "agentq_http_long_polls_total{route=\"%s\"} %llu\n", aq_api_route_names[r], n);
    }
    family(b, "agentq_http_connections", "gauge", "Open client connections of this API process.");
    aq_buf_addf(b, "agentq_http_connections %d\n", atomic_load(&srv->connections));
    family(b, "agentq_http_connections_max", "gauge",
           "The cap on them (AGENTQ_MAX_CONNECTIONS, fitted to the fd limit).");
    aq_buf_addf(b, "agentq_http_connections_max %ld\n", srv->max_connections);
    family(b, "agentq_http_waits_parked", "gauge", "?wait= long-polls parked in this API process.");
    aq_buf_addf(b, "agentq_http_waits_parked %d\n", atomic_load(&srv->waits));
}

static void got_metrics(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable");
        return;
    }
    aq_buf b;
    aq_buf_init(&b);
    db_metrics(&b, res);
    http_metrics(&b, c->t->srv);
    aq_api_reply_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    aq_buf_dispose(&b);
}

void aq_api_metrics(api_call *c)
{
    if (!c->operator) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such endpoint"); return; }
    const char *p[] = {aq_api_keep(c, aq_sprintf("%ld", c->t->srv->cfg->lease_seconds))};
    aq_api_query(c, SQL_METRICS, 1, p, got_metrics);
}
