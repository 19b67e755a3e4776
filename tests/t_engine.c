/* t_engine.c — integration tests of the job engine: the real agentq-worker
 * against a real Postgres. Life cycle, retries, permanent failure, malformed
 * input, ordering, idempotency, follow-up jobs, wake-up, heartbeats, leases,
 * timeouts, migrations, and a 3-process concurrency drain. */
#include "harness.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static long long enqueue(const char *type, const char *input)
{
    return th_int("INSERT INTO jobs (job_type, input) VALUES ($1, $2) RETURNING id", type, input, NULL);
}

static int wait_status(long long id, const char *status, int ms)
{
    return th_wait_int(1, ms, "SELECT count(*) FROM jobs WHERE id = $1 AND status = $2", th_num(id), status, NULL);
}

static char *job_field(long long id, const char *expr_sql)
{
    return th_str(expr_sql, th_num(id), NULL);
}

static const char *const FAST[] = {"AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", NULL};

static void lifecycle_success(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = enqueue("test_output", "{}");
    CHECK(wait_status(id, "succeeded", 10000));
    char *out = job_field(id, "SELECT output->>'text' FROM jobs WHERE id = $1");
    CHECK_STR(out, "fine");
    free(out);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND started_at IS NOT NULL"
                     " AND finished_at >= started_at AND locked_by IS NULL AND locked_until IS NULL",
                     th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void output_survives_quoting(void)
{
    pid_t w = th_worker(NULL, FAST);
    /* quotes, backslashes, braces, commas, NULL-looking text, non-ASCII */
    const char *in = "{\"text\": \"a \\\"quoted\\\" \\\\ back{slash}, NULL \u00e9\u20ac \\n\"}";
    long long id = enqueue("test_output", in);
    long long many[20];
    for (int i = 0; i < 20; i++) many[i] = enqueue("test_output", in);
    CHECK(wait_status(id, "succeeded", 10000));
    for (int i = 0; i < 20; i++) CHECK(wait_status(many[i], "succeeded", 10000));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE output->'text' = input->'text'", NULL), 21);
    char *t = th_str("SELECT output->>'text' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(t, "a \"quoted\" \\ back{slash}, NULL \xc3\xa9\xe2\x82\xac \n");
    free(t);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void retry_then_success(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = enqueue("test_fail", "{\"fail_times\": 2, \"message\": \"flaky\"}");
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 3);
    CHECK_INT(th_int("SELECT (output->>'attempts')::int FROM jobs WHERE id = $1", th_num(id), NULL), 3);
    char *err = job_field(id, "SELECT last_error FROM jobs WHERE id = $1");
    CHECK_STR(err, "flaky (attempt 2)");   /* the last failure is kept for the record */
    free(err);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void retries_exhausted(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = th_int("INSERT INTO jobs (job_type, input, max_attempts) VALUES"
                          " ('test_fail', '{\"fail_times\": -1, \"message\": \"always\"}', 3) RETURNING id", NULL);
    CHECK(wait_status(id, "failed", 15000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 3);
    char *err = job_field(id, "SELECT last_error FROM jobs WHERE id = $1");
    CHECK_STR(err, "always (attempt 3) (gave up after 3 attempts)");
    free(err);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND finished_at IS NOT NULL", th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void permanent_failure(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = enqueue("test_fail", "{\"fail_times\": 5, \"permanent\": true, \"message\": \"bad request\"}");
    CHECK(wait_status(id, "failed", 10000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    char *err = job_field(id, "SELECT last_error FROM jobs WHERE id = $1");
    CHECK_STR(err, "bad request (attempt 1)");
    free(err);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void retry_after_is_honoured(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = enqueue("test_fail", "{\"fail_times\": 1, \"retry_after_ms\": 700}");
    CHECK(wait_status(id, "succeeded", 10000));
    /* the second attempt was claimed no sooner than 700 ms after the first */
    CHECK_INT(th_int("SELECT (started_at - created_at >= interval '700 ms')::int FROM jobs WHERE id = $1",
                     th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void malformed_input_fails_job_not_worker(void)
{
    const char *const env[] = {"AGENTQ_MAX_INPUT_BYTES=1000", "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    long long arr = enqueue("noop", "[1, 2]");
    long long str = enqueue("noop", "\"text\"");
    long long unknown = enqueue("no_such_type", "{}");
    char big[2100];
    snprintf(big, sizeof big, "{\"x\": \"%02000d\"}", 0);
    long long oversize = enqueue("noop", big);
    long long badout = enqueue("test_output", "{\"invalid_utf8\": true}");
    long long good = enqueue("noop", "{}");
    CHECK(wait_status(good, "succeeded", 10000));
    /* refused by the dispatcher: no handler ran, no attempt counted */
    struct { long long id; const char *err; int attempts; } want[] = {
        {arr, "input is not a JSON object", 0}, {str, "input is not a JSON object", 0},
        {unknown, "unknown job type 'no_such_type'", 0}, {oversize, "over the 1000-byte limit", 0},
        {badout, "handler output is not valid UTF-8", 1},
    };
    for (int i = 0; i < 5; i++) {
        CHECK(wait_status(want[i].id, "failed", 10000));
        CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(want[i].id), NULL), want[i].attempts);
        char *err = job_field(want[i].id, "SELECT last_error FROM jobs WHERE id = $1");
        CHECK_CONTAINS(err, want[i].err);
        free(err);
    }
    CHECK(th_alive(w));
    long long after = enqueue("noop", "{}");
    CHECK(wait_status(after, "succeeded", 10000));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void priority_and_run_at_order(void)
{
    /* queued before the worker starts; one at a time, nothing held ahead */
    long long a = th_int("INSERT INTO jobs (job_type, priority) VALUES ('test_record', 5) RETURNING id", NULL);
    long long b = th_int("INSERT INTO jobs (job_type, priority) VALUES ('test_record', 0) RETURNING id", NULL);
    long long c = th_int("INSERT INTO jobs (job_type, priority, run_at) VALUES"
                         " ('test_record', -5, now() + interval '1500 ms') RETURNING id", NULL);
    long long d = th_int("INSERT INTO jobs (job_type, priority) VALUES ('test_record', 1) RETURNING id", NULL);
    long long e = th_int("INSERT INTO jobs (job_type, priority) VALUES ('test_record', 0) RETURNING id", NULL);
    const char *const args[] = {"--concurrency", "1", "--prefetch", "0", NULL};
    pid_t w = th_worker(args, FAST);
    CHECK(th_wait_int(5, 15000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    char *order = th_str("SELECT string_agg(job_id::text, ',' ORDER BY started_at) FROM test_executions", NULL);
    char want[128];
    snprintf(want, sizeof want, "%lld,%lld,%lld,%lld,%lld", b, e, d, a, c);
    CHECK_STR(order, want);
    free(order);
    CHECK_INT(th_int("SELECT (t.started_at >= j.run_at)::int FROM test_executions t JOIN jobs j"
                     " ON j.id = t.job_id WHERE j.id = $1", th_num(c), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void idempotency_key_dedupes(void)
{
    const char *sql = "INSERT INTO jobs (job_type, idempotency_key) VALUES ('noop', $1)"
                      " ON CONFLICT DO NOTHING RETURNING id";
    long long first = th_int(sql, "order-42", NULL);
    CHECK(first > 0);
    CHECK_INT(th_int(sql, "order-42", NULL), -1);           /* no row: deduped */
    CHECK(th_int(sql, "order-43", NULL) > 0);
    pid_t w = th_worker(NULL, FAST);
    CHECK(wait_status(first, "succeeded", 10000));
    CHECK_INT(th_int(sql, "order-42", NULL), -1);           /* still deduped after it ran */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'order-42'", NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void followups_in_completion_transaction(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long p = enqueue("test_followup", "{\"count\": 3}");
    long long q = enqueue("test_followup", "{\"count\": 2, \"then_retry\": true}");
    CHECK(wait_status(p, "succeeded", 10000));
    CHECK(wait_status(q, "succeeded", 10000));
    CHECK(th_wait_int(5, 10000, "SELECT count(*) FROM jobs WHERE parent_id IS NOT NULL AND status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE parent_id = $1 AND job_type = 'noop'", th_num(p), NULL), 3);
    /* the first attempt's follow-ups were discarded with its retry: 2, not 4 */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE parent_id = $1", th_num(q), NULL), 2);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(q), NULL), 2);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void notify_wakes_idle_worker(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};   /* polling effectively off */
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM workers", NULL));
    th_sleep_ms(300);   /* past the catch-up claim on connect */
    long long id = enqueue("noop", "{}");
    CHECK(wait_status(id, "succeeded", 5000));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void heartbeat_row_lives_with_worker(void)
{
    const char *const args[] = {"--concurrency", "3", "--queues", "default,mail", NULL};
    pid_t w = th_worker(args, FAST);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM workers WHERE pid = $1", th_num(w), NULL));
    CHECK_INT(th_int("SELECT concurrency FROM workers WHERE pid = $1", th_num(w), NULL), 3);
    char *q = th_str("SELECT array_to_string(queues, ',') FROM workers WHERE pid = $1", th_num(w), NULL);
    CHECK_STR(q, "default,mail");
    free(q);
    long long id = th_int("INSERT INTO jobs (job_type, queue) VALUES ('noop', 'mail') RETURNING id", NULL);
    long long other = th_int("INSERT INTO jobs (job_type, queue) VALUES ('noop', 'elsewhere') RETURNING id", NULL);
    CHECK(wait_status(id, "succeeded", 10000));
    th_sleep_ms(300);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(other), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_int("SELECT count(*) FROM workers", NULL), 0);   /* removed on a clean exit */
}

static void lease_is_extended_while_running(void)
{
    const char *const env[] = {"AGENTQ_LEASE_SECONDS=2", "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    long long id = enqueue("test_record", "{\"sleep_ms\": 5000}");
    CHECK(wait_status(id, "running", 10000));
    th_sleep_ms(3500);   /* well past the first 2 s lease */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'"
                     " AND locked_until > now()", th_num(id), NULL), 1);
    CHECK(wait_status(id, "succeeded", 10000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM test_executions WHERE job_id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void handler_timeout_retries_and_frees_the_job(void)
{
    pid_t w = th_worker(NULL, FAST);
    long long id = th_int("INSERT INTO jobs (job_type, input, max_attempts) VALUES"
                          " ('test_hang', '{\"ms\": 4500}', 1) RETURNING id", NULL);
    CHECK(wait_status(id, "failed", 10000));
    char *err = job_field(id, "SELECT last_error FROM jobs WHERE id = $1");
    CHECK_CONTAINS(err, "timed out after 2 s");
    free(err);
    long long next = enqueue("noop", "{}");
    CHECK(wait_status(next, "succeeded", 10000));
    th_sleep_ms(3000);  /* the late result arrives and is ignored */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'", th_num(id), NULL), 1);
    CHECK(th_alive(w));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void bad_flags_exit_2(void)
{
    const char *const a1[] = {"--concurrency", "0", NULL};
    const char *const a2[] = {"--queues", "bad queue;drop", NULL};
    const char *const a3[] = {"--bogus", NULL};
    const char *const env[] = {"AGENTQ_LEASE_SECONDS=soon", NULL};
    CHECK_INT(th_stop(th_worker(a1, NULL), 0, 5000), 2);
    CHECK_INT(th_stop(th_worker(a2, NULL), 0, 5000), 2);
    CHECK_INT(th_stop(th_worker(a3, NULL), 0, 5000), 2);
    CHECK_INT(th_stop(th_worker(NULL, env), 0, 5000), 2);
}

static void migrate_twice_concurrently(void)
{
    /* a fresh, empty database: two migrate processes race; both succeed */
    th_exec("DROP SCHEMA public CASCADE", NULL);   /* every migration's objects, whatever they are */
    th_exec("CREATE SCHEMA public", NULL);
    pid_t p[2];
    for (int i = 0; i < 2; i++) {
        p[i] = fork();
        if (p[i] == 0) {
            setenv("DATABASE_URL", th_db_url(), 1);
            int fd = open("/dev/null", 1);
            dup2(fd, 1);
            execl(th_bin("agentq"), "agentq", "migrate", (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < 2; i++) {
        int st;
        waitpid(p[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_INT(th_int("SELECT count(*) FROM schema_migrations WHERE name = '001_jobs'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM pg_tables WHERE tablename = 'jobs'", NULL), 1);
}

static void three_workers_drain_5000(void)
{
    th_exec("INSERT INTO jobs (job_type) SELECT 'test_record' FROM generate_series(1, 5000)", NULL);
    const char *const args[] = {"--concurrency", "8", NULL};
    /* one, two and three database connections per process */
    const char *const env[3][4] = {
        {"AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", "AGENTQ_DB_CONNECTIONS=1", NULL},
        {"AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", "AGENTQ_DB_CONNECTIONS=2", NULL},
        {"AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", "AGENTQ_DB_CONNECTIONS=3", NULL},
    };
    pid_t w[3];
    for (int i = 0; i < 3; i++) w[i] = th_worker(args, env[i]);
    CHECK(th_wait_int(5000, 120000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status <> 'succeeded'", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE attempts <> 1", NULL), 0);
    /* every job ran exactly once: none ran while another worker held it */
    CHECK_INT(th_int("SELECT count(*) FROM test_executions", NULL), 5000);
    CHECK_INT(th_int("SELECT count(DISTINCT job_id) FROM test_executions", NULL), 5000);
    CHECK_INT(th_int("SELECT count(*) FROM test_executions t JOIN test_executions u ON t.job_id = u.job_id"
                     " AND t.ctid <> u.ctid", NULL), 0);
    for (int i = 0; i < 3; i++) CHECK_INT(th_stop(w[i], SIGTERM, 15000), 0);
}

static void retention_prunes_old_finished_jobs(void)
{
    th_exec("INSERT INTO jobs (job_type, status, finished_at) VALUES"
            " ('noop', 'succeeded', now() - interval '200 hours'),"
            " ('noop', 'cancelled', now() - interval '200 hours'),"
            " ('noop', 'failed',    now() - interval '200 hours'),"
            " ('noop', 'succeeded', now() - interval '100 hours')", NULL);
    pid_t w = th_worker(NULL, FAST);   /* default retention: 168 hours */
    CHECK(th_wait_int(2, 10000, "SELECT count(*) FROM jobs", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 1);   /* dead letters stay */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE finished_at > now() - interval '101 hours'", NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* The other growing tables: notifications older than
 * AGENTQ_NOTIFICATION_RETENTION_HOURS (read or not), approvals decided longer
 * ago than that, and daily-turn counters a week old go; pending approvals and
 * recent rows stay. */
static void retention_prunes_notifications_and_decided_actions(void)
{
    long long u = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('r', 'tr', '\\x00') RETURNING id", NULL);
    const char *uid = th_num(u);
    th_exec("INSERT INTO notifications (user_id, kind, body, created_at, read_at) VALUES"
            " ($1, 'reply', 'old read', now() - interval '50 hours', now() - interval '49 hours'),"
            " ($1, 'reply', 'old unread', now() - interval '50 hours', NULL),"
            " ($1, 'reply', 'new', now() - interval '10 hours', NULL)", uid, NULL);
    th_exec("INSERT INTO pending_actions (user_id, job_id, tool, arguments, tool_call_id, status, expires_at,"
            " decided_at) VALUES"
            " ($1, 1, 'delete_task', '{}', 'c1', 'approved', now() - interval '60 hours', now() - interval '50 hours'),"
            " ($1, 2, 'delete_task', '{}', 'c2', 'expired', now() - interval '60 hours', now() - interval '50 hours'),"
            " ($1, 3, 'delete_task', '{}', 'c3', 'rejected', now(), now() - interval '1 hour'),"
            " ($1, 4, 'delete_task', '{}', 'c4', 'pending', now() - interval '60 hours', NULL)", uid, NULL);
    th_exec("INSERT INTO user_daily_turns (user_id, day, turns) VALUES ($1, current_date - 30, 3),"
            " ($1, current_date, 1)", uid, NULL);
    const char *const env[] = {"AGENTQ_NOTIFICATION_RETENTION_HOURS=24", "AGENTQ_RETENTION_HOURS=0",
                               "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM notifications", NULL));
    char *left = th_str("SELECT string_agg(body, ',') FROM notifications", NULL);
    CHECK_STR(left, "new");
    free(left);
    CHECK(th_wait_int(2, 10000, "SELECT count(*) FROM pending_actions", NULL));
    left = th_str("SELECT string_agg(tool_call_id, ',' ORDER BY id) FROM pending_actions", NULL);
    CHECK_STR(left, "c3,c4");   /* decided within the hours, and the undecided one */
    free(left);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM user_daily_turns", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void crash_loop_ends_failed(void)
{
    /* a job that kills its worker every time: after max_attempts it is failed
     * without being run again, instead of taking workers down forever */
    long long id = th_int("INSERT INTO jobs (job_type, max_attempts) VALUES ('test_crash', 2) RETURNING id", NULL);
    const char *const env[] = {"AGENTQ_LEASE_SECONDS=2", "AGENTQ_POLL_MS=100", NULL};
    int crashes = 0;
    for (int i = 0; i < 6; i++) {
        pid_t w = th_worker(NULL, env);
        for (int t = 0; t < 200 && th_alive(w); t++) {
            if (th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'", th_num(id), NULL) == 1) break;
            th_sleep_ms(50);
        }
        if (th_alive(w)) { CHECK_INT(th_stop(w, SIGTERM, 10000), 0); break; }
        crashes++;
    }
    CHECK_INT(crashes, 2);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'", th_num(id), NULL), 1);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "gave up after 2 attempts: lease expired");
    free(err);
}

/* Lease extension on one connection must not deadlock with completions on
 * the worker's other connection: a hot drain with extensions every ~0.7 s. */
static void extension_and_completion_never_deadlock(void)
{
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 120000)", NULL);
    const char *const env[] = {"AGENTQ_LEASE_SECONDS=2", "AGENTQ_DB_CONNECTIONS=2", "AGENTQ_POLL_MS=100", NULL};
    const char *const args[] = {"--concurrency", "8", "--prefetch", "2000", NULL};
    pid_t w = th_worker(args, env);
    CHECK(th_wait_int(120000, 120000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    extern char th_log[512];
    FILE *f = fopen(th_log, "r");
    char line[4096];
    int bad = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "deadlock") || strstr(line, "round failed") || strstr(line, "rolled back")) bad++;
    if (f) fclose(f);
    CHECK_INT(bad, 0);
}

/* A session of its own with an open transaction that ran sql (a lock it
 * holds, as an operator's open transaction would); release ends it. */
static PGconn *hold(const char *sql)
{
    PGconn *holder = PQconnectdb(th_db_url());
    CHECK(PQstatus(holder) == CONNECTION_OK);
    PGresult *r = PQexec(holder, "BEGIN");
    PQclear(r);
    r = PQexec(holder, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    return holder;
}

/* Job id's row lock (SELECT ... FOR UPDATE) held by a session of its own. */
static PGconn *lock_row(long long id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT 1 FROM jobs WHERE id = %lld FOR UPDATE", id);
    return hold(sql);
}

static void release(PGconn *holder)
{
    PGresult *r = PQexec(holder, "ROLLBACK");
    PQclear(r);
    PQfinish(holder);
}

/* A NOTIFY committed before the worker's LISTEN took effect reaches no one;
 * the claim after the LISTEN must find its rows, even when the first claim
 * went out before it on the other connection and comes back short after it
 * (its snapshot predates the rows). Here connection 0's setup (its LISTEN,
 * then publishing the job types) waits on job_types, and connection 1's
 * first round waits after its claim, in pruning a stale workers row another
 * session holds; the job is inserted between, then the setup ends, then the
 * round. Polling is off: before the setup's end counted as a wake-up, the
 * job waited for the poll (seen as 5,000 jobs untouched for 60 s in
 * engine_floor_keeps_claims_off_dead_head). */
static void wake_before_listen_not_lost(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};
    th_exec("INSERT INTO workers (id, host, pid, queues, concurrency, last_heartbeat)"
            " VALUES ('gone', 'h', 1, '{default}', 1, now() - interval '1 day')", NULL);
    PGconn *types = hold("LOCK TABLE job_types IN EXCLUSIVE MODE");
    PGconn *stale = hold("SELECT 1 FROM workers WHERE id = 'gone' FOR UPDATE");
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(2, 20000, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock'"
                      " AND (query LIKE 'INSERT INTO job_types%' OR query LIKE 'DELETE FROM workers%')", NULL));
    long long id = th_int("INSERT INTO jobs (job_type) VALUES ('noop') RETURNING id", NULL);
    release(types);
    CHECK(th_wait_int(0, 5000, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND query LIKE 'INSERT INTO job_types%' AND state <> 'idle'", NULL));
    th_sleep_ms(100);   /* the worker reads the setup's end; the claim is out well under its 1 s overdue */
    release(stale);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(id), NULL));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* The attempt mark of a prefetched job must not wait for a row another
 * transaction holds (in production, the worker's other connection completing
 * it): waiting deadlocked against that completion. With one connection a
 * waiting mark stalls every later round; so here another session holds the
 * marked job's row while a second job, enqueued afterwards, must still run. */
static void mark_skips_a_locked_row(void)
{
    const char *const env[] = {"AGENTQ_DB_CONNECTIONS=1", "AGENTQ_POLL_MS=100", "AGENTQ_HANDLER_THREADS=4", NULL};
    const char *const args[] = {"--concurrency", "2", "--prefetch", "10", NULL};
    pid_t w = th_worker(args, env);
    th_sleep_ms(300);
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_sleep', '{\"ms\": 1500}' FROM generate_series(1, 2)", NULL);
    long long held = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_sleep', '{\"ms\": 12000}') RETURNING id",
                            NULL);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(held), NULL));
    PGconn *locker = lock_row(held);
    /* the two short jobs finish, the held one starts on a freed slot and the
     * once-a-second tick sends its mark */
    CHECK(th_wait_int(2, 10000, "SELECT count(*) FROM jobs WHERE job_type = 'test_sleep' AND status = 'succeeded'", NULL));
    th_sleep_ms(2500);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 20)", NULL);
    CHECK(th_wait_int(20, 10000, "SELECT count(*) FROM jobs WHERE job_type = 'noop' AND status = 'succeeded'", NULL));
    release(locker);
    CHECK_INT(th_stop(w, SIGTERM, 20000), 0);
}

/* One claim is out at a time, but not forever: a completion waiting on a row
 * lock (another session holds the finished job's row: an operator's open
 * transaction) holds back its whole round, the claim in it too, and what its
 * connection has queued behind it. Here the claim is in it: a backlog of
 * 200 ms jobs keeps the claims coming back full (--concurrency 2, prefetch
 * 2), so the worker always wants one, and the held job's end frees the slot
 * its completion round claims for. The backlog must still all be claimed
 * while the lock is held (a second claim goes out once the first is a
 * second overdue); their own completions may wait behind the blocked round. */
static void claims_go_on_past_a_blocked_round(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};
    const char *const args[] = {"--concurrency", "2", "--prefetch", "2", NULL};
    long long held = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_sleep', '{\"ms\": 1500}') RETURNING id",
                            NULL);
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_sleep', '{\"ms\": 200}' FROM generate_series(1, 40)", NULL);
    pid_t w = th_worker(args, env);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(held), NULL));
    PGconn *locker = lock_row(held);
    /* the held job's completion now waits for the lock (after ~1.5 s) */
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE jobs j SET status%'", NULL));
    CHECK(th_wait_int(0, 20000, "SELECT count(*) FROM jobs WHERE status = 'queued'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(held), NULL), 1);
    release(locker);
    CHECK(th_wait_int(41, 15000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 20000), 0);
}

/* A claim's jobs start once its round has committed. Here the claim's
 * commit is held back 2 s (a deferred trigger, fired at commit, that first
 * sends a 20 kB notice, so the server flushes the claim's rows to the worker
 * before the commit, as a big claim followed by a statement with a long
 * answer did at 50 % steady load). Jobs started at once would finish and
 * send their completions on the other connection, which read the rows
 * before the claim committed: fenced out, left running until their lease
 * expired (30 s). */
static void claimed_jobs_start_after_commit(void)
{
    th_exec("CREATE SEQUENCE slow_commit_once", NULL);
    th_exec("CREATE FUNCTION slow_commit_once() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF nextval('slow_commit_once') = 1 THEN RAISE NOTICE '%', repeat('x', 20000);"
            " PERFORM pg_sleep(2); END IF; RETURN NULL; END $$", NULL);
    th_exec("CREATE CONSTRAINT TRIGGER slow_commit_once AFTER UPDATE OF status ON jobs DEFERRABLE INITIALLY DEFERRED"
            " FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION slow_commit_once()", NULL);
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};
    const char *const args[] = {"--concurrency", "8", "--prefetch", "500", NULL};
    pid_t w = th_worker(args, env);
    th_sleep_ms(300);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 200)", NULL);
    CHECK(th_wait_int(200, 15000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK(th_int("SELECT last_value FROM slow_commit_once", NULL) >= 1);   /* the commit was held back */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE claims <> 1", NULL), 0);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* A big --concurrency must not hoard: when the threads are what limits, the
 * worker holds the jobs in flight and at most prefetch + one per thread
 * waiting to start; the rest stay queued (for other workers). Two threads,
 * each job blocking one for 50 ms, --concurrency 1000 --prefetch 10: every
 * sample sees a few running jobs (2 on threads, 12 waiting, some finished
 * and not yet completed), where the first claim used to take all 120. */
static void claims_ahead_only_prefetch(void)
{
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_sleep', '{\"ms\": 50}' FROM generate_series(1, 120)", NULL);
    const char *const env[] = {"AGENTQ_HANDLER_THREADS=2", NULL};
    const char *const args[] = {"--concurrency", "1000", "--prefetch", "10", NULL};
    pid_t w = th_worker(args, env);
    long long peak = 0, done = 0;
    for (int i = 0; i < 3000 && done < 120; i++) {   /* up to a minute */
        long long running = th_int("SELECT count(*) FROM jobs WHERE status = 'running'", NULL);
        if (running > peak) peak = running;
        done = th_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL);
        th_sleep_ms(20);
    }
    CHECK_INT(done, 120);
    if (peak > 40) th_fail(__FILE__, __LINE__, "%lld jobs running at once with 2 threads and prefetch 10", peak);
    CHECK_INT(th_stop(w, SIGTERM, 20000), 0);
}

/* A statement that fails inside a round without completions (those run in
 * an explicit BEGIN ... COMMIT) must not leave the connection in an aborted
 * transaction: the next rounds would all fail with 25P02 and, one connection
 * being the worker's only one, no job would ever finish. The first claim is
 * made to fail once, by a trigger counting on a sequence (not rolled back). */
static void failed_round_leaves_no_aborted_block(void)
{
    th_exec("CREATE SEQUENCE claim_fail_once", NULL);
    th_exec("CREATE FUNCTION claim_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF nextval('claim_fail_once') = 1 THEN RAISE EXCEPTION 'injected claim failure'; END IF;"
            " RETURN NEW; END $$", NULL);
    th_exec("CREATE TRIGGER claim_fail_once BEFORE UPDATE OF status ON jobs FOR EACH ROW"
            " WHEN (OLD.status = 'queued' AND NEW.status = 'running') EXECUTE FUNCTION claim_fail_once()", NULL);
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 50)", NULL);
    const char *const env[] = {"AGENTQ_DB_CONNECTIONS=1", "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(50, 20000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK(th_int("SELECT last_value FROM claim_fail_once", NULL) >= 2);   /* the failure happened, then claims went on */
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* ---- the claim floor (worker/engine.c, "Claim floor") ---- */

/* n noop jobs at priority prio, in one INSERT; returns once the worker has
 * claimed them all; the lowest id of the batch. */
static long long floor_batch(int n, int prio)
{
    long long first = th_int("WITH i AS (INSERT INTO jobs (job_type, priority) SELECT 'noop', $1::smallint"
                             " FROM generate_series(1, $2::int) RETURNING id) SELECT min(id) FROM i",
                             th_num(prio), th_num(n), NULL);
    CHECK(th_wait_int(0, 30000, "SELECT count(*) FROM jobs WHERE id >= $1 AND priority = $2::smallint"
                      " AND status = 'queued'", th_num(first), th_num(prio), NULL));
    return first;
}

/* Job id, queued below where the worker's claims start, must be claimed no
 * later than the jobs of two batches queued after it: the next claims take
 * it first (jobs_claim's order), wherever the last one ended. */
static void claimed_first(long long id, const char *what)
{
    floor_batch(50, 5);
    long long later = floor_batch(50, 5);
    if (!th_wait_int(0, 30000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(id), NULL))
        return;
    if (th_int("SELECT (started_at <= (SELECT min(started_at) FROM jobs WHERE id >= $2))::int FROM jobs WHERE id = $1",
               th_num(id), th_num(later), NULL) != 1)
        th_fail(__FILE__, __LINE__, "%s: claimed after jobs queued later (left below the claim floor)", what);
}

/* A worker claiming a steady stream (priority 5) starts each claim at the key
 * of the last job it claimed. Jobs queued below that key — a higher priority,
 * a run_at in the past — are still claimed at once: their INSERT's wake-up
 * carries its lowest key (sql/020) and lowers the floor. Polling is off, so
 * nothing else would fetch them for a second. */
static void floor_lowered_by_insert(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};
    const char *const args[] = {"--concurrency", "8", "--prefetch", "100", NULL};
    pid_t w = th_worker(args, env);
    for (int i = 0; i < 5; i++) floor_batch(50, 5);
    claimed_first(th_int("INSERT INTO jobs (job_type, priority) VALUES ('noop', 0) RETURNING id", NULL),
                  "a job of a higher priority");
    for (int i = 0; i < 3; i++) floor_batch(50, 5);
    claimed_first(th_int("INSERT INTO jobs (job_type, priority, run_at) VALUES ('noop', 5, now() - interval '1 hour')"
                         " RETURNING id", NULL), "a job with a past run_at");
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* A keyed job held behind its key's running job (serial_held: out of
 * jobs_claim) sits far below the floor once the stream has moved on; the
 * key's release (sql/015's trigger: un-holds it, wakes with an empty
 * payload) makes the next claim start from the head again. */
static void floor_dropped_by_serial_release(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};
    const char *const args[] = {"--concurrency", "8", "--prefetch", "100", NULL};
    long long k1 = th_int("INSERT INTO jobs (job_type, priority, serial_key, status, locked_by, claims, attempts,"
                          " started_at) VALUES ('noop', 5, 'sk', 'running', 'elsewhere', 1, 1, now())"
                          " RETURNING id", NULL);
    long long k2 = th_int("INSERT INTO jobs (job_type, priority, serial_key) VALUES ('noop', 5, 'sk') RETURNING id",
                          NULL);
    pid_t w = th_worker(args, env);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND serial_held", th_num(k2), NULL));
    for (int i = 0; i < 5; i++) floor_batch(50, 5);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(k2), NULL), 1);
    th_exec("UPDATE jobs SET status = 'succeeded', locked_by = NULL, finished_at = now() WHERE id = $1",
            th_num(k1), NULL);
    claimed_first(k2, "a keyed job its key's release un-held");
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* jobs_claim's buffers (hit + read) so far, once every other session has
 * ended (a backend reports its counts at exit) and this one's are flushed. */
static long long claim_index_buffers(void)
{
    th_wait_int(0, 20000, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()", NULL);
    th_exec("SELECT pg_stat_force_next_flush()", NULL);
    th_exec("SELECT 1", NULL);
    return th_int("SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = 'jobs_claim'",
                  NULL);
}

/* The worker's claims start at its floor, not at the head of jobs_claim:
 * with 40,000 claimed jobs' entries dead at the head (autovacuum off), a
 * fresh worker fed one job at a time touches a few of the index's pages per
 * job (the insert's descent, the claim's), not all of them; only the claim
 * from the head once a second (the safety net) and at start reads the head. */
static void floor_keeps_claims_off_the_dead_head(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};
    const char *const args[] = {"--concurrency", "8", "--prefetch", "2000", NULL};
    th_exec("ALTER TABLE jobs SET (autovacuum_enabled = off)", NULL);
    pid_t w = th_worker(args, env);
    for (int b = 1; b <= 8; b++) {
        th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 5000)", NULL);
        CHECK(th_wait_int(b * 5000, 60000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    }
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    long long pages = th_int("SELECT pg_relation_size('jobs_claim') / 8192", NULL);
    long long before = claim_index_buffers();
    w = th_worker(args, env);
    enum { JOBS = 200 };
    for (int i = 0; i < JOBS; i++) {
        long long id = enqueue("noop", "{}");
        /* (not "status = 'queued'": that may be read through jobs_claim) */
        if (!th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND started_at IS NOT NULL",
                         th_num(id), NULL))
            break;
    }
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    long long per_job = (claim_index_buffers() - before) / JOBS;
    fprintf(stderr, "jobs_claim %lld pages; %lld buffers per job\n", pages, per_job);
    /* without the floor every claim reads them all: at least `pages` per job */
    if (per_job > pages / 2)
        th_fail(__FILE__, __LINE__, "jobs_claim (%lld pages, mostly dead entries): %lld buffers per job",
                pages, per_job);
}

const th_test th_engine_tests[] = {
    {"engine_lifecycle_success", lifecycle_success, 30, 1},
    {"engine_failed_round_leaves_no_aborted_block", failed_round_leaves_no_aborted_block, 40, 1},
    {"engine_output_quoting", output_survives_quoting, 30, 1},
    {"engine_retry_then_success", retry_then_success, 30, 1},
    {"engine_retries_exhausted", retries_exhausted, 30, 1},
    {"engine_permanent_failure", permanent_failure, 30, 1},
    {"engine_retry_after", retry_after_is_honoured, 30, 1},
    {"engine_malformed_input", malformed_input_fails_job_not_worker, 40, 1},
    {"engine_priority_run_at_order", priority_and_run_at_order, 30, 1},
    {"engine_idempotency_key", idempotency_key_dedupes, 30, 1},
    {"engine_followups", followups_in_completion_transaction, 30, 1},
    {"engine_notify_wakeup", notify_wakes_idle_worker, 30, 1},
    {"engine_heartbeat_queues", heartbeat_row_lives_with_worker, 30, 1},
    {"engine_lease_extension", lease_is_extended_while_running, 30, 1},
    {"engine_handler_timeout", handler_timeout_retries_and_frees_the_job, 40, 1},
    {"engine_bad_flags", bad_flags_exit_2, 30, 1},
    {"engine_migrate_concurrent", migrate_twice_concurrently, 30, 1},
    {"engine_retention_prune", retention_prunes_old_finished_jobs, 30, 1},
    {"engine_retention_notifications_and_actions", retention_prunes_notifications_and_decided_actions, 30, 1},
    {"engine_crash_loop_ends_failed", crash_loop_ends_failed, 90, 1},
    {"engine_three_workers_5000", three_workers_drain_5000, 180, 1},
    {"engine_extension_no_deadlock", extension_and_completion_never_deadlock, 150, 1},
    {"engine_claims_go_on_past_a_blocked_round", claims_go_on_past_a_blocked_round, 60, 1},
    {"engine_wake_before_listen_not_lost", wake_before_listen_not_lost, 60, 1},
    {"engine_claimed_jobs_start_after_commit", claimed_jobs_start_after_commit, 60, 1},
    {"engine_mark_skips_locked_row", mark_skips_a_locked_row, 90, 1},
    {"engine_floor_lowered_by_insert", floor_lowered_by_insert, 90, 1},
    {"engine_floor_dropped_by_serial_release", floor_dropped_by_serial_release, 90, 1},
    {"engine_floor_keeps_claims_off_dead_head", floor_keeps_claims_off_the_dead_head, 120, 1},
    {"engine_claims_ahead_only_prefetch", claims_ahead_only_prefetch, 90, 1},
    {0},
};
