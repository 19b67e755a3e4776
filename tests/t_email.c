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
#include "aq_secret.h"
#include "aq_token.h"
#include "aq_imap.h"
#include "extract.h"
#include "tools.h"
#include "mime.h"
#include <sodium.h>
#include <cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* A worker talking to the fake as the model and as Telegram's Bot API; exe:
 * the worker executable (NULL: the build's). */
static pid_t worker_on_fake_at(const char *exe)
{
    static char base[200], tg[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    snprintf(tg, sizeof tg, "TELEGRAM_API_BASE=%s", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_MODEL=test-model", "AGENTQ_RETRY_BASE_MS=20",
                               "AGENTQ_POLL_MS=100", tg, "TELEGRAM_BOT_TOKEN=123:test", NULL};
    pid_t w = th_worker_at(exe ? exe : th_bin("agentq-worker"), NULL, env);
    /* the API accepts a type once a worker has published it, and a queue once a
     * worker serving it is registered (two rows, not written together) */
    th_wait_int(1, 20000, "SELECT count(*) FROM job_types WHERE name = 'email_processing'", NULL);
    th_wait_int(1, 20000, "SELECT count(*) FROM workers WHERE 'default' = ANY (queues)", NULL);
    return w;
}

static pid_t worker_on_fake(void) { return worker_on_fake_at(NULL); }

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
    snprintf(script, sizeof script, "[%.*s,\"match\":\"/chat/completions\"},{\"match\":\"/sendMessage\","
             "\"repeat\":-1,\"body\":{\"ok\":true,\"result\":{\"message_id\":7}}}]", (int)strlen(a) - 1, a);
    free(a);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("alice", 0);
    th_exec("INSERT INTO channels (user_id, kind, address) SELECT id, 'telegram', '4242' FROM users WHERE name ="
            " 'alice'", NULL);
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
    /* the owner hears of it: web inbox and the linked Telegram chat */
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM notifications WHERE body LIKE '2 suggested tasks from Dan%'"
                      " AND body LIKE '%- Sign the contract%'", NULL));
    CHECK(th_fake_wait(2, 20000));
    cJSON *reqs = th_fake_requests();
    const cJSON *send = cJSON_GetArrayItem(reqs, 1);
    CHECK_CONTAINS(th_jstr(send, "path"), "/bot123:test/sendMessage");
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(send, "body");
    CHECK_INT(th_jnum(sb, "chat_id"), 4242);
    CHECK_CONTAINS(th_jstr(sb, "text"), "2 suggested tasks from Dan <dan@example.com> (\"Contract\")");
    cJSON_Delete(reqs);
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

/* 1 if the process maps a file whose path contains what */
static int maps(pid_t pid, const char *what)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
    if (f) fclose(f);
    return found;
}

/* The worker loads GMime (through agentq-mime.so) when it first reads a
 * message, not before: an idle worker maps neither. */
static void worker_maps_gmime_only_for_mail(void)
{
    char *a = answer_step("{\"tasks\":[{\"title\":\"Call the plumber\"}]}");
    char script[4096];
    snprintf(script, sizeof script, "[%s]", a);
    free(a);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("carol", 0);
    pid_t w = worker_on_fake();
    CHECK(!maps(w, "libgmime"));
    CHECK(!maps(w, AQ_MIME_PLUGIN_FILE));
    long long id = post_email(tok, "plain");
    CHECK(wait_status(id, "succeeded", 20000));
    CHECK(maps(w, AQ_MIME_PLUGIN_FILE));
    CHECK(maps(w, "libgmime"));
    free(tok);
}

/* A worker deployed without agentq-mime.so beside it: the message's job is
 * retried with the reason, and read once the file is put in place (no
 * restart). */
