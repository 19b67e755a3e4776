/* aq_schedule.h — the rules for a schedule's fields, checked the same way by
 * the API (POST/PATCH /v1/schedules), the agent's create_schedule tool and
 * the worker's scheduler (worker/scheduler.c), and the fire times they give.
 * Thread-safe (GLib time zones, no TZ environment). */
#ifndef AQ_SCHEDULE_H
#define AQ_SCHEDULE_H
#include <stddef.h>
#include <stdint.h>

#define AQ_SCHEDULE_NAME_MAX 200     /* characters */
#define AQ_SCHEDULE_CRON_MAX 256     /* characters */
/* a time zone name: at most AQ_TZ_NAME_MAX characters (aq_cron.h); a prompt: at
 * most AGENTQ_MAX_MESSAGE_CHARS, as a chat message */
#define AQ_SCHEDULE_PER_USER 100     /* schedules one user may have */
#define AQ_MISFIRE_GRACE_S 60        /* a slot fired later than this was missed */
#define AQ_SCHEDULE_MIN_INTERVAL_DEFAULT 300   /* AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS */

/* The first fire time of (cron, zone) strictly after `after` (Unix seconds)
 * in *next. 0, or AQ_EINVAL with a one-line reason in err ("cron: ...",
 * "timezone: ..."): bad expression, unknown zone, or no fire time ahead. */
int aq_schedule_next(const char *cron, const char *zone, int64_t after, int64_t *next, char *err, size_t errlen);

/* The frequency floor (AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS): 0 when no two
 * consecutive fire times of (cron, zone) after `from` come closer than
 * min_interval seconds; AQ_EINVAL with a one-line reason in err ("cron: fires 60 s
 * apart ..."; or a bad expression or zone, as aq_schedule_next). It looks at
 * real fire times, so DST shifts, month ends and leap days count: the times
 * in the next four years and a day, at most the first AQ_SCHEDULE_SCAN_FIRES
 * of them (about a millisecond; an expression that fires that often has
 * shown every gap its fields can make long before). min_interval <= 0: no
 * floor, only the expression and zone are checked. */
#define AQ_SCHEDULE_SCAN_FIRES 2000
int aq_schedule_check_interval(const char *cron, const char *zone, int64_t from, long min_interval,
                               char *err, size_t errlen);

/* What a due schedule does at `now` (Unix seconds) whose next_run_at is
 * `due` (<= now): *fire is the slot to run (0: none), *missed how many slots
 * fell in [due, now] beyond the one run (or all of them, when skipped),
 * *next the next_run_at to store. On time (now - due <= grace): fire `due`,
 * next is the slot after it. Late: misfire "run_once" fires the latest
 * missed slot once, "skip" fires nothing; either way next is after now.
 * 0, or AQ_EINVAL with the reason in err (*fire may still name a slot to run
 * when only the next one could not be found). */
int aq_schedule_due(const char *cron, const char *zone, const char *misfire, int64_t due, int64_t now,
                    int64_t *fire, long *missed, int64_t *next, char *err, size_t errlen);

/* ---- creating a schedule: one rule for POST /v1/schedules and the agent's
 * create_schedule tool ---- */

/* Check a new schedule's fields, all present (the caller fills defaults:
 * zone "UTC"): each non-empty and within its limit in characters (name
 * AQ_SCHEDULE_NAME_MAX, cron AQ_SCHEDULE_CRON_MAX, zone AQ_TZ_NAME_MAX, prompt
 * prompt_max), then the expression, the zone and the frequency floor
 * (min_interval, as aq_schedule_check_interval) from now; *next gets the
 * first fire time. 0, or AQ_EINVAL with a one-line reason "field: ..." in err. */
int aq_schedule_check_new(const char *name, const char *cron, const char *zone, const char *prompt, long prompt_max,
                          long min_interval, int64_t now, int64_t *next, char *err, size_t errlen);

/* The one INSERT of a schedule: $1 user, $2 name, $3 cron, $4 zone, $5
 * prompt, $6 enabled, $7 misfire, $8 next_run_at (Unix seconds, NULL when
 * disabled), $9 the per-user limit (AQ_SCHEDULE_PER_USER), counted under the
 * user's lock (aq_schedule_slot_free, sql/007), so exact however many race.
 * Answers the schedule as a JSON document, or no row when the user is at the
 * limit. $10 is who asks (aq_audit.h's channel: AQ_AUDIT_API or
 * AQ_AUDIT_AGENT): the audit_log row is written by the same statement. */
extern const char aq_schedule_sql_create[];
/* The JSON document of a schedule row (SQL expression over agent_schedules). */
#define AQ_SCHEDULE_JSON \
    "json_build_object('id', id, 'user_id', user_id, 'name', name, 'cron', cron, 'timezone', timezone," \
    " 'prompt', prompt, 'enabled', enabled, 'misfire', misfire, 'session_id', session_id," \
    " 'next_run_at', next_run_at, 'last_run_at', last_run_at, 'last_job_id', last_job_id," \
    " 'last_error', last_error, 'created_at', created_at, 'updated_at', updated_at)"

#endif
