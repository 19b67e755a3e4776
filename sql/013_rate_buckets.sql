-- 013_rate_buckets: the per-user request rate (AGENTQ_USER_RATE) shared by
-- all API processes.
--
-- Each API process keeps its own token bucket per user (api/limits.c) and,
-- every AGENTQ_RATE_SYNC_MS, adds the requests it admitted since the last
-- time to this shared bucket in one statement (api/rate_sync.c), learning
-- the bucket's level in return. The bucket refills at the rate up to the
-- burst and may go below zero: requests that several processes admitted
-- before they could know of each other are a debt that every process then
-- waits out, so over any longer period the users' admitted requests stay
-- within the documented rate plus a bounded overshoot (README, "Limits").
-- The rate and burst come from the calling process's configuration.
CREATE TABLE api_rate_buckets (
    user_id bigint PRIMARY KEY,           -- no foreign key: a row outlives nothing (pruned when full)
    tokens double precision NOT NULL,     -- level at updated_at; below zero is debt
    updated_at timestamptz NOT NULL
);

-- Take p_counts[i] requests from user p_users[i]'s bucket (0 just refreshes
-- it) and return every listed bucket's level. Rows are locked in user order,
-- so two processes' calls never wait for each other in a cycle. The time is
-- clock_timestamp() read after the row lock, so refills never run backwards.
CREATE FUNCTION aq_rate_take(p_users bigint[], p_counts bigint[], p_rate float8, p_burst float8)
RETURNS TABLE (user_id bigint, tokens float8) LANGUAGE sql VOLATILE AS $$
    INSERT INTO api_rate_buckets AS b (user_id, tokens, updated_at)
    SELECT t.u, p_burst - t.n, clock_timestamp()
      FROM unnest(p_users, p_counts) AS t(u, n)
     ORDER BY t.u
    ON CONFLICT ON CONSTRAINT api_rate_buckets_pkey DO UPDATE
       SET tokens = least(p_burst, b.tokens + p_rate * greatest(0,
                        extract(epoch FROM clock_timestamp() - b.updated_at)::float8))
                    - (p_burst - EXCLUDED.tokens),
           updated_at = greatest(b.updated_at, clock_timestamp())
    RETURNING b.user_id, b.tokens
$$;

-- Delete buckets that have refilled to the burst (a missing row means
-- exactly that); rows another call holds are skipped, never waited for.
-- Returns how many were deleted.
CREATE FUNCTION aq_rate_prune(p_rate float8, p_burst float8)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM api_rate_buckets WHERE user_id IN (
            SELECT b.user_id FROM api_rate_buckets b
             WHERE b.tokens + p_rate * extract(epoch FROM clock_timestamp() - b.updated_at)::float8 >= p_burst
               FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
