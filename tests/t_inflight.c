/* t_inflight.c — jobs in flight that hold no thread and no database
 * connection (issue 13): a step handler awaiting HTTP on the worker's loop
 * (test_http), agent turns by the thousand against the fake model on a role
 * held to 40 connections, a timed-out request aborted, and SIGTERM, kill -9
 * and a database restart with hundreds of requests in flight: nothing lost,
 * nothing stored twice. */
#include "harness.h"
#include <cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the scale of the big tests: smaller when sanitized (slower), never below 200 in flight */
#ifdef __SANITIZE_ADDRESS__
#define MANY 1000
#define SOME 400
#else
#define MANY 2000
#define SOME 500
#endif

extern char th_log[512];
static char fake_url[128];

static pid_t worker_with(const char *const *args, const char *db_url, const char *extra1, const char *extra2)
{
    static char base[200], url[700];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env_plain[] = {"LLM_PROVIDER=openai", base, "LLM_API_KEY=sk-test", "LLM_MODEL=test-model",
                                     "AGENTQ_RETRY_BASE_MS=50", "AGENTQ_POLL_MS=100",
                                     extra1 ? extra1 : "AGENTQ_LOG_LEVEL=info",
                                     extra2 ? extra2 : "AGENTQ_LOG_LEVEL=info", NULL, NULL};
    const char **env = (const char **)env_plain;
    if (db_url) {
        snprintf(url, sizeof url, "DATABASE_URL=%s", db_url);
        env[8] = url;
    }
    return th_worker(args, env);
}

/* Insert n agent turns, each its own user and session. */
static void many_turns(int n)
{
    th_exec("WITH u AS (INSERT INTO users (name, token_id, token_hash) SELECT 'u' || g, 'u' || g, '\\x00'"
            " FROM generate_series(1, $1::int) g RETURNING id),"
            " t AS (SELECT id, gen_random_uuid() AS s FROM u)"
            " INSERT INTO jobs (job_type, input, user_id, session_id, max_attempts)"
            " SELECT 'agent_turn', json_build_object('message', 'hi', 'session_id', s::text, 'channel', 'web'),"
            " id, s, 5 FROM t", th_num(n), NULL);
}

/* Every turn succeeded with exactly one user message and one reply stored. */
static void check_each_reply_once(int n)
{
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'"
                     " AND output->>'reply' = 'done'", NULL), n);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE role = 'assistant'", NULL), n);
    CHECK_INT(th_int("SELECT count(DISTINCT session_id) FROM chat_message_history WHERE role = 'assistant'", NULL), n);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE role = 'user'", NULL), n);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'failed'", NULL), 0);
}

#define REPLY "\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"done\"}}]," \
              "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}"

/* 40 jobs awaiting a slow answer on 2 handler threads and 1 handler
 * connection: all 40 requests are in flight at once (the fake sees 40
 * connections: each held until its answer), and each job runs two steps. */
static void await_holds_no_thread(void)
{
    th_fake("[{\"delay_ms\":3000,\"repeat\":-1,\"body\":{\"ok\":true}}]", fake_url, sizeof fake_url);
    const char *const args[] = {"--concurrency", "40", NULL};
    pid_t w = worker_with(args, NULL, "AGENTQ_HANDLER_THREADS=2", "AGENTQ_HANDLER_DB_CONNECTIONS=1");
    char url[200];
    snprintf(url, sizeof url, "%s/slow", fake_url);
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_http', json_build_object('url', $1::text)"
            " FROM generate_series(1, 40)", url, NULL);
    CHECK(th_wait_int(40, 60000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE output->>'status' = '200' AND output->>'steps' = '2'"
                     " AND output->>'body_len' = '11' AND output->'error' = 'null'", NULL), 40);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 40);
    char seen[4096] = {0};
    int conns = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        long long c = th_jnum(r, "conn");
        if (c > 0 && c < 4096 && !seen[c]) { seen[c] = 1; conns++; }
    }
    CHECK_INT(conns, 40);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

/* A job awaiting an answer longer than its lease (2 s): the lease is
 * extended while it awaits, so it is never rescued, and it runs once. A step
 * that leaves a transaction open (a handler bug) has it rolled back when the
 * step ends: its insert is gone, and the next step's insert commits on its
 * own instead of joining a transaction nobody commits. */
