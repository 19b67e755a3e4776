/* t_fake.c — tests of bin/agentq-fake, the scripted HTTP server that stands
 * in for the LLM API and Telegram in integration tests. Driven through
 * libcurl (th_http, or a reused easy handle for keep-alive) and raw sockets
 * (malformed input, pipelining, Expect: 100-continue): steps in order and the
 * request log, JSON and string bodies, headers, delay_ms, repeat, match, the
 * exhausted script, appending steps to a running fake, raw replies, caps,
 * many clients at once, and a clean exit on SIGTERM; and the --llm-delay-ms
 * mode: replies the project's LLM client reads, the API's errors, and a
 * thousand connections waiting at once. No database. */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_time.h"
#include "llm.h"
#include <cJSON.h>
#include <curl/curl.h>
#include <arpa/inet.h>
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

static char url[128];

/* url + path, in one of four rotating buffers */
static const char *at(const char *path)
{
    static char buf[4][1024];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 1024, "%s%s", url, path);
    return b;
}

#define CHECK_STATUS(r, want) do { const th_resp *r_ = &(r); long w_ = (want); if (r_->status != w_) \
    th_fail(__FILE__, __LINE__, "%s: status %ld, want %ld; body: %.400s", #r, r_->status, w_, r_->body); \
    } while (0)

/* GET path; check the status and the body. */
#define CHECK_GET(path, status, want) check_get(__LINE__, path, status, want)

static void check_get(int line, const char *path, long status, const char *want)
{
    th_resp r = th_http("GET", at(path), NULL, NULL, NULL, NULL);
    if (r.status != status || strcmp(r.body, want))
        th_fail(__FILE__, line, "GET %s: got %ld \"%.300s\", want %ld \"%s\"", path, r.status, r.body,
                status, want);
    th_resp_free(&r);
}

/* Follow "a.b.0.c" through objects and arrays. */
static const cJSON *jpath(const cJSON *root, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = root;
    for (char *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(k))
                                 : cJSON_GetObjectItemCaseSensitive(cur, k);
    return cur;
}

static long long jnum(const cJSON *root, const char *path)
{
    const cJSON *v = jpath(root, path);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -999;
}

