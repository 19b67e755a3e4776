/* aq_pgloop.c — asynchronous libpq on libuv (see aq_pgloop.h).
 *
 * DESIGN: the connection is always in pipeline mode once connected. Each
 * queued operation is a record in a FIFO; results are matched to records in
 * order. A query or prepare yields its result then NULL; a sync yields
 * PGRES_PIPELINE_SYNC with no NULL after it, so we only call PQgetResult while
 * a record is waiting (with nothing pending it returns NULL forever).
 *
 * Connecting follows the libpq/libuv rules in notes/toolchain.md: start by
 * waiting for writability, stop the poll before every PQconnectPoll, and
 * re-create the uv_poll_t whenever PQsocket() changes, closing the old handle
 * first (libuv aborts if a watched fd is closed and reused). */
#include "aq_pgloop.h"
#include "aq_alloc.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_IDLE, ST_CONNECTING, ST_READY, ST_BACKOFF, ST_CLOSING };
enum { OP_QUERY, OP_SYNC };

typedef struct op {
    int kind;
    aq_pgloop_result_cb cb;
    void *arg;
    PGresult *res;
    int stray;                  /* a sync: a result came before it (its NULL follows) */
    struct op *next;
} op;

struct aq_pgloop {
    uv_loop_t *loop;
    char *conninfo;
    aq_pgloop_callbacks cb;
    PGconn *conn;
    uv_poll_t *poll;
    int poll_fd, poll_events;
    uv_timer_t timer;
    int state;
    unsigned backoff_ms;
    int handles_open;
    op *head, *tail;
    int pending;
    char error[512];
};

static void on_poll(uv_poll_t *h, int status, int events);
static void start_connect(aq_pgloop *pg);

static void free_handle(uv_handle_t *h) { free(h); }

