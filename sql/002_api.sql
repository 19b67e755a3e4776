-- 002_api: users and their tokens, chat sessions and their messages, and the
-- index the API's per-user job listing needs.
--
-- A token is "aq_<id>_<secret>": token_id is looked up, and the keyed BLAKE2b
-- hash of the secret (key: AGENTQ_SECRET_KEY) is compared in constant time.
-- The secret itself is never stored.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (name <> ''),
    role        text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator')),
    token_id    text        NOT NULL UNIQUE,
    token_hash  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE chat_sessions (
    id          uuid        PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    channel     text        NOT NULL CHECK (channel IN ('web', 'telegram', 'scheduled')),
    title       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_user ON chat_sessions (user_id, updated_at DESC);

CREATE TABLE chat_message_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   uuid        NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role         text        NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content      text,
    tool_calls   jsonb,
    tool_call_id text,
    job_id       bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_message_history_session ON chat_message_history (session_id, id);

-- GET /v1/jobs: a user's jobs, newest first, cursor on id.
CREATE INDEX jobs_user ON jobs (user_id, id DESC) WHERE user_id IS NOT NULL;
-- A session's jobs (ownership of a session whose first turn has not run yet).
CREATE INDEX jobs_session ON jobs (session_id) WHERE session_id IS NOT NULL;
-- Per-user quota of queued jobs.
CREATE INDEX jobs_user_queued ON jobs (user_id) WHERE status = 'queued';

-- Long-poll wake-up: whoever finishes a job that has an owner sends
-- pg_notify('aq_done', '<id>,<id>,...') in the same transaction (the worker in
-- its completion rounds, the API on cancel); the API wakes exactly those
-- requests. Explicit rather than a trigger, so the claim/complete path of
-- ownerless jobs pays nothing.

-- The job types some worker can run, published by workers from their handler
-- registry when they connect: the API accepts POST /v1/jobs only for types
-- marked api_enqueue, without linking the handlers itself.
CREATE TABLE job_types (
    name         text        PRIMARY KEY,
    api_enqueue  boolean     NOT NULL,
    max_attempts int         NOT NULL,
    timeout_s    int         NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
