/* aq_http.h — the one blocking HTTP client of handler threads: a JSON POST
 * over libcurl (the LLM provider, Telegram's Bot API). Each thread keeps one
 * curl easy handle, so connections to a host are reused across calls; a
 * thread that used it calls aq_http_thread_cleanup() before it exits.
 * libcurl is initialised on first use (curl_global_init under pthread_once),
 * so a process that never makes a request never loads OpenSSL's state.
 * Handler threads only: a call blocks for up to its timeout. */
#ifndef AQ_HTTP_H
#define AQ_HTTP_H
#include <stddef.h>

typedef struct aq_http_resp {
    long status;          /* HTTP status; 0 when no response arrived */
    char *body;           /* heap, NUL-terminated, never NULL after a call ("" on failure) */
    size_t len;           /* bytes in body (at most the call's max_bytes) */
    long retry_after_ms;  /* the Retry-After header (seconds or a date) in ms, or -1 */
    char *error;          /* NULL, or why there is no usable response (heap) */
} aq_http_resp;

/* POST body (JSON text) to url (http or https only) with Content-Type:
 * application/json and, when bearer is not NULL, "Authorization: Bearer
 * bearer". The whole exchange is bounded by timeout_ms, the connect phase by
 * min(timeout_ms, 10 s); the reply body by max_bytes.
 * Always fills *out (dispose it with aq_http_resp_dispose). Returns 0 when a
 * complete response arrived, whatever its status; else AQ_EIO with
 * out->error set to curl's reason (no URL in it) or "reply over N MiB"/"reply
 * over N bytes" — status may then still hold a status line that arrived. */
int aq_http_post_json(const char *url, const char *bearer, const char *body, long timeout_ms, size_t max_bytes,
                      aq_http_resp *out);
void aq_http_resp_dispose(aq_http_resp *r);
/* Free this thread's curl handle (and its connections); harmless if none. */
void aq_http_thread_cleanup(void);

#endif
