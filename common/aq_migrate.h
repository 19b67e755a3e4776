/* aq_migrate.h — applies the numbered migrations of sql/ (embedded at build
 * time by sql/embed.sh) that a database lacks, recording each in
 * schema_migrations. Safe to run twice or from many hosts at once: the whole
 * run holds a transaction-scoped advisory lock. */
#ifndef AQ_MIGRATE_H
#define AQ_MIGRATE_H
#include <libpq-fe.h>
#include <stddef.h>

typedef struct aq_migration { const char *name, *sql; } aq_migration;
extern const aq_migration aq_migrations[];   /* ends with a {0,0} row */

/* Returns the number of migrations applied (0 when up to date) or a negative
 * AQ_E* with the reason in err. */
int aq_migrate(PGconn *db, char *err, size_t errlen);

#endif