static const char *jstr(const cJSON *root, const char *path)
{
    const cJSON *v = jpath(root, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The steps the logged requests got, as "0,0,1,-1". */
static char *steps_served(void)
{
    cJSON *log = th_fake_requests();
    char *s = aq_strdup("");
    const cJSON *o;
    cJSON_ArrayForEach(o, log) {
        char *t = aq_sprintf("%s%s%lld", s, *s ? "," : "", jnum(o, "step"));
        free(s);
        s = t;
    }
    cJSON_Delete(log);
    return s;
}

static void stop_fake(pid_t pid)
{
    CHECK_INT(th_stop(pid, SIGTERM, 5000), 0);
}

/* ---- raw sockets ---- */

static int raw_connect(void)
{
    int port = atoi(strrchr(url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa)) { close(fd); fd = -1; }
    if (fd < 0) th_fail(__FILE__, __LINE__, "cannot connect to %s", url);
    return fd;
}

static int raw_write(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Read into buf until it holds want (returns 1), or the peer closes (sets
 * *closed, returns 0), or timeout_ms passes (0). */
static int raw_read(int fd, char *buf, size_t size, size_t *n, const char *want, int timeout_ms,
                    int *closed)
{
    uint64_t end = aq_now_mono_ms() + (uint64_t)timeout_ms;
    buf[*n] = '\0';
    while (*n < size - 1) {
        if (want && strstr(buf, want)) return 1;
        uint64_t now = aq_now_mono_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (now >= end || poll(&p, 1, (int)(end - now)) <= 0) return 0;
        ssize_t k = recv(fd, buf + *n, size - 1 - *n, 0);
        if (k <= 0) { if (closed) *closed = 1; return want && strstr(buf, want); }
        *n += (size_t)k;
        buf[*n] = '\0';
    }
    return want && strstr(buf, want);
}

/* Send req on a new connection; the whole reply up to the server's close
 * (within 5 s) into buf. Returns 1 if the server closed the connection. */
static int raw_exchange(const char *req, size_t len, char *buf, size_t size)
{
    int fd = raw_connect(), closed = 0;
    size_t n = 0;
    buf[0] = '\0';
    if (fd < 0) return 0;
    if (raw_write(fd, req, len) == 0) raw_read(fd, buf, size, &n, NULL, 5000, &closed);
    close(fd);
    return closed;
}

/* ---- tests ---- */

static void serves_steps_in_order_and_logs(void)
{
    pid_t pid = th_fake("[{\"body\": {\"id\": \"chatcmpl-1\", \"choices\": []}},"
                        " {\"status\": 201, \"body\": \"second\"}]", url, sizeof url);
    const char *const hdr[] = {"X-Trace: abc", NULL};
    const char *sent = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    th_resp r = th_http("POST", at("/v1/chat/completions"), "sk-test", sent, hdr, NULL);
    CHECK_STATUS(r, 200);
    CHECK_STR(r.body, "{\"id\":\"chatcmpl-1\",\"choices\":[]}");
    th_resp_free(&r);
    CHECK_GET("/second?x=1&y=%20", 201, "second");

    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 2);
    CHECK_INT(jnum(log, "0.n"), 1);
    CHECK_STR(jstr(log, "0.method"), "POST");
    CHECK_STR(jstr(log, "0.path"), "/v1/chat/completions");
    CHECK_STR(jstr(log, "0.headers.authorization"), "Bearer sk-test");
    CHECK_STR(jstr(log, "0.headers.content-type"), "application/json");
    CHECK_STR(jstr(log, "0.headers.x-trace"), "abc");
    CHECK_STR(jstr(log, "0.body.model"), "m");
    CHECK_STR(jstr(log, "0.body.messages.0.role"), "user");
    CHECK_STR(jstr(log, "0.body.messages.0.content"), "hi");
    CHECK_INT(jnum(log, "0.body_len"), (long long)strlen(sent));
    CHECK_INT(jnum(log, "0.step"), 0);
    CHECK(jpath(log, "0.error") == NULL);
    CHECK_INT(jnum(log, "1.n"), 2);
    CHECK_STR(jstr(log, "1.method"), "GET");
    CHECK_STR(jstr(log, "1.path"), "/second?x=1&y=%20");
    CHECK_STR(jstr(log, "1.body"), "");
    CHECK_INT(jnum(log, "1.body_len"), 0);
    CHECK_INT(jnum(log, "1.step"), 1);
    CHECK(jnum(log, "1.ms") >= jnum(log, "0.ms"));
    cJSON_Delete(log);
    stop_fake(pid);
}

static void json_and_string_bodies(void)
{
    pid_t pid = th_fake("[{\"body\": {\"a\": [1, 2], \"b\": null}},"
                        " {\"body\": \"plain text\"},"
                        " {\"body\": \"<x/>\", \"headers\": {\"Content-Type\": \"application/xml\"}},"
                        " {\"body\": [true, 1.5]},"
                        " {\"status\": 204},"
                        " {\"body\": \"\"}]", url, sizeof url);
    th_resp r = th_http("GET", at("/1"), NULL, NULL, NULL, "Content-Type");
    CHECK_STR(r.body, "{\"a\":[1,2],\"b\":null}");
    CHECK_STR(r.header, "application/json");
    th_resp_free(&r);
    r = th_http("POST", at("/2"), NULL, "not json {", NULL, "Content-Type");
    CHECK_STR(r.body, "plain text");
    CHECK_STR(r.header, "text/plain");
    th_resp_free(&r);
    r = th_http("POST", at("/3"), NULL, "\"a JSON string\"", NULL, "Content-Type");
    CHECK_STR(r.body, "<x/>");
    CHECK_STR(r.header, "application/xml");
    th_resp_free(&r);
    CHECK_GET("/4", 200, "[true,1.5]");
    CHECK_GET("/5", 204, "");
    CHECK_GET("/6", 200, "");

    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 6);
    CHECK_STR(jstr(log, "1.body"), "not json {");           /* not JSON: logged as a string */
    CHECK_INT(jnum(log, "1.body_len"), 10);
    CHECK_STR(jstr(log, "2.body"), "a JSON string");        /* JSON: logged as its value */
    cJSON_Delete(log);
    stop_fake(pid);
}

static void headers_come_through(void)
{
    pid_t pid = th_fake("[{\"status\": 429, \"repeat\": 2,"
                        "  \"headers\": {\"Retry-After\": \"1\", \"X-Num\": 7},"
                        "  \"body\": {\"error\": {\"message\": \"rate limited\"}}},"
                        " {\"headers\": {\"Content-Length\": \"2\"}, \"body\": \"ok\"}]",
                        url, sizeof url);
    th_resp r = th_http("GET", at("/"), NULL, NULL, NULL, "Retry-After");
    CHECK_STATUS(r, 429);
    CHECK_STR(r.header, "1");
    CHECK_STR(r.body, "{\"error\":{\"message\":\"rate limited\"}}");
    th_resp_free(&r);
    r = th_http("GET", at("/"), NULL, NULL, NULL, "x-num");
    CHECK_STATUS(r, 429);
    CHECK_STR(r.header, "7");
    th_resp_free(&r);
    r = th_http("GET", at("/"), NULL, NULL, NULL, "content-length");
    CHECK_STATUS(r, 200);
    CHECK_STR(r.header, "2");                                /* given once, not twice */
    CHECK_STR(r.body, "ok");
    th_resp_free(&r);
    stop_fake(pid);
}

static void delay_ms(void)
{
    pid_t pid = th_fake("[{\"match\": \"/slow\", \"delay_ms\": 800, \"body\": \"slow\"},"
                        " {\"match\": \"/fast\", \"body\": \"fast\"},"
                        " {\"delay_ms\": 300, \"body\": \"late\"}]", url, sizeof url);
    /* a delayed answer holds up only its own connection */
    int fd = raw_connect();
    static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    uint64_t t0 = aq_now_mono_ms();
    CHECK(fd >= 0 && raw_write(fd, req, sizeof req - 1) == 0);
    th_fake_wait(1, 5000);
    th_resp r = th_http("GET", at("/fast"), NULL, NULL, NULL, NULL);
    CHECK_STR(r.body, "fast");
    CHECK(r.secs < 0.5);
    th_resp_free(&r);
    char buf[1024];
    size_t n = 0;
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\nslow", 5000, NULL));
    uint64_t waited = aq_now_mono_ms() - t0;
    if (waited < 790)
        th_fail(__FILE__, __LINE__, "delayed answer came after %llu ms", (unsigned long long)waited);
    close(fd);
    r = th_http("GET", at("/other"), NULL, NULL, NULL, NULL);
    CHECK_STR(r.body, "late");
    if (r.secs < 0.29) th_fail(__FILE__, __LINE__, "delay_ms 300 answered in %.3f s", r.secs);
    th_resp_free(&r);
    stop_fake(pid);
}

static void repeat(void)
{
    pid_t pid = th_fake("[{\"body\": \"a\", \"repeat\": 3}, {\"body\": \"b\"},"
                        " {\"body\": \"never\", \"repeat\": 0},"
                        " {\"status\": 503, \"body\": \"down\", \"repeat\": -1}]", url, sizeof url);
    for (int i = 0; i < 3; i++) CHECK_GET("/", 200, "a");
    CHECK_GET("/", 200, "b");
    for (int i = 0; i < 20; i++) CHECK_GET("/", 503, "down");
    char *s = steps_served();
    CHECK_STR(s, "0,0,0,1,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3");
    free(s);
    stop_fake(pid);
}

static void match(void)
{
    pid_t pid = th_fake("[{\"match\": \"/getUpdates\", \"body\": \"u1\"},"
                        " {\"match\": \"/sendMessage\", \"body\": \"s1\"},"
                        " {\"match\": \"/getUpdates\", \"body\": \"u2\"},"
                        " {\"body\": \"any\"},"
                        " {\"match\": \"offset=9\", \"body\": \"u9\", \"repeat\": -1}]",
                        url, sizeof url);
    CHECK_GET("/bot123:abc/sendMessage", 200, "s1");
    CHECK_GET("/bot123:abc/getUpdates", 200, "u1");
    CHECK_GET("/bot123:abc/getUpdates?offset=5", 200, "u2");
    CHECK_GET("/bot123:abc/sendMessage", 200, "any");
    CHECK_GET("/bot123:abc/getUpdates?offset=9", 200, "u9");
    CHECK_GET("/bot123:abc/getUpdates?offset=9", 200, "u9");
    CHECK_GET("/bot123:abc/sendMessage", 500, "{\"error\":{\"message\":\"fake: script exhausted\"}}");
    char *s = steps_served();
    CHECK_STR(s, "1,0,2,3,4,4,-1");
    free(s);
    stop_fake(pid);
}

static void exhausted_500(void)
{
    pid_t pid = th_fake("[{\"body\": \"only\"}]", url, sizeof url);
    CHECK_GET("/", 200, "only");
    for (int i = 0; i < 3; i++)
        CHECK_GET("/v1/chat/completions", 500, "{\"error\":{\"message\":\"fake: script exhausted\"}}");
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 4);
    CHECK_INT(jnum(log, "3.step"), -1);
    CHECK_STR(jstr(log, "3.error"), "script exhausted");
    CHECK_STR(jstr(log, "3.path"), "/v1/chat/completions");
    cJSON_Delete(log);
    stop_fake(pid);
}

