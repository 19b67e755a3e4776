/* latency.c — `agentq-bench latency`: enqueue → handler start.
 *
 * One idle worker (started here, with AGENTQ_TEST_HANDLERS=1 in the
 * environment) and one job at a time from this process's own connection,
 * paced every --interval-ms on the monotonic clock. For each job, t0 is the
 * wall clock (CLOCK_REALTIME, µs) just before the INSERT is sent and t1 just
 * after its reply (the commit) arrives; the `test_stamp` handler records its
 * own wall clock at start in output.started_us. Headline latency is
 * started_us - t0; "after commit" is started_us - t1 (it can be negative
 * when the worker starts the job before the INSERT's reply reaches us).
 * Outputs are read once at the end so reading does not load the worker.
 * Before the run the worker idles for --idle-ms and its VmRSS is reported. */
#include "bench.h"
#include "aq_alloc.h"
#include "aq_time.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static long long pct(const long long *v, long n, double p)
{
    long rank = (long)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

static void stats(const char *prefix, long long *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    long long sum = 0;
    for (long i = 0; i < n; i++) sum += v[i];
    printf(" %sp50_us=%lld %sp95_us=%lld %sp99_us=%lld %smax_us=%lld %smean_us=%lld", prefix, pct(v, n, 50),
           prefix, pct(v, n, 95), prefix, pct(v, n, 99), prefix, v[n - 1], prefix, n ? sum / n : 0);
}

int aq_bench_cmd_latency(const aq_bench_opts *o)
{
    long n = o->jobs;
    if (n < 1) { fprintf(stderr, "agentq-bench latency: --jobs must be at least 1\n"); return 2; }
    PGconn *db = aq_bench_connect();
    aq_bench_load(db, 0, 0);
    pid_t pid = aq_bench_spawn(o->worker_argv, o->log);
    long startup_ms = aq_bench_wait_registered(db, &pid, 10000);
    if (startup_ms < 0) {
        fprintf(stderr, "agentq-bench latency: the worker did not register within 10 s\n");
        aq_bench_stop(pid);
        return 1;
    }
    aq_sleep_ms(o->idle_ms);
    long idle_rss = aq_bench_proc_status(pid, "VmRSS");

    long long *ids = aq_calloc((size_t)n, sizeof *ids);
    long long *t0 = aq_calloc((size_t)n, sizeof *t0), *t1 = aq_calloc((size_t)n, sizeof *t1);
    const char *ins[] = {"test_stamp", "{}"};
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    int failed = 0;
    for (long i = 0; i < n && !failed; i++) {
        next.tv_nsec += o->interval_ms * 1000000L;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL)) {}
        t0[i] = aq_now_wall_us();
        PGresult *res = aq_bench_exec(db, "INSERT INTO jobs (job_type, input) VALUES ($1, $2::jsonb) RETURNING id",
                                      2, ins);
        t1[i] = aq_now_wall_us();
        ids[i] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        if (i % 100 == 0 && aq_bench_check_alive(&pid)) failed = 1;
    }

    /* wait for the tail, then read every stamp in one query */
    const char *pending[] = {"test_stamp"};
    uint64_t wait_start = aq_now_mono_ms();
    while (!failed && aq_bench_scalar(db, "SELECT count(*) FROM jobs WHERE job_type = $1"
                                          " AND status IN ('queued','running')", 1, pending)) {
        if (aq_bench_check_alive(&pid)) { failed = 1; break; }
        if (aq_now_mono_ms() - wait_start > (uint64_t)o->timeout_s * 1000u) {
            fprintf(stderr, "agentq-bench latency: jobs still pending after %ld s\n", o->timeout_s);
            failed = 1;
        }
        aq_sleep_ms(10);
    }
    long hwm = pid ? aq_bench_proc_status(pid, "VmHWM") : -1;
    int rc = aq_bench_stop(pid) ? 1 : 0;
    if (failed) { PQfinish(db); return 1; }

    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%lld", ids[0]);
    snprintf(hi, sizeof hi, "%lld", ids[n - 1]);
    const char *sel[] = {lo, hi, "test_stamp", "succeeded"};
    PGresult *res = aq_bench_exec(db, "SELECT id, (output->>'started_us')::bigint FROM jobs"
                                      " WHERE id BETWEEN $1 AND $2 AND job_type = $3 AND status = $4"
                                      " AND output ? 'started_us' ORDER BY id", 4, sel);
    long m = 0;
    long long *lat = aq_calloc((size_t)n, sizeof *lat), *after = aq_calloc((size_t)n, sizeof *after);
    long long *ins_rt = aq_calloc((size_t)n, sizeof *ins_rt);
    for (long r = 0, i = 0; r < PQntuples(res); r++) {
        long long id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        while (i < n && ids[i] < id) i++;          /* both ascending */
        if (i == n || ids[i] != id) continue;
        long long started = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        lat[m] = started - t0[i];
        after[m] = started - t1[i];
        ins_rt[m] = t1[i] - t0[i];
        m++;
    }
    PQclear(res);
    if (m != n) {
        fprintf(stderr, "agentq-bench latency: only %ld of %ld jobs have a start stamp\n", m, n);
        rc = 1;
    }
    if (m) {
        printf("latency jobs=%ld measured=%ld interval_ms=%ld startup_ms=%ld idle_rss_kb=%ld hwm_kb=%ld",
               n, m, o->interval_ms, startup_ms, idle_rss, hwm);
        stats("", lat, m);
        stats("commit_", after, m);
        stats("insert_", ins_rt, m);
        printf("\n");
    }
    free(ids); free(t0); free(t1); free(lat); free(after); free(ins_rt);
    PQfinish(db);
    return rc;
}
