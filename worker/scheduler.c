/* scheduler.c — fires due schedules (see scheduler.h and sql/004_schedules.sql).
 *
 * DESIGN: the tick's timer lives on the worker's loop; the tick itself runs
 * on a libuv pool thread with its own blocking connection, because deciding
 * the next fire time needs C (the cron evaluator) between the locking read
 * and the writes, and a transaction held across a loop callback would stall
 * the engine's pipelined rounds. One transaction per tick:
 *
 *   SELECT due rows ... FOR UPDATE SKIP LOCKED   (other workers skip them)
 *   per row: INSERT the scheduled_run job ON CONFLICT (idempotency_key) DO NOTHING
 *            UPDATE next_run_at / last_run_at
 *   COMMIT
 *
 * The idempotency key 'schedule:<id>:<slot>' makes a slot fire once even if
 * two ticks ever saw the same row (a PATCH racing a tick, clock skew): the
 * lock orders them and the key refuses the second insert. "Now" is the
 * database's clock, the same for every worker.
 *
 * The daily budget (AGENTQ_USER_DAILY_TURNS > 0): before the insert, the
 * owner's row in user_daily_turns for today (UTC) is incremented if it is
 * below the budget (one upsert; its row lock orders concurrent workers, so
 * the budget is exact). None left: the slot is skipped (next_run_at still
 * moves on), last_error says why and the first skip of the day writes one
 * 'info' notification. A slot that had already fired gives its turn back.
 *
 * IMAP connections (sql/017_email.sql) ride the same tick and transaction:
 * each connection whose next_poll_at has come gets one imap_poll job keyed
 * 'imap_poll:<id>:<slot>' (slot = now / AGENTQ_IMAP_POLL_SECONDS) and its
 * next_poll_at moved one period on; the row lock and the key make it once
 * per connection and period whatever the number of workers. */
#include "scheduler.h"
#include "aq_alloc.h"
#include "aq_db.h"
#include "aq_jobs.h"
#include "aq_log.h"
#include "aq_schedule.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DUE_BATCH 100

struct aq_scheduler {
    uv_loop_t *loop;
    const aq_config *cfg;
    uv_timer_t timer;
    uv_work_t work;
    int busy, stopping, closed;
    PGconn *db;             /* used only by the tick in progress */
    int db_warned;
    int more;               /* the last tick found a full batch (read on the loop after it) */
};

static const char SQL_DUE[] =
    "SELECT id, user_id, cron, timezone, misfire, extract(epoch FROM next_run_at)::bigint, session_id::text,"
    " extract(epoch FROM now())::bigint"
    " FROM agent_schedules WHERE enabled AND next_run_at IS NOT NULL AND next_run_at <= now()"
    " ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_ADVANCE[] =
    "UPDATE agent_schedules SET next_run_at = to_timestamp($2::bigint),"
    " last_run_at = CASE WHEN $3::bigint IS NULL THEN last_run_at ELSE to_timestamp($3::bigint) END,"
    " last_job_id = coalesce($4::bigint, last_job_id), last_error = $5"
    " WHERE id = $1";

/* $1 user, $2 budget: a row when a turn was left (and is now spent) */
static const char SQL_SPEND[] =
    "INSERT INTO user_daily_turns AS u (user_id, day, turns) VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 1)"
    " ON CONFLICT (user_id, day) DO UPDATE SET turns = u.turns + 1 WHERE u.turns < $2::int RETURNING turns";

static const char SQL_REFUND[] =
    "UPDATE user_daily_turns SET turns = turns - 1"
    " WHERE user_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date AND turns > 0";

/* $1 user, $2 the notification's text: written on the day's first skip only */
static const char SQL_SKIPPED[] =
    "WITH s AS (UPDATE user_daily_turns SET skipped = skipped + 1"
    " WHERE user_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date RETURNING skipped)"
    " INSERT INTO notifications (user_id, kind, body) SELECT $1, 'info', $2 FROM s WHERE s.skipped = 1";

/* Spend one of user's turns for today on the slot `fire`: 1 spent, 0 none
 * left (the slot is to be skipped: the reason is in why, and the day's first
 * skip has written the owner's notification), -1 on a database error. */
