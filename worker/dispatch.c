/* dispatch.c — runs one job on a pool thread: the central validation every
 * job passes before its handler (known type, attempts left, lease losses
 * bounded, input size, input is a JSON object), the handler call, and turning
 * its answer into a row update (status, output JSON, error text, retry delay,
 * whether the run spends an attempt, follow-up jobs, session messages). Every
 * path to 'failed' passes through final_failure(): the type's hook and the
 * completion hook (the failure notice on the job's reply routes, which
 * handlers/ supplies: aq_handler_completion). Also implements the aq_ctx_*
 * calls handlers make (aq_handler.h), among them the owned (fenced) writes.
 *
 * A job runs as one or more steps (aq_dispatch_step): its ctx lives with the
 * jobrun from the first step to the end, so what the handler gathers carries
 * over; a step that returns AQ_JOB_AWAIT leaves its request in the ctx for
 * the loop (aq_dispatch_request) and gives its database connection back. */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_log.h"
#include "aq_time.h"
#include "backoff.h"
#include "dbpool.h"
#include "jobrun.h"
#include "metrics.h"
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct aq_ctx {
    aq_jobrun *jr;
    const aq_config *cfg;
    aq_dbpool *dbs;
    PGconn *db;        /* lent to the current step */
    cJSON *input;      /* parsed at the first step */
    int routes_ok;
    void *state;
    void (*state_free)(void *);
    aq_http_request *req;        /* asked by the current step */
    aq_http_resp resp;           /* for the step after an await */
    int has_resp;
    char *error;
    long retry_ms;
    int transient;
    aq_buf followups, says;
    int nfollowups, nsays;
    int cancelled;     /* a cancel was recorded while it ran (seen by the handler or the fence) */
};

const aq_job *aq_ctx_job(const aq_ctx *ctx) { return &ctx->jr->job; }
const aq_config *aq_ctx_config(const aq_ctx *ctx) { return ctx->cfg; }
void aq_ctx_retry_after(aq_ctx *ctx, long ms) { ctx->retry_ms = ms < 0 ? 0 : ms; }

void aq_ctx_retry_transient(aq_ctx *ctx, long requested_ms)
{
    ctx->transient = 1;
    ctx->retry_ms = requested_ms < 0 ? -1 : requested_ms;
}

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

/* The connection object a step was given stays the same until the step ends:
 * handlers keep the pointer (agent_turn's t.db) across calls that come back
 * here (aq_ctx_cancelled, aq_ctx_begin_owned), so a lost connection is reset
 * in place and never finished and replaced mid-step (that freed the pointer a
 * handler still held: seen under ASan after a database restart). The step's
 * end returns it to the pool, which closes it if it is still broken. */
PGconn *aq_ctx_db(aq_ctx *ctx)
{
    if (ctx->db) {
        if (!aq_db_usable(ctx->db)) PQreset(ctx->db);
        if (PQstatus(ctx->db) == CONNECTION_OK) return ctx->db;
        const char *e = PQerrorMessage(ctx->db);
        aq_log(AQ_LOG_WARN, "dispatch", ctx->jr->job.id, "handler database connection lost: %.*s",
               (int)strcspn(e, "\n"), e);
        return NULL;
    }
    char err[512];
    ctx->db = aq_dbpool_borrow(ctx->dbs, err, sizeof err);
    if (!ctx->db) aq_log(AQ_LOG_WARN, "dispatch", ctx->jr->job.id, "handler database connection: %s", err);
    return ctx->db;
}

void aq_ctx_http(aq_ctx *ctx, const aq_http_request *req)
{
    aq_http_request_free(ctx->req);
    ctx->req = aq_http_request_copy(req);
}

const aq_http_resp *aq_ctx_http_response(const aq_ctx *ctx) { return ctx->has_resp ? &ctx->resp : NULL; }

void aq_ctx_set_state(aq_ctx *ctx, void *state, void (*state_free)(void *))
{
    if (ctx->state && ctx->state_free && ctx->state != state) ctx->state_free(ctx->state);
    ctx->state = state;
    ctx->state_free = state_free;
}