static void poll_close(aq_pgloop *pg)
{
    if (!pg->poll) return;
    uv_poll_stop(pg->poll);
    uv_close((uv_handle_t *)pg->poll, free_handle);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

/* Watch fd for events, re-creating the handle if the socket changed. */
static void poll_watch(aq_pgloop *pg, int fd, int events)
{
    if (pg->poll && pg->poll_fd != fd) poll_close(pg);
    if (!pg->poll) {
        pg->poll = aq_malloc(sizeof *pg->poll);
        uv_poll_init(pg->loop, pg->poll, fd);
        pg->poll->data = pg;
        pg->poll_fd = fd;
        pg->poll_events = 0;
    }
    if (events != pg->poll_events) {
        uv_poll_start(pg->poll, events, on_poll);
        pg->poll_events = events;
    }
}

static void set_error(aq_pgloop *pg, const char *msg)
{
    snprintf(pg->error, sizeof pg->error, "%s", msg && *msg ? msg : "connection failed");
    size_t n = strlen(pg->error);
    while (n && (pg->error[n - 1] == '\n' || pg->error[n - 1] == ' ')) pg->error[--n] = '\0';
}

static void fail_ops(aq_pgloop *pg)
{
    op *o = pg->head;
    pg->head = pg->tail = NULL;
    pg->pending = 0;
    while (o) {
        op *next = o->next;
        if (o->res) PQclear(o->res);
        if (o->cb) o->cb(o->arg, NULL);
        free(o);
        o = next;
    }
}

static void on_timer(uv_timer_t *t) { start_connect(t->data); }

/* The connection is gone: fail everything pending and schedule a reconnect. */
static void lose(aq_pgloop *pg, const char *why)
{
    int was_ready = pg->state == ST_READY;
    set_error(pg, why);
    poll_close(pg);
    if (pg->conn) { PQfinish(pg->conn); pg->conn = NULL; }
    pg->state = ST_BACKOFF;
    aq_warn("pg", "database connection lost: %s (retry in %u ms)", pg->error, pg->backoff_ms);
    uv_timer_start(&pg->timer, on_timer, pg->backoff_ms, 0);
    pg->backoff_ms = pg->backoff_ms * 2 > 5000 ? 5000 : pg->backoff_ms * 2;
    fail_ops(pg);
    if (was_ready && pg->cb.on_state) pg->cb.on_state(pg->cb.arg, 0);
}

static void flush(aq_pgloop *pg)
{
    int r = PQflush(pg->conn);
    if (r < 0) { lose(pg, PQerrorMessage(pg->conn)); return; }
    poll_watch(pg, PQsocket(pg->conn), UV_READABLE | (r == 1 ? UV_WRITABLE : 0));
}

static void connect_step(aq_pgloop *pg, PostgresPollingStatusType st)
{
    if (st == PGRES_POLLING_FAILED) { lose(pg, PQerrorMessage(pg->conn)); return; }
    int fd = PQsocket(pg->conn);
    if (st == PGRES_POLLING_OK) {
        if (PQsetnonblocking(pg->conn, 1) != 0 || PQenterPipelineMode(pg->conn) != 1) {
            lose(pg, PQerrorMessage(pg->conn));
            return;
        }
        pg->state = ST_READY;
        pg->backoff_ms = 100;
        pg->error[0] = '\0';
        poll_watch(pg, fd, UV_READABLE);
        aq_info("pg", "database connected");
        if (pg->cb.on_state) pg->cb.on_state(pg->cb.arg, 1);
        return;
    }
    poll_watch(pg, fd, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
}

static void start_connect(aq_pgloop *pg)
{
    pg->state = ST_CONNECTING;
    const char *keys[AQ_DB_PARAMS_MAX], *values[AQ_DB_PARAMS_MAX];
    aq_db_params(pg->conninfo, keys, values);
    pg->conn = PQconnectStartParams(keys, values, 1);
    if (!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD) {
        lose(pg, pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        return;
    }
    aq_db_route_notices(pg->conn);
    connect_step(pg, PGRES_POLLING_WRITING);
}

/* Match available results to queued operations, in order. */
static void drain_results(aq_pgloop *pg)
{
    while (pg->head && pg->state == ST_READY) {
        if (PQisBusy(pg->conn)) break;
        PGresult *r = PQgetResult(pg->conn);
        op *h = pg->head;
        if (h->kind == OP_SYNC) {
            if (!r) {
                if (h->stray) { h->stray = 0; continue; }   /* the end of a stray result's results */
                break;
            }
            if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
                /* a result before the sync: the error that failed the commit
                 * (a deferred constraint; the server going away) is kept for
                 * the sync's callback, anything else dropped */
                if (!h->res && PQresultStatus(r) == PGRES_FATAL_ERROR) h->res = r;
                else PQclear(r);
                h->stray = 1;
                continue;
            }
        } else if (r) {
            if (!h->res) h->res = r; else PQclear(r);
            continue;
        }
        pg->head = h->next;
        if (!pg->head) pg->tail = NULL;
        pg->pending--;
        PGresult *res = h->res ? h->res : r;   /* a sync: its commit's error, or the sync */
        if (res != r) PQclear(r);
        if (h->cb) h->cb(h->arg, res);
        PQclear(res);
        free(h);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    aq_pgloop *pg = h->data;
    if (pg->state == ST_CONNECTING) {
        uv_poll_stop(pg->poll);
        pg->poll_events = 0;
        connect_step(pg, PQconnectPoll(pg->conn));
        return;
    }
    if (pg->state != ST_READY) return;
    if (status < 0) { lose(pg, uv_strerror(status)); return; }
    if (events & UV_WRITABLE) {
        flush(pg);
        if (pg->state != ST_READY) return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(pg->conn) || PQstatus(pg->conn) == CONNECTION_BAD) {
            lose(pg, PQerrorMessage(pg->conn));
            return;
        }
        drain_results(pg);
        if (pg->state != ST_READY) return;
        PGnotify *n;
        while (pg->state == ST_READY && (n = PQnotifies(pg->conn))) {
            if (pg->cb.on_notify) pg->cb.on_notify(pg->cb.arg, n);
            PQfreemem(n);
        }
    }
}

aq_pgloop *aq_pgloop_create(uv_loop_t *loop, const char *conninfo, const aq_pgloop_callbacks *cb)
{
    aq_pgloop *pg = aq_calloc(1, sizeof *pg);
    pg->loop = loop;
    pg->conninfo = aq_strdup(conninfo ? conninfo : "");
    if (cb) pg->cb = *cb;
    pg->poll_fd = -1;
    pg->backoff_ms = 100;
    uv_timer_init(loop, &pg->timer);
    pg->timer.data = pg;
    pg->handles_open = 1;
    return pg;
}

void aq_pgloop_start(aq_pgloop *pg)
{
    if (pg->state == ST_IDLE) start_connect(pg);
}

int aq_pgloop_ready(const aq_pgloop *pg) { return pg->state == ST_READY; }
const char *aq_pgloop_error(const aq_pgloop *pg) { return pg->error; }
int aq_pgloop_pending(const aq_pgloop *pg) { return pg->pending; }

static int push(aq_pgloop *pg, int ok, int kind, aq_pgloop_result_cb cb, void *arg)
{
    if (!ok) { lose(pg, PQerrorMessage(pg->conn)); return AQ_EUNAVAIL; }
    op *o = aq_calloc(1, sizeof *o);
    o->kind = kind;
    o->cb = cb;
    o->arg = arg;
    if (pg->tail) pg->tail->next = o; else pg->head = o;
    pg->tail = o;
    pg->pending++;
    return 0;
}

int aq_pgloop_query(aq_pgloop *pg, const char *sql, int n, const char *const *params,
                    aq_pgloop_result_cb cb, void *arg)
{
    if (pg->state != ST_READY) return AQ_EUNAVAIL;
    return push(pg, PQsendQueryParams(pg->conn, sql, n, NULL, params, NULL, NULL, 0), OP_QUERY, cb, arg);
}

int aq_pgloop_prepare(aq_pgloop *pg, const char *name, const char *sql, aq_pgloop_result_cb cb, void *arg)
{
    if (pg->state != ST_READY) return AQ_EUNAVAIL;
    return push(pg, PQsendPrepare(pg->conn, name, sql, 0, NULL), OP_QUERY, cb, arg);
}

int aq_pgloop_exec(aq_pgloop *pg, const char *name, int n, const char *const *params,
                   aq_pgloop_result_cb cb, void *arg)
{
    if (pg->state != ST_READY) return AQ_EUNAVAIL;
    return push(pg, PQsendQueryPrepared(pg->conn, name, n, params, NULL, NULL, 0), OP_QUERY, cb, arg);
}

int aq_pgloop_sync(aq_pgloop *pg, aq_pgloop_result_cb cb, void *arg)
{
    if (pg->state != ST_READY) return AQ_EUNAVAIL;
    if (push(pg, PQpipelineSync(pg->conn) == 1, OP_SYNC, cb, arg)) return AQ_EUNAVAIL;
    flush(pg);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    aq_pgloop *pg = h->data;
    if (--pg->handles_open == 0) {
        free(pg->conninfo);
        free(pg);
    }
}

void aq_pgloop_close(aq_pgloop *pg)
{
    pg->state = ST_CLOSING;
    poll_close(pg);
    if (pg->conn) { PQfinish(pg->conn); pg->conn = NULL; }
    fail_ops(pg);
    uv_timer_stop(&pg->timer);
    uv_close((uv_handle_t *)&pg->timer, on_handle_closed);
}
