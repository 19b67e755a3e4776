/* enqueue.c — job inserts from concurrent requests share one statement and
 * one commit.
 *
 * DESIGN: each thread keeps a list of pending inserts. When no batch is in
 * flight on its connection, everything pending (up to MAX_BATCH) goes out as
 * one INSERT ... SELECT FROM jsonb_to_recordset, ending its own transaction;
 * requests arriving meanwhile form the next batch. So at low load a request
 * costs one round trip, and under load one commit serves hundreds of
 * requests. A request hears 202 only after its batch has committed: the
 * INSERT's rows arrive before the commit (at the sync), so they are kept
 * on the requests and answered when the sync reports the commit; a commit
 * that fails or a connection lost in between answers them 503.
 *
 * One statement also checks, per row:
 *  - the user's queued-job quota: each user of the batch is counted once,
 *    never past the quota, after taking that user's advisory lock
 *    (aq_queued_locked, sql/007), so batches on other threads or processes
 *    wait for this one to commit and then count its rows: the quota is
 *    exact, not per batch;
 *  - the session: a session id the client chose is claimed for the user in
 *    this statement (its chat_sessions row, ON CONFLICT DO UPDATE, which
 *    sees a concurrent claim once that commits); a row owned by someone
 *    else, or (before the row exists) someone else's job naming the
 *    session, refuses the job. A batch's rows claim in order, first wins;
 *  - that the job type (and, for POST /v1/jobs, the queue) is accepted;
 *  - the idempotency key (ON CONFLICT DO NOTHING; an earlier job with the
 *    key is returned instead, with whether its request hash matches).
 * The locks are taken before any row is written (chk reads all of u), and
 * in user-id order, so two batches never wait for each other in a cycle.
 * Ids are drawn in advance so every request learns its own row's fate. If
 * the database rejects a batch, its requests are retried one per batch, so
 * one bad value fails only its own request. The workers are woken after the
 * commit, not by it (SQL_WAKE below). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_jobs.h"
#include "aq_log.h"
#include "aq_time.h"
#include <stdlib.h>

#define MAX_BATCH 500

/* The statement: aq_jobs_sql_enqueue_batch (common/aq_jobs.c, the one home of job inserts). */

/* Wake-ups after the commit (sql/023): the batch's transaction does not
 * NOTIFY (a notifying commit holds a cluster-wide lock through its WAL
 * flush, so batches queued behind each other's flushes); aq_wake() runs right
 * behind it in the pipeline, after the commit, in a transaction of its own
 * that does not wait for the WAL. */
/* Only for batches of one or two rows, where notifying commits are as many
 * as the requests (a steady trickle of single requests: at 25 % of the
 * drain rate, p50 enqueue -> start fell ~1.3 ms). A bigger batch already
 * shares one commit among its rows, so the lock is seldom contended, and
 * the deferral's fixed cost (a statement and a transaction: ~40 us of server
 * time) would buy nothing; under wrk's 64 connections batches average 16
 * rows and 13 % are deferred. */
#define WAKE_LATER_MAX_ROWS 2
static const char SQL_WAKE[] = "SELECT aq_wake()";

/* Plans: the batch statements are prepared once per connection
 * (aq_api_enqueue_prepare): parsing and analysing their CTEs took ~0.35 ms
 * of the ~1.5 ms a batch of seven cost the server (pgbench -M extended
 * against -M prepared). The session plans every statement afresh
 * (plan_cache_mode = force_custom_plan, api/server.c), and the full
 * statement needs it: its lookups (sessions, idempotency keys) must follow
 * the tables' sizes of the moment, and a generic plan made while the tables
 * were small (a hash join over a whole-table read of chat_sessions) would
 * read them whole once they are not. A batch in which no row names a session
 * or an idempotency key runs the plain statement (aq_jobs_sql_enqueue_plain),
 * which leaves those parts out and reads no growing table at all (jobs is
 * only its insert's target; the quota count is a function that plans its
 * own count afresh, sql/025): so its transaction sets plan_cache_mode back
 * to auto, and after five runs it keeps one generic plan. Planning was most
 * of a small batch's cost: at 25 % of the drain rate in the steady-state
 * benchmark, 0.30 ms of planning against 0.39 ms of execution per batch
 * (pg_stat_statements with track_planning). What the transaction's other
 * plans see with auto: the trigger on the inserted rows, and the foreign key
 * check on users, whose plan Postgres rebuilds when autovacuum analyzes
 * users (each 10 % of growth), so its shape follows the table closely. */
/* The transaction's settings, before its batch statement: one constant
 * statement per combination, so that each keeps one plan (a statement with
 * parameters was planned afresh on every batch under force_custom_plan);
 * the full statement without the deferral needs none. Indexed [plain][later]. */
