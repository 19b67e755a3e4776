/* t_cli.c — the operator CLI (bin/agentq) against a real database: jobs ls
 * filters and --json, jobs show, retry (one job, --failed, refused), cancel
 * (queued, waiting, running refused, the 'aq_done' wake-up), stats, workers,
 * schedules ls, prune in batches, and bad usage (exit 2, one line on stderr).
 * Each command runs as a child process with the test's DATABASE_URL; its
 * stdout, stderr and exit status are captured (th_cli). */
#include "harness.h"
#include "aq_buf.h"
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI(...) th_cli(NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_ENV(env, ...) th_cli(env, (const char *const[]){__VA_ARGS__, NULL})

/* A refusal or usage error: this exit status, nothing on stdout, one line on
 * stderr starting "agentq: " and containing needle. */
#define CHECK_ERR(r, want, needle) do { \
    CHECK_INT((r).status, (want)); \
    CHECK_STR((r).out, ""); \
    CHECK(!strncmp((r).err, "agentq: ", 8)); \
    CHECK_CONTAINS((r).err, (needle)); \
    CHECK(strchr((r).err, '\n') == (r).err + strlen((r).err) - 1); \
} while (0)

static cJSON *json_out(const th_cli_run *r)
{
    cJSON *j = cJSON_Parse(r->out);
    if (!j) th_fail(__FILE__, __LINE__, "stdout is not JSON: %s", r->out);
    return j;
}

/* The "id" of each element of a JSON array, as "1,2,3" (heap). */
static char *ids_of(const cJSON *arr)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) aq_buf_addf(&b, "%s%lld", b.len ? "," : "", th_jnum(e, "id"));
    return aq_buf_take(&b);
}

/* jobs ls --json ARGS...: the ids listed, as "1,2,3" (heap). */
static char *ls_ids(const char *a1, const char *a2, const char *a3, const char *a4)
{
    th_cli_run r = CLI("jobs", "ls", "--json", a1, a2, a3, a4);
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    CHECK(cJSON_IsArray(j));
    char *ids = ids_of(j);
    cJSON_Delete(j);
    th_cli_free(&r);
    return ids;
}

/* A job of type in queue with status; then extra_sql ($1 = its id) if given. */
static long long insert_job(const char *type, const char *queue, const char *status,
                            const char *extra_sql)
{
    long long id = th_int("INSERT INTO jobs (job_type, queue, status) VALUES ($1, $2, $3)"
                          " RETURNING id", type, queue, status, NULL);
    if (extra_sql) th_exec(extra_sql, th_num(id), NULL);
    return id;
}

/* The first value sql returns with $1 = id. */
static long long value_for(const char *sql, long long id) { return th_int(sql, th_num(id), NULL); }

#define FINISHED_NOW "UPDATE jobs SET finished_at = now() WHERE id = $1"

/* The last line of s (heap). */
static char *last_line(const char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n') n--;
    size_t b = n;
    while (b && s[b - 1] != '\n') b--;
    return strndup(s + b, n - b);
}

static void jobs_ls_filters_and_json(void)
{
    long long a = insert_job("noop", "default", "failed",
                             "UPDATE jobs SET user_id = 7, finished_at = now(), last_error ="
                             " 'first line\nsecond line of an explanation that is far too long"
                             " for a table cell'"
                             " WHERE id = $1");
    long long b = insert_job("test_output", "mail", "succeeded", FINISHED_NOW);
    long long c = insert_job("noop", "mail", "queued", "UPDATE jobs SET user_id = 7 WHERE id = $1");
    long long d = insert_job("test_fail", "default", "failed", FINISHED_NOW);
    th_exec("INSERT INTO jobs (job_type) SELECT 'bulk' FROM generate_series(1, 60)", NULL);
    long long max = th_int("SELECT max(id) FROM jobs", NULL);
    (void)b;

    char want[128], *ids;
    snprintf(want, sizeof want, "%lld,%lld", d, a);   /* newest first */
    CHECK_STR(ids = ls_ids("--status", "failed", NULL, NULL), want);
    free(ids);
    snprintf(want, sizeof want, "%lld", c);
    CHECK_STR(ids = ls_ids("--type", "noop", "--queue=mail", NULL), want);
    free(ids);
    snprintf(want, sizeof want, "%lld,%lld", c, a);
    CHECK_STR(ids = ls_ids("--user", "7", NULL, NULL), want);
    free(ids);
    snprintf(want, sizeof want, "%lld,%lld", max, max - 1);
    CHECK_STR(ids = ls_ids("--limit", "2", NULL, NULL), want);
    free(ids);
    CHECK_STR(ids = ls_ids("--type", "nothing-like-this", NULL, NULL), "");
    free(ids);

    th_cli_run r = CLI("jobs", "ls", "--json");   /* default limit 50 */
    cJSON *j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(j), 50);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(j, 0), "id"), max);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(j, 0), "status"), "queued");
    cJSON_Delete(j);
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--json", "--limit", "1000");
    j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(j), 64);
    cJSON_Delete(j);
    th_cli_free(&r);

    /* the human table: aligned columns, UTC times to the second, long text cut */
    r = CLI("jobs", "ls", "--status", "failed");
    CHECK_INT(r.status, 0);
    CHECK_STR(r.err, "");
    char *created = th_str("SELECT to_char(created_at AT TIME ZONE 'UTC',"
                           " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM jobs WHERE id = $1",
                           th_num(a), NULL);
    CHECK_CONTAINS(r.out, created);
    free(created);
    CHECK_CONTAINS(r.out, "first line second line of");
    CHECK_CONTAINS(r.out, "\xe2\x80\xa6\n");   /* "…" ends the cut error */
    CHECK(!strstr(r.out, "too long for a table cell"));
    char *line2 = strchr(r.out, '\n');
    char *line3 = line2 ? strchr(line2 + 1, '\n') : NULL;
    CHECK(line3 && strchr(line3 + 1, '\n') && !strchr(line3 + 1, '\n')[1]);   /* header + 2 rows */
    if (line2) {
        const char *h = strstr(r.out, "STATUS"), *s = strstr(line2, "failed");
        CHECK(h && s && h - r.out == s - (line2 + 1));
    }
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--type", "nothing-like-this");
    CHECK_STR(r.out, "no jobs\n");
    th_cli_free(&r);

    r = CLI("jobs", "ls", "--status", "finished");
    CHECK_ERR(r, 2, "--status must be");
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--limit", "1001");
    CHECK_ERR(r, 2, "--limit");
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--limit", "0");
    CHECK_ERR(r, 2, "--limit");
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--user", "x7");
    CHECK_ERR(r, 2, "--user");
    th_cli_free(&r);
}

static void jobs_show_and_followups(void)
{
    long long p = th_int("INSERT INTO jobs (job_type, status, input, output, last_error, attempts,"
                         " max_attempts, finished_at) VALUES ('test_output', 'succeeded',"
                         " '{\"q\": \"caf\u00e9 \\\"x\\\"\"}', '{\"text\": \"done\"}',"
                         " 'multi\nline', 2, 5, now()) RETURNING id", NULL);
    long long f1 = value_for("INSERT INTO jobs (job_type, parent_id) VALUES ('notify', $1)"
                             " RETURNING id", p);
    long long f2 = value_for("INSERT INTO jobs (job_type, parent_id) VALUES ('noop', $1)"
                             " RETURNING id", p);
    char id[32], want[64];
    snprintf(id, sizeof id, "%lld", p);

    th_cli_run r = CLI("jobs", "show", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "status           succeeded\n");
    CHECK_CONTAINS(r.out, "attempts         2\n");
    CHECK_CONTAINS(r.out, "max attempts     5\n");
    CHECK_CONTAINS(r.out, "last error\n  multi\n  line\n");
    CHECK_CONTAINS(r.out, "\"q\": \"caf\xc3\xa9 \\\"x\\\"\"");
    CHECK_CONTAINS(r.out, "\"text\": \"done\"");
    CHECK_CONTAINS(r.out, "follow-ups       2\n");
    CHECK_CONTAINS(r.out, "notify");
    snprintf(want, sizeof want, "%lld  noop", f2);
    CHECK_CONTAINS(r.out, want);
    th_cli_free(&r);

    r = CLI("jobs", "show", "--json", id);
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    CHECK_INT(th_jnum(j, "id"), p);
    CHECK_STR(th_jstr(cJSON_GetObjectItemCaseSensitive(j, "input"), "q"), "caf\xc3\xa9 \"x\"");
    CHECK_STR(th_jstr(cJSON_GetObjectItemCaseSensitive(j, "output"), "text"), "done");
    CHECK_STR(th_jstr(j, "error"), "multi\nline");   /* the API's names */
    CHECK_STR(th_jstr(j, "type"), "test_output");
    CHECK(!cJSON_GetObjectItemCaseSensitive(j, "last_error") && !cJSON_GetObjectItemCaseSensitive(j, "job_type"));
    CHECK_STR(th_jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "followups"), 0), "type"), "notify");
    CHECK_INT(th_jnum(j, "followup_count"), 2);
    char *ids = ids_of(cJSON_GetObjectItemCaseSensitive(j, "followups"));
    snprintf(want, sizeof want, "%lld,%lld", f1, f2);
    CHECK_STR(ids, want);
    free(ids);
    cJSON_Delete(j);
    th_cli_free(&r);

    snprintf(id, sizeof id, "%lld", f1);   /* no follow-ups of its own */
    r = CLI("jobs", "show", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "follow-ups       none\n");
    th_cli_free(&r);

    r = CLI("jobs", "show", "999999");
    CHECK_ERR(r, 1, "no job 999999");
    th_cli_free(&r);
    r = CLI("jobs", "show", "999999", "--json");
    CHECK_ERR(r, 1, "no job 999999");
    th_cli_free(&r);
    r = CLI("jobs", "show");
    CHECK_ERR(r, 2, "needs a job ID");
    th_cli_free(&r);
    r = CLI("jobs", "show", "12abc");
    CHECK_ERR(r, 2, "ID must be");
    th_cli_free(&r);
    r = CLI("jobs", "show", "1", "2");
    CHECK_ERR(r, 2, "unexpected argument '2'");
    th_cli_free(&r);
}

