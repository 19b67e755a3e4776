/* scheduled_run.c — one firing of an agent_schedules row (SPEC §5, §6): an
 * agent turn with the schedule's prompt in the schedule's own 'scheduled'
 * session. The worker's scheduler (worker/scheduler.c) creates these jobs
 * with the owner as user_id and that session as session_id; the reply is
 * routed to the owner's channels by the dispatcher (reply routes).
 *
 * input: {"schedule_id": N, "slot": timestamp, "missed": N}. A schedule
 * deleted or disabled after it fired runs nothing and says so in output. */
#include "aq_alloc.h"
#include "aq_db.h"
#include "aq_json.h"
#include "handlers.h"
#include <stdio.h>
#include <stdlib.h>

const char *aq_check_scheduled_run(const cJSON *input)
{
    long long sid;
    if (!aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "schedule_id"), 1, AQ_JSON_INT_MAX, &sid))
        return "input.schedule_id: required, a schedule id";
    return NULL;
}

aq_job_status aq_handle_scheduled_run(aq_ctx *ctx, const cJSON *input, cJSON **out)
{
    const aq_job *job = aq_ctx_job(ctx);
    const char *why = aq_check_scheduled_run(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(input, "schedule_id");
    PGconn *db = aq_ctx_db(ctx);
    if (!db) { aq_ctx_error(ctx, "database unreachable"); return AQ_JOB_RETRY; }
    char id[24], uid[24];
    snprintf(id, sizeof id, "%lld", (long long)sid->valuedouble);   /* an integer in range: checked above */
    snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
    const char *p[] = {id, uid};
    PGresult *r;
    if (aq_db_query(db, "scheduled run: loading the schedule", "SELECT prompt, session_id::text, enabled, name"
                    " FROM agent_schedules WHERE id = $1 AND user_id = $2", 2, p, &r)) {
        aq_ctx_error(ctx, "loading schedule %s: %s", id, aq_db_error_message());
        return AQ_JOB_RETRY;
    }
    /* disabled while its turn runs (a later step): the turn finishes */
    if (PQntuples(r) == 0 || (PQgetvalue(r, 0, 2)[0] != 't' && !aq_ctx_state(ctx))) {
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "skipped", PQntuples(r) ? "the schedule was disabled after it fired"
                                                              : "the schedule was deleted after it fired");
        PQclear(r);
        return AQ_JOB_OK;
    }
    cJSON *turn = cJSON_CreateObject();
    cJSON_AddStringToObject(turn, "message", PQgetvalue(r, 0, 0));
    cJSON_AddStringToObject(turn, "session_id", PQgetvalue(r, 0, 1));
    cJSON_AddStringToObject(turn, "channel", "scheduled");
    char *name = aq_strdup(PQgetvalue(r, 0, 3));
    PQclear(r);
    aq_job_status st = aq_handle_agent_turn(ctx, turn, out);
    cJSON_Delete(turn);
    if (*out && (st == AQ_JOB_OK || st == AQ_JOB_WAIT)) {
        cJSON_AddNumberToObject(*out, "schedule_id", sid->valuedouble);
        cJSON_AddStringToObject(*out, "schedule", name);
        const cJSON *missed = cJSON_GetObjectItemCaseSensitive(input, "missed");
        if (cJSON_IsNumber(missed) && missed->valuedouble > 0) cJSON_AddNumberToObject(*out, "missed", missed->valuedouble);
    }
    free(name);
    return st;
}