static const struct { const char *name, *sql; } SETTINGS[2][2] = {
    {{NULL, NULL},
     {"aq_enqueue_later", "SELECT set_config('agentq.wake_later', 'on', true)"}},
    {{"aq_enqueue_auto", "SELECT set_config('plan_cache_mode', 'auto', true)"},
     {"aq_enqueue_auto_later",
      "SELECT set_config('plan_cache_mode', 'auto', true), set_config('agentq.wake_later', 'on', true)"}},
};
#define STMT_FULL "aq_enqueue"
#define STMT_PLAIN "aq_enqueue_plain"

void aq_api_enqueue_prepare(api_thread *t)
{
    for (int plain = 0; plain < 2; plain++)
        for (int later = 0; later < 2; later++)
            if (SETTINGS[plain][later].name)
                aq_pgloop_prepare(t->pg, SETTINGS[plain][later].name, SETTINGS[plain][later].sql, NULL, NULL);
    aq_pgloop_prepare(t->pg, STMT_FULL, aq_jobs_sql_enqueue_batch, NULL, NULL);
    aq_pgloop_prepare(t->pg, STMT_PLAIN, aq_jobs_sql_enqueue_plain, NULL, NULL);
}

typedef struct pend {
    api_call *c;
    void (*cb)(api_call *, const api_enqueue_result *);
    char *row;          /* this request's JSON object for the batch */
    int solo;           /* send alone (its batch was refused) */
    int plain;          /* names no session and no idempotency key */
    api_enqueue_result res;   /* its row's fate, told once the batch commits */
    struct pend *next;
} pend;

typedef struct {
    pend *head, *tail;
    int inflight;
} state;

typedef struct {
    api_thread *t;
    pend *list;
    int n;
    int answered;
    uint64_t sent_ms;
} batch;

#define SLOW_BATCH_MS 20

static void flush(api_thread *t);

void aq_api_enqueue_thread_init(api_thread *t) { t->enqueue = aq_calloc(1, sizeof(state)); }

static void answer(pend *p, const api_enqueue_result *r)
{
    p->cb(p->c, r);
    free(p->row);
    free(p);
}

static void on_rows(void *arg, PGresult *res)
{
    batch *b = arg;
    b->answered = 1;
    uint64_t took = aq_now_mono_ms() - b->sent_ms;
    if (took > SLOW_BATCH_MS) aq_warn("api", "slow enqueue: a batch of %d took %llu ms", b->n, (unsigned long long)took);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK || PQntuples(res) != b->n) {
        const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorMessage(res) : "the database connection was lost";
        if (res && b->n > 1) {
            /* refused: retry each request alone, so only the bad one fails */
            state *s = b->t->enqueue;
            pend *last = b->list;
            for (pend *p = b->list; p; p = p->next) { p->solo = 1; last = p; }
            last->next = s->head;
            s->head = b->list;
            if (!s->tail) s->tail = last;
            b->list = NULL;
            return;
        }
        if (res) aq_warn("api", "enqueue refused: %s", msg);
        api_enqueue_result r = {.failed = 1, .message = msg, .bad_value = sqlstate && sqlstate[0] == '2' && sqlstate[1] == '2'};
        for (pend *p = b->list, *next; p; p = next) {
            next = p->next;
            answer(p, &r);
        }
        b->list = NULL;
        return;
    }
    pend *p = b->list;
    for (int i = 0; i < b->n && p; i++, p = p->next) {
        api_enqueue_result r = {0};
        r.over_quota = PQgetvalue(res, i, 2)[0] != 't';
        r.session_foreign = PQgetvalue(res, i, 3)[0] != 't';
        r.type_refused = PQgetvalue(res, i, 5)[0] != 't';
        r.queue_refused = PQgetvalue(res, i, 6)[0] != 't';
        if (!PQgetisnull(res, i, 1)) r.job_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        else if (!PQgetisnull(res, i, 4)) {
            r.job_id = strtoll(PQgetvalue(res, i, 4), NULL, 10);
            r.duplicate = 1;
            r.key_mismatch = PQgetvalue(res, i, 7)[0] == 't';
        }
        p->res = r;   /* answered at the sync (on_batch_done), once committed */
    }
}

static void on_batch_done(void *arg, PGresult *res)
{
    batch *b = arg;
    api_thread *t = b->t;
    state *s = t->enqueue;
    s->inflight = 0;
    /* b->list holds the rows on_rows read; they stand only if the batch committed */
    int committed = b->answered && res && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    if (b->list && !committed) {
        aq_warn("api", "enqueue: a batch of %d did not commit: %s", b->n,
                res ? PQresultErrorMessage(res) : "the database connection was lost");
    }
    api_enqueue_result lost = {.failed = 1, .message = "the database connection was lost before the jobs were stored"};
    for (pend *p = b->list, *next; p; p = next) {
        next = p->next;
        answer(p, committed ? &p->res : &lost);
    }
    b->list = NULL;
    free(b);
    flush(t);
}

