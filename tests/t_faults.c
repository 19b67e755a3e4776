/* t_faults.c — fault tests: a worker killed with SIGKILL mid-batch, SIGTERM
 * with jobs in flight (finished within grace, or handed back after it), and
 * the database restarted under a running worker. */
#include "harness.h"
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void kill9_mid_batch(void)
{
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_record', '{\"sleep_ms\": 200}'"
            " FROM generate_series(1, 60)", NULL);
    const char *const env[] = {"AGENTQ_LEASE_SECONDS=2", "AGENTQ_POLL_MS=100", NULL};
    const char *const args[] = {"--concurrency", "4", "--prefetch", "16", NULL};
    pid_t a = th_worker(args, env);
    char like[64];
    snprintf(like, sizeof like, "%%:%d:%%", (int)a);
    /* wait until A holds a full batch (running + claimed-ahead), then kill it */
    CHECK(th_wait_int(1, 10000, "SELECT (count(*) >= 10)::int FROM jobs WHERE status = 'running'"
                                " AND locked_by LIKE $1", like, NULL));
    long long held = th_int("SELECT count(*) FROM jobs WHERE status = 'running' AND locked_by LIKE $1", like, NULL);
    CHECK_INT(th_stop(a, SIGKILL, 5000), 128 + SIGKILL);
    pid_t b = th_worker(args, env);
    CHECK(th_wait_int(60, 60000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'running'", NULL), 0);
    /* A's jobs came back through lease expiry, with the reason recorded */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE last_error LIKE 'lease expired: worker %'", NULL), held);
    CHECK_INT(th_int("SELECT count(DISTINCT job_id) FROM test_executions", NULL), 60);
    CHECK_INT(th_stop(b, SIGTERM, 10000), 0);
}

static void sigterm_with_jobs_in_flight(void)
{
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_record', '{\"sleep_ms\": 700}'"
            " FROM generate_series(1, 20)", NULL);
    const char *const env[] = {"AGENTQ_SHUTDOWN_GRACE_SECONDS=10", "AGENTQ_POLL_MS=100", NULL};
    const char *const args[] = {"--concurrency", "4", "--prefetch", "8", NULL};
    pid_t w = th_worker(args, env);
    CHECK(th_wait_int(12, 10000, "SELECT count(*) FROM jobs WHERE status = 'running'", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    /* nothing left running; every handler that had started finished (at most
     * four: the concurrency); everything else is back in the queue without an
     * attempt counted */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'running'", NULL), 0);
    long long done = th_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL);
    CHECK(done >= 1 && done <= 4);
    CHECK_INT(th_int("SELECT count(*) FROM test_executions", NULL), done);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'queued' AND attempts = 0"
                     " AND locked_by IS NULL AND started_at IS NULL", NULL), 20 - done);
    CHECK_INT(th_int("SELECT count(*) FROM workers", NULL), 0);
    pid_t w2 = th_worker(args, env);
    CHECK(th_wait_int(20, 30000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM test_executions", NULL), 20);   /* nothing ran twice */
    CHECK_INT(th_stop(w2, SIGTERM, 15000), 0);
}

static void sigterm_grace_expires(void)
{
    const char *const env[] = {"AGENTQ_SHUTDOWN_GRACE_SECONDS=1", "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    long long id = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_sleep', '{\"ms\": 8000}') RETURNING id", NULL);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(id), NULL));
    CHECK_INT(th_stop(w, SIGTERM, 6000), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 1",
                     th_num(id), NULL), 1);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(err, "worker shut down before the handler finished");
    free(err);
}

static void database_restart_mid_run(void)
{
    const char *const env[] = {"AGENTQ_POLL_MS=600000", "AGENTQ_LEASE_SECONDS=5", NULL};
    const char *const args[] = {"--concurrency", "4", NULL};
    pid_t w = th_worker(args, env);
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_record', '{\"sleep_ms\": 20}'"
            " FROM generate_series(1, 300)", NULL);
    CHECK(th_wait_int(1, 20000, "SELECT (count(*) >= 30)::int FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_RESTART"), 0);
    CHECK(th_wait_int(300, 60000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK(th_alive(w));
    /* re-LISTENed: a new job is picked up by NOTIFY (polling is off) */
    long long id = th_int("INSERT INTO jobs (job_type) VALUES ('noop') RETURNING id", NULL);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(id), NULL));
    CHECK_INT(th_int("SELECT count(DISTINCT job_id) FROM test_executions", NULL), 300);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

static void database_down_at_start(void)
{
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_STOP"), 0);
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    th_sleep_ms(1500);
    CHECK(th_alive(w));                 /* retries with backoff, does not exit */
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_START"), 0);
    long long id = th_int("INSERT INTO jobs (job_type) VALUES ('noop') RETURNING id", NULL);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(id), NULL));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

const th_test th_fault_tests[] = {
    {"fault_kill9_mid_batch", kill9_mid_batch, 90, 1},
    {"fault_sigterm_in_flight", sigterm_with_jobs_in_flight, 60, 1},
    {"fault_sigterm_grace_expires", sigterm_grace_expires, 30, 1},
    {"fault_database_restart", database_restart_mid_run, 120, 1},
    {"fault_database_down_at_start", database_down_at_start, 60, 1},
    {0},
};