static void lease_extended_while_awaiting(void)
{
    th_fake("[{\"delay_ms\":6000,\"repeat\":-1,\"body\":{\"ok\":true}}]", fake_url, sizeof fake_url);
    pid_t w = worker_with(NULL, NULL, "AGENTQ_LEASE_SECONDS=2", NULL);
    char url[200];
    snprintf(url, sizeof url, "%s/slow", fake_url);
    long long id = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_http',"
                          " json_build_object('url', $1::text, 'leave_open', true)) RETURNING id", url, NULL);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(id), NULL));
    CHECK_INT(th_int("SELECT attempts * 10 + lost FROM jobs WHERE id = $1", th_num(id), NULL), 10);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND output->>'steps' = '2'", th_num(id), NULL), 1);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 1);
    cJSON_Delete(reqs);
    CHECK_INT(th_int("SELECT (coalesce(string_agg(attempt::text, ','), '') = '2')::int FROM test_executions"
                     " WHERE job_id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

/* Lines in the fake's list of connections clients closed before their answer. */
static int closed_early(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s.closed", th_fake_log_path());
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

/* A job past its 2 s timeout while its request waits on a 25 s answer: the
 * request is aborted by the worker at the job's timeout (the fake sees the
 * connection closed before its answer; left alone, curl's own backstop, 30
 * s past the job's timeout, would have let the answer arrive), and the job
 * is retried (here its last attempt: it fails). */
static void timeout_aborts_request(void)
{
    th_fake("[{\"delay_ms\":25000,\"repeat\":-1,\"body\":{\"ok\":true}}]", fake_url, sizeof fake_url);
    pid_t w = worker_with(NULL, NULL, NULL, NULL);
    char url[200];
    snprintf(url, sizeof url, "%s/slow", fake_url);
    long long id = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_http_short',"
                          " json_build_object('url', $1::text, 'timeout_ms', 60000)) RETURNING id", url, NULL);
    CHECK(th_fake_wait(1, 15000));
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'"
                      " AND last_error LIKE '%timed out after 2 s%'", th_num(id), NULL));
    for (int i = 0; i < 100 && closed_early() < 1; i++) th_sleep_ms(100);
    CHECK_INT(closed_early(), 1);
    /* by the engine at the job's timeout, not by curl's own bound */
    FILE *f = fopen(th_log, "r");
    char line[2048];
    int aborted = 0;
    while (f && fgets(line, sizeof line, f)) aborted += strstr(line, "timed out after 2 s: its request aborted") != NULL;
    if (f) fclose(f);
    CHECK_INT(aborted, 1);
    CHECK(th_alive(w));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

/* The worker's own role, held to 40 connections like a small server
 * (max_connections=40), not a superuser (the limit binds only those); the
 * conninfo to log in as it (static). */
static const char *limited_role(void)
{
    th_exec("DO $$ DECLARE r text := current_database() || '_w'; BEGIN"
            " EXECUTE format('CREATE ROLE %I LOGIN CONNECTION LIMIT 40', r);"
            " EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);"
            " EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA public TO %I', r);"
            " EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %I', r); END $$", NULL);
    static char url[600];
    char *role = th_str("SELECT current_database() || '_w'", NULL);
    snprintf(url, sizeof url, "%s user=%s", th_db_url(), role);
    free(role);
    return url;
}

/* MANY agent turns at --concurrency MANY against a model that answers in
 * 500 ms, on a role held to 40 connections: all succeed, each reply stored
 * once, and the worker never holds more than its configured connections
 * (2 engine + 4 handler + 1 scheduler), sampled all along the run. */
static void many_turns_few_connections(void)
{
    th_fake("[{\"delay_ms\":500,\"repeat\":-1," REPLY "}]", fake_url, sizeof fake_url);
    const char *url = limited_role();
    many_turns(MANY);
    char conc[16];
    snprintf(conc, sizeof conc, "%d", MANY);
    const char *const args[] = {"--concurrency", conc, NULL};
    pid_t w = worker_with(args, url, "AGENTQ_HANDLER_DB_CONNECTIONS=4", "AGENTQ_DB_CONNECTIONS=2");
    long long peak = 0, done = 0;
    for (int i = 0; i < 3000 && done < MANY; i++) {   /* up to 300 s */
        long long n = th_int("SELECT count(*) FROM pg_stat_activity WHERE usename = current_database() || '_w'", NULL);
        if (n > peak) peak = n;
        done = th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'"
                      " AND status IN ('succeeded', 'failed')", NULL);
        th_sleep_ms(100);
    }
    CHECK_INT(done, MANY);
    check_each_reply_once(MANY);
    CHECK(peak >= 3);   /* the samples saw the worker */
    CHECK(peak <= 7);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), MANY);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 30000), 0);
}

/* SOME turns in flight on a slow model when the worker is stopped (SIGTERM,
 * 1 s grace: the requests are aborted and the jobs handed back) or killed
 * (SIGKILL: their leases expire), or when the database restarts under them;
 * a second worker (or the same one) finishes them: every turn ends with one
 * reply, none lost, none stored twice. */
