/* fz_tg_update.c — inbound Telegram updates as the webhook and `agentq
 * telegram poll` check them (aq_tg_update_parse). Contracts: an accepted
 * update is a JSON object whose update_id is the integer reported, within
 * 0..AQ_TG_UPDATE_ID_MAX; its bytes are valid UTF-8 with no raw control
 * character and no \u0000; its re-serialisation as stored (aq_json_print)
 * parses back with the same update_id. */
#include "fuzz.h"
#include "aq_json.h"
#include "aq_tg_update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *raw = (const char *)data;
    long long id = 0;
    const char *why = NULL;
    cJSON *u = aq_tg_update_parse(raw, size, &id, &why);
    if (!u) {
        FZ_CHECK(why != NULL && id == -1);
        return 0;
    }
    FZ_CHECK(why == NULL && cJSON_IsObject(u));
    FZ_CHECK(id >= 0 && id <= AQ_TG_UPDATE_ID_MAX);
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(u, "update_id");
    FZ_CHECK(cJSON_IsNumber(uid) && uid->valuedouble == (double)id);
    FZ_CHECK(aq_utf8_valid(raw, size));
    size_t nul_at;
    FZ_CHECK(aq_json_scan(raw, size, &nul_at) == SIZE_MAX && nul_at == SIZE_MAX);
    char *text = aq_json_print(u);
    FZ_CHECK(text != NULL);
    long long id2 = 0;
    const char *why2 = NULL;
    cJSON *again = aq_tg_update_parse(text, strlen(text), &id2, &why2);
    FZ_CHECK(again != NULL && id2 == id);
    cJSON_Delete(again);
    free(text);
    cJSON_Delete(u);
    return 0;
}
