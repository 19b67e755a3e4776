/* main.c — bin/agentq, the operator CLI. Each subcommand is a function in the
 * table below; all talk to Postgres with blocking libpq (aq_db.h).
 *
 *   agentq migrate          apply missing migrations (idempotent, concurrent-safe)
 *   agentq config           print the configuration variables and defaults
 *   agentq --version        the CLI's version and the schema (last migration) it carries
 *   agentq users add NAME [--operator] | users ls [--json] | users revoke NAME | users token NAME
 *                           users and their tokens (users_cmd.c); a new token is
 *                           printed once, as the last line
 *   agentq cron next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]
 *                           the next fire times of a cron expression (cron_cmd.c; no database)
 *   agentq telegram poll [--once] [--timeout S]
 *                           Telegram updates by long polling, stored as jobs (telegram_cmd.c)
 *   agentq telegram link NAME [--json]
 *                           a link code for user NAME ("/start CODE" to the bot)
 *   agentq jobs ls [--status S] [--type T] [--queue Q] [--user ID] [--limit N] [--json]
 *   agentq jobs show ID [--json]
 *   agentq jobs retry ID | agentq jobs retry --failed [--type T]
 *   agentq jobs cancel ID   list, inspect, re-queue and cancel jobs (jobs_cmd.c)
 *   agentq stats [--json]   counts by type and status, throughput, oldest queued, workers
 *   agentq workers [--json] the live workers
 *   agentq schedules ls [--user ID] [--json]
 *                           the agent schedules
 *   agentq prune --older-than DURATION [--failed] [--dry-run] [--json]
 *                           delete old finished jobs in batches (stats .. prune: ops_cmd.c)
 *   agentq audit ls [filters] [--json]
 *                           the audit log (audit_cmd.c)
 *
 * With DATABASE_URL unset, ./.agentq.env (written by `make run`) supplies it
 * (cli_env.c). *
 *
 * `agentq COMMAND ... --help` (or -h) prints that command's usage on stdout
 * and exits 0 without doing anything else. Human tables by default, one JSON
 * document with --json. Exit status 0 done,
 * 1 not found / refused / database error, 2 bad usage; errors are one line on
 * stderr starting "agentq: " (cli.h). */
#include "cli.h"
#include "aq_config.h"
#include "aq_db.h"
#include "aq_log.h"
#include "aq_migrate.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

typedef int (*command_fn)(const aq_config *cfg, int argc, char **argv);

int aq_cmd_cron(const aq_config *cfg, int argc, char **argv);     /* cron_cmd.c */
int aq_cmd_telegram(const aq_config *cfg, int argc, char **argv); /* telegram_cmd.c */
int aq_cmd_jobs(const aq_config *cfg, int argc, char **argv);      /* jobs_cmd.c */
int aq_cmd_stats(const aq_config *cfg, int argc, char **argv);     /* ops_cmd.c */
int aq_cmd_workers(const aq_config *cfg, int argc, char **argv);   /* ops_cmd.c */
int aq_cmd_schedules(const aq_config *cfg, int argc, char **argv); /* ops_cmd.c */
int aq_cmd_prune(const aq_config *cfg, int argc, char **argv);     /* ops_cmd.c */
int aq_cmd_users(const aq_config *cfg, int argc, char **argv);     /* users_cmd.c */
int aq_cmd_audit(const aq_config *cfg, int argc, char **argv);     /* audit_cmd.c */
int aq_cli_load_env_file(void);                                    /* cli_env.c */

/* What `agentq --version` says; the schema it carries is the last migration. */
#define AQ_VERSION "0.15.0"

static PGconn *connect_or_say(const aq_config *cfg)
{
    char err[512];
    PGconn *db = aq_db_connect(cfg->database_url, err, sizeof err);
    if (!db) fprintf(stderr, "agentq: cannot connect to the database: %s\n", err);
    return db;
}

/* A command that takes no arguments: 0, or 2 after the usage error. */
static int no_args(const char *synopsis, int argc, char **argv)
{
    if (argc < 2) return 0;
    fprintf(stderr, "agentq: unexpected argument '%s' (usage: %s)\n", argv[1], synopsis);
    return 2;
}

static int cmd_migrate(const aq_config *cfg, int argc, char **argv)
{
    if (no_args("agentq migrate", argc, argv)) return 2;
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
    if (no_args("agentq config", argc, argv)) return 2;
    printf("| variable | default | meaning |\n|---|---|---|\n");
    aq_config_print_table();
    return 0;
}

