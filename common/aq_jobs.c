/* aq_jobs.c — the job life cycle's statements and their blocking callers
 * (see aq_jobs.h). Every INSERT INTO jobs of the C sources is here; cancel is
 * the SQL function aq_job_cancel (sql/012_lifecycle.sql), so its rule is
 * written once for the API and the CLI.
 *
 * DESIGN: the asynchronous callers (the API's batched enqueue, the engine's
 * follow-up inserts inside their parent's completion round) keep their
 * batching and their rounds; only the statement text lives here. */
#include "aq_audit.h"
#include "aq_jobs.h"
#include "aq_db.h"
#include "aq_error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
#define X(e, name) name,
    AQ_JOB_STATES(X)
#undef X
};

const char *aq_job_state_name(aq_job_state s)
{
    return (unsigned)s < AQ_STATE_COUNT_ ? state_names[s] : "?";
}

int aq_job_state_parse(const char *name, aq_job_state *out)
{
    for (int i = 0; name && i < AQ_STATE_COUNT_; i++)
        if (!strcmp(name, state_names[i])) {
            *out = (aq_job_state)i;
            return 0;
        }
    return AQ_EINVAL;
}

bool aq_job_state_final(aq_job_state s)
{
    return s == AQ_STATE_SUCCEEDED || s == AQ_STATE_FAILED || s == AQ_STATE_CANCELLED;
}

/* ---- enqueue ---- */

/* A new job's serial key (docs/DESIGN.md, "Serial keys"), from the columns
 * of the row being inserted: one job of a key runs at a time, in id order.
 * An agent turn: its session (two messages sent quickly run one after the
 * other, the second seeing the first's reply). A scheduled run: its
 * schedule. A Telegram update: its chat, so a burst of messages starts its
 * turns in the order sent. No key (they run as soon as a slot is free):
 * action_decision (it only re-queues the parked turn, which keeps its own
 * key; putting it behind the session's running turn would only delay the
 * approval), notify (a delivery does not depend on the one before it, and a
 * chat whose deliveries retry for minutes must not hold the user's other
 * replies) and every other type. Written once, used by every INSERT below. */
#define SERIAL_KEY(type, session, schedule, input)                                                       \
    "CASE " type " WHEN 'agent_turn' THEN 'session:' || " session "::text"                                \
    " WHEN 'scheduled_run' THEN 'schedule:' || " schedule "::text"                                        \
    " WHEN 'telegram_update' THEN 'telegram-chat:' || coalesce(" input " #>> '{message,chat,id}',"          \
    " " input " #>> '{edited_message,chat,id}', " input " #>> '{callback_query,message,chat,id}') END"

static const char SQL_ENQUEUE_ONE[] =
    "INSERT INTO jobs (job_type, queue, priority, input, run_at, max_attempts, user_id, schedule_id, session_id,"
    " idempotency_key, serial_key)"
    " SELECT $1, coalesce($2, 'default'), $3::smallint, coalesce($4::jsonb, '{}'),"
    " now() + make_interval(secs => $5::bigint / 1000.0), $6::int, $7::bigint, $8::bigint, $9::uuid, $10, "
    SERIAL_KEY("$1", "$9::uuid", "$8::bigint", "coalesce($4::jsonb, '{}')")
    " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id";

