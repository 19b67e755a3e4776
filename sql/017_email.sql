-- 017_email: mail in, suggested tasks out (issue 14).
--
-- Suggested tasks: email_processing stores what the model found in a message
-- as tasks with is_ai_suggested = true and suggestion = 'pending', linked to
-- the message (sender, subject, Message-ID) and to the job that read it. The
-- user accepts one (suggestion 'accepted': an ordinary open task from then
-- on) or dismisses it (suggestion 'dismissed', status 'dismissed': it leaves
-- the lists). (source_job_id, source_index) is unique, so a re-run of the
-- same job (execution is at-least-once) stores nothing twice.
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('open', 'done', 'dismissed'));
ALTER TABLE tasks
    ADD COLUMN suggestion        text CHECK (suggestion IN ('pending', 'accepted', 'dismissed')),
    ADD COLUMN source_job_id     bigint,
    ADD COLUMN source_index      int,
    ADD COLUMN source_from       text CHECK (length(source_from) <= 1000),
    ADD COLUMN source_subject    text CHECK (length(source_subject) <= 1000),
    ADD COLUMN source_message_id text CHECK (length(source_message_id) <= 1000);
CREATE UNIQUE INDEX tasks_source ON tasks (source_job_id, source_index) WHERE source_job_id IS NOT NULL;

-- External accounts: IMAP mailboxes polled for mail. The password is sealed
-- (libsodium crypto_secretbox_easy under a key derived from
-- AGENTQ_SECRET_KEY; password = nonce || ciphertext, a fresh nonce per
-- write) and is never returned by the API. Each worker's tick queues one
-- imap_poll job per connection and AGENTQ_IMAP_POLL_SECONDS slot (its
-- idempotency key names the slot, so any number of workers queue it once).
-- A poll that fails sets status 'failing' with the server's reason; the
-- next good one sets it back to 'active'.
CREATE TABLE connections (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        bigint      NOT NULL REFERENCES users (id),
    kind           text        NOT NULL CHECK (kind IN ('imap')),
    host           text        NOT NULL CHECK (host <> '' AND length(host) <= 255),
    port           int         NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls            boolean     NOT NULL,           -- implicit TLS (imaps); false: plain IMAP
    tls_verify     boolean     NOT NULL DEFAULT true,
    username       text        NOT NULL CHECK (username <> '' AND length(username) <= 255),
    password       bytea       NOT NULL,           -- nonce || secretbox ciphertext
    mailbox        text        NOT NULL DEFAULT 'INBOX' CHECK (mailbox <> '' AND length(mailbox) <= 255),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failing')),
    last_error     text,
    last_polled_at timestamptz,
    next_poll_at   timestamptz NOT NULL DEFAULT now(),   -- the tick queues a poll once it is due
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_user ON connections (user_id, id);
CREATE INDEX connections_due ON connections (next_poll_at);