/* The commands: name, function, synopsis (one or more "agentq ..." lines)
 * and what it does. `agentq COMMAND ... --help` (or -h, anywhere after the
 * command) prints the row's synopsis on stdout and exits 0 before anything
 * runs: main() looks for it before it loads the configuration or calls the
 * command, so no command can act on it (create a user named "--help", apply
 * migrations). */
static const struct {
    const char *name;
    command_fn fn;
    const char *synopsis;
    const char *help;
} commands[] = {
    {"migrate", cmd_migrate, "agentq migrate", "apply missing schema migrations"},
    {"config", cmd_config, "agentq config", "print configuration variables and defaults"},
    {"users", aq_cmd_users,
     "agentq users add NAME [--operator]\n"
     "agentq users ls [--json]\n"
     "agentq users revoke NAME\n"
     "agentq users token NAME",
     "create a user (its token is the last line), list users, revoke a token, replace a token"},
    {"cron", aq_cmd_cron, "agentq cron next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N] [--json]",
     "the next fire times of a cron expression"},
    {"telegram", aq_cmd_telegram,
     "agentq telegram poll [--once] [--timeout S]\n"
     "agentq telegram link NAME [--json]",
     "store Telegram updates by long polling; print a code that links a Telegram chat to user NAME"},
    {"jobs", aq_cmd_jobs,
     "agentq jobs ls [--status S] [--type T] [--queue Q] [--user ID] [--limit N] [--json]\n"
     "agentq jobs show ID [--json]\n"
     "agentq jobs retry ID | agentq jobs retry --failed [--type T]\n"
     "agentq jobs cancel ID",
     "list jobs (newest first), show one, re-queue failed ones, cancel"},
    {"stats", aq_cmd_stats, "agentq stats [--json]",
     "jobs by type and status, throughput, oldest queued job, workers"},
    {"workers", aq_cmd_workers, "agentq workers [--json]", "the live workers"},
    {"schedules", aq_cmd_schedules, "agentq schedules ls [--user ID] [--json]", "the agent schedules"},
    {"prune", aq_cmd_prune, "agentq prune --older-than DURATION [--failed] [--dry-run] [--json]",
     "delete old finished jobs (DURATION: 30m, 12h, 7d); --dry-run counts them only"},
    {"audit", aq_cmd_audit,
     "agentq audit ls [--actor NAME] [--action A] [--target T] [--channel C] [--since DURATION]"
     " [--limit N] [--json]",
     "the audit log: approvals, operator actions, schedule changes (newest first)"},
    {NULL, NULL, NULL, NULL},
};

/* Print text with each line after the first indented by indent spaces. */
static void print_indented(FILE *f, const char *text, int indent)
{
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') fprintf(f, "%*s", indent, "");
    }
    fputc('\n', f);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: agentq COMMAND [ARGS]   (agentq COMMAND --help: that command's usage)\n");
    for (int i = 0; commands[i].name; i++) {
        fprintf(f, "  %-10s %s\n             ", commands[i].name, commands[i].help);
        print_indented(f, commands[i].synopsis, 13);
    }
}

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        int last = 0;
        while (aq_migrations[last].name) last++;
        printf("agentq %s (schema %s)\n", AQ_VERSION, last ? aq_migrations[last - 1].name : "none");
        return 0;
    }
    if (argc < 2 || is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int cmd = 0;
    while (commands[cmd].name && strcmp(argv[1], commands[cmd].name)) cmd++;
    if (!commands[cmd].name) {
        fprintf(stderr, "agentq: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (is_help(argv[i])) {
            fputs("usage: ", stdout);
            print_indented(stdout, commands[cmd].synopsis, 7);
            printf("%s\n", commands[cmd].help);
            return 0;
        }
    int rc = aq_cli_load_env_file();
    if (rc) return rc;
    aq_config cfg;
    char err[256];
    if (aq_config_load(&cfg, err, sizeof err)) { fprintf(stderr, "agentq: %s\n", err); return 2; }
    aq_log_set_level(cfg.log_level);
    aq_cli_report_db_errors();
    if (sodium_init() < 0) { fprintf(stderr, "agentq: libsodium failed to initialise\n"); return 1; }
    return commands[cmd].fn(&cfg, argc - 1, argv + 1);
}