static void jobs_retry_runs_again(void)
{
    /* polling effectively off: only the retry's NOTIFY can wake the worker */
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM workers", NULL));
    th_sleep_ms(300);   /* past the catch-up claim on connect */

    /* a job that fails for good on its first attempt, retried: the handler runs again */
    long long f = th_int("INSERT INTO jobs (job_type, input, max_attempts) VALUES ('test_fail',"
                         " '{\"fail_times\": -1, \"message\": \"always\"}', 1) RETURNING id", NULL);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'",
                      th_num(f), NULL));
    char *first = th_str("SELECT finished_at::text FROM jobs WHERE id = $1", th_num(f), NULL);
    char id[32];
    snprintf(id, sizeof id, "%lld", f);
    th_cli_run r = CLI("jobs", "retry", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "queued again (it was failed)");
    th_cli_free(&r);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'"
                               " AND finished_at > $2::timestamptz AND attempts = 1"
                               " AND last_error LIKE 'always (attempt 1)%'", th_num(f),
                      first ? first : "infinity", NULL));
    free(first);

    /* a failed noop: back to queued, woken at once, succeeds; the old error stays for the record */
    long long n = th_int("INSERT INTO jobs (job_type, status, attempts, last_error, finished_at)"
                         " VALUES ('noop', 'failed', 3, 'old trouble', now()) RETURNING id", NULL);
    snprintf(id, sizeof id, "%lld", n);
    r = CLI("jobs", "retry", id);
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'"
                               " AND attempts = 1 AND last_error = 'old trouble'",
                      th_num(n), NULL));

    /* a succeeded, a queued and a running job are refused */
    r = CLI("jobs", "retry", id);
    CHECK_ERR(r, 1, "has status succeeded; only failed or cancelled jobs can be retried");
    th_cli_free(&r);
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", n), 1);
    long long q = th_int("INSERT INTO jobs (job_type, queue) VALUES ('noop', 'nobody')"
                         " RETURNING id", NULL);
    snprintf(id, sizeof id, "%lld", q);
    r = CLI("jobs", "retry", id);
    CHECK_ERR(r, 1, "has status queued");
    th_cli_free(&r);
    r = CLI("jobs", "retry", "999999");
    CHECK_ERR(r, 1, "no job 999999");
    th_cli_free(&r);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);

    /* a cancelled job in a queue nobody serves: every field of a fresh queued job */
    long long c = th_int("INSERT INTO jobs (job_type, queue, status, attempts, last_error,"
                         " locked_by, started_at, finished_at, run_at) VALUES ('noop', 'nobody',"
                         " 'cancelled', 2, 'why', NULL, now(), now(), now() + interval '1 day')"
                         " RETURNING id", NULL);
    snprintf(id, sizeof id, "%lld", c);
    r = CLI("jobs", "retry", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "(it was cancelled)");
    th_cli_free(&r);
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'"
                        " AND attempts = 0 AND last_error = 'why' AND run_at <= now()"
                        " AND finished_at IS NULL AND started_at IS NULL AND locked_by IS NULL",
                        c), 1);
}

static void jobs_retry_failed_counts(void)
{
    th_exec("INSERT INTO jobs (job_type, queue, status, attempts, finished_at)"
            " SELECT t, 'nobody', s, 3, now() - interval '1 minute'"
            " FROM (VALUES ('alpha', 'failed'), ('alpha', 'failed'), ('alpha', 'failed'),"
            " ('beta', 'failed'), ('beta', 'failed'), ('alpha', 'succeeded'),"
            " ('alpha', 'cancelled'))"
            " v(t, s)", NULL);
    th_cli_run r = CLI("jobs", "retry", "--failed", "--type", "alpha");
    CHECK_INT(r.status, 0);
    CHECK_STR(r.out, "3 failed job(s) queued again\n");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'alpha' AND status = 'queued'"
                     " AND attempts = 0", NULL), 3);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'beta' AND status = 'failed'",
                     NULL), 2);
    r = CLI("jobs", "retry", "--failed");
    CHECK_STR(r.out, "2 failed job(s) queued again\n");
    th_cli_free(&r);
    r = CLI("jobs", "retry", "--failed");
    CHECK_STR(r.out, "0 failed job(s) queued again\n");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'cancelled')",
                     NULL), 2);

    /* more than one batch of 10,000 */
    th_exec("INSERT INTO jobs (job_type, queue, status, finished_at)"
            " SELECT 'gamma', 'nobody', 'failed', now() - interval '1 minute'"
            " FROM generate_series(1, 12345)", NULL);
    r = CLI("jobs", "retry", "--failed");
    CHECK_STR(r.out, "12345 failed job(s) queued again\n");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 0);

    r = CLI("jobs", "retry", "--type", "alpha");
    CHECK_ERR(r, 2, "--type goes with --failed");
    th_cli_free(&r);
    r = CLI("jobs", "retry", "5", "--failed");
    CHECK_ERR(r, 2, "not both");
    th_cli_free(&r);
    r = CLI("jobs", "retry");
    CHECK_ERR(r, 2, "needs a job ID or --failed");
    th_cli_free(&r);
}

/* The next notification on the test's connection within ms (heap payload), or NULL. */
static char *next_notify(int ms)
{
    PGconn *c = th_db();
    for (int waited = 0;; waited += 20) {
        PQconsumeInput(c);
        PGnotify *n = PQnotifies(c);
        if (n) {
            char *s = strdup(n->extra);
            PQfreemem(n);
            return s;
        }
        if (waited >= ms) return NULL;
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        poll(&p, 1, 20);
    }
}

static void jobs_cancel_states(void)
{
    th_exec("LISTEN aq_done", NULL);
    long long q = th_int("INSERT INTO jobs (job_type, run_at, user_id)"
                         " VALUES ('noop', now() + interval '1 hour', 42) RETURNING id", NULL);
    char id[32];
    snprintf(id, sizeof id, "%lld", q);
    th_cli_run r = CLI("jobs", "cancel", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "cancelled (it was queued)");
    th_cli_free(&r);
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'cancelled'"
                        " AND finished_at IS NOT NULL", q), 1);
    char *payload = next_notify(5000);
    CHECK_STR(payload, id);   /* the API's long-polls wake on the owner's job id */
    free(payload);

    r = CLI("jobs", "cancel", id);
    CHECK_ERR(r, 1, "has already finished (cancelled)");
    th_cli_free(&r);

    /* waiting, ownerless: cancelled, nobody to wake */
    long long w = th_int("INSERT INTO jobs (job_type, status) VALUES ('agent_turn', 'waiting')"
                         " RETURNING id", NULL);
    snprintf(id, sizeof id, "%lld", w);
    r = CLI("jobs", "cancel", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "(it was waiting)");
    th_cli_free(&r);
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'cancelled'", w), 1);
    payload = next_notify(300);
    CHECK(payload == NULL);
    free(payload);

    /* running: marked, left to its worker; it ends cancelled whatever ends its run (issue 12) */
    long long run = th_int("INSERT INTO jobs (job_type, status, attempts, locked_by, locked_until,"
                           " started_at) VALUES ('noop', 'running', 1, 'w9',"
                           " now() + interval '1 minute', now()) RETURNING id", NULL);
    snprintf(id, sizeof id, "%lld", run);
    r = CLI("jobs", "cancel", id);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "is running: cancel recorded");
    th_cli_free(&r);
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'"
                        " AND locked_by = 'w9' AND cancel_requested_at IS NOT NULL", run), 1);
    th_exec("UPDATE jobs SET status = 'succeeded', locked_by = NULL WHERE id = $1", th_num(run), NULL);   /* a late success */
    CHECK_INT(value_for("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'cancelled'", run), 1);

    r = CLI("jobs", "cancel", "999999");
    CHECK_ERR(r, 1, "no job 999999");
    th_cli_free(&r);
    r = CLI("jobs", "cancel");
    CHECK_ERR(r, 2, "needs a job ID");
    th_cli_free(&r);
    r = CLI("jobs", "cancel", "-1");
    CHECK_ERR(r, 2, "unknown option '-1'");
    th_cli_free(&r);
    r = CLI("jobs", "cancel", "0");
    CHECK_ERR(r, 2, "ID must be");
    th_cli_free(&r);
}

