/* main.c — bin/agentq, the operator CLI. Each subcommand is a function in the
 * table below; all talk to Postgres with blocking libpq (aq_db.h).
 *
 *   agentq migrate          apply missing migrations (idempotent, concurrent-safe)
 *   agentq config           print the configuration variables and defaults */
#include "aq_config.h"
#include "aq_db.h"
#include "aq_log.h"
#include "aq_migrate.h"
#include <stdio.h>
#include <string.h>

typedef int (*command_fn)(const aq_config *cfg, int argc, char **argv);

static PGconn *connect_or_say(const aq_config *cfg)
{
    char err[512];
    PGconn *db = aq_db_connect(cfg->database_url, err, sizeof err);
    if (!db) fprintf(stderr, "agentq: cannot connect to the database: %s\n", err);
    return db;
}

static int cmd_migrate(const aq_config *cfg, int argc, char **argv)
{
    PGconn *db = connect_or_say(cfg);
    if (!db) return 1;
    char err[1024];
    int n = aq_migrate(db, err, sizeof err);
    PQfinish(db);
    if (n < 0) { fprintf(stderr, "agentq migrate: %s\n", err); return 1; }
    printf(n ? "applied %d migration(s)\n" : "schema up to date\n", n);
    return 0;
}

static int cmd_config(const aq_config *cfg, int argc, char **argv)
{
    printf("| variable | default | meaning |\n|---|---|---|\n");
    aq_config_print_table();
    return 0;
}

static const struct { const char *name; command_fn fn; const char *help; } commands[] = {
    {"migrate", cmd_migrate, "apply missing schema migrations"},
    {"config", cmd_config, "print configuration variables and defaults"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: agentq COMMAND [ARGS]\n");
    for (int i = 0; commands[i].name; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    aq_config cfg;
    char err[256];
    if (aq_config_load(&cfg, err, sizeof err)) { fprintf(stderr, "agentq: %s\n", err); return 2; }
    aq_log_set_level(cfg.log_level);
    for (int i = 0; commands[i].name; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(&cfg, argc - 1, argv + 1);
    fprintf(stderr, "agentq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
