/* t_failures.c — never silent, never stuck (issue 9): every path to a final
 * failure leaves exactly one apology in the session and a failure notice on
 * the turn's routes (dispatcher refusal, lease expiry, permanent provider
 * error, last-attempt timeout); a run that timed out writes nothing later;
 * outages of the model and of Telegram are waited out without spending
 * attempts, and notify's backoff stays capped. The model and Telegram are
 * the fake server (bin/agentq-fake). */
#include "harness.h"
#include <signal.h>
#include <stdlib.h>

#define SID  "7a1b2c3d-0000-4000-8000-0000000000f1"
#define SID2 "7a1b2c3d-0000-4000-8000-0000000000f2"

static char fake_url[128];

/* A worker whose model (openai) and Telegram are the fake, with up to four
 * more "K=V" settings (NULL-terminated) and optional flags. */
static pid_t worker_on_fake(const char *const *args, const char *e1, const char *e2, const char *e3)
{
    static char llm[200], tg[200];
    snprintf(llm, sizeof llm, "LLM_BASE_URL=%s/v1", fake_url);
    snprintf(tg, sizeof tg, "TELEGRAM_API_BASE=%s", fake_url);
    const char *env[16];
    int n = 0;
    env[n++] = "LLM_PROVIDER=openai";
    env[n++] = llm;
    env[n++] = "LLM_API_KEY=sk-test";
    env[n++] = "LLM_MODEL=test-model";
    env[n++] = "TELEGRAM_BOT_TOKEN=123:test";
    env[n++] = tg;
    env[n++] = "AGENTQ_RETRY_BASE_MS=20";
    env[n++] = "AGENTQ_POLL_MS=100";
    if (e1) env[n++] = e1;
    if (e2) env[n++] = e2;
    if (e3) env[n++] = e3;
    env[n] = NULL;
    return th_worker(args, env);
}

static long long new_user(const char *name)
{
    return th_int("INSERT INTO users (name, token_id, token_hash) VALUES ($1, $1, '\\x00') RETURNING id", name, NULL);
}

static long long turn_in(const char *type, long long uid, const char *sid, const char *message, int max_attempts)
{
    return th_int("INSERT INTO jobs (job_type, input, user_id, session_id, max_attempts) VALUES ($5,"
                  " json_build_object('message', $2::text, 'session_id', $3::text, 'channel', 'web'), $1, $3::uuid, $4)"
                  " RETURNING id", th_num(uid), message, sid, th_num(max_attempts), type, NULL);
}

static int wait_status(long long id, const char *status, int ms)
{
    return th_wait_int(1, ms, "SELECT count(*) FROM jobs WHERE id = $1 AND status = $2", th_num(id), status, NULL);
}

static const char *final_step(const char *text, int repeat)
{
    static char s[600];
    snprintf(s, sizeof s, "{\"repeat\":%d,\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"%s\"}}],"
             "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}}", repeat, text);
    return s;
}

static long long apologies(const char *sid)
{
    return th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'assistant'"
                  " AND content LIKE 'Sorry, I could not answer%'", sid, NULL);
}

/* The failed turn's one apology, and its failure notice delivered to the web inbox. */
static void check_told_once(long long job, const char *sid)
{
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM notifications WHERE job_id = $1 AND kind = 'failure'",
                      th_num(job), NULL));
    CHECK_INT(apologies(sid), 1);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE job_id = $1 AND role = 'assistant'"
                     " AND content LIKE 'Sorry, I could not answer%'", th_num(job), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE job_id = $1", th_num(job), NULL), 1);
}

/* ---- every final failure reaches the user ---- */

