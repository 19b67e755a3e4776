/* aq_alloc.h — allocation wrappers. Out of memory aborts here, in one place,
 * so callers never check for NULL. */
#ifndef AQ_ALLOC_H
#define AQ_ALLOC_H
#include <stddef.h>

void *aq_malloc(size_t n);
void *aq_calloc(size_t count, size_t size);
void *aq_realloc(void *p, size_t n);
char *aq_strdup(const char *s);
char *aq_strndup(const char *s, size_t n);
/* printf into a new heap string; the caller frees it. */
char *aq_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), nonnull(1)));

#endif
