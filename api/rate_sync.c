/* rate_sync.c — shares the per-user request rate (AGENTQ_USER_RATE) between
 * API processes through one database table, off the request path.
 *
 * DESIGN: every AGENTQ_RATE_SYNC_MS a timer on API thread 0 takes, from
 * limits.c, the users asked for since the last flush and the requests
 * admitted for each, and adds them to the shared buckets (api_rate_buckets,
 * sql/013) in one statement on that thread's pipelined connection; the
 * answer is each bucket's level, which limits.c then spends locally until
 * the next answer. A request therefore never waits for the database. One
 * flush is in flight at a time; a tick that finds one still out skips.
 *
 * Bound: processes learn of each other's admissions one flush late, so with
 * N processes a user can be admitted up to (N - 1) x (burst + rate x (flush
 * interval + round trip)) more than one process would allow, once; the
 * shared bucket records that as debt, which every process then waits out.
 * Over any period T: at most burst + rate x T + that overshoot.
 *
 * When the database is down, counts taken are dropped (they would only
 * become a debt for requests the local limit already bounded), the shared
 * levels go stale (API_RATE_STALE_MS), and each process holds its local
 * limit alone. Every PRUNE_MS the same connection deletes full buckets. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_log.h"
#include "aq_time.h"
#include <stdio.h>
#include <stdlib.h>

#define PRUNE_MS 10000

typedef struct {
    api_thread *t;
    uv_timer_t timer;
    int inflight;
    int failing;          /* the last flush failed: log once until one succeeds */
    uint64_t next_prune;
} rate_sync;

static const char SQL_TAKE[] =
    "SELECT user_id, tokens FROM aq_rate_take($1::bigint[], $2::bigint[], $3::float8, $4::float8)";
static const char SQL_PRUNE[] = "SELECT aq_rate_prune($1::float8, $2::float8)";

static void on_taken(void *arg, PGresult *res)
{
    rate_sync *rs = arg;
    rs->inflight = 0;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (!rs->failing)
            aq_warn("api", "cannot share the request rate (each process holds its own until it can): %s",
                    res ? PQresultErrorMessage(res) : "database connection lost");
        rs->failing = 1;
        return;
    }
    rs->failing = 0;
    int n = PQntuples(res);
    int64_t *users = aq_malloc((size_t)(n ? n : 1) * sizeof *users);
    double *levels = aq_malloc((size_t)(n ? n : 1) * sizeof *levels);
    for (int i = 0; i < n; i++) {
        users[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        levels[i] = strtod(PQgetvalue(res, i, 1), NULL);
    }
    aq_api_rate_learn(rs->t->srv, (size_t)n, users, levels);
    free(users);
    free(levels);
}

static void on_pruned(void *arg, PGresult *res)
{
    (void)arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        aq_debug("api", "pruned %s full rate buckets", PQgetvalue(res, 0, 0));
}

/* Each statement is its own transaction (a failed prune never undoes a take). */
static void send_take(rate_sync *rs, size_t n, const int64_t *users, const long *counts,
                      const char *rate, const char *burst)
{
    aq_buf ids, nums;
    aq_buf_init(&ids);
    aq_buf_init(&nums);
    for (size_t i = 0; i < n; i++) {
        aq_buf_addf(&ids, "%c%lld", i ? ',' : '{', (long long)users[i]);
        aq_buf_addf(&nums, "%c%ld", i ? ',' : '{', counts[i]);
    }
    aq_buf_adds(&ids, "}");
    aq_buf_adds(&nums, "}");
    const char *p[] = {ids.p, nums.p, rate, burst};
    if (aq_pgloop_query(rs->t->pg, SQL_TAKE, 4, p, on_taken, rs) == 0 &&
        aq_pgloop_sync(rs->t->pg, NULL, NULL) == 0)
        rs->inflight = 1;
    aq_buf_dispose(&ids);
    aq_buf_dispose(&nums);
}

static void on_tick(uv_timer_t *timer)
{
    rate_sync *rs = timer->data;
    api_thread *t = rs->t;
    if (rs->inflight) return;
    int64_t *users;
    long *counts;
    size_t n = aq_api_rate_collect(t->srv, &users, &counts);   /* taken even when down: dropped */
    if (t->db_ready && aq_pgloop_ready(t->pg)) {
        char rate[32], burst[32];
        snprintf(rate, sizeof rate, "%ld", t->srv->cfg->user_rate_per_s);
        snprintf(burst, sizeof burst, "%ld", t->srv->cfg->user_rate_per_s * 2);
        if (n > 0) send_take(rs, n, users, counts, rate, burst);
        else if (!rs->failing) aq_api_rate_learn(t->srv, 0, NULL, NULL);   /* still answering: levels stay fresh */
        uint64_t now = aq_now_mono_ms();
        if (now >= rs->next_prune) {
            rs->next_prune = now + PRUNE_MS;
            const char *p[] = {rate, burst};
            if (aq_pgloop_query(t->pg, SQL_PRUNE, 2, p, on_pruned, NULL) == 0)
                aq_pgloop_sync(t->pg, NULL, NULL);
        }
    }
    free(users);
    free(counts);
}

void aq_api_rate_sync_start(api_thread *t)
{
    long ms = t->srv->cfg->rate_sync_ms;
    if (ms <= 0) return;
    rate_sync *rs = aq_calloc(1, sizeof *rs);
    rs->t = t;
    rs->next_prune = aq_now_mono_ms() + PRUNE_MS;
    uv_timer_init(&t->loop, &rs->timer);
    rs->timer.data = rs;
    uv_timer_start(&rs->timer, on_tick, (uint64_t)ms, (uint64_t)ms);
    t->rate_sync = rs;
}

static void close_noop(uv_handle_t *h) { (void)h; }

void aq_api_rate_sync_close(api_thread *t)
{
    rate_sync *rs = t->rate_sync;
    if (!rs) return;
    uv_timer_stop(&rs->timer);
    uv_close((uv_handle_t *)&rs->timer, close_noop);
}
