/* t_api.c — integration tests of bin/agentq-api over real HTTP (libcurl):
 * chat end to end with the real worker, long-poll wake-up, isolation between
 * users, 401s, bad input of every kind (the server answers and keeps
 * serving), idempotency keys, cancel, rate and quota limits, the database
 * stopping and coming back, graceful SIGTERM, metrics, and concurrent chats
 * that must all be durable. */
#include "harness.h"
#include "aq_time.h"
#include <cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const FAST[] = {"AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", NULL};
static const char *const NO_RATE[] = {"AGENTQ_USER_RATE=100000", NULL};

/* ---- reading responses ---- */

#define CHECK_STATUS(r, want) do { const th_resp *r_ = &(r); long w_ = (want); if (r_->status != w_) \
    th_fail(__FILE__, __LINE__, "%s: status %ld, want %ld; body: %.400s", #r, r_->status, w_, r_->body); } while (0)
/* status, and the body is {"error":{"code":CODE,"message":non-empty}} */
#define CHECK_ERROR(r, status, code) check_error(__LINE__, #r, &(r), status, code)

/* Follow "a.b.0.c" through objects and arrays. */
static const cJSON *jpath(const cJSON *root, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = root;
    for (char *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(k)) : cJSON_GetObjectItemCaseSensitive(cur, k);
    return cur;
}

/* Number at path in the body (-1 when absent or not a number). */
static long long jint(const th_resp *r, const char *path)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *v = jpath(j, path);
    long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(j);
    return n;
}

/* String at path in the body (heap), or NULL. */
static char *jtext(const th_resp *r, const char *path)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *v = jpath(j, path);
    char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(j);
    return s;
}

/* Size of the array at path (-1 when not an array). */
static int jcount(const th_resp *r, const char *path)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *v = jpath(j, path);
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    cJSON_Delete(j);
    return n;
}

/* 1 when path holds JSON null. */
static int jnull(const th_resp *r, const char *path)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    int n = cJSON_IsNull(jpath(j, path));
    cJSON_Delete(j);
    return n;
}

static void check_error(int line, const char *what, const th_resp *r, long status, const char *code)
{
    if (r->status != status)
        th_fail(__FILE__, line, "%s: status %ld, want %ld; body: %.400s", what, r->status, status, r->body);
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *c = jpath(j, "error.code"), *m = jpath(j, "error.message");
    if (!cJSON_IsString(c) || strcmp(c->valuestring, code))
        th_fail(__FILE__, line, "%s: error.code: got %s, want \"%s\"; body: %.400s", what,
                cJSON_IsString(c) ? c->valuestring : "(none)", code, r->body);
    if (!cJSON_IsString(m) || !*m->valuestring)
        th_fail(__FILE__, line, "%s: error.message missing; body: %.400s", what, r->body);
    if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) != 1)
        th_fail(__FILE__, line, "%s: the error body has other fields: %.400s", what, r->body);
    cJSON_Delete(j);
}

/* ---- requests ---- */

/* POST /v1/chat {"message": msg, "session_id"?: sid_in}; expects 202 and
 * returns the job id (-1 otherwise); copies the session id to sid_out. */
#define CHAT(tok, msg, sid_in, sid_out) chat_at(__LINE__, tok, msg, sid_in, sid_out)
static long long chat_at(int line, const char *tok, const char *msg, const char *sid_in, char *sid_out)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    if (sid_in) cJSON_AddStringToObject(o, "session_id", sid_in);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    th_resp r = th_post("/v1/chat", tok, body);
    free(body);
    long long id = -1;
    if (r.status != 202) {
        th_fail(__FILE__, line, "POST /v1/chat: status %ld, want 202; body: %.400s", r.status, r.body);
    } else {
        id = jint(&r, "job_id");
        char *sid = jtext(&r, "session_id");
        if (id <= 0 || !sid || strlen(sid) != 36)
            th_fail(__FILE__, line, "POST /v1/chat: bad answer %s", r.body);
        if (sid_out) snprintf(sid_out, 37, "%s", sid ? sid : "");
        free(sid);
    }
    th_resp_free(&r);
    return id;
}

static const char *job_path(long long id, const char *suffix)
{
    static char buf[4][128];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 128, "/v1/jobs/%lld%s", id, suffix);
    return b;
}

/* Long-poll job id until it leaves queued/running (up to timeout_ms); returns
 * its status (heap) or NULL. */
static char *wait_job(const char *tok, long long id, int timeout_ms)
{
    uint64_t end = aq_now_mono_ms() + (uint64_t)timeout_ms;
    char *st = NULL;
    while (aq_now_mono_ms() < end) {
        free(st);
        th_resp r = th_get(job_path(id, "?wait=2"), tok);
        st = jtext(&r, "status");
        th_resp_free(&r);
        if (st && strcmp(st, "queued") && strcmp(st, "running")) return st;
        if (!st) th_sleep_ms(50);
    }
    return st;
}

/* What a worker publishes on start: noop may be enqueued through the API,
 * and a connected worker serves the queues default and mail.v2_x-y (for
 * tests of POST /v1/jobs that run no worker). */
static void allow_noop(void)
{
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('noop', true, 25, 60)"
            " ON CONFLICT (name) DO UPDATE SET api_enqueue = true", NULL);
    th_exec("INSERT INTO workers (id, host, pid, queues, concurrency) VALUES ('test:1:x', 'test', 1,"
            " '{default,mail.v2_x-y}', 1) ON CONFLICT (id) DO NOTHING", NULL);
}

/* The server still answers, and its process lives. */
#define CHECK_SERVING(pid) do { th_resp h_ = th_get("/healthz", NULL); CHECK_STATUS(h_, 200); \
    th_resp_free(&h_); CHECK(th_alive(pid)); } while (0)

/* A request run on its own thread. */
typedef struct {
    pthread_t tid;
    const char *method, *path, *token, *body;
    th_resp r;
} bg_req;

static void *bg_main(void *arg)
{
    bg_req *b = arg;
    b->r = th_http(b->method, b->path, b->token, b->body, NULL, NULL);
    return NULL;
}

static void bg_start(bg_req *b) { pthread_create(&b->tid, NULL, bg_main, b); }
static void bg_join(bg_req *b) { pthread_join(b->tid, NULL); }

/* ---- 1. end to end ---- */

