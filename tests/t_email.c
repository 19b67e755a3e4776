/* t_email.c — email_processing: the MIME reader (handlers/mime.c) over the
 * checked-in corpus (tests/fixtures/email/NAME.eml parsed to
 * NAME.expected.json) and its caps; the extraction's validation; the
 * handler end to end against a fake model; the tasks API. Runs from the
 * project folder (`make test`). */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_json.h"
#include "mime.h"
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static const aq_mime_limits LIMITS = {.max_bytes = 10 * 1024 * 1024, .max_parts = 100, .max_depth = 8,
                                      .max_text = 16000};

/* Whole file (heap, NUL-terminated; *len its size), or NULL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    aq_buf b;
    aq_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) aq_buf_add(&b, chunk, n);
    fclose(f);
    if (len) *len = b.len;
    return aq_buf_take(&b);
}

/* Parse tests/fixtures/email/NAME.eml and compare with NAME.expected.json. */
static void corpus(const char *name)
{
    char path[256];
    size_t len;
    snprintf(path, sizeof path, "tests/fixtures/email/%s.eml", name);
    char *raw = slurp(path, &len);
    CHECK(raw != NULL);
    snprintf(path, sizeof path, "tests/fixtures/email/%s.expected.json", name);
    char *exp_s = slurp(path, NULL);
    cJSON *exp = exp_s ? cJSON_Parse(exp_s) : NULL;
    CHECK(exp != NULL);
    if (!raw || !exp) goto done;
    aq_mime_msg m;
    char err[200] = "";
    CHECK_INT(aq_mime_parse(raw, len, &LIMITS, &m, err, sizeof err), 0);
    CHECK_STR(m.from, th_jstr(exp, "from"));
    CHECK_STR(m.from_addr, th_jstr(exp, "from_addr"));
    CHECK_STR(m.subject, th_jstr(exp, "subject"));
    CHECK_STR(m.date, th_jstr(exp, "date"));
    CHECK_STR(m.message_id, th_jstr(exp, "message_id"));
    CHECK_STR(m.text, th_jstr(exp, "text"));
    char *att = cJSON_PrintUnformatted(m.attachments);
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(exp, "attachments"));
    CHECK_STR(att, want);
    CHECK_INT(m.text_cut, 0);
    free(att);
    free(want);
    aq_mime_msg_dispose(&m);
done:
    cJSON_Delete(exp);
    free(exp_s);
    free(raw);
}

static void mime_plain(void) { corpus("plain"); }
static void mime_folded_headers(void) { corpus("folded_headers"); }
static void mime_alternative_prefers_plain(void) { corpus("alternative"); }
static void mime_nested_with_attachment(void) { corpus("nested_attachment"); }
static void mime_quoted_printable(void) { corpus("quoted_printable"); }
static void mime_base64_body(void) { corpus("base64_body"); }
static void mime_iso8859_1(void) { corpus("iso8859_1"); }
static void mime_windows1252(void) { corpus("windows1252"); }
static void mime_utf8_encoded_words(void) { corpus("utf8_subject"); }
static void mime_html_only(void) { corpus("html_only"); }
static void mime_malformed_boundary(void) { corpus("malformed_boundary"); }
static void mime_no_message_id(void) { corpus("no_message_id"); }

static void mime_over_the_size_cap(void)
{
    size_t len;
    char *raw = slurp("tests/fixtures/email/plain.eml", &len);
    CHECK(raw != NULL);
    aq_mime_limits lim = LIMITS;
    lim.max_bytes = len - 1;
    aq_mime_msg m;
    char err[200] = "";
    CHECK_INT(aq_mime_parse(raw, len, &lim, &m, err, sizeof err), AQ_ETOOBIG);
    CHECK_CONTAINS(err, "the limit is");
    lim.max_bytes = len;   /* exactly at the cap: read */
    CHECK_INT(aq_mime_parse(raw, len, &lim, &m, err, sizeof err), 0);
    aq_mime_msg_dispose(&m);
    free(raw);
}

