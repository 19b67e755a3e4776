/* http.c — request parsing for bin/agentq-fake (see fake.h): the request
 * line, headers, Content-Length and chunked bodies. Pure functions over a
 * byte buffer that the caller refills; they never read past len and treat
 * every byte as hostile. Lenient where clients differ harmlessly (bare LF
 * line ends, empty lines before the request line), strict where a wrong
 * guess would desynchronise the connection (Content-Length, chunk sizes). */
#include "fake.h"
#include "aq_alloc.h"
#include "aq_json.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CHUNK_LINE 4096   /* chunk-size line or trailer line */

void aq_fake_req_init(aq_fake_req *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
}

void aq_fake_req_dispose(aq_fake_req *r)
{
    free(r->target);
    cJSON_Delete(r->headers);
    aq_fake_req_init(r);
}

static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The line starting at p: its length without CR/LF in *n; returns the offset
 * just past its LF, or 0 when no LF within buf[p..len). */
static size_t line_at(const char *buf, size_t len, size_t p, size_t *n)
{
    const char *lf = memchr(buf + p, '\n', len - p);
    if (!lf) return 0;
    size_t e = (size_t)(lf - buf);
    *n = e - p;
    if (*n && buf[e - 1] == '\r') (*n)--;
    return e + 1;
}

static int request_line(const char *s, size_t n, aq_fake_req *req, const char **why)
{
    const char *sp1 = memchr(s, ' ', n);
    if (!sp1 || sp1 == s || (size_t)(sp1 - s) >= sizeof req->method) {
        *why = "bad request line";
        return -1;
    }
    for (const char *p = s; p < sp1; p++)
        if (!is_tchar((unsigned char)*p)) { *why = "bad method"; return -1; }
    memcpy(req->method, s, (size_t)(sp1 - s));
    req->method[sp1 - s] = '\0';
    const char *t = sp1 + 1, *end = s + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t) { *why = "bad request line"; return -1; }
    for (const char *p = t; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) { *why = "bad request target"; return -1; }
    req->target = aq_strndup(t, (size_t)(sp2 - t));
    aq_utf8_sanitize(req->target);   /* it goes into the JSON log */
    const char *v = sp2 + 1;
    if (end - v != 8 || memcmp(v, "HTTP/1.", 7) || (v[7] != '0' && v[7] != '1')) {
        *why = "bad HTTP version";
        return -1;
    }
    req->minor = v[7] - '0';
    req->keep_alive = req->minor == 1;
    req->head_only = !strcmp(req->method, "HEAD");
    return 0;
}

/* Does the comma-separated list v contain token tok (any case)? */
static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        const char *e = v;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - v) == tl && !strncasecmp(v, tok, tl)) return 1;
        v = e;
    }
    return 0;
}

/* One "name: value" line: checked, lowercased, added to req->headers. */
static int header_line(const char *s, size_t n, aq_fake_req *req, const char **why)
{
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s) { *why = "bad header line"; return -1; }
    char name[256];
    size_t nl = (size_t)(colon - s);
    if (nl >= sizeof name) { *why = "header name too long"; return -1; }
    for (size_t i = 0; i < nl; i++) {
        if (!is_tchar((unsigned char)s[i])) { *why = "bad header name"; return -1; }
        name[i] = (char)tolower((unsigned char)s[i]);
    }
    name[nl] = '\0';
    const char *v = colon + 1, *e = s + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    for (const char *p = v; p < e; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
            *why = "bad header value";
            return -1;
        }
    char *value = aq_strndup(v, (size_t)(e - v));
    aq_utf8_sanitize(value);   /* it goes into the JSON log */
    int rc = 0;
    if (!strcmp(name, "content-length")) {
        char *end;
        long long cl = strtoll(value, &end, 10);
        if (!*value || *end || !isdigit((unsigned char)value[0]) || strlen(value) > 18) {
            *why = "bad Content-Length";
            rc = -1;
        } else if (req->content_length >= 0 && req->content_length != cl) {
            *why = "conflicting Content-Length";
            rc = -1;
        } else {
            req->content_length = cl;
        }
    } else if (!strcmp(name, "transfer-encoding")) {
        if (strcasecmp(value, "chunked") || req->chunked) rc = 1;   /* answered 501 */
        else req->chunked = 1;
    } else if (!strcmp(name, "connection")) {
        if (has_token(value, "close")) req->keep_alive = 0;
        else if (has_token(value, "keep-alive")) req->keep_alive = 1;
    } else if (!strcmp(name, "expect")) {
        req->expect_continue = !strcasecmp(value, "100-continue");
    }
    cJSON *old = cJSON_GetObjectItemCaseSensitive(req->headers, name);
    if (old) {
        char *joined = aq_sprintf("%s, %s", old->valuestring, value);
        cJSON_ReplaceItemInObjectCaseSensitive(req->headers, name, cJSON_CreateString(joined));
        free(joined);
    } else {
        cJSON_AddItemToObject(req->headers, name, cJSON_CreateString(value));
    }
    free(value);
    return rc;
}