int aq_jobs_enqueue(PGconn *db, const char *name, const aq_job_new *j, int64_t *id)
{
    char prio[16], delay[24], max[16], user[24], sched[24];
    snprintf(prio, sizeof prio, "%d", j->priority);
    snprintf(delay, sizeof delay, "%ld", j->run_in_ms > 0 ? j->run_in_ms : 0);
    snprintf(max, sizeof max, "%d", j->max_attempts);
    snprintf(user, sizeof user, "%lld", (long long)j->user_id);
    snprintf(sched, sizeof sched, "%lld", (long long)j->schedule_id);
    const char *p[] = {j->job_type, j->queue, prio, j->input, delay, j->max_attempts > 0 ? max : NULL,
                       j->user_id ? user : NULL, j->schedule_id ? sched : NULL, j->session_id,
                       j->idempotency_key};
    PGresult *r;
    int rc = aq_db_query(db, name, SQL_ENQUEUE_ONE, 10, p, &r);
    if (rc) return rc;
    *id = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

/* The batched enqueue, in two shapes that share their text: the rows and
 * their checks (quota, type, queue), then the insert. The full one also
 * claims sessions and replays idempotency keys; the plain one, for batches
 * in which no row names a session or a key, leaves those parts out: half the
 * planning and execution time of the full one (0.24 + 0.28 ms against 0.52 +
 * 0.46 ms for one row, EXPLAIN ANALYZE), which every batch pays (see
 * api/enqueue.c, "Plans"). Both answer the same columns. */
#define ENQ_ROWS_CHECKED                                                                                       \
    "WITH r AS MATERIALIZED ("                                                                                 \
    " SELECT r.*, nextval(pg_get_serial_sequence('jobs', 'id')) AS new_id"                                     \
    " FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (job_type text, queue text, priority smallint,"        \
    " input jsonb, run_at timestamptz, user_id bigint, session_id uuid, key text, key_hash text, quota int,"   \
    " check_type boolean, queues text, claim boolean))"                                                        \
    " WITH ORDINALITY AS r(job_type, queue, priority, input, run_at, user_id, session_id, key, key_hash, quota," \
    " check_type, queues, claim, ord)),"                                                                       \
    /* each user's queued jobs, counted (up to the quota) under the user's lock: exact across batches. A      \
     * batch with no quota never calls the function (the one-time filter): the call alone, with its        \
     * SET clause (sql/025) and an empty array, was a tenth of a small batch's server time */                \
    " u AS MATERIALIZED (SELECT * FROM aq_queued_locked(ARRAY(SELECT r.user_id FROM r WHERE r.quota IS NOT NULL),"\
    "  (SELECT max(r.quota) FROM r)::int) WHERE EXISTS (SELECT 1 FROM r WHERE r.quota IS NOT NULL)),"         \
    " chk AS MATERIALIZED ("                                                                                   \
    " SELECT r.ord,"                                                                                           \
    " (r.quota IS NULL OR (SELECT u.queued FROM u WHERE u.user_id = r.user_id)"                                \
    "  + row_number() OVER (PARTITION BY r.user_id ORDER BY r.ord) <= r.quota) AS within_quota,"              \
    " (r.check_type IS NOT TRUE OR EXISTS (SELECT 1 FROM job_types t WHERE t.name = r.job_type"                \
    "  AND t.api_enqueue)) AS type_ok,"                                                                        \
    " (r.check_type IS NOT TRUE OR CASE WHEN r.queues IS NOT NULL"                                             \
    "  THEN coalesce(r.queue, 'default') = ANY (string_to_array(r.queues, ','))"                               \
    "  ELSE EXISTS (SELECT 1 FROM workers w WHERE coalesce(r.queue, 'default') = ANY (w.queues)) END) AS queue_ok" \
    " FROM r, (SELECT count(*) FROM u) AS locked),"   /* the locks come before any row is written */

/* the insert of the rows of r that ok (a CTE with ord and the checks) lets through */
#define ENQ_INSERT(ok_from, ok_where)                                                                          \
    " ins AS ("                                                                                                \
    " INSERT INTO jobs (id, job_type, queue, priority, input, run_at, user_id, session_id, idempotency_key,"  \
    " idempotency_hash, serial_key)"                                                                           \
    " OVERRIDING SYSTEM VALUE"                                                                                 \
    " SELECT r.new_id, r.job_type, coalesce(r.queue, 'default'), coalesce(r.priority, 0), coalesce(r.input, '{}'),"\
    " coalesce(r.run_at, now()), r.user_id, r.session_id, r.key, decode(r.key_hash, 'hex'), "                  \
    SERIAL_KEY("r.job_type", "r.session_id", "NULL::bigint", "r.input")                                        \
    " FROM r JOIN " ok_from " USING (ord) WHERE " ok_where                                                      \
    " ORDER BY r.ord"                                                                                          \
    " ON CONFLICT DO NOTHING RETURNING id)"

const char aq_jobs_sql_enqueue_batch[] =
    ENQ_ROWS_CHECKED
    /* a new session is claimed by the first row naming it, in this statement: a concurrent claim of
     * the same id waits for this commit and then returns this owner (DO UPDATE sees past the snapshot) */
    " claim AS ("
    " INSERT INTO chat_sessions (id, user_id, channel)"
    " SELECT DISTINCT ON (r.session_id) r.session_id, r.user_id, 'web' FROM r JOIN chk USING (ord)"
    " WHERE r.claim AND r.session_id IS NOT NULL AND r.user_id IS NOT NULL AND chk.within_quota"
    " AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = r.session_id)"
    " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.session_id = r.session_id AND j.user_id IS DISTINCT FROM r.user_id)"
    " ORDER BY r.session_id, r.ord"
    " ON CONFLICT (id) DO UPDATE SET updated_at = chat_sessions.updated_at RETURNING id, user_id),"
    " ok AS MATERIALIZED ("
    " SELECT chk.*, (r.session_id IS NULL OR coalesce((SELECT c.user_id FROM claim c WHERE c.id = r.session_id),"
    "  (SELECT s.user_id FROM chat_sessions s WHERE s.id = r.session_id),"
    "  CASE WHEN r.claim THEN (SELECT j.user_id FROM jobs j WHERE j.session_id = r.session_id"
    "   AND j.user_id IS DISTINCT FROM r.user_id LIMIT 1) END,"   /* a session whose first turn has not run */
    "  r.user_id) IS NOT DISTINCT FROM r.user_id) AS session_ok"
    " FROM r JOIN chk USING (ord)),"
    ENQ_INSERT("ok", "ok.within_quota AND ok.session_ok AND ok.type_ok AND ok.queue_ok")
    " SELECT r.ord, CASE WHEN ins.id IS NOT NULL THEN r.new_id END, ok.within_quota, ok.session_ok, e.id, ok.type_ok,"
    " ok.queue_ok, e.idempotency_hash IS NOT NULL AND e.idempotency_hash IS DISTINCT FROM decode(r.key_hash, 'hex')"
    " FROM r JOIN ok USING (ord) LEFT JOIN ins ON ins.id = r.new_id"
    " LEFT JOIN LATERAL (SELECT e.id, e.idempotency_hash FROM jobs e WHERE ins.id IS NULL AND r.key IS NOT NULL"
    "  AND e.idempotency_key = r.key) e ON true"
    " ORDER BY r.ord";

/* A row that names a session or a key anyway is not inserted (session_ok
 * false): only the full statement may claim a session. */
const char aq_jobs_sql_enqueue_plain[] =
    ENQ_ROWS_CHECKED
    ENQ_INSERT("chk", "chk.within_quota AND chk.type_ok AND chk.queue_ok AND r.session_id IS NULL AND r.key IS NULL")
    " SELECT r.ord, CASE WHEN ins.id IS NOT NULL THEN r.new_id END, chk.within_quota,"
    " r.session_id IS NULL AND r.key IS NULL, NULL::bigint, chk.type_ok, chk.queue_ok, false"
    " FROM r JOIN chk USING (ord) LEFT JOIN ins ON ins.id = r.new_id"
    " ORDER BY r.ord";

/* Unfinished rows through the partial indexes, one status at a time: no
 * partial index serves a list of statuses, and IN ('queued', 'running',
 * 'waiting') read the whole table, history included, on every refresh of the
 * console (146 ms beside 200,000 finished rows). Finished rows through
 * jobs_finished, the last hour only. */
const char aq_jobs_sql_queue_overview[] =
    "SELECT json_build_object("
    "'jobs', (SELECT coalesce(json_agg(json_build_object('type', job_type, 'status', st, 'count', n)"
    " ORDER BY job_type, st), '[]'::json) FROM (SELECT job_type,"
    " CASE WHEN status = 'queued' AND run_at > now() THEN 'scheduled'"
    " WHEN status = 'queued' THEN 'runnable' ELSE status END AS st, count(*) AS n"
    " FROM (SELECT job_type, status, run_at FROM jobs WHERE status = 'queued'"
    " UNION ALL SELECT job_type, status, run_at FROM jobs WHERE status = 'running'"
    " UNION ALL SELECT job_type, status, run_at FROM jobs WHERE status = 'waiting') u GROUP BY 1, 2) d),"
    "'finished', (SELECT coalesce(json_agg(json_build_object('type', job_type, 'status', status,"
    " 'last_minute', m, 'last_hour', h) ORDER BY job_type, status), '[]'::json)"
    " FROM (SELECT job_type, status, count(*) FILTER (WHERE finished_at > now() - interval '1 minute') AS m,"
    " count(*) AS h FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')"
    " AND finished_at > now() - interval '1 hour' GROUP BY 1, 2) f),"
    "'workers', (SELECT coalesce(json_agg(json_build_object('id', id, 'host', host, 'pid', pid,"
    " 'queues', queues, 'concurrency', concurrency, 'running', running, 'jobs_done', jobs_done,"
    " 'started_at', started_at, 'last_heartbeat', last_heartbeat) ORDER BY started_at), '[]'::json)"
    " FROM workers WHERE last_heartbeat > now() - interval '5 minutes'))::text";

/* Written only if the parent's completion committed in this same transaction:
 * the parent's row version is this transaction's (xmin), so a completion
 * resent after a lost answer (fenced out: its first send committed) does not
 * insert them twice; and only if that completion left it succeeded, failed or
 * waiting (a run cancelled meanwhile leaves none). */
const char aq_jobs_sql_followups[] =
    "INSERT INTO jobs (job_type, queue, priority, input, run_at, max_attempts, user_id, session_id,"
    " parent_id, idempotency_key, serial_key)"
    " SELECT f.type, coalesce(f.queue, 'default'), coalesce(f.priority, 0), coalesce(f.input, '{}'),"
    " now() + make_interval(secs => coalesce(f.delay_ms, 0) / 1000.0), f.max_attempts,"
    " coalesce(f.user_id, p.user_id), coalesce(f.session_id, p.session_id), p.id, f.key, "
    SERIAL_KEY("f.type", "coalesce(f.session_id, p.session_id)", "NULL::bigint", "f.input")
    " FROM jsonb_to_recordset($1::jsonb) AS f(parent bigint, claim int, type text, queue text,"
    " priority smallint, input jsonb, delay_ms bigint, max_attempts int, key text, user_id bigint, session_id uuid)"
    " JOIN jobs p ON p.id = f.parent AND p.claims = f.claim AND p.status IN ('succeeded', 'failed', 'waiting')"
    " AND p.xmin = pg_current_xact_id()::xid"
    " ON CONFLICT DO NOTHING";

/* ---- cancel ---- */

const char aq_jobs_sql_cancel[] = "SELECT was, outcome FROM aq_job_cancel($1::bigint, $2::bigint)";

const char aq_jobs_sql_cancel_audited[] =
    "SELECT was, outcome, CASE WHEN outcome <> 'finished' THEN"
    " " AQ_AUDIT_CALL("$3::bigint", "$4", "$5", "'job.cancel'", "'job:' || $1",
                      "jsonb_build_object('was', was, 'outcome', outcome)") " END"
    " FROM aq_job_cancel($1::bigint, $2::bigint)";

aq_cancel_outcome aq_jobs_cancel_result(const PGresult *res, const char **was)
{
    *was = "";
    if (PQntuples(res) == 0) return AQ_CANCEL_NOT_FOUND;
    *was = PQgetvalue(res, 0, 0);
    const char *o = PQgetvalue(res, 0, 1);
    return !strcmp(o, "cancelled") ? AQ_CANCEL_DONE : !strcmp(o, "cancelling") ? AQ_CANCEL_REQUESTED
                                                                                : AQ_CANCEL_FINISHED;
}

int aq_jobs_cancel(PGconn *db, int64_t id, int64_t owner, aq_cancel_outcome *out, char was[16])
{
    char id_s[24], owner_s[24];
    snprintf(id_s, sizeof id_s, "%lld", (long long)id);
    snprintf(owner_s, sizeof owner_s, "%lld", (long long)owner);
    const char *p[] = {id_s, owner ? owner_s : NULL};
    PGresult *r;
    int rc = aq_db_query(db, "cancelling the job", aq_jobs_sql_cancel, 2, p, &r);
    if (rc) return rc;
    const char *w;
    *out = aq_jobs_cancel_result(r, &w);
    snprintf(was, 16, "%s", w);
    PQclear(r);
    return 0;
}

/* ---- re-queue ---- */

#define RETRY_SET \
    " SET status = 'queued', run_at = now(), attempts = 0, lost = 0, transient_since = NULL, locked_by = NULL," \
    " locked_until = NULL, started_at = NULL, finished_at = NULL, cancel_requested_at = NULL, serial_held = false"

#define STR(x) STR_(x)
#define STR_(x) #x

/* The row is locked first, so the status seen is the one the update acts on. */
const char aq_jobs_sql_retry[] =
    "WITH j AS (SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE),"
    " u AS (UPDATE jobs" RETRY_SET " FROM j WHERE jobs.id = j.id"
    " AND j.status IN ('failed', 'cancelled') RETURNING jobs.id),"
    " n AS (SELECT pg_notify('" AQ_CHANNEL_JOBS "', '') FROM u)"
    " SELECT j.status, (SELECT count(*) FROM u), (SELECT count(*) FROM n) FROM j";

/* The same, for the API: $2 the operator's user id, $3 the channel; when the
 * job went back to the queue, its audit_log row (job.retry) in the same
 * statement. */
const char aq_jobs_sql_retry_audited[] =
    "WITH j AS (SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE),"
    " u AS (UPDATE jobs" RETRY_SET " FROM j WHERE jobs.id = j.id"
    " AND j.status IN ('failed', 'cancelled') RETURNING jobs.id),"
    " n AS (SELECT pg_notify('" AQ_CHANNEL_JOBS "', '') FROM u),"
    " a AS (SELECT " AQ_AUDIT_CALL("$2::bigint", "NULL", "$3", "'job.retry'", "'job:' || u.id",
                                   "jsonb_build_object('was', (SELECT status FROM j))") " FROM u)"
    " SELECT j.status, (SELECT count(*) FROM u), (SELECT count(*) FROM n), (SELECT count(*) FROM a) FROM j";

/* Only jobs that had failed when the command started ($2): one that fails
 * again while the batches run is not picked up a second time. The batch's
 * ids as an array, so the update probes the primary key for each. */
static const char SQL_RETRY_FAILED[] =
    "WITH u AS (UPDATE jobs" RETRY_SET " WHERE status = 'failed' AND id = ANY(ARRAY("
    "SELECT id FROM jobs WHERE status = 'failed' AND finished_at <= $2::timestamptz"
    " AND ($1::text IS NULL OR job_type = $1) ORDER BY finished_at"
    " LIMIT " STR(AQ_JOBS_RETRY_BATCH) " FOR UPDATE)) RETURNING id),"
    " n AS (SELECT pg_notify('" AQ_CHANNEL_JOBS "', '') WHERE EXISTS (SELECT 1 FROM u))"
    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM n)";