static void append_steps(void)
{
    pid_t pid = th_fake("[]", url, sizeof url);
    CHECK_GET("/", 500, "{\"error\":{\"message\":\"fake: script exhausted\"}}");
    th_fake_add("[{\"body\": \"one\"}, {\"body\": \"two\"}]");
    CHECK_GET("/", 200, "one");
    th_fake_add("{\"body\": \"three\", \"repeat\": 2}");   /* one step object */
    th_fake_add("[{\"body\": \"four\"}]");
    for (const char *w = "two\0three\0three\0four\0"; *w; w += strlen(w) + 1) CHECK_GET("/", 200, w);
    CHECK_GET("/", 500, "{\"error\":{\"message\":\"fake: script exhausted\"}}");
    char *s = steps_served();
    CHECK_STR(s, "-1,0,1,2,2,3,-1");
    free(s);
    stop_fake(pid);
}

typedef struct { char *p; size_t n; } sink;

static size_t to_sink(char *p, size_t size, size_t nmemb, void *arg)
{
    sink *s = arg;
    size_t n = size * nmemb;
    s->p = aq_realloc(s->p, s->n + n + 1);
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
    return n;
}

/* GET through a reused easy handle: body into *body (heap); returns the
 * status and sets *fresh to the number of new connections it made. */
