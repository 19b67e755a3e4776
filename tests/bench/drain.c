/* drain.c — `agentq-bench load|idle|drain`: the throughput and footprint
 * figures of `make bench`.
 *
 * drain: load N noop jobs (one INSERT ... SELECT generate_series, VACUUM
 * ANALYZE), read the database clock, start K workers, poll every 10 ms over
 * one connection until nothing is queued or running, and report
 * drain = max(finished_at) - that start, both stamps from the database clock,
 * so the poll interval does not blur the figure. Worker startup (exec,
 * connect, prepare) is inside the measured time. --finished N puts N
 * succeeded rows in the table first (the table of a queue that keeps its
 * history), loaded and analyzed with the queued ones. */
#include "bench.h"
#include "aq_time.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int aq_bench_cmd_load(const aq_bench_opts *o)
{
    PGconn *db = aq_bench_connect();
    aq_bench_load(db, o->jobs, 0);
    printf("load jobs=%ld\n", o->jobs);
    PQfinish(db);
    return 0;
}

int aq_bench_cmd_idle(const aq_bench_opts *o)
{
    PGconn *db = aq_bench_connect();
    aq_bench_load(db, 0, 0);
    pid_t pid = aq_bench_spawn(o->worker_argv, o->log);
    long startup_ms = aq_bench_wait_registered(db, &pid, 10000);
    if (startup_ms < 0) {
        fprintf(stderr, "agentq-bench idle: the worker did not register within 10 s\n");
        aq_bench_stop(pid);
        return 1;
    }
    aq_sleep_ms(o->idle_ms);
    long rss = aq_bench_proc_status(pid, "VmRSS"), hwm = aq_bench_proc_status(pid, "VmHWM");
    long anon = aq_bench_proc_status(pid, "RssAnon"), file = aq_bench_proc_status(pid, "RssFile");
    long threads = aq_bench_proc_status(pid, "Threads");
    int rc = aq_bench_stop(pid);
    printf("idle startup_ms=%ld idle_ms=%ld rss_kb=%ld anon_kb=%ld file_kb=%ld hwm_kb=%ld threads=%ld exit=%d\n",
           startup_ms, o->idle_ms, rss, anon, file, hwm, threads, rc);
    PQfinish(db);
    return rc ? 1 : 0;
}

int aq_bench_cmd_drain(const aq_bench_opts *o)
{
    PGconn *db = aq_bench_connect();
    aq_bench_load(db, o->jobs, o->finished);

    PQclear(aq_bench_exec(db, "SET enable_seqscan = off", 0, NULL));   /* for the poll (bench.h) */
    PGresult *res = aq_bench_exec(db, "SELECT clock_timestamp()", 0, NULL);
    char start[64];
    snprintf(start, sizeof start, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    pid_t pids[64];
    for (long k = 0; k < o->workers; k++) pids[k] = aq_bench_spawn(o->worker_argv, o->log);

    uint64_t t0 = aq_now_mono_ms();
    int failed = 0;
    long polls = 0;
    for (;;) {
        polls++;
        if (!aq_bench_scalar(db, AQ_BENCH_SQL_BUSY, 0, NULL)) break;
        for (long k = 0; k < o->workers && !failed; k++)
            if (aq_bench_check_alive(&pids[k])) failed = 1;
        if (!failed && aq_now_mono_ms() - t0 > (uint64_t)o->timeout_s * 1000u) {
            fprintf(stderr, "agentq-bench drain: not drained after %ld s\n", o->timeout_s);
            failed = 1;
        }
        if (failed) break;
        aq_sleep_ms(10);
    }

    PQclear(aq_bench_exec(db, "RESET enable_seqscan", 0, NULL));
    long hwm = 0, rss = 0;
    for (long k = 0; k < o->workers; k++) {
        if (!pids[k]) continue;
        long h = aq_bench_proc_status(pids[k], "VmHWM"), r = aq_bench_proc_status(pids[k], "VmRSS");
        if (h > hwm) hwm = h;
        if (r > rss) rss = r;
    }
    int rc = 0;
    for (long k = 0; k < o->workers; k++)
        if (aq_bench_stop(pids[k])) rc = 1;
    if (failed) { PQfinish(db); return 1; }

    const char *p[] = {start, "succeeded"};
    res = aq_bench_exec(db,
        "SELECT (extract(epoch FROM max(finished_at) - $1::timestamptz) * 1e6)::bigint,"
        " (extract(epoch FROM min(started_at) - $1::timestamptz) * 1e6)::bigint,"
        " count(*) FILTER (WHERE status = $2), count(*)"
        " FROM jobs WHERE finished_at IS NULL OR finished_at > $1::timestamptz", 2, p);
    long long drain_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long first_us = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long long ok = strtoll(PQgetvalue(res, 0, 2), NULL, 10), all = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    if (ok != o->jobs || all != o->jobs) {
        fprintf(stderr, "agentq-bench drain: %lld of %lld jobs succeeded, %ld expected\n", ok, all, o->jobs);
        rc = 1;
    }
    printf("drain workers=%ld jobs=%ld finished=%ld succeeded=%lld seconds=%.6f jobs_per_s=%.0f first_claim_ms=%.1f"
           " polls=%ld hwm_kb=%ld rss_kb=%ld\n",
           o->workers, o->jobs, o->finished, ok, (double)drain_us / 1e6,
           drain_us > 0 ? (double)ok * 1e6 / (double)drain_us : 0.0, (double)first_us / 1e3, polls, hwm, rss);
    PQfinish(db);
    return rc;
}
