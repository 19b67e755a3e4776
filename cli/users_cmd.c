/* users_cmd.c — `agentq users ...`, the API's users and their tokens:
 *
 *   users add NAME [--operator]   a new user; its token is the last line of stdout
 *   users ls [--json]             every user: id, name, role, created, revoked
 *   users revoke NAME             the user's token stops working at once
 *   users token NAME              a new token (last line of stdout); the old one
 *                                 stops working at once; a revoked user is let
 *                                 in again with the new one
 *
 * "At once": each change sends pg_notify('aq_auth', <old token id>) in its
 * own statement, and every API thread drops that id from its token cache when
 * the notification arrives (api/auth.c), instead of trusting the cache for
 * up to its TTL. Each change and its audit_log row are one statement (one
 * transaction). Tokens are shown once and only their keyed hash is stored
 * (aq_token.h), so AGENTQ_SECRET_KEY must be the API's. */
#include "cli.h"
#include "aq_audit.h"
#include "aq_jobs.h"
#include "aq_token.h"
#include <sodium.h>
#include <string.h>

#define USAGE_ADD "agentq users add NAME [--operator]"
#define USAGE_LS "agentq users ls [--json]"
#define USAGE_REVOKE "agentq users revoke NAME"
#define USAGE_TOKEN "agentq users token NAME"
#define USAGE "agentq users add|ls|revoke|token ...; agentq users --help for each"

int aq_cmd_users(const aq_config *cfg, int argc, char **argv);

/* A fresh token for the API's key: the token (shown once), its id, and its
 * hash as a bytea literal. 0, or 2 after saying the key is unusable. */
typedef struct {
    char token[AQ_TOKEN_LEN + 1], id[AQ_TOKEN_ID_LEN + 1], hexhash[2 * AQ_TOKEN_HASH_LEN + 3];
} new_token;

static int make_token(const aq_config *cfg, new_token *t)
{
    unsigned char key[32], hash[AQ_TOKEN_HASH_LEN];
    char err[256];
    if (aq_secret_key_parse(cfg->secret_key, key, err, sizeof err)) {
        fprintf(stderr, "agentq: %s\n", err);
        return 2;
    }
    aq_token_new(key, t->token, t->id, hash);
    memcpy(t->hexhash, "\\x", 2);
    sodium_bin2hex(t->hexhash + 2, sizeof t->hexhash - 2, hash, sizeof hash);
    sodium_memzero(key, sizeof key);
    return 0;
}

static int check_name(const char *usage, const char *cmd, int npos, const char *name)
{
    if (npos < 1) return aq_cli_bad(usage, "%s needs a NAME", cmd);
    size_t n = strlen(name);
    if (n == 0 || n > 100) return aq_cli_bad(usage, "NAME must be 1 to 100 characters");
    return 0;
}

static const char SQL_ADD[] =
    "WITH u AS (INSERT INTO users (name, role, token_id, token_hash) VALUES ($1, $2, $3, $4::bytea)"
    " RETURNING id)"
    " SELECT id, " AQ_AUDIT_CALL("NULL", "$5", "'" AQ_AUDIT_CLI "'", "'user.add'", "'user:' || $1",
                                 "jsonb_build_object('user_id', id, 'role', $2::text)") " FROM u";

static int users_add(const aq_config *cfg, int argc, char **argv)
{
    const char *op = NULL, *name = NULL;
    const aq_cli_opt opts[] = {{"--operator", true, &op}, {NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_ADD, argc, argv, opts, &name, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = check_name(USAGE_ADD, "users add", npos, name))) return rc;
    new_token t;
    if ((rc = make_token(cfg, &t))) return rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    char actor[128];
    aq_audit_cli_actor(actor, sizeof actor);
    const char *role = op ? "operator" : "user";
    const char *p[] = {name, role, t.id, t.hexhash, actor};
    PGresult *r;
    int ok = !aq_db_query(db, "adding the user", SQL_ADD, 5, p, &r);
    if (ok) {
        printf("created %s %s (id %s); its token, shown only now:\n%s\n", role, name, PQgetvalue(r, 0, 0),
               t.token);
    } else if (!strcmp(aq_db_error_state(), "23505")) {
        fprintf(stderr, "agentq: users add: a user with that name already exists\n");
    }
    PQclear(r);
    PQfinish(db);
    sodium_memzero(&t, sizeof t);
    return ok ? 0 : 1;
}

static const char SQL_LS[] =
    "SELECT id, name, role, " AQ_CLI_TS("created_at") ", " AQ_CLI_TS("disabled_at")
    " FROM users ORDER BY id";
static const char SQL_LS_JSON[] =
    "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'role', role,"
    " 'created_at', created_at, 'revoked_at', disabled_at) ORDER BY id), '[]') FROM users";

