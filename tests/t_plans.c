/* t_plans.c — the plans the engine's hot-path statements get (issue 11).
 *
 * A worker that connected to an empty jobs table must keep finding its rows
 * by id however many jobs have gone through since. The worker's own prepared
 * statements cannot be EXPLAINed from outside its session, so this test
 * plays that session: the engine's exact session settings and SQL
 * (aq_engine_session_settings, aq_engine_statement_sql), prepared on the
 * empty table and executed more than five times there (when Postgres may
 * switch a prepared statement to a generic plan); then a real worker runs
 * 100,000 jobs through in batches; then EXPLAIN EXECUTE in this same session
 * shows the plan each statement would run with now, and again right after a
 * VACUUM ANALYZE (autovacuum's visit). */
#include "../worker/engine.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_jobs.h"
#include "bench/bench.h"
#include "harness.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCHES 20
#define BATCH 5000

typedef struct plan_case {
    const char *name;        /* engine statement */
    int nparams;
    const char *params[9];   /* "$ID1"/"$ID2" inside are replaced by real ids */
    const char *must;        /* the plan must contain this */
    const char *must_not;    /* and not this (besides a seq scan or join filter) */
} plan_case;

/* Parameter sets shaped like the engine's: two ids (a one-id array would be
 * planned as a single lookup whatever the shape). */
static const plan_case cases[] = {
    {"aq_succeed", 5, {"w", "{ID1,ID2}", "{1,1}", "{1,1}", "{NULL,NULL}"}, "Index Cond: (id = c.id)", NULL},
    {"aq_complete", 2, {"w", "[{\"id\":ID1,\"k\":1,\"a\":1,\"s\":\"failed\",\"d\":0,\"t\":0,\"u\":0},"
                             "{\"id\":ID2,\"k\":1,\"a\":1,\"s\":\"failed\",\"d\":0,\"t\":0,\"u\":0}]"},
     "Index Cond: (id = c.id)", NULL},
    {"aq_mark", 4, {"w", "{ID1,ID2}", "{1,1}", "{1,1}"}, "Index Cond: (id = m.id)", NULL},
    {"aq_extend", 3, {"w", "30", "{ID1,ID2}"}, "Index Cond: (id = ANY (", NULL},
    {"aq_followup", 1, {"[{\"parent\":ID1,\"claim\":1,\"type\":\"noop\"},{\"parent\":ID2,\"claim\":1,\"type\":\"noop\"}]"},
     "Index Cond: (id = f", NULL},
    {"aq_say", 1, {"[{\"parent\":ID1,\"claim\":1,\"session\":\"00000000-0000-0000-0000-000000000001\","
                   "\"channel\":\"web\",\"content\":\"x\"}]"}, "Index Cond: (id = f", NULL},
    /* the claim without floor (from the lowest key) and with one (from the key of job ID1); at most
     * MAX_CLAIM (1,000) rows, as a worker with room asks for */
    {"aq_claim", 9, {"{default}", "1000", "w", "30", "8", "4", "-32768", "-infinity", "0"},
     "Index Scan using jobs_claim", "Sort"},
    {"aq_claim", 9, {"{default}", "1000", "w", "30", "8", "4", "0", "2026-11-30 12:00:00.123456+00", "ID1"},
     "(ROW(priority, run_at, id) >= ROW(", "Sort"},
    {"aq_rescue", 1, {"1000"}, "Index Scan using jobs_running", "Sort"},
    {"aq_prune", 1, {"168"}, "Index Scan using jobs_finished", "Sort"},
};

/* s with ID1/ID2 replaced by the given ids (heap). */
static char *with_ids(const char *s, long long id1, long long id2)
{
    aq_buf b;
    aq_buf_init(&b);
    while (*s) {
        if (!strncmp(s, "ID1", 3) || !strncmp(s, "ID2", 3)) {
            aq_buf_addf(&b, "%lld", s[2] == '1' ? id1 : id2);
            s += 3;
        } else {
            aq_buf_add(&b, s++, 1);
        }
    }
    return aq_buf_take(&b);
}

