/* aq_config.h — configuration from environment variables, with defaults.
 *
 * One table in aq_config.c lists every variable (name, default, bounds, meaning);
 * the README's configuration table mirrors it and `agentq config` prints it.
 * Load once at startup, before threads start; read-only afterwards. */
#ifndef AQ_CONFIG_H
#define AQ_CONFIG_H
#include <stddef.h>

typedef struct aq_config {
    const char *database_url;   /* libpq conninfo or URI; "" = libpq defaults */
    const char *listen;
    const char *queues;         /* comma-separated */
    const char *log_level;
    const char *secret_key;     /* from AGENTQ_SECRET_KEY, else read from AGENTQ_SECRET_KEY_FILE */
    const char *secret_key_file;
    const char *llm_provider;   /* "offline" or "openai" */
    const char *llm_base_url;
    const char *llm_api_key;
    const char *llm_model;
    const char *telegram_bot_token;
    const char *telegram_api_base;
    const char *telegram_webhook_secret;
    const char *api_queues;     /* comma-separated; "" = the connected workers' queues */
    const char *imap_ca_file;   /* "" = the system's CAs */
    const char *web_dir;        /* "" = the web console embedded at build time */
    long concurrency;
    long prefetch;
    long db_connections;
    long handler_threads;
    long handler_db_connections;
    long lease_seconds;
    long poll_ms;
    long retry_base_ms;
    long retry_max_ms;
    long transient_retry_seconds;
    long transient_backoff_max_ms;
    long grace_seconds;
    long max_input_bytes;
    long retention_hours;
    long notification_retention_hours;
    long test_handlers;
    long api_threads;
    long max_body_bytes;
    long max_message_chars;
    long user_queue_quota;
    long user_rate_per_s;
    long rate_sync_ms;
    long wait_max_seconds;
    long max_connections;
    long user_max_waits;
    long user_max_inflight;
    long llm_timeout_ms;
    long context_messages;
    long agent_max_steps;
    long agent_max_tool_calls;
    long action_ttl_hours;
    long telegram_timeout_ms;
    long link_code_minutes;
    long schedule_tick_ms;
    long schedule_min_interval_s;
    long user_daily_turns;
    long max_email_bytes;
    long email_max_parts;
    long email_max_depth;
    long email_text_bytes;
    long imap_poll_seconds;
    long imap_timeout_ms;
    long imap_fetch_max;
} aq_config;

/* Fill cfg from the environment. On a bad value returns AQ_ECONFIG and writes
 * the reason (naming the variable) into err. Strings point into the
 * environment or into static defaults: never free them. */
int aq_config_load(aq_config *cfg, char *err, size_t errlen);
/* The largest job input (and POST /v1/jobs body) an email_processing job may
 * have: room for a message of AGENTQ_MAX_EMAIL_BYTES as JSON text or base64,
 * and never less than AGENTQ_MAX_INPUT_BYTES. */
long aq_config_email_input_cap(const aq_config *cfg);
/* Print the table of variables (name, default, meaning) to stdout. */
void aq_config_print_table(void);

#endif
