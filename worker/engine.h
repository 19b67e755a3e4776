/* engine.h — the worker's loop-side engine: claims batches of jobs, runs them
 * as steps on the handler thread pool (pool.h) and their HTTP requests on the
 * loop (http_multi.h), completes them in batches, extends leases,
 * rescues expired ones, heartbeats, prunes, and shuts down gracefully.
 * Loop thread only. */
#ifndef AQ_ENGINE_H
#define AQ_ENGINE_H
#include <uv.h>
#include "aq_config.h"

typedef struct aq_engine aq_engine;

typedef struct aq_engine_opts {
    int concurrency;            /* jobs in flight at once (started, not yet completed) */
    int prefetch;               /* claimed jobs held beyond those running */
    const char *queues;         /* Postgres array literal, e.g. {default,mail} */
    int connections;            /* database connections carrying rounds (>= 1) */
    int handler_threads;        /* threads running handler steps */
    int handler_db_connections; /* database connections lent to handler steps */
} aq_engine_opts;

/* cfg must outlive the engine. on_exit runs once shutdown has finished. */
aq_engine *aq_engine_create(uv_loop_t *loop, const aq_config *cfg, const aq_engine_opts *opts,
                            void (*on_exit)(void *arg), void *arg);
void aq_engine_start(aq_engine *eng);
/* Graceful stop (SIGTERM): stop claiming, hand back jobs not started, let
 * running handlers finish within the grace period, flush, then on_exit. */
void aq_engine_stop(aq_engine *eng);
const char *aq_engine_id(const aq_engine *eng);
/* After the loop has stopped: let the handler threads exit (up to ms), so
 * their per-thread state (database and HTTP handles) is released. */
void aq_engine_join(aq_engine *eng, long ms);
/* After on_exit, aq_engine_join, and a loop pass that ran the close callbacks
 * of the engine's handles: free the engine, its thread pool and what they
 * still hold. When a handler thread outlived the join it still uses both, so
 * then nothing is freed (the process is about to exit). NULL is a no-op. */
void aq_engine_destroy(aq_engine *eng);

/* The session settings every engine connection applies (NULL-terminated) and
 * the SQL it prepares under `name` (aq_claim, aq_succeed, ...; NULL if none):
 * for tests that check the plans those statements get. */
extern const char *const aq_engine_session_settings[];
const char *aq_engine_statement_sql(const char *name);

#endif