/* Run one statement of the case, EXPLAINed or not; returns the plan text
 * (heap) when explain is set, else NULL. EXECUTE takes no bind parameters:
 * the case's fixed values go in as quoted literals. */
static char *run_case(const plan_case *pc, long long id1, long long id2, int explain)
{
    aq_buf sql;
    aq_buf_init(&sql);
    aq_buf_addf(&sql, "%sEXECUTE %s", explain ? "EXPLAIN (COSTS OFF) " : "", pc->name);
    for (int i = 0; i < pc->nparams; i++) {
        char *v = with_ids(pc->params[i], id1, id2);
        char *lit = PQescapeLiteral(th_db(), v, strlen(v));
        aq_buf_addf(&sql, "%s%s", i ? ", " : "(", lit);
        PQfreemem(lit);
        free(v);
    }
    if (pc->nparams) aq_buf_adds(&sql, ")");
    PGresult *r = PQexec(th_db(), sql.p);
    char *plan = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        th_fail(__FILE__, __LINE__, "%s: %s", sql.p, PQresultErrorMessage(r));
    } else if (explain) {
        aq_buf b;
        aq_buf_init(&b);
        for (int i = 0; i < PQntuples(r); i++) aq_buf_addf(&b, "%s\n", PQgetvalue(r, i, 0));
        plan = aq_buf_take(&b);
    }
    PQclear(r);
    aq_buf_dispose(&sql);
    return plan;
}

/* EXPLAIN every case on the two running jobs id2-1 and id2; jobs: how many
 * went through the table before (for the message). */
static void check_plans(long long id2, long jobs, const char *when)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *plan = run_case(&cases[i], id2 - 1, id2, 1);
        if (!plan) continue;
        const char *bad = cases[i].must_not && strstr(plan, cases[i].must_not) ? cases[i].must_not
                          : strstr(plan, "Seq Scan on jobs") ? "Seq Scan on jobs"
                          : strstr(plan, "Join Filter") ? "Join Filter" : NULL;
        if (!strstr(plan, cases[i].must) || bad)
            th_fail(__FILE__, __LINE__, "%s after %ld jobs, %s: want \"%s\"%s%s; plan:\n%s", cases[i].name,
                    jobs, when, cases[i].must, bad ? ", found " : "", bad ? bad : "", plan);
        free(plan);
    }
}

/* Shared buffers the Index Scan on jobs_claim touched in one claim (EXPLAIN
 * ANALYZE of the engine's statement, rolled back), from key (p, r, id). */
