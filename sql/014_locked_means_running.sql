-- 014_locked_means_running: a job holds a worker's lock only while it runs.
--
-- Every writer already keeps this (the claim sets status 'running' with
-- locked_by; every way out of 'running' clears locked_by); the constraint
-- makes it a fact the engine may rely on (a hand-made UPDATE that ends a
-- running job must clear locked_by too, or it is refused). The engine's completions, attempt
-- marks and lease extensions fence on locked_by (and the claim count) alone,
-- without "status = 'running'": that condition made a full scan of the
-- jobs_running partial index a candidate for every one of them, and right
-- after a vacuum the planner prices that scan at next to nothing however
-- many entries it has gathered since (docs/DESIGN.md "Steady state").
-- Migrations run in one transaction, so adding it locks jobs while the
-- existing rows are checked (one scan of the table).
ALTER TABLE jobs ADD CONSTRAINT jobs_locked_only_running
    CHECK (locked_by IS NULL OR status = 'running');
