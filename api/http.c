/* http.c — the life of a call: creation with a guard that notices when h2o
 * frees the request first (client gone), JSON and error replies (one shape,
 * from the error table), query parameters, headers, body parsing, and one
 * pipelined query bound to the call. Every call ends in exactly one
 * aq_api_reply* or aq_api_call_free. Loop thread of the call's api_thread only. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_log.h"
#include "aq_time.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

const char *const aq_api_route_names[R_COUNT] = {
    "healthz", "readyz", "metrics", "chat", "jobs_list", "jobs_create", "job_get", "job_cancel",
    "session_messages", "actions_list", "action_decide", "schedules_list", "schedules_create", "schedule_get",
    "schedule_patch", "schedule_delete", "telegram_webhook", "telegram_link", "channels_list", "notifications_list",
    "notification_read", "audit_list", "tasks_list", "task_decide", "connections_list", "connections_create",
    "connection_delete", "job_retry", "queue", "sessions_list", "cron_next", "web", "not_found",
};
const double aq_api_latency_bounds[API_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};
const int aq_api_statuses[API_STATUSES - 1] = {
    200, 201, 202, 204, 301, 304, 400, 401, 403, 404, 405, 409, 413, 422, 429, 431, 500, 502, 503,
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

api_call *aq_api_call_new(api_thread *t, h2o_req_t *req, int route)
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

void aq_api_call_free(api_call *c)
{
    if (c->guard) c->guard->call = NULL;
    if (c->wait_counted) aq_api_wait_release(c->t->srv, c->user_id);
    for (int i = 0; i < c->nkept; i++) free(c->kept[i]);
    free(c->kept);
    cJSON_Delete(c->body);
    if (c->wait_timer) {
        uv_timer_stop(c->wait_timer);
        uv_close((uv_handle_t *)c->wait_timer, free_timer);
    }
    free(c);
}

char *aq_api_keep(api_call *c, char *s)
{
    c->kept = aq_realloc(c->kept, sizeof *c->kept * (size_t)(c->nkept + 1));
    c->kept[c->nkept++] = s;
    return s;
}

/* Count the answer, and log it at debug level (the access log). */
static void count(api_call *c, int status)
{
    api_server *srv = c->t->srv;
    int k = 0;
    while (k < API_STATUSES - 1 && aq_api_statuses[k] != status) k++;
    atomic_fetch_add(&srv->requests[c->route][k], 1);
    uint64_t us = (uint64_t)aq_now_wall_us() - c->start_us;
    if (aq_log_enabled(AQ_LOG_DEBUG)) {
        h2o_req_t *req = c->req;
        aq_log(AQ_LOG_DEBUG, "access", 0, "%.*s %.*s %d %.3f ms route=%s user=%lld%s",
               req ? (int)req->method.len : 1, req ? req->method.base : "-",
               req ? (int)req->path.len : 1, req ? req->path.base : "-", status, (double)us / 1000.0,
               aq_api_route_names[c->route], (long long)c->user_id, c->wait_timer ? " long-poll" : "");
    }
    if (c->wait_timer) {   /* a long-poll's time is the job's, not the server's */
        atomic_fetch_add(&srv->long_polls[c->route], 1);
        return;
    }
    double s = (double)us / 1e6;
    int b = 0;
    while (b < API_LATENCY_BUCKETS && s > aq_api_latency_bounds[b]) b++;
    atomic_fetch_add(&srv->latency[c->route][b], 1);
    atomic_fetch_add(&srv->latency_sum_us[c->route], us);
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
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Error" : "Internal Server Error";
    }
}

void aq_api_reply_text(api_call *c, int status, const char *content_type, const char *body,
                       size_t len)
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
    aq_api_call_free(c);
}

void aq_api_reply(api_call *c, int status, const char *json, size_t len)
{
    aq_api_reply_text(c, status, "application/json", json, len);
}

void aq_api_reply_error(api_call *c, int err, const char *fmt, ...)
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
    aq_api_reply(c, aq_error_status(err), b.p, b.len);
    aq_buf_dispose(&b);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

char *aq_api_query_value(const char *query, size_t len, const char *name)
{
    const char *p = query, *end = query + len;
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
            return out;
        }
        p = amp + 1;
    }
    return NULL;
}

const char *aq_api_query_param(api_call *c, const char *name)
{
    h2o_req_t *req = c->req;
    if (!req || req->query_at == SIZE_MAX) return NULL;
    char *v = aq_api_query_value(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name);
    return v ? aq_api_keep(c, v) : NULL;
}

const char *aq_api_header(h2o_req_t *req, const h2o_token_t *token, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0) return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

