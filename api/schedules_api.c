/* schedules_api.c — the caller's cron schedules (SPEC §6):
 *   GET /v1/schedules?limit=&before=     list, newest first, cursor on id
 *   POST /v1/schedules                   {name, cron, timezone?, prompt, enabled?, misfire?} → 201
 *   GET|PATCH|DELETE /v1/schedules/{id}
 * Owner-scoped like jobs (someone else's schedule: 404; an operator sees
 * all). The cron expression and zone are checked here with the workers'
 * own evaluator (aq_schedule.h), which also gives next_run_at and holds the
 * frequency floor (AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS); a disabled
 * schedule has none. A PATCH that changes when it fires reads the row, then
 * updates it only if cron/timezone/enabled are still what it read (409
 * otherwise), so a concurrent change is never silently overwritten. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_audit.h"
#include "aq_error.h"
#include "aq_cron.h"
#include "aq_schedule.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEDULE_JSON AQ_SCHEDULE_JSON

static const char *const FIELDS[] = {"name", "cron", "timezone", "prompt", "enabled", "misfire", NULL};

/* The body's fields, checked; strings point into c->body. */
typedef struct fields {
    const char *name, *cron, *zone, *prompt, *misfire;
    int enabled;    /* -1 absent */
} fields;

static int check_fields(api_call *c, fields *f, int create)
{
    for (const cJSON *it = c->body->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; FIELDS[i]; i++) known |= !strcmp(it->string, FIELDS[i]);
        if (!known) {
            aq_api_reply_error(c, AQ_EINVAL, "%s: unknown field (expected name, cron, timezone, prompt, enabled, misfire)",
                               it->string);
            return -1;
        }
    }
    if (aq_api_text_field(c, "name", AQ_SCHEDULE_NAME_MAX, create, &f->name) ||
        aq_api_text_field(c, "cron", AQ_SCHEDULE_CRON_MAX, create, &f->cron) ||
        aq_api_text_field(c, "timezone", AQ_TZ_NAME_MAX, 0, &f->zone) ||
        aq_api_text_field(c, "prompt", c->t->srv->cfg->max_message_chars, create, &f->prompt) ||
        aq_api_text_field(c, "misfire", 16, 0, &f->misfire))
        return -1;
    if (f->misfire && strcmp(f->misfire, "run_once") && strcmp(f->misfire, "skip")) {
        aq_api_reply_error(c, AQ_EINVAL, "misfire: run_once (after downtime, run once for the missed times) or skip");
        return -1;
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(c->body, "enabled");
    f->enabled = -1;
    if (en && !cJSON_IsNull(en)) {
        if (!cJSON_IsBool(en)) { aq_api_reply_error(c, AQ_EINVAL, "enabled: must be true or false"); return -1; }
        f->enabled = cJSON_IsTrue(en);
    }
    return 0;
}

/* next_run_at (Unix seconds, text) for cron/zone from now, or NULL when
 * disabled; -1 once a 422 has been sent (a bad expression or zone, or one
 * that fires more often than AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS allows). */
static int next_run(api_call *c, const char *cron, const char *zone, int enabled, const char **out)
{
    *out = NULL;
    int64_t next;
    char err[256];
    int64_t now = (int64_t)time(NULL);
    if (aq_schedule_check_interval(cron, zone, now, c->t->srv->cfg->schedule_min_interval_s, err, sizeof err) ||
        aq_schedule_next(cron, zone, now, &next, err, sizeof err)) {
        aq_api_reply_error(c, AQ_EINVAL, "%s", err);
        return -1;
    }
    if (enabled) *out = aq_api_keep(c, aq_sprintf("%lld", (long long)next));
    return 0;
}

static int db_failed(api_call *c, PGresult *res)
{
    if (res && (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)) return 0;
    aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
    return 1;
}

/* ---- POST /v1/schedules ---- */

