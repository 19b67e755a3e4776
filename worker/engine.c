/* engine.c — the worker's claim/complete engine (see engine.h).
 *
 * DESIGN
 * A few async Postgres connections (aq_pgloop, pipeline mode;
 * AGENTQ_DB_CONNECTIONS) carry everything: claims, completions, lease
 * extension, heartbeats, rescue, pruning; the first also LISTENs. Work goes
 * to the database in "rounds": one pipeline segment, one Sync, so one
 * transaction, one round trip and one commit. Up to two rounds are in flight
 * per connection. While they are, finished jobs pile up in the completion
 * list and freed slots add up; the next round carries all of them. Rounds
 * that carry no completion commit without waiting for the WAL flush (a claim
 * lost in a server crash only leaves its job queued). So at low load a
 * job costs one claim round and one completion round (lowest latency), and
 * under load rounds grow to hundreds of rows each (highest throughput), with
 * no timer in between: a round is sent the moment the previous one returns.
 *
 * A round holds, in order: completions (successes through arrays, the rest
 * through jsonb_to_recordset, all fenced on locked_by and claims), follow-up
 * inserts and session messages of those jobs (fenced on the parent's new
 * status, and on its row version being this transaction's, so a resent
 * completion brings no second copy), a claim (FOR UPDATE SKIP LOCKED, LIMIT
 * free slots), attempt marks, and when due: lease extension + heartbeat
 * (with the counters' increments, common/aq_metrics.c), rescue of expired
 * leases, pruning. Once a round with completions of owned jobs has
 * committed, 'aq_done' wakes the API's long-polls from a transaction of its
 * own (send_done_notify). If the round fails, its completions go back to the
 * list and are sent again; a batch that fails for a reason other than the
 * connection is retried one job per round to isolate the bad row.
 *
 * Serial keys (issue 13; docs/DESIGN.md, "Serial keys"): the claim's
 * selection adds `serial_key IS NULL OR aq_claim_serial(...)` (sql/015).
 * Keyless rows stop at the NULL test. For a keyed row the function decides
 * under the key's mutex, a row of job_serial_keys locked FOR UPDATE SKIP
 * LOCKED until this claim commits: no lower queued id of the key, no job of
 * the key running (a probe of the key's own index entries: sql/022), on a
 * snapshot taken after the lock (VOLATILE: a fresh one per statement). Two
 * claimers never start two jobs of one key: they cannot hold the mutex at
 * once (the other skips), and the one holding it
 * sees every earlier claim of the key, since that claim released the mutex
 * only by committing, and only a claim makes a job running. A mark on the
 * key row refuses a second job of the key within one claim. The per-user
 * cap ($6, AGENTQ_USER_MAX_INFLIGHT) is the same pattern on the owner's
 * user_inflight row, with the count of running keyed jobs plus those taken
 * by this statement. Claims never wait on a lock, so they cannot deadlock;
 * a skipped or rechecked row only leaves a key or a slot to the next claim.
 * A keyed row that cannot run yet is marked serial_held under the mutex and
 * leaves jobs_claim (whose predicate now says NOT serial_held), so a long
 * backlog of one key is read once, not by every claim; the trigger that
 * frees a key releases its lowest queued job (sql/015).
 *
 * Claim wanting: a NOTIFY (one per INSERT statement, and one per transaction
 * in which a keyed job stops running: sql/015), the poll timer, the tick's
 * safety net, a retry coming due, a connection's setup (the first's LISTEN
 * takes effect at its commit: a NOTIFY before it reached no one), a rescue,
 * or a previous claim that came back full sets want_claim. A claim that
 * comes back short clears it, unless one of those wake-ups came after that
 * claim was sent (wake_seq), so no wake-up is lost. One
 * claim is out at a time: the wake-ups that arrive meanwhile are served by
 * the next one, sent as it returns; a second goes out, on a connection with
 * nothing in flight, once the first has been out CLAIM_OVERDUE_MS (its round
 * may wait on a row lock: a completion of a row an operator's open
 * transaction holds; test engine_claims_go_on_past_a_blocked_round). Under a steady producer the wake-ups
 * come ~1,000 a second (a small API batch or an INSERT statement each), and
 * a claim each cost a plan and a walk of the index each (steady-state
 * benchmark at 25 % of the drain rate, 20 s: 18,134 claims against 13,289
 * with one out at a time; p50 enqueue -> start 2.4 -> 2.0 ms); the drain
 * went from 49.5k to 58.8k jobs/s (means of six alternating runs).
 *
 * Claim floor (issue 11; the bookkeeping is claim_floor.c): a claim's index scan reads the entries of every
 * job claimed since the last vacuum (scans mark them dead, but a page full
 * of dead entries stays until VACUUM, and each claim still reads it: 200,000
 * claims after a vacuum, ~990 pages and 1.4 ms per claim). So the claim
 * starts where this worker's last one ended: (priority, run_at, id) >= the
 * floor ($7-$9), a row comparison btree takes as the scan's start (Index
 * Cond; tests/t_plans.c). The floor is the highest key the last claim took;
 * below it the claim, in index order, had taken every row it could, so what
 * remains there is only what may change later, and each such change lowers
 * or drops the floor (drop: the next claim starts from the head):
 *  - inserts: the 'aq_jobs' payload (sql/020) is a key no higher than any
 *    row the statement queued (min priority, min run_at); the floor is
 *    lowered to it. An empty payload (a key's release, which un-holds an
 *    old row, or frees the per-user cap; a retry, a resume) drops it.
 *  - this worker's own completions that requeue (retry, hand-back) drop it;
 *    so do the retry wake-up, a rescue that re-queued rows, a reconnect.
 *  - a NOTIFY or a drop after a claim was sent: that claim's answer does not
 *    raise the floor (floor_seq), it may not have seen what lowered it; and
 *    a NOTIFY above the floor while the claim was out caps what its answer
 *    raises the floor to (notified): those rows may sit below the claim's
 *    last key, committed after its snapshot (seen as 1 s waits once claims
 *    stopped overlapping: no second claim started from the old floor).
 * The rest is left to a safety net: rows another transaction held while
 * the claim passed (SKIP LOCKED: an API cancel that rolls back, another
 * worker's claim that fails), other workers' retries and rescues, scheduled
 * rows of a higher priority coming due. Every tick (1 s) after a claim that
 * used the floor, and at every poll (AGENTQ_POLL_MS), the floor is dropped
 * and a claim is wanted: such a row waits at most about a second more than
 * without the floor (the tick, plus that claim's round trip), and one claim
 * a second reads the dead head. A drop keeps the floor's value: a claim
 * from the head that comes back short took every runnable row there was,
 * so the claims after it start at the floor again (an idle worker's tick
 * costs one claim, not one per job after it). Without floor the claim is
 * sent with the lowest key there is (-32768, -infinity, 0), so it is one
 * statement and one plan shape either way.
 *
 * Jobs in flight (issue 13): --concurrency counts jobs started and not yet
 * completed, not threads. A started job is on the pool (a step running or
 * queued for a thread) or awaits an HTTP response on the multi handle
 * (http_multi.c); prefetched jobs wait unstarted on the pool's first-step
 * queue until a slot frees (the pool counts the slots: a thread goes
 * straight from one job to the next while there is room).
 *
 * Claimed ahead: the engine holds at most concurrency + prefetch jobs, and
 * of those at most prefetch + one per handler thread wait unstarted on the
 * first-step queue; the default prefetch is the concurrency up to 1,000
 * (worker/main.c). The second bound keeps a big --concurrency from
 * hoarding. When the threads are what limits (an agent turn's steps are
 * database work), a free in-flight slot is not free capacity, and filling
 * every slot with a claim only made rows that sat 'running' in the table
 * without running, kept from other workers: at 5,000 in flight the worker
 * held 10,000 rows, the lease extension rewrote all of them every lease/3
 * (~1 s per UPDATE, its round holding their row locks while the turns'
 * owned writes waited on them: 4 ms per lock instead of 0.1), and each was
 * marked again when it started. The rest now stay queued. The engine keeps
 * every job it holds in one list (lease extension, timeouts, marks and
 * shutdown walk it). A step returning
 * AQ_JOB_AWAIT comes back through on_pool_done with its request, which the
 * loop starts; its outcome sends the job back to the pool.
 *
 * Attempts count runs, not claims: the claim counts only the rows that
 * start at once ($5: free in-flight slots, row_number() <= them, in the same
 * UPDATE; each such row goes to the thread queue as soon as its round has
 * committed, never before: see on_round_done);
 * a prefetched row's run is counted by its completion (attempts = c.a, an
 * absolute value), or, if it is still running at the once-a-second tick, by
 * a batched mark in the next round. A drain of short jobs thus writes
 * nothing extra. A prefetched job that kills its worker within that second
 * goes uncounted; the rescue counts its lost leases (jobs.lost) and the
 * dispatcher fails it at twice max_attempts of them.
 *
 * Leases: every lease/3 the round extends the jobs this worker holds (one
 * UPDATE by id list and locked_by, which stays HOT: locked_until is not
 * indexed). By id, not by locked_by alone: a claim whose answer was lost
 * with the connection may have committed rows this worker never saw, and
 * they must expire. A job past its handler's timeout is completed as a retry
 * and its late result ignored (its writes are fenced: aq_ctx_begin_owned);
 * on its last attempt it goes back to the queue with its attempts spent and
 * the next claim's dispatcher fails it, running the type's final-failure
 * hook, which the loop must not. Any worker re-queues rows whose lease has
 * expired.
 *
 * Plans (issue 11): a worker lives for months and its statements are
 * prepared once per connection, often on a quiet or empty table. After five
 * executions Postgres may switch a prepared statement to a generic plan made
 * from the statistics of that moment, and keeps it until something
 * invalidates it: on an empty table SQL_SUCCEED's generic plan walked all of
 * jobs_running, dead entries included, once per completion, so completion
 * cost grew with the jobs done and the worker fell behind a steady producer.
 * Two things close it. (1) Every connection sets plan_cache_mode =
 * force_custom_plan: each execution is planned with its own arrays (unnest
 * of a constant array is estimated at its real length) and the relation
 * sizes of that moment (current page counts, whatever the statistics say).
 * A statement without parameters is planned generically whatever the
 * setting, hence the rescue's batch size is a parameter. (2) The statements
 * that find this worker's rows by id (completions, marks, extension) say
 * neither "status = 'running'" nor "locked_by = $1" as a condition on the
 * table alone. The first made a full scan of the jobs_running partial index
 * a candidate, and right after a vacuum the planner extrapolates that
 * index's size from the few live entries it had then, so the scan looks
 * free however many entries gathered since (seen: completions from ~1 ms to
 * ~280 ms per call right after autovacuum's visit). The second is estimated
 * at about one row (most rows have no locked_by), which made any full scan
 * look like a one-row outer side. The fence is instead a join condition on
 * a column of the id list (j.locked_by = c.w, the worker id repeated by
 * array_fill), and "running" is implied: sql/014 allows locked_by only on a
 * running job. What is left for the planner is N lookups by primary key
 * against a scan of the whole table priced at its real size. (3) The
 * statements that first pick rows through an index and then update or
 * delete them (claim, rescue, prune) join jobs to an array of the picked
 * ids, unnest(ARRAY(SELECT id FROM ...)), not to the CTE itself. The CTE's
 * rows are estimated from the statistics (up to its LIMIT), and statistics
 * can be stale: TRUNCATE and an ANALYZE of the empty table keep the last
 * ones, e.g. "every row queued, one run_at" from a backlog analyzed right
 * after its load. With 1,000 rows expected the planner hashed the whole
 * table for the join (a claim of 100 rows read ~900 buffers and took ~5 ms
 * in the steady-state benchmark's first 20 s after the drains, until
 * autovacuum analyzed; on a table with its history, seconds). An array
 * that is not a constant is estimated at 10 elements, so the join is
 * lookups by primary key whatever the statistics say. The claim's
 * "counted" (the first $5 rows start a run) is the array's ordinality:
 * ARRAY(SELECT ...) keeps the CTE's order, the claim's key order. enable_bitmapscan
 * = off: every statement here looks rows up by id or reads the first rows
 * of one index in its order; a bitmap scan is only chosen from statistics
 * that undercount the matching rows (stale "no queued rows"), and then the
 * claim reads and sorts the whole backlog. Custom plans cost planning time
 * on every execution: about 0.1-0.3 ms per round (measured on this
 * machine), spread over the hundreds of rows a busy round carries; the drain
 * figure stays within noise (docs/BENCHMARKS.md). tests/t_plans.c checks
 * the plans: this file exports the settings and the SQL for it. */
