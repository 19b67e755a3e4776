/* http.c — the life of a call: creation with a guard that notices when h2o
 * frees the request first (client gone), JSON and error replies (one shape,
 * from the error table), query parameters, headers, body parsing, and one
 * pipelined query bound to the call. Every call ends in exactly one
 * api_reply* or api_call_free. Loop thread of the call's api_thread only. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_time.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

const char *const api_route_names[R_COUNT] = {
    "healthz", "readyz", "metrics", "chat", "jobs_list", "jobs_create", "job_get", "job_cancel",
    "session_messages", "actions_list", "action_decide", "schedules_list", "schedules_create", "schedule_get",
    "schedule_patch", "schedule_delete", "telegram_webhook", "telegram_link", "channels_list", "notifications_list",
    "notification_read", "not_found",
};
const double api_latency_bounds[API_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

struct api_guard { api_call *call; };

static void guard_dispose(void *p)
{
    api_guard *g = p;
    if (g->call) {
        g->call->req = NULL;
        g->call->guard = NULL;
    }
}

api_call *api_call_new(api_thread *t, h2o_req_t *req, int route)
{
    api_call *c = aq_calloc(1, sizeof *c);
    c->t = t;
    c->req = req;
    c->route = route;
    c->start_us = (uint64_t)aq_now_wall_us();
    c->guard = h2o_mem_alloc_shared(&req->pool, sizeof *c->guard, guard_dispose);
    c->guard->call = c;
    return c;
}

static void free_timer(uv_handle_t *h) { free(h); }

void api_call_free(api_call *c)
{
    if (c->guard) c->guard->call = NULL;
    for (int i = 0; i < c->nkept; i++) free(c->kept[i]);
    free(c->kept);
    cJSON_Delete(c->body);
    if (c->wait_timer) {
        uv_timer_stop(c->wait_timer);
        uv_close((uv_handle_t *)c->wait_timer, free_timer);
    }
    free(c);
}

char *api_keep(api_call *c, char *s)
{
    c->kept = aq_realloc(c->kept, sizeof *c->kept * (size_t)(c->nkept + 1));
    c->kept[c->nkept++] = s;
    return s;
}

static void count(api_call *c, int status)
{
    api_server *srv = c->t->srv;
    int cls = status / 100;
    if (cls < 1 || cls > 5) cls = 5;
    atomic_fetch_add(&srv->requests[c->route][cls], 1);
    if (c->wait_timer) return;   /* a long-poll's time is the job's, not the server's */
    uint64_t us = (uint64_t)aq_now_wall_us() - c->start_us;
    double s = (double)us / 1e6;
    int b = 0;
    while (b < API_LATENCY_BUCKETS && s > api_latency_bounds[b]) b++;
    atomic_fetch_add(&srv->latency[b], 1);
    atomic_fetch_add(&srv->latency_sum_us, us);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Error" : "Internal Server Error";
    }
}

void api_reply_text(api_call *c, int status, const char *content_type, const char *body, size_t len)
{
    count(c, status);
    h2o_req_t *req = c->req;
    if (req) {
        c->guard->call = NULL;   /* from here h2o owns the request's fate */
        c->guard = NULL;
        req->res.status = status;
        req->res.reason = reason(status);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
        if (status == 401 && c->route != R_TELEGRAM_WEBHOOK)   /* that one takes a secret header, not a token */
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer realm=\"agentq\""));
        req->res.content_length = len;
        h2o_send_inline(req, body, len);
    }
    api_call_free(c);
}

void api_reply(api_call *c, int status, const char *json, size_t len)
{
    api_reply_text(c, status, "application/json", json, len);
}

void api_reply_error(api_call *c, int err, const char *fmt, ...)
{
    char msg[512];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof msg, "%s", aq_strerror(err));
    }
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{\"error\":{\"code\":");
    aq_buf_add_json_str(&b, aq_error_code(err));
    aq_buf_adds(&b, ",\"message\":");
    aq_buf_add_json_str(&b, msg);
    aq_buf_adds(&b, "}}");
    if (err == AQ_ERATE && c->req)
        h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    api_reply(c, aq_error_status(err), b.p, b.len);
    aq_buf_dispose(&b);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

const char *api_query_param(api_call *c, const char *name)
{
    h2o_req_t *req = c->req;
    if (!req || req->query_at == SIZE_MAX) return NULL;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp) amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        const char *kend = eq ? eq : amp;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : amp;
            char *out = aq_malloc((size_t)(amp - v) + 1);
            size_t n = 0;
            for (const char *q = v; q < amp; q++) {
                if (*q == '%' && q + 2 < amp && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    out[n++] = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    q += 2;
                } else {
                    out[n++] = *q == '+' ? ' ' : *q;
                }
            }
            out[n] = '\0';
            return api_keep(c, out);
        }
        p = amp + 1;
    }
    return NULL;
}

