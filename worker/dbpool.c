/* dbpool.c — the handler steps' connection pool (see dbpool.h). */
#include "dbpool.h"
#include "aq_alloc.h"
#include "aq_db.h"
#include "aq_log.h"
#include <pthread.h>
#include <stdlib.h>

struct aq_dbpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *conninfo;
    PGconn **idle;       /* connected, not lent */
    int nidle, size, open;
};

aq_dbpool *aq_dbpool_create(const char *conninfo, int size)
{
    aq_dbpool *p = aq_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->conninfo = aq_strdup(conninfo);
    p->size = size > 0 ? size : 1;
    p->idle = aq_calloc((size_t)p->size, sizeof *p->idle);
    return p;
}

PGconn *aq_dbpool_borrow(aq_dbpool *p, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    while (!p->nidle && p->open >= p->size) pthread_cond_wait(&p->cv, &p->mu);
    PGconn *db = p->nidle ? p->idle[--p->nidle] : NULL;
    if (!db) p->open++;   /* a slot for a new connection, made outside the lock */
    pthread_mutex_unlock(&p->mu);
    if (db && !aq_db_usable(db)) PQreset(db);   /* e.g. closed by a database restart while idle */
    if (db && PQstatus(db) == CONNECTION_OK) return db;
    if (db) PQfinish(db);
    db = aq_db_connect(p->conninfo, err, errlen);
    if (!db) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return db;
}

void aq_dbpool_return(aq_dbpool *p, PGconn *db, int64_t job_id)
{
    if (!db) return;
    PGTransactionStatusType ts = PQtransactionStatus(db);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
        aq_log(AQ_LOG_ERROR, "dispatch", job_id,
               "a handler step ended inside a transaction: rolled back (handler bug)");
        aq_db_query(db, "rolling back what a step left open", "ROLLBACK", 0, NULL, NULL);
    }
    pthread_mutex_lock(&p->mu);
    if (PQstatus(db) == CONNECTION_OK && PQtransactionStatus(db) == PQTRANS_IDLE) {
        p->idle[p->nidle++] = db;
    } else {
        PQfinish(db);
        p->open--;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int aq_dbpool_open(aq_dbpool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->open;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void aq_dbpool_destroy(aq_dbpool *p)
{
    if (!p) return;
    for (int i = 0; i < p->nidle; i++) PQfinish(p->idle[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->idle);
    free(p->conninfo);
    free(p);
}
