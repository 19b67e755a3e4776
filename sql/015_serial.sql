-- 015_serial: one job per serial key at a time, in id order; a per-user cap
-- on in-flight turns (issue 13). The argument is in docs/DESIGN.md ("Serial
-- keys") and in worker/engine.c's DESIGN block.
--
-- jobs.serial_key (set by common/aq_jobs.c: an agent turn's session, a
-- scheduled run's schedule, a Telegram update's chat): at most one job of a
-- key runs at once, the key's queued job with the lowest id first. A job
-- parked 'waiting' does not hold its key. Jobs without a key pay one NULL
-- test in the claim and nothing else.

ALTER TABLE jobs ADD COLUMN serial_key text CHECK (serial_key <> '');

-- serial_held: a queued keyed job that cannot run yet (its key has a running
-- job, or a lower queued one) is marked by the claim that finds it so, and
-- leaves the claim's index: a long backlog of one key, or many keys each
-- busy, is not walked by every claim. Cleared for the key's lowest queued
-- job by the trigger below when the key frees. Keyless jobs: always false.
ALTER TABLE jobs ADD COLUMN serial_held boolean NOT NULL DEFAULT false;
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (priority, run_at, id) WHERE status = 'queued' AND NOT serial_held;

-- The claim's checks of a key (is one of its jobs running? is one queued
-- ahead?) and of a user (how many of their keyed jobs run?) are index probes,
-- whatever the backlog of the key or the user.
CREATE INDEX jobs_serial ON jobs (serial_key, status, id)
    WHERE serial_key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX jobs_user_running ON jobs (user_id)
    WHERE serial_key IS NOT NULL AND status = 'running' AND user_id IS NOT NULL;

-- One row per key and per owner of keyed jobs: the claim's mutexes. A
-- claimer locks the row (FOR UPDATE SKIP LOCKED) before deciding, and holds
-- it until its claim commits; claimed_in marks the transaction that took a
-- job of the key (or counts the user's jobs it took), so one claim statement
-- takes at most one job per key and at most the cap per user. The values
-- mean something only inside that transaction; no row is ever deleted (one
-- small row per session, schedule or chat ever keyed).
CREATE TABLE job_serial_keys (
    key         text PRIMARY KEY,
    claimed_in  xid8
);
CREATE TABLE user_inflight (
    user_id     bigint PRIMARY KEY,
    claimed_in  xid8,
    claimed     int NOT NULL DEFAULT 0
);

-- The mutex rows exist before their job is visible to any claimer (same
-- transaction). Jobs without a key: the WHEN is false, nothing runs.
CREATE FUNCTION aq_serial_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_serial_keys (key) VALUES (NEW.serial_key) ON CONFLICT DO NOTHING;
    IF NEW.user_id IS NOT NULL THEN
        INSERT INTO user_inflight (user_id) VALUES (NEW.user_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_serial_rows AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.serial_key IS NOT NULL)
    EXECUTE FUNCTION aq_serial_rows();

-- A keyed job that stops running frees its key, and one that leaves the
-- queue otherwise (cancelled) may uncover a new lowest id: under the key's
-- mutex (waiting for a claim deciding on the key to commit), on a fresh
-- snapshot, the key's lowest queued job is released from serial_held, and
-- the workers are woken (the aq_jobs NOTIFY, folded to one per transaction)
-- so it is claimed now, not at the next poll. SKIP LOCKED on that job: the
-- only other writer of a queued keyed row is a cancel, whose own firing of
-- this trigger then releases the next one; waiting for it could deadlock
-- (it waits for the mutex we hold). Keyless jobs: the WHEN is false.
CREATE FUNCTION aq_serial_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM job_serial_keys WHERE key = OLD.serial_key FOR UPDATE;
    UPDATE jobs SET serial_held = false WHERE id = (SELECT id FROM jobs WHERE serial_key = OLD.serial_key
        AND status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND serial_held;
    PERFORM pg_notify('aq_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_serial_freed AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.serial_key IS NOT NULL AND ((OLD.status = 'running' AND NEW.status <> 'running')
          OR (OLD.status = 'queued' AND NEW.status NOT IN ('queued', 'running'))))
    EXECUTE FUNCTION aq_serial_freed();

-- May the claim take keyed job p_id (key p_key, owner p_user), with at most
-- p_cap running keyed jobs per owner (0: no cap)? Called by the claim's WHERE
-- for keyed rows only, once per candidate, in the claim's order, before the
-- row is locked. VOLATILE: each statement below runs on a fresh snapshot
-- (READ COMMITTED), taken after the mutex above it is held, so it sees every
-- claim of that key or user that committed before (the claim that made a job
-- running held the same mutex, and released it only by committing). Never
-- waits for a lock. A job that cannot run because of its key is marked
-- serial_held, under the mutex, so the next claims do not walk it again.
CREATE FUNCTION aq_claim_serial(p_id bigint, p_key text, p_user bigint, p_cap int)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me xid8 := pg_current_xact_id();
    mark xid8;
    n int;
    low bigint;
BEGIN
    -- the owner at the cap: no (checked first, without a lock; decided below)
    IF p_cap > 0 AND p_user IS NOT NULL AND (SELECT count(*) FROM jobs WHERE user_id = p_user
            AND serial_key IS NOT NULL AND status = 'running') >= p_cap THEN
        RETURN false;
    END IF;
    -- the key's mutex; held by another claim, or a trigger freeing the key: leave the key to it
    SELECT claimed_in INTO mark FROM job_serial_keys WHERE key = p_key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN RETURN false; END IF;
    -- this claim took a job of the key already: no (not held: the taken row
    -- may yet be skipped, and a recheck of it ends here too)
    IF mark = me THEN RETURN false; END IF;
    -- in id order, one at a time: a lower queued job of the key, or a running one
    SELECT id INTO low FROM jobs WHERE serial_key = p_key AND status = 'queued' AND id < p_id ORDER BY id LIMIT 1;
    IF FOUND OR EXISTS (SELECT 1 FROM jobs WHERE serial_key = p_key AND status = 'running') THEN
        UPDATE jobs SET serial_held = true
            WHERE id = (SELECT id FROM jobs WHERE id = p_id AND status = 'queued' FOR UPDATE SKIP LOCKED);
        -- repair: a free key whose lowest queued job is held (its release was
        -- lost with a cancel that rolled back) is released by any later job's visit
        IF low IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs WHERE serial_key = p_key AND status = 'running') THEN
            UPDATE jobs SET serial_held = false WHERE id = (SELECT id FROM jobs WHERE serial_key = p_key
                AND status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND serial_held;
        END IF;
        RETURN false;
    END IF;
    IF p_cap > 0 AND p_user IS NOT NULL THEN
        SELECT claimed_in, claimed INTO mark, n FROM user_inflight WHERE user_id = p_user FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN RETURN false; END IF;
        IF mark IS DISTINCT FROM me THEN n := 0; END IF;
        IF n + (SELECT count(*) FROM jobs WHERE user_id = p_user AND serial_key IS NOT NULL
                AND status = 'running') >= p_cap THEN
            RETURN false;
        END IF;
        UPDATE user_inflight SET claimed_in = me, claimed = n + 1 WHERE user_id = p_user;
    END IF;
    UPDATE job_serial_keys SET claimed_in = me WHERE key = p_key;
    RETURN true;
END $$;
