/* harness.c — helpers for tests (see harness.h). */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_time.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int th_failed;
char th_url[512];
char th_log[512];
static PGconn *conn;

void th_fail(const char *file, int line, const char *fmt, ...)
{
    th_failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void th_sleep_ms(long ms) { aq_sleep_ms(ms); }

const char *th_num(long long v)
{
    static char buf[8][32];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 32, "%lld", v);
    return b;
}
const char *th_db_url(void) { return th_url; }

PGconn *th_db(void)
{
    if (conn && PQstatus(conn) == CONNECTION_OK) return conn;
    if (conn) PQfinish(conn);
    for (int i = 0; i < 300; i++) {   /* the database may be restarting */
        conn = PQconnectdb(th_url);
        if (PQstatus(conn) == CONNECTION_OK) {
            PQclear(PQexec(conn, "SET client_min_messages = warning"));
            return conn;
        }
        PQfinish(conn);
        conn = NULL;
        aq_sleep_ms(100);
    }
    fprintf(stderr, "    cannot connect to %s\n", th_url);
    exit(1);
}

static PGresult *vquery(const char *sql, va_list ap)
{
    const char *params[16];
    int n = 0;
    const char *p;
    while ((p = va_arg(ap, const char *)) != NULL && n < 16) params[n++] = p;
    for (int attempt = 0;; attempt++) {
        PGresult *r = PQexecParams(th_db(), sql, n, NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
        if (PQstatus(conn) != CONNECTION_OK && attempt < 3) { PQclear(r); continue; }
        th_fail(__FILE__, __LINE__, "SQL failed: %s: %s", sql, PQresultErrorMessage(r));
        return r;
    }
}

void th_exec(const char *sql, ...)
{
    va_list ap;
    va_start(ap, sql);
    PQclear(vquery(sql, ap));
    va_end(ap);
}

static long long int_of(PGresult *r)
{
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    return v;
}

long long th_int(const char *sql, ...)
{
    va_list ap;
    va_start(ap, sql);
    PGresult *r = vquery(sql, ap);
    va_end(ap);
    long long v = int_of(r);
    PQclear(r);
    return v;
}

char *th_str(const char *sql, ...)
{
    va_list ap;
    va_start(ap, sql);
    PGresult *r = vquery(sql, ap);
    va_end(ap);
    char *s = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        s = aq_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return s;
}

int th_wait_int(long long want, int timeout_ms, const char *sql, ...)
{
    uint64_t end = aq_now_mono_ms() + (uint64_t)timeout_ms;
    long long v = -1;
    for (;;) {
        va_list ap;
        va_start(ap, sql);
        PGresult *r = vquery(sql, ap);
        va_end(ap);
        v = int_of(r);
        PQclear(r);
        if (v == want) return 1;
        if (aq_now_mono_ms() > end) break;
        aq_sleep_ms(20);
    }
    th_fail(__FILE__, __LINE__, "waited %d ms for (%s) == %lld; last value %lld", timeout_ms, sql, want, v);
    return 0;
}

const char *th_bin(const char *name)
{
    static char path[4][512];
    static int i;
    const char *dir = getenv("AQ_TEST_BIN");
    char *p = path[i++ % 4];
    snprintf(p, 512, "%s/%s", dir ? dir : "bin", name);
    return p;
}

pid_t th_worker(const char *const *args, const char *const *env)
{
    return th_worker_at(th_bin("agentq-worker"), args, env);
}

pid_t th_worker_at(const char *exe, const char *const *args, const char *const *env)
{
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = exe;
        for (int i = 0; args && args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        setenv("DATABASE_URL", th_url, 1);
        setenv("AGENTQ_TEST_HANDLERS", "1", 1);
        if (!getenv("AGENTQ_LOG_LEVEL")) setenv("AGENTQ_LOG_LEVEL", "info", 1);
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        execv(argv[0], (char *const *)argv);
        perror("execv");
        _exit(127);
    }
    return pid;
}

int th_alive(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == 0;
}

int th_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    uint64_t end = aq_now_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno == ECHILD) return -2;
        if (aq_now_mono_ms() > end) break;
        aq_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int th_run_env_cmd(const char *var)
{
    const char *cmd = getenv(var);
    if (!cmd) { th_fail(__FILE__, __LINE__, "%s is not set (run through tests/run.sh)", var); return -1; }
    int rc = system(cmd);
    if (conn) { PQfinish(conn); conn = NULL; }
    return rc;
}