static long claim_buffers(const char *p, const char *r, const char *id)
{
    const char *v[] = {"{default}", "100", "w", "30", "8", "4", p, r, id};
    aq_buf sql;
    aq_buf_init(&sql);
    aq_buf_adds(&sql, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE aq_claim");
    for (int i = 0; i < 9; i++) {
        char *lit = PQescapeLiteral(th_db(), v[i], strlen(v[i]));
        aq_buf_addf(&sql, "%s%s", i ? ", " : "(", lit);
        PQfreemem(lit);
    }
    aq_buf_adds(&sql, ")");
    th_exec("BEGIN", NULL);
    PGresult *res = PQexec(th_db(), sql.p);
    aq_buf plan;
    aq_buf_init(&plan);
    for (int k = 0; PQresultStatus(res) == PGRES_TUPLES_OK && k < PQntuples(res); k++)
        aq_buf_addf(&plan, "%s\n", PQgetvalue(res, k, 0));
    if (PQresultStatus(res) != PGRES_TUPLES_OK) th_fail(__FILE__, __LINE__, "%s", PQresultErrorMessage(res));
    PQclear(res);
    th_exec("ROLLBACK", NULL);
    long hit = 0, read = 0;
    const char *scan = plan.p ? strstr(plan.p, "Index Scan using jobs_claim") : NULL;
    const char *buf = scan ? strstr(scan, "Buffers: shared") : NULL;
    const char *h = buf ? strstr(buf, "hit=") : NULL, *rd = buf ? strstr(buf, "read=") : NULL;
    const char *eol = buf ? strchr(buf, '\n') : NULL;
    if (h && (!eol || h < eol)) hit = atol(h + 4);
    if (rd && (!eol || rd < eol)) read = atol(rd + 5);
    if (!buf) th_fail(__FILE__, __LINE__, "no buffers for the scan of jobs_claim:\n%s", plan.p ? plan.p : "");
    fprintf(stderr, "claim from (%s, %s, %s): %ld buffers (hit %ld, read %ld)\n", p, r, id, hit + read, hit, read);
    aq_buf_dispose(&plan);
    aq_buf_dispose(&sql);
    return hit + read;
}

/* The claim floor (worker/engine.c, "Claim floor"): with the jobs claimed
 * so far dead in jobs_claim (autovacuum off), a claim that starts at the key
 * of the last job claimed, as the worker's does, touches a few pages,
 * however many jobs went before; one from the head walks them all. */
static void check_claim_buffers(void)
{
    char *p = th_str("SELECT priority::text FROM jobs ORDER BY priority DESC, run_at DESC, id DESC LIMIT 1", NULL);
    char *r = th_str("SELECT run_at::text FROM jobs ORDER BY priority DESC, run_at DESC, id DESC LIMIT 1", NULL);
    char *id = th_str("SELECT id::text FROM jobs ORDER BY priority DESC, run_at DESC, id DESC LIMIT 1", NULL);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 10)", NULL);
    long floor = claim_buffers(p, r, id), head = claim_buffers("-32768", "-infinity", "0");
    long pages = th_int("SELECT pg_relation_size('jobs_claim') / 8192", NULL);
    if (floor > 30 || head < pages / 2)
        th_fail(__FILE__, __LINE__, "after %d jobs (jobs_claim %ld pages): the claim from the floor touched %ld buffers"
                " (want at most 30), from the head %ld", BATCHES * BATCH, pages, floor, head);
    th_exec("DELETE FROM jobs WHERE status = 'queued'", NULL);
    free(p);
    free(r);
    free(id);
}

/* This session as the worker's: its settings, every case's statement prepared. */
static void prepare_cases(void)
{
    size_t ncases = sizeof cases / sizeof cases[0];
    for (const char *const *set = aq_engine_session_settings; *set; set++) th_exec(*set, NULL);
    for (size_t i = 0; i < ncases; i++) {
        if (i && !strcmp(cases[i].name, cases[i - 1].name)) continue;   /* prepared already */
        const char *sql = aq_engine_statement_sql(cases[i].name);
        CHECK(sql != NULL);
        if (!sql) return;
        PGresult *r = PQprepare(th_db(), cases[i].name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            th_fail(__FILE__, __LINE__, "prepare %s: %s", cases[i].name, PQresultErrorMessage(r));
        PQclear(r);
    }
}

static void hot_path_plans_stay_id_lookups(void)
{
    size_t ncases = sizeof cases / sizeof cases[0];
    /* No autovacuum while the jobs go through (none visited in 20 s in the
     * issue's runs): its statistics would replan the statements below. */
    th_exec("ALTER TABLE jobs SET (autovacuum_enabled = off)", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);   /* the statistics of an empty table, as on a quiet night */
    /* the worker's session, connected to an empty table */
    prepare_cases();
    for (int round = 0; round < 8; round++)
        for (size_t i = 0; i < ncases; i++) {
            th_exec("BEGIN", NULL);   /* changes nothing: the table is empty; rolled back regardless */
            run_case(&cases[i], 1, 2, 0);
            th_exec("ROLLBACK", NULL);
        }

    /* 100,000 jobs through a real worker, in batches */
    const char *const args[] = {"--concurrency", "8", "--prefetch", "2000", NULL};
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(args, env);
    for (int b = 1; b <= BATCHES; b++) {
        th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)", th_num(BATCH), NULL);
        if (!th_wait_int((long long)b * BATCH, 120000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL))
            break;
    }
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);

    check_claim_buffers();

    /* two jobs held by "w", as a completion would find them */
    th_exec("INSERT INTO jobs (job_type, status, locked_by, claims, attempts) SELECT 'noop', 'running', 'w', 1, 1"
            " FROM generate_series(1, 2)", NULL);
    long long id2 = th_int("SELECT max(id) FROM jobs", NULL);
    check_plans(id2, BATCHES * BATCH, "with the statistics of the empty table");
    /* Autovacuum's visit: jobs_running keeps its pages but few live entries,
     * and the planner extrapolates its size from that density (a scan of it
     * all then looks free, however many entries gather after). */
    th_exec("VACUUM ANALYZE jobs", NULL);
    check_plans(id2, BATCHES * BATCH, "right after a vacuum");
}

