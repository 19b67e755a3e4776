/* aq_config.c — the table of environment variables (see aq_config.h).
 *
 * Three kinds of row: STR (free text), ONE_OF (one of a fixed list of words,
 * checked at load, so a typo such as LLM_PROVIDER=anthropic stops every
 * binary at start instead of failing later or being ignored) and NUM (a
 * whole number within bounds). */
#include "aq_config.h"
#include "aq_error.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *env;
    int is_num;
    size_t offset;
    const char *def;
    long min, max;
    const char *doc;
    const char *const *allowed;   /* ONE_OF rows: the accepted values, NULL-terminated */
} var;

#define STR(f, env, def, doc) {env, 0, offsetof(aq_config, f), def, 0, 0, doc, NULL}
#define ONE_OF(f, env, def, allowed, doc) {env, 0, offsetof(aq_config, f), def, 0, 0, doc, allowed}
#define NUM(f, env, def, lo, hi, doc) {env, 1, offsetof(aq_config, f), def, lo, hi, doc, NULL}

static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error", NULL};
static const char *const LLM_PROVIDERS[] = {"offline", "openai", NULL};

static const var vars[] = {
    STR(database_url, "DATABASE_URL", "", "libpq connection string or URI (empty: libpq defaults; `make run` points it at a project-local cluster)"),
    STR(listen, "AGENTQ_LISTEN", "127.0.0.1:8080", "API listen address"),
    STR(queues, "AGENTQ_QUEUES", "default", "queues a worker claims from, comma-separated (or --queues)"),
    ONE_OF(log_level, "AGENTQ_LOG_LEVEL", "info", LOG_LEVELS, "debug, info, warn or error (anything else: the binaries refuse to start); debug adds the API's access log, a line per request"),
    STR(secret_key, "AGENTQ_SECRET_KEY", "", "32 bytes (64 hex digits or base64) keying token hashes and encrypted secrets; required by the API and `agentq users add` (`make run` makes one)"),
    STR(secret_key_file, "AGENTQ_SECRET_KEY_FILE", "", "a file holding AGENTQ_SECRET_KEY (surrounding whitespace ignored), read at start when AGENTQ_SECRET_KEY is empty: a mounted secret, a systemd credential, `make run`'s .agentq.key"),
    ONE_OF(llm_provider, "LLM_PROVIDER", "offline", LLM_PROVIDERS, "`offline` (built in, not a model; no key or network) or `openai` (any OpenAI-compatible /chat/completions); anything else: the binaries refuse to start"),
    STR(llm_base_url, "LLM_BASE_URL", "https://api.openai.com/v1", "base URL of the OpenAI-compatible API (Ollama: http://127.0.0.1:11434/v1)"),
    STR(llm_api_key, "LLM_API_KEY", "", "bearer key for the LLM API (empty: none sent)"),
    STR(llm_model, "LLM_MODEL", "gpt-4o-mini", "model name sent with each request"),
    NUM(llm_timeout_ms, "LLM_TIMEOUT_MS", "60000", 100, 600000, "timeout of one LLM request"),
    NUM(context_messages, "AGENTQ_CONTEXT_MESSAGES", "20", 1, 1000, "messages of the session the model sees (plus the system prompt)"),
    NUM(agent_max_steps, "AGENTQ_AGENT_MAX_STEPS", "8", 1, 100, "model calls per turn before the turn stops"),
    NUM(agent_max_tool_calls, "AGENTQ_AGENT_MAX_TOOL_CALLS", "16", 1, 1000, "tool calls run from one model reply; the rest are answered with an error and do not run"),
    NUM(action_ttl_hours, "AGENTQ_ACTION_TTL_HOURS", "24", 1, 8760, "how long a tool call awaiting approval can be decided"),
    STR(telegram_bot_token, "TELEGRAM_BOT_TOKEN", "", "Telegram bot token from @BotFather (empty: Telegram replies are not sent; notify jobs to Telegram fail with that reason)"),
    STR(telegram_api_base, "TELEGRAM_API_BASE", "https://api.telegram.org", "Bot API base URL; requests go to BASE/botTOKEN/METHOD"),
    STR(telegram_webhook_secret, "TELEGRAM_WEBHOOK_SECRET", "", "secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (set it with setWebhook's secret_token); empty: the webhook refuses every update"),
    NUM(telegram_timeout_ms, "TELEGRAM_TIMEOUT_MS", "30000", 100, 600000, "timeout of one Bot API request"),
    NUM(link_code_minutes, "AGENTQ_LINK_CODE_MINUTES", "15", 1, 10080, "how long a Telegram link code (/start CODE) stays valid"),
    NUM(schedule_min_interval_s, "AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS", "300", 0, 604800, "the shortest time between two fire times of one schedule: a cron expression that fires more often is refused (API 422, the create_schedule tool an error); 0 = no floor"),
    NUM(user_daily_turns, "AGENTQ_USER_DAILY_TURNS", "0", 0, 1000000, "scheduled agent turns one user's schedules may start per UTC day; beyond it the slot is skipped and noted (last_error, one notification a day); chat turns do not count; 0 = no budget"),
    NUM(schedule_tick_ms, "AGENTQ_SCHEDULE_TICK_MS", "1000", 50, 3600000, "how often each worker looks for due schedules"),
    NUM(concurrency, "AGENTQ_CONCURRENCY", "8", 1, 100000, "jobs in flight at once per worker process (or --concurrency): started and not yet completed, whether a step runs on a handler thread, waits for one, or awaits an HTTP response (which holds no thread and no database connection)"),
    NUM(handler_threads, "AGENTQ_HANDLER_THREADS", "0", 0, 1024, "threads running handler steps per worker process; 0 = 4 per CPU, at least 8, at most 64, never more than the concurrency"),
    NUM(handler_db_connections, "AGENTQ_HANDLER_DB_CONNECTIONS", "0", 0, 256, "database connections lent to handler steps per worker process (a step holds one only while it runs); 0 = 2 per CPU + 4, at least 8, at most 13, never more than the handler threads"),
    NUM(prefetch, "AGENTQ_PREFETCH", "-1", -1, 100000, "claimed jobs a worker may hold waiting to start, beyond one per handler thread (and at most concurrency + prefetch held in all); -1 = same as concurrency, at most 1000 (or --prefetch)"),
    NUM(db_connections, "AGENTQ_DB_CONNECTIONS", "2", 1, 16, "database connections per worker process carrying claims and completions (the first also LISTENs)"),
    NUM(lease_seconds, "AGENTQ_LEASE_SECONDS", "30", 2, 86400, "lease on a running job; extended every third of it while the worker lives, which is also when the worker flushes its metrics; the API counts a worker live while its last heartbeat is younger than this"),
    NUM(poll_ms, "AGENTQ_POLL_MS", "1000", 10, 3600000, "fallback poll interval when no NOTIFY arrives"),
    NUM(retry_base_ms, "AGENTQ_RETRY_BASE_MS", "1000", 1, 86400000, "first retry delay; doubles per attempt, with jitter"),
    NUM(retry_max_ms, "AGENTQ_RETRY_MAX_MS", "3600000", 1, 604800000, "cap on the retry delay"),
    NUM(transient_retry_seconds, "AGENTQ_LLM_RETRY_SECONDS", "600", 0, 604800, "how long a job retries transient failures (model or Telegram outages: connection refused, timeouts, 429, 5xx) without spending attempts, from its first such failure in a row; after that they spend attempts as usual"),
    NUM(transient_backoff_max_ms, "AGENTQ_TRANSIENT_BACKOFF_MAX_MS", "120000", 1, 86400000, "cap on the backoff between retries of a transient failure (a delay the provider asks for is honoured up to AGENTQ_RETRY_MAX_MS)"),
    NUM(grace_seconds, "AGENTQ_SHUTDOWN_GRACE_SECONDS", "25", 0, 3600, "on SIGTERM, how long running handlers may finish before their jobs are handed back"),
    NUM(max_input_bytes, "AGENTQ_MAX_INPUT_BYTES", "1048576", 2, 268435456, "largest job input a worker will run; larger fails permanently"),
    NUM(retention_hours, "AGENTQ_RETENTION_HOURS", "168", 0, 87600, "succeeded/cancelled jobs older than this are pruned by workers (0 = never); failed jobs stay"),
    NUM(notification_retention_hours, "AGENTQ_NOTIFICATION_RETENTION_HOURS", "720", 0, 876000, "web-inbox notifications older than this, read or not, and approvals decided longer ago than this, are deleted by workers (0 = never)"),
    NUM(api_threads, "AGENTQ_API_THREADS", "0", 0, 64, "API threads, each with its own loop and database connection (0 = one per CPU)"),
    NUM(max_body_bytes, "AGENTQ_MAX_BODY_BYTES", "65536", 256, 16777216, "largest request body the API accepts (413 beyond)"),
    NUM(max_message_chars, "AGENTQ_MAX_MESSAGE_CHARS", "8000", 1, 1000000, "longest chat message, in characters (422 beyond)"),
    NUM(user_queue_quota, "AGENTQ_USER_QUEUE_QUOTA", "1000", 0, 1000000, "queued jobs a user may have at once (429 beyond; 0 = no quota)"),
    NUM(user_rate_per_s, "AGENTQ_USER_RATE", "50", 1, 1000000, "requests per second per user, with a burst of twice that (429 beyond)"),
    NUM(rate_sync_ms, "AGENTQ_RATE_SYNC_MS", "100", 0, 10000, "how often each API process shares the requests it admitted per user with the others through the database, in ms; AGENTQ_USER_RATE then holds across processes, within the small overshoot the Limits table states (0 = not shared: each process allows the full rate)"),
    NUM(max_connections, "AGENTQ_MAX_CONNECTIONS", "10000", 4, 1000000, "open client connections per API process (lowered to fit the file descriptor limit); at the cap a new connection closes the longest-idle one, or waits in the backlog when none is idle"),
    NUM(user_max_inflight, "AGENTQ_USER_MAX_INFLIGHT", "0", 0, 1000000, "keyed jobs (agent turns, scheduled runs) of one user running at once, across all workers; more wait queued while other users' run (0 = no cap)"),
    NUM(user_max_waits, "AGENTQ_USER_MAX_WAITS", "100", 0, 1000000, "?wait= long-polls one user may have parked per API process; more answer at once with the job as it is (0 = no long-polls)"),
    STR(api_queues, "AGENTQ_API_QUEUES", "", "queues POST /v1/jobs accepts, comma-separated (422 otherwise); empty: the queues of the workers connected now"),
    STR(web_dir, "AGENTQ_WEB_DIR", "", "folder the API serves the web console from, read on each request (for editing web/ without rebuilding); empty: the console built into agentq-api"),
    NUM(wait_max_seconds, "AGENTQ_WAIT_MAX_SECONDS", "30", 1, 3600, "longest ?wait= long-poll; larger values are clamped"),
    NUM(max_email_bytes, "AGENTQ_MAX_EMAIL_BYTES", "10485760", 64, 104857600, "largest raw message email_processing reads (POST /v1/jobs: 413 beyond; IMAP: the message is skipped and the connection notes why); the body and job-input caps of an email_processing job stretch to fit it"),
    NUM(email_max_parts, "AGENTQ_EMAIL_MAX_PARTS", "100", 1, 10000, "MIME parts of one message read; the rest are skipped (and the model is told so)"),
    NUM(email_max_depth, "AGENTQ_EMAIL_MAX_DEPTH", "8", 1, 100, "multipart nesting read; deeper parts are skipped"),
    NUM(email_text_bytes, "AGENTQ_EMAIL_TEXT_BYTES", "16000", 200, 1000000, "bytes of a message's text the model reads; longer text is cut with a marker"),
    NUM(imap_poll_seconds, "AGENTQ_IMAP_POLL_SECONDS", "300", 1, 86400, "how often each IMAP connection is polled (one imap_poll job per connection and period, whatever the number of workers)"),
    NUM(imap_timeout_ms, "AGENTQ_IMAP_TIMEOUT_MS", "30000", 100, 600000, "timeout of one IMAP exchange (login, search, fetch, store)"),
    STR(imap_ca_file, "AGENTQ_IMAP_CA_FILE", "", "PEM file of the CAs an IMAP server's certificate is checked against (connections with tls_verify); empty: the system's"),
    NUM(imap_fetch_max, "AGENTQ_IMAP_FETCH_MAX", "50", 1, 10000, "unseen messages one poll takes from a mailbox; the rest wait for the next poll"),
    NUM(test_handlers, "AGENTQ_TEST_HANDLERS", "0", 0, 1, "1 registers the test-only job types (test_*); never in production"),
};

