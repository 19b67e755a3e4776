/* jobs_cmd.c — `agentq jobs ...`, the operator's view of the jobs table:
 *
 *   jobs ls [--status S] [--type T] [--queue Q] [--user ID] [--limit N] [--json]
 *       newest first (by id), 50 by default, at most 1000; --json leaves out
 *       input and output (jobs show has them)
 *   jobs show ID [--json]      every column, input/output/last_error in full,
 *                              and its follow-up jobs (parent_id = ID)
 *   jobs retry ID              a failed or cancelled job back to 'queued' now,
 *                              attempts 0; last_error stays until it runs again
 *   jobs retry --failed [--type T]
 *                              every failed job (of type T), in batches
 *   jobs cancel ID             a queued or waiting job to 'cancelled' now; a
 *                              running one is marked and ends 'cancelled'
 *
 * Retry and cancel (by an operator: each with its audit_log row, in the same
 * transaction) are the life cycle module's (common/aq_jobs.c): cancel is
 * the same function, with the same outcomes, as POST /v1/jobs/{id}/cancel.
 * Retried jobs wake idle workers (pg_notify 'aq_jobs', in the retry's
 * transaction: the table's trigger fires on INSERT only); a cancelled job
 * wakes the API's long-polls waiting on it ('aq_done', payload the id).
 *
 * Cost: ls pages the primary key backwards (jobs_user for --user); a
 * --type or --queue that matches few rows reads far back, there being no
 * index on either. retry --failed finds failed rows through jobs_finished
 * or, when they are a small share of it, a sequential scan per batch. */
#include "cli.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include <stdlib.h>
#include <string.h>

#define USAGE_LS \
    "agentq jobs ls [--status S] [--type T] [--queue Q] [--user ID] [--limit N] [--json]"
#define USAGE_SHOW "agentq jobs show ID [--json]"
#define USAGE_RETRY "agentq jobs retry ID | agentq jobs retry --failed [--type T]"
#define USAGE_CANCEL "agentq jobs cancel ID"
#define USAGE "agentq jobs ls|show|retry|cancel ...; agentq jobs --help for each"
#define SHOW_FOLLOWUPS "1000"

int aq_cmd_jobs(const aq_config *cfg, int argc, char **argv);

static bool valid_status(const char *s)
{
    aq_job_state st;
    return aq_job_state_parse(s, &st) == 0;
}

/* A text filter from the command line must be UTF-8 (Postgres refuses
 * anything else); a bad one is bad usage, not a database error. */
static bool text_ok(const char *s) { return !s || aq_utf8_valid(s, strlen(s)); }

/* The job ID argument: 0 when it is one, else the usage error (2). */
static int need_id(const char *usage, const char *cmd, int npos, const char *s)
{
    long long id;
    if (!npos) return aq_cli_bad(usage, "%s needs a job ID", cmd);
    if (!aq_cli_parse_id(s, &id))
        return aq_cli_bad(usage, "ID must be a job id (a positive whole number), not '%s'", s);
    return 0;
}

/* ---- jobs ls ---- */

/* --status scheduled: queued rows whose run_at is still ahead (a plain
 * --status queued lists both kinds). */
#define LS_WHERE \
    " FROM jobs WHERE ($1::text IS NULL OR status = $1" \
    " OR ($1 = 'scheduled' AND status = 'queued' AND run_at > now()))" \
    " AND ($2::text IS NULL OR job_type = $2)" \
    " AND ($3::text IS NULL OR queue = $3) AND ($4::bigint IS NULL OR user_id = $4)" \
    " ORDER BY id DESC LIMIT $5::int"

/* The job as GET /v1/jobs/{id} answers it (the same names: "type",
 * "error"), then what only operators see; EXTRA adds members after
 * "priority", TAIL at the end (each ", 'name', value" pairs or ""). */
#define JOB_JSON(EXTRA, TAIL) \
    "json_build_object('id', id, 'type', job_type, 'status', status, 'queue', queue," \
    " 'priority', priority," EXTRA " 'error', last_error, 'attempts', attempts," \
    " 'max_attempts', max_attempts, 'session_id', session_id, 'parent_id', parent_id, 'serial_key', serial_key," \
    " 'run_at', run_at, 'created_at', created_at, 'started_at', started_at," \
    " 'finished_at', finished_at, 'cancel_requested_at', cancel_requested_at," \
    " 'user_id', user_id, 'schedule_id', schedule_id, 'idempotency_key', idempotency_key," \
    " 'locked_by', locked_by, 'locked_until', locked_until" TAIL ")"

