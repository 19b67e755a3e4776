/* dbpool.h — the handler steps' database connections: a fixed set
 * (AGENTQ_HANDLER_DB_CONNECTIONS), connected on first use and kept. A step
 * borrows one on its first aq_ctx_db and gives it back when it ends (after
 * rolling back a transaction the step left open: a handler bug, logged), so
 * no connection is held while a job awaits an HTTP response. Handler threads
 * only (a borrow may wait for a connection to come back). */
#ifndef AQ_DBPOOL_H
#define AQ_DBPOOL_H
#include <libpq-fe.h>
#include <stdint.h>

typedef struct aq_dbpool aq_dbpool;

aq_dbpool *aq_dbpool_create(const char *conninfo, int size);
/* A connection in good state, waiting while all are lent; NULL when the
 * database is unreachable (err says why). */
PGconn *aq_dbpool_borrow(aq_dbpool *p, char *err, size_t errlen);
/* Give db back; job_id names the job in the log line if it was left in a transaction. */
void aq_dbpool_return(aq_dbpool *p, PGconn *db, int64_t job_id);
/* Connections open now (lent or idle). */
int aq_dbpool_open(aq_dbpool *p);
/* Close every idle connection and free the pool (none may be lent). NULL: no-op. */
void aq_dbpool_destroy(aq_dbpool *p);

#endif