void *aq_ctx_state(const aq_ctx *ctx) { return ctx->state; }

void aq_dispatch_thread_cleanup(void) { aq_handlers_thread_cleanup(); }

aq_http_request *aq_dispatch_request(aq_jobrun *jr)
{
    aq_http_request *req = jr->ctx ? jr->ctx->req : NULL;
    if (req) jr->ctx->req = NULL;
    return req;
}

void aq_dispatch_response(aq_jobrun *jr, aq_http_resp *resp)
{
    aq_ctx *ctx = jr->ctx;
    if (ctx->has_resp) aq_http_resp_dispose(&ctx->resp);
    ctx->resp = *resp;
    ctx->has_resp = 1;
    memset(resp, 0, sizeof *resp);
}

static void ctx_free(aq_ctx *ctx)
{
    if (!ctx) return;
    aq_ctx_set_state(ctx, NULL, NULL);
    aq_http_request_free(ctx->req);
    if (ctx->has_resp) aq_http_resp_dispose(&ctx->resp);
    cJSON_Delete(ctx->input);
    free(ctx->error);
    aq_buf_dispose(&ctx->followups);
    aq_buf_dispose(&ctx->says);
    free(ctx);
}

/* The step is over: its connection goes back, its response is spent. */
static void end_step(aq_ctx *ctx)
{
    if (ctx->db) aq_dbpool_return(ctx->dbs, ctx->db, ctx->jr->job.id);
    ctx->db = NULL;
    if (ctx->has_resp) aq_http_resp_dispose(&ctx->resp);
    ctx->has_resp = 0;
}

static int is_uuid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (!s[i] || (shape[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))) return 0;
    return s[sizeof shape - 1] == '\0';
}

int aq_ctx_session_message(aq_ctx *ctx, const char *session_id, const char *channel, const char *text)
{
    if (!session_id || !is_uuid(session_id) || !text) return AQ_EINVAL;
    if (!channel || (strcmp(channel, "web") && strcmp(channel, "telegram") && strcmp(channel, "scheduled")))
        channel = "web";
    char *t = aq_strdup(text);
    aq_utf8_sanitize(t);
    aq_buf *b = &ctx->says;
    aq_buf_adds(b, ctx->nsays++ ? "," : "[");
    aq_buf_addf(b, "{\"parent\":%lld,\"claim\":%d,\"session\":\"%s\",\"channel\":\"%s\",\"content\":",
                (long long)ctx->jr->job.id, ctx->jr->claim, session_id, channel);
    aq_buf_add_json_str(b, t);
    aq_buf_adds(b, "}");
    free(t);
    return 0;
}

/* The fence of every owned write: the job's row FOR SHARE while this run
 * still owns it and no cancel is recorded. A cancel (aq_job_cancel, FOR
 * UPDATE) waits for an owned transaction in progress, and every one after it
 * is refused: no tool runs after the cancel is recorded. The lease must also
 * have a sixth of its length left ($4, seconds): a write committed on a
 * lapsed lease could be followed at once by the rescue re-queuing the job
 * before this run's completion lands, and the next run would make the write
 * again (seen: a reply stored twice after a database outage longer than the
 * lease). The extension keeps at least two thirds of it left. */
static const char SQL_OWNED[] =
    "SELECT cancel_requested_at IS NOT NULL FROM jobs"
    " WHERE id = $1 AND status = 'running' AND locked_by = $2 AND claims = $3"
    " AND locked_until > now() + make_interval(secs => $4::double precision) FOR SHARE";