/* ---- the API over HTTP ---- */

static int api_port;

int th_api_port(void) { return api_port; }

/* A port nobody listens on now (bound to 0 and released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* For a sanitized agentq-api (SANITIZE=1): LeakSanitizer reports, at exit,
 * the blocks h2o keeps for reuse in its per-thread recycle lists (memory-pool
 * chunks and socket buffers, allocated in h2o_mem_alloc_recycle): thread-local
 * lists vanish with their threads, so LSan sees the blocks as lost, and the
 * API would exit 1 after a clean stop. Their total is bounded by h2o's
 * recycle caps (about 30 blocks after 400 requests), so they are caches, not
 * per-request leaks. Only stacks through h2o_mem_alloc_recycle are
 * suppressed; any other leak still fails the test. A plain build ignores
 * LSAN_OPTIONS, and a caller's own LSAN_OPTIONS is left alone. */
static void lsan_h2o_suppression(void)
{
    char path[600];
    const char *slash = strrchr(th_log, '/');
    snprintf(path, sizeof path, "%.*s/lsan-h2o.supp", slash ? (int)(slash - th_log) : 1, slash ? th_log : ".");
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs("leak:h2o_mem_alloc_recycle\n", f);
    fclose(f);
    char opt[700];
    snprintf(opt, sizeof opt, "suppressions=%s:print_suppressions=0", path);
    setenv("LSAN_OPTIONS", opt, 1);
}

pid_t th_api(const char *const *env)
{
    api_port = free_port();
    if (api_port < 0) { th_fail(__FILE__, __LINE__, "no free port"); exit(1); }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", api_port);
        setenv("DATABASE_URL", th_url, 1);
        setenv("AGENTQ_SECRET_KEY", TH_SECRET_KEY, 1);
        setenv("AGENTQ_LISTEN", listen, 1);
        setenv("AGENTQ_API_THREADS", "2", 1);
        if (!getenv("AGENTQ_LOG_LEVEL")) setenv("AGENTQ_LOG_LEVEL", "info", 1);
        if (!getenv("LSAN_OPTIONS")) lsan_h2o_suppression();
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        const char *bin = th_bin("agentq-api");
        execl(bin, bin, (char *)NULL);
        perror("execl");
        _exit(127);
    }
    uint64_t end = aq_now_mono_ms() + 15000;
    for (;;) {
        th_resp r = th_http("GET", "/healthz", NULL, NULL, NULL, NULL);
        long st = r.status;
        th_resp_free(&r);
        if (st == 200) return pid;
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) {
            th_fail(__FILE__, __LINE__, "agentq-api exited at start (status %d)",
                    WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
            exit(1);
        }
        if (aq_now_mono_ms() > end) {
            th_fail(__FILE__, __LINE__, "agentq-api did not answer /healthz within 15 s (last status %ld)", st);
            exit(1);
        }
        aq_sleep_ms(20);
    }
}

char *th_user(const char *name, int operator)
{
    int fds[2];
    if (pipe(fds)) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        setenv("DATABASE_URL", th_url, 1);
        setenv("AGENTQ_SECRET_KEY", TH_SECRET_KEY, 1);
        const char *bin = th_bin("agentq");
        execl(bin, bin, "users", "add", name, operator ? "--operator" : (char *)NULL, (char *)NULL);
        perror("execl");
        _exit(127);
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof out - 1 && ((k = read(fds[0], out + n, sizeof out - 1 - n)) > 0 || (k < 0 && errno == EINTR)))
        if (k > 0) n += (size_t)k;
    close(fds[0]);
    out[n] = '\0';
    int ws;
    waitpid(pid, &ws, 0);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = '\0';
    char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || !*last) {
        th_fail(__FILE__, __LINE__, "agentq users add %s: exit status %d, output \"%s\"", name,
                WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, out);
        exit(1);
    }
    return aq_strdup(last);
}

