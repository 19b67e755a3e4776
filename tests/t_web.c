/* t_web.c — the web console: its files as agentq-api serves them (embedded,
 * or from AGENTQ_WEB_DIR) with the security headers; the endpoints it needs
 * (GET /v1/sessions, GET /v1/cron/next, and for operators GET /v1/queue and
 * POST /v1/jobs/{id}/retry); and the console itself in a real browser:
 * tests/web/console.cjs drives Debian's chromium with puppeteer-core (both
 * installed by `make deps`) against the real API, a worker and the fake
 * model. Runs from the project folder (`make test`); screenshots of each view
 * go to .tmp/web-screens/. */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PUPPETEER ".tmp/node/node_modules/puppeteer-core"
#define CHROMIUM "/usr/bin/chromium"
#define XSS "<img src=x onerror=alert(1)>"

static char fake_url[128];

static pid_t worker_on_fake(void)
{
    static char base[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_API_KEY=sk-test", "LLM_MODEL=test-model",
                               "AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", NULL};
    return th_worker(NULL, env);
}

/* ---- the files and their headers ---- */

static void check_headers(const char *path, const char *want_type)
{
    static const char *const names[] = {"content-type", "content-security-policy", "x-content-type-options",
                                        "referrer-policy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        th_resp r = th_http(NULL, path, NULL, NULL, NULL, names[i]);
        CHECK_INT(r.status, 200);
        if (i == 0) CHECK_CONTAINS(r.header, want_type);
        if (i == 1) {
            CHECK_CONTAINS(r.header, "default-src 'none'");
            CHECK_CONTAINS(r.header, "script-src 'self'");
            CHECK_CONTAINS(r.header, "frame-ancestors 'none'");
            CHECK(!strstr(r.header ? r.header : "", "unsafe-inline"));
        }
        if (i == 2) CHECK_STR(r.header, "nosniff");
        if (i == 3) CHECK_STR(r.header, "no-referrer");
        th_resp_free(&r);
    }
}

static void files_with_security_headers(void)
{
    pid_t api = th_api(NULL);
    check_headers("/", "text/html");
    check_headers("/app.js", "text/javascript");
    check_headers("/style.css", "text/css");
    th_resp r = th_get("/", NULL);
    CHECK_CONTAINS(r.body, "<script type=\"module\" src=\"/app.js\"></script>");
    CHECK(!strstr(r.body, "style=\""));   /* no inline style the policy would block */
    th_resp_free(&r);
    /* no file outside the table, no path out of the folder, nothing under /v1 */
    static const char *const missing[] = {"/nope.js", "/../Makefile", "/web/app.js", "/.hidden.js", "/app.js.bak",
                                          "/v1/app.js", "/%2e%2e/Makefile"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        r = th_get(missing[i], NULL);
        if (r.status != 404) th_fail(__FILE__, __LINE__, "GET %s: %ld, want 404", missing[i], r.status);
        th_resp_free(&r);
    }
    r = th_post("/", NULL, "{}");
    CHECK(r.status == 404 || r.status == 405);
    th_resp_free(&r);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);

    /* AGENTQ_WEB_DIR: that folder's files instead */
    char dir[600];
    const char *logdir = getenv("AQ_TEST_LOGDIR") ? getenv("AQ_TEST_LOGDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/web_dir_%d", logdir, (int)getpid());
    char *cmd = aq_sprintf("mkdir -p '%s' && printf 'console.log(42)' > '%s/app.js'", dir, dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    char env_dir[700];
    snprintf(env_dir, sizeof env_dir, "AGENTQ_WEB_DIR=%s", dir);
    const char *const env[] = {env_dir, NULL};
    api = th_api(env);
    r = th_get("/app.js", NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "console.log(42)");
    th_resp_free(&r);
    r = th_get("/", NULL);   /* no index.html there */
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ---- the endpoints ---- */

static void sessions_are_the_callers_own(void)
{
    char *a = th_user("ana", 0), *b = th_user("ben", 0), *op = th_user("olga", 1);
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) SELECT '6f1c1b7e-0000-4000-8000-00000000000a', id, 'web'"
            " FROM users WHERE name = 'ana'", NULL);
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) SELECT '6f1c1b7e-0000-4000-8000-00000000000b', id, 'web'"
            " FROM users WHERE name = 'ben'", NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, content) VALUES"
            " ('6f1c1b7e-0000-4000-8000-00000000000a', 'user', 'first question'),"
            " ('6f1c1b7e-0000-4000-8000-00000000000a', 'assistant', 'an answer')", NULL);
    pid_t api = th_api(NULL);
    th_resp r = th_get("/v1/sessions", a);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    CHECK_INT(cJSON_GetArraySize(items), 1);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(items, 0), "id"), "6f1c1b7e-0000-4000-8000-00000000000a");
    CHECK_STR(th_jstr(cJSON_GetArrayItem(items, 0), "title"), "first question");   /* the first user message */
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_get("/v1/sessions", op);   /* an operator's own list too: nobody else's conversations */
    CHECK_CONTAINS(r.body, "\"items\" : []");
    th_resp_free(&r);
    r = th_get("/v1/sessions", NULL);
    CHECK_INT(r.status, 401);
    th_resp_free(&r);
    r = th_get("/v1/sessions?limit=0", b);
    CHECK_INT(r.status, 422);
    th_resp_free(&r);
    free(a);
    free(b);
    free(op);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static void cron_next_is_the_clis(void)
{
    char *a = th_user("ana", 0);
    pid_t api = th_api(NULL);
    th_cli_run before = th_cli(NULL, (const char *const[]){"cron", "next", "30 9 * * 1-5", "--tz", "Europe/Berlin", NULL});
    th_resp r = th_get("/v1/cron/next?cron=30+9+*+*+1-5&timezone=Europe%2FBerlin", a);
    th_cli_run after = th_cli(NULL, (const char *const[]){"cron", "next", "30 9 * * 1-5", "--tz", "Europe/Berlin", NULL});
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    aq_buf lines;
    aq_buf_init(&lines);
    aq_buf_adds(&lines, "");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "times")) aq_buf_addf(&lines, "%s\n", t->valuestring);
    if (strcmp(lines.p, before.out) && strcmp(lines.p, after.out))   /* a fire time may pass between the two */
        th_fail(__FILE__, __LINE__, "GET /v1/cron/next gave\n%s, agentq cron next\n%s", lines.p, before.out);
    aq_buf_dispose(&lines);
    cJSON_Delete(j);
    th_resp_free(&r);
    th_cli_free(&before);
    th_cli_free(&after);
    static const char *const bad[] = {"/v1/cron/next", "/v1/cron/next?cron=61+*+*+*+*",
                                      "/v1/cron/next?cron=0+9+*+*+*&timezone=Mars%2FOlympus",
                                      "/v1/cron/next?cron=*+*+*+*+*",   /* below the 300 s floor */
                                      "/v1/cron/next?cron=0+9+*+*+*&count=21"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = th_get(bad[i], a);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "GET %s: %ld, want 422", bad[i], r.status);
        th_resp_free(&r);
    }
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static long long failed_job(const char *error)
{
    return th_int("INSERT INTO jobs (job_type, status, input, last_error, attempts, max_attempts, finished_at)"
                  " VALUES ('test_output', 'failed', '{\"text\":\"again\"}', $1, 3, 3, now()) RETURNING id", error, NULL);
}

