/* t_metrics.c — what operators read (issue 15): /metrics after a known
 * workload, checked by `promtool check metrics` (Debian's prometheus
 * package, installed by `make deps`) and against the expected values; the
 * workers' counters surviving a worker restart and flushed at a graceful
 * stop; model and Telegram counters; HTTP counters by route and status with
 * long-polls kept out of the latency histogram; scheduled jobs apart from
 * runnable ones (in /metrics and job_counts); the Grafana dashboard using
 * only exported names; and the log lines' process, pid, provider, model and
 * access lines. */
#include "harness.h"
#include "aq_buf.h"
#include "aq_time.h"
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

extern char th_log[512];

#define WAIT_MS 20000

static char fake_url[128];

/* The value of the sample whose name and labels are exactly series
 * ("name{a=\"b\"}"), or -1 when the scrape has no such line. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

static char *scrape(const char *op)
{
    th_resp r = th_get("/metrics", op);
    CHECK_INT(r.status, 200);
    char *body = strdup(r.body);
    th_resp_free(&r);
    return body;
}

/* Scrape until series reads want (up to WAIT_MS); the last scrape (caller frees). */
static char *scrape_until(const char *op, const char *series, double want)
{
    uint64_t end = aq_now_mono_ms() + WAIT_MS;
    for (;;) {
        char *body = scrape(op);
        double v = sample(body, series);
        if (v == want) return body;
        if (aq_now_mono_ms() > end) {
            th_fail(__FILE__, __LINE__, "%s: %g, want %g; the scrape:\n%s", series, v, want, body);
            return body;
        }
        free(body);
        th_sleep_ms(100);
    }
}

#define CHECK_SAMPLE(body, series, want) do { double v_ = sample((body), (series)); \
    if (v_ != (want)) th_fail(__FILE__, __LINE__, "%s: got %g, want %g", (series), v_, (double)(want)); } while (0)

/* promtool check metrics on body: 1 when it exits 0 saying nothing. */
static int promtool_ok(const char *body)
{
    char path[600], cmd[1400];
    snprintf(path, sizeof path, "%s.metrics.txt", th_log);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(body, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    aq_buf out;
    aq_buf_init(&out);
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) aq_buf_add(&out, buf, n);
    int rc = pclose(p);
    int ok = rc == 0 && out.len == 0;
    if (!ok) th_fail(__FILE__, __LINE__, "promtool check metrics (exit %d; is the prometheus package installed?): %s",
                     rc, out.p ? out.p : "");
    aq_buf_dispose(&out);
    return ok;
}

static pid_t worker_env(const char *lease)
{
    const char *const env[] = {lease, "AGENTQ_POLL_MS=100", "AGENTQ_RETRY_BASE_MS=20", NULL};
    return th_worker(NULL, env);
}

/* A known workload: 5 noop, 2 failing for good, 1 failing once then
 * succeeding; plus one scheduled (run_at in an hour) and one waiting job. */
