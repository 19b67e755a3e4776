/* aq_imap.c — see aq_imap.h. */
#include "aq_imap.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void init_curl(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

struct aq_imap {
    const aq_imap_account *a;
    CURL *curl;
    char error[512];
    char said[300];        /* the server's last tagged NO/BAD line */
    /* the command in progress */
    aq_buf *body;          /* untagged text the write callback gets */
    aq_buf *literal;       /* a fetch: the message */
    size_t want;           /* the literal's announced size; SIZE_MAX: not seen yet */
    size_t max_bytes;
    int over;
};

aq_imap *aq_imap_open(const aq_imap_account *a)
{
    pthread_once(&curl_once, init_curl);
    aq_imap *s = aq_calloc(1, sizeof *s);
    s->a = a;
    s->curl = curl_easy_init();
    if (!s->curl) abort();   /* out of memory */
    return s;
}

void aq_imap_close(aq_imap *s)
{
    if (!s) return;
    curl_easy_cleanup(s->curl);
    free(s);
}

const char *aq_imap_error(const aq_imap *s) { return s->error; }

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    aq_imap *s = ud;
    size_t len = size * n;
    if (s->body && s->body->len + len < 4 * 1024 * 1024) aq_buf_add(s->body, p, len);
    return len;
}

/* Server lines (and, during a fetch, the literal's bytes). */
static size_t on_line(char *p, size_t size, size_t n, void *ud)
{
    aq_imap *s = ud;
    size_t len = size * n;
    if (s->literal && s->want != SIZE_MAX && s->literal->len < s->want) {
        size_t take = s->want - s->literal->len < len ? s->want - s->literal->len : len;
        aq_buf_add(s->literal, p, take);
        return len;
    }
    if (s->literal && s->want == SIZE_MAX && len > 4 && len < 200 && p[0] == '*' && memmem(p, len, "FETCH", 5)) {
        const char *brace = memrchr(p, '{', len);
        if (brace) {
            unsigned long long v = strtoull(brace + 1, NULL, 10);
            if (v > s->max_bytes) { s->over = 1; return 0; }   /* abort the transfer */
            s->want = (size_t)v;
            return len;
        }
    }
    /* "A004 NO [AUTHENTICATIONFAILED] Authentication failed." */
    const char *sp = memchr(p, ' ', len < 16 ? len : 16);
    if (p[0] == 'A' && sp && len - (size_t)(sp - p) > 3 && (!strncmp(sp, " NO ", 4) || !strncmp(sp, " BAD ", 5))) {
        size_t l = len - (size_t)(sp + 1 - p);
        while (l && (sp[1 + l - 1] == '\r' || sp[1 + l - 1] == '\n')) l--;
        snprintf(s->said, sizeof s->said, "%.*s", (int)l, sp + 1);
    }
    return len;
}

/* Run one command on the mailbox's URL (custom: the IMAP command). */
static int run(aq_imap *s, const char *custom, aq_buf *body)
{
    const aq_imap_account *a = s->a;
    CURL *c = s->curl;
    char url[700];
    snprintf(url, sizeof url, "%s://%s:%d/", a->tls ? "imaps" : "imap", a->host, a->port);
    /* the mailbox as a URL path: percent-encoded */
    char *mb = curl_easy_escape(c, a->mailbox, 0);
    strncat(url, mb ? mb : "INBOX", sizeof url - strlen(url) - 1);
    curl_free(mb);
    s->error[0] = s->said[0] = '\0';
    s->body = body;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "imap,imaps");
    curl_easy_setopt(c, CURLOPT_USERNAME, a->username);
    curl_easy_setopt(c, CURLOPT_PASSWORD, a->password);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, custom);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, a->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, a->timeout_ms < 10000 ? a->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, a->tls_verify ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, a->tls_verify ? 2L : 0L);
    if (a->ca_file && a->ca_file[0]) curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_line);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    CURLcode rc = curl_easy_perform(c);
    s->body = NULL;
    if (rc == CURLE_OK) return 0;
    if (s->over) {
        snprintf(s->error, sizeof s->error, "the message is over the %zu-byte limit", s->max_bytes);
        return AQ_ETOOBIG;
    }
    const char *why = s->said[0] ? s->said : curl_easy_strerror(rc);
    snprintf(s->error, sizeof s->error, "%s", why);
    switch (rc) {
    case CURLE_LOGIN_DENIED: return AQ_EAUTH;
    case CURLE_QUOTE_ERROR: case CURLE_REMOTE_FILE_NOT_FOUND: case CURLE_REMOTE_ACCESS_DENIED:
        return AQ_EIO;
    default:
        return s->said[0] ? AQ_EIO : AQ_EUNAVAIL;
    }
}

static int cmp_uid(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

int aq_imap_unseen(aq_imap *s, size_t max, uint32_t **uids, size_t *n)
{
    *uids = NULL;
    *n = 0;
    aq_buf body;
    aq_buf_init(&body);
    int rc = run(s, "UID SEARCH UNSEEN", &body);
    if (rc) goto done;
    /* "* SEARCH 1 2 3\r\n" */
    const char *p = body.p ? strstr(body.p, "* SEARCH") : NULL;
    size_t cap = 0;
    if (p) {
        p += 8;
        while (*p && *p != '\r' && *p != '\n') {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) { p++; continue; }
            if (*n == cap) { cap = cap ? cap * 2 : 16; *uids = aq_realloc(*uids, cap * sizeof **uids); }
            (*uids)[(*n)++] = (uint32_t)v;
            p = end;
        }
    }
    if (*n) qsort(*uids, *n, sizeof **uids, cmp_uid);
    if (*n > max) *n = max;
done:
    aq_buf_dispose(&body);
    return rc;
}

int aq_imap_fetch(aq_imap *s, uint32_t uid, size_t max_bytes, aq_buf *raw)
{
    aq_buf_reset(raw);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "UID FETCH %u BODY.PEEK[]", uid);
    s->literal = raw;
    s->want = SIZE_MAX;
    s->max_bytes = max_bytes;
    s->over = 0;
    int rc = run(s, cmd, NULL);
    s->literal = NULL;
    if (rc) return rc;
    if (s->want == SIZE_MAX) {
        snprintf(s->error, sizeof s->error, "message %u: no such message in the mailbox", uid);
        return AQ_EIO;
    }
    if (raw->len != s->want) {
        snprintf(s->error, sizeof s->error, "message %u: %zu of its %zu bytes arrived", uid, raw->len, s->want);
        return AQ_EUNAVAIL;
    }
    return 0;
}

int aq_imap_mark_seen(aq_imap *s, uint32_t uid)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "UID STORE %u +FLAGS.SILENT (\\Seen)", uid);
    return run(s, cmd, NULL);
}
