/* cron_cmd.c — `agentq cron next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]`:
 * the next N fire times of a cron expression (aq_cron.h) after --from, as ISO
 * 8601 UTC, one per line. Defaults: --tz UTC, --from now, --count 5 (at most
 * 1000). --from takes 2026-03-29T00:00:00Z, an offset (+01:00), or no zone
 * (then it is a wall time in --tz). Needs no database. Bad input: one line on
 * stderr starting "agentq: ", nothing on stdout, exit status 2. */
#include "aq_alloc.h"
#include "aq_config.h"
#include "aq_cron.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USAGE "agentq cron next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N] [--json]"
#define MAX_COUNT 1000

int aq_cmd_cron(const aq_config *cfg, int argc, char **argv);

static bool take_digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*pp)[i];
        if (ch < '0' || ch > '9') return false;
        v = v * 10 + (ch - '0');
    }
    *pp += n;
    *out = v;
    return true;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.frac]][Z|(+|-)HH[:]MM|(+|-)HH]]; a time without
 * a zone is a wall time in tz. Fractions of a second are dropped (fire times
 * are whole minutes, so "strictly after" is unchanged). */
static int parse_from(const char *s, GTimeZone *tz, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
    bool zoned = false;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi)) return -1;
        if (*p == ':') {
            p++;
            if (!take_digits(&p, 2, &sec)) return -1;
            if (*p == '.' || *p == ',') {
                if (*++p < '0' || *p > '9') return -1;
                while (*p >= '0' && *p <= '9') p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
            zoned = true;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!take_digits(&p, 2, &oh)) return -1;
            if (*p == ':') p++;
            if (*p && !take_digits(&p, 2, &om)) return -1;
            if (oh > 23 || om > 59) return -1;
            off = sign * (oh * 3600 + om * 60);
            zoned = true;
        }
    }
    if (*p || y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm);     /* calendar arithmetic only; no TZ involved */
    if (tm.tm_mday != d || tm.tm_mon != mo - 1) return -1;     /* 2026-02-30 */
    *out = zoned ? t - off : aq_tz_local_to_utc(tz, t);
    return 0;
}

/* The one line bad input gets; returns the exit status 2. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "agentq: cron next: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int aq_cmd_cron(const aq_config *cfg, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "next")) {
        fprintf(stderr, "agentq: usage: " USAGE "\n");
        return 2;
    }
    const char *expr = NULL, *zone = "UTC", *from = NULL, *count_s = "5";
    int json = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], **dst = NULL;
        size_t n = 0;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strncmp(a, "--tz", n = 4)) dst = &zone;
        else if (!strncmp(a, "--from", n = 6)) dst = &from;
        else if (!strncmp(a, "--count", n = 7)) dst = &count_s;
        if (dst && a[n] == '=') {
            *dst = a + n + 1;
        } else if (dst && !a[n]) {
            if (++i == argc) return bad("%s needs a value", a);
            *dst = argv[i];
        } else if (a[0] == '-' && a[1] == '-') {
            return bad("unknown option '%s' (usage: " USAGE ")", a);
        } else if (expr) {
            return bad("unexpected argument '%s' (quote the expression: " USAGE ")", a);
        } else {
            expr = a;
        }
    }
    if (!expr) return bad("missing EXPR (usage: " USAGE ")");
    char *end;
    long count = strtol(count_s, &end, 10);
    if (!*count_s || *end || count < 1 || count > MAX_COUNT)
        return bad("--count must be a whole number from 1 to 1000, not '%s'", count_s);
    char err[256];
    aq_cron *c = aq_cron_parse(expr, err, sizeof err);
    if (!c) return bad("%s", err);
    GTimeZone *tz = aq_tz_open(zone, err, sizeof err);
    if (!tz) {
        aq_cron_free(c);
        return bad("%s", err);
    }
    int rc = 2;
    int64_t t = (int64_t)time(NULL), *times = NULL;
    if (from && parse_from(from, tz, &t)) {
        bad("--from '%s' is not an ISO 8601 time such as 2026-03-29T00:00:00Z", from);
        goto done;
    }
    times = aq_malloc((size_t)count * sizeof *times);
    for (long i = 0; i < count; i++)
        if (aq_cron_next(c, tz, i ? times[i - 1] : t, &times[i])) {
            bad("no further fire time within 8 years (or --from is outside the years 1-9990)");
            goto done;
        }
    for (long i = 0; i < count; i++) {
        struct tm tm;
        time_t s = (time_t)times[i];
        gmtime_r(&s, &tm);
        printf(json ? "%s\"%04d-%02d-%02dT%02d:%02d:%02dZ\"" : "%s%04d-%02d-%02dT%02d:%02d:%02dZ\n",
               json ? (i ? ", " : "[") : "", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
               tm.tm_sec);
    }
    if (json) printf("]\n");   /* --json: one array of the same times */
    rc = 0;
done:
    free(times);
    g_time_zone_unref(tz);
    aq_cron_free(c);
    return rc;
}
