/* aq_tg_api.c — Telegram Bot API client and message splitter (see
 * aq_tg_api.h). The token is part of every request URL, so the URL is
 * wiped after use and every error string is scrubbed of the token before it
 * leaves this file; curl's own messages (curl_easy_strerror) carry no URL. */
#include "aq_tg_api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_http.h"
#include "aq_json.h"
#include "aq_metrics.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPLY (8u << 20)
#define MAX_DESCRIPTION 300

void aq_tg_result_dispose(aq_tg_result *r)
{
    cJSON_Delete(r->result);
    free(r->error);
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
}

static void set_error(aq_tg_result *out, const aq_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(aq_tg_result *out, const aq_config *cfg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    s = aq_scrub(s, cfg->telegram_bot_token, "<token>");
    aq_utf8_sanitize(s);   /* it may end up in jobs.error */
    free(out->error);
    out->error = s;
}

/* Telegram's description, cut to MAX_DESCRIPTION bytes on a code-point boundary (heap), or NULL */
static char *description(const cJSON *doc)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "description");
    if (!cJSON_IsString(d) || !d->valuestring[0]) return NULL;
    size_t n = strlen(d->valuestring);
    if (n > MAX_DESCRIPTION) {
        n = MAX_DESCRIPTION;
        while (n > 0 && ((unsigned char)d->valuestring[n] & 0xC0) == 0x80) n--;
    }
    return aq_strndup(d->valuestring, n);
}

void aq_tg_classify(const aq_config *cfg, const char *method, const aq_http_resp *r, aq_tg_result *out)
{
    cJSON *doc = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(doc, "ok");
    const cJSON *code_j = cJSON_GetObjectItemCaseSensitive(doc, "error_code");
    long code = r->status;
    /* an error_code that is no HTTP status leaves the 200 an unexpected reply */
    if (code == 200 && cJSON_IsFalse(ok) && cJSON_IsNumber(code_j) && code_j->valuedouble >= 100 &&
        code_j->valuedouble < 600)
        code = (long)code_j->valuedouble;
    if (code == 200) {
        cJSON *result = cJSON_IsTrue(ok) ? cJSON_DetachItemFromObjectCaseSensitive(doc, "result") : NULL;
        if (result) {
            out->status = AQ_TG_OK;
            out->result = result;
        } else {
            out->status = AQ_TG_RETRY;
            set_error(out, cfg, "Telegram %s: HTTP 200 but the reply is not the expected JSON", method);
        }
        cJSON_Delete(doc);
        return;
    }
    if (code == 429 || code >= 500 || code < 400) out->status = AQ_TG_RETRY;
    else if (code == 403) out->status = AQ_TG_BLOCKED;
    else out->status = AQ_TG_FAILED;
    if (out->status == AQ_TG_RETRY) {
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "parameters"),
                                                           "retry_after");
        if (cJSON_IsNumber(ra) && ra->valuedouble > 0 && ra->valuedouble < 86400)
            out->retry_after_ms = (long)(ra->valuedouble * 1000);
        else
            out->retry_after_ms = r->retry_after_ms;
    }
    if (out->status == AQ_TG_FAILED) {   /* a group that became a supergroup: the new chat id */
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "parameters"),
                                                           "migrate_to_chat_id");
        if (cJSON_IsNumber(to) && to->valuedouble != 0 && to->valuedouble > -9007199254740992.0 &&
            to->valuedouble < 9007199254740992.0 && to->valuedouble == (double)(long long)to->valuedouble)
            out->migrate_to_chat_id = (long long)to->valuedouble;
    }
    char *desc = description(doc);
    set_error(out, cfg, "Telegram %s: HTTP %ld%s%s", method, code, desc ? ": " : "", desc ? desc : "");
    free(desc);
    cJSON_Delete(doc);
}

aq_http_request *aq_tg_request(const aq_config *cfg, const char *method, const cJSON *params, long timeout_ms,
                               aq_tg_result *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    out->status = AQ_TG_FAILED;
    const char *token = cfg->telegram_bot_token ? cfg->telegram_bot_token : "";
    if (!token[0]) {
        out->error = aq_strdup("TELEGRAM_BOT_TOKEN is not set");
        return NULL;
    }
    const char *base = cfg->telegram_api_base ? cfg->telegram_api_base : "";
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    char *url = aq_sprintf("%.*s/bot%s/%s", (int)bl, base, token, method);
    char *body = params ? cJSON_PrintUnformatted(params) : NULL;
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    aq_http_request r = {.url = url, .headers = hdrs, .body = body ? body : "{}", .body_len = body ? strlen(body) : 2,
                         .timeout_ms = timeout_ms, .max_bytes = MAX_REPLY};
    aq_http_request *copy = aq_http_request_copy(&r);
    explicit_bzero(url, strlen(url));   /* it holds the token */
    free(url);
    cJSON_free(body);
    return copy;
}

int aq_tg_response(const aq_config *cfg, const char *method, int hrc, const aq_http_resp *r, aq_tg_result *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    out->http_status = r->status;
    if (hrc != 0) {
        out->status = AQ_TG_RETRY;
        set_error(out, cfg, "Telegram %s: no usable response: %s", method, r->error);
    } else {
        aq_tg_classify(cfg, method, r, out);
    }
    /* every sendMessage outcome, blocking or awaited on the worker's loop */
    if (!strcmp(method, "sendMessage"))
        aq_metrics_telegram_send(out->status == AQ_TG_OK ? NULL : out->status == AQ_TG_RETRY ? "retry"
                                 : out->status == AQ_TG_BLOCKED ? "blocked" : "failed");
    return out->status == AQ_TG_OK ? 0 : AQ_EIO;
}

