-- 007_api_limits: limits that hold under concurrency, and idempotency keys
-- that remember what they were used for.
--
-- Per-user limits counted in SQL (queued-job quota, schedules per user) are
-- exact across API threads and processes: the check takes a per-user
-- transaction-level advisory lock, then counts with a fresh snapshot (each
-- statement of a VOLATILE function gets one), so a concurrent insert by the
-- same user either committed before the count (and is counted) or waits for
-- the lock until this transaction commits. Lock keys: (AQ_LOCK_CLASS, user
-- id folded to int4); two users sharing a key only wait for each other.
--   class 1634803713 ('aq' 0x0001): the queued-job quota (api/enqueue.c)
--   class 1634803714 ('aq' 0x0002): schedules per user (api/schedules_api.c,
--                                   handlers/tools.c)

-- A hash of the request that first used an idempotency key (BLAKE2b of the
-- job's type, queue, priority, run_at and input, computed by the API): the
-- same key with another request is refused (422 idempotency_mismatch).
-- NULL for jobs stored before this migration: those keys replay as before.
ALTER TABLE jobs ADD COLUMN idempotency_hash bytea;

-- Each listed user's queued jobs (counted up to p_quota), each counted after
-- taking that user's quota lock; users are locked in ascending order, so two
-- batches never wait for each other in a cycle.
CREATE FUNCTION aq_queued_locked(p_users bigint[], p_quota int)
RETURNS TABLE (user_id bigint, queued bigint) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    u bigint;
BEGIN
    FOR u IN SELECT DISTINCT x FROM unnest(p_users) x WHERE x IS NOT NULL ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(1634803713, (u % 2147483647)::int);
        user_id := u;
        SELECT count(*) INTO queued
            FROM (SELECT 1 FROM jobs q WHERE q.user_id = u AND q.status = 'queued' LIMIT p_quota) x;
        RETURN NEXT;
    END LOOP;
END $$;

-- True when p_user has fewer than p_limit schedules, checked under the
-- user's schedule lock: use as INSERT ... SELECT ... WHERE aq_schedule_slot_free(...).
CREATE FUNCTION aq_schedule_slot_free(p_user bigint, p_limit int)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1634803714, (p_user % 2147483647)::int);
    RETURN (SELECT count(*) FROM agent_schedules s WHERE s.user_id = p_user) < p_limit;
END $$;

-- A session belongs to whoever owns its chat_sessions row, which the API now
-- creates in the statement that enqueues the session's first turn. Sessions
-- whose first turn was queued before this migration get their row now.
INSERT INTO chat_sessions (id, user_id, channel)
SELECT DISTINCT ON (j.session_id) j.session_id, j.user_id,
       CASE WHEN j.input->>'channel' IN ('web', 'telegram', 'scheduled') THEN j.input->>'channel' ELSE 'web' END
FROM jobs j
WHERE j.session_id IS NOT NULL AND j.user_id IS NOT NULL AND j.job_type = 'agent_turn'
  AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = j.session_id)
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = j.user_id)
ORDER BY j.session_id, j.id
ON CONFLICT (id) DO NOTHING;
