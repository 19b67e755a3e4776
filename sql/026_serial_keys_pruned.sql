-- 026_serial_keys_pruned: a serial key's mutex row lives only while the key
-- has work (015 kept one row per session, schedule or chat ever keyed, for
-- ever: one row per web chat session, so the table grew with every session
-- and was never pruned).
--
-- The row goes when a job of the key stops running or leaves the queue
-- (aq_serial_freed, under the row's lock, as before) and nothing of the key
-- is left queued or running. It comes back with the key's next job
-- (aq_serial_rows on insert, as before) or when a parked job of the key is
-- resumed (waiting -> queued: the trigger below).
--
-- One race is left, and repaired: a job inserted while the row is being
-- deleted (its insert found the row still there, so ON CONFLICT DO NOTHING
-- kept it, and the delete did not see the uncommitted job) commits without
-- a row. The claim's visit to such a job finds no row to lock; a plain read
-- then tells "gone" (deleted, committed) from "locked" (by another claim, or
-- by a trigger freeing the key, whose delete is not yet committed: the row is
-- still visible, and the claim leaves the key, as before, rather than wait
-- for that transaction: it may be waiting for a key row this claim locked).
-- A gone row is put back (INSERT ... ON CONFLICT DO NOTHING) and the job left
-- to the next claim: at most the tick's or the poll's second later (test
-- serial_key_row_lost_is_repaired; the serial tests check the table empties).

CREATE OR REPLACE FUNCTION aq_serial_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM job_serial_keys WHERE key = OLD.serial_key FOR UPDATE;
    UPDATE jobs SET serial_held = false WHERE id = (SELECT id FROM jobs WHERE serial_key = OLD.serial_key
        AND status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND serial_held;
    -- parked (waiting) jobs do not hold the key; their resume puts the row back.
    -- The probe is 022's shape: jobs_serial is the only index that answers it.
    IF NEW.status <> 'waiting' AND NOT coalesce((SELECT true FROM jobs WHERE serial_key = OLD.serial_key
            AND status IN ('queued', 'running') ORDER BY status DESC LIMIT 1), false) THEN
        DELETE FROM job_serial_keys WHERE key = OLD.serial_key;
    END IF;
    PERFORM pg_notify('aq_jobs', '');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_serial_rows_resumed AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.serial_key IS NOT NULL AND OLD.status = 'waiting' AND NEW.status = 'queued')
    EXECUTE FUNCTION aq_serial_rows();

-- 022's function, with the repair of a missing row (above) where the row is read.
CREATE OR REPLACE FUNCTION aq_claim_serial(p_id bigint, p_key text, p_user bigint, p_cap int)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me xid8 := pg_current_xact_id();
    mark xid8;
    n int;
    low bigint;
BEGIN
    IF p_cap > 0 AND p_user IS NOT NULL AND (SELECT count(*) FROM jobs WHERE user_id = p_user
            AND serial_key IS NOT NULL AND status = 'running') >= p_cap THEN
        RETURN false;
    END IF;
    SELECT claimed_in INTO mark FROM job_serial_keys WHERE key = p_key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- only locked (a claim, or a trigger freeing the key, perhaps deleting
        -- it: its row is still visible): leave the key to it, as in 022; gone:
        -- put it back (above). The claim waits for no one's lock either way
        -- but another repairer's insert of the same key.
        IF NOT EXISTS (SELECT 1 FROM job_serial_keys WHERE key = p_key) THEN
            INSERT INTO job_serial_keys (key) VALUES (p_key) ON CONFLICT DO NOTHING;
        END IF;
        RETURN false;
    END IF;
    IF mark = me THEN RETURN false; END IF;
    SELECT id INTO low FROM jobs WHERE serial_key = p_key AND status = 'queued' AND id < p_id ORDER BY id LIMIT 1;
    IF FOUND OR coalesce((SELECT status = 'running' FROM jobs WHERE serial_key = p_key
            AND status IN ('queued', 'running') ORDER BY status DESC LIMIT 1), false) THEN
        UPDATE jobs SET serial_held = true
            WHERE id = (SELECT id FROM jobs WHERE id = p_id AND status = 'queued' FOR UPDATE SKIP LOCKED);
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
