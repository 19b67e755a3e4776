/* aq_db.c — blocking libpq helpers (see aq_db.h). */
#include "aq_db.h"
#include "aq_log.h"
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

PGconn *aq_db_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *db = PQconnectdb(conninfo ? conninfo : "");
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

PGresult *aq_db_exec(PGconn *db, const char *sql, int n, const char *const *params)
{
    return PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
}

int aq_db_ok(PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return 1;
    const char *msg = PQresultErrorMessage(res);
    aq_error("db", "%s: %s", what, msg && *msg ? msg : PQresStatus(st));
    return 0;
}
