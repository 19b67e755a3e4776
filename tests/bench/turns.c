/* turns.c — `agentq-bench turns`: agent turns against a model that answers
 * after a fixed delay, and what the worker holds while they run.
 *
 *   agentq-bench turns --jobs N --delay-ms D --log FILE [--timeout-s T] -- WORKER...
 *
 * AQ_BENCH_FAKE names bin/agentq-fake; AQ_BENCH_WORKER_URL is the worker's
 * conninfo, which must log in as a role that is not a superuser (checked).
 *
 * Setup: jobs, workers and the chat tables are emptied; N users
 * ("bench-turn-I", made once, kept) each get one turn in a new session of
 * their own, enqueued by the API's own statement (aq_jobs_sql_enqueue_batch,
 * what POST /v1/chat runs, here 1,000 rows per statement: the same rows,
 * without HTTP in the way); VACUUM ANALYZE, CHECKPOINT. Then the fake model
 * starts (`agentq-fake --llm-delay-ms D`), the database clock is read, and
 * the worker starts (LLM_PROVIDER=openai at the fake, the given conninfo).
 *
 * Every 100 ms until no turn is queued or running (or T seconds passed):
 * the worker role's sessions in pg_stat_activity and the worker's Threads
 * (/proc); every second, turns running; the peaks are kept. Sampling must
 * stay cheap: Postgres shares the cores with the worker, and counting
 * 15,000 rows ten times a second took it over a third of a core's time in
 * the 5,000-in-flight run. At the end: the worker's VmHWM, then SIGTERM
 * (grace 5 s); the fake's summary (requests it got, most waiting at once);
 * succeeded, failed and unfinished turns; turns/s = succeeded / (last
 * success - the start stamp), or, when cut off at T, those succeeded by
 * then / (the cut-off - the start stamp); each turn's started→finished
 * p50/p99; assistant replies stored (one per turn that reached the model is
 * right) and turns with more than one (a turn that ran again after its
 * reply was stored). Failure reasons go to stderr. A worker that exits (or
 * refuses its flags) is reported, not fatal: started=0.
 *
 * Output: one `turns key=value ...` line. */
#include "bench.h"
#include "aq_buf.h"
#include "aq_jobs.h"
#include "aq_time.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENQUEUE_ROWS 1000
#define SAMPLE_MS 100
#define COUNT_EVERY 10   /* samples: turns running are counted every this many */
#define MAX_WORKER_ARGS 64

/* A random version-4 UUID (from /dev/urandom, read in bulk by the caller). */
static void uuid_from(const unsigned char r[16], char out[37])
{
    unsigned char b[16];
    memcpy(b, r, 16);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

/* N users and one queued turn each, in a session of its own. */
static void enqueue_turns(PGconn *db, long n)
{
    char num[24];
    snprintf(num, sizeof num, "%ld", n);
    const char *p[] = {num};
    PQclear(aq_bench_exec(db, "INSERT INTO users (name, token_id, token_hash)"
                              " SELECT 'bench-turn-' || i, 'bench-turn-' || i, '\\x00'::bytea"
                              " FROM generate_series(1, $1::int) i ON CONFLICT (name) DO NOTHING", 1, p));
    PGresult *users = aq_bench_exec(db, "SELECT id FROM users WHERE name ~ '^bench-turn-[0-9]+$'"
                                        " AND substr(name, 12)::int <= $1::int ORDER BY id", 1, p);
    if (PQntuples(users) != n) { fprintf(stderr, "turns: %d users, want %ld\n", PQntuples(users), n); exit(1); }
    unsigned char *rnd = malloc((size_t)n * 16);
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, rnd, (size_t)n * 16) != (ssize_t)(n * 16)) { perror("turns: /dev/urandom"); exit(1); }
    close(fd);
    for (long i0 = 0; i0 < n; i0 += ENQUEUE_ROWS) {
        aq_buf b;
        aq_buf_init(&b);
        aq_buf_adds(&b, "[");
        long rows = 0;
        for (long i = i0; i < n && i < i0 + ENQUEUE_ROWS; i++, rows++) {
            char sid[37];
            uuid_from(rnd + i * 16, sid);
            aq_buf_addf(&b, "%s{\"job_type\":\"agent_turn\",\"input\":{\"message\":\"hello from the turn bench\","
                            "\"session_id\":\"%s\",\"channel\":\"web\"},\"user_id\":%s,\"session_id\":\"%s\"}",
                        i > i0 ? "," : "", sid, PQgetvalue(users, (int)i, 0), sid);
        }
        aq_buf_adds(&b, "]");
        const char *bp[] = {b.p};
        PGresult *r = aq_bench_exec(db, aq_jobs_sql_enqueue_batch, 1, bp);
        long made = 0;
        for (int k = 0; k < PQntuples(r); k++) made += !PQgetisnull(r, k, 1);
        PQclear(r);
        aq_buf_dispose(&b);
        if (made != rows) { fprintf(stderr, "turns: enqueued %ld of %ld\n", made, rows); exit(1); }
    }
    free(rnd);
    PQclear(users);
}

