/* aq_handler.h — the handler contract: what a job type's C function receives
 * and returns, and the registry that lists them all (handlers/registry.c). It lives in
 * handlers/include/ because it is the one part of handlers/ the worker may
 * include (the build gives worker/ only that folder of handlers/).
 *
 *     aq_job_status fn(aq_ctx *ctx, const cJSON *input, cJSON **output);
 *
 * A handler runs on a handler thread (never the loop) and returns:
 *   AQ_JOB_OK     success; *output (may stay NULL) becomes jobs.output and is
 *                 freed by the caller;
 *   AQ_JOB_RETRY  try again later: after aq_ctx_retry_after()'s delay if set,
 *                 else exponential backoff; failed once max_attempts is spent;
 *   AQ_JOB_FAIL   permanent failure, no retry;
 *   AQ_JOB_WAIT   park the job as 'waiting' with *output (e.g. a pending
 *                 approval) until something outside re-queues it;
 *   AQ_JOB_AWAIT  this step has handed an HTTP request to the engine
 *                 (aq_ctx_http); *output is ignored. See "Steps" below.
 * Set the reason for RETRY/FAIL with aq_ctx_error(); for a transient fault (an
 * outage, a rate limit) call aq_ctx_retry_transient() and return RETRY. The
 * dispatcher has already checked the type, that input is a JSON object, and
 * its size: handlers do not repeat that. Execution is at-least-once: a job
 * may run again after a crash, so handlers make repeats harmless where a
 * repeat would be visible. A run that timed out or lost its lease may still
 * be running a step on its thread: writes others can see go through
 * aq_ctx_begin_owned()/aq_ctx_exec_owned(), which refuse once the run no
 * longer owns the job or the job was cancelled (aq_ctx_cancelled).
 *
 * Steps. A handler that talks to an HTTP service (the model, the Bot API)
 * does not wait for it on its thread. It describes the request, calls
 * aq_ctx_http(ctx, &req) and returns AQ_JOB_AWAIT: that ends the step. The
 * worker's loop performs the request (libcurl multi; its timeout is the
 * request's, cut to the job's time left) while the job holds no thread and
 * no database connection; then the same fn is called again, the next step,
 * with the same ctx and input, and aq_ctx_http_response(ctx) gives the
 * outcome (status, body, curl's error, Retry-After) for that step only.
 * What a handler must remember between steps it keeps in aq_ctx_set_state
 * (freed with the job); the first step sees aq_ctx_state() == NULL. What
 * the ctx gathers — the error, follow-ups (aq_ctx_enqueue), session messages,
 * the cancel seen — carries over from step to step and commits with the last
 * step's completion, as for a one-step handler. A handler that never awaits
 * (noop, the tests' types, action_decision) is one step, as before. A job
 * past its timeout while awaiting has its request aborted (the connection
 * closed), not abandoned; a worker told to stop hands awaiting jobs back
 * after the grace period the same way.
 * Database: aq_ctx_db lends the step one of the worker's few handler
 * connections (AGENTQ_HANDLER_DB_CONNECTIONS) until the step ends; a step
 * must end with no transaction open (if it does not, the dispatcher rolls
 * back and logs a handler bug). So a step is short: its statements, its
 * computation, no sleep and no blocking network call (the tests' sleep
 * handlers excepted, which hold a thread as they mean to).
 *
 * A type may also have a final-failure hook (registry column on_fail): it
 * runs on a pool thread on every path to 'failed' — the handler's permanent
 * failure or last retry, the dispatcher's refusal (bad input, attempts spent
 * by timeouts or lost leases) — and only there, so what it leaves (follow-up
 * jobs, session messages) exists once, with the failure. */
#ifndef AQ_HANDLER_H
#define AQ_HANDLER_H
#include <cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "aq_config.h"
#include "aq_http.h"

typedef enum { AQ_JOB_OK, AQ_JOB_RETRY, AQ_JOB_FAIL, AQ_JOB_WAIT, AQ_JOB_AWAIT } aq_job_status;

/* The claimed row, as the handler sees it. Strings live as long as the ctx. */
typedef struct aq_job {
    int64_t id;
    const char *job_type, *queue;
    int priority, attempts, max_attempts;   /* attempts counts this run */
    int64_t user_id, parent_id, schedule_id; /* 0 when NULL */
    const char *session_id;                  /* NULL when NULL */
} aq_job;

