/* t_api_limits.c — integration tests of the API's bounds and of limits that
 * must hold under concurrency: one process per port, the fd limit, the
 * connection cap, parked long-polls per user, session claims raced by two
 * users, the rate limit for users whose ids once shared a slot, the queued-job
 * quota and the schedule limit under concurrent requests (across threads and
 * processes), strict JSON bodies, request framing (Content-Length, header
 * size), HEAD, and POST /v1/jobs on a queue no worker serves. Requests curl
 * cannot make go over raw sockets. */
#include "harness.h"
#include "aq_time.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_STATUS(r, want) do { const th_resp *r_ = &(r); long w_ = (want); if (r_->status != w_) \
    th_fail(__FILE__, __LINE__, "%s: status %ld, want %ld; body: %.400s", #r, r_->status, w_, r_->body); } while (0)
/* status, and {"error":{"code":CODE,...}} */
#define CHECK_ERROR(r, status, code) do { const th_resp *e_ = &(r); CHECK_STATUS(*e_, status); \
    cJSON *j_ = cJSON_ParseWithLength(e_->body, e_->len); \
    const char *c_ = th_jstr(cJSON_GetObjectItemCaseSensitive(j_, "error"), "code"); \
    if (!c_ || strcmp(c_, code)) th_fail(__FILE__, __LINE__, "%s: error code %s, want %s; body: %.400s", #r, \
        c_ ? c_ : "(none)", code, e_->body); \
    cJSON_Delete(j_); } while (0)

extern char th_log[512];   /* this test's log file (runner.c) */

static const char *const NO_RATE[] = {"AGENTQ_USER_RATE=100000", NULL};

static long long body_num(const th_resp *r, const char *key)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    long long n = th_jnum(j, key);
    cJSON_Delete(j);
    return n;
}

static char *body_str(const th_resp *r, const char *key)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const char *s = th_jstr(j, key);
    char *out = s ? strdup(s) : NULL;
    cJSON_Delete(j);
    return out;
}

/* A gauge from /metrics (operator token), or -1. */
static long long metric(const char *op, const char *name)
{
    th_resp r = th_get("/metrics", op);
    long long v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ') { v = atoll(p + n + 1); break; }
    th_resp_free(&r);
    return v;
}

/* Wait (up to 20 s) until the gauge reads want. */
static int wait_metric(const char *op, const char *name, long long want)
{
    uint64_t end = aq_now_mono_ms() + 20000;
    long long v = -1;
    while (aq_now_mono_ms() < end) {
        if ((v = metric(op, name)) == want) return 1;
        th_sleep_ms(20);
    }
    th_fail(__FILE__, __LINE__, "%s: %lld, want %lld", name, v, want);
    return 0;
}

/* ---- raw HTTP/1.1 over a socket ---- */

static int connect_api(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); fd = -1; }
    return fd;
}

/* Send req (len bytes) on a new connection and read until the server closes
 * it or 10 s pass; returns what came (heap, NUL-terminated; *closed = 1 when
 * the server closed the connection). */
static char *raw_exchange(const char *req, size_t len, int *closed)
{
    int fd = connect_api(th_api_port());
    char *out = calloc(1, 65536);
    size_t n = 0;
    *closed = 0;
    if (fd < 0) return out;
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    uint64_t end = aq_now_mono_ms() + 10000;
    while (n < 65535 && aq_now_mono_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t r = recv(fd, out + n, 65535 - n, 0);
        if (r <= 0) { *closed = 1; break; }
        n += (size_t)r;
    }
    close(fd);
    return out;
}

static int raw_status(const char *resp) { return strncmp(resp, "HTTP/1.1 ", 9) ? 0 : atoi(resp + 9); }

/* ---- 1. one process per port ---- */

/* A second agentq-api on a busy port (its database unreachable, too) exits
 * non-zero saying the address is in use; the first keeps serving. */
static void second_process_refused(void)
{
    pid_t api = th_api(NULL);
    char listen[64], log[600];
    snprintf(listen, sizeof listen, "AGENTQ_LISTEN=127.0.0.1:%d", th_api_port());
    snprintf(log, sizeof log, "%s.second-api.err", th_log);
    pid_t p2 = fork();
    if (p2 == 0) {
        setenv("DATABASE_URL", "host=127.0.0.1 port=1 dbname=nothing connect_timeout=1", 1);
        setenv("AGENTQ_SECRET_KEY", TH_SECRET_KEY, 1);
        putenv(listen);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        execl(th_bin("agentq-api"), "agentq-api", (char *)NULL);
        _exit(127);
    }
    int st = th_stop(p2, 0, 10000);   /* signal 0: just wait for it to exit */
    if (st < 0) th_fail(__FILE__, __LINE__, "the second agentq-api was still running after 10 s (it shares the port)");
    CHECK(st > 0);
    FILE *f = fopen(log, "r");
    char text[4096] = "";
    if (f) { size_t n = fread(text, 1, sizeof text - 1, f); text[n] = '\0'; fclose(f); }
    CHECK_CONTAINS(text, "Address already in use");
    /* every request still reaches the first (with its database) */
    for (int i = 0; i < 20; i++) {
        th_resp r = th_get("/readyz", NULL);
        CHECK_STATUS(r, 200);
        th_resp_free(&r);
    }
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 2. connections and long-polls are bounded ---- */

static long nofile_of(pid_t pid, int hard)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "Max open files", 14)) continue;
        long soft = -1, hardv = -1;
        sscanf(line + 14, "%ld %ld", &soft, &hardv);
        v = hard ? hardv : soft;
    }
    if (f) fclose(f);
    return v;
}