const char *aq_api_header_str(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

int aq_api_body_parse(const char *s, size_t n, cJSON **out, char *why, size_t whylen)
{
    *out = NULL;
    /* cJSON takes raw control bytes (NUL included) inside strings, and its
     * strings end at NUL: both would cut a value short, so they are refused */
    size_t nul_at, bad_at = aq_json_scan(s, n, &nul_at);
    if (bad_at != SIZE_MAX) {
        snprintf(why, whylen, "raw control character 0x%02x at byte %zu: JSON strings must escape it"
                 " (e.g. \\n, \\t, \\u001b)", (unsigned char)s[bad_at], bad_at);
        return AQ_EJSON;
    }
    cJSON *v = aq_json_parse_whole(s, n);
    if (!cJSON_IsObject(v)) {
        snprintf(why, whylen, "%s", v ? "the body must be a JSON object" : "request body is not valid JSON");
        cJSON_Delete(v);
        return AQ_EJSON;
    }
    if (nul_at != SIZE_MAX) {
        snprintf(why, whylen, "\\u0000 at byte %zu: text cannot contain the NUL character (U+0000)", nul_at);
        cJSON_Delete(v);
        return AQ_EINVAL;
    }
    /* what parsers disagree on: cJSON keeps a repeated key's first value,
     * jsonb and most others the last, so {"message":"a","message":"b"} would
     * mean one thing here and another to a proxy or log reader */
    char strict_why[120];
    /* not UTF-8: 422 where the text is read, as before (not a parser quarrel) */
    if (aq_utf8_valid(s, n) && !aq_json_strict(s, n, strict_why, sizeof strict_why)) {
        snprintf(why, whylen, "request body is not strict JSON: %s", strict_why);
        cJSON_Delete(v);
        return AQ_EJSON;
    }
    *out = v;
    return 0;
}

int aq_api_parse_body(api_call *c)
{
    h2o_req_t *req = c->req;
    if (!req->entity.base || req->entity.len == 0) {
        aq_api_reply_error(c, AQ_EJSON, "a JSON object body is required");
        return -1;
    }
    /* POST /v1/jobs may carry a raw message (email_processing): its own cap
     * then, checked again by type once the body is read (jobs_api.c) */
    long cap = c->route == R_JOBS_CREATE ? aq_config_email_input_cap(c->t->srv->cfg) : c->t->srv->cfg->max_body_bytes;
    if (cap < c->t->srv->cfg->max_body_bytes) cap = c->t->srv->cfg->max_body_bytes;
    if ((long)req->entity.len > cap) {
        aq_api_reply_error(c, AQ_ETOOBIG, "request body is %zu bytes; the limit is %ld", req->entity.len, cap);
        return -1;
    }
    char why[160];
    int rc = aq_api_body_parse(req->entity.base, req->entity.len, &c->body, why, sizeof why);
    if (rc) {
        aq_api_reply_error(c, rc, "%s", why);
        return -1;
    }
    return 0;
}

/* The HTTP/1 request head as received (it starts the connection's input
 * buffer while the request is being handled), or an empty vector. */
static h2o_iovec_t raw_head(h2o_req_t *req)
{
    h2o_iovec_t none = {NULL, 0};
    if (req->version >= 0x200 || !req->conn->callbacks->get_socket) return none;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || !sock->input || sock->input->size < req->input.method.len ||
        memcmp(sock->input->bytes, req->input.method.base, req->input.method.len))
        return none;
    const char *p = sock->input->bytes;
    size_t n = sock->input->size;
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return h2o_iovec_init(p, i + 4);
    return none;
}

/* Header lines of head named name (lower case): how many, and whether their values differ. */
static int count_header(h2o_iovec_t head, const char *name, int *differ)
{
    size_t nlen = strlen(name);
    const char *first = NULL;
    size_t first_len = 0;
    int n = 0;
    *differ = 0;
    const char *p = memchr(head.base, '\n', head.len), *end = head.base + head.len;
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && !strncasecmp(p, name, nlen)) {
            const char *v = p + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (n++ == 0) {
                first = v;
                first_len = (size_t)(ve - v);
            } else if ((size_t)(ve - v) != first_len || memcmp(v, first, first_len)) {
                *differ = 1;
            }
        }
        p = eol;
    }
    return n;
}

