/* t_fault_campaign.c — `make faults`: one long test that runs a steady mix of
 * work against the real API, workers and Postgres while faults are injected,
 * then checks what must hold after any fault and prints a summary. Runs only
 * when AQ_FAULT_CAMPAIGN=1 (runner.c); FAULTS_SECONDS sets how long faults
 * are injected (default 100).
 *
 * The mix (a load thread, through the API on whatever port it has now):
 * chats (POST /v1/chat), Telegram updates (the webhook with its secret; from
 * linked chats they become agent turns, from fresh unlinked chats a "not
 * linked" answer; an update answered other than 200 is delivered again later,
 * as Telegram does) and email jobs (POST /v1/jobs email_processing from raw).
 * Four schedules fire every few seconds: cron has minute resolution, so the
 * campaign sets a due schedule's next_run_at to the current second whenever
 * its last slot has fired, and records that slot. One bin/agentq-fake on a
 * fixed port is both the model and the Bot API; each model answer is unique
 * (the incarnation and step number in the text), so a message sent twice is
 * visible as the same text twice.
 *
 * The faults (a cycle every few seconds): kill -9 a random worker and
 * restart it, every cycle; then in turn: Postgres restarted (fast), the fake
 * stopped for a while, the fake answering 429 with Retry-After, the API
 * restarted, Postgres restarted (immediate: a crash and WAL recovery), the
 * fake answering 500, a burst of malformed requests.
 *
 * The checks (after the faults stop, everything is restored and the queue
 * has drained): no accepted job lost (every id the API answered 2xx with
 * exists and ended), nothing left queued or running, no Telegram message
 * accepted twice (key: chat_id and text), no web notification written twice
 * (key: user, job, kind, action), every failed job has a reason and every
 * failed turn one apology in its session, each recorded schedule slot fired
 * exactly once, and no process crashed (only our kill -9 ended a worker; the
 * API, workers and fake exit 0 on SIGTERM; no sanitizer report in the log;
 * no core file; /healthz answers). */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_time.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char th_log[512];   /* this test's log (harness.c) */

#ifdef __SANITIZE_ADDRESS__
#define SLOW 2                  /* sanitized binaries: half the load, twice the waits */
#else
#define SLOW 1
#endif
#define NWORKERS 3
#define NUSERS 3
#define NSCHEDULES 4
#define LEASE_S 3
#define LINKED_CHAT(u) (7000 + (u))   /* user u's linked Telegram chat */
#define SECRET "X-Telegram-Bot-Api-Secret-Token: f4ult-s3cret"
#define MODEL_STEPS 4000              /* unique model answers per fake incarnation */

enum { F_NORMAL, F_429, F_500, F_DOWN };

/* ---- what the load thread was told (shared with the main thread) ---- */

typedef struct accepted {
    long long id;
    char kind;                  /* c chat, t telegram update, e email */
} accepted;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static accepted *acc;
static int nacc, capacc;
static char *pending[4096];     /* webhook updates to deliver again */
static int npending;
static atomic_int api_port_now, load_stop;
static atomic_long ops_sent, ops_refused;
static char *tokens[NUSERS];

static void note_accepted(long long id, char kind)
{
    pthread_mutex_lock(&mu);
    if (nacc == capacc) acc = aq_realloc(acc, sizeof *acc * (size_t)(capacc = capacc ? capacc * 2 : 1024));
    acc[nacc++] = (accepted){id, kind};
    pthread_mutex_unlock(&mu);
}

static th_resp api(const char *method, const char *path, const char *token, const char *body,
                   const char *const *headers)
{
    char url[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", atomic_load(&api_port_now), path);
    return th_http(method, url, token, body, headers, NULL);
}

/* The job id in a 2xx answer, or 0. */
static long long job_of(const th_resp *r, const char *key)
{
    if (r->status < 200 || r->status > 299) return 0;
    cJSON *j = cJSON_Parse(r->body);
    long long id = th_jnum(j, key);
    cJSON_Delete(j);
    return id > 0 ? id : 0;
}

static char *message_update(long long update, long long chat, const char *text)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "update_id", (double)update);
    cJSON *m = cJSON_AddObjectToObject(u, "message");
    cJSON_AddNumberToObject(m, "message_id", (double)update);
    cJSON *c = cJSON_AddObjectToObject(m, "chat");
    cJSON_AddNumberToObject(c, "id", (double)chat);
    cJSON_AddStringToObject(c, "type", "private");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(m, "from"), "id", (double)chat);
    cJSON_AddStringToObject(m, "text", text);
    char *s = cJSON_PrintUnformatted(u);
    cJSON_Delete(u);
    return s;
}