static void flush(api_thread *t)
{
    state *s = t->enqueue;
    if (s->inflight || !s->head || !t->db_ready) return;
    batch *b = aq_calloc(1, sizeof *b);
    b->t = t;
    aq_buf json;
    aq_buf_init(&json);
    aq_buf_adds(&json, "[");
    pend **tail = &b->list;
    int solo = s->head->solo, plain = 1;
    while (s->head && b->n < MAX_BATCH && (b->n == 0 || (!solo && !s->head->solo))) {
        pend *p = s->head;
        s->head = p->next;
        if (!s->head) s->tail = NULL;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
        if (b->n++) aq_buf_adds(&json, ",");
        aq_buf_adds(&json, p->row);
        plain &= p->plain;
    }
    aq_buf_adds(&json, "]");
    const char *params[] = {json.p};
    s->inflight = 1;
    b->sent_ms = aq_now_mono_ms();
    int later = b->n <= WAKE_LATER_MAX_ROWS;
    const char *settings = SETTINGS[plain][later].name;
    if ((!settings || aq_pgloop_exec(t->pg, settings, 0, NULL, NULL, NULL) == 0) &&
        aq_pgloop_exec(t->pg, plain ? STMT_PLAIN : STMT_FULL, 1, params, on_rows, b) == 0) {
        if (aq_pgloop_sync(t->pg, on_batch_done, b) != 0) {
            s->inflight = 0;   /* on_rows already ran with NULL and answered everyone */
            free(b);
        } else if (later && aq_pgloop_query(t->pg, SQL_WAKE, 0, NULL, NULL, NULL) == 0) {
            aq_pgloop_sync(t->pg, NULL, NULL);   /* lost with the connection: the workers' poll finds the rows */
        }
    } else {
        s->inflight = 0;
        b->answered = 1;
        api_enqueue_result r = {.failed = 1, .message = "the database connection was lost"};
        for (pend *p = b->list, *next; p; p = next) { next = p->next; answer(p, &r); }
        free(b);
    }
    aq_buf_dispose(&json);
}

void aq_api_enqueue(api_call *c, const api_enqueue_req *r, void (*cb)(api_call *, const api_enqueue_result *))
{
    api_thread *t = c->t;
    if (!t->db_ready) {
        api_enqueue_result res = {.failed = 1, .message = "the database is unreachable"};
        cb(c, &res);
        return;
    }
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{\"job_type\":");
    aq_buf_add_json_str(&b, r->job_type);
    aq_buf_adds(&b, ",\"input\":");
    aq_buf_adds(&b, r->input_json);
    aq_buf_addf(&b, ",\"priority\":%d", r->priority);
    if (c->user_id) {   /* 0: a request without a user (the Telegram webhook): no owner, no quota */
        aq_buf_addf(&b, ",\"user_id\":%lld", (long long)c->user_id);
        if (t->srv->cfg->user_queue_quota > 0) aq_buf_addf(&b, ",\"quota\":%ld", t->srv->cfg->user_queue_quota);
    }
    if (r->queue) { aq_buf_adds(&b, ",\"queue\":"); aq_buf_add_json_str(&b, r->queue); }
    if (r->run_at) { aq_buf_adds(&b, ",\"run_at\":"); aq_buf_add_json_str(&b, r->run_at); }
    if (r->session_id) { aq_buf_adds(&b, ",\"session_id\":"); aq_buf_add_json_str(&b, r->session_id); }
    if (r->session_id && r->claim_session) aq_buf_adds(&b, ",\"claim\":true");
    if (r->idempotency_key) { aq_buf_adds(&b, ",\"key\":"); aq_buf_add_json_str(&b, r->idempotency_key); }
    if (r->idempotency_key && r->request_hash) aq_buf_addf(&b, ",\"key_hash\":\"%s\"", r->request_hash);
    if (r->check_type) aq_buf_adds(&b, ",\"check_type\":true");
    if (r->check_type && t->srv->queues) { aq_buf_adds(&b, ",\"queues\":"); aq_buf_add_json_str(&b, t->srv->queues); }
    aq_buf_adds(&b, "}");
    pend *p = aq_calloc(1, sizeof *p);
    p->c = c;
    p->cb = cb;
    p->row = aq_buf_take(&b);
    p->plain = !r->session_id && !r->idempotency_key;
    state *s = t->enqueue;
    if (s->tail) s->tail->next = p; else s->head = p;
    s->tail = p;
    flush(t);
}

void aq_api_enqueue_on_ready(api_thread *t) { flush(t); }
