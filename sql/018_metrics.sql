-- 018_metrics: what /metrics reads (api/ops_api.c).
--
--   metric_counters  the workers' counters and histograms, cluster-wide
--                    totals. Each worker adds the increments it made since
--                    its last flush (with its heartbeat, every lease/3, and
--                    once more at a graceful stop): value = value + delta,
--                    so a total never goes down when a worker restarts or
--                    dies; only increments not yet flushed when a worker is
--                    killed are lost. One row per series: family (the
--                    exported name), labels (Prometheus label text, already
--                    escaped, `le` excluded), suffix ('' for a counter,
--                    '_bucket', '_sum' or '_count' for a histogram), le (a
--                    bucket's bound; 0 otherwise).
--   queue_gauges()   unfinished jobs per type and queue: runnable (run_at
--                    has come), scheduled (run_at in the future), running,
--                    waiting, and the oldest runnable job's age; a zero row
--                    for every known type (job_types) in the 'default' queue
--                    and in each queue a live worker serves. Reads only
--                    unfinished rows through the partial indexes.
--   jobs_waiting     the partial index the waiting count was missing.
--   job_counts       redefined: jobs whose run_at is in the future show as
--                    'scheduled', not 'queued'; oldest_runnable replaces
--                    oldest_queued (the oldest runnable queued job's run_at).
CREATE TABLE metric_counters (
    family  text             NOT NULL,
    labels  text             NOT NULL,
    suffix  text             NOT NULL CHECK (suffix IN ('', '_bucket', '_sum', '_count')),
    le      double precision NOT NULL DEFAULT 0,
    value   double precision NOT NULL,
    PRIMARY KEY (family, labels, suffix, le)
);

CREATE INDEX jobs_waiting ON jobs (id) WHERE status = 'waiting';

CREATE FUNCTION queue_gauges(live_seconds int DEFAULT 300)
RETURNS TABLE (job_type text, queue text, runnable bigint, scheduled bigint, running bigint,
               waiting bigint, oldest_runnable_seconds double precision)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT j.job_type, j.queue,
               count(*) FILTER (WHERE j.run_at <= now()) AS runnable,
               count(*) FILTER (WHERE j.run_at > now()) AS scheduled,
               0::bigint AS running, 0::bigint AS waiting,
               min(j.run_at) FILTER (WHERE j.run_at <= now()) AS oldest
        FROM jobs j WHERE j.status = 'queued' GROUP BY 1, 2
        UNION ALL
        SELECT j.job_type, j.queue, 0, 0, count(*), 0, NULL FROM jobs j WHERE j.status = 'running' GROUP BY 1, 2
        UNION ALL
        SELECT j.job_type, j.queue, 0, 0, 0, count(*), NULL FROM jobs j WHERE j.status = 'waiting' GROUP BY 1, 2
        UNION ALL
        SELECT t.name, q.queue, 0, 0, 0, 0, NULL FROM job_types t
        CROSS JOIN (SELECT 'default'::text AS queue
                    UNION SELECT unnest(w.queues) FROM workers w
                    WHERE w.last_heartbeat > now() - make_interval(secs => live_seconds)) q
    )
    SELECT c.job_type, c.queue, sum(c.runnable)::bigint, sum(c.scheduled)::bigint, sum(c.running)::bigint,
           sum(c.waiting)::bigint, coalesce(extract(epoch FROM now() - min(c.oldest)), 0)::double precision
    FROM c GROUP BY 1, 2 ORDER BY 1, 2
$$;

DROP VIEW job_counts;
CREATE VIEW job_counts AS
    SELECT job_type,
           CASE WHEN status = 'queued' AND run_at > now() THEN 'scheduled' ELSE status END AS status,
           count(*) AS jobs,
           min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now()) AS oldest_runnable
    FROM jobs GROUP BY 1, 2 ORDER BY 1, 2;
