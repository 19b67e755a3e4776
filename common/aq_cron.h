/* aq_cron.h — cron expressions: parse once, then ask for the next fire time
 * in an IANA time zone. Pure functions over an immutable parsed expression and
 * GLib's GTimeZone (which reads the system tz database and is thread-safe);
 * nothing here touches TZ, localtime or mktime, so any thread may call any
 * function at any time.
 *
 * GRAMMAR. Five fields separated by spaces or tabs: minute 0-59, hour 0-23,
 * day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT (0 and
 * 7 are Sunday); names are case-insensitive. A field is a comma list of items;
 * an item is `*`, `N` or `N-M`, optionally followed by `/STEP` (`*\/15`,
 * `10-50/5`, and `5/15` meaning 5-max/15). Or one of the macros @hourly,
 * @daily (= @midnight), @weekly, @monthly, @yearly (= @annually). At most 256
 * characters, ASCII only. (The backslashes in `*\/15` here only keep this
 * comment open.)
 *
 * DAYS (Vixie cron). When both day-of-month and day-of-week are restricted
 * (neither field starts with `*`), a day matches if EITHER matches: `0 0 13 *
 * FRI` runs on every 13th and on every Friday. Otherwise both must match, so
 * with one field `*` only the other counts. Expressions that can never fire
 * (`0 0 30 2 *`) are rejected, and so are the few whose days recur less often
 * than every 8 years (`0 0 *\/31 2 MON`: a 1 February that is a Monday); so a
 * parsed expression always has a next fire time within 8 years.
 *
 * DST. A matching wall-clock time L is mapped to instants like this. Let oa be
 * the UTC offset in effect a day before L and ob the one a day after; each
 * distinct o of the two whose instant L - o really has offset o is a valid
 * instant for L.
 *  - Ambiguous L (fall back, two valid instants): if the hour field covers
 *    every hour (`*`), both fire — the schedule follows elapsed time through
 *    the repeated hour, so `*\/30 * * * *` runs every 30 real minutes; otherwise
 *    only the earlier one fires, so a 02:30 daily job runs once.
 *  - Nonexistent L (spring forward, no valid instant): if the hour field covers
 *    every hour, the slot is skipped (real time jumped; an hourly job still runs
 *    every real hour); otherwise it fires once at L - oa, the wall time pushed
 *    forward by the gap: 02:30 in Europe/Berlin on 2026-03-29 fires at 03:30
 *    CEST = 01:30 UTC.
 *  - Two wall times that land on the same instant fire once.
 * So a 02:30 daily job in Europe/Berlin runs exactly once on both transition
 * days, and a job that lists every hour (`0 * * * *`, `*\/30 * * * *`) keeps
 * to real time across a one-hour shift: nothing skipped, nothing doubled. */
#ifndef AQ_CRON_H
#define AQ_CRON_H
#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define AQ_CRON_MAX_LEN 256

typedef struct aq_cron aq_cron;     /* opaque; immutable after parse, so threads may share it */

/* Parse a 5-field expression or a macro. Returns a heap object (free it with
 * aq_cron_free), or NULL with a one-line reason in err, e.g. "field 2 (hour):
 * 24 is out of range 0-23", "expected 5 fields, got 4", "never fires (day 31
 * does not exist in month 2)". */
aq_cron *aq_cron_parse(const char *expr, char *err, size_t errlen);
void aq_cron_free(aq_cron *c);

#define AQ_TZ_NAME_MAX 128   /* longest time zone name accepted (schedules check it the same) */

/* Open an IANA zone ("Europe/Berlin", "UTC") from the system tz database
 * ($TZDIR or /usr/share/zoneinfo). Only names made of letters, digits and
 * `_+-/` that name a TZif file there are accepted: no paths, no `..`, no
 * POSIX TZ strings such as "FOO3". Returns a reference the caller frees with
 * g_time_zone_unref, or NULL with the reason in err. "UTC" works even without
 * a tz database. */
GTimeZone *aq_tz_open(const char *name, char *err, size_t errlen);

/* The first fire time strictly after `after` (Unix seconds) in *out (Unix
 * seconds), with the DST rules above; tz is any GTimeZone (aq_tz_open's)
 * whose UTC offsets stay within 26 hours, as in every TZif file (RFC 8536:
 * -25:59:59 to +25:59:59). GLib builds zones beyond that from POSIX TZ
 * strings ("AAA1BBB-84,M3.5.0,M10.5.0"), which aq_tz_open never hands out;
 * in those the result is not reliable.
 * Returns 0; AQ_EINVAL when `after` lies outside the years 1-9990; AQ_ENOTFOUND
 * when there is none within 8 years (which a parsed expression never gives).
 * Typically a few microseconds. */
int aq_cron_next(const aq_cron *c, GTimeZone *tz, int64_t after, int64_t *out);

/* The instant of a wall-clock time in tz. `local` counts seconds from
 * 1970-01-01T00:00:00 on the local calendar (what timegm gives for the wall
 * time's fields). An ambiguous time gives the earlier instant; a nonexistent
 * one is pushed forward by the gap (02:30 on a spring-forward night in
 * Europe/Berlin gives 01:30 UTC). */
int64_t aq_tz_local_to_utc(GTimeZone *tz, int64_t local);

#endif
