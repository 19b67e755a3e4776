/* llm.c — OpenAI-compatible /chat/completions over libcurl (see llm.h).
 * The request is built once (aq_llm_request) and its response read once
 * (aq_llm_response), whether it is performed blocking (aq_llm_complete,
 * through aq_http) or awaited on the worker's loop (agent_turn.c). */
#include "llm.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_http.h"
#include "aq_json.h"
#include "aq_metrics.h"
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (8u << 20)
#define ERROR_MAX 600


void aq_llm_reply_dispose(aq_llm_reply *r)
{
    free(r->content);
    cJSON_Delete(r->tool_calls);
    free(r->error);
    memset(r, 0, sizeof *r);
}

/* fmt has one %s for detail. Not cut here: the key is scrubbed from the
 * whole text first (a cut could leave part of it), then cut_error cuts. */
static int fail(aq_llm_reply *r, int transient, const char *fmt, const char *detail)
{
    free(r->error);
    r->error = aq_sprintf(fmt, detail ? detail : "");
    r->transient = transient;
    return -1;
}

/* Cut an error text to ERROR_MAX bytes, never inside a UTF-8 sequence. */
static void cut_error(char *e)
{
    size_t n = strlen(e);
    if (n <= ERROR_MAX) return;
    n = ERROR_MAX;
    while (n > 0 && ((unsigned char)e[n] & 0xC0) == 0x80) n--;
    e[n] = '\0';
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

/* a token count: an integer in 0..AQ_LLM_MAX_TOKENS, else 0 */
static long tokens(const cJSON *v)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    return d >= 0 && d <= (double)AQ_LLM_MAX_TOKENS && d == floor(d) ? (long)d : 0;
}

/* A provider error object: transient when its type, code or status says
 * rate limit, overload, server fault or timeout (or a numeric code of 408,
 * 409, 429 or 5xx); anything else (invalid_request_error, authentication,
 * insufficient_quota, ...) is permanent. */
static int error_transient(const cJSON *err)
{
    static const char *const hints[] = {"rate_limit", "rate-limit", "ratelimit", "overload", "server_error",
                                        "internal", "unavailable", "timeout", "timed_out", "capacity",
                                        "temporar", "busy", NULL};
    const char *fields[] = {"type", "code", "status"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(err, fields[i]);
        if (cJSON_IsNumber(v)) {
            double c = v->valuedouble;
            if (c == 408 || c == 409 || c == 429 || (c >= 500 && c <= 599)) return 1;
        } else if (cJSON_IsString(v)) {
            char low[64];
            size_t n = 0;
            for (const char *p = v->valuestring; *p && n + 1 < sizeof low; p++)
                low[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            low[n] = '\0';
            for (const char *const *h = hints; *h; h++)
                if (strstr(low, *h)) return 1;
        }
    }
    return 0;
}

/* "type: message" of a provider error object (heap) */
static char *error_text(const cJSON *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(err, "type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(err, "code");
    char code[32] = "";
    if (cJSON_IsNumber(t)) snprintf(code, sizeof code, "%.0f", t->valuedouble);
    return aq_sprintf("%.60s%s%s", cJSON_IsString(t) ? t->valuestring : code,
                      (cJSON_IsString(t) || code[0]) && cJSON_IsString(m) ? ": " : "",
                      cJSON_IsString(m) ? m->valuestring : "");
}

/* One tool call as {id, name, arguments[, error]}. */
static cJSON *tool_call(const cJSON *call, int n)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
    cJSON *c = cJSON_CreateObject();
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "call_%d", n);
    cJSON_AddStringToObject(c, "id", cJSON_IsString(id) ? id->valuestring : idbuf);
    if (!cJSON_IsObject(fn)) {   /* e.g. {"type": "custom", "custom": {"name", "input"}} */
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(call, "type");
        const cJSON *other = cJSON_IsString(type) ? cJSON_GetObjectItemCaseSensitive(call, type->valuestring) : NULL;
        const cJSON *oname = cJSON_GetObjectItemCaseSensitive(other, "name");
        int named = cJSON_IsString(oname) && *oname->valuestring;
        cJSON_AddStringToObject(c, "name", named ? oname->valuestring : "unknown");
        cJSON_AddStringToObject(c, "arguments", "{}");
        char *why = aq_sprintf("this call has no function object (type \"%.40s\"); only function tools exist, "
                               "call them as type \"function\"", cJSON_IsString(type) ? type->valuestring : "none");
        cJSON_AddStringToObject(c, "error", why);
        free(why);
    } else {
        int named = cJSON_IsString(name) && *name->valuestring;
        cJSON_AddStringToObject(c, "name", named ? name->valuestring : "unknown");
        if (cJSON_IsString(args)) {
            cJSON_AddStringToObject(c, "arguments", args->valuestring);
        } else {   /* some servers send an object */
            char *a = args ? cJSON_PrintUnformatted(args) : NULL;
            cJSON_AddStringToObject(c, "arguments", a ? a : "{}");
            cJSON_free(a);
        }
        if (!named) cJSON_AddStringToObject(c, "error", "this call has no function name");
    }
    /* Postgres refuses invalid UTF-8 (the error quotes the provider's type,
     * cut at 40 bytes): store the call readable, and refuse to run it */
    const char *keys[] = {"name", "arguments", "error"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *item = cJSON_GetObjectItemCaseSensitive(c, keys[i]);
        if (!item) continue;
        char *v = item->valuestring;
        if (aq_utf8_valid(v, strlen(v))) continue;
        aq_utf8_sanitize(v);
        if (!cJSON_GetObjectItemCaseSensitive(c, "error"))
            cJSON_AddStringToObject(c, "error", "the call is not valid UTF-8 (bad bytes shown as '?'); it did not run");
    }
    return c;
}

