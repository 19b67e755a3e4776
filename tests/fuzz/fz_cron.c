/* fz_cron.c — cron expressions and time-zone names as schedules take them
 * from users. The input is "ZONE\nEXPRESSION[\nAFTER]": the zone opened both
 * as aq_tz_open does (names only) and as GLib reads any TZ string (POSIX
 * rules such as "AAA3BBB,M3.2.0,M11.1.0" give odd DST shapes), plus UTC.
 * Contracts: a parsed expression always has a next fire time, strictly after
 * `after` and within 8 years; that time is itself a fire time (asking again
 * from one second before gives it back); in UTC its fields match the
 * expression as read by a separate, naive reading of the grammar below. */
#include "fuzz.h"
#include "aq_cron.h"
#include "aq_error.h"
#include <ctype.h>
#include <strings.h>
#include <time.h>

#define EIGHT_YEARS (8LL * 366 * 86400 + 2 * 86400)
/* wall times aq_tz_local_to_utc is asked about: years 1 to 9990, as aq_cron_next's `after` */
#define LOCAL_MIN (-62135596800LL)
#define LOCAL_MAX 253086000000LL

/* ---- a naive second reading of the grammar (aq_cron.h), for the UTC check ---- */

static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int ref_value(const char **p, const char *e, int field, int *out)
{
    if (*p < e && isdigit((unsigned char)**p)) {
        int v = 0;
        while (*p < e && isdigit((unsigned char)**p) && v < 1000) v = v * 10 + (*(*p)++ - '0');
        *out = v;
        return 0;
    }
    if (e - *p < 3 || (field != 3 && field != 4)) return -1;
    const char *const *names = field == 3 ? months : wdays;
    int n = field == 3 ? 12 : 7;
    for (int i = 0; i < n; i++)
        if (!strncasecmp(*p, names[i], 3)) { *p += 3; *out = field == 3 ? i + 1 : i; return 0; }
    return -1;
}

static int ref_field(const char *f, const char *fe, int field, uint64_t *bits)
{
    static const int lo_of[] = {0, 0, 1, 1, 0}, hi_of[] = {59, 23, 31, 12, 7};
    int lo = lo_of[field], hi = hi_of[field];
    *bits = 0;
    while (f < fe) {
        const char *ie = memchr(f, ',', (size_t)(fe - f));
        if (!ie) ie = fe;
        int a, b, step = 1;
        if (*f == '*') { a = lo; b = hi; f++; }
        else {
            if (ref_value(&f, ie, field, &a)) return -1;
            b = a;
            if (f < ie && *f == '-') { f++; if (ref_value(&f, ie, field, &b)) return -1; }
            else if (f < ie && *f == '/') b = hi;
        }
        if (f < ie && *f == '/') { f++; if (ref_value(&f, ie, 0, &step) || step == 0) return -1; }
        if (f != ie || a < lo || b > hi || a > b) return -1;
        for (int v = a; v <= b; v += step) *bits |= 1ULL << (field == 4 && v == 7 ? 0 : v);
        f = ie < fe ? ie + 1 : ie;
    }
    return 0;
}

typedef struct ref { uint64_t bits[5]; int days_or; } ref;

static int ref_parse(const char *expr, ref *r)
{
    static const char *const macros[][2] = {{"@hourly", "0 * * * *"}, {"@daily", "0 0 * * *"},
        {"@midnight", "0 0 * * *"}, {"@weekly", "0 0 * * 0"}, {"@monthly", "0 0 1 * *"},
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}};
    const char *f[6], *fe[6];
    int n = 0;
    for (const char *p = expr; *p && n < 6; ) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        f[n] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        fe[n++] = p;
    }
    if (n == 1 && f[0][0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if ((size_t)(fe[0] - f[0]) == strlen(macros[i][0]) &&
                !strncasecmp(f[0], macros[i][0], strlen(macros[i][0])))
                return ref_parse(macros[i][1], r);
        return -1;
    }
    if (n != 5) return -1;
    for (int i = 0; i < 5; i++)
        if (ref_field(f[i], fe[i], i, &r->bits[i])) return -1;
    r->days_or = f[2][0] != '*' && f[4][0] != '*';
    return 0;
}