static const cJSON *type_row(const cJSON *stats, const char *type)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(stats, "jobs"))
        if (th_jstr(e, "type") && !strcmp(th_jstr(e, "type"), type)) return e;
    th_fail(__FILE__, __LINE__, "no row for type %s in stats", type);
    return NULL;
}

static void stats_counts(void)
{
    long long oldest = th_int("INSERT INTO jobs (job_type, run_at)"
                              " VALUES ('s_a', now() - interval '10 minutes') RETURNING id", NULL);
    th_exec("INSERT INTO jobs (job_type, run_at)"
            " VALUES ('s_a', now()), ('s_a', now() + interval '1 day')", NULL);
    th_exec("INSERT INTO jobs (job_type, status, finished_at) VALUES"
            " ('s_a', 'running', NULL), ('s_a', 'failed', now() - interval '5 minutes'),"
            " ('s_a', 'failed', now() - interval '6 minutes'), ('s_a', 'succeeded', now()),"
            " ('s_a', 'succeeded', now() - interval '2 hours'), ('s_b', 'waiting', NULL),"
            " ('s_b', 'cancelled', now() - interval '30 seconds'),"
            " ('s_c', 'succeeded', now() - interval '3 hours')", NULL);
    th_cli_run r = CLI("stats", "--json");
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    const cJSON *a = type_row(j, "s_a"), *b = type_row(j, "s_b");
    if (a) {
        CHECK_INT(th_jnum(a, "queued"), 2);      /* runnable now */
        CHECK_INT(th_jnum(a, "scheduled"), 1);   /* run_at tomorrow: not queued */
        CHECK_INT(th_jnum(a, "running"), 1);
        CHECK_INT(th_jnum(a, "waiting"), 0);
        CHECK_INT(th_jnum(a, "succeeded"), 1);   /* the one two hours ago is outside the window */
        CHECK_INT(th_jnum(a, "failed"), 2);
        CHECK_INT(th_jnum(a, "cancelled"), 0);
    }
    if (b) {
        CHECK_INT(th_jnum(b, "waiting"), 1);
        CHECK_INT(th_jnum(b, "cancelled"), 1);
    }
    /* s_c: nothing unfinished, nothing finished within the hour */
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "jobs")), 2);
    CHECK_INT(th_jnum(j, "finished_last_minute"), 2);
    CHECK_INT(th_jnum(j, "finished_last_hour"), 4);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "oldest_queued");
    CHECK_INT(th_jnum(o, "id"), oldest);
    CHECK_STR(th_jstr(o, "type"), "s_a");
    CHECK_INT(th_jnum(j, "scheduled"), 1);
    CHECK(th_jnum(o, "age_seconds") >= 600 && th_jnum(o, "age_seconds") < 700);
    CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "workers")));
    cJSON_Delete(j);
    th_cli_free(&r);

    r = CLI("stats");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "TYPE  QUEUED  SCHEDULED  RUNNING  WAITING  SUCCEEDED  FAILED  CANCELLED\n");
    CHECK_CONTAINS(r.out, "s_a        2          1        1        0          1       2          0\n");
    CHECK_CONTAINS(r.out, "scheduled: 1 queued to run later, the first at ");
    CHECK_CONTAINS(r.out, "finished: 2 in the last minute, 4 in the last hour\n");
    char want[64];
    snprintf(want, sizeof want, "oldest queued: job %lld (s_a), runnable for 10m", oldest);
    CHECK_CONTAINS(r.out, want);
    CHECK_CONTAINS(r.out, "workers: 0\n");
    th_cli_free(&r);

    r = CLI("stats", "--bogus");
    CHECK_ERR(r, 2, "unknown option '--bogus'");
    th_cli_free(&r);
}

static void workers_lists_running_worker(void)
{
    const char *const args[] = {"--concurrency", "3", "--queues", "default,mail", NULL};
    pid_t w = th_worker(args, NULL);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM workers WHERE pid = $1", th_num(w), NULL));
    th_cli_run r = CLI("workers", "--json");
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(j), 1);
    const cJSON *e = cJSON_GetArrayItem(j, 0);
    CHECK_INT(th_jnum(e, "pid"), w);
    CHECK_INT(th_jnum(e, "concurrency"), 3);
    CHECK_INT(th_jnum(e, "running"), 0);
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(e, "queues");
    CHECK(cJSON_IsArray(qs) && cJSON_GetArraySize(qs) == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(qs, 1)), "mail");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "silent_seconds")));
    char *wid = th_str("SELECT id FROM workers", NULL);
    CHECK_STR(th_jstr(e, "id"), wid);
    cJSON_Delete(j);
    th_cli_free(&r);

    r = CLI("workers");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "ID");
    CHECK_CONTAINS(r.out, "SILENT FOR");
    CHECK_CONTAINS(r.out, "default,mail");
    CHECK_CONTAINS(r.out, th_num(w));
    th_cli_free(&r);

    r = CLI("stats", "--json");
    j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "workers")), 1);
    cJSON_Delete(j);
    th_cli_free(&r);
    r = CLI("stats");
    CHECK_CONTAINS(r.out, "workers: 1\n");
    CHECK_CONTAINS(r.out, wid ? wid : "(no worker id)");
    th_cli_free(&r);
    free(wid);

    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    r = CLI("workers");
    CHECK_STR(r.out, "no live workers\n");
    th_cli_free(&r);
    r = CLI("workers", "--json");
    CHECK_STR(r.out, "[]\n");
    th_cli_free(&r);
}

static void schedules_ls_shows_rows(void)
{
    long long alice = th_int("INSERT INTO users (name, token_id, token_hash)"
                             " VALUES ('alice', 't_a', '\\x00') RETURNING id", NULL);
    long long bob = th_int("INSERT INTO users (name, token_id, token_hash)"
                           " VALUES ('bob', 't_b', '\\x00') RETURNING id", NULL);
    th_exec("INSERT INTO agent_schedules (user_id, name, cron, timezone, prompt, next_run_at)"
            " VALUES ($1, 'standup', '30 9 * * MON-FRI', 'Europe/Berlin', 'What is on today?',"
            " '2030-01-02 08:30:00+00')", th_num(alice), NULL);
    th_exec("INSERT INTO agent_schedules (user_id, name, cron, prompt, enabled, misfire,"
            " last_error, last_run_at) VALUES ($1, 'weekly review', '@weekly', 'Review', false,"
            " 'skip', 'the model was down', '2029-12-30 00:00:00+00')", th_num(bob), NULL);

    th_cli_run r = CLI("schedules", "ls");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "NEXT RUN");
    CHECK_CONTAINS(r.out, "alice (");
    CHECK_CONTAINS(r.out, "standup");
    CHECK_CONTAINS(r.out, "30 9 * * MON-FRI");
    CHECK_CONTAINS(r.out, "Europe/Berlin");
    CHECK_CONTAINS(r.out, "2030-01-02T08:30:00Z");
    CHECK_CONTAINS(r.out, "weekly review");
    CHECK_CONTAINS(r.out, "2029-12-30T00:00:00Z");
    CHECK_CONTAINS(r.out, "the model was down");
    th_cli_free(&r);

    r = CLI("schedules", "ls", "--user", th_num(bob), "--json");
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(j), 1);
    const cJSON *e = cJSON_GetArrayItem(j, 0);
    CHECK_STR(th_jstr(e, "name"), "weekly review");
    CHECK_STR(th_jstr(e, "user"), "bob");
    CHECK_STR(th_jstr(e, "misfire"), "skip");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "enabled")));
    CHECK_STR(th_jstr(e, "timezone"), "UTC");
    cJSON_Delete(j);
    th_cli_free(&r);

    r = CLI("schedules", "ls", "--user", "999");
    CHECK_STR(r.out, "no schedules\n");
    th_cli_free(&r);
    r = CLI("schedules", "ls", "--user", "bob");
    CHECK_ERR(r, 2, "--user must be");
    th_cli_free(&r);
    r = CLI("schedules", "rm");
    CHECK_ERR(r, 2, "unknown schedules command 'rm'");
    th_cli_free(&r);
}