static int spend_turn(aq_scheduler *s, const char *user, int64_t fire, char *why, size_t whylen)
{
    char budget_s[24];
    snprintf(budget_s, sizeof budget_s, "%ld", s->cfg->user_daily_turns);
    const char *p[] = {user, budget_s};
    PGresult *r = NULL;
    if (aq_db_query(s->db, "spending a daily turn", SQL_SPEND, 2, p, &r)) return -1;
    int spent = PQntuples(r) == 1;
    PQclear(r);
    if (spent) return 1;
    char at_s[32], note[300];
    time_t slot = (time_t)fire;
    struct tm tm;
    strftime(at_s, sizeof at_s, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&slot, &tm));
    snprintf(why, whylen, "daily turn budget spent: %ld scheduled turns a day (AGENTQ_USER_DAILY_TURNS);"
             " the run at %s was skipped", s->cfg->user_daily_turns, at_s);
    snprintf(note, sizeof note, "Your schedules have started their %ld agent turns for today (UTC);"
             " later runs today are skipped until the budget resets at midnight UTC.",
             s->cfg->user_daily_turns);
    const char *q[] = {user, note};
    return aq_db_query(s->db, "noting a skipped run", SQL_SKIPPED, 2, q, NULL) ? -1 : 0;
}

/* One due row: fire (or skip) and move it on. 0, or -1 on a database error
 * (the caller rolls the transaction back). */
static int fire_one(aq_scheduler *s, PGresult *due, int row)
{
    const char *id = PQgetvalue(due, row, 0), *user = PQgetvalue(due, row, 1);
    const char *cron = PQgetvalue(due, row, 2), *zone = PQgetvalue(due, row, 3);
    const char *misfire = PQgetvalue(due, row, 4), *session = PQgetvalue(due, row, 6);
    int64_t at = strtoll(PQgetvalue(due, row, 5), NULL, 10), now = strtoll(PQgetvalue(due, row, 7), NULL, 10);
    int64_t fire, next;
    long missed;
    char err[256] = "";
    int bad = aq_schedule_due(cron, zone, misfire, at, now, &fire, &missed, &next, err, sizeof err);
    if (bad) aq_warn("scheduler", "schedule %s stops firing: %s", id, err);
    char fire_s[24], next_s[24], job_s[24] = "";
    snprintf(fire_s, sizeof fire_s, "%lld", (long long)fire);
    snprintf(next_s, sizeof next_s, "%lld", (long long)next);
    int inserted = 0, spent = 0;
    char why[200] = "";
    if (fire && s->cfg->user_daily_turns > 0) {
        if ((spent = spend_turn(s, user, fire, why, sizeof why)) < 0) return -1;
        if (!spent) {
            aq_info("scheduler", "schedule %s: slot %s skipped, user %s has no turns left today", id,
                    fire_s, user);
            fire = 0;
        }
    }
    if (fire) {
        char input[256], key[64], slot[32];
        time_t t = (time_t)fire;
        struct tm tm;
        strftime(slot, sizeof slot, "%Y-%m-%dT%H:%M:%S+00:00", gmtime_r(&t, &tm));
        snprintf(input, sizeof input, "{\"schedule_id\": %s, \"slot\": \"%s\", \"missed\": %ld,"
                 " \"reply_to\": [{\"to\": \"owner\"}]}", id, slot, missed);
        snprintf(key, sizeof key, AQ_SCHEDULE_KEY_FMT, (long long)strtoll(id, NULL, 10), (long long)fire);
        aq_job_new j = {.job_type = "scheduled_run", .input = input, .idempotency_key = key,
                        .user_id = strtoll(user, NULL, 10), .schedule_id = strtoll(id, NULL, 10),
                        .session_id = PQgetisnull(due, row, 6) ? NULL : session};
        int64_t job = 0;
        if (aq_jobs_enqueue(s->db, "firing a schedule", &j, &job)) return -1;
        if (job) {
            snprintf(job_s, sizeof job_s, "%lld", (long long)job);
            inserted = 1;
        }
        const char *q[] = {user};
        if (spent && !inserted && aq_db_query(s->db, "refunding a turn", SQL_REFUND, 1, q, NULL)) return -1;
        aq_info("scheduler", "schedule %s: slot %s %s%s", id, fire_s,
                inserted ? "fired as job " : "already fired", job_s);
    }
    if (!fire && missed && !why[0]) aq_info("scheduler", "schedule %s: skipped %ld missed slot(s) (misfire: skip)", id, missed);
    const char *p[] = {id, bad ? NULL : next_s, fire ? fire_s : NULL, inserted ? job_s : NULL,
                       bad ? err : why[0] ? why : NULL};
    if (aq_db_query(s->db, "advancing a schedule", SQL_ADVANCE, 5, p, NULL)) return -1;
    return 0;
}

static const char SQL_POLLS_DUE[] =
    "SELECT id, user_id, extract(epoch FROM now())::bigint FROM connections WHERE next_poll_at <= now()"
    " ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_POLL_NEXT[] =
    "UPDATE connections SET next_poll_at = now() + make_interval(secs => $2::bigint) WHERE id = $1";

/* Queue the due connections' polls (inside the tick's transaction): the
 * number queued or found due, or -1 on a database error. */
