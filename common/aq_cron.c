/* aq_cron.c — cron expressions (see aq_cron.h for the grammar and the DST
 * rules).
 *
 * DESIGN. A parsed expression is five bit sets (minutes, hours, days of the
 * month, months, days of the week) and two flags: whether a day matches when
 * either day field does (Vixie's rule) and whether every hour is listed (the
 * DST rules depend on it). aq_cron_next walks local calendar dates from a
 * little before `after`, passing over months and days that do not match with
 * date arithmetic alone (Hinnant's days_from_civil, no libc time functions).
 * For a date that matches it asks GLib which offset interval holds the
 * instants one day before and two days after the date's midnight: if both are
 * the same interval, no transition is near, each wall time is one instant and
 * the first slot after `after` falls out of bit scans. Otherwise each slot is
 * mapped with the DST rules. The walk ends once no later date can hold an
 * earlier instant than the best so far (no zone's offset exceeds 26 hours). */
#include "aq_cron.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct aq_cron {
    uint64_t minutes;       /* bit m: minute m */
    uint32_t hours;         /* bit h: hour h */
    uint32_t mdays;         /* bit d: day d of the month, 1-31 */
    uint16_t months;        /* bit m: month m, 1-12 */
    uint8_t wdays;          /* bit w: weekday w, Sunday 0 (a 7 is stored as 0) */
    bool days_or;           /* both day fields restricted: a day matches when either does */
    bool every_hour;        /* all 24 hours listed: DST gaps skip, repeated hours run twice */
};

#define DAY 86400
#define LAST_SLOT (23 * 3600 + 59 * 60)    /* seconds from midnight to 23:59 */
#define MAX_OFFSET (26 * 3600)             /* beyond any zone's UTC offset (IANA: -12 h to +14 h) */
#define HORIZON_DAYS (8 * 366 + 2)         /* how far aq_cron_next looks */
#define RAREST_DAYS (8 * 365 + 2)          /* the widest gap between fire days a parse accepts */
#define ALL_MINUTES ((UINT64_C(1) << 60) - 1)
#define ALL_HOURS ((UINT32_C(1) << 24) - 1)
#define ALL_MDAYS (UINT32_C(0xfffffffe))
#define ALL_WDAYS 0x7f

/* ---- civil dates (proleptic Gregorian; day 0 is 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int weekday(int64_t z)       /* 0 = Sunday; 1970-01-01 was a Thursday */
{
    return (int)(z - floor_div(z + 4, 7) * 7 + 4);
}