static void prune_old_finished_jobs(void)
{
    th_exec("INSERT INTO jobs (job_type, status, finished_at)"
            " SELECT 'old', 'succeeded', now() - interval '10 days' FROM generate_series(1, 25000)",
            NULL);
    th_exec("INSERT INTO jobs (job_type, status, finished_at) VALUES"
            " ('old', 'cancelled', now() - interval '10 days'),"
            " ('old', 'failed', now() - interval '10 days'),"
            " ('old', 'failed', now() - interval '8 days'),"
            " ('recent', 'succeeded', now() - interval '1 hour'),"
            " ('recent', 'succeeded', now() - interval '2 hours'),"
            " ('recent', 'failed', now())", NULL);
    th_exec("INSERT INTO jobs (job_type, created_at, run_at)"
            " VALUES ('waiting_long', now() - interval '30 days', now() - interval '30 days')",
            NULL);

    /* --dry-run counts and deletes nothing; --json says the same */
    th_cli_run r = CLI("prune", "--older-than", "7d", "--dry-run");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "would prune 25001 job(s) (succeeded, cancelled) that finished before ");
    CHECK_CONTAINS(r.out, "dry run: nothing deleted");
    th_cli_free(&r);
    r = CLI("prune", "--older-than", "7d", "--dry-run", "--json", "--failed");
    cJSON *j = json_out(&r);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "dry_run")));
    CHECK_INT(th_jnum(j, "count"), 25003);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "statuses")), 3);
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "finished_before")));
    cJSON_Delete(j);
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 25007);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log", NULL), 0);

    r = CLI("prune", "--older-than", "7d", "--json");
    CHECK_INT(r.status, 0);
    j = json_out(&r);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "dry_run")));
    CHECK_INT(th_jnum(j, "count"), 25001);
    cJSON_Delete(j);
    th_cli_free(&r);
    /* one audit row per batch, with its count, in the batch's transaction */
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'jobs.prune' AND channel = 'cli'", NULL), 3);
    CHECK_INT(th_int("SELECT sum((details->>'count')::int) FROM audit_log WHERE action = 'jobs.prune'", NULL),
              25001);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 6);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 3);

    r = CLI("prune", "--older-than=90m");
    CHECK_CONTAINS(r.out, "pruned 1 job(s)");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'recent'"
                     " AND status = 'succeeded'", NULL), 1);

    r = CLI("prune", "--older-than", "1w", "--failed");
    CHECK_CONTAINS(r.out, "pruned 2 job(s) (succeeded, cancelled, failed)");
    th_cli_free(&r);
    /* left: the recent failure, and the queued job that never finished however old */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'waiting_long'", NULL), 1);

    static const char *const bad[] = {"7x", "0d", "-1d", "d", "", "7", "1.5h", "99999999999d",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        r = CLI("prune", "--older-than", bad[i]);
        CHECK_ERR(r, 2, "--older-than must be a duration");
        th_cli_free(&r);
    }
    r = CLI("prune");
    CHECK_ERR(r, 2, "prune needs --older-than");
    th_cli_free(&r);
    r = CLI("prune", "--older-than");
    CHECK_ERR(r, 2, "--older-than needs a value");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 3);
}

static void bad_usage_exits_2(void)
{
    static const char *const unknown[][6] = {
        {"jobs", "ls", "--bogus", NULL},         {"jobs", "show", "1", "--bogus", NULL},
        {"jobs", "retry", "--bogus", NULL},      {"jobs", "cancel", "1", "--bogus", NULL},
        {"stats", "--bogus", NULL},              {"workers", "--verbose", NULL},
        {"schedules", "ls", "--bogus", NULL},    {"prune", "--older-than", "7d", "--bogus", NULL},
        {"jobs", "ls", "--json=yes", NULL},      {"jobs", "ls", "-j", NULL},
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        th_cli_run r = th_cli(NULL, unknown[i]);
        CHECK_INT(r.status, 2);
        CHECK_STR(r.out, "");
        CHECK(!strncmp(r.err, "agentq: ", 8));
        CHECK(strstr(r.err, "unknown option") || strstr(r.err, "takes no value"));
        CHECK(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
        th_cli_free(&r);
    }
    static const char *const missing[][4] = {
        {"jobs", "show", NULL}, {"jobs", "cancel", NULL}, {"jobs", "retry", NULL}, {"jobs", NULL},
        {"jobs", "frob", NULL}, {"schedules", NULL},      {"workers", "extra", NULL},
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        th_cli_run r = th_cli(NULL, missing[i]);
        CHECK_INT(r.status, 2);
        CHECK(!strncmp(r.err, "agentq: ", 8));
        CHECK_STR(r.out, "");
        th_cli_free(&r);
    }

    th_cli_run r = CLI("--help");
    CHECK_INT(r.status, 0);
    static const char *const listed[] = {
        "jobs ls", "jobs show ID", "jobs retry ID", "jobs retry --failed", "jobs cancel ID",
        "stats", "workers", "schedules ls", "prune --older-than DURATION", "migrate", "users add",
        NULL,
    };
    for (int i = 0; listed[i]; i++) CHECK_CONTAINS(r.out, listed[i]);
    th_cli_free(&r);
    r = CLI("jobs", "ls", "--help");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "usage: agentq jobs ls");
    th_cli_free(&r);
    r = CLI("jobs", "--help");
    CHECK_CONTAINS(r.out, "agentq jobs cancel ID");
    th_cli_free(&r);

    /* a database that is not there: exit 1, one line */
    char url[600];
    snprintf(url, sizeof url, "DATABASE_URL=%s dbname=no_such_database", th_db_url());
    const char *const env[] = {url, NULL};
    r = CLI_ENV(env, "jobs", "ls");
    CHECK_ERR(r, 1, "cannot connect to the database");
    th_cli_free(&r);
    r = CLI_ENV(env, "stats", "--json");
    CHECK_ERR(r, 1, "cannot connect to the database");
    th_cli_free(&r);
}

/* --help (or -h) anywhere after a command prints that command's usage on
 * stdout, exits 0 and does nothing else: every command of the table (read
 * from `agentq --help`), the subcommand forms, and help after real
 * arguments. Nothing changes: no user is created, no job cancelled, retried
 * or pruned, and a fresh database gets no schema_migrations table. */
