/* jobs_api.c — POST /v1/chat, POST /v1/jobs, GET /v1/jobs/{id} (?wait=),
 * GET /v1/jobs, POST /v1/jobs/{id}/cancel. Validation happens here, before
 * anything reaches the database; ownership is part of every query (a user
 * sees only rows with their user_id, an operator sees all; someone else's row
 * is a 404). Job JSON is built by Postgres (json_build_object keeps field
 * order: id first). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_audit.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#define JOB_JSON \
    "json_build_object('id', id, 'type', job_type, 'status', status, 'queue', queue, 'priority', priority," \
    " 'input', input, 'output', output, 'error', last_error, 'attempts', attempts," \
    " 'max_attempts', max_attempts, 'session_id', session_id, 'parent_id', parent_id, 'serial_key', serial_key," \
    " 'run_at', run_at," \
    " 'created_at', created_at, 'started_at', started_at, 'finished_at', finished_at," \
    " 'cancel_requested_at', cancel_requested_at)"

static void uuid_v4(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A refused value is the client's to fix (422, with the database's first
 * line); anything else is ours or the database's (503, details in our log). */
static void answer_enqueue_failure(api_call *c, const api_enqueue_result *r)
{
    if (!r->bad_value) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the job could not be stored; try again shortly");
        return;
    }
    const char *m = r->message ? r->message : "";
    if (!strncmp(m, "ERROR:  ", 8)) m += 8;
    int len = (int)strcspn(m, "\n");
    aq_api_reply_error(c, AQ_EINVAL, "a value was refused: %.*s", len > 200 ? 200 : len, m);
}

/* ---- POST /v1/chat ---- */

static void chat_enqueued(api_call *c, const api_enqueue_result *r)
{
    if (r->failed) { answer_enqueue_failure(c, r); return; }
    if (r->over_quota) {   /* (a row over the quota claims no session) */
        aq_api_reply_error(c, AQ_EQUOTA,
                           "you already have %ld queued jobs; wait for some to finish",
                           c->t->srv->cfg->user_queue_quota);
        return;
    }
    /* someone else's session, or a new id someone else claimed first (even at the same moment) */
    if (r->session_foreign) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such session"); return; }
    char body[256];
    int n = snprintf(body, sizeof body, "{\"job_id\":%lld,\"session_id\":\"%s\",\"status_url\":\"/v1/jobs/%lld\"}",
                     (long long)r->job_id, c->uuid, (long long)r->job_id);
    aq_api_reply(c, 202, body, (size_t)n);
}

void aq_api_chat(api_call *c)
{
    if (aq_api_parse_body(c)) return;
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(c->body, "session_id");
    const char *text;
    if (aq_api_text_field(c, "message", c->t->srv->cfg->max_message_chars, 1, &text)) return;
    if (sid && !cJSON_IsNull(sid)) {
        if (!cJSON_IsString(sid) || !aq_api_is_uuid(sid->valuestring, strlen(sid->valuestring))) {
            aq_api_reply_error(c, AQ_EINVAL, "session_id: must be a UUID");
            return;
        }
        snprintf(c->uuid, sizeof c->uuid, "%s", sid->valuestring);
        for (char *p = c->uuid; *p; p++) if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
    } else {
        uuid_v4(c->uuid);
    }
    cJSON *input = cJSON_CreateObject();
    cJSON_AddStringToObject(input, "message", text);
    cJSON_AddStringToObject(input, "session_id", c->uuid);
    cJSON_AddStringToObject(input, "channel", "web");
    char *json = aq_api_keep(c, cJSON_PrintUnformatted(input));
    cJSON_Delete(input);
    api_enqueue_req r = {.job_type = "agent_turn", .input_json = json, .session_id = c->uuid,
                         .claim_session = sid && !cJSON_IsNull(sid)};
    aq_api_enqueue(c, &r, chat_enqueued);
}

/* ---- POST /v1/jobs ---- */

