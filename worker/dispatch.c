/* dispatch.c — runs one job on a pool thread: the central validation every
 * job passes before its handler (known type, attempts left, input size, input
 * is a JSON object), the handler call, and turning its answer into a row
 * update (status, output JSON, error text, retry delay, follow-up jobs).
 * Also implements the aq_ctx_* calls handlers make (aq_handler.h). */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_log.h"
#include "aq_time.h"
#include "backoff.h"
#include "jobrun.h"
#include "routes.h"
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct aq_ctx {
    aq_jobrun *jr;
    const aq_config *cfg;
    char *error;
    long retry_ms;
    aq_buf followups;
    int nfollowups;
};

static __thread PGconn *thread_db;

const aq_job *aq_ctx_job(const aq_ctx *ctx) { return &ctx->jr->job; }
const aq_config *aq_ctx_config(const aq_ctx *ctx) { return ctx->cfg; }
void aq_ctx_retry_after(aq_ctx *ctx, long ms) { ctx->retry_ms = ms < 0 ? 0 : ms; }

long aq_ctx_time_left_ms(const aq_ctx *ctx)
{
    long left = (long)(ctx->jr->deadline_ms - aq_now_mono_ms());
    return ctx->jr->deadline_ms > aq_now_mono_ms() ? left : 0;
}

void aq_ctx_error(aq_ctx *ctx, const char *fmt, ...)
{
    free(ctx->error);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ctx->error, fmt, ap) < 0) ctx->error = NULL;
    va_end(ap);
}

PGconn *aq_ctx_db(aq_ctx *ctx)
{
    if (thread_db && PQstatus(thread_db) != CONNECTION_OK) PQreset(thread_db);
    if (thread_db && PQstatus(thread_db) == CONNECTION_OK) return thread_db;
    if (thread_db) { PQfinish(thread_db); thread_db = NULL; }
    char err[512];
    thread_db = aq_db_connect(ctx->cfg->database_url, err, sizeof err);
    if (!thread_db) aq_log(AQ_LOG_WARN, "dispatch", ctx->jr->job.id, "handler database connection: %s", err);
    return thread_db;
}

void aq_dispatch_thread_cleanup(void)
{
    if (thread_db) PQfinish(thread_db);
    thread_db = NULL;
    aq_handlers_thread_cleanup();
}

int aq_ctx_enqueue(aq_ctx *ctx, const char *job_type, const cJSON *input, const aq_enqueue_opts *opts)
{
    if (!job_type || !aq_handler_find(job_type)) return AQ_EINVAL;
    if (input && !cJSON_IsObject(input)) return AQ_EINVAL;
    aq_enqueue_opts o = opts ? *opts : (aq_enqueue_opts){0};
    aq_buf *b = &ctx->followups;
    aq_buf_adds(b, ctx->nfollowups++ ? "," : "[");
    aq_buf_addf(b, "{\"parent\":%lld,\"attempt\":%d,\"type\":", (long long)ctx->jr->job.id, ctx->jr->job.attempts);
    aq_buf_add_json_str(b, job_type);
    if (o.queue) { aq_buf_adds(b, ",\"queue\":"); aq_buf_add_json_str(b, o.queue); }
    if (o.idempotency_key) { aq_buf_adds(b, ",\"key\":"); aq_buf_add_json_str(b, o.idempotency_key); }
    if (o.max_attempts > 0) aq_buf_addf(b, ",\"max_attempts\":%d", o.max_attempts);
    if (o.user_id > 0) aq_buf_addf(b, ",\"user_id\":%lld", (long long)o.user_id);
    if (o.session_id) { aq_buf_adds(b, ",\"session_id\":"); aq_buf_add_json_str(b, o.session_id); }
    aq_buf_addf(b, ",\"priority\":%d,\"delay_ms\":%ld,\"input\":", o.priority, o.run_in_ms > 0 ? o.run_in_ms : 0);
    char *in = input ? cJSON_PrintUnformatted(input) : NULL;
    aq_buf_adds(b, in ? in : "{}");
    cJSON_free(in);
    aq_buf_adds(b, "}");
    return 0;
}