static void created(api_call *c, PGresult *res)
{
    if (db_failed(c, res)) return;
    if (PQntuples(res) == 0) {
        aq_api_reply_error(c, AQ_EQUOTA, "you already have %d schedules; delete one first", AQ_SCHEDULE_PER_USER);
        return;
    }
    aq_api_reply(c, 201, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void aq_api_schedules_create(api_call *c)
{
    if (aq_api_parse_body(c)) return;
    fields f;
    if (check_fields(c, &f, 1)) return;
    if (!f.zone) f.zone = "UTC";
    if (!f.misfire) f.misfire = "run_once";
    if (f.enabled < 0) f.enabled = 1;
    /* the same rule and statement as the agent's create_schedule tool (aq_schedule.h) */
    const aq_config *cfg = c->t->srv->cfg;
    int64_t next;
    char err[256];
    if (aq_schedule_check_new(f.name, f.cron, f.zone, f.prompt, cfg->max_message_chars, cfg->schedule_min_interval_s,
                              (int64_t)time(NULL), &next, err, sizeof err)) {
        aq_api_reply_error(c, AQ_EINVAL, "%s", err);
        return;
    }
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)), f.name, f.cron, f.zone, f.prompt,
                       f.enabled ? "true" : "false", f.misfire,
                       f.enabled ? aq_api_keep(c, aq_sprintf("%lld", (long long)next)) : NULL,
                       aq_api_keep(c, aq_sprintf("%d", AQ_SCHEDULE_PER_USER)), AQ_AUDIT_API};
    aq_api_query(c, aq_schedule_sql_create, 10, p, created);
}

/* ---- GET /v1/schedules, GET /v1/schedules/{id} ---- */

static void got_one(api_call *c, PGresult *res)
{
    aq_api_reply_row(c, res, 200, "no such schedule");
}

static const char *id_param(api_call *c) { return aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)); }
/* The caller, for the audit_log row the change writes in the same statement. */
static const char *actor_param(api_call *c) { return aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)); }

void aq_api_schedule_get(api_call *c)
{
    const char *p[] = {id_param(c), aq_api_owner_param(c)};
    aq_api_query(c, "SELECT " SCHEDULE_JSON "::text FROM agent_schedules WHERE id = $1"
                 " AND ($2::bigint IS NULL OR user_id = $2)", 2, p, got_one);
}

void aq_api_schedules_list(api_call *c)
{
    const char *limit = aq_api_query_param(c, "limit"), *before = aq_api_query_param(c, "before");
    long long lim = 50, bef = 0;
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    if (before && aq_api_parse_int(before, 1, INT64_MAX, &bef)) {
        aq_api_reply_error(c, AQ_EINVAL, "before: a schedule id (the previous page's next)");
        return;
    }
    const char *p[] = {aq_api_owner_param(c), before, aq_api_keep(c, aq_sprintf("%lld", lim))};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(s.doc ORDER BY s.id DESC), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $3 THEN min(s.id) END)::text"
                 " FROM (SELECT id, " SCHEDULE_JSON " AS doc FROM agent_schedules"
                 " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR id < $2)"
                 " ORDER BY id DESC LIMIT $3) s",
                 3, p, got_one);
}

/* ---- PATCH /v1/schedules/{id} ---- */

static const char SQL_PATCH[] =
    "UPDATE agent_schedules SET name = coalesce($3, name), prompt = coalesce($4, prompt),"
    " misfire = coalesce($5, misfire), cron = coalesce($6, cron), timezone = coalesce($7, timezone),"
    " enabled = coalesce($8::boolean, enabled),"
    " next_run_at = CASE WHEN $9::boolean THEN to_timestamp($10::bigint) ELSE next_run_at END,"
    " last_error = CASE WHEN $9::boolean THEN NULL ELSE last_error END, updated_at = now()"
    " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)"
    " AND ($11::text IS NULL OR (cron = $11 AND timezone = $12 AND enabled = $13::boolean))"
    " RETURNING " SCHEDULE_JSON "::text,"
    " " AQ_AUDIT_CALL("$14::bigint", "NULL", "'" AQ_AUDIT_API "'", "'schedule.updated'", "'schedule:' || id",
                      "$15::jsonb");