/* Deliver one update (owned); kept for redelivery unless the API took it. */
static void deliver(char *update)
{
    const char *const h[] = {SECRET, NULL};
    th_resp r = api("POST", "/v1/telegram/webhook", NULL, update, h);
    long long id = job_of(&r, "job_id");
    if (r.status == 200) {
        if (id) note_accepted(id, 't');
        free(update);
    } else {
        atomic_fetch_add(&ops_refused, 1);
        pthread_mutex_lock(&mu);
        if (npending < (int)(sizeof pending / sizeof pending[0])) pending[npending++] = update;
        else free(update);
        pthread_mutex_unlock(&mu);
    }
    th_resp_free(&r);
}

/* Deliver again what was refused before (at most a few per call). */
static void redeliver(int max)
{
    for (int i = 0; i < max; i++) {
        pthread_mutex_lock(&mu);
        char *u = npending ? pending[--npending] : NULL;
        pthread_mutex_unlock(&mu);
        if (!u) return;
        deliver(u);
    }
}

static void post_and_note(const char *path, const char *token, const char *body, const char *key, char kind)
{
    th_resp r = api("POST", path, token, body, NULL);
    long long id = job_of(&r, key);
    if (id) note_accepted(id, kind);
    else atomic_fetch_add(&ops_refused, 1);
    th_resp_free(&r);
}

static void *load_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long long n = 0, fresh_chat = 900000000;
    while (!atomic_load(&load_stop)) {
        n++;
        int u = (int)(rand_r(&seed) % NUSERS), pick = (int)(rand_r(&seed) % 10);
        char body[1024];
        if (pick < 3) {
            snprintf(body, sizeof body, "{\"message\":\"campaign chat %lld\"}", n);
            post_and_note("/v1/chat", tokens[u], body, "job_id", 'c');
        } else if (pick < 7) {
            char text[64];
            snprintf(text, sizeof text, "campaign telegram %lld", n);
            /* one in four from a chat nobody linked, each time a new one */
            long long chat = pick == 6 ? ++fresh_chat : LINKED_CHAT(u);
            deliver(message_update(100000 + n, chat, text));
        } else {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "email_processing");
            snprintf(body, sizeof body, "From: Sender %lld <s%lld@example.com>\r\nSubject: Campaign mail %lld\r\n"
                     "Message-ID: <m%lld@example.com>\r\n\r\nPlease look at item %lld.\r\n", n, n, n, n, n);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "input"), "raw", body);
            char *s = cJSON_PrintUnformatted(b);
            post_and_note("/v1/jobs", tokens[u], s, "id", 'e');
            free(s);
            cJSON_Delete(b);
        }
        atomic_fetch_add(&ops_sent, 1);
        redeliver(2);
        th_sleep_ms((60 + rand_r(&seed) % 80) * SLOW);
    }
    return NULL;
}

/* ---- the fake: model and Bot API on one fixed port ---- */

static int fake_port, fake_incarnation;
static pid_t fake_pid;
static int fake_mode_of[64];      /* mode of each incarnation, for reading its log */
static char fake_dir[600];

static void fake_file(char *out, size_t len, int inc, const char *what)
{
    snprintf(out, len, "%s/campaign.fake-%d.%s", fake_dir, inc, what);
}

/* The script for one incarnation in mode: normal answers each model call
 * with its own text (valid as an agent reply and as an email extraction),
 * but every twentieth with a 400 (a refusal: the turn or email fails for
 * good), and every sendMessage with ok; 429 and 500 answer everything so. */
