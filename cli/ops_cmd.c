/* ops_cmd.c — the operator's overview and housekeeping:
 *
 *   agentq stats [--json]        jobs by type and status, throughput, the
 *                                oldest runnable queued job, the workers
 *   agentq workers [--json]      the live_workers view
 *   agentq schedules ls [--user ID] [--json]
 *   agentq prune --older-than DURATION [--failed] [--dry-run] [--json]
 *
 * Cost on a big table: the counts read unfinished rows (the partial indexes
 * on queued and running rows) and the last hour of finished ones
 * (jobs_finished), not the whole table; so the finished columns of `stats`
 * are the last hour's, and the dead letter as a whole is `agentq jobs ls
 * --status failed`. Waiting rows have no index yet: their count is the one
 * sequential scan left (an index "ON jobs (id) WHERE status = 'waiting'"
 * would end it).
 *
 * prune deletes succeeded and cancelled jobs (and failed ones with --failed)
 * that finished before now - DURATION, 10,000 rows per transaction in
 * finished_at order (the jobs_finished index), so locks stay short and the
 * queue keeps moving while it runs. The cut-off is fixed when it starts.
 * Each batch writes its audit_log row (jobs.prune, with its count) in its own
 * transaction. --dry-run counts what would go and deletes nothing. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

#define USAGE_STATS "agentq stats [--json]"
#define USAGE_WORKERS "agentq workers [--json]"
#define USAGE_SCHEDULES "agentq schedules ls [--user ID] [--json]"
#define USAGE_PRUNE "agentq prune --older-than DURATION [--failed] [--dry-run] [--json]"
#define PRUNE_BATCH "10000"

int aq_cmd_stats(const aq_config *cfg, int argc, char **argv);
int aq_cmd_workers(const aq_config *cfg, int argc, char **argv);
int aq_cmd_schedules(const aq_config *cfg, int argc, char **argv);
int aq_cmd_prune(const aq_config *cfg, int argc, char **argv);

/* A command whose only option is --json: 0 parsed, 2 bad usage, -1 help. */
static int json_only(const char *usage, int argc, char **argv, const char **json)
{
    const aq_cli_opt opts[] = {{"--json", true, json}, {NULL, false, NULL}};
    int npos;
    return aq_cli_args(usage, argc, argv, opts, NULL, 0, &npos);
}

/* ---- workers ---- */

static const char SQL_WORKERS[] =
    "SELECT id, host, pid, array_to_string(queues, ','), concurrency, running, jobs_done,"
    " " AQ_CLI_TS("started_at") ", extract(epoch FROM silent_for) FROM live_workers";

#define WORKERS_JSON \
    "SELECT coalesce(json_agg(json_build_object('id', id, 'host', host, 'pid', pid," \
    " 'queues', queues, 'concurrency', concurrency, 'running', running, 'jobs_done', jobs_done," \
    " 'started_at', started_at, 'last_heartbeat', last_heartbeat," \
    " 'silent_seconds', round(extract(epoch FROM silent_for)::numeric, 3))" \
    " ORDER BY started_at, id), '[]') FROM live_workers"

static const aq_cli_col WORKER_COLS[] = {
    {"ID", AQ_CLI_TEXT, 40},      {"HOST", AQ_CLI_TEXT, 24},      {"PID", AQ_CLI_NUM, 0},
    {"QUEUES", AQ_CLI_TEXT, 32},  {"CONCURRENCY", AQ_CLI_NUM, 0}, {"RUNNING", AQ_CLI_NUM, 0},
    {"JOBS DONE", AQ_CLI_NUM, 0}, {"STARTED", AQ_CLI_TEXT, 0},    {"SILENT FOR", AQ_CLI_SECS, 0},
};
#define NWORKER_COLS ((int)(sizeof WORKER_COLS / sizeof WORKER_COLS[0]))

int aq_cmd_workers(const aq_config *cfg, int argc, char **argv)
{
    const char *json = NULL;
    int rc = json_only(USAGE_WORKERS, argc - 1, argv + 1, &json);
    if (rc) return rc < 0 ? 0 : rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    PGresult *r;
    aq_db_query(db, "listing workers", json ? WORKERS_JSON : SQL_WORKERS, 0, NULL, &r);
    PQfinish(db);
    if (!r) return 1;
    if (json) aq_cli_print_json(r);
    else if (PQntuples(r) == 0) printf("no live workers\n");
    else aq_cli_table(r, WORKER_COLS, NWORKER_COLS);
    PQclear(r);
    return 0;
}

/* ---- stats ---- */

/* Per type: unfinished jobs now (queued: runnable now; scheduled: queued
 * with run_at ahead) (one arm per status, so each can use its
 * partial index), finished ones in the last hour (jobs_finished). */
