/* fz_llm.c — the model's replies as an agent turn reads them: the body of a
 * /chat/completions response (aq_llm_parse) and the whole reading of an
 * HTTP outcome (aq_llm_response: status, provider error objects, our own
 * call ids, the key scrubbed from errors). The first input byte picks the
 * HTTP status, the rest is the body. Contracts (llm.h): success exactly
 * when there is no error, with content or tool calls; every tool call is
 * {id, name, arguments[, error]} strings, all but the id valid UTF-8 (Postgres
 * stores them), ids ours ("call_" + 24 hex digits) and distinct; token
 * counts within 0..AQ_LLM_MAX_TOKENS; a failure has a reason of at most 600
 * bytes that never holds LLM_API_KEY. The reply's content also goes through
 * the email path's check of the model's answer (aq_extract_check, the
 * input as a whole too): accepted, at most AQ_EXTRACT_MAX_TASKS tasks, each
 * with a non-blank title within its cap and a priority in range; refused,
 * a reason. */
#include "fuzz.h"
#include "aq_config.h"
#include "aq_json.h"
#include "extract.h"
#include "llm.h"
#include <sodium.h>

#define KEY "sk-fuzzSECRETkey0123456789"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (sodium_init() < 0) abort();
    return 0;
}

static void check_reply(const aq_llm_reply *r, int rc, int ours)
{
    if (rc != 0) {
        FZ_CHECK(rc == -1 && r->error != NULL && r->tool_calls == NULL);
        return;
    }
    FZ_CHECK(r->error == NULL && (r->content != NULL || r->tool_calls != NULL));
    FZ_CHECK(r->prompt_tokens >= 0 && r->prompt_tokens <= AQ_LLM_MAX_TOKENS);
    FZ_CHECK(r->completion_tokens >= 0 && r->completion_tokens <= AQ_LLM_MAX_TOKENS);
    if (!r->tool_calls) return;
    FZ_CHECK(cJSON_IsArray(r->tool_calls) && cJSON_GetArraySize(r->tool_calls) > 0);
    const cJSON *c;
    cJSON_ArrayForEach(c, r->tool_calls) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "arguments");
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
        FZ_CHECK(cJSON_IsString(id) && cJSON_IsString(name) && cJSON_IsString(args));
        FZ_CHECK(!err || (cJSON_IsString(err) && aq_utf8_valid(err->valuestring, strlen(err->valuestring))));
        FZ_CHECK(aq_utf8_valid(name->valuestring, strlen(name->valuestring)));
        FZ_CHECK(aq_utf8_valid(args->valuestring, strlen(args->valuestring)));
        FZ_CHECK(name->valuestring[0] != '\0');
        if (!ours) continue;
        FZ_CHECK(strlen(id->valuestring) == 29 && !memcmp(id->valuestring, "call_", 5));
        for (const cJSON *d = c->next; d; d = d->next)
            FZ_CHECK(strcmp(id->valuestring, cJSON_GetObjectItemCaseSensitive(d, "id")->valuestring));
    }
}

static void check_extract(const char *answer)
{
    cJSON *tasks = NULL;
    int capped = -1;
    char why[200];
    if (aq_extract_check(answer, &tasks, &capped, why, sizeof why)) {
        FZ_CHECK(tasks == NULL && why[0] != '\0');
        return;
    }
    FZ_CHECK(cJSON_IsArray(tasks) && cJSON_GetArraySize(tasks) <= AQ_EXTRACT_MAX_TASKS);
    FZ_CHECK(!capped || cJSON_GetArraySize(tasks) == AQ_EXTRACT_MAX_TASKS);
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(t, "title");
        const cJSON *prio = cJSON_GetObjectItemCaseSensitive(t, "priority");
        FZ_CHECK(cJSON_IsString(title) && title->valuestring[strspn(title->valuestring, " \t\r\n")]);
        FZ_CHECK(aq_utf8_chars(title->valuestring) <= AQ_EXTRACT_TITLE_MAX);
        FZ_CHECK(cJSON_IsNumber(prio) && prio->valuedouble >= 0 && prio->valuedouble <= AQ_EXTRACT_PRIORITY_MAX);
    }
    cJSON_Delete(tasks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 200, 200, 200, 400, 401, 404, 408, 409, 429, 500, 503};
    if (size < 1) return 0;
    long status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    char *body = fz_cstr(data + 1, size - 1);   /* aq_http keeps a body NUL-terminated */
    size_t len = size - 1;

    aq_llm_reply r;
    memset(&r, 0, sizeof r);
    check_reply(&r, aq_llm_parse(body, len, &r), 0);
    check_extract(r.content);
    aq_llm_reply_dispose(&r);
    check_extract(body);

    aq_config cfg = {.llm_provider = "openai", .llm_model = "fuzz", .llm_api_key = KEY};
    aq_http_resp h = {.status = status, .body = body, .len = len, .retry_after_ms = -1};
    int rc = aq_llm_response(&cfg, 0, &h, &r);
    check_reply(&r, rc, 1);
    if (rc != 0) {
        FZ_CHECK(strlen(r.error) <= 600 && !strstr(r.error, KEY));
        FZ_CHECK(status == 200 || r.transient == (status == 408 || status == 409 || status == 429 || status >= 500));
    } else {
        FZ_CHECK(status == 200);
    }
    aq_llm_reply_dispose(&r);
    free(body);
    return 0;
}
