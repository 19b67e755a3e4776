-- 023_wake_after_commit: the API's inserts wake the workers after their
-- commit, from a transaction of their own that does not wait for the WAL
-- (docs/DESIGN.md "Wake-ups"; api/enqueue.c).
--
-- Why: a transaction that NOTIFYs takes one cluster-wide lock at commit and
-- holds it until its commit is flushed (Postgres serializes notifying
-- commits so the queue stays in commit order). Every INSERT into jobs used to
-- NOTIFY, so under load the API's batches queued behind one another's WAL
-- flushes: measured in the steady-state benchmark, with the wake-up taken out
-- of the inserting transactions, p50 enqueue -> start fell by ~1.3 ms and p99
-- by ~3 ms at 25 % of the drain rate.
--
-- How: a transaction that set agentq.wake_later (set_config(..., true), the
-- API does it in each batch's transaction) does not NOTIFY from the trigger;
-- the trigger leaves the payload in the session setting agentq.wake_payload
-- (set_config(..., false): it outlives the commit, and a rollback undoes it
-- with the rows). The API then runs aq_wake() right behind the batch in the
-- same pipeline: after the commit, so the rows are visible to the worker the
-- NOTIFY wakes; with synchronous_commit off, so it holds the lock for
-- microseconds. If the API dies between the two, the rows wait for the
-- workers' poll (AGENTQ_POLL_MS): late, never lost. Every other insert
-- (SQL, the worker's follow-ups, the CLI) NOTIFYs as before.
--
-- Payload: as in 020 ("<priority> <run_at µs>", '' = anywhere). Two pending
-- payloads merge to anywhere ('*' while pending).
CREATE OR REPLACE FUNCTION jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p smallint;
    r timestamptz;
    w text;
    pending text;
BEGIN
    SELECT min(priority), min(run_at) INTO p, r FROM inserted WHERE status = 'queued';
    IF p IS NULL THEN
        RETURN NULL;
    END IF;
    w := CASE WHEN isfinite(r) THEN p || ' ' || (extract(epoch FROM r) * 1000000)::bigint ELSE '' END;
    IF current_setting('agentq.wake_later', true) = 'on' THEN
        pending := coalesce(current_setting('agentq.wake_payload', true), '');
        PERFORM set_config('agentq.wake_payload', CASE WHEN pending = '' AND w <> '' THEN w ELSE '*' END, false);
    ELSE
        PERFORM pg_notify('aq_jobs', w);
    END IF;
    RETURN NULL;
END $$;

-- The deferred wake-up of this session's last committed inserts, if any.
CREATE FUNCTION aq_wake() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    w text := coalesce(current_setting('agentq.wake_payload', true), '');
BEGIN
    IF w = '' THEN
        RETURN;
    END IF;
    PERFORM set_config('agentq.wake_payload', '', false);
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_notify('aq_jobs', CASE WHEN w = '*' THEN '' ELSE w END);
END $$;
