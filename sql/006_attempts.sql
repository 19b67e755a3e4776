-- 006_attempts: attempts count handler runs, not claims; fences, lease
-- losses and the transient-failure budget (see docs/DESIGN.md "The worker").
--   claims           claims so far. Completions, attempt marks, follow-ups and
--                    handlers' fenced writes match on it: it changes with
--                    every claim, whether or not the run is counted.
--   lost             leases that expired on this job. A job that kills its
--                    worker before its run is recorded is failed once this
--                    reaches twice its max attempts.
--   transient_since  when the job's current run of transient failures (an
--                    outage, a rate limit) began; retries within
--                    AGENTQ_LLM_RETRY_SECONDS of it spend no attempt. NULL
--                    when the last completion was not a transient failure.
-- Adding columns with constant defaults rewrites nothing.
ALTER TABLE jobs ADD COLUMN claims int NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lost int NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN transient_since timestamptz;