static void without_the_plugin_retries_until_installed(void)
{
    char *a = answer_step("{\"tasks\":[{\"title\":\"Call the plumber\"}]}");
    char script[4096], dir[] = "/tmp/aq-mime-XXXXXX", exe[128], cmd[512];
    snprintf(script, sizeof script, "[%s]", a);
    free(a);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(exe, sizeof exe, "%s/agentq-worker", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", th_bin("agentq-worker"), exe);
    CHECK_INT(system(cmd), 0);
    th_fake(script, fake_url, sizeof fake_url);
    th_api(NULL);
    char *tok = th_user("dave", 0);
    worker_on_fake_at(exe);
    long long id = post_email(tok, "plain");
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'queued' AND attempts >= 1"
                      " AND last_error LIKE 'email support is not installed: %agentq-mime.so%'", th_num(id), NULL));
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 0);   /* nothing reached the model */
    cJSON_Delete(reqs);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", th_bin(AQ_MIME_PLUGIN_FILE), dir);
    CHECK_INT(system(cmd), 0);
    CHECK(wait_status(id, "succeeded", 30000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE source_job_id = $1 AND title = 'Call the plumber'",
                     th_num(id), NULL), 1);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
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

/* Found by the fuzzers: a priority far beyond an int (1e300) was converted
 * before it was compared, which is undefined behaviour (UBSan's
 * float-cast-overflow under SANITIZE=1); now refused as out of range. */
static void extract_check_huge_priority(void)
{
    cJSON *t = NULL;
    int capped;
    char why[300];
    const char *huge[] = {"1e300", "-1e300", "4294967296", "2.5"};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        char answer[100];
        snprintf(answer, sizeof answer, "{\"tasks\":[{\"title\":\"a\",\"priority\":%s}]}", huge[i]);
        CHECK_INT(aq_extract_check(answer, &t, &capped, why, sizeof why), AQ_EINVAL);
        CHECK_CONTAINS(why, "priority must be an integer from 0 to 3");
    }
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

/* A 1.5 MB message: over AGENTQ_MAX_BODY_BYTES and AGENTQ_MAX_INPUT_BYTES,
 * under AGENTQ_MAX_EMAIL_BYTES: the API takes it and the worker runs it. */
static void big_message_passes_body_and_input_caps(void)
{
    th_api(NULL);
    char *tok = th_user("kim", 0);
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};   /* LLM_PROVIDER offline: parsed, nothing suggested */
    th_worker(NULL, env);
    th_wait_int(1, 20000, "SELECT count(*) FROM job_types WHERE name = 'email_processing'", NULL);
    th_wait_int(1, 20000, "SELECT count(*) FROM workers WHERE 'default' = ANY (queues)", NULL);
    aq_buf raw;
    aq_buf_init(&raw);
    aq_buf_adds(&raw, "From: big@example.com\r\nSubject: Big\r\nMessage-ID: <big@example.com>\r\n\r\n");
    while (raw.len < 1500000) aq_buf_adds(&raw, "All work and no play makes a very long message.\r\n");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "email_processing");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "input"), "raw", raw.p);
    char *body = cJSON_PrintUnformatted(b);
    th_resp r = th_post("/v1/jobs", tok, body);
    CHECK_INT(r.status, 202);
    cJSON *j = cJSON_Parse(r.body);
    long long id = th_jnum(j, "job_id");
    cJSON_Delete(j);
    th_resp_free(&r);
    CHECK(wait_status(id, "succeeded", 30000));
    char *out = th_str("SELECT output->>'skipped' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(out, "LLM_PROVIDER=offline");
    free(out);
    free(body);
    cJSON_Delete(b);
    aq_buf_dispose(&raw);
    free(tok);
}

/* ---- tasks in the API and the agent's list_tasks ---- */

static long long user_id_of(const char *name)
{
    return th_int("SELECT id FROM users WHERE name = $1", name, NULL);
}

static long long suggested_task(long long uid, const char *title)
{
    return th_int("INSERT INTO tasks (user_id, title, is_ai_suggested, suggestion, source_job_id, source_index,"
                  " source_from, source_subject, source_message_id) VALUES ($1, $2, true, 'pending', 99, $3,"
                  " 'Dan <dan@example.com>', 'Contract', 'm@example.com') RETURNING id", th_num(uid), title,
                  th_num(th_int("SELECT count(*) FROM tasks", NULL) + 1), NULL);
}

