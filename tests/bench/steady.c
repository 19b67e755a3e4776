/* steady.c — `agentq-bench steady`: one worker under a constant producer.
 *
 * The table is emptied (TRUNCATE, VACUUM ANALYZE, CHECKPOINT) and one worker
 * starts on it and idles a second, as a worker deployed to a quiet database
 * does. Then, for --seconds, two producers insert at fixed rates that add up
 * to --rate jobs/s: single rows through the API (POST /v1/jobs, `noop`;
 * --api-pct of the rate, over up to 64 keep-alive connections; AQ_BENCH_API
 * and AQ_BENCH_TOKEN as for chatload) and 100-row INSERTs from SQL (the rest,
 * one connection). Both run in their own threads, paced on the monotonic
 * clock; a producer that falls behind its schedule catches up at once, so
 * the rate it reached is reported, not assumed.
 *
 * At the end of every --window-s window the main thread samples the backlog
 * (queued + running rows), autovacuum's work on jobs (pg_stat_user_tables),
 * the sizes of the queue-head and running indexes, and — when the cluster
 * has pg_stat_statements — the success-completion statement's calls, rows
 * and execution time, from which each window's mean per call and per row
 * follow (and its planning time, when pg_stat_statements.track_planning
 * is on), and the claim's calls, mean time and buffers touched per call
 * (shared blocks hit + read, heap and indexes), and jobs_claim's buffers per
 * job (pg_statio_user_indexes, every statement: an insert descends the index
 * once per row, a claim walks it from where it starts, dead entries
 * included; backends report these at most once a second). After the
 * producers stop, it waits for the backlog to drain, then
 * reads enqueue→start (started_at - created_at, both database clock) per
 * window of created_at: p50/p95/p99 (nearest rank) and max.
 *
 * Output: one `steady_window key=value ...` line per window, then one
 * `steady key=value ...` summary line. */
#include "bench.h"
#include "aq_time.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WINDOWS 64
#define STEADY_SQL_BATCH 100
#define STEADY_SQL "INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)"

typedef struct sample {
    long long backlog, calls, rows, dead, vacuums, claim_kb, running_kb;
    long long claims, claim_blks;   /* the claim statement: calls, shared buffers hit + read */
    long long claim_idx_blks;       /* jobs_claim's buffers, every statement (inserts descend it too) */
    double exec_ms, plan_ms, claim_ms;
} sample;

static void take_sample(PGconn *db, int pgss, sample *s)
{
    PGresult *r = aq_bench_exec(db,
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'queued') + (SELECT count(*) FROM jobs WHERE status = 'running'),"
        " coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'), 0),"
        " coalesce((SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'), 0),"
        " pg_relation_size('jobs_claim') / 1024, pg_relation_size('jobs_running') / 1024,"
        " coalesce((SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes"
        " WHERE indexrelname = 'jobs_claim'), 0)",
        0, NULL);
    s->backlog = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    s->dead = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    s->vacuums = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    s->claim_kb = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    s->running_kb = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    s->claim_idx_blks = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    PQclear(r);
    s->calls = s->rows = 0;
    s->exec_ms = s->plan_ms = s->claim_ms = 0;
    s->claims = s->claim_blks = 0;
    if (!pgss) return;
    /* the success completion (SQL_SUCCEED in worker/engine.c), all connections */
    r = aq_bench_exec(db, "SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0), coalesce(sum(total_exec_time), 0),"
                          " coalesce(sum(total_plan_time), 0)"
                          " FROM pg_stat_statements WHERE query LIKE '%AS c(id, k, a, o, w)%'", 0, NULL);
    s->calls = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    s->rows = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    s->exec_ms = strtod(PQgetvalue(r, 0, 2), NULL);
    s->plan_ms = strtod(PQgetvalue(r, 0, 3), NULL);
    PQclear(r);
    /* the claim (SQL_CLAIM), all connections: buffers it touched (index and heap) */
    r = aq_bench_exec(db, "SELECT coalesce(sum(calls), 0), coalesce(sum(shared_blks_hit + shared_blks_read), 0),"
                          " coalesce(sum(total_exec_time), 0)"
                          " FROM pg_stat_statements WHERE query LIKE '%unnest(ARRAY(SELECT id FROM locked))%'", 0, NULL);
    s->claims = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    s->claim_blks = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    s->claim_ms = strtod(PQgetvalue(r, 0, 2), NULL);
    PQclear(r);
}

