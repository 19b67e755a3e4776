/* accept.c — the API's listening socket and its client connections: bind
 * once, accept on every thread, hand each connection to the least-loaded
 * thread, track which connections are busy, and keep their number bounded.
 *
 * DESIGN (listening): the process binds AGENTQ_LISTEN once, without
 * SO_REUSEPORT, so a second agentq-api on the same port fails with "address
 * in use" instead of silently taking part of the traffic. Every thread polls
 * a dup of that one socket and accepts at most ACCEPT_BURST connections per
 * wake-up; whichever thread accepts hands the connection to the thread with
 * the fewest (its inbox and uv_async), so connections spread evenly, as
 * SO_REUSEPORT's hashing spread them, and a thread still waiting for its
 * database connection gets none.
 *
 * DESIGN (bounds): at start the fd soft limit is raised to the hard limit
 * and AGENTQ_MAX_CONNECTIONS is lowered to fit it. At the cap, a new
 * connection makes room by closing the accepting thread's longest-idle
 * connection (no request in progress: a keep-alive between requests, or a
 * socket that has not finished sending one; a request is in progress from
 * on_req until h2o frees its pool); when none is idle the thread stops
 * accepting (connections wait in the kernel's backlog) and looks again every
 * ACCEPT_RETRY_MS. Long-polls are requests in progress, bounded per user
 * (limits.c), so idle sockets can no longer starve /healthz of descriptors.
 * All on the owning thread's loop, except hand_over (any thread) and the
 * atomic counters. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_log.h"
#include "aq_time.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BURST 8
#define ACCEPT_RETRY_MS 50

typedef struct tracked {
    h2o_linklist_t link;
    api_thread *t;
    h2o_socket_t *sock;      /* NULL once closed (the struct lives on while a request still points at it) */
    int busy;                /* requests in progress on it */
    int evicting;            /* told to close to make room */
    uint64_t idle_since;
} tracked;

static void resume_accepting(api_thread *t);

static void on_sock_close(void *data)
{
    tracked *tr = data;
    api_thread *t = tr->t;
    h2o_linklist_unlink(&tr->link);
    atomic_fetch_sub(&t->connections, 1);
    atomic_fetch_sub(&t->srv->connections, 1);
    if (tr->evicting) atomic_fetch_sub(&t->srv->evicting, 1);
    tr->sock = NULL;
    if (!tr->busy) free(tr);
    if (t->paused) resume_accepting(t);
}

static void on_request_done(void *p)
{
    tracked *tr = *(tracked **)p;
    if (--tr->busy > 0) return;
    if (!tr->sock) free(tr);
    else tr->idle_since = aq_now_mono_ms();
}

void aq_api_conn_request_started(api_thread *t, h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (!sock || sock->on_close.cb != on_sock_close) return;
    tracked *tr = sock->on_close.data;
    tr->busy++;
    tracked **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_request_done);
    *slot = tr;
}

/* Tell this thread's longest-idle connection to close; 1 if there was one. */
static int evict_idle(api_thread *t)
{
    tracked *oldest = NULL;
    for (h2o_linklist_t *l = t->sockets.next; l != &t->sockets; l = l->next) {
        tracked *tr = H2O_STRUCT_FROM_MEMBER(tracked, link, l);
        if (!tr->busy && !tr->evicting && (!oldest || tr->idle_since < oldest->idle_since)) oldest = tr;
    }
    if (!oldest) return 0;
    oldest->evicting = 1;
    atomic_fetch_add(&t->srv->evicting, 1);
    shutdown(h2o_socket_get_fd(oldest->sock), SHUT_RD);   /* h2o reads EOF and closes it */
    return 1;
}

/* Room for one more connection (perhaps by closing an idle one)? */
static int room(api_thread *t)
{
    api_server *srv = t->srv;
    if (atomic_load(&srv->connections) - atomic_load(&srv->evicting) < srv->max_connections) return 1;
    return evict_idle(t);
}