static void tasks_api_lists_accepts_and_dismisses(void)
{
    th_api(NULL);
    char *tok = th_user("fay", 0), *other = th_user("gus", 0);
    long long uid = user_id_of("fay");
    long long a = suggested_task(uid, "Sign the contract"), b = suggested_task(uid, "Call legal");
    long long own = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'Buy milk') RETURNING id", th_num(uid), NULL);
    th_resp r = th_get("/v1/tasks?suggested=true", tok);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    CHECK_INT(cJSON_GetArraySize(items), 2);
    const cJSON *first = cJSON_GetArrayItem(items, 0);
    CHECK_STR(th_jstr(first, "suggestion"), "pending");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(first, "is_ai_suggested")));
    CHECK_STR(th_jstr(cJSON_GetObjectItemCaseSensitive(first, "source"), "subject"), "Contract");
    CHECK_STR(th_jstr(cJSON_GetObjectItemCaseSensitive(first, "source"), "message_id"), "m@example.com");
    cJSON_Delete(j);
    th_resp_free(&r);
    char path[96];
    snprintf(path, sizeof path, "/v1/tasks/%lld/accept", a);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_STR(th_jstr(j, "suggestion"), "accepted");
    CHECK_STR(th_jstr(j, "status"), "open");
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_post(path, tok, NULL);   /* again: the task as it is */
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    r = th_post(path, other, NULL);   /* someone else's */
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/tasks/%lld/dismiss", b);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_STR(th_jstr(j, "status"), "dismissed");
    CHECK_STR(th_jstr(j, "suggestion"), "dismissed");
    cJSON_Delete(j);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/tasks/%lld/accept", b);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 409);
    CHECK_CONTAINS(r.body, "already dismissed");
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/tasks/%lld/dismiss", own);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 409);
    CHECK_CONTAINS(r.body, "not suggested");
    th_resp_free(&r);
    /* the default list leaves the dismissed one out; status=dismissed shows it */
    r = th_get("/v1/tasks", tok);
    j = cJSON_Parse(r.body);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "items")), 2);
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_get("/v1/tasks?status=dismissed", tok);
    CHECK_CONTAINS(r.body, "Call legal");
    th_resp_free(&r);
    r = th_get("/v1/tasks?suggested=true", tok);
    CHECK_CONTAINS(r.body, "\"items\" : []");
    th_resp_free(&r);
    r = th_get("/v1/tasks?suggested=maybe", tok);
    CHECK_INT(r.status, 422);
    th_resp_free(&r);
    r = th_get("/v1/tasks", other);
    CHECK_CONTAINS(r.body, "\"items\" : []");
    th_resp_free(&r);
    free(tok);
    free(other);
}

static void list_tasks_tool_shows_suggestions(void)
{
    long long uid = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('hal', 'hal', '\\x00')"
                           " RETURNING id", NULL);
    suggested_task(uid, "Sign the contract");
    th_exec("INSERT INTO tasks (user_id, title) VALUES ($1, 'Buy milk')", th_num(uid), NULL);
    th_exec("INSERT INTO tasks (user_id, title, status, is_ai_suggested, suggestion) VALUES ($1, 'Gone',"
            " 'dismissed', true, 'dismissed')", th_num(uid), NULL);
    const aq_tool *t = aq_tool_find("list_tasks");
    CHECK(t != NULL);
    char *err = NULL;
    cJSON *args = cJSON_CreateObject();
    char *out = aq_tool_run(t, th_db(), uid, args, &err);
    CHECK(out != NULL);
    cJSON *list = out ? cJSON_Parse(out) : NULL;
    CHECK_INT(cJSON_GetArraySize(list), 2);   /* the dismissed one is not listed */
    const cJSON *sug = cJSON_GetArrayItem(list, 0), *mine = cJSON_GetArrayItem(list, 1);
    CHECK_STR(th_jstr(sug, "title"), "Sign the contract");
    CHECK_STR(th_jstr(sug, "suggestion"), "pending");
    CHECK_STR(th_jstr(cJSON_GetObjectItemCaseSensitive(sug, "source"), "subject"), "Contract");
    CHECK_STR(th_jstr(mine, "title"), "Buy milk");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(mine, "suggestion")));
    cJSON_Delete(list);
    CHECK_CONTAINS(t->description, "suggest");
    free(out);
    free(err);
    cJSON_Delete(args);
}

