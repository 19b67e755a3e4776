/* aq_schedule.c — schedule field rules and fire-time decisions (see
 * aq_schedule.h), on top of the cron evaluator (aq_cron.h). */
#include "aq_schedule.h"
#include "aq_cron.h"
#include <stdio.h>
#include <string.h>

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
        return -1;
    }
    if (!(l->tz = aq_tz_open(zone, why, sizeof why))) {
        snprintf(err, errlen, "timezone: %s", why);
        aq_cron_free(l->cron);
        return -1;
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
    if (load(cron, zone, &l, err, errlen)) return -1;
    int rc = aq_cron_next(l.cron, l.tz, after, next);
    if (rc) snprintf(err, errlen, "cron: no fire time in the next 8 years");
    unload(&l);
    return rc ? -1 : 0;
}

int aq_schedule_due(const char *cron, const char *zone, const char *misfire, int64_t due, int64_t now,
                    int64_t *fire, long *missed, int64_t *next, char *err, size_t errlen)
{
    *fire = 0;
    *missed = 0;
    *next = 0;
    loaded l;
    if (load(cron, zone, &l, err, errlen)) return -1;
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
    return rc ? -1 : 0;
}
