/* soak.c — `agentq-bench soak`: a fixed mixed load for --seconds, one CSV row
 * of figures per --window-s window (tests/soak.sh, `make soak`).
 *
 *   agentq-bench soak --seconds N --window-s W --rate R --api-pct P --chat-per-min C --log CSV
 *
 * Load, from the start to the end (the processes under test are started by
 * soak.sh, not here): R noop jobs/s in all, P % of them as POST /v1/jobs
 * (AQ_BENCH_API, AQ_BENCH_TOKEN) and the rest as 10-row INSERTs from SQL;
 * C agent turns a minute as POST /v1/chat (each a new session); schedules
 * fire on their own (soak.sh made them).
 *
 * At each window's end (windows on the database clock, [previous end, now);
 * the row's `minute` is the time since the start in minutes):
 *   jobs finished by type (noop, agent_turn, scheduled_run) and failed;
 *   enqueue→start p50/p99 (started_at - created_at) of the jobs finished in it;
 *   chat→reply p50/p99: the assistant row's created_at - its chat turn's
 *     created_at (the POST's INSERT; both database clock) for replies stored in it;
 *   backlog (queued + running), dead rows and autovacuums of jobs;
 *   sizes (kB): jobs heap, jobs indexes, chat tables with indexes, the database;
 *   resident memory of every process named in AQ_SOAK_PIDS ("name=pid ..."):
 *     VmRSS and RssAnon from /proc/PID/status (-1 once it is gone);
 *   PostgreSQL (AQ_SOAK_PGPID, the postmaster): Pss summed over it and its
 *     children (smaps_rollup; shared buffers counted once), and their count.
 * Each row is written and flushed as it is taken, and echoed on stdout.
 * Exit status 1 if a named process died or the API refused a request. */
#include "bench.h"
#include "aq_time.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROCS 16
#define SQL_BATCH 10

typedef struct proc {
    char name[32];
    pid_t pid;
} proc;

/* "name=pid name=pid ..." → procs; their count */
static int parse_pids(const char *s, proc *ps)
{
    int n = 0;
    while (s && *s && n < MAX_PROCS) {
        while (*s == ' ') s++;
        const char *eq = strchr(s, '=');
        if (!eq) break;
        size_t len = (size_t)(eq - s) < sizeof ps[n].name - 1 ? (size_t)(eq - s) : sizeof ps[n].name - 1;
        memcpy(ps[n].name, s, len);
        ps[n].name[len] = '\0';
        char *end;
        ps[n].pid = (pid_t)strtol(eq + 1, &end, 10);
        if (ps[n].pid > 0) n++;
        s = end;
    }
    return n;
}

/* A kB field of /proc/PID/smaps_rollup (Pss), or 0. */
static long rollup_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long v = 0;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

/* The parent pid of pid, or -1. */
static pid_t ppid_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* the command may hold spaces */
    int ppid = -1;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1) return -1;
    return (pid_t)ppid;
}

/* PostgreSQL: Pss of the postmaster and its children, summed; their count. */
static long pg_pss_kb(pid_t postmaster, long *nprocs)
{
    long kb = rollup_kb(postmaster, "Pss");
    *nprocs = kb > 0;
    DIR *d = opendir("/proc");
    if (!d) return kb;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || ppid_of((pid_t)pid) != postmaster) continue;
        kb += rollup_kb((pid_t)pid, "Pss");
        (*nprocs)++;
    }
    closedir(d);
    return kb;
}

static const char *WINDOW_SQL =
    "WITH f AS (SELECT job_type, status, extract(epoch FROM started_at - created_at) * 1000 AS q_ms FROM jobs"
    "  WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at >= $1::timestamptz"
    "  AND finished_at < $2::timestamptz),"
    " r AS (SELECT extract(epoch FROM h.created_at - j.created_at) * 1000 AS ms FROM chat_message_history h"
    "  JOIN jobs j ON j.id = h.job_id WHERE h.role = 'assistant' AND j.job_type = 'agent_turn'"
    "  AND h.created_at >= $1::timestamptz AND h.created_at < $2::timestamptz)"
    " SELECT (SELECT count(*) FILTER (WHERE job_type = 'noop') FROM f),"
    "  (SELECT count(*) FILTER (WHERE job_type = 'agent_turn') FROM f),"
    "  (SELECT count(*) FILTER (WHERE job_type = 'scheduled_run') FROM f),"
    "  (SELECT count(*) FILTER (WHERE status <> 'succeeded') FROM f),"
    "  (SELECT coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY q_ms), -1) FROM f),"
    "  (SELECT coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY q_ms), -1) FROM f),"
    "  (SELECT count(*) FROM r),"
    "  (SELECT coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms), -1) FROM r),"
    "  (SELECT coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), -1) FROM r),"
    "  (SELECT count(*) FROM jobs WHERE status = 'queued') + (SELECT count(*) FROM jobs WHERE status = 'running'),"
    "  coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'), 0),"
    "  coalesce((SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'), 0),"
    "  pg_relation_size('jobs') / 1024, pg_indexes_size('jobs') / 1024,"
    "  (pg_total_relation_size('chat_message_history') + pg_total_relation_size('chat_sessions')) / 1024,"
    "  pg_database_size(current_database()) / 1024";