/* ---- sealed secrets ---- */

static void secret_seal_and_open(void)
{
    unsigned char k1[32], k2[32];
    memset(k1, 1, sizeof k1);
    memset(k2, 2, sizeof k2);
    size_t n1, n2;
    unsigned char *s1 = aq_secret_seal(k1, "hunter2", 7, &n1), *s2 = aq_secret_seal(k1, "hunter2", 7, &n2);
    CHECK_INT(n1, 7 + AQ_SECRET_OVERHEAD);
    CHECK(memcmp(s1, s2, n1) != 0);           /* a fresh nonce per seal */
    CHECK(memmem(s1, n1, "hunter2", 7) == NULL);
    char *p = aq_secret_open(k1, s1, n1);
    CHECK_STR(p, "hunter2");
    free(p);
    CHECK(aq_secret_open(k2, s1, n1) == NULL);   /* another key: refused, not garbage */
    s1[n1 - 1] ^= 1;
    CHECK(aq_secret_open(k1, s1, n1) == NULL);   /* tampered */
    CHECK(aq_secret_open(k1, s1, 10) == NULL);   /* too short */
    free(s1);
    free(s2);
}

/* A connection row sealed with TH_SECRET_KEY, as the API writes it. */
static long long sealed_connection(long long uid, const char *host, int port, int tls, const char *user,
                                   const char *password)
{
    unsigned char key[32];
    char err[100];
    CHECK_INT(aq_secret_key_parse(TH_SECRET_KEY, key, err, sizeof err), 0);
    size_t n;
    unsigned char *sealed = aq_secret_seal(key, password, strlen(password), &n);
    char *hex = malloc(2 * n + 3);
    memcpy(hex, "\\x", 2);
    sodium_bin2hex(hex + 2, 2 * n + 1, sealed, n);
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    long long id = th_int("INSERT INTO connections (user_id, kind, host, port, tls, tls_verify, username, password)"
                          " VALUES ($1, 'imap', $2, $3, $4, false, $5, $6::bytea) RETURNING id", th_num(uid), host,
                          ports, tls ? "true" : "false", user, hex, NULL);
    free(hex);
    free(sealed);
    return id;
}

static void imap_poll_with_another_key_cannot_decrypt(void)
{
    long long uid = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('ida', 'ida', '\\x00')"
                           " RETURNING id", NULL);
    long long conn = sealed_connection(uid, "127.0.0.1", 9, 0, "ida", "s3cret-pass");
    const char *const env[] = {"AGENTQ_SECRET_KEY=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                               "AGENTQ_SCHEDULE_TICK_MS=100", "AGENTQ_POLL_MS=100", NULL};
    pid_t w = th_worker(NULL, env);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND status = 'failed'"
                      " AND last_error LIKE 'cannot decrypt%'", NULL));
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM connections WHERE id = $1 AND status = 'failing'"
                      " AND last_error LIKE 'cannot decrypt%'", th_num(conn), NULL));
    CHECK(th_alive(w));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE last_error LIKE '%s3cret-pass%' OR output::text LIKE"
                     " '%s3cret-pass%'", NULL), 0);
}

/* ---- IMAP end to end against a real dovecot (tests/dovecot.sh) ---- */

