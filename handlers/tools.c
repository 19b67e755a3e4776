/* tools.c — the tool table and the tools (see tools.h). Arguments are
 * checked here, before any SQL; every statement uses parameters. */
#include "tools.h"
#include "aq_alloc.h"
#include "aq_cron.h"
#include "aq_db.h"
#include "aq_audit.h"
#include "aq_schedule.h"
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *tool_list_tasks(PGconn *, int64_t, const cJSON *, char **);
static char *tool_add_task(PGconn *, int64_t, const cJSON *, char **);
static char *tool_update_task(PGconn *, int64_t, const cJSON *, char **);
static char *tool_complete_task(PGconn *, int64_t, const cJSON *, char **);
static char *tool_delete_task(PGconn *, int64_t, const cJSON *, char **);
static char *tool_remember(PGconn *, int64_t, const cJSON *, char **);
static char *tool_create_schedule(PGconn *, int64_t, const cJSON *, char **);

const aq_tool aq_tools[] = {
    {"list_tasks", "List the user's tasks. A task with suggestion \"pending\" was suggested from an email"
     " (source names it) and not yet accepted by the user; dismissed suggestions are not listed.",
     "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\",\"enum\":[\"open\",\"done\",\"all\"]}}}",
     0, tool_list_tasks},
    {"add_task", "Add a task for the user.",
     "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},\"notes\":{\"type\":\"string\"},"
     "\"priority\":{\"type\":\"integer\"},\"due_at\":{\"type\":\"string\",\"description\":\"ISO 8601\"}},"
     "\"required\":[\"title\"]}",
     0, tool_add_task},
    {"update_task", "Change a task's title, notes, priority or due date.",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"title\":{\"type\":\"string\"},"
     "\"notes\":{\"type\":\"string\"},\"priority\":{\"type\":\"integer\"},\"due_at\":{\"type\":\"string\"}},"
     "\"required\":[\"id\"]}",
     0, tool_update_task},
    {"complete_task", "Mark a task done.",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},\"required\":[\"id\"]}", 0, tool_complete_task},
    {"delete_task", "Delete a task (the user is asked to approve first).",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},\"required\":[\"id\"]}", 1, tool_delete_task},
    {"remember", "Store a standing instruction from the user, applied to every later conversation.",
     "{\"type\":\"object\",\"properties\":{\"instruction\":{\"type\":\"string\"}},\"required\":[\"instruction\"]}",
     0, tool_remember},
    {"create_schedule", "Schedule a recurring background run of the assistant: at each time of the cron expression "
     "the prompt is run as a new turn and the reply is sent to the user.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
     "\"cron\":{\"type\":\"string\",\"description\":\"5-field cron (minute hour day-of-month month day-of-week)"
     " or @hourly/@daily/@weekly/@monthly/@yearly\"},"
     "\"timezone\":{\"type\":\"string\",\"description\":\"IANA zone, e.g. Europe/Berlin; default UTC\"},"
     "\"prompt\":{\"type\":\"string\",\"description\":\"what the assistant is asked at each run\"}},"
     "\"required\":[\"name\",\"cron\",\"prompt\"]}",
     0, tool_create_schedule},
    {NULL, NULL, NULL, 0, NULL},
};

const aq_tool *aq_tool_find(const char *name)
{
    for (const aq_tool *t = aq_tools; t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

cJSON *aq_tools_schema(void)
{
    cJSON *arr = cJSON_CreateArray();
    for (const aq_tool *t = aq_tools; t->name; t++) {
        cJSON *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(fn, "name", t->name);
        cJSON_AddStringToObject(fn, "description", t->description);
        cJSON_AddItemToObject(fn, "parameters", cJSON_Parse(t->parameters));
        cJSON *tool = cJSON_CreateObject();
        cJSON_AddStringToObject(tool, "type", "function");
        cJSON_AddItemToObject(tool, "function", fn);
        cJSON_AddItemToArray(arr, tool);
    }
    return arr;
}

/* ---- argument helpers: NULL/0 when absent; *bad set when present but wrong ---- */

static const char *opt_str(const cJSON *args, const char *key, size_t max, char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max) {
        if (!*err) *err = aq_sprintf("%s: must be a string of at most %zu characters", key, max);
        return NULL;
    }
    return v->valuestring;
}

static const char *opt_int(const cJSON *args, const char *key, char buf[24], char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) {   /* models often quote numbers */
        char *end;
        long long n = strtoll(v->valuestring, &end, 10);
        if (*v->valuestring && !*end) { snprintf(buf, 24, "%lld", n); return buf; }
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
        v->valuedouble > 9e15 || v->valuedouble < -9e15) {
        if (!*err) *err = aq_sprintf("%s: must be an integer", key);
        return NULL;
    }
    snprintf(buf, 24, "%lld", (long long)v->valuedouble);
    return buf;
}

/* The tool's answer: the first column of the first row of sql (JSON text),
 * run with aq_db_query; none is the error when there is no row. */
