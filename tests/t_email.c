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
#include "extract.h"
#include "mime.h"
#include <sodium.h>
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

/* ---- the handler against a fake model, through the API ---- */

static char fake_url[128];

static pid_t worker_on_fake(void)
{
    static char base[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_MODEL=test-model", "AGENTQ_RETRY_BASE_MS=20",
                               "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    /* the API accepts a type once a worker has published it */
    th_wait_int(1, 20000, "SELECT count(*) FROM job_types WHERE name = 'email_processing'", NULL);
    return w;
}

/* A fake model step answering content (any text). */
static char *answer_step(const char *content)
{
    cJSON *step = cJSON_CreateObject();
    cJSON *body = cJSON_AddObjectToObject(step, "body");
    cJSON *choices = cJSON_AddArrayToObject(body, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", content);
    cJSON_AddItemToArray(choices, ch);
    char *s = cJSON_PrintUnformatted(step);
    cJSON_Delete(step);
    return s;
}

/* POST an email_processing job with the fixture NAME as raw; its id. */
static long long post_email(const char *tok, const char *name)
{
    char path[200];
    snprintf(path, sizeof path, "tests/fixtures/email/%s.eml", name);
    char *raw = slurp(path, NULL);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "email_processing");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "input"), "raw", raw ? raw : "");
    char *body = cJSON_PrintUnformatted(b);
    th_resp r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 202);
    if (r.status != 202) fprintf(stderr, "POST /v1/jobs: %s\n", r.body);
    cJSON *j = cJSON_Parse(r.body);
    long long id = th_jnum(j, "id") > 0 ? th_jnum(j, "id") : th_jnum(j, "job_id");
    cJSON_Delete(j);
    th_resp_free(&r);
    free(body);
    cJSON_Delete(b);
    free(raw);
    return id;
}

static int wait_status(long long id, const char *status, int ms)
{
    return th_wait_int(1, ms, "SELECT count(*) FROM jobs WHERE id = $1 AND status = $2", th_num(id), status, NULL);
}

/* The user-turn text the fake received in request i (0-based) at message m. */
static char *sent_content(int i, int m)
{
    cJSON *reqs = th_fake_requests();
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, i), "body"), "messages");
    const char *c = th_jstr(cJSON_GetArrayItem(msgs, m), "content");
    char *s = c ? aq_strdup(c) : NULL;
    cJSON_Delete(reqs);
    return s;
}

static void extract_valid_answer_stores_suggestions_and_notifies(void)
{
    char *a = answer_step("{\"tasks\":[{\"title\":\"Sign the contract\",\"due_at\":\"2026-12-05\",\"priority\":2},"
                          "{\"title\":\"Send a copy to legal\",\"notes\":\"PDF attached\"}]}");
    char script[4096];
    snprintf(script, sizeof script, "[%s]", a);
    free(a);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("alice", 0);
    worker_on_fake();
    long long id = post_email(tok, "nested_attachment");
    CHECK(wait_status(id, "succeeded", 20000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE source_job_id = $1 AND is_ai_suggested"
                     " AND suggestion = 'pending' AND status = 'open' AND source_from = 'Dan <dan@example.com>'"
                     " AND source_subject = 'Contract' AND source_message_id = 'nested-1@example.com'"
                     " AND user_id = (SELECT id FROM users WHERE name = 'alice')", th_num(id), NULL), 2);
    char *due = th_str("SELECT to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM tasks WHERE title ="
                       " 'Sign the contract'", NULL);
    CHECK_STR(due, "2026-12-05");
    free(due);
    CHECK_INT(th_int("SELECT priority FROM tasks WHERE title = 'Sign the contract'", NULL), 2);
    /* the model read the parsed message, and the attachment only as a line */
    char *user = sent_content(0, 1);
    CHECK_CONTAINS(user, "From: Dan <dan@example.com>");
    CHECK_CONTAINS(user, "Subject: Contract");
    CHECK_CONTAINS(user, "Sign the contract by the 5th.");
    CHECK_CONTAINS(user, "contract.pdf (application/pdf, 240 bytes)");
    CHECK(user && !strstr(user, "%PDF"));
    free(user);
    /* the owner hears of it (web inbox; no chat linked) */
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM notifications WHERE body LIKE '2 suggested tasks from Dan%'"
                      " AND body LIKE '%- Sign the contract%'", NULL));
    free(tok);
}