static void help_never_acts(void)
{
    th_exec("INSERT INTO jobs (job_type, status) VALUES ('noop', 'queued')", NULL);
    th_exec("INSERT INTO jobs (job_type, status, finished_at, last_error)"
            " VALUES ('noop', 'failed', now() - interval '30 days', 'x')", NULL);
    th_exec("INSERT INTO jobs (job_type, status, finished_at)"
            " VALUES ('noop', 'succeeded', now() - interval '30 days')", NULL);
    char *dbname = th_str("SELECT current_database()", NULL);
    char fresh[128], url[700], key[128];
    snprintf(fresh, sizeof fresh, "%s_fresh", dbname);
    free(dbname);
    char *create = NULL;
    if (asprintf(&create, "CREATE DATABASE %s", fresh) < 0) exit(1);
    th_exec(create, NULL);
    free(create);
    snprintf(url, sizeof url, "DATABASE_URL=%s dbname=%s", th_db_url(), fresh);
    snprintf(key, sizeof key, "AGENTQ_SECRET_KEY=%s", TH_SECRET_KEY);
    const char *const env[] = {url, key, NULL};
    long long users = th_int("SELECT count(*) FROM users", NULL);

    /* the commands, as `agentq --help` lists them ("  NAME  what it does") */
    th_cli_run top = CLI("--help");
    CHECK_INT(top.status, 0);
    char names[32][32];
    int n = 0;
    for (const char *line = top.out; line && *line && n < 32; line = strchr(line, '\n')) {
        if (*line == '\n') line++;
        if (line[0] == ' ' && line[1] == ' ' && line[2] >= 'a' && line[2] <= 'z') {
            size_t len = strcspn(line + 2, " \n");
            if (len < sizeof names[0]) snprintf(names[n++], sizeof names[0], "%.*s", (int)len, line + 2);
        }
    }
    th_cli_free(&top);
    CHECK(n >= 10);
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < 2; h++) {
            const char *const args[] = {names[i], h ? "-h" : "--help", NULL};
            th_cli_run r = th_cli(env, args);
            char want[64];
            snprintf(want, sizeof want, "usage: agentq %s", names[i]);
            CHECK_INT(r.status, 0);
            CHECK(!strncmp(r.out, want, strlen(want)));
            CHECK_STR(r.err, "");
            th_cli_free(&r);
        }
    }
    static const char *const forms[][6] = {
        {"users", "add", "--help", NULL},        {"users", "add", "alice", "--help", NULL},
        {"users", "add", "bob", "--operator", "-h", NULL},
        {"migrate", "--help", NULL},              {"cron", "next", "--help", NULL},
        {"cron", "next", "* * * * *", "-h", NULL}, {"telegram", "poll", "--help", NULL},
        {"telegram", "poll", "--once", "--help", NULL}, {"jobs", "cancel", "1", "--help", NULL},
        {"jobs", "retry", "--failed", "--help", NULL},  {"jobs", "retry", "2", "-h", NULL},
        {"prune", "--older-than", "1s", "--failed", "--help", NULL},
        {"schedules", "ls", "--help", NULL},      {"stats", "--json", "--help", NULL},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const char *const *args = forms[i];
        th_cli_run r = th_cli(env, args);
        char want[64];
        snprintf(want, sizeof want, "usage: agentq %s", args[0]);
        if (r.status != 0 || strncmp(r.out, want, strlen(want)) || r.err[0])
            th_fail(__FILE__, __LINE__, "agentq %s %s ...: status %d, stdout \"%s\", stderr \"%s\"",
                    args[0], args[1], r.status, r.out, r.err);
        th_cli_free(&r);
    }
    /* the same commands with the test's own database acted on nothing either */
    const char *const own[] = {key, NULL};
    th_cli_run r = th_cli(own, (const char *const[]){"users", "add", "carol", "--help", NULL});
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    r = th_cli(own, (const char *const[]){"prune", "--older-than", "1s", "--failed", "-h", NULL});
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    r = th_cli(own, (const char *const[]){"jobs", "cancel", "1", "--help", NULL});
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM users", NULL), users);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 3);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'queued'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 1);

    PGconn *f = NULL;
    char conn[700];
    snprintf(conn, sizeof conn, "%s dbname=%s", th_db_url(), fresh);
    f = PQconnectdb(conn);
    CHECK(PQstatus(f) == CONNECTION_OK);
    PGresult *t = PQexec(f, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
    CHECK_STR(PQresultStatus(t) == PGRES_TUPLES_OK ? PQgetvalue(t, 0, 0) : "error", "0");
    PQclear(t);
    PQfinish(f);

    /* an unknown option is still bad usage: exit 2, the usage on stderr */
    static const char *const bad[][4] = {
        {"migrate", "--bogus", NULL}, {"config", "--bogus", NULL}, {"users", "add", "--bogus", NULL},
        {"cron", "next", "--bogus", NULL}, {"telegram", "poll", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = th_cli(env, bad[i]);
        CHECK_INT(r.status, 2);
        CHECK_STR(r.out, "");
        CHECK_CONTAINS(r.err, "usage");
        th_cli_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM users", NULL), users);
    char *drop = NULL;
    if (asprintf(&drop, "DROP DATABASE %s WITH (FORCE)", fresh) < 0) exit(1);
    th_exec(drop, NULL);
    free(drop);
}

/* Run bin/NAME with the test's DATABASE_URL and one more "K=V"; its stderr
 * into *err (heap). The exit status, or -1 if it was still running after
 * 20 s (then killed). */
static int run_binary(const char *name, const char *kv, char **err)
{
    /* a free port, so that an API that wrongly starts really listens */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(sock, (struct sockaddr *)&sa, &salen)) { perror("socket"); exit(1); }
    char listen_kv[64];
    snprintf(listen_kv, sizeof listen_kv, "AGENTQ_LISTEN=127.0.0.1:%d", ntohs(sa.sin_port));
    close(sock);
    char path[] = "/tmp/aq-cfg-err-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { perror("mkstemp"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        dup2(fd, 1);
        setenv("DATABASE_URL", th_db_url(), 1);
        setenv("AGENTQ_SECRET_KEY", TH_SECRET_KEY, 1);
        putenv(listen_kv);
        putenv((char *)kv);
        const char *bin = th_bin(name);
        if (!strcmp(name, "agentq")) execl(bin, bin, "stats", (char *)NULL);
        else execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    int status = th_stop(pid, 0, 20000);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "");
    char line[1024];
    while (fgets(line, sizeof line, f)) aq_buf_adds(&b, line);
    fclose(f);
    unlink(path);
    *err = aq_buf_take(&b);
    return status;
}

/* Enumerated configuration values are checked at load: the worker, the API
 * and the CLI each refuse an unknown LLM_PROVIDER or AGENTQ_LOG_LEVEL with
 * exit status 2 and one line naming the variable and the allowed values. */
static void config_unknown_values_refused(void)
{
    static const struct { const char *kv, *allowed; } cases[] = {
        {"LLM_PROVIDER=anthropic", "offline, openai"},
        {"AGENTQ_LOG_LEVEL=verbose", "debug, info, warn, error"},
        {"AGENTQ_LOG_LEVEL=INFO", "debug, info, warn, error"},
    };
    static const char *const bins[] = {"agentq-worker", "agentq-api", "agentq"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t b = 0; b < sizeof bins / sizeof bins[0]; b++) {
            char *err = NULL;
            int st = run_binary(bins[b], cases[c].kv, &err);
            if (st != 2 || !strstr(err, cases[c].kv) || !strstr(err, cases[c].allowed))
                th_fail(__FILE__, __LINE__, "%s with %s: status %d, output \"%s\"", bins[b],
                        cases[c].kv, st, err);
            free(err);
        }
    }
    /* the allowed values still start (the CLI answers) */
    char *err = NULL;
    CHECK_INT(run_binary("agentq", "LLM_PROVIDER=openai", &err), 0);
    free(err);
    CHECK_INT(run_binary("agentq", "AGENTQ_LOG_LEVEL=debug", &err), 0);
    free(err);
}

/* ---- deploy/run.sh (`make run`): every way of stopping leaves nothing ---- */

/* The processes of one run: those whose environment holds AGENTQ_RUN_DIR=dir
 * (the script, make, the API, the workers; not the cluster, checked apart).
 * Their pids into pids (up to max); with comm, only those named so. */
static int run_procs(const char *dir, const char *comm, pid_t *pids, int max)
{
    char want[600];
    int wlen = snprintf(want, sizeof want, "AGENTQ_RUN_DIR=%s", dir), n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0 || pid == getpid()) continue;
        char path[64], buf[65536], st[512] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t sl = fread(st, 1, sizeof st - 1, f);
        fclose(f);
        st[sl] = 0;
        const char *close_paren = strrchr(st, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z') continue;   /* exited */
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0) continue;
        int match = 0;
        for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
            buf[len] = 0;
            if (!strcmp(buf + i, want) && (int)strlen(buf + i) == wlen) match = 1;
        }
        if (!match) continue;
        if (comm) {
            snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
            char name[64] = "";
            f = fopen(path, "r");
            if (f) {
                if (!fgets(name, sizeof name, f)) name[0] = 0;
                fclose(f);
            }
            name[strcspn(name, "\n")] = 0;
            if (strcmp(name, comm)) continue;
        }
        if (n < max) pids[n] = pid;
        n++;
    }
    closedir(d);
    return n;
}

static int free_tcp_port(void)
{
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(sock, (struct sockaddr *)&sa, &salen)) { perror("socket"); exit(1); }
    close(sock);
    return ntohs(sa.sin_port);
}

/* 1 once the file at path contains text (polled up to 30 s). */
static int wait_for_text(const char *path, const char *text)
{
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(path, "r");
        char line[4096];
        int found = 0;
        while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, text) != NULL;
        if (f) fclose(f);
        if (found) return 1;
        th_sleep_ms(100);
    }
    return 0;
}

/* A test_sleep job of ten minutes in the run's database, running. */
static void busy_job(const char *top, const char *dir, int pg_port)
{
    char cmd[900], url[600] = "";
    snprintf(cmd, sizeof cmd, "sh '%s/deploy/pg.sh' url '%s/.pgdata' %d", top, dir, pg_port);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(url, sizeof url, p)) th_fail(__FILE__, __LINE__, "no conninfo from pg.sh url");
    if (p) pclose(p);
    url[strcspn(url, "\n")] = 0;
    PGconn *db = PQconnectdb(url);
    PGresult *r = PQexec(db, "INSERT INTO jobs (job_type, input) VALUES ('test_sleep', '{\"ms\": 600000}')"
                             " RETURNING id");
    CHECK_INT(PQresultStatus(r), PGRES_TUPLES_OK);
    const char *id[] = {PQresultStatus(r) == PGRES_TUPLES_OK ? strdup(PQgetvalue(r, 0, 0)) : strdup("0")};
    PQclear(r);
    int running = 0;
    for (int i = 0; i < 300 && !running; i++) {
        r = PQexecParams(db, "SELECT count(*) FROM jobs WHERE status = 'running' AND id = $1", 1, NULL, id, NULL,
                         NULL, 0);
        running = PQresultStatus(r) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(r, 0, 0), "1");
        PQclear(r);
        if (!running) th_sleep_ms(100);
    }
    CHECK(running);
    free((char *)id[0]);
    PQfinish(db);
}

typedef enum { STOP_INT, STOP_INT_TWICE, STOP_TERM, STOP_HUP, STOP_CRASH } stop_how;

/* Start the run (through make when via_make, in its own process group as a
 * terminal's job is), wait for its API, stop it the way `how` says (signals
 * to the group, as Ctrl-C; or to make / the script alone), then check that
 * nothing of it is left: no process and the cluster stopped. */