extern char th_log[512];
static char dv_dir[512];
static int dv_port, dv_tlsport;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static int dovecot(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int dovecot(const char *fmt, ...)
{
    char args[1024], cmd[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "sh tests/dovecot.sh %s >>'%s' 2>&1", args, th_log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Start (or restart, same ports) the test's dovecot with user ann. */
static void dovecot_start(const char *password)
{
    if (!dv_dir[0]) {
        const char *slash = strrchr(th_log, '/');
        snprintf(dv_dir, sizeof dv_dir, "%.*s/dovecot-%d", (int)(slash ? slash - th_log : 1), th_log, (int)getpid());
        dv_port = free_port();
        dv_tlsport = free_port();
    }
    CHECK_INT(dovecot("start '%s' %d %d ann '%s'", dv_dir, dv_port, dv_tlsport, password), 0);
}

static void dovecot_stop(void) { CHECK_INT(dovecot("stop '%s'", dv_dir), 0); }
static void deliver(const char *fixture)
{
    CHECK_INT(dovecot("deliver '%s' ann tests/fixtures/email/%s.eml", dv_dir, fixture), 0);
}

/* Unseen messages in ann's INBOX now (-1 when the server cannot say). */
static long long unseen_now(const char *password)
{
    aq_imap_account a = {.host = "127.0.0.1", .port = dv_port, .username = "ann", .password = password,
                         .mailbox = "INBOX", .timeout_ms = 10000};
    aq_imap *s = aq_imap_open(&a);
    uint32_t *uids = NULL;
    size_t n = 0;
    int rc = aq_imap_unseen(s, 1000, &uids, &n);
    free(uids);
    aq_imap_close(s);
    return rc ? -1 : (long long)n;
}

static pid_t imap_worker(const char *extra)
{
    static char base[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_MODEL=test-model", "AGENTQ_RETRY_BASE_MS=20",
                               "AGENTQ_POLL_MS=100", "AGENTQ_SECRET_KEY=" TH_SECRET_KEY,
                               "AGENTQ_IMAP_POLL_SECONDS=1", "AGENTQ_SCHEDULE_TICK_MS=100",
                               "AGENTQ_TRANSIENT_BACKOFF_MAX_MS=300", "AGENTQ_IMAP_TIMEOUT_MS=5000",
                               extra ? extra : "AGENTQ_LOG_LEVEL=info", NULL};
    return th_worker(NULL, env);
}

/* POST /v1/connections for ann; the response (free it). */
static th_resp post_connection(const char *tok, int port, int tls, int verify, const char *password)
{
    char body[512];
    snprintf(body, sizeof body, "{\"kind\":\"imap\",\"host\":\"127.0.0.1\",\"port\":%d,\"tls\":%s,\"tls_verify\":%s,"
             "\"username\":\"ann\",\"password\":\"%s\",\"mailbox\":\"INBOX\"}", port, tls ? "true" : "false",
             verify ? "true" : "false", password);
    return th_post("/v1/connections", tok, body);
}

static void one_task_model(void)
{
    char *a = answer_step("{\"tasks\":[{\"title\":\"Follow up\"}]}");
    char script[1024];
    snprintf(script, sizeof script, "[%.*s,\"repeat\":-1}]", (int)strlen(a) - 1, a);
    free(a);
    th_fake(script, fake_url, sizeof fake_url);
}

static void imap_two_unseen_become_tasks_once(void)
{
    one_task_model();
    dovecot_start("pw-ann-1");
    deliver("plain");
    deliver("alternative");
    th_api(NULL);
    char *tok = th_user("ann", 0);
    th_resp r = post_connection(tok, dv_port, 0, 0, "pw-ann-1");
    CHECK_INT(r.status, 201);
    CHECK(!strstr(r.body, "pw-ann-1"));
    CHECK(!strstr(r.body, "password"));
    th_resp_free(&r);
    r = th_get("/v1/connections", tok);
    CHECK_CONTAINS(r.body, "\"username\" : \"ann\"");
    CHECK_CONTAINS(r.body, "\"status\" : \"active\"");
    CHECK(!strstr(r.body, "pw-ann-1"));
    th_resp_free(&r);
    /* the column holds nonce + ciphertext, not the password */
    CHECK_INT(th_int("SELECT count(*) FROM connections WHERE position(convert_to('pw-ann-1', 'UTF8') in password) = 0"
                     " AND length(password) = 8 + 40", NULL), 1);
    CHECK_INT(unseen_now("pw-ann-1"), 2);   /* the test login set no flag */
    imap_worker(NULL);
    CHECK(th_wait_int(2, 30000, "SELECT count(*) FROM jobs WHERE job_type = 'email_processing' AND status ="
                      " 'succeeded' AND user_id = (SELECT id FROM users WHERE name = 'ann')", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE is_ai_suggested AND suggestion = 'pending' AND"
                     " source_subject IN ('Lunch on Friday', 'Your order')", NULL), 2);
    CHECK(th_wait_int(2, 20000, "SELECT count(*) FROM notifications WHERE body LIKE '1 suggested task from%'", NULL));
    CHECK_INT(unseen_now("pw-ann-1"), 0);   /* \Seen, after their jobs */
    /* later polls find nothing new */
    long long polls = th_int("SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND status = 'succeeded'", NULL);
    CHECK(th_wait_int(1, 20000, "SELECT (count(*) >= $1::int + 2)::int FROM jobs WHERE job_type = 'imap_poll'"
                      " AND status = 'succeeded'", th_num(polls), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'email_processing'", NULL), 2);
    /* the same message again (same Message-ID): fetched, not processed twice, marked seen */
    deliver("plain");
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND"
                      " (output->>'already_queued')::int = 1", NULL));
    CHECK_INT(unseen_now("pw-ann-1"), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'email_processing'", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM tasks", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM connections WHERE status = 'active' AND last_polled_at IS NOT NULL", NULL), 1);
    dovecot_stop();
    free(tok);
}

static void imap_tls_verified_and_not(void)
{
    one_task_model();
    dovecot_start("pw-ann-2");
    deliver("utf8_subject");
    th_api(NULL);
    char *tok = th_user("ann", 0);
    th_resp r = post_connection(tok, dv_tlsport, 1, 1, "pw-ann-2");   /* self-signed, no CA given */
    CHECK_INT(r.status, 422);
    CHECK_CONTAINS(r.body, "nothing was saved");
    th_resp_free(&r);
    r = post_connection(tok, dv_tlsport, 1, 0, "pw-ann-2");         /* tls_verify false */
    CHECK_INT(r.status, 201);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM connections", NULL), 1);
    th_exec("DELETE FROM connections", NULL);
    char ca[600];
    snprintf(ca, sizeof ca, "AGENTQ_IMAP_CA_FILE=%s/cert.pem", dv_dir);
    th_api((const char *const[]){ca, NULL});
    r = post_connection(tok, dv_tlsport, 1, 1, "pw-ann-2");         /* verified against the harness's cert */
    CHECK_INT(r.status, 201);
    th_resp_free(&r);
    imap_worker(ca);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM tasks WHERE source_subject = $1",
                      "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\xba\x96\xe5\x82\x99 \xe2\x9c\x85", NULL));
    CHECK_INT(unseen_now("pw-ann-2"), 0);
    dovecot_stop();
    free(tok);
}

static void imap_wrong_password_marks_failing(void)
{
    one_task_model();
    dovecot_start("pw-right");
    th_api(NULL);
    char *tok = th_user("ann", 0);
    th_resp r = post_connection(tok, dv_port, 0, 0, "pw-wrong");
    CHECK_INT(r.status, 422);
    CHECK_CONTAINS(r.body, "Authentication failed");
    CHECK(!strstr(r.body, "pw-wrong"));
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM connections", NULL), 0);
    r = post_connection(tok, dv_port, 0, 0, "pw-right");
    CHECK_INT(r.status, 201);
    th_resp_free(&r);
    CHECK_INT(dovecot("passwd '%s' ann pw-changed", dv_dir), 0);   /* the user changed it on the server */
    th_sleep_ms(1500);   /* dovecot looks at its users file at most once a second */
    deliver("plain");
    imap_worker(NULL);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM connections WHERE status = 'failing'"
                      " AND last_error LIKE '%Authentication failed%'", NULL));
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND status = 'succeeded'"
                      " AND output->>'failing' LIKE '%Authentication failed%'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'email_processing'", NULL), 0);
    r = th_get("/v1/connections", tok);
    CHECK_CONTAINS(r.body, "\"status\" : \"failing\"");
    th_resp_free(&r);
    dovecot_stop();
    free(tok);
}

