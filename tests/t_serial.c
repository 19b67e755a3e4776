/* t_serial.c — serial keys and the per-user cap (issue 13): one job of a key
 * runs at a time, in id order, across workers; a turn parked waiting for an
 * approval does not hold its session; AGENTQ_USER_MAX_INFLIGHT holds across
 * workers while other users' turns go on. Real workers, real Postgres, the
 * fake model (bin/agentq-fake), whose request log shows what each turn saw. */
#include "harness.h"
#include <cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define SID "5e1a1000-0000-4000-8000-000000000001"

static char fake_url[128];

static pid_t worker_on_fake(const char *const *args, const char *extra)
{
    static char base[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_API_KEY=sk-test", "LLM_MODEL=test-model",
                               "AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=200",
                               extra ? extra : "AGENTQ_LOG_LEVEL=info", NULL};
    return th_worker(args, env);
}

/* A model reply with text, answered after delay_ms, served `repeat` times. */
static void reply_step(char *out, size_t n, const char *text, int delay_ms, int repeat)
{
    snprintf(out, n, "{\"delay_ms\":%d,\"repeat\":%d,\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\","
             "\"content\":\"%s\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}}", delay_ms, repeat, text);
}

/* The messages[] of the fake's request i, as one JSON text (heap). */
static char *request_messages(const cJSON *reqs, int i)
{
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, i), "body");
    return cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(body, "messages"));
}

/* Five messages sent to one session in a burst (each POST answered 202 before
 * the next, none waiting for its turn): five turns, one after another, in
 * order, each seeing the replies before it. The model takes 300 ms a reply, so
 * without serial keys the five run at once and none sees another's reply. */
static void five_messages_one_session_in_order(void)
{
    char *tok = th_user("sam", 0);
    char step[400];
    reply_step(step, sizeof step, "one reply", 300, -1);
    char script[600];
    snprintf(script, sizeof script, "[%s]", step);
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = th_api(NULL);
    const char *const args[] = {"--concurrency", "8", NULL};
    pid_t w = worker_on_fake(args, NULL);
    for (int i = 1; i <= 5; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"message\":\"message %d\",\"session_id\":\"" SID "\"}", i);
        th_resp r = th_post("/v1/chat", tok, body);
        CHECK_INT(r.status, 202);
        th_resp_free(&r);
    }
    CHECK(th_wait_int(5, 60000, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    CHECK_INT(th_int("SELECT count(DISTINCT serial_key) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", th_int("SELECT min(id) FROM jobs WHERE job_type = 'agent_turn'", NULL));
    th_resp jr = th_get(path, tok);   /* the key, read-only in the job's JSON */
    CHECK_CONTAINS(jr.body, "\"serial_key\" : \"session:" SID "\"");
    th_resp_free(&jr);
    /* one after another, in id order: each started after the one before it finished */
    CHECK_INT(th_int("SELECT count(*) FROM (SELECT started_at, lag(finished_at) OVER (ORDER BY id) AS prev"
                     " FROM jobs WHERE job_type = 'agent_turn') t WHERE started_at < prev", NULL), 0);
    /* the model's k-th request is turn k's, and holds message k and the k-1 replies before it */
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 5);
    for (int k = 0; k < 5 && k < cJSON_GetArraySize(reqs); k++) {
        char *m = request_messages(reqs, k);
        char want[32];
        snprintf(want, sizeof want, "message %d\"", k + 1);
        CHECK_CONTAINS(m, want);
        int replies = 0;
        for (const char *p = m; (p = strstr(p, "\"one reply\"")); p++) replies++;
        if (replies != k) th_fail(__FILE__, __LINE__, "request %d saw %d replies, want %d: %s", k + 1, replies, k, m);
        snprintf(want, sizeof want, "message %d\"", k + 2);
        if (strstr(m, want)) th_fail(__FILE__, __LINE__, "request %d saw a later message: %s", k + 1, m);
        free(m);
    }
    cJSON_Delete(reqs);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* 40 keys × 8 jobs through two workers: while they run, no key ever has two
 * jobs running; each key's jobs ran in id order, one after the other (the
 * handler stamps its start and end on the database clock). */
static void two_workers_never_run_a_key_twice(void)
{
    th_exec("INSERT INTO jobs (job_type, input, serial_key)"
            " SELECT 'test_record', '{\"sleep_ms\": 30}', 'k' || (i % 40) FROM generate_series(1, 320) i", NULL);
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'test_record', '{\"sleep_ms\": 30}'"
            " FROM generate_series(1, 40)", NULL);   /* and some without a key, between them */
    const char *const args[] = {"--concurrency", "12", NULL};
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};
    pid_t w1 = th_worker(args, env), w2 = th_worker(args, env);
    long long doubled = 0, most = 0;
    for (int i = 0; i < 6000; i++) {
        doubled += th_int("SELECT count(*) FROM (SELECT serial_key FROM jobs WHERE status = 'running'"
                          " AND serial_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1) t", NULL);
        long long running = th_int("SELECT count(*) FROM jobs WHERE status = 'running'", NULL);
        if (running > most) most = running;
        if (th_int("SELECT count(*) FROM jobs WHERE status <> 'succeeded'", NULL) == 0) break;
        th_sleep_ms(10);
    }
    CHECK_INT(doubled, 0);
    CHECK(most > 1);   /* keys did run side by side */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL), 360);
    CHECK_INT(th_int("SELECT count(*) FROM test_executions", NULL), 360);
    CHECK_INT(th_int("SELECT count(*) FROM (SELECT e.started_at, lag(e.finished_at) OVER (PARTITION BY j.serial_key"
                     " ORDER BY j.id) AS prev FROM test_executions e JOIN jobs j ON j.id = e.job_id"
                     " WHERE j.serial_key IS NOT NULL) t WHERE started_at < prev", NULL), 0);
    /* the forty keys' mutex rows went with their last jobs (sql/026) */
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys", NULL), 0);
    CHECK_INT(th_stop(w1, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(w2, SIGTERM, 10000), 0);
}

