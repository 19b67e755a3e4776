/* noop.c — the `noop` job type: does nothing and succeeds with no output.
 * For tests and benchmarks of the engine itself. */
#include "handlers.h"

aq_job_status aq_handle_noop(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    return AQ_JOB_OK;
}