static int queue_polls(aq_scheduler *s)
{
    char batch[16], period[24];
    snprintf(batch, sizeof batch, "%d", DUE_BATCH);
    snprintf(period, sizeof period, "%ld", s->cfg->imap_poll_seconds);
    const char *bp[] = {batch};
    PGresult *due = NULL;
    if (aq_db_query(s->db, "finding due IMAP polls", SQL_POLLS_DUE, 1, bp, &due)) return -1;
    int n = PQntuples(due);
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(due, i, 0);
        long long slot = strtoll(PQgetvalue(due, i, 2), NULL, 10) / s->cfg->imap_poll_seconds;
        char input[64], key[64];
        snprintf(input, sizeof input, "{\"connection_id\": %s}", id);
        snprintf(key, sizeof key, "imap_poll:%s:%lld", id, slot);
        aq_job_new j = {.job_type = "imap_poll", .input = input, .idempotency_key = key,
                        .user_id = strtoll(PQgetvalue(due, i, 1), NULL, 10)};
        int64_t job = 0;
        const char *np[] = {id, period};
        if (aq_jobs_enqueue(s->db, "queueing an IMAP poll", &j, &job) ||
            aq_db_query(s->db, "advancing an IMAP poll", SQL_POLL_NEXT, 2, np, NULL)) {
            PQclear(due);
            return -1;
        }
    }
    PQclear(due);
    return n;
}

static void tick(uv_work_t *w)
{
    aq_scheduler *s = w->data;
    s->more = 0;
    if (s->db && PQstatus(s->db) != CONNECTION_OK) {
        PQfinish(s->db);
        s->db = NULL;
    }
    if (!s->db) {
        char err[256];
        s->db = aq_db_connect(s->cfg->database_url, err, sizeof err);
        if (!s->db) {
            if (!s->db_warned++) aq_warn("scheduler", "database unreachable: %s (retrying every tick)", err);
            return;
        }
        s->db_warned = 0;
        /* the job input's 'slot' is rendered in the session's zone: UTC, as everywhere else */
        aq_db_query(s->db, "scheduler: setting the time zone", "SET TimeZone = 'UTC'", 0, NULL, NULL);
    }
    PGresult *due = NULL;
    if (aq_db_query(s->db, "scheduler begin", "BEGIN", 0, NULL, NULL)) return;
    char batch[16];
    snprintf(batch, sizeof batch, "%d", DUE_BATCH);
    const char *bp[] = {batch};
    if (aq_db_query(s->db, "finding due schedules", SQL_DUE, 1, bp, &due)) goto rollback;
    int n = PQntuples(due);
    for (int i = 0; i < n; i++) {
        if (fire_one(s, due, i) < 0) goto rollback;
    }
    PQclear(due);
    due = NULL;
    int polls = queue_polls(s);
    if (polls < 0) goto rollback;
    s->more = n == DUE_BATCH || polls == DUE_BATCH;
    aq_db_query(s->db, "scheduler commit", "COMMIT", 0, NULL, NULL);
    return;
rollback:
    PQclear(due);
    aq_db_query(s->db, "scheduler rollback", "ROLLBACK", 0, NULL, NULL);
}

static void on_timer(uv_timer_t *t);

static void after_tick(uv_work_t *w, int status)
{
    aq_scheduler *s = w->data;
    s->busy = 0;
    if (s->stopping) return;
    /* a full batch means more are due: go again at once */
    uv_timer_start(&s->timer, on_timer, s->more ? 0 : (uint64_t)s->cfg->schedule_tick_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    aq_scheduler *s = t->data;
    if (s->busy || s->stopping) return;
    s->busy = 1;
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, tick, after_tick)) {
        s->busy = 0;
        uv_timer_start(&s->timer, on_timer, (uint64_t)s->cfg->schedule_tick_ms, 0);
    }
}

aq_scheduler *aq_scheduler_start(uv_loop_t *loop, const aq_config *cfg)
{
    aq_scheduler *s = aq_calloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    /* workers started together spread their first ticks over one interval */
    uv_timer_start(&s->timer, on_timer, randombytes_uniform((uint32_t)cfg->schedule_tick_ms), 0);
    return s;
}

static void on_closed(uv_handle_t *h)
{
    aq_scheduler *s = h->data;
    s->closed = 1;
}

void aq_scheduler_stop(aq_scheduler *s)
{
    if (!s || s->stopping) return;
    s->stopping = 1;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

void aq_scheduler_free(aq_scheduler *s)
{
    if (!s) return;
    aq_scheduler_stop(s);
    while (s->busy || !s->closed) uv_run(s->loop, UV_RUN_ONCE);
    if (s->db) PQfinish(s->db);
    free(s);
}
