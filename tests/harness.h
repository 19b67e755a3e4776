/* harness.h — the test runner's helpers: checks that print both sides, a
 * fresh database per test, SQL helpers, and starting/stopping the real
 * binaries. Every test runs in its own forked process (and process group)
 * with a timeout; see runner.c. */
#ifndef AQ_HARNESS_H
#define AQ_HARNESS_H
#include <cJSON.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

typedef struct th_test {
    const char *name;
    void (*fn)(void);
    int timeout_s;
    int needs_db;
} th_test;

/* every group's table, NULL-terminated (runner.c) */
extern const th_test *const th_groups[];

extern int th_failed;
void th_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define CHECK(c) do { if (!(c)) th_fail(__FILE__, __LINE__, "expected %s", #c); } while (0)
#define CHECK_INT(a, b) do { long long a_ = (a), b_ = (b); if (a_ != b_) \
    th_fail(__FILE__, __LINE__, "%s == %s: got %lld, want %lld", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_)) th_fail(__FILE__, __LINE__, "%s == %s: got \"%s\", want \"%s\"", \
        #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
    if (!h_ || !strstr(h_, n_)) th_fail(__FILE__, __LINE__, "%s contains \"%s\": got \"%s\"", \
        #hay, n_, h_ ? h_ : "(null)"); } while (0)

/* v as a decimal string, for SQL parameters (eight rotating static buffers) */
const char *th_num(long long v);
/* conninfo of this test's own database */
const char *th_db_url(void);
/* a connection to it (opened on first use) */
PGconn *th_db(void);
/* Run sql with string parameters ending in NULL; fail the test on error. */
void th_exec(const char *sql, ...);
/* First column of the first row as an integer (-1 if NULL or no row). */
long long th_int(const char *sql, ...);
/* First column of the first row (heap string; NULL if NULL or no row). */
char *th_str(const char *sql, ...);
/* Poll sql (with params) every 20 ms until it returns want; 1 if it did within
 * timeout_ms, else 0 (and the check fails with the last value). */
int th_wait_int(long long want, int timeout_ms, const char *sql, ...);

/* Start bin/agentq-worker with extra args (NULL-terminated) and environment
 * "K=V" strings (NULL-terminated); AGENTQ_TEST_HANDLERS=1 and the test's
 * DATABASE_URL are set. stderr goes to the test's log. */
pid_t th_worker(const char *const *args, const char *const *env);
/* The same with the worker executable at exe (a copy elsewhere). */
pid_t th_worker_at(const char *exe, const char *const *args, const char *const *env);
/* Send sig and wait up to timeout_ms; returns the exit status, or -1 (after
 * SIGKILL) if the process did not exit in time. */
int th_stop(pid_t pid, int sig, int timeout_ms);
int th_alive(pid_t pid);
/* Run a shell command from the environment variable `var` (set by run.sh). */
int th_run_env_cmd(const char *var);
/* Path to a binary in bin/. */
const char *th_bin(const char *name);
void th_sleep_ms(long ms);

/* ---- the API over HTTP (libcurl; curl_global_init is done by the runner) ---- */

/* The AGENTQ_SECRET_KEY th_api and th_user share (64 hex digits, tests only). */
#define TH_SECRET_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* Start bin/agentq-api on a free 127.0.0.1 port with the test's DATABASE_URL,
 * TH_SECRET_KEY, AGENTQ_API_THREADS=2 and then env ("K=V", NULL-terminated,
 * may override those); stderr goes to the test's log. Returns once GET
 * /healthz answers 200; exits the test (failed) if it never does. Later
 * th_http calls go to this server. A sanitized build's LeakSanitizer is told
 * to ignore h2o's recycle caches only (see lsan_h2o_suppression in harness.c). */
pid_t th_api(const char *const *env);
/* Port of the server th_api last started. */
int th_api_port(void);
/* Run `agentq users add NAME [--operator]` with TH_SECRET_KEY and return the
 * token it prints as its last line (heap); exits the test (failed) on error. */
char *th_user(const char *name, int operator);

typedef struct th_resp {
    long status;        /* HTTP status; 0 when no response came (see body) */
    char *body;         /* response body, NUL-terminated (heap, never NULL) */
    size_t len;         /* body length in bytes */
    char *header;       /* value of the header asked for, or NULL (heap) */
    double secs;        /* how long the exchange took */
} th_resp;

/* One request to the th_api server (its own connection; safe from threads);
 * a path starting with "http://" is a whole URL instead (a th_fake server).
 * method: NULL means GET, or POST when a body is given; path: "/v1/jobs?x=1";
 * token: sent as "Authorization: Bearer TOKEN" (NULL: no header); body: sent
 * as is with Content-Type: application/json (NULL: none); headers: extra
 * "Name: value" lines, NULL-terminated (NULL: none; they may replace the
 * defaults); want_header: a response header (any case) returned in .header.
 * Times out after 60 s. Free the result with th_resp_free. */
th_resp th_http(const char *method, const char *path, const char *token, const char *body,
                const char *const *headers, const char *want_header);
/* GET path with token (th_http shorthand). */
th_resp th_get(const char *path, const char *token);
/* POST body (JSON text) to path with token (th_http shorthand). */
th_resp th_post(const char *path, const char *token, const char *body);
void th_resp_free(th_resp *r);

/* ---- the fake HTTP server (bin/agentq-fake; script and log formats in
 * tests/fake/main.c) standing in for the LLM API or Telegram ---- */

/* Write script_json (a JSON array of steps) to NAME.fake-script.json beside
 * the test's log, start bin/agentq-fake on a free 127.0.0.1 port (stderr to
 * the test's log) and wait until it listens. Puts "http://127.0.0.1:PORT" in
 * url_out and returns the pid (stop it with th_stop, or leave it to the
 * runner). One fake at a time per test: a second call, after stopping the
 * first, replaces the script and empties the request log. Exits the test
 * (failed) if the fake does not start within 10 s or the script is invalid. */
pid_t th_fake(const char *script_json, char *url_out, size_t url_len);
/* The running fake's request log (one JSON object per line) and script. */
const char *th_fake_log_path(void);
const char *th_fake_script_path(void);
/* Append steps (a JSON array of steps, or one step object) to the running
 * fake's script. The file is replaced by a rename; the fake reloads it on its
 * next request and keeps what it already served. Fails the test on bad JSON. */
void th_fake_add(const char *steps_json);
/* Every request the fake logged so far, as a JSON array of log objects in
 * arrival order (never NULL; the caller cJSON_Deletes it). A line that does
 * not parse fails the test; a last line still being written is left out. */
cJSON *th_fake_requests(void);
/* Wait until the fake has logged at least n requests; 1 if it did within
 * timeout_ms, else 0 (and the check fails). */
int th_fake_wait(int n, int timeout_ms);

/* ---- bin/agentq as a child process ---- */

typedef struct th_cli_run {
    int status;   /* exit status; 128 + signal when killed */
    char *out;    /* stdout (heap, never NULL) */
    char *err;    /* stderr (heap, never NULL) */
} th_cli_run;
/* Run bin/agentq ARGS (NULL-terminated) with the test's DATABASE_URL and
 * then env ("K=V", NULL-terminated, may be NULL); capture both streams and
 * the exit status, and note the run in the test's log. A sanitizer report on
 * stderr fails the test. Free with th_cli_free. */
th_cli_run th_cli(const char *const *env, const char *const *args);
void th_cli_free(th_cli_run *r);

/* A JSON object's member: the integer (-1 when not a number), the string (NULL when not one). */
long long th_jnum(const cJSON *o, const char *key);
const char *th_jstr(const cJSON *o, const char *key);

#endif