static char *answer(PGconn *db, const char *sql, int n, const char *const *p, const char *none, char **err)
{
    PGresult *r;
    char *out = NULL;
    if (aq_db_query(db, "a tool's statement", sql, n, p, &r)) {
        *err = aq_sprintf("the database refused it: %s", aq_db_error_message());
    } else if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        *err = aq_strdup(none);
    } else {
        out = aq_strdup(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return out;
}

#define UID char uid[24]; snprintf(uid, sizeof uid, "%lld", (long long)user_id)
/* suggestion: null for the user's own tasks; 'pending' for one suggested from
 * an email and not yet accepted (source says which message), 'accepted' */
#define TASK_JSON "json_build_object('id', id, 'title', title, 'notes', notes, 'status', status," \
    " 'priority', priority, 'due_at', due_at, 'suggestion', suggestion, 'source', CASE WHEN source_job_id IS NULL" \
    " THEN NULL ELSE json_build_object('from', source_from, 'subject', source_subject) END)"

static char *tool_list_tasks(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    const char *status = opt_str(args, "status", 10, err);
    if (*err) return NULL;
    if (status && strcmp(status, "open") && strcmp(status, "done") && strcmp(status, "all")) {
        *err = aq_strdup("status: one of open, done, all");
        return NULL;
    }
    const char *p[] = {uid, status && strcmp(status, "all") ? status : NULL};
    return answer(db, "SELECT coalesce(json_agg(" TASK_JSON " ORDER BY id), '[]')::text FROM tasks"
                   " WHERE user_id = $1 AND status <> 'dismissed' AND ($2::text IS NULL OR status = $2)", 2, p, "[]", err);
}

static char *tool_add_task(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    char pb[24];
    const char *title = opt_str(args, "title", 500, err), *notes = opt_str(args, "notes", 5000, err);
    const char *prio = opt_int(args, "priority", pb, err), *due = opt_str(args, "due_at", 64, err);
    if (!*err && (!title || !*title)) *err = aq_strdup("title: required, a non-empty string");
    if (*err) return NULL;
    const char *p[] = {uid, title, notes, prio, due};
    return answer(db, "INSERT INTO tasks (user_id, title, notes, priority, due_at, is_ai_suggested)"
                   " VALUES ($1, $2, $3, coalesce($4::smallint, 0), $5::timestamptz, false)"
                   " RETURNING " TASK_JSON "::text", 5, p, "not added", err);
}

static char *tool_update_task(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    char ib[24], pb[24];
    const char *id = opt_int(args, "id", ib, err), *title = opt_str(args, "title", 500, err);
    const char *notes = opt_str(args, "notes", 5000, err), *prio = opt_int(args, "priority", pb, err);
    const char *due = opt_str(args, "due_at", 64, err);
    if (!*err && !id) *err = aq_strdup("id: required");
    if (*err) return NULL;
    const char *p[] = {uid, id, title, notes, prio, due};
    return answer(db, "UPDATE tasks SET title = coalesce($3, title), notes = coalesce($4, notes),"
                   " priority = coalesce($5::smallint, priority), due_at = coalesce($6::timestamptz, due_at),"
                   " updated_at = now() WHERE user_id = $1 AND id = $2 RETURNING " TASK_JSON "::text",
               6, p, "no such task", err);
}

static char *tool_complete_task(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    char ib[24];
    const char *id = opt_int(args, "id", ib, err);
    if (!*err && !id) *err = aq_strdup("id: required");
    if (*err) return NULL;
    const char *p[] = {uid, id};
    return answer(db, "UPDATE tasks SET status = 'done', updated_at = now() WHERE user_id = $1 AND id = $2"
                   " RETURNING " TASK_JSON "::text", 2, p, "no such task", err);
}

static char *tool_delete_task(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    char ib[24];
    const char *id = opt_int(args, "id", ib, err);
    if (!*err && !id) *err = aq_strdup("id: required");
    if (*err) return NULL;
    const char *p[] = {uid, id};
    return answer(db, "DELETE FROM tasks WHERE user_id = $1 AND id = $2"
                   " RETURNING json_build_object('deleted', id, 'title', title)::text", 2, p, "no such task", err);
}

static char *tool_remember(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    const char *text = opt_str(args, "instruction", 2000, err);
    if (!*err && (!text || !*text)) *err = aq_strdup("instruction: required, a non-empty string");
    if (*err) return NULL;
    const char *p[] = {uid, text};
    return answer(db, "INSERT INTO user_instructions (user_id, instruction) VALUES ($1, $2)"
                   " RETURNING json_build_object('remembered', instruction)::text", 2, p, "not stored", err);
}

/* AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS, set once at start (aq_tools_configure) */
static long min_interval = AQ_SCHEDULE_MIN_INTERVAL_DEFAULT;
/* AGENTQ_MAX_MESSAGE_CHARS: a schedule's prompt, as in the API */
static long prompt_max = 8000;

void aq_tools_configure(const aq_config *cfg)
{
    min_interval = cfg->schedule_min_interval_s;
    prompt_max = cfg->max_message_chars;
}

/* The same rule and statement as POST /v1/schedules (aq_schedule.h); the
 * string caps here only bound the copy, the limits are aq_schedule_check_new's. */
static char *tool_create_schedule(PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    UID;
    const char *name = opt_str(args, "name", 4 * AQ_SCHEDULE_NAME_MAX, err);
    const char *cron = opt_str(args, "cron", 4 * AQ_SCHEDULE_CRON_MAX, err);
    const char *zone = opt_str(args, "timezone", 4 * AQ_TZ_NAME_MAX, err);
    const char *prompt = opt_str(args, "prompt", 4 * (size_t)prompt_max, err);
    if (*err) return NULL;
    if (!zone || !*zone) zone = "UTC";
    int64_t next;
    char why[256], next_s[24], quota[24];
    if (aq_schedule_check_new(name, cron, zone, prompt, prompt_max, min_interval, (int64_t)time(NULL), &next, why,
                              sizeof why)) {
        *err = aq_strdup(why);
        return NULL;
    }
    snprintf(next_s, sizeof next_s, "%lld", (long long)next);
    snprintf(quota, sizeof quota, "%d", AQ_SCHEDULE_PER_USER);
    const char *p[] = {uid, name, cron, zone, prompt, "true", "run_once", next_s, quota, AQ_AUDIT_AGENT};
    return answer(db, aq_schedule_sql_create, 10, p,
                  "not created: the user has as many schedules as allowed; delete one first", err);
}
