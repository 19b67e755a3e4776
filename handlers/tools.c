/* tools.c — the tool table and the tools (see tools.h). Each tool is a
 * check of its arguments (pure: no database, so the fuzzer reaches it) that
 * turns them into the parameters of the tool's one statement; every
 * statement uses parameters. */
#include "tools.h"
#include "aq_alloc.h"
#include "aq_cron.h"
#include "aq_db.h"
#include "aq_audit.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_schedule.h"
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_list_tasks(const cJSON *, aq_tool_args *, char **);
static int check_add_task(const cJSON *, aq_tool_args *, char **);
static int check_update_task(const cJSON *, aq_tool_args *, char **);
static int check_task_id(const cJSON *, aq_tool_args *, char **);
static int check_remember(const cJSON *, aq_tool_args *, char **);
static int check_create_schedule(const cJSON *, aq_tool_args *, char **);

/* suggestion: null for the user's own tasks; 'pending' for one suggested from
 * an email and not yet accepted (source says which message), 'accepted' */
#define TASK_JSON "json_build_object('id', id, 'title', title, 'notes', notes, 'status', status," \
    " 'priority', priority, 'due_at', due_at, 'suggestion', suggestion, 'source', CASE WHEN source_job_id IS NULL" \
    " THEN NULL ELSE json_build_object('from', source_from, 'subject', source_subject) END)"

const aq_tool aq_tools[] = {
    {"list_tasks", "List the user's tasks. A task with suggestion \"pending\" was suggested from an email"
     " (source names it) and not yet accepted by the user; dismissed suggestions are not listed.",
     "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\",\"enum\":[\"open\",\"done\",\"all\"]}}}",
     0, check_list_tasks,
     "SELECT coalesce(json_agg(" TASK_JSON " ORDER BY id), '[]')::text FROM tasks"
     " WHERE user_id = $1 AND status <> 'dismissed' AND ($2::text IS NULL OR status = $2)", "[]"},
    {"add_task", "Add a task for the user.",
     "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},\"notes\":{\"type\":\"string\"},"
     "\"priority\":{\"type\":\"integer\"},\"due_at\":{\"type\":\"string\",\"description\":\"ISO 8601\"}},"
     "\"required\":[\"title\"]}",
     0, check_add_task,
     "INSERT INTO tasks (user_id, title, notes, priority, due_at, is_ai_suggested)"
     " VALUES ($1, $2, $3, coalesce($4::smallint, 0), $5::timestamptz, false) RETURNING " TASK_JSON "::text",
     "not added"},
    {"update_task", "Change a task's title, notes, priority or due date.",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"title\":{\"type\":\"string\"},"
     "\"notes\":{\"type\":\"string\"},\"priority\":{\"type\":\"integer\"},\"due_at\":{\"type\":\"string\"}},"
     "\"required\":[\"id\"]}",
     0, check_update_task,
     "UPDATE tasks SET title = coalesce($3, title), notes = coalesce($4, notes),"
     " priority = coalesce($5::smallint, priority), due_at = coalesce($6::timestamptz, due_at),"
     " updated_at = now() WHERE user_id = $1 AND id = $2 RETURNING " TASK_JSON "::text", "no such task"},
    {"complete_task", "Mark a task done.",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},\"required\":[\"id\"]}", 0, check_task_id,
     "UPDATE tasks SET status = 'done', updated_at = now() WHERE user_id = $1 AND id = $2"
     " RETURNING " TASK_JSON "::text", "no such task"},
    {"delete_task", "Delete a task (the user is asked to approve first).",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},\"required\":[\"id\"]}", 1, check_task_id,
     "DELETE FROM tasks WHERE user_id = $1 AND id = $2"
     " RETURNING json_build_object('deleted', id, 'title', title)::text", "no such task"},
    {"remember", "Store a standing instruction from the user, applied to every later conversation.",
     "{\"type\":\"object\",\"properties\":{\"instruction\":{\"type\":\"string\"}},\"required\":[\"instruction\"]}",
     0, check_remember,
     "INSERT INTO user_instructions (user_id, instruction) VALUES ($1, $2)"
     " RETURNING json_build_object('remembered', instruction)::text", "not stored"},
    {"create_schedule", "Schedule a recurring background run of the assistant: at each time of the cron expression "
     "the prompt is run as a new turn and the reply is sent to the user.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
     "\"cron\":{\"type\":\"string\",\"description\":\"5-field cron (minute hour day-of-month month day-of-week)"
     " or @hourly/@daily/@weekly/@monthly/@yearly\"},"
     "\"timezone\":{\"type\":\"string\",\"description\":\"IANA zone, e.g. Europe/Berlin; default UTC\"},"
     "\"prompt\":{\"type\":\"string\",\"description\":\"what the assistant is asked at each run\"}},"
     "\"required\":[\"name\",\"cron\",\"prompt\"]}",
     0, check_create_schedule, aq_schedule_sql_create,
     "not created: the user has as many schedules as allowed; delete one first"},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL},
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

/* An integer argument as text in buf: a JSON integer within +-9e15 or a
 * string of decimal digits (models often quote numbers) that fits a long long. */