#include "engine.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "aq_log.h"
#include "aq_metrics.h"
#include "aq_pgloop.h"
#include "aq_time.h"
#include "backoff.h"
#include "claim_floor.h"
#include "dbpool.h"
#include "http_multi.h"
#include "jobrun.h"
#include "metrics.h"
#include "pool.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLAIM 1000
#define MAX_ROUNDS_PER_CONN 2
#define MAX_COMPLETE 1000
#define PRUNE_BATCH "5000"
#define RESCUE_BATCH "1000"
#define CLAIM_OVERDUE_MS 1000   /* a claim out this long no longer holds the next one back */

typedef struct completion {
    int64_t id;
    int64_t user_id;         /* owned jobs wake long-polls on 'aq_done' */
    int claim;               /* the fence: jobs.claims of the claim that ran it */
    int attempts;            /* what jobs.attempts becomes */
    aq_job_state status;
    char *output, *error, *followups, *says;
    long delay_ms;
    int transient;           /* SQL_COMPLETE's c.t */
    int unstarted;           /* handed back before its handler started */
    int isolate, tries;
    struct completion *next;
} completion;

/* One database connection of the engine, with its own rounds in flight. */
typedef struct conn {
    struct aq_engine *eng;
    aq_pgloop *pg;
    int index;                 /* 0 also LISTENs */
    int ready;                 /* connected and statements prepared */
    int inflight;              /* its rounds not yet answered */
    uint64_t setup_at;         /* when to (re)try preparing */
} conn;

typedef struct round {
    struct aq_engine *eng;
    conn *c;
    completion *done;        /* sent in this round; freed or put back */
    int ndone;
    int nsucceed, ncomplete; /* of those, sent by SQL_SUCCEED / SQL_COMPLETE */
    int claim_limit, claim_idle;
    unsigned wake_seq;
    aq_floor_claim fc;       /* the floor its claim was sent with */
    uint64_t claim_sent_ms;  /* when its claim was sent */
    int extend, rescue, prune, setup;
    aq_jobrun *claimed;      /* its claim's jobs: they start once the round has committed */
    aq_metrics_batch *metrics; /* counters flushed with the heartbeat */
    int failed, conn_lost;
    char errmsg[256];
    char sqlstate[6];        /* of the first failure */
} round;

struct aq_engine {
    uv_loop_t *loop;
    const aq_config *cfg;
    aq_engine_opts opts;
    char id[128], host[64], pidstr[16], lease[16], conc[16];
    conn *conns;
    int nconns;
    uv_timer_t poll_timer, tick_timer, wake_timer, grace_timer;
    int round_inflight;        /* rounds sent and not yet answered, all connections */
    int claiming;              /* slots asked for by claims in flight */
    int claims_out;            /* claims in flight: one, or two when the first is overdue */
    uint64_t claim_oldest_ms;  /* when the oldest of them was sent, */
    uint64_t claim_newest_ms;  /* and the newest */
    int claiming_idle;         /* of those, for idle threads (counted at claim) */
    aq_buf mark_ids, mark_claims, mark_attempts;   /* runs to count in the next round */
    int nmarks;
    int want_claim;
    unsigned wake_seq;
    aq_claim_floor floor;      /* where the next claim starts (claim_floor.c) */
    aq_pool *pool;
    aq_dbpool *dbs;            /* the handler steps' connections */
    aq_http_multi *multi;      /* requests of awaiting jobs */
    aq_jobrun *jobs;           /* every job held (eprev/enext) */
    int held;                  /* claimed and not yet completed (the jobs list) */
    int abandoned;             /* of those, timed out or handed back while on a thread: result ignored */
    completion *done_head, *done_tail;
    int ndone;
    uint64_t next_extend, next_rescue, next_prune;
    long long jobs_done;
    int stopping, finishing, exited;
    aq_metrics_batch *last_metrics;   /* the flush sent with the goodbye */
    void (*on_exit)(void *);
    void *exit_arg;
};

static void pump(aq_engine *eng);
static void maybe_finish(aq_engine *eng);
static void round_failed(round *r, PGresult *res);

/* ---- SQL (prepared on every connect) ---- */

static const char SQL_CLAIM[] =
    "WITH locked AS ("
    " SELECT id FROM jobs"
    " WHERE status = 'queued' AND run_at <= now() AND queue = ANY($1::text[])"
    " AND (priority, run_at, id) >= ($7::smallint, $8::timestamptz, $9::bigint)"
    " AND NOT serial_held AND (serial_key IS NULL OR aq_claim_serial(id, serial_key, user_id, $6::int))"
    " ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE jobs j SET status = 'running', attempts = j.attempts + (c.n <= $5::int)::int, claims = j.claims + 1,"
    " locked_by = $3, locked_until = now() + make_interval(secs => $4::int), started_at = now()"
    " FROM unnest(ARRAY(SELECT id FROM locked)) WITH ORDINALITY AS c(id, n) WHERE j.id = c.id"
    " RETURNING j.id, j.job_type, j.queue, j.priority, j.attempts, coalesce(j.max_attempts, 0),"
    " j.input::text, coalesce(j.user_id, 0), j.session_id::text, coalesce(j.parent_id, 0),"
    " coalesce(j.schedule_id, 0), (extract(epoch FROM j.run_at) * 1000000)::bigint,"
    " j.claims, (c.n <= $5::int)::int, j.lost, coalesce((extract(epoch FROM now() - j.transient_since) * 1000)::bigint, -1),"
    " j.last_error";

/* c.a is the attempts the row keeps (the run counted or not); c.t: 1 this was
 * a transient failure (start the outage clock if not running), 0 it was not
 * (stop it), 2 leave it; c.u: handed back before its handler started. */
static const char SQL_COMPLETE[] =
    "UPDATE jobs j SET status = c.s,"
    " output = CASE WHEN c.s IN ('succeeded', 'waiting') THEN c.o ELSE j.output END,"
    " last_error = coalesce(c.e, j.last_error),"
    " attempts = c.a,"
    " transient_since = CASE c.t WHEN 1 THEN coalesce(j.transient_since, now()) WHEN 2 THEN j.transient_since END,"
    " run_at = CASE WHEN c.s = 'queued' THEN now() + make_interval(secs => c.d / 1000.0) ELSE j.run_at END,"
    " finished_at = CASE WHEN c.s IN ('succeeded', 'failed') THEN now() END,"
    " started_at = CASE WHEN c.u = 1 THEN NULL ELSE j.started_at END,"
    " locked_by = NULL, locked_until = NULL"
    " FROM ROWS FROM (jsonb_to_recordset($2::jsonb)"
    " AS (id bigint, k int, a int, s text, o jsonb, e text, d bigint, t int, u int),"
    " unnest(array_fill($1::text, ARRAY[jsonb_array_length($2::jsonb)]))) AS c(id, k, a, s, o, e, d, t, u, w)"
    " WHERE j.id = c.id AND j.claims = c.k AND j.locked_by = c.w"
    " RETURNING j.id";

