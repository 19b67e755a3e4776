/* api.h — what the files of agentq-api share: the server, its threads, and the
 * call (one request being answered asynchronously).
 *
 * Shape of the process: N threads, each with its own libuv loop, h2o context
 * and aq_pgloop database connection (pipeline mode), all accepting from one
 * listening socket the process owns alone (accept.c). A
 * request is routed (routes.c), authenticated (auth.c, cached per thread),
 * validated, and answered from one or more pipelined queries on its thread's
 * connection; nothing blocks a loop. Job inserts from concurrent requests are
 * batched into one statement and one commit (enqueue.c); ?wait= long-polls
 * park until the job's 'aq_done' notification (waiters.c). */
#ifndef AQ_API_H
#define AQ_API_H
#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <cJSON.h>
#include <stdatomic.h>
#include <stdint.h>
#include "aq_config.h"
#include "aq_pgloop.h"

#if !H2O_USE_LIBUV
#error "agentq-api is built on h2o's libuv flavour"
#endif

typedef struct api_server api_server;
typedef struct api_thread api_thread;
typedef struct api_call api_call;
typedef struct api_guard api_guard;

/* Route ids, for dispatch and metrics. */
enum {
    R_HEALTHZ, R_READYZ, R_METRICS, R_CHAT, R_JOBS_LIST, R_JOBS_CREATE, R_JOB_GET, R_JOB_CANCEL,
    R_SESSION_MESSAGES, R_ACTIONS_LIST, R_ACTION_DECIDE, R_SCHEDULES_LIST, R_SCHEDULES_CREATE, R_SCHEDULE_GET,
    R_SCHEDULE_PATCH, R_SCHEDULE_DELETE, R_TELEGRAM_WEBHOOK, R_TELEGRAM_LINK, R_CHANNELS_LIST, R_NOTIFICATIONS_LIST,
    R_NOTIFICATION_READ, R_AUDIT_LIST, R_TASKS_LIST, R_TASK_DECIDE, R_CONNECTIONS_LIST, R_CONNECTIONS_CREATE,
    R_CONNECTION_DELETE, R_JOB_RETRY, R_QUEUE, R_SESSIONS_LIST, R_CRON_NEXT, R_WEB, R_NOT_FOUND, R_COUNT
};
extern const char *const aq_api_route_names[R_COUNT];

#define API_LATENCY_BUCKETS 12
extern const double aq_api_latency_bounds[API_LATENCY_BUCKETS];   /* seconds */
/* The statuses counted by code; any other is counted under the last slot, "other". */
#define API_STATUSES 20
extern const int aq_api_statuses[API_STATUSES - 1];

struct api_server {
    const aq_config *cfg;
    unsigned char key[32];
    h2o_globalconf_t h2o;
    int nthreads;
    api_thread *threads;
    int listen_family;
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    int listen_fd;                 /* bound and listening; each thread polls a dup of it */
    long max_connections;          /* AGENTQ_MAX_CONNECTIONS, lowered to fit the fd limit */
    atomic_int connections;        /* open client connections, all threads */
    atomic_int evicting;           /* of those, idle ones told to close to make room */
    atomic_int waits;              /* parked long-polls, all threads */
    atomic_int stopping;           /* set before the threads are told to stop: no more hand-overs */
    char *queues;                  /* AGENTQ_API_QUEUES without spaces, or NULL (the workers' queues) */
    /* metrics, summed over threads */
    atomic_ullong requests[R_COUNT][API_STATUSES];   /* by route and status (aq_api_statuses) */
    atomic_ullong latency[R_COUNT][API_LATENCY_BUCKETS + 1];   /* by route, long-polls left out */
    atomic_ullong latency_sum_us[R_COUNT];
    atomic_ullong long_polls[R_COUNT];             /* answered after parking on ?wait= */
    /* per-user request rate and parked long-polls (limits.c) */
    void *limits;
};

struct api_thread {
    api_server *srv;
    int index;
    pthread_t tid;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_poll_t listener;            /* on srv->listen_fd's dup */
    int listen_fd;
    uv_timer_t accept_timer;       /* retry accepting after a pause (at the cap, or out of fds) */
    int paused;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    uv_timer_t ready_timer;   /* start-up: accept anyway after this, database or not */
    int accepting;
    uint64_t drain_deadline;
    int stopping;
    atomic_int connections;        /* open here, plus those handed over and not yet taken */
    atomic_int open_to_handoff;    /* accepting, and not stopping: other threads may hand it connections */
    pthread_mutex_t inbox_mu;      /* connections accepted by another thread for this one */
    int *inbox;
    int ninbox, inbox_cap, inbox_closed;
    uv_async_t inbox_async;
    h2o_linklist_t sockets;        /* open client connections, for shutdown */
    aq_pgloop *pg;
    int db_ready;
    void *auth_cache;              /* auth.c */
    void *enqueue;                 /* enqueue.c */
    void *waiters;                 /* waiters.c */
    void *rate_sync;               /* rate_sync.c (thread 0 only) */
};

