/* harness.c — helpers for tests (see harness.h). */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_time.h"
#include <errno.h>
#include <fcntl.h>
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
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = th_bin("agentq-worker");
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