int aq_ctx_begin_owned(aq_ctx *ctx)
{
    PGconn *db = aq_ctx_db(ctx);
    if (!db) return AQ_EUNAVAIL;
    if (aq_db_query(db, "owned write: begin", "BEGIN", 0, NULL, NULL)) return AQ_EUNAVAIL;
    char id[24], claim[16], margin[32];
    snprintf(id, sizeof id, "%lld", (long long)ctx->jr->job.id);
    snprintf(claim, sizeof claim, "%d", ctx->jr->claim);
    snprintf(margin, sizeof margin, "%.3f", aq_ctx_config(ctx)->lease_seconds / 6.0);
    const char *p[] = {id, ctx->jr->worker_id, claim, margin};
    PGresult *r;
    int rc = aq_db_query(db, "owned write: the job's lock", SQL_OWNED, 4, p, &r) ? AQ_EUNAVAIL : 0;
    if (!rc && (!PQntuples(r) || PQgetvalue(r, 0, 0)[0] == 't')) {
        rc = AQ_ECONFLICT;
        if (PQntuples(r)) ctx->cancelled = 1;
    }
    PQclear(r);
    if (rc) aq_db_query(db, "owned write: rollback", "ROLLBACK", 0, NULL, NULL);
    if (rc == AQ_ECONFLICT && ctx->cancelled) {
        aq_ctx_error(ctx, "the job was cancelled: write refused");
        aq_log(AQ_LOG_INFO, "dispatch", ctx->jr->job.id, "write refused: the job was cancelled");
    } else if (rc == AQ_ECONFLICT) {
        aq_ctx_error(ctx, "this run no longer owns the job (timed out or lease lost): write refused");
        aq_log(AQ_LOG_WARN, "dispatch", ctx->jr->job.id, "write refused: the run no longer owns the job");
    }
    return rc;
}

int aq_ctx_exec_owned(aq_ctx *ctx, const char *sql, int nparams, const char *const *params, PGresult **out)
{
    if (out) *out = NULL;
    int rc = aq_ctx_begin_owned(ctx);
    if (rc) return rc;
    PGconn *db = aq_ctx_db(ctx);
    PGresult *r;
    rc = aq_db_query(db, "owned write", sql, nparams, params, &r);
    if (rc) {
        aq_ctx_error(ctx, "%s", aq_db_error_message());
        aq_db_query(db, "owned write: rollback", "ROLLBACK", 0, NULL, NULL);
        return rc == AQ_EUNAVAIL ? AQ_EUNAVAIL : AQ_EDB;
    }
    if (aq_db_query(db, "owned write: commit", "COMMIT", 0, NULL, NULL)) {
        PQclear(r);
        return AQ_EDB;
    }
    if (out) *out = r; else PQclear(r);
    return 0;
}

bool aq_ctx_cancelled(aq_ctx *ctx)
{
    if (ctx->cancelled) return true;
    PGconn *db = aq_ctx_db(ctx);
    if (!db) return false;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)ctx->jr->job.id);
    const char *p[] = {id};
    PGresult *r;
    if (aq_db_query(db, "checking for a cancel", "SELECT 1 FROM jobs WHERE id = $1 AND cancel_requested_at IS NOT NULL",
                    1, p, &r))
        return false;
    ctx->cancelled = PQntuples(r) > 0;
    PQclear(r);
    if (ctx->cancelled) aq_log(AQ_LOG_INFO, "dispatch", ctx->jr->job.id, "the job was cancelled; its run stops");
    return ctx->cancelled;
}

int aq_ctx_enqueue(aq_ctx *ctx, const char *job_type, const cJSON *input, const aq_enqueue_opts *opts)
{
    if (!job_type || !aq_handler_find(job_type)) return AQ_EINVAL;
    if (input && !cJSON_IsObject(input)) return AQ_EINVAL;
    aq_enqueue_opts o = opts ? *opts : (aq_enqueue_opts){0};
    aq_buf *b = &ctx->followups;
    aq_buf_adds(b, ctx->nfollowups++ ? "," : "[");
    aq_buf_addf(b, "{\"parent\":%lld,\"claim\":%d,\"type\":", (long long)ctx->jr->job.id, ctx->jr->claim);
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
    jr->status = AQ_STATE_FAILED;
    jr->error = msg;
}

/* A retry request: queued with a delay, or failed when attempts are spent.
 * A transient failure within its budget spends no attempt. */
