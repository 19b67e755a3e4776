-- 025_quota_count_plans: the quota count plans itself for the table of the
-- moment, whatever plan_cache_mode its caller runs with.
--
-- The API's plain batch statement (api/enqueue.c, "Plans") runs with
-- plan_cache_mode = auto so that it keeps one generic plan; the functions it
-- calls would then keep generic plans too. aq_queued_locked counts a user's
-- queued jobs: a generic plan of that count made while jobs was empty reads
-- the whole table on every batch once it is not (the planner's cheapest path
-- on an empty table; test api_plans_follow_the_table).
ALTER FUNCTION aq_queued_locked(bigint[], int) SET plan_cache_mode = force_custom_plan;