/* The common case, successes, without JSON parsing on the server: about
 * half the server time per row of SQL_COMPLETE (measured: 4 vs 10 us). */
static const char SQL_SUCCEED[] =
    "UPDATE jobs j SET status = 'succeeded', output = c.o, attempts = c.a, transient_since = NULL, finished_at = now(),"
    " locked_by = NULL, locked_until = NULL"
    " FROM unnest($2::bigint[], $3::int[], $4::int[], $5::jsonb[],"
    " array_fill($1::text, ARRAY[cardinality($2::bigint[])])) AS c(id, k, a, o, w)"
    " WHERE j.id = c.id AND j.claims = c.k AND j.locked_by = c.w"
    " RETURNING j.id";

/* A prefetched job whose handler has started: its run counts from now on
 * (sent in the next round by the once-a-second tick; most jobs finish
 * before and their completion carries the count instead). SKIP LOCKED, as
 * the lease extension: a row locked right now is being completed by this
 * worker's other connection, and that completion sets the attempts itself
 * (c.a). Waiting for it deadlocked: the two statements lock the same rows
 * in different orders (seen under ASan in engine_extension_no_deadlock). */
static const char SQL_MARK[] =
    "UPDATE jobs j SET attempts = l.a"
    " FROM (SELECT r.id, m.a"
    " FROM unnest($2::bigint[], $3::int[], $4::int[], array_fill($1::text, ARRAY[cardinality($2::bigint[])]))"
    " AS m(id, k, a, w) JOIN jobs r ON r.id = m.id AND r.claims = m.k AND r.locked_by = m.w"
    " FOR UPDATE OF r SKIP LOCKED) AS l"
    " WHERE j.id = l.id";

/* Writes that exist only if their parent's completion committed in this same
 * transaction: the parent's row version is this transaction's (xmin), so a
 * completion resent after a lost answer (fenced out: its first send
 * committed) does not insert them twice. */
#define WRITTEN_HERE "p.xmin = pg_current_xact_id()::xid"

/* Follow-up inserts: aq_jobs_sql_followups (common/aq_jobs.c), fenced the same way. */

/* Session messages a job leaves with its final completion (the apology of a
 * failed turn): into a session of the job's own user, created if the turn
 * never ran far enough to create it. */
static const char SQL_SAY[] =
    "WITH f AS (SELECT f.*, p.user_id FROM jsonb_to_recordset($1::jsonb)"
    " AS f(parent bigint, claim int, session uuid, channel text, content text)"
    " JOIN jobs p ON p.id = f.parent AND p.claims = f.claim AND p.status IN ('succeeded', 'failed', 'waiting')"
    " AND p.user_id IS NOT NULL AND " WRITTEN_HERE "),"
    " s AS (INSERT INTO chat_sessions (id, user_id, channel) SELECT DISTINCT ON (session) session, user_id, channel"
    " FROM f ON CONFLICT (id) DO NOTHING RETURNING id)"
    " INSERT INTO chat_message_history (session_id, role, content, job_id)"
    " SELECT f.session, 'assistant', f.content, f.parent FROM f"
    " WHERE EXISTS (SELECT 1 FROM s WHERE s.id = f.session)"
    " OR EXISTS (SELECT 1 FROM chat_sessions cs WHERE cs.id = f.session AND cs.user_id = f.user_id)";

/* Only the jobs this worker holds (by id): a claim whose answer was lost
 * with the connection committed rows this worker never saw, and extending
 * everything under its name kept those running forever. SKIP LOCKED: a row
 * locked right now is being completed (by this worker's other connection,
 * typically) and needs no extension; waiting for it could deadlock against
 * that completion. */
static const char SQL_EXTEND[] =
    "UPDATE jobs SET locked_until = now() + make_interval(secs => $2::int)"
    " WHERE id IN (SELECT id FROM jobs WHERE id = ANY($3::bigint[]) AND locked_by = $1"
    " FOR UPDATE SKIP LOCKED)";

static const char SQL_HEARTBEAT[] =
    "INSERT INTO workers (id, host, pid, queues, concurrency, running, jobs_done)"
    " VALUES ($1, $2, $3, $4::text[], $5, $6, $7)"
    " ON CONFLICT (id) DO UPDATE SET last_heartbeat = now(), running = EXCLUDED.running,"
    " jobs_done = EXCLUDED.jobs_done";

/* $1, the batch size, is a parameter for the plan's sake: Postgres plans a
 * prepared statement without parameters once, generically, whatever
 * plan_cache_mode says, and this one's first plan, made on an empty table,
 * was a sequential scan of jobs joined to itself. */
static const char SQL_RESCUE[] =
    "WITH expired AS ("
    " SELECT id FROM jobs WHERE status = 'running' AND locked_until < now()"
    " ORDER BY id LIMIT $1::int FOR UPDATE SKIP LOCKED)"
    " UPDATE jobs j SET status = 'queued', run_at = now(), locked_until = NULL, lost = j.lost + 1,"
    " last_error = 'lease expired: worker ' || coalesce(j.locked_by, '?') || ' stopped renewing it',"
    " locked_by = NULL"
    " FROM unnest(ARRAY(SELECT id FROM expired)) AS x(id) WHERE j.id = x.id RETURNING j.id";

static const char SQL_PRUNE[] =
    "WITH old AS ("
    " SELECT id FROM jobs WHERE status IN ('succeeded', 'cancelled')"
    " AND finished_at < now() - make_interval(hours => $1::int)"
    " ORDER BY finished_at LIMIT " PRUNE_BATCH " FOR UPDATE SKIP LOCKED)"
    " DELETE FROM jobs j USING unnest(ARRAY(SELECT id FROM old)) AS x(id) WHERE j.id = x.id";

static const char SQL_PRUNE_WORKERS[] =
    "DELETE FROM workers WHERE last_heartbeat < now() - make_interval(secs => $1::int * 10)";

/* The other tables that grow. Delivery bookkeeping past the jobs' retention
 * ($1), link codes a day past expiry, daily-turn counters a week old, and
 * past AGENTQ_NOTIFICATION_RETENTION_HOURS ($2): notifications and decided
 * approvals, oldest first, PRUNE_BATCH of each per round (sql/019's indexes
 * find them); answers the larger of those two counts (a full batch: again
 * at once). */
static const char SQL_PRUNE_SIDE[] =
    "WITH s AS (DELETE FROM telegram_sent WHERE $1::int > 0 AND sent_at < now() - make_interval(hours => $1::int)),"
    " l AS (DELETE FROM link_codes WHERE expires_at < now() - interval '1 day'),"
    " d AS (DELETE FROM user_daily_turns WHERE day < (now() AT TIME ZONE 'UTC')::date - 7),"
    " nt AS (DELETE FROM notifications WHERE id = ANY(ARRAY(SELECT id FROM notifications WHERE $2::int > 0"
    " AND created_at < now() - make_interval(hours => $2::int) ORDER BY created_at LIMIT " PRUNE_BATCH "))"
    " RETURNING 1),"
    " pa AS (DELETE FROM pending_actions WHERE id = ANY(ARRAY(SELECT id FROM pending_actions WHERE $2::int > 0"
    " AND status <> 'pending' AND decided_at < now() - make_interval(hours => $2::int)"
    " ORDER BY decided_at LIMIT " PRUNE_BATCH ")) RETURNING 1)"
    " SELECT greatest((SELECT count(*) FROM nt), (SELECT count(*) FROM pa))";

static const char SQL_BYE[] = "DELETE FROM workers WHERE id = $1";

static const char SQL_PUBLISH_TYPES[] =
    "INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s)"
    " SELECT name, api, max_attempts, timeout_s FROM jsonb_to_recordset($1::jsonb)"
    " AS t(name text, api boolean, max_attempts int, timeout_s int)"
    " ON CONFLICT (name) DO UPDATE SET api_enqueue = EXCLUDED.api_enqueue,"
    " max_attempts = EXCLUDED.max_attempts, timeout_s = EXCLUDED.timeout_s, updated_at = now()";

/* The registry as JSON for SQL_PUBLISH_TYPES (types this worker can run). */
static char *registry_json(void)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "[");
    for (const aq_handler_def *h = aq_handler_table; h->name; h++) {
        if (!aq_handler_find(h->name)) continue;   /* test-only and not enabled */
        aq_buf_addf(&b, "%s{\"name\":", b.len > 1 ? "," : "");
        aq_buf_add_json_str(&b, h->name);
        aq_buf_addf(&b, ",\"api\":%s,\"max_attempts\":%d,\"timeout_s\":%d}", h->api_enqueue ? "true" : "false",
                    h->max_attempts, h->timeout_s);
    }
    aq_buf_adds(&b, "]");
    return aq_buf_take(&b);
}

