/* action_decision.c — applies a user's approve/reject of a pending tool call
 * (written as a job by POST /v1/actions/{id}/approve|reject) and re-queues
 * the agent turn that waits for it; that turn then runs the tool or tells the
 * model it was declined. In one transaction: the action is decided only if
 * still pending (an expired one becomes 'expired' and the turn is told so),
 * the waiting job goes back to 'queued' without counting an attempt, and
 * workers are woken. Repeats are harmless: a decided action is left alone.
 *
 * The agent turn also enqueues one with decision "expired", delayed to the
 * action's expiry: if nobody has decided by then, the action expires and the
 * turn resumes, telling the model so.
 *
 * The decision's audit_log row (who, which action, the tool and its
 * arguments, from which channel) is written by the same statement.
 *
 * input: {"action_id": N, "decision": "approved"|"rejected"|"expired",
 *         "by": USER_ID, "channel": "api"|"telegram"|"system", "telegram_user": N}
 * (by, channel: who decided and where; an expiry has neither: "system";
 * telegram_user: the Telegram account that pressed the button) */
#include "aq_audit.h"
#include "aq_error.h"
#include "aq_db.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "handlers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *aq_check_action_decision(const cJSON *input)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(input, "decision");
    long long id;
    if (!aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "action_id"), 1, AQ_JSON_INT_MAX, &id) ||
        !cJSON_IsString(d) || (strcmp(d->valuestring, "approved") && strcmp(d->valuestring, "rejected") &&
                               strcmp(d->valuestring, "expired")))
        return "input: {action_id: integer, decision: approved|rejected|expired}";
    return NULL;
}

aq_job_status aq_handle_action_decision(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    const char *why = aq_check_action_decision(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(input, "decision");
    long long id = 0, by_id = 0, tg_id = 0;
    aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "action_id"), 1, AQ_JSON_INT_MAX, &id);
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    char aid[24], by_s[24], extra[64] = "";
    snprintf(aid, sizeof aid, "%lld", id);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(input, "by");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(input, "channel");
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(input, "telegram_user");
    const char *channel = AQ_AUDIT_SYSTEM;
    if (cJSON_IsString(ch) && !strcmp(ch->valuestring, AQ_AUDIT_TELEGRAM)) channel = AQ_AUDIT_TELEGRAM;
    else if (cJSON_IsString(ch) && !strcmp(ch->valuestring, AQ_AUDIT_API)) channel = AQ_AUDIT_API;
    int has_by = aq_json_int(by, 1, AQ_JSON_INT_MAX, &by_id);
    snprintf(by_s, sizeof by_s, "%lld", by_id);
    if (aq_json_int(tg, -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX, &tg_id))
        snprintf(extra, sizeof extra, "{\"telegram_user\": %lld}", tg_id);
    const char *p[] = {aid, d->valuestring, has_by ? by_s : NULL, has_by ? NULL : "agentq", channel,
                       extra[0] ? extra : NULL};
    PGresult *r = NULL;
    int rc = aq_ctx_exec_owned(ctx, aq_jobs_sql_resume_decided,
        6, p, &r);   /* only while this run owns the job: a late run decides nothing */
    if (rc) {
        if (rc == AQ_EUNAVAIL) aq_ctx_error(ctx, "deciding action %s: database unreachable", aid);
        return AQ_JOB_RETRY;
    }
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "action_id", (double)id);
    cJSON_AddStringToObject(*output, "decision", PQgetisnull(r, 0, 0) ? "already decided" : PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1)) cJSON_AddNumberToObject(*output, "resumed_job", atof(PQgetvalue(r, 0, 1)));
    PQclear(r);
    return AQ_JOB_OK;
}
