/* aq_http.c — HTTP requests over libcurl (see aq_http.h): the easy-handle
 * setup and response reading every request goes through, and the blocking
 * driver for threads: one easy handle per thread, reset before each request
 * but never closed between them, so its connection cache keeps connections
 * to the LLM provider and to Telegram alive. */
#include "aq_http.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void init_curl(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static __thread CURL *thread_curl;

void aq_http_global_init(void) { pthread_once(&curl_once, init_curl); }

void aq_http_thread_cleanup(void)
{
    if (thread_curl) curl_easy_cleanup(thread_curl);
    thread_curl = NULL;
}

void aq_http_resp_dispose(aq_http_resp *r)
{
    free(r->body);
    free(r->error);
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
}

static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

aq_http_request *aq_http_request_copy(const aq_http_request *req)
{
    aq_http_request *c = aq_calloc(1, sizeof *c);
    *c = *req;
    c->method = req->method ? aq_strdup(req->method) : NULL;
    c->url = aq_strdup(req->url ? req->url : "");
    size_t n = 0;
    while (req->headers && req->headers[n]) n++;
    char **h = aq_calloc(n + 1, sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = aq_strdup(req->headers[i]);
    c->headers = (const char *const *)h;
    char *b = aq_malloc(req->body_len + 1);
    if (req->body_len) memcpy(b, req->body, req->body_len);
    b[req->body_len] = '\0';
    c->body = req->body ? b : (free(b), NULL);
    return c;
}

void aq_http_request_free(aq_http_request *req)
{
    if (!req) return;
    free((char *)req->method);
    wipe_free((char *)req->url);
    for (size_t i = 0; req->headers && req->headers[i]; i++) wipe_free((char *)req->headers[i]);
    free((char **)req->headers);
    free((char *)req->body);
    free(req);
}

struct aq_http_xfer {
    CURL *h;
    struct curl_slist *hdrs;
    aq_buf b;
    size_t max;
    int over;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    aq_http_xfer *x = arg;
    if (x->b.len + sz * n > x->max) { x->over = 1; return 0; }
    aq_buf_add(&x->b, p, sz * n);
    return sz * n;
}

aq_http_xfer *aq_http_xfer_start(void *easy, const aq_http_request *req)
{
    aq_http_xfer *x = aq_calloc(1, sizeof *x);
    CURL *h = x->h = easy;
    x->max = req->max_bytes;
    aq_buf_init(&x->b);
    for (size_t i = 0; req->headers && req->headers[i]; i++) x->hdrs = curl_slist_append(x->hdrs, req->headers[i]);
    long t = req->timeout_ms > 0 ? req->timeout_ms : 1;
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    if (req->body || !req->method || !strcmp(req->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    if (req->method && strcmp(req->method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, t);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, t < 10000 ? t : 10000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return x;
}

int aq_http_xfer_finish(aq_http_xfer *x, int rc, aq_http_resp *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    out->curl_code = rc;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_off_t ra = -1;
    /* a delay whose milliseconds overflow a long is no delay anyone meant */
    if (curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0 && ra <= LONG_MAX / 1000)
        out->retry_after_ms = (long)ra * 1000;
    curl_slist_free_all(x->hdrs);   /* may hold a secret; curl copied nothing it keeps */
    int ret = 0;
    if (rc != CURLE_OK) {
        out->body = aq_strdup("");
        if (!x->over)
            out->error = aq_strdup(curl_easy_strerror((CURLcode)rc));
        else if (x->max && x->max % (1u << 20) == 0)
            out->error = aq_sprintf("reply over %zu MiB", x->max >> 20);
        else
            out->error = aq_sprintf("reply over %zu bytes", x->max);
        ret = AQ_EIO;
    } else {
        out->len = x->b.len;
        out->body = x->b.p ? aq_buf_take(&x->b) : aq_strdup("");
    }
    aq_buf_dispose(&x->b);
    free(x);
    return ret;
}

int aq_http_perform(const aq_http_request *req, aq_http_resp *out)
{
    aq_http_global_init();
    if (!thread_curl) thread_curl = curl_easy_init();
    if (!thread_curl) {
        memset(out, 0, sizeof *out);
        out->retry_after_ms = -1;
        out->body = aq_strdup("");
        out->error = aq_strdup("cannot create a curl handle");
        return AQ_EIO;
    }
    curl_easy_reset(thread_curl);
    aq_http_xfer *x = aq_http_xfer_start(thread_curl, req);
    CURLcode rc = curl_easy_perform(thread_curl);
    return aq_http_xfer_finish(x, rc, out);
}

int aq_http_post_json(const char *url, const char *bearer, const char *body, long timeout_ms, size_t max_bytes,
                      aq_http_resp *out)
{
    char *auth = bearer ? aq_sprintf("Authorization: Bearer %s", bearer) : NULL;
    const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
    aq_http_request req = {.url = url, .headers = hdrs, .body = body, .body_len = body ? strlen(body) : 0,
                           .timeout_ms = timeout_ms, .max_bytes = max_bytes};
    int rc = aq_http_perform(&req, out);
    wipe_free(auth);   /* the header held a secret */
    return rc;
}