static void queue_and_retry_for_operators(void)
{
    char *a = th_user("ana", 0), *op = th_user("olga", 1);
    long long f = failed_job("disk on fire");
    th_exec("INSERT INTO jobs (job_type, run_at) VALUES ('test_output', now() + interval '1 hour'),"
            " ('test_output', now()), ('test_output', now())", NULL);
    pid_t api = th_api(NULL);
    /* users: neither endpoint exists for them */
    th_resp r = th_get("/v1/queue", a);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/retry", f);
    r = th_post(path, a, NULL);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'", th_num(f), NULL), 1);
    /* the overview: queued split into runnable and scheduled */
    r = th_get("/v1/queue", op);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "{\"type\" : \"test_output\", \"status\" : \"runnable\", \"count\" : 2}");
    CHECK_CONTAINS(r.body, "{\"type\" : \"test_output\", \"status\" : \"scheduled\", \"count\" : 1}");
    CHECK_CONTAINS(r.body, "\"status\" : \"failed\", \"last_minute\" : 1, \"last_hour\" : 1}");
    CHECK_CONTAINS(r.body, "\"workers\" : []");
    th_resp_free(&r);
    /* retry: queued again, then a worker runs it */
    r = th_post(path, op, NULL);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"status\" : \"queued\"");
    th_resp_free(&r);
    r = th_post(path, op, NULL);   /* not failed any more */
    CHECK_INT(r.status, 409);
    th_resp_free(&r);
    r = th_post("/v1/jobs/999999/retry", op, NULL);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    /* one audit row, for the retry that changed the job, naming the operator */
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'job.retry'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'job.retry' AND channel = 'api' AND actor = 'olga'"
                     " AND target = 'job:' || $1 AND details->>'was' = 'failed'", th_num(f), NULL), 1);
    pid_t w = th_worker(NULL, NULL);
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(f), NULL));
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM workers", NULL));
    r = th_get("/v1/queue", op);
    CHECK_CONTAINS(r.body, "\"jobs_done\"");
    th_resp_free(&r);
    free(a);
    free(op);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ---- the console in a browser ---- */