static const struct { const char *name, *sql; } statements[] = {
    {"aq_claim", SQL_CLAIM},       {"aq_complete", SQL_COMPLETE}, {"aq_succeed", SQL_SUCCEED},
    {"aq_followup", aq_jobs_sql_followups}, {"aq_say", SQL_SAY}, {"aq_mark", SQL_MARK},
    {"aq_extend", SQL_EXTEND},     {"aq_heartbeat", SQL_HEARTBEAT}, {"aq_rescue", SQL_RESCUE},
    {"aq_prune", SQL_PRUNE},       {"aq_prune_workers", SQL_PRUNE_WORKERS}, {"aq_bye", SQL_BYE},
    {"aq_notify_done", "SELECT aq_notify_done($1)"},
    {"aq_prune_side", SQL_PRUNE_SIDE}, {"aq_metrics", aq_metrics_sql_flush},
};

/* Every connection's session, before it prepares the statements above
 * (see the DESIGN block, "Plans"). jit: short statements only.
 * plan_cache_mode: every execution is planned with its own parameters and
 * the table's size of the moment, never a generic plan frozen from the
 * statistics of connect time. enable_bitmapscan: every statement here either
 * looks rows up by id or takes the first rows of one index in its order; a
 * bitmap scan (all matching rows, then a sort) is only ever chosen from
 * statistics that undercount the matching rows, and then costs the claim the
 * whole backlog. */
const char *const aq_engine_session_settings[] = {
    "SET jit = off",
    "SET plan_cache_mode = force_custom_plan",
    "SET enable_bitmapscan = off",
    NULL,
};

const char *aq_engine_statement_sql(const char *name)
{
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
        if (!strcmp(statements[i].name, name)) return statements[i].sql;
    return NULL;
}

/* ---- completions ---- */

static void completion_free(completion *c)
{
    free(c->output);
    free(c->error);
    free(c->followups);
    free(c->says);
    free(c);
}

static void push_completion(aq_engine *eng, completion *c)
{
    c->next = NULL;
    if (eng->done_tail) eng->done_tail->next = c; else eng->done_head = c;
    eng->done_tail = c;
    eng->ndone++;
}

/* Put a failed round's completions back at the head, in order. */
static void requeue_completions(aq_engine *eng, completion *list, int isolate)
{
    completion *last = list;
    int n = 0;
    for (completion *c = list; c; c = c->next) {
        if (isolate) c->isolate = 1;
        last = c;
        n++;
    }
    if (!list) return;
    last->next = eng->done_head;
    eng->done_head = list;
    if (!eng->done_tail) eng->done_tail = last;
    eng->ndone += n;
}

static completion *completion_from(const aq_jobrun *jr)
{
    completion *c = aq_calloc(1, sizeof *c);
    c->id = jr->job.id;
    c->user_id = jr->job.user_id;
    c->claim = jr->claim;
    c->attempts = jr->job.attempts;
    c->transient = 2;
    return c;
}

/* A job this worker will not finish: back to the queue. Its run counts if
 * its handler had started. */
static void hand_back(aq_engine *eng, aq_jobrun *jr, int started, const char *why)
{
    completion *c = completion_from(jr);
    c->status = AQ_STATE_QUEUED;
    c->unstarted = !started;
    if (!started) c->attempts--;
    c->error = why ? aq_strdup(why) : NULL;
    push_completion(eng, c);
}

/* ---- the jobs held: on the pool, awaiting ---- */

static void track(aq_engine *eng, aq_jobrun *jr)
{
    jr->eprev = NULL;
    jr->enext = eng->jobs;
    if (eng->jobs) eng->jobs->eprev = jr;
    eng->jobs = jr;
    eng->held++;
}

/* Forget a job and free it (it is on no thread and awaits nothing). A job
 * whose last step awaited holds an in-flight slot no thread will free. */
static void drop_job(aq_engine *eng, aq_jobrun *jr)
{
    if (jr->eprev) jr->eprev->enext = jr->enext; else eng->jobs = jr->enext;
    if (jr->enext) jr->enext->eprev = jr->eprev;
    eng->held--;
    if (jr->started && jr->awaiting) aq_pool_release(eng->pool, 1);
    aq_jobrun_destroy(jr);
}

static void on_http_done(void *arg, int rc, aq_http_resp *resp)
{
    aq_jobrun *jr = arg;
    aq_engine *eng = jr->engine;
    jr->call = NULL;
    jr->where = JR_POOL;
    aq_dispatch_response(jr, resp);
    aq_pool_resume(eng->pool, jr);
}

/* A step asked for a request: perform it. The job's timeout is the tick's
 * to enforce (time_out aborts the request then); curl's own bound is the
 * request's, cut to 30 s past the job's time left: a backstop only, should
 * the tick ever be that late. */
static void start_request(aq_engine *eng, aq_jobrun *jr)
{
    aq_http_request *req = aq_dispatch_request(jr);
    uint64_t now = aq_now_mono_ms();
    long left = (jr->deadline_ms > now ? (long)(jr->deadline_ms - now) : 0) + 30000;
    if (req->timeout_ms <= 0 || req->timeout_ms > left) req->timeout_ms = left;
    jr->where = JR_AWAIT;
    jr->call = aq_http_multi_start(eng->multi, req, on_http_done, jr);
    aq_http_request_free(req);
}

static void on_pool_done(void *arg, aq_jobrun *list)
{
    aq_engine *eng = arg;
    while (list) {
        aq_jobrun *jr = list;
        list = jr->next;
        jr->next = NULL;
        if (jr->abandoned) {
            eng->abandoned--;
            aq_log(AQ_LOG_INFO, "worker", jr->job.id, "late result of an abandoned job ignored");
        } else if (jr->awaiting) {
            start_request(eng, jr);
            continue;
        } else {
            completion *c = completion_from(jr);
            c->status = jr->status;
            c->output = jr->output;
            c->error = jr->error;
            c->followups = jr->followups;
            c->says = jr->says;
            c->delay_ms = jr->delay_ms;
            c->transient = jr->transient;
            if (!jr->spent) c->attempts--;
            jr->output = jr->error = jr->followups = jr->says = NULL;
            push_completion(eng, c);
            eng->jobs_done++;
            aq_worker_metrics_finished(jr);
        }
        drop_job(eng, jr);
    }
    pump(eng);
    maybe_finish(eng);
}

/* ---- claim results ---- */

static int by_order(const void *a, const void *b)
{
    const aq_jobrun *x = *(aq_jobrun *const *)a, *y = *(aq_jobrun *const *)b;
    if (x->job.priority != y->job.priority) return x->job.priority < y->job.priority ? -1 : 1;
    if (x->run_at_us != y->run_at_us) return x->run_at_us < y->run_at_us ? -1 : 1;
    return x->job.id < y->job.id ? -1 : x->job.id > y->job.id;
}

static aq_jobrun *jobrun_from_row(aq_engine *eng, PGresult *res, int row)
{
    aq_jobrun *jr = aq_calloc(1, sizeof *jr);
    jr->engine = eng;
    jr->worker_id = eng->id;
    /* one allocation holds every string column */
    static const int strcols[] = {1, 2, 6, 8, 16};
    size_t total = 0;
    for (int i = 0; i < 5; i++) total += (size_t)PQgetlength(res, row, strcols[i]) + 1;
    char *p = jr->strs = aq_malloc(total);
    const char *s[5];
    for (int i = 0; i < 5; i++) {
        size_t n = (size_t)PQgetlength(res, row, strcols[i]);
        memcpy(p, PQgetvalue(res, row, strcols[i]), n);
        p[n] = '\0';
        s[i] = p;
        p += n + 1;
    }
    jr->job.id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    jr->job.job_type = s[0];
    jr->job.queue = s[1];
    jr->job.priority = atoi(PQgetvalue(res, row, 3));
    jr->job.attempts = atoi(PQgetvalue(res, row, 4));
    jr->input = s[2];
    jr->input_len = (size_t)PQgetlength(res, row, 6);
    jr->job.user_id = strtoll(PQgetvalue(res, row, 7), NULL, 10);
    jr->job.session_id = PQgetisnull(res, row, 8) ? NULL : s[3];
    jr->job.parent_id = strtoll(PQgetvalue(res, row, 9), NULL, 10);
    jr->job.schedule_id = strtoll(PQgetvalue(res, row, 10), NULL, 10);
    jr->run_at_us = strtoll(PQgetvalue(res, row, 11), NULL, 10);
    jr->claim = atoi(PQgetvalue(res, row, 12));
    jr->counted = jr->marked = atoi(PQgetvalue(res, row, 13));
    if (!jr->counted) jr->job.attempts++;   /* this run's number all the same */
    jr->lost = atoi(PQgetvalue(res, row, 14));
    jr->transient_ms = strtol(PQgetvalue(res, row, 15), NULL, 10);
    jr->last_error = PQgetisnull(res, row, 16) ? NULL : s[4];
    jr->handler = aq_handler_find(jr->job.job_type);
    int max = atoi(PQgetvalue(res, row, 5));
    jr->job.max_attempts = max > 0 ? max : jr->handler ? jr->handler->max_attempts : 25;
    return jr;
}