static int days_in_month(int64_t y, int m)
{
    static const int n[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : n[m];
}

/* ---- parsing ---- */

typedef struct field_def {
    const char *name;
    int min, max;
    const char *names;      /* three-letter names of min, min+1, ... concatenated, or NULL */
    const char *name_span;
} field_def;

static const field_def fields[5] = {
    {"minute", 0, 59, NULL, NULL},
    {"hour", 0, 23, NULL, NULL},
    {"day-of-month", 1, 31, NULL, NULL},
    {"month", 1, 12, "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC", "JAN-DEC"},
    {"day-of-week", 0, 7, "SUNMONTUEWEDTHUFRISAT", "SUN-SAT"},
};

/* where a field error is: "field 2 (hour): ..." and the item it is in */
typedef struct field_ctx {
    int idx;
    const field_def *f;
    const char *item, *item_end;
    char *err;
    size_t errlen;
} field_ctx;

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int field_err(const field_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int field_err(const field_ctx *x, const char *fmt, ...)
{
    if (!x->err || !x->errlen) return AQ_EINVAL;
    int n = snprintf(x->err, x->errlen, "field %d (%s): ", x->idx + 1, x->f->name);
    if (n < 0 || (size_t)n >= x->errlen) return AQ_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return AQ_EINVAL;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

#define ITEM(x) (int)((x)->item_end - (x)->item), (x)->item

/* A number or a name at *pp, within the field's range; advances *pp. */
static int parse_value(const field_ctx *x, const char **pp, const char *end, int *out)
{
    const char *p = *pp, *s = p;
    const field_def *f = x->f;
    if (p < end && is_digit(*p)) {
        long v = 0;
        for (; p < end && is_digit(*p); p++)
            if (v <= f->max) v = v * 10 + (*p - '0');
        if (v < f->min || v > f->max)
            return field_err(x, "%.*s is out of range %d-%d", (int)(p - s), s, f->min, f->max);
        *out = (int)v;
        *pp = p;
        return 0;
    }
    if (p < end && is_alpha(*p)) {
        while (p < end && is_alpha(*p)) p++;
        if (!f->names) return field_err(x, "'%.*s' is not a number", (int)(p - s), s);
        for (int i = 0; p - s == 3 && f->names[3 * i]; i++)
            if (!strncasecmp(s, f->names + 3 * i, 3)) {
                *out = f->min + i;
                *pp = p;
                return 0;
            }
        return field_err(x, "unknown name '%.*s' (expected a number or %s)", (int)(p - s), s,
                         f->name_span);
    }
    if (p == end) return field_err(x, "'%.*s' is incomplete", ITEM(x));
    return field_err(x, "unexpected '%c' in '%.*s'", *p, ITEM(x));
}

/* One list item: `*`, `N` or `N-M`, then an optional `/STEP`; ORs its values into *bits. */
static int parse_item(field_ctx *x, const char *p, const char *e, uint64_t *bits)
{
    const field_def *f = x->f;
    x->item = p;
    x->item_end = e;
    int lo, hi, step = 1;
    bool span = false;
    if (p < e && *p == '*') {
        p++;
        lo = f->min;
        hi = f->max;
        span = true;
    } else {
        if (parse_value(x, &p, e, &lo)) return AQ_EINVAL;
        hi = lo;
        if (p < e && *p == '-') {
            p++;
            if (parse_value(x, &p, e, &hi)) return AQ_EINVAL;
            span = true;
        }
    }
    if (p < e && *p == '/') {
        const char *s = ++p;
        long v = 0;
        for (; p < e && is_digit(*p); p++)
            if (v <= 1000) v = v * 10 + (*p - '0');
        if (p == s) {
            if (p == e) return field_err(x, "'%.*s' is incomplete", ITEM(x));
            return field_err(x, "unexpected '%c' in '%.*s' (a step is a number)", *p, ITEM(x));
        }
        if (v == 0) return field_err(x, "step 0 in '%.*s' is not allowed", ITEM(x));
        if (v > f->max - f->min + 1)
            return field_err(x, "step %.*s is out of range 1-%d", (int)(p - s), s,
                             f->max - f->min + 1);
        step = (int)v;
        if (!span) hi = f->max;     /* `5/15` means 5-max/15 */
    }
    if (p < e) return field_err(x, "unexpected '%c' in '%.*s'", *p, ITEM(x));
    if (lo > hi)
        return field_err(x, "range '%.*s' is backwards (start %d > end %d)", ITEM(x), lo, hi);
    for (int v = lo; v <= hi; v += step) *bits |= UINT64_C(1) << (x->idx == 4 && v == 7 ? 0 : v);
    return 0;
}

static int parse_field(int idx, const char *s, size_t len, uint64_t *bits, char *err, size_t errlen)
{
    field_ctx x = {idx, &fields[idx], s, s + len, err, errlen};
    const char *end = s + len;
    *bits = 0;
    for (const char *p = s;; ) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e) e = end;
        if (p == e) return field_err(&x, "empty item in list '%.*s'", (int)len, s);
        if (parse_item(&x, p, e, bits)) return AQ_EINVAL;
        if (e == end) return 0;
        p = e + 1;
        if (p == end) return field_err(&x, "empty item in list '%.*s'", (int)len, s);
    }
}

/* Does any (month, day) pair exist, and do the days recur at least every 8
 * years? Only the Vixie AND of a partial day-of-month and a partial
 * day-of-week can be that rare; for it, one 400-year Gregorian cycle (146097
 * days, a whole number of weeks) is walked. */
static int check_fires(const aq_cron *c, const char *dom, int domlen, const char *mon, int monlen,
                       char *err, size_t errlen)
{
    if (c->days_or) return 0;      /* a listed weekday comes round every week of a listed month */
    bool any = false;
    for (int m = 1; m <= 12; m++) {
        /* days 1 to the month's length, 29 for February */
        uint32_t exist = (uint32_t)((UINT64_C(1) << (days_in_month(2000, m) + 1)) - 2);
        if (c->months >> m & 1 && c->mdays & exist) any = true;
    }
    if (!any) {
        say(err, errlen, "never fires (day %.*s does not exist in month %.*s)", domlen, dom, monlen,
            mon);
        return AQ_EINVAL;
    }
    if (c->wdays == ALL_WDAYS || c->mdays == ALL_MDAYS) return 0;
    int64_t first = -1, last = -1, gap = 0;
    for (int64_t y = 2000; y < 2400; y++)
        for (int m = 1; m <= 12; m++) {
            if (!(c->months >> m & 1)) continue;
            for (int d = 1, n = days_in_month(y, m); d <= n; d++) {
                if (!(c->mdays >> d & 1)) continue;
                int64_t z = days_from_civil(y, m, d);
                if (!(c->wdays >> weekday(z) & 1)) continue;
                if (first < 0) first = z;
                else if (z - last > gap) gap = z - last;
                last = z;
            }
        }
    if (first < 0) {
        say(err, errlen, "never fires (day-of-month and day-of-week never coincide in month %.*s)",
            monlen, mon);
        return AQ_EINVAL;
    }
    if (first + 146097 - last > gap) gap = first + 146097 - last;
    if (gap > RAREST_DAYS) {
        say(err, errlen, "fires too rarely (runs can be %d years apart; the limit is 8)",
            (int)((gap + 182) / 365));
        return AQ_EINVAL;
    }
    return 0;
}

static const struct { const char *name, *expr; } macros[] = {
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

aq_cron *aq_cron_parse(const char *expr, char *err, size_t errlen)
{
    if (!expr) { say(err, errlen, "no expression"); return NULL; }
    size_t n = strnlen(expr, AQ_CRON_MAX_LEN + 1);
    if (n > AQ_CRON_MAX_LEN) {
        say(err, errlen, "expression is longer than %d characters", AQ_CRON_MAX_LEN);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)expr[i];
        if (ch >= 0x80) {
            say(err, errlen, "non-ASCII character at position %zu", i + 1);
            return NULL;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            say(err, errlen, "control character at position %zu", i + 1);
            return NULL;
        }
    }
    const char *f[5];
    int flen[5], nf = 0;
    for (const char *p = expr; *p; ) {
        while (is_blank(*p)) p++;
        if (!*p) break;
        const char *s = p;
        while (*p && !is_blank(*p)) p++;
        if (nf < 5) { f[nf] = s; flen[nf] = (int)(p - s); }
        nf++;
    }
    if (nf == 0) { say(err, errlen, "empty expression"); return NULL; }
    if (f[0][0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if ((size_t)flen[0] == strlen(macros[i].name) &&
                !strncasecmp(f[0], macros[i].name, (size_t)flen[0])) {
                if (nf > 1) {
                    say(err, errlen, "unexpected text after %s", macros[i].name);
                    return NULL;
                }
                return aq_cron_parse(macros[i].expr, err, errlen);
            }
        say(err, errlen, "unknown macro '%.*s' (expected @hourly, @daily, @midnight, @weekly,"
            " @monthly, @yearly or @annually)", flen[0] > 32 ? 32 : flen[0], f[0]);
        return NULL;
    }
    if (nf != 5) { say(err, errlen, "expected 5 fields, got %d", nf); return NULL; }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(i, f[i], (size_t)flen[i], &bits[i], err, errlen)) return NULL;
    aq_cron *c = aq_calloc(1, sizeof *c);
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->wdays = (uint8_t)bits[4];
    c->days_or = f[2][0] != '*' && f[4][0] != '*';
    c->every_hour = c->hours == ALL_HOURS;
    if (check_fires(c, f[2], flen[2], f[3], flen[3], err, errlen)) {
        aq_cron_free(c);
        return NULL;
    }
    return c;
}

void aq_cron_free(aq_cron *c)
{
    free(c);
}

/* ---- time zones ---- */

GTimeZone *aq_tz_open(const char *name, char *err, size_t errlen)
{
    if (!name || !*name) { say(err, errlen, "empty time zone name"); return NULL; }
    size_t n = strnlen(name, AQ_TZ_NAME_MAX + 1);
    if (n > AQ_TZ_NAME_MAX) {
        say(err, errlen, "time zone name is longer than %d characters", AQ_TZ_NAME_MAX);
        return NULL;
    }
    bool printable = true, ok = name[0] != '/' && name[n - 1] != '/';
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        printable &= ch >= 0x20 && ch < 0x7f;
        ok &= is_alpha(ch) || is_digit(ch) || ch == '_' || ch == '+' || ch == '-' ||
              (ch == '/' && name[i + 1] != '/');
    }
    if (!ok) {
        say(err, errlen, "invalid time zone name%s%s%s (expected an IANA name like Europe/Berlin)",
            printable ? " '" : "", printable ? name : "", printable ? "'" : "");
        return NULL;
    }
    if (!strcmp(name, "UTC")) return g_time_zone_new_utc();
    /* GLib would also take a POSIX TZ string or a file that is not TZif (and
     * complain on stderr about the latter): only hand it real zone files. */
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[4096], magic[4] = {0};
    int len = snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = len > 0 && (size_t)len < sizeof path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    ssize_t got = fd >= 0 ? read(fd, magic, sizeof magic) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof magic || memcmp(magic, "TZif", 4)) {
        say(err, errlen, "unknown time zone '%s' (not in the tz database at %s)", name, dir);
        return NULL;
    }
    GTimeZone *tz = g_time_zone_new_identifier(name);
    if (!tz) say(err, errlen, "cannot load time zone '%s'", name);
    return tz;
}