static void job_enqueued(api_call *c, const api_enqueue_result *r)
{
    if (r->failed) { answer_enqueue_failure(c, r); return; }
    if (r->duplicate && r->key_mismatch) {
        aq_api_reply_error(c, AQ_EIDEMPOTENT, "this idempotency key was used for job %lld with a different request;"
                           " use a new key for a new request", (long long)r->job_id);
        return;
    }
    if (!r->duplicate) {   /* a replay answers with the original job whatever else holds now */
        if (r->type_refused) {
            aq_api_reply_error(c, AQ_EINVAL, "type: not a job type the API accepts (a worker publishes its types when it connects)");
            return;
        }
        if (r->queue_refused) {
            aq_api_reply_error(c, AQ_EINVAL, "queue: no worker serves this queue (%s)",
                               c->t->srv->queues ? "AGENTQ_API_QUEUES lists the accepted ones"
                                              : "accepted: the queues of the workers connected now");
            return;
        }
        if (r->over_quota) {
            aq_api_reply_error(c, AQ_EQUOTA,
                               "you already have %ld queued jobs; wait for some to finish",
                               c->t->srv->cfg->user_queue_quota);
            return;
        }
    }
    if (!r->job_id) {
        aq_api_reply_error(c, AQ_ECONFLICT, "a request with this idempotency key is still being stored; retry");
        return;
    }
    if (r->duplicate && c->req)
        h2o_add_header_by_str(&c->req->pool, &c->req->res.headers, H2O_STRLIT("idempotent-replayed"), 0, NULL,
                              H2O_STRLIT("true"));
    char body[160];
    int n = snprintf(body, sizeof body, "{\"job_id\":%lld,\"status_url\":\"/v1/jobs/%lld\"%s}", (long long)r->job_id,
                     (long long)r->job_id, r->duplicate ? ",\"duplicate\":true" : "");
    aq_api_reply(c, 202, body, (size_t)n);
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* ISO 8601 date-time shape: 2026-11-21T10:00:00[.fff](Z|+hh:mm|-hh:mm); the database checks the values. */
static int iso8601(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) return 0;
    }
    const char *p = s + i;
    if (*p == '.') { p++; if (!(*p >= '0' && *p <= '9')) return 0; while (*p >= '0' && *p <= '9') p++; }
    if (*p == 'Z') return p[1] == '\0';
    if (*p == '+' || *p == '-')
        return p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' && p[4] >= '0' &&
               p[4] <= '9' && p[5] >= '0' && p[5] <= '9' && p[6] == '\0';
    return 0;
}

/* What an idempotency key stands for: BLAKE2b-256 of the request's fields
 * (an absent queue is "default"; input as re-serialised, so whitespace does
 * not count but member order does), as 64 hex digits kept by the call. */
static const char *request_hash(api_call *c, const char *type, const char *queue, int priority, const char *run_at,
                                const char *input_json)
{
    char prio[16];
    snprintf(prio, sizeof prio, "%d", priority);
    const char *parts[] = {type, queue ? queue : "default", prio, run_at ? run_at : "", input_json};
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);   /* with its NUL */
    unsigned char h[32];
    crypto_generichash_final(&st, h, sizeof h);
    char *hex = aq_malloc(65);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return aq_api_keep(c, hex);
}

/* An email_processing input: exactly one of raw (the message as text) or
 * raw_base64, not empty, at most AGENTQ_MAX_EMAIL_BYTES (cap) once decoded.
 * The worker parses it (GMime); here only what a client must hear at once.
 * 0, or the code with why set. */
static int email_input_check(const cJSON *input, long cap, char *why, size_t whylen)
{
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(input, "raw");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(input, "raw_base64");
    if ((raw != NULL) == (b64 != NULL) || (raw && !cJSON_IsString(raw)) || (b64 && !cJSON_IsString(b64))) {
        snprintf(why, whylen, "input: an email_processing job needs exactly one of raw (the RFC 5322"
                 " message as a string) or raw_base64 (the message in base64, for 8-bit mail)");
        return AQ_EINVAL;
    }
    size_t n;
    if (raw) {
        n = strlen(raw->valuestring);
    } else {
        size_t len = strlen(b64->valuestring), room = len / 4 * 3 + 3;
        unsigned char *bin = aq_malloc(room);
        int bad = sodium_base642bin(bin, room, b64->valuestring, len, " \t\r\n", &n, NULL,
                                    sodium_base64_VARIANT_ORIGINAL);
        free(bin);
        if (bad) {
            snprintf(why, whylen, "input.raw_base64: not valid base64");
            return AQ_EINVAL;
        }
    }
    if (n == 0) {
        snprintf(why, whylen, "input: the message is empty");
        return AQ_EINVAL;
    }
    if ((long)n > cap) {
        snprintf(why, whylen, "the message is %zu bytes; the limit (AGENTQ_MAX_EMAIL_BYTES) is %ld", n, cap);
        return AQ_ETOOBIG;
    }
    return 0;
}