static void on_claim(void *arg, PGresult *res)
{
    round *r = arg;
    aq_engine *eng = r->eng;
    if (!res) return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) { round_failed(r, res); return; }
    int n = PQntuples(res);
    if (n < r->claim_limit && eng->wake_seq == r->wake_seq) eng->want_claim = 0;
    if (!n) {
        aq_floor_after_claim(&eng->floor, &r->fc, 0, NULL);
        return;
    }
    aq_jobrun **batch = aq_malloc(sizeof *batch * (size_t)n);
    for (int i = 0; i < n; i++) batch[i] = jobrun_from_row(eng, res, i);
    qsort(batch, (size_t)n, sizeof *batch, by_order);
    aq_claim_key last = {batch[n - 1]->job.priority, batch[n - 1]->run_at_us, batch[n - 1]->job.id};
    aq_floor_after_claim(&eng->floor, &r->fc, n, &last);
    aq_jobrun *list = NULL, **tail = &list;
    for (int i = 0; i < n; i++) {
        aq_jobrun *jr = batch[i];
        jr->next = NULL;
        jr->where = JR_POOL;
        *tail = jr;
        tail = &jr->next;
        track(eng, jr);
    }
    free(batch);
    aq_debug("worker", "claimed %d jobs", n);
    r->claimed = list;   /* started by on_round_done, once the claim is committed */
}

/* ---- the round ---- */

/* Note the first failure of a round: its message and SQLSTATE. */
static void round_failed(round *r, PGresult *res)
{
    r->failed = 1;
    if (r->errmsg[0] || PQresultStatus(res) == PGRES_PIPELINE_ABORTED) return;   /* keep the cause */
    snprintf(r->errmsg, sizeof r->errmsg, "%s", PQresultErrorMessage(res));
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(r->sqlstate, sizeof r->sqlstate, "%s", st ? st : "");
}

static void completed(round *r, PGresult *res, int sent)
{
    if (!res) return;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK) {
        int fenced = sent - PQntuples(res);
        if (fenced > 0)
            aq_warn("worker", "%d of %d completions were fenced out (lease lost to another worker)",
                    fenced, sent);
        return;
    }
    round_failed(r, res);
}

static void on_complete(void *arg, PGresult *res) { completed(arg, res, ((round *)arg)->ncomplete); }
static void on_succeed(void *arg, PGresult *res) { completed(arg, res, ((round *)arg)->nsucceed); }

static void on_step(void *arg, PGresult *res)
{
    round *r = arg;
    if (!res) return;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) round_failed(r, res);
}

/* Something may have become claimable that a claim already out did not see
 * (its snapshot came first): want a claim, and keep that claim's short
 * answer from clearing the want (wake_seq; DESIGN, "Claim wanting"). */
static void wake(aq_engine *eng)
{
    eng->wake_seq++;
    eng->want_claim = 1;
}

/* A wake-up that says nothing about where (rows may now be runnable below
 * the floor): the next claim starts at the head. */
static void wake_anywhere(aq_engine *eng)
{
    aq_floor_drop(&eng->floor);
    wake(eng);
}

static void on_rescue(void *arg, PGresult *res)
{
    round *r = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
        aq_warn("worker", "re-queued %d jobs whose lease expired", PQntuples(res));
        wake_anywhere(r->eng);   /* they may sit below the floor */
    }
    on_step(arg, res);
}

static void on_prune(void *arg, PGresult *res)
{
    round *r = arg;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        long n = atol(PQcmdTuples(res));
        if (n > 0) aq_info("worker", "pruned %ld finished jobs", n);
        if (n >= atol(PRUNE_BATCH)) r->eng->next_prune = aq_now_mono_ms();   /* more to do */
    }
    on_step(arg, res);
}

static void on_prune_side(void *arg, PGresult *res)
{
    round *r = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        long n = atol(PQgetvalue(res, 0, 0));
        if (n > 0) aq_info("worker", "pruned up to %ld old notifications and decided approvals", n);
        if (n >= atol(PRUNE_BATCH)) r->eng->next_prune = aq_now_mono_ms();   /* more to do */
    }
    on_step(arg, res);
}

static void on_wake_timer(uv_timer_t *t)
{
    aq_engine *eng = t->data;
    wake_anywhere(eng);   /* the retries due now may sit below the floor */
    pump(eng);
}

/* Retries due before the next poll: wake up for them instead of waiting. */
static void arm_retry_wake(aq_engine *eng, const completion *done)
{
    long soonest = -1;
    for (const completion *c = done; c; c = c->next)
        if (c->status == AQ_STATE_QUEUED && !c->unstarted && (soonest < 0 || c->delay_ms < soonest))
            soonest = c->delay_ms;
    if (soonest < 0 || soonest >= eng->cfg->poll_ms || eng->stopping) return;
    uint64_t due = (uint64_t)soonest + 2;
    if (uv_is_active((uv_handle_t *)&eng->wake_timer) && uv_timer_get_due_in(&eng->wake_timer) <= due) return;
    uv_timer_start(&eng->wake_timer, on_wake_timer, due, 0);
}

/* aq_notify_done("id,id,...") for owned jobs that reached a final state, in
 * payloads under Postgres' 8000-byte limit: after the round that completed
 * them committed, in a transaction of its own that does not wait for the WAL
 * flush (sql/024: a notifying commit holds a cluster-wide lock until it is
 * flushed, which every notifying insert then waited for). Lost if the
 * connection is: the long-poll answers when its wait runs out. */
static void send_done_notify(round *r)
{
    aq_buf ids;
    aq_buf_init(&ids);
    int sent = 0;
    for (completion *c = r->done; c; c = c->next) {
        if (c->user_id && c->status != AQ_STATE_QUEUED) aq_buf_addf(&ids, "%s%lld", ids.len ? "," : "", (long long)c->id);
        if (ids.len > 7900 || (!c->next && ids.len)) {
            const char *p[] = {ids.p};
            sent += aq_pgloop_exec(r->c->pg, "aq_notify_done", 1, p, NULL, NULL) == 0;
            aq_buf_reset(&ids);
        }
    }
    if (sent) aq_pgloop_sync(r->c->pg, NULL, NULL);
    aq_buf_dispose(&ids);
}

/* Round r, back (or lost), no longer has its claim out. If the oldest came
 * back, the other one out is now the oldest; if the other did, the oldest
 * (still stuck) keeps its time, and the next claim need not wait again. */
static void claim_back(aq_engine *eng, const round *r)
{
    if (!r->claim_limit) return;
    if (--eng->claims_out && r->claim_sent_ms == eng->claim_oldest_ms) eng->claim_oldest_ms = eng->claim_newest_ms;
}

static void on_round_done(void *arg, PGresult *res)
{
    round *r = arg;
    aq_engine *eng = r->eng;
    eng->round_inflight--;
    r->c->inflight--;
    eng->claiming -= r->claim_limit;
    eng->claiming_idle -= r->claim_idle;
    claim_back(eng, r);
    if (!res) r->conn_lost = 1;
    else if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) round_failed(r, res);   /* the commit failed */
    /* A claim's jobs start only now that its round has committed. A big claim
     * reaches us before its round ends (the server flushes its output past
     * 8 kB), and a job that finished meanwhile had its completion, sent on the
     * other connection, read the row before the claim committed: fenced out,
     * the row left running until its lease expired (seen at 50 % of the
     * drain rate, a 130-job claim in a round whose rescue ran long). A claim
     * that rolled back leaves its rows queued: they must not run here. With
     * the connection lost we cannot know: they run, as before (at least
     * once; if the claim did not commit, their completions are fenced out
     * and the rows run again elsewhere). */
    if (r->claimed) {
        int run = !r->failed || r->conn_lost;
        if (run && !eng->stopping) {
            aq_pool_submit(eng->pool, r->claimed);
        } else {
            for (aq_jobrun *jr = r->claimed, *next; jr; jr = next) {
                next = jr->next;
                if (run) hand_back(eng, jr, 0, NULL);   /* claimed as we were told to stop: not started */
                drop_job(eng, jr);
            }
            if (!run) aq_floor_drop(&eng->floor);   /* back in the queue, perhaps below it */
        }
        r->claimed = NULL;
    }
    if (r->setup) {
        if (!r->failed && !r->conn_lost) {
            r->c->ready = 1;
            /* the first claim may have gone out on another connection before
             * this one's LISTEN took effect (its commit, just now): a NOTIFY
             * committed in between reached no one, and that claim's snapshot
             * may predate its rows (seen: 5,000 jobs waiting for the poll) */
            wake(eng);
        } else if (!r->conn_lost) {
            aq_error("worker", "preparing statements failed: %s (is the schema migrated?)", r->errmsg);
            r->c->setup_at = aq_now_mono_ms() + 2000;
        }
    } else if (r->failed || r->conn_lost) {
        /* the whole transaction rolled back: resend everything it carried */
        /* class 40 (deadlock, serialization failure) is transient: resend as is;
         * so is 25P02, a round sent behind a failed one on the same connection
         * before the ROLLBACK below reached it (its own rows were never tried) */
        int transient = r->conn_lost || !strncmp(r->sqlstate, "40", 2) || !strcmp(r->sqlstate, "25P02");
        int isolate = !transient && r->ndone > 1;
        if (transient && !r->conn_lost) aq_warn("worker", "round rolled back, sending it again: %s", r->errmsg);
        if (!transient) {
            aq_error("worker", "round failed: %s", r->errmsg);
            if (r->ndone == 1) {
                /* a single completion the database refuses: record the refusal */
                completion *c = r->done;
                if (++c->tries >= 3) {
                    aq_log(AQ_LOG_ERROR, "worker", c->id, "dropping a completion the database refuses");
                    completion_free(c);
                    r->done = NULL;
                } else if (c->status != AQ_STATE_FAILED || c->output || c->followups || c->says) {
                    char *why = aq_sprintf("could not record the result: %s", r->errmsg);
                    aq_utf8_sanitize(why);
                    free(c->output); free(c->followups); free(c->says); free(c->error);
                    c->output = c->followups = c->says = NULL;
                    c->error = why;
                    c->status = AQ_STATE_FAILED;
                }
            }
        }
        requeue_completions(eng, r->done, isolate);
        r->done = NULL;
    } else {
        send_done_notify(r);
        arm_retry_wake(eng, r->done);
        for (const completion *c = r->done; c; c = c->next)
            if (c->status == AQ_STATE_QUEUED) {   /* back in the queue, perhaps below the floor */
                aq_floor_drop(&eng->floor);
                break;
            }
    }
    if (r->failed && !r->conn_lost) {
        /* A round without completions runs in an explicit BEGIN ... COMMIT (for
         * synchronous_commit = off); a failure inside it leaves that block
         * aborted past the Sync, and every later statement on the connection
         * would fail with 25P02. End it: harmless when no block is open. */
        aq_pgloop_query(r->c->pg, "ROLLBACK", 0, NULL, NULL, NULL);
        aq_pgloop_sync(r->c->pg, NULL, NULL);
    }
    if (!r->setup && (r->failed || r->conn_lost)) {
        /* maintenance it carried did not happen: due again (after a pause if refused) */
        uint64_t again = aq_now_mono_ms() + (r->conn_lost ? 0 : 1000);
        if (r->extend) eng->next_extend = again;
        if (r->rescue) eng->next_rescue = again;
        if (r->prune) eng->next_prune = again;
    }
    for (completion *c = r->done, *next; c; c = next) {
        next = c->next;
        completion_free(c);
    }
    aq_metrics_flush_end(r->metrics, !r->failed && !r->conn_lost);
    free(r);
    pump(eng);
    maybe_finish(eng);
}

