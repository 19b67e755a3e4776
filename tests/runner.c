/* runner.c — bin/agentq-test: runs the table of tests, each in its own forked
 * process group with a timeout and (for integration tests) a fresh database
 * cloned from a migrated template. Prints one line per test, the log tail of
 * a failed one, and a closing "N passed, N failed" line.
 *
 *   agentq-test [SUBSTRING...]     run the tests whose names contain one
 *
 * With AQ_FAULT_CAMPAIGN=1 it runs the fault campaign (`make faults`) instead.
 *
 * Integration tests need AQ_TEST_PGHOST/AQ_TEST_PGPORT (set by tests/run.sh,
 * which also starts and stops the throwaway cluster). */
#include "aq_db.h"
#include "aq_log.h"
#include "aq_migrate.h"
#include "aq_time.h"
#include "harness.h"
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern const th_test th_unit_tests[], th_engine_tests[], th_fault_tests[], th_api_tests[], th_fake_tests[],
    th_agent_tests[], th_cron_tests[], th_schedule_tests[], th_telegram_api_tests[], th_telegram_tests[], th_cli_tests[],
    th_failure_tests[], th_docs_tests[], th_api_limits_tests[], th_layout_tests[], th_plans_tests[], th_deploy_tests[], th_email_tests[], th_serial_tests[], th_inflight_tests[], th_web_tests[],
    th_metrics_tests[], th_fault_campaign_tests[];
const th_test *const th_groups[] = {th_unit_tests, th_cron_tests, th_engine_tests, th_fault_tests, th_api_tests,
                                   th_api_limits_tests,
                                   th_fake_tests, th_agent_tests, th_schedule_tests, th_telegram_api_tests,
                                   th_telegram_tests, th_cli_tests, th_failure_tests, th_docs_tests, th_layout_tests,
                                   th_plans_tests, th_metrics_tests, th_deploy_tests, th_email_tests, th_serial_tests, th_inflight_tests, th_web_tests,
                                   NULL};
/* The fault campaign (t_fault_campaign.c, minutes long) runs only when asked:
 * AQ_FAULT_CAMPAIGN=1 (`make faults`) runs it instead of the groups above. */
static const th_test *const campaign_groups[] = {th_fault_campaign_tests, NULL};

extern char th_url[512], th_log[512];

static char *conninfo(const char *db)
{
    static char buf[4][512];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 512, "host=%s port=%s user=postgres dbname=%s", getenv("AQ_TEST_PGHOST"),
             getenv("AQ_TEST_PGPORT"), db);
    return b;
}

static int admin(const char *sql)
{
    char err[512];
    PGconn *db = aq_db_connect(conninfo("postgres"), err, sizeof err);
    if (!db) { fprintf(stderr, "runner: %s\n", err); return -1; }
    PGresult *r = PQexec(db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "runner: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(db);
    return ok ? 0 : -1;
}

/* aq_template: migrated once, plus the table test_record writes into. */
static int make_template(void)
{
    admin("DROP DATABASE IF EXISTS aq_template");
    if (admin("CREATE DATABASE aq_template")) return -1;
    char err[1024];
    PGconn *db = aq_db_connect(conninfo("aq_template"), err, sizeof err);
    if (!db) { fprintf(stderr, "runner: %s\n", err); return -1; }
    int rc = aq_migrate(db, err, sizeof err);
    if (rc < 0) fprintf(stderr, "runner: migrate: %s\n", err);
    PGresult *r = PQexec(db, "CREATE TABLE test_executions (job_id bigint, attempt int, worker_pid int,"
                             " started_at timestamptz, finished_at timestamptz)");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = -1;
    PQclear(r);
    PQfinish(db);
    return rc < 0 ? -1 : 0;
}

static void print_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *lines[30] = {0};
    char buf[2048];
    int n = 0;
    while (fgets(buf, sizeof buf, f)) {
        free(lines[n % 30]);
        lines[n % 30] = strdup(buf);
        n++;
    }
    fclose(f);
    if (n) fprintf(stderr, "    --- last lines of %s ---\n", path);
    for (int i = n > 30 ? n - 30 : 0; i < n; i++) fprintf(stderr, "    | %s", lines[i % 30]);
    for (int i = 0; i < 30; i++) free(lines[i]);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    aq_log_set_level("warn");
    curl_global_init(CURL_GLOBAL_DEFAULT);   /* once, before any test forks (th_http) */
    int have_db = getenv("AQ_TEST_PGHOST") && getenv("AQ_TEST_PGPORT");
    const char *logdir = getenv("AQ_TEST_LOGDIR") ? getenv("AQ_TEST_LOGDIR") : "/tmp";
    const char *fc = getenv("AQ_FAULT_CAMPAIGN");
    const th_test *const *run = fc && !strcmp(fc, "1") ? campaign_groups : th_groups;
    int need_db = 0;
    for (int g = 0; run[g]; g++)
        for (const th_test *t = run[g]; t->name; t++)
            if (t->needs_db && selected(t->name, argc, argv)) need_db = 1;
    if (need_db && have_db && make_template()) {
        fprintf(stderr, "runner: cannot prepare the template database\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0, idx = 0;
    for (int g = 0; run[g]; g++) {
        for (const th_test *t = run[g]; t->name; t++) {
            if (!selected(t->name, argc, argv)) continue;
            idx++;
            if (t->needs_db && !have_db) {
                printf("not ok %d %s: no database (run through tests/run.sh)\n", idx, t->name);
                failed++;
                continue;
            }
            char dbname[64];
            snprintf(dbname, sizeof dbname, "t_%d_%d", idx, (int)getpid());
            char sql[256];
            if (t->needs_db) {
                snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE aq_template", dbname);
                if (admin(sql)) { printf("not ok %d %s: cannot create database\n", idx, t->name); failed++; continue; }
                snprintf(th_url, sizeof th_url, "%s", conninfo(dbname));
            }
            snprintf(th_log, sizeof th_log, "%s/%s.log", logdir, t->name);
            unlink(th_log);
            uint64_t t0 = aq_now_mono_ms();
            pid_t pid = fork();
            if (pid == 0) {
                setpgid(0, 0);
                th_failed = 0;
                t->fn();
                exit(th_failed ? 1 : 0);
            }
            setpgid(pid, pid);
            int status = 0, timed_out = 0;
            uint64_t deadline = t0 + (uint64_t)t->timeout_s * 1000u;
            while (waitpid(pid, &status, WNOHANG) == 0) {
                if (aq_now_mono_ms() > deadline) {
                    timed_out = 1;
                    kill(-pid, SIGKILL);
                    waitpid(pid, &status, 0);
                    break;
                }
                aq_sleep_ms(10);
            }
            kill(-pid, SIGKILL);   /* any worker the test left behind */
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
            unsigned ms = (unsigned)(aq_now_mono_ms() - t0);
            int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (ok) {
                printf("ok %d %s (%u ms)\n", idx, t->name, ms);
                passed++;
            } else {
                printf("not ok %d %s (%s, %u ms)\n", idx, t->name,
                       timed_out ? "timed out" : WIFSIGNALED(status) ? "crashed" : "failed", ms);
                print_log_tail(th_log);
                failed++;
            }
            if (t->needs_db) {
                aq_sleep_ms(50);
                snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
                admin(sql);
            }
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