static char *fake_script(int mode, int inc)
{
    cJSON *steps = cJSON_CreateArray();
    if (mode == F_NORMAL) {
        for (int i = 0; i < MODEL_STEPS; i++) {
            if (i % 20 == 19) {   /* now and then a refusal: that turn or email fails for good */
                cJSON_AddItemToArray(steps, cJSON_Parse("{\"match\":\"/chat/completions\",\"status\":400,"
                                                        "\"body\":{\"error\":{\"message\":\"campaign: refused\","
                                                        "\"type\":\"invalid_request_error\"}}}"));
                continue;
            }
            char content[128];
            snprintf(content, sizeof content, "{\"tasks\":[{\"title\":\"Answer g%d-%d\"}]}", inc, i);
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "match", "/chat/completions");
            cJSON *msg = cJSON_CreateObject();
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", content);
            cJSON *choice = cJSON_CreateObject();
            cJSON_AddItemToObject(choice, "message", msg);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(cJSON_AddObjectToObject(s, "body"), "choices"), choice);
            cJSON_AddItemToArray(steps, s);
        }
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"match\":\"/sendMessage\",\"repeat\":-1,"
                                                "\"body\":{\"ok\":true,\"result\":{\"message_id\":7}}}"));
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"repeat\":-1,\"body\":{\"ok\":true,\"result\":true}}"));
    } else if (mode == F_429) {
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"match\":\"/bot\",\"repeat\":-1,\"status\":429,"
                                                "\"headers\":{\"Retry-After\":1},\"body\":{\"ok\":false,"
                                                "\"error_code\":429,\"description\":\"Too Many Requests: retry after 1\","
                                                "\"parameters\":{\"retry_after\":1}}}"));
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"repeat\":-1,\"status\":429,\"headers\":{\"Retry-After\":1},"
                                                "\"body\":{\"error\":{\"message\":\"rate limited\",\"type\":\"rate_limit\"}}}"));
    } else {
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"match\":\"/bot\",\"repeat\":-1,\"status\":500,"
                                                "\"body\":{\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"}}"));
        cJSON_AddItemToArray(steps, cJSON_Parse("{\"repeat\":-1,\"status\":500,"
                                                "\"body\":{\"error\":{\"message\":\"server error\",\"type\":\"server_error\"}}}"));
    }
    char *s = cJSON_PrintUnformatted(steps);
    cJSON_Delete(steps);
    return s;
}

/* Stop the running fake (it must exit 0); 0 or the bad status. */
static int fake_stop(void)
{
    if (!fake_pid) return 0;
    int st = th_stop(fake_pid, SIGTERM, 10000);
    fake_pid = 0;
    return st;
}

/* Start a new incarnation in mode on fake_port (stopping the old one). */
static void fake_start(int mode)
{
    int st = fake_stop();
    if (st) th_fail(__FILE__, __LINE__, "agentq-fake exited with status %d", st);
    if (mode == F_DOWN) return;
    int inc = ++fake_incarnation;
    if (inc >= (int)(sizeof fake_mode_of / sizeof fake_mode_of[0])) { th_fail(__FILE__, __LINE__, "too many fakes"); return; }
    fake_mode_of[inc] = mode;
    char script[700], log[700], ready[700], port[16];
    fake_file(script, sizeof script, inc, "script.json");
    fake_file(log, sizeof log, inc, "requests.jsonl");
    fake_file(ready, sizeof ready, inc, "ready");
    char *text = fake_script(mode, inc);
    FILE *f = fopen(script, "w");
    if (f) { fputs(text, f); fclose(f); }
    free(text);
    snprintf(port, sizeof port, "%d", fake_port);
    for (int tries = 0; tries < 50; tries++) {   /* the port may linger a moment after the last one */
        unlink(ready);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) { dup2(fd, 2); close(fd); }
            const char *bin = th_bin("agentq-fake");
            execl(bin, bin, "--port", port, "--script", script, "--log", log, "--ready-file", ready, (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 500; i++) {
            struct stat sb;
            if (!stat(ready, &sb) && sb.st_size > 0) { fake_pid = pid; return; }
            int ws;
            if (waitpid(pid, &ws, WNOHANG) == pid) break;
            th_sleep_ms(20);
        }
        if (!fake_pid) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
        th_sleep_ms(100);
    }
    th_fail(__FILE__, __LINE__, "agentq-fake did not start on port %d", fake_port);
}

/* ---- processes ---- */

static pid_t workers[NWORKERS];
static pid_t api_pid;
static int kills, worker_crashes, worker_restarts;
static char worker_env[16][256];
static const char *wenv[17];

static const char *const api_env[] = {"TELEGRAM_WEBHOOK_SECRET=f4ult-s3cret", "AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS=0",
                                      "AGENTQ_USER_RATE=100000", "AGENTQ_USER_QUEUE_QUOTA=0", NULL};

static void start_api(void)
{
    api_pid = th_api(api_env);
    atomic_store(&api_port_now, th_api_port());
}