static void extract_invalid_then_valid_retries_with_the_reason(void)
{
    char *a = answer_step("Sure! Here are the tasks: call the plumber.");
    char *b = answer_step("```json\n{\"tasks\":[{\"title\":\"Call the plumber\"}]}\n```");
    char script[4096];
    snprintf(script, sizeof script, "[%s,%s]", a, b);
    free(a);
    free(b);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("bob", 0);
    worker_on_fake();
    long long id = post_email(tok, "malformed_boundary");
    CHECK(wait_status(id, "succeeded", 20000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE source_job_id = $1 AND title = 'Call the plumber'",
                     th_num(id), NULL), 1);
    char *again = sent_content(1, 3);   /* system, user, the refused answer, the reason */
    CHECK_CONTAINS(again, "Your answer was refused: the answer is not one JSON object");
    free(again);
    char *out = th_str("SELECT output->>'retried' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(out, "true");
    free(out);
    free(tok);
}

static void extract_refused_twice_fails_with_the_reason(void)
{
    char title[400];
    memset(title, 'x', 300);
    title[300] = '\0';
    char content[600];
    snprintf(content, sizeof content, "{\"tasks\":[{\"title\":\"%s\"}]}", title);
    char *a = answer_step(content);
    char script[8192];
    snprintf(script, sizeof script, "[%s,%s]", a, a);
    free(a);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("carl", 0);
    worker_on_fake();
    long long id = post_email(tok, "plain");
    CHECK(wait_status(id, "failed", 20000));
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "refused twice");
    CHECK_CONTAINS(err, "tasks[0].title is longer than 200 characters");
    free(err);
    char *again = sent_content(1, 3);
    CHECK_CONTAINS(again, "tasks[0].title is longer than 200 characters");
    free(again);
    CHECK_INT(th_int("SELECT count(*) FROM tasks", NULL), 0);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM notifications WHERE kind = 'failure'", NULL));
    free(tok);
}

