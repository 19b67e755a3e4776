/* aq_jobs.h — the one home of the jobs table's life cycle: the job status
 * enum and its names, the literals every process shares (channel names, key
 * formats, priorities), and every statement that creates, cancels or
 * re-queues a job. The worker's engine owns the transitions of a running job
 * (claim, completion, lease rescue: worker/engine.c); everything else that
 * moves a job goes through here (the map is in docs/DESIGN.md).
 *
 * Two kinds of caller: the API and the worker's engine talk to Postgres
 * asynchronously (aq_pgloop, never blocking their loop) and run the SQL text
 * exported here themselves, batched their own way; handlers, the scheduler and
 * the CLI block, and call the functions below. Both read the same statements,
 * so a rule of the life cycle is written once. */
#ifndef AQ_JOBS_H
#define AQ_JOBS_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- shared literals ---- */

#define AQ_CHANNEL_JOBS "aq_jobs"        /* NOTIFY: new runnable jobs (one per INSERT statement; payload: sql/020) */
#define AQ_CHANNEL_DONE "aq_done"        /* NOTIFY: owned jobs that ended; payload "id,id,..." */
#define AQ_CHANNEL_AUTH "aq_auth"        /* NOTIFY: a token id that no longer works (revoked, replaced) */
#define AQ_TELEGRAM_KEY_FMT "telegram:%lld"   /* idempotency key of a Telegram update's job */
#define AQ_SCHEDULE_KEY_FMT "schedule:%lld:%lld"   /* a schedule's slot: schedule id, slot (Unix s) */
#define AQ_PRIORITY_NOTIFY (-5)          /* notices to people (notify jobs) run ahead of ordinary work (0) */
#define AQ_PRIORITY_TELEGRAM (-5)        /* Telegram updates too: a person is waiting for the answer */

/* ---- the status ---- */

#define AQ_JOB_STATES(X)                \
    X(QUEUED, "queued")                 \
    X(RUNNING, "running")               \
    X(WAITING, "waiting")               \
    X(SUCCEEDED, "succeeded")           \
    X(FAILED, "failed")                 \
    X(CANCELLED, "cancelled")

typedef enum aq_job_state {
#define X(e, name) AQ_STATE_##e,
    AQ_JOB_STATES(X)
#undef X
    AQ_STATE_COUNT_
} aq_job_state;

/* The status's name in jobs.status (static storage; "?" for a bad value). */
const char *aq_job_state_name(aq_job_state s);
/* 0 with *out set, or AQ_EINVAL when name is no status. */
int aq_job_state_parse(const char *name, aq_job_state *out);
/* succeeded, failed or cancelled: the job will not run again by itself. */
bool aq_job_state_final(aq_job_state s);

/* ---- enqueue ---- */

/* One new job; NULL/0 fields take the defaults (queue "default", priority 0,
 * input {}, now, the handler's max attempts, no owner, no key). */
typedef struct aq_job_new {
    const char *job_type;
    const char *queue;
    int priority;
    const char *input;            /* a JSON object as text */
    long run_in_ms;
    int max_attempts;
    int64_t user_id, schedule_id;
    const char *session_id;       /* a UUID */
    const char *idempotency_key;  /* a second enqueue with the key inserts nothing */
} aq_job_new;

/* Blocking enqueue of one job on db (inside the caller's transaction if one
 * is open). 0 with *id the new job's id, or 0 when a job with the key already
 * existed (nothing inserted); AQ_EDB / AQ_EUNAVAIL (logged as `name`). */
int aq_jobs_enqueue(PGconn *db, const char *name, const aq_job_new *j, int64_t *id);

/* The API's batched enqueue (api/enqueue.c runs it on its async connection):
 * $1 a JSON array of rows; see the DESIGN block of api/enqueue.c. */
extern const char aq_jobs_sql_enqueue_batch[];
/* The same for a batch in which no row names a session or an idempotency key
 * (cheaper to plan and run; same columns). */
extern const char aq_jobs_sql_enqueue_plain[];
/* The engine's follow-up inserts, in the parent's completion round
 * (worker/engine.c): $1 a JSON array of follow-ups. */
extern const char aq_jobs_sql_followups[];
/* The console's queue overview (GET /v1/queue, api/console_api.c): one JSON
 * text of unfinished jobs per type and status, finished ones of the last hour,
 * live workers. tests/t_plans.c checks it reads no history. */
extern const char aq_jobs_sql_queue_overview[];

/* ---- cancel ---- */

typedef enum aq_cancel_outcome {
    AQ_CANCEL_NOT_FOUND,    /* no such job (or not the caller's) */
    AQ_CANCEL_DONE,         /* it was queued or waiting: now cancelled */
    AQ_CANCEL_REQUESTED,    /* it is running: marked; it ends cancelled, no tool runs after this */
    AQ_CANCEL_FINISHED,     /* it had already ended: nothing changed */
} aq_cancel_outcome;

/* $1 job id, $2 owner (NULL: any): one row (was, outcome) or none. The API
 * runs it asynchronously and reads the answer with aq_jobs_cancel_result. */
extern const char aq_jobs_sql_cancel[];
/* The same, and when it changed the job, its audit_log row in the same
 * statement: $3 the acting user's id (or NULL), $4 a name (or NULL: the
 * user's), $5 the channel (aq_audit.h). */
extern const char aq_jobs_sql_cancel_audited[];
/* The outcome of aq_jobs_sql_cancel's answer (a TUPLES_OK result); *was gets
 * the status before ("" when not found), valid while res is. */
aq_cancel_outcome aq_jobs_cancel_result(const PGresult *res, const char **was);
/* Blocking cancel (the CLI). 0 with *out and was (status before, "" when not
 * found), or AQ_EDB / AQ_EUNAVAIL. */
int aq_jobs_cancel(PGconn *db, int64_t id, int64_t owner, aq_cancel_outcome *out, char was[16]);

/* ---- re-queue ---- */

/* A failed or cancelled job back to queued now, attempts reset. 0 with
 * *requeued (1 done, 0 it had another status, in was; "" when no such job),
 * or AQ_EDB / AQ_EUNAVAIL. */
int aq_jobs_retry(PGconn *db, int64_t id, int *requeued, char was[16]);
/* Its statement, for the API to run asynchronously: $1 job id; one row
 * (status before, 1 when re-queued else 0, notified) or none when no such job. */
extern const char aq_jobs_sql_retry[];
/* aq_jobs_sql_retry plus its audit row: $1 id, $2 the acting user's id, $3 the channel (aq_audit.h). */
extern const char aq_jobs_sql_retry_audited[];
/* Up to AQ_JOBS_RETRY_BATCH failed jobs (of type, if not NULL) that had
 * failed by `before` (a timestamptz as text) back to queued. 0 with *n the
 * number, or AQ_EDB / AQ_EUNAVAIL. Call again while *n is the batch size. */
#define AQ_JOBS_RETRY_BATCH 10000
int aq_jobs_retry_failed(PGconn *db, const char *type, const char *before, long long *n);
/* A waiting job resumed by a decided pending action: $1 action id, $2 the
 * decision; its audit_log row (action.approved|rejected|expired, with the
 * tool and its arguments) in the same statement: $3 who decided (users.id or
 * NULL), $4 a name for the actor (NULL: the user's), $5 the channel
 * (aq_audit.h), $6 more details (jsonb or NULL). Answers (the action's new status or NULL when it was already
 * decided, the resumed job's id or NULL). Run it as an owned write
 * (handlers/action_decision.c). */
extern const char aq_jobs_sql_resume_decided[];

#endif