static int offset_at(GTimeZone *tz, int64_t t)
{
    return g_time_zone_get_offset(tz, g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t));
}

/* The valid instants of wall time L (0, 1 or 2 of them, in u); *oa gets the
 * offset in effect a day before L. */
static int instants(GTimeZone *tz, int64_t L, int64_t u[2], int *oa)
{
    int a = offset_at(tz, L - DAY), b = offset_at(tz, L + DAY), n = 0;
    if (offset_at(tz, L - a) == a) u[n++] = L - a;
    if (b != a && offset_at(tz, L - b) == b) u[n++] = L - b;
    *oa = a;
    return n;
}

int64_t aq_tz_local_to_utc(GTimeZone *tz, int64_t local)
{
    int64_t u[2];
    int oa, n = instants(tz, local, u, &oa);
    if (n == 0) return local - oa;
    return n == 2 && u[1] < u[0] ? u[1] : u[0];
}

/* ---- the next fire time ---- */

/* The first listed slot (minute of the day, h * 60 + m) at or after k, or -1. */
static int first_slot(const aq_cron *c, int k)
{
    for (int h = k / 60; h < 24; h++) {
        if (!(c->hours >> h & 1)) continue;
        uint64_t mins = c->minutes & (~UINT64_C(0) << (h == k / 60 ? k % 60 : 0));
        if (mins) return h * 60 + __builtin_ctzll(mins);
    }
    return -1;
}

