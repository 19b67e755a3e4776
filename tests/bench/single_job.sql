-- pgbench ceiling for one job at a time: enqueue one job, claim one (the same
-- claim agentq uses, LIMIT 1), complete it. Three statements, three commits,
-- as agentq spends them at low load (enqueue, claim round, completion round).
INSERT INTO jobs (job_type, input) VALUES ('noop', '{}');
WITH next AS (
  SELECT id FROM jobs WHERE status = 'queued' AND run_at <= now() AND queue = ANY('{default}')
  ORDER BY priority, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, locked_by = 'pgbench-:client_id',
  locked_until = now() + interval '30 seconds', started_at = now()
FROM next WHERE j.id = next.id;
UPDATE jobs SET status = 'succeeded', finished_at = now(), locked_by = NULL, locked_until = NULL
  WHERE status = 'running' AND locked_by = 'pgbench-:client_id';
