/* aq_db.h — blocking libpq helpers for the CLI, tests and handler threads
 * (never the worker's or API's loop thread: those use aq_pgloop.h).
 * Every statement with data goes through parameters. */
#ifndef AQ_DB_H
#define AQ_DB_H
#include <libpq-fe.h>
#include <stddef.h>

/* Connect with conninfo; notices go to the JSON log. Returns NULL and writes
 * the reason into err on failure. */
PGconn *aq_db_connect(const char *conninfo, char *err, size_t errlen);
/* Run sql with n text parameters (NULL entries are SQL NULL). Always returns a
 * result the caller PQclear()s; check it with aq_db_ok(). */
PGresult *aq_db_exec(PGconn *db, const char *sql, int n, const char *const *params);
/* True when res is COMMAND_OK or TUPLES_OK; otherwise logs "what: error". */
int aq_db_ok(PGresult *res, const char *what);
/* Route libpq notices (e.g. "terminating connection") into the JSON log. */
void aq_db_route_notices(PGconn *db);

#endif