/* A turn parked waiting for an approval does not hold its session: the next
 * message's turn runs and answers; the approved turn then resumes and sees
 * what came since. */
static void waiting_turn_does_not_block_its_session(void)
{
    char *tok = th_user("wes", 0);
    long long uid = th_int("SELECT id FROM users WHERE name = 'wes'", NULL);
    long long task = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'old') RETURNING id", th_num(uid), NULL);
    char script[2000], second[400], third[400];
    reply_step(second, sizeof second, "second answer", 0, 1);
    reply_step(third, sizeof third, "deleted it", 0, 1);
    snprintf(script, sizeof script,
             "[{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
             "[{\"id\":\"d1\",\"type\":\"function\",\"function\":{\"name\":\"delete_task\",\"arguments\":"
             "\"{\\\"id\\\":%lld}\"}}]}}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}},%s,%s]",
             task, second, third);
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = th_api(NULL);
    pid_t w = worker_on_fake(NULL, NULL);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"delete the old one\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long first = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'waiting'", th_num(first), NULL));
    r = th_post("/v1/chat", tok, "{\"message\":\"and what else?\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long next = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(next > first);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(next), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'waiting'", th_num(first), NULL), 1);
    /* nothing of the session queued or running: its mutex row is gone; the resume puts it back */
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys", NULL), 0);
    long long action = th_int("SELECT id FROM pending_actions WHERE job_id = $1", th_num(first), NULL);
    char path[64];
    snprintf(path, sizeof path, "/v1/actions/%lld/approve", action);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(first), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys", NULL), 0);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 3);
    char *m = request_messages(reqs, 2);   /* the resumed turn's model call */
    CHECK_CONTAINS(m, "and what else?");
    CHECK_CONTAINS(m, "second answer");
    free(m);
    cJSON_Delete(reqs);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* AGENTQ_USER_MAX_INFLIGHT=4: a user with 50 turns queued (50 sessions) never
 * has more than 4 running across two workers, while another user's turns,
 * queued after them, go through meanwhile. */
