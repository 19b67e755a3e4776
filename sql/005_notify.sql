-- 005_notify: where results go. The web inbox (notifications), the user's
-- linked Telegram chats (channels, linked with short-lived link_codes), and
-- the Telegram messages a notify job has already had accepted
-- (telegram_sent), so that a retried notify never sends a chunk twice.
--
-- Routing (worker/routes.c): when a job whose input names reply routes (or
-- whose channel implies one) finishes, one `notify` job per destination is
-- inserted in the same transaction as its completion.
CREATE TABLE notifications (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id),
    kind          text        NOT NULL CHECK (kind IN ('reply', 'failure', 'approval', 'info')),
    body          text        NOT NULL,
    job_id        bigint,                      -- the job it is about
    action_id     bigint,                      -- for approvals
    session_id    uuid,
    notify_job_id bigint      UNIQUE,          -- the notify job that wrote it: a retry writes nothing new
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- A Telegram chat linked to a user. active = false once Telegram refused a
-- message for good (bot blocked, chat gone); a new message from the chat
-- makes it active again.
CREATE TABLE channels (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id),
    kind            text        NOT NULL CHECK (kind IN ('telegram')),
    address         text        NOT NULL,          -- the Telegram chat id
    session_id      uuid        NOT NULL DEFAULT gen_random_uuid(),   -- the chat's agent session
    active          boolean     NOT NULL DEFAULT true,
    inactive_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, address)
);
CREATE INDEX channels_user ON channels (user_id) WHERE active;

CREATE TABLE link_codes (
    code        text        PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     text,                              -- the chat it linked
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX link_codes_user ON link_codes (user_id);

CREATE TABLE telegram_sent (
    job_id      bigint      NOT NULL,              -- the notify job
    chunk       int         NOT NULL,
    message_id  bigint,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, chunk)
);
