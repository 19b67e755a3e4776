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
/* The keyword/value arrays (NULL-terminated) every connection is opened
 * with, for PQconnectdbParams / PQconnectStartParams with expand_dbname 1:
 * agentq's defaults (TCP keepalives and a user timeout, aq_db.c), then
 * conninfo as dbname, whose parameters win. */
#define AQ_DB_PARAMS_MAX 8
void aq_db_params(const char *conninfo, const char *keys[AQ_DB_PARAMS_MAX], const char *values[AQ_DB_PARAMS_MAX]);
/* The one way to run a blocking statement: sql with n text parameters (NULL
 * entries are SQL NULL) on db. Returns 0 (COMMAND_OK or TUPLES_OK; with out,
 * *out is the result and the caller PQclear()s it), AQ_EUNAVAIL (the
 * connection is gone) or AQ_EDB (the statement failed). On failure *out is
 * NULL, the failure is reported as "name: message" (see aq_db_on_error), and
 * aq_db_error_message()/aq_db_error_state() hold it until this thread's next
 * failure. Any thread, each with its own connection; never a loop thread. */
int aq_db_query(PGconn *db, const char *name, const char *sql, int n, const char *const *params,
                PGresult **out);
/* Who hears of a failed aq_db_query: by default a warn line in the JSON log
 * (module "db"); the CLI prints it for its user instead. msg is the
 * database's first line, sqlstate may be NULL. Set before threads start. */
/* The first line of this thread's last aq_db_query failure ("" if none). */
const char *aq_db_error_message(void);
/* Its SQLSTATE ("" if none or the connection was lost). */
const char *aq_db_error_state(void);
typedef void (*aq_db_error_fn)(const char *name, const char *msg, const char *sqlstate);
void aq_db_on_error(aq_db_error_fn fn);
/* True when an idle connection (no statement in flight, no LISTEN) can
 * carry a statement. One the server closed while it sat unused (a database
 * restart) still says CONNECTION_OK until a statement fails on it; this
 * looks at the socket without blocking (anything to read on an idle
 * connection is the server's goodbye), so it can be reset before use. */
int aq_db_usable(PGconn *db);
/* Route libpq notices (e.g. "terminating connection") into the JSON log. */
void aq_db_route_notices(PGconn *db);

#endif
