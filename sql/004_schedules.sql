-- 004_schedules: cron-style schedules that fire background agent runs.
--
-- Any number of workers tick; each locks due rows with FOR UPDATE SKIP
-- LOCKED, inserts a `scheduled_run` job whose idempotency key is
-- 'schedule:<id>:<slot epoch>' (so a slot fires once however the ticks
-- race), and moves next_run_at on in the same transaction. next_run_at is
-- computed in C (common/aq_cron.c: the cron grammar and IANA zones); NULL
-- means the schedule will not fire (disabled, or its zone or expression no
-- longer loads: last_error says why).
CREATE TABLE agent_schedules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    name        text        NOT NULL CHECK (name <> '' AND length(name) <= 200),
    cron        text        NOT NULL CHECK (cron <> '' AND length(cron) <= 256),
    timezone    text        NOT NULL DEFAULT 'UTC' CHECK (timezone <> '' AND length(timezone) <= 64),
    prompt      text        NOT NULL CHECK (prompt <> ''),
    enabled     boolean     NOT NULL DEFAULT true,
    misfire     text        NOT NULL DEFAULT 'run_once' CHECK (misfire IN ('run_once', 'skip')),
    session_id  uuid        NOT NULL DEFAULT gen_random_uuid(),   -- the 'scheduled' session its runs share
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_job_id bigint,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_schedules_due ON agent_schedules (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;
CREATE INDEX agent_schedules_user ON agent_schedules (user_id, id DESC);