static void faults_in_flight(int how)
{
    th_fake("[{\"delay_ms\":4000,\"repeat\":-1," REPLY "}]", fake_url, sizeof fake_url);
    many_turns(SOME);
    char conc[16];
    snprintf(conc, sizeof conc, "%d", SOME);
    const char *const args[] = {"--concurrency", conc, NULL};
    pid_t w = worker_with(args, NULL, "AGENTQ_SHUTDOWN_GRACE_SECONDS=1", "AGENTQ_LEASE_SECONDS=3");
    CHECK(th_fake_wait(SOME / 2, 60000));   /* half of them await the model */
    if (how == 0) {
        CHECK_INT(th_stop(w, SIGTERM, 20000), 0);
        CHECK(th_int("SELECT count(*) FROM jobs WHERE status = 'running'", NULL) == 0);
        for (int i = 0; i < 100 && closed_early() < SOME / 2; i++) th_sleep_ms(100);
        CHECK(closed_early() >= SOME / 2);   /* the requests in flight were aborted, not left open */
    } else if (how == 1) {
        kill(w, SIGKILL);
        th_stop(w, SIGKILL, 5000);
    } else {
        CHECK_INT(th_run_env_cmd("AQ_TEST_PG_RESTART"), 0);
    }
    if (how != 2) w = worker_with(args, NULL, "AGENTQ_SHUTDOWN_GRACE_SECONDS=1", "AGENTQ_LEASE_SECONDS=3");
    CHECK(th_wait_int(SOME, 180000, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'"
                      " AND status IN ('succeeded', 'failed')", NULL));
    check_each_reply_once(SOME);
    CHECK(th_alive(w));
    CHECK_INT(th_stop(w, SIGTERM, 30000), 0);
}

static void sigterm_in_flight(void) { faults_in_flight(0); }
static void kill9_in_flight(void) { faults_in_flight(1); }
static void db_restart_in_flight(void) { faults_in_flight(2); }

/* An owned write (here the turn storing its reply) is refused once the
 * lease has lapsed, even before the rescue has re-queued the job: a write
 * committed then could be followed by the rescue, before this run's
 * completion, and the next run would store the reply again (seen after a
 * database outage longer than the lease). The refused run retries; the next
 * asks the model again and stores the one reply. */
static void owned_write_refused_on_lapsed_lease(void)
{
    th_fake("[{\"delay_ms\":3000,\"repeat\":-1," REPLY "}]", fake_url, sizeof fake_url);
    /* extension every 40 s and rescue every 30 s: neither within this test's window */
    pid_t w = worker_with(NULL, NULL, "AGENTQ_LEASE_SECONDS=120", NULL);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM workers", NULL));
    many_turns(1);
    CHECK(th_fake_wait(1, 20000));   /* the model is thinking */
    th_exec("UPDATE jobs SET locked_until = now() - interval '1 second'"
            " WHERE job_type = 'agent_turn' AND status = 'running'", NULL);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    CHECK(th_fake_wait(2, 1000));   /* the refused run's answer was not stored: the next run asked again */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE role = 'assistant'", NULL), 1);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE job_type = 'agent_turn'", NULL), 2);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* A handler keeps the connection it was given (agent_turn does) while the
 * connection is lost and cannot be remade at once (the database refuses new
 * connections): the dispatcher resets that same connection in place, so the
 * kept pointer works again once connections are allowed. Before, the lost
 * connection was finished and replaced mid-step and the handler's pointer
 * freed (a use after free ASan showed after a database restart). */
static void kept_connection_survives_its_loss(void)
{
    pid_t w = worker_with(NULL, NULL, NULL, NULL);
    long long id = th_int("INSERT INTO jobs (job_type, input) VALUES ('test_db_kept', '{}') RETURNING id", NULL);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(id), NULL));
    /* a database cannot forbid connections to itself: ask from the postgres database */
    char *db = th_str("SELECT current_database()", NULL);
    const char *keys[] = {"dbname", "dbname", NULL}, *vals[] = {th_db_url(), "postgres", NULL};
    PGconn *admin = PQconnectdbParams(keys, vals, 1);
    CHECK(PQstatus(admin) == CONNECTION_OK);
    char sql[300];
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", db);
    PQclear(PQexec(admin, sql));
    th_sleep_ms(1500);   /* the handler sees it within 100 ms, ends its backend and fails to reconnect */
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", db);
    PGresult *r = PQexec(admin, sql);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(admin);
    free(db);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(id), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND output->>'kept' = 'true'", th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
}

const th_test th_inflight_tests[] = {
    {"inflight_await_holds_no_thread", await_holds_no_thread, 90, 1},
    {"inflight_timeout_aborts_request", timeout_aborts_request, 60, 1},
    {"inflight_lease_extended_while_awaiting", lease_extended_while_awaiting, 60, 1},
    {"inflight_many_turns_few_connections", many_turns_few_connections, 400, 1},
    {"inflight_sigterm", sigterm_in_flight, 300, 1},
    {"inflight_kill9", kill9_in_flight, 300, 1},
    {"inflight_db_restart", db_restart_in_flight, 300, 1},
    {"inflight_owned_write_refused_on_lapsed_lease", owned_write_refused_on_lapsed_lease, 90, 1},
    {"inflight_kept_connection_survives_its_loss", kept_connection_survives_its_loss, 90, 1},
    {0},
};