typedef struct aq_ctx aq_ctx;

typedef aq_job_status (*aq_handler_fn)(aq_ctx *ctx, const cJSON *input, cJSON **output);
/* input: the job's input, or NULL when it is not a JSON object; error: why
 * the job failed (the future last_error). Pool threads; may block. */
typedef void (*aq_fail_fn)(aq_ctx *ctx, const cJSON *input, const char *error);

/* A handler's check of its input before any effect: NULL when acceptable,
 * else why not (static text: the job's error). Pure (no database, no
 * clock), any thread. The handler calls it first; the job_input fuzzer
 * reaches every handler's through the registry. */
typedef const char *(*aq_input_check_fn)(const cJSON *input);

typedef struct aq_handler_def {
    const char *name;
    aq_handler_fn fn;
    int max_attempts;   /* used when jobs.max_attempts is NULL */
    int timeout_s;      /* past this the job is retried and its late result ignored */
    bool api_enqueue;   /* POST /v1/jobs may create it */
    bool test_only;     /* registered only when AGENTQ_TEST_HANDLERS=1 */
    aq_fail_fn on_fail; /* final-failure hook, or NULL */
    aq_input_check_fn check_input;   /* or NULL: any input is taken */
} aq_handler_def;

/* Options for a follow-up job; zeroed fields take defaults (queue "default",
 * priority 0, now, handler's max attempts, the parent's user and session). */
typedef struct aq_enqueue_opts {
    const char *queue;
    int priority;
    long run_in_ms;
    const char *idempotency_key;
    int max_attempts;
    int64_t user_id;            /* 0: the parent's */
    const char *session_id;     /* NULL: the parent's (a UUID) */
} aq_enqueue_opts;

const aq_job *aq_ctx_job(const aq_ctx *ctx);
const aq_config *aq_ctx_config(const aq_ctx *ctx);
/* A database connection lent to this step (the same one for every call in
 * the step; given back when the step ends); may wait while all are lent.
 * NULL when the database is unreachable (return AQ_JOB_RETRY then). A
 * pointer it returned stays valid until the step ends, even after the
 * connection is lost: a later call resets that same connection in place, so
 * a handler may keep the pointer across calls (statements on a lost
 * connection fail with AQ_EUNAVAIL until then). */
PGconn *aq_ctx_db(aq_ctx *ctx);
/* Hand req (copied) to the engine; return AQ_JOB_AWAIT from this step. A
 * later call in the same step replaces the earlier. */
void aq_ctx_http(aq_ctx *ctx, const aq_http_request *req);
/* In the step after an await: the outcome, as aq_http_perform gives it
 * (error set when no complete response arrived: curl's reason, a timeout,
 * "reply over N MiB"; status then 0 or the status line that came); NULL in
 * a step that follows no await. Valid until the step ends. */
const aq_http_resp *aq_ctx_http_response(const aq_ctx *ctx);
/* The handler's own state between steps: state_free(state) runs when it is
 * replaced or the job's run ends (state_free may be NULL). */