/* 0 when val is one of v->allowed; otherwise the reason, naming them all, in err. */
static int check_one_of(const var *v, const char *val, char *err, size_t errlen)
{
    for (const char *const *a = v->allowed; *a; a++)
        if (!strcmp(val, *a)) return 0;
    size_t n = (size_t)snprintf(err, errlen, "%s=%s: unknown value; expected one of:", v->env, val);
    for (const char *const *a = v->allowed; *a && n < errlen; a++)
        n += (size_t)snprintf(err + n, errlen - n, "%s %s", a == v->allowed ? "" : ",", *a);
    return AQ_ECONFIG;
}

/* The key from AGENTQ_SECRET_KEY_FILE: its text without surrounding
 * whitespace, kept for the life of the process (load runs once). */
static int read_key_file(aq_config *cfg, char *err, size_t errlen)
{
    static char key[256];
    FILE *f = fopen(cfg->secret_key_file, "r");
    if (!f) {
        snprintf(err, errlen, "AGENTQ_SECRET_KEY_FILE=%s: %s", cfg->secret_key_file, strerror(errno));
        return AQ_ECONFIG;
    }
    size_t n = fread(key, 1, sizeof key - 1, f);
    int big = n == sizeof key - 1 && fgetc(f) != EOF;
    fclose(f);
    key[n] = 0;
    while (n && strchr(" \t\r\n", key[n - 1])) key[--n] = 0;
    size_t skip = strspn(key, " \t\r\n");
    if (big || !key[skip]) {
        snprintf(err, errlen, "AGENTQ_SECRET_KEY_FILE=%s: %s", cfg->secret_key_file,
                 big ? "too long for a key" : "empty");
        return AQ_ECONFIG;
    }
    cfg->secret_key = key + skip;
    return 0;
}