/* Statistics outlive the rows they describe: TRUNCATE and an ANALYZE of the
 * empty table keep the last ones. make bench's steady-state step met this:
 * its drains left "every row queued, one run_at" (a backlog analyzed right
 * after its load), and with them the claim expected its LIMIT's 1,000 rows
 * and joined them to jobs by hashing the whole table: ~900 buffers and ~5 ms
 * per 100-row claim for the run's first 20 s, until autovacuum analyzed.
 * The rescue and the prune had the same join. Here the statistics describe
 * 20,000 rows in each state the three pick (queued and runnable, running
 * with the lease run out, finished 30 days ago), the table is emptied, and
 * 100,000 finished rows plus 300 of each kind arrive: every statement must
 * still find its rows by id (worker/engine.c, "Plans" (3)). */
static void hot_path_plans_survive_stale_statistics(void)
{
    th_exec("ALTER TABLE jobs SET (autovacuum_enabled = off)", NULL);
    const char *load[] = {
        "INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)",
        "INSERT INTO jobs (job_type, status, locked_by, claims, attempts, locked_until)"
        " SELECT 'noop', 'running', 'w', 1, 1, now() - interval '1 hour' FROM generate_series(1, $1::int)",
        "INSERT INTO jobs (job_type, status, started_at, finished_at)"
        " SELECT 'noop', 'succeeded', now() - interval '30 days', now() - interval '30 days'"
        " FROM generate_series(1, $1::int)",
    };
    for (size_t i = 0; i < sizeof load / sizeof load[0]; i++) th_exec(load[i], th_num(20000), NULL);
    th_exec("ANALYZE jobs", NULL);
    th_exec("TRUNCATE jobs", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    /* the premise: the statistics are still those of the 60,000 rows */
    CHECK_INT(th_int("SELECT count(*) FROM pg_stats WHERE tablename = 'jobs' AND attname = 'status'"
                     " AND most_common_vals::text::text[] @> '{queued,running,succeeded}'", NULL), 1);
    th_exec("INSERT INTO jobs (job_type, status, started_at, finished_at)"
            " SELECT 'noop', 'succeeded', now(), now() FROM generate_series(1, 100000)", NULL);
    for (size_t i = 0; i < sizeof load / sizeof load[0]; i++) th_exec(load[i], th_num(300), NULL);
    prepare_cases();
    long long id2 = th_int("SELECT max(id) FROM jobs WHERE status = 'running'", NULL);
    check_plans(id2, 100900, "with stale statistics (every state, 20,000 rows each)");
}

/* The statements aq_claim_serial (sql/015_serial.sql, 022) runs for a keyed
 * candidate, as written there, each must be an index probe whatever the
 * backlog: one key with 3,000 queued behind a running job, 3,000 keys each
 * with one running and one queued, one user with 3,000 running keyed jobs.
 * And the claim, with that backlog ahead of 50 keyless jobs, takes the
 * keyless ones and, of the keys, only a free key's lowest id; it marks the
 * rest held, so the next claim reads none of them; freeing a key releases
 * its lowest queued job. */
static const struct { const char *sql, *must; } serial_checks[] = {
    {"SELECT 1 FROM jobs WHERE serial_key = 'one' AND status = 'queued' AND id < 2000 ORDER BY id LIMIT 1",
     "Index Only Scan using jobs_serial"},
    {"SELECT status = 'running' FROM jobs WHERE serial_key = 'one' AND status IN ('queued', 'running')"
     " ORDER BY status DESC LIMIT 1", "using jobs_serial"},
    {"SELECT count(*) FROM jobs WHERE user_id = 1 AND serial_key IS NOT NULL AND status = 'running'",
     "using jobs_user_running"},
};

static void serial_checks_are_index_probes(void)
{
    th_exec("INSERT INTO jobs (job_type, serial_key, status, user_id) VALUES ('noop', 'one', 'running', 1)", NULL);
    th_exec("INSERT INTO jobs (job_type, serial_key) SELECT 'noop', 'one' FROM generate_series(1, 3000)", NULL);
    th_exec("INSERT INTO jobs (job_type, serial_key, status, user_id)"
            " SELECT 'noop', 'k' || i, 'running', 1 FROM generate_series(1, 3000) i", NULL);
    th_exec("INSERT INTO jobs (job_type, serial_key) SELECT 'noop', 'k' || i FROM generate_series(1, 3000) i", NULL);
    th_exec("INSERT INTO jobs (job_type, serial_key) SELECT 'noop', 'free' FROM generate_series(1, 3)", NULL);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 50)", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    for (const char *const *set = aq_engine_session_settings; *set; set++) th_exec(*set, NULL);
    for (size_t i = 0; i < sizeof serial_checks / sizeof serial_checks[0]; i++) {
        aq_buf b;
        aq_buf_init(&b);
        aq_buf_addf(&b, "EXPLAIN (COSTS OFF) %s", serial_checks[i].sql);
        PGresult *r = PQexec(th_db(), b.p);
        aq_buf_dispose(&b);
        aq_buf_init(&b);
        for (int k = 0; PQresultStatus(r) == PGRES_TUPLES_OK && k < PQntuples(r); k++)
            aq_buf_addf(&b, "%s\n", PQgetvalue(r, k, 0));
        PQclear(r);
        char *plan = aq_buf_take(&b);
        if (!strstr(plan, serial_checks[i].must) || strstr(plan, "Seq Scan"))
            th_fail(__FILE__, __LINE__, "%s: want \"%s\"; plan:\n%s", serial_checks[i].sql, serial_checks[i].must, plan);
        free(plan);
    }
    PGresult *r = PQprepare(th_db(), "claim", aq_engine_statement_sql("aq_claim"), 0, NULL);
    CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    th_exec("EXECUTE claim('{default}', 100, 'w', 30, 8, 4, -32768, '-infinity', 0)", NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE locked_by = 'w' AND serial_key IS NULL", NULL), 50);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE locked_by = 'w' AND serial_key IS NOT NULL", NULL), 1);
    CHECK_INT(th_int("SELECT min(id) FROM jobs WHERE serial_key = 'free'", NULL),
              th_int("SELECT id FROM jobs WHERE locked_by = 'w' AND serial_key = 'free'", NULL));
    /* the first claim marked what cannot run (but the rows of a key it took
     * itself, which the next claim marks); after that a claim reads none of it */
    th_exec("EXECUTE claim('{default}', 100, 'w', 30, 8, 4, -32768, '-infinity', 0)", NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'queued' AND NOT serial_held", NULL), 0);
    th_exec("BEGIN", NULL);
    r = PQexec(th_db(), "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)"
                        " EXECUTE claim('{default}', 100, 'w2', 30, 8, 4, -32768, '-infinity', 0)");
    aq_buf b;
    aq_buf_init(&b);
    for (int k = 0; PQresultStatus(r) == PGRES_TUPLES_OK && k < PQntuples(r); k++)
        aq_buf_addf(&b, "%s\n", PQgetvalue(r, k, 0));
    PQclear(r);
    if (!strstr(b.p ? b.p : "", "Index Scan using jobs_claim on jobs (actual rows=0 loops=1)") ||
        strstr(b.p ? b.p : "", "Rows Removed by Filter"))
        th_fail(__FILE__, __LINE__, "the second claim read held rows:\n%s", b.p ? b.p : "");
    aq_buf_dispose(&b);
    th_exec("ROLLBACK", NULL);
    /* the key frees: its lowest queued job is released, and only it */
    th_exec("UPDATE jobs SET status = 'succeeded', locked_by = NULL WHERE serial_key = 'free' AND status = 'running'", NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE serial_key = 'free' AND status = 'queued' AND NOT serial_held",
                     NULL), 1);
    CHECK_INT(th_int("SELECT min(id) FROM jobs WHERE serial_key = 'free' AND status = 'queued'", NULL),
              th_int("SELECT id FROM jobs WHERE serial_key = 'free' AND status = 'queued' AND NOT serial_held", NULL));
}

