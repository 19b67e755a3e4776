/* routes.c — the route table: method and path to endpoint, 404 for unknown
 * paths, 405 (with Allow) for a known path with the wrong method. HEAD is
 * answered wherever GET is, like GET without the body (RFC 9110 §9.3.2).
 * Path ids must be plain positive integers and session ids UUIDs, else 404.
 * A GET for any other path outside /v1/ may be a web console file (web.c).
 * A request whose framing or size is refused (aq_api_request_refused) is
 * answered before routing. */
#include "api.h"
#include "aq_error.h"
#include <stdlib.h>

typedef struct {
    const char *method;
    const char *pattern;     /* literal segments; ":id" integer; ":uuid" */
    int route;
    void (*fn)(api_call *);
    int auth;
} route;

static const route routes[] = {
    {"GET",  "/healthz",                   R_HEALTHZ,          aq_api_healthz,          0},
    {"GET",  "/readyz",                    R_READYZ,           aq_api_readyz,           0},
    {"GET",  "/metrics",                   R_METRICS,          aq_api_metrics,          1},
    {"POST", "/v1/chat",                   R_CHAT,             aq_api_chat,             1},
    {"GET",  "/v1/jobs",                   R_JOBS_LIST,        aq_api_jobs_list,        1},
    {"POST", "/v1/jobs",                   R_JOBS_CREATE,      aq_api_jobs_create,      1},
    {"GET",  "/v1/jobs/:id",               R_JOB_GET,          aq_api_job_get,          1},
    {"POST", "/v1/jobs/:id/cancel",        R_JOB_CANCEL,       aq_api_job_cancel,       1},
    {"POST", "/v1/jobs/:id/retry",         R_JOB_RETRY,        aq_api_job_retry,        1},
    {"GET",  "/v1/queue",                  R_QUEUE,            aq_api_queue,            1},
    {"GET",  "/v1/sessions",               R_SESSIONS_LIST,    aq_api_sessions_list,    1},
    {"GET",  "/v1/cron/next",              R_CRON_NEXT,        aq_api_cron_next,        1},
    {"GET",  "/v1/sessions/:uuid/messages", R_SESSION_MESSAGES, aq_api_session_messages, 1},
    {"GET",  "/v1/actions",                R_ACTIONS_LIST,     aq_api_actions_list,     1},
    {"POST", "/v1/actions/:id/approve",    R_ACTION_DECIDE,    aq_api_action_approve,   1},
    {"POST", "/v1/actions/:id/reject",     R_ACTION_DECIDE,    aq_api_action_reject,    1},
    {"GET",  "/v1/schedules",              R_SCHEDULES_LIST,   aq_api_schedules_list,   1},
    {"POST", "/v1/schedules",              R_SCHEDULES_CREATE, aq_api_schedules_create, 1},
    {"GET",  "/v1/schedules/:id",          R_SCHEDULE_GET,     aq_api_schedule_get,     1},
    {"PATCH", "/v1/schedules/:id",         R_SCHEDULE_PATCH,   aq_api_schedule_patch,   1},
    {"DELETE", "/v1/schedules/:id",        R_SCHEDULE_DELETE,  aq_api_schedule_delete,  1},
    {"POST", "/v1/telegram/webhook",       R_TELEGRAM_WEBHOOK, aq_api_telegram_webhook, 0},
    {"POST", "/v1/channels/telegram/link", R_TELEGRAM_LINK,    aq_api_telegram_link,    1},
    {"GET",  "/v1/channels",               R_CHANNELS_LIST,    aq_api_channels_list,    1},
    {"GET",  "/v1/notifications",          R_NOTIFICATIONS_LIST, aq_api_notifications_list, 1},
    {"POST", "/v1/notifications/:id/read", R_NOTIFICATION_READ, aq_api_notification_read, 1},
    {"GET",  "/v1/audit",                  R_AUDIT_LIST,       aq_api_audit_list,       1},
    {"GET",  "/v1/tasks",                  R_TASKS_LIST,       aq_api_tasks_list,       1},
    {"POST", "/v1/tasks/:id/accept",       R_TASK_DECIDE,      aq_api_task_accept,      1},
    {"POST", "/v1/tasks/:id/dismiss",      R_TASK_DECIDE,      aq_api_task_dismiss,     1},
    {"GET",  "/v1/connections",            R_CONNECTIONS_LIST, aq_api_connections_list, 1},
    {"POST", "/v1/connections",            R_CONNECTIONS_CREATE, aq_api_connections_create, 1},
    {"DELETE", "/v1/connections/:id",      R_CONNECTION_DELETE, aq_api_connection_delete, 1},
    {NULL, NULL, 0, NULL, 0},
};

