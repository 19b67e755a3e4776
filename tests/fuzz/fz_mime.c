/* fz_mime.c — raw email as email_processing reads it: the message through
 * GMime with agentq's caps (aq_mime_parse), the HTML-to-text step
 * (aq_mime_html_to_text) and the prompt built from the result
 * (aq_extract_prompt). The first input byte picks the caps: even, the
 * defaults (AGENTQ_MAX_EMAIL_BYTES and the AGENTQ_EMAIL_* caps); odd, small
 * ones, so the size refusal, the part and depth caps and the text cut are
 * reached; the rest is the message. Contracts (mime.h): over max_bytes it
 * is refused as too big; a parsed message's headers are valid UTF-8 with no
 * control character, at most 1000 bytes; its text is valid UTF-8 with no
 * control character but \n and \t, at most max_text bytes, ending in the
 * cut marker exactly when cut; every attachment is {name, type, size >= 0}
 * with readable name and type. */
#include "fuzz.h"
#include "aq_error.h"
#include "aq_json.h"
#include "extract.h"
#include "mime.h"

static void check_line(const char *s, size_t max, int multiline)
{
    FZ_CHECK(s != NULL);
    size_t n = strlen(s);
    FZ_CHECK(n <= max && aq_utf8_valid(s, n));
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        FZ_CHECK((*p >= 0x20 && *p != 0x7f) || (multiline && (*p == '\n' || *p == '\t')));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const aq_mime_limits defaults = {.max_bytes = 10485760, .max_parts = 100, .max_depth = 8,
                                            .max_text = 16000};
    static const aq_mime_limits small = {.max_bytes = 3000, .max_parts = 4, .max_depth = 2, .max_text = 200};
    if (size < 1) return 0;
    const aq_mime_limits *lim = data[0] & 1 ? &small : &defaults;
    const char *raw = (const char *)data + 1;
    size_t len = size - 1;

    aq_mime_msg m;
    char err[200] = "";
    int rc = aq_mime_parse(raw, len, lim, &m, err, sizeof err);
    if (len > lim->max_bytes) FZ_CHECK(rc == AQ_ETOOBIG);
    if (rc != 0) {
        FZ_CHECK((rc == AQ_ETOOBIG || rc == AQ_EINVAL) && err[0]);
    } else {
        check_line(m.from, 1000, 0);
        check_line(m.from_addr, 1000, 0);
        check_line(m.subject, 1000, 0);
        check_line(m.message_id, 1000, 0);
        check_line(m.date, 64, 0);
        check_line(m.text, lim->max_text, 1);
        size_t tl = strlen(m.text), ml = strlen(AQ_MIME_CUT_MARKER);
        FZ_CHECK(!m.text_cut || (tl >= ml && !strcmp(m.text + tl - ml, AQ_MIME_CUT_MARKER)));
        FZ_CHECK(m.parts_skipped >= 0);
        FZ_CHECK(cJSON_IsArray(m.attachments));
        const cJSON *a;
        cJSON_ArrayForEach(a, m.attachments) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(a, "type");
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(a, "size");
            FZ_CHECK(cJSON_IsString(name) && cJSON_IsString(type) && cJSON_IsNumber(sz) && sz->valuedouble >= 0);
            check_line(name->valuestring, 255, 0);
            check_line(type->valuestring, 255, 0);
        }
        cJSON *prompt = aq_extract_prompt(&m);
        FZ_CHECK(cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) == 2);
        char *text = aq_json_print(prompt);
        FZ_CHECK(text && aq_utf8_valid(text, strlen(text)));
        free(text);
        cJSON_Delete(prompt);
        aq_mime_msg_dispose(&m);
    }

    char *html = fz_cstr((const uint8_t *)raw, len);
    char *t = aq_mime_html_to_text(html);
    FZ_CHECK(t != NULL);
    if (aq_utf8_valid(html, strlen(html))) FZ_CHECK(aq_utf8_valid(t, strlen(t)));
    free(t);
    free(html);
    return 0;
}