void aq_ctx_set_state(aq_ctx *ctx, void *state, void (*state_free)(void *));
void *aq_ctx_state(const aq_ctx *ctx);
/* Set the error text for RETRY/FAIL (printf-style; last call wins). */
void aq_ctx_error(aq_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ask for a specific retry delay (e.g. an upstream Retry-After). */
void aq_ctx_retry_after(aq_ctx *ctx, long ms);
/* The failure is transient (connection refused, timeout, 429, 5xx); return
 * AQ_JOB_RETRY after it. Within AGENTQ_LLM_RETRY_SECONDS of the job's first
 * transient failure in a row the retry spends no attempt and waits
 * requested_ms if >= 0 (the provider's Retry-After, capped at
 * AGENTQ_RETRY_MAX_MS), else a backoff capped at AGENTQ_TRANSIENT_BACKOFF_MAX_MS;
 * past that budget retries spend attempts, still with the capped backoff. */
void aq_ctx_retry_transient(aq_ctx *ctx, long requested_ms);
/* Begin a transaction on aq_ctx_db's connection holding this job's row FOR
 * SHARE, if this run still owns the job (running, this worker, this claim):
 * a completion, timeout or rescue then waits for it, and after them the run
 * is refused. Returns 0 (a transaction is open: COMMIT or ROLLBACK it),
 * AQ_ECONFLICT (no longer the owner, or the job was cancelled; nothing open;
 * the ctx error says so) or AQ_EUNAVAIL (database unreachable or failing;
 * nothing open). */
int aq_ctx_begin_owned(aq_ctx *ctx);
/* One statement in its own owned transaction (see aq_ctx_begin_owned):
 * 0 (committed), AQ_ECONFLICT, AQ_EUNAVAIL, or AQ_EDB (the statement failed
 * and was rolled back; the ctx error holds its message, aq_db_error_state()
 * its SQLSTATE). With out, *out gets the statement's result on 0 (the caller
 * PQclears it), NULL otherwise. */
int aq_ctx_exec_owned(aq_ctx *ctx, const char *sql, int nparams, const char *const *params, PGresult **out);
/* True once the job has been cancelled (POST /v1/jobs/{id}/cancel, `agentq
 * jobs cancel`) while this run was going: stop, run no further step, and
 * return (any status: the job ends 'cancelled', leaving no reply, follow-up or
 * session message). The agent loop checks it before each model call; the
 * owned writes refuse after a cancel on their own, so no tool runs after it
 * is recorded. One query, unless already seen. */
bool aq_ctx_cancelled(aq_ctx *ctx);
/* Leave an assistant message in session_id (a UUID of the job's own user;
 * created with channel if missing), written in the same transaction as this
 * job's final completion and only if it commits: for final-failure hooks'
 * apologies. Returns 0 or AQ_EINVAL (not a UUID). */
int aq_ctx_session_message(aq_ctx *ctx, const char *session_id, const char *channel, const char *text);
/* Queue a follow-up job, inserted in the same transaction as this job's final
 * completion (success or permanent failure) and only then; a retry discards
 * it. input is copied. Returns 0 or AQ_EINVAL (unknown type). */
int aq_ctx_enqueue(aq_ctx *ctx, const char *job_type, const cJSON *input, const aq_enqueue_opts *opts);
/* Milliseconds left before the job's timeout (never negative). */
long aq_ctx_time_left_ms(const aq_ctx *ctx);

/* The completion hook: what follows a job's end besides its row (the reply
 * routes, handlers/routes.c). handlers/ sets it (handlers/registry.c), the
 * dispatcher calls it, so the generic worker holds no product text.
 *   check: before a run, NULL when the job's input is fine for the hook, else
 *          why (static); the dispatcher refuses the job with that reason.
 *   done:  on a pool thread once the job succeeded, failed for good or parks
 *          ("succeeded", "failed", "waiting"), with its output (may be NULL)
 *          and error (may be NULL); input is NULL when the input cannot be
 *          trusted to say where (not an object, over the cap, refused by
 *          check): the hook then addresses the job's owner. What it queues
 *          through aq_ctx_enqueue commits with the completion, and only then. */
typedef struct aq_completion_hook {
    const char *(*check)(const cJSON *input);
    void (*done)(aq_ctx *ctx, const cJSON *input, const cJSON *output, const char *status, const char *error);
} aq_completion_hook;
extern const aq_completion_hook aq_handler_completion;

/* The registry: a NULL-name-terminated table (handlers/registry.c). */
extern const aq_handler_def aq_handler_table[];
/* Look a type up; test-only types are found only when enabled. NULL if unknown. */
const aq_handler_def *aq_handler_find(const char *name);
/* Hand the handlers the settings they obey (e.g. the agent's tools' schedule
 * limits). Call once at start, before any handler runs. */
void aq_handlers_configure(const aq_config *cfg);
/* The largest input a job of type h runs with: AGENTQ_MAX_INPUT_BYTES, or
 * for a raw message (email_processing) room for AGENTQ_MAX_EMAIL_BYTES
 * (aq_config_email_input_cap). h NULL: AGENTQ_MAX_INPUT_BYTES. */
long aq_handler_input_cap(const aq_handler_def *h, const aq_config *cfg);
/* Enable the test-only types (before threads start). */
void aq_handlers_enable_tests(bool on);
/* Release what handlers keep per thread (HTTP handles); a pool thread calls
 * it as it exits. */
void aq_handlers_thread_cleanup(void);
/* 0, or AQ_EINVAL with the duplicate's name in err. Called at startup. */
int aq_handlers_check(char *err, size_t errlen);

#endif