int aq_api_request_refused(api_thread *t, h2o_req_t *req, int route)
{
    h2o_iovec_t head = raw_head(req);
    size_t size = head.len;
    if (!head.base) {   /* HTTP/2: the decoded headers */
        size = req->input.path.len;
        for (size_t i = 0; i < req->headers.size; i++)
            size += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    }
    if (size > API_MAX_HEADER_BYTES) {
        req->http1_is_persistent = 0;
        aq_api_reply_error(aq_api_call_new(t, req, route), AQ_EHEADERS, "the request's headers are %zu bytes; the limit is %d",
                           size, API_MAX_HEADER_BYTES);
        return 1;
    }
    /* h2o's own cap is raised to fit a raw message on POST /v1/jobs (main.c);
     * every other route keeps the plain-text 413 h2o gives past twice the body cap */
    long plain_cap = t->srv->cfg->max_body_bytes * 2 + 1024;
    if (route != R_JOBS_CREATE && req->entity.base && (long)req->entity.len > plain_cap) {
        req->http1_is_persistent = 0;
        static const char too_large[] = "request entity is too large";
        aq_api_reply_text(aq_api_call_new(t, req, route), 413, "text/plain; charset=utf-8", too_large,
                          sizeof too_large - 1);
        return 1;
    }
    if (!head.base) return 0;
    /* h2o frames the body by the first Content-Length (or by Transfer-Encoding):
     * a request that another reader could frame differently is refused */
    int cl_differ, te_differ;
    int cl = count_header(head, "content-length", &cl_differ), te = count_header(head, "transfer-encoding", &te_differ);
    if (cl_differ || (cl && te)) {
        req->http1_is_persistent = 0;   /* what follows on this connection cannot be trusted */
        aq_api_reply_error(aq_api_call_new(t, req, route), AQ_EREQUEST, cl_differ
                           ? "conflicting Content-Length headers" : "both Content-Length and Transfer-Encoding");
        return 1;
    }
    return 0;
}

int aq_api_text_field(api_call *c, const char *key, long max_chars, int required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, key);
    *out = NULL;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (!required) return 0;
        aq_api_reply_error(c, AQ_EINVAL, "%s: required", key);
        return -1;
    }
    if (!cJSON_IsString(v)) { aq_api_reply_error(c, AQ_EINVAL, "%s: must be a string", key); return -1; }
    const char *s = v->valuestring;
    if (!aq_utf8_valid(s, strlen(s))) { aq_api_reply_error(c, AQ_EINVAL, "%s: must be valid UTF-8", key); return -1; }
    const char *t = s;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    if (!*t) { aq_api_reply_error(c, AQ_EINVAL, "%s: must not be empty", key); return -1; }
    size_t chars = aq_utf8_chars(s);
    if ((long)chars > max_chars) {
        aq_api_reply_error(c, AQ_EINVAL, "%s: %zu characters; the limit is %ld", key, chars, max_chars);
        return -1;
    }
    *out = s;
    return 0;
}

void aq_api_reply_row(api_call *c, PGresult *res, int status, const char *missing)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) { aq_api_reply_error(c, AQ_ENOTFOUND, "%s", missing); return; }
    aq_api_reply(c, status, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void aq_api_reply_200(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 200, "not found"); }

const char *aq_api_owner_param(api_call *c)
{
    return c->operator ? NULL : aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id));
}

int aq_api_is_uuid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) { if (ch != '-') return 0; }
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return 0;
    }
    return 1;
}

int aq_api_parse_int(const char *s, long long lo, long long hi, long long *out)
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

/* DESIGN: a statement's rows arrive before its commit (at the sync), so a
 * result that may have written something is kept (copied: the loop frees
 * its own) and handed to the callback only once the sync reports the
 * commit; a failed commit or a lost connection reaches it as NULL (the
 * database unreachable), so nobody hears of a write a crash then undid.
 * An error needs no wait: nothing was written. */
typedef struct qctx {
    api_call *c;
    void (*cb)(api_call *, PGresult *);
    PGresult *kept;     /* the statement's result, until the sync */
} qctx;

static void on_result(void *arg, PGresult *res)
{
    qctx *q = arg;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        q->kept = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
        if (q->kept) return;
    }
    if (q->c) {
        api_call *c = q->c;
        q->c = NULL;
        q->cb(c, res);
    }
}

static void on_sync(void *arg, PGresult *res)
{
    qctx *q = arg;
    if (q->c) {
        api_call *c = q->c;
        q->c = NULL;
        q->cb(c, res && PQresultStatus(res) == PGRES_PIPELINE_SYNC ? q->kept : NULL);
    }
    PQclear(q->kept);
    free(q);
}

int aq_api_query(api_call *c, const char *sql, int n, const char *const *params,
                 void (*cb)(api_call *, PGresult *))
{
    api_thread *t = c->t;
    if (!t->db_ready) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return -1;
    }
    qctx *q = aq_calloc(1, sizeof *q);
    q->c = c;
    q->cb = cb;
    if (aq_pgloop_query(t->pg, sql, n, params, on_result, q)) {
        free(q);
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return -1;
    }
    if (aq_pgloop_sync(t->pg, on_sync, q)) {   /* on_result already ran with NULL */
        PQclear(q->kept);
        free(q);
    }
    return 0;
}
