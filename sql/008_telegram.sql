-- 008_telegram: who may act in a linked Telegram chat, and where
-- `agentq telegram poll` left off.
--
-- channels.linked_by: the Telegram user id (from.id) of the /start CODE
-- message that linked the chat. Only that Telegram user may approve or reject
-- actions, or start agent turns, in the chat (a group's other members are
-- refused). NULL for chats linked before this migration: a private chat's id
-- is its user's id, so there the chat id stands in; a group linked before
-- must be linked again (handlers/telegram_update.c).
ALTER TABLE channels ADD COLUMN linked_by bigint;

-- One row per bot (the numeric id before the ':' of TELEGRAM_BOT_TOKEN; never
-- the token): the getUpdates offset to ask from next, advanced in the same
-- transaction that stores the updates it confirms.
CREATE TABLE telegram_poll_offsets (
    bot_id       text        PRIMARY KEY,
    next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
