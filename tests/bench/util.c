/* util.c — database, process and /proc helpers for bin/agentq-bench (see bench.h). */
#include "bench.h"
#include "aq_time.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

PGconn *aq_bench_connect(void)
{
    const char *url = getenv("DATABASE_URL");
    PGconn *db = PQconnectdb(url ? url : "");
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "agentq-bench: cannot connect: %s", PQerrorMessage(db));
        exit(1);
    }
    return db;
}

/* a statement's result, or the bench stops with its error */
static PGresult *checked(PGresult *res, const char *sql)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "agentq-bench: %s\n  in: %s\n", PQresultErrorMessage(res), sql);
        exit(1);
    }
    return res;
}

PGresult *aq_bench_exec(PGconn *db, const char *sql, int n, const char *const *params)
{
    return checked(n ? PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0) : PQexec(db, sql), sql);
}

void aq_bench_prepare(PGconn *db, const char *name, const char *sql, int n)
{
    PQclear(checked(PQprepare(db, name, sql, n, NULL), sql));
}

PGresult *aq_bench_exec_prepared(PGconn *db, const char *name, const char *sql, int n, const char *const *params)
{
    return checked(PQexecPrepared(db, name, n, params, NULL, NULL, 0), sql);
}

long long aq_bench_scalar(PGconn *db, const char *sql, int n, const char *const *params)
{
    PGresult *res = aq_bench_exec(db, sql, n, params);
    long long v = PQntuples(res) && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return v;
}

void aq_bench_load(PGconn *db, long jobs, long finished)
{
    PQclear(aq_bench_exec(db, "TRUNCATE jobs, workers RESTART IDENTITY", 0, NULL));
    if (finished > 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", finished);
        const char *p[] = {n};
        PQclear(aq_bench_exec(db, "INSERT INTO jobs (job_type, status, attempts, created_at, started_at, finished_at)"
                                  " SELECT 'noop', 'succeeded', 1, now() - interval '1 hour',"
                                  " now() - interval '1 hour', now() - interval '1 hour'"
                                  " FROM generate_series(1, $1::int)", 1, p));
    }
    if (jobs > 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", jobs);
        const char *p[] = {"noop", "{}", n};
        PQclear(aq_bench_exec(db, "INSERT INTO jobs (job_type, input)"
                                  " SELECT $1, $2::jsonb FROM generate_series(1, $3::int)", 3, p));
    }
    PQclear(aq_bench_exec(db, "VACUUM ANALYZE jobs", 0, NULL));
    PQclear(aq_bench_exec(db, "CHECKPOINT", 0, NULL));
}

pid_t aq_bench_spawn(char *const argv[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { perror("agentq-bench: fork"); exit(1); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);   /* the bench died before prctl */
        int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execvp(argv[0], argv);
        fprintf(stderr, "agentq-bench: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int describe_exit(pid_t pid, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code)
        fprintf(stderr, "agentq-bench: worker %d %s %d\n", (int)pid,
                WIFEXITED(status) ? "exited with status" : "was killed by signal",
                WIFEXITED(status) ? code : WTERMSIG(status));
    return code;
}

int aq_bench_check_alive(pid_t *pid)
{
    int status;
    if (*pid <= 0) return -1;
    if (waitpid(*pid, &status, WNOHANG) != *pid) return 0;
    describe_exit(*pid, status);
    *pid = 0;
    return -1;
}

long aq_bench_wait_registered(PGconn *db, pid_t *pid, long timeout_ms)
{
    char p[16];
    snprintf(p, sizeof p, "%d", (int)*pid);
    const char *params[] = {p};
    uint64_t start = aq_now_mono_ms();
    for (;;) {
        if (aq_bench_scalar(db, "SELECT count(*) FROM workers WHERE pid = $1::int", 1, params))
            return (long)(aq_now_mono_ms() - start);
        if (aq_bench_check_alive(pid) || aq_now_mono_ms() - start > (uint64_t)timeout_ms) return -1;
        aq_sleep_ms(5);
    }
}

int aq_bench_stop(pid_t pid)
{
    int status;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 3000; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) return describe_exit(pid, status);
        if (w < 0) return -1;
        aq_sleep_ms(10);
    }
    fprintf(stderr, "agentq-bench: worker %d ignored SIGTERM for 30 s; killing it\n", (int)pid);
    kill(pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid) return -1;
    return describe_exit(pid, status);
}

long aq_bench_proc_status(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return v;
}