/* Append s to a Postgres array literal as one element (NULL when s is). */
static void add_array_elem(aq_buf *b, const char *s)
{
    if (b->len > 1) aq_buf_adds(b, ",");
    if (!s) { aq_buf_adds(b, "NULL"); return; }
    aq_buf_adds(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') aq_buf_add(b, "\\", 1);
        aq_buf_add(b, p, 1);
    }
    aq_buf_adds(b, "\"");
}

/* Append a JSON array's elements (text "[...]") to an array being built in b. */
static void add_json_elems(aq_buf *b, const char *arr)
{
    aq_buf_adds(b, b->len ? "," : "[");
    aq_buf_add(b, arr + 1, strlen(arr) - 2);   /* strip [ ] */
}

static void send_complete(aq_engine *eng, round *r)
{
    aq_buf params, follow, says, ids, claims, attempts, outputs;
    aq_buf_init(&params);
    aq_buf_init(&follow);
    aq_buf_init(&says);
    aq_buf_init(&ids);
    aq_buf_init(&claims);
    aq_buf_init(&attempts);
    aq_buf_init(&outputs);
    aq_buf_adds(&params, "[");
    aq_buf_adds(&ids, "{");
    aq_buf_adds(&claims, "{");
    aq_buf_adds(&attempts, "{");
    aq_buf_adds(&outputs, "{");
    completion **tail = &r->done;
    int only_one = eng->done_head && eng->done_head->isolate;
    while (eng->done_head && r->ndone < MAX_COMPLETE) {
        completion *c = eng->done_head;
        if (r->ndone && (only_one || c->isolate)) break;
        eng->done_head = c->next;
        if (!eng->done_head) eng->done_tail = NULL;
        eng->ndone--;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
        r->ndone++;
        if (c->status == AQ_STATE_SUCCEEDED && !c->error) {
            aq_buf_addf(&ids, "%s%lld", r->nsucceed ? "," : "", (long long)c->id);
            aq_buf_addf(&claims, "%s%d", r->nsucceed ? "," : "", c->claim);
            aq_buf_addf(&attempts, "%s%d", r->nsucceed ? "," : "", c->attempts);
            add_array_elem(&outputs, c->output);
            r->nsucceed++;
        } else {
            aq_buf_addf(&params, "%s{\"id\":%lld,\"k\":%d,\"a\":%d,\"s\":\"%s\",\"d\":%ld,\"t\":%d,\"u\":%d",
                        r->ncomplete++ ? "," : "", (long long)c->id, c->claim, c->attempts,
                        aq_job_state_name(c->status), c->delay_ms,
                        c->transient, c->unstarted);
            if (c->output) { aq_buf_adds(&params, ",\"o\":"); aq_buf_adds(&params, c->output); }
            if (c->error) { aq_buf_adds(&params, ",\"e\":"); aq_buf_add_json_str(&params, c->error); }
            aq_buf_adds(&params, "}");
        }
        if (c->followups && c->status != AQ_STATE_QUEUED) add_json_elems(&follow, c->followups);
        if (c->says && c->status != AQ_STATE_QUEUED) add_json_elems(&says, c->says);
    }
    aq_buf_adds(&params, "]");
    aq_buf_adds(&ids, "}");
    aq_buf_adds(&claims, "}");
    aq_buf_adds(&attempts, "}");
    aq_buf_adds(&outputs, "}");
    if (r->nsucceed) {
        const char *p[] = {eng->id, ids.p, claims.p, attempts.p, outputs.p};
        aq_pgloop_exec(r->c->pg, "aq_succeed", 5, p, on_succeed, r);
    }
    if (r->ncomplete) {
        const char *p[] = {eng->id, params.p};
        aq_pgloop_exec(r->c->pg, "aq_complete", 2, p, on_complete, r);
    }
    if (follow.len) {
        aq_buf_adds(&follow, "]");
        const char *fp[] = {follow.p};
        aq_pgloop_exec(r->c->pg, "aq_followup", 1, fp, on_step, r);
    }
    if (says.len) {
        aq_buf_adds(&says, "]");
        const char *sp[] = {says.p};
        aq_pgloop_exec(r->c->pg, "aq_say", 1, sp, on_step, r);
    }
    aq_buf_dispose(&params);
    aq_buf_dispose(&follow);
    aq_buf_dispose(&says);
    aq_buf_dispose(&claims);
    aq_buf_dispose(&ids);
    aq_buf_dispose(&attempts);
    aq_buf_dispose(&outputs);
}

static void send_setup(conn *c)
{
    round *r = aq_calloc(1, sizeof *r);
    r->eng = c->eng;
    r->c = c;
    r->setup = 1;
    aq_pgloop_query(c->pg, "DEALLOCATE ALL", 0, NULL, on_step, r);
    for (const char *const *set = aq_engine_session_settings; *set; set++)
        aq_pgloop_query(c->pg, *set, 0, NULL, on_step, r);
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
        aq_pgloop_prepare(c->pg, statements[i].name, statements[i].sql, on_step, r);
    if (c->index == 0) {
        aq_pgloop_query(c->pg, "LISTEN " AQ_CHANNEL_JOBS, 0, NULL, on_step, r);
        char *types = registry_json();
        const char *p[] = {types};
        aq_pgloop_query(c->pg, SQL_PUBLISH_TYPES, 1, p, on_step, r);
        free(types);
    }
    c->inflight++;
    c->eng->round_inflight++;
    if (aq_pgloop_sync(c->pg, on_round_done, r)) { c->inflight--; c->eng->round_inflight--; free(r); }
}

/* The ids of every job this worker holds (claimed and not yet completed), as
 * a Postgres array literal (heap). */
static char *held_ids(aq_engine *eng)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{");
    for (aq_jobrun *jr = eng->jobs; jr; jr = jr->enext)
        aq_buf_addf(&b, "%s%lld", b.len > 1 ? "," : "", (long long)jr->job.id);
    for (completion *c = eng->done_head; c; c = c->next)
        aq_buf_addf(&b, "%s%lld", b.len > 1 ? "," : "", (long long)c->id);
    aq_buf_adds(&b, "}");
    return aq_buf_take(&b);
}

/* Whether this worker prunes at all (AGENTQ_RETENTION_HOURS or
 * AGENTQ_NOTIFICATION_RETENTION_HOURS above 0). */
static int prunes(const aq_engine *eng)
{
    return eng->cfg->retention_hours > 0 || eng->cfg->notification_retention_hours > 0;
}

/* What the next round would carry; 0 when there is nothing to send. */
static int round_has_work(aq_engine *eng, uint64_t now, int free_slots, int may_claim)
{
    return eng->done_head || eng->nmarks || (!eng->stopping && eng->want_claim && free_slots > 0 && may_claim) ||
           (now >= eng->next_extend && !eng->finishing) || (now >= eng->next_rescue && !eng->stopping) ||
           (now >= eng->next_prune && !eng->stopping && prunes(eng));
}

/* Send a round on c if there is anything to send. Up to two rounds are in
 * flight per connection, so its server process is never idle while this one
 * handles the previous answer; the setup round goes alone. Returns 1 if sent. */
