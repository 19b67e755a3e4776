/* fz_job_input.c — job input as each handler takes it, before any effect:
 * the body read as the API reads one (aq_api_body_parse), then the
 * handler's own check from the registry (check_input: aq_handler.h) and
 * the reply routes every job may carry (aq_routes_check). The input is
 * "JOB_TYPE\nJSON"; a type that is no handler's goes to every check.
 * Contracts: a check answers NULL or a reason, the same reason twice; what
 * is accepted holds what the handler then reads: ids that are integers
 * within +-2^53 (an id beyond a long long, converted, is undefined
 * behaviour), the strings it compares. */
#include "fuzz.h"
#include "aq_handler.h"
#include "aq_json.h"
#include "api.h"
#include "routes.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int is_int(const cJSON *v, long long lo)
{
    long long n;
    return aq_json_int(v, lo, AQ_JSON_INT_MAX, &n);
}

/* what an accepted input of handler `name` holds */
static void accepted(const char *name, const cJSON *in)
{
    if (!strcmp(name, "action_decision")) {
        FZ_CHECK(is_int(get(in, "action_id"), 1) && cJSON_IsString(get(in, "decision")));
    } else if (!strcmp(name, "scheduled_run")) {
        FZ_CHECK(is_int(get(in, "schedule_id"), 1));
    } else if (!strcmp(name, "imap_poll")) {
        FZ_CHECK(is_int(get(in, "connection_id"), 1));
    } else if (!strcmp(name, "telegram_update")) {
        FZ_CHECK(is_int(get(in, "update_id"), -AQ_JSON_INT_MAX));
    } else if (!strcmp(name, "notify")) {
        const char *to = cJSON_GetStringValue(get(in, "to")), *text = cJSON_GetStringValue(get(in, "text"));
        FZ_CHECK(to && text && *text && (!strcmp(to, "web") || !strcmp(to, "telegram")));
        if (!strcmp(to, "telegram")) FZ_CHECK(is_int(get(in, "chat_id"), -AQ_JSON_INT_MAX));
    } else if (!strcmp(name, "agent_turn") || !strcmp(name, "test_agent_turn")) {
        const char *m = cJSON_GetStringValue(get(in, "message"));
        FZ_CHECK(m && *m);
    } else if (!strcmp(name, "email_processing")) {
        FZ_CHECK(cJSON_IsString(get(in, "raw")) != cJSON_IsString(get(in, "raw_base64")));
    }
}

static void check(const aq_handler_def *h, const cJSON *in)
{
    if (!h->check_input) return;
    const char *why = h->check_input(in), *again = h->check_input(in);
    FZ_CHECK(why == again || (why && again && !strcmp(why, again)));
    if (why) FZ_CHECK(*why != '\0');
    else accepted(h->name, in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    if (!nl) return 0;
    char type[64];
    size_t tl = (size_t)(nl - s) < sizeof type - 1 ? (size_t)(nl - s) : sizeof type - 1;
    memcpy(type, s, tl);
    type[tl] = '\0';
    cJSON *in = NULL;
    char why[160];
    if (aq_api_body_parse(nl + 1, size - (size_t)(nl + 1 - s), &in, why, sizeof why)) return 0;

    const aq_handler_def *named = NULL;
    for (const aq_handler_def *h = aq_handler_table; h->name; h++)
        if (!strcmp(h->name, type)) named = h;
    if (named) check(named, in);
    else for (const aq_handler_def *h = aq_handler_table; h->name; h++) check(h, in);

    const char *r = aq_routes_check(in);
    if (r) {
        FZ_CHECK(*r != '\0');
    } else {
        const cJSON *rt = get(in, "reply_to"), *route;
        cJSON_ArrayForEach(route, rt) {
            const char *to = cJSON_GetStringValue(get(route, "to"));
            FZ_CHECK(to && (!strcmp(to, "web") || !strcmp(to, "owner") || !strcmp(to, "telegram")));
            if (!strcmp(to, "telegram")) FZ_CHECK(is_int(get(route, "chat_id"), -AQ_JSON_INT_MAX));
        }
    }
    cJSON_Delete(in);
    return 0;
}
