-- 011_jobs_autovacuum: vacuum and analyze jobs by how many rows changed,
-- not by how big the table is (see docs/DESIGN.md "Steady state").
--
-- Every job leaves two dead row versions (claim, completion) and dead
-- entries in jobs_claim, jobs_running and the primary key. The default
-- trigger is 50 dead rows + 20 % of the table, and the table is mostly the
-- finished jobs kept for AGENTQ_RETENTION_HOURS: a queue running 1,000 jobs/s
-- with a week's history holds 600 million rows, so autovacuum would wait for
-- 120 million dead ones, and the dead entries at the queue head and in
-- jobs_running would pile up for a day and a half. With the scale factors at
-- 0 the thresholds are absolute: a vacuum once 20,000 rows are dead (or
-- 100,000 inserted: it also marks finished pages all-visible), an analyze
-- once 50,000 changed, whatever the history; autovacuum_naptime (default
-- 1 min) still bounds how often. The vacuum itself only reads pages that
-- are not all-visible, i.e. the recent ones, so it stays short.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 50000
);