int aq_config_load(aq_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const var *v = &vars[i];
        const char *val = getenv(v->env);
        if (!val || !*val) val = v->def;
        char *field = (char *)cfg + v->offset;
        if (!v->is_num) {
            if (v->allowed && check_one_of(v, val, err, errlen)) return AQ_ECONFIG;
            *(const char **)field = val;
            continue;
        }
        char *end;
        errno = 0;
        long n = strtol(val, &end, 10);
        if (errno || end == val || *end || n < v->min || n > v->max) {
            snprintf(err, errlen, "%s=%s: expected an integer from %ld to %ld", v->env, val, v->min, v->max);
            return AQ_ECONFIG;
        }
        *(long *)field = n;
    }
    if (!*cfg->secret_key && *cfg->secret_key_file) return read_key_file(cfg, err, errlen);
    return 0;
}

long aq_config_email_input_cap(const aq_config *cfg)
{
    long fit = 2 * cfg->max_email_bytes + 65536;   /* base64 is 4/3; JSON escapes of CRLF text stay well under 2x */
    return fit > cfg->max_input_bytes ? fit : cfg->max_input_bytes;
}

void aq_config_print_table(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        printf("| `%s` | `%s` | %s |\n", vars[i].env, vars[i].def, vars[i].doc);
}
