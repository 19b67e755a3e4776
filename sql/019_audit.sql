-- 019_audit: the audit log (who did what, from where) and retention of the
-- other tables that grow (issue 15).
--
-- One row per change someone made: an approval or rejection of a tool call
-- (from the API or a Telegram button; and the expiry nobody decided), an
-- operator's action (job retry, cancel, prune, users add/revoke/token) and a
-- schedule created, changed or deleted. Each is written by aq_audit() in the
-- same transaction (mostly the same statement) as the change, so a change
-- without its row, or a row without its change, cannot commit.
--
-- actor_id is the acting user (users.id) when there is one; actor is the
-- name at the time (kept when the user is renamed or goes), for the CLI the
-- operating-system user who ran it ("cli:alice"). channel: api, cli,
-- telegram, agent (the agent's tools) or system (an expiry). action is
-- "<thing>.<verb>" (action.approved, schedule.updated, job.retry, ...);
-- target names the row ("schedule:3"); details holds what the change was
-- about (the tool and its arguments, the fields sent, counts).
CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor_id  bigint,
    actor     text        NOT NULL,
    channel   text        NOT NULL CHECK (channel IN ('api', 'cli', 'telegram', 'agent', 'system')),
    action    text        NOT NULL,
    target    text,
    details   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

-- Write one row; returns its id. Called inside the statement or transaction
-- that makes the change (a RETURNING list, a CTE, or after it in the CLI's
-- transaction).
CREATE FUNCTION aq_audit(p_actor_id bigint, p_actor text, p_channel text, p_action text, p_target text,
                         p_details jsonb)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_log (actor_id, actor, channel, action, target, details)
    VALUES (p_actor_id,
            coalesce(p_actor, (SELECT name FROM users WHERE id = p_actor_id), '(unknown)'),
            p_channel, p_action, p_target, coalesce(p_details, '{}'))
    RETURNING id
$$;

-- Append-only, for the table's owner too (the application's role usually
-- owns its tables, so REVOKE alone would not bind it): UPDATE, DELETE and
-- TRUNCATE raise. Removing old rows is a deliberate act of a database
-- administrator (drop the triggers in a maintenance window, or run as a role
-- that owns a copy); the application never does it.
CREATE FUNCTION aq_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION aq_audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION aq_audit_refuse();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- Retention (workers, with the jobs'): notifications older than
-- AGENTQ_NOTIFICATION_RETENTION_HOURS, and decided or expired approvals and
-- spent daily-turn counters past the same age, are deleted in batches. These
-- indexes let each batch find its oldest rows without reading the table.
CREATE INDEX notifications_created ON notifications (created_at);
CREATE INDEX pending_actions_decided ON pending_actions (decided_at) WHERE status <> 'pending';
CREATE INDEX user_daily_turns_day ON user_daily_turns (day);
