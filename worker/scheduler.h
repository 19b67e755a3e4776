/* scheduler.h — the worker's schedule tick: every AGENTQ_SCHEDULE_TICK_MS
 * the loop hands one tick to a libuv pool thread, which fires the due
 * agent_schedules rows as scheduled_run jobs (scheduler.c). Loop thread only. */
#ifndef AQ_SCHEDULER_H
#define AQ_SCHEDULER_H
#include <uv.h>
#include "aq_config.h"

typedef struct aq_scheduler aq_scheduler;

aq_scheduler *aq_scheduler_start(uv_loop_t *loop, const aq_config *cfg);
/* Stop ticking (a tick in progress finishes; SIGTERM). */
void aq_scheduler_stop(aq_scheduler *s);
/* After the loop has stopped: wait for a tick in progress, then free. */
void aq_scheduler_free(aq_scheduler *s);

#endif