static int pump_conn(aq_engine *eng, conn *c)
{
    if (!aq_pgloop_ready(c->pg)) return 0;
    if (!c->ready) {
        if (!c->inflight && aq_now_mono_ms() >= c->setup_at) send_setup(c);
        return 0;
    }
    if (c->inflight >= MAX_ROUNDS_PER_CONN) return 0;
    uint64_t now = aq_now_mono_ms();
    /* held: at most concurrency + prefetch; waiting unstarted: at most
     * prefetch beyond one per thread (see "Claimed ahead" above) */
    int room = eng->opts.concurrency + eng->opts.prefetch - eng->held;
    int ahead = eng->opts.prefetch + eng->opts.handler_threads - aq_pool_unstarted(eng->pool);
    int free_slots = (room < ahead ? room : ahead) - eng->claiming;
    /* one claim out at a time (DESIGN, "Claim wanting"); a second once the
     * first is overdue, on a connection with nothing in flight: the first's
     * round may wait on a row lock (a completion of a row an operator's open
     * transaction holds), and so does whatever that connection has queued
     * behind it, but claims must go on */
    int may_claim = !eng->claims_out ||
                    (eng->claims_out == 1 && !c->inflight && now - eng->claim_oldest_ms >= CLAIM_OVERDUE_MS);
    if (!round_has_work(eng, now, free_slots, may_claim)) return 0;

    round *r = aq_calloc(1, sizeof *r);
    r->eng = eng;
    r->c = c;
    /* A round without completions changes nothing a client can observe that a
     * crash could not undo anyway (a claim lost with the server leaves the job
     * queued; at-least-once allows the rerun), so it does not wait for the WAL
     * flush. Rounds that complete jobs stay fully synchronous. */
    int async = !eng->done_head;
    if (async) {
        aq_pgloop_query(r->c->pg, "BEGIN", 0, NULL, on_step, r);
        aq_pgloop_query(r->c->pg, "SET LOCAL synchronous_commit = off", 0, NULL, on_step, r);
    } else {
        send_complete(eng, r);
    }
    if (!eng->stopping && eng->want_claim && free_slots > 0 && may_claim) {
        r->claim_limit = free_slots > MAX_CLAIM ? MAX_CLAIM : free_slots;
        /* rows that start at once (free in-flight slots) are counted by the
         * claim; the rest (prefetched) count when they start (see the DESIGN above) */
        int idle = eng->opts.concurrency - eng->held - eng->claiming_idle;
        r->claim_idle = idle < 0 ? 0 : idle > r->claim_limit ? r->claim_limit : idle;
        r->wake_seq = eng->wake_seq;
        eng->claiming += r->claim_limit;
        eng->claiming_idle += r->claim_idle;
        char limit[16], counted[16], cap[16], fprio[8], frun[64], fid[24];
        snprintf(limit, sizeof limit, "%d", r->claim_limit);
        snprintf(counted, sizeof counted, "%d", r->claim_idle);
        snprintf(cap, sizeof cap, "%ld", eng->cfg->user_max_inflight);
        aq_floor_claim_sent(&eng->floor, &r->fc, r->claim_limit, eng->claims_out > 0, fprio, frun, fid);
        if (!eng->claims_out++) eng->claim_oldest_ms = now;
        eng->claim_newest_ms = r->claim_sent_ms = now;
        const char *p[] = {eng->opts.queues, limit, eng->id, eng->lease, counted, cap, fprio, frun, fid};
        aq_pgloop_exec(r->c->pg, "aq_claim", 9, p, on_claim, r);
    }
    if (eng->nmarks) {
        aq_buf_adds(&eng->mark_ids, "}");
        aq_buf_adds(&eng->mark_claims, "}");
        aq_buf_adds(&eng->mark_attempts, "}");
        const char *p[] = {eng->id, eng->mark_ids.p, eng->mark_claims.p, eng->mark_attempts.p};
        aq_pgloop_exec(r->c->pg, "aq_mark", 4, p, on_step, r);   /* lost with a failed round: the completion counts it */
        aq_buf_reset(&eng->mark_ids);
        aq_buf_reset(&eng->mark_claims);
        aq_buf_reset(&eng->mark_attempts);
        eng->nmarks = 0;
    }
    if (now >= eng->next_extend && !eng->finishing) {
        char running[16], done[24];
        snprintf(running, sizeof running, "%d", eng->held - eng->abandoned);
        snprintf(done, sizeof done, "%lld", eng->jobs_done);
        char *held = held_ids(eng);
        const char *pe[] = {eng->id, eng->lease, held};
        const char *ph[] = {eng->id, eng->host, eng->pidstr, eng->opts.queues, eng->conc, running, done};
        aq_pgloop_exec(r->c->pg, "aq_extend", 3, pe, on_step, r);
        free(held);
        aq_pgloop_exec(r->c->pg, "aq_heartbeat", 7, ph, on_step, r);
        const char *pm[1];
        if ((r->metrics = aq_metrics_flush_begin(&pm[0]))) aq_pgloop_exec(r->c->pg, "aq_metrics", 1, pm, on_step, r);
        r->extend = 1;
        eng->next_extend = now + (uint64_t)eng->cfg->lease_seconds * 1000u / 3;
    }
    if (now >= eng->next_rescue && !eng->stopping) {
        const char *pr[] = {RESCUE_BATCH};
        aq_pgloop_exec(r->c->pg, "aq_rescue", 1, pr, on_rescue, r);
        r->rescue = 1;
        eng->next_rescue = now + (uint64_t)(eng->cfg->lease_seconds * 1000 / 4);
    }
    if (now >= eng->next_prune && !eng->stopping && prunes(eng)) {
        char hours[24], nhours[24];
        snprintf(hours, sizeof hours, "%ld", eng->cfg->retention_hours);
        snprintf(nhours, sizeof nhours, "%ld", eng->cfg->notification_retention_hours);
        const char *pp[] = {hours, nhours};
        const char *pw[] = {eng->lease};
        if (eng->cfg->retention_hours > 0) aq_pgloop_exec(r->c->pg, "aq_prune", 1, pp, on_prune, r);
        aq_pgloop_exec(r->c->pg, "aq_prune_workers", 1, pw, on_step, r);
        aq_pgloop_exec(r->c->pg, "aq_prune_side", 2, pp, on_prune_side, r);
        r->prune = 1;
        eng->next_prune = now + 60000;
    }
    if (async) aq_pgloop_query(c->pg, "COMMIT", 0, NULL, on_step, r);
    eng->round_inflight++;
    c->inflight++;
    if (aq_pgloop_sync(c->pg, on_round_done, r)) {
        /* the connection dropped while sending: callbacks already ran with NULL */
        eng->round_inflight--;
        c->inflight--;
        eng->claiming -= r->claim_limit;
        eng->claiming_idle -= r->claim_idle;
        claim_back(eng, r);
        requeue_completions(eng, r->done, 0);
        aq_metrics_flush_end(r->metrics, 0);
        free(r);
        return 0;
    }
    return 1;
}

/* Offer work to every connection, the least busy first. */
static void pump(aq_engine *eng)
{
    for (int busy = 0; busy < MAX_ROUNDS_PER_CONN; busy++)
        for (int i = 0; i < eng->nconns; i++)
            if (eng->conns[i].inflight == busy || !eng->conns[i].ready) pump_conn(eng, &eng->conns[i]);
}

/* ---- events ---- */

static void on_pg_state(void *arg, int connected)
{
    conn *c = arg;
    aq_engine *eng = c->eng;
    c->ready = 0;
    if (connected) {
        aq_floor_drop(&eng->floor);   /* a claim whose answer was lost, a rollback: start over */
        c->setup_at = 0;
        eng->next_extend = 0;
        eng->next_rescue = 0;
        pump(eng);
    }
}

static void on_notify(void *arg, const PGnotify *n)
{
    aq_engine *eng = ((conn *)arg)->eng;
    aq_floor_notified(&eng->floor, n->extra ? n->extra : "");
    wake(eng);
    pump(eng);
}

static void on_poll_timer(uv_timer_t *t)
{
    aq_engine *eng = t->data;
    wake_anywhere(eng);   /* rows that came due, or were skipped, below the floor */
    pump(eng);
}

/* A started job past its deadline: complete it as a retry; a request it
 * awaits is aborted, a step on a thread has its result ignored. */
static void time_out(aq_engine *eng, aq_jobrun *jr)
{
    int timeout_s = jr->handler ? jr->handler->timeout_s : 60;
    completion *c = completion_from(jr);
    long d = aq_retry_delay_ms(jr->job.attempts, jr->job.max_attempts, -1, eng->cfg->retry_base_ms,
                               eng->cfg->retry_max_ms, randombytes_random());
    /* The last attempt is not failed here: the loop cannot run the type's
     * final-failure hook (it may block). Back to the queue with its attempts
     * spent, the next claim's dispatcher fails it for good and runs the hook. */
    c->status = AQ_STATE_QUEUED;
    c->delay_ms = d < 0 ? 0 : d;
    c->error = aq_sprintf("timed out after %d s", timeout_s);
    push_completion(eng, c);
    aq_worker_metrics_timed_out(jr);
    aq_log(AQ_LOG_WARN, "worker", jr->job.id, "%s %s%s", jr->job.job_type, c->error,
           jr->where == JR_AWAIT ? ": its request aborted" : "");
    if (jr->where == JR_AWAIT) {
        aq_http_multi_abort(eng->multi, jr->call);
        drop_job(eng, jr);
        return;
    }
    jr->abandoned = 1;
    eng->abandoned++;
}

/* A prefetched job whose handler started since the last tick: count its run. */
static void mark_started(aq_engine *eng, aq_jobrun *jr)
{
    if (jr->marked || jr->abandoned) return;
    jr->marked = 1;
    const char *sep = eng->nmarks++ ? "," : "{";
    aq_buf_addf(&eng->mark_ids, "%s%lld", sep, (long long)jr->job.id);
    aq_buf_addf(&eng->mark_claims, "%s%d", sep, jr->claim);
    aq_buf_addf(&eng->mark_attempts, "%s%d", sep, jr->job.attempts);
}

typedef struct scan { aq_engine *eng; aq_jobrun *late; } scan;

/* Under the pool's lock (->started, ->deadline_ms): marks, and the jobs past
 * their deadline gathered (by ->tnext) to be timed out after it. */
