/* metrics.c — where a job's run meets the counters (common/aq_metrics.h):
 * the queue wait when its handler starts, the handler's duration and the
 * outcome when its result comes back to the loop, a timeout as a retry.
 * One call at each of those points (dispatch.c, engine.c).
 *
 * Every job passes here two or three times, so the series of the
 * registry's types are looked up once (the first call, any thread) and kept
 * by the type's row in aq_handler_table; a type the registry does not know
 * (it is failed at once) takes the slow path, by name. */
#include "aq_alloc.h"
#include "aq_metrics.h"
#include "aq_time.h"
#include "metrics.h"
#include <pthread.h>

typedef struct type_series {
    aq_metrics_series *wait, *duration, *retries, *timeouts;
    aq_metrics_series *finished[AQ_STATE_COUNT_];   /* by state; only the final ones are used */
} type_series;

static type_series *by_type;   /* one per row of aq_handler_table */
static size_t ntypes;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void lookup(type_series *t, const char *type)
{
    t->wait = aq_metrics_histogram("agentq_job_queue_wait_seconds", "type", type, NULL);
    t->duration = aq_metrics_histogram("agentq_job_duration_seconds", "type", type, NULL);
    t->retries = aq_metrics_counter("agentq_job_retries_total", "type", type, NULL);
    t->timeouts = aq_metrics_counter("agentq_job_timeouts_total", "type", type, NULL);
    static const aq_job_state finals[] = {AQ_STATE_SUCCEEDED, AQ_STATE_FAILED, AQ_STATE_CANCELLED};
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
        t->finished[finals[i]] = aq_metrics_counter("agentq_jobs_finished_total", "type", type, "status",
                                                    aq_job_state_name(finals[i]), NULL);
}

static void init(void)
{
    while (aq_handler_table[ntypes].name) ntypes++;
    by_type = aq_calloc(ntypes ? ntypes : 1, sizeof *by_type);
    for (size_t i = 0; i < ntypes; i++) lookup(&by_type[i], aq_handler_table[i].name);
}

/* The job's series: the registry's (kept), or *tmp filled by name. */
static const type_series *series_of(const aq_jobrun *jr, type_series *tmp)
{
    pthread_once(&once, init);
    if (jr->handler && jr->handler >= aq_handler_table && jr->handler < aq_handler_table + ntypes)
        return &by_type[jr->handler - aq_handler_table];
    *tmp = (type_series){0};
    lookup(tmp, jr->job.job_type);
    return tmp;
}

void aq_worker_metrics_started(aq_jobrun *jr)
{
    type_series tmp;
    jr->started_us = aq_now_wall_us();
    /* runnable since run_at: enqueue time, or the end of a retry's delay */
    aq_metrics_series_observe(series_of(jr, &tmp)->wait, (double)(jr->started_us - jr->run_at_us) / 1e6);
}

void aq_worker_metrics_finished(const aq_jobrun *jr)
{
    type_series tmp;
    const type_series *t = series_of(jr, &tmp);
    if (jr->started_us)
        aq_metrics_series_observe(t->duration, (double)(aq_now_wall_us() - jr->started_us) / 1e6);
    if (aq_job_state_final(jr->status) && jr->status < AQ_STATE_COUNT_)
        aq_metrics_series_add(t->finished[jr->status], 1);
    else if (jr->status == AQ_STATE_QUEUED)
        aq_metrics_series_add(t->retries, 1);
}

void aq_worker_metrics_timed_out(const aq_jobrun *jr)
{
    type_series tmp;
    const type_series *t = series_of(jr, &tmp);
    aq_metrics_series_add(t->retries, 1);
    aq_metrics_series_add(t->timeouts, 1);
}