static int ref_matches_utc(const ref *r, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || tm.tm_sec != 0) return 0;
    int dom = (r->bits[2] >> tm.tm_mday) & 1, dow = (r->bits[4] >> tm.tm_wday) & 1;
    return ((r->bits[0] >> tm.tm_min) & 1) && ((r->bits[1] >> tm.tm_hour) & 1) &&
           ((r->bits[3] >> (tm.tm_mon + 1)) & 1) && (r->days_or ? dom || dow : dom && dow);
}

/* ---- the harness ---- */

/* GLib 2.74 (Debian 12) leaks its copy of the identifier when
 * g_time_zone_new_identifier fails. aq_tz_open only asks GLib about real TZif
 * files, so agentq never takes that path; this harness does, on purpose. The
 * suppression needs whole stacks (GLib has no frame pointers), hence the slow
 * unwinder, in this harness only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:g_time_zone_new_identifier\n"; }
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }

/* Every UTC offset tz has from a few days before `after` to past the 8-year
 * horizon lies within aq_cron_next's bound (aq_cron.h: within 26 hours, as
 * in any TZif file). GLib takes POSIX rules with a DST offset of 84 hours. */
static int offsets_in_bound(GTimeZone *tz, int64_t after)
{
    int i1 = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, after - 4 * 86400);
    int i2 = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, after + EIGHT_YEARS + 4 * 86400);
    for (int i = i1; i <= i2; i++) {
        int o = g_time_zone_get_offset(tz, i);
        if (o > 26 * 3600 || o < -26 * 3600) return 0;
    }
    return 1;
}

static void check_zone(const aq_cron *c, GTimeZone *tz, int64_t after, const ref *r)
{
    int64_t out = 0;
    int rc = aq_cron_next(c, tz, after, &out);
    if (rc == AQ_EINVAL) return;   /* `after` outside the years 1-9990 */
    if (!offsets_in_bound(tz, after)) return;
    FZ_CHECK(rc == 0);
    FZ_CHECK(out > after && out - after <= EIGHT_YEARS);
    int64_t again = 0;
    if (aq_cron_next(c, tz, out - 1, &again) == 0) FZ_CHECK(again == out);
    if (r) FZ_CHECK(ref_matches_utc(r, out));
    if (after >= LOCAL_MIN && after <= LOCAL_MAX) (void)aq_tz_local_to_utc(tz, after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fz_cstr(data, size);
    const char *zone = "", *expr = buf, *after_s = NULL;
    char *nl = strchr(buf, '\n');
    if (nl) {
        *nl = '\0';
        zone = buf;
        expr = nl + 1;
        if ((nl = strchr(nl + 1, '\n'))) { *nl = '\0'; after_s = nl + 1; }
    }
    char err[256] = "";

    GTimeZone *named = aq_tz_open(zone, err, sizeof err);
    GTimeZone *rules = g_time_zone_new_identifier(zone);   /* NULL unless GLib can read it */
    GTimeZone *utc = g_time_zone_new_utc();
    int64_t afters[4] = {0, 1774746000, 1792890000, -62135596800LL + 86400};   /* 1970, around EU DST, year 1 */
    if (after_s) afters[3] = strtoll(after_s, NULL, 10);
    for (int i = 0; i < 4; i++) {
        if (afters[i] < LOCAL_MIN || afters[i] > LOCAL_MAX) continue;
        (void)aq_tz_local_to_utc(utc, afters[i]);
        if (named) (void)aq_tz_local_to_utc(named, afters[i]);
        if (rules) (void)aq_tz_local_to_utc(rules, afters[i]);
    }

    aq_cron *c = aq_cron_parse(expr, err, sizeof err);
    if (c) {
        ref r;
        FZ_CHECK(ref_parse(expr, &r) == 0);   /* what aq_cron accepts, the naive reading does */
        for (int i = 0; i < 4; i++) {
            check_zone(c, utc, afters[i], &r);
            if (named) check_zone(c, named, afters[i], NULL);
            if (rules) check_zone(c, rules, afters[i], NULL);
        }
        aq_cron_free(c);
    } else {
        FZ_CHECK(err[0] != '\0');
    }
    if (named) g_time_zone_unref(named);
    if (rules) g_time_zone_unref(rules);
    g_time_zone_unref(utc);
    free(buf);
    return 0;
}