static void run_and_stop(const char *top, const char *dir, int via_make, stop_how how, int want_status)
{
    int pg_port = free_tcp_port(), api_port = free_tcp_port();
    char log[700], mk[700];
    static int nrun;
    snprintf(log, sizeof log, "%s/run-%d.log", dir, ++nrun);
    snprintf(mk, sizeof mk, "%s/run.mk", dir);
    FILE *f = fopen(mk, "w");
    fprintf(f, "run:\n\tsh %s/deploy/run.sh\n", top);
    fclose(f);
    extern char th_log[512];
    FILE *note = fopen(th_log, "a");
    if (note) {
        fprintf(note, "run.sh: via %s, stop %d, pg port %d, API port %d, output in %s\n",
                via_make ? "make" : "sh", (int)how, pg_port, api_port, log);
        fclose(note);
    }
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        /* as a terminal's job: a suite started in the background (an async
         * list in a non-interactive shell) inherits SIGINT ignored, and a
         * shell cannot trap a signal ignored on entry */
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char bindir[600];
        snprintf(bindir, sizeof bindir, "%s", th_bin("agentq"));
        *strrchr(bindir, '/') = 0;
        setenv("AGENTQ_RUN_DIR", dir, 1);
        setenv("AGENTQ_BIN_DIR", bindir, 1);
        char port[16], listen[64];
        snprintf(port, sizeof port, "%d", pg_port);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", api_port);
        setenv("AGENTQ_PG_PORT", port, 1);
        setenv("AGENTQ_LISTEN", listen, 1);
        setenv("AGENTQ_API_THREADS", "1", 1);
        /* the busy job of a STOP_INT_TWICE run would hold a graceful stop for ten minutes;
         * later runs claim it again once its lease is over, and hand it back after 5 s */
        setenv("AGENTQ_SHUTDOWN_GRACE_SECONDS", how == STOP_INT_TWICE ? "600" : "5", 1);
        setenv("AGENTQ_TEST_HANDLERS", "1", 1);
        unsetenv("DATABASE_URL");
        unsetenv("AGENTQ_SECRET_KEY");
        unsetenv("MAKEFLAGS");
        unsetenv("MFLAGS");
        unsetenv("MAKELEVEL");
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (chdir(top)) _exit(127);
        if (via_make) execlp("make", "make", "-s", "-f", mk, "run", (char *)NULL);
        else execlp("sh", "sh", "deploy/run.sh", (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", api_port);
    int up = 0;
    for (int i = 0; i < 1200 && !up; i++) {   /* 120 s: the first run makes the cluster */
        th_resp r = th_http("GET", url, NULL, NULL, NULL, NULL);
        up = r.status == 200;
        th_resp_free(&r);
        if (!up) th_sleep_ms(100);
    }
    CHECK(up);
    /* it names the web console's URL, and the console is there */
    char console[80];
    snprintf(console, sizeof console, "run: web console: http://127.0.0.1:%d/", api_port);
    CHECK(wait_for_text(log, console));
    th_resp page = th_http("GET", strstr(console, "http"), NULL, NULL, NULL, NULL);
    CHECK_INT(page.status, 200);
    CHECK_CONTAINS(page.body, "<title>agentq console</title>");
    th_resp_free(&page);
    pid_t ps[16];
    int n = run_procs(dir, "agentq-worker", ps, 16);
    CHECK_INT(n, 1);
    if (how == STOP_INT && via_make) {
        /* bin/agentq run from the run folder finds this stack with no DATABASE_URL */
        char envf[700], cwd[512], name[32];
        snprintf(envf, sizeof envf, "%s/.agentq.env", dir);
        struct stat st;
        CHECK(stat(envf, &st) == 0 && (st.st_mode & 0777) == 0600);
        CHECK(wait_for_text(log, "export DATABASE_URL='"));
        snprintf(name, sizeof name, "envuser%d", nrun);
        if (getcwd(cwd, sizeof cwd) && !chdir(dir)) {
            const char *const unset[] = {"DATABASE_URL=", "AGENTQ_SECRET_KEY=", NULL};
            th_cli_run r = CLI_ENV(unset, "users", "add", name);
            CHECK_INT(r.status, 0);
            CHECK_CONTAINS(r.out, "created user envuser");
            char *tok = last_line(r.out);
            th_cli_free(&r);
            char url[64];   /* and its token works against this run's API */
            snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs", api_port);
            th_resp h = th_get(url, tok);
            CHECK_INT(h.status, 200);
            th_resp_free(&h);
            free(tok);
            if (chdir(cwd)) th_fail(__FILE__, __LINE__, "chdir back");
        }
    }
    switch (how) {
    case STOP_INT: kill(-pid, SIGINT); break;
    case STOP_INT_TWICE:
        /* a job that keeps the worker's graceful stop busy for a minute */
        busy_job(top, dir, pg_port);
        kill(-pid, SIGINT);
        CHECK(wait_for_text(log, "run: stopping (Ctrl-C again"));
        kill(-pid, SIGINT);
        break;
    case STOP_TERM: kill(pid, SIGTERM); break;
    case STOP_HUP: kill(pid, SIGHUP); break;
    case STOP_CRASH:
        if (run_procs(dir, "agentq-api", ps, 16) == 1) kill(ps[0], SIGKILL);
        else th_fail(__FILE__, __LINE__, "no agentq-api process found");
        break;
    }
    int st = th_stop(pid, 0, 60000);
    if (want_status >= 0) CHECK_INT(st, want_status);
    if (how == STOP_INT_TWICE) CHECK(wait_for_text(log, "run: stopping at once"));
    /* the script may outlive make (a second Ctrl-C kills make): wait for the rest */
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/.pgdata/data/postmaster.pid", dir);
    int left = 1, pg_up = 1;
    for (int i = 0; i < 300 && (left || pg_up); i++) {
        left = run_procs(dir, NULL, ps, 16);
        pg_up = access(pidfile, F_OK) == 0;
        if (left || pg_up) th_sleep_ms(100);
    }
    if (left || pg_up) {
        th_fail(__FILE__, __LINE__, "after stop %d via %s: %d process(es) left (first %d), cluster %s", (int)how,
                via_make ? "make" : "sh", left, left ? (int)ps[0] : 0, pg_up ? "running" : "stopped");
        for (int i = 0; i < left && i < 16; i++) kill(ps[i], SIGKILL);
        char cmd[800];
        snprintf(cmd, sizeof cmd, "sh '%s/deploy/pg.sh' stop '%s/.pgdata' >/dev/null 2>&1", top, dir);
        if (system(cmd)) {}
    }
}

static void run_sh_stops_clean(void)
{
    char top[512], dir[600];
    if (!getcwd(top, sizeof top)) exit(1);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/deploy/run.sh", top);
    if (access(probe, R_OK)) {
        th_fail(__FILE__, __LINE__, "run from the project folder (deploy/run.sh not found in %s)", top);
        return;
    }
    const char *logdir = getenv("AQ_TEST_LOGDIR") ? getenv("AQ_TEST_LOGDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/run_sh_%d", logdir, (int)getpid());
    mkdir(dir, 0755);
    run_and_stop(top, dir, 1, STOP_INT_TWICE, -1);   /* the reported case: make dies, the script goes on */
    run_and_stop(top, dir, 1, STOP_INT, -1);
    run_and_stop(top, dir, 1, STOP_TERM, -1);
    run_and_stop(top, dir, 0, STOP_INT_TWICE, 0);
    run_and_stop(top, dir, 0, STOP_TERM, 0);
    run_and_stop(top, dir, 0, STOP_HUP, 0);
    run_and_stop(top, dir, 0, STOP_CRASH, 1);
    /* the developer's own state was not touched: everything went to dir */
    char path[700];
    snprintf(path, sizeof path, "%s/.agentq.token", dir);
    CHECK(access(path, F_OK) == 0);
}


/* ---- users: ls, revoke, token (rotation against the real API) ---- */

static long status_of(const char *token)
{
    th_resp r = th_get("/v1/jobs", token);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

/* 1 once token gets `want` from 8 requests in a row (spread over the API's
 * threads). The change reaches each thread's cache as a notification, a few
 * ms after the commit; 5 s is far inside the cache's own 10 s lifetime, so
 * passing shows the notification, not the expiry, did it. */
static int refused_everywhere(const char *token, long want)
{
    for (int tries = 0; tries < 250; tries++) {
        int row = 0;
        while (row < 8 && status_of(token) == want) row++;
        if (row == 8) return 1;
        th_sleep_ms(20);
    }
    return 0;
}


static void users_token_rotation(void)
{
    pid_t api = th_api(NULL);
    char *old = th_user("alice", 0);
    free(th_user("root", 1));
    /* warm every API thread's token cache with the old token */
    for (int i = 0; i < 6; i++) CHECK_INT(status_of(old), 200);

    const char *const key[] = {"AGENTQ_SECRET_KEY=" TH_SECRET_KEY, NULL};
    th_cli_run r = CLI_ENV(key, "users", "token", "alice");
    CHECK_INT(r.status, 0);
    char *fresh = last_line(r.out);
    CHECK(!strncmp(fresh, "aq_", 3) && strcmp(fresh, old));
    th_cli_free(&r);
    /* at once: the cached old token is refused by every thread, the new one works */
    CHECK(refused_everywhere(old, 401));
    for (int i = 0; i < 6; i++) CHECK_INT(status_of(fresh), 200);

    r = CLI("users", "revoke", "alice");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "revoked alice");
    th_cli_free(&r);
    CHECK(refused_everywhere(fresh, 401));
    r = CLI("users", "revoke", "alice");
    CHECK_ERR(r, 1, "already revoked");
    th_cli_free(&r);

    r = CLI("users", "ls", "--json");
    CHECK_INT(r.status, 0);
    cJSON *j = json_out(&r);
    CHECK_INT(cJSON_GetArraySize(j), 2);
    const cJSON *a = cJSON_GetArrayItem(j, 0);
    CHECK_STR(th_jstr(a, "name"), "alice");
    CHECK_STR(th_jstr(a, "role"), "user");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "revoked_at")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "revoked_at")));
    CHECK_STR(th_jstr(cJSON_GetArrayItem(j, 1), "role"), "operator");
    CHECK(!strstr(r.out, "token"));   /* neither token ids nor hashes are listed */
    cJSON_Delete(j);
    th_cli_free(&r);
    r = CLI("users", "ls");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "ID  NAME   ROLE      CREATED");
    CHECK_CONTAINS(r.out, "REVOKED");
    CHECK_CONTAINS(r.out, "root   operator");
    th_cli_free(&r);

    /* a new token lets a revoked user in again */
    r = CLI_ENV(key, "users", "token", "alice");
    CHECK_INT(r.status, 0);
    char *third = last_line(r.out);
    th_cli_free(&r);
    CHECK_INT(status_of(third), 200);
    CHECK(refused_everywhere(fresh, 401));

    r = CLI_ENV(key, "users", "token", "nobody");
    CHECK_ERR(r, 1, "no user nobody");
    th_cli_free(&r);
    r = CLI("users", "revoke", "nobody");
    CHECK_ERR(r, 1, "no user nobody");
    th_cli_free(&r);
    r = CLI("users", "frob");
    CHECK_ERR(r, 2, "unknown users command 'frob'");
    th_cli_free(&r);
    r = CLI("users", "token");
    CHECK_ERR(r, 2, "needs a NAME");
    th_cli_free(&r);

    /* every change is in the audit log, oldest first here */
    char *acts = th_str("SELECT string_agg(action || ' ' || target, ',' ORDER BY id) FROM audit_log", NULL);
    CHECK_STR(acts, "user.add user:alice,user.add user:root,user.token user:alice,user.revoke user:alice,"
                    "user.token user:alice");
    free(acts);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE channel = 'cli' AND actor LIKE 'cli:%'", NULL), 5);
    free(old);
    free(fresh);
    free(third);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ---- `make run`'s .agentq.env ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (!f) { th_fail(__FILE__, __LINE__, "cannot write %s", path); return; }
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void env_file_when_no_database_url(void)
{
    const char *logdir = getenv("AQ_TEST_LOGDIR") ? getenv("AQ_TEST_LOGDIR") : "/tmp";
    char dir[600], path[700], key[700], text[2000];
    snprintf(dir, sizeof dir, "%s/envfile_%d", logdir, (int)getpid());
    mkdir(dir, 0700);
    snprintf(key, sizeof key, "%s/.agentq.key", dir);
    write_file(key, TH_SECRET_KEY "\n", 0600);
    snprintf(path, sizeof path, "%s/.agentq.env", dir);
    snprintf(text, sizeof text, "# written by make run\nexport DATABASE_URL='%s'\nAGENTQ_SECRET_KEY_FILE=%s\n",
             th_db_url(), key);
    write_file(path, text, 0600);
    char top[512];
    if (!getcwd(top, sizeof top) || chdir(dir)) { th_fail(__FILE__, __LINE__, "chdir %s", dir); return; }

    const char *const unset[] = {"DATABASE_URL=", "AGENTQ_SECRET_KEY=", NULL};
    th_cli_run r = CLI_ENV(unset, "users", "add", "envuser");
    CHECK_INT(r.status, 0);
    CHECK(!strncmp(r.out, "created user envuser", 20));
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM users WHERE name = 'envuser'", NULL), 1);
    /* the key came from the file: the token checks out against the same key */
    r = CLI_ENV(unset, "users", "ls");
    CHECK_CONTAINS(r.out, "envuser");
    th_cli_free(&r);

    /* the environment wins over the file */
    char bad[700];
    snprintf(bad, sizeof bad, "DATABASE_URL=%s dbname=no_such_database", th_db_url());
    const char *const other[] = {bad, NULL};
    r = CLI_ENV(other, "users", "ls");
    CHECK_ERR(r, 1, "cannot connect to the database");
    th_cli_free(&r);

    /* readable by others: refused, not used */
    chmod(path, 0644);
    r = CLI_ENV(unset, "users", "ls");
    CHECK_ERR(r, 2, "readable or writable by others");
    th_cli_free(&r);
    write_file(path, "DATABASE_URL=host=x port=1\n", 0600);
    r = CLI_ENV(unset, "users", "ls");
    CHECK_ERR(r, 2, "quote a value");
    th_cli_free(&r);
    write_file(path, "just words\n", 0600);
    r = CLI_ENV(unset, "users", "ls");
    CHECK_ERR(r, 2, "line 1: not a KEY=VALUE line");
    th_cli_free(&r);
    /* no file: libpq's defaults, as before */
    unlink(path);
    r = CLI_ENV(unset, "cron", "next", "@daily", "--count", "1");
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    if (chdir(top)) th_fail(__FILE__, __LINE__, "chdir back");
}