static void chat_end_to_end(void)
{
    pid_t api = th_api(NULL);
    pid_t w = th_worker(NULL, FAST);
    char *tok = th_user("alice", 0);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"hello\"}");
    CHECK_STATUS(r, 202);
    long long id = jint(&r, "job_id");
    char *sid = jtext(&r, "session_id"), *url = jtext(&r, "status_url");
    CHECK(id > 0);
    CHECK(sid && strlen(sid) == 36);
    CHECK_STR(url, job_path(id, ""));
    th_resp_free(&r);
    /* committed before the 202 */
    CHECK_INT(th_int("SELECT count(*) FROM jobs j JOIN users u ON u.id = j.user_id WHERE j.id = $1"
                     " AND j.job_type = 'agent_turn' AND j.session_id = $2 AND u.name = 'alice'",
                     th_num(id), sid ? sid : "", NULL), 1);

    char *status = NULL;
    uint64_t end = aq_now_mono_ms() + 20000;
    for (;;) {   /* plain polling, as a client without ?wait would */
        th_resp_free(&r);
        r = th_get(url ? url : "/", tok);
        free(status);
        status = jtext(&r, "status");
        if ((status && (!strcmp(status, "succeeded") || !strcmp(status, "failed"))) || aq_now_mono_ms() > end) break;
        th_sleep_ms(50);
    }
    CHECK_STATUS(r, 200);
    CHECK_STR(status, "succeeded");
    cJSON *doc = cJSON_ParseWithLength(r.body, r.len);   /* a row's fields at the top level, id first */
    CHECK_STR(doc && doc->child ? doc->child->string : NULL, "id");
    cJSON_Delete(doc);
    CHECK_INT(jint(&r, "id"), id);
    char *reply = jtext(&r, "output.reply");
    /* the default offline responder: a fixed help text that says it is not a model */
    CHECK_CONTAINS(reply, "(offline responder, not a model)");
    char *jsid = jtext(&r, "session_id");
    CHECK_STR(jsid, sid);
    th_resp_free(&r);

    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s/messages", sid ? sid : "");
    r = th_get(path, tok);
    CHECK_STATUS(r, 200);
    CHECK_INT(jcount(&r, "items"), 2);
    char *role0 = jtext(&r, "items.0.role"), *text0 = jtext(&r, "items.0.content");
    char *role1 = jtext(&r, "items.1.role"), *text1 = jtext(&r, "items.1.content");
    CHECK_STR(role0, "user");
    CHECK_STR(text0, "hello");
    CHECK_STR(role1, "assistant");
    CHECK_STR(text1, reply);
    CHECK_INT(jint(&r, "items.0.job_id"), id);
    CHECK_INT(jint(&r, "items.1.job_id"), id);
    CHECK(jnull(&r, "next"));
    th_resp_free(&r);

    /* a second turn in the same session: four messages, in order */
    char sid2[37] = "";
    long long id2 = CHAT(tok, "second \xc3\xa9t\xc3\xa9", sid, sid2);
    CHECK_STR(sid2, sid);
    char *st2 = wait_job(tok, id2, 20000);
    CHECK_STR(st2, "succeeded");
    r = th_get(path, tok);
    CHECK_INT(jcount(&r, "items"), 4);
    const char *roles[] = {"user", "assistant", "user", "assistant"};
    const char *texts[] = {"hello", reply, "second \xc3\xa9t\xc3\xa9", reply};
    for (int i = 0; i < 4; i++) {
        char k[32];
        snprintf(k, sizeof k, "items.%d.role", i);
        char *role = jtext(&r, k);
        snprintf(k, sizeof k, "items.%d.content", i);
        char *text = jtext(&r, k);
        CHECK_STR(role, roles[i]);
        CHECK_STR(text, texts[i]);
        free(role);
        free(text);
    }
    th_resp_free(&r);
    /* one session row, owned by alice */
    CHECK_INT(th_int("SELECT count(*) FROM chat_sessions s JOIN users u ON u.id = s.user_id"
                     " WHERE s.id = $1 AND u.name = 'alice'", sid ? sid : "", NULL), 1);

    free(st2); free(role0); free(text0); free(role1); free(text1); free(jsid);
    free(reply); free(status); free(sid); free(url); free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ?wait= returns as soon as the job finishes, not when the wait runs out. */
static void wait_wakes_on_finish(void)
{
    pid_t api = th_api(NULL);
    char *tok = th_user("alice", 0);
    long long id = CHAT(tok, "wake me", NULL, NULL);
    bg_req b = {.path = job_path(id, "?wait=10"), .token = tok};
    bg_start(&b);
    th_sleep_ms(500);   /* the long-poll reaches the server and parks (ordering, not speed) */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(id), NULL), 1);
    pid_t w = th_worker(NULL, FAST);
    bg_join(&b);
    CHECK_STATUS(b.r, 200);
    char *st = jtext(&b.r, "status");
    CHECK_STR(st, "succeeded");
    if (!(b.r.secs < 8.0)) th_fail(__FILE__, __LINE__, "?wait=10 answered after %.2f s, want < 8 s", b.r.secs);
    free(st);
    th_resp_free(&b.r);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 2. isolation and authentication ---- */