static void mime_text_cut_with_marker(void)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "From: a@example.com\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    for (int i = 0; i < 2000; i++) aq_buf_adds(&b, "\xc3\xa9t\xc3\xa9 ");   /* 2-byte chars, cut must not split one */
    aq_mime_limits lim = LIMITS;
    lim.max_text = 1001;
    aq_mime_msg m;
    CHECK_INT(aq_mime_parse(b.p, b.len, &lim, &m, NULL, 0), 0);
    CHECK_INT(m.text_cut, 1);
    CHECK(strlen(m.text) <= 1001);
    size_t ml = strlen(AQ_MIME_CUT_MARKER);
    CHECK(strlen(m.text) > ml && !strcmp(m.text + strlen(m.text) - ml, AQ_MIME_CUT_MARKER));
    CHECK(aq_utf8_valid(m.text, strlen(m.text)));
    aq_mime_msg_dispose(&m);
    aq_buf_dispose(&b);
}

/* A multipart nested deeper than the cap, and more parts than the cap. */
static void mime_depth_and_parts_capped(void)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for (int i = 0; i < 20; i++)
        aq_buf_addf(&b, "Content-Type: multipart/mixed; boundary=\"B%d\"\r\n\r\n--B%d\r\n", i, i);
    aq_buf_adds(&b, "Content-Type: text/plain\r\n\r\ntoo deep to read\r\n");
    for (int i = 19; i >= 0; i--) aq_buf_addf(&b, "--B%d--\r\n", i);
    aq_mime_msg m;
    CHECK_INT(aq_mime_parse(b.p, b.len, &LIMITS, &m, NULL, 0), 0);
    CHECK(m.parts_skipped > 0);
    CHECK(strstr(m.text, "too deep") == NULL);
    aq_mime_msg_dispose(&m);

    aq_buf_reset(&b);
    aq_buf_adds(&b, "From: a@example.com\r\nSubject: wide\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: multipart/mixed; boundary=\"W\"\r\n\r\n");
    for (int i = 0; i < 150; i++) aq_buf_addf(&b, "--W\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i);
    aq_buf_adds(&b, "--W--\r\n");
    CHECK_INT(aq_mime_parse(b.p, b.len, &LIMITS, &m, NULL, 0), 0);
    CHECK_INT(m.parts_skipped, 51);          /* the multipart itself counts as one of the 100 */
    CHECK(strstr(m.text, "part 97\n") != NULL);
    CHECK(strstr(m.text, "part 98") != NULL);
    CHECK(strstr(m.text, "part 99\n") == NULL);
    aq_mime_msg_dispose(&m);
    aq_buf_dispose(&b);
}

static void mime_not_a_message(void)
{
    aq_mime_msg m;
    char err[200] = "";
    CHECK_INT(aq_mime_parse("", 0, &LIMITS, &m, err, sizeof err), AQ_EINVAL);
}

const th_test th_email_tests[] = {
    {"email_mime_plain", mime_plain, 10, 0},
    {"email_mime_folded_headers", mime_folded_headers, 10, 0},
    {"email_mime_alternative_prefers_plain", mime_alternative_prefers_plain, 10, 0},
    {"email_mime_nested_with_attachment", mime_nested_with_attachment, 10, 0},
    {"email_mime_quoted_printable", mime_quoted_printable, 10, 0},
    {"email_mime_base64_body", mime_base64_body, 10, 0},
    {"email_mime_iso8859_1", mime_iso8859_1, 10, 0},
    {"email_mime_windows1252", mime_windows1252, 10, 0},
    {"email_mime_utf8_encoded_words", mime_utf8_encoded_words, 10, 0},
    {"email_mime_html_only", mime_html_only, 10, 0},
    {"email_mime_malformed_boundary", mime_malformed_boundary, 10, 0},
    {"email_mime_no_message_id", mime_no_message_id, 10, 0},
    {"email_mime_over_the_size_cap", mime_over_the_size_cap, 10, 0},
    {"email_mime_text_cut_with_marker", mime_text_cut_with_marker, 10, 0},
    {"email_mime_depth_and_parts_capped", mime_depth_and_parts_capped, 10, 0},
    {"email_mime_not_a_message", mime_not_a_message, 10, 0},
    {0},
};
