/* aq_http.h — the HTTP client of handlers (the LLM provider, Telegram's Bot
 * API): one request description (aq_http_request) and one response shape
 * (aq_http_resp), performed either blocking on the calling thread
 * (aq_http_perform: the API side, the CLI, blocking handlers) or by the
 * worker's event loop on libcurl's multi interface (worker/http_multi.c, for
 * handlers that await: aq_ctx_http in aq_handler.h). Both go through the same
 * easy-handle setup and the same response reading below (aq_http_xfer_*),
 * so a request behaves alike either way.
 *
 * The blocking path keeps one curl easy handle per thread, so connections
 * to a host are reused across calls; a thread that used it calls
 * aq_http_thread_cleanup() before it exits. libcurl is initialised on first
 * use (curl_global_init under pthread_once; aq_http_global_init does it
 * eagerly, before threads start). */
#ifndef AQ_HTTP_H
#define AQ_HTTP_H
#include <stddef.h>

typedef struct aq_http_resp {
    long status;          /* HTTP status; 0 when no response arrived */
    char *body;           /* heap, NUL-terminated, never NULL after a call ("" on failure) */
    size_t len;           /* bytes in body (at most the call's max_bytes) */
    long retry_after_ms;  /* the Retry-After header (seconds or a date) in ms, or -1 */
    char *error;          /* NULL, or why there is no usable response (heap) */
    int curl_code;        /* curl's result (CURLE_*, 0 = OK) */
} aq_http_resp;

/* One request. url: http or https only. headers: "Name: value" lines,
 * NULL-terminated (NULL: none). body: body_len bytes (NULL: none). The whole
 * exchange is bounded by timeout_ms, the connect phase by min(timeout_ms,
 * 10 s); the reply body by max_bytes. method NULL: POST. A URL or header may
 * hold a secret (the bot token, an API key): aq_http_request_free wipes them. */
typedef struct aq_http_request {
    const char *method;
    const char *url;
    const char *const *headers;
    const char *body;
    size_t body_len;
    long timeout_ms;
    size_t max_bytes;
} aq_http_request;

/* A deep copy (heap; the strings too), and its disposal (wipes url and headers). */
aq_http_request *aq_http_request_copy(const aq_http_request *req);
void aq_http_request_free(aq_http_request *req);

/* Perform req on this thread (blocking, up to its timeout). Always fills
 * *out (dispose it with aq_http_resp_dispose). Returns 0 when a complete
 * response arrived, whatever its status; else AQ_EIO with out->error set to
 * curl's reason (no URL in it) or "reply over N MiB"/"reply over N bytes" —
 * status may then still hold a status line that arrived. */
int aq_http_perform(const aq_http_request *req, aq_http_resp *out);
/* POST body (JSON text) to url with Content-Type: application/json and, when
 * bearer is not NULL, "Authorization: Bearer bearer" (aq_http_perform). */
int aq_http_post_json(const char *url, const char *bearer, const char *body, long timeout_ms, size_t max_bytes,
                      aq_http_resp *out);
void aq_http_resp_dispose(aq_http_resp *r);
/* Free this thread's curl handle (and its connections); harmless if none. */
void aq_http_thread_cleanup(void);
/* curl_global_init, once (also done lazily by the first request). */
void aq_http_global_init(void);

/* ---- the shared transfer, for the two drivers (here and worker/http_multi.c) ---- */
typedef struct aq_http_xfer aq_http_xfer;
/* Set up easy handle h (fresh or reset) for req; the transfer keeps what the
 * handle points at (headers, body, the reply sink) until aq_http_xfer_finish. */
aq_http_xfer *aq_http_xfer_start(void *h, const aq_http_request *req);
/* After the transfer ended with curl result rc: fill *out as aq_http_perform
 * does and free the transfer (not the easy handle). Returns 0 or AQ_EIO. */
int aq_http_xfer_finish(aq_http_xfer *x, int rc, aq_http_resp *out);

#endif