int aq_bench_cmd_soak(const aq_bench_opts *o)
{
    const char *api = getenv("AQ_BENCH_API"), *token = getenv("AQ_BENCH_TOKEN");
    const char *pm = getenv("AQ_SOAK_PGPID");
    if (!api || !token || !o->log) {
        fprintf(stderr, "soak: set AQ_BENCH_API and AQ_BENCH_TOKEN, and give --log CSV\n");
        return 2;
    }
    proc ps[MAX_PROCS];
    int np = parse_pids(getenv("AQ_SOAK_PIDS"), ps);
    pid_t postmaster = pm ? (pid_t)atol(pm) : 0;
    FILE *csv = fopen(o->log, "w");
    if (!csv) { perror("soak: --log"); return 1; }
    fprintf(csv, "minute,noop,turns,scheduled,failed,jobs_per_s,queue_p50_ms,queue_p99_ms,replies,reply_p50_ms,"
                 "reply_p99_ms,backlog,dead_rows,autovacuums,jobs_kb,jobs_idx_kb,chat_kb,db_kb");
    for (int i = 0; i < np; i++) fprintf(csv, ",%s_rss_kb,%s_anon_kb", ps[i].name, ps[i].name);
    fprintf(csv, ",pg_pss_kb,pg_procs\n");
    fflush(csv);

    PGconn *db = aq_bench_connect();
    PGresult *r = aq_bench_exec(db, "SELECT clock_timestamp()", 0, NULL);
    char prev[64];
    snprintf(prev, sizeof prev, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    uint64_t t0 = aq_bench_mono_us(), end = t0 + (uint64_t)o->seconds * 1000000u;
    aq_bench_producer psql = {.rate = (double)o->rate * (double)(100 - o->api_pct) / 100.0, .t0_us = t0,
                              .end_us = end, .batch = SQL_BATCH,
                              .sql = "INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)"};
    aq_bench_producer pjobs = {.rate = (double)o->rate * (double)o->api_pct / 100.0, .t0_us = t0, .end_us = end,
                               .api = api, .token = token, .path = "/v1/jobs",
                               .body = "{\"type\":\"noop\",\"input\":{}}"};
    aq_bench_producer pchat = {.rate = (double)o->chat_per_min / 60.0, .t0_us = t0, .end_us = end,
                               .api = api, .token = token, .path = "/v1/chat",
                               .body = "{\"message\":\"hello from the soak\"}"};
    pthread_t ts, tj, tc;
    int have_sql = psql.rate > 0 && !pthread_create(&ts, NULL, aq_bench_sql_producer, &psql);
    int have_jobs = pjobs.rate > 0 && !pthread_create(&tj, NULL, aq_bench_api_producer, &pjobs);
    int have_chat = pchat.rate > 0 && !pthread_create(&tc, NULL, aq_bench_api_producer, &pchat);

    int died = 0;
    long nwin = o->seconds / o->window_s;
    for (long w = 1; w <= nwin; w++) {
        aq_bench_sleep_until_us(t0 + (uint64_t)(w * o->window_s) * 1000000u);
        r = aq_bench_exec(db, "SELECT clock_timestamp()", 0, NULL);
        char now[64];
        snprintf(now, sizeof now, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        const char *p[] = {prev, now};
        r = aq_bench_exec(db, WINDOW_SQL, 2, p);
        long long v[16];
        for (int i = 0; i < 16; i++) v[i] = (long long)strtod(PQgetvalue(r, 0, i), NULL);
        PQclear(r);
        double secs = (double)o->window_s;
        char row[2048];
        int len = snprintf(row, sizeof row, "%g,%lld,%lld,%lld,%lld,%.1f,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,"
                                            "%lld,%lld,%lld,%lld", (double)(w * o->window_s) / 60.0, v[0], v[1], v[2], v[3],
                           (double)(v[0] + v[1] + v[2]) / secs, v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11],
                           v[12], v[13], v[14], v[15]);
        for (int i = 0; i < np && len < (int)sizeof row - 64; i++) {
            long rss = aq_bench_proc_status(ps[i].pid, "VmRSS"), anon = aq_bench_proc_status(ps[i].pid, "RssAnon");
            if (rss < 0 && ps[i].pid > 0) {
                fprintf(stderr, "soak: %s (pid %d) is gone\n", ps[i].name, (int)ps[i].pid);
                ps[i].pid = 0;
                died = 1;
            }
            len += snprintf(row + len, sizeof row - (size_t)len, ",%ld,%ld", rss, anon);
        }
        long npg = 0, pss = postmaster ? pg_pss_kb(postmaster, &npg) : -1;
        snprintf(row + len, sizeof row - (size_t)len, ",%ld,%ld", pss, npg);
        fprintf(csv, "%s\n", row);
        fflush(csv);
        printf("soak_window %s\n", row);
        fflush(stdout);
        snprintf(prev, sizeof prev, "%s", now);
    }
    if (have_sql) pthread_join(ts, NULL);
    if (have_jobs) pthread_join(tj, NULL);
    if (have_chat) pthread_join(tc, NULL);
    long refused = atomic_load(&pjobs.refused) + atomic_load(&pchat.refused);
    printf("soak seconds=%ld windows=%ld sql_jobs=%ld api_jobs=%ld chats=%ld refused=%ld died=%d\n", o->seconds,
           nwin, atomic_load(&psql.produced), atomic_load(&pjobs.produced), atomic_load(&pchat.produced), refused,
           died);
    fclose(csv);
    PQfinish(db);
    return died || refused ? 1 : 0;
}