static void isolation_between_users(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0), *b = th_user("bob", 0), *op = th_user("root", 1);
    char sa[37] = "", sb[37] = "", pa[128], pb[128];
    long long ja = CHAT(a, "from alice", NULL, sa);
    long long jb = CHAT(b, "from bob", NULL, sb);
    snprintf(pa, sizeof pa, "/v1/sessions/%s/messages", sa);
    snprintf(pb, sizeof pb, "/v1/sessions/%s/messages", sb);

    th_resp r = th_get(job_path(ja, ""), b);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get(job_path(ja, "?wait=1"), b);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_post(job_path(ja, "/cancel"), b, NULL);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get(pa, b);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get(pb, a);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    /* bob's cancel changed nothing */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(ja), NULL), 1);

    r = th_get(job_path(ja, ""), a);
    CHECK_STATUS(r, 200);
    CHECK_INT(jint(&r, "id"), ja);
    th_resp_free(&r);
    r = th_get(pa, a);
    CHECK_STATUS(r, 200);
    CHECK_INT(jcount(&r, "items"), 0);   /* its turn has not run yet */
    th_resp_free(&r);

    /* the operator sees both */
    long long ids[2] = {ja, jb};
    for (int i = 0; i < 2; i++) {
        r = th_get(job_path(ids[i], ""), op);
        CHECK_STATUS(r, 200);
        CHECK_INT(jint(&r, "id"), ids[i]);
        th_resp_free(&r);
    }
    r = th_get(pa, op);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    r = th_get(pb, op);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);

    /* lists: the caller's own jobs for a user, all for an operator */
    r = th_get("/v1/jobs", a);
    CHECK_STATUS(r, 200);
    CHECK_INT(jcount(&r, "items"), 1);
    CHECK_INT(jint(&r, "items.0.id"), ja);
    th_resp_free(&r);
    r = th_get("/v1/jobs", b);
    CHECK_INT(jcount(&r, "items"), 1);
    CHECK_INT(jint(&r, "items.0.id"), jb);
    th_resp_free(&r);
    r = th_get("/v1/jobs", op);
    CHECK_STATUS(r, 200);
    CHECK_INT(jcount(&r, "items"), 2);
    CHECK_INT(jint(&r, "items.0.id"), jb > ja ? jb : ja);   /* newest first */
    CHECK_INT(jint(&r, "items.1.id"), jb > ja ? ja : jb);
    th_resp_free(&r);

    /* the operator cancels alice's job; bob still cannot see it */
    r = th_post(job_path(ja, "/cancel"), op, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    r = th_get("/v1/jobs?status=cancelled", b);
    CHECK_INT(jcount(&r, "items"), 0);
    th_resp_free(&r);
    CHECK_SERVING(api);
    free(a); free(b); free(op);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* A session that already has an owner cannot be borrowed by another user. */
static void session_of_another_user(void)
{
    pid_t api = th_api(NULL);
    pid_t w = th_worker(NULL, FAST);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    char sa[37] = "";
    long long ja = CHAT(a, "mine", NULL, sa);
    char *st = wait_job(a, ja, 20000);
    CHECK_STR(st, "succeeded");
    free(st);
    char body[128];
    snprintf(body, sizeof body, "{\"message\":\"let me in\",\"session_id\":\"%s\"}", sa);
    th_resp r = th_post("/v1/chat", b, body);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);   /* (+ its reply's notify) */
    free(a); free(b);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* A token is stored as its id and a keyed hash: no column of the user's row
 * holds the token or its secret part, in text or as bytes. */
static void token_stored_as_hash_only(void)
{
    char *a = th_user("alice", 0);
    CHECK(strlen(a) == 3 + 16 + 1 + 64 && a[19] == '_');
    char id[17];
    memcpy(id, a + 3, 16);
    id[16] = '\0';
    const char *secret = a + 20;
    CHECK_INT(th_int("SELECT count(*) FROM users WHERE name = 'alice' AND token_id = $1"
                     " AND octet_length(token_hash) = 32", id, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM users u WHERE strpos(u::text, $1) > 0 OR strpos(u::text, $2) > 0"
                     " OR position(decode($2, 'hex') IN u.token_hash) > 0", a, secret, NULL), 0);
    free(a);
}

static void unauthenticated_401(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    char wrong_secret[256], unknown[256], lower[300];
    snprintf(wrong_secret, sizeof wrong_secret, "%s", a);
    size_t n = strlen(wrong_secret);
    wrong_secret[n - 1] = wrong_secret[n - 1] == '0' ? '1' : '0';
    snprintf(unknown, sizeof unknown, "aq_0123456789abcdef_%s",
             "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    snprintf(lower, sizeof lower, "Authorization: bearer %s", a);
    char h_wrong[300], h_unknown[300];
    snprintf(h_wrong, sizeof h_wrong, "Authorization: Bearer %s", wrong_secret);
    snprintf(h_unknown, sizeof h_unknown, "Authorization: Bearer %s", unknown);
    const char *const cases[] = {
        NULL,                                           /* no header at all */
        "Authorization;",                               /* empty */
        "Authorization: Bearer",
        "Authorization: Bearer ",
        "Authorization: Basic YWxpY2U6c2VjcmV0",
        "Authorization: Bearer not-a-token",
        "Authorization: Bearer aq_zz_zz",
        h_unknown,                                      /* well-formed, unknown */
        h_wrong,                                        /* right id, wrong secret */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const hdr[] = {cases[i], NULL};
        th_resp r = th_http("GET", "/v1/jobs", NULL, NULL, hdr, "www-authenticate");
        if (r.status != 401) th_fail(__FILE__, __LINE__, "case %zu (%s): status %ld", i, cases[i], r.status);
        CHECK_ERROR(r, 401, "unauthorized");
        CHECK_CONTAINS(r.header, "Bearer");
        th_resp_free(&r);
        r = th_http("POST", "/v1/chat", NULL, "{\"message\":\"hi\"}", hdr, NULL);
        CHECK_ERROR(r, 401, "unauthorized");
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);
    /* the right token, and the scheme in any case */
    th_resp r = th_get("/v1/jobs", a);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    const char *const hl[] = {lower, NULL};
    r = th_http("GET", "/v1/jobs", NULL, NULL, hl, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    /* the unknown token again (now cached as unknown), then the good one */
    r = th_get("/v1/jobs", unknown);
    CHECK_ERROR(r, 401, "unauthorized");
    th_resp_free(&r);
    r = th_get("/v1/jobs", wrong_secret);
    CHECK_ERROR(r, 401, "unauthorized");
    th_resp_free(&r);
    CHECK_SERVING(api);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 3. bad input: the documented answer, and the server keeps serving ---- */

static void bad_bodies(void)
{
    const char *const env[] = {"AGENTQ_MAX_BODY_BYTES=1024", "AGENTQ_USER_RATE=100000", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    const char *const bad_json[] = {
        "{\"message\":", "not json", "{\"message\":\"hi\"", "{\"message\" \"hi\"}", "{'message':'hi'}",
        "\xff\xfe{", "{\"message\":\"hi\"}garbage", "{\"message\":\"hi\"} {}", NULL,
    };
    for (int i = 0; bad_json[i]; i++) {
        th_resp r = th_post("/v1/chat", a, bad_json[i]);
        CHECK_ERROR(r, 400, "bad_json");
        th_resp_free(&r);
    }
    const char *const not_object[] = {"[1,2]", "\"hello\"", "null", "42", "true", "[]", NULL};
    for (int i = 0; not_object[i]; i++) {
        th_resp r = th_post("/v1/chat", a, not_object[i]);
        CHECK_ERROR(r, 400, "bad_json");
        th_resp_free(&r);
        r = th_post("/v1/jobs", a, not_object[i]);
        CHECK_ERROR(r, 400, "bad_json");
        th_resp_free(&r);
    }
    th_resp r = th_post("/v1/chat", a, "");
    CHECK_ERROR(r, 400, "bad_json");
    th_resp_free(&r);
    r = th_post("/v1/chat", a, NULL);
    CHECK_ERROR(r, 400, "bad_json");
    th_resp_free(&r);

    /* a body of exactly the limit is taken, one byte more is 413 */
    char body[200000];
    const char *head = "{\"message\":\"", *tail = "\"}";
    size_t fill = 1024 - strlen(head) - strlen(tail);
    snprintf(body, sizeof body, "%s%0*d%s", head, (int)fill, 0, tail);
    CHECK_INT(strlen(body), 1024);
    r = th_post("/v1/chat", a, body);
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    snprintf(body, sizeof body, "%s%0*d%s", head, (int)fill + 1, 0, tail);
    CHECK_INT(strlen(body), 1025);
    r = th_post("/v1/chat", a, body);
    CHECK_ERROR(r, 413, "too_large");
    th_resp_free(&r);
    snprintf(body, sizeof body, "%s%0*d%s", head, 2500, 0, tail);
    r = th_post("/v1/jobs", a, body);
    CHECK_ERROR(r, 413, "too_large");
    th_resp_free(&r);
    /* far beyond: h2o's own cap answers before the body is read */
    memset(body, 'a', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    memcpy(body, head, strlen(head));
    r = th_post("/v1/chat", a, body);
    CHECK_STATUS(r, 413);
    th_resp_free(&r);

    CHECK_SERVING(api);
    CHAT(a, "still here", NULL, NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 2);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void bad_chat_messages(void)
{
    const char *const env[] = {"AGENTQ_MAX_MESSAGE_CHARS=100", "AGENTQ_USER_RATE=100000", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    const char *const bad[] = {
        "{}", "{\"message\":5}", "{\"message\":null}", "{\"message\":true}", "{\"message\":[\"hi\"]}",
        "{\"message\":{\"text\":\"hi\"}}", "{\"msg\":\"hi\"}",
        "{\"message\":\"\"}", "{\"message\":\" \"}", "{\"message\":\"   \\t\\n\\r  \"}",
        "{\"message\":\"ab\xff\"}",                 /* invalid UTF-8, raw bytes */
        "{\"message\":\"\xff\xfe\"}",
        "{\"message\":\"ab\xc3\"}",                 /* truncated sequence */
        "{\"message\":\"\xc0\xaf\"}",               /* overlong */
        "{\"message\":\"\xed\xa0\x80\"}",           /* a surrogate, UTF-8 encoded */
        "{\"message\":\"\xf4\x90\x80\x80\"}",       /* beyond U+10FFFF */
        "{\"message\":\"\\u0000\"}", "{\"message\":\"a\\u0000b\"}",   /* NUL would cut the text short */
        "{\"message\":\"hi\",\"session_id\":5}",
        "{\"message\":\"hi\",\"session_id\":\"not-a-uuid\"}",
        "{\"message\":\"hi\",\"session_id\":\"0123456789ab-cdef-0123-4567-89abcdef0123\"}",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        th_resp r = th_post("/v1/chat", a, bad[i]);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "case %d: %s", i, bad[i]);
        CHECK_ERROR(r, 422, "invalid_argument");
        th_resp_free(&r);
    }
    /* length counts characters: 100 of them pass in any width, 101 do not */
    const char *const chars[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", NULL};
    int accepted = 0;
    for (int c = 0; chars[c]; c++) {
        char msg[1024] = "";
        for (int i = 0; i < 100; i++) strcat(msg, chars[c]);
        long long id = CHAT(a, msg, NULL, NULL);
        accepted++;
        char *stored = th_str("SELECT input->>'message' FROM jobs WHERE id = $1", th_num(id), NULL);
        CHECK_STR(stored, msg);
        free(stored);
        strcat(msg, chars[c]);
        char body[1200];
        snprintf(body, sizeof body, "{\"message\":\"%s\"}", msg);
        th_resp r = th_post("/v1/chat", a, body);
        CHECK_ERROR(r, 422, "invalid_argument");
        CHECK_CONTAINS(r.body, "101 characters");
        th_resp_free(&r);
    }
    /* escapes are decoded before counting: 100 x \u00e9 is 100 characters */
    char body[1200] = "{\"message\":\"";
    for (int i = 0; i < 100; i++) strcat(body, "\\u00e9");
    strcat(body, "\"}");
    th_resp r = th_post("/v1/chat", a, body);
    CHECK_STATUS(r, 202);
    accepted += r.status == 202;
    th_resp_free(&r);
    /* an upper-case session id is taken and stored in lower case */
    r = th_post("/v1/chat", a, "{\"message\":\"hi\",\"session_id\":\"0123ABCD-89AB-4DEF-8123-456789ABCDEF\"}");
    CHECK_STATUS(r, 202);
    accepted += r.status == 202;
    char *sid = jtext(&r, "session_id");
    CHECK_STR(sid, "0123abcd-89ab-4def-8123-456789abcdef");
    free(sid);
    th_resp_free(&r);

    CHECK_SERVING(api);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), accepted);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void bad_paths_and_methods(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    long long id = CHAT(a, "exists", NULL, NULL);
    const char *const paths[] = {
        "/v1/jobs/abc", "/v1/jobs/-1", "/v1/jobs/0", "/v1/jobs/1.5", "/v1/jobs/1e3", "/v1/jobs/+1",
        "/v1/jobs/99999999999999999999", "/v1/jobs/9223372036854775807", "/v1/jobs/999999",
        "/v1/jobs/1/extra", "/v1/sessions/not-a-uuid/messages",
        "/v1/sessions/0123456789ab-cdef-0123-4567-89abcdef0123/messages",
        "/v1/sessions/00000000-0000-4000-8000-000000000000/messages",   /* well-formed, nobody's */
        "/nope", "/nope.js", "/v1", "/v2/chat", "/v1/chat/extra", "/healthz/x", NULL,
    };   /* ("/" is the web console: t_web.c) */
    for (int i = 0; paths[i]; i++) {
        th_resp r = th_get(paths[i], a);
        if (r.status != 404) th_fail(__FILE__, __LINE__, "GET %s", paths[i]);
        CHECK_ERROR(r, 404, "not_found");
        th_resp_free(&r);
    }
    th_resp r = th_post(job_path(999999, "/cancel"), a, NULL);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    /* a trailing slash is the same path */
    r = th_get(job_path(id, "/"), a);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);

    const struct { const char *method, *path, *allow; } wrong[] = {
        {"DELETE", "/v1/chat", "POST"},
        {"GET", "/v1/chat", "POST"},
        {"PUT", "/v1/jobs", "GET, HEAD, POST"},
        {"DELETE", "/v1/jobs/1", "GET, HEAD"},
        {"GET", "/v1/jobs/1/cancel", "POST"},
        {"POST", "/healthz", "GET, HEAD"},
        {"PATCH", "/v1/sessions/00000000-0000-4000-8000-000000000000/messages", "GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = th_http(wrong[i].method, wrong[i].path, a, NULL, NULL, "allow");
        if (r.status != 405) th_fail(__FILE__, __LINE__, "%s %s", wrong[i].method, wrong[i].path);
        CHECK_ERROR(r, 405, "method_not_allowed");
        CHECK_STR(r.header, wrong[i].allow);
        th_resp_free(&r);
    }
    /* a very long path is still just an unknown path */
    char long_path[9000] = "/";
    memset(long_path + 1, 'x', 8000);
    long_path[8001] = '\0';
    r = th_get(long_path, a);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);

    CHECK_SERVING(api);
    r = th_get(job_path(id, ""), a);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void bad_job_fields(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
    allow_noop();
    int accepted = 0;
    const char *const good[] = {
        "{\"type\":\"noop\"}",
        "{\"type\":\"noop\",\"input\":{\"x\":[1,\"two\",null]},\"priority\":32767}",
        "{\"type\":\"noop\",\"priority\":-32768,\"queue\":\"mail.v2_x-y\"}",
        "{\"type\":\"noop\",\"run_at\":\"2030-01-01T10:00:00+02:00\"}",
        "{\"type\":\"noop\",\"run_at\":\"2030-01-01T10:00:00.250Z\",\"priority\":null,\"queue\":null}",
        NULL,
    };
    long long ids[8] = {0};
    for (int i = 0; good[i]; i++) {
        th_resp r = th_post("/v1/jobs", a, good[i]);
        if (r.status != 202) th_fail(__FILE__, __LINE__, "case %d: %s", i, good[i]);
        CHECK_STATUS(r, 202);
        ids[i] = jint(&r, "job_id");
        accepted += r.status == 202;
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT priority FROM jobs WHERE id = $1", th_num(ids[1]), NULL), 32767);
    char *q = th_str("SELECT queue || ' ' || priority FROM jobs WHERE id = $1", th_num(ids[2]), NULL);
    CHECK_STR(q, "mail.v2_x-y -32768");
    free(q);
    CHECK_INT(th_int("SELECT (run_at = '2030-01-01T08:00:00Z')::int FROM jobs WHERE id = $1", th_num(ids[3]), NULL), 1);

    const char *const bad[] = {
        "{}", "{\"type\":5}", "{\"type\":\"\"}", "{\"type\":\"bad type!\"}",
        "{\"type\":\"no_such_type\"}", "{\"type\":\"agent_turn\"}",   /* exists, not for the API */
        "{\"type\":\"noop\",\"input\":[1]}", "{\"type\":\"noop\",\"input\":\"x\"}", "{\"type\":\"noop\",\"input\":5}",
        "{\"type\":\"noop\",\"priority\":\"high\"}", "{\"type\":\"noop\",\"priority\":1.5}",
        "{\"type\":\"noop\",\"priority\":40000}", "{\"type\":\"noop\",\"priority\":-40000}",
        "{\"type\":\"noop\",\"priority\":1e300}", "{\"type\":\"noop\",\"priority\":true}",
        "{\"type\":\"noop\",\"run_at\":\"tomorrow\"}", "{\"type\":\"noop\",\"run_at\":5}",
        "{\"type\":\"noop\",\"run_at\":\"2026-01-01 10:00:00Z\"}",
        "{\"type\":\"noop\",\"run_at\":\"2026-01-01T10:00:00\"}",
        "{\"type\":\"noop\",\"run_at\":\"2026-01-01T10:00:00Zjunk\"}",
        "{\"type\":\"noop\",\"run_at\":\"2026-02-30T10:00:00Z\"}",   /* no such day: the database says so */
        "{\"type\":\"noop\",\"run_at\":\"2026-13-01T10:00:00Z\"}",
        "{\"type\":\"noop\",\"run_at\":\"2026-01-01T25:00:00Z\"}",
        "{\"type\":\"noop\",\"queue\":\"bad queue;drop\"}", "{\"type\":\"noop\",\"queue\":\"\"}",
        "{\"type\":\"noop\",\"queue\":7}",
        "{\"type\":\"noop\",\"queue\":\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"}",   /* 65 */
        "{\"type\":\"noop\",\"idempotency_key\":5}",
        "{\"type\":\"noop\",\"input\":{\"bad\":\"\xff\"}}",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        th_resp r = th_post("/v1/jobs", a, bad[i]);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "case %d: %s", i, bad[i]);
        CHECK_ERROR(r, 422, "invalid_argument");
        th_resp_free(&r);
    }
    CHECK_SERVING(api);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), accepted);

    /* one refused value among concurrent good requests fails only itself */
    bg_req reqs[9];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < 9; i++) {
        reqs[i].method = "POST";
        reqs[i].path = "/v1/jobs";
        reqs[i].token = a;
        reqs[i].body = i == 4 ? "{\"type\":\"noop\",\"run_at\":\"2026-02-30T10:00:00Z\"}" : "{\"type\":\"noop\"}";
    }
    for (int i = 0; i < 9; i++) bg_start(&reqs[i]);
    for (int i = 0; i < 9; i++) bg_join(&reqs[i]);
    for (int i = 0; i < 9; i++) {
        if (i == 4) { CHECK_ERROR(reqs[i].r, 422, "invalid_argument"); }
        else { CHECK_STATUS(reqs[i].r, 202); accepted += reqs[i].r.status == 202; }
        th_resp_free(&reqs[i].r);
    }
    CHECK_SERVING(api);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), accepted);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void bad_wait_values(void)
{
    const char *const env[] = {"AGENTQ_WAIT_MAX_SECONDS=2", "AGENTQ_USER_RATE=100000", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    long long id = CHAT(a, "waiting", NULL, NULL);
    const char *const bad[] = {"abc", "-1", "99999999999999999999", "3601", "1.5", "", "1e3", "0x10", "5s",
                               "+1", "%201", "1%20", NULL};
    for (int i = 0; bad[i]; i++) {
        char q[64];
        snprintf(q, sizeof q, "?wait=%s", bad[i]);
        th_resp r = th_get(job_path(id, q), a);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "wait=%s", bad[i]);
        CHECK_ERROR(r, 422, "invalid_argument");
        th_resp_free(&r);
    }
    th_resp r = th_get(job_path(id, "?wait=0"), a);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    /* 3600 is accepted and clamped to AGENTQ_WAIT_MAX_SECONDS (2 here) */
    r = th_get(job_path(id, "?wait=3600"), a);
    CHECK_STATUS(r, 200);
    char *st = jtext(&r, "status");
    CHECK_STR(st, "queued");
    free(st);
    if (!(r.secs >= 1.5 && r.secs < 10.0))
        th_fail(__FILE__, __LINE__, "?wait=3600 with a 2 s cap answered after %.2f s", r.secs);
    th_resp_free(&r);
    /* a finished job answers at once, whatever the wait */
    r = th_post(job_path(id, "/cancel"), a, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    r = th_get(job_path(id, "?wait=3600"), a);
    CHECK_STATUS(r, 200);
    st = jtext(&r, "status");
    CHECK_STR(st, "cancelled");
    free(st);
    if (!(r.secs < 1.5)) th_fail(__FILE__, __LINE__, "a finished job's ?wait=3600 took %.2f s", r.secs);
    th_resp_free(&r);
    /* list parameters are checked too */
    const char *const bad_list[] = {"?limit=0", "?limit=201", "?limit=x", "?status=done", "?before=-5",
                                    "?type=bad%20type", NULL};
    for (int i = 0; bad_list[i]; i++) {
        char p[64];
        snprintf(p, sizeof p, "/v1/jobs%s", bad_list[i]);
        r = th_get(p, a);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "GET %s", p);
        CHECK_ERROR(r, 422, "invalid_argument");
        th_resp_free(&r);
    }
    CHECK_SERVING(api);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* Found by fuzzing (fz_tg_update's re-serialisation check): cJSON's printer
 * keeps 15 digits when it deems them close enough, so a job's input lost the
 * last digit of such numbers on the way to jsonb. */
static void job_input_numbers_exact(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    allow_noop();
    th_resp r = th_http("POST", "/v1/jobs", a, "{\"type\":\"noop\",\"input\":{\"x\":0.30000000000000004,"
                        "\"id\":9007199254740991,\"small\":-1.5e-300}}", NULL, NULL);
    CHECK_STATUS(r, 202);
    long long job = jint(&r, "job_id");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND input->>'x' = '0.30000000000000004'"
                     " AND input->>'id' = '9007199254740991' AND (input->>'small')::float8 = -1.5e-300",
                     th_num(job), NULL), 1);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ---- 4. idempotency ---- */

static void idempotency_key(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    allow_noop();
    const char *body = "{\"type\":\"noop\",\"input\":{\"n\":1}}";
    const char *const k1[] = {"Idempotency-Key: order-17", NULL};
    th_resp r1 = th_http("POST", "/v1/jobs", a, body, k1, "idempotent-replayed");
    CHECK_STATUS(r1, 202);
    CHECK(r1.header == NULL);
    long long j1 = jint(&r1, "job_id");
    CHECK(j1 > 0);
    th_resp r2 = th_http("POST", "/v1/jobs", a, body, k1, "idempotent-replayed");
    CHECK_STATUS(r2, 202);
    CHECK_INT(jint(&r2, "job_id"), j1);
    CHECK_STR(r2.header, "true");
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 1);
    /* the same key in the body is the same key (whitespace aside, the same request) */
    th_resp r3 = th_http("POST", "/v1/jobs", a, "{\"type\":\"noop\", \"input\": {\"n\": 1},"
                         " \"idempotency_key\":\"order-17\"}", NULL, "idempotent-replayed");
    CHECK_STATUS(r3, 202);
    CHECK_INT(jint(&r3, "job_id"), j1);
    CHECK_STR(r3.header, "true");
    /* the same key with another request is refused, whatever differs, and stores nothing */
    const char *const other[] = {
        "{\"type\":\"noop\",\"input\":{\"n\":2}}", "{\"type\":\"noop\"}",
        "{\"type\":\"noop\",\"input\":{\"n\":1},\"priority\":1}",
        "{\"type\":\"noop\",\"input\":{\"n\":1},\"queue\":\"mail.v2_x-y\"}",
        "{\"type\":\"noop\",\"input\":{\"n\":1},\"run_at\":\"2030-01-01T10:00:00Z\"}", NULL,
    };
    for (int i = 0; other[i]; i++) {
        th_resp rm = th_http("POST", "/v1/jobs", a, other[i], k1, "idempotent-replayed");
        if (rm.status != 422) th_fail(__FILE__, __LINE__, "case %d: %s", i, other[i]);
        CHECK_ERROR(rm, 422, "idempotency_mismatch");
        CHECK(rm.header == NULL);
        th_resp_free(&rm);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 1);
    /* and the key still replays its own request */
    th_resp rr = th_http("POST", "/v1/jobs", a, body, k1, "idempotent-replayed");
    CHECK_STATUS(rr, 202);
    CHECK_INT(jint(&rr, "job_id"), j1);
    th_resp_free(&rr);
    /* another user's key space is their own */
    th_resp r4 = th_http("POST", "/v1/jobs", b, body, k1, "idempotent-replayed");
    CHECK_STATUS(r4, 202);
    long long j4 = jint(&r4, "job_id");
    CHECK(j4 > 0 && j4 != j1);
    CHECK(r4.header == NULL);
    th_resp r5 = th_http("POST", "/v1/jobs", b, body, k1, "idempotent-replayed");
    CHECK_INT(jint(&r5, "job_id"), j4);
    CHECK_STR(r5.header, "true");
    /* body and header must agree */
    const char *const k3[] = {"Idempotency-Key: k-3", NULL};
    th_resp r6 = th_http("POST", "/v1/jobs", a, "{\"type\":\"noop\",\"idempotency_key\":\"k-2\"}", k3, NULL);
    CHECK_ERROR(r6, 422, "invalid_argument");
    th_resp r7 = th_http("POST", "/v1/jobs", a, "{\"type\":\"noop\",\"idempotency_key\":\"k-3\"}", k3, NULL);
    CHECK_STATUS(r7, 202);
    long long j7 = jint(&r7, "job_id");
    CHECK(j7 > 0 && j7 != j1 && j7 != j4);
    /* empty and over-long keys */
    const char *const empty[] = {"Idempotency-Key;", NULL};
    th_resp r8 = th_http("POST", "/v1/jobs", a, body, empty, NULL);
    CHECK_ERROR(r8, 422, "invalid_argument");
    char longkey[300] = "Idempotency-Key: ";
    memset(longkey + strlen(longkey), 'k', 256);
    const char *const lk[] = {longkey, NULL};
    th_resp r9 = th_http("POST", "/v1/jobs", a, body, lk, NULL);
    CHECK_ERROR(r9, 422, "invalid_argument");
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 3);
    CHECK_INT(th_int("SELECT count(DISTINCT idempotency_key) FROM jobs", NULL), 3);
    th_resp *all[] = {&r1, &r2, &r3, &r4, &r5, &r6, &r7, &r8, &r9};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) th_resp_free(all[i]);
    CHECK_SERVING(api);
    free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* Cancel means one thing (issue 12): the API and `agentq jobs cancel` call the
 * same function and give the same result for a queued, a waiting, a running
 * and a finished job. A running job is marked (202 / exit 0), stays running
 * under its worker, and ends cancelled whatever its run reports. */
static long long job_in(long long uid, const char *status)
{
    return th_int("INSERT INTO jobs (job_type, user_id, status, run_at, attempts, locked_by, locked_until, started_at,"
                  " finished_at) VALUES ('noop', $1, $2, now() + interval '1 hour', 1,"
                  " CASE WHEN $2 = 'running' THEN 'w9' END, CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END,"
                  " CASE WHEN $2 IN ('running', 'succeeded') THEN now() END,"
                  " CASE WHEN $2 = 'succeeded' THEN now() END) RETURNING id", th_num(uid), status, NULL);
}

static char *row_after(long long id)
{
    return th_str("SELECT status || ',' || (cancel_requested_at IS NOT NULL) || ',' || (finished_at IS NOT NULL)"
                  " || ',' || coalesce(locked_by, '-') FROM jobs WHERE id = $1", th_num(id), NULL);
}

static void cancel_same_via_api_and_cli(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("ann", 0);
    long long uid = th_int("SELECT id FROM users WHERE name = 'ann'", NULL);
    static const struct { const char *status; long http; int cli_rc; const char *cli_says, *after; } cases[] = {
        {"queued", 200, 0, "cancelled (it was queued)", "cancelled,true,true,-"},
        {"waiting", 200, 0, "cancelled (it was waiting)", "cancelled,true,true,-"},
        {"running", 202, 0, "cancel recorded", "running,true,false,w9"},
        {"succeeded", 409, 1, "has already finished (succeeded)", "succeeded,false,true,-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long by_api = job_in(uid, cases[i].status), by_cli = job_in(uid, cases[i].status);
        th_resp r = th_post(job_path(by_api, "/cancel"), a, NULL);
        if (r.status != cases[i].http) th_fail(__FILE__, __LINE__, "%s: HTTP %ld", cases[i].status, r.status);
        th_resp_free(&r);
        char id[32];
        snprintf(id, sizeof id, "%lld", by_cli);
        th_cli_run c = th_cli(NULL, (const char *const[]){"jobs", "cancel", id, NULL});
        CHECK_INT(c.status, cases[i].cli_rc);
        CHECK_CONTAINS(cases[i].cli_rc ? c.err : c.out, cases[i].cli_says);
        th_cli_free(&c);
        char *x = row_after(by_api), *y = row_after(by_cli);
        CHECK_STR(x, cases[i].after);
        CHECK_STR(y, cases[i].after);
        free(x);
        free(y);
        if (!strcmp(cases[i].status, "running")) {
            /* the API answers with the job as it is: running, the cancel recorded */
            r = th_post(job_path(by_api, "/cancel"), a, NULL);   /* again: the same answer */
            CHECK_STATUS(r, 202);
            char *st = jtext(&r, "status");
            CHECK_STR(st, "running");
            free(st);
            CHECK(!jnull(&r, "cancel_requested_at"));
            th_resp_free(&r);
            /* whatever ends the run, it ends cancelled: a late success, a retry, a lease rescue */
            th_exec("UPDATE jobs SET status = 'succeeded', output = '{\"late\": true}', locked_by = NULL WHERE id = $1",
                    th_num(by_api), NULL);
            th_exec("UPDATE jobs SET status = 'queued', locked_by = NULL WHERE id = $1", th_num(by_cli), NULL);
            CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id IN ($1, $2) AND status = 'cancelled'"
                             " AND output IS NULL AND finished_at IS NOT NULL AND locked_by IS NULL",
                             th_num(by_api), th_num(by_cli), NULL), 2);
        }
    }
    /* no such job: 404 and exit 1 */
    th_resp r = th_post(job_path(987654, "/cancel"), a, NULL);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    th_cli_run c = th_cli(NULL, (const char *const[]){"jobs", "cancel", "987654", NULL});
    CHECK_INT(c.status, 1);
    CHECK_CONTAINS(c.err, "no job 987654");
    th_cli_free(&c);
    /* a retried cancelled job runs normally again: the mark is gone */
    long long again = job_in(uid, "running");
    r = th_post(job_path(again, "/cancel"), a, NULL);
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    th_exec("UPDATE jobs SET status = 'failed', locked_by = NULL WHERE id = $1", th_num(again), NULL);
    char id[32];
    snprintf(id, sizeof id, "%lld", again);
    c = th_cli(NULL, (const char *const[]){"jobs", "retry", id, NULL});
    CHECK_INT(c.status, 0);
    th_cli_free(&c);
    th_exec("UPDATE jobs SET status = 'running', locked_by = 'w9' WHERE id = $1", th_num(again), NULL);
    th_exec("UPDATE jobs SET status = 'succeeded', locked_by = NULL WHERE id = $1", th_num(again), NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(again), NULL), 1);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 5. cancel ---- */