static long reused_get(CURL *h, const char *u, char **body, long *fresh)
{
    sink s = {aq_strdup(""), 0};
    long status = 0;
    curl_easy_setopt(h, CURLOPT_URL, u);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, fresh);
    *body = s.p;
    return status;
}

static void keep_alive(void)
{
    pid_t pid = th_fake("[{\"body\": \"1\"}, {\"body\": \"2\"}, {\"body\": \"3\", \"close\": true},"
                        " {\"body\": \"4\"}, {\"body\": \"5\"}]", url, sizeof url);
    CURL *h = curl_easy_init();
    static const long want_fresh[] = {1, 0, 0, 1, 0};
    for (int i = 0; i < 5; i++) {
        char *body = NULL, want[8];
        long fresh = -1;
        CHECK_INT(reused_get(h, at("/k"), &body, &fresh), 200);
        snprintf(want, sizeof want, "%d", i + 1);
        CHECK_STR(body, want);
        if (fresh != want_fresh[i])
            th_fail(__FILE__, __LINE__, "request %d made %ld new connections", i + 1, fresh);
        free(body);
    }
    curl_easy_cleanup(h);
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 5);
    long long c1 = jnum(log, "0.conn"), c2 = jnum(log, "3.conn");
    CHECK_INT(jnum(log, "1.conn"), c1);
    CHECK_INT(jnum(log, "2.conn"), c1);
    CHECK(c2 != c1);
    CHECK_INT(jnum(log, "4.conn"), c2);
    cJSON_Delete(log);
    stop_fake(pid);
}

static void pipelined_and_http10(void)
{
    pid_t pid = th_fake("[{\"body\": \"p1\"}, {\"body\": \"p2\"}, {\"body\": \"p3\", \"repeat\": -1}]",
                        url, sizeof url);
    char buf[4096];
    /* two requests in one write, the second asks to close */
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 3\r\nConnection: close\r\n\r\nabc";
    CHECK(raw_exchange(two, sizeof two - 1, buf, sizeof buf));
    const char *second = strstr(buf, "p1HTTP/1.1 200");
    CHECK(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
    CHECK(second != NULL);
    if (second) CHECK_CONTAINS(second, "Connection: close\r\n\r\np2");
    /* HTTP/1.0 closes unless asked to keep alive */
    static const char ten[] = "GET /c HTTP/1.0\r\n\r\n";
    CHECK(raw_exchange(ten, sizeof ten - 1, buf, sizeof buf));
    CHECK_CONTAINS(buf, "Connection: close\r\n\r\np3");
    static const char ka[] = "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    int fd = raw_connect(), closed = 0;
    size_t n = 0;
    CHECK(fd >= 0 && raw_write(fd, ka, sizeof ka - 1) == 0);
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\np3", 5000, &closed));
    CHECK_CONTAINS(buf, "Connection: keep-alive\r\n");
    n = 0;
    CHECK(fd >= 0 && raw_write(fd, ka, sizeof ka - 1) == 0);   /* same connection, again */
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\np3", 5000, &closed));
    CHECK(!closed);
    close(fd);
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 5);
    CHECK_STR(jstr(log, "1.path"), "/b");
    CHECK_STR(jstr(log, "1.body"), "abc");
    CHECK_INT(jnum(log, "1.conn"), jnum(log, "0.conn"));
    CHECK_INT(jnum(log, "4.conn"), jnum(log, "3.conn"));
    cJSON_Delete(log);
    /* the body ends where Content-Length says, even when the bytes after it
     * would complete a JSON value; those bytes are the next (bad) request */
    static const char cut[] = "POST /cut HTTP/1.1\r\nContent-Length: 4\r\n\r\n{\"a\":1}\r\n\r\n";
    CHECK(raw_exchange(cut, sizeof cut - 1, buf, sizeof buf));
    CHECK(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
    CHECK_CONTAINS(buf, "p3HTTP/1.1 400 ");
    log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 7);
    CHECK_STR(jstr(log, "5.body"), "{\"a\"");
    CHECK_INT(jnum(log, "5.body_len"), 4);
    CHECK_STR(jstr(log, "6.error"), "bad request line");
    cJSON_Delete(log);
    stop_fake(pid);
}

