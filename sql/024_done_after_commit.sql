-- 024_done_after_commit: the workers wake the API's long-polls ('aq_done')
-- after a completion commits, from a transaction of their own that does not
-- wait for the WAL (worker/engine.c, "Wake-ups"; docs/DESIGN.md).
--
-- Why: as for the inserts' wake-up (sql/023), a transaction that NOTIFYs
-- holds one cluster-wide lock from its commit until the commit is flushed.
-- Every completion round that finished a job with an owner (every job a user
-- posted) used to NOTIFY in its own commit, so the workers' completions and
-- every notifying insert queued behind one another's WAL flushes. Measured in
-- the steady-state benchmark at 25 % of the drain rate with 10 % of the jobs
-- through the API: with no 'aq_done' from the completion rounds, p50 enqueue
-- -> start fell from ~2.7 to ~2.1 ms and p99 by 1-2 ms.
--
-- How: the engine runs aq_notify_done(ids) right behind a completion round
-- that committed, in a transaction with synchronous_commit off (it holds
-- the lock for microseconds). If the worker dies in between, the long-poll
-- answers when its wait runs out, with the job's state then: late, never
-- lost, never wrong.
CREATE FUNCTION aq_notify_done(p_ids text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_notify('aq_done', p_ids);
END $$;
