/* aq_buf.c — growable buffer (see aq_buf.h). */
#include "aq_buf.h"
#include "aq_alloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void aq_buf_init(aq_buf *b) { b->p = NULL; b->len = b->cap = 0; }
void aq_buf_dispose(aq_buf *b) { free(b->p); aq_buf_init(b); }
void aq_buf_reset(aq_buf *b) { b->len = 0; if (b->p) b->p[0] = '\0'; }

static void reserve(aq_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = aq_realloc(b->p, cap);
    b->cap = cap;
}

void aq_buf_add(aq_buf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void aq_buf_adds(aq_buf *b, const char *s) { aq_buf_add(b, s, strlen(s)); }

void aq_buf_addf(aq_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void aq_buf_add_json_str(aq_buf *b, const char *s)
{
    aq_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  aq_buf_add(b, "\\\"", 2); break;
        case '\\': aq_buf_add(b, "\\\\", 2); break;
        case '\n': aq_buf_add(b, "\\n", 2); break;
        case '\r': aq_buf_add(b, "\\r", 2); break;
        case '\t': aq_buf_add(b, "\\t", 2); break;
        default:
            if (*p < 0x20) aq_buf_addf(b, "\\u%04x", *p);
            else aq_buf_add(b, (const char *)p, 1);
        }
    }
    aq_buf_add(b, "\"", 1);
}

char *aq_buf_take(aq_buf *b)
{
    char *p = b->p ? b->p : aq_strdup("");
    aq_buf_init(b);
    return p;
}

char *aq_scrub(char *s, const char *secret, const char *mask)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (!s || !sl || !strstr(s, secret)) return s;
    aq_buf b;
    aq_buf_init(&b);
    const char *p = s, *hit;
    while ((hit = strstr(p, secret))) {
        aq_buf_add(&b, p, (size_t)(hit - p));
        aq_buf_adds(&b, mask);
        p = hit + sl;
    }
    aq_buf_adds(&b, p);
    free(s);
    return aq_buf_take(&b);
}