int aq_llm_parse(const char *body, size_t len, aq_llm_reply *out)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc) return fail(out, 1, "the model's reply is not JSON%s", NULL);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (cJSON_IsObject(err)) {   /* a 200 carrying an error: some providers and proxies do this */
        char *text = error_text(err);
        int transient = error_transient(err);
        fail(out, transient,
             transient ? "the model is unavailable (provider error %s)"
                       : "the model refused the request (provider error %s); check LLM_* settings",
             text);
        free(text);
        cJSON_Delete(doc);
        return -1;
    }
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(msg)) {
        cJSON_Delete(doc);
        return fail(out, 1, "the model's reply has no choices[0].message%s", NULL);
    }
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    out->truncated = cJSON_IsString(finish) && !strcmp(finish->valuestring, "length");
    out->content = content_text(cJSON_GetObjectItemCaseSensitive(msg, "content"));
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), *call;
    int n = 0;
    cJSON_ArrayForEach(call, calls) {
        if (!out->tool_calls) out->tool_calls = cJSON_CreateArray();
        cJSON_AddItemToArray(out->tool_calls, tool_call(call, n++));
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(doc, "usage");
    out->prompt_tokens = tokens(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens"));
    out->completion_tokens = tokens(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens"));
    cJSON_Delete(doc);
    if (!out->content && !out->tool_calls) out->content = aq_strdup("");
    return 0;
}

/* Replace every call's id with a fresh random one of ours. */
static void own_ids(cJSON *calls)
{
    cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        unsigned char rnd[12];
        char hex[2 * sizeof rnd + 1], id[40];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        snprintf(id, sizeof id, "call_%s", hex);
        cJSON_ReplaceItemInObjectCaseSensitive(c, "id", cJSON_CreateString(id));
    }
}

/* The provider's own error message, if its body has one. */
static char *provider_message(const char *body, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "error"), "message");
    char *s = cJSON_IsString(m) ? aq_strdup(m->valuestring) : NULL;
    cJSON_Delete(doc);
    return s;
}

/* The /chat/completions request for messages and tools (heap, see llm.h). */
aq_http_request *aq_llm_request(const aq_config *cfg, const cJSON *messages, const cJSON *tools, long timeout_ms)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", cfg->llm_model);
    cJSON_AddItemToObject(req, "messages", cJSON_Duplicate(messages, 1));
    if (tools && cJSON_GetArraySize(tools) > 0) {
        cJSON_AddItemToObject(req, "tools", cJSON_Duplicate(tools, 1));
        cJSON_AddStringToObject(req, "tool_choice", "auto");
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char url[1024];
    size_t bl = strlen(cfg->llm_base_url);
    snprintf(url, sizeof url, "%.*s/chat/completions", (int)(bl && cfg->llm_base_url[bl - 1] == '/' ? bl - 1 : bl),
             cfg->llm_base_url);
    char *auth = cfg->llm_api_key[0] ? aq_sprintf("Authorization: Bearer %s", cfg->llm_api_key) : NULL;
    const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
    aq_http_request r = {.url = url, .headers = hdrs, .body = body, .body_len = strlen(body),
                         .timeout_ms = timeout_ms, .max_bytes = MAX_RESPONSE};
    aq_http_request *copy = aq_http_request_copy(&r);
    if (auth) {   /* it held the key */
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    cJSON_free(body);
    return copy;
}

int aq_llm_response(const aq_config *cfg, int hrc, const aq_http_resp *r, aq_llm_reply *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = r->retry_after_ms;
    out->http_status = r->status;
    int ret;
    long st = r->status;
    if (hrc != 0) {
        ret = fail(out, 1, "the model could not be reached: %s", r->error);
    } else if (st == 200) {
        ret = aq_llm_parse(r->body, r->len, out);
    } else {
        char *pm = provider_message(r->body, r->len);
        char *detail = aq_sprintf("HTTP %ld%s%s", st, pm ? ": " : "", pm ? pm : "");
        free(pm);
        int transient = st == 408 || st == 409 || st == 429 || st >= 500;
        ret = fail(out, transient,
                   transient ? "the model is unavailable (%s)" : "the model refused the request (%s); check LLM_* settings",
                   detail);
        free(detail);
    }
    own_ids(out->tool_calls);
    /* the provider may quote the key back ("Incorrect API key provided: sk-...") */
    if (out->error) {
        out->error = aq_scrub(out->error, cfg->llm_api_key, "<LLM_API_KEY>");
        cut_error(out->error);
    }
    aq_metrics_model_call(cfg->llm_provider, cfg->llm_model, ret == 0, out->transient, out->prompt_tokens,
                          out->completion_tokens);
    return ret;
}

int aq_llm_complete(const aq_config *cfg, const cJSON *messages, const cJSON *tools, long timeout_ms,
                    aq_llm_reply *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    if (!strcmp(cfg->llm_provider, "offline")) {
        int rc = aq_llm_offline(messages, out);
        own_ids(out->tool_calls);
        aq_metrics_model_call(cfg->llm_provider, cfg->llm_model, rc == 0, out->transient, out->prompt_tokens,
                              out->completion_tokens);
        return rc;
    }
    if (strcmp(cfg->llm_provider, "openai"))
        return fail(out, 0, "LLM_PROVIDER=%s: expected offline or openai", cfg->llm_provider);
    aq_http_request *req = aq_llm_request(cfg, messages, tools, timeout_ms);
    aq_http_resp r;
    int hrc = aq_http_perform(req, &r);
    aq_http_request_free(req);
    int ret = aq_llm_response(cfg, hrc, &r, out);
    aq_http_resp_dispose(&r);
    return ret;
}
