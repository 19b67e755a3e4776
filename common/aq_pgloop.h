/* aq_pgloop.h — one asynchronous libpq connection driven by a libuv loop, in
 * pipeline mode, with LISTEN support and automatic reconnect.
 *
 * Queries are queued with aq_pgloop_query/_exec/_prepare and closed into a
 * transaction by aq_pgloop_sync: everything between two syncs is one implicit
 * transaction, committed at the sync, and all of it costs one round trip.
 * Callbacks run on the loop thread, in the order the operations were queued.
 *
 * When the connection drops, every pending callback is called with res ==
 * NULL, on_state(arg, 0) is called, and the connection is retried with
 * backoff (100 ms doubling to 5 s); on_state(arg, 1) announces each
 * (re)connection, which is where a caller re-prepares and re-LISTENs.
 * Loop thread only. */
#ifndef AQ_PGLOOP_H
#define AQ_PGLOOP_H
#include <libpq-fe.h>
#include <uv.h>

typedef struct aq_pgloop aq_pgloop;

/* res is NULL when the connection was lost; the module PQclear()s it after the
 * callback returns. */
typedef void (*aq_pgloop_result_cb)(void *arg, PGresult *res);

typedef struct aq_pgloop_callbacks {
    void (*on_state)(void *arg, int connected);
    void (*on_notify)(void *arg, const PGnotify *n);
    void *arg;
} aq_pgloop_callbacks;

/* Returns a new, not yet connecting, connection object. */
aq_pgloop *aq_pgloop_create(uv_loop_t *loop, const char *conninfo, const aq_pgloop_callbacks *cb);
void aq_pgloop_start(aq_pgloop *pg);
int aq_pgloop_ready(const aq_pgloop *pg);
/* Last connection error text (static until the next attempt; never NULL). */
const char *aq_pgloop_error(const aq_pgloop *pg);

/* Each returns 0, or AQ_EUNAVAIL when not connected (the callback is then not
 * called). */
int aq_pgloop_query(aq_pgloop *pg, const char *sql, int n, const char *const *params,
                    aq_pgloop_result_cb cb, void *arg);
int aq_pgloop_prepare(aq_pgloop *pg, const char *name, const char *sql,
                      aq_pgloop_result_cb cb, void *arg);
int aq_pgloop_exec(aq_pgloop *pg, const char *name, int n, const char *const *params,
                   aq_pgloop_result_cb cb, void *arg);
/* Ends the transaction; cb gets the PIPELINE_SYNC result when it committed
 * (or ended a failed one), the error result when the commit itself failed (a
 * deferred constraint), or NULL when the connection was lost: a caller that
 * answers anyone on what the transaction wrote must wait for this. */
int aq_pgloop_sync(aq_pgloop *pg, aq_pgloop_result_cb cb, void *arg);
/* Number of queued operations whose callbacks have not run yet. */
int aq_pgloop_pending(const aq_pgloop *pg);

/* Fails pending operations (callbacks get NULL), closes the connection and
 * frees pg once libuv has closed its handles. */
void aq_pgloop_close(aq_pgloop *pg);

#endif