int aq_api_job_fields_check(const cJSON *body, size_t body_len, const char *hkey, size_t hlen, long max_body,
                            long max_email, aq_api_job_fields *f, char *why, size_t whylen)
{
    memset(f, 0, sizeof *f);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    const cJSON *run_at = cJSON_GetObjectItemCaseSensitive(body, "run_at");
    const cJSON *prio = cJSON_GetObjectItemCaseSensitive(body, "priority");
    const cJSON *queue = cJSON_GetObjectItemCaseSensitive(body, "queue");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(body, "idempotency_key");
    int email = cJSON_IsString(type) && !strcmp(type->valuestring, "email_processing");
    if (!email && (long)body_len > max_body) {   /* only mail may be bigger */
        snprintf(why, whylen, "request body is %zu bytes; the limit is %ld", body_len, max_body);
        return AQ_ETOOBIG;
    }
    if (!cJSON_IsString(type) || !valid_name(type->valuestring, 100)) {
        snprintf(why, whylen, "type: required, a job type name ([A-Za-z0-9_.-], at most 100)");
        return AQ_EINVAL;
    }
    if (input && !cJSON_IsObject(input)) { snprintf(why, whylen, "input: must be a JSON object"); return AQ_EINVAL; }
    if (email) {
        int rc = email_input_check(input, max_email, why, whylen);
        if (rc) return rc;
    }
    if (run_at && !cJSON_IsNull(run_at) && (!cJSON_IsString(run_at) || !iso8601(run_at->valuestring))) {
        snprintf(why, whylen, "run_at: must be an ISO 8601 date-time with a zone, e.g. 2026-11-21T10:00:00Z");
        return AQ_EINVAL;
    }
    if (prio && !cJSON_IsNull(prio)) {
        long long n;
        if (!aq_json_int(prio, -32768, 32767, &n)) {
            snprintf(why, whylen, "priority: must be an integer from -32768 to 32767");
            return AQ_EINVAL;
        }
        f->priority = (int)n;
    }
    if (queue && !cJSON_IsNull(queue) && (!cJSON_IsString(queue) || !valid_name(queue->valuestring, 64))) {
        snprintf(why, whylen, "queue: a queue name ([A-Za-z0-9_.-], at most 64)");
        return AQ_EINVAL;
    }
    /* the key: body field or Idempotency-Key header (both: they must agree) */
    const char *k = NULL;
    size_t klen = 0;
    if (key && !cJSON_IsNull(key)) {
        if (!cJSON_IsString(key)) { snprintf(why, whylen, "idempotency_key: must be a string"); return AQ_EINVAL; }
        k = key->valuestring;
        klen = strlen(k);
        if (hkey && (hlen != klen || memcmp(hkey, k, klen))) {
            snprintf(why, whylen, "idempotency_key: differs from the Idempotency-Key header");
            return AQ_EINVAL;
        }
    } else if (hkey) {
        k = hkey;
        klen = hlen;
    }
    if (k && (klen == 0 || klen > 255 || !aq_utf8_valid(k, klen))) {
        snprintf(why, whylen, "idempotency key: 1 to 255 bytes of UTF-8");
        return AQ_EINVAL;
    }
    char *input_json = input ? aq_json_print(input) : aq_strdup("{}");
    if (!aq_utf8_valid(input_json, strlen(input_json))) {
        free(input_json);
        snprintf(why, whylen, "input: strings must be valid UTF-8");
        return AQ_EINVAL;
    }
    f->type = type->valuestring;
    f->queue = cJSON_IsString(queue) ? queue->valuestring : NULL;
    f->run_at = cJSON_IsString(run_at) ? run_at->valuestring : NULL;
    f->key = k;
    f->key_len = klen;
    f->input_json = input_json;
    return 0;
}

void aq_api_jobs_create(api_call *c)
{
    if (aq_api_parse_body(c)) return;
    size_t hlen = 0;
    const char *hkey = aq_api_header_str(c->req, "idempotency-key", &hlen);
    aq_api_job_fields f;
    char why[300];
    int rc = aq_api_job_fields_check(c->body, c->req->entity.len, hkey, hlen, c->t->srv->cfg->max_body_bytes,
                                     c->t->srv->cfg->max_email_bytes, &f, why, sizeof why);
    if (rc) {
        aq_api_reply_error(c, rc, "%s", why);
        return;
    }
    char *input_json = aq_api_keep(c, f.input_json);
    api_enqueue_req r = {
        .job_type = f.type,
        .input_json = input_json,
        .queue = f.queue,
        .priority = f.priority,
        .run_at = f.run_at,
        .idempotency_key = f.key ? aq_api_keep(c, aq_sprintf("u%lld:%.*s", (long long)c->user_id, (int)f.key_len, f.key))
                                 : NULL,
        .request_hash = f.key ? request_hash(c, f.type, f.queue, f.priority, f.run_at, input_json) : NULL,
        .check_type = 1,
    };
    aq_api_enqueue(c, &r, job_enqueued);
}