/* Started with a low soft fd limit, the API raises it to the hard limit; then
 * 1,100 idle sockets (more than that soft limit) cannot starve /healthz: at
 * AGENTQ_MAX_CONNECTIONS each new connection closes the longest-idle one. */
static void idle_sockets_capped(void)
{
    struct rlimit mine;
    getrlimit(RLIMIT_NOFILE, &mine);
    if (mine.rlim_max != RLIM_INFINITY && mine.rlim_max < 1300) {
        printf("    (hard fd limit %llu: too low for this test; skipped)\n", (unsigned long long)mine.rlim_max);
        return;
    }
    struct rlimit low = {1024, mine.rlim_max};
    setrlimit(RLIMIT_NOFILE, &low);   /* the API inherits 1024, as under a default shell */
    const char *const env[] = {"AGENTQ_MAX_CONNECTIONS=200", NULL};
    pid_t api = th_api(env);
    struct rlimit high = {mine.rlim_max == RLIM_INFINITY ? 4096 : mine.rlim_max, mine.rlim_max};
    setrlimit(RLIMIT_NOFILE, &high);
    CHECK_INT(nofile_of(api, 0), nofile_of(api, 1));
    char *op = th_user("root", 1);

    enum { N = 1100 };
    static int fds[N];
    int opened = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = connect_api(th_api_port());
        opened += fds[i] >= 0;
    }
    CHECK_INT(opened, N);
    for (int i = 0; i < 3; i++) {
        th_resp r = th_get("/healthz", NULL);
        CHECK_STATUS(r, 200);
        th_resp_free(&r);
    }
    th_resp r = th_get("/v1/jobs", op);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    long long open_now = metric(op, "agentq_http_connections");
    CHECK_INT(metric(op, "agentq_http_connections_max"), 200);
    if (open_now < 1 || open_now > 200 + 4) th_fail(__FILE__, __LINE__, "open connections %lld, cap 200", open_now);
    for (int i = 0; i < N; i++) if (fds[i] >= 0) close(fds[i]);
    free(op);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

typedef struct {
    pthread_t tid;
    char path[128];
    const char *token;
    const char *body;
    const char *method;
    pthread_barrier_t *start;
    th_resp r;
} bg;

static void *bg_main(void *arg)
{
    bg *b = arg;
    if (b->start) pthread_barrier_wait(b->start);
    b->r = th_http(b->method, b->path, b->token, b->body, NULL, NULL);
    return NULL;
}

/* One user parks at most AGENTQ_USER_MAX_WAITS long-polls; more answer at
 * once with the job as it is. Other users are not affected. */
