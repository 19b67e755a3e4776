/* aq_audit.h — the audit log (sql/019_audit.sql): one row per change a
 * person made, written in the same transaction as the change.
 *
 * Two ways in, one table and one SQL function (aq_audit) behind both:
 *  - a statement that makes the change calls aq_audit(...) itself (in its
 *    RETURNING list or a CTE): the API's single-statement changes do this,
 *    with AQ_AUDIT_CALL below;
 *  - blocking code (the CLI, a handler's own transaction) calls
 *    aq_audit_write on the connection whose transaction holds the change.
 *
 * Append-only: the table refuses UPDATE, DELETE and TRUNCATE. */
#ifndef AQ_AUDIT_H
#define AQ_AUDIT_H
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Channels (audit_log.channel). */
#define AQ_AUDIT_API "api"
#define AQ_AUDIT_CLI "cli"
#define AQ_AUDIT_TELEGRAM "telegram"
#define AQ_AUDIT_AGENT "agent"
#define AQ_AUDIT_SYSTEM "system"

/* The SQL call, for a statement's RETURNING list or CTE: the six arguments
 * are SQL expressions (actor_id bigint or NULL, actor text or NULL = the
 * user's name, channel, action, target, details jsonb). */
#define AQ_AUDIT_CALL(actor_id, actor, channel, action, target, details) \
    "aq_audit(" actor_id ", " actor ", " channel ", " action ", " target ", " details ")"

/* Write one row on db, inside the caller's transaction (or alone, autocommit).
 * actor_id: the acting user's id, 0 = none (then actor names who, e.g.
 * "cli:root"); actor NULL = the user's name. target may be NULL; details is
 * a JSON object's text or NULL ({}). Returns 0 or a negative AQ_E* (reported
 * through aq_db_query's error hook). Any thread with its own connection. */
int aq_audit_write(PGconn *db, int64_t actor_id, const char *actor, const char *channel, const char *action,
                   const char *target, const char *details_json);

/* "cli:NAME": who runs this process (the login's name, else the uid), into
 * buf, for the CLI's actor. */
void aq_audit_cli_actor(char *buf, size_t len);

#endif