const char *api_header(h2o_req_t *req, const h2o_token_t *token, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0) return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

const char *api_header_str(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

int api_parse_body(api_call *c)
{
    h2o_req_t *req = c->req;
    if (!req->entity.base || req->entity.len == 0) {
        api_reply_error(c, AQ_EJSON, "a JSON object body is required");
        return -1;
    }
    if ((long)req->entity.len > c->t->srv->cfg->max_body_bytes) {
        api_reply_error(c, AQ_ETOOBIG, "request body is %zu bytes; the limit is %ld", req->entity.len,
                        c->t->srv->cfg->max_body_bytes);
        return -1;
    }
    /* cJSON strings end at NUL, so "\u0000" would silently cut a value short */
    for (size_t i = 0; i + 6 <= req->entity.len; i++)
        if (req->entity.base[i] == '\\' && !strncasecmp(req->entity.base + i + 1, "u0000", 5)) {
            api_reply_error(c, AQ_EINVAL, "strings must not contain NUL (\\u0000)");
            return -1;
        }
    const char *end = NULL;
    c->body = cJSON_ParseWithLengthOpts(req->entity.base, req->entity.len, &end, 0);
    while (c->body && end < req->entity.base + req->entity.len && (*end == ' ' || *end == '\t' ||
           *end == '\n' || *end == '\r'))
        end++;
    if (c->body && end != req->entity.base + req->entity.len) {   /* {"a":1}garbage */
        cJSON_Delete(c->body);
        c->body = NULL;
    }
    if (!cJSON_IsObject(c->body)) {
        api_reply_error(c, AQ_EJSON, c->body ? "the body must be a JSON object" : "request body is not valid JSON");
        return -1;
    }
    return 0;
}

int api_text_field(api_call *c, const char *key, long max_chars, int required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, key);
    *out = NULL;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (!required) return 0;
        api_reply_error(c, AQ_EINVAL, "%s: required", key);
        return -1;
    }
    if (!cJSON_IsString(v)) { api_reply_error(c, AQ_EINVAL, "%s: must be a string", key); return -1; }
    const char *s = v->valuestring;
    if (!aq_utf8_valid(s, strlen(s))) { api_reply_error(c, AQ_EINVAL, "%s: must be valid UTF-8", key); return -1; }
    const char *t = s;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    if (!*t) { api_reply_error(c, AQ_EINVAL, "%s: must not be empty", key); return -1; }
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) chars += (*p & 0xC0) != 0x80;
    if ((long)chars > max_chars) {
        api_reply_error(c, AQ_EINVAL, "%s: %zu characters; the limit is %ld", key, chars, max_chars);
        return -1;
    }
    *out = s;
    return 0;
}

void api_reply_row(api_call *c, PGresult *res, int status, const char *missing)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) { api_reply_error(c, AQ_ENOTFOUND, "%s", missing); return; }
    api_reply(c, status, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void api_reply_200(api_call *c, PGresult *res) { api_reply_row(c, res, 200, "not found"); }

const char *api_owner_param(api_call *c)
{
    return c->operator ? NULL : api_keep(c, aq_sprintf("%lld", (long long)c->user_id));
}

int api_is_uuid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) { if (ch != '-') return 0; }
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return 0;
    }
    return 1;
}

int api_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && lo < 0)) || strlen(s) > 19) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* ---- one query per call ---- */

typedef struct qctx {
    api_call *c;
    void (*cb)(api_call *, PGresult *);
} qctx;

static void on_result(void *arg, PGresult *res)
{
    qctx *q = arg;
    if (q->c) {
        api_call *c = q->c;
        q->c = NULL;
        q->cb(c, res);
    }
}

static void on_sync(void *arg, PGresult *res) { free(arg); }

int api_query(api_call *c, const char *sql, int n, const char *const *params,
              void (*cb)(api_call *, PGresult *))
{
    api_thread *t = c->t;
    if (!t->db_ready) {
        api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return -1;
    }
    qctx *q = aq_calloc(1, sizeof *q);
    q->c = c;
    q->cb = cb;
    if (aq_pgloop_query(t->pg, sql, n, params, on_result, q)) {
        free(q);
        api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return -1;
    }
    if (aq_pgloop_sync(t->pg, on_sync, q)) free(q);   /* on_result already ran with NULL */
    return 0;
}