static void user_cap_holds_across_workers(void)
{
    long long a = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('ann', 'ann', '\\x00') RETURNING id", NULL);
    long long b = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('bob', 'bob', '\\x00') RETURNING id", NULL);
    char step[400], script[600];
    reply_step(step, sizeof step, "done", 400, -1);
    snprintf(script, sizeof script, "[%s]", step);
    th_fake(script, fake_url, sizeof fake_url);
    const char *sql = "INSERT INTO jobs (job_type, input, user_id, session_id, serial_key)"
                      " SELECT 'agent_turn', json_build_object('message', 'hi', 'session_id', s, 'channel', 'web'), $1, s, 'session:' || s"
                      " FROM (SELECT gen_random_uuid() AS s FROM generate_series(1, $2::int)) g";
    th_exec(sql, th_num(a), "50", NULL);
    th_exec(sql, th_num(b), "5", NULL);
    const char *const args[] = {"--concurrency", "10", NULL};
    pid_t w1 = worker_on_fake(args, "AGENTQ_USER_MAX_INFLIGHT=4"), w2 = worker_on_fake(args, "AGENTQ_USER_MAX_INFLIGHT=4");
    long long most = 0, a_left_when_b_done = -1;
    for (int i = 0; i < 6000; i++) {
        long long running = th_int("SELECT count(*) FROM jobs WHERE user_id = $1 AND job_type = 'agent_turn' AND status = 'running'", th_num(a), NULL);
        if (running > most) most = running;
        if (a_left_when_b_done < 0 && th_int("SELECT count(*) FROM jobs WHERE user_id = $1 AND job_type = 'agent_turn' AND status <> 'succeeded'",
                                             th_num(b), NULL) == 0)
            a_left_when_b_done = th_int("SELECT count(*) FROM jobs WHERE user_id = $1 AND job_type = 'agent_turn' AND status <> 'succeeded'",
                                        th_num(a), NULL);
        if (th_int("SELECT count(*) FROM jobs WHERE status <> 'succeeded'", NULL) == 0) break;
        th_sleep_ms(10);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'", NULL), 55);
    if (most > 4) th_fail(__FILE__, __LINE__, "user ann had %lld turns running at once, cap 4", most);
    CHECK(most >= 1);
    /* bob's five went through while most of ann's fifty still waited */
    if (a_left_when_b_done < 25)
        th_fail(__FILE__, __LINE__, "ann had %lld turns left when bob's were done, want >= 25", a_left_when_b_done);
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys", NULL), 0);
    CHECK_INT(th_stop(w1, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(w2, SIGTERM, 10000), 0);
}

/* A keyed job committed without its key's mutex row (the insert that raced
 * the row's removal, sql/026) is not left queued for ever: the claim's visit
 * puts the row back and the next claim takes the job; the key's jobs still
 * run one at a time, in id order. A parked job's resume (waiting -> queued)
 * puts its key's row back itself (sql/026's trigger), before any claim. */
static void key_row_lost_is_repaired(void)
{
    th_exec("INSERT INTO jobs (job_type, input, serial_key) SELECT 'test_record', '{\"sleep_ms\": 20}', 'lost'"
            " FROM generate_series(1, 3)", NULL);
    long long parked = th_int("INSERT INTO jobs (job_type, input, serial_key, status)"
                              " VALUES ('test_record', '{}', 'parked', 'waiting') RETURNING id", NULL);
    th_exec("DELETE FROM job_serial_keys", NULL);
    th_exec("UPDATE jobs SET status = 'queued' WHERE id = $1", th_num(parked), NULL);
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys WHERE key = 'parked'", NULL), 1);
    const char *const env[] = {"AGENTQ_POLL_MS=200", NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(4, 15000, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM (SELECT e.started_at, lag(e.finished_at) OVER (PARTITION BY j.serial_key"
                     " ORDER BY j.id) AS prev FROM test_executions e JOIN jobs j ON j.id = e.job_id) t"
                     " WHERE started_at < prev", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM job_serial_keys", NULL), 0);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

const th_test th_serial_tests[] = {
    {"serial_five_messages_one_session_in_order", five_messages_one_session_in_order, 90, 1},
    {"serial_two_workers_never_run_a_key_twice", two_workers_never_run_a_key_twice, 120, 1},
    {"serial_waiting_turn_does_not_block_session", waiting_turn_does_not_block_its_session, 60, 1},
    {"serial_user_cap_holds_across_workers", user_cap_holds_across_workers, 120, 1},
    {"serial_key_row_lost_is_repaired", key_row_lost_is_repaired, 60, 1},
    {0},
};
