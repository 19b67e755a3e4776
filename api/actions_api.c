/* actions_api.c — tool calls awaiting approval: GET /v1/actions
 * (?status=pending|approved|rejected|expired|all, default pending) and
 * POST /v1/actions/{id}/approve|reject. A decision is written as a job
 * (action_decision) whose idempotency key is the action's id, so an action is
 * decided once: a second decision, or one after expiry, answers 409. The
 * answer names the waiting turn's job, which finishes once the decision is
 * applied (poll it with ?wait=). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <stdio.h>
#include <stdlib.h>

void aq_api_actions_list(api_call *c)
{
    const char *status = aq_api_query_param(c, "status");
    if (!status) status = "pending";
    if (strcmp(status, "pending") && strcmp(status, "approved") && strcmp(status, "rejected") &&
        strcmp(status, "expired") && strcmp(status, "all")) {
        aq_api_reply_error(c, AQ_EINVAL,
                           "status: one of pending, approved, rejected, expired, all");
        return;
    }
    const char *p[] = {aq_api_owner_param(c),
                       strcmp(status, "all") ? status : NULL};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(json_build_object('id', id, 'tool', tool,"
                 " 'arguments', arguments, 'status', status, 'job_id', job_id, 'session_id', session_id,"
                 " 'created_at', created_at, 'expires_at', expires_at, 'decided_at', decided_at) ORDER BY id DESC),"
                 " '[]'::json), 'next', NULL)::text FROM (SELECT * FROM pending_actions"
                 " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)"
                 " ORDER BY id DESC LIMIT 200) a",
                 2, p, aq_api_reply_200);
}

static void decision_enqueued(api_call *c, const api_enqueue_result *r)
{
    if (r->failed) { aq_api_reply_error(c, AQ_EUNAVAIL, "the decision could not be stored; try again shortly"); return; }
    if (r->duplicate || !r->job_id) { aq_api_reply_error(c, AQ_ECONFLICT, "this action has already been decided"); return; }
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"action_id\":%lld,\"decision\":\"%s\",\"job_id\":%lld,\"status_url\":\"/v1/jobs/%lld\"}",
                     (long long)c->id, c->uuid, (long long)c->ref_id, (long long)c->ref_id);
    aq_api_reply(c, 202, body, (size_t)n);
}

static void got_action(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such action"); return; }
    const char *status = PQgetvalue(res, 0, 0);
    if (strcmp(status, "pending")) { aq_api_reply_error(c, AQ_ECONFLICT, "this action has already been %s", status); return; }
    if (PQgetvalue(res, 0, 1)[0] == 't') { aq_api_reply_error(c, AQ_ECONFLICT, "this action has expired"); return; }
    c->ref_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);   /* the waiting turn, for the answer */
    char *input = aq_api_keep(c, aq_sprintf("{\"action_id\":%lld,\"decision\":\"%s\",\"by\":%lld,\"channel\":\"api\"}",
                                            (long long)c->id, c->uuid, (long long)c->user_id));
    api_enqueue_req r = {
        .job_type = "action_decision",
        .input_json = input,
        .priority = -10,
        .idempotency_key = aq_api_keep(c, aq_sprintf("action:%lld", (long long)c->id)),
    };
    aq_api_enqueue(c, &r, decision_enqueued);
}

static void decide(api_call *c, const char *decision)
{
    snprintf(c->uuid, sizeof c->uuid, "%s", decision);   /* carried to the answer */
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)),
                       aq_api_owner_param(c)};
    aq_api_query(c, "SELECT status, expires_at <= now(), job_id FROM pending_actions"
                 " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)", 2, p, got_action);
}

void aq_api_action_approve(api_call *c) { decide(c, "approved"); }
void aq_api_action_reject(api_call *c) { decide(c, "rejected"); }