static int users_ls(const aq_config *cfg, int argc, char **argv)
{
    const char *json = NULL;
    const aq_cli_opt opts[] = {{"--json", true, &json}, {NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_LS, argc, argv, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    PGresult *r;
    aq_db_query(db, "listing users", json ? SQL_LS_JSON : SQL_LS, 0, NULL, &r);
    PQfinish(db);
    if (!r) return 1;
    static const aq_cli_col cols[] = {
        {"ID", AQ_CLI_NUM, 0},        {"NAME", AQ_CLI_TEXT, 32}, {"ROLE", AQ_CLI_TEXT, 0},
        {"CREATED", AQ_CLI_TEXT, 0}, {"REVOKED", AQ_CLI_TEXT, 0},
    };
    if (json) aq_cli_print_json(r);
    else if (PQntuples(r) == 0) printf("no users\n");
    else aq_cli_table(r, cols, (int)(sizeof cols / sizeof cols[0]));
    PQclear(r);
    return 0;
}

/* Revoke: only a user not revoked yet changes (and is audited). */
static const char SQL_REVOKE[] =
    "WITH old AS (SELECT id, token_id FROM users WHERE name = $1 AND disabled_at IS NULL FOR UPDATE),"
    " u AS (UPDATE users SET disabled_at = now() FROM old WHERE users.id = old.id"
    " RETURNING users.id, old.token_id)"
    " SELECT (SELECT count(*) FROM users WHERE name = $1), (SELECT id FROM u),"
    " (SELECT pg_notify('" AQ_CHANNEL_AUTH "', token_id) FROM u),"
    " (SELECT " AQ_AUDIT_CALL("NULL", "$2", "'" AQ_AUDIT_CLI "'", "'user.revoke'", "'user:' || $1",
                              "jsonb_build_object('user_id', id)") " FROM u)";

/* A new token: the old id is told to the API threads, the new one stored. */
static const char SQL_ROTATE[] =
    "WITH old AS (SELECT id, token_id, disabled_at FROM users WHERE name = $1 FOR UPDATE),"
    " u AS (UPDATE users SET token_id = $2, token_hash = $3::bytea, disabled_at = NULL FROM old"
    " WHERE users.id = old.id RETURNING users.id, old.token_id, old.disabled_at)"
    " SELECT id, pg_notify('" AQ_CHANNEL_AUTH "', token_id),"
    " " AQ_AUDIT_CALL("NULL", "$4", "'" AQ_AUDIT_CLI "'", "'user.token'", "'user:' || $1",
                      "jsonb_build_object('user_id', id, 'was_revoked', disabled_at IS NOT NULL)")
    " FROM u";

static int users_revoke(const aq_config *cfg, int argc, char **argv)
{
    const char *name = NULL;
    const aq_cli_opt opts[] = {{NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_REVOKE, argc, argv, opts, &name, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = check_name(USAGE_REVOKE, "users revoke", npos, name))) return rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    char actor[128];
    aq_audit_cli_actor(actor, sizeof actor);
    const char *p[] = {name, actor};
    PGresult *r;
    aq_db_query(db, "revoking the token", SQL_REVOKE, 2, p, &r);
    PQfinish(db);
    if (!r) return 1;
    rc = 1;
    if (!strcmp(PQgetvalue(r, 0, 0), "0")) aq_cli_fail("no user %s", name);
    else if (PQgetisnull(r, 0, 1)) aq_cli_fail("user %s is already revoked", name);
    else {
        printf("revoked %s: its token no longer works (agentq users token %s makes a new one)\n", name, name);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int users_token(const aq_config *cfg, int argc, char **argv)
{
    const char *name = NULL;
    const aq_cli_opt opts[] = {{NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_TOKEN, argc, argv, opts, &name, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = check_name(USAGE_TOKEN, "users token", npos, name))) return rc;
    new_token t;
    if ((rc = make_token(cfg, &t))) return rc;
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    char actor[128];
    aq_audit_cli_actor(actor, sizeof actor);
    const char *p[] = {name, t.id, t.hexhash, actor};
    PGresult *r;
    aq_db_query(db, "replacing the token", SQL_ROTATE, 4, p, &r);
    PQfinish(db);
    rc = 1;
    if (r && PQntuples(r) == 0) {
        aq_cli_fail("no user %s", name);
    } else if (r) {
        printf("new token for %s (the old one no longer works), shown only now:\n%s\n", name, t.token);
        rc = 0;
    }
    PQclear(r);
    sodium_memzero(&t, sizeof t);
    return rc;
}

int aq_cmd_users(const aq_config *cfg, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const aq_config *, int, char **);
    } subs[] = {
        {"add", users_add}, {"ls", users_ls}, {"revoke", users_revoke}, {"token", users_token},
    };
    if (argc < 2) return aq_cli_bad(USAGE, "users needs a command: add, ls, revoke or token");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(cfg, argc - 2, argv + 2);
    return aq_cli_bad(USAGE, "unknown users command '%s'", argv[1]);
}