typedef struct {
    th_resp *r;
    size_t cap;
    const char *want;
} recv_ctx;

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    recv_ctx *x = arg;
    size_t n = size * nmemb;
    if (x->r->len + n + 1 > x->cap) {
        while (x->r->len + n + 1 > x->cap) x->cap *= 2;
        x->r->body = aq_realloc(x->r->body, x->cap);
    }
    memcpy(x->r->body + x->r->len, p, n);
    x->r->len += n;
    x->r->body[x->r->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    recv_ctx *x = arg;
    size_t n = size * nmemb, wl = x->want ? strlen(x->want) : 0;
    if (wl && n > wl && p[wl] == ':' && !strncasecmp(p, x->want, wl)) {
        const char *v = p + wl + 1, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
        free(x->r->header);
        x->r->header = aq_malloc((size_t)(e - v) + 1);
        memcpy(x->r->header, v, (size_t)(e - v));
        x->r->header[e - v] = '\0';
    }
    return n;
}

th_resp th_http(const char *method, const char *path, const char *token, const char *body,
                const char *const *headers, const char *want_header)
{
    th_resp r = {0};
    recv_ctx x = {&r, 256, want_header};
    r.body = aq_malloc(x.cap);
    r.body[0] = '\0';
    CURL *h = curl_easy_init();
    if (!h) { snprintf(r.body, x.cap, "curl_easy_init failed"); return r; }
    char url[2048], auth[1024];
    if (!strncmp(path, "http://", 7)) snprintf(url, sizeof url, "%s", path);
    else snprintf(url, sizeof url, "http://127.0.0.1:%d%s", api_port, path);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Expect:");   /* no 100-continue round trip */
    if (body) hl = curl_slist_append(hl, "Content-Type: application/json");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (!method) method = body ? "POST" : "GET";
    if (!strcmp(method, "POST") && !body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(method, body ? "POST" : "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    uint64_t t0 = aq_now_mono_ms();
    CURLcode rc = curl_easy_perform(h);
    r.secs = (double)(aq_now_mono_ms() - t0) / 1000.0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    else snprintf(r.body, x.cap, "(no response: %s)", curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return r;
}

th_resp th_get(const char *path, const char *token) { return th_http("GET", path, token, NULL, NULL, NULL); }

th_resp th_post(const char *path, const char *token, const char *body)
{
    return th_http("POST", path, token, body, NULL, NULL);
}

void th_resp_free(th_resp *r)
{
    free(r->body);
    free(r->header);
    r->body = r->header = NULL;
}

/* ---- the fake HTTP server ---- */

static char fake_script[600], fake_log[600], fake_ready[600];

/* th_log is LOGDIR/NAME.log; the fake's files are LOGDIR/NAME.fake-*. */
static void fake_paths(void)
{
    int n = (int)strlen(th_log);
    if (n > 4 && !strcmp(th_log + n - 4, ".log")) n -= 4;
    snprintf(fake_script, sizeof fake_script, "%.*s.fake-script.json", n, th_log);
    snprintf(fake_log, sizeof fake_log, "%.*s.fake-requests.jsonl", n, th_log);
    snprintf(fake_ready, sizeof fake_ready, "%.*s.fake-ready", n, th_log);
}

const char *th_fake_log_path(void) { return fake_log; }
const char *th_fake_script_path(void) { return fake_script; }

/* The whole file (heap, NUL-terminated), or NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, k;
    char *text = aq_malloc(cap);
    while ((k = fread(text + n, 1, cap - 1 - n, f)) > 0) {
        n += k;
        if (n == cap - 1) text = aq_realloc(text, cap *= 2);
    }
    fclose(f);
    text[n] = '\0';
    if (len_out) *len_out = n;
    return text;
}

/* Replace path's contents through a rename, so a reader sees old or new. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

pid_t th_fake(const char *script_json, char *url_out, size_t url_len)
{
    fake_paths();
    if (write_atomic(fake_script, script_json)) {
        th_fail(__FILE__, __LINE__, "cannot write %s", fake_script);
        exit(1);
    }
    unlink(fake_log);
    unlink(fake_ready);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        const char *bin = th_bin("agentq-fake");
        execl(bin, bin, "--port", "0", "--script", fake_script, "--log", fake_log,
              "--ready-file", fake_ready, (char *)NULL);
        perror("execl");
        _exit(127);
    }
    uint64_t end = aq_now_mono_ms() + 10000;
    for (;;) {
        char *ready = slurp(fake_ready, NULL);
        int port = ready ? atoi(ready) : 0;
        free(ready);
        if (port > 0) {
            snprintf(url_out, url_len, "http://127.0.0.1:%d", port);
            return pid;
        }
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) {
            th_fail(__FILE__, __LINE__, "agentq-fake exited at start (status %d; the log says why)",
                    WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
            exit(1);
        }
        if (aq_now_mono_ms() > end) {
            th_fail(__FILE__, __LINE__, "agentq-fake did not write %s within 10 s", fake_ready);
            exit(1);
        }
        aq_sleep_ms(10);
    }
}

void th_fake_add(const char *steps_json)
{
    cJSON *add = cJSON_Parse(steps_json), *script = NULL;
    char *text = slurp(fake_script, NULL), *out = NULL;
    if (text) script = cJSON_Parse(text);
    if (!cJSON_IsArray(script)) {
        th_fail(__FILE__, __LINE__, "th_fake_add: no script at %s (th_fake first)", fake_script);
        goto done;
    }
    if (cJSON_IsObject(add)) {
        cJSON_AddItemToArray(script, add);
        add = NULL;
    } else if (cJSON_IsArray(add)) {
        while (add->child)
            cJSON_AddItemToArray(script, cJSON_DetachItemViaPointer(add, add->child));
    } else {
        th_fail(__FILE__, __LINE__, "th_fake_add: not a step or an array of steps: %s", steps_json);
        goto done;
    }
    out = cJSON_Print(script);
    if (!out || write_atomic(fake_script, out))
        th_fail(__FILE__, __LINE__, "cannot write %s", fake_script);
done:
    free(out);
    free(text);
    cJSON_Delete(script);
    cJSON_Delete(add);
}

cJSON *th_fake_requests(void)
{
    cJSON *all = cJSON_CreateArray();
    size_t len;
    char *text = slurp(fake_log, &len);
    if (!text) return all;
    char *line = text, *nl;
    while ((nl = memchr(line, '\n', len - (size_t)(line - text)))) {
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        if (o) cJSON_AddItemToArray(all, o);
        else th_fail(__FILE__, __LINE__, "%s: a line is not JSON: %.200s", fake_log, line);
        line = nl + 1;
    }
    free(text);
    return all;
}

int th_fake_wait(int n, int timeout_ms)
{
    uint64_t end = aq_now_mono_ms() + (uint64_t)timeout_ms;
    int have = 0;
    for (;;) {
        size_t len;
        char *text = slurp(fake_log, &len);
        have = 0;
        for (size_t i = 0; text && i < len; i++) have += text[i] == '\n';
        free(text);
        if (have >= n) return 1;
        if (aq_now_mono_ms() > end) break;
        aq_sleep_ms(10);
    }
    th_fail(__FILE__, __LINE__, "waited %d ms for %d fake requests; have %d", timeout_ms, n, have);
    return 0;
}

/* ---- bin/agentq as a child process ---- */

void th_cli_free(th_cli_run *r)
{
    free(r->out);
    free(r->err);
}

/* Append a line and a child's stderr to the test's log (shown when it fails). */
static void log_run(const char *const *args, const th_cli_run *r)
{
    FILE *f = fopen(th_log, "a");
    if (!f) return;
    fputs("$ agentq", f);
    for (int i = 0; args[i]; i++) fprintf(f, " %s", args[i]);
    fprintf(f, "   -> exit %d\n%s", r->status, r->err);
    fclose(f);
}

/* Run bin/agentq ARGS with the test's DATABASE_URL and then env ("K=V",
 * NULL-terminated, may be NULL); capture both streams and the exit status.
 * A sanitizer report on stderr fails the test. */
th_cli_run th_cli(const char *const *env, const char *const *args)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe)) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        const char *argv[64];
        int n = 0;
        argv[n++] = th_bin("agentq");
        for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
        argv[n] = NULL;
        setenv("DATABASE_URL", th_db_url(), 1);
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        perror("execv");
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    aq_buf out, err;
    aq_buf_init(&out);
    aq_buf_init(&err);
    aq_buf_adds(&out, "");
    aq_buf_adds(&err, "");
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    aq_buf *bufs[2] = {&out, &err};
    int open_fds = 2;
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            char buf[4096];
            ssize_t k = read(fds[i].fd, buf, sizeof buf);
            if (k > 0) {
                aq_buf_add(bufs[i], buf, (size_t)k);
            } else if (k == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    th_cli_run r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws), aq_buf_take(&out),
                 aq_buf_take(&err)};
    log_run(args, &r);
    if (strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:"))
        th_fail(__FILE__, __LINE__, "sanitizer report from agentq %s: %s", args[0], r.err);
    return r;
}

long long th_jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

const char *th_jstr(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}