int aq_fake_parse_head(const char *buf, size_t len, aq_fake_req *req, const char **why)
{
    aq_fake_req_dispose(req);
    req->headers = cJSON_CreateObject();
    *why = NULL;
    size_t p = 0, n = 0, next;
    while (p < len && (buf[p] == '\r' || buf[p] == '\n')) p++;   /* stray line ends before a request */
    if (p > AQ_FAKE_MAX_HEAD) { *why = "request head too large"; return AQ_FAKE_TOO_LARGE; }
    next = line_at(buf, len, p, &n);
    if (!next) {
        if (len > AQ_FAKE_MAX_HEAD) { *why = "request head too large"; return AQ_FAKE_TOO_LARGE; }
        return AQ_FAKE_MORE;
    }
    if (memchr(buf + p, '\0', n)) { *why = "NUL in request line"; return AQ_FAKE_BAD; }
    if (request_line(buf + p, n, req, why)) return AQ_FAKE_BAD;
    int headers = 0, unsupported = 0;
    for (p = next;;) {
        if (p > AQ_FAKE_MAX_HEAD) { *why = "request head too large"; return AQ_FAKE_TOO_LARGE; }
        next = line_at(buf, len, p, &n);
        if (!next) {
            if (len > AQ_FAKE_MAX_HEAD) { *why = "request head too large"; return AQ_FAKE_TOO_LARGE; }
            return AQ_FAKE_MORE;
        }
        if (next > AQ_FAKE_MAX_HEAD) { *why = "request head too large"; return AQ_FAKE_TOO_LARGE; }
        if (n == 0) break;
        if (buf[p] == ' ' || buf[p] == '\t') { *why = "obsolete header folding"; return AQ_FAKE_BAD; }
        if (++headers > AQ_FAKE_MAX_HEADERS) { *why = "too many headers"; return AQ_FAKE_TOO_LARGE; }
        if (memchr(buf + p, '\0', n)) { *why = "NUL in header"; return AQ_FAKE_BAD; }
        int rc = header_line(buf + p, n, req, why);
        if (rc < 0) return AQ_FAKE_BAD;
        if (rc > 0) unsupported = 1;
        p = next;
    }
    req->head_len = next;
    if (unsupported) { *why = "unsupported Transfer-Encoding"; return AQ_FAKE_UNSUPPORTED; }
    if (req->chunked && req->content_length >= 0) {
        *why = "both Content-Length and Transfer-Encoding";
        return AQ_FAKE_BAD;
    }
    if (req->content_length > (long long)AQ_FAKE_MAX_BODY) {
        *why = "request body too large";
        return AQ_FAKE_TOO_LARGE;
    }
    return AQ_FAKE_DONE;
}

int aq_fake_chunked(const char *buf, size_t len, aq_buf *out, size_t *used, const char **why)
{
    size_t p = 0, total = 0, n;
    *why = NULL;
    for (;;) {
        size_t next = line_at(buf, len, p, &n);
        if (!next) {
            if (len - p > MAX_CHUNK_LINE) { *why = "chunk size line too long"; return AQ_FAKE_BAD; }
            return AQ_FAKE_MORE;
        }
        if (n > MAX_CHUNK_LINE) { *why = "chunk size line too long"; return AQ_FAKE_BAD; }
        size_t size = 0, i = 0;
        for (; i < n && isxdigit((unsigned char)buf[p + i]); i++) {
            if (i >= 15) { *why = "chunk size too large"; return AQ_FAKE_TOO_LARGE; }
            int c = tolower((unsigned char)buf[p + i]);
            size = size * 16 + (size_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
        }
        if (i == 0) { *why = "bad chunk size"; return AQ_FAKE_BAD; }
        while (i < n && (buf[p + i] == ' ' || buf[p + i] == '\t')) i++;
        if (i < n && buf[p + i] != ';') { *why = "bad chunk size"; return AQ_FAKE_BAD; }
        p = next;
        if (size == 0) break;
        if (size > AQ_FAKE_MAX_BODY - total) {
            *why = "request body too large";
            return AQ_FAKE_TOO_LARGE;
        }
        total += size;
        if (len - p < size) return AQ_FAKE_MORE;
        size_t after = p + size;
        if (len - after < 1 || (buf[after] == '\r' && len - after < 2)) return AQ_FAKE_MORE;
        size_t end;
        if (buf[after] == '\n') end = after + 1;
        else if (buf[after] == '\r' && buf[after + 1] == '\n') end = after + 2;
        else { *why = "chunk data not followed by CRLF"; return AQ_FAKE_BAD; }
        if (out) aq_buf_add(out, buf + p, size);
        p = end;
    }
    for (;;) {   /* trailers, then the empty line */
        size_t next = line_at(buf, len, p, &n);
        if (!next) {
            if (len - p > MAX_CHUNK_LINE) { *why = "trailer line too long"; return AQ_FAKE_BAD; }
            return AQ_FAKE_MORE;
        }
        if (n > MAX_CHUNK_LINE) { *why = "trailer line too long"; return AQ_FAKE_BAD; }
        p = next;
        if (n == 0) break;
    }
    *used = p;
    return AQ_FAKE_DONE;
}
