/* aq_migrate.c — migration runner (see aq_migrate.h).
 *
 * DESIGN: one transaction for the run. It first takes
 * pg_advisory_xact_lock(AQ_MIGRATE_LOCK), so a second concurrent `migrate`
 * waits and then finds everything applied. Each file's SQL runs through the
 * simple query protocol (files hold several statements; none holds user data). */
#include "aq_migrate.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_log.h"
#include <stdio.h>
#include <string.h>

#define AQ_MIGRATE_LOCK "7244917031"  /* arbitrary, fixed */

/* A migration file (n = 0: several statements, the simple protocol) or one
 * parameterised statement (aq_db_query). */
static int step(PGconn *db, const char *sql, int n, const char *const *p, char *err, size_t errlen)
{
    if (n) {
        int rc = aq_db_query(db, "migrate", sql, n, p, NULL);
        if (rc) snprintf(err, errlen, "%s", aq_db_error_message());
        return rc ? AQ_EDB : 0;
    }
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : AQ_EDB;
}

int aq_migrate(PGconn *db, char *err, size_t errlen)
{
    int applied = 0;
    const char *lock[] = {AQ_MIGRATE_LOCK};
    if (step(db, "BEGIN", 0, NULL, err, errlen) ||
        step(db, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock, err, errlen) ||
        step(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
             0, NULL, err, errlen))
        goto fail;
    for (const aq_migration *m = aq_migrations; m->name; m++) {
        const char *p[] = {m->name};
        PGresult *r;
        if (aq_db_query(db, "migrate", "SELECT 1 FROM schema_migrations WHERE name = $1", 1, p, &r)) {
            snprintf(err, errlen, "%s", aq_db_error_message());
            goto fail;
        }
        int have = PQntuples(r) > 0;
        PQclear(r);
        if (have) continue;
        char why[900] = "";
        if (step(db, m->sql, 0, NULL, why, sizeof why)) {
            snprintf(err, errlen, "%s: %s", m->name, why);
            goto fail;
        }
        if (step(db, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, p, err, errlen)) goto fail;
        aq_info("migrate", "applied %s", m->name);
        applied++;
    }
    if (step(db, "COMMIT", 0, NULL, err, errlen)) goto fail;
    return applied;
fail:
    PQclear(PQexec(db, "ROLLBACK"));
    size_t n = strlen(err);
    while (n && err[n - 1] == '\n') err[--n] = '\0';
    return AQ_EDB;
}