/* ---- --version ---- */

static void version_prints_schema(void)
{
    th_cli_run c = CLI("cron", "next", "0 0 13 * FRI", "--from", "2026-01-01T00:00:00Z", "--count", "2", "--json");
    CHECK_STR(c.out, "[\"2026-01-02T00:00:00Z\", \"2026-01-09T00:00:00Z\"]\n");   /* the one listing without a database */
    th_cli_free(&c);
    th_cli_run r = CLI("--version");
    CHECK_INT(r.status, 0);
    CHECK(!strncmp(r.out, "agentq ", 7));
    char *last = th_str("SELECT max(name) FROM schema_migrations", NULL);
    CHECK_CONTAINS(r.out, last ? last : "(no schema_migrations)");
    free(last);
    CHECK_STR(r.err, "");
    th_cli_free(&r);
}

/* ---- the CLI's job JSON has the API's names ---- */

static void json_names_match_api(void)
{
    pid_t api = th_api(NULL);
    char *tok = th_user("op", 1);
    long long id = th_int("INSERT INTO jobs (job_type, status, last_error, input, user_id) VALUES"
                          " ('noop', 'failed', 'boom', '{\"a\": 1}', (SELECT id FROM users)) RETURNING id", NULL);
    char path[64], ids[32];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    snprintf(ids, sizeof ids, "%lld", id);
    th_resp h = th_get(path, tok);
    CHECK_INT(h.status, 200);
    cJSON *from_api = cJSON_Parse(h.body);
    th_cli_run r = CLI("jobs", "show", ids, "--json");
    cJSON *show = json_out(&r);
    th_cli_run l = CLI("jobs", "ls", "--json");
    cJSON *ls = json_out(&l);
    const cJSON *row = cJSON_GetArrayItem(ls, 0);
    const cJSON *f;
    int n = 0;
    cJSON_ArrayForEach(f, from_api) {   /* every member of the API's job, same name and value */
        n++;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(show, f->string);
        if (!s) th_fail(__FILE__, __LINE__, "jobs show --json has no \"%s\"", f->string);
        else if (!cJSON_Compare(f, s, 1)) th_fail(__FILE__, __LINE__, "\"%s\" differs from the API's", f->string);
        int in_ls = strcmp(f->string, "input") && strcmp(f->string, "output");   /* ls leaves those out */
        if (in_ls && !cJSON_GetObjectItemCaseSensitive(row, f->string))
            th_fail(__FILE__, __LINE__, "jobs ls --json has no \"%s\"", f->string);
    }
    CHECK(n >= 15);
    CHECK_STR(th_jstr(row, "error"), "boom");
    CHECK_STR(th_jstr(row, "type"), "noop");
    cJSON_Delete(from_api);
    cJSON_Delete(show);
    cJSON_Delete(ls);
    th_cli_free(&r);
    th_cli_free(&l);
    th_resp_free(&h);
    free(tok);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ---- scheduled jobs are shown as such ---- */

static void jobs_ls_shows_scheduled(void)
{
    long long later = th_int("INSERT INTO jobs (job_type, run_at) VALUES ('noop', '2099-01-02 03:04:05+00')"
                             " RETURNING id", NULL);
    long long now_ = th_int("INSERT INTO jobs (job_type) VALUES ('noop') RETURNING id", NULL);
    th_cli_run r = CLI("jobs", "ls");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "RUN AT");
    CHECK_CONTAINS(r.out, "scheduled");
    CHECK_CONTAINS(r.out, "2099-01-02T03:04:05Z");
    CHECK_CONTAINS(r.out, "queued");
    th_cli_free(&r);
    char want[32], *ids;
    snprintf(want, sizeof want, "%lld", later);
    CHECK_STR(ids = ls_ids("--status", "scheduled", NULL, NULL), want);
    free(ids);
    snprintf(want, sizeof want, "%lld,%lld", now_, later);
    CHECK_STR(ids = ls_ids("--status", "queued", NULL, NULL), want);
    free(ids);
}