/* A chat completion that calls tool `name` on task `task`. */
static char *call_step(const char *id, const char *name, long long task)
{
    return aq_sprintf("{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
                      "\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":\"%s\","
                      "\"arguments\":\"{\\\"id\\\":%lld}\"}}]}}]}}", id, name, task);
}

static void console_in_a_browser(void)
{
    if (system("command -v node >/dev/null 2>&1")) {
        th_fail(__FILE__, __LINE__, "node is not installed: the browser test needs node and npm (then make deps)");
        return;
    }
    if (access(PUPPETEER "/package.json", R_OK) || access(CHROMIUM, X_OK)) {
        th_fail(__FILE__, __LINE__, "%s or %s is missing: run `make deps`", PUPPETEER, CHROMIUM);
        return;
    }
    char *tok = th_user("ana", 0), *op = th_user("olga", 1);
    long long uid = th_int("SELECT id FROM users WHERE name = 'ana'", NULL);
    long long t1 = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'old report') RETURNING id", th_num(uid), NULL);
    long long t2 = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'keep me') RETURNING id", th_num(uid), NULL);
    th_exec("INSERT INTO notifications (user_id, kind, body) VALUES ($1, 'info', $2)", th_num(uid), XSS, NULL);
    long long t3 = th_int("INSERT INTO tasks (user_id, title, is_ai_suggested, suggestion, source_job_id, source_index,"
                          " source_from, source_subject) VALUES ($1, $2, true, 'pending', 424242, 1,"
                          " 'boss@example.com', 'Quarterly numbers') RETURNING id",
                          th_num(uid), XSS, NULL);
    long long f = failed_job("disk on fire");
    char *d1 = call_step("d1", "delete_task", t1), *d2 = call_step("d2", "delete_task", t2);
    char *script = aq_sprintf("[%s,%s,%s,%s,%s]",
                              "{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
                              "\"Hello from the fake model.\"}}]}}",
                              d1, "{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Deleted it.\"}}]}}",
                              d2, "{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Fine, I kept it.\"}}]}}");
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = th_api(NULL);
    pid_t w = worker_on_fake();

    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) exit(1);
    char *cmd = aq_sprintf(
        "AQ_WEB_URL=http://127.0.0.1:%d/ AQ_WEB_TOKEN='%s' AQ_WEB_OPERATOR_TOKEN='%s' AQ_WEB_FAILED_JOB=%lld"
        " AQ_WEB_TASK1=%lld AQ_WEB_SHOTS='%s/.tmp/web-screens' AQ_WEB_CLI='%s' AQ_WEB_PUPPETEER='%s/" PUPPETEER "'"
        " AQ_WEB_CHROMIUM=" CHROMIUM " node tests/web/console.cjs 2>&1",
        th_api_port(), tok, op, f, t1, cwd, th_bin("agentq"), cwd);
    FILE *p = popen(cmd, "r");
    aq_buf out;
    aq_buf_init(&out);
    aq_buf_adds(&out, "");
    char line[4096];
    while (p && fgets(line, sizeof line, p)) aq_buf_adds(&out, line);
    int st = p ? pclose(p) : -1;
    extern char th_log[512];
    FILE *log = fopen(th_log, "a");
    if (log) {
        fputs(out.p, log);
        fclose(log);
    }
    if (st != 0) th_fail(__FILE__, __LINE__, "tests/web/console.cjs: exit status %d:\n%s", st, out.p);
    /* what the browser did is what the database holds */
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t1), NULL), 0);   /* approved: deleted */
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t2), NULL), 1);   /* rejected: kept */
    CHECK_INT(th_int("SELECT count(*) FROM agent_schedules WHERE name = $1 AND timezone = 'America/New_York'"
                     " AND cron = '30 9 * * 1-5' AND NOT enabled", XSS, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE body = $1 AND read_at IS NOT NULL", XSS, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1 AND suggestion = 'accepted'", th_num(t3), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(f), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE role = 'user' AND content = $1", XSS, NULL), 1);
    aq_buf_dispose(&out);
    free(cmd);
    free(script);
    free(d1);
    free(d2);
    free(tok);
    free(op);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

const th_test th_web_tests[] = {
    {"web_files_with_security_headers", files_with_security_headers, 40, 1},
    {"web_sessions_are_the_callers_own", sessions_are_the_callers_own, 30, 1},
    {"web_cron_next_is_the_clis", cron_next_is_the_clis, 30, 1},
    {"web_queue_and_retry_for_operators", queue_and_retry_for_operators, 40, 1},
    {"web_console_in_a_browser", console_in_a_browser, 240, 1},
    {0},
};
