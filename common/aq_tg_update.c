/* aq_tg_update.c — the storable-update check (see aq_tg_update.h). */
#include "aq_tg_update.h"
#include "aq_json.h"
#include <stdint.h>

cJSON *aq_tg_update_parse(const char *raw, size_t len, long long *update_id, const char **why)
{
    *update_id = -1;
    if (!raw || !len) { *why = "empty body"; return NULL; }
    if (!aq_utf8_valid(raw, len)) { *why = "not valid UTF-8 (or a NUL byte)"; return NULL; }
    size_t nul_at;
    if (aq_json_scan(raw, len, &nul_at) != SIZE_MAX) { *why = "a raw control character"; return NULL; }
    if (nul_at != SIZE_MAX) { *why = "a string holds \\u0000"; return NULL; }
    cJSON *u = aq_json_parse_whole(raw, len);
    if (!u) { *why = "not valid JSON"; return NULL; }
    if (!cJSON_IsObject(u)) { cJSON_Delete(u); *why = "not a JSON object"; return NULL; }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(u, "update_id");
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > (double)AQ_TG_UPDATE_ID_MAX ||
        id->valuedouble != (double)(long long)id->valuedouble) {
        cJSON_Delete(u);
        *why = "update_id is not a non-negative integer";
        return NULL;
    }
    *update_id = (long long)id->valuedouble;
    *why = NULL;
    return u;
}