/* ---- the audit log: what writes it, audit ls, GET /v1/audit, append-only ---- */

static void audit_log_and_its_readers(void)
{
    pid_t api = th_api(NULL);
    char *user = th_user("dora", 0), *op = th_user("ops", 1);
    th_resp r = th_post("/v1/schedules", user, "{\"name\":\"brief\",\"cron\":\"0 8 * * *\",\"prompt\":\"hi\"}");
    CHECK_INT(r.status, 201);
    cJSON *sj = cJSON_Parse(r.body);
    long long sid = th_jnum(sj, "id");
    cJSON_Delete(sj);
    th_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/schedules/%lld", sid);
    r = th_http("PATCH", path, user, "{\"cron\":\"0 9 * * *\"}", NULL, NULL);
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    r = th_http("PATCH", path, user, "{\"cron\":\"not cron\"}", NULL, NULL);   /* refused: no row */
    CHECK_INT(r.status, 422);
    th_resp_free(&r);
    r = th_http("DELETE", path, op, NULL, NULL, NULL);   /* an operator deletes dora's schedule */
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    long long job = th_int("INSERT INTO jobs (job_type, user_id) VALUES ('noop', (SELECT id FROM users"
                           " WHERE name = 'dora')) RETURNING id", NULL);
    char jpath[64], jid[32];
    snprintf(jpath, sizeof jpath, "/v1/jobs/%lld/cancel", job);
    snprintf(jid, sizeof jid, "%lld", job);
    r = th_post(jpath, user, NULL);
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    r = th_post(jpath, user, NULL);   /* already finished: nothing changed, nothing written */
    CHECK_INT(r.status, 409);
    th_resp_free(&r);
    th_cli_run c = CLI("jobs", "retry", jid);
    CHECK_INT(c.status, 0);
    th_cli_free(&c);
    c = CLI("jobs", "cancel", jid);
    CHECK_INT(c.status, 0);
    th_cli_free(&c);

    char *acts = th_str("SELECT string_agg(action || '/' || channel || '/' || actor, ',' ORDER BY id) FROM audit_log"
                        " WHERE action NOT LIKE 'user.%'", NULL);
    char *cli_actor = th_str("SELECT actor FROM audit_log WHERE channel = 'cli' AND action = 'job.retry'", NULL);
    char want[600];
    snprintf(want, sizeof want, "schedule.created/api/dora,schedule.updated/api/dora,schedule.deleted/api/ops,"
             "job.cancel/api/dora,job.retry/cli/%s,job.cancel/cli/%s", cli_actor ? cli_actor : "?",
             cli_actor ? cli_actor : "?");
    CHECK_STR(acts, want);
    free(acts);
    CHECK(cli_actor && !strncmp(cli_actor, "cli:", 4));
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'schedule.updated'"
                     " AND details->>'cron' = '0 9 * * *'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'job.cancel' AND channel = 'api'"
                     " AND details->>'was' = 'queued' AND target = 'job:' || $1", jid, NULL), 1);

    /* audit ls: filters, human and --json (the API's names) */
    c = CLI("audit", "ls", "--action", "schedule.", "--json");
    CHECK_INT(c.status, 0);
    cJSON *j = json_out(&c);
    CHECK_INT(cJSON_GetArraySize(j), 3);
    const cJSON *e = cJSON_GetArrayItem(j, 0);   /* newest first */
    CHECK_STR(th_jstr(e, "action"), "schedule.deleted");
    CHECK_STR(th_jstr(e, "actor"), "ops");
    CHECK_STR(th_jstr(e, "channel"), "api");
    char tgt[48];
    snprintf(tgt, sizeof tgt, "schedule:%lld", sid);
    CHECK_STR(th_jstr(e, "target"), tgt);
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "details")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "at")));
    cJSON_Delete(j);
    th_cli_free(&c);
    c = CLI("audit", "ls", "--actor", "dora", "--channel", "api", "--limit", "2");
    CHECK_INT(c.status, 0);
    CHECK_CONTAINS(c.out, "ACTOR");
    CHECK_CONTAINS(c.out, "job.cancel");
    CHECK_CONTAINS(c.out, "schedule.updated");
    CHECK(!strstr(c.out, "schedule.created"));
    th_cli_free(&c);
    c = CLI("audit", "ls", "--target", "nothing:1");
    CHECK_STR(c.out, "no audit entries\n");
    th_cli_free(&c);
    c = CLI("audit", "ls", "--since", "1h", "--action", "job.retry", "--json");
    j = json_out(&c);
    CHECK_INT(cJSON_GetArraySize(j), 1);
    cJSON_Delete(j);
    th_cli_free(&c);
    c = CLI("audit", "ls", "--since", "soon");
    CHECK_ERR(c, 2, "--since must be");
    th_cli_free(&c);

    /* GET /v1/audit: operators only; pages by next */
    r = th_get("/v1/audit", user);
    CHECK_INT(r.status, 403);
    CHECK_CONTAINS(r.body, "\"forbidden\"");
    th_resp_free(&r);
    r = th_get("/v1/audit?action=schedule.&limit=2", op);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items")), 2);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "items"), 0), "action"),
              "schedule.deleted");
    long long next = th_jnum(j, "next");
    cJSON_Delete(j);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/audit?action=schedule.&limit=2&before=%lld", next);
    r = th_get(path, op);
    j = cJSON_Parse(r.body);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items")), 1);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "items"), 0), "action"),
              "schedule.created");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next")));
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_get("/v1/audit?limit=0", op);
    CHECK_INT(r.status, 422);
    th_resp_free(&r);

    /* append-only, for the owner too */
    long long n = th_int("SELECT count(*) FROM audit_log", NULL);
    PGresult *x = PQexec(th_db(), "UPDATE audit_log SET actor = 'someone else'");
    CHECK_INT(PQresultStatus(x), PGRES_FATAL_ERROR);
    CHECK_CONTAINS(PQresultErrorMessage(x), "append-only");
    PQclear(x);
    x = PQexec(th_db(), "DELETE FROM audit_log");
    CHECK_INT(PQresultStatus(x), PGRES_FATAL_ERROR);
    PQclear(x);
    x = PQexec(th_db(), "TRUNCATE audit_log");
    CHECK_INT(PQresultStatus(x), PGRES_FATAL_ERROR);
    PQclear(x);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log", NULL), n);
    free(user);
    free(op);
    free(cli_actor);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

const th_test th_cli_tests[] = {
    {"cli_jobs_ls", jobs_ls_filters_and_json, 30, 1},
    {"cli_jobs_show", jobs_show_and_followups, 30, 1},
    {"cli_jobs_retry", jobs_retry_runs_again, 40, 1},
    {"cli_jobs_retry_failed", jobs_retry_failed_counts, 40, 1},
    {"cli_jobs_cancel", jobs_cancel_states, 30, 1},
    {"cli_stats", stats_counts, 30, 1},
    {"cli_workers", workers_lists_running_worker, 30, 1},
    {"cli_schedules_ls", schedules_ls_shows_rows, 30, 1},
    {"cli_prune", prune_old_finished_jobs, 60, 1},
    {"cli_bad_usage", bad_usage_exits_2, 30, 1},
    {"cli_help_never_acts", help_never_acts, 60, 1},
    {"cli_config_unknown_values_refused", config_unknown_values_refused, 90, 1},
    {"cli_users_token_rotation", users_token_rotation, 60, 1},
    {"cli_env_file_when_no_database_url", env_file_when_no_database_url, 30, 1},
    {"cli_version", version_prints_schema, 30, 1},
    {"cli_json_names_match_api", json_names_match_api, 60, 1},
    {"cli_jobs_ls_shows_scheduled", jobs_ls_shows_scheduled, 30, 1},
    {"cli_audit_log", audit_log_and_its_readers, 60, 1},
    {"cli_run_sh_every_stop_leaves_nothing", run_sh_stops_clean, 600, 0},
    {0},
};
