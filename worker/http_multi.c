/* http_multi.c — libcurl's multi interface driven by the worker's libuv loop
 * (see http_multi.h; the pitfalls it follows are in the shared toolchain
 * notes): a uv_poll_t per socket created lazily in the socket callback and
 * bound with curl_multi_assign, closed on CURL_POLL_REMOVE; one uv_timer the
 * timer callback only arms or stops; curl_multi_socket_action runs from the
 * poll and timer callbacks only, and after each one the finished transfers
 * are read (curl_multi_info_read) and removed. */
#include "http_multi.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <curl/curl.h>
#include <stdlib.h>

struct aq_http_call {
    aq_http_multi *m;
    CURL *h;
    aq_http_xfer *x;
    aq_http_request *req;          /* the copy the handle points into */
    aq_http_done_fn done;
    void *arg;
    aq_http_call *prev, *next;
};

struct aq_http_multi {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    aq_http_call *calls;
    struct sock *socks;
    int ncalls, closing, open_handles;
};

typedef struct sock {
    uv_poll_t poll;
    aq_http_multi *m;
    curl_socket_t fd;
    struct sock *prev, *next;
} sock;

static void close_sock(aq_http_multi *m, sock *s);

static void drop_handle(uv_handle_t *h)
{
    aq_http_multi *m = h->data;
    if (h != (uv_handle_t *)&m->timer) free(h);   /* a socket's poll: the sock struct starts with it */
    if (--m->open_handles == 0 && m->closing) free(m);
}

static void unlink_call(aq_http_call *c)
{
    aq_http_multi *m = c->m;
    if (c->prev) c->prev->next = c->next; else m->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    m->ncalls--;
}

static void free_call(aq_http_call *c, int rc, aq_http_resp *resp)
{
    curl_multi_remove_handle(c->m->multi, c->h);
    aq_http_resp r;
    aq_http_xfer_finish(c->x, rc, resp ? resp : &r);
    if (!resp) aq_http_resp_dispose(&r);
    curl_easy_cleanup(c->h);
    aq_http_request_free(c->req);
    unlink_call(c);
}

static void read_done(aq_http_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        aq_http_call *c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = msg->data.result;
        aq_http_resp resp;
        free_call(c, rc, &resp);
        aq_http_done_fn done = c->done;
        void *arg = c->arg;
        free(c);
        done(arg, resp.error ? AQ_EIO : 0, &resp);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock *s = (sock *)p;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    aq_http_multi *m = s->m;
    curl_multi_socket_action(m->multi, s->fd, flags, &running);
    read_done(m);
}

static void on_timer(uv_timer_t *t)
{
    aq_http_multi *m = t->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_done(m);
}

static void close_sock(aq_http_multi *m, sock *s)
{
    if (s->prev) s->prev->next = s->next; else m->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, drop_handle);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    aq_http_multi *m = userp;
    sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            close_sock(m, s);
            curl_multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = aq_calloc(1, sizeof *s);
        s->m = m;
        s->fd = fd;
        if (uv_poll_init_socket(m->loop, &s->poll, fd)) { free(s); return -1; }
        s->poll.data = m;
        m->open_handles++;
        s->next = m->socks;
        if (m->socks) m->socks->prev = s;
        m->socks = s;
        curl_multi_assign(m->multi, fd, s);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int on_timeout(CURLM *multi, long ms, void *userp)
{
    aq_http_multi *m = userp;
    if (ms < 0) uv_timer_stop(&m->timer);
    else uv_timer_start(&m->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

aq_http_multi *aq_http_multi_create(uv_loop_t *loop)
{
    aq_http_multi *m = aq_calloc(1, sizeof *m);
    m->loop = loop;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->open_handles = 1;
    return m;
}

/* libcurl (and the TLS library under it: ~3 MiB resident once initialised)
 * is set up at the first request, not at start: a worker that never calls
 * out stays small. */
static void ensure_multi(aq_http_multi *m)
{
    if (m->multi) return;
    aq_http_global_init();
    m->multi = curl_multi_init();
    if (!m->multi) abort();
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
}

aq_http_call *aq_http_multi_start(aq_http_multi *m, const aq_http_request *req, aq_http_done_fn done, void *arg)
{
    ensure_multi(m);
    aq_http_call *c = aq_calloc(1, sizeof *c);
    c->m = m;
    c->done = done;
    c->arg = arg;
    c->req = aq_http_request_copy(req);
    c->h = curl_easy_init();
    if (!c->h) abort();
    c->x = aq_http_xfer_start(c->h, c->req);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    c->next = m->calls;
    if (m->calls) m->calls->prev = c;
    m->calls = c;
    m->ncalls++;
    curl_multi_add_handle(m->multi, c->h);   /* arms the timer: the transfer starts from the loop */
    return c;
}

void aq_http_multi_abort(aq_http_multi *m, aq_http_call *c)
{
    if (!c) return;
    free_call(c, CURLE_ABORTED_BY_CALLBACK, NULL);
    free(c);
}

int aq_http_multi_count(const aq_http_multi *m) { return m->ncalls; }

void aq_http_multi_close(aq_http_multi *m)
{
    if (!m) return;
    while (m->calls) aq_http_multi_abort(m, m->calls);
    if (m->multi) curl_multi_cleanup(m->multi);   /* closes its cached connections */
    m->multi = NULL;
    while (m->socks) close_sock(m, m->socks);
    m->closing = 1;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, drop_handle);
}
