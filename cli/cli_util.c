/* cli_util.c — option parsing, the connection and human output the operator
 * commands share (see cli.h). */
#include "cli.h"
#include "aq_alloc.h"
#include "aq_audit.h"
#include "aq_db.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int aq_cli_bad(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agentq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (usage: %s)\n", usage);
    va_end(ap);
    return 2;
}

int aq_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agentq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int aq_cli_args(const char *usage, int argc, char **argv, const aq_cli_opt *opts, const char **pos,
                int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s\n", usage);
            return -1;
        }
        if (a[0] != '-' || !a[1]) {
            if (*npos == maxpos) return aq_cli_bad(usage, "unexpected argument '%s'", a);
            pos[(*npos)++] = a;
            continue;
        }
        const aq_cli_opt *o = opts;
        size_t n = 0;
        for (; o && o->name; o++) {
            n = strlen(o->name);
            if (!strncmp(a, o->name, n) && (a[n] == '\0' || a[n] == '=')) break;
        }
        if (!o || !o->name) return aq_cli_bad(usage, "unknown option '%s'", a);
        if (o->flag) {
            if (a[n] == '=') return aq_cli_bad(usage, "%s takes no value", o->name);
            *o->value = "1";
        } else if (a[n] == '=') {
            *o->value = a + n + 1;
        } else {
            if (i + 1 == argc) return aq_cli_bad(usage, "%s needs a value", o->name);
            *o->value = argv[++i];
        }
    }
    return 0;
}

bool aq_cli_parse_id(const char *s, long long *out)
{
    if (!s || *s < '1' || *s > '9') return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) return false;
    *out = v;
    return true;
}

bool aq_cli_parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool aq_cli_parse_duration(const char *s, long long *seconds)
{
    static const struct { char unit; long long secs; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 12) return false;
    long long v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (s[n - 1] != units[u].unit) continue;
        if (v < 1 || v > 100LL * 366 * 86400 / units[u].secs) return false;
        *seconds = v * units[u].secs;
        return true;
    }
    return false;
}

PGconn *aq_cli_connect(const aq_config *cfg)
{
    char err[512];
    PGconn *db = aq_db_connect(cfg->database_url, err, sizeof err);
    if (!db) {
        for (char *p = err; *p; p++)   /* libpq may say it in several lines */
            if (*p == '\n') *p = ' ';
        aq_cli_fail("cannot connect to the database: %s", err);
        return NULL;
    }
    PGresult *r;
    aq_db_query(db, "setting up the session",
                "SELECT set_config('TimeZone', 'UTC', false), set_config('application_name', 'agentq', false)",
                0, NULL, &r);
    if (!r) {
        PQfinish(db);
        return NULL;
    }
    PQclear(r);
    return db;
}

/* How the CLI reports a failed aq_db_query: "agentq: WHAT: <the server's error>". */
static void report_db_error(const char *what, const char *msg, const char *state)
{
    aq_cli_fail("%s: %s%s", what, msg,   /* 42P01: undefined_table */
                state && !strcmp(state, "42P01") ? " (has `agentq migrate` run?)" : "");
}

void aq_cli_report_db_errors(void) { aq_db_on_error(report_db_error); }

int aq_cli_begin(PGconn *db) { return aq_db_query(db, "starting a transaction", "BEGIN", 0, NULL, NULL) ? 1 : 0; }
int aq_cli_commit(PGconn *db) { return aq_db_query(db, "committing", "COMMIT", 0, NULL, NULL) ? 1 : 0; }

void aq_cli_rollback(PGconn *db)
{
    PGresult *r = PQexec(db, "ROLLBACK");
    PQclear(r);
}

int aq_cli_audit(PGconn *db, const char *action, const char *target, const char *details_json)
{
    char actor[128];
    aq_audit_cli_actor(actor, sizeof actor);
    return aq_audit_write(db, 0, actor, AQ_AUDIT_CLI, action, target, details_json) ? 1 : 0;
}

void aq_cli_print_json(const PGresult *res)
{
    printf("%s\n", PQntuples(res) && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "null");
}

void aq_cli_duration(double secs, char *buf, size_t len)
{
    const char *sign = secs < 0 ? "-" : "";
    long long s = (long long)(secs < 0 ? -secs : secs);
    if (s < 60) snprintf(buf, len, "%s%llds", sign, s);
    else if (s < 3600) snprintf(buf, len, "%s%lldm%02llds", sign, s / 60, s % 60);
    else if (s < 86400) snprintf(buf, len, "%s%lldh%02lldm", sign, s / 3600, s % 3600 / 60);
    else snprintf(buf, len, "%s%lldd%02lldh", sign, s / 86400, s % 86400 / 3600);
}

/* Characters on screen: UTF-8 lead bytes (continuation bytes don't count). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* A cell as shown: NULL "-", durations formatted, control characters as
 * spaces, cut to max characters. Heap string. */
static char *cell(const PGresult *res, int row, int col, const aq_cli_col *c)
{
    if (PQgetisnull(res, row, col)) return aq_strdup("-");
    const char *v = PQgetvalue(res, row, col);
    if (c->kind == AQ_CLI_SECS) {
        char buf[32];
        aq_cli_duration(strtod(v, NULL), buf, sizeof buf);
        return aq_strdup(buf);
    }
    char *s = aq_strdup(v);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    if (c->max > 0 && width(s) > (size_t)c->max) {
        size_t w = 0, i = 0;
        for (; s[i]; i++) {   /* the byte where character number max starts */
            if (((unsigned char)s[i] & 0xC0) != 0x80 && w++ == (size_t)c->max - 1) break;
        }
        s = aq_realloc(s, i + sizeof "…");
        memcpy(s + i, "…", sizeof "…");
    }
    return s;
}

static void pad(size_t n)
{
    while (n--) putchar(' ');
}

void aq_cli_table(const PGresult *res, const aq_cli_col *cols, int ncols)
{
    int rows = PQntuples(res);
    if (ncols > PQnfields(res)) ncols = PQnfields(res);
    char **cells = aq_calloc((size_t)rows * (size_t)ncols + 1, sizeof *cells);
    size_t *w = aq_calloc((size_t)ncols + 1, sizeof *w);
    for (int c = 0; c < ncols; c++) w[c] = width(cols[c].header);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ncols; c++) {
            char *s = cells[r * ncols + c] = cell(res, r, c, &cols[c]);
            size_t sw = width(s);
            if (sw > w[c]) w[c] = sw;
        }
    for (int r = -1; r < rows; r++) {
        for (int c = 0; c < ncols; c++) {
            const char *s = r < 0 ? cols[c].header : cells[r * ncols + c];
            size_t gap = w[c] - width(s);
            if (c) fputs("  ", stdout);
            if (cols[c].kind != AQ_CLI_TEXT) pad(gap);
            fputs(s, stdout);
            if (cols[c].kind == AQ_CLI_TEXT && c + 1 < ncols) pad(gap);
        }
        putchar('\n');
    }
    for (int i = 0; i < rows * ncols; i++) free(cells[i]);
    free(cells);
    free(w);
}

void aq_cli_block(const char *label, const char *text)
{
    printf("%s\n  ", label);
    for (const char *p = text; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\n') fputs(p[1] ? "\n  " : "", stdout);
        else putchar(ch < 0x20 && ch != '\t' ? '?' : ch == 0x7f ? '?' : ch);
    }
    putchar('\n');
}