struct api_call {
    api_thread *t;
    h2o_req_t *req;                /* NULL once the client has gone */
    api_guard *guard;
    uint64_t start_us;
    int route;
    int64_t user_id;
    int operator;
    int64_t id;                    /* id taken from the path, if any */
    int64_t ref_id;                /* a related row's id an endpoint carries to its answer */
    char uuid[37];                 /* session id taken from the path, if any */
    char tok_id[17];               /* presented token: id and hash of its secret */
    unsigned char tok_hash[32];
    cJSON *body;
    void (*next)(api_call *);      /* what runs once authenticated */
    char **kept;                   /* owned strings, freed with the call (aq_api_keep) */
    int nkept;
    int no_wait;                   /* answer GET-style without reading ?wait= (after a cancel) */
    int cancelling;                /* a cancel marked a running job: the job's answer is 202 */
    long wait_s;                   /* ?wait= */
    uv_timer_t *wait_timer;
    void (*wait_done)(api_call *c); /* answers a parked call once woken (waiters.c) */
    int wait_counted;              /* holds one of the user's parked-wait slots (limits.c) */
};

/* ---- calls (http.c) ---- */
api_call *aq_api_call_new(api_thread *t, h2o_req_t *req, int route);
/* Send a response and free the call. status 2xx..5xx; body is JSON text. */
void aq_api_reply(api_call *c, int status, const char *json, size_t len);
void aq_api_reply_text(api_call *c, int status, const char *content_type, const char *body, size_t len);
/* {"error":{"code","message"}} with the code's HTTP status; fmt may be NULL. */
void aq_api_reply_error(api_call *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Free without answering (the client is gone). */
void aq_api_call_free(api_call *c);
/* Keep s until the call ends; returns s. */
char *aq_api_keep(api_call *c, char *s);
/* Value of query parameter name (first occurrence; %xx and '+' decoded);
 * heap string kept by the call, or NULL when absent. */
const char *aq_api_query_param(api_call *c, const char *name);
/* Its pure part: the value of parameter name in query[0..len) (the text after
 * '?'), decoded, as a heap string the caller frees; NULL when absent. */
char *aq_api_query_value(const char *query, size_t len, const char *name);
/* Header value (first occurrence) or NULL; *len receives its length. */
const char *aq_api_header(h2o_req_t *req, const h2o_token_t *token, size_t *len);
const char *aq_api_header_str(h2o_req_t *req, const char *name, size_t *len);
/* One pipelined query as its own transaction; cb gets its result once the
 * transaction has committed (an error at once), or NULL if the connection
 * dropped or the commit failed. Answers 503 itself (and returns -1) when the
 * database is down. */
int aq_api_query(api_call *c, const char *sql, int n, const char *const *params,
                 void (*cb)(api_call *c, PGresult *res));
/* The caller's user id as an SQL parameter, or NULL (SQL NULL: all rows)
 * for an operator; queries filter with ($n::bigint IS NULL OR user_id = $n). */
const char *aq_api_owner_param(api_call *c);
/* Answer a query whose first row's first column is the JSON to send: status
 * with it, 404 with `missing` when there is no row, 503 when the query
 * failed. aq_api_reply_200 is the callback for a query that always has a row. */
void aq_api_reply_row(api_call *c, PGresult *res, int status, const char *missing);
void aq_api_reply_200(api_call *c, PGresult *res);
/* The string field key of the parsed body: UTF-8, not blank, at most
 * max_chars characters. 0 with *out (NULL when absent and not required), or
 * -1 once a 422 naming the field has been sent. */
int aq_api_text_field(api_call *c, const char *key, long max_chars, int required, const char **out);
/* True when s[0..n) is a UUID in 8-4-4-4-12 hex form (any case). */
int aq_api_is_uuid(const char *s, size_t n);
/* A decimal integer in [lo, hi], digits only (no sign unless lo < 0, no
 * spaces, no '+'): 0, or -1 when s is anything else. */
int aq_api_parse_int(const char *s, long long lo, long long hi, long long *out);
/* Parse the body as a JSON object into c->body; answers 400/413/422 and returns -1 otherwise:
 * raw control characters in strings (or anywhere but JSON whitespace) are 400,
 * a \u0000 escape is 422 (the database's jsonb cannot store U+0000), and
 * in a UTF-8 body, anything else aq_json_strict refuses (a repeated key at
 * any depth, an unpaired surrogate escape, nesting over 64) is 400 (invalid
 * UTF-8 stays for the handlers: 422). */
int aq_api_parse_body(api_call *c);
/* Its pure part, for s[0..n): 0 with the object in *out (the caller
 * cJSON_Deletes it); or NULL in *out, the reason in why, and AQ_EJSON
 * (control character, not JSON, not an object, not strict JSON) or
 * AQ_EINVAL (\u0000). */
int aq_api_body_parse(const char *s, size_t n, cJSON **out, char *why, size_t whylen);
/* Before routing: 1 once the request has been answered 400 bad_request (conflicting
 * Content-Length, or both Content-Length and Transfer-Encoding; the
 * connection closes) or 431 headers_too_large (over API_MAX_HEADER_BYTES). */
#define API_MAX_HEADER_BYTES 32768
int aq_api_request_refused(api_thread *t, h2o_req_t *req, int route);

/* ---- per-user limits shared by the threads (limits.c) ---- */
void aq_api_limits_init(api_server *srv);
/* 1 when user_id may make another request now: the local token bucket and,
 * while flushes are answered, the shared one as last learned (any thread). */
int aq_api_rate_allow(api_server *srv, int64_t user_id);
/* Take the users asked for since the last call and the requests admitted for
 * each (0 when all were refused); both arrays are the caller's (free), NULL
 * when none. Any thread. */
size_t aq_api_rate_collect(api_server *srv, int64_t **users, long **counts);
/* The shared buckets' levels the database answered for users (n may be 0:
 * the flush had nothing to send); marks the shared levels fresh. */
void aq_api_rate_learn(api_server *srv, size_t n, const int64_t *users, const double *levels);
/* Shared levels older than this (or 10 flush intervals, if longer) are not
 * obeyed: the database is not answering and the local bucket alone counts. */
#define API_RATE_STALE_MS 1000

/* ---- sharing the rate between processes (rate_sync.c) ---- */
/* Start flushing every AGENTQ_RATE_SYNC_MS on t's loop and connection (one
 * thread per process does); no-op when it is 0. */
void aq_api_rate_sync_start(api_thread *t);
void aq_api_rate_sync_close(api_thread *t);
/* 1 (and the slot is taken) when user_id may park one more long-poll. */
int aq_api_wait_acquire(api_server *srv, int64_t user_id);
void aq_api_wait_release(api_server *srv, int64_t user_id);

/* ---- auth (auth.c) ---- */
void aq_api_auth_thread_init(api_thread *t);
/* Drop token id from this thread's cache (sent on 'aq_auth' when a token is
 * revoked or replaced), or every entry when token_id is NULL. Loop thread. */
void aq_api_auth_forget(api_thread *t, const char *token_id);
/* Authenticate, rate-limit, then run c->next (or answer 401/429/503). */
void aq_api_authenticate(api_call *c);

/* ---- routes ---- */
int aq_api_route(api_thread *t, h2o_req_t *req);
/* The pure part of routing: the route table's entry for method and path
 * (trailing slashes ignored) as an index, with *route_id (an R_ value) and
 * *id / uuid from the path; or -1 with *route_id R_NOT_FOUND and, in allow
 * (allowcap bytes), the methods the path does take ("" for an unknown path). */
int aq_api_route_find(const char *method, size_t mlen, const char *path, size_t len, int *route_id,
                      int64_t *id, char uuid[37], char *allow, size_t allowcap);
void aq_api_healthz(api_call *c);
void aq_api_readyz(api_call *c);
void aq_api_metrics(api_call *c);
void aq_api_chat(api_call *c);
void aq_api_jobs_create(api_call *c);
/* POST /v1/jobs's fields, checked (pure: no request, no database; the
 * api_body fuzzer reaches it): body is the parsed body of
 * body_len bytes, hkey[0..hlen) the Idempotency-Key header (NULL: none).
 * 0 with *f filled (pointers into body or hkey; input_json heap, the
 * caller frees), or AQ_EINVAL / AQ_ETOOBIG with why. */
typedef struct aq_api_job_fields {
    const char *type, *queue, *run_at, *key;   /* queue, run_at, key: NULL when absent */
    size_t key_len;
    int priority;
    char *input_json;                          /* the input as stored (aq_json_print), "{}" when absent */
} aq_api_job_fields;
int aq_api_job_fields_check(const cJSON *body, size_t body_len, const char *hkey, size_t hlen, long max_body,
                            long max_email, aq_api_job_fields *f, char *why, size_t whylen);
void aq_api_job_get(api_call *c);
void aq_api_jobs_list(api_call *c);
void aq_api_job_cancel(api_call *c);
void aq_api_session_messages(api_call *c);
void aq_api_actions_list(api_call *c);
void aq_api_action_approve(api_call *c);
void aq_api_action_reject(api_call *c);
void aq_api_audit_list(api_call *c);
void aq_api_schedules_list(api_call *c);
void aq_api_schedules_create(api_call *c);
void aq_api_schedule_get(api_call *c);
void aq_api_schedule_patch(api_call *c);
void aq_api_schedule_delete(api_call *c);
void aq_api_telegram_webhook(api_call *c);
void aq_api_telegram_link(api_call *c);
void aq_api_channels_list(api_call *c);
void aq_api_notifications_list(api_call *c);
void aq_api_notification_read(api_call *c);
void aq_api_tasks_list(api_call *c);
void aq_api_task_accept(api_call *c);
void aq_api_task_dismiss(api_call *c);
void aq_api_connections_list(api_call *c);
void aq_api_connections_create(api_call *c);
void aq_api_connection_delete(api_call *c);
void aq_api_job_retry(api_call *c);       /* console_api.c */
void aq_api_queue(api_call *c);
void aq_api_sessions_list(api_call *c);
void aq_api_cron_next(api_call *c);

/* ---- the web console's files (web.c) ---- */
/* Answer a GET for path (one of the console's files): 0, or -1 when there is
 * no such file (nothing sent; the caller answers 404). */
int aq_api_web_serve(api_call *c, const char *path, size_t len);

/* ---- enqueue batching (enqueue.c) ---- */
typedef struct api_enqueue_req {
    const char *job_type;
    const char *input_json;        /* a JSON object */
    const char *queue;             /* NULL: default */
    int priority;
    const char *run_at;            /* ISO 8601 or NULL */
    const char *session_id;        /* uuid or NULL */
    int claim_session;             /* the client chose session_id: create its chat_sessions row now, or
                                    * refuse the row if the session is someone else's (a fresh random id
                                    * the server chose cannot be contested; the worker makes its row) */
    const char *idempotency_key;   /* already scoped to the user, or NULL */
    const char *request_hash;      /* with a key: 64 hex digits naming the request (a replay must match) */
    int check_type;                /* job_type must be in job_types with api_enqueue */
} api_enqueue_req;
typedef struct api_enqueue_result {
    int64_t job_id;                /* 0 when not inserted */
    int duplicate;                 /* the key existed: job_id is the earlier job */
    int over_quota;
    int session_foreign;           /* session_id belongs to someone else */
    int type_refused;              /* check_type and the type is not allowed */
    int queue_refused;             /* check_type and the queue is not served (AGENTQ_API_QUEUES) */
    int key_mismatch;              /* duplicate, but the key's first request was a different one */
    int failed;                    /* database error or connection lost */
    int bad_value;                 /* failed: the database rejected a value (SQLSTATE class 22) */
    const char *message;           /* failed: why (valid during the callback) */
} api_enqueue_result;
void aq_api_enqueue_thread_init(api_thread *t);
/* Queue r (copied) for the next batch; cb runs once it is committed or failed. */
void aq_api_enqueue(api_call *c, const api_enqueue_req *r, void (*cb)(api_call *c, const api_enqueue_result *res));
void aq_api_enqueue_prepare(api_thread *t);   /* on each new connection, before its first batch */
void aq_api_enqueue_on_ready(api_thread *t);

/* ---- long-poll (waiters.c) ---- */
void aq_api_waiters_thread_init(api_thread *t);
/* Park c until job c->id finishes or c->wait_s passes, then call done(c) on
 * the loop thread (the GET answers again), or free c if its request is gone. */
void aq_api_wait_for_job(api_call *c, void (*done)(api_call *c));
void aq_api_waiters_on_notify(api_thread *t, const char *payload);
/* Answer every parked call now (database lost, or shutting down). */
void aq_api_waiters_wake_all(api_thread *t);

/* ---- listening and connections (accept.c) ---- */
/* Bind and listen on AGENTQ_LISTEN (the port must be free: no SO_REUSEPORT),
 * raise the fd limit and size max_connections: 0, or -1 with errno. */
int aq_api_listen(api_server *srv);
/* The connection a request came on is busy until its request is done. */
void aq_api_conn_request_started(api_thread *t, h2o_req_t *req);
int aq_api_accept_thread_init(api_thread *t);
/* take connections (the database is up, or waited for) */
void aq_api_accept_start(api_thread *t);
void aq_api_accept_stop(api_thread *t);    /* no more; shut the read side of those open */
void aq_api_accept_close(api_thread *t);   /* the loop is ending: close the handles */

/* ---- server (server.c) ---- */
int aq_api_thread_start(api_thread *t);
/* Call once for the server, then aq_api_thread_request_stop for each thread. */
void aq_api_server_request_stop(api_server *srv);
void aq_api_thread_request_stop(api_thread *t);

#endif
