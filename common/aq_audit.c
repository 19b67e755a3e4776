/* aq_audit.c — writing the audit log from blocking code (see aq_audit.h). */
#include "aq_audit.h"
#include "aq_db.h"
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

int aq_audit_write(PGconn *db, int64_t actor_id, const char *actor, const char *channel, const char *action,
                   const char *target, const char *details_json)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)actor_id);
    const char *p[] = {actor_id > 0 ? id : NULL, actor, channel, action, target, details_json};
    return aq_db_query(db, "writing the audit log",
                       "SELECT " AQ_AUDIT_CALL("$1::bigint", "$2", "$3", "$4", "$5", "$6::jsonb"), 6, p, NULL);
}

void aq_audit_cli_actor(char *buf, size_t len)
{
    struct passwd pw, *found = NULL;
    char tmp[1024];
    if (getpwuid_r(geteuid(), &pw, tmp, sizeof tmp, &found) == 0 && found)
        snprintf(buf, len, "cli:%s", found->pw_name);
    else
        snprintf(buf, len, "cli:uid %ld", (long)geteuid());
}
