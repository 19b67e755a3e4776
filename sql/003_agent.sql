-- 003_agent: the agent's domain data (tasks), the user's standing
-- instructions (the `remember` tool), and tool calls awaiting approval.
CREATE TABLE tasks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id),
    title           text        NOT NULL CHECK (title <> '' AND length(title) <= 500),
    notes           text,
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    priority        smallint    NOT NULL DEFAULT 0,
    due_at          timestamptz,
    is_ai_suggested boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_user ON tasks (user_id, status, id);

CREATE TABLE user_instructions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    instruction text        NOT NULL CHECK (instruction <> '' AND length(instruction) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_instructions_user ON user_instructions (user_id, id);

-- A tool call of tier `approval`: the turn's job waits (status 'waiting')
-- until the user decides; the decision re-queues that same job, which runs
-- the tool (or tells the model it was declined) and carries on.
CREATE TABLE pending_actions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    job_id       bigint      NOT NULL,
    session_id   uuid,
    tool         text        NOT NULL,
    arguments    jsonb       NOT NULL,
    tool_call_id text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    UNIQUE (job_id, tool_call_id)
);
CREATE INDEX pending_actions_user ON pending_actions (user_id, status, id);