static void refused_input_apologises(void)
{
    th_fake("[]", fake_url, sizeof fake_url);
    long long uid = new_user("rita");
    pid_t w = worker_on_fake(NULL, "AGENTQ_MAX_INPUT_BYTES=400", NULL, NULL);
    long long id = th_int("INSERT INTO jobs (job_type, input, user_id, session_id) VALUES ('agent_turn',"
                          " json_build_object('message', repeat('x', 1000), 'session_id', $2::text, 'channel', 'web'),"
                          " $1, $2::uuid) RETURNING id", th_num(uid), SID, NULL);
    CHECK(wait_status(id, "failed", 15000));
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "over the 400-byte limit");
    free(err);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 0);
    check_told_once(id, SID);
    CHECK_INT(th_int("SELECT count(*) FROM chat_sessions WHERE id = $1 AND user_id = $2", SID, th_num(uid), NULL), 1);
    cJSON *reqs = th_fake_requests();   /* the model was never asked */
    CHECK_INT(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void lease_expiry_apologises(void)
{
    th_fake("[{\"delay_ms\":60000,\"repeat\":-1,\"body\":{}}]", fake_url, sizeof fake_url);
    long long uid = new_user("luke");
    pid_t a = worker_on_fake(NULL, "AGENTQ_LEASE_SECONDS=2", NULL, NULL);
    long long id = turn_in("agent_turn", uid, SID, "hi", 1);
    CHECK(th_fake_wait(1, 15000));           /* its one attempt is in the model call */
    CHECK_INT(th_stop(a, SIGKILL, 5000), 128 + SIGKILL);
    pid_t b = worker_on_fake(NULL, "AGENTQ_LEASE_SECONDS=2", NULL, NULL);
    CHECK(wait_status(id, "failed", 20000));
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "gave up after 1 attempts: lease expired");
    free(err);
    check_told_once(id, SID);
    CHECK_INT(th_stop(b, SIGTERM, 10000), 0);
}

static void permanent_failure_apologises_once(void)
{
    th_fake("[{\"status\":401,\"body\":{\"error\":{\"message\":\"Incorrect API key provided\"}},\"repeat\":-1}]",
            fake_url, sizeof fake_url);
    long long uid = new_user("pat");
    pid_t w = worker_on_fake(NULL, NULL, NULL, NULL);
    long long id = turn_in("agent_turn", uid, SID, "hi", 5);
    CHECK(wait_status(id, "failed", 15000));
    check_told_once(id, SID);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* The handler blocks (its session row is locked by the test) past its 3 s
 * timeout on its last attempt; the job fails with one apology, and when the
 * handler resumes, nothing is stored: its step's model request is dropped
 * (a timed-out run's step goes no further), so the model is never asked. */
static void timed_out_run_writes_nothing_later(void)
{
    char script[700];
    snprintf(script, sizeof script, "[%s]", final_step("too late", -1));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("tim");
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, 'web')", SID, th_num(uid), NULL);
    const char *const args[] = {"--concurrency", "1", NULL};
    pid_t w = worker_on_fake(args, NULL, NULL, NULL);
    PGconn *locker = PQconnectdb(th_db_url());
    CHECK(PQstatus(locker) == CONNECTION_OK);
    PQclear(PQexec(locker, "BEGIN"));
    const char *lp[] = {SID};
    PGresult *lr = PQexecParams(locker, "SELECT 1 FROM chat_sessions WHERE id = $1 FOR UPDATE", 1, NULL, lp, NULL, NULL, 0);
    CHECK_INT(PQntuples(lr), 1);
    PQclear(lr);
    long long id = turn_in("test_agent_turn", uid, SID, "hi", 1);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND last_error LIKE 'timed out after 3 s%'",
                      th_num(id), NULL));
    PQclear(PQexec(locker, "ROLLBACK"));      /* the handler resumes */
    PQfinish(locker);
    long long after = th_int("INSERT INTO jobs (job_type) VALUES ('noop') RETURNING id", NULL);
    CHECK(wait_status(after, "succeeded", 15000));   /* one thread: the late handler has returned */
    CHECK(wait_status(id, "failed", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND content = 'too late'",
                     SID, NULL), 0);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    check_told_once(id, SID);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* ---- outages are waited out ---- */