#define COUNTS_SQL \
    "SELECT job_type AS type," \
    " coalesce(sum(n) FILTER (WHERE status = 'queued'), 0)::bigint AS queued," \
    " coalesce(sum(n) FILTER (WHERE status = 'scheduled'), 0)::bigint AS scheduled," \
    " coalesce(sum(n) FILTER (WHERE status = 'running'), 0)::bigint AS running," \
    " coalesce(sum(n) FILTER (WHERE status = 'waiting'), 0)::bigint AS waiting," \
    " coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0)::bigint AS succeeded," \
    " coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)::bigint AS failed," \
    " coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0)::bigint AS cancelled" \
    " FROM (SELECT job_type, CASE WHEN run_at > now() THEN 'scheduled' ELSE 'queued' END AS status," \
    " count(*) AS n FROM jobs WHERE status = 'queued' GROUP BY 1, 2" \
    " UNION ALL SELECT job_type, status, count(*) FROM jobs WHERE status = 'running'" \
    " GROUP BY 1, 2" \
    " UNION ALL SELECT job_type, status, count(*) FROM jobs WHERE status = 'waiting'" \
    " GROUP BY 1, 2" \
    " UNION ALL SELECT job_type, status, count(*) FROM jobs" \
    " WHERE status IN ('succeeded', 'failed', 'cancelled')" \
    " AND finished_at > now() - interval '1 hour' GROUP BY 1, 2) c" \
    " GROUP BY job_type ORDER BY job_type"

#define FINISHED_SINCE(interval) \
    "(SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')" \
    " AND finished_at > now() - interval '" interval "')"

/* Runnable (run_at has come) and queued the longest. */
#define OLDEST_SQL \
    "SELECT id, job_type AS type, run_at, created_at," \
    " round(extract(epoch FROM now() - run_at)::numeric, 3) AS age_seconds" \
    " FROM jobs WHERE status = 'queued' AND run_at <= now() ORDER BY run_at, id LIMIT 1"

static const char SQL_STATS_JSON[] =
    "SELECT json_build_object("
    "'jobs', (SELECT coalesce(json_agg(c ORDER BY c.type), '[]') FROM (" COUNTS_SQL ") c),"
    " 'finished_window_seconds', 3600,"
    " 'finished_last_minute', " FINISHED_SINCE("1 minute") ","
    " 'finished_last_hour', " FINISHED_SINCE("1 hour") ","
    " 'scheduled', (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at > now()),"
    " 'next_scheduled_at', (SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at > now()),"
    " 'oldest_queued', (SELECT row_to_json(o) FROM (" OLDEST_SQL ") o),"
    " 'workers', (" WORKERS_JSON "))";

static const char SQL_SUMMARY[] =
    "SELECT " FINISHED_SINCE("1 minute") ", " FINISHED_SINCE("1 hour") ","
    " o.id, o.type, o.age_seconds,"
    " (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at > now()),"
    " (SELECT " AQ_CLI_TS("min(run_at)") " FROM jobs WHERE status = 'queued' AND run_at > now())"
    " FROM (SELECT 1) one LEFT JOIN (" OLDEST_SQL ") o ON true";

static int print_stats(PGconn *db)
{
    static const aq_cli_col cols[] = {
        {"TYPE", AQ_CLI_TEXT, 32},     {"QUEUED", AQ_CLI_NUM, 0}, {"SCHEDULED", AQ_CLI_NUM, 0},
        {"RUNNING", AQ_CLI_NUM, 0},    {"WAITING", AQ_CLI_NUM, 0},    {"SUCCEEDED", AQ_CLI_NUM, 0}, {"FAILED", AQ_CLI_NUM, 0},
        {"CANCELLED", AQ_CLI_NUM, 0},
    };
    PGresult *r;
    aq_db_query(db, "counting jobs", COUNTS_SQL, 0, NULL, &r);
    if (!r) return 1;
    printf("jobs by type (queued: runnable now; scheduled: queued to run later; running, waiting: now;"
           " succeeded, failed, cancelled: the last hour)\n");
    if (PQntuples(r) == 0) printf("no jobs\n");
    else aq_cli_table(r, cols, (int)(sizeof cols / sizeof cols[0]));
    PQclear(r);

    if (aq_db_query(db, "measuring throughput", SQL_SUMMARY, 0, NULL, &r)) return 1;
    printf("\nfinished: %s in the last minute, %s in the last hour\n", PQgetvalue(r, 0, 0),
           PQgetvalue(r, 0, 1));
    if (PQgetisnull(r, 0, 2)) {
        printf("oldest queued: none runnable\n");
    } else {
        char age[32];
        aq_cli_duration(strtod(PQgetvalue(r, 0, 4), NULL), age, sizeof age);
        printf("oldest queued: job %s (%s), runnable for %s\n", PQgetvalue(r, 0, 2),
               PQgetvalue(r, 0, 3), age);
    }
    if (strcmp(PQgetvalue(r, 0, 5), "0"))
        printf("scheduled: %s queued to run later, the first at %s\n", PQgetvalue(r, 0, 5), PQgetvalue(r, 0, 6));
    else
        printf("scheduled: none\n");
    PQclear(r);

    if (aq_db_query(db, "listing workers", SQL_WORKERS, 0, NULL, &r)) return 1;
    printf("\nworkers: %d\n", PQntuples(r));
    if (PQntuples(r)) aq_cli_table(r, WORKER_COLS, NWORKER_COLS);
    PQclear(r);
    return 0;
}