static void scan_started(void *arg)
{
    scan *sc = arg;
    uint64_t now = aq_now_mono_ms();
    for (aq_jobrun *jr = sc->eng->jobs; jr; jr = jr->enext) {
        if (!jr->started || jr->abandoned) continue;
        mark_started(sc->eng, jr);
        if (now >= jr->deadline_ms) { jr->tnext = sc->late; sc->late = jr; }
    }
}

/* Every second: timeouts, marks, and due maintenance (extend, rescue, prune). */
static void on_tick(uv_timer_t *t)
{
    aq_engine *eng = t->data;
    if (eng->floor.used) {   /* the safety net (DESIGN, "Claim floor"): one claim from the head */
        eng->floor.used = 0;
        wake_anywhere(eng);
    }
    scan sc = {eng, NULL};
    aq_pool_locked(eng->pool, scan_started, &sc);
    for (aq_jobrun *jr = sc.late, *next; jr; jr = next) {
        next = jr->tnext;
        time_out(eng, jr);
    }
    pump(eng);
    maybe_finish(eng);
}

/* ---- shutdown ---- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void exit_now(aq_engine *eng)
{
    if (eng->exited) return;
    eng->exited = 1;
    aq_metrics_flush_end(eng->last_metrics, 0);   /* sent or not, the process ends */
    eng->last_metrics = NULL;
    uv_close((uv_handle_t *)&eng->poll_timer, on_handle_closed);
    uv_close((uv_handle_t *)&eng->tick_timer, on_handle_closed);
    uv_close((uv_handle_t *)&eng->wake_timer, on_handle_closed);
    uv_close((uv_handle_t *)&eng->grace_timer, on_handle_closed);
    for (int i = 0; i < eng->nconns; i++) aq_pgloop_close(eng->conns[i].pg);
    aq_http_multi_close(eng->multi);   /* aborts what is left: those jobs return through lease expiry */
    eng->multi = NULL;
    for (aq_jobrun *jr = eng->jobs; jr; jr = jr->enext) jr->call = NULL;
    aq_pool_close(eng->pool);
    eng->on_exit(eng->exit_arg);
}

static void on_bye(void *arg, PGresult *res)
{
    aq_engine *eng = arg;
    aq_info("worker", "stopped; %lld jobs done", eng->jobs_done);
    exit_now(eng);
}

static void maybe_finish(aq_engine *eng)
{
    if (!eng->stopping || eng->finishing || eng->held > eng->abandoned || eng->ndone > 0 || eng->round_inflight > 0)
        return;
    eng->finishing = 1;
    const char *p[] = {eng->id}, *pm[1];
    for (int i = 0; i < eng->nconns; i++) {
        aq_pgloop *pg = eng->conns[i].pg;
        if (eng->conns[i].ready && !eng->last_metrics && (eng->last_metrics = aq_metrics_flush_begin(&pm[0])))
            aq_pgloop_exec(pg, "aq_metrics", 1, pm, NULL, NULL);   /* the counters since the last heartbeat */
        if (eng->conns[i].ready && !aq_pgloop_exec(pg, "aq_bye", 1, p, NULL, NULL) &&
            !aq_pgloop_sync(pg, on_bye, eng))
            return;
    }
    exit_now(eng);
}

/* Hand back the steps queued for a thread: continuations (started), and
 * first steps claimed since the stop began (none: claims stop with it). */
static void hand_back_queued(aq_engine *eng)
{
    for (aq_jobrun *jr = aq_pool_take_ready(eng->pool), *next; jr; jr = next) {
        next = jr->next;
        hand_back(eng, jr, 1, "worker shut down before the handler finished");
        drop_job(eng, jr);
    }
}

static void on_grace(uv_timer_t *t)
{
    aq_engine *eng = t->data;
    if (eng->held > eng->abandoned) {
        aq_warn("worker", "grace period over: handing back %d running jobs", eng->held - eng->abandoned);
        hand_back_queued(eng);
        for (aq_jobrun *jr = eng->jobs, *next; jr; jr = next) {
            next = jr->enext;
            if (jr->abandoned) continue;
            hand_back(eng, jr, 1, "worker shut down before the handler finished");
            if (jr->where == JR_AWAIT) {   /* its request is aborted, its connection closed */
                aq_http_multi_abort(eng->multi, jr->call);
                drop_job(eng, jr);
            } else {
                jr->abandoned = 1;
                eng->abandoned++;
            }
        }
        /* give the hand-back round a little time, then leave regardless */
        uv_timer_start(&eng->grace_timer, on_grace, 5000, 0);
        pump(eng);
        maybe_finish(eng);
        return;
    }
    aq_warn("worker", "could not reach the database to finish shutdown; leaving %d results to lease expiry",
            eng->ndone);
    exit_now(eng);
}

void aq_engine_stop(aq_engine *eng)
{
    if (eng->stopping) return;
    eng->stopping = 1;
    uv_timer_stop(&eng->poll_timer);
    uv_timer_stop(&eng->wake_timer);
    int unstarted = 0;
    for (aq_jobrun *jr = aq_pool_take_queued(eng->pool), *next; jr; jr = next) {   /* later steps carry on */
        next = jr->next;
        hand_back(eng, jr, 0, NULL);
        drop_job(eng, jr);
        unstarted++;
    }
    aq_info("worker", "stopping: %d running, %d claimed but not started (handed back)",
            eng->held - eng->abandoned, unstarted);
    uv_timer_start(&eng->grace_timer, on_grace, (uint64_t)eng->cfg->grace_seconds * 1000u, 0);
    pump(eng);
    maybe_finish(eng);
}

/* ---- life cycle ---- */

aq_engine *aq_engine_create(uv_loop_t *loop, const aq_config *cfg, const aq_engine_opts *opts,
                            void (*on_exit)(void *), void *arg)
{
    aq_engine *eng = aq_calloc(1, sizeof *eng);
    eng->loop = loop;
    eng->cfg = cfg;
    eng->opts = *opts;
    eng->on_exit = on_exit;
    eng->exit_arg = arg;
    gethostname(eng->host, sizeof eng->host - 1);
    snprintf(eng->pidstr, sizeof eng->pidstr, "%d", (int)getpid());
    snprintf(eng->id, sizeof eng->id, "%s:%d:%08x", eng->host, (int)getpid(), randombytes_random());
    snprintf(eng->lease, sizeof eng->lease, "%ld", cfg->lease_seconds);
    snprintf(eng->conc, sizeof eng->conc, "%d", opts->concurrency);
    eng->nconns = opts->connections > 0 ? opts->connections : 1;
    eng->conns = aq_calloc((size_t)eng->nconns, sizeof *eng->conns);
    for (int i = 0; i < eng->nconns; i++) {
        conn *c = &eng->conns[i];
        c->eng = eng;
        c->index = i;
        aq_pgloop_callbacks cb = {on_pg_state, on_notify, c};
        c->pg = aq_pgloop_create(loop, cfg->database_url, &cb);
    }
    eng->dbs = aq_dbpool_create(cfg->database_url, opts->handler_db_connections);
    eng->pool = aq_pool_create(loop, opts->handler_threads, opts->concurrency, cfg, eng->dbs, on_pool_done, eng);
    eng->multi = aq_http_multi_create(loop);
    aq_buf_init(&eng->mark_ids);
    aq_buf_init(&eng->mark_claims);
    aq_buf_init(&eng->mark_attempts);
    uv_timer_init(loop, &eng->poll_timer);
    uv_timer_init(loop, &eng->tick_timer);
    uv_timer_init(loop, &eng->wake_timer);
    uv_timer_init(loop, &eng->grace_timer);
    eng->poll_timer.data = eng->tick_timer.data = eng->wake_timer.data = eng->grace_timer.data = eng;
    return eng;
}

void aq_engine_start(aq_engine *eng)
{
    aq_info("worker", "starting %s: queues %s, concurrency %d, prefetch %d, %d connection(s), %d handler thread(s),"
            " %d handler connection(s), lease %ld s", eng->id, eng->opts.queues, eng->opts.concurrency,
            eng->opts.prefetch, eng->nconns, eng->opts.handler_threads, eng->opts.handler_db_connections,
            eng->cfg->lease_seconds);
    uv_timer_start(&eng->poll_timer, on_poll_timer, (uint64_t)eng->cfg->poll_ms, (uint64_t)eng->cfg->poll_ms);
    uv_timer_start(&eng->tick_timer, on_tick, 1000, 1000);
    for (int i = 0; i < eng->nconns; i++) aq_pgloop_start(eng->conns[i].pg);
}

const char *aq_engine_id(const aq_engine *eng) { return eng->id; }

void aq_engine_join(aq_engine *eng, long ms)
{
    int left = aq_pool_join(eng->pool, ms);
    if (left) aq_warn("worker", "%d handler threads still busy at exit (abandoned jobs)", left);
}

void aq_engine_destroy(aq_engine *eng)
{
    if (!eng) return;
    if (aq_pool_destroy(eng->pool)) return;   /* a handler thread still runs: it uses eng */
    for (aq_jobrun *jr = eng->jobs, *next; jr; jr = next) {   /* the pool is gone: no slot to free */
        next = jr->enext;
        aq_jobrun_destroy(jr);
    }
    aq_dbpool_destroy(eng->dbs);
    for (completion *c = eng->done_head, *next; c; c = next) {
        next = c->next;
        completion_free(c);
    }
    aq_buf_dispose(&eng->mark_ids);
    aq_buf_dispose(&eng->mark_claims);
    aq_buf_dispose(&eng->mark_attempts);
    free(eng->conns);   /* each connection freed itself once closed (aq_pgloop_close) */
    free(eng);
}