/* Start the fake model; its port, or exit. */
static int start_fake(const char *bin, long delay_ms, const char *summary, const char *ready, pid_t *pid)
{
    char d[24];
    snprintf(d, sizeof d, "%ld", delay_ms);
    unlink(ready);
    unlink(summary);
    char *argv[] = {(char *)bin, "--port", "0", "--llm-delay-ms", d, "--log", (char *)summary,
                    "--ready-file", (char *)ready, NULL};
    *pid = aq_bench_spawn(argv, NULL);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(ready, "r");
        int port = 0;
        if (f) { if (fscanf(f, "%d", &port) != 1) port = 0; fclose(f); }
        if (port > 0) return port;
        if (aq_bench_check_alive(pid)) break;
        aq_sleep_ms(10);
    }
    fprintf(stderr, "turns: agentq-fake did not start\n");
    exit(1);
}

/* Column col of row 0 as a number (0 when NULL). */
static long num(const PGresult *r, int col) { return strtol(PQgetvalue(r, 0, col), NULL, 10); }
static double real(const PGresult *r, int col) { return strtod(PQgetvalue(r, 0, col), NULL); }

/* A number from the fake's summary line ("key":N), or -1. */
static long summary_num(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

int aq_bench_cmd_turns(const aq_bench_opts *o)
{
    const char *fake = getenv("AQ_BENCH_FAKE"), *wurl = getenv("AQ_BENCH_WORKER_URL");
    if (!fake || !wurl || !o->log) {
        fprintf(stderr, "turns: set AQ_BENCH_FAKE and AQ_BENCH_WORKER_URL, and give --log\n");
        return 2;
    }
    /* the worker's role, and that it is no superuser */
    PGconn *wdb = PQconnectdb(wurl);
    if (PQstatus(wdb) != CONNECTION_OK) {
        fprintf(stderr, "turns: worker conninfo: %s", PQerrorMessage(wdb));
        return 1;
    }
    PGresult *r = aq_bench_exec(wdb, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user",
                                0, NULL);
    char role[128];
    snprintf(role, sizeof role, "%s", PQgetvalue(r, 0, 0));
    int super = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    PQfinish(wdb);
    if (super) { fprintf(stderr, "turns: the worker's role %s is a superuser\n", role); return 1; }

    PGconn *db = aq_bench_connect();
    PQclear(aq_bench_exec(db, "TRUNCATE jobs, workers, chat_sessions, chat_message_history CASCADE", 0, NULL));
    enqueue_turns(db, o->jobs);
    PQclear(aq_bench_exec(db, "VACUUM ANALYZE jobs", 0, NULL));
    PQclear(aq_bench_exec(db, "CHECKPOINT", 0, NULL));

    char summary[1024], ready[1024];
    snprintf(summary, sizeof summary, "%s.model", o->log);
    snprintf(ready, sizeof ready, "%s.model-port", o->log);
    pid_t fake_pid;
    int port = start_fake(fake, o->delay_ms, summary, ready, &fake_pid);

    /* env VAR=... WORKER ARGS: the worker gets its own conninfo and the fake as its model */
    char env_db[1200], env_url[128];
    snprintf(env_db, sizeof env_db, "DATABASE_URL=%s", wurl);
    snprintf(env_url, sizeof env_url, "LLM_BASE_URL=http://127.0.0.1:%d/v1", port);
    char *argv[MAX_WORKER_ARGS + 8] = {"env", env_db, "LLM_PROVIDER=openai", env_url, "LLM_API_KEY=bench",
                                       "AGENTQ_SHUTDOWN_GRACE_SECONDS=5", "AGENTQ_LOG_LEVEL=warn"};
    int na = 7;
    for (char **a = o->worker_argv; *a && na < MAX_WORKER_ARGS + 7; a++) argv[na++] = *a;
    argv[na] = NULL;

    r = aq_bench_exec(db, "SELECT clock_timestamp()", 0, NULL);
    char start[64];
    snprintf(start, sizeof start, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pid_t pid = aq_bench_spawn(argv, o->log);
    uint64_t t0 = aq_now_mono_ms();

    const char *rp[] = {role, "true"};
    long peak_conns = 0, peak_threads = 0, peak_running = 0, samples = 0;
    int started = 0, timed_out = 0;   /* started: the worker registered */
    char stopped_at[64] = "";
    for (;;) {
        /* counting the turns running costs Postgres tens of ms at 15,000 rows: once a second */
        r = aq_bench_exec(db, "SELECT (EXISTS (SELECT 1 FROM jobs WHERE status = 'queued')"
                              " OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running'))::int,"
                              " CASE WHEN $2 THEN (SELECT count(*) FROM jobs WHERE status = 'running') END,"
                              " (SELECT count(*) FROM pg_stat_activity WHERE usename = $1), clock_timestamp(),"
                              " (SELECT count(*) FROM workers)", 2, rp);
        long left = num(r, 0), running = num(r, 1), conns = num(r, 2);
        snprintf(stopped_at, sizeof stopped_at, "%s", PQgetvalue(r, 0, 3));
        if (num(r, 4) > 0) started = 1;
        PQclear(r);
        long threads = aq_bench_proc_status(pid, "Threads");
        samples++;
        if (conns > peak_conns) peak_conns = conns;
        if (threads > peak_threads) peak_threads = threads;
        if (running > peak_running) peak_running = running;
        if (!left) break;
        if (aq_bench_check_alive(&pid)) break;
        if (aq_now_mono_ms() - t0 > (uint64_t)o->timeout_s * 1000u) {
            fprintf(stderr, "turns: %ld turns still queued or running after %ld s; stopping\n", left, o->timeout_s);
            timed_out = 1;
            break;
        }
        aq_sleep_ms(SAMPLE_MS);
        rp[1] = samples % COUNT_EVERY ? "false" : "true";
    }
    long hwm = pid ? aq_bench_proc_status(pid, "VmHWM") : -1;
    int worker_exit = pid ? aq_bench_stop(pid) : -1;
    aq_bench_stop(fake_pid);
    char line[1024] = "";
    FILE *f = fopen(summary, "r");
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = '\0'; fclose(f); }

    const char *p[] = {start, timed_out ? stopped_at : NULL};
    r = aq_bench_exec(db,
        "SELECT count(*) FILTER (WHERE status = 'succeeded' AND finished_at <= coalesce($2::timestamptz, finished_at)),"
        " count(*) FILTER (WHERE status = 'failed'),"
        " count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed')),"
        " extract(epoch FROM coalesce($2::timestamptz, max(finished_at) FILTER (WHERE status = 'succeeded'))"
        "  - $1::timestamptz),"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)"
        "  FILTER (WHERE status = 'succeeded'),"
        " percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)"
        "  FILTER (WHERE status = 'succeeded'),"
        " count(*) FILTER (WHERE claims > 1),"
        " (SELECT count(*) FROM chat_message_history WHERE role = 'assistant'),"
        " (SELECT count(*) FROM (SELECT job_id FROM chat_message_history WHERE role = 'assistant'"
        "  GROUP BY job_id HAVING count(*) > 1) d),"
        " count(*) FILTER (WHERE status = 'succeeded')"
        " FROM jobs WHERE job_type = 'agent_turn'", 2, p);
    long ok = num(r, 0), failed = num(r, 1), unfinished = num(r, 2);
    double secs = PQgetisnull(r, 0, 3) ? 0 : real(r, 3);
    double p50 = real(r, 4), p99 = real(r, 5);
    long reclaimed = num(r, 6), replies = num(r, 7);
    long doubled = num(r, 8), ok_all = num(r, 9);
    PQclear(r);
    r = aq_bench_exec(db, "SELECT count(*), left(coalesce(last_error, status), 160) FROM jobs"
                          " WHERE job_type = 'agent_turn' AND status <> 'succeeded' GROUP BY 2 ORDER BY 1 DESC LIMIT 5",
                      0, NULL);
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(stderr, "turns: %s not succeeded: %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    printf("turns jobs=%ld delay_ms=%ld started=%d timed_out=%d succeeded=%ld succeeded_in_time=%ld failed=%ld"
           " unfinished=%ld seconds=%.3f turns_per_s=%.0f turn_p50_ms=%.0f turn_p99_ms=%.0f peak_db_conns=%ld"
           " peak_threads=%ld peak_running=%ld hwm_kb=%ld model_requests=%ld model_max_waiting=%ld replies=%ld"
           " doubled_replies=%ld reclaimed=%ld samples=%ld role=%s superuser=%d worker_exit=%d\n",
           o->jobs, o->delay_ms, started, timed_out, ok_all, ok, failed, unfinished, secs,
           secs > 0 ? (double)ok / secs : 0.0, p50, p99, peak_conns, peak_threads, peak_running, hwm,
           summary_num(line, "requests"), summary_num(line, "max_waiting"), replies, doubled, reclaimed, samples,
           role, super, worker_exit);
    PQfinish(db);
    return 0;
}
