/* llm.c — OpenAI-compatible /chat/completions over libcurl (see llm.h).
 * Each handler thread keeps one curl handle, so connections to the provider
 * are reused. libcurl is initialised on first use (thread-safe in 7.88), so
 * a worker that never calls a model never loads OpenSSL's state. */
#include "llm.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (8u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void init_curl(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static __thread CURL *thread_curl;

void aq_llm_thread_cleanup(void)
{
    if (thread_curl) curl_easy_cleanup(thread_curl);
    thread_curl = NULL;
}

void aq_llm_reply_dispose(aq_llm_reply *r)
{
    free(r->content);
    cJSON_Delete(r->tool_calls);
    free(r->error);
    memset(r, 0, sizeof *r);
}

static int fail(aq_llm_reply *r, int transient, const char *fmt, const char *detail)
{
    char msg[600];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    free(r->error);
    r->error = aq_strdup(msg);
    r->transient = transient;
    return -1;
}

/* content: a string, or [{"type":"text","text":...}, ...] (other blocks skipped) */
static char *content_text(const cJSON *c)
{
    if (cJSON_IsString(c)) return aq_strdup(c->valuestring);
    if (!cJSON_IsArray(c)) return NULL;
    aq_buf b;
    aq_buf_init(&b);
    const cJSON *blk;
    cJSON_ArrayForEach(blk, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(blk, "text");
        if (cJSON_IsString(blk)) aq_buf_adds(&b, blk->valuestring);
        else if (cJSON_IsString(t)) aq_buf_adds(&b, t->valuestring);
    }
    return b.len ? aq_buf_take(&b) : (aq_buf_dispose(&b), NULL);
}

int aq_llm_parse(const char *body, size_t len, aq_llm_reply *out)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc) return fail(out, 1, "the model's reply is not JSON%s", NULL);
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(doc, "choices");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
    if (!cJSON_IsObject(msg)) {
        cJSON_Delete(doc);
        return fail(out, 1, "the model's reply has no choices[0].message%s", NULL);
    }
    out->content = content_text(cJSON_GetObjectItemCaseSensitive(msg, "content"));
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), *call;
    int n = 0;
    cJSON_ArrayForEach(call, calls) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
        if (!out->tool_calls) out->tool_calls = cJSON_CreateArray();
        cJSON *c = cJSON_CreateObject();
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "call_%d", n++);
        cJSON_AddStringToObject(c, "id", cJSON_IsString(id) ? id->valuestring : idbuf);
        cJSON_AddStringToObject(c, "name", cJSON_IsString(name) ? name->valuestring : "");
        if (cJSON_IsString(args)) {
            cJSON_AddStringToObject(c, "arguments", args->valuestring);
        } else {   /* some servers send an object */
            char *a = args ? cJSON_PrintUnformatted(args) : NULL;
            cJSON_AddStringToObject(c, "arguments", a ? a : "{}");
            cJSON_free(a);
        }
        cJSON_AddItemToArray(out->tool_calls, c);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(doc, "usage");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    out->prompt_tokens = cJSON_IsNumber(pt) ? (long)pt->valuedouble : 0;
    out->completion_tokens = cJSON_IsNumber(ct) ? (long)ct->valuedouble : 0;
    cJSON_Delete(doc);
    if (!out->content && !out->tool_calls) out->content = aq_strdup("");
    return 0;
}

typedef struct { aq_buf b; int over; } sink;

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    sink *s = arg;
    if (s->b.len + sz * n > MAX_RESPONSE) { s->over = 1; return 0; }
    aq_buf_add(&s->b, p, sz * n);
    return sz * n;
}

/* The provider's own error message, if its body has one. */
static char *provider_message(const char *body, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "error"), "message");
    char *s = cJSON_IsString(m) ? aq_strndup(m->valuestring, strnlen(m->valuestring, 300)) : NULL;
    cJSON_Delete(doc);
    return s;
}

int aq_llm_complete(const aq_config *cfg, const cJSON *messages, const cJSON *tools, long timeout_ms,
                    aq_llm_reply *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    if (!strcmp(cfg->llm_provider, "offline")) return aq_llm_offline(messages, out);
    if (strcmp(cfg->llm_provider, "openai"))
        return fail(out, 0, "LLM_PROVIDER=%s: expected offline or openai", cfg->llm_provider);

    pthread_once(&curl_once, init_curl);
    if (!thread_curl) thread_curl = curl_easy_init();
    CURL *h = thread_curl;
    curl_easy_reset(h);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", cfg->llm_model);
    cJSON_AddItemToObject(req, "messages", cJSON_Duplicate(messages, 1));
    if (tools && cJSON_GetArraySize(tools) > 0) {
        cJSON_AddItemToObject(req, "tools", cJSON_Duplicate(tools, 1));
        cJSON_AddStringToObject(req, "tool_choice", "auto");
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char url[1024], auth[600];
    size_t bl = strlen(cfg->llm_base_url);
    snprintf(url, sizeof url, "%.*s/chat/completions", (int)(bl && cfg->llm_base_url[bl - 1] == '/' ? bl - 1 : bl),
             cfg->llm_base_url);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (cfg->llm_api_key[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->llm_api_key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    sink s;
    aq_buf_init(&s.b);
    s.over = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->http_status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) out->retry_after_ms = (long)ra * 1000;
    curl_slist_free_all(hdrs);
    cJSON_free(body);
    int ret;
    long st = out->http_status;
    if (rc != CURLE_OK) {
        ret = fail(out, 1, "the model could not be reached: %s", s.over ? "reply over 8 MiB" : curl_easy_strerror(rc));
    } else if (st == 200) {
        ret = aq_llm_parse(s.b.p ? s.b.p : "", s.b.len, out);
    } else {
        char *pm = provider_message(s.b.p ? s.b.p : "", s.b.len);
        char detail[500];
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", st, pm ? ": " : "", pm ? pm : "");
        free(pm);
        int transient = st == 408 || st == 409 || st == 429 || st >= 500;
        ret = fail(out, transient,
                   transient ? "the model is unavailable (%s)" : "the model refused the request (%s); check LLM_* settings",
                   detail);
    }
    aq_buf_dispose(&s.b);
    return ret;
}
