/* metrics.h — the job run's points that count (worker/metrics.c). */
#ifndef AQ_WORKER_METRICS_H
#define AQ_WORKER_METRICS_H
#include "jobrun.h"

/* The handler is about to run (pool thread): stamps jr->started_us and
 * observes the queue wait (run_at to now). */
void aq_worker_metrics_started(aq_jobrun *jr);
/* Its result is back on the loop and will be completed: the duration and
 * the outcome (finished by status, or a retry). */
void aq_worker_metrics_finished(const aq_jobrun *jr);
/* It ran past its timeout and goes back as a retry (loop). */
void aq_worker_metrics_timed_out(const aq_jobrun *jr);

#endif