static void workload_passes_promtool_with_exact_values(void)
{
    pid_t api = th_api(NULL);
    char *op = th_user("root", 1);
    pid_t w = worker_env("AGENTQ_LEASE_SECONDS=3");   /* heartbeat, and flush, every second */
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 5)", NULL);
    th_exec("INSERT INTO jobs (job_type, input) VALUES ('test_fail', '{\"permanent\":true}'),"
            " ('test_fail', '{\"permanent\":true}'), ('test_fail', '{\"fail_times\":1}')", NULL);
    th_exec("INSERT INTO jobs (job_type, run_at) VALUES ('noop', now() + interval '1 hour')", NULL);
    th_exec("INSERT INTO jobs (job_type, status) VALUES ('test_record', 'waiting')", NULL);
    CHECK(th_wait_int(8, WAIT_MS, "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed')", NULL));

    char *m = scrape_until(op, "agentq_jobs_finished_total{type=\"noop\",status=\"succeeded\"}", 5);
    free(m);
    m = scrape_until(op, "agentq_jobs_finished_total{type=\"test_fail\",status=\"succeeded\"}", 1);
    CHECK(promtool_ok(m));
    CHECK_SAMPLE(m, "agentq_jobs_finished_total{type=\"noop\",status=\"succeeded\"}", 5);
    CHECK_SAMPLE(m, "agentq_jobs_finished_total{type=\"test_fail\",status=\"failed\"}", 2);
    CHECK_SAMPLE(m, "agentq_job_retries_total{type=\"test_fail\"}", 1);
    CHECK_SAMPLE(m, "agentq_job_retries_total{type=\"noop\"}", -1);
    CHECK_SAMPLE(m, "agentq_job_duration_seconds_count{type=\"noop\"}", 5);
    CHECK_SAMPLE(m, "agentq_job_duration_seconds_bucket{type=\"noop\",le=\"+Inf\"}", 5);
    CHECK_SAMPLE(m, "agentq_job_duration_seconds_count{type=\"test_fail\"}", 4);
    CHECK_SAMPLE(m, "agentq_job_queue_wait_seconds_count{type=\"noop\"}", 5);
    /* scheduled is not runnable; zeros for every known type */
    CHECK_SAMPLE(m, "agentq_jobs_scheduled{type=\"noop\",queue=\"default\"}", 1);
    CHECK_SAMPLE(m, "agentq_jobs_runnable{type=\"noop\",queue=\"default\"}", 0);
    CHECK_SAMPLE(m, "agentq_oldest_runnable_age_seconds{type=\"noop\",queue=\"default\"}", 0);
    CHECK_SAMPLE(m, "agentq_jobs_waiting{type=\"test_record\",queue=\"default\"}", 1);
    CHECK_SAMPLE(m, "agentq_jobs_runnable{type=\"agent_turn\",queue=\"default\"}", 0);
    CHECK_SAMPLE(m, "agentq_jobs_running{type=\"agent_turn\",queue=\"default\"}", 0);
    CHECK_SAMPLE(m, "agentq_workers_live", 1);
    free(m);

    /* a runnable job nobody claims has an age */
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    th_exec("INSERT INTO jobs (job_type, run_at) VALUES ('noop', now() - interval '100 seconds')", NULL);
    m = scrape(op);
    CHECK_SAMPLE(m, "agentq_jobs_runnable{type=\"noop\",queue=\"default\"}", 1);
    CHECK(sample(m, "agentq_oldest_runnable_age_seconds{type=\"noop\",queue=\"default\"}") >= 100);
    free(m);

    /* a new worker adds to the totals; its last increments go with its goodbye
     * (its lease is long: the only flush before the stop is its first heartbeat) */
    w = worker_env("AGENTQ_LEASE_SECONDS=600");
    CHECK(th_wait_int(6, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'noop' AND status = 'succeeded'", NULL));
    th_exec("INSERT INTO jobs (job_type) SELECT 'noop' FROM generate_series(1, 2)", NULL);
    CHECK(th_wait_int(8, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'noop' AND status = 'succeeded'", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    m = scrape(op);
    CHECK_SAMPLE(m, "agentq_jobs_finished_total{type=\"noop\",status=\"succeeded\"}", 8);
    CHECK_SAMPLE(m, "agentq_job_duration_seconds_count{type=\"noop\"}", 8);
    CHECK(promtool_ok(m));
    free(m);
    free(op);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* A run past its timeout counts as a timeout and a retry; its late result
 * counts nothing; the next claim fails it (attempts spent): one failure. */
static void timeout_is_a_retry_and_its_late_result_uncounted(void)
{
    pid_t api = th_api(NULL);
    char *op = th_user("root", 1);
    pid_t w = worker_env("AGENTQ_LEASE_SECONDS=3");
    long long id = th_int("INSERT INTO jobs (job_type, input, max_attempts) VALUES"
                          " ('test_hang', '{\"ms\": 4500}', 1) RETURNING id", NULL);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'failed'", th_num(id), NULL));
    th_sleep_ms(3500);   /* the late result comes back (and is ignored) */
    char *m = scrape_until(op, "agentq_jobs_finished_total{type=\"test_hang\",status=\"failed\"}", 1);
    free(m);
    th_sleep_ms(1500);   /* a heartbeat more: nothing else arrives */
    m = scrape(op);
    CHECK_SAMPLE(m, "agentq_job_timeouts_total{type=\"test_hang\"}", 1);
    CHECK_SAMPLE(m, "agentq_job_retries_total{type=\"test_hang\"}", 1);
    CHECK_SAMPLE(m, "agentq_jobs_finished_total{type=\"test_hang\",status=\"succeeded\"}", -1);
    CHECK_SAMPLE(m, "agentq_job_queue_wait_seconds_count{type=\"test_hang\"}", 2);
    CHECK_SAMPLE(m, "agentq_job_duration_seconds_count{type=\"test_hang\"}", 1);
    free(m);
    free(op);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* LLM calls, errors and tokens (a 500, then a reply with usage), and
 * Telegram sends and failures (one sent, one blocked). */
static void model_and_telegram_counters(void)
{
    th_fake("[{\"match\":\"/chat/completions\",\"status\":500,\"body\":{\"error\":{\"message\":\"down\"}}},"
            "{\"match\":\"/chat/completions\",\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\","
            "\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}},"
            "{\"match\":\"/sendMessage\",\"body\":{\"ok\":true,\"result\":{\"message_id\":7}}},"
            "{\"match\":\"/sendMessage\",\"status\":403,\"body\":{\"ok\":false,\"error_code\":403,"
            "\"description\":\"Forbidden: bot was blocked by the user\"}}]",
            fake_url, sizeof fake_url);
    pid_t api = th_api(NULL);
    char *op = th_user("root", 1);
    static char llm[200], tg[200];
    snprintf(llm, sizeof llm, "LLM_BASE_URL=%s/v1", fake_url);
    snprintf(tg, sizeof tg, "TELEGRAM_API_BASE=%s", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", llm, "LLM_MODEL=test-model", "LLM_API_KEY=sk-test", tg,
                               "TELEGRAM_BOT_TOKEN=123:test", "AGENTQ_LEASE_SECONDS=3", "AGENTQ_POLL_MS=100",
                               "AGENTQ_RETRY_BASE_MS=20", NULL};
    pid_t w = th_worker(NULL, env);
    long long uid = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('bob', 'bob', '\\x00')"
                           " RETURNING id", NULL);
    th_exec("INSERT INTO jobs (job_type, input, user_id, session_id) VALUES ('agent_turn',"
            " json_build_object('message', 'hello', 'session_id', '7a1b2c3d-0000-4000-8000-00000000000b',"
            " 'channel', 'web'), $1, '7a1b2c3d-0000-4000-8000-00000000000b')", th_num(uid), NULL);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    th_exec("INSERT INTO channels (user_id, kind, address) VALUES ($1, 'telegram', '4242')", th_num(uid), NULL);
    for (int i = 0; i < 2; i++)
        th_exec("INSERT INTO jobs (job_type, user_id, input) VALUES ('notify', $1, json_build_object('to',"
                " 'telegram', 'chat_id', 4242, 'kind', 'info', 'text', 'note ' || $2))", th_num(uid), th_num(i), NULL);
    CHECK(th_wait_int(2, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'notify' AND input->>'to' = 'telegram'"
                      " AND status IN ('succeeded', 'failed')", NULL));
    char *m = scrape_until(op, "agentq_telegram_sends_total", 2);
    free(m);
    m = scrape_until(op, "agentq_model_calls_total{provider=\"openai\",model=\"test-model\"}", 2);
    CHECK(promtool_ok(m));
    CHECK_SAMPLE(m, "agentq_model_errors_total{provider=\"openai\",model=\"test-model\",kind=\"transient\"}", 1);
    CHECK_SAMPLE(m, "agentq_model_tokens_total{provider=\"openai\",model=\"test-model\",kind=\"prompt\"}", 7);
    CHECK_SAMPLE(m, "agentq_model_tokens_total{provider=\"openai\",model=\"test-model\",kind=\"completion\"}", 3);
    CHECK_SAMPLE(m, "agentq_job_retries_total{type=\"agent_turn\"}", 1);
    CHECK_SAMPLE(m, "agentq_telegram_send_failures_total{reason=\"blocked\"}", 1);
    free(m);
    free(op);
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* Requests by route and exact status; a long-poll is counted as a request
 * and a long-poll, never in the latency histogram; the access log at debug. */
static void http_by_route_and_status_long_polls_apart(void)
{
    const char *const env[] = {"AGENTQ_LOG_LEVEL=debug", NULL};
    pid_t api = th_api(env);
    char *op = th_user("root", 1), *a = th_user("alice", 0);
    th_resp r = th_post("/v1/jobs", a, "{\"type\":\"\",\"input\":{}}");
    CHECK_INT(r.status, 422);
    th_resp_free(&r);
    long long id = th_int("INSERT INTO jobs (job_type, user_id) SELECT 'noop', id FROM users WHERE name = 'alice'"
                          " RETURNING id", NULL);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld?wait=1", id);
    r = th_get(path, a);   /* no worker: parks a second, then answers queued */
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    r = th_get(path, a);
    th_resp_free(&r);
    r = th_get("/metrics", a);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    r = th_get("/nowhere", a);
    th_resp_free(&r);
    char *m = scrape(op);
    CHECK(promtool_ok(m));
    CHECK_SAMPLE(m, "agentq_http_requests_total{route=\"jobs_create\",code=\"422\"}", 1);
    CHECK_SAMPLE(m, "agentq_http_requests_total{route=\"job_get\",code=\"200\"}", 2);
    CHECK_SAMPLE(m, "agentq_http_requests_total{route=\"metrics\",code=\"404\"}", 1);
    CHECK_SAMPLE(m, "agentq_http_requests_total{route=\"not_found\",code=\"404\"}", 1);
    CHECK_SAMPLE(m, "agentq_http_long_polls_total{route=\"job_get\"}", 1);
    CHECK_SAMPLE(m, "agentq_http_request_duration_seconds_count{route=\"job_get\"}", 1);
    CHECK_SAMPLE(m, "agentq_http_request_duration_seconds_bucket{route=\"job_get\",le=\"+Inf\"}", 1);
    CHECK(sample(m, "agentq_http_request_duration_seconds_sum{route=\"job_get\"}") < 1.0);
    CHECK_SAMPLE(m, "agentq_jobs_runnable{type=\"noop\",queue=\"default\"}", 1);
    free(m);
    free(op);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);

    /* the access log: one debug line per request, with the process and its pid */
    FILE *f = fopen(th_log, "r");
    CHECK(f != NULL);
    if (!f) return;
    aq_buf log;
    aq_buf_init(&log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) aq_buf_add(&log, buf, n);
    fclose(f);
    char want[128];
    snprintf(want, sizeof want, "\"process\":\"api\",\"pid\":%d,", (int)api);
    CHECK_CONTAINS(log.p, want);
    CHECK_CONTAINS(log.p, "\"level\":\"debug\"");
    CHECK_CONTAINS(log.p, "\"module\":\"access\"");
    snprintf(want, sizeof want, "GET /v1/jobs/%lld?wait=1 200 ", id);
    CHECK_CONTAINS(log.p, want);
    CHECK_CONTAINS(log.p, "route=job_get");
    CHECK_CONTAINS(log.p, "long-poll");
    CHECK_CONTAINS(log.p, "GET /nowhere 404 ");
    aq_buf_dispose(&log);
}

/* The worker's lines name the process and pid; at start it names its LLM provider and model. */
static void worker_logs_process_pid_provider_model(void)
{
    const char *const env[] = {"LLM_PROVIDER=openai", "LLM_MODEL=my-model-7b", "LLM_BASE_URL=http://127.0.0.1:9/v1",
                               NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM workers", NULL));
    CHECK_INT(th_stop(w, SIGTERM, 15000), 0);
    FILE *f = fopen(th_log, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[8192], want[128];
    snprintf(want, sizeof want, "\"process\":\"worker\",\"pid\":%d,", (int)w);
    int lines = 0, tagged = 0, provider = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != '{') continue;
        lines++;
        if (strstr(line, want)) tagged++;
        if (strstr(line, "LLM provider openai, model my-model-7b")) provider++;
    }
    fclose(f);
    CHECK(lines >= 2);
    CHECK_INT(tagged, lines);
    CHECK_INT(provider, 1);
}

/* job_counts shows run_at in the future as 'scheduled'; the oldest runnable is a runnable one's. */
static void job_counts_scheduled_apart(void)
{
    th_exec("INSERT INTO jobs (job_type, run_at) VALUES ('noop', now() - interval '1 minute'),"
            " ('noop', now() + interval '1 hour'), ('noop', now() + interval '2 hours')", NULL);
    CHECK_INT(th_int("SELECT jobs FROM job_counts WHERE job_type = 'noop' AND status = 'queued'", NULL), 1);
    CHECK_INT(th_int("SELECT jobs FROM job_counts WHERE job_type = 'noop' AND status = 'scheduled'", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM job_counts WHERE job_type = 'noop' AND status = 'queued'"
                     " AND oldest_runnable < now() - interval '50 seconds'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM job_counts WHERE status = 'scheduled' AND oldest_runnable IS NULL", NULL),
              1);
    CHECK_INT(th_int("SELECT runnable * 10 + scheduled FROM queue_gauges() WHERE job_type = 'noop'", NULL), 12);
}

/* Every metric name in the dashboard's expressions is in a scrape (as a
 * family, or a histogram's _bucket/_sum/_count). */
static void grafana_dashboard_uses_exported_names(void)
{
    FILE *f = fopen("deploy/grafana/agentq.json", "r");
    if (!f) { th_fail(__FILE__, __LINE__, "deploy/grafana/agentq.json not found (run from the project folder)"); return; }
    aq_buf doc;
    aq_buf_init(&doc);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) aq_buf_add(&doc, buf, n);
    fclose(f);
    cJSON *dash = cJSON_Parse(doc.p);
    CHECK(dash != NULL);
    pid_t api = th_api(NULL);
    char *op = th_user("root", 1);
    char *m = scrape(op);
    int exprs = 0, names = 0;
    /* every expression parses as PromQL: promtool checks them as recording rules */
    char rules_path[600];
    snprintf(rules_path, sizeof rules_path, "%s.rules.yaml", th_log);
    FILE *rules = fopen(rules_path, "w");
    CHECK(rules != NULL);
    if (rules) fputs("groups:\n- name: dashboard\n  rules:\n", rules);
    const cJSON *panels = cJSON_GetObjectItemCaseSensitive(dash, "panels");
    const cJSON *panel;
    cJSON_ArrayForEach(panel, panels) {
        const cJSON *target;
        cJSON_ArrayForEach(target, cJSON_GetObjectItemCaseSensitive(panel, "targets")) {
            const char *e = th_jstr(target, "expr");
            if (!e) continue;
            exprs++;
            if (rules) {
                fprintf(rules, "  - record: dashboard:expr%d\n    expr: '", exprs);
                for (const char *q = e; *q; q++) fputs(*q == '\'' ? "''" : (char[]){*q, 0}, rules);
                fputs("'\n", rules);
            }
            for (const char *p = strstr(e, "agentq_"); p; p = strstr(p, "agentq_")) {
                if (p > e && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) { p++; continue; }
                size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
                char name[128], want[200];
                snprintf(name, sizeof name, "%.*s", (int)len, p);
                p += len;
                names++;
                static const char *const sfx[] = {"_bucket", "_sum", "_count"};
                for (int i = 0; i < 3; i++) {
                    size_t nl = strlen(name), sl = strlen(sfx[i]);
                    if (nl > sl && !strcmp(name + nl - sl, sfx[i])) {
                        name[nl - sl] = '\0';
                        snprintf(want, sizeof want, "# TYPE %s histogram\n", name);
                        CHECK_CONTAINS(m, want);
                        goto next;
                    }
                }
                snprintf(want, sizeof want, "# TYPE %s ", name);
                CHECK_CONTAINS(m, want);
            next:;
            }
        }
    }
    CHECK(exprs >= 8);
    CHECK(names >= exprs);
    if (rules) {
        fclose(rules);
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "promtool check rules '%s' >> '%s' 2>&1", rules_path, th_log);
        CHECK_INT(system(cmd), 0);
    }
    free(m);
    free(op);
    cJSON_Delete(dash);
    aq_buf_dispose(&doc);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

const th_test th_metrics_tests[] = {
    {"metrics_workload_promtool_exact_values", workload_passes_promtool_with_exact_values, 120, 1},
    {"metrics_timeout_is_a_retry_late_result_uncounted", timeout_is_a_retry_and_its_late_result_uncounted, 60, 1},
    {"metrics_model_and_telegram_counters", model_and_telegram_counters, 90, 1},
    {"metrics_http_by_route_status_long_polls_apart", http_by_route_and_status_long_polls_apart, 60, 1},
    {"metrics_worker_logs_process_pid_provider_model", worker_logs_process_pid_provider_model, 60, 1},
    {"metrics_job_counts_scheduled_apart", job_counts_scheduled_apart, 30, 1},
    {"metrics_grafana_dashboard_uses_exported_names", grafana_dashboard_uses_exported_names, 60, 1},
    {NULL, NULL, 0, 0},
};