/* EXPLAIN (COSTS OFF) of a statement without parameters, one line per plan
 * line (heap; empty if it failed). */
static char *explain(const char *sql)
{
    char *q = aq_sprintf("EXPLAIN (COSTS OFF) %s", sql);
    PGresult *r = PQexec(th_db(), q);
    free(q);
    aq_buf b;
    aq_buf_init(&b);
    for (int k = 0; PQresultStatus(r) == PGRES_TUPLES_OK && k < PQntuples(r); k++)
        aq_buf_addf(&b, "%s\n", PQgetvalue(r, k, 0));
    PQclear(r);
    return aq_buf_take(&b);
}

/* The bench's drain poll (AQ_BENCH_SQL_BUSY), beside finished rows: two
 * probes of the partial indexes, no scan of the table (the old count(*) of
 * status IN ('queued','running') was a sequential scan of it all, every
 * 10 ms, taking the cores of the worker the history drain timed); and it
 * answers what the drain waits on: 1 while a job is queued or running. */
static void bench_poll_reads_no_history(void)
{
    th_exec("INSERT INTO jobs (job_type, status, finished_at) SELECT 'noop', 'succeeded', now()"
            " FROM generate_series(1, 20000)", NULL);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 2000)", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    char *plan = explain(AQ_BENCH_SQL_BUSY);
    if (!strstr(plan, "using jobs_user_queued on jobs") || !strstr(plan, "using jobs_running on jobs") ||
        strstr(plan, "Seq Scan"))
        th_fail(__FILE__, __LINE__, "the drain's poll reads more than two partial indexes:\n%s", plan);
    free(plan);
    CHECK_INT(th_int(AQ_BENCH_SQL_BUSY, NULL), 1);
    th_exec("UPDATE jobs SET status = 'running' WHERE id = (SELECT max(id) FROM jobs)", NULL);
    th_exec("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE status = 'queued'", NULL);
    CHECK_INT(th_int(AQ_BENCH_SQL_BUSY, NULL), 1);
    th_exec("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE status = 'running'", NULL);
    CHECK_INT(th_int(AQ_BENCH_SQL_BUSY, NULL), 0);
}

