/* http_multi.h — HTTP requests performed by the worker's libuv loop on one
 * libcurl multi handle (the requests of handlers that await: aq_ctx_http).
 * Thousands may be in flight at once; each costs a curl easy handle and its
 * socket, no thread. The request setup and the response reading are
 * common/aq_http.c's (aq_http_xfer_*), shared with the blocking client.
 * Loop thread only. */
#ifndef AQ_HTTP_MULTI_H
#define AQ_HTTP_MULTI_H
#include <uv.h>
#include "aq_http.h"

typedef struct aq_http_multi aq_http_multi;
typedef struct aq_http_call aq_http_call;

/* done(arg, rc, resp): the transfer ended (rc 0: a response arrived, else
 * AQ_EIO with resp->error); the callee owns *resp (aq_http_resp_dispose).
 * The call is freed right after done returns. */
typedef void (*aq_http_done_fn)(void *arg, int rc, aq_http_resp *resp);

aq_http_multi *aq_http_multi_create(uv_loop_t *loop);
/* Start req (not kept: what the transfer needs is copied). */
aq_http_call *aq_http_multi_start(aq_http_multi *m, const aq_http_request *req, aq_http_done_fn done, void *arg);
/* Abort a call in flight: its connection is closed, its handle freed, done
 * never runs. */
void aq_http_multi_abort(aq_http_multi *m, aq_http_call *call);
/* Transfers in flight. */
int aq_http_multi_count(const aq_http_multi *m);
/* Abort every call (their done never runs), close the loop handles; the
 * multi frees itself once they are closed. */
void aq_http_multi_close(aq_http_multi *m);

#endif