int aq_cmd_stats(const aq_config *cfg, int argc, char **argv)
{
    const char *json = NULL;
    int rc = json_only(USAGE_STATS, argc - 1, argv + 1, &json);
    if (rc) return rc < 0 ? 0 : rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    if (json) {
        PGresult *r;
        aq_db_query(db, "gathering statistics", SQL_STATS_JSON, 0, NULL, &r);
        rc = r ? 0 : 1;
        if (r) aq_cli_print_json(r);
        PQclear(r);
    } else {
        rc = print_stats(db);
    }
    PQfinish(db);
    return rc;
}

/* ---- schedules ls ---- */

static const char SQL_SCHEDULES[] =
    "SELECT s.id, coalesce(u.name || ' (' || s.user_id || ')', s.user_id::text), s.name, s.cron,"
    " s.timezone, CASE WHEN s.enabled THEN 'yes' ELSE 'no' END, s.misfire,"
    " " AQ_CLI_TS("s.next_run_at") ","
    " " AQ_CLI_TS("s.last_run_at") ", s.last_error"
    " FROM agent_schedules s LEFT JOIN users u ON u.id = s.user_id"
    " WHERE ($1::bigint IS NULL OR s.user_id = $1) ORDER BY s.id";

static const char SQL_SCHEDULES_JSON[] =
    "SELECT coalesce(json_agg(json_build_object('id', s.id, 'user_id', s.user_id, 'user', u.name,"
    " 'name', s.name, 'cron', s.cron, 'timezone', s.timezone, 'enabled', s.enabled,"
    " 'misfire', s.misfire, 'next_run_at', s.next_run_at, 'last_run_at', s.last_run_at,"
    " 'last_job_id', s.last_job_id, 'last_error', s.last_error, 'prompt', s.prompt,"
    " 'session_id', s.session_id, 'created_at', s.created_at, 'updated_at', s.updated_at)"
    " ORDER BY s.id), '[]')"
    " FROM agent_schedules s LEFT JOIN users u ON u.id = s.user_id"
    " WHERE ($1::bigint IS NULL OR s.user_id = $1)";

int aq_cmd_schedules(const aq_config *cfg, int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s\n", USAGE_SCHEDULES);
        return 0;
    }
    if (argc < 2) return aq_cli_bad(USAGE_SCHEDULES, "schedules needs a command: ls");
    if (strcmp(argv[1], "ls"))
        return aq_cli_bad(USAGE_SCHEDULES, "unknown schedules command '%s'", argv[1]);
    const char *json = NULL, *user = NULL;
    const aq_cli_opt opts[] = {
        {"--json", true, &json}, {"--user", false, &user}, {NULL, false, NULL},
    };
    int npos, rc = aq_cli_args(USAGE_SCHEDULES, argc - 2, argv + 2, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    long long uid;
    if (user && !aq_cli_parse_id(user, &uid))
        return aq_cli_bad(USAGE_SCHEDULES, "--user must be a user id (a positive whole number),"
                                           " not '%s'", user);
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    const char *p[] = {user};
    PGresult *r;
    aq_db_query(db, "listing schedules", json ? SQL_SCHEDULES_JSON : SQL_SCHEDULES, 1, p, &r);
    PQfinish(db);
    if (!r) return 1;
    static const aq_cli_col cols[] = {
        {"ID", AQ_CLI_NUM, 0},          {"USER", AQ_CLI_TEXT, 24},     {"NAME", AQ_CLI_TEXT, 32},
        {"CRON", AQ_CLI_TEXT, 24},      {"TIMEZONE", AQ_CLI_TEXT, 0},  {"ENABLED", AQ_CLI_TEXT, 0},
        {"MISFIRE", AQ_CLI_TEXT, 0},    {"NEXT RUN", AQ_CLI_TEXT, 0},  {"LAST RUN", AQ_CLI_TEXT, 0},
        {"LAST ERROR", AQ_CLI_TEXT, 40},
    };
    if (json) aq_cli_print_json(r);
    else if (PQntuples(r) == 0) printf("no schedules\n");
    else aq_cli_table(r, cols, (int)(sizeof cols / sizeof cols[0]));
    PQclear(r);
    return 0;
}