/* fd is a connection accepted for t (and already counted in t->connections). */
static void adopt(api_thread *t, int fd)
{
    uv_tcp_t *conn = aq_malloc(sizeof *conn);
    uv_tcp_init(&t->loop, conn);
    if (uv_tcp_open(conn, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        atomic_fetch_sub(&t->connections, 1);
        atomic_fetch_sub(&t->srv->connections, 1);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    tracked *tr = aq_calloc(1, sizeof *tr);
    tr->t = t;
    tr->sock = sock;
    tr->idle_since = aq_now_mono_ms();
    h2o_linklist_insert(&t->sockets, &tr->link);
    sock->on_close.cb = on_sock_close;
    sock->on_close.data = tr;
    h2o_accept(&t->accept_ctx, sock);
}

static void on_accept_timer(uv_timer_t *timer) { resume_accepting(timer->data); }

/* The thread that should take a new connection: the one with the fewest
 * among those open to hand-overs (t itself on a tie). */
static api_thread *least_loaded(api_thread *t)
{
    api_server *srv = t->srv;
    api_thread *best = t;
    int best_n = atomic_load(&t->connections);
    if (atomic_load(&srv->stopping)) return t;
    for (int i = 0; i < srv->nthreads; i++) {
        api_thread *o = &srv->threads[i];
        if (o == t || !atomic_load(&o->open_to_handoff)) continue;
        int n = atomic_load(&o->connections);
        if (n < best_n) { best = o; best_n = n; }
    }
    return best;
}

/* Give fd to thread to (counted there already); 0, or -1 when it has closed its inbox. */
static int hand_over(api_thread *to, int fd)
{
    pthread_mutex_lock(&to->inbox_mu);
    int ok = !to->inbox_closed;
    if (ok) {
        if (to->ninbox == to->inbox_cap) {
            to->inbox_cap = to->inbox_cap ? to->inbox_cap * 2 : 16;
            to->inbox = aq_realloc(to->inbox, sizeof *to->inbox * (size_t)to->inbox_cap);
        }
        to->inbox[to->ninbox++] = fd;
        uv_async_send(&to->inbox_async);   /* under the lock: the handle cannot be closed meanwhile */
    }
    pthread_mutex_unlock(&to->inbox_mu);
    return ok ? 0 : -1;
}

static void on_inbox(uv_async_t *a)
{
    api_thread *t = a->data;
    pthread_mutex_lock(&t->inbox_mu);
    int n = t->ninbox, *fds = t->inbox;
    t->inbox = NULL;
    t->ninbox = t->inbox_cap = 0;
    pthread_mutex_unlock(&t->inbox_mu);
    for (int i = 0; i < n; i++) {
        if (!t->stopping) { adopt(t, fds[i]); continue; }
        close(fds[i]);   /* handed over as this thread began to stop */
        atomic_fetch_sub(&t->connections, 1);
        atomic_fetch_sub(&t->srv->connections, 1);
    }
    free(fds);
}

/* No more hand-overs to t; connections still in its inbox are closed. */
static void close_inbox(api_thread *t)
{
    atomic_store(&t->open_to_handoff, 0);
    pthread_mutex_lock(&t->inbox_mu);
    t->inbox_closed = 1;
    for (int i = 0; i < t->ninbox; i++) {
        close(t->inbox[i]);
        atomic_fetch_sub(&t->connections, 1);
        atomic_fetch_sub(&t->srv->connections, 1);
    }
    t->ninbox = 0;
    pthread_mutex_unlock(&t->inbox_mu);
}

static void pause_accepting(api_thread *t)
{
    if (t->paused) return;
    t->paused = 1;
    uv_poll_stop(&t->listener);
    uv_timer_start(&t->accept_timer, on_accept_timer, ACCEPT_RETRY_MS, 0);
}

static void on_listener(uv_poll_t *p, int status, int events)
{
    api_thread *t = p->data;
    if (status < 0 || t->stopping) return;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        if (!room(t)) { pause_accepting(t); return; }
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                aq_warn("api", "thread %d: cannot accept: %s (%d connections open)", t->index, strerror(errno),
                        atomic_load(&t->srv->connections));
                pause_accepting(t);
            }
            return;   /* EAGAIN: another thread took it */
        }
        atomic_fetch_add(&t->srv->connections, 1);
        api_thread *to = least_loaded(t);
        atomic_fetch_add(&to->connections, 1);
        if (to == t || hand_over(to, fd) != 0) {
            if (to != t) { atomic_fetch_sub(&to->connections, 1); atomic_fetch_add(&t->connections, 1); }
            adopt(t, fd);
        }
    }
}

