/* t_cron.c — the cron parser and evaluator (common/aq_cron.c) and `agentq
 * cron next`. Unit tests, no database. The expected instants were computed
 * independently with python3's zoneinfo (a brute-force evaluator using PEP 495
 * folds, not this code's offset arithmetic). */
#include "aq_error.h"
#include "aq_alloc.h"
#include "aq_cron.h"
#include "harness.h"
#include <stdlib.h>
#include <time.h>

/* "2026-03-29T01:30:00Z" as Unix seconds */
static int64_t iso(const char *s)
{
    struct tm tm = {0};
    if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return INT64_MIN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static void iso_put(char *out, int64_t t)
{
    struct tm tm;
    time_t s = (time_t)t;
    gmtime_r(&s, &tm);
    sprintf(out, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int words(const char *s)
{
    int n = 1;
    for (; *s; s++) n += *s == ' ';
    return n;
}

/* The next n fire times of expr in zone after from, space-separated, or the
 * error (heap string). */
static char *next_times(const char *expr, const char *zone, const char *from, int n)
{
    char err[256];
    aq_cron *c = aq_cron_parse(expr, err, sizeof err);
    if (!c) return aq_sprintf("parse error: %s", err);
    GTimeZone *tz = aq_tz_open(zone, err, sizeof err);
    if (!tz) {
        aq_cron_free(c);
        return aq_sprintf("zone error: %s", err);
    }
    char *out = aq_malloc((size_t)n * 21 + 1), *p = out;
    int64_t t = iso(from);
    *p = '\0';
    for (int i = 0; i < n; i++) {
        if (aq_cron_next(c, tz, t, &t)) { strcpy(p, i ? " none" : "none"); break; }
        if (i) *p++ = ' ';
        iso_put(p, t);
        p += strlen(p);
    }
    g_time_zone_unref(tz);
    aq_cron_free(c);
    return out;
}

#define EXPECT(expr, zone, from, want) do { \
    char *got_ = next_times(expr, zone, from, words(want)); \
    if (strcmp(got_, want)) th_fail(__FILE__, __LINE__, \
        "'%s' in %s after %s:\n      got  %s\n      want %s", expr, zone, from, got_, want); \
    free(got_); } while (0)

#define REJECT(expr, reason) do { char err_[256] = ""; const char *x_ = (expr); \
    aq_cron *c_ = aq_cron_parse(x_, err_, sizeof err_); \
    if (c_) th_fail(__FILE__, __LINE__, "'%s' was accepted", x_ ? x_ : "(null)"); \
    aq_cron_free(c_); CHECK_CONTAINS(err_, reason); } while (0)

static void grammar(void)
{
    EXPECT("* * * * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z 2026-01-01T00:03:00Z");
    EXPECT("* * * * *", "UTC", "2026-01-01T00:00:30Z",        /* strictly after, whole minutes */
           "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z");
    EXPECT("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T00:15:00Z 2026-01-01T00:30:00Z 2026-01-01T00:45:00Z 2026-01-01T01:00:00Z");
    EXPECT("10-50/5 * * * *", "UTC", "2026-01-01T00:47:00Z",
           "2026-01-01T00:50:00Z 2026-01-01T01:10:00Z 2026-01-01T01:15:00Z 2026-01-01T01:20:00Z");
    EXPECT("5/15 * * * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T00:05:00Z 2026-01-01T00:20:00Z 2026-01-01T00:35:00Z 2026-01-01T00:50:00Z"
           " 2026-01-01T01:05:00Z");
    EXPECT("1,2,59 * * * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z 2026-01-01T00:59:00Z 2026-01-01T01:01:00Z");
    EXPECT("0 9-17/4 * * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T09:00:00Z 2026-01-01T13:00:00Z 2026-01-01T17:00:00Z 2026-01-02T09:00:00Z");
    EXPECT("0 0 * JAN-MAR MON-FRI", "UTC", "2026-03-26T12:00:00Z",
           "2026-03-27T00:00:00Z 2026-03-30T00:00:00Z 2026-03-31T00:00:00Z 2027-01-01T00:00:00Z");
    EXPECT("0 0 1 jan,Jul *", "UTC", "2026-01-01T00:00:00Z",
           "2026-07-01T00:00:00Z 2027-01-01T00:00:00Z 2027-07-01T00:00:00Z");
    EXPECT("0 0 * * 5-7", "UTC", "2026-01-01T00:00:00Z",             /* Fri, Sat, Sun */
           "2026-01-02T00:00:00Z 2026-01-03T00:00:00Z 2026-01-04T00:00:00Z 2026-01-09T00:00:00Z");
    EXPECT("0 9 * * MON-FRI", "Europe/Berlin", "2026-03-27T00:00:00Z",
           "2026-03-27T08:00:00Z 2026-03-30T07:00:00Z 2026-03-31T07:00:00Z");
    /* spaces and tabs, leading and trailing; mixed names and numbers in a range */
    EXPECT(" \t0\t \t12  * *   1-fri\t ", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-01T12:00:00Z 2026-01-02T12:00:00Z 2026-01-05T12:00:00Z");
    EXPECT("0 0 1 Feb-4/2 *", "UTC", "2026-01-01T00:00:00Z",
           "2026-02-01T00:00:00Z 2026-04-01T00:00:00Z 2027-02-01T00:00:00Z");
    EXPECT("007 00 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:07:00Z");
    /* Sunday is 0, 7 and SUN */
    const char *want = "2026-01-04T12:00:00Z 2026-01-11T12:00:00Z 2026-01-18T12:00:00Z";
    EXPECT("0 12 * * 7", "UTC", "2026-01-01T00:00:00Z", want);
    EXPECT("0 12 * * 0", "UTC", "2026-01-01T00:00:00Z", want);
    EXPECT("0 12 * * SUN", "UTC", "2026-01-01T00:00:00Z", want);
    EXPECT("0 12 * * sun", "UTC", "2026-01-01T00:00:00Z", want);
    EXPECT("0 12 * * 0,7", "UTC", "2026-01-01T00:00:00Z", want);
    EXPECT("0 12 * * 6-7/7", "UTC", "2026-01-01T00:00:00Z",          /* 6 only */
           "2026-01-03T12:00:00Z 2026-01-10T12:00:00Z");
}

static void macros(void)
{
    EXPECT("@hourly", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z 2026-01-01T02:00:00Z");
    EXPECT("@daily", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z 2026-01-03T00:00:00Z");
    EXPECT("@midnight", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z 2026-01-03T00:00:00Z");
    EXPECT("@weekly", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z 2026-01-11T00:00:00Z");
    EXPECT("@monthly", "UTC", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z 2026-03-01T00:00:00Z");
    EXPECT("@yearly", "UTC", "2026-01-15T00:00:00Z", "2027-01-01T00:00:00Z 2028-01-01T00:00:00Z");
    EXPECT("@annually", "UTC", "2026-01-15T00:00:00Z", "2027-01-01T00:00:00Z 2028-01-01T00:00:00Z");
    EXPECT("  @DAILY ", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    EXPECT("@daily", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T23:00:00Z");
}

static void days(void)
{
    /* both day fields restricted: either matches (every 13th and every Friday) */
    EXPECT("0 0 13 * FRI", "UTC", "2026-02-01T00:00:00Z",
           "2026-02-06T00:00:00Z 2026-02-13T00:00:00Z 2026-02-20T00:00:00Z 2026-02-27T00:00:00Z"
           " 2026-03-06T00:00:00Z 2026-03-13T00:00:00Z");
    /* the 31st never comes, Mondays do */
    EXPECT("0 0 31 2 MON", "UTC", "2026-02-01T00:00:00Z",
           "2026-02-02T00:00:00Z 2026-02-09T00:00:00Z");
    /* a field starting with '*' is "unrestricted" (Vixie): both must match */
    EXPECT("0 0 */10 * MON", "UTC", "2026-01-01T00:00:00Z",
           "2026-05-11T00:00:00Z 2026-06-01T00:00:00Z 2026-08-31T00:00:00Z 2026-09-21T00:00:00Z");
    EXPECT("0 0 13 * *", "UTC", "2026-02-01T00:00:00Z",
           "2026-02-13T00:00:00Z 2026-03-13T00:00:00Z");
    EXPECT("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z",
           "2026-01-31T00:00:00Z 2026-03-31T00:00:00Z 2026-05-31T00:00:00Z 2026-07-31T00:00:00Z"
           " 2026-08-31T00:00:00Z 2026-10-31T00:00:00Z 2026-12-31T00:00:00Z");
    EXPECT("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
           "2028-02-29T00:00:00Z 2032-02-29T00:00:00Z");
    EXPECT("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");   /* not 2100 */
    EXPECT("0 0 29 2 *", "Pacific/Kiritimati", "2026-01-01T00:00:00Z", "2028-02-28T10:00:00Z");
    EXPECT("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z");
    /* 1 February on a Monday: 2027, then 2038 — gaps over 8 years are rejected */
    REJECT("0 0 */31 2 MON", "fires too rarely");
    REJECT("0 0 1 2 */7", "fires too rarely");
    char err[128];
    aq_cron *c = aq_cron_parse("0 0 */15 2 MON", err, sizeof err);     /* 1st or 16th: 6 years */
    CHECK(c != NULL);
    aq_cron_free(c);
}

static void dst_berlin(void)
{
    /* spring forward 2026-03-29 02:00 CET -> 03:00 CEST; fall back 2026-10-25 03:00 CEST ->
     * 02:00 CET. A 02:30 daily job runs once on both days: pushed to 03:30 CEST, then the first
     * 02:30 only. */
    EXPECT("30 2 * * *", "Europe/Berlin", "2026-03-27T00:00:00Z",
           "2026-03-27T01:30:00Z 2026-03-28T01:30:00Z 2026-03-29T01:30:00Z 2026-03-30T00:30:00Z");
    EXPECT("30 2 * * *", "Europe/Berlin", "2026-10-23T00:00:00Z",
           "2026-10-23T00:30:00Z 2026-10-24T00:30:00Z 2026-10-25T00:30:00Z 2026-10-26T01:30:00Z");
    EXPECT("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z");
    /* hourly and half-hourly follow real time: no gap, no double */
    EXPECT("0 * * * *", "Europe/Berlin", "2026-03-28T22:30:00Z",
           "2026-03-28T23:00:00Z 2026-03-29T00:00:00Z 2026-03-29T01:00:00Z 2026-03-29T02:00:00Z"
           " 2026-03-29T03:00:00Z");
    EXPECT("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00Z",
           "2026-10-24T23:00:00Z 2026-10-25T00:00:00Z 2026-10-25T01:00:00Z 2026-10-25T02:00:00Z"
           " 2026-10-25T03:00:00Z");
    EXPECT("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z",
           "2026-03-29T00:30:00Z 2026-03-29T01:00:00Z 2026-03-29T01:30:00Z 2026-03-29T02:00:00Z");
    EXPECT("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:00:00Z",
           "2026-10-24T23:30:00Z 2026-10-25T00:00:00Z 2026-10-25T00:30:00Z 2026-10-25T01:00:00Z"
           " 2026-10-25T01:30:00Z 2026-10-25T02:00:00Z");
    /* 02:30 pushed to 03:30 CEST is the same instant as 03:30: once */
    EXPECT("30 1-3 * * *", "Europe/Berlin", "2026-03-28T22:00:00Z",
           "2026-03-29T00:30:00Z 2026-03-29T01:30:00Z 2026-03-29T23:30:00Z");
    EXPECT("30 1-3 * * *", "Europe/Berlin", "2026-10-24T22:00:00Z",
           "2026-10-24T23:30:00Z 2026-10-25T00:30:00Z 2026-10-25T02:30:00Z 2026-10-26T00:30:00Z");
}

static void dst_other_zones(void)
{
    /* America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST */
    EXPECT("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z",
           "2026-03-07T07:30:00Z 2026-03-08T07:30:00Z 2026-03-09T06:30:00Z");
    EXPECT("30 2 * * *", "America/New_York", "2026-10-31T00:00:00Z",
           "2026-10-31T06:30:00Z 2026-11-01T07:30:00Z 2026-11-02T07:30:00Z");
    EXPECT("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",     /* the first 01:30 only */
           "2026-11-01T05:30:00Z 2026-11-02T06:30:00Z");
    EXPECT("0 * * * *", "America/New_York", "2026-03-08T05:30:00Z",
           "2026-03-08T06:00:00Z 2026-03-08T07:00:00Z 2026-03-08T08:00:00Z 2026-03-08T09:00:00Z");
    EXPECT("*/30 * * * *", "America/New_York", "2026-11-01T04:45:00Z",
           "2026-11-01T05:00:00Z 2026-11-01T05:30:00Z 2026-11-01T06:00:00Z 2026-11-01T06:30:00Z"
           " 2026-11-01T07:00:00Z 2026-11-01T07:30:00Z");
    /* Australia/Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST; 2026-10-04 02:00 -> 03:00 AEDT */
    EXPECT("30 2 * * *", "Australia/Sydney", "2026-04-03T00:00:00Z",
           "2026-04-03T15:30:00Z 2026-04-04T15:30:00Z 2026-04-05T16:30:00Z");
    EXPECT("30 2 * * *", "Australia/Sydney", "2026-10-02T00:00:00Z",
           "2026-10-02T16:30:00Z 2026-10-03T16:30:00Z 2026-10-04T15:30:00Z");
    EXPECT("0 * * * *", "Australia/Sydney", "2026-10-03T14:30:00Z",
           "2026-10-03T15:00:00Z 2026-10-03T16:00:00Z 2026-10-03T17:00:00Z");
    /* Australia/Lord_Howe shifts by 30 minutes: 2026-04-05 02:00 -> 01:30 (+11 -> +10:30),
     * 2026-10-04 02:00 -> 02:30 */
    EXPECT("*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:10:00Z",
           "2026-04-04T14:15:00Z 2026-04-04T14:30:00Z 2026-04-04T14:45:00Z 2026-04-04T15:00:00Z"
           " 2026-04-04T15:15:00Z 2026-04-04T15:30:00Z");
    EXPECT("45 1 * * *", "Australia/Lord_Howe", "2026-04-03T00:00:00Z",
           "2026-04-03T14:45:00Z 2026-04-04T14:45:00Z 2026-04-05T15:15:00Z");
    EXPECT("15 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00:00Z",
           "2026-10-02T15:45:00Z 2026-10-03T15:45:00Z 2026-10-04T15:15:00Z");
    EXPECT("*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T15:10:00Z",
           "2026-10-03T15:15:00Z 2026-10-03T15:30:00Z 2026-10-03T15:45:00Z 2026-10-03T16:00:00Z");
    /* Pacific/Apia skipped 2011-12-30 entirely (-10 -> +14) */
    EXPECT("0 12 * * *", "Pacific/Apia", "2011-12-28T00:00:00Z",
           "2011-12-28T22:00:00Z 2011-12-29T22:00:00Z 2011-12-30T22:00:00Z");
    EXPECT("0 12 * * *", "UTC", "2026-03-29T00:00:00Z",
           "2026-03-29T12:00:00Z 2026-03-30T12:00:00Z");
}

/* Over all of 2026, every-30-minutes runs every 1800 real seconds and a
 * 02:30 daily job runs 365 times, 23 to 25 hours apart. */
static void dst_whole_year(void)
{
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney",
                           "Australia/Lord_Howe", "UTC", NULL};
    char err[256];
    aq_cron *half = aq_cron_parse("*/30 * * * *", err, sizeof err);
    aq_cron *daily = aq_cron_parse("30 2 * * *", err, sizeof err);
    CHECK(half && daily);
    if (!half || !daily) return;
    int64_t start = iso("2026-01-01T00:00:00Z"), end = iso("2027-01-01T00:00:00Z");
    for (int z = 0; zones[z]; z++) {
        GTimeZone *tz = aq_tz_open(zones[z], err, sizeof err);
        CHECK(tz != NULL);
        if (!tz) continue;
        int n = 0, bad = 0;
        for (int64_t t = start - 1, u; !aq_cron_next(half, tz, t, &u) && u < end; t = u, n++)
            bad += t >= start && u - t != 1800;
        if (n != 17520 || bad)
            th_fail(__FILE__, __LINE__, "%s: */30 fired %d times, %d uneven", zones[z], n, bad);
        n = bad = 0;
        int64_t prev = 0;
        for (int64_t t = start - 2 * 86400, u; !aq_cron_next(daily, tz, t, &u); t = u) {
            if (u >= end + 86400) break;
            if (prev && (u - prev < 23 * 3600 || u - prev > 25 * 3600)) bad++;
            if (u >= start - 43200 && u < end - 43200) n++;     /* 2026's local 02:30s here */
            prev = u;
        }
        if (n != 365 || bad)
            th_fail(__FILE__, __LINE__, "%s: 02:30 fired %d times, %d odd gaps", zones[z], n, bad);
        g_time_zone_unref(tz);
    }
    aq_cron_free(half);
    aq_cron_free(daily);
}

static void malformed(void)
{
    REJECT("60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    REJECT("* 24 * * *", "field 2 (hour): 24 is out of range 0-23");
    REJECT("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1-31");
    REJECT("* * 32 * *", "32 is out of range 1-31");
    REJECT("* * * 13 *", "field 4 (month): 13 is out of range 1-12");
    REJECT("* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7");
    REJECT("99999999999999999999 * * * *", "99999999999999999999 is out of range 0-59");
    REJECT("*/0 * * * *", "step 0 in '*/0' is not allowed");
    REJECT("*/61 * * * *", "step 61 is out of range 1-60");
    REJECT("5-1 * * * *", "range '5-1' is backwards (start 5 > end 1)");
    REJECT("0 0 * * FRI-MON", "range 'FRI-MON' is backwards");
    REJECT("* * * *", "expected 5 fields, got 4");
    REJECT("* * * * * *", "expected 5 fields, got 6");
    REJECT("@every", "unknown macro '@every'");
    REJECT("@every 5m", "unknown macro '@every'");
    REJECT("@reboot", "unknown macro '@reboot'");
    REJECT("@daily 0", "unexpected text after @daily");
    REJECT("a * * * *", "field 1 (minute): 'a' is not a number");
    REJECT("* * * FOO *", "field 4 (month): unknown name 'FOO'");
    REJECT("* * * * MONDAY", "unknown name 'MONDAY'");
    REJECT("1,,2 * * * *", "empty item in list '1,,2'");
    REJECT("1, * * * *", "empty item in list '1,'");
    REJECT(",1 * * * *", "empty item in list ',1'");
    REJECT("1- * * * *", "'1-' is incomplete");
    REJECT("*/ * * * *", "'*/' is incomplete");
    REJECT("5x * * * *", "unexpected 'x' in '5x'");
    REJECT("*5 * * * *", "unexpected '5' in '*5'");
    REJECT("1-2-3 * * * *", "unexpected '-' in '1-2-3'");
    REJECT("*/5/5 * * * *", "unexpected '/' in '*/5/5'");
    REJECT("*/x * * * *", "a step is a number");
    REJECT("", "empty expression");
    REJECT(" \t ", "empty expression");
    REJECT(NULL, "no expression");
    REJECT("0 0 30 2 *", "never fires (day 30 does not exist in month 2)");
    REJECT("0 0 31 4,6,9,11 *", "never fires (day 31 does not exist in month 4,6,9,11)");
    REJECT("0 0 30-31 FEB *", "never fires");
    REJECT("0 0 * * M\xc3\x96N", "non-ASCII character at position 10");
    REJECT("0 0 * * *\n", "control character at position 10");
    char big[301];
    memset(big, '1', 300);
    big[300] = '\0';
    REJECT(big, "longer than 256 characters");
    /* 256 characters is fine */
    char ok[257];
    memset(ok, ' ', 256);
    memcpy(ok, "0 0 * * *", 9);
    ok[256] = '\0';
    char err[8];
    aq_cron *c = aq_cron_parse(ok, err, sizeof err);
    CHECK(c != NULL);
    aq_cron_free(c);
    CHECK(aq_cron_parse("61 * * * *", err, sizeof err) == NULL);   /* cut short, not overrun */
    CHECK_STR(err, "field 1");
    CHECK(aq_cron_parse("61 * * * *", NULL, 0) == NULL);
}

static void zones(void)
{
    char err[256];
    GTimeZone *tz = aq_tz_open("Europe/Berlin", err, sizeof err);
    CHECK(tz != NULL);
    if (tz) {
        int i = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, iso("2026-07-01T00:00:00Z"));
        CHECK_INT(g_time_zone_get_offset(tz, i), 7200);
        g_time_zone_unref(tz);
    }
    tz = aq_tz_open("UTC", err, sizeof err);
    CHECK(tz != NULL);
    if (tz) g_time_zone_unref(tz);
    static const struct { const char *name, *reason; } bad[] = {
        {"Mars/Olympus", "unknown time zone 'Mars/Olympus'"},
        {"../../etc/passwd", "invalid time zone name '../../etc/passwd'"},
        {"/etc/localtime", "invalid time zone name"},
        {"Europe//Berlin", "invalid time zone name"},
        {"Europe/Berlin/", "invalid time zone name"},
        {"Europe/Berlin ", "invalid time zone name"},
        {"Europe", "unknown time zone 'Europe'"},           /* a directory */
        {"leapseconds", "unknown time zone"},              /* a file, not TZif */
        {"FOO3", "unknown time zone"},                     /* a POSIX TZ string GLib would take */
        {"europe/berlin", "unknown time zone"},
        {"", "empty time zone name"},
        {"Europe/Berl\xc3\xafn", "invalid time zone name (expected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        tz = aq_tz_open(bad[i].name, err, sizeof err);
        if (tz) {
            th_fail(__FILE__, __LINE__, "zone '%s' was accepted", bad[i].name);
            g_time_zone_unref(tz);
        }
        CHECK_CONTAINS(err, bad[i].reason);
    }
    CHECK(aq_tz_open(NULL, err, sizeof err) == NULL);
    char longname[200];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(aq_tz_open(longname, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "longer than 128");
}

static void local_to_utc(void)
{
    char err[256];
    GTimeZone *tz = aq_tz_open("Europe/Berlin", err, sizeof err);
    CHECK(tz != NULL);
    if (!tz) return;
    /* the wall times are written as if UTC; a gap pushes forward, a repeat takes the earlier */
    CHECK_INT(aq_tz_local_to_utc(tz, iso("2026-01-15T12:00:00Z")), iso("2026-01-15T11:00:00Z"));
    CHECK_INT(aq_tz_local_to_utc(tz, iso("2026-07-15T12:00:00Z")), iso("2026-07-15T10:00:00Z"));
    CHECK_INT(aq_tz_local_to_utc(tz, iso("2026-03-29T02:30:00Z")), iso("2026-03-29T01:30:00Z"));
    CHECK_INT(aq_tz_local_to_utc(tz, iso("2026-10-25T02:30:00Z")), iso("2026-10-25T00:30:00Z"));
    CHECK_INT(aq_tz_local_to_utc(tz, iso("2026-10-25T03:00:00Z")), iso("2026-10-25T02:00:00Z"));
    g_time_zone_unref(tz);
    /* the year bounds */
    aq_cron *c = aq_cron_parse("* * * * *", err, sizeof err);
    tz = aq_tz_open("UTC", err, sizeof err);
    int64_t t;
    CHECK_INT(aq_cron_next(c, tz, iso("9989-12-31T23:59:00Z"), &t), 0);
    CHECK_INT(aq_cron_next(c, tz, INT64_MAX, &t), AQ_EINVAL);
    CHECK_INT(aq_cron_next(c, tz, INT64_MIN, &t), AQ_EINVAL);
    CHECK_INT(aq_cron_next(c, tz, iso("1900-01-01T00:00:00Z"), &t), 0);
    CHECK_INT(t, iso("1900-01-01T00:01:00Z"));
    g_time_zone_unref(tz);
    aq_cron_free(c);
}

/* Long runs of consecutive fire times stay exact (timing is `make bench`'s business, not a test's). */
static void long_runs(void)
{
    char err[256];
    GTimeZone *tz = aq_tz_open("Europe/Berlin", err, sizeof err);
    aq_cron *every = aq_cron_parse("* * * * *", err, sizeof err);
    aq_cron *leap = aq_cron_parse("0 0 29 2 *", err, sizeof err);
    CHECK(tz && every && leap);
    if (!tz || !every || !leap) return;
    int64_t start = iso("2026-01-01T00:00:00Z"), t = start;
    for (int i = 0; i < 100000; i++) CHECK(!aq_cron_next(every, tz, t, &t));
    CHECK_INT(t, start + 100000 * 60);
    for (int i = 0; i < 1000; i++) CHECK(!aq_cron_next(leap, tz, start + i * 86400, &t));
    CHECK_INT(t, iso("2032-02-28T23:00:00Z"));    /* after 2028-09-26 */
    g_time_zone_unref(tz);
    aq_cron_free(every);
    aq_cron_free(leap);
}

#define RUN_OK(want, ...) do { const char *a_[] = {"cron", "next", __VA_ARGS__, NULL}; \
    th_cli_run r_ = th_cli(NULL, a_); \
    CHECK_INT(r_.status, 0); CHECK_STR(r_.out, want); CHECK_STR(r_.err, ""); th_cli_free(&r_); } while (0)

/* exit status 2, nothing on stdout, one line on stderr: "agentq: ...reason..." */
#define RUN_BAD(reason, ...) do { const char *a_[] = {__VA_ARGS__, NULL}; \
    th_cli_run r_ = th_cli(NULL, a_); const char *e_ = r_.err; \
    CHECK_INT(r_.status, 2); CHECK_STR(r_.out, ""); CHECK(!strncmp(e_, "agentq: ", 8)); \
    CHECK_CONTAINS(e_, reason); CHECK(strchr(e_, '\n') == e_ + strlen(e_) - 1); th_cli_free(&r_); } while (0)

static void cli(void)
{
    RUN_OK("2026-03-28T01:30:00Z\n2026-03-29T01:30:00Z\n2026-03-30T00:30:00Z\n",
           "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-28T00:00:00Z", "--count", "3");
    /* option order, --opt=value, an offset in --from (02:00+02:00 is 00:00Z) */
    RUN_OK("2026-03-29T01:30:00Z\n", "--count=1", "--tz=Europe/Berlin",
           "--from", "2026-03-29T02:00:00+02:00", "30 2 * * *");
    RUN_OK("2026-03-29T01:30:00Z\n", "30 2 * * *", "--tz", "Europe/Berlin",
           "--from", "2026-03-28T23:00:00-0100", "--count", "1");
    /* no zone in --from: a wall time in --tz (00:00 CET = 23:00Z the day before) */
    RUN_OK("2026-03-28T23:00:00Z\n", "0 * * * *", "--tz", "Europe/Berlin",
           "--from", "2026-03-28T23:59:59", "--count", "1");
    RUN_OK("2026-03-29T00:00:00Z\n", "0 * * * *", "--tz", "Europe/Berlin",
           "--from", "2026-03-29T00:00:00", "--count", "1");
    RUN_OK("2026-01-01T00:01:00Z\n", "* * * * *",
           "--from", "2026-01-01T00:00:59.999Z", "--count", "1");
    RUN_OK("2026-01-01T00:00:00Z\n", "@daily", "--from", "2025-12-31", "--count", "1");
    /* defaults: UTC, five lines */
    RUN_OK("2026-01-01T12:00:00Z\n2026-01-02T12:00:00Z\n2026-01-03T12:00:00Z\n"
           "2026-01-04T12:00:00Z\n2026-01-05T12:00:00Z\n",
           "0 12 * * *", "--from", "2026-01-01T00:00:00Z");
    {
        const char *a[] = {"cron", "next", "* * * * *", "--count", "1000", NULL};
        th_cli_run r = th_cli(NULL, a);
        CHECK_INT(r.status, 0);
        int lines = 0;
        for (char *p = r.out; *p; p++) lines += *p == '\n';
        CHECK_INT(lines, 1000);
        CHECK_INT(strlen(r.out), 21000);
        th_cli_free(&r);
    }
}

static void cli_errors(void)
{
    RUN_BAD("field 2 (hour): 24 is out of range 0-23", "cron", "next", "0 24 * * *");
    RUN_BAD("expected 5 fields, got 4", "cron", "next", "* * * *", "--count", "2");
    RUN_BAD("unknown time zone 'Mars/Olympus'", "cron", "next", "* * * * *",
            "--tz", "Mars/Olympus");
    RUN_BAD("invalid time zone name", "cron", "next", "* * * * *", "--tz", "../../etc/passwd");
    RUN_BAD("--from 'yesterday'", "cron", "next", "* * * * *", "--from", "yesterday");
    RUN_BAD("--from '2026-02-30T00:00:00Z'", "cron", "next", "* * * * *",
            "--from", "2026-02-30T00:00:00Z");
    RUN_BAD("--from '2026-01-01T24:00:00Z'", "cron", "next", "* * * * *",
            "--from", "2026-01-01T24:00:00Z");
    RUN_BAD("--from '2026-01-01T00:00:00Zjunk'", "cron", "next", "* * * * *",
            "--from", "2026-01-01T00:00:00Zjunk");
    RUN_BAD("--count must be a whole number from 1 to 1000, not '0'", "cron", "next", "* * * * *",
            "--count", "0");
    RUN_BAD("not '1001'", "cron", "next", "* * * * *", "--count", "1001");
    RUN_BAD("not 'x'", "cron", "next", "* * * * *", "--count", "x");
    RUN_BAD("not ''", "cron", "next", "* * * * *", "--count=");
    RUN_BAD("--count needs a value", "cron", "next", "* * * * *", "--count");
    RUN_BAD("missing EXPR", "cron", "next", "--tz", "UTC");
    RUN_BAD("unknown option '--zone'", "cron", "next", "* * * * *", "--zone", "UTC");
    RUN_BAD("unexpected argument '*'", "cron", "next", "*", "*", "*", "*", "*");
    RUN_BAD("no further fire time", "cron", "next", "* * * * *", "--from", "9999-01-01T00:00:00Z");
    RUN_BAD("usage: agentq cron next", "cron");
    RUN_BAD("usage: agentq cron next", "cron", "previous", "* * * * *");
}

const th_test th_cron_tests[] = {
    {"cron_grammar", grammar, 10, 0},
    {"cron_macros", macros, 10, 0},
    {"cron_days", days, 10, 0},
    {"cron_dst_berlin", dst_berlin, 10, 0},
    {"cron_dst_other_zones", dst_other_zones, 10, 0},
    {"cron_dst_whole_year", dst_whole_year, 60, 0},
    {"cron_malformed", malformed, 10, 0},
    {"cron_zones", zones, 10, 0},
    {"cron_local_to_utc", local_to_utc, 10, 0},
    {"cron_long_runs", long_runs, 60, 0},
    {"cron_cli", cli, 30, 0},
    {"cron_cli_errors", cli_errors, 30, 0},
    {0},
};
