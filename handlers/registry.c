/* registry.c — the one table of job types.
 *
 * To add a job type: write handlers/<type>.c with one function of the
 * aq_handler_fn shape, declare it in handlers.h, and add one row below
 * (on_fail: a hook run on every path to 'failed', or NULL; aq_handler.h).
 * Startup (aq_handlers_check) rejects a duplicate name. */
#include "aq_error.h"
#include "aq_handler.h"
#include "handlers.h"
#include "aq_http.h"
#include "routes.h"
#include "tools.h"
#include <stdio.h>
#include <string.h>

const aq_handler_def aq_handler_table[] = {
    /* name            function              max_att timeout_s api    test_only on_fail  check_input */
    {"noop",           aq_handle_noop,           25,     60,  true,  false, NULL, NULL},
    {"agent_turn",     aq_handle_agent_turn,      5,    300,  false, false, aq_fail_apologise, aq_check_agent_turn},
    {"action_decision", aq_handle_action_decision, 10,   60,  false, false, NULL, aq_check_action_decision},
    {"scheduled_run",  aq_handle_scheduled_run,   5,    300,  false, false, aq_fail_apologise, aq_check_scheduled_run},
    {"notify",         aq_handle_notify,         25,    300,  false, false, NULL, aq_check_notify},
    {"telegram_update", aq_handle_telegram_update, 10,   60,  false, false, NULL, aq_check_telegram_update},
    {"email_processing", aq_handle_email_processing, 10, 300, true,  false, NULL, aq_check_email_processing},
    {"imap_poll",      aq_handle_imap_poll,      10,    300,  false, false, NULL, aq_check_imap_poll},
    {"test_fail",      aq_handle_test_fail,      25,     60,  false, true,  NULL, NULL},
    {"test_sleep",     aq_handle_test_sleep,     25,    300,  false, true,  NULL, NULL},
    {"test_hang",      aq_handle_test_sleep,     25,      2,  false, true,  NULL, NULL},
    {"test_agent_turn", aq_handle_agent_turn,     5,      3,  false, true,  aq_fail_apologise, aq_check_agent_turn},
    {"test_crash",     aq_handle_test_crash,      3,     60,  false, true,  NULL, NULL},
    {"test_record",    aq_handle_test_record,    25,     60,  false, true,  NULL, NULL},
    {"test_stamp",     aq_handle_test_stamp,     25,     60,  false, true,  NULL, NULL},
    {"test_followup",  aq_handle_test_followup,  25,     60,  false, true,  NULL, NULL},
    {"test_output",    aq_handle_test_output,    25,     60,  false, true,  NULL, NULL},
    {"test_http",      aq_handle_test_http,      25,     60,  false, true,  NULL, NULL},
    {"test_http_short", aq_handle_test_http,      1,      2,  false, true,  NULL, NULL},
    {"test_db_kept",   aq_handle_test_db_kept,   25,     60,  false, true,  NULL, NULL},
    {NULL, NULL, 0, 0, false, false, NULL, NULL},
};

/* what follows every job's end: its reply routes */
const aq_completion_hook aq_handler_completion = {aq_routes_check, aq_routes_enqueue};

static bool tests_enabled;

void aq_handlers_enable_tests(bool on) { tests_enabled = on; }

void aq_handlers_configure(const aq_config *cfg) { aq_tools_configure(cfg); }

void aq_handlers_thread_cleanup(void) { aq_http_thread_cleanup(); }

long aq_handler_input_cap(const aq_handler_def *h, const aq_config *cfg)
{
    if (h && !strcmp(h->name, "email_processing")) return aq_config_email_input_cap(cfg);
    return cfg->max_input_bytes;
}

const aq_handler_def *aq_handler_find(const char *name)
{
    for (const aq_handler_def *h = aq_handler_table; h->name; h++)
        if (strcmp(h->name, name) == 0) return (h->test_only && !tests_enabled) ? NULL : h;
    return NULL;
}

int aq_handlers_check(char *err, size_t errlen)
{
    for (const aq_handler_def *a = aq_handler_table; a->name; a++)
        for (const aq_handler_def *b = a + 1; b->name; b++)
            if (strcmp(a->name, b->name) == 0) {
                snprintf(err, errlen, "duplicate job type '%s' in the handler registry", a->name);
                return AQ_EINVAL;
            }
    return 0;
}