/* STATUS says "scheduled" for a queued job whose run_at is ahead; RUN AT shows when. */
static const char SQL_LS[] =
    "SELECT id, job_type, queue,"
    " CASE WHEN status = 'queued' AND run_at > now() THEN 'scheduled' ELSE status END,"
    " attempts || coalesce('/' || max_attempts, ''), priority, user_id, " AQ_CLI_TS("run_at") ","
    " " AQ_CLI_TS("created_at") ", " AQ_CLI_TS("finished_at") ", last_error" LS_WHERE;

static const char SQL_LS_JSON[] =
    "SELECT coalesce(json_agg(j ORDER BY id DESC), '[]') FROM ("
    "SELECT id, " JOB_JSON("", "") " AS j" LS_WHERE ") x";

static int jobs_ls(const aq_config *cfg, int argc, char **argv)
{
    const char *status = NULL, *type = NULL, *queue = NULL, *user = NULL, *json = NULL;
    const char *limit_s = "50";
    const aq_cli_opt opts[] = {
        {"--status", false, &status}, {"--type", false, &type},       {"--queue", false, &queue},
        {"--user", false, &user},     {"--limit", false, &limit_s}, {"--json", true, &json},
        {NULL, false, NULL},
    };
    int npos, rc = aq_cli_args(USAGE_LS, argc, argv, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    long long uid;
    long limit;
    if (status && !valid_status(status) && strcmp(status, "scheduled"))
        return aq_cli_bad(USAGE_LS, "--status must be queued, scheduled, running, waiting,"
                                    " succeeded, failed or cancelled, not '%s'", status);
    if (user && !aq_cli_parse_id(user, &uid))
        return aq_cli_bad(USAGE_LS, "--user must be a user id (a positive whole number),"
                                    " not '%s'", user);
    if (!aq_cli_parse_int(limit_s, 1, 1000, &limit))
        return aq_cli_bad(USAGE_LS, "--limit must be a whole number from 1 to 1000, not '%s'",
                          limit_s);
    if (!text_ok(type) || !text_ok(queue))
        return aq_cli_bad(USAGE_LS, "--type and --queue must be UTF-8 text");
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    const char *p[] = {status, type, queue, user, limit_s};
    PGresult *r;
    aq_db_query(db, "listing jobs", json ? SQL_LS_JSON : SQL_LS, 5, p, &r);
    PQfinish(db);
    if (!r) return 1;
    static const aq_cli_col cols[] = {
        {"ID", AQ_CLI_NUM, 0},        {"TYPE", AQ_CLI_TEXT, 24},    {"QUEUE", AQ_CLI_TEXT, 16},
        {"STATUS", AQ_CLI_TEXT, 0},   {"ATTEMPTS", AQ_CLI_NUM, 0},  {"PRI", AQ_CLI_NUM, 0},
        {"USER", AQ_CLI_NUM, 0},      {"RUN AT", AQ_CLI_TEXT, 0},   {"CREATED", AQ_CLI_TEXT, 0},
        {"FINISHED", AQ_CLI_TEXT, 0}, {"LAST ERROR", AQ_CLI_TEXT, 48},
    };
    if (json) aq_cli_print_json(r);
    else if (PQntuples(r) == 0) printf("no jobs\n");
    else aq_cli_table(r, cols, (int)(sizeof cols / sizeof cols[0]));
    PQclear(r);
    return 0;
}

/* ---- jobs show ---- */

/* Scalar fields first (SHOW_LABELS), then the three long ones, then the
 * number of follow-ups. */
static const char SQL_SHOW[] =
    "SELECT id, job_type, queue, priority, status, attempts,"
    " coalesce(max_attempts::text, 'handler default'), " AQ_CLI_TS("run_at") ", locked_by,"
    " " AQ_CLI_TS("locked_until") ", user_id, session_id, parent_id, schedule_id, idempotency_key,"
    " " AQ_CLI_TS("created_at") ", " AQ_CLI_TS("started_at") ", " AQ_CLI_TS("finished_at") ","
    " last_error, jsonb_pretty(input), jsonb_pretty(output),"
    " (SELECT count(*) FROM jobs f WHERE f.parent_id = jobs.id)"
    " FROM jobs WHERE id = $1";
static const char *const SHOW_LABELS[] = {
    "id", "type", "queue", "priority", "status", "attempts", "max attempts", "run at",
    "locked by", "locked until", "user", "session", "parent", "schedule", "idempotency key",
    "created", "started", "finished", "last error", "input", "output",
};
#define SHOW_SCALARS 18

static const char SQL_FOLLOWUPS[] =
    "SELECT id, job_type, status, " AQ_CLI_TS("created_at") ", " AQ_CLI_TS("finished_at") ","
    " last_error FROM jobs WHERE parent_id = $1 ORDER BY id LIMIT " SHOW_FOLLOWUPS;

static const char SQL_SHOW_JSON[] =
    "SELECT " JOB_JSON(" 'input', input, 'output', output,",
                       ", 'claims', claims, 'lost', lost, 'transient_since', transient_since,"
                       " 'followup_count', (SELECT count(*) FROM jobs f WHERE f.parent_id = jobs.id),"
                       " 'followups', (SELECT coalesce(json_agg(json_build_object('id', id,"
                       " 'type', job_type, 'status', status, 'created_at', created_at,"
                       " 'finished_at', finished_at, 'error', last_error) ORDER BY id), '[]')"
                       " FROM (SELECT * FROM jobs f WHERE f.parent_id = jobs.id ORDER BY id"
                       " LIMIT " SHOW_FOLLOWUPS ") f)")
    " FROM jobs WHERE id = $1";

static int jobs_show(const aq_config *cfg, int argc, char **argv)
{
    const char *json = NULL, *id_s = NULL;
    const aq_cli_opt opts[] = {{"--json", true, &json}, {NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_SHOW, argc, argv, opts, &id_s, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = need_id(USAGE_SHOW, "jobs show", npos, id_s))) return rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    const char *p[] = {id_s};
    PGresult *f = NULL;
    PGresult *r;
    aq_db_query(db, "reading the job", json ? SQL_SHOW_JSON : SQL_SHOW, 1, p, &r);
    rc = 1;
    if (!r) goto done;
    if (PQntuples(r) == 0) {
        aq_cli_fail("no job %s", id_s);
        goto done;
    }
    if (json) {
        aq_cli_print_json(r);
        rc = 0;
        goto done;
    }
    aq_db_query(db, "reading its follow-ups", SQL_FOLLOWUPS, 1, p, &f);
    if (!f) goto done;
    for (int c = 0; c < SHOW_SCALARS; c++)
        printf("%-16s %s\n", SHOW_LABELS[c], PQgetisnull(r, 0, c) ? "-" : PQgetvalue(r, 0, c));
    for (int c = SHOW_SCALARS; c < SHOW_SCALARS + 3; c++) {
        if (PQgetisnull(r, 0, c)) printf("%-16s -\n", SHOW_LABELS[c]);
        else aq_cli_block(SHOW_LABELS[c], PQgetvalue(r, 0, c));
    }
    long long total = strtoll(PQgetvalue(r, 0, SHOW_SCALARS + 3), NULL, 10);
    if (total == 0) {
        printf("follow-ups       none\n");
    } else {
        printf("follow-ups       %lld%s\n", total,
               total > PQntuples(f) ? " (the first " SHOW_FOLLOWUPS " below)" : "");
        static const aq_cli_col cols[] = {
            {"ID", AQ_CLI_NUM, 0},       {"TYPE", AQ_CLI_TEXT, 24},    {"STATUS", AQ_CLI_TEXT, 0},
            {"CREATED", AQ_CLI_TEXT, 0}, {"FINISHED", AQ_CLI_TEXT, 0},
            {"LAST ERROR", AQ_CLI_TEXT, 48},
        };
        aq_cli_table(f, cols, (int)(sizeof cols / sizeof cols[0]));
    }
    rc = 0;
done:
    PQclear(f);
    PQclear(r);
    PQfinish(db);
    return rc;
}

/* ---- jobs retry ---- */

/* One batch of retry --failed and its audit row, in one transaction. */
static int retry_batch(PGconn *db, const char *type, const char *start, long long *n)
{
    if (aq_cli_begin(db)) return 1;
    if (aq_jobs_retry_failed(db, type, start, n)) goto fail;
    if (*n) {
        aq_buf d;
        aq_buf_init(&d);
        aq_buf_addf(&d, "{\"count\": %lld, \"type\": ", *n);
        if (type) aq_buf_add_json_str(&d, type);
        else aq_buf_adds(&d, "null");
        aq_buf_adds(&d, "}");
        int bad = aq_cli_audit(db, "job.retry_failed", NULL, d.p);
        aq_buf_dispose(&d);
        if (bad) goto fail;
    }
    if (aq_cli_commit(db)) goto fail;
    return 0;
fail:
    aq_cli_rollback(db);
    return 1;
}

static int retry_failed(PGconn *db, const char *type)
{
    PGresult *r;
    aq_db_query(db, "reading the clock", "SELECT now()::text", 0, NULL, &r);
    if (!r) return 1;
    char *start = aq_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    long long total = 0, n;
    int rc = 0;
    do {
        if (retry_batch(db, type, start, &n)) {
            if (total) fprintf(stderr, "agentq: %lld job(s) were queued again before that\n",
                               total);
            rc = 1;
            break;
        }
        total += n;
    } while (n == AQ_JOBS_RETRY_BATCH);
    free(start);
    if (!rc) printf("%lld failed job(s) queued again\n", total);
    return rc;
}

/* "job:ID" and {"was": WAS[, "outcome": O]} for an audit row. */
static void audit_job(PGconn *db, const char *action, const char *id_s, const char *was, const char *outcome,
                      int *bad)
{
    char target[48], details[96];
    snprintf(target, sizeof target, "job:%s", id_s);
    snprintf(details, sizeof details, outcome ? "{\"was\": \"%s\", \"outcome\": \"%s\"}" : "{\"was\": \"%s\"}",
             was, outcome ? outcome : "");
    *bad = aq_cli_audit(db, action, target, details);
}

static int jobs_retry(const aq_config *cfg, int argc, char **argv)
{
    const char *failed = NULL, *type = NULL, *id_s = NULL;
    const aq_cli_opt opts[] = {
        {"--failed", true, &failed}, {"--type", false, &type}, {NULL, false, NULL},
    };
    int npos, rc = aq_cli_args(USAGE_RETRY, argc, argv, opts, &id_s, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (failed && npos) return aq_cli_bad(USAGE_RETRY, "give a job ID or --failed, not both");
    if (!failed && type) return aq_cli_bad(USAGE_RETRY, "--type goes with --failed");
    if (!failed && !npos) return aq_cli_bad(USAGE_RETRY, "jobs retry needs a job ID or --failed");
    if (!failed && (rc = need_id(USAGE_RETRY, "jobs retry", npos, id_s))) return rc;
    if (!text_ok(type)) return aq_cli_bad(USAGE_RETRY, "--type must be UTF-8 text");
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    if (failed) {
        rc = retry_failed(db, type);
        PQfinish(db);
        return rc;
    }
    int requeued = 0, bad = aq_cli_begin(db);
    char was[16] = "";
    if (!bad) bad = aq_jobs_retry(db, strtoll(id_s, NULL, 10), &requeued, was) != 0;
    if (!bad && requeued) audit_job(db, "job.retry", id_s, was, NULL, &bad);
    if (!bad) bad = aq_cli_commit(db);
    if (bad) aq_cli_rollback(db);
    PQfinish(db);
    if (bad) return 1;
    if (!was[0]) return aq_cli_fail("no job %s", id_s);
    if (requeued) printf("job %s queued again (it was %s)\n", id_s, was);
    else return aq_cli_fail("job %s has status %s; only failed or cancelled jobs can be retried", id_s, was);
    return 0;
}

/* ---- jobs cancel ---- */

/* The same function and outcomes as POST /v1/jobs/{id}/cancel (aq_jobs_cancel). */
static int jobs_cancel(const aq_config *cfg, int argc, char **argv)
{
    const char *id_s = NULL;
    const aq_cli_opt opts[] = {{NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_CANCEL, argc, argv, opts, &id_s, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = need_id(USAGE_CANCEL, "jobs cancel", npos, id_s))) return rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    aq_cancel_outcome out = AQ_CANCEL_NOT_FOUND;
    char was[16] = "";
    int bad = aq_cli_begin(db);
    if (!bad) bad = aq_jobs_cancel(db, strtoll(id_s, NULL, 10), 0, &out, was) != 0;
    if (!bad && (out == AQ_CANCEL_DONE || out == AQ_CANCEL_REQUESTED))
        audit_job(db, "job.cancel", id_s, was, out == AQ_CANCEL_DONE ? "cancelled" : "cancelling", &bad);
    if (!bad) bad = aq_cli_commit(db);
    if (bad) aq_cli_rollback(db);
    PQfinish(db);
    if (bad) return 1;
    switch (out) {
    case AQ_CANCEL_NOT_FOUND:
        return aq_cli_fail("no job %s", id_s);
    case AQ_CANCEL_FINISHED:
        return aq_cli_fail("job %s has already finished (%s)", id_s, was);
    case AQ_CANCEL_REQUESTED:
        printf("job %s is running: cancel recorded; it runs no further tool and ends cancelled\n", id_s);
        return 0;
    case AQ_CANCEL_DONE:
        printf("job %s cancelled (it was %s)\n", id_s, was);
        return 0;
    }
    return 1;
}

int aq_cmd_jobs(const aq_config *cfg, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const aq_config *, int, char **);
    } subs[] = {
        {"ls", jobs_ls}, {"show", jobs_show}, {"retry", jobs_retry}, {"cancel", jobs_cancel},
    };
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s\n       %s\n       %s\n       %s\n", USAGE_LS, USAGE_SHOW, USAGE_RETRY,
               USAGE_CANCEL);
        return 0;
    }
    if (argc < 2) return aq_cli_bad(USAGE, "jobs needs a command: ls, show, retry or cancel");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(cfg, argc - 2, argv + 2);
    return aq_cli_bad(USAGE, "unknown jobs command '%s'", argv[1]);
}
