-- pgbench ceiling: one client claims 100 queued jobs (the same claim agentq
-- uses) in one transaction, then completes them in a second.
WITH next AS (
  SELECT id FROM jobs WHERE status = 'queued' AND run_at <= now() AND queue = ANY('{default}')
  ORDER BY priority, run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, locked_by = 'pgbench-:client_id',
  locked_until = now() + interval '30 seconds', started_at = now()
FROM next WHERE j.id = next.id;
UPDATE jobs SET status = 'succeeded', finished_at = now(), locked_by = NULL, locked_until = NULL
  WHERE status = 'running' AND locked_by = 'pgbench-:client_id';