static void retry(aq_ctx *ctx, char *msg)
{
    aq_jobrun *jr = ctx->jr;
    const aq_config *cfg = ctx->cfg;
    jr->transient = ctx->transient;
    long cap = cfg->retry_max_ms;
    if (ctx->transient) {
        long since = jr->transient_ms < 0 ? 0 : jr->transient_ms;
        if (since < cfg->transient_retry_seconds * 1000L) {
            jr->status = AQ_STATE_QUEUED;
            jr->spent = 0;
            jr->delay_ms = ctx->retry_ms >= 0 ? (ctx->retry_ms < cap ? ctx->retry_ms : cap)
                         : aq_transient_delay_ms(since, cfg->retry_base_ms, cfg->transient_backoff_max_ms,
                                                 randombytes_random());
            jr->error = msg;
            return;
        }
        if (ctx->retry_ms < 0 && cap > cfg->transient_backoff_max_ms) cap = cfg->transient_backoff_max_ms;
    }
    long d = aq_retry_delay_ms(jr->job.attempts, jr->job.max_attempts, ctx->retry_ms, cfg->retry_base_ms, cap,
                               randombytes_random());
    if (d < 0) {
        jr->status = AQ_STATE_FAILED;
        jr->error = aq_sprintf("%s (gave up after %d attempts)", msg, jr->job.attempts);
        free(msg);
        return;
    }
    jr->status = AQ_STATE_QUEUED;
    jr->delay_ms = d;
    jr->error = msg;
}

/* Why the dispatcher will not run this job (heap), or NULL. *input gets the
 * parsed input when it is a JSON object, *routes_ok whether its reply_to is
 * well-formed. */
static char *refusal(aq_jobrun *jr, const aq_config *cfg, cJSON **input, int *routes_ok)
{
    const aq_job *j = &jr->job;
    *routes_ok = 0;
    long cap = aq_handler_input_cap(jr->handler, cfg);
    if ((long)jr->input_len <= cap) {
        cJSON *in = cJSON_ParseWithLength(jr->input, jr->input_len);
        if (cJSON_IsObject(in)) *input = in; else cJSON_Delete(in);
    }
    const char *bad_route = *input && aq_handler_completion.check ? aq_handler_completion.check(*input) : NULL;
    *routes_ok = *input && !bad_route;
    const char *last = jr->last_error ? jr->last_error : "lease expired while running (worker lost)";
    if (!jr->handler) return aq_sprintf("unknown job type '%s'", j->job_type);
    if (j->attempts > j->max_attempts) return aq_sprintf("gave up after %d attempts: %s", j->max_attempts, last);
    if (jr->lost >= 2 * j->max_attempts)
        return aq_sprintf("gave up: its lease expired %d times, its worker lost each time before the run was"
                          " recorded (does it crash its worker?); the last: %s", jr->lost, last);
    if ((long)jr->input_len > cap)
        return aq_sprintf("input is %zu bytes, over the %ld-byte limit", jr->input_len, cap);
    if (!*input) return aq_strdup("input is not a JSON object");
    if (bad_route) return aq_strdup(bad_route);
    return NULL;
}

/* Every path to 'failed' ends here: the type's hook, then the completion
 * hook (both become writes of the failing completion). When the input cannot
 * say where (not an object, over the cap, refused by the hook's check), the
 * hook gets no input and addresses the owner. */
static void final_failure(aq_ctx *ctx, const cJSON *input, int routes_ok)
{
    aq_jobrun *jr = ctx->jr;
    if (jr->handler && jr->handler->on_fail) jr->handler->on_fail(ctx, input, jr->error);
    if (aq_handler_completion.done)
        aq_handler_completion.done(ctx, routes_ok ? input : NULL, NULL, "failed", jr->error);
}