static void worker_setup_env(const char *fake_url)
{
    const char *const fixed[] = {"LLM_PROVIDER=openai", "LLM_API_KEY=sk-campaign", "LLM_MODEL=test-model",
                                 "TELEGRAM_BOT_TOKEN=123:campaign", "AGENTQ_LEASE_SECONDS=3", "AGENTQ_POLL_MS=200",
                                 "AGENTQ_RETRY_BASE_MS=200", "AGENTQ_RETRY_MAX_MS=2000",
                                 "AGENTQ_TRANSIENT_BACKOFF_MAX_MS=2000", "AGENTQ_LLM_RETRY_SECONDS=3",
                                 "LLM_TIMEOUT_MS=5000", "TELEGRAM_TIMEOUT_MS=5000", "AGENTQ_SCHEDULE_TICK_MS=200",
                                 "AGENTQ_SHUTDOWN_GRACE_SECONDS=3", NULL};
    int n = 0;
    for (; fixed[n]; n++) snprintf(worker_env[n], sizeof worker_env[n], "%s", fixed[n]);
    snprintf(worker_env[n++], sizeof worker_env[0], "LLM_BASE_URL=%s/v1", fake_url);
    snprintf(worker_env[n++], sizeof worker_env[0], "TELEGRAM_API_BASE=%s", fake_url);
    for (int i = 0; i < n; i++) wenv[i] = worker_env[i];
    wenv[n] = NULL;
}

static pid_t start_worker(void)
{
    const char *const args[] = {"--concurrency", "8", NULL};
    return th_worker(args, wenv);
}

/* Reap workers that ended without our kill (a crash: counted, restarted). */
static void reap_workers(void)
{
    for (int i = 0; i < NWORKERS; i++) {
        int ws;
        if (waitpid(workers[i], &ws, WNOHANG) != workers[i]) continue;
        worker_crashes++;
        fprintf(stderr, "    worker %d ended by itself: %s %d\n", (int)workers[i],
                WIFEXITED(ws) ? "exit status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
        workers[i] = start_worker();
        worker_restarts++;
    }
}

static void kill_random_worker(unsigned *seed)
{
    int i = (int)(rand_r(seed) % NWORKERS);
    int st = th_stop(workers[i], SIGKILL, 5000);
    if (st != 128 + SIGKILL) {
        worker_crashes++;
        fprintf(stderr, "    worker %d had already ended (status %d) when it was to be killed\n", (int)workers[i], st);
    }
    kills++;
    workers[i] = start_worker();
    worker_restarts++;
}

/* ---- schedules ---- */

typedef struct slot { long long schedule, at; } slot;
static slot slots[8192];
static int nslots;
static long long schedule_ids[NSCHEDULES];

/* Each schedule whose last slot has fired gets a new one now. */
static void bump_schedules(void)
{
    for (int i = 0; i < NSCHEDULES; i++) {
        long long at = th_int("UPDATE agent_schedules SET next_run_at = date_trunc('second', now())"
                              " WHERE id = $1 AND enabled AND next_run_at > now()"
                              " RETURNING extract(epoch FROM next_run_at)::bigint", th_num(schedule_ids[i]), NULL);
        if (at > 0 && nslots < (int)(sizeof slots / sizeof slots[0])) slots[nslots++] = (slot){schedule_ids[i], at};
    }
}

/* ---- malformed requests ---- */

static int malformed_sent, malformed_wrong;

static void expect_status(const char *what, th_resp r, long lo, long hi)
{
    malformed_sent++;
    if (r.status < lo || r.status > hi) {
        malformed_wrong++;
        fprintf(stderr, "    malformed request (%s): HTTP %ld, want %ld..%ld: %.200s\n", what, r.status, lo, hi, r.body);
    }
    th_resp_free(&r);
}

static void malformed_burst(void)
{
    const char *tok = tokens[0];
    const char *const bad_secret[] = {"X-Telegram-Bot-Api-Secret-Token: wrong", NULL};
    const char *const good_secret[] = {SECRET, NULL};
    size_t big = 200 * 1024;
    char *huge = aq_malloc(big + 64);
    memcpy(huge, "{\"message\":\"", 12);
    memset(huge + 12, 'x', big);
    memcpy(huge + 12 + big, "\"}", 3);
    for (int round = 0; round < 5; round++) {
        expect_status("bad JSON", api("POST", "/v1/chat", tok, "{\"message\":", NULL), 400, 499);
        expect_status("trailing bytes", api("POST", "/v1/chat", tok, "{\"message\":\"a\"} x", NULL), 400, 499);
        expect_status("control byte", api("POST", "/v1/chat", tok, "{\"message\":\"a\x01z\"}", NULL), 400, 499);
        expect_status("not UTF-8", api("POST", "/v1/chat", tok, "{\"message\":\"\xff\xfe\"}", NULL), 400, 499);
        expect_status("NUL escape", api("POST", "/v1/chat", tok, "{\"message\":\"a\\u0000\"}", NULL), 400, 499);
        expect_status("duplicate key", api("POST", "/v1/chat", tok, "{\"message\":\"a\",\"message\":\"b\"}", NULL), 400, 499);
        expect_status("huge body", api("POST", "/v1/chat", tok, huge, NULL), 413, 413);
        expect_status("bad token", api("POST", "/v1/chat", "aq_nope.nope", "{\"message\":\"hi\"}", NULL), 401, 401);
        expect_status("no token", api("GET", "/v1/jobs", NULL, NULL, NULL), 401, 401);
        expect_status("unknown type", api("POST", "/v1/jobs", tok, "{\"type\":\"no_such\",\"input\":{}}", NULL), 400, 499);
        expect_status("bad id", api("GET", "/v1/jobs/12abc", tok, NULL, NULL), 400, 404);
        expect_status("bad secret", api("POST", "/v1/telegram/webhook", NULL, "{\"update_id\":1}", bad_secret), 401, 401);
        /* a malformed update with the right secret is dropped and answered 200 (Telegram would resend) */
        th_resp r = api("POST", "/v1/telegram/webhook", NULL, "{\"update_id\":\"x\"", good_secret);
        CHECK(job_of(&r, "job_id") == 0);
        expect_status("malformed update", r, 200, 200);
    }
    free(huge);
}

/* ---- checks ---- */

static long long q_int(const char *sql) { return th_int(sql, NULL); }

/* Print rows of sql (for a failed check), at most 20. */
static void show(const char *title, const char *sql)
{
    PGresult *r = PQexec(th_db(), sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r)) {
        printf("    %s:\n", title);
        for (int i = 0; i < PQntuples(r) && i < 20; i++) {
            printf("      ");
            for (int c = 0; c < PQnfields(r); c++) printf("%s%s", c ? " | " : "", PQgetvalue(r, i, c));
            printf("\n");
        }
    }
    PQclear(r);
}