/* The console's queue overview (GET /v1/queue) beside finished rows: the
 * unfinished ones through their partial indexes, the finished ones through
 * jobs_finished; no scan of the whole table (status IN ('queued', 'running',
 * 'waiting') was one, on every refresh). And its counts still split queued
 * into runnable and scheduled, with running and waiting. */
static void queue_overview_reads_no_history(void)
{
    th_exec("INSERT INTO jobs (job_type, status, finished_at) SELECT 'noop', 'succeeded', now() - interval '2 hours'"
            " FROM generate_series(1, 20000)", NULL);
    th_exec("INSERT INTO jobs (job_type, status, run_at) VALUES ('noop', 'queued', now()),"
            " ('noop', 'queued', now() + interval '1 hour'), ('noop', 'running', now()), ('noop', 'waiting', now())",
            NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    char *plan = explain(aq_jobs_sql_queue_overview);
    if (!*plan || strstr(plan, "Seq Scan on jobs"))
        th_fail(__FILE__, __LINE__, "the queue overview reads the whole jobs table:\n%s", plan);
    free(plan);
    char *json = th_str(aq_jobs_sql_queue_overview, NULL);
    CHECK_CONTAINS(json, "{\"type\" : \"noop\", \"status\" : \"runnable\", \"count\" : 1}");
    CHECK_CONTAINS(json, "{\"type\" : \"noop\", \"status\" : \"scheduled\", \"count\" : 1}");
    CHECK_CONTAINS(json, "{\"type\" : \"noop\", \"status\" : \"running\", \"count\" : 1}");
    CHECK_CONTAINS(json, "{\"type\" : \"noop\", \"status\" : \"waiting\", \"count\" : 1}");
    CHECK_CONTAINS(json, "\"finished\" : []");
    free(json);
}

/* libpq notices (auto_explain's plans) into an aq_buf */
static void collect_notice(void *arg, const char *msg) { aq_buf_adds(arg, msg); }

/* aq_claim_serial as installed (sql/022), seen through auto_explain: with
 * statistics taken while no job ran (a backlog just enqueued and analyzed)
 * and then 2,000 keys running, its check "is a job of this key running?"
 * reads the key's entries in jobs_serial, not every running row through
 * jobs_running (sql/015's EXISTS did: a pass over all running jobs per keyed
 * candidate, seconds per claim at 5,000 turns in flight). */
static void serial_running_check_ignores_stale_statistics(void)
{
    th_exec("ALTER TABLE jobs SET (autovacuum_enabled = false)", NULL);   /* the statistics stay stale */
    th_exec("INSERT INTO jobs (job_type, serial_key) SELECT 'noop', 'k' || i FROM generate_series(1, 3000) i", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    th_exec("UPDATE jobs SET status = 'running', locked_by = 'w' WHERE id IN"
            " (SELECT id FROM jobs ORDER BY id LIMIT 2000)", NULL);
    th_exec("INSERT INTO jobs (job_type, serial_key) VALUES ('noop', 'k1')", NULL);   /* behind a running job */
    for (const char *const *set = aq_engine_session_settings; *set; set++) th_exec(*set, NULL);
    th_exec("LOAD 'auto_explain'", NULL);
    th_exec("SET auto_explain.log_min_duration = 0", NULL);
    th_exec("SET auto_explain.log_nested_statements = on", NULL);
    th_exec("SET auto_explain.log_level = notice", NULL);
    th_exec("SET client_min_messages = notice", NULL);
    aq_buf plans;
    aq_buf_init(&plans);
    PQnoticeProcessor old = PQsetNoticeProcessor(th_db(), collect_notice, &plans);
    th_exec("BEGIN", NULL);
    /* a key with a running job (held) and a free one (taken) */
    char *held = th_str("SELECT aq_claim_serial(max(id), 'k1', NULL, 0)::text FROM jobs WHERE serial_key = 'k1'", NULL);
    char *taken = th_str("SELECT aq_claim_serial(id, 'k2500', NULL, 0)::text FROM jobs WHERE serial_key = 'k2500'",
                         NULL);
    th_exec("ROLLBACK", NULL);
    PQsetNoticeProcessor(th_db(), old, NULL);
    CHECK_STR(held, "false");
    CHECK_STR(taken, "true");
    free(held);
    free(taken);
    th_exec("SET auto_explain.log_min_duration = -1", NULL);
    CHECK_CONTAINS(plans.p, "Index Only Scan Backward using jobs_serial");
    if (strstr(plans.p, "jobs_running"))
        th_fail(__FILE__, __LINE__, "a check of aq_claim_serial walked jobs_running:\n%s", plans.p);
    aq_buf_dispose(&plans);
}

const th_test th_plans_tests[] = {
    {"plans_hot_path_stay_id_lookups", hot_path_plans_stay_id_lookups, 300, 1},
    {"plans_hot_path_survive_stale_statistics", hot_path_plans_survive_stale_statistics, 120, 1},
    {"plans_serial_checks_are_index_probes", serial_checks_are_index_probes, 120, 1},
    {"plans_bench_poll_reads_no_history", bench_poll_reads_no_history, 60, 1},
    {"plans_queue_overview_reads_no_history", queue_overview_reads_no_history, 60, 1},
    {"plans_serial_running_check_ignores_stale_statistics", serial_running_check_ignores_stale_statistics, 120, 1},
    {0},
};
