/* cli.h — what the operator commands (jobs_cmd.c, ops_cmd.c) share: option
 * parsing with the CLI's one-line errors, the database connection, running a
 * statement, and the human output (aligned plain-text tables, UTC times to
 * the second, long text cut with "…"). Machine output (--json) is one JSON
 * document built by Postgres and printed as it came.
 *
 * Exit statuses, everywhere: 0 done, 1 not found / refused / database error,
 * 2 bad usage. Every error is one line on stderr starting "agentq: ". */
#ifndef AQ_CLI_H
#define AQ_CLI_H
#include "aq_config.h"
#include "aq_db.h"
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/* A timestamptz column as UTC ISO 8601 to the second, for human tables. */
#define AQ_CLI_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* One option a command accepts. flag: takes no value (*value becomes "1");
 * otherwise "--name V" or "--name=V". */
typedef struct aq_cli_opt {
    const char *name;
    bool flag;
    const char **value;
} aq_cli_opt;

/* Parse args[0..argc) against opts (ended by a row whose name is NULL).
 * Arguments not starting with '-' are positional; up to maxpos of them go to
 * pos, their count to *npos. "--help"/"-h" prints "usage: USAGE" on stdout.
 * Returns 0 when parsed; 2 after printing the one-line error (unknown option,
 * missing value, too many arguments); -1 after printing help (the command
 * then exits 0). usage is the command's synopsis, "agentq jobs ls [...]". */
int aq_cli_args(const char *usage, int argc, char **argv, const aq_cli_opt *opts, const char **pos,
                int maxpos, int *npos);
/* Print "agentq: MESSAGE (usage: USAGE)" on stderr; returns 2. */
int aq_cli_bad(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "agentq: MESSAGE" on stderr; returns 1. */
int aq_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s as a positive bigint id (digits only, no sign or spaces). */
bool aq_cli_parse_id(const char *s, long long *out);
/* s as a whole number from lo to hi. */
bool aq_cli_parse_int(const char *s, long lo, long hi, long *out);
/* s as DURATION: a positive whole number and one unit, s/m/h/d/w ("7d",
 * "12h", "30m"), at most 100 years. */
bool aq_cli_parse_duration(const char *s, long long *seconds);

/* Connect to cfg->database_url with the session in UTC. NULL after printing
 * "agentq: cannot connect ...". The caller PQfinish()es the connection. */
PGconn *aq_cli_connect(const aq_config *cfg);
/* Make a failed aq_db_query (common/aq_db.h, the CLI's one way to run a
 * statement) print "agentq: WHAT: <the server's error>" for the user instead
 * of a JSON log line. main() calls it first. */
void aq_cli_report_db_errors(void);
/* BEGIN, COMMIT, ROLLBACK on db: 0, or 1 after the error was printed
 * (rollback: nothing to report). */
int aq_cli_begin(PGconn *db);
int aq_cli_commit(PGconn *db);
void aq_cli_rollback(PGconn *db);
/* One audit_log row for this run (channel cli, actor "cli:<login>"), on db,
 * inside the transaction that holds the change. details: a JSON object's
 * text or NULL. 0, or 1 after the error was printed. */
int aq_cli_audit(PGconn *db, const char *action, const char *target, const char *details_json);

/* The first value of res (a JSON document built by the query) and a newline,
 * on stdout. */
void aq_cli_print_json(const PGresult *res);

/* Table columns: text is left-aligned, num right-aligned, secs is a number of
 * seconds shown as a duration ("45s", "3m07s", "2h05m", "4d03h"). max > 0
 * cuts longer cells to max characters, the last being "…". */
typedef enum { AQ_CLI_TEXT, AQ_CLI_NUM, AQ_CLI_SECS } aq_cli_kind;
typedef struct aq_cli_col {
    const char *header;
    aq_cli_kind kind;
    int max;
} aq_cli_col;

/* Print the first ncols columns of res on stdout as a table: a header line,
 * one line per row, columns two spaces apart. NULL shows as "-"; control
 * characters (newlines in an error, say) show as spaces. */
void aq_cli_table(const PGresult *res, const aq_cli_col *cols, int ncols);
/* A duration of secs seconds, as in a table's secs column, into buf. */
void aq_cli_duration(double secs, char *buf, size_t len);
/* Print "LABEL" and then text on the following lines, each indented two
 * spaces; control characters other than newline and tab show as '?'. */
void aq_cli_block(const char *label, const char *text);

#endif
