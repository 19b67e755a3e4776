/* test_handlers.c — job types that exist for the test suite and benchmarks
 * (registered only with AGENTQ_TEST_HANDLERS=1):
 *
 *   test_fail      {"fail_times":N, "permanent":bool, "retry_after_ms":M, "message":S}
 *                  fails its first N attempts (N<0: always), then succeeds
 *   test_sleep     {"ms":N}  sleeps, then succeeds
 *   test_hang      the same handler registered with a 2 s timeout
 *   test_agent_turn   agent_turn itself (handlers/agent_turn.c) with a 3 s timeout
 *   test_crash     kills its own worker process with SIGKILL
 *   test_record    {"sleep_ms":N}  inserts one row per execution into
 *                  test_executions(job_id, attempt, worker_pid, started_at, finished_at),
 *                  a table the test creates
 *   test_stamp     succeeds with {"started_us": wall clock at handler start}
 *   test_followup  {"count":N, "type":T}  enqueues N follow-up jobs of type T (noop)
 *   test_output    {"text":S, "invalid_utf8":bool} succeeds with {"text":S} (default "fine"),
 *                  or with an output holding bad UTF-8
 *   test_http      {"url":U, "timeout_ms":N}  a two-step handler (aq_handler.h,
 *                  "Steps"): reads the clock through aq_ctx_db, awaits a POST
 *                  to U, then succeeds with {"status", "body_len", "error",
 *                  "steps"} (error null when a response arrived)
 *                  {"leave_open": true}: the first step also opens a transaction
 *                  and inserts test_executions(job_id, attempt 1) in it without
 *                  committing (a handler bug: the dispatcher rolls it back), the
 *                  second inserts (job_id, attempt 2) outside any transaction
 *   test_http_short  the same with a 2 s timeout
 *   test_db_kept   keeps the connection aq_ctx_db gave it (as agent_turn does)
 *                  across its loss: waits until the test forbids new
 *                  connections to the database (datallowconn), ends its own
 *                  backend, asks aq_ctx_cancelled (which finds the connection
 *                  lost and cannot remake it), waits up to 20 s for aq_ctx_db
 *                  to connect again (the test allows connections back), then
 *                  queries through the pointer it kept: succeeds with
 *                  {"kept": true} when that works
 */
#include "aq_time.h"
#include "aq_db.h"
#include "handlers.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

static long num(const cJSON *input, const char *key, long def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : def;
}

aq_job_status aq_handle_test_fail(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    long times = num(input, "fail_times", -1);
    int attempt = aq_ctx_job(ctx)->attempts;
    if (times < 0 || attempt <= times) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(input, "message");
        aq_ctx_error(ctx, "%s (attempt %d)", cJSON_IsString(msg) ? msg->valuestring : "test failure", attempt);
        long after = num(input, "retry_after_ms", -1);
        if (after >= 0) aq_ctx_retry_after(ctx, after);
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "permanent")) ? AQ_JOB_FAIL : AQ_JOB_RETRY;
    }
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "attempts", attempt);
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_sleep(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    long ms = num(input, "ms", 100);
    aq_sleep_ms(ms);
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "slept_ms", (double)ms);
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_crash(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    raise(SIGKILL);
    return AQ_JOB_FAIL;
}

aq_job_status aq_handle_test_record(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    char id[24], attempt[16], pid[16];
    snprintf(id, sizeof id, "%lld", (long long)aq_ctx_job(ctx)->id);
    snprintf(attempt, sizeof attempt, "%d", aq_ctx_job(ctx)->attempts);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    PGresult *r;
    char started[64];
    int have = !aq_db_query(db, "test record: the clock", "SELECT clock_timestamp()", 0, NULL, &r);
    snprintf(started, sizeof started, "%s", have ? PQgetvalue(r, 0, 0) : "now");
    PQclear(r);
    aq_sleep_ms(num(input, "sleep_ms", 0));
    const char *p[] = {id, attempt, pid, started};
    int ok = !aq_db_query(db, "test record", "INSERT INTO test_executions (job_id, attempt, worker_pid, started_at,"
                          " finished_at) VALUES ($1, $2, $3, $4, clock_timestamp())", 4, p, NULL);
    if (!ok) aq_ctx_error(ctx, "record: %s", aq_db_error_message());
    return ok ? AQ_JOB_OK : AQ_JOB_RETRY;
}

