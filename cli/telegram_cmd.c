/* telegram_cmd.c — the Telegram commands of bin/agentq:
 *
 * `agentq telegram poll [--once] [--timeout S]`: Telegram in for machines
 * without a public URL. Long-polls the Bot API's getUpdates and stores each
 * update as a telegram_update job, exactly as the webhook does (same check,
 * aq_tg_update_parse; same idempotency key, 'telegram:<update_id>', so an
 * update seen by both, or twice, is one job). The offset to ask from is kept
 * in telegram_poll_offsets, advanced in the transaction that stores the
 * updates, so every run (--once included) moves forward: Telegram forgets an
 * update once a later getUpdates asks past it, which happens only after the
 * insert has committed, so an update is never dropped unless it is malformed
 * (logged on stderr and passed over, as the webhook answers 200 for it).
 * A saved offset unused for 6 days is not trusted: after a week without
 * updates Telegram may number the next one lower (its Update docs). getUpdates
 * and a webhook exclude each other at Telegram (409): delete the webhook to
 * poll. --once: one call without waiting (scripts, tests). Stops on
 * SIGINT/SIGTERM after the poll in progress (at most --timeout seconds,
 * default 20).
 *
 * `agentq telegram link NAME [--json]`: a link code for the user NAME, made
 * like POST /v1/channels/telegram/link makes one (aq_link_code.h); the
 * person sends "/start CODE" to the bot from the chat to link. */
#include "aq_config.h"
#include "aq_db.h"
#include "aq_http.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "aq_link_code.h"
#include "aq_tg_update.h"
#include "aq_time.h"
#include "cli.h"
#include "aq_tg_api.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_POLL "agentq telegram poll [--once] [--timeout SECONDS]"
#define USAGE_LINK "agentq telegram link NAME [--json]"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* The bot's id (the digits before ':' in the token), the key of its saved offset. */
static void bot_id(const char *token, char *out, size_t len)
{
    size_t n = strspn(token, "0123456789");
    if (n == 0 || n >= len || token[n] != ':') { snprintf(out, len, "unknown"); return; }
    memcpy(out, token, n);
    out[n] = '\0';
}

/* The saved offset (0 when none, or unused for 6 days); -1 on a database error. */
static long long load_offset(PGconn *db, const char *bot)
{
    const char *p[] = {bot};
    PGresult *r;
    long long off = -1;
    if (!aq_db_query(db, "reading the poll offset", "SELECT next_offset FROM telegram_poll_offsets WHERE bot_id = $1"
                     " AND updated_at > now() - interval '6 days'", 1, p, &r))
        off = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return off;
}


/* Store the updates and the next offset in one transaction. 0, or -1 on a
 * database error (nothing stored; the same offset is asked again). */
static int store(PGconn *db, const char *bot, const cJSON *updates, int *stored, int *dropped)
{
    int n_stored = 0, n_dropped = 0;
    long long next = -1;
    if (aq_db_query(db, "storing updates", "BEGIN", 0, NULL, NULL)) return -1;
    const cJSON *u;
    cJSON_ArrayForEach(u, updates) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(u, "update_id");
        int has_id = cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble <= (double)AQ_TG_UPDATE_ID_MAX;
        if (has_id && (long long)id->valuedouble >= next) next = (long long)id->valuedouble + 1;
        char *json = aq_json_print(u);
        long long update_id;
        const char *why;
        cJSON *ok = json ? aq_tg_update_parse(json, strlen(json), &update_id, &why) : NULL;
        if (!ok) {
            fprintf(stderr, "agentq: dropped update %lld: %s\n", has_id ? (long long)id->valuedouble : -1LL,
                    json ? why : "not JSON");
            n_dropped++;
            cJSON_free(json);
            continue;
        }
        cJSON_Delete(ok);
        char key[48];
        snprintf(key, sizeof key, AQ_TELEGRAM_KEY_FMT, update_id);
        aq_job_new j = {.job_type = "telegram_update", .input = json, .priority = AQ_PRIORITY_TELEGRAM,
                        .idempotency_key = key};
        int64_t job = 0;
        int rc = aq_jobs_enqueue(db, "storing an update", &j, &job);
        cJSON_free(json);
        if (rc) goto fail;
        n_stored += job != 0;
    }
    if (next >= 0) {   /* not GREATEST: after a quiet week Telegram may number updates lower */
        char off[32];
        snprintf(off, sizeof off, "%lld", next);
        const char *p[] = {bot, off};
        if (aq_db_query(db, "saving the poll offset", "INSERT INTO telegram_poll_offsets (bot_id, next_offset) VALUES ($1, $2)"
                " ON CONFLICT (bot_id) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()", 2, p,
                        NULL))
            goto fail;
    }
    if (aq_db_query(db, "storing updates", "COMMIT", 0, NULL, NULL)) goto fail;
    *stored += n_stored;
    *dropped += n_dropped;
    return 0;