/* The notify jobs behind a message sent twice, for the reader of a failure. */
static void explain_duplicate(long long chat, const char *text)
{
    PGresult *r = PQexecParams(th_db(), "SELECT j.id, j.status, j.attempts, coalesce(j.last_error, ''),"
                               " (SELECT string_agg(chunk || ':' || coalesce(message_id, 0) || '@' || sent_at, ' ')"
                               " FROM telegram_sent t WHERE t.job_id = j.id) FROM jobs j WHERE j.job_type = 'notify'"
                               " AND j.input->>'chat_id' = $1 AND j.input->>'text' = $2", 2, NULL,
                               (const char *const[]){th_num(chat), text}, NULL, NULL, 0);
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        printf("      notify job %s: %s, attempts %s, last error \"%s\", recorded chunks %s\n", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    PQclear(r);
}

/* sendMessage requests the fake accepted (normal incarnations), as an object
 * "chat_id\ntext" -> count; returns how many keys occur more than once. */
static int telegram_duplicates(int *accepted_out, int *refused_out)
{
    cJSON *seen = cJSON_CreateObject();
    int dups = 0;
    for (int inc = 1; inc <= fake_incarnation; inc++) {
        char log[700];
        fake_file(log, sizeof log, inc, "requests.jsonl");
        FILE *f = fopen(log, "r");
        if (!f) continue;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            cJSON *o = cJSON_Parse(line);
            const char *path = th_jstr(o, "path");
            if (path && strstr(path, "/sendMessage")) {
                if (fake_mode_of[inc] != F_NORMAL || th_jnum(o, "step") < 0) {
                    (*refused_out)++;
                } else {
                    (*accepted_out)++;
                    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "body");
                    const char *text = th_jstr(b, "text");
                    char *key = aq_sprintf("%lld\n%s", th_jnum(b, "chat_id"), text ? text : "(none)");
                    cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
                    if (c) {
                        cJSON_SetNumberValue(c, c->valuedouble + 1);
                        dups++;
                        printf("    sent twice (fake %d, request %lld): chat %lld: %.120s\n", inc,
                               th_jnum(o, "n"), th_jnum(b, "chat_id"), text ? text : "");
                        explain_duplicate(th_jnum(b, "chat_id"), text ? text : "");
                    } else {
                        cJSON_AddNumberToObject(seen, key, 1);
                    }
                    free(key);
                }
            }
            cJSON_Delete(o);
        }
        free(line);
        fclose(f);
    }
    cJSON_Delete(seen);
    return dups;
}