static void imap_server_stopped_poll_retries(void)
{
    one_task_model();
    dovecot_start("pw-ann-3");
    th_api(NULL);
    char *tok = th_user("ann", 0);
    th_resp r = post_connection(tok, dv_port, 0, 0, "pw-ann-3");
    CHECK_INT(r.status, 201);
    th_resp_free(&r);
    dovecot_stop();
    deliver("plain");   /* mail arrives while the server is down */
    imap_worker(NULL);
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND status = 'queued'"
                      " AND last_error IS NOT NULL", NULL));
    long long poll = th_int("SELECT min(id) FROM jobs WHERE job_type = 'imap_poll' AND last_error IS NOT NULL", NULL);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM connections WHERE status = 'failing'", NULL));
    dovecot_start("pw-ann-3");
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE id = $1 AND status = 'succeeded'", th_num(poll),
                      NULL));
    CHECK(th_wait_int(1, 30000, "SELECT count(*) FROM jobs WHERE job_type = 'email_processing' AND status ="
                      " 'succeeded'", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'email_processing'", NULL), 1);
    CHECK(th_wait_int(1, 10000, "SELECT count(*) FROM connections WHERE status = 'active'", NULL));
    CHECK_INT(unseen_now("pw-ann-3"), 0);
    dovecot_stop();
    free(tok);
}

static void imap_poll_queued_once_per_period(void)
{
    long long uid = th_int("INSERT INTO users (name, token_id, token_hash) VALUES ('jo', 'jo', '\\x00')"
                           " RETURNING id", NULL);
    sealed_connection(uid, "127.0.0.1", free_port(), 0, "jo", "pw");   /* nobody listens: polls retry */
    const char *const env[] = {"AGENTQ_SECRET_KEY=" TH_SECRET_KEY, "AGENTQ_IMAP_POLL_SECONDS=3600",
                               "AGENTQ_SCHEDULE_TICK_MS=50", NULL};
    th_worker(NULL, env);
    th_worker(NULL, env);
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll'", NULL));
    /* many ticks of both workers later, still the one poll of this period */
    CHECK(th_wait_int(1, 20000, "SELECT count(*) FROM jobs WHERE job_type = 'imap_poll' AND last_error IS NOT NULL",
                      NULL));
    th_sleep_ms(1000);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'imap_poll'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM connections WHERE next_poll_at > now() + interval '3000 seconds'", NULL), 1);
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
    {"email_extract_check_huge_priority", extract_check_huge_priority, 10, 0},
    {"email_api_checks_the_input", email_api_checks_the_input, 60, 1},
    {"email_big_message_passes_body_and_input_caps", big_message_passes_body_and_input_caps, 60, 1},
    {"email_tasks_api_lists_accepts_and_dismisses", tasks_api_lists_accepts_and_dismisses, 60, 1},
    {"email_list_tasks_tool_shows_suggestions", list_tasks_tool_shows_suggestions, 30, 1},
    {"email_secret_seal_and_open", secret_seal_and_open, 10, 0},
    {"email_imap_two_unseen_become_tasks_once", imap_two_unseen_become_tasks_once, 120, 1},
    {"email_imap_tls_verified_and_not", imap_tls_verified_and_not, 120, 1},
    {"email_imap_wrong_password_marks_failing", imap_wrong_password_marks_failing, 120, 1},
    {"email_imap_server_stopped_poll_retries", imap_server_stopped_poll_retries, 120, 1},
    {"email_imap_poll_queued_once_per_period", imap_poll_queued_once_per_period, 60, 1},
    {"email_imap_poll_with_another_key_cannot_decrypt", imap_poll_with_another_key_cannot_decrypt, 60, 1},
    {"email_extract_valid_answer_stores_suggestions_and_notifies",
     extract_valid_answer_stores_suggestions_and_notifies, 60, 1},
    {"email_extract_invalid_then_valid_retries_with_the_reason", extract_invalid_then_valid_retries_with_the_reason,
     60, 1},
    {"email_extract_refused_twice_fails_with_the_reason", extract_refused_twice_fails_with_the_reason, 60, 1},
    {"email_extract_hundred_tasks_capped_at_twenty", extract_hundred_tasks_capped_at_twenty, 60, 1},
    {"email_worker_maps_gmime_only_for_mail", worker_maps_gmime_only_for_mail, 60, 1},
    {"email_without_the_plugin_retries_until_installed", without_the_plugin_retries_until_installed, 60, 1},
    {0},
};
