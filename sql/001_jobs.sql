-- 001_jobs: the universal jobs table, its indexes, and the enqueue wake-up.
--
-- Index plan (see docs/DESIGN.md "The claim"):
--   jobs_claim      the claim's ORDER BY, runnable rows only: finished rows
--                   cost the claim nothing however many pile up.
--   jobs_running    the few running rows, for lease rescue; locked_until is
--                   deliberately not indexed so lease extensions stay HOT.
--   jobs_finished   pruning by age.
--   jobs_idempotency_key  unique while set.
CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_type        text        NOT NULL CHECK (job_type <> ''),
    queue           text        NOT NULL DEFAULT 'default',
    priority        smallint    NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued','running','waiting','succeeded','failed','cancelled')),
    input           jsonb       NOT NULL DEFAULT '{}',
    output          jsonb,
    last_error      text,
    attempts        int         NOT NULL DEFAULT 0,
    max_attempts    int         CHECK (max_attempts > 0),   -- NULL: the handler's default
    run_at          timestamptz NOT NULL DEFAULT now(),
    locked_by       text,
    locked_until    timestamptz,
    user_id         bigint,
    session_id      uuid,
    parent_id       bigint,
    schedule_id     bigint,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
) WITH (fillfactor = 90);

CREATE INDEX jobs_claim ON jobs (priority, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (id) WHERE status = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('succeeded','failed','cancelled');
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;

-- One notification per INSERT statement, not per row: a 20,000-row insert
-- wakes each listening worker once. The payload is empty; workers claim.
CREATE FUNCTION jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aq_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_insert();

-- Live workers and their heartbeats.
CREATE TABLE workers (
    id              text PRIMARY KEY,           -- host:pid:random
    host            text        NOT NULL,
    pid             int         NOT NULL,
    queues          text[]      NOT NULL,
    concurrency     int         NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    jobs_done       bigint      NOT NULL DEFAULT 0,
    running         int         NOT NULL DEFAULT 0
);

-- Readable from psql: counts by type and status, and the live workers.
CREATE VIEW job_counts AS
    SELECT job_type, status, count(*) AS jobs,
           min(created_at) FILTER (WHERE status = 'queued') AS oldest_queued
    FROM jobs GROUP BY job_type, status ORDER BY job_type, status;
CREATE VIEW live_workers AS
    SELECT id, host, pid, queues, concurrency, running, jobs_done, started_at, last_heartbeat,
           now() - last_heartbeat AS silent_for
    FROM workers ORDER BY started_at;
