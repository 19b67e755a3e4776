/* llm.c — OpenAI-compatible /chat/completions over libcurl (see llm.h).
 * The request goes through aq_http, whose per-thread curl handle reuses
 * connections to the provider. */
#include "llm.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_http.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (8u << 20)


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
    aq_http_resp r;
    int hrc = aq_http_post_json(url, cfg->llm_api_key[0] ? cfg->llm_api_key : NULL, body, timeout_ms, MAX_RESPONSE,
                                &r);
    cJSON_free(body);
    out->http_status = r.status;
    out->retry_after_ms = r.retry_after_ms;
    int ret;
    long st = r.status;
    if (hrc != 0) {
        ret = fail(out, 1, "the model could not be reached: %s", r.error);
    } else if (st == 200) {
        ret = aq_llm_parse(r.body, r.len, out);
    } else {
        char *pm = provider_message(r.body, r.len);
        char detail[500];
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", st, pm ? ": " : "", pm ? pm : "");
        free(pm);
        int transient = st == 408 || st == 409 || st == 429 || st >= 500;
        ret = fail(out, transient,
                   transient ? "the model is unavailable (%s)" : "the model refused the request (%s); check LLM_* settings",
                   detail);
    }
    aq_http_resp_dispose(&r);
    return ret;
}