fail:
    aq_db_query(db, "storing updates: rollback", "ROLLBACK", 0, NULL, NULL);
    return -1;
}

static int poll_cmd(const aq_config *cfg, int argc, char **argv)
{
    const char *once_s = NULL, *timeout_s = NULL;
    const aq_cli_opt opts[] = {{"--once", true, &once_s}, {"--timeout", false, &timeout_s}, {NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_POLL, argc, argv, opts, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    int once = once_s != NULL;
    long timeout = 20;
    if (timeout_s && !aq_cli_parse_int(timeout_s, 0, 50, &timeout))
        return aq_cli_bad(USAGE_POLL, "--timeout: seconds, 0 to 50");
    if (!cfg->telegram_bot_token[0]) { fprintf(stderr, "agentq: TELEGRAM_BOT_TOKEN is not set\n"); return 2; }
    char bot[32];
    bot_id(cfg->telegram_bot_token, bot, sizeof bot);
    char err[512];
    PGconn *db = aq_db_connect(cfg->database_url, err, sizeof err);
    if (!db) { fprintf(stderr, "agentq: cannot connect to the database: %s\n", err); return 1; }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    long backoff_ms = 1000;
    int total = 0, dropped = 0;
    rc = 0;
    while (!stop) {
        long long offset = load_offset(db, bot);
        if (offset < 0) {   /* the database is away: wait for it */
            if (once) { rc = 1; break; }
            PQreset(db);
            aq_sleep_ms(backoff_ms);
            if (backoff_ms < 30000) backoff_ms *= 2;
            continue;
        }
        aq_tg_result res;
        aq_tg_get_updates(cfg, offset, once ? 0 : (int)timeout, &res);
        if (res.status == AQ_TG_OK) {
            int failed = store(db, bot, res.result, &total, &dropped);
            aq_tg_result_dispose(&res);
            if (failed) {   /* not stored: ask again from the same offset once the database is back */
                if (once) { rc = 1; break; }
                PQreset(db);
                aq_sleep_ms(backoff_ms);
                if (backoff_ms < 30000) backoff_ms *= 2;
                continue;
            }
            backoff_ms = 1000;
            if (once) break;
            continue;
        }
        fprintf(stderr, "agentq: %s\n", res.error ? res.error : "getUpdates failed");
        int retry = res.status == AQ_TG_RETRY;
        long wait = res.retry_after_ms >= 0 ? res.retry_after_ms : backoff_ms;
        aq_tg_result_dispose(&res);
        if (!retry || once) { rc = 1; break; }
        aq_sleep_ms(wait);
        if (backoff_ms < 30000) backoff_ms *= 2;
    }
    aq_http_thread_cleanup();
    PQfinish(db);
    if (dropped) printf("%d update(s) stored, %d malformed dropped\n", total, dropped);
    else printf("%d update(s) stored\n", total);
    return rc;
}

static int link_cmd(const aq_config *cfg, int argc, char **argv)
{
    const char *json = NULL, *name = NULL;
    const aq_cli_opt opts[] = {{"--json", true, &json}, {NULL, false, NULL}};
    int npos, rc = aq_cli_args(USAGE_LINK, argc, argv, opts, &name, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!npos) return aq_cli_bad(USAGE_LINK, "the user's NAME is required");
    PGconn *db = aq_cli_connect(cfg);
    if (!db) return 1;
    rc = 1;
    PGresult *code_r = NULL;
    const char *np[] = {name};
    PGresult *user_r;
    aq_db_query(db, "finding the user", "SELECT id, disabled_at IS NOT NULL FROM users WHERE name = $1", 1, np,
                &user_r);
    if (!user_r) goto done;
    if (PQntuples(user_r) == 0) { aq_cli_fail("no user named '%s'", name); goto done; }
    if (PQgetvalue(user_r, 0, 1)[0] == 't') { aq_cli_fail("user '%s' is disabled", name); goto done; }
    char code[AQ_LINK_CODE_LEN + 1], minutes[24];
    aq_link_code_new(code);
    snprintf(minutes, sizeof minutes, "%ld", cfg->link_code_minutes);
    const char *p[] = {code, PQgetvalue(user_r, 0, 0), minutes};
    aq_db_query(db, "making the link code", aq_link_code_insert_sql, 3, p, &code_r);
    if (!code_r) goto done;
    if (json) {
        aq_cli_print_json(code_r);
    } else {
        printf("A link code for %s, valid for %ld minute(s) and once. From the Telegram chat to link,"
               " send the bot: /start %s\n%s\n", name, cfg->link_code_minutes, code, code);
    }
    rc = 0;
done:
    PQclear(code_r);
    PQclear(user_r);
    PQfinish(db);
    return rc;
}

int aq_cmd_telegram(const aq_config *cfg, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "poll")) return poll_cmd(cfg, argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "link")) return link_cmd(cfg, argc - 2, argv + 2);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr, "usage: " USAGE_POLL "\n       " USAGE_LINK "\n");
    return help ? 0 : 2;
}