static void fail(aq_jobrun *jr, char *msg)
{
    jr->status = "failed";
    jr->error = msg;
}

/* A retry request: queued with a delay, or failed when attempts are spent. */
static void retry(aq_jobrun *jr, const aq_config *cfg, char *msg, long requested_ms)
{
    long d = aq_retry_delay_ms(jr->job.attempts, jr->job.max_attempts, requested_ms,
                               cfg->retry_base_ms, cfg->retry_max_ms, randombytes_random());
    if (d < 0) {
        jr->status = "failed";
        jr->error = aq_sprintf("%s (gave up after %d attempts)", msg, jr->job.attempts);
        free(msg);
        return;
    }
    jr->status = "queued";
    jr->delay_ms = d;
    jr->error = msg;
}

void aq_dispatch_run(aq_jobrun *jr, const aq_config *cfg)
{
    const aq_job *j = &jr->job;
    if (!jr->handler) {
        fail(jr, aq_sprintf("unknown job type '%s'", j->job_type));
        goto out;
    }
    if (j->attempts > j->max_attempts) {
        fail(jr, aq_sprintf("gave up after %d attempts: lease expired while running (worker lost)",
                            j->max_attempts));
        goto out;
    }
    if ((long)jr->input_len > cfg->max_input_bytes) {
        fail(jr, aq_sprintf("input is %zu bytes, over the %ld-byte limit", jr->input_len, cfg->max_input_bytes));
        goto out;
    }
    cJSON *input = cJSON_ParseWithLength(jr->input, jr->input_len);
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        fail(jr, aq_strdup("input is not a JSON object"));
        goto out;
    }
    const char *bad_route = aq_routes_check(input);
    if (bad_route) {
        cJSON_Delete(input);
        fail(jr, aq_strdup(bad_route));
        goto out;
    }

    aq_ctx ctx = {.jr = jr, .cfg = cfg, .retry_ms = -1};
    aq_buf_init(&ctx.followups);
    cJSON *output = NULL;
    aq_job_status st = jr->handler->fn(&ctx, input, &output);

    char *out = output ? cJSON_PrintUnformatted(output) : NULL;
    char *msg = ctx.error ? ctx.error : aq_strdup(st == AQ_JOB_OK ? "" : "handler gave no reason");
    aq_utf8_sanitize(msg);
    if (st == AQ_JOB_OK && out && !aq_utf8_valid(out, strlen(out))) {
        free(msg);
        msg = aq_strdup("handler output is not valid UTF-8");
        st = AQ_JOB_FAIL;
    }
    if (st == AQ_JOB_OK) {
        jr->status = "succeeded";
        jr->output = out ? aq_strdup(out) : NULL;
        free(msg);
    } else if (st == AQ_JOB_WAIT) {
        jr->status = "waiting";
        jr->output = out ? aq_strdup(out) : NULL;
        free(msg);
    } else if (st == AQ_JOB_FAIL) {
        fail(jr, msg);
    } else {
        retry(jr, cfg, msg, ctx.retry_ms);
    }
    if (jr->status[0] != 'q') aq_routes_enqueue(&ctx, input, output, jr->status, jr->error);
    cJSON_Delete(input);
    cJSON_Delete(output);
    cJSON_free(out);
    if (ctx.nfollowups && jr->status[0] != 'q' && aq_utf8_valid(ctx.followups.p, ctx.followups.len)) {
        aq_buf_adds(&ctx.followups, "]");
        jr->followups = aq_buf_take(&ctx.followups);
    }
    aq_buf_dispose(&ctx.followups);
out:
    if (jr->status[0] == 'f') aq_log(AQ_LOG_WARN, "dispatch", j->id, "%s failed: %s", j->job_type, jr->error);
}

void aq_jobrun_destroy(aq_jobrun *jr)
{
    if (!jr) return;
    free(jr->strs);
    free(jr->output);
    free(jr->error);
    free(jr->followups);
    free(jr);
}