/* ---- prune ---- */

/* The batch's ids as an array: the delete then probes the primary key for
 * each (a join made the planner walk the whole key index: 4x slower). */
#define PRUNE_SQL(statuses) \
    "DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE status IN (" statuses ")" \
    " AND finished_at < $1::timestamptz" \
    " ORDER BY finished_at LIMIT " PRUNE_BATCH " FOR UPDATE SKIP LOCKED))"

#define COUNT_SQL(statuses) \
    "SELECT count(*) FROM jobs WHERE status IN (" statuses ") AND finished_at < $1::timestamptz"

/* One batch and its audit row (when it deleted any), in one transaction; the
 * rows deleted in *n. 0, or 1 after the error. */
static int prune_batch(PGconn *db, const char *sql, const char *cut, const char *statuses, long long *n)
{
    const char *p[] = {cut};
    PGresult *d;
    if (aq_cli_begin(db)) return 1;
    aq_db_query(db, "pruning", sql, 1, p, &d);
    if (!d) goto fail;
    *n = strtoll(PQcmdTuples(d), NULL, 10);
    PQclear(d);
    if (*n) {
        char details[200];
        snprintf(details, sizeof details, "{\"count\": %lld, \"finished_before\": \"%s\", \"statuses\": \"%s\"}",
                 *n, cut, statuses);
        if (aq_cli_audit(db, "jobs.prune", NULL, details)) goto fail;
    }
    if (aq_cli_commit(db)) goto fail;
    return 0;
fail:
    aq_cli_rollback(db);
    return 1;
}

int aq_cmd_prune(const aq_config *cfg, int argc, char **argv)
{
    const char *older = NULL, *failed = NULL, *dry = NULL, *json = NULL;
    const aq_cli_opt opts[] = {
        {"--older-than", false, &older}, {"--failed", true, &failed}, {"--dry-run", true, &dry},
        {"--json", true, &json},         {NULL, false, NULL},
    };
    int npos, rc = aq_cli_args(USAGE_PRUNE, argc - 1, argv + 1, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    long long secs;
    if (!older) return aq_cli_bad(USAGE_PRUNE, "prune needs --older-than");
    if (!aq_cli_parse_duration(older, &secs))
        return aq_cli_bad(USAGE_PRUNE, "--older-than must be a duration such as 30m, 12h, 7d"
                                       " or 2w, not '%s'", older);
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    char secs_s[32];
    snprintf(secs_s, sizeof secs_s, "%lld", secs);
    const char *p[] = {secs_s};
    PGresult *r;
    aq_db_query(db, "computing the cut-off",
                "SELECT (now() - make_interval(secs => $1::float8))::text,"
                " " AQ_CLI_TS("now() - make_interval(secs => $1::float8)") ","
                " to_json(now() - make_interval(secs => $1::float8))", 1, p, &r);
    if (!r) {
        PQfinish(db);
        return 1;
    }
    const char *statuses = failed ? "succeeded, cancelled, failed" : "succeeded, cancelled";
    const char *cut[] = {PQgetvalue(r, 0, 0)};
    long long total = 0, n = 0;
    if (dry) {
        PGresult *c;
        aq_db_query(db, "counting", failed ? COUNT_SQL("'succeeded', 'cancelled', 'failed'")
                                               : COUNT_SQL("'succeeded', 'cancelled'"), 1, cut, &c);
        if (c) total = strtoll(PQgetvalue(c, 0, 0), NULL, 10);
        rc = c ? 0 : 1;
        PQclear(c);
    } else {
        const char *sql = failed ? PRUNE_SQL("'succeeded', 'cancelled', 'failed'")
                                 : PRUNE_SQL("'succeeded', 'cancelled'");
        do {
            if (prune_batch(db, sql, cut[0], statuses, &n)) {
                if (total) fprintf(stderr, "agentq: %lld job(s) were pruned before the error\n", total);
                rc = 1;
                break;
            }
            total += n;
        } while (n == atoll(PRUNE_BATCH));
    }
    if (!rc && json)   /* count: the jobs deleted, or with --dry-run those a run would delete now */
        printf("{\"dry_run\": %s, \"count\": %lld, \"statuses\": [\"%s\"], \"finished_before\": %s}\n",
               dry ? "true" : "false", total,
               failed ? "succeeded\", \"cancelled\", \"failed" : "succeeded\", \"cancelled", PQgetvalue(r, 0, 2));
    if (!rc && !json)
        printf(dry ? "would prune %lld job(s) (%s) that finished before %s (dry run: nothing deleted)\n"
                   : "pruned %lld job(s) (%s) that finished before %s\n",
               total, statuses, PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(db);
    return rc;
}