static const char *opt_int(const cJSON *args, const char *key, char buf[24], char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    long long n;
    if (cJSON_IsString(v)) {
        char *end;
        errno = 0;
        n = strtoll(v->valuestring, &end, 10);
        if (*v->valuestring && !*end && errno != ERANGE) { snprintf(buf, 24, "%lld", n); return buf; }
    } else if (aq_json_int(v, -9000000000000000LL, 9000000000000000LL, &n)) {
        snprintf(buf, 24, "%lld", n);
        return buf;
    }
    if (!*err) *err = aq_sprintf("%s: must be an integer", key);
    return NULL;
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

static int check_list_tasks(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *status = opt_str(args, "status", 10, err);
    if (!*err && status && strcmp(status, "open") && strcmp(status, "done") && strcmp(status, "all"))
        *err = aq_strdup("status: one of open, done, all");
    a->p[1] = status && strcmp(status, "all") ? status : NULL;
    a->n = 2;
    return *err ? AQ_EINVAL : 0;
}

static int check_add_task(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *title = opt_str(args, "title", 500, err), *notes = opt_str(args, "notes", 5000, err);
    const char *prio = opt_int(args, "priority", a->num[0], err), *due = opt_str(args, "due_at", 64, err);
    if (!*err && (!title || !*title)) *err = aq_strdup("title: required, a non-empty string");
    a->p[1] = title;
    a->p[2] = notes;
    a->p[3] = prio;
    a->p[4] = due;
    a->n = 5;
    return *err ? AQ_EINVAL : 0;
}

static int check_update_task(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *id = opt_int(args, "id", a->num[0], err), *title = opt_str(args, "title", 500, err);
    const char *notes = opt_str(args, "notes", 5000, err), *prio = opt_int(args, "priority", a->num[1], err);
    const char *due = opt_str(args, "due_at", 64, err);
    if (!*err && !id) *err = aq_strdup("id: required");
    a->p[1] = id;
    a->p[2] = title;
    a->p[3] = notes;
    a->p[4] = prio;
    a->p[5] = due;
    a->n = 6;
    return *err ? AQ_EINVAL : 0;
}

/* complete_task and delete_task: {"id"} */
static int check_task_id(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *id = opt_int(args, "id", a->num[0], err);
    if (!*err && !id) *err = aq_strdup("id: required");
    a->p[1] = id;
    a->n = 2;
    return *err ? AQ_EINVAL : 0;
}

static int check_remember(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *text = opt_str(args, "instruction", 2000, err);
    if (!*err && (!text || !*text)) *err = aq_strdup("instruction: required, a non-empty string");
    a->p[1] = text;
    a->n = 2;
    return *err ? AQ_EINVAL : 0;
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
static int check_create_schedule(const cJSON *args, aq_tool_args *a, char **err)
{
    const char *name = opt_str(args, "name", 4 * AQ_SCHEDULE_NAME_MAX, err);
    const char *cron = opt_str(args, "cron", 4 * AQ_SCHEDULE_CRON_MAX, err);
    const char *zone = opt_str(args, "timezone", 4 * AQ_TZ_NAME_MAX, err);
    const char *prompt = opt_str(args, "prompt", 4 * (size_t)prompt_max, err);
    if (*err) return AQ_EINVAL;
    if (!zone || !*zone) zone = "UTC";
    int64_t next;
    char why[256];
    if (aq_schedule_check_new(name, cron, zone, prompt, prompt_max, min_interval, (int64_t)time(NULL), &next, why,
                              sizeof why)) {
        *err = aq_strdup(why);
        return AQ_EINVAL;
    }
    snprintf(a->num[0], sizeof a->num[0], "%lld", (long long)next);
    snprintf(a->num[1], sizeof a->num[1], "%d", AQ_SCHEDULE_PER_USER);
    const char *p[] = {NULL, name, cron, zone, prompt, "true", "run_once", a->num[0], a->num[1], AQ_AUDIT_AGENT};
    memcpy(a->p, p, sizeof p);
    a->n = 10;
    return 0;
}

int aq_tool_check(const aq_tool *t, const cJSON *args, aq_tool_args *a, char **err)
{
    memset(a, 0, sizeof *a);
    *err = NULL;
    int rc = t->check(args, a, err);
    if (rc && !*err) *err = aq_strdup("the arguments were refused");
    return rc;
}

char *aq_tool_run(const aq_tool *t, PGconn *db, int64_t user_id, const cJSON *args, char **err)
{
    aq_tool_args a;
    if (aq_tool_check(t, args, &a, err)) return NULL;
    char uid[24];
    snprintf(uid, sizeof uid, "%lld", (long long)user_id);
    a.p[0] = uid;
    return answer(db, t->sql, a.n, a.p, t->none, err);
}

char *aq_tool_error_json(const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    aq_utf8_sanitize(msg);   /* a cut may split a UTF-8 sequence */
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", msg);
    char *s = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return s;
}

char *aq_tool_parse_call(const char *name, const char *args_text, const aq_tool **tool, cJSON **args)
{
    *args = NULL;
    *tool = name ? aq_tool_find(name) : NULL;
    if (!*tool) return aq_tool_error_json("unknown tool '%.100s'", name ? name : "");
    char why[160];
    if (!args_text || !aq_json_strict(args_text, strlen(args_text), why, sizeof why))
        return aq_tool_error_json("the arguments are not a JSON object with each key once (%s); the call did not run:"
                                  " %.200s", args_text ? why : "none", args_text ? args_text : "");
    *args = cJSON_Parse(args_text);
    if (!cJSON_IsObject(*args)) {
        cJSON_Delete(*args);
        *args = NULL;
        return aq_tool_error_json("the arguments are not a JSON object; the call did not run: %.200s", args_text);
    }
    return NULL;
}