/* Match path against pattern; fills *id / uuid on a match. */
static int match(const char *pattern, const char *path, size_t len, int64_t *id, char *uuid)
{
    const char *p = pattern, *s = path, *end = path + len;
    while (*p) {
        if (s >= end || *s != '/' || *p != '/') return 0;
        p++, s++;
        const char *pe = strchr(p, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        const char *se = memchr(s, '/', (size_t)(end - s));
        size_t slen = se ? (size_t)(se - s) : (size_t)(end - s);
        if (plen == 3 && !memcmp(p, ":id", 3)) {
            if (slen == 0 || slen > 18) return 0;
            int64_t v = 0;
            for (size_t i = 0; i < slen; i++) {
                if (s[i] < '0' || s[i] > '9') return 0;
                v = v * 10 + (s[i] - '0');
            }
            if (v <= 0) return 0;
            *id = v;
        } else if (plen == 5 && !memcmp(p, ":uuid", 5)) {
            if (!aq_api_is_uuid(s, slen)) return 0;
            memcpy(uuid, s, 36);
            uuid[36] = '\0';
        } else if (plen != slen || memcmp(p, s, plen)) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    return s == end;
}

int aq_api_route_find(const char *method, size_t mlen, const char *path, size_t len, int *route_id,
                      int64_t *id, char uuid[37], char *allow, size_t allowcap)
{
    while (len > 1 && path[len - 1] == '/') len--;   /* "/v1/jobs/" is "/v1/jobs" */
    int head = h2o_memis(method, mlen, H2O_STRLIT("HEAD"));
    *route_id = R_NOT_FOUND;
    allow[0] = '\0';
    for (const route *r = routes; r->method; r++) {
        if (!match(r->pattern, path, len, id, uuid)) continue;
        if (h2o_memis(method, mlen, r->method, strlen(r->method)) || (head && !strcmp(r->method, "GET"))) {
            *route_id = r->route;
            return (int)(r - routes);
        }
        const char *m = strcmp(r->method, "GET") ? r->method : "GET, HEAD";
        if (strlen(allow) + strlen(m) + 3 < allowcap) {
            if (allow[0]) strcat(allow, ", ");
            strcat(allow, m);
        }
    }
    return -1;
}

int aq_api_route(api_thread *t, h2o_req_t *req)
{
    char allow[64];
    int64_t id = 0;
    char uuid[37] = "";
    int route_id, i = aq_api_route_find(req->method.base, req->method.len, req->path_normalized.base,
                                        req->path_normalized.len, &route_id, &id, uuid, allow, sizeof allow);
    const route *found = i < 0 ? NULL : &routes[i];
    if (aq_api_request_refused(t, req, found ? found->route : R_NOT_FOUND)) return 0;
    if (!found) {
        api_call *c = aq_api_call_new(t, req, R_NOT_FOUND);
        const char *path = req->path_normalized.base;
        size_t len = req->path_normalized.len;
        while (len > 1 && path[len - 1] == '/') len--;
        int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
        if (!allow[0] && (head || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) &&
            !(len >= 4 && !memcmp(path, "/v1/", 4))) {
            c->route = R_WEB;   /* the web console's files (web.c) */
            if (!aq_api_web_serve(c, path, len)) return 0;
            c->route = R_NOT_FOUND;   /* no such file: counted as what it is */
        }
        if (allow[0]) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, SIZE_MAX).base, strlen(allow));
            aq_api_reply_error(c, AQ_EMETHOD, "use %s for this path", allow);
        } else {
            aq_api_reply_error(c, AQ_ENOTFOUND, "no such endpoint");
        }
        return 0;
    }
    api_call *c = aq_api_call_new(t, req, found->route);
    c->id = id;
    memcpy(c->uuid, uuid, sizeof c->uuid);
    if (found->auth) {
        c->next = found->fn;
        aq_api_authenticate(c);
    } else {
        found->fn(c);
    }
    return 0;
}
