/* aq_schedule.c — schedule field rules and fire-time decisions (see
 * aq_schedule.h), on top of the cron evaluator (aq_cron.h). */
#include "aq_schedule.h"
#include "aq_audit.h"
#include "aq_cron.h"
#include "aq_error.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct loaded {
    aq_cron *cron;
    GTimeZone *tz;
} loaded;

static int load(const char *cron, const char *zone, loaded *l, char *err, size_t errlen)
{
    char why[200];
    l->cron = NULL;
    l->tz = NULL;
    if (!(l->cron = aq_cron_parse(cron, why, sizeof why))) {
        snprintf(err, errlen, "cron: %s", why);
        return AQ_EINVAL;
    }
    if (!(l->tz = aq_tz_open(zone, why, sizeof why))) {
        snprintf(err, errlen, "timezone: %s", why);
        aq_cron_free(l->cron);
        return AQ_EINVAL;
    }
    return 0;
}

static void unload(loaded *l)
{
    aq_cron_free(l->cron);
    if (l->tz) g_time_zone_unref(l->tz);
}

int aq_schedule_next(const char *cron, const char *zone, int64_t after, int64_t *next, char *err, size_t errlen)
{
    loaded l;
    if (load(cron, zone, &l, err, errlen)) return AQ_EINVAL;
    int rc = aq_cron_next(l.cron, l.tz, after, next);
    if (rc) snprintf(err, errlen, "cron: no fire time in the next 8 years");
    unload(&l);
    return rc ? AQ_EINVAL : 0;
}

/* t as "2026-11-30T12:00:00Z" into buf */
static void iso_utc(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t s = (time_t)t;
    gmtime_r(&s, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int aq_schedule_check_interval(const char *cron, const char *zone, int64_t from, long min_interval,
                               char *err, size_t errlen)
{
    loaded l;
    if (load(cron, zone, &l, err, errlen)) return AQ_EINVAL;
    int rc = 0;
    int64_t prev, t, horizon = from + (4 * 365 + 2) * (int64_t)86400;
    if (aq_cron_next(l.cron, l.tz, from, &prev)) {
        snprintf(err, errlen, "cron: no fire time in the next 8 years");
        rc = AQ_EINVAL;
    }
    for (int i = 1; !rc && min_interval > 0 && i < AQ_SCHEDULE_SCAN_FIRES && prev <= horizon; i++) {
        if (aq_cron_next(l.cron, l.tz, prev, &t)) break;
        if (t - prev < min_interval) {
            char a[32], b[32];
            iso_utc(prev, a, sizeof a);
            iso_utc(t, b, sizeof b);
            snprintf(err, errlen, "cron: fires %lld s apart (%s and %s); schedules may fire at most"
                     " once every %ld s", (long long)(t - prev), a, b, min_interval);
            rc = AQ_EINVAL;
        }
        prev = t;
    }
    unload(&l);
    return rc;
}

int aq_schedule_due(const char *cron, const char *zone, const char *misfire, int64_t due, int64_t now,
                    int64_t *fire, long *missed, int64_t *next, char *err, size_t errlen)
{
    *fire = 0;
    *missed = 0;
    *next = 0;
    loaded l;
    if (load(cron, zone, &l, err, errlen)) return AQ_EINVAL;
    int rc = 0;
    if (now - due <= AQ_MISFIRE_GRACE_S) {
        *fire = due;
        rc = aq_cron_next(l.cron, l.tz, due, next);
    } else {
        /* slots in [due, now]: due itself, then each one after it up to now
         * (counted up to a bound: a minutely schedule down for a year) */
        int64_t latest = due, t = due, n;
        long count = 1;
        while (count < 100000 && !aq_cron_next(l.cron, l.tz, t, &n) && n <= now) {
            latest = t = n;
            count++;
        }
        if (!strcmp(misfire, "skip")) {
            *missed = count;
        } else {
            *fire = latest;
            *missed = count - 1;
        }
        rc = aq_cron_next(l.cron, l.tz, now, next);
    }
    if (rc) snprintf(err, errlen, "cron: no fire time in the next 8 years");
    unload(&l);
    return rc ? AQ_EINVAL : 0;
}

/* ---- creating a schedule ---- */

const char aq_schedule_sql_create[] =
    "INSERT INTO agent_schedules (user_id, name, cron, timezone, prompt, enabled, misfire, next_run_at)"
    " SELECT $1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint)"
    " WHERE aq_schedule_slot_free($1::bigint, $9::int)"
    " RETURNING " AQ_SCHEDULE_JSON "::text,"
    " " AQ_AUDIT_CALL("$1::bigint", "NULL", "$10", "'schedule.created'", "'schedule:' || id",
                      "jsonb_build_object('name', name, 'cron', cron, 'timezone', timezone, 'enabled', enabled,"
                      " 'misfire', misfire, 'prompt', prompt)");

/* 0 when s (valid UTF-8) is non-blank and at most max characters. */
static int text_ok(const char *field, const char *s, long max, char *err, size_t errlen)
{
    const char *t = s ? s : "";
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    if (!*t) {
        snprintf(err, errlen, "%s: required, must not be empty", field);
        return AQ_EINVAL;
    }
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) chars += (*p & 0xC0) != 0x80;
    if (chars > max) {
        snprintf(err, errlen, "%s: %ld characters; the limit is %ld", field, chars, max);
        return AQ_EINVAL;
    }
    return 0;
}

int aq_schedule_check_new(const char *name, const char *cron, const char *zone, const char *prompt, long prompt_max,
                          long min_interval, int64_t now, int64_t *next, char *err, size_t errlen)
{
    if (text_ok("name", name, AQ_SCHEDULE_NAME_MAX, err, errlen) ||
        text_ok("cron", cron, AQ_SCHEDULE_CRON_MAX, err, errlen) ||
        text_ok("timezone", zone, AQ_TZ_NAME_MAX, err, errlen) ||
        text_ok("prompt", prompt, prompt_max, err, errlen))
        return AQ_EINVAL;
    if (aq_schedule_check_interval(cron, zone, now, min_interval, err, errlen) ||
        aq_schedule_next(cron, zone, now, next, err, errlen))
        return AQ_EINVAL;
    return 0;
}

_Static_assert(AQ_SCHEDULE_CRON_MAX == AQ_CRON_MAX_LEN, "a schedule's cron limit is the evaluator's");
