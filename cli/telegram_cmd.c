/* telegram_cmd.c — `agentq telegram poll [--once] [--timeout S]`: Telegram
 * in for machines without a public URL. Long-polls the Bot API's getUpdates
 * and stores each update as a telegram_update job, exactly as the webhook
 * does (same idempotency key, 'telegram:<update_id>', so an update seen by
 * both, or twice, is one job). Telegram forgets an update once a later
 * getUpdates asks past it (offset), which happens only after the insert has
 * committed: an update is never dropped. getUpdates and a webhook exclude
 * each other at Telegram (409): delete the webhook to poll.
 * --once: one call without waiting (scripts, tests). Stops on SIGINT/SIGTERM
 * after the poll in progress (at most --timeout seconds, default 20). */
#include "aq_config.h"
#include "aq_db.h"
#include "aq_http.h"
#include "aq_time.h"
#include "telegram_api.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Store the updates; the next offset, or -1 on a database error. */
static long long store(PGconn *db, const cJSON *updates, long long offset, int *stored)
{
    const cJSON *u;
    cJSON_ArrayForEach(u, updates) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(u, "update_id");
        if (!cJSON_IsNumber(id)) { fprintf(stderr, "agentq: an update without update_id: skipped\n"); continue; }
        char *json = cJSON_PrintUnformatted(u);
        char key[48];
        snprintf(key, sizeof key, "telegram:%lld", (long long)id->valuedouble);
        const char *p[] = {json, key};
        PGresult *r = aq_db_exec(db, "INSERT INTO jobs (job_type, input, priority, idempotency_key)"
                                     " VALUES ('telegram_update', $1::jsonb, -5, $2)"
                                     " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING", 2, p);
        cJSON_free(json);
        int ok = aq_db_ok(r, "storing an update");
        if (ok) *stored += atoi(PQcmdTuples(r));
        PQclear(r);
        if (!ok) return -1;
        if ((long long)id->valuedouble >= offset) offset = (long long)id->valuedouble + 1;
    }
    return offset;
}

int aq_cmd_telegram(const aq_config *cfg, int argc, char **argv)
{
    int once = 0;
    long timeout = 20;
    if (argc < 2 || strcmp(argv[1], "poll")) goto usage;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--once")) once = 1;
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *end;
            timeout = strtol(argv[++i], &end, 10);
            if (*end || timeout < 0 || timeout > 50) { fprintf(stderr, "agentq: --timeout: seconds, 0 to 50\n"); return 2; }
        } else goto usage;
    }
    if (!cfg->telegram_bot_token[0]) { fprintf(stderr, "agentq: TELEGRAM_BOT_TOKEN is not set\n"); return 2; }
    char err[512];
    PGconn *db = aq_db_connect(cfg->database_url, err, sizeof err);
    if (!db) { fprintf(stderr, "agentq: cannot connect to the database: %s\n", err); return 1; }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    long long offset = 0;
    long backoff_ms = 1000;
    int rc = 0, total = 0;
    while (!stop) {
        aq_tg_result res;
        aq_tg_get_updates(cfg, offset, once ? 0 : (int)timeout, &res);
        if (res.status == AQ_TG_OK) {
            int stored = 0;
            long long next = store(db, res.result, offset, &stored);
            aq_tg_result_dispose(&res);
            total += stored;
            if (next < 0) {   /* not stored: ask again from the same offset once the database is back */
                PQreset(db);
                aq_sleep_ms(backoff_ms);
                if (once) { rc = 1; break; }
                continue;
            }
            offset = next;
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
    printf("%d update(s) stored\n", total);
    return rc;
usage:
    fprintf(stderr, "usage: agentq telegram poll [--once] [--timeout SECONDS]\n");
    return 2;
}