static void cancel_job(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    long long id = CHAT(a, "never mind", NULL, NULL);
    th_resp r = th_post(job_path(id, "/cancel"), a, NULL);
    CHECK_STATUS(r, 200);
    CHECK_INT(jint(&r, "id"), id);
    char *st = jtext(&r, "status");
    CHECK_STR(st, "cancelled");
    free(st);
    CHECK(!jnull(&r, "finished_at"));
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'cancelled' AND finished_at IS NOT NULL",
                     th_num(id), NULL), 1);
    r = th_post(job_path(id, "/cancel"), a, NULL);
    CHECK_ERROR(r, 409, "conflict");
    th_resp_free(&r);

    /* a finished job cannot be cancelled */
    pid_t w = th_worker(NULL, FAST);
    long long done = CHAT(a, "finish me", NULL, NULL);
    st = wait_job(a, done, 20000);
    CHECK_STR(st, "succeeded");
    free(st);
    r = th_post(job_path(done, "/cancel"), a, NULL);
    CHECK_ERROR(r, 409, "conflict");
    CHECK_CONTAINS(r.body, "succeeded");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(done), NULL), 1);
    /* the cancelled one was never run */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'cancelled' AND attempts = 0",
                     th_num(id), NULL), 1);
    free(a);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 6. rate and quota ---- */