static void long_polls_capped_per_user(void)
{
    const char *const env[] = {"AGENTQ_USER_MAX_WAITS=3", "AGENTQ_USER_RATE=100000", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0), *b = th_user("bob", 0), *op = th_user("root", 1);
    th_resp r = th_post("/v1/chat", a, "{\"message\":\"wait for me\"}");   /* no worker: stays queued */
    CHECK_STATUS(r, 202);
    long long ja = body_num(&r, "job_id");
    th_resp_free(&r);
    r = th_post("/v1/chat", b, "{\"message\":\"and me\"}");
    long long jb = body_num(&r, "job_id");
    th_resp_free(&r);

    bg parked[4];
    memset(parked, 0, sizeof parked);
    for (int i = 0; i < 3; i++) {
        snprintf(parked[i].path, sizeof parked[i].path, "/v1/jobs/%lld?wait=30", ja);
        parked[i].token = a;
        pthread_create(&parked[i].tid, NULL, bg_main, &parked[i]);
    }
    wait_metric(op, "agentq_http_waits_parked", 3);
    /* the fourth answers at once, with the job still queued, while three stay parked */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%lld?wait=30", ja);
    for (int i = 0; i < 5; i++) {
        r = th_get(path, a);
        CHECK_STATUS(r, 200);
        char *st = body_str(&r, "status");
        CHECK_STR(st, "queued");
        free(st);
        th_resp_free(&r);
    }
    CHECK_INT(metric(op, "agentq_http_waits_parked"), 3);
    /* bob parks his own */
    snprintf(parked[3].path, sizeof parked[3].path, "/v1/jobs/%lld?wait=30", jb);
    parked[3].token = b;
    pthread_create(&parked[3].tid, NULL, bg_main, &parked[3]);
    wait_metric(op, "agentq_http_waits_parked", 4);
    r = th_get("/healthz", NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    /* cancelling wakes them; the slots are free again */
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", ja);
    r = th_post(path, op, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", jb);
    r = th_post(path, op, NULL);
    th_resp_free(&r);
    for (int i = 0; i < 4; i++) {
        pthread_join(parked[i].tid, NULL);
        CHECK_STATUS(parked[i].r, 200);
        char *st = body_str(&parked[i].r, "status");
        CHECK_STR(st, "cancelled");
        free(st);
        th_resp_free(&parked[i].r);
    }
    CHECK_INT(metric(op, "agentq_http_waits_parked"), 0);
    free(a); free(b); free(op);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 3. session ownership is atomic ---- */

/* Two users post the same new session id at the same moment, 30 times:
 * exactly one 202, the other 404; the loser can read nothing of it. */
static void session_claim_race(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    const char *toks[2] = {a, b};
    int both = 0;
    for (int trial = 0; trial < 30; trial++) {
        char sid[37];
        snprintf(sid, sizeof sid, "%08x-0000-4000-8000-%012x", (unsigned)trial + 1, (unsigned)getpid());
        char body[128];
        snprintf(body, sizeof body, "{\"message\":\"mine\",\"session_id\":\"%s\"}", sid);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        bg reqs[2];
        memset(reqs, 0, sizeof reqs);
        for (int i = 0; i < 2; i++) {
            snprintf(reqs[i].path, sizeof reqs[i].path, "/v1/chat");
            reqs[i].token = toks[i];
            reqs[i].body = body;
            reqs[i].start = &go;
            pthread_create(&reqs[i].tid, NULL, bg_main, &reqs[i]);
        }
        for (int i = 0; i < 2; i++) pthread_join(reqs[i].tid, NULL);
        pthread_barrier_destroy(&go);
        int won = reqs[0].r.status == 202 ? 0 : 1;
        if (reqs[0].r.status == 202 && reqs[1].r.status == 202) both++;
        CHECK_STATUS(reqs[won].r, 202);
        CHECK_ERROR(reqs[!won].r, 404, "not_found");
        /* the row is the winner's, and only the winner has a job in it */
        CHECK_INT(th_int("SELECT count(*) FROM chat_sessions s JOIN users u ON u.id = s.user_id"
                         " WHERE s.id = $1 AND u.name = $2", sid, won ? "bob" : "alice", NULL), 1);
        CHECK_INT(th_int("SELECT count(DISTINCT user_id) FROM jobs WHERE session_id = $1", sid, NULL), 1);
        char path[128];
        snprintf(path, sizeof path, "/v1/sessions/%s/messages", sid);
        th_resp r = th_get(path, toks[!won]);
        CHECK_ERROR(r, 404, "not_found");
        th_resp_free(&r);
        r = th_get(path, toks[won]);
        CHECK_STATUS(r, 200);
        th_resp_free(&r);
        for (int i = 0; i < 2; i++) th_resp_free(&reqs[i].r);
    }
    if (both) th_fail(__FILE__, __LINE__, "both users got 202 in %d of 30 trials", both);
    free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* A session the server made, whose first turn has not run (no row yet), is
 * not claimable by another user who learns its id; its owner continues it. */
static void session_unrun_not_borrowed(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0), *b = th_user("bob", 0);
    th_resp r = th_post("/v1/chat", a, "{\"message\":\"first\"}");   /* no worker: no row yet */
    CHECK_STATUS(r, 202);
    char *sid = body_str(&r, "session_id");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM chat_sessions", NULL), 0);
    char body[128], path[128];
    snprintf(body, sizeof body, "{\"message\":\"mine now\",\"session_id\":\"%s\"}", sid ? sid : "");
    snprintf(path, sizeof path, "/v1/sessions/%s/messages", sid ? sid : "");
    r = th_post("/v1/chat", b, body);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get(path, b);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    r = th_get(path, a);   /* the owner, before any row: an empty list */
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    r = th_post("/v1/chat", a, body);
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM chat_sessions s JOIN users u ON u.id = s.user_id"
                     " WHERE u.name = 'alice' AND s.id = $1", sid ? sid : "", NULL), 1);
    r = th_post("/v1/chat", b, body);
    CHECK_ERROR(r, 404, "not_found");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE session_id = $1 AND user_id <> 1", sid ? sid : "", NULL), 0);
    free(sid); free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 4. rate limits and quotas hold under concurrency ---- */

/* Users 1 and 4097 (one slot in the old 4,096-slot limiter) both hit the
 * limit when their requests alternate. */
static void rate_limit_colliding_ids(void)
{
    const char *const env[] = {"AGENTQ_USER_RATE=1", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    th_exec("ALTER TABLE users ALTER COLUMN id RESTART WITH 4097", NULL);
    char *b = th_user("bob", 0);
    CHECK_INT(th_int("SELECT id FROM users WHERE name = 'alice'", NULL), 1);
    CHECK_INT(th_int("SELECT id FROM users WHERE name = 'bob'", NULL), 4097);
    int limited[2] = {0, 0};
    const char *toks[2] = {a, b};
    for (int i = 0; i < 40; i++) {   /* burst 2, 1 per second: 20 each in well under 18 s must meet 429s */
        th_resp r = th_get("/v1/jobs", toks[i % 2]);
        if (r.status == 429) limited[i % 2]++;
        else CHECK_STATUS(r, 200);
        th_resp_free(&r);
    }
    if (!limited[0] || !limited[1])
        th_fail(__FILE__, __LINE__, "429s: user 1 got %d, user 4097 got %d; want both limited", limited[0], limited[1]);
    free(a); free(b);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- the request rate across API processes ---- */

typedef struct {
    pthread_t tid;
    const char *const *bases;
    int nbases, first;
    const char *token;
    int count;
    int ok, limited, other;
} hammer;

/* count GETs of /v1/jobs, 20 ms apart (each on a new connection: paced so
 * that the run's closed sockets stay few), alternating between the servers;
 * counts 200s, 429s and anything else. */
static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = h->first; i < h->first + h->count; i++) {
        if (i > h->first) th_sleep_ms(20);
        char url[160];
        snprintf(url, sizeof url, "%s/v1/jobs?limit=1", h->bases[i % h->nbases]);
        th_resp r = th_get(url, h->token);
        if (r.status == 200) h->ok++;
        else if (r.status == 429) h->limited++;
        else h->other++;
        th_resp_free(&r);
    }
    return NULL;
}

/* threads x count requests (hammer_main); returns the 200s, *limited the
 * 429s, *secs the time taken (start of the first to end of the last). */
static int hammer_servers(const char *const *bases, int nbases, const char *tok, int threads, int count,
                          int *limited, double *secs)
{
    hammer h[16];
    uint64_t t0 = aq_now_mono_ms();
    for (int i = 0; i < threads; i++) {
        h[i] = (hammer){.bases = bases, .nbases = nbases, .first = i, .token = tok, .count = count};
        pthread_create(&h[i].tid, NULL, hammer_main, &h[i]);
    }
    int ok = 0, other = 0;
    *limited = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(h[i].tid, NULL);
        ok += h[i].ok;
        *limited += h[i].limited;
        other += h[i].other;
    }
    *secs = (double)(aq_now_mono_ms() - t0) / 1000.0;
    CHECK_INT(other, 0);
    return ok;
}

/* AGENTQ_USER_RATE=20 (burst 40) with two API processes (the default 100 ms
 * flush): one user sending 1,200 requests to both at 400 a second (some 3 s)
 * is admitted at most what one
 * process allows (burst + rate x T) plus the stated overshoot for two
 * processes, (2 - 1) x (burst + rate x (flush interval + round trip)) --
 * taken generously as 1 s -- where before they admitted twice what one
 * process allows. A second user is not affected. */
static void rate_shared_across_processes(void)
{
    const char *const env[] = {"AGENTQ_USER_RATE=20", NULL};
    pid_t api1 = th_api(env);
    int port1 = th_api_port();
    pid_t api2 = th_api(env);
    char base1[64], base2[64];
    snprintf(base1, sizeof base1, "http://127.0.0.1:%d", port1);
    snprintf(base2, sizeof base2, "http://127.0.0.1:%d", th_api_port());
    const char *const bases[] = {base1, base2};
    char *a = th_user("alice", 0);
    char *b = th_user("bob", 0);
    double rate = 20, burst = 40, secs = 0;
    int limited = 0;
    int ok = hammer_servers(bases, 2, a, 8, 150, &limited, &secs);
    double single = burst + rate * secs, bound = single + (burst + rate * 1.0);
    printf("    alice: %d admitted, %d refused in %.2f s (one process allows %.0f, bound %.0f)\n",
           ok, limited, secs, single, bound);
    if (ok > bound)
        th_fail(__FILE__, __LINE__, "admitted %d > %.0f (one process allows %.0f in %.2f s)", ok, bound, single, secs);
    if (ok < burst)
        th_fail(__FILE__, __LINE__, "admitted %d < the burst %.0f", ok, burst);
    CHECK(limited > 0);
    /* alice is now refused by both processes; bob's burst is all his own */
    for (int i = 0; i < 20; i++) {
        char url[160];
        snprintf(url, sizeof url, "%s/v1/jobs?limit=1", bases[i % 2]);
        th_resp r = th_get(url, b);
        CHECK_STATUS(r, 200);
        th_resp_free(&r);
    }
    CHECK(th_int("SELECT count(*) FROM api_rate_buckets WHERE user_id = (SELECT id FROM users WHERE name = 'alice')",
                 NULL) == 1);
    free(a); free(b);
    CHECK_INT(th_stop(api2, SIGTERM, 15000), 0);
    CHECK_INT(th_stop(api1, SIGTERM, 15000), 0);
}

/* The shared bucket in SQL: a take spends from a full bucket (a missing row),
 * goes into debt, refills with time up to the burst; prune deletes only
 * buckets that are full again. */
static void rate_bucket_sql(void)
{
    const char *take = "SELECT round(tokens)::bigint FROM aq_rate_take('{7}', $1::bigint[], 10, 20)";
    CHECK_INT(th_int(take, "{3}", NULL), 17);
    CHECK_INT(th_int(take, "{30}", NULL), -13);
    CHECK_INT(th_int("SELECT aq_rate_prune(10, 20)", NULL), 0);
    th_exec("UPDATE api_rate_buckets SET updated_at = updated_at - interval '2 seconds'", NULL);
    CHECK_INT(th_int(take, "{0}", NULL), 7);   /* -13 + 2 s x 10 */
    th_exec("UPDATE api_rate_buckets SET updated_at = updated_at - interval '60 seconds'", NULL);
    CHECK_INT(th_int(take, "{1}", NULL), 19);   /* refilled to the burst, never beyond */
    CHECK_INT(th_int("SELECT aq_rate_prune(10, 20)", NULL), 0);
    th_exec("UPDATE api_rate_buckets SET updated_at = updated_at - interval '1 second'", NULL);
    CHECK_INT(th_int("SELECT aq_rate_prune(10, 20)", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM api_rate_buckets", NULL), 0);
}

/* With the database down, each process still admits a user up to its local
 * limit (burst + rate x T): neither everyone refused nor anyone unbounded. */
static void rate_local_when_database_down(void)
{
    const char *const env[] = {"AGENTQ_USER_RATE=10", "AGENTQ_API_THREADS=1", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    th_resp r = th_get("/v1/jobs", a);   /* the token is now cached (10 s): no query to authenticate */
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_STOP"), 0);
    uint64_t end = aq_now_mono_ms() + 10000;
    long st = 0;
    while (aq_now_mono_ms() < end && st != 503) {
        r = th_get("/readyz", NULL);
        st = r.status;
        th_resp_free(&r);
        if (st != 503) th_sleep_ms(20);
    }
    CHECK_INT(st, 503);
    th_sleep_ms(1200);   /* the shared level is stale by now; the local bucket is full again */
    uint64_t t0 = aq_now_mono_ms();
    int admitted = 0, refused = 0;
    for (int i = 0; i < 60; i++) {   /* admitted ones find no database: 503 */
        r = th_get("/v1/jobs", a);
        if (r.status == 429) refused++;
        else if (r.status == 503) admitted++;
        else CHECK_STATUS(r, 503);
        th_resp_free(&r);
    }
    double secs = (double)(aq_now_mono_ms() - t0) / 1000.0;
    printf("    alice: %d admitted, %d refused in %.2f s with the database down\n", admitted, refused, secs);
    if (admitted < 20 || admitted > 20 + 10 * secs + 1)
        th_fail(__FILE__, __LINE__, "admitted %d, want the local limit: 20 + 10 x %.2f s", admitted, secs);
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_START"), 0);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* n concurrent POSTs of body to path, spread over the given servers' URLs;
 * returns how many got want. */
static int concurrent_posts(int n, const char *const *bases, int nbases, const char *path, const char *tok,
                            const char *body, long want)
{
    bg *reqs = calloc((size_t)n, sizeof *reqs);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        snprintf(reqs[i].path, sizeof reqs[i].path, "%s%s", bases[i % nbases], path);
        reqs[i].token = tok;
        reqs[i].body = body;
        reqs[i].start = &go;
        pthread_create(&reqs[i].tid, NULL, bg_main, &reqs[i]);
    }
    int got = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(reqs[i].tid, NULL);
        if (reqs[i].r.status == want) got++;
        else if (reqs[i].r.status != 429)
            th_fail(__FILE__, __LINE__, "request %d: status %ld: %.300s", i, reqs[i].r.status, reqs[i].r.body);
        th_resp_free(&reqs[i].r);
    }
    pthread_barrier_destroy(&go);
    free(reqs);
    return got;
}

/* Quota 20: 30 concurrent chats over two API processes of two threads each
 * store exactly 20, three rounds running; so do 30 plain jobs (no session,
 * no key: the API's other batch statement). */
static void queue_quota_exact(void)
{
    const char *const env[] = {"AGENTQ_USER_QUEUE_QUOTA=20", "AGENTQ_USER_RATE=100000", "AGENTQ_API_QUEUES=default",
                               NULL};
    pid_t api1 = th_api(env);
    int port1 = th_api_port();
    pid_t api2 = th_api(env);
    char base1[64], base2[64];
    snprintf(base1, sizeof base1, "http://127.0.0.1:%d", port1);
    snprintf(base2, sizeof base2, "http://127.0.0.1:%d", th_api_port());
    const char *const bases[] = {base1, base2};
    char *a = th_user("alice", 0);
    for (int round = 0; round < 3; round++) {
        th_exec("DELETE FROM jobs", NULL);
        int ok = concurrent_posts(30, bases, 2, "/v1/chat", a, "{\"message\":\"hi\"}", 202);
        CHECK_INT(ok, 20);
        CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'queued'", NULL), 20);
    }
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('noop', true, 25, 60)"
            " ON CONFLICT DO NOTHING", NULL);
    th_exec("DELETE FROM jobs", NULL);
    int ok = concurrent_posts(30, bases, 2, "/v1/jobs", a, "{\"type\":\"noop\"}", 202);
    CHECK_INT(ok, 20);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE status = 'queued' AND job_type = 'noop'", NULL), 20);
    free(a);
    CHECK_INT(th_stop(api2, SIGTERM, 15000), 0);
    CHECK_INT(th_stop(api1, SIGTERM, 15000), 0);
}

/* 140 concurrent schedule creations (two processes) store exactly 100. */
static void schedule_limit_exact(void)
{
    pid_t api1 = th_api(NO_RATE);
    int port1 = th_api_port();
    pid_t api2 = th_api(NO_RATE);
    char base1[64], base2[64];
    snprintf(base1, sizeof base1, "http://127.0.0.1:%d", port1);
    snprintf(base2, sizeof base2, "http://127.0.0.1:%d", th_api_port());
    const char *const bases[] = {base1, base2};
    char *a = th_user("alice", 0);
    int ok = concurrent_posts(140, bases, 2, "/v1/schedules", a,
                              "{\"name\":\"n\",\"cron\":\"0 9 * * *\",\"prompt\":\"p\"}", 201);
    CHECK_INT(ok, 100);
    CHECK_INT(th_int("SELECT count(*) FROM agent_schedules", NULL), 100);
    free(a);
    CHECK_INT(th_stop(api2, SIGTERM, 15000), 0);
    CHECK_INT(th_stop(api1, SIGTERM, 15000), 0);
}

/* ---- 5. bodies ---- */

static char *post_raw_body(const char *tok, const char *body, size_t len, int *status)
{
    char head[1024];
    int hl = snprintf(head, sizeof head, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", tok, len);
    char *req = malloc((size_t)hl + len);
    memcpy(req, head, (size_t)hl);
    memcpy(req + hl, body, len);
    int closed;
    char *resp = raw_exchange(req, (size_t)hl + len, &closed);
    free(req);
    *status = raw_status(resp);
    return resp;
}

/* Raw control bytes in JSON strings are 400 (never a cut-short text); the
 * text \\u0000 is taken as is; a real \u0000 escape is 422. */
static void json_control_bytes(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
#define RAW(s) {s, sizeof s - 1}
    static const struct { const char *body; size_t len; } raw[] = {
        RAW("{\"message\":\"ab\0cd\"}"),
        RAW("{\"message\":\"ab\x01" "cd\"}"),
        RAW("{\"message\":\"tab\there\"}"),
        RAW("{\"message\":\"line\nbreak\"}"),
        RAW("{\"message\":\"esc\x1b[0m\"}"),
        RAW("{\x01\"message\":\"hi\"}"),
        RAW("{\"message\":\"hi\"}\0"),
    };
#undef RAW
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int st;
        char *resp = post_raw_body(a, raw[i].body, raw[i].len, &st);
        if (st != 400) th_fail(__FILE__, __LINE__, "case %zu: status %d: %.300s", i, st, resp);
        CHECK_CONTAINS(resp, "\"bad_json\"");
        free(resp);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);
    /* an escaped backslash, then u0000: six characters of text */
    th_resp r = th_post("/v1/chat", a, "{\"message\":\"see \\\\u0000 here\"}");
    CHECK_STATUS(r, 202);
    long long id = body_num(&r, "job_id");
    th_resp_free(&r);
    char *stored = th_str("SELECT input->>'message' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(stored, "see \\u0000 here");
    free(stored);
    r = th_post("/v1/chat", a, "{\"message\":\"\\\\\\\\u0000\"}");   /* \\\\u0000: two backslashes, then text */
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    /* escapes of other control characters are fine */
    r = th_post("/v1/chat", a, "{\"message\":\"a\\u0001b\\nc\\u001f\"}");
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    /* a real NUL escape: 422, wherever it is */
    const char *const nul[] = {"{\"message\":\"a\\u0000b\"}", "{\"message\":\"\\\\\\u0000\"}",
                               "{\"message\":\"hi\",\"x\":\"\\u0000\"}", NULL};
    for (int i = 0; nul[i]; i++) {
        r = th_post("/v1/chat", a, nul[i]);
        if (r.status != 422) th_fail(__FILE__, __LINE__, "case %d: %s", i, nul[i]);
        CHECK_ERROR(r, 422, "invalid_argument");
        CHECK_CONTAINS(r.body, "NUL");
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 3);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* A repeated key, at any depth, is 400: cJSON would keep the first value and
 * jsonb or a proxy the last (found by the fault campaign's malformed burst). */
static void json_duplicate_keys_refused(void)
{
    const char *const env[] = {"AGENTQ_USER_RATE=100000", "AGENTQ_API_QUEUES=default", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('noop', true, 25, 60)", NULL);
    static const struct { const char *path, *body; } bad[] = {
        {"/v1/chat", "{\"message\":\"a\",\"message\":\"b\"}"},
        {"/v1/chat", "{\"message\":\"a\",\"mess\\u0061ge\":\"b\"}"},   /* the same key once unescaped */
        {"/v1/jobs", "{\"type\":\"noop\",\"input\":{\"k\":1,\"k\":2}}"},
        {"/v1/jobs", "{\"type\":\"noop\",\"type\":\"noop\"}"},
        {"/v1/chat", "{\"message\":\"\\ud800\"}"},                           /* an unpaired surrogate */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        th_resp r = th_post(bad[i].path, a, bad[i].body);
        if (r.status != 400) th_fail(__FILE__, __LINE__, "case %zu (%s): status %ld: %.300s", i, bad[i].body, r.status, r.body);
        CHECK_CONTAINS(r.body, "\"bad_json\"");
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);
    /* the same name in sibling objects is fine */
    th_resp r = th_post("/v1/jobs", a, "{\"type\":\"noop\",\"input\":{\"a\":{\"k\":1},\"b\":{\"k\":2}}}");
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 6. framing, header size, HEAD ---- */

static void conflicting_content_length(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
    char req[2048];
    int closed;
    /* the smuggling shape: 5 bytes by one header, 46 by the other */
    int n = snprintf(req, sizeof req, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 20\r\nContent-Length: 46\r\n\r\n{\"message\":\"hi!!\"}"
                     "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", a);
    char *resp = raw_exchange(req, (size_t)n, &closed);
    CHECK_INT(raw_status(resp), 400);
    CHECK_CONTAINS(resp, "\"bad_request\"");
    CHECK(strstr(resp, "\"status\":\"ok\"") == NULL);   /* the tail was not run as a request */
    CHECK(closed);
    free(resp);
    /* Content-Length and Transfer-Encoding together */
    n = snprintf(req, sizeof req, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n12\r\n{\"message\":\"hi!!\"}\r\n0\r\n\r\n", a);
    resp = raw_exchange(req, (size_t)n, &closed);
    CHECK_INT(raw_status(resp), 400);
    CHECK_CONTAINS(resp, "\"bad_request\"");
    free(resp);
    /* the same length twice is one length */
    n = snprintf(req, sizeof req, "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 18\r\ncontent-length: 18\r\nConnection: close\r\n\r\n{\"message\":\"hi!!\"}", a);
    resp = raw_exchange(req, (size_t)n, &closed);
    CHECK_INT(raw_status(resp), 202);
    free(resp);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 1);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* Headers over 32 KiB in total: 431; 20 KiB pass. */
static void headers_capped(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
    static char lines[40][10100];
    const char *hdrs[41];
    for (int i = 0; i < 40; i++) {
        int k = snprintf(lines[i], sizeof lines[i], "X-Filler-%d: ", i);
        memset(lines[i] + k, 'v', 10000);
        lines[i][k + 10000] = '\0';
        hdrs[i] = lines[i];
    }
    hdrs[40] = NULL;
    th_resp r = th_http("GET", "/v1/jobs", a, NULL, hdrs, NULL);   /* 400 KB */
    CHECK_ERROR(r, 431, "headers_too_large");
    th_resp_free(&r);
    hdrs[2] = NULL;   /* 20 KB */
    r = th_http("GET", "/v1/jobs", a, NULL, hdrs, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    r = th_get("/healthz", NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* "Content-Length: N" of a raw response, or -1. */
static long content_length(const char *resp)
{
    const char *p = strcasestr(resp, "\r\ncontent-length:");
    return p ? atol(p + 17) : -1;
}

/* HEAD answers like GET, without the body; HEAD where only POST goes is 405. */
static void head_like_get(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
    th_resp r = th_post("/v1/chat", a, "{\"message\":\"hi\"}");
    long long id = body_num(&r, "job_id");
    th_resp_free(&r);
    const char *paths[] = {"/healthz", "/v1/jobs", NULL, NULL};
    char jp[64];
    snprintf(jp, sizeof jp, "/v1/jobs/%lld", id);
    paths[2] = jp;
    for (int i = 0; paths[i]; i++) {
        th_resp g = th_get(paths[i], a);
        CHECK_STATUS(g, 200);
        char req[1024];
        int n = snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         "Connection: close\r\n\r\n", paths[i], a);
        int closed;
        char *resp = raw_exchange(req, (size_t)n, &closed);
        if (raw_status(resp) != 200) th_fail(__FILE__, __LINE__, "HEAD %s: %.300s", paths[i], resp);
        CHECK_INT(content_length(resp), (long)g.len);
        const char *end = strstr(resp, "\r\n\r\n");
        CHECK(end && end[4] == '\0');   /* no body */
        CHECK_CONTAINS(resp, "application/json");
        free(resp);
        th_resp_free(&g);
    }
    char req[1024];
    int n = snprintf(req, sizeof req, "HEAD /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n", a);
    int closed;
    char *resp = raw_exchange(req, (size_t)n, &closed);
    CHECK_INT(raw_status(resp), 405);
    CHECK(strcasestr(resp, "\r\nallow: POST\r\n") != NULL);
    free(resp);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ---- 8. queues ---- */

/* POST /v1/jobs accepts only queues a connected worker serves (default) or
 * those AGENTQ_API_QUEUES lists. */
static void unserved_queue_refused(void)
{
    pid_t api = th_api(NO_RATE);
    char *a = th_user("alice", 0);
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('noop', true, 25, 60)", NULL);
    /* no worker connected: nothing would ever run it */
    th_resp r = th_post("/v1/jobs", a, "{\"type\":\"noop\"}");
    CHECK_ERROR(r, 422, "invalid_argument");
    CHECK_CONTAINS(r.body, "queue");
    th_resp_free(&r);
    /* a real worker publishes its queues */
    const char *const args[] = {"--queues", "default,mail", NULL};
    pid_t w = th_worker(args, NULL);
    th_wait_int(1, 10000, "SELECT count(*) FROM workers", NULL);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\",\"queue\":\"mail\"}");
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\",\"queue\":\"nobody-serves-this\"}");
    CHECK_ERROR(r, 422, "invalid_argument");
    th_resp_free(&r);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);

    /* a configured list, workers or not */
    th_exec("DELETE FROM workers", NULL);
    const char *const env[] = {"AGENTQ_API_QUEUES=reports, default", "AGENTQ_USER_RATE=100000", NULL};
    api = th_api(env);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\",\"queue\":\"reports\"}");
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\"}");
    CHECK_STATUS(r, 202);
    th_resp_free(&r);
    r = th_post("/v1/jobs", a, "{\"type\":\"noop\",\"queue\":\"mail\"}");
    CHECK_ERROR(r, 422, "invalid_argument");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE queue IN ('nobody-serves-this')", NULL), 0);
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* index scans of jobs, and rows read by its sequential scans, as
 * pg_stat_user_tables has them so far */
static void jobs_reads(long long *idx, long long *seq_rows)
{
    th_exec("SELECT pg_stat_clear_snapshot()", NULL);
    *idx = th_int("SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'jobs'", NULL);
    *seq_rows = th_int("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'jobs'", NULL);
}

/* The API plans each statement for the table of the moment. Its session
 * starts on an empty jobs table, where reading the whole table is the
 * cheapest plan for anything; ten batches later the table holds 100,000
 * rows, and each batch's quota count (aq_queued_locked, one scan of jobs per
 * batch) must find the user's queued rows through jobs_user_queued. Without
 * plan_cache_mode = force_custom_plan the count's generic plan, made after
 * five batches on the empty table, read all 100,000 rows per batch.
 * Autovacuum is off meanwhile: its ANALYZE would replan, hiding the fault. */
static void plans_follow_the_table(void)
{
    th_exec("DELETE FROM jobs", NULL);
    th_exec("ALTER TABLE jobs SET (autovacuum_enabled = false)", NULL);
    th_exec("VACUUM ANALYZE jobs", NULL);
    th_exec("SELECT pg_stat_force_next_flush()", NULL);   /* the DELETE's rows read, counted now */
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('noop', true, 25, 60)"
            " ON CONFLICT DO NOTHING", NULL);
    const char *const env[] = {"AGENTQ_API_THREADS=1", "AGENTQ_USER_QUEUE_QUOTA=1000", "AGENTQ_USER_RATE=100000",
                               "AGENTQ_API_QUEUES=default", NULL};
    pid_t api = th_api(env);
    char *a = th_user("alice", 0);
    for (int i = 0; i < 10; i++) {   /* one request at a time: ten batches on the one connection */
        th_resp r = th_post("/v1/jobs", a, "{\"type\":\"noop\"}");
        CHECK_STATUS(r, 202);
        th_resp_free(&r);
    }
    th_exec("INSERT INTO jobs (job_type, status, user_id, finished_at)"
            " SELECT 'noop', 'succeeded', (SELECT id FROM users WHERE name = 'alice'), now()"
            " FROM generate_series(1, 100000)", NULL);
    long long idx0, rows0, idx1, rows1;
    jobs_reads(&idx0, &rows0);
    for (int i = 0; i < 20; i++) {
        th_resp r = th_post("/v1/jobs", a, "{\"type\":\"noop\"}");
        CHECK_STATUS(r, 202);
        th_resp_free(&r);
    }
    /* the API's backend reports its counters within seconds of going idle:
     * wait until its 20 counts show, as index scans or as whole-table reads */
    uint64_t until = aq_now_mono_ms() + 20000;
    do {
        aq_sleep_ms(100);
        jobs_reads(&idx1, &rows1);
    } while ((idx1 - idx0) + (rows1 - rows0) / 100000 < 20 && aq_now_mono_ms() < until);
    th_exec("ALTER TABLE jobs RESET (autovacuum_enabled)", NULL);
    CHECK(idx1 - idx0 >= 20);
    CHECK(rows1 - rows0 < 100000);   /* not one whole read of the table */
    free(a);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

const th_test th_api_limits_tests[] = {
    {"api_second_process_refused", second_process_refused, 40, 1},
    {"api_idle_sockets_capped", idle_sockets_capped, 60, 1},
    {"api_long_polls_capped_per_user", long_polls_capped_per_user, 60, 1},
    {"api_session_claim_race", session_claim_race, 90, 1},
    {"api_session_unrun_not_borrowed", session_unrun_not_borrowed, 40, 1},
    {"api_rate_limit_colliding_ids", rate_limit_colliding_ids, 40, 1},
    {"api_rate_shared_across_processes", rate_shared_across_processes, 60, 1},
    {"api_rate_bucket_sql", rate_bucket_sql, 30, 1},
    {"api_rate_local_when_database_down", rate_local_when_database_down, 60, 1},
    {"api_queue_quota_exact", queue_quota_exact, 60, 1},
    {"api_schedule_limit_exact", schedule_limit_exact, 60, 1},
    {"api_json_control_bytes", json_control_bytes, 40, 1},
    {"api_json_duplicate_keys_refused", json_duplicate_keys_refused, 40, 1},
    {"api_conflicting_content_length", conflicting_content_length, 40, 1},
    {"api_headers_capped", headers_capped, 40, 1},
    {"api_head_like_get", head_like_get, 40, 1},
    {"api_unserved_queue_refused", unserved_queue_refused, 60, 1},
    {"api_plans_follow_the_table", plans_follow_the_table, 60, 1},
    {NULL, NULL, 0, 0},
};
