/* bench.h — shared parts of bin/agentq-bench, the measuring half of `make bench`
 * (tests/bench.sh orchestrates; this binary does what needs a persistent
 * connection or microsecond clocks): database helpers that exit on error,
 * spawning and stopping worker processes by PID, and reading their memory
 * from /proc. Every subcommand prints its figures as one `key=value ...` line
 * on stdout for bench.sh to parse; diagnostics go to stderr. */
#ifndef AQ_BENCH_H
#define AQ_BENCH_H
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Options every subcommand shares; main.c parses them. */
typedef struct aq_bench_opts {
    long jobs;             /* --jobs N */
    long workers;          /* --workers N (drain) */
    long interval_ms;      /* --interval-ms N (latency: one enqueue every N ms) */
    long idle_ms;          /* --idle-ms N (how long a worker idles before its RSS is read) */
    long timeout_s;        /* --timeout-s N (give up on a drain or latency run) */
    long rate;             /* --rate N (steady: jobs/s in all) */
    long seconds;          /* --seconds N (steady: how long the producers run) */
    long window_s;         /* --window-s N (steady: figures per window of N s) */
    long api_pct;          /* --api-pct N (steady: this % of the rate as single rows through the API) */
    long finished;         /* --finished N (drain: N finished rows in the table besides the queued ones) */
    long delay_ms;         /* --delay-ms N (turns: the fake model answers after N ms) */
    long chat_per_min;     /* --chat-per-min N (soak: POST /v1/chat this many times a minute) */
    const char *log;       /* --log FILE (worker stdout/stderr; default /dev/null) */
    char **worker_argv;    /* everything after `--` */
} aq_bench_opts;

int aq_bench_cmd_load(const aq_bench_opts *o);
int aq_bench_cmd_idle(const aq_bench_opts *o);
int aq_bench_cmd_drain(const aq_bench_opts *o);
int aq_bench_cmd_latency(const aq_bench_opts *o);
int aq_bench_cmd_chatload(const aq_bench_opts *o);
int aq_bench_cmd_steady(const aq_bench_opts *o);
int aq_bench_cmd_turns(const aq_bench_opts *o);
int aq_bench_cmd_soak(const aq_bench_opts *o);

/* A producer at a fixed rate (produce.c), run in a thread of its own with
 * aq_bench_sql_producer (runs `sql` with $1 = batch, batch rows a time) or
 * aq_bench_api_producer (POSTs `body` to api+path, one job a request, over up
 * to 64 keep-alive connections; a 202 counts as produced, anything else as
 * refused). It stops at end_us (monotonic, µs); the API producer then waits
 * for its requests in flight. */
typedef struct aq_bench_producer {
    double rate;                 /* jobs/s */
    uint64_t t0_us, end_us;      /* aq_bench_mono_us() */
    atomic_long produced, refused;
    const char *sql;             /* SQL producer: the statement, $1 the batch size */
    long batch;
    const char *api, *token;     /* API producer: http://host:port and a bearer token */
    const char *path, *body;     /* ... the path POSTed to and the JSON body */
} aq_bench_producer;
void *aq_bench_sql_producer(void *arg);

/* The API producer's HTTP/1.1 client (http1.c). aq_http1_target resolves
 * "http://host:port"; aq_http1_request builds a POST's bytes once (malloc'd,
 * the caller frees); aq_http1_connect opens a blocking TCP connection (-1 on
 * failure); aq_http1_response says whether buf holds a whole response: its
 * length, 0 if not yet, -1 if it is not one the client can read. */
typedef struct aq_http1_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
    char hostport[160];
} aq_http1_addr;
int aq_http1_target(const char *base, aq_http1_addr *a);
char *aq_http1_request(const aq_http1_addr *a, const char *path, const char *token, const char *body, size_t *len);
int aq_http1_connect(const aq_http1_addr *a);
int aq_http1_response(const char *buf, size_t len, int *status, int *keep_alive);
void *aq_bench_api_producer(void *arg);
/* CLOCK_MONOTONIC in µs, and a sleep until such a moment (none if past). */
uint64_t aq_bench_mono_us(void);
void aq_bench_sleep_until_us(uint64_t t);

/* The drain's poll, every 10 ms beside the worker it times: 1 while a job
 * is queued or running, else 0. Two probes of the partial indexes whose
 * predicate is exactly that status (sql/002's jobs_user_queued, sql/001's
 * jobs_running), each stopping at its first live entry, whatever the table
 * holds besides; the drain also turns sequential scans off for it, so no
 * estimate makes a probe a walk through the finished rows. It was count(*)
 * of status IN ('queued','running'), which no partial index serves: beside
 * 1,000,000 finished rows a parallel sequential scan of the whole table
 * (three processes, ~200 ms of CPU) every 10 ms, the bench taking the cores
 * of the worker it timed (docs/DESIGN.md "Retention"). tests/t_plans.c
 * checks the plan. */
#define AQ_BENCH_SQL_BUSY                                                                                  \
    "SELECT (EXISTS (SELECT FROM jobs WHERE status = 'queued')"                                           \
    " OR EXISTS (SELECT FROM jobs WHERE status = 'running'))::int"

/* Connect with $DATABASE_URL; exits with status 1 on failure. */
PGconn *aq_bench_connect(void);
/* Run sql with n text parameters; exits with status 1 unless the result is
 * COMMAND_OK or TUPLES_OK. The caller PQclear()s the result. */
PGresult *aq_bench_exec(PGconn *db, const char *sql, int n, const char *const *params);
/* The same for a statement prepared once as name (sql names it in errors). */
void aq_bench_prepare(PGconn *db, const char *name, const char *sql, int n);
PGresult *aq_bench_exec_prepared(PGconn *db, const char *name, const char *sql, int n, const char *const *params);
/* First column of the first row as a long long (0 when NULL). */
long long aq_bench_scalar(PGconn *db, const char *sql, int n, const char *const *params);

/* Empty the jobs and workers tables, insert `finished` succeeded noop jobs
 * (finished an hour ago) and `jobs` queued ones, each with one statement,
 * VACUUM ANALYZE, CHECKPOINT (so no timed checkpoint lands in the
 * measurement that follows, and every run starts from the same state). */
void aq_bench_load(PGconn *db, long jobs, long finished);

/* fork+exec argv with stdout/stderr appended to log_path. The child gets
 * SIGKILL if this process dies, so no worker outlives the bench. Exits on
 * failure. */
pid_t aq_bench_spawn(char *const argv[], const char *log_path);
/* 0 while *pid runs; once it has exited, reaps it, prints why, sets *pid to
 * 0 (so nothing signals a reused PID later) and returns -1. */
int aq_bench_check_alive(pid_t *pid);
/* Wait until the worker *pid has a row in `workers` (connected, statements
 * prepared, first heartbeat written); returns the milliseconds waited, or -1
 * after timeout_ms or if it exited (then *pid is 0). */
long aq_bench_wait_registered(PGconn *db, pid_t *pid, long timeout_ms);
/* SIGTERM, wait up to 30 s for a graceful exit, then SIGKILL. Returns the
 * exit status (128+signal when killed), warning on stderr unless it is 0;
 * -1 for pid 0 (already reaped). */
int aq_bench_stop(pid_t pid);

/* A numeric field of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile are in
 * kB; Threads a count); -1 if unreadable. */
long aq_bench_proc_status(pid_t pid, const char *field);

#endif
