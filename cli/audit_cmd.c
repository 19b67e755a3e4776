/* audit_cmd.c — `agentq audit ls`, the audit log (sql/019_audit.sql) newest
 * first:
 *
 *   audit ls [--actor NAME] [--action A] [--target T] [--channel C]
 *            [--since DURATION] [--limit N] [--json]
 *
 * --action matches exactly ("action.approved") or, ending in ".", every
 * action of a kind ("schedule."); --actor is the recorded name (a user's
 * name, or "cli:<login>"); --since is a duration back from now (7d). The
 * --json rows have the same names as GET /v1/audit's items. */
#include "cli.h"
#include "aq_json.h"
#include <string.h>

#define USAGE "agentq audit ls [--actor NAME] [--action A] [--target T] [--channel C] [--since DURATION]" \
              " [--limit N] [--json]"

int aq_cmd_audit(const aq_config *cfg, int argc, char **argv);

#define WHERE \
    " FROM audit_log WHERE ($1::text IS NULL OR actor = $1)" \
    " AND ($2::text IS NULL OR action = $2 OR (right($2, 1) = '.' AND starts_with(action, $2)))" \
    " AND ($3::text IS NULL OR target = $3) AND ($4::text IS NULL OR channel = $4)" \
    " AND ($5::float8 IS NULL OR at > now() - make_interval(secs => $5::float8))" \
    " ORDER BY id DESC LIMIT $6::int"

static const char SQL_LS[] =
    "SELECT id, " AQ_CLI_TS("at") ", actor, channel, action, target, details::text" WHERE;
static const char SQL_LS_JSON[] =
    "SELECT coalesce(json_agg(a ORDER BY a.id DESC), '[]') FROM (SELECT id, at, actor_id, actor, channel,"
    " action, target, details" WHERE ") a";

int aq_cmd_audit(const aq_config *cfg, int argc, char **argv)
{
    if (argc < 2) return aq_cli_bad(USAGE, "audit needs a command: ls");
    if (strcmp(argv[1], "ls")) return aq_cli_bad(USAGE, "unknown audit command '%s'", argv[1]);
    const char *actor = NULL, *action = NULL, *target = NULL, *channel = NULL, *since = NULL, *json = NULL;
    const char *limit_s = "50";
    const aq_cli_opt opts[] = {
        {"--actor", false, &actor},     {"--action", false, &action}, {"--target", false, &target},
        {"--channel", false, &channel}, {"--since", false, &since},   {"--limit", false, &limit_s},
        {"--json", true, &json},        {NULL, false, NULL},
    };
    int npos, rc = aq_cli_args(USAGE, argc - 2, argv + 2, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    long limit;
    long long secs = 0;
    if (!aq_cli_parse_int(limit_s, 1, 1000, &limit))
        return aq_cli_bad(USAGE, "--limit must be a whole number from 1 to 1000, not '%s'", limit_s);
    if (since && !aq_cli_parse_duration(since, &secs))
        return aq_cli_bad(USAGE, "--since must be a duration such as 30m, 12h, 7d or 2w, not '%s'", since);
    const char *texts[] = {actor, action, target, channel};
    for (int i = 0; i < 4; i++)
        if (texts[i] && !aq_utf8_valid(texts[i], strlen(texts[i])))
            return aq_cli_bad(USAGE, "filters must be UTF-8 text");
    char secs_s[32];
    snprintf(secs_s, sizeof secs_s, "%lld", secs);
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    const char *p[] = {actor, action, target, channel, since ? secs_s : NULL, limit_s};
    PGresult *r;
    aq_db_query(db, "reading the audit log", json ? SQL_LS_JSON : SQL_LS, 6, p, &r);
    PQfinish(db);
    if (!r) return 1;
    static const aq_cli_col cols[] = {
        {"ID", AQ_CLI_NUM, 0},       {"AT", AQ_CLI_TEXT, 0},     {"ACTOR", AQ_CLI_TEXT, 24},
        {"CHANNEL", AQ_CLI_TEXT, 0}, {"ACTION", AQ_CLI_TEXT, 0}, {"TARGET", AQ_CLI_TEXT, 24},
        {"DETAILS", AQ_CLI_TEXT, 60},
    };
    if (json) aq_cli_print_json(r);
    else if (PQntuples(r) == 0) printf("no audit entries\n");
    else aq_cli_table(r, cols, (int)(sizeof cols / sizeof cols[0]));
    PQclear(r);
    return 0;
}
