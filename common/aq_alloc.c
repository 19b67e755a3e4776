/* aq_alloc.c — allocation wrappers that abort on out-of-memory. */
#include "aq_alloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"module\":\"alloc\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *aq_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *aq_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *aq_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *aq_strdup(const char *s)
{
    return aq_strndup(s, strlen(s));
}

char *aq_strndup(const char *s, size_t n)
{
    char *d = aq_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *aq_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *s = aq_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