int aq_bench_cmd_steady(const aq_bench_opts *o)
{
    const char *api = getenv("AQ_BENCH_API"), *token = getenv("AQ_BENCH_TOKEN");
    if (o->api_pct && (!api || !token)) {
        fprintf(stderr, "steady: set AQ_BENCH_API and AQ_BENCH_TOKEN (or --api-pct 0)\n");
        return 2;
    }
    long nwin = o->seconds / o->window_s;
    if (nwin < 1 || nwin > MAX_WINDOWS) { fprintf(stderr, "steady: --seconds / --window-s out of range\n"); return 2; }
    PGconn *db = aq_bench_connect();
    aq_bench_load(db, 0, 0);
    int pgss = aq_bench_scalar(db, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'", 0, NULL) > 0;
    if (pgss) PQclear(aq_bench_exec(db, "SELECT pg_stat_statements_reset()", 0, NULL));

    pid_t pid = aq_bench_spawn(o->worker_argv, o->log);
    if (aq_bench_wait_registered(db, &pid, 10000) < 0) {
        fprintf(stderr, "steady: the worker did not register within 10 s\n");
        aq_bench_stop(pid);
        PQfinish(db);
        return 1;
    }
    aq_sleep_ms(1000);   /* idle on the empty table: its statements run (claims) before any load */

    PGresult *res = aq_bench_exec(db, "SELECT clock_timestamp()", 0, NULL);
    char start[64];
    snprintf(start, sizeof start, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    uint64_t t0 = aq_bench_mono_us(), end = t0 + (uint64_t)o->seconds * 1000000u;
    aq_bench_producer ps = {.rate = (double)o->rate * (double)(100 - o->api_pct) / 100.0, .t0_us = t0, .end_us = end,
                            .sql = STEADY_SQL, .batch = STEADY_SQL_BATCH};
    aq_bench_producer pa = {.rate = (double)o->rate * (double)o->api_pct / 100.0, .t0_us = t0, .end_us = end,
                            .api = api, .token = token, .path = "/v1/jobs", .body = "{\"type\":\"noop\",\"input\":{}}"};
    pthread_t ts, ta;
    int have_sql = ps.rate > 0 && !pthread_create(&ts, NULL, aq_bench_sql_producer, &ps);
    int have_api = pa.rate > 0 && !pthread_create(&ta, NULL, aq_bench_api_producer, &pa);

    sample s[MAX_WINDOWS + 1];
    take_sample(db, pgss, &s[0]);
    int failed = 0;
    for (long w = 1; w <= nwin; w++) {
        aq_bench_sleep_until_us(t0 + (uint64_t)(w * o->window_s) * 1000000u);
        take_sample(db, pgss, &s[w]);
        if (aq_bench_check_alive(&pid)) { failed = 1; break; }
    }
    if (have_sql) pthread_join(ts, NULL);
    if (have_api) pthread_join(ta, NULL);
    /* catch-up: how long after the producers stopped the backlog took to empty */
    uint64_t stop_ms = aq_now_mono_ms();
    long catchup_ms = -1;
    while (!failed) {
        if (!aq_bench_scalar(db, "SELECT (SELECT count(*) FROM jobs WHERE status = 'queued')"
                                 " + (SELECT count(*) FROM jobs WHERE status = 'running')", 0, NULL)) {
            catchup_ms = (long)(aq_now_mono_ms() - stop_ms);
            break;
        }
        if (aq_bench_check_alive(&pid) || aq_now_mono_ms() - stop_ms > (uint64_t)o->timeout_s * 1000u) break;
        aq_sleep_ms(20);
    }
    aq_bench_stop(pid);
    if (failed) { PQfinish(db); return 1; }

    char win[16];
    snprintf(win, sizeof win, "%ld", o->window_s);
    const char *p[] = {start, win};
    res = aq_bench_exec(db,
        "WITH l AS (SELECT floor(extract(epoch FROM created_at - $1::timestamptz) / $2::int)::int AS w,"
        " (extract(epoch FROM started_at - created_at) * 1e6)::bigint AS us FROM jobs)"
        " SELECT w, count(*), count(us),"
        " coalesce(percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY us), '{-1,-1,-1}'), coalesce(max(us), -1)"
        " FROM l GROUP BY w ORDER BY w", 2, p);
    long long produced = atomic_load(&ps.produced) + atomic_load(&pa.produced);
    long long max_backlog = 0, first_p99 = -1, last_p99 = -1;
    for (int i = 0; i < PQntuples(res); i++) {
        long w = atol(PQgetvalue(res, i, 0));
        if (w < 0 || w >= nwin) continue;   /* a straggler past the last window's end */
        long long p50 = -1, p95 = -1, p99 = -1;
        sscanf(PQgetvalue(res, i, 3), "{%lld,%lld,%lld}", &p50, &p95, &p99);
        const sample *a = &s[w], *b = &s[w + 1];
        long long calls = b->calls - a->calls, rows = b->rows - a->rows;
        double ms = b->exec_ms - a->exec_ms;
        if (b->backlog > max_backlog) max_backlog = b->backlog;
        if (w == 0) first_p99 = p99;
        if (w == nwin - 1) last_p99 = p99;
        printf("steady_window rate=%ld w=%ld jobs=%s unstarted=%lld p50_us=%lld p95_us=%lld p99_us=%lld max_us=%s"
               " backlog=%lld succeed_calls=%lld succeed_mean_us=%.0f succeed_row_us=%.2f dead_tup=%lld"
               " autovacuums=%lld claim_idx_kb=%lld running_idx_kb=%lld claims=%lld claim_mean_us=%.0f"
               " claim_blks_per_call=%.1f claim_idx_blks_per_job=%.1f\n",
               o->rate, w + 1, PQgetvalue(res, i, 1),
               atoll(PQgetvalue(res, i, 1)) - atoll(PQgetvalue(res, i, 2)), p50, p95, p99, PQgetvalue(res, i, 4),
               b->backlog, calls, calls ? ms * 1000.0 / (double)calls : -1.0, rows ? ms * 1000.0 / (double)rows : -1.0,
               b->dead, b->vacuums - s[0].vacuums, b->claim_kb, b->running_kb, b->claims - a->claims,
               b->claims > a->claims ? (b->claim_ms - a->claim_ms) * 1000.0 / (double)(b->claims - a->claims) : -1.0,
               b->claims > a->claims ? (double)(b->claim_blks - a->claim_blks) / (double)(b->claims - a->claims)
                                     : -1.0,
               atoll(PQgetvalue(res, i, 1)) ? (double)(b->claim_idx_blks - a->claim_idx_blks) /
                                                  (double)atoll(PQgetvalue(res, i, 1)) : -1.0);
    }
    PQclear(res);
    long long calls = s[nwin].calls - s[0].calls;
    double ms = s[nwin].exec_ms - s[0].exec_ms, plan_ms = s[nwin].plan_ms - s[0].plan_ms;
    int flat = first_p99 > 0 && last_p99 >= 0 && last_p99 <= 2 * first_p99 && catchup_ms >= 0;
    printf("steady rate=%ld seconds=%ld produced=%lld sql=%ld api=%ld api_refused=%ld achieved_per_s=%.0f"
           " first_p99_us=%lld last_p99_us=%lld max_backlog=%lld catchup_ms=%ld succeed_mean_us=%.0f"
           " succeed_plan_us=%.0f succeed_rows_per_call=%.1f autovacuums=%lld flat=%d\n",
           o->rate, o->seconds, produced, atomic_load(&ps.produced), atomic_load(&pa.produced),
           atomic_load(&pa.refused), (double)produced / (double)o->seconds, first_p99, last_p99, max_backlog,
           catchup_ms, calls ? ms * 1000.0 / (double)calls : -1.0, calls ? plan_ms * 1000.0 / (double)calls : -1.0,
           calls ? (double)(s[nwin].rows - s[0].rows) / (double)calls : -1.0, s[nwin].vacuums - s[0].vacuums, flat);
    PQfinish(db);
    return catchup_ms < 0 || atomic_load(&pa.refused) ? 1 : 0;
}