/* Turn the handler's answer into the job's result. */
static void conclude(aq_ctx *ctx, aq_job_status st, cJSON *output)
{
    aq_jobrun *jr = ctx->jr;
    char *out = output ? cJSON_PrintUnformatted(output) : NULL;
    char *msg = ctx->error ? ctx->error : aq_strdup(st == AQ_JOB_OK ? "" : "handler gave no reason");
    ctx->error = NULL;
    aq_utf8_sanitize(msg);
    if (st == AQ_JOB_OK && out && !aq_utf8_valid(out, strlen(out))) {
        free(msg);
        msg = aq_strdup("handler output is not valid UTF-8");
        st = AQ_JOB_FAIL;
    }
    if (st == AQ_JOB_OK || st == AQ_JOB_WAIT) {
        jr->status = st == AQ_JOB_OK ? AQ_STATE_SUCCEEDED : AQ_STATE_WAITING;
        jr->output = out ? aq_strdup(out) : NULL;
        free(msg);
    } else if (st == AQ_JOB_FAIL) {
        fail(jr, msg);
    } else {
        retry(ctx, msg);
    }
    cJSON_free(out);
}

void aq_dispatch_step(aq_jobrun *jr, const aq_config *cfg, aq_dbpool *dbs)
{
    const aq_job *j = &jr->job;
    jr->awaiting = 0;
    cJSON *output = NULL;
    aq_ctx *ctx = jr->ctx;
    if (!ctx) {   /* the first step: check the job */
        aq_worker_metrics_started(jr);
        ctx = jr->ctx = aq_calloc(1, sizeof *ctx);
        ctx->jr = jr;
        ctx->cfg = cfg;
        ctx->dbs = dbs;
        ctx->retry_ms = -1;
        aq_buf_init(&ctx->followups);
        aq_buf_init(&ctx->says);
        char *refused = refusal(jr, cfg, &ctx->input, &ctx->routes_ok);
        if (refused) fail(jr, refused);   /* no handler ran: attempts stay */
        else jr->spent = 1;
    }
    if (jr->spent) {
        aq_job_status st = jr->handler->fn(ctx, ctx->input, &output);
        if (st == AQ_JOB_AWAIT && ctx->req) {
            cJSON_Delete(output);
            end_step(ctx);
            jr->awaiting = 1;
            return;
        }
        if (st == AQ_JOB_AWAIT) {
            aq_ctx_error(ctx, "the handler awaited without a request (handler bug)");
            st = AQ_JOB_FAIL;
        }
        aq_http_request_free(ctx->req);
        ctx->req = NULL;
        conclude(ctx, st, output);
    }
    if (ctx->cancelled) {
        /* the run saw the cancel: it ends cancelled and leaves nothing (no reply, no follow-up) */
        free(jr->output);
        free(jr->error);
        jr->output = NULL;
        jr->error = aq_strdup("cancelled while running");
        jr->status = AQ_STATE_CANCELLED;
    }
    if (jr->status == AQ_STATE_FAILED) final_failure(ctx, ctx->input, ctx->routes_ok);
    else if (jr->status != AQ_STATE_QUEUED && jr->status != AQ_STATE_CANCELLED && aq_handler_completion.done)
        aq_handler_completion.done(ctx, ctx->input, output, aq_job_state_name(jr->status), jr->error);
    if (jr->status != AQ_STATE_QUEUED && jr->status != AQ_STATE_CANCELLED) {
        if (ctx->nfollowups && aq_utf8_valid(ctx->followups.p, ctx->followups.len)) {
            aq_buf_adds(&ctx->followups, "]");
            jr->followups = aq_buf_take(&ctx->followups);
        }
        if (ctx->nsays) {
            aq_buf_adds(&ctx->says, "]");
            jr->says = aq_buf_take(&ctx->says);
        }
    }
    cJSON_Delete(output);
    end_step(ctx);
    aq_ctx_set_state(ctx, NULL, NULL);   /* the run is over: the handler's state goes now */
    if (jr->status == AQ_STATE_FAILED) aq_log(AQ_LOG_WARN, "dispatch", j->id, "%s failed: %s", j->job_type, jr->error);
}

void aq_jobrun_destroy(aq_jobrun *jr)
{
    if (!jr) return;
    ctx_free(jr->ctx);
    free(jr->strs);
    free(jr->output);
    free(jr->error);
    free(jr->followups);
    free(jr->says);
    free(jr);
}
