/* pool.c — handler thread pool (see pool.h).
 *
 * DESIGN: two FIFOs. Continuations (a step after an await) run first: they
 * bring turns to their end and free in-flight slots. First steps (claimed
 * jobs) start only while fewer than `limit` jobs are in flight, so a
 * thread goes straight from one job to the next without a trip through the
 * loop while there is room, and claimed-ahead jobs wait here unstarted. */
#include "pool.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include "aq_time.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct aq_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    aq_jobrun *queue_head, *queue_tail;   /* first steps: not started */
    int nqueued;                          /* on that queue */
    aq_jobrun *ready_head, *ready_tail;   /* continuations */
    int inflight, limit;                  /* jobs started and not ended; the most at once */
    aq_jobrun *running;                   /* doubly linked */
    aq_jobrun *done_head, *done_tail;
    int quit;
    const aq_config *cfg;
    aq_dbpool *dbs;
    uv_async_t async;
    pthread_t *threads;
    bool *joined;                         /* threads[i] has been joined */
    int nthreads;
    void (*done)(void *, aq_jobrun *);
    void *arg;
};

static void *thread_main(void *p)
{
    aq_pool *pool = p;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->ready_head && !(pool->queue_head && pool->inflight < pool->limit) && !pool->quit)
            pthread_cond_wait(&pool->cv, &pool->mu);
        if (pool->quit) break;
        aq_jobrun *jr = pool->ready_head;
        if (jr) {
            pool->ready_head = jr->next;
            if (!pool->ready_head) pool->ready_tail = NULL;
        } else {
            jr = pool->queue_head;
            pool->queue_head = jr->next;
            if (!pool->queue_head) pool->queue_tail = NULL;
            pool->nqueued--;
            pool->inflight++;
            jr->started = 1;
            jr->deadline_ms = aq_now_mono_ms() + (uint64_t)(jr->handler ? jr->handler->timeout_s : 60) * 1000u;
        }
        jr->prev = NULL;
        jr->next = pool->running;
        if (pool->running) pool->running->prev = jr;
        pool->running = jr;
        pthread_mutex_unlock(&pool->mu);

        aq_dispatch_step(jr, pool->cfg, pool->dbs);

        pthread_mutex_lock(&pool->mu);
        if (!jr->awaiting) pool->inflight--;   /* its run is over: a slot frees */
        if (jr->prev) jr->prev->next = jr->next; else pool->running = jr->next;
        if (jr->next) jr->next->prev = jr->prev;
        jr->prev = NULL;
        jr->next = NULL;
        int wake = pool->done_head == NULL;
        if (pool->done_tail) pool->done_tail->next = jr; else pool->done_head = jr;
        pool->done_tail = jr;
        if (wake) uv_async_send(&pool->async);
    }
    pthread_mutex_unlock(&pool->mu);
    aq_dispatch_thread_cleanup();
    return NULL;
}

static void on_async(uv_async_t *a)
{
    aq_pool *pool = a->data;
    pthread_mutex_lock(&pool->mu);
    aq_jobrun *list = pool->done_head;
    pool->done_head = pool->done_tail = NULL;
    pthread_mutex_unlock(&pool->mu);
    if (list) pool->done(pool->arg, list);
}

aq_pool *aq_pool_create(uv_loop_t *loop, int nthreads, int limit, const aq_config *cfg, aq_dbpool *dbs,
                        void (*done)(void *, aq_jobrun *), void *arg)
{
    aq_pool *pool = aq_calloc(1, sizeof *pool);
    pool->dbs = dbs;
    pool->limit = limit > 0 ? limit : 1;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->cfg = cfg;
    pool->done = done;
    pool->arg = arg;
    uv_async_init(loop, &pool->async, on_async);
    pool->async.data = pool;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pool->threads = aq_calloc((size_t)nthreads, sizeof *pool->threads);
    pool->joined = aq_calloc((size_t)nthreads, sizeof *pool->joined);
    pool->nthreads = nthreads;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&pool->threads[i], &attr, thread_main, pool) != 0) abort();
    pthread_attr_destroy(&attr);
    return pool;
}

void aq_pool_submit(aq_pool *pool, aq_jobrun *list)
{
    if (!list) return;
    aq_jobrun *last = list;
    int n = 1;
    while (last->next) { last = last->next; n++; }
    pthread_mutex_lock(&pool->mu);
    if (pool->queue_tail) pool->queue_tail->next = list; else pool->queue_head = list;
    pool->queue_tail = last;
    pool->nqueued += n;
    if (n == 1) pthread_cond_signal(&pool->cv); else pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void aq_pool_resume(aq_pool *pool, aq_jobrun *jr)
{
    jr->next = NULL;
    pthread_mutex_lock(&pool->mu);
    if (pool->ready_tail) pool->ready_tail->next = jr; else pool->ready_head = jr;
    pool->ready_tail = jr;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void aq_pool_release(aq_pool *pool, int n)
{
    pthread_mutex_lock(&pool->mu);
    pool->inflight -= n;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

aq_jobrun *aq_pool_take_queued(aq_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    aq_jobrun *list = pool->queue_head;
    pool->queue_head = pool->queue_tail = NULL;
    pool->nqueued = 0;
    pthread_mutex_unlock(&pool->mu);
    return list;
}

aq_jobrun *aq_pool_take_ready(aq_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    aq_jobrun *list = pool->ready_head;
    pool->ready_head = pool->ready_tail = NULL;
    pthread_mutex_unlock(&pool->mu);
    return list;
}

int aq_pool_unstarted(aq_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    int n = pool->nqueued;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

void aq_pool_locked(aq_pool *pool, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&pool->mu);
    fn(arg);
    pthread_mutex_unlock(&pool->mu);
}

void aq_pool_close(aq_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->quit = 1;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    uv_close((uv_handle_t *)&pool->async, NULL);
    /* threads may still be inside a handler: the pool stays allocated */
}

int aq_pool_join(aq_pool *pool, long ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    int left = 0;
    for (int i = 0; i < pool->nthreads; i++) {
        if (pool->joined[i]) continue;
        if (pthread_timedjoin_np(pool->threads[i], NULL, &deadline) == 0) pool->joined[i] = true;
        else left++;
    }
    return left;
}

int aq_pool_destroy(aq_pool *pool)
{
    if (!pool) return 0;
    for (int i = 0; i < pool->nthreads; i++)
        if (!pool->joined[i]) return AQ_ECONFLICT;
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->joined);
    free(pool->threads);
    free(pool);
    return 0;
}