static void malformed_400_keeps_serving(void)
{
    pid_t pid = th_fake("[{\"body\": \"fine\"}]", url, sizeof url);
#define J(lit) {lit, sizeof lit - 1}
    static const struct { const char *req; size_t len; } junk[] = {
        J("GARBAGE\r\n\r\n"),
        J("GET / HTTP/9.9\r\n\r\n"),
        J("GET  / HTTP/1.1\r\n\r\n"),
        J("G(T / HTTP/1.1\r\n\r\n"),
        J("GET /\x01 HTTP/1.1\r\n\r\n"),
        J("GET / HTTP/1.1\r\nNo colon here\r\n\r\n"),
        J("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        J("GET / HTTP/1.1\r\n folded: x\r\n\r\n"),
        J("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),
        J("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        J("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
        J("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        J("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        J("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY"),
        J("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),   /* a TLS hello */
        J("\0\0\0\0\r\n\r\n"),
    };
#undef J
    char buf[4096];
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        int closed = raw_exchange(junk[i].req, junk[i].len, buf, sizeof buf);
        if (strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) || !closed)
            th_fail(__FILE__, __LINE__, "junk %zu: %s, answered: %.200s", i,
                    closed ? "closed" : "left open", buf);
    }
    /* a transfer coding the fake does not know */
    static const char gz[] = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
    CHECK(raw_exchange(gz, sizeof gz - 1, buf, sizeof buf));
    CHECK(!strncmp(buf, "HTTP/1.1 501 ", 13));
    /* a client that sends half a request and leaves */
    int fd = raw_connect();
    CHECK(fd >= 0 && raw_write(fd, "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", 42) == 0);
    close(fd);
    CHECK_GET("/", 200, "fine");   /* no junk consumed the step */
    cJSON *log = th_fake_requests();
    int n = cJSON_GetArraySize(log);
    CHECK_INT(n, (int)(sizeof junk / sizeof junk[0]) + 2);
    CHECK_STR(jstr(log, "0.error"), "bad request line");
    CHECK_INT(jnum(log, "0.step"), -1);
    CHECK(jpath(log, "0.body") == NULL);
    CHECK_INT(jnum(cJSON_GetArrayItem(log, n - 1), "step"), 0);
    cJSON_Delete(log);
    CHECK(th_alive(pid));
    stop_fake(pid);
}

static void oversized_413(void)
{
    pid_t pid = th_fake("[{\"body\": \"ok\", \"repeat\": -1}]", url, sizeof url);
    size_t cap = 8u * 1024u * 1024u;
    char *big = aq_malloc(cap + 2);
    memset(big, 'x', cap + 1);
    big[cap + 1] = '\0';
    th_resp r = th_http("POST", at("/big"), NULL, big, NULL, NULL);   /* cap + 1 */
    CHECK_STATUS(r, 413);
    CHECK_CONTAINS(r.body, "request body too large");
    th_resp_free(&r);
    big[cap] = '\0';
    r = th_http("POST", at("/cap"), NULL, big, NULL, NULL);           /* exactly the cap */
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    free(big);
    /* the head: 64 KiB is the cap */
    size_t hl = 64u * 1024u + 1;
    char *head = aq_malloc(hl + 1);
    memset(head, 'a', hl);
    memcpy(head, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memcpy(head + hl - 4, "\r\n\r\n", 4);
    head[hl] = '\0';
    char buf[4096];
    CHECK(raw_exchange(head, hl, buf, sizeof buf));
    CHECK(!strncmp(buf, "HTTP/1.1 413 ", 13));
    memcpy(head + hl - 5, "\r\n\r\n", 4);                         /* one byte shorter: fits */
    int fd = raw_connect();
    size_t n = 0;
    CHECK(fd >= 0 && raw_write(fd, head, hl - 1) == 0);
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\nok", 5000, NULL));
    CHECK(!strncmp(buf, "HTTP/1.1 200 ", 13));
    close(fd);
    free(head);
    /* a chunk size over the cap is refused before its data comes */
    static const char chunky[] = "POST /chunky HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "800001\r\n";
    CHECK(raw_exchange(chunky, sizeof chunky - 1, buf, sizeof buf));
    CHECK(!strncmp(buf, "HTTP/1.1 413 ", 13));
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 5);
    CHECK_STR(jstr(log, "0.error"), "request body too large");
    CHECK_INT(jnum(log, "1.body_len"), (long long)cap);
    CHECK_STR(jstr(log, "2.error"), "request head too large");
    CHECK(jpath(log, "3.error") == NULL);
    CHECK_STR(jstr(log, "4.error"), "request body too large");
    CHECK_STR(jstr(log, "4.path"), "/chunky");
    cJSON_Delete(log);
    stop_fake(pid);
}

static void chunked_and_expect_continue(void)
{
    pid_t pid = th_fake("[{\"body\": \"ok\", \"repeat\": -1}]", url, sizeof url);
    /* libcurl chunk-encodes the body when asked to */
    const char *const te[] = {"Transfer-Encoding: chunked", NULL};
    th_resp r = th_http("POST", at("/c"), NULL, "{\"messages\":[\"chunked\"]}", te, NULL);
    CHECK_STATUS(r, 200);
    th_resp_free(&r);
    /* by hand: extensions, a bare LF, trailers */
    static const char req[] = "POST /c2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5;ext=1\r\nhello\r\n6\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n";
    char buf[4096];
    size_t n = 0;
    int fd = raw_connect(), closed = 0;
    CHECK(fd >= 0 && raw_write(fd, req, sizeof req - 1) == 0);
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\nok", 5000, &closed));
    /* Expect: 100-continue: the fake invites the body, then answers */
    static const char head[] = "POST /e HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    n = 0;
    CHECK(raw_write(fd, head, sizeof head - 1) == 0);
    CHECK(raw_read(fd, buf, sizeof buf, &n, "HTTP/1.1 100 Continue\r\n\r\n", 5000, &closed));
    CHECK(raw_write(fd, "body", 4) == 0);
    CHECK(raw_read(fd, buf, sizeof buf, &n, "\r\n\r\nok", 5000, &closed));
    close(fd);
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 3);
    CHECK_STR(jstr(log, "0.headers.transfer-encoding"), "chunked");
    CHECK_STR(jstr(log, "0.body.messages.0"), "chunked");
    CHECK_STR(jstr(log, "1.body"), "helloworld!");
    CHECK_INT(jnum(log, "1.body_len"), 11);
    CHECK_STR(jstr(log, "2.body"), "body");
    cJSON_Delete(log);
    stop_fake(pid);
}

static void raw_replies(void)
{
    pid_t pid = th_fake("[{\"raw\": \"HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nhello\"},"
                        " {\"raw\": \"this is not HTTP\\r\\n\\r\\n\"},"
                        " {\"raw\": \"HTTP/1.1 200 OK\\r\\nContent-Length: 10\\r\\n\\r\\ncut\"},"
                        " {\"raw\": \"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\n\\r\\nkept\","
                        "  \"close\": false},"
                        " {\"body\": \"ok\"}]", url, sizeof url);
    CHECK_GET("/", 200, "hello");
    th_resp r = th_http("GET", at("/"), NULL, NULL, NULL, NULL);
    CHECK_INT(r.status, 0);                     /* libcurl refuses it */
    th_resp_free(&r);
    r = th_http("GET", at("/"), NULL, NULL, NULL, NULL);
    CHECK_INT(r.status, 0);                     /* body cut short by the close */
    th_resp_free(&r);
    CURL *h = curl_easy_init();
    char *body;
    long fresh;
    CHECK_INT(reused_get(h, at("/"), &body, &fresh), 200);
    CHECK_STR(body, "kept");
    free(body);
    CHECK_INT(reused_get(h, at("/"), &body, &fresh), 200);
    CHECK_STR(body, "ok");
    CHECK_INT(fresh, 0);                        /* the raw step left it open */
    free(body);
    curl_easy_cleanup(h);
    stop_fake(pid);
}

static void *client(void *arg)
{
    long *ok = arg;
    char u[256];
    snprintf(u, sizeof u, "%s/v1/chat/completions", url);
    for (int i = 0; i < 25; i++) {
        th_resp r = th_http("POST", u, "k", "{\"n\":1}", NULL, NULL);
        if (r.status == 200 && !strcmp(r.body, "{\"ok\":true}")) (*ok)++;
        th_resp_free(&r);
    }
    return NULL;
}

static void many_clients(void)
{
    pid_t pid = th_fake("[{\"body\": {\"ok\": true}, \"repeat\": -1, \"delay_ms\": 5}]",
                        url, sizeof url);
    pthread_t t[8];
    long ok[8] = {0};
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, client, &ok[i]);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    long total = 0;
    for (int i = 0; i < 8; i++) total += ok[i];
    CHECK_INT(total, 200);
    cJSON *log = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(log), 200);
    const cJSON *o;
    int i = 0;
    cJSON_ArrayForEach(o, log) CHECK_INT(jnum(o, "n"), ++i);
    cJSON_Delete(log);
    stop_fake(pid);
}

