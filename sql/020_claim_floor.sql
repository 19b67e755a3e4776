-- 020_claim_floor: the INSERT wake-up says where in the claim's order its
-- rows are, so a worker's claim may start where its last one ended (the
-- claim floor: worker/engine.c's DESIGN block, docs/DESIGN.md "Claim floor").
--
-- The payload of 'aq_jobs' becomes "<priority> <run_at>" (run_at in
-- microseconds since 1970): min(priority) and min(run_at) of the queued rows
-- the statement inserted, a key no higher than any of theirs in jobs_claim's
-- order (priority, run_at, id). A worker whose claims start above it lowers
-- its floor there. Still one notification per statement; none when the
-- statement queued no row (nothing to claim); an empty payload (other
-- senders: a key's release, a retry, a resume, a run_at that is not finite)
-- still means "anywhere": the worker claims from the head again.
--
-- The rows come from the statement's transition table, which Postgres keeps
-- for a trigger that asks for it: one pass over the inserted rows per
-- statement.
CREATE OR REPLACE FUNCTION jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p smallint;
    r timestamptz;
BEGIN
    SELECT min(priority), min(run_at) INTO p, r FROM inserted WHERE status = 'queued';
    IF p IS NOT NULL THEN
        PERFORM pg_notify('aq_jobs', CASE WHEN isfinite(r)
            THEN p || ' ' || (extract(epoch FROM r) * 1000000)::bigint ELSE '' END);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER jobs_notify_insert ON jobs;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_insert();