static int sanitizer_reports(void)
{
    FILE *f = fopen(th_log, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "AddressSanitizer") || strstr(line, "LeakSanitizer") || strstr(line, "runtime error:") ||
            strstr(line, "UndefinedBehaviorSanitizer")) {
            if (n++ < 5) printf("    sanitizer: %s", line);
        }
    fclose(f);
    return n;
}

/* Core files in dir (a crash that dumped one). */
static int core_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strcmp(e->d_name, "core") || !strncmp(e->d_name, "core.", 5)) {
            if (n++ < 5) printf("    core file: %s/%s\n", dir, e->d_name);
        }
    closedir(d);
    return n;
}

static void campaign(void)
{
    const char *fs = getenv("FAULTS_SECONDS");
    long seconds = fs && atol(fs) > 0 ? atol(fs) : 100;
    unsigned seed = (unsigned)getpid();
    snprintf(fake_dir, sizeof fake_dir, "%s", th_log);
    char *slash = strrchr(fake_dir, '/');
    if (slash) *slash = '\0';

    /* ---- set up: fake, API, users with a linked chat and a schedule each, workers ---- */
    char fake_url[128];
    {
        pid_t probe = th_fake("[]", fake_url, sizeof fake_url);   /* a free port, then our own fake on it */
        fake_port = atoi(strrchr(fake_url, ':') + 1);
        CHECK_INT(th_stop(probe, SIGTERM, 5000), 0);
    }
    fake_start(F_NORMAL);
    worker_setup_env(fake_url);
    start_api();
    for (int u = 0; u < NUSERS; u++) {
        char name[32];
        snprintf(name, sizeof name, "user%d", u);
        tokens[u] = th_user(name, 0);
        th_exec("INSERT INTO channels (user_id, kind, address) SELECT id, 'telegram', $2 FROM users WHERE name = $1",
                name, th_num(LINKED_CHAT(u)), NULL);
    }
    for (int i = 0; i < NWORKERS; i++) workers[i] = start_worker();
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM job_types WHERE name = 'email_processing'", NULL));
    for (int i = 0; i < NSCHEDULES; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"name\":\"campaign %d\",\"cron\":\"* * * * *\",\"prompt\":\"campaign run %d\"}", i, i);
        th_resp r = api("POST", "/v1/schedules", tokens[i % NUSERS], body, NULL);
        CHECK_INT(r.status, 201);
        schedule_ids[i] = job_of(&r, "id");
        th_resp_free(&r);
    }

    /* ---- the mix, and faults ---- */
    pthread_t load;
    pthread_create(&load, NULL, load_main, (void *)(uintptr_t)seed);
    uint64_t end = aq_now_mono_ms() + (uint64_t)seconds * 1000u;
    int counts[8] = {0};
    static const char *const fault_name[] = {"Postgres restart (fast)", "fake stopped", "fake 429",
                                             "API restart", "Postgres restart (immediate)", "fake 500",
                                             "malformed burst"};
    int api_restarts = 0;
    for (int cycle = 0; aq_now_mono_ms() < end; cycle++) {
        reap_workers();
        kill_random_worker(&seed);
        bump_schedules();
        int fault = cycle % 7;
        counts[fault]++;
        switch (fault) {
        case 0: CHECK_INT(th_run_env_cmd("AQ_TEST_PG_RESTART"), 0); break;
        case 4: CHECK_INT(th_run_env_cmd("AQ_TEST_PG_RESTART_IMMEDIATE"), 0); break;
        case 1: case 2: case 5:
            fake_start(fault == 1 ? F_DOWN : fault == 2 ? F_429 : F_500);
            th_sleep_ms(4000);
            bump_schedules();
            fake_start(F_NORMAL);
            break;
        case 3: {
            /* graceful restarts and crashes in turn */
            int sig = api_restarts++ % 2 ? SIGKILL : SIGTERM;
            int st = th_stop(api_pid, sig, 20000);
            if (st != (sig == SIGKILL ? 128 + SIGKILL : 0)) {
                th_fail(__FILE__, __LINE__, "agentq-api stopped with %s ended with status %d",
                        sig == SIGKILL ? "SIGKILL" : "SIGTERM", st);
            }
            th_sleep_ms(500);
            start_api();
            break;
        }
        case 6: malformed_burst(); break;
        }
        th_sleep_ms(1500 + (long)(rand_r(&seed) % 1000));
    }
    atomic_store(&load_stop, 1);
    pthread_join(load, NULL);

    /* ---- quiet: everything up, refused updates delivered, schedules off, queue drained ---- */
    uint64_t quiet_from = aq_now_mono_ms();
    reap_workers();
    th_exec("UPDATE agent_schedules SET enabled = false", NULL);
    for (int i = 0; i < 200 && npending; i++) {
        redeliver(50);
        if (npending) th_sleep_ms(100);
    }
    CHECK_INT(npending, 0);
    /* nothing queued or running that should have ended: anything due (not an
     * approval's expiry an hour or more away), or waiting */
    int drained = th_wait_int(0, 180000 * SLOW, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                              " AND run_at < now() + interval '1 hour'", NULL);
    unsigned quiet_ms = (unsigned)(aq_now_mono_ms() - quiet_from);
    if (!drained) show("still queued or running", "SELECT id, job_type, status, attempts, run_at, locked_by, last_error"
                       " FROM jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 20");
    reap_workers();

    /* ---- checks ---- */
    printf("    fault campaign: %ld s of faults; %d kill -9 (%d worker restarts), faults:", seconds, kills,
           worker_restarts);
    for (int i = 0; i < 7; i++) printf("%s %s x%d", i ? "," : "", fault_name[i], counts[i]);
    printf("\n    load: %ld requests (%ld answers other than 2xx, redeliveries included), %d accepted jobs, %d schedule slots set;"
           " queue drained %u ms after the faults stopped\n", atomic_load(&ops_sent), atomic_load(&ops_refused),
           nacc, nslots, quiet_ms);

    /* no accepted job lost: each exists and ended */
    int lost = 0, unfinished = 0;
    for (int i = 0; i < nacc; i++) {
        char *st = th_str("SELECT status FROM jobs WHERE id = $1", th_num(acc[i].id), NULL);
        if (!st) { lost++; printf("    lost: accepted job %lld (%c) does not exist\n", acc[i].id, acc[i].kind); }
        else if (strcmp(st, "succeeded") && strcmp(st, "failed") && strcmp(st, "cancelled")) {
            unfinished++;
            printf("    not ended: job %lld (%c) is %s\n", acc[i].id, acc[i].kind, st);
        }
        free(st);
    }
    long long stuck = q_int("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running', 'waiting')"
                            " AND run_at < now() + interval '1 hour'");
    printf("    jobs: %lld succeeded, %lld failed, %lld other; accepted lost %d, not ended %d, stuck %lld\n",
           q_int("SELECT count(*) FROM jobs WHERE status = 'succeeded'"),
           q_int("SELECT count(*) FROM jobs WHERE status = 'failed'"),
           q_int("SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed')"), lost, unfinished, stuck);
    CHECK_INT(lost, 0);
    CHECK_INT(unfinished, 0);
    CHECK_INT(stuck, 0);

    /* no Telegram message accepted twice: every text we cause is unique per
     * chat (model answers carry their fake incarnation and step, failure
     * notices their job id, email notices their subject, "not linked"
     * answers go to a chat used once), so a repeat of (chat_id, text) is a
     * message sent twice */
    int tg_ok = 0, tg_refused = 0;
    int tg_dups = telegram_duplicates(&tg_ok, &tg_refused);
    long long web_dups = q_int("SELECT count(*) FROM (SELECT 1 FROM notifications WHERE job_id IS NOT NULL"
                               " GROUP BY user_id, job_id, kind, action_id HAVING count(*) > 1) d");
    printf("    telegram: %d messages accepted, %d refused by the fake; sent twice: %d. web notifications: %lld,"
           " written twice: %lld\n", tg_ok, tg_refused, tg_dups, q_int("SELECT count(*) FROM notifications"), web_dups);
    if (web_dups) show("web notifications written twice", "SELECT user_id, job_id, kind, action_id, count(*)"
                       " FROM notifications WHERE job_id IS NOT NULL GROUP BY 1, 2, 3, 4 HAVING count(*) > 1");
    CHECK(tg_ok > 0);
    CHECK_INT(tg_dups, 0);
    CHECK_INT(web_dups, 0);

    /* every failed job has a reason; every failed turn one apology */
    long long no_reason = q_int("SELECT count(*) FROM jobs WHERE status = 'failed' AND coalesce(last_error, '') = ''");
    long long no_apology = q_int("SELECT count(*) FROM jobs j WHERE j.status = 'failed'"
                                 " AND j.job_type IN ('agent_turn', 'scheduled_run') AND (SELECT count(*)"
                                 " FROM chat_message_history h WHERE h.job_id = j.id AND h.role = 'assistant'"
                                 " AND h.content LIKE 'Sorry, I could not answer this time%') <> 1");
    printf("    failed jobs without a reason: %lld; failed turns (%lld) without exactly one apology: %lld\n", no_reason,
           q_int("SELECT count(*) FROM jobs WHERE status = 'failed' AND job_type IN ('agent_turn', 'scheduled_run')"),
           no_apology);
    if (no_reason) show("failed without a reason", "SELECT id, job_type, attempts FROM jobs WHERE status = 'failed'"
                        " AND coalesce(last_error, '') = ''");
    if (no_apology) show("failed turns without one apology", "SELECT j.id, j.job_type, j.last_error FROM jobs j"
                         " WHERE j.status = 'failed' AND j.job_type IN ('agent_turn', 'scheduled_run') AND (SELECT count(*)"
                         " FROM chat_message_history h WHERE h.job_id = j.id AND h.role = 'assistant'"
                         " AND h.content LIKE 'Sorry, I could not answer this time%') <> 1");
    CHECK_INT(no_reason, 0);
    CHECK_INT(no_apology, 0);

    /* each slot set fired exactly once; no slot fired twice */
    int slot_wrong = 0;
    for (int i = 0; i < nslots; i++) {
        long long n = th_int("SELECT count(*) FROM jobs WHERE job_type = 'scheduled_run' AND schedule_id = $1"
                             " AND (input->>'slot')::timestamptz = to_timestamp($2)",
                             th_num(slots[i].schedule), th_num(slots[i].at), NULL);
        if (n != 1) {
            slot_wrong++;
            printf("    schedule %lld slot %lld fired %lld times\n", slots[i].schedule, slots[i].at, n);
        }
    }
    long long slot_twice = q_int("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE job_type = 'scheduled_run'"
                                 " GROUP BY schedule_id, input->>'slot' HAVING count(*) > 1) d");
    printf("    schedules: %d slots set, %lld scheduled runs; slots not fired exactly once: %d, fired twice: %lld\n",
           nslots, q_int("SELECT count(*) FROM jobs WHERE job_type = 'scheduled_run'"), slot_wrong, slot_twice);
    CHECK_INT(slot_wrong, 0);
    CHECK_INT(slot_twice, 0);

    /* no process crashed */
    th_resp h = api("GET", "/healthz", NULL, NULL, NULL);
    long health = h.status;
    th_resp_free(&h);
    int stop_bad = 0;
    for (int i = 0; i < NWORKERS; i++) {
        int st = th_stop(workers[i], SIGTERM, 20000);
        if (st) { stop_bad++; printf("    worker %d: SIGTERM -> status %d\n", (int)workers[i], st); }
    }
    int api_st = th_stop(api_pid, SIGTERM, 20000);
    int fake_st = fake_stop();
    int san = sanitizer_reports();
    int cores = core_files(".") + core_files(fake_dir);
    printf("    processes: workers ended by themselves %d, unclean stops %d, API /healthz %ld and SIGTERM -> %d,"
           " fake -> %d, sanitizer reports %d, core files %d; malformed requests %d, answered wrongly %d\n",
           worker_crashes, stop_bad, health, api_st, fake_st, san, cores, malformed_sent, malformed_wrong);
    CHECK_INT(worker_crashes, 0);
    CHECK_INT(stop_bad, 0);
    CHECK_INT(health, 200);
    CHECK_INT(api_st, 0);
    CHECK_INT(fake_st, 0);
    CHECK_INT(san, 0);
    CHECK_INT(cores, 0);
    CHECK_INT(malformed_wrong, 0);
    printf("    fault campaign: %s\n", th_failed ? "FAILED" : "all checks held");
    fflush(stdout);
    for (int u = 0; u < NUSERS; u++) free(tokens[u]);
    free(acc);
}

const th_test th_fault_campaign_tests[] = {
    {"fault_campaign", campaign, 3600, 1},
    {0},
};
