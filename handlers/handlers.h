/* handlers.h — declarations of every handler function in the registry. */
#ifndef AQ_HANDLERS_H
#define AQ_HANDLERS_H
#include "aq_handler.h"

aq_job_status aq_handle_noop(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_agent_turn(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_action_decision(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_scheduled_run(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_notify(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_telegram_update(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_email_processing(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_imap_poll(aq_ctx *ctx, const cJSON *input, cJSON **output);
/* input checks (the registry's check_input; aq_handler.h) */
const char *aq_check_agent_turn(const cJSON *input);
const char *aq_check_action_decision(const cJSON *input);
const char *aq_check_scheduled_run(const cJSON *input);
const char *aq_check_notify(const cJSON *input);
const char *aq_check_telegram_update(const cJSON *input);
const char *aq_check_email_processing(const cJSON *input);
const char *aq_check_imap_poll(const cJSON *input);
/* final-failure hooks (the registry's on_fail) */
void aq_fail_apologise(aq_ctx *ctx, const cJSON *input, const char *error);

/* test-only (handlers/test_handlers.c), registered with AGENTQ_TEST_HANDLERS=1 */
aq_job_status aq_handle_test_fail(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_sleep(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_crash(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_record(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_stamp(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_followup(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_output(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_http(aq_ctx *ctx, const cJSON *input, cJSON **output);
aq_job_status aq_handle_test_db_kept(aq_ctx *ctx, const cJSON *input, cJSON **output);

#endif
