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
    uint64_t deadline_ms;
    int marked;                      /* its run is counted in the row, or a mark is on its way */
    int abandoned;                   /* timed out or handed back: ignore the result */
    struct aq_jobrun *prev, *next;
} aq_jobrun;

/* Validate and run one job on the calling (pool) thread; fills the results. */
void aq_dispatch_run(aq_jobrun *jr, const aq_config *cfg);
/* Free a jobrun and everything it owns. */
void aq_jobrun_destroy(aq_jobrun *jr);
/* Close this thread's handler database connection, if any. */
void aq_dispatch_thread_cleanup(void);

#endif
