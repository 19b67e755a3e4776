/* aq_db.c — blocking libpq helpers (see aq_db.h). */
#include "aq_db.h"
#include "aq_error.h"
#include "aq_log.h"
#include <poll.h>
#include <stdio.h>
#include <string.h>

static void on_notice(void *arg, const PGresult *res)
{
    const char *msg = PQresultErrorMessage(res);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
    aq_log(AQ_LOG_DEBUG, "pg", 0, "%s", buf);
}

void aq_db_route_notices(PGconn *db) { PQsetNoticeReceiver(db, on_notice, NULL); }

/* Dead peers: TCP keepalives on an idle connection (the first probe after
 * 30 s, then every 10 s, 3 unanswered end it) and a 60 s limit on data sent
 * but not acknowledged, so a database host lost without a reset (power, a
 * partition) errors each connection within about a minute and the
 * reconnects begin, instead of after the kernel's defaults: 2 hours of
 * idleness before the first keepalive, ~15 minutes of retransmissions. A
 * libpq parameter in DATABASE_URL overrides each (dbname, expanded from the
 * URL, comes after them); Unix sockets ignore them. */
static const char *const DEFAULT_KEYS[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                           "keepalives_count", "tcp_user_timeout"};
static const char *const DEFAULT_VALUES[] = {"1", "30", "10", "3", "60000"};
#define NDEFAULTS (sizeof DEFAULT_KEYS / sizeof DEFAULT_KEYS[0])

void aq_db_params(const char *conninfo, const char *keys[AQ_DB_PARAMS_MAX], const char *values[AQ_DB_PARAMS_MAX])
{
    size_t n = 0;
    for (; n < NDEFAULTS; n++) {
        keys[n] = DEFAULT_KEYS[n];
        values[n] = DEFAULT_VALUES[n];
    }
    keys[n] = "dbname";
    values[n++] = conninfo ? conninfo : "";
    keys[n] = values[n] = NULL;
}

PGconn *aq_db_connect(const char *conninfo, char *err, size_t errlen)
{
    const char *keys[AQ_DB_PARAMS_MAX], *values[AQ_DB_PARAMS_MAX];
    aq_db_params(conninfo, keys, values);
    PGconn *db = PQconnectdbParams(keys, values, 1);
    if (PQstatus(db) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(db));
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n') err[--n] = '\0';
        PQfinish(db);
        return NULL;
    }
    aq_db_route_notices(db);
    return db;
}

static void log_error(const char *name, const char *msg, const char *sqlstate)
{
    aq_warn("db", "%s: %s%s%s%s", name, msg, sqlstate ? " (" : "", sqlstate ? sqlstate : "", sqlstate ? ")" : "");
}

static aq_db_error_fn report = log_error;
static __thread char last_msg[512], last_state[6];

const char *aq_db_error_message(void) { return last_msg; }
const char *aq_db_error_state(void) { return last_state; }

int aq_db_usable(PGconn *db)
{
    if (PQstatus(db) != CONNECTION_OK) return 0;
    /* libpq reads an idle connection's termination notice as a mere notice
     * and still says CONNECTION_OK, so ask the socket: an idle connection
     * (no LISTEN) has nothing to read, and anything there is the server's
     * goodbye or its close */
    struct pollfd p = {.fd = PQsocket(db), .events = POLLIN};
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

void aq_db_on_error(aq_db_error_fn fn) { report = fn ? fn : log_error; }

int aq_db_query(PGconn *db, const char *name, const char *sql, int n, const char *const *params,
                PGresult **out)
{
    if (out) *out = NULL;
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out) *out = r; else PQclear(r);
        return 0;
    }
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg || !*msg) msg = PQerrorMessage(db);
    if (!msg || !*msg) msg = PQresStatus(st);
    snprintf(last_msg, sizeof last_msg, "%.*s", (int)strcspn(msg, "\n"), msg);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(last_state, sizeof last_state, "%s", state ? state : "");
    report(name, last_msg, state);
    int rc = PQstatus(db) == CONNECTION_OK ? AQ_EDB : AQ_EUNAVAIL;
    PQclear(r);
    return rc;
}