static void rate_limit(void)
{
    const char *const env[] = {"AGENTQ_USER_RATE=5", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    int ok = 0, limited = 0;
    char *retry_after = NULL;
    uint64_t t0 = aq_now_mono_ms();
    for (int i = 0; i < 30; i++) {
        th_resp r = th_http("GET", "/v1/jobs", a, NULL, NULL, "retry-after");
        if (r.status == 200) ok++;
        else if (r.status == 429) {
            if (!limited++) {
                CHECK_ERROR(r, 429, "rate_limited");
                retry_after = r.header ? strdup(r.header) : NULL;
            }
        } else {
            CHECK_STATUS(r, 200);
        }
        th_resp_free(&r);
    }
    double secs = (double)(aq_now_mono_ms() - t0) / 1000.0;
    CHECK(ok >= 1);
    CHECK(limited >= 1);
    /* a token bucket of 5/s with a burst of 10 */
    if (ok > 10 + (int)(5 * secs) + 1)
        th_fail(__FILE__, __LINE__, "%d requests passed in %.2f s at 5/s with a burst of 10", ok, secs);
    CHECK(retry_after != NULL);
    long wait_s = retry_after ? strtol(retry_after, NULL, 10) : 0;
    CHECK(wait_s >= 1 && wait_s <= 60);
    /* another user is not limited by alice */
    th_resp r = th_get("/v1/jobs", b);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    /* after Retry-After, alice is served again */
    th_sleep_ms(wait_s * 1000 + 200);
    r = th_get("/v1/jobs", a);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    CHECK_SERVING(api);
    free(retry_after); free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void queue_quota(void)
{
    const char *const env[] = {"AGENTQ_USER_QUEUE_QUOTA=3", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    allow_noop();
    long long first = CHAT(a, "one", NULL, NULL);
    CHAT(a, "two", NULL, NULL);
    CHAT(a, "three", NULL, NULL);
    th_resp r = th_post("/v1/chat", a, "{\"message\":\"four\"}");
    CHECK_ERROR(r, 429, "quota_exceeded");
    th_resp_free(&r);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\"}");   /* every job type counts */
    CHECK_ERROR(r, 429, "quota_exceeded");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs j JOIN users u ON u.id = j.user_id WHERE u.name = 'alice'", NULL), 3);
    /* bob has his own quota */
    CHAT(b, "hello", NULL, NULL);
    /* a cancelled job frees a place */
    r = th_post(job_path(first, "/cancel"), a, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    CHAT(a, "four again", NULL, NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs j JOIN users u ON u.id = j.user_id"
                     " WHERE u.name = 'alice' AND j.status = 'queued'", NULL), 3);
    CHECK_SERVING(api);
    free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 7. the database stops and comes back ---- */

static void database_stopped(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    long long before = CHAT(a, "before", NULL, NULL);
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_STOP"), 0);

    th_resp r = {0};
    uint64_t end = aq_now_mono_ms() + 10000;
    do {
        th_resp_free(&r);
        r = th_get("/readyz", NULL);
        if (r.status == 503) break;
        th_sleep_ms(50);
    } while (aq_now_mono_ms() < end);
    CHECK_ERROR(r, 503, "unavailable");
    th_resp_free(&r);
    for (int i = 0; i < 4; i++) {   /* both API threads, whichever gets the connection */
        r = th_post("/v1/chat", a, "{\"message\":\"while down\"}");
        CHECK_ERROR(r, 503, "unavailable");
        th_resp_free(&r);
        r = th_get(job_path(before, ""), a);
        CHECK_ERROR(r, 503, "unavailable");
        th_resp_free(&r);
        r = th_get("/readyz", NULL);
        CHECK_ERROR(r, 503, "unavailable");
        th_resp_free(&r);
    }
    r = th_get("/healthz", NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    CHECK(th_alive(api));

    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_START"), 0);
    end = aq_now_mono_ms() + 15000;
    long ready = 0, chat = 0;
    while (aq_now_mono_ms() < end && (ready != 200 || chat != 202)) {
        r = th_get("/readyz", NULL);
        ready = r.status;
        th_resp_free(&r);
        if (ready == 200) {
            r = th_post("/v1/chat", a, "{\"message\":\"after\"}");
            chat = r.status;
            th_resp_free(&r);
        }
        if (ready != 200 || chat != 202) th_sleep_ms(100);
    }
    CHECK_INT(ready, 200);
    CHECK_INT(chat, 202);
    /* every answer after the restart is normal again, on both threads */
    for (int i = 0; i < 4; i++) {
        r = th_get(job_path(before, ""), a);
        CHECK_STATUS(r, 200);
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 2);
    CHECK(th_alive(api));
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 8. graceful stop ---- */

/* A raw TCP connection to the API that has sent len bytes of req (-1 on error). */
static int raw_send(const char *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)th_api_port()),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) || write(fd, req, len) != (ssize_t)len) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* Read from fd into buf until it holds want (1), the peer closes or 5 s pass (0). */
static int raw_read_until(int fd, char *buf, size_t size, const char *want)
{
    size_t n = 0;
    buf[0] = '\0';
    while (n < size - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t k = read(fd, buf + n, size - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        buf[n] = '\0';
        if (strstr(buf, want)) return 1;
    }
    return 0;
}

/* A keep-alive connection that has made one request and now sits idle. */
static int idle_connection(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int fd = raw_send(req, sizeof req - 1);
    char buf[2048];
    if (fd >= 0 && raw_read_until(fd, buf, sizeof buf, "{\"status\":\"ok\"}")) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

static void sigterm_graceful(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    long long id = CHAT(a, "in flight", NULL, NULL);
    int idle = idle_connection();
    CHECK(idle >= 0);
    bg_req b = {.path = job_path(id, "?wait=5"), .token = a};
    bg_start(&b);
    th_sleep_ms(500);   /* the long-poll is parked on the server */
    uint64_t t0 = aq_now_mono_ms();
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
    unsigned ms = (unsigned)(aq_now_mono_ms() - t0);
    bg_join(&b);
    /* the request in flight was answered, not dropped */
    CHECK_STATUS(b.r, 200);
    char *st = jtext(&b.r, "status");
    CHECK_STR(st, "queued");
    free(st);
    th_resp_free(&b.r);
    /* the idle connection was closed, not left hanging */
    if (idle >= 0) {
        char buf[64];
        struct pollfd p = {idle, POLLIN, 0};
        CHECK_INT(poll(&p, 1, 2000), 1);
        ssize_t k = read(idle, buf, sizeof buf);
        CHECK(k <= 0);
        close(idle);
    }
    th_resp r = th_get("/healthz", NULL);
    CHECK_INT(r.status, 0);   /* nobody listens any more */
    th_resp_free(&r);
    fprintf(stderr, "    (stopped in %u ms)\n", ms);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued'", th_num(id), NULL), 1);
    free(a);
}

/* Clients that send garbage, stop half-way, or leave during a long-poll. */
static void rude_clients(void)
{
    pid_t api = th_api(NULL);
    char *a = th_user("alice", 0);
    long long id = CHAT(a, "wait for me", NULL, NULL);
    char buf[4096], req[1024];
    /* not HTTP at all: h2o answers 400 and closes */
    static const char *const junk[] = {
        "GARBAGE\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",   /* a TLS hello */
        "GET /healthz HTTP/9.9\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        NULL,
    };
    for (int i = 0; junk[i]; i++) {
        int fd = raw_send(junk[i], strlen(junk[i]));
        CHECK(fd >= 0);
        if (fd < 0) continue;
        raw_read_until(fd, buf, sizeof buf, "\r\n\r\n");
        if (strncmp(buf, "HTTP/1.1 4", 10) && buf[0])
            th_fail(__FILE__, __LINE__, "junk %d answered: %.200s", i, buf);
        close(fd);
    }
    /* a body cut short, then gone */
    snprintf(req, sizeof req, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"message\":", a);
    int fd = raw_send(req, strlen(req));
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    /* a chunked body is a body like any other */
    snprintf(req, sizeof req, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
             "b\r\n{\"message\":\r\n9\r\n\"chunked\"\r\n1\r\n}\r\n0\r\n\r\n", a);
    fd = raw_send(req, strlen(req));
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(raw_read_until(fd, buf, sizeof buf, "status_url"));
        CHECK(!strncmp(buf, "HTTP/1.1 202", 12));
        close(fd);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE input->>'message' = 'chunked'", NULL), 1);
    /* long-polls whose clients leave: one woken by the job finishing, one by its timer */
    int gone[2];
    const char *waits[2] = {"10", "1"};
    for (int i = 0; i < 2; i++) {
        snprintf(req, sizeof req, "GET /v1/jobs/%lld?wait=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                 id, waits[i], a);
        gone[i] = raw_send(req, strlen(req));
        CHECK(gone[i] >= 0);
    }
    th_sleep_ms(300);   /* both are parked */
    for (int i = 0; i < 2; i++) if (gone[i] >= 0) close(gone[i]);
    th_sleep_ms(100);
    th_resp r = th_post(job_path(id, "/cancel"), a, NULL);   /* wakes the first */
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    th_sleep_ms(1500);   /* the second's timer has run out */
    CHECK_SERVING(api);
    CHAT(a, "still serving", NULL, NULL);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 9. metrics ---- */

static void metrics(void)
{
    pid_t api = th_api(NULL);
    char *op = th_user("root", 1), *a = th_user("alice", 0);
    CHAT(a, "count me", NULL, NULL);
    th_resp r = th_http("GET", "/metrics", op, NULL, NULL, "content-type");
    CHECK_STATUS(r, 200);
    CHECK_CONTAINS(r.header, "text/plain");
    CHECK_CONTAINS(r.body, "# TYPE agentq_jobs_runnable gauge");
    CHECK_CONTAINS(r.body, "agentq_jobs_runnable{type=\"agent_turn\",queue=\"default\"} 1\n");
    CHECK_CONTAINS(r.body, "# TYPE agentq_http_requests_total counter");
    CHECK_CONTAINS(r.body, "agentq_http_requests_total{route=\"chat\",code=\"202\"} 1\n");
    CHECK_CONTAINS(r.body, "agentq_http_request_duration_seconds_count{route=\"chat\"} 1\n");
    CHECK_CONTAINS(r.body, "agentq_oldest_runnable_age_seconds{type=\"agent_turn\",queue=\"default\"} ");
    th_resp_free(&r);
    r = th_get("/metrics", a);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get("/metrics", NULL);
    CHECK_ERROR(r, 401, "unauthorized");
    th_resp_free(&r);
    /* the refusals were counted */
    r = th_get("/metrics", op);
    CHECK_CONTAINS(r.body, "agentq_http_requests_total{route=\"metrics\",code=\"404\"} 1\n");
    CHECK_CONTAINS(r.body, "agentq_http_requests_total{route=\"metrics\",code=\"401\"} 1\n");
    th_resp_free(&r);
    free(op); free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 10. durable under concurrency ---- */

#define CONC_THREADS 8
#define CONC_EACH 50

typedef struct {
    pthread_t tid;
    char *token;
    char name[16];
    long long ids[CONC_EACH];
    long status[CONC_EACH];
    char first_error[300];
} conc_worker;

static void *conc_main(void *arg)
{
    conc_worker *c = arg;
    for (int i = 0; i < CONC_EACH; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"message\":\"%s #%d\"}", c->name, i);
        th_resp r = th_post("/v1/chat", c->token, body);
        c->status[i] = r.status;
        c->ids[i] = r.status == 202 ? jint(&r, "job_id") : 0;
        if (r.status != 202 && !c->first_error[0])
            snprintf(c->first_error, sizeof c->first_error, "%ld %s", r.status, r.body);
        th_resp_free(&r);
    }
    return NULL;
}

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a > b) - (a < b);
}

static void concurrent_chats_durable(void)
{
    pid_t api = th_api(NO_RATE);
    static conc_worker w[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        snprintf(w[t].name, sizeof w[t].name, "user%d", t);
        w[t].token = th_user(w[t].name, 0);
    }
    for (int t = 0; t < CONC_THREADS; t++) pthread_create(&w[t].tid, NULL, conc_main, &w[t]);
    for (int t = 0; t < CONC_THREADS; t++) pthread_join(w[t].tid, NULL);

    static long long all[CONC_THREADS * CONC_EACH];
    int n = 0;
    cJSON *pairs = cJSON_CreateArray();
    for (int t = 0; t < CONC_THREADS; t++) {
        if (w[t].first_error[0]) th_fail(__FILE__, __LINE__, "%s: %s", w[t].name, w[t].first_error);
        for (int i = 0; i < CONC_EACH; i++) {
            if (w[t].status[i] != 202) continue;
            all[n++] = w[t].ids[i];
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "id", (double)w[t].ids[i]);
            cJSON_AddStringToObject(p, "u", w[t].name);
            cJSON_AddItemToArray(pairs, p);
        }
    }
    CHECK_INT(n, CONC_THREADS * CONC_EACH);   /* nothing here should be refused */
    qsort(all, (size_t)n, sizeof all[0], cmp_ll);
    int dups = 0;
    for (int i = 1; i < n; i++) dups += all[i] == all[i - 1];
    CHECK_INT(dups, 0);
    CHECK(n == 0 || all[0] > 0);
    /* every 202 is a committed row with that id, that owner and its message */
    char *json = cJSON_PrintUnformatted(pairs);
    cJSON_Delete(pairs);
    CHECK_INT(th_int("SELECT count(*) FROM jobs j JOIN users u ON u.id = j.user_id"
                     " JOIN jsonb_to_recordset($1::jsonb) AS x(id bigint, u text) ON x.id = j.id AND x.u = u.name"
                     " WHERE j.job_type = 'agent_turn' AND j.status = 'queued'"
                     " AND j.input->>'message' LIKE u.name || ' #%'", json, NULL), n);
    free(json);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), n);
    CHECK_INT(th_int("SELECT count(DISTINCT input->>'message') FROM jobs", NULL), n);
    CHECK_SERVING(api);
    for (int t = 0; t < CONC_THREADS; t++) free(w[t].token);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* The API's inserts wake an idle worker after their commit (sql/023,
 * api/enqueue.c: the batch's own transaction does not NOTIFY; aq_wake() runs
 * behind it). Polling is off, so only the wake-up can start these jobs: a
 * job, then one whose run_at lies before the worker's claim floor (the key it
 * last claimed), which the wake-up's payload must lower. The API's session
 * shows aq_wake() as its last statement: rate sharing is off, or its take
 * (every 100 ms on API thread 0's connection) would be the last one there. */
static void insert_wakes_idle_worker(void)
{
    const char *const api_env[] = {"AGENTQ_RATE_SYNC_MS=0", NULL};
    pid_t api = th_api(api_env);
    const char *const env[] = {"AGENTQ_POLL_MS=600000", NULL};   /* polling effectively off */
    pid_t w = th_worker(NULL, env);
    char *tok = th_user("alice", 0);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM workers", NULL));
    th_sleep_ms(300);   /* past the catch-up claim on connect */
    th_resp r = th_post("/v1/jobs", tok, "{\"type\":\"noop\",\"input\":{}}");
    CHECK_STATUS(r, 202);
    long long first = jint(&r, "job_id");
    th_resp_free(&r);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(first),
                      NULL));
    r = th_post("/v1/jobs", tok, "{\"type\":\"noop\",\"input\":{},\"run_at\":\"2020-01-01T00:00:00Z\"}");
    CHECK_STATUS(r, 202);
    long long early = jint(&r, "job_id");
    th_resp_free(&r);
    CHECK(th_wait_int(1, 5000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(early),
                      NULL));
    CHECK_INT(th_int("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT aq_wake()'", NULL) > 0, 1);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

