/* jobrun.h — one claimed job as it travels loop → thread pool → loop.
 *
 * The loop thread fills the claim fields and hands the record to the thread
 * pool; the dispatcher (dispatch.c) fills the result fields on a pool thread;
 * the loop reads them only after the work callback has returned. */
#ifndef AQ_JOBRUN_H
#define AQ_JOBRUN_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "aq_config.h"
#include "aq_handler.h"
#include "aq_jobs.h"

typedef struct aq_jobrun {
    void *engine;
    const char *worker_id;           /* the engine's locked_by */
    aq_job job;                      /* job.attempts: this run's number */
    int claim;                       /* jobs.claims of this claim: the fence */
    int counted;                     /* the claim already counted this run */
    int lost;                        /* jobs.lost: leases expired so far */
    long transient_ms;               /* since the job's first transient failure in a row; -1 none */
    const char *last_error;          /* jobs.last_error at claim, or NULL */
    const aq_handler_def *handler;   /* NULL: unknown type */
    const char *input;               /* jobs.input as text */
    size_t input_len;
    int64_t run_at_us;               /* for ordering within a claimed batch */
    int64_t started_us;              /* wall clock when its handler started (metrics.c), 0 before */
    char *strs;                      /* owns every string above */

    struct aq_ctx *ctx;              /* from the first step to the end (dispatch.c) */
    int awaiting;                    /* the last step returned AQ_JOB_AWAIT: its request waits */

    /* results, written by the pool thread */
    aq_job_state status;             /* succeeded, failed, waiting, queued or cancelled */
    char *output;                    /* JSON text or NULL */
    char *error;                     /* valid UTF-8 or NULL */
    long delay_ms;                   /* for "queued" */
    char *followups;                 /* JSON array text or NULL */
    char *says;                      /* session messages (JSON array text) or NULL */
    int transient;                   /* for "queued"/"failed": 1 transient failure, 0 not, 2 keep the clock */
    int spent;                       /* the handler ran and the run counts (not for a refusal, a
                                        hand-back or a transient retry within its budget) */

    /* loop-side bookkeeping */
    uint64_t deadline_ms;            /* set when it starts (in flight), under the pool lock */
    int started;                     /* its first step began (under the pool lock) */
    int where;                       /* JR_POOL (queued for, or on, a thread), JR_AWAIT */
    struct aq_http_call *call;       /* JR_AWAIT: the request in flight */
    struct aq_jobrun *eprev, *enext; /* the engine's list of every job it holds */
    struct aq_jobrun *tnext;         /* the engine's list of jobs past their deadline */
    int marked;                      /* its run is counted in the row, or a mark is on its way */
    int abandoned;                   /* timed out or handed back: ignore the result */
    struct aq_jobrun *prev, *next;
} aq_jobrun;

enum { JR_POOL, JR_AWAIT };

struct aq_dbpool;
/* Run one step of a job on the calling (pool) thread: the first validates
 * it. Either fills the results, or sets jr->awaiting with a request waiting
 * (aq_dispatch_request). */
void aq_dispatch_step(aq_jobrun *jr, const aq_config *cfg, struct aq_dbpool *dbs);
/* The request an awaiting job's step made (the caller frees it), once. */
aq_http_request *aq_dispatch_request(aq_jobrun *jr);
/* Its outcome, for the next step (*resp is taken over and zeroed). */
void aq_dispatch_response(aq_jobrun *jr, aq_http_resp *resp);
/* Free a jobrun and everything it owns. */
void aq_jobrun_destroy(aq_jobrun *jr);
/* Release what handlers keep on this thread (its HTTP handle). */
void aq_dispatch_thread_cleanup(void);

#endif
