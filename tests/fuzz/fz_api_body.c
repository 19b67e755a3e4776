/* fz_api_body.c — request bodies per endpoint, as agentq's validation
 * layer reads them after the JSON (the json harness covers that): POST
 * /v1/jobs's fields (aq_api_job_fields_check: type, input, email input,
 * run_at, priority, queue, the idempotency key from the body or the
 * header) and POST /v1/schedules's rule (aq_schedule_check_new, as the
 * agent's create_schedule tool uses it too). The input is
 * "IDEMPOTENCY_KEY_HEADER\nBODY", an empty first line for no header.
 * Contracts: a refusal has a reason and is AQ_EINVAL or AQ_ETOOBIG (the
 * latter only for a body or message over its cap); what is accepted is a
 * valid type name, a priority within a smallint, a key of 1 to 255 bytes
 * of UTF-8 equal to the header when both are given, and input stored as
 * valid UTF-8 JSON that parses back to an object; an accepted schedule has
 * a next fire time after now. */
#include "fuzz.h"
#include "api.h"
#include "aq_error.h"
#include "aq_json.h"
#include "aq_schedule.h"

#define MAX_BODY 4096     /* small, so the size refusal is reached */
#define MAX_EMAIL 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    if (!nl) return 0;
    size_t hlen = (size_t)(nl - s);
    const char *hkey = hlen ? s : NULL;
    const char *body_s = nl + 1;
    size_t blen = size - hlen - 1;
    cJSON *body = NULL;
    char why[300] = "";
    if (aq_api_body_parse(body_s, blen, &body, why, sizeof why)) return 0;

    aq_api_job_fields f;
    why[0] = '\0';
    int rc = aq_api_job_fields_check(body, blen, hkey, hlen, MAX_BODY, MAX_EMAIL, &f, why, sizeof why);
    if (rc) {
        FZ_CHECK(why[0] != '\0' && (rc == AQ_EINVAL || rc == AQ_ETOOBIG));
        FZ_CHECK(f.input_json == NULL);
    } else {
        size_t tl = strlen(f.type);
        FZ_CHECK(tl >= 1 && tl <= 100 && strspn(f.type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                        "0123456789_.-") == tl);
        FZ_CHECK(f.priority >= -32768 && f.priority <= 32767);
        if (f.key) {
            FZ_CHECK(f.key_len >= 1 && f.key_len <= 255 && aq_utf8_valid(f.key, f.key_len));
            if (hkey) FZ_CHECK(f.key_len == hlen && !memcmp(f.key, hkey, hlen));
        }
        FZ_CHECK(aq_utf8_valid(f.input_json, strlen(f.input_json)));
        cJSON *again = aq_json_parse_whole(f.input_json, strlen(f.input_json));
        FZ_CHECK(cJSON_IsObject(again));
        cJSON_Delete(again);
        if (strcmp(f.type, "email_processing")) FZ_CHECK(blen <= MAX_BODY);
        free(f.input_json);
    }

    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "name"));
    const char *cron = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "cron"));
    const char *zone = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "timezone"));
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "prompt"));
    int64_t now = 1780000000, next = 0;   /* a fixed "now": the same input, the same answer */
    why[0] = '\0';
    if (aq_schedule_check_new(name, cron, zone ? zone : "UTC", prompt, 8000, 300, now, &next, why, sizeof why) == 0)
        FZ_CHECK(next > now);
    else
        FZ_CHECK(why[0] != '\0');
    cJSON_Delete(body);
    return 0;
}