const th_test th_api_tests[] = {
    {"api_job_input_numbers_exact", job_input_numbers_exact, 30, 1},
    {"api_chat_end_to_end", chat_end_to_end, 60, 1},
    {"api_insert_wakes_idle_worker", insert_wakes_idle_worker, 40, 1},
    {"api_wait_wakes_on_finish", wait_wakes_on_finish, 40, 1},
    {"api_isolation_between_users", isolation_between_users, 40, 1},
    {"api_session_of_another_user", session_of_another_user, 40, 1},
    {"api_token_stored_as_hash_only", token_stored_as_hash_only, 30, 1},
    {"api_unauthenticated_401", unauthenticated_401, 40, 1},
    {"api_bad_bodies", bad_bodies, 40, 1},
    {"api_bad_chat_messages", bad_chat_messages, 40, 1},
    {"api_bad_paths_and_methods", bad_paths_and_methods, 40, 1},
    {"api_bad_job_fields", bad_job_fields, 40, 1},
    {"api_bad_wait_values", bad_wait_values, 40, 1},
    {"api_idempotency_key", idempotency_key, 40, 1},
    {"api_cancel", cancel_job, 40, 1},
    {"api_cancel_same_via_api_and_cli", cancel_same_via_api_and_cli, 60, 1},
    {"api_rate_limit", rate_limit, 40, 1},
    {"api_queue_quota", queue_quota, 40, 1},
    {"api_database_stopped", database_stopped, 120, 1},
    {"api_sigterm_graceful", sigterm_graceful, 60, 1},
    {"api_rude_clients", rude_clients, 40, 1},
    {"api_metrics", metrics, 40, 1},
    {"api_concurrent_chats_durable", concurrent_chats_durable, 120, 1},
    {0},
};