static void model_outage_is_survived(void)
{
    char script[900];
    snprintf(script, sizeof script, "[{\"status\":503,\"body\":{\"error\":{\"message\":\"overloaded\"}},\"repeat\":14},%s]",
             final_step("back again", -1));
    th_fake(script, fake_url, sizeof fake_url);
    long long u1 = new_user("olga"), u2 = new_user("omar");
    pid_t w = worker_on_fake(NULL, "AGENTQ_TRANSIENT_BACKOFF_MAX_MS=100", NULL, NULL);
    long long t1 = turn_in("agent_turn", u1, SID, "hi", 3);
    CHECK(th_fake_wait(1, 15000));           /* the outage is on: a second turn arrives during it */
    long long t2 = turn_in("agent_turn", u2, SID2, "hello", 3);
    CHECK(wait_status(t1, "succeeded", 30000));
    CHECK(wait_status(t2, "succeeded", 30000));
    /* 14 failures between two turns of 3 attempts: none was spent */
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(t1), NULL), 1);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(t2), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id IN ($1, $2) AND transient_since IS NULL",
                     th_num(t1), th_num(t2), NULL), 2);
    CHECK_INT(apologies(SID) + apologies(SID2), 0);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 16);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

#define TG_OK "{\"match\":\"/sendMessage\",\"repeat\":-1,\"body\":{\"ok\":true,\"result\":{\"message_id\":7}}}"

static long long notify_job(long long uid, const char *text, int max_attempts)
{
    return th_int("INSERT INTO jobs (job_type, user_id, max_attempts, input) VALUES ('notify', $1, $3,"
                  " json_build_object('to', 'telegram', 'chat_id', 555, 'kind', 'info', 'text', $2::text))"
                  " RETURNING id", th_num(uid), text, th_num(max_attempts), NULL);
}

static void telegram_429_storm_spends_no_attempts(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"status\":429,\"repeat\":6,\"body\":{\"ok\":false,\"error_code\":429,"
            "\"description\":\"Too Many Requests: retry after 0\",\"parameters\":{\"retry_after\":0}}}," TG_OK "]",
            fake_url, sizeof fake_url);
    long long uid = new_user("stormy");
    pid_t w = worker_on_fake(NULL, NULL, NULL, NULL);
    long long id = notify_job(uid, "hi", 2);
    CHECK(wait_status(id, "succeeded", 20000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 7);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void notify_backoff_is_capped(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"status\":502,\"repeat\":-1,\"body\":{\"ok\":false,\"error_code\":502,"
            "\"description\":\"Bad Gateway\"}}]", fake_url, sizeof fake_url);
    long long uid = new_user("capped");
    /* no outage budget left (0 s): the retry spends an attempt, 15 in, but
     * waits at most AGENTQ_TRANSIENT_BACKOFF_MAX_MS (default 2 min), not
     * 50 ms x 2^15 */
    long long old = notify_job(uid, "old news", 25);
    th_exec("UPDATE jobs SET attempts = 15 WHERE id = $1", th_num(old), NULL);
    pid_t w = worker_on_fake(NULL, "AGENTQ_RETRY_BASE_MS=50", "AGENTQ_LLM_RETRY_SECONDS=0", NULL);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 16",
                      th_num(old), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND run_at <= now() + interval '125 seconds'",
                     th_num(old), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    /* within the budget (default 600 s): retried without spending an attempt,
     * the outage's start remembered */
    w = worker_on_fake(NULL, "AGENTQ_RETRY_BASE_MS=50", NULL, NULL);
    long long fresh = notify_job(uid, "news", 25);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'"
                                " AND last_error LIKE '%Bad Gateway%'", th_num(fresh), NULL));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(fresh), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND transient_since IS NOT NULL", th_num(fresh), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

const th_test th_failure_tests[] = {
    {"failure_refused_input_apologises", refused_input_apologises, 60, 1},
    {"failure_lease_expiry_apologises", lease_expiry_apologises, 60, 1},
    {"failure_permanent_apologises_once", permanent_failure_apologises_once, 60, 1},
    {"failure_timed_out_run_writes_nothing", timed_out_run_writes_nothing_later, 90, 1},
    {"outage_model_survived", model_outage_is_survived, 90, 1},
    {"outage_telegram_429_storm", telegram_429_storm_spends_no_attempts, 60, 1},
    {"outage_notify_backoff_capped", notify_backoff_is_capped, 60, 1},
    {0},
};