aq_job_status aq_handle_test_stamp(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    int64_t us = aq_now_wall_us();
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "started_us", (double)us);
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_followup(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    long n = num(input, "count", 1);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(input, "type");
    for (long i = 0; i < n; i++) {
        cJSON *in = cJSON_CreateObject();
        cJSON_AddNumberToObject(in, "n", (double)i);
        int rc = aq_ctx_enqueue(ctx, cJSON_IsString(type) ? type->valuestring : "noop", in, NULL);
        cJSON_Delete(in);
        if (rc) { aq_ctx_error(ctx, "cannot enqueue follow-up"); return AQ_JOB_FAIL; }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "then_retry")) && aq_ctx_job(ctx)->attempts == 1) {
        aq_ctx_error(ctx, "retry after enqueueing");
        aq_ctx_retry_after(ctx, 0);
        return AQ_JOB_RETRY;
    }
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_output(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    *output = cJSON_CreateObject();
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "invalid_utf8")))
        cJSON_AddStringToObject(*output, "text", "bad \xff\xfe bytes");
    else {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(input, "text");
        cJSON_AddStringToObject(*output, "text", cJSON_IsString(text) ? text->valuestring : "fine");
    }
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_http(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    if (aq_db_query(db, "test http: the clock", "SELECT clock_timestamp()", 0, NULL, NULL)) {
        aq_ctx_error(ctx, "test http: %s", aq_db_error_message());
        return AQ_JOB_RETRY;
    }
    long *steps = aq_ctx_state(ctx);
    if (!steps) {
        steps = calloc(1, sizeof *steps);
        aq_ctx_set_state(ctx, steps, free);
    }
    ++*steps;
    const aq_http_resp *r = aq_ctx_http_response(ctx);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "leave_open"))) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)aq_ctx_job(ctx)->id);
        const char *p[] = {id, r ? "2" : "1"};
        if ((!r && aq_db_query(db, "test http: begin", "BEGIN", 0, NULL, NULL)) ||
            aq_db_query(db, "test http: insert", "INSERT INTO test_executions (job_id, attempt) VALUES ($1, $2)",
                        2, p, NULL)) {
            aq_ctx_error(ctx, "test http: %s", aq_db_error_message());
            return AQ_JOB_RETRY;
        }
    }
    if (!r) {
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(input, "url");
        if (!cJSON_IsString(url)) { aq_ctx_error(ctx, "input.url: required"); return AQ_JOB_FAIL; }
        const char *hdrs[] = {"Content-Type: application/json", NULL};
        aq_http_request req = {.url = url->valuestring, .headers = hdrs, .body = "{}", .body_len = 2,
                               .timeout_ms = num(input, "timeout_ms", 30000), .max_bytes = 1u << 20};
        aq_ctx_http(ctx, &req);
        return AQ_JOB_AWAIT;
    }
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "status", (double)r->status);
    cJSON_AddNumberToObject(*output, "body_len", (double)r->len);
    if (r->error) cJSON_AddStringToObject(*output, "error", r->error); else cJSON_AddNullToObject(*output, "error");
    cJSON_AddNumberToObject(*output, "steps", (double)*steps);
    return AQ_JOB_OK;
}

aq_job_status aq_handle_test_db_kept(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    (void)input;
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    int forbidden = 0;
    for (int i = 0; i < 200 && !forbidden; i++) {
        PGresult *r;
        if (aq_db_query(db, "test db kept: datallowconn",
                        "SELECT NOT datallowconn FROM pg_database WHERE datname = current_database()", 0, NULL, &r))
            break;
        forbidden = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (!forbidden) aq_sleep_ms(100);
    }
    if (!forbidden) { aq_ctx_error(ctx, "test db kept: connections were never forbidden"); return AQ_JOB_FAIL; }
    aq_db_query(db, "test db kept: ending its own backend", "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL,
                NULL);
    aq_ctx_cancelled(ctx);
    for (int i = 0; i < 200 && !aq_ctx_db(ctx); i++) aq_sleep_ms(100);
    int ok = aq_db_query(db, "test db kept: through the kept pointer", "SELECT 1", 0, NULL, NULL) == 0;
    *output = cJSON_CreateObject();
    cJSON_AddBoolToObject(*output, "kept", ok);
    return AQ_JOB_OK;
}