static void resume_accepting(api_thread *t)
{
    if (!t->paused || t->stopping) return;
    t->paused = 0;
    uv_timer_stop(&t->accept_timer);
    uv_poll_start(&t->listener, UV_READABLE, on_listener);
}

/* Raise the fd soft limit to the hard one; the cap on connections must fit under it. */
static void fit_fd_limit(api_server *srv)
{
    struct rlimit rl;
    srv->max_connections = srv->cfg->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl.rlim_cur = want.rlim_cur;
        else aq_warn("api", "cannot raise the open file limit from %llu to %llu: %s", (unsigned long long)rl.rlim_cur,
                     (unsigned long long)want.rlim_cur, strerror(errno));
    }
    /* the database connections, the loops' own descriptors, logs: a margin per thread */
    long reserve = 64 + 16L * srv->nthreads;
    long fit = rl.rlim_cur == RLIM_INFINITY ? srv->max_connections : (long)rl.rlim_cur - reserve;
    if (fit < 4) fit = 4;
    if (fit < srv->max_connections) {
        aq_warn("api", "AGENTQ_MAX_CONNECTIONS=%ld does not fit the open file limit (%llu): using %ld",
                srv->cfg->max_connections, (unsigned long long)rl.rlim_cur, fit);
        srv->max_connections = fit;
    }
}

int aq_api_listen(api_server *srv)
{
    fit_fd_limit(srv);
    int fd = socket(srv->listen_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);   /* past TIME_WAIT only; never a second listener */
    if (bind(fd, (struct sockaddr *)&srv->listen_addr, srv->listen_len) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    srv->listen_fd = fd;
    return 0;
}

void aq_api_accept_start(api_thread *t)
{
    if (uv_poll_start(&t->listener, UV_READABLE, on_listener) != 0)
        aq_error("api", "thread %d: cannot accept on %s", t->index, t->srv->cfg->listen);
    atomic_store(&t->open_to_handoff, 1);
}

int aq_api_accept_thread_init(api_thread *t)
{
    h2o_linklist_init_anchor(&t->sockets);
    pthread_mutex_init(&t->inbox_mu, NULL);
    t->listen_fd = fcntl(t->srv->listen_fd, F_DUPFD_CLOEXEC, 0);
    if (t->listen_fd < 0 || uv_poll_init(&t->loop, &t->listener, t->listen_fd) != 0) {
        aq_error("api", "thread %d: cannot poll the listening socket: %s", t->index, strerror(errno));
        return -1;
    }
    t->listener.data = t;
    uv_timer_init(&t->loop, &t->accept_timer);
    t->accept_timer.data = t;
    uv_async_init(&t->loop, &t->inbox_async, on_inbox);
    t->inbox_async.data = t;
    return 0;
}

static void close_listener(uv_handle_t *h)
{
    api_thread *t = h->data;
    close(t->listen_fd);
}

void aq_api_accept_stop(api_thread *t)
{
    atomic_store(&t->open_to_handoff, 0);
    uv_timer_stop(&t->accept_timer);
    uv_close((uv_handle_t *)&t->listener, close_listener);
    for (h2o_linklist_t *l = t->sockets.next; l != &t->sockets; l = l->next) {
        tracked *tr = H2O_STRUCT_FROM_MEMBER(tracked, link, l);
        shutdown(h2o_socket_get_fd(tr->sock), SHUT_RD);
    }
}

static void close_noop(uv_handle_t *h) { (void)h; }

void aq_api_accept_close(api_thread *t)
{
    uv_close((uv_handle_t *)&t->accept_timer, close_noop);
    close_inbox(t);
    uv_close((uv_handle_t *)&t->inbox_async, close_noop);
}