/* Lower *best to the earliest instant after `after` of a slot on local date
 * `day` (which matches), if there is one earlier than *best. */
static void eval_day(const aq_cron *c, GTimeZone *tz, int64_t day, int64_t after, int64_t *best)
{
    int64_t base = day * DAY;
    int i1 = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, base - DAY);
    int i2 = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, base + 2 * DAY);
    int omin = INT_MAX, omax = INT_MIN;
    for (int i = i1; i <= i2; i++) {
        int o = g_time_zone_get_offset(tz, i);
        if (o < omin) omin = o;
        if (o > omax) omax = o;
    }
    /* every instant of this date's slots lies in [base - omax, base + LAST_SLOT - omin] */
    if (base + LAST_SLOT - omin <= after || base - omax >= *best) return;
    if (i1 == i2) {     /* one offset all around: slot L is instant L - omin */
        int64_t t = after + omin + 1 - base;
        int s = first_slot(c, t <= 0 ? 0 : (int)((t + 59) / 60));
        if (s >= 0 && base + s * 60 - omin < *best) *best = base + s * 60 - omin;
        return;
    }
    for (int s = first_slot(c, 0); s >= 0; s = s < 1439 ? first_slot(c, s + 1) : -1) {
        int64_t L = base + s * 60, u[2];
        if (L - omin <= after) continue;
        if (L - omax >= *best) return;
        int oa, n = instants(tz, L, u, &oa);
        if (n == 0) {                           /* nonexistent */
            if (c->every_hour) continue;        /* real time jumped over it */
            u[n++] = L - oa;                    /* pushed forward by the gap */
        } else if (n == 2 && !c->every_hour) {  /* ambiguous: the earlier only */
            if (u[1] < u[0]) u[0] = u[1];
            n = 1;
        }
        for (int i = 0; i < n; i++)
            if (u[i] > after && u[i] < *best) *best = u[i];
    }
}

#define MIN_AFTER (INT64_C(-719162) * DAY)             /* 0001-01-01T00:00:00Z */
#define MAX_AFTER (INT64_C(2929245) * DAY)             /* 9990-01-01T00:00:00Z */

int aq_cron_next(const aq_cron *c, GTimeZone *tz, int64_t after, int64_t *out)
{
    if (after < MIN_AFTER || after > MAX_AFTER) return AQ_EINVAL;
    /* the first date whose latest slot can still be after `after` */
    int64_t day = floor_div(after - LAST_SLOT - MAX_OFFSET, DAY);
    int64_t end = floor_div(after, DAY) + HORIZON_DAYS;
    int64_t y, best = INT64_MAX;
    int m, d, wd = weekday(day);
    civil_from_days(day, &y, &m, &d);
    while (day <= end) {
        if (best != INT64_MAX && day * DAY - MAX_OFFSET >= best) break;
        int dim = days_in_month(y, m), step = 1;
        if (!(c->months >> m & 1)) {
            step = dim - d + 1;         /* on to the 1st of the next month */
        } else {
            bool dom = c->mdays >> d & 1, dow = c->wdays >> wd & 1;
            if (c->days_or ? dom || dow : dom && dow) eval_day(c, tz, day, after, &best);
        }
        day += step;
        wd = (wd + step) % 7;
        d += step;
        if (d > dim) {
            d = 1;
            if (++m > 12) { m = 1; y++; }
        }
    }
    if (best == INT64_MAX) return AQ_ENOTFOUND;
    *out = best;
    return 0;
}
