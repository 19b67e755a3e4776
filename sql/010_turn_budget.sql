-- 010_turn_budget: the scheduled agent turns each user's schedules started
-- per UTC day, for AGENTQ_USER_DAILY_TURNS (worker/scheduler.c). The
-- scheduler spends one turn in the transaction that inserts the run (the
-- row lock orders workers, so the budget is exact); a slot that finds the
-- budget spent is skipped and counted in `skipped` (the first skip of a day
-- writes one 'info' notification). Rows are written only while a budget is
-- set; one row per user per day with scheduled runs.
CREATE TABLE user_daily_turns (
    user_id     bigint  NOT NULL REFERENCES users (id),
    day         date    NOT NULL,
    turns       int     NOT NULL DEFAULT 0 CHECK (turns >= 0),
    skipped     int     NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    PRIMARY KEY (user_id, day)
);
