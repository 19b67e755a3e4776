/* fz_tg_reply.c — Bot API replies as agentq sorts them (aq_tg_classify).
 * The input is "STATUS RETRY_AFTER_S\nBODY". Contracts: OK exactly when the
 * status (or, in a 200, error_code) says success and result is handed over;
 * otherwise a readable reason that is valid UTF-8 and never holds the bot
 * token; a retry delay only for RETRY and within a day; a migrated chat id
 * only for FAILED, an integer exact in a double. */
#include "fuzz.h"
#include "aq_config.h"
#include "aq_http.h"
#include "aq_json.h"
#include "aq_tg_api.h"

#define TOKEN "123456:SECRETtoken"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fz_cstr(data, size);
    char *nl = strchr(in, '\n');
    long status = strtol(in, NULL, 10), ra = -1;
    const char *sp = strchr(in, ' ');
    if (sp && (!nl || sp < nl)) ra = strtol(sp + 1, NULL, 10);
    aq_config cfg = {.telegram_bot_token = TOKEN};
    aq_http_resp r = {.status = status, .body = nl ? nl + 1 : in + size,
                      .retry_after_ms = ra < 0 || ra > 86400 ? -1 : ra * 1000};
    r.len = nl ? size - (size_t)(nl + 1 - in) : 0;
    if (r.len > strlen(r.body)) r.len = strlen(r.body);   /* the body as aq_http keeps it: NUL-terminated */

    aq_tg_result out;
    memset(&out, 0, sizeof out);
    out.retry_after_ms = -1;
    out.status = AQ_TG_FAILED;
    aq_tg_classify(&cfg, "sendMessage", &r, &out);
    if (out.status == AQ_TG_OK) {
        FZ_CHECK(out.result != NULL && out.error == NULL && (status == 200));
    } else {
        FZ_CHECK(out.result == NULL && out.error != NULL);
        FZ_CHECK(aq_utf8_valid(out.error, strlen(out.error)) && !strstr(out.error, TOKEN));
    }
    if (out.status == AQ_TG_RETRY)
        FZ_CHECK(out.retry_after_ms == -1 || (out.retry_after_ms >= 0 && out.retry_after_ms <= 86400000L));
    else
        FZ_CHECK(out.retry_after_ms == -1);
    if (out.status != AQ_TG_FAILED) FZ_CHECK(out.migrate_to_chat_id == 0);
    FZ_CHECK(out.migrate_to_chat_id > -9007199254740992LL && out.migrate_to_chat_id < 9007199254740992LL);
    aq_tg_result_dispose(&out);
    free(in);
    return 0;
}
