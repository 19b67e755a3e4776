/* imap_poll.c — placeholder, filled in by the IMAP step. */
#include "handlers.h"
aq_job_status aq_handle_imap_poll(aq_ctx *ctx, const cJSON *input, cJSON **output) { return AQ_JOB_OK; }