extern char th_log[512];

/* Replace the running fake's script file with text (through a rename). */
static void rewrite_script(const char *text)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", th_fake_script_path());
    FILE *f = fopen(tmp, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
    CHECK(rename(tmp, th_fake_script_path()) == 0);
}

/* Run the fake on script text and return its exit status (stderr to the test log). */
static int fake_exit_status(const char *script)
{
    char path[700], log[700];
    snprintf(path, sizeof path, "%s.bad", th_fake_script_path());
    snprintf(log, sizeof log, "%s.bad", th_fake_log_path());
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(script, f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        const char *bin = th_bin("agentq-fake");
        execl(bin, bin, "--port", "0", "--script", path, "--log", log, (char *)NULL);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void bad_scripts_refused(void)
{
    pid_t pid = th_fake("[{\"body\": \"first\"}]", url, sizeof url);
    static const char *const bad[] = {
        "", "{}", "[1]", "[{\"status\": 99}]", "[{\"status\": \"200\"}]", "[{\"delay\": 5}]",
        "[{\"headers\": {\"Bad Name\": \"x\"}}]", "[{\"headers\": {\"X\": \"a\\r\\nY: b\"}}]",
        "[{\"headers\": {\"X\": true}}]", "[{\"repeat\": -2}]", "[{\"repeat\": 1.5}]",
        "[{\"delay_ms\": 1e300}]", "[{\"close\": 1}]", "[{\"match\": 3}]", "[{\"raw\": {}}]", "[", NULL,
    };
    for (int i = 0; bad[i]; i++) {
        int st = fake_exit_status(bad[i]);
        if (st != 2) th_fail(__FILE__, __LINE__, "script %s: exit status %d, want 2", bad[i], st);
    }
    /* a running fake keeps its steps while the file is bad, and reloads once it is fixed */
    rewrite_script("[{\"body\": \"first\"}, {\"body\": ");
    CHECK_GET("/", 200, "first");
    CHECK_GET("/", 500, "{\"error\":{\"message\":\"fake: script exhausted\"}}");
    rewrite_script("[{\"body\": \"first\"}, {\"body\": \"fixed\"}]");
    CHECK_GET("/", 200, "fixed");
    stop_fake(pid);
}

/* ---- --llm-delay-ms: a model for the benchmark ---- */

static char llm_log[700];

/* Start the fake as a model answering after delay_ms; url gets its address. */
static pid_t start_llm_fake(long delay_ms)
{
    char ready[700], delay[24];
    snprintf(ready, sizeof ready, "%s.llm-ready", th_log);
    snprintf(llm_log, sizeof llm_log, "%s.llm-summary", th_log);
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    unlink(ready);
    unlink(llm_log);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(th_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        const char *bin = th_bin("agentq-fake");
        execl(bin, bin, "--port", "0", "--llm-delay-ms", delay, "--log", llm_log, "--ready-file", ready,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(ready, "r");
        int port = 0;
        if (f) { if (fscanf(f, "%d", &port) != 1) port = 0; fclose(f); }
        if (port > 0) { snprintf(url, sizeof url, "http://127.0.0.1:%d", port); return pid; }
        aq_sleep_ms(10);
    }
    th_fail(__FILE__, __LINE__, "agentq-fake --llm-delay-ms did not start");
    return pid;
}

/* Stop the model fake (exit 0) and return its summary line, parsed. */
static cJSON *stop_llm_fake(pid_t pid)
{
    stop_fake(pid);
    FILE *f = fopen(llm_log, "r");
    char line[1024] = "";
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = '\0'; fclose(f); }
    cJSON *j = cJSON_Parse(line);
    if (!j) th_fail(__FILE__, __LINE__, "no summary line in %s: \"%s\"", llm_log, line);
    return j;
}

/* An OpenAI-shaped error of this status and type. */
static void check_llm_error(int line, th_resp *r, long status)
{
    cJSON *j = cJSON_Parse(r->body);
    if (r->status != status || !jstr(j, "error.message") || !jstr(j, "error.type") ||
        strcmp(jstr(j, "error.type"), "invalid_request_error"))
        th_fail(__FILE__, line, "got %ld \"%.300s\", want %ld with an invalid_request_error", r->status, r->body,
                status);
    cJSON_Delete(j);
    th_resp_free(r);
}

static void llm_mode_replies_like_the_api(void)
{
    pid_t pid = start_llm_fake(300);
    const char *req = "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                      "{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[]}";
    th_resp r = th_http("POST", at("/v1/chat/completions"), "key", req, NULL, NULL);
    CHECK_STATUS(r, 200);
    if (r.secs < 0.29) th_fail(__FILE__, __LINE__, "--llm-delay-ms 300 answered in %.3f s", r.secs);
    /* the shape the API documents ... */
    cJSON *j = cJSON_Parse(r.body);
    CHECK_STR(jstr(j, "object"), "chat.completion");
    CHECK_STR(jstr(j, "id"), "chatcmpl-fake-1");
    CHECK_STR(jstr(j, "model"), "gpt-test");
    CHECK(jnum(j, "created") > 1700000000);
    CHECK_INT(jnum(j, "choices.0.index"), 0);
    CHECK_STR(jstr(j, "choices.0.message.role"), "assistant");
    CHECK_STR(jstr(j, "choices.0.finish_reason"), "stop");
    CHECK_INT(jnum(j, "usage.prompt_tokens"), (long long)(strlen(req) + 3) / 4);
    CHECK_INT(jnum(j, "usage.total_tokens"), jnum(j, "usage.prompt_tokens") + jnum(j, "usage.completion_tokens"));
    cJSON_Delete(j);
    /* ... and what the project's client reads from it */
    aq_llm_reply lr;
    memset(&lr, 0, sizeof lr);
    CHECK_INT(aq_llm_parse(r.body, r.len, &lr), 0);
    CHECK_STR(lr.content, "fake reply 1 (2 messages)");
    CHECK(lr.tool_calls == NULL && !lr.truncated && lr.completion_tokens > 0);
    CHECK_INT(lr.prompt_tokens, (long)(strlen(req) + 3) / 4);
    aq_llm_reply_dispose(&lr);
    th_resp_free(&r);
    /* what the API refuses */
    r = th_http("GET", at("/v1/chat/completions"), NULL, NULL, NULL, NULL);
    check_llm_error(__LINE__, &r, 404);
    r = th_http("POST", at("/v1/completions"), NULL, "{\"messages\":[]}", NULL, NULL);
    check_llm_error(__LINE__, &r, 404);
    r = th_http("POST", at("/v1/chat/completions"), NULL, "{\"messages\": [", NULL, NULL);
    check_llm_error(__LINE__, &r, 400);
    r = th_http("POST", at("/v1/chat/completions"), NULL, "{\"model\":\"m\"}", NULL, NULL);
    check_llm_error(__LINE__, &r, 400);
    /* a body one byte over the cap is refused from its head, and the connection closed */
    char head[256], reply[2048];
    snprintf(head, sizeof head, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             8u * 1024u * 1024u + 1u);
    CHECK(raw_exchange(head, strlen(head), reply, sizeof reply));
    CHECK_CONTAINS(reply, "HTTP/1.1 413 ");
    CHECK_CONTAINS(reply, "invalid_request_error");
    cJSON *sum = stop_llm_fake(pid);
    CHECK_INT(jnum(sum, "requests"), 6);
    CHECK_INT(jnum(sum, "answered"), 1);
    CHECK_INT(jnum(sum, "refused"), 5);
    cJSON_Delete(sum);
}

#define LLM_CONNS 1000

/* LLM_CONNS connections, one request each, all waiting on the model at once. */
static void llm_mode_holds_a_thousand_at_once(void)
{
    struct rlimit nofile;
    if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (getrlimit(RLIMIT_NOFILE, &nofile) || nofile.rlim_cur < LLM_CONNS + 100) {
        th_fail(__FILE__, __LINE__, "RLIMIT_NOFILE %ld is too low for %d connections", (long)nofile.rlim_cur,
                LLM_CONNS);
        return;
    }
    pid_t pid = start_llm_fake(3000);
    static int fds[LLM_CONNS];
    static const char body[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[256];
    snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    uint64_t t0 = aq_now_mono_ms();
    int opened = 0;
    for (int i = 0; i < LLM_CONNS; i++) {
        fds[i] = raw_connect();
        if (fds[i] < 0 || raw_write(fds[i], req, strlen(req))) break;
        opened++;
    }
    uint64_t sent_ms = aq_now_mono_ms() - t0;
    CHECK_INT(opened, LLM_CONNS);
    int ok = 0;
    for (int i = 0; i < opened; i++) {
        char buf[2048];
        size_t n = 0;
        if (raw_read(fds[i], buf, sizeof buf, &n, "\"total_tokens\"", 60000, NULL) &&
            !strncmp(buf, "HTTP/1.1 200 ", 13))
            ok++;
        close(fds[i]);
    }
    CHECK_INT(ok, LLM_CONNS);
    cJSON *sum = stop_llm_fake(pid);
    CHECK_INT(jnum(sum, "connections"), LLM_CONNS);
    CHECK_INT(jnum(sum, "answered"), LLM_CONNS);
    /* every request was sent before the first reply was due: all waited at once */
    if (sent_ms < 2900) {
        CHECK_INT(jnum(sum, "max_waiting"), LLM_CONNS);
        CHECK_INT(jnum(sum, "max_open"), LLM_CONNS);
    } else {
        fprintf(stderr, "sending took %llu ms; max_waiting not checked\n", (unsigned long long)sent_ms);
    }
    cJSON_Delete(sum);
}

const th_test th_fake_tests[] = {
    {"fake_steps_in_order_and_log", serves_steps_in_order_and_logs, 20, 0},
    {"fake_json_and_string_bodies", json_and_string_bodies, 20, 0},
    {"fake_headers", headers_come_through, 20, 0},
    {"fake_delay_ms", delay_ms, 20, 0},
    {"fake_repeat", repeat, 20, 0},
    {"fake_match", match, 20, 0},
    {"fake_exhausted_500", exhausted_500, 20, 0},
    {"fake_append_steps", append_steps, 20, 0},
    {"fake_keep_alive", keep_alive, 20, 0},
    {"fake_pipelined_and_http10", pipelined_and_http10, 20, 0},
    {"fake_malformed_400_keeps_serving", malformed_400_keeps_serving, 30, 0},
    {"fake_oversized_413", oversized_413, 60, 0},
    {"fake_chunked_and_expect_continue", chunked_and_expect_continue, 20, 0},
    {"fake_raw_replies", raw_replies, 20, 0},
    {"fake_many_clients", many_clients, 60, 0},
    {"fake_bad_scripts_refused", bad_scripts_refused, 30, 0},
    {"fake_llm_mode_replies_like_the_api", llm_mode_replies_like_the_api, 30, 0},
    {"fake_llm_mode_holds_a_thousand_at_once", llm_mode_holds_a_thousand_at_once, 120, 0},
    {0},
};
