/* aq_buf.h — a growable byte buffer for building SQL parameters and JSON.
 * Caller-owned struct: aq_buf_init / aq_buf_dispose. Always NUL-terminated. */
#ifndef AQ_BUF_H
#define AQ_BUF_H
#include <stddef.h>

typedef struct aq_buf { char *p; size_t len, cap; } aq_buf;

void aq_buf_init(aq_buf *b);
void aq_buf_dispose(aq_buf *b);
void aq_buf_reset(aq_buf *b);
void aq_buf_add(aq_buf *b, const char *s, size_t n);
void aq_buf_adds(aq_buf *b, const char *s);
void aq_buf_addf(aq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a quoted JSON string (s must be valid UTF-8; see aq_json.h). */
void aq_buf_add_json_str(aq_buf *b, const char *s);
/* Hand the heap string to the caller (who frees it) and re-init the buffer. */
char *aq_buf_take(aq_buf *b);
/* s (heap) with every occurrence of secret replaced by mask; returns s itself
 * when there is none (or secret is empty), else a new heap string and frees
 * s. For error texts that may echo a credential (a bot token, an API key). */
char *aq_scrub(char *s, const char *secret, const char *mask);

#endif
