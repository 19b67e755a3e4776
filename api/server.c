/* server.c — one API thread: its libuv loop, h2o context, database
 * connection (LISTEN aq_done), start and graceful stop. Its connections are
 * accepted and bounded in accept.c.
 *
 * DESIGN (stop): on request the thread stops accepting, asks h2o to wind
 * down (GOAWAY on HTTP/2, no more keep-alive on HTTP/1), and shuts the read
 * side of every open connection: idle keep-alive connections then read EOF
 * and close at once, while a request being answered is not reading and
 * finishes normally. The loop ends when no connection is left, or at a 10 s
 * deadline (notes/toolchain.md, h2o pitfall 7).
 *
 * DESIGN (start): a thread accepts connections only once its database
 * connection is up (or after AQ_READY_WAIT_MS, so that /healthz and clear
 * 503s still answer while the database is down). Until then the other
 * threads take the connections, or they wait in the kernel's backlog. */
#include "api.h"
#include "aq_jobs.h"
#include "aq_log.h"
#include "aq_time.h"

#define AQ_READY_WAIT_MS 5000

static void start_accepting(api_thread *t)
{
    if (t->accepting || t->stopping) return;
    t->accepting = 1;
    uv_timer_stop(&t->ready_timer);
    aq_api_accept_start(t);
}

static void on_ready_timer(uv_timer_t *timer)
{
    api_thread *t = timer->data;
    aq_warn("api", "thread %d: no database connection after %d ms; accepting anyway (requests get 503 until it connects)",
            t->index, AQ_READY_WAIT_MS);
    start_accepting(t);
}

static void on_pg_state(void *arg, int connected)
{
    api_thread *t = arg;
    t->db_ready = 0;
    if (!connected) {
        aq_api_waiters_wake_all(t);
        return;
    }
    /* the session answers in UTC, never JIT-compiles (these statements are
     * short; a compile costs tens of ms), plans every statement for the
     * tables of the moment, and listens for finished jobs. plan_cache_mode:
     * a prepared statement (the enqueue batch), and every statement inside
     * the functions the API calls (aq_queued_locked's count of a user's
     * queued jobs, run by every batch under a quota), would otherwise switch
     * after five runs to a generic plan made from the sizes of that moment:
     * made on an empty jobs table, that count read the whole table on every
     * batch once it held rows (test: api_plans_follow_the_table). */
    aq_pgloop_query(t->pg, "SET TimeZone = 'UTC'", 0, NULL, NULL, NULL);
    aq_pgloop_query(t->pg, "SET jit = off", 0, NULL, NULL, NULL);
    aq_pgloop_query(t->pg, "SET plan_cache_mode = force_custom_plan", 0, NULL, NULL, NULL);
    aq_api_enqueue_prepare(t);
    aq_pgloop_query(t->pg, "LISTEN " AQ_CHANNEL_DONE, 0, NULL, NULL, NULL);
    aq_pgloop_query(t->pg, "LISTEN " AQ_CHANNEL_AUTH, 0, NULL, NULL, NULL);
    aq_pgloop_sync(t->pg, NULL, NULL);
    aq_api_auth_forget(t, NULL);   /* tokens revoked while the connection was down */
    t->db_ready = 1;
    start_accepting(t);
    aq_api_enqueue_on_ready(t);
}

static void on_pg_notify(void *arg, const PGnotify *n)
{
    if (!strcmp(n->relname, AQ_CHANNEL_AUTH)) aq_api_auth_forget(arg, n->extra);
    else aq_api_waiters_on_notify(arg, n->extra);
}

static void close_noop(uv_handle_t *h) { (void)h; }

static void finish(api_thread *t)
{
    uv_timer_stop(&t->drain_timer);
    uv_close((uv_handle_t *)&t->drain_timer, close_noop);
    uv_close((uv_handle_t *)&t->ready_timer, close_noop);
    uv_close((uv_handle_t *)&t->stop_async, close_noop);
    aq_api_accept_close(t);
    aq_api_rate_sync_close(t);
    aq_pgloop_close(t->pg);
    t->pg = NULL;
    uv_stop(&t->loop);
}

static void on_drain_timer(uv_timer_t *timer)
{
    api_thread *t = timer->data;
    int open = atomic_load(&t->connections);
    if (open == 0 || aq_now_mono_ms() >= t->drain_deadline) {
        if (open) aq_warn("api", "thread %d: %d connections still open at the deadline", t->index, open);
        finish(t);
    }
}

static void on_stop(uv_async_t *a)
{
    api_thread *t = a->data;
    if (t->stopping) return;
    t->stopping = 1;
    uv_timer_stop(&t->ready_timer);
    h2o_context_request_shutdown(&t->ctx);
    aq_api_waiters_wake_all(t);   /* parked long-polls answer now, with the job as it is */
    aq_api_accept_stop(t);
    t->drain_deadline = aq_now_mono_ms() + 10000;
    uv_timer_start(&t->drain_timer, on_drain_timer, 0, 5);
}

static void *thread_main(void *arg)
{
    api_thread *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
    return NULL;
}

int aq_api_thread_start(api_thread *t)
{
    api_server *srv = t->srv;
    uv_loop_init(&t->loop);
    h2o_context_init(&t->ctx, &t->loop, &srv->h2o);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = srv->h2o.hosts;
    if (aq_api_accept_thread_init(t)) return -1;
    uv_timer_init(&t->loop, &t->ready_timer);
    t->ready_timer.data = t;
    uv_timer_start(&t->ready_timer, on_ready_timer, AQ_READY_WAIT_MS, 0);
    uv_async_init(&t->loop, &t->stop_async, on_stop);
    t->stop_async.data = t;
    uv_timer_init(&t->loop, &t->drain_timer);
    t->drain_timer.data = t;
    aq_pgloop_callbacks cb = {on_pg_state, on_pg_notify, t};
    t->pg = aq_pgloop_create(&t->loop, srv->cfg->database_url, &cb);
    aq_api_auth_thread_init(t);
    aq_api_enqueue_thread_init(t);
    aq_api_waiters_thread_init(t);
    if (t->index == 0) aq_api_rate_sync_start(t);
    aq_pgloop_start(t->pg);
    return pthread_create(&t->tid, NULL, thread_main, t) == 0 ? 0 : -1;
}

void aq_api_server_request_stop(api_server *srv) { atomic_store(&srv->stopping, 1); }

void aq_api_thread_request_stop(api_thread *t)
{
    uv_async_send(&t->stop_async);
}