static int call(const aq_config *cfg, const char *method, const cJSON *params, long timeout_ms, aq_tg_result *out)
{
    aq_http_request *req = aq_tg_request(cfg, method, params, timeout_ms, out);
    if (!req) return AQ_EIO;
    aq_http_resp r;
    int hrc = aq_http_perform(req, &r);
    aq_http_request_free(req);
    int rc = aq_tg_response(cfg, method, hrc, &r, out);
    aq_http_resp_dispose(&r);
    return rc;
}

int aq_tg_call(const aq_config *cfg, const char *method, const cJSON *params, aq_tg_result *out)
{
    return call(cfg, method, params, cfg->telegram_timeout_ms, out);
}

cJSON *aq_tg_send_message_params(long long chat_id, const char *text, const cJSON *reply_markup)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", chat_id);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddRawToObject(p, "chat_id", id);   /* exact for any 64-bit id */
    cJSON_AddStringToObject(p, "text", text);
    if (reply_markup) cJSON_AddItemToObject(p, "reply_markup", cJSON_Duplicate(reply_markup, 1));
    return p;
}

int aq_tg_send_message(const aq_config *cfg, long long chat_id, const char *text, const cJSON *reply_markup,
                       aq_tg_result *out)
{
    cJSON *p = aq_tg_send_message_params(chat_id, text, reply_markup);
    int rc = aq_tg_call(cfg, "sendMessage", p, out);
    cJSON_Delete(p);
    return rc;
}

cJSON *aq_tg_answer_callback_params(const char *callback_query_id, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "callback_query_id", callback_query_id);
    if (text) cJSON_AddStringToObject(p, "text", text);
    return p;
}

int aq_tg_answer_callback(const aq_config *cfg, const char *callback_query_id, const char *text,
                          aq_tg_result *out)
{
    cJSON *p = aq_tg_answer_callback_params(callback_query_id, text);
    int rc = aq_tg_call(cfg, "answerCallbackQuery", p, out);
    cJSON_Delete(p);
    return rc;
}

int aq_tg_get_updates(const aq_config *cfg, long long offset, int timeout_s, aq_tg_result *out)
{
    char off[32];
    snprintf(off, sizeof off, "%lld", offset);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddRawToObject(p, "offset", off);
    cJSON_AddNumberToObject(p, "timeout", timeout_s > 0 ? timeout_s : 0);
    cJSON *allowed = cJSON_AddArrayToObject(p, "allowed_updates");
    cJSON_AddItemToArray(allowed, cJSON_CreateString("message"));
    cJSON_AddItemToArray(allowed, cJSON_CreateString("callback_query"));
    int rc = call(cfg, "getUpdates", p, (timeout_s > 0 ? timeout_s * 1000L : 0) + cfg->telegram_timeout_ms, out);
    cJSON_Delete(p);
    return rc;
}

/* ---- the splitter ---- */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Bytes in the code point at s[i] (s has n bytes): 1..4; a malformed or
 * truncated sequence's first byte stands alone. */
static size_t cp_len(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + len > n) return 1;
    for (size_t k = 1; k < len; k++)
        if ((s[i + k] & 0xC0) != 0x80) return 1;
    return len;
}

/* Is the line starting at s[j] blank (only spaces, tabs, CRs up to a '\n')? */
static int blank_line_at(const unsigned char *s, size_t j, size_t n)
{
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
    return j < n && s[j] == '\n';
}

/* The best cut c in [lo, hi] (the chunk is s[pos..c), the next starts at c);
 * hi is a code-point boundary and is the hard cut. */
static size_t find_cut(const unsigned char *s, size_t n, size_t pos, size_t lo, size_t hi)
{
    for (size_t c = hi + 1; c-- > lo;)
        if (s[c] == '\n' && blank_line_at(s, c + 1, n)) return c;
    for (size_t c = hi + 1; c-- > lo;)
        if (s[c] == '\n') return c;
    for (size_t c = hi + 1; c-- > lo;)
        if (c > pos && (s[c] == ' ' || s[c] == '\t') && (s[c - 1] == '.' || s[c - 1] == '!' || s[c - 1] == '?'))
            return c;
    for (size_t c = hi + 1; c-- > lo;)
        if (is_ws(s[c])) return c;
    return hi;
}

int aq_tg_split(const char *text, size_t limit, size_t *starts, size_t *lens, int max_chunks)
{
    if (limit < 2) return AQ_EINVAL;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), pos = 0;
    while (pos < n && is_ws(s[pos])) pos++;
    if (pos == n) return 0;   /* empty or only whitespace */
    pos = 0;
    int count = 0;
    for (;;) {
        /* the longest prefix that fits (end), and where it reaches half the limit (half) */
        size_t end = pos, units = 0, half = pos;
        while (end < n) {
            size_t l = cp_len(s, end, n), u = l == 4 ? 2 : 1;
            if (units + u > limit) break;
            units += u;
            end += l;
            if (units <= limit / 2) half = end;
        }
        size_t cut = end == n ? n : find_cut(s, n, pos, half, end);
        size_t e = cut;
        if (cut < n)
            while (e > pos && is_ws(s[e - 1])) e--;
        if (e > pos) {
            if (count == max_chunks) return AQ_ETOOBIG;
            starts[count] = pos;
            lens[count] = e - pos;
            count++;
        }
        if (cut == n) break;
        pos = cut;
        while (pos < n && is_ws(s[pos])) pos++;
        if (pos == n) break;
    }
    return count;
}