/* ---- GET /v1/jobs/{id} ---- */

static void got_job(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) { aq_api_reply_error(c, AQ_ENOTFOUND, "no such job"); return; }
    const char *status = PQgetvalue(res, 0, 1);
    if (c->wait_s > 0 && (!strcmp(status, "queued") || !strcmp(status, "running"))) {
        /* a user may park AGENTQ_USER_MAX_WAITS at once; beyond, the answer is the job as it is now */
        if (aq_api_wait_acquire(c->t->srv, c->user_id)) {
            c->wait_counted = 1;
            aq_api_wait_for_job(c, aq_api_job_get);
            return;
        }
    }
    aq_api_reply(c, c->cancelling ? 202 : 200, PQgetvalue(res, 0, 0),
                 (size_t)PQgetlength(res, 0, 0));
}

void aq_api_job_get(api_call *c)
{
    if (!c->wait_timer && !c->no_wait) {   /* first pass, not a wake-up or a cancel's answer */
        const char *w = aq_api_query_param(c, "wait");
        long long v = 0;
        if (w && aq_api_parse_int(w, 0, 3600, &v)) {
            aq_api_reply_error(c, AQ_EINVAL, "wait: seconds, an integer from 0 to 3600");
            return;
        }
        long max = c->t->srv->cfg->wait_max_seconds;
        c->wait_s = v > max ? max : (long)v;
    }
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)), aq_api_owner_param(c)};
    aq_api_query(c, "SELECT " JOB_JSON "::text, status FROM jobs WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)",
                 2, p, got_job);
}

/* ---- GET /v1/jobs ---- */

void aq_api_jobs_list(api_call *c)
{
    const char *status = aq_api_query_param(c, "status");
    const char *type = aq_api_query_param(c, "type");
    const char *limit = aq_api_query_param(c, "limit");
    const char *before = aq_api_query_param(c, "before");
    aq_job_state st;
    if (status) {
        if (aq_job_state_parse(status, &st)) {
            aq_api_reply_error(c, AQ_EINVAL, "status: one of queued, running, waiting, succeeded, failed, cancelled");
            return;
        }
    }
    if (type && !valid_name(type, 100)) { aq_api_reply_error(c, AQ_EINVAL, "type: a job type name"); return; }
    long long lim = 50, bef = 0;
    if (limit && aq_api_parse_int(limit, 1, 200, &lim)) { aq_api_reply_error(c, AQ_EINVAL, "limit: an integer from 1 to 200"); return; }
    if (before && aq_api_parse_int(before, 1, INT64_MAX, &bef)) {
        aq_api_reply_error(c, AQ_EINVAL, "before: a job id (the previous page's next)");
        return;
    }
    char lims[24];
    snprintf(lims, sizeof lims, "%lld", lim);
    const char *p[] = {aq_api_owner_param(c), status, type, before, lims};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(j.doc ORDER BY j.id DESC), '[]'::json),"
                 " 'next', CASE WHEN count(*) = $5 THEN min(j.id) END)::text"
                 " FROM (SELECT id, " JOB_JSON " AS doc FROM jobs"
                 " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)"
                 " AND ($3::text IS NULL OR job_type = $3) AND ($4::bigint IS NULL OR id < $4)"
                 " ORDER BY id DESC LIMIT $5) j",
                 5, p, aq_api_reply_200);
}

/* ---- POST /v1/jobs/{id}/cancel ---- */

/* The same function and outcomes as `agentq jobs cancel` (aq_jobs_sql_cancel:
 * the SQL function aq_job_cancel, sql/012). */
static void cancelled(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "the database is unreachable; try again shortly");
        return;
    }
    const char *was;
    switch (aq_jobs_cancel_result(res, &was)) {
    case AQ_CANCEL_NOT_FOUND:
        aq_api_reply_error(c, AQ_ENOTFOUND, "no such job");
        return;
    case AQ_CANCEL_FINISHED:
        aq_api_reply_error(c, AQ_ECONFLICT, "the job has already %s", was);
        return;
    case AQ_CANCEL_REQUESTED:
        c->cancelling = 1;   /* running: it ends cancelled; answered 202 with the job as it is now */
        break;
    case AQ_CANCEL_DONE:
        break;
    }
    c->wait_s = 0;
    c->no_wait = 1;
    aq_api_job_get(c);   /* answer with the job as it now is */
}

void aq_api_job_cancel(api_call *c)
{
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)), aq_api_owner_param(c),
                       aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)), NULL, AQ_AUDIT_API};
    aq_api_query(c, aq_jobs_sql_cancel_audited, 5, p, cancelled);
}
