/* metrics.c — where a job's run meets the counters (common/aq_metrics.h):
 * the queue wait when its handler starts, the handler's duration and the
 * outcome when its result comes back to the loop, a timeout as a retry.
 * One call at each of those points (dispatch.c, engine.c). */
#include "aq_metrics.h"
#include "aq_time.h"
#include "metrics.h"

void aq_worker_metrics_started(aq_jobrun *jr)
{
    jr->started_us = aq_now_wall_us();
    /* runnable since run_at: enqueue time, or the end of a retry's delay */
    aq_metrics_observe("agentq_job_queue_wait_seconds", (double)(jr->started_us - jr->run_at_us) / 1e6, "type",
                       jr->job.job_type, NULL);
}

void aq_worker_metrics_finished(const aq_jobrun *jr)
{
    const char *type = jr->job.job_type;
    if (jr->started_us)
        aq_metrics_observe("agentq_job_duration_seconds", (double)(aq_now_wall_us() - jr->started_us) / 1e6,
                           "type", type, NULL);
    switch (jr->status) {
    case AQ_STATE_SUCCEEDED:
    case AQ_STATE_FAILED:
    case AQ_STATE_CANCELLED:
        aq_metrics_add("agentq_jobs_finished_total", 1, "type", type, "status", aq_job_state_name(jr->status), NULL);
        break;
    case AQ_STATE_QUEUED:
        aq_metrics_add("agentq_job_retries_total", 1, "type", type, NULL);
        break;
    default:
        break;
    }
}

void aq_worker_metrics_timed_out(const aq_jobrun *jr)
{
    aq_metrics_add("agentq_job_retries_total", 1, "type", jr->job.job_type, NULL);
    aq_metrics_add("agentq_job_timeouts_total", 1, "type", jr->job.job_type, NULL);
}
