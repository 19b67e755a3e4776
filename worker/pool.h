/* pool.h — the handler thread pool: a few threads (AGENTQ_HANDLER_THREADS)
 * pull job steps from one shared FIFO and run them (aq_dispatch_step);
 * finished steps gather in a done list and the loop is woken once (uv_async,
 * coalesced) to collect them all. The engine owns the jobs: the pool only
 * passes them along.
 *
 * DESIGN: a thread goes straight from one job to the next without a trip
 * through the loop, so a burst of short jobs costs one lock per job and one
 * loop wake-up per batch. (uv_queue_work would cost a loop iteration per job,
 * which capped throughput at ~10k jobs/s on 2 cores.) */
#ifndef AQ_POOL_H
#define AQ_POOL_H
#include <uv.h>
#include "dbpool.h"
#include "jobrun.h"

typedef struct aq_pool aq_pool;

/* done(arg, list) runs on the loop thread with finished jobs linked by ->next,
 * in finishing order; the callee owns them. */
aq_pool *aq_pool_create(uv_loop_t *loop, int nthreads, int limit, const aq_config *cfg, aq_dbpool *dbs,
                        void (*done)(void *arg, aq_jobrun *list), void *arg);
/* Queue claimed jobs (linked by ->next) for their first step; one starts
 * (->started, ->deadline_ms set under the lock) only while fewer than limit
 * jobs are in flight. Loop thread. */
void aq_pool_submit(aq_pool *pool, aq_jobrun *list);
/* Queue a job's next step (after an await); it runs before any first step. */
void aq_pool_resume(aq_pool *pool, aq_jobrun *jr);
/* n jobs in flight ended outside a thread (dropped while awaiting): their
 * slots free. A thread frees its job's slot itself when a step ends
 * without awaiting. */
void aq_pool_release(aq_pool *pool, int n);
/* Remove and return every first step not yet started / every queued
 * continuation (linked by ->next). Loop thread. */
aq_jobrun *aq_pool_take_queued(aq_pool *pool);
aq_jobrun *aq_pool_take_ready(aq_pool *pool);
/* First steps queued and not yet started. */
int aq_pool_unstarted(aq_pool *pool);
/* Run fn(arg) under the pool's lock (to read ->started and ->deadline_ms). */
void aq_pool_locked(aq_pool *pool, void (*fn)(void *arg), void *arg);
/* Stop the threads once they finish their current job (does not wait). */
void aq_pool_close(aq_pool *pool);
/* After aq_pool_close: wait up to ms for the threads to exit (a handler
 * still running past that is left behind); returns how many did not. May be
 * called again to wait longer. */
int aq_pool_join(aq_pool *pool, long ms);
/* After aq_pool_close and the loop has closed the pool's handle: free the
 * pool (not the jobs it still lists: the engine owns them). Returns 0, or AQ_ECONFLICT (nothing
 * freed) while a thread has not been joined: a handler still running past
 * aq_pool_join's wait keeps using the pool. NULL is a no-op. */
int aq_pool_destroy(aq_pool *pool);

#endif
