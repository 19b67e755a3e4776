/* apology.c — the final-failure hook of agent_turn and scheduled_run (the
 * registry's on_fail column): a turn that fails for good, on whatever path
 * (the model refused, retries or the outage budget spent, the last attempt
 * timed out, the worker was lost, the dispatcher refused the input), leaves
 * one apology in its session, written with the failure itself. The failure
 * notice on the turn's reply routes is the dispatcher's (routes.c). The
 * handler never apologises itself, so there is exactly one. */
#include "handlers.h"
#include <stdio.h>
#include <string.h>

void aq_fail_apologise(aq_ctx *ctx, const cJSON *input, const char *error)
{
    const aq_job *job = aq_ctx_job(ctx);
    const char *session = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(input, "session_id"));
    const char *channel = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(input, "channel"));
    if (!session) session = job->session_id;
    if (!strcmp(job->job_type, "scheduled_run")) channel = "scheduled";
    if (!session || !job->user_id) return;   /* no session to speak in: the routes' notice still goes */
    char msg[700];
    snprintf(msg, sizeof msg, "Sorry, I could not answer this time (%.500s). Please try again later.",
             error && *error ? error : "no reason given");
    aq_ctx_session_message(ctx, session, channel, msg);
}