static void patched(api_call *c, PGresult *res)
{
    if (db_failed(c, res)) return;
    if (PQntuples(res) == 0) {
        if (c->ref_id) aq_api_reply_error(c, AQ_ECONFLICT, "the schedule changed meanwhile; read it and try again");
        else aq_api_reply_error(c, AQ_ENOTFOUND, "no such schedule");
        return;
    }
    aq_api_reply(c, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

static void send_patch(api_call *c, const fields *f, int retime, const char *next, const char *const *seen)
{
    const char *en = f->enabled < 0 ? NULL : f->enabled ? "true" : "false";
    const char *p[] = {id_param(c), aq_api_owner_param(c), f->name, f->prompt, f->misfire, f->cron, f->zone, en,
                       retime ? "true" : "false", next, seen[0], seen[1], seen[2], actor_param(c),
                       aq_api_keep(c, cJSON_PrintUnformatted(c->body))};   /* the fields sent, checked */
    aq_api_query(c, SQL_PATCH, 15, p, patched);
}

/* The row as it was: compute the new next_run_at, then update if unchanged. */
static void got_current(api_call *c, PGresult *res)
{
    if (db_failed(c, res)) return;
    if (PQntuples(res) == 0) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such schedule"); return; }
    fields f;
    check_fields(c, &f, 0);   /* checked before the read: cannot fail now */
    const char *cron = f.cron ? f.cron : PQgetvalue(res, 0, 0);
    const char *zone = f.zone ? f.zone : PQgetvalue(res, 0, 1);
    int enabled = f.enabled >= 0 ? f.enabled : PQgetvalue(res, 0, 2)[0] == 't';
    const char *next;
    if (next_run(c, cron, zone, enabled, &next)) return;
    const char *seen[] = {aq_api_keep(c, aq_strdup(PQgetvalue(res, 0, 0))), aq_api_keep(c, aq_strdup(PQgetvalue(res, 0, 1))),
                          PQgetvalue(res, 0, 2)[0] == 't' ? "true" : "false"};
    c->ref_id = 1;   /* no row now means it changed (or went) meanwhile */
    send_patch(c, &f, 1, next, seen);
}

void aq_api_schedule_patch(api_call *c)
{
    if (aq_api_parse_body(c)) return;
    fields f;
    if (check_fields(c, &f, 0)) return;
    if (!c->body->child) { aq_api_reply_error(c, AQ_EINVAL, "nothing to change: send at least one field"); return; }
    if (!f.cron && !f.zone && f.enabled < 0) {
        const char *seen[] = {NULL, NULL, NULL};
        send_patch(c, &f, 0, NULL, seen);
        return;
    }
    const char *p[] = {id_param(c), aq_api_owner_param(c)};
    aq_api_query(c, "SELECT cron, timezone, enabled FROM agent_schedules WHERE id = $1"
                 " AND ($2::bigint IS NULL OR user_id = $2)", 2, p, got_current);
}

/* ---- DELETE /v1/schedules/{id} ---- */

void aq_api_schedule_delete(api_call *c)
{
    const char *p[] = {id_param(c), aq_api_owner_param(c), actor_param(c)};
    aq_api_query(c, "DELETE FROM agent_schedules WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)"
                 " RETURNING json_build_object('id', id, 'deleted', true)::text,"
                 " " AQ_AUDIT_CALL("$3::bigint", "NULL", "'" AQ_AUDIT_API "'", "'schedule.deleted'", "'schedule:' || id",
                                   "jsonb_build_object('user_id', user_id, 'name', name, 'cron', cron)"),
                 3, p, got_one);
}