static void extract_hundred_tasks_capped_at_twenty(void)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{\"tasks\":[");
    for (int i = 0; i < 100; i++) aq_buf_addf(&b, "%s{\"title\":\"Task %d\"}", i ? "," : "", i);
    aq_buf_adds(&b, "]}");
    char *a = answer_step(b.p);
    aq_buf_dispose(&b);
    aq_buf s;
    aq_buf_init(&s);
    aq_buf_addf(&s, "[%s]", a);
    free(a);
    th_fake(s.p, fake_url, sizeof fake_url);
    aq_buf_dispose(&s);
    th_api(NULL);
    char *tok = th_user("dora", 0);
    worker_on_fake();
    long long id = post_email(tok, "html_only");
    CHECK(wait_status(id, "succeeded", 20000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE source_job_id = $1", th_num(id), NULL), 20);
    CHECK_INT(th_int("SELECT max(source_index) FROM tasks WHERE source_job_id = $1", th_num(id), NULL), 20);
    char *capped = th_str("SELECT output->>'capped' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(capped, "true");
    free(capped);
    CHECK_INT(th_fake_wait(1, 1000), 1);
    free(tok);
}

static void extract_check_unit(void)
{
    cJSON *t;
    int capped;
    char why[300];
    CHECK_INT(aq_extract_check("{\"tasks\":[]}", &t, &capped, why, sizeof why), 0);
    CHECK_INT(cJSON_GetArraySize(t), 0);
    cJSON_Delete(t);
    CHECK_INT(aq_extract_check("{\"tasks\":[{\"title\":\"a\",\"priority\":7}]}", &t, &capped, why, sizeof why),
              AQ_EINVAL);
    CHECK_CONTAINS(why, "priority");
    CHECK_INT(aq_extract_check("{\"tasks\":[{\"title\":\"a\",\"due_at\":\"next friday\"}]}", &t, &capped, why,
                               sizeof why), AQ_EINVAL);
    CHECK_CONTAINS(why, "due_at");
    CHECK_INT(aq_extract_check("{\"tasks\":[{\"title\":\"  \"}]}", &t, &capped, why, sizeof why), AQ_EINVAL);
    CHECK_INT(aq_extract_check("{\"tasks\":{}}", &t, &capped, why, sizeof why), AQ_EINVAL);
    CHECK_INT(aq_extract_check("{\"tasks\":[],\"tasks\":[]}", &t, &capped, why, sizeof why), AQ_EINVAL);
    CHECK_INT(aq_extract_check("{\"tasks\":[{\"title\":\"a\",\"notes\":5}]}", &t, &capped, why, sizeof why),
              AQ_EINVAL);
    CHECK_INT(aq_extract_check("{\"tasks\":[{\"title\":\"a\",\"due_at\":\"2026-12-01T15:00:00Z\",\"priority\":3,"
                               "\"extra\":1}]}", &t, &capped, why, sizeof why), 0);
    char *s = cJSON_PrintUnformatted(t);
    CHECK_STR(s, "[{\"title\":\"a\",\"notes\":null,\"due_at\":\"2026-12-01T15:00:00Z\",\"priority\":3}]");
    free(s);
    cJSON_Delete(t);
}

static void email_api_checks_the_input(void)
{
    th_api((const char *const[]){"AGENTQ_MAX_EMAIL_BYTES=1000", "AGENTQ_MAX_BODY_BYTES=1024",
                                 "AGENTQ_API_QUEUES=default", NULL});
    char *tok = th_user("erin", 0);
    /* as a worker would publish it (none runs here) */
    th_exec("INSERT INTO job_types (name, api_enqueue, max_attempts, timeout_s) VALUES ('email_processing', true,"
            " 10, 300)", NULL);
    struct { const char *body; long status; const char *says; } cases[] = {
        {"{\"type\":\"email_processing\",\"input\":{}}", 422, "exactly one of raw"},
        {"{\"type\":\"email_processing\",\"input\":{\"raw\":\"a\",\"raw_base64\":\"YQ==\"}}", 422, "exactly one"},
        {"{\"type\":\"email_processing\",\"input\":{\"raw\":5}}", 422, "exactly one"},
        {"{\"type\":\"email_processing\",\"input\":{\"raw\":\"\"}}", 422, "empty"},
        {"{\"type\":\"email_processing\",\"input\":{\"raw_base64\":\"not base64!\"}}", 422, "not valid base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_resp r = th_post("/v1/jobs", tok, cases[i].body);
        CHECK_INT(r.status, cases[i].status);
        CHECK_CONTAINS(r.body, cases[i].says);
        th_resp_free(&r);
    }
    /* cap + 1 bytes: 413, as raw and as base64; exactly the cap: accepted, though the body is over 1024 */
    char raw[1100], b64[1500], body[3000];
    memset(raw, 'a', 1001);
    raw[1001] = '\0';
    snprintf(body, sizeof body, "{\"type\":\"email_processing\",\"input\":{\"raw\":\"%s\"}}", raw);
    th_resp r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 413);
    CHECK_CONTAINS(r.body, "AGENTQ_MAX_EMAIL_BYTES");
    th_resp_free(&r);
    sodium_bin2base64(b64, sizeof b64, (unsigned char *)raw, 1001, sodium_base64_VARIANT_ORIGINAL);
    snprintf(body, sizeof body, "{\"type\":\"email_processing\",\"input\":{\"raw_base64\":\"%s\"}}", b64);
    r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 413);
    th_resp_free(&r);
    sodium_bin2base64(b64, sizeof b64, (unsigned char *)raw, 1000, sodium_base64_VARIANT_ORIGINAL);
    snprintf(body, sizeof body, "{\"type\":\"email_processing\",\"input\":{\"raw_base64\":\"%s\"}}", b64);
    r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 202);
    if (r.status != 202) fprintf(stderr, "%s\n", r.body);
    th_resp_free(&r);
    /* another type keeps AGENTQ_MAX_BODY_BYTES */
    snprintf(body, sizeof body, "{\"type\":\"noop\",\"input\":{\"pad\":\"%s\"}}", raw);
    r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 413);
    th_resp_free(&r);
    free(tok);
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
    {"email_extract_check_unit", extract_check_unit, 10, 0},
    {"email_api_checks_the_input", email_api_checks_the_input, 60, 1},
    {"email_extract_valid_answer_stores_suggestions_and_notifies",
     extract_valid_answer_stores_suggestions_and_notifies, 60, 1},
    {"email_extract_invalid_then_valid_retries_with_the_reason", extract_invalid_then_valid_retries_with_the_reason,
     60, 1},
    {"email_extract_refused_twice_fails_with_the_reason", extract_refused_twice_fails_with_the_reason, 60, 1},
    {"email_extract_hundred_tasks_capped_at_twenty", extract_hundred_tasks_capped_at_twenty, 60, 1},
    {0},
};
