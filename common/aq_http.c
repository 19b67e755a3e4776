/* aq_http.c — blocking JSON POST over libcurl for handler threads (see
 * aq_http.h). One easy handle per thread, reset before each request but
 * never closed between them, so its connection cache keeps connections to
 * the LLM provider and to Telegram alive. */
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

typedef struct { aq_buf b; size_t max; int over; } sink;

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    sink *s = arg;
    if (s->b.len + sz * n > s->max) { s->over = 1; return 0; }
    aq_buf_add(&s->b, p, sz * n);
    return sz * n;
}

int aq_http_post_json(const char *url, const char *bearer, const char *body, long timeout_ms, size_t max_bytes,
                      aq_http_resp *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    pthread_once(&curl_once, init_curl);
    if (!thread_curl) thread_curl = curl_easy_init();
    CURL *h = thread_curl;
    if (!h) {
        out->body = aq_strdup("");
        out->error = aq_strdup("cannot create a curl handle");
        return AQ_EIO;
    }
    curl_easy_reset(h);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char *auth = bearer ? aq_sprintf("Authorization: Bearer %s", bearer) : NULL;
    if (auth) hdrs = curl_slist_append(hdrs, auth);
    sink s = {.max = max_bytes};
    aq_buf_init(&s.b);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_off_t ra = -1;
    /* a delay whose milliseconds overflow a long is no delay anyone meant */
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0 && ra <= LONG_MAX / 1000)
        out->retry_after_ms = (long)ra * 1000;
    curl_slist_free_all(hdrs);
    if (auth) {   /* the header held a secret */
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    if (rc != CURLE_OK) {
        aq_buf_dispose(&s.b);
        out->body = aq_strdup("");
        if (!s.over)
            out->error = aq_strdup(curl_easy_strerror(rc));
        else if (max_bytes && max_bytes % (1u << 20) == 0)
            out->error = aq_sprintf("reply over %zu MiB", max_bytes >> 20);
        else
            out->error = aq_sprintf("reply over %zu bytes", max_bytes);
        return AQ_EIO;
    }
    out->len = s.b.len;
    out->body = s.b.p ? aq_buf_take(&s.b) : aq_strdup("");
    aq_buf_dispose(&s.b);
    return 0;
}
