-- 022_serial_probe: the claim's "is a job of this key running?" reads the
-- key's own index entries, whatever the statistics say (issue 13).
--
-- aq_claim_serial (015) asked `EXISTS (... WHERE serial_key = p_key AND
-- status = 'running')`, which two partial indexes can answer: jobs_serial
-- (the key's rows) and jobs_running (every running row). Statistics taken
-- while nothing ran (a backlog just enqueued and analyzed, or autovacuum's
-- visit to a quiet table) estimate jobs_running at about no rows, and the
-- planner walked it, filtering on the key: one pass over every running job
-- per keyed candidate. Measured in the agent-turn bench at 5,000 turns in
-- flight: 9.3 ms per call, 57 s of 67 s of claim time, each claim of 1,000
-- rows taking seconds. The probe now names both statuses of jobs_serial's
-- predicate and reads the key's entries backwards, highest status first:
-- jobs_running's predicate (status = 'running') is no longer implied by the
-- query, so jobs_serial is the only index it can use, and the first entry
-- says it ('running' sorts after 'queued': status holds only the fixed
-- lowercase names of jobs_status_check). The repair's check is the same
-- probe; otherwise the function is 015's, with 015's comments there.
CREATE OR REPLACE FUNCTION aq_claim_serial(p_id bigint, p_key text, p_user bigint, p_cap int)
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
    IF FOUND OR coalesce((SELECT status = 'running' FROM jobs WHERE serial_key = p_key
            AND status IN ('queued', 'running') ORDER BY status DESC LIMIT 1), false) THEN
        UPDATE jobs SET serial_held = true
            WHERE id = (SELECT id FROM jobs WHERE id = p_id AND status = 'queued' FOR UPDATE SKIP LOCKED);
        -- repair: a free key whose lowest queued job is held (its release was
        -- lost with a cancel that rolled back) is released by any later job's visit
        IF low IS NOT NULL AND NOT coalesce((SELECT status = 'running' FROM jobs WHERE serial_key = p_key
                AND status IN ('queued', 'running') ORDER BY status DESC LIMIT 1), false) THEN
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