int aq_jobs_retry(PGconn *db, int64_t id, int *requeued, char was[16])
{
    char id_s[24];
    snprintf(id_s, sizeof id_s, "%lld", (long long)id);
    const char *p[] = {id_s};
    PGresult *r;
    int rc = aq_db_query(db, "retrying the job", aq_jobs_sql_retry, 1, p, &r);
    if (rc) return rc;
    *requeued = PQntuples(r) && !strcmp(PQgetvalue(r, 0, 1), "1");
    snprintf(was, 16, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

int aq_jobs_retry_failed(PGconn *db, const char *type, const char *before, long long *n)
{
    const char *p[] = {type, before};
    PGresult *r;
    int rc = aq_db_query(db, "retrying failed jobs", SQL_RETRY_FAILED, 2, p, &r);
    if (rc) return rc;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

const char aq_jobs_sql_resume_decided[] =
    "WITH a AS (UPDATE pending_actions SET status = CASE WHEN expires_at > now() THEN $2 ELSE 'expired' END,"
    " decided_at = now() WHERE id = $1 AND status = 'pending'"
    " RETURNING id, job_id, status, user_id, tool, arguments, session_id),"
    " au AS (SELECT " AQ_AUDIT_CALL("$3::bigint", "$4", "$5", "'action.' || a.status", "'action:' || a.id",
                                    "jsonb_build_object('tool', a.tool, 'arguments', a.arguments, 'job_id', a.job_id,"
                                    " 'session_id', a.session_id, 'owner_id', a.user_id, 'asked', $2::text)"
                                    " || coalesce($6::jsonb, '{}')") " FROM a),"
    " j AS (UPDATE jobs SET status = 'queued', run_at = now(), attempts = greatest(jobs.attempts - 1, 0),"
    " locked_by = NULL, locked_until = NULL FROM a WHERE jobs.id = a.job_id AND jobs.status = 'waiting'"
    " RETURNING jobs.id),"
    " n AS (SELECT pg_notify('" AQ_CHANNEL_JOBS "', '') FROM j)"
    " SELECT (SELECT status FROM a), (SELECT id FROM j), (SELECT count(*) FROM n), (SELECT count(*) FROM au)";
