/* t_telegram.c — notification routing and the Telegram channel end to end:
 * the real API (webhook, link codes, channels, the web inbox) and workers
 * against a real Postgres, with one bin/agentq-fake standing in for both
 * Telegram's Bot API (steps matched on /sendMessage, /answerCallbackQuery)
 * and, where a test needs a scripted model, the LLM (/chat/completions).
 * Covered: the webhook's secret and update dedupe, linking a chat with
 * single-use codes (expired, unknown, reused, relink), replies routed to the
 * chat they came from, long replies split in order (runaway ones cut to the
 * notification cap), 429/5xx retries, a bot blocked by the user, a worker
 * killed between chunks, approvals by inline button, the web inbox API, and
 * scheduled runs reaching every channel. */
#include "harness.h"
#include "aq_tg_api.h"
#include <cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token: s3cret"
#define SEND_PATH "/bot123:test/sendMessage"
#define TG_OK "{\"match\":\"/sendMessage\",\"repeat\":-1,\"body\":{\"ok\":true,\"result\":{\"message_id\":7}}}"
#define TG_ANSWER "{\"match\":\"/answerCallbackQuery\",\"repeat\":-1,\"body\":{\"ok\":true,\"result\":true}}"
#define WAIT_MS 15000

static char fake_url[128];

/* ---- small helpers ---- */

/* s, or "" for NULL: a NULL would end a th_* parameter list early */
static const char *nz(const char *s) { return s ? s : ""; }

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static pid_t api_tg(void)
{
    const char *const env[] = {"TELEGRAM_WEBHOOK_SECRET=s3cret", NULL};
    return th_api(env);
}

/* A worker whose Telegram is the fake; the LLM is the offline responder, or
 * the fake (openai) when openai is set. extra: one more "K=V" or NULL. */
static pid_t worker_tg(int openai, const char *extra)
{
    static char base[200], llm[200];
    snprintf(base, sizeof base, "TELEGRAM_API_BASE=%s", fake_url);
    snprintf(llm, sizeof llm, "LLM_BASE_URL=%s/v1", fake_url);
    const char *env[16];
    int n = 0;
    env[n++] = "TELEGRAM_BOT_TOKEN=123:test";
    env[n++] = base;
    env[n++] = "AGENTQ_POLL_MS=100";
    env[n++] = "AGENTQ_RETRY_BASE_MS=50";
    env[n++] = "AGENTQ_SCHEDULE_TICK_MS=100";
    if (openai) {
        env[n++] = "LLM_PROVIDER=openai";
        env[n++] = llm;
        env[n++] = "LLM_API_KEY=sk-test";
        env[n++] = "LLM_MODEL=test-model";
    } else {
        env[n++] = "LLM_PROVIDER=offline";
    }
    if (extra) env[n++] = extra;
    env[n] = NULL;
    return th_worker(NULL, env);
}

static long long user_id(const char *name)
{
    return th_int("SELECT id FROM users WHERE name = $1", name, NULL);
}

/* A user without a token (for tests that never call the API as that user). */
static long long new_user(const char *name)
{
    return th_int("INSERT INTO users (name, token_id, token_hash) VALUES ($1, $1, '\\x00') RETURNING id", name, NULL);
}

static void link_in_db(long long uid, long long chat)
{
    th_exec("INSERT INTO channels (user_id, kind, address) VALUES ($1, 'telegram', $2)", th_num(uid), th_num(chat),
            NULL);
}

static long long insert_notify(long long uid, long long chat, const char *text)
{
    return th_int("INSERT INTO jobs (job_type, user_id, input) VALUES ('notify', $1, json_build_object('to', 'telegram',"
                  " 'chat_id', $2::bigint, 'kind', 'info', 'text', $3::text)) RETURNING id",
                  th_num(uid), th_num(chat), text, NULL);
}

static int wait_job(long long id, const char *status)
{
    return th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE id = $1 AND status = $2", th_num(id), status, NULL);
}

/* Nothing runnable left (jobs delayed by an hour or more, like approval
 * expiries, do not count). */
static int wait_idle(void)
{
    return th_wait_int(0, WAIT_MS, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                       " AND run_at < now() + interval '1 hour'", NULL);
}

/* ---- updates through the webhook ---- */

static th_resp webhook(const char *body)
{
    const char *const h[] = {SECRET_HEADER, NULL};
    return th_http("POST", "/v1/telegram/webhook", NULL, body, h, NULL);
}

static char *message_update(long long update, long long chat, const char *text)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "update_id", (double)update);
    cJSON *m = cJSON_AddObjectToObject(u, "message");
    cJSON_AddNumberToObject(m, "message_id", 1);
    cJSON *c = cJSON_AddObjectToObject(m, "chat");
    cJSON_AddNumberToObject(c, "id", (double)chat);
    cJSON_AddStringToObject(c, "type", "private");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(m, "from"), "id", (double)chat);
    cJSON_AddStringToObject(m, "text", text);
    char *s = cJSON_PrintUnformatted(u);
    cJSON_Delete(u);
    return s;
}

static char *button_update(long long update, const char *query_id, long long chat, const char *data)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "update_id", (double)update);
    cJSON *q = cJSON_AddObjectToObject(u, "callback_query");
    cJSON_AddStringToObject(q, "id", query_id);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(q, "from"), "id", (double)chat);
    cJSON *m = cJSON_AddObjectToObject(q, "message");
    cJSON_AddNumberToObject(m, "message_id", 9);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(m, "chat"), "id", (double)chat);
    cJSON_AddStringToObject(q, "data", data);
    char *s = cJSON_PrintUnformatted(u);
    cJSON_Delete(u);
    return s;
}

/* Deliver an update; 1 if the API called it a duplicate, 0 if not, -1 on an error status. */
static int deliver_at(int line, char *body)
{
    th_resp r = webhook(body);
    free(body);
    int dup = -1;
    if (r.status != 200) {
        th_fail(__FILE__, line, "webhook: HTTP %ld: %s", r.status, r.body);
    } else {
        cJSON *j = cJSON_Parse(r.body);
        dup = cJSON_IsTrue(get(j, "duplicate"));
        if (!cJSON_IsTrue(get(j, "ok")) || th_jnum(j, "job_id") <= 0) th_fail(__FILE__, line, "webhook answer: %s", r.body);
        cJSON_Delete(j);
    }
    th_resp_free(&r);
    return dup;
}
#define SEND_TEXT(update, chat, text) deliver_at(__LINE__, message_update(update, chat, text))
#define PRESS(update, qid, chat, data) deliver_at(__LINE__, button_update(update, qid, chat, data))

/* ---- what the fake saw ---- */

/* Requests whose path contains method, to chat (chat 0: any), in log order (a new array). */
static cJSON *calls(const char *method, long long chat)
{
    cJSON *reqs = th_fake_requests(), *out = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        const char *path = th_jstr(r, "path");
        if (!path || !strstr(path, method)) continue;
        if (chat) {
            const cJSON *c = get(get(r, "body"), "chat_id");
            if (!cJSON_IsNumber(c) || (long long)c->valuedouble != chat) continue;
        }
        cJSON_AddItemToArray(out, cJSON_Duplicate(r, 1));
    }
    cJSON_Delete(reqs);
    return out;
}

static cJSON *sends_to(long long chat) { return calls("/sendMessage", chat); }

static int count_sends(long long chat)
{
    cJSON *s = sends_to(chat);
    int n = cJSON_GetArraySize(s);
    cJSON_Delete(s);
    return n;
}

/* The text of the i-th request in arr. */
static const char *text_at(const cJSON *arr, int i) { return th_jstr(get(cJSON_GetArrayItem(arr, i), "body"), "text"); }

static int wait_sends_at(int line, long long chat, int n)
{
    int have = 0;
    for (int waited = 0; waited <= WAIT_MS; waited += 50) {
        if ((have = count_sends(chat)) >= n) return 1;
        th_sleep_ms(50);
    }
    th_fail(__FILE__, line, "chat %lld got %d sendMessage calls, want %d", chat, have, n);
    return 0;
}
#define WAIT_SENDS(chat, n) wait_sends_at(__LINE__, chat, n)

/* Every sendMessage went to /bot123:test/sendMessage as a POST with a numeric
 * chat_id and a non-empty text. */
static void check_send_shapes(void)
{
    cJSON *all = calls("/sendMessage", 0);
    const cJSON *r;
    cJSON_ArrayForEach(r, all) {
        CHECK_STR(th_jstr(r, "path"), SEND_PATH);
        CHECK_STR(th_jstr(r, "method"), "POST");
        CHECK(cJSON_IsNumber(get(get(r, "body"), "chat_id")));
        const char *t = th_jstr(get(r, "body"), "text");
        CHECK(t && *t);
    }
    cJSON_Delete(all);
}

/* ---- linking through the API ---- */

static char *new_code(const char *tok)
{
    th_resp r = th_http("POST", "/v1/channels/telegram/link", tok, NULL, NULL, NULL);
    CHECK_INT(r.status, 201);
    cJSON *j = cJSON_Parse(r.body);
    const char *code = th_jstr(j, "code");
    char *out = strdup(code ? code : "NO-CODE");
    cJSON_Delete(j);
    th_resp_free(&r);
    return out;
}

/* Send "/start CODE" from chat and wait for the answer; returns its text (heap). */
static char *start_at(int line, long long update, long long chat, const char *code)
{
    int before = count_sends(chat);
    char text[128];
    snprintf(text, sizeof text, code ? "/start %s" : "/start", code);
    deliver_at(line, message_update(update, chat, text));
    char *answer = NULL;
    if (wait_sends_at(line, chat, before + 1)) {
        cJSON *s = sends_to(chat);
        const char *t = text_at(s, before);
        answer = strdup(t ? t : "");
        cJSON_Delete(s);
    }
    return answer ? answer : strdup("");
}
#define START(update, chat, code) start_at(__LINE__, update, chat, code)

/* Link chat to the owner of tok with a fresh code. */
static void link_chat(const char *tok, long long update, long long chat)
{
    char *code = new_code(tok);
    char *answer = START(update, chat, code);
    CHECK_CONTAINS(answer, "Linked");
    free(answer);
    free(code);
}

/* ---- fake LLM steps ---- */

static char *llm_text_step(const char *text)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "match", "/chat/completions");
    cJSON *body = cJSON_AddObjectToObject(s, "body");
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", text);
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddItemToObject(choice, "message", msg);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "choices"), choice);
    char *out = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return out;
}

static char *llm_call_step(const char *id, const char *name, const char *args)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "match", "/chat/completions");
    cJSON *body = cJSON_AddObjectToObject(s, "body");
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddNullToObject(msg, "content");
    cJSON *call = cJSON_CreateObject();
    cJSON_AddStringToObject(call, "id", id);
    cJSON_AddStringToObject(call, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(call, "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", args);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(msg, "tool_calls"), call);
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddItemToObject(choice, "message", msg);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "choices"), choice);
    char *out = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return out;
}

/* About n bytes of numbered sentences, single spaces between words, ending in '.'. */
static char *long_text(size_t n)
{
    static const char *const words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
                                        "hotel", "india", "juliet", "kilo", "lima", "mike"};
    char *s = malloc(n + 200);
    size_t len = 0;
    for (int k = 1; len < n; k++) {
        len += (size_t)sprintf(s + len, "%sSentence %d", len ? " " : "", k);
        for (int w = 0; w < 4 + k % 9; w++) len += (size_t)sprintf(s + len, " %s", words[(k * 7 + w) % 13]);
        s[len++] = '.';
        s[len] = '\0';
    }
    return s;
}

/* ==== 1. the webhook ==== */

static void webhook_secret_and_dedupe(void)
{
    char *tok = th_user("alice", 0);
    pid_t api = api_tg();
    const char *upd = "{\"update_id\":1001,\"message\":{\"message_id\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
                      "\"from\":{\"id\":555},\"text\":\"hello\"}}";
    /* no header, a wrong one, one of the same length, a prefix, a longer one, a bearer token instead */
    const char *const bad[][2] = {{NULL, NULL},
                                  {"X-Telegram-Bot-Api-Secret-Token: nope", NULL},
                                  {"X-Telegram-Bot-Api-Secret-Token: s3creT", NULL},
                                  {"X-Telegram-Bot-Api-Secret-Token: s3cre", NULL},
                                  {"X-Telegram-Bot-Api-Secret-Token: s3cret!", NULL},
                                  {"X-Telegram-Bot-Api-Secret-Token: S3CRET", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        th_resp r = th_http("POST", "/v1/telegram/webhook", NULL, upd, bad[i][0] ? bad[i] : NULL, "WWW-Authenticate");
        CHECK_INT(r.status, 401);
        CHECK_CONTAINS(r.body, "\"error\"");
        /* the challenge docs/openapi.yaml promises: it names the header to send */
        CHECK_STR(r.header, "X-Telegram-Bot-Api-Secret-Token realm=\"agentq-telegram-webhook\"");
        th_resp_free(&r);
    }
    th_resp r = th_http("POST", "/v1/telegram/webhook", tok, upd, NULL, NULL);
    CHECK_INT(r.status, 401);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);

    r = webhook(upd);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    CHECK(cJSON_IsTrue(get(j, "ok")));
    CHECK(cJSON_IsFalse(get(j, "duplicate")));
    long long job = th_jnum(j, "job_id");
    cJSON_Delete(j);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND job_type = 'telegram_update'"
                     " AND idempotency_key = 'telegram:1001' AND user_id IS NULL"
                     " AND (input->>'update_id')::bigint = 1001 AND input->'message'->>'text' = 'hello'",
                     th_num(job), NULL), 1);

    r = webhook(upd);   /* Telegram redelivers */
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"duplicate\":true");
    j = cJSON_Parse(r.body);
    CHECK_INT(th_jnum(j, "job_id"), job);
    cJSON_Delete(j);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 1);

    /* another update_id is another job */
    r = webhook("{\"update_id\":1002}");
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"duplicate\":false");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'telegram:1002'", NULL), 1);

    /* malformed: 200 (Telegram would resend anything else forever), dropped, no job */
    const char *const cases[] = {
        "not json", "{\"update_id\":1003", "[1]", "{}", "{\"update_id\":\"x\"}", "{\"update_id\":-1}",
        "{\"update_id\":1.5}", "{\"update_id\":null}", "{\"update_id\":1e300}", "{\"update_id\":1004}garbage",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = webhook(cases[i]);
        if (r.status != 200 || !strstr(r.body, "\"dropped\""))
            th_fail(__FILE__, __LINE__, "body %s: HTTP %ld, want 200 and dropped (%s)", cases[i], r.status, r.body);
        th_resp_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 2);
    free(tok);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* Found by fz_tg_update: cJSON's printer keeps 15 digits when it deems them
 * close enough, so the stored update said 9007199254740990 (and another
 * chat's id) while its idempotency key said ...991. The stored input holds
 * the numbers exactly as Telegram sent them. */
static void webhook_stores_big_numbers_exactly(void)
{
    pid_t api = api_tg();
    th_resp r = webhook("{\"update_id\":9007199254740991,\"message\":{\"message_id\":9007199254740989,"
                        "\"chat\":{\"id\":-9007199254740989,\"type\":\"private\"},\"text\":\"hi\"}}");
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"duplicate\":false");
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'telegram:9007199254740991'"
                     " AND input->>'update_id' = '9007199254740991'"
                     " AND input->'message'->>'message_id' = '9007199254740989'"
                     " AND input->'message'->'chat'->>'id' = '-9007199254740989'", NULL), 1);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static void webhook_off(void)
{
    const char *const env[] = {"TELEGRAM_WEBHOOK_SECRET=", NULL};
    pid_t api = th_api(env);
    const char *upd = "{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{\"id\":555},\"text\":\"hi\"}}";
    th_resp r = webhook(upd);
    CHECK_INT(r.status, 401);
    CHECK_CONTAINS(r.body, "TELEGRAM_WEBHOOK_SECRET");
    th_resp_free(&r);
    r = th_http("POST", "/v1/telegram/webhook", NULL, upd, NULL, NULL);
    CHECK_INT(r.status, 401);
    th_resp_free(&r);
    const char *const spaces[] = {"X-Telegram-Bot-Api-Secret-Token: x", NULL};
    r = th_http("POST", "/v1/telegram/webhook", NULL, upd, spaces, NULL);
    CHECK_INT(r.status, 401);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 2. linking and a reply in the chat ==== */

static void link_and_reply(void)
{
    th_fake("[" TG_OK "]", fake_url, sizeof fake_url);
    char *alice = th_user("alice", 0);
    long long uid = user_id("alice");
    pid_t api = api_tg();
    pid_t w = worker_tg(0, NULL);

    char *code = new_code(alice);
    char *answer = START(100, 555, code);
    CHECK_CONTAINS(answer, "Linked");
    CHECK_CONTAINS(answer, "alice");
    free(answer);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE kind = 'telegram' AND address = '555' AND user_id = $1"
                     " AND active", th_num(uid), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes WHERE code = $1 AND used_at IS NOT NULL AND used_by = '555'",
                     code, NULL), 1);
    free(code);
    th_resp r = th_get("/v1/channels", alice);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *items = get(j, "items");
    CHECK_INT(cJSON_GetArraySize(items), 1);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(items, 0), "chat_id"), 555);
    cJSON_Delete(j);
    th_resp_free(&r);
    char *session = th_str("SELECT session_id::text FROM channels WHERE address = '555'", NULL);

    /* a text message: one agent turn as alice in the chat's session, answered in the chat */
    CHECK_INT(SEND_TEXT(101, 555, "hello"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND user_id = $1"
                     " AND session_id = $2::uuid AND input->>'message' = 'hello'", th_num(uid), nz(session), NULL), 1);
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(reply && *reply);
    WAIT_SENDS(555, 2);
    CHECK(wait_idle());
    cJSON *s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_STR(text_at(s, 1), reply);
    cJSON_Delete(s);
    /* the turn's session is the chat's, and a telegram one */
    CHECK_INT(th_int("SELECT count(*) FROM chat_sessions WHERE id = $1::uuid AND user_id = $2 AND channel = 'telegram'",
                     nz(session), th_num(uid), NULL), 1);

    /* the same update again: no second job, no second reply */
    CHECK_INT(SEND_TEXT(101, 555, "hello"), 1);
    /* ...and the same update as a second job (say, from `agentq telegram poll`): still one turn */
    th_exec("INSERT INTO jobs (job_type, input) SELECT 'telegram_update', input FROM jobs"
            " WHERE idempotency_key = 'telegram:101'", NULL);
    CHECK(th_wait_int(3, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'telegram_update' AND status = 'succeeded'",
                      NULL));
    CHECK(wait_idle());
    th_sleep_ms(300);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    CHECK_INT(count_sends(555), 2);

    /* an unlinked chat is told how to link, and nothing else happens */
    CHECK_INT(SEND_TEXT(102, 777, "hi there"), 0);
    WAIT_SENDS(777, 1);
    CHECK(wait_idle());
    s = sends_to(777);
    CHECK_INT(cJSON_GetArraySize(s), 1);
    CHECK_CONTAINS(text_at(s, 0), "not linked");
    CHECK_CONTAINS(text_at(s, 0), "/start");
    /* how a person gets a code: the CLI command, not an HTTP route a chat user cannot call */
    CHECK_CONTAINS(text_at(s, 0), "agentq telegram link");
    CHECK(!strstr(nz(text_at(s, 0)), "/v1/"));
    cJSON_Delete(s);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM channels", NULL), 1);
    check_send_shapes();
    free(reply);
    free(session);
    free(alice);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 3. link codes ==== */

static void link_codes(void)
{
    th_fake("[" TG_OK "]", fake_url, sizeof fake_url);
    char *alice = th_user("alice", 0), *bob = th_user("bob", 0);
    long long ua = user_id("alice"), ub = user_id("bob");
    pid_t api = api_tg();
    pid_t w = worker_tg(0, NULL);

    /* the code the API hands out */
    th_resp r = th_http("POST", "/v1/channels/telegram/link", NULL, NULL, NULL, NULL);
    CHECK_INT(r.status, 401);
    th_resp_free(&r);
    r = th_http("POST", "/v1/channels/telegram/link", alice, NULL, NULL, NULL);
    CHECK_INT(r.status, 201);
    cJSON *j = cJSON_Parse(r.body);
    char *code1 = strdup(th_jstr(j, "code") ? th_jstr(j, "code") : "");
    CHECK_INT((long long)strlen(code1), 10);
    char want[64];
    snprintf(want, sizeof want, "/start %s", code1);
    CHECK_STR(th_jstr(j, "start"), want);
    CHECK(th_jstr(j, "expires_at") != NULL);
    cJSON_Delete(j);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes WHERE code = $1 AND user_id = $2 AND used_at IS NULL"
                     " AND expires_at > now() + interval '10 minutes'", code1, th_num(ua), NULL), 1);

    /* expired */
    th_exec("UPDATE link_codes SET expires_at = now() - interval '1 minute' WHERE code = $1", code1, NULL);
    char *a = START(200, 601, code1);
    CHECK_CONTAINS(a, "expired");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '601'", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes WHERE code = $1 AND used_at IS NULL", code1, NULL), 1);

    /* unknown */
    a = START(201, 602, "NOSUCHCODE");
    CHECK_CONTAINS(a, "not valid");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '602'", NULL), 0);

    /* used by one chat, then tried by another */
    char *code2 = new_code(alice);
    a = START(202, 603, code2);
    CHECK_CONTAINS(a, "Linked");
    free(a);
    a = START(203, 604, code2);
    CHECK_CONTAINS(a, "not valid");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '604'", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '603' AND user_id = $1", th_num(ua), NULL), 1);
    /* the chat that used it sends it again: still linked, nothing changes (a
     * retried update job must not say "not valid" to a chat it just linked) */
    char *session1 = th_str("SELECT session_id::text FROM channels WHERE address = '603'", NULL);
    a = START(204, 603, code2);
    CHECK_CONTAINS(a, "Linked");
    CHECK_CONTAINS(a, "alice");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '603' AND user_id = $1 AND session_id = $2::uuid",
                     th_num(ua), nz(session1), NULL), 1);
    free(session1);
    /* an attempt that linked the chat and died before completing: the retry says "Linked" */
    char *code5 = new_code(alice);
    th_exec("UPDATE link_codes SET used_at = now(), used_by = '610' WHERE code = $1", code5, NULL);
    link_in_db(ua, 610);
    a = START(210, 610, code5);
    CHECK_CONTAINS(a, "Linked");
    free(a);
    free(code5);

    /* bob's code from a chat linked to alice: the chat now belongs to bob, in a new session */
    char *old_session = th_str("SELECT session_id::text FROM channels WHERE address = '603'", NULL);
    char *code3 = new_code(bob);
    a = START(205, 603, code3);
    CHECK_CONTAINS(a, "Linked");
    CHECK_CONTAINS(a, "bob");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '603'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '603' AND user_id = $1 AND active"
                     " AND session_id <> $2::uuid", th_num(ub), nz(old_session), NULL), 1);
    free(old_session);
    /* alice's used code from the chat that is bob's now: not valid, and the chat stays bob's */
    a = START(211, 603, code2);
    CHECK_CONTAINS(a, "not valid");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '603' AND user_id = $1", th_num(ub), NULL), 1);
    r = th_get("/v1/channels", alice);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 1);   /* 610 */
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_get("/v1/channels", bob);
    j = cJSON_Parse(r.body);
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 1);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(get(j, "items"), 0), "chat_id"), 603);
    cJSON_Delete(j);
    th_resp_free(&r);
    /* a message from it now runs as bob */
    CHECK_INT(SEND_TEXT(206, 603, "list tasks"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND user_id = $1"
                      " AND session_id = (SELECT session_id FROM channels WHERE address = '603')", th_num(ub), NULL));

    /* the group form /start@bot CODE */
    char *code4 = new_code(alice);
    char text[64];
    snprintf(text, sizeof text, "/start@agentq_bot %s", code4);
    CHECK_INT(SEND_TEXT(207, 606, text), 0);
    WAIT_SENDS(606, 1);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM channels WHERE address = '606' AND user_id = $1", th_num(ua),
                      NULL));

    /* /start without a code: how to link, or a greeting when linked */
    a = START(208, 605, NULL);
    CHECK_CONTAINS(a, "not linked");
    CHECK_CONTAINS(a, "/start CODE");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '605'", NULL), 0);
    a = START(209, 603, NULL);
    CHECK(strstr(a, "not linked") == NULL);
    CHECK_CONTAINS(a, "Hello again");
    free(a);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    check_send_shapes();
    free(code1);
    free(code2);
    free(code3);
    free(code4);
    free(alice);
    free(bob);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 4. a long reply in three messages ==== */

static void long_reply_three_messages(void)
{
    char *text = long_text(9000);
    char *step = llm_text_step(text);
    size_t sl = strlen(step) + 200;
    char *script = malloc(sl);
    snprintf(script, sl, "[%s," TG_OK "]", step);
    free(step);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t api = api_tg();
    pid_t w = worker_tg(1, NULL);
    CHECK_INT(SEND_TEXT(400, 555, "tell me a long story"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK_STR(reply, text);
    WAIT_SENDS(555, 3);
    CHECK(wait_idle());
    th_sleep_ms(200);
    cJSON *s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 3);
    size_t total = strlen(text);
    char *joined = calloc(1, total + 16);
    for (int i = 0; i < cJSON_GetArraySize(s) && i < 3; i++) {
        const char *t = text_at(s, i);
        CHECK(t != NULL);
        if (!t) continue;
        if (strlen(t) > 4096) th_fail(__FILE__, __LINE__, "message %d is %zu characters", i, strlen(t));
        if (i < 2) CHECK(strlen(t) >= 2048);   /* cut in the upper half of the limit */
        if (strlen(joined) + strlen(t) + 1 <= total + 1) {
            if (i) strcat(joined, " ");
            strcat(joined, t);
        }
    }
    CHECK(strcmp(joined, text) == 0);
    if (strcmp(joined, text)) fprintf(stderr, "    joined %zu bytes, reply %zu bytes\n", strlen(joined), total);
    cJSON_Delete(s);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'notify' AND status = 'succeeded'"
                     " AND (output->>'chunks')::int = 3", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent", NULL), 3);
    check_send_shapes();
    free(joined);
    free(reply);
    free(text);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 4b. a reply over the notification cap ==== */

/* A model that answers with 300 kB (about 75 Telegram messages, past notify's
 * 64-chunk limit): the web inbox and the chat still get the start of it, cut
 * to the notification cap (16000 bytes) with a note, and the whole reply stays
 * in the job's output. */
static void huge_reply_is_cut(void)
{
    char *text = long_text(300000);
    char *step = llm_text_step(text);
    size_t sl = 2 * strlen(step) + 200;
    char *script = malloc(sl);
    snprintf(script, sl, "[%s,%s," TG_OK "]", step, step);
    free(step);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t api = api_tg();
    pid_t w = worker_tg(1, NULL);

    /* a web turn: one notification, its body the cut text */
    long long web = th_int("INSERT INTO jobs (job_type, input, user_id, session_id) VALUES ('agent_turn',"
                           " '{\"message\":\"go on\",\"session_id\":\"7a1b2c3d-0000-4000-8000-0000000000c1\","
                           "\"channel\":\"web\"}', $1, '7a1b2c3d-0000-4000-8000-0000000000c1') RETURNING id",
                           th_num(uid), NULL);
    CHECK(wait_job(web, "succeeded"));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND output->>'reply' = $2", th_num(web), text, NULL), 1);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM notifications WHERE job_id = $1", th_num(web), NULL));
    char *body = th_str("SELECT body FROM notifications WHERE job_id = $1", th_num(web), NULL);
    CHECK(body && strlen(body) >= 15000 && strlen(body) <= 16000);
    CHECK(body && !strncmp(body, text, 10000));
    CHECK_CONTAINS(body, "cut");
    free(body);

    /* a chat turn: a handful of messages, the first the reply's start */
    CHECK_INT(SEND_TEXT(450, 555, "go on"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'notify' AND input->>'to' = 'telegram'"
                      " AND status IN ('succeeded', 'failed')", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'notify' AND status = 'succeeded'", NULL), 2);
    CHECK(wait_idle());
    cJSON *s = sends_to(555);
    int n = cJSON_GetArraySize(s);
    CHECK(n >= 4 && n <= 5);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(nz(text_at(s, i)));
    CHECK(total <= 16000);
    CHECK(!strncmp(nz(text_at(s, 0)), text, strlen(nz(text_at(s, 0)))));
    CHECK_CONTAINS(text_at(s, n - 1), "cut");
    cJSON_Delete(s);
    free(text);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 4c. a failed turn retried by an operator ==== */

/* The chat hears of the failure, and then, after `agentq jobs retry` (status
 * queued, attempts 0: the same attempt number again), of the reply too. */
static void retried_after_failure(void)
{
    char *ok = llm_text_step("Back now.");
    char script[2000];
    snprintf(script, sizeof script, "[{\"match\":\"/chat/completions\",\"status\":401,\"body\":{\"error\":"
             "{\"message\":\"Incorrect API key provided\"}}},%s," TG_OK "]", ok);
    free(ok);
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t api = api_tg();
    pid_t w = worker_tg(1, NULL);
    CHECK_INT(SEND_TEXT(900, 555, "hello"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'failed'", NULL));
    long long turn = th_int("SELECT id FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(turn), NULL), 1);
    WAIT_SENDS(555, 1);
    cJSON *s = sends_to(555);
    CHECK_CONTAINS(text_at(s, 0), "did not work out");
    cJSON_Delete(s);
    /* what `agentq jobs retry ID` does */
    th_exec("UPDATE jobs SET status = 'queued', run_at = now(), attempts = 0, locked_by = NULL, locked_until = NULL,"
            " started_at = NULL, finished_at = NULL WHERE id = $1", th_num(turn), NULL);
    CHECK(wait_job(turn, "succeeded"));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(turn), NULL), 1);
    WAIT_SENDS(555, 2);
    CHECK(wait_idle());
    s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_STR(text_at(s, 1), "Back now.");
    cJSON_Delete(s);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 5. 429 and 5xx, then success ==== */

static double ms_at(const cJSON *arr, int i) { return cJSON_GetNumberValue(get(cJSON_GetArrayItem(arr, i), "ms")); }
static long long step_at(const cJSON *arr, int i) { return th_jnum(cJSON_GetArrayItem(arr, i), "step"); }

static void rate_limited_then_success(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"status\":429,\"body\":{\"ok\":false,\"error_code\":429,"
            "\"description\":\"Too Many Requests: retry after 1\",\"parameters\":{\"retry_after\":1}}},"
            "{\"match\":\"/sendMessage\",\"body\":{\"ok\":true,\"result\":{\"message_id\":11}}},"
            "{\"match\":\"/sendMessage\",\"status\":500,\"body\":{\"ok\":false,\"error_code\":500,"
            "\"description\":\"Internal Server Error\"}}," TG_OK "]",
            fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    pid_t w = worker_tg(0, NULL);
    long long j1 = insert_notify(uid, 555, "hi");
    CHECK(wait_job(j1, "succeeded"));
    /* a delay Telegram asks for spends no attempt */
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(j1), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND output->'message_ids' = '[11]'", th_num(j1), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent WHERE job_id = $1 AND chunk = 0 AND message_id = 11",
                     th_num(j1), NULL), 1);
    cJSON *s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_INT(step_at(s, 0), 0);
    CHECK_INT(step_at(s, 1), 1);
    CHECK_STR(text_at(s, 1), "hi");
    double gap = ms_at(s, 1) - ms_at(s, 0);
    if (gap < 900) th_fail(__FILE__, __LINE__, "retry_after 1 s not honoured: retried after %.0f ms", gap);
    cJSON_Delete(s);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);

    /* a 500: retried with backoff (base 600 ms: at least 300 ms) */
    w = worker_tg(0, "AGENTQ_RETRY_BASE_MS=600");
    long long j2 = insert_notify(uid, 555, "hi again");
    CHECK(wait_job(j2, "succeeded"));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(j2), NULL), 1);   /* an outage: transient */
    s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 4);
    CHECK_INT(step_at(s, 2), 2);
    CHECK_INT(step_at(s, 3), 3);
    CHECK_STR(text_at(s, 2), "hi again");
    CHECK_STR(text_at(s, 3), "hi again");
    gap = ms_at(s, 3) - ms_at(s, 2);
    if (gap < 300) th_fail(__FILE__, __LINE__, "5xx retried without backoff: after %.0f ms", gap);
    cJSON_Delete(s);
    check_send_shapes();
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* ==== 6. the bot blocked by the user ==== */

static void blocked_403(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"status\":403,\"body\":{\"ok\":false,\"error_code\":403,"
            "\"description\":\"Forbidden: bot was blocked by the user\"}}," TG_OK "]",
            fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t api = api_tg();
    pid_t w = worker_tg(0, NULL);
    long long j1 = insert_notify(uid, 555, "are you there?");
    CHECK(wait_job(j1, "failed"));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(j1), NULL), 1);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(j1), NULL);
    CHECK_CONTAINS(err, "403");
    CHECK_CONTAINS(err, "bot was blocked by the user");
    free(err);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '555' AND NOT active"
                     " AND inactive_reason LIKE '%blocked%'", NULL), 1);
    CHECK_INT(count_sends(555), 1);

    /* while blocked: fails at once, nothing reaches Telegram */
    long long j2 = insert_notify(uid, 555, "still there?");
    CHECK(wait_job(j2, "failed"));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(j2), NULL), 1);
    err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(j2), NULL);
    CHECK_CONTAINS(err, "inactive");
    free(err);
    CHECK_INT(count_sends(555), 1);
    /* and no reply route reaches it (the owner's chats are the active ones) */
    th_exec("INSERT INTO jobs (job_type, user_id, input) VALUES ('noop', $1, '{\"reply_to\":[{\"to\":\"owner\"}]}')",
            th_num(uid), NULL);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'notify' AND input->>'to' = 'telegram'", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE user_id = $1", th_num(uid), NULL), 1);

    /* the user writes again: the channel is active and the reply arrives */
    CHECK_INT(SEND_TEXT(500, 555, "hello again"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM channels WHERE address = '555' AND active"
                      " AND inactive_reason IS NULL", NULL));
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'succeeded'",
                      NULL));
    WAIT_SENDS(555, 2);
    CHECK(wait_idle());
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE job_type = 'agent_turn'", NULL);
    cJSON *s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_STR(text_at(s, 1), reply);
    CHECK_INT(step_at(s, 1), 1);
    cJSON_Delete(s);
    free(reply);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 7. a worker killed between chunks ==== */

static void kill_between_chunks(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"body\":{\"ok\":true,\"result\":{\"message_id\":1}}},"
            "{\"match\":\"/sendMessage\",\"delay_ms\":4000,\"raw\":\"\"}," TG_OK "]",
            fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    char *text = long_text(9000);
    size_t starts[8], lens[8];
    int n = aq_tg_split(text, AQ_TG_TEXT_LIMIT, starts, lens, 8);
    CHECK_INT(n, 3);
    pid_t w1 = worker_tg(0, "AGENTQ_LEASE_SECONDS=2");
    long long job = insert_notify(uid, 555, text);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM telegram_sent WHERE job_id = $1", th_num(job), NULL));
    WAIT_SENDS(555, 2);
    CHECK_INT(th_stop(w1, SIGKILL, 5000), 128 + SIGKILL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND status = 'running'", th_num(job), NULL), 1);
    pid_t w2 = worker_tg(0, "AGENTQ_LEASE_SECONDS=2");
    CHECK(wait_job(job, "succeeded"));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(job), NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent WHERE job_id = $1", th_num(job), NULL), 3);
    char *chunks = th_str("SELECT string_agg(chunk::text, ',' ORDER BY chunk) FROM telegram_sent WHERE job_id = $1",
                          th_num(job), NULL);
    CHECK_STR(chunks, "0,1,2");
    free(chunks);

    cJSON *s = sends_to(555);
    int first = 0, accepted = 0;
    for (int i = 0; i < cJSON_GetArraySize(s); i++) {
        const char *t = text_at(s, i);
        if (!t) { th_fail(__FILE__, __LINE__, "request %d has no text", i); continue; }
        if (strlen(t) == lens[0] && !strncmp(t, text + starts[0], lens[0])) first++;
        long long st = step_at(s, i);
        if (st == 0 || st == 2) {   /* an OK step: Telegram accepted it */
            if (accepted < n && (strlen(t) != lens[accepted] || strncmp(t, text + starts[accepted], lens[accepted])))
                th_fail(__FILE__, __LINE__, "accepted message %d is not chunk %d", accepted + 1, accepted + 1);
            accepted++;
        } else if (st == 1) {       /* the unanswered one was chunk 2 */
            CHECK(strlen(t) == lens[1] && !strncmp(t, text + starts[1], lens[1]));
        } else {
            th_fail(__FILE__, __LINE__, "request %d served by step %lld", i, st);
        }
    }
    CHECK_INT(first, 1);
    CHECK_INT(accepted, 3);
    CHECK_INT(cJSON_GetArraySize(s), 4);
    cJSON_Delete(s);
    free(text);
    CHECK_INT(th_stop(w2, SIGTERM, 10000), 0);
}

/* The database restarts while a sendMessage is in flight: the step that
 * records Telegram's answer gets a pooled connection the restart closed. It
 * must notice and reconnect, not fail the insert and send the chunk again
 * (found by the fault campaign: a message sent twice after a restart). */
static void database_restart_while_sending_no_repeat(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"delay_ms\":5000,\"body\":{\"ok\":true,\"result\":{\"message_id\":3}}},"
            TG_OK "]", fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    /* one handler connection, so the step after the send gets the one the restart closed */
    pid_t w = worker_tg(0, "AGENTQ_HANDLER_DB_CONNECTIONS=1");
    long long job = insert_notify(uid, 555, "sent once, whatever the database does");
    CHECK(th_fake_wait(1, WAIT_MS));
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_RESTART"), 0);
    CHECK(wait_job(job, "succeeded"));
    CHECK_INT(count_sends(555), 1);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(job), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent WHERE job_id = $1 AND message_id = 3", th_num(job), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* The database is down when Telegram's answer arrives: the step waits for
 * it to record the chunk rather than give the answer up and send the chunk
 * again on the retry (found by the fault campaign). */
static void database_down_at_answer_no_repeat(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"delay_ms\":3000,\"body\":{\"ok\":true,\"result\":{\"message_id\":4}}},"
            TG_OK "]", fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t w = worker_tg(0, NULL);
    long long job = insert_notify(uid, 555, "sent once, though the database was down at the answer");
    CHECK(th_fake_wait(1, WAIT_MS));
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_STOP"), 0);
    th_sleep_ms(4000);   /* the answer arrives meanwhile */
    CHECK_INT(th_run_env_cmd("AQ_TEST_PG_START"), 0);
    CHECK(wait_job(job, "succeeded"));
    CHECK_INT(count_sends(555), 1);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent WHERE job_id = $1 AND message_id = 4", th_num(job), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* ==== 8. an approval by inline button ==== */

static void approval_by_button(void)
{
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    long long task = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'old report') RETURNING id", th_num(uid),
                            NULL);
    char args[64];
    snprintf(args, sizeof args, "{\"id\":%lld}", task);
    char *call = llm_call_step("d1", "delete_task", args), *done = llm_text_step("Deleted it.");
    char script[4000];
    snprintf(script, sizeof script, "[%s,%s," TG_OK "," TG_ANSWER "]", call, done);
    free(call);
    free(done);
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = api_tg();
    pid_t w = worker_tg(1, NULL);

    CHECK_INT(SEND_TEXT(600, 555, "delete the old report"), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'waiting'",
                      NULL));
    long long turn = th_int("SELECT id FROM jobs WHERE job_type = 'agent_turn'", NULL);
    long long action = th_int("SELECT id FROM pending_actions WHERE job_id = $1 AND status = 'pending'"
                              " AND tool = 'delete_task'", th_num(turn), NULL);
    CHECK(action > 0);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(task), NULL), 1);
    /* the owner hears of it on the web and in the chat, with buttons */
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'approval'"
                      " AND action_id = $2", th_num(uid), th_num(action), NULL));
    WAIT_SENDS(555, 1);
    cJSON *s = sends_to(555);
    const cJSON *body = get(cJSON_GetArrayItem(s, 0), "body");
    CHECK_CONTAINS(th_jstr(body, "text"), "delete_task");
    const cJSON *row = cJSON_GetArrayItem(get(get(body, "reply_markup"), "inline_keyboard"), 0);
    char yes[48], no[48];
    snprintf(yes, sizeof yes, "act:%lld:approve", action);
    snprintf(no, sizeof no, "act:%lld:reject", action);
    CHECK_INT(cJSON_GetArraySize(row), 2);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(row, 0), "callback_data"), yes);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(row, 1), "callback_data"), no);
    CHECK(th_jstr(cJSON_GetArrayItem(row, 0), "text") != NULL);
    cJSON_Delete(s);

    /* a stranger's chat pressing it, and a garbled button: answered, nothing decided */
    CHECK_INT(PRESS(598, "cq-x", 777, yes), 0);
    CHECK_INT(PRESS(599, "cq-y", 555, "act:zzz:approve"), 0);
    CHECK(th_wait_int(2, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'telegram_update' AND status = 'succeeded'"
                      " AND input ? 'callback_query'", NULL));
    cJSON *answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 2);
    for (int i = 0; i < cJSON_GetArraySize(answers); i++) {
        const cJSON *b = get(cJSON_GetArrayItem(answers, i), "body");
        if (!strcmp(nz(th_jstr(b, "callback_query_id")), "cq-x")) CHECK_CONTAINS(th_jstr(b, "text"), "not an action of yours");
        else CHECK_CONTAINS(th_jstr(b, "text"), "Unknown button");
    }
    cJSON_Delete(answers);
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE id = $1 AND status = 'pending'", th_num(action), NULL),
              1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'action_decision' AND input->>'decision' <> 'expired'",
                     NULL), 0);

    /* the button: answered, approved, the tool runs, the turn finishes and replies in the chat */
    CHECK_INT(PRESS(601, "cq1", 555, yes), 0);
    CHECK(wait_job(turn, "succeeded"));
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE id = $1 AND status = 'approved'", th_num(action), NULL),
              1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(task), NULL), 0);
    /* audited: approved from Telegram, by the chat's user, with the Telegram account that pressed */
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'action.approved' AND target = 'action:' || $1"
                     " AND channel = 'telegram' AND actor_id IS NOT NULL AND details->>'tool' = 'delete_task'"
                     " AND details ? 'telegram_user'", th_num(action), NULL), 1);
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(turn), NULL);
    CHECK_STR(reply, "Deleted it.");
    free(reply);
    WAIT_SENDS(555, 2);
    answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 3);
    CHECK_STR(th_jstr(get(cJSON_GetArrayItem(answers, 2), "body"), "callback_query_id"), "cq1");
    CHECK_CONTAINS(th_jstr(get(cJSON_GetArrayItem(answers, 2), "body"), "text"), "Approved");
    cJSON_Delete(answers);

    /* pressed again: answered "Already decided", nothing else runs */
    CHECK_INT(PRESS(602, "cq2", 555, yes), 0);
    CHECK(th_wait_int(4, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'telegram_update' AND status = 'succeeded'"
                      " AND input ? 'callback_query'", NULL));
    CHECK(wait_idle());
    th_sleep_ms(300);
    answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 4);
    CHECK_STR(th_jstr(get(cJSON_GetArrayItem(answers, 3), "body"), "callback_query_id"), "cq2");
    CHECK_CONTAINS(th_jstr(get(cJSON_GetArrayItem(answers, 3), "body"), "text"), "Already decided");
    cJSON_Delete(answers);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'action_decision' AND input->>'decision' <> 'expired'",
                     NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE id = $1 AND status = 'approved'", th_num(action), NULL),
              1);
    s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_STR(text_at(s, 1), "Deleted it.");
    CHECK(get(get(cJSON_GetArrayItem(s, 1), "body"), "reply_markup") == NULL);
    cJSON_Delete(s);
    cJSON *llm = calls("/chat/completions", 0);
    CHECK_INT(cJSON_GetArraySize(llm), 2);
    cJSON_Delete(llm);
    check_send_shapes();
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 9. the web inbox, and a scheduled run reaching every channel ==== */

static cJSON *list_notifications(const char *tok, const char *query)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/notifications%s", query);
    th_resp r = th_get(path, tok);
    CHECK_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    if (!j) th_fail(__FILE__, __LINE__, "not JSON: %s", r.body);
    th_resp_free(&r);
    return j;
}

static long long web_chat(const char *tok, const char *message)
{
    char body[256];
    snprintf(body, sizeof body, "{\"message\":\"%s\"}", message);
    th_resp r = th_post("/v1/chat", tok, body);
    CHECK_INT(r.status, 202);
    cJSON *j = cJSON_Parse(r.body);
    long long id = th_jnum(j, "job_id");
    cJSON_Delete(j);
    th_resp_free(&r);
    CHECK(wait_job(id, "succeeded"));
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM notifications WHERE job_id = $1", th_num(id), NULL));
    return id;
}

static void web_inbox_and_schedule_owner(void)
{
    th_fake("[" TG_OK "]", fake_url, sizeof fake_url);
    char *alice = th_user("alice", 0), *bob = th_user("bob", 0);
    long long ua = user_id("alice");
    pid_t api = api_tg();
    pid_t w = worker_tg(0, NULL);
    link_chat(alice, 700, 555);

    long long t1 = web_chat(alice, "add task water the plants");
    char *reply1 = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(t1), NULL);
    CHECK_INT(th_int("SELECT count(*) FROM notifications n JOIN jobs j ON j.id = n.job_id WHERE n.job_id = $1"
                     " AND n.user_id = $2 AND n.kind = 'reply' AND n.body = $3 AND n.session_id = j.session_id"
                     " AND n.read_at IS NULL", th_num(t1), th_num(ua), nz(reply1), NULL), 1);
    long long n1 = th_int("SELECT id FROM notifications WHERE job_id = $1", th_num(t1), NULL);
    long long t2 = web_chat(alice, "list tasks");
    long long n2 = th_int("SELECT id FROM notifications WHERE job_id = $1", th_num(t2), NULL);
    char *reply2 = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(t2), NULL);

    cJSON *j = list_notifications(alice, "");
    const cJSON *items = get(j, "items");
    CHECK_INT(cJSON_GetArraySize(items), 2);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(items, 0), "id"), n2);   /* newest first */
    CHECK_INT(th_jnum(cJSON_GetArrayItem(items, 1), "id"), n1);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(items, 1), "body"), reply1);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(items, 0), "body"), reply2);
    CHECK_STR(th_jstr(cJSON_GetArrayItem(items, 1), "kind"), "reply");
    CHECK_INT(th_jnum(cJSON_GetArrayItem(items, 1), "job_id"), t1);
    CHECK(cJSON_IsNull(get(cJSON_GetArrayItem(items, 1), "read_at")));
    cJSON_Delete(j);

    /* someone else: an empty list, 404 on the row, and it stays unread */
    j = list_notifications(bob, "");
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 0);
    cJSON_Delete(j);
    char path[64];
    snprintf(path, sizeof path, "/v1/notifications/%lld/read", n1);
    th_resp r = th_post(path, bob, NULL);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE read_at IS NULL", NULL), 2);

    /* read: read_at set, once */
    r = th_post(path, alice, NULL);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_INT(th_jnum(j, "id"), n1);
    CHECK(th_jstr(j, "read_at") != NULL);
    char *read_at = strdup(th_jstr(j, "read_at") ? th_jstr(j, "read_at") : "");
    cJSON_Delete(j);
    th_resp_free(&r);
    r = th_post(path, alice, NULL);
    CHECK_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    CHECK_STR(th_jstr(j, "read_at"), read_at);
    cJSON_Delete(j);
    th_resp_free(&r);
    free(read_at);
    j = list_notifications(alice, "?unread=1");
    items = get(j, "items");
    CHECK_INT(cJSON_GetArraySize(items), 1);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(items, 0), "id"), n2);
    cJSON_Delete(j);
    j = list_notifications(alice, "?unread=0");
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 2);
    cJSON_Delete(j);
    /* pages: newest first, next is the cursor */
    j = list_notifications(alice, "?limit=1");
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 1);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(get(j, "items"), 0), "id"), n2);
    CHECK_INT(th_jnum(j, "next"), n2);
    cJSON_Delete(j);
    char q[64];
    snprintf(q, sizeof q, "?limit=1&before=%lld", n2);
    j = list_notifications(alice, q);
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 1);
    CHECK_INT(th_jnum(cJSON_GetArrayItem(get(j, "items"), 0), "id"), n1);
    cJSON_Delete(j);
    r = th_get("/v1/notifications?unread=maybe", alice);
    CHECK_INT(r.status, 422);
    th_resp_free(&r);
    r = th_post("/v1/notifications/99999/read", alice, NULL);
    CHECK_INT(r.status, 404);
    th_resp_free(&r);
    /* web chats answer on the web only */
    CHECK_INT(count_sends(555), 1);

    /* a scheduled run: the reply reaches the web inbox and the linked chat */
    long long sid = th_int("INSERT INTO agent_schedules (user_id, name, cron, prompt, misfire, next_run_at)"
                           " VALUES ($1, 'yearly', '0 0 1 1 *', 'list tasks', 'run_once', now() - interval '2 s')"
                           " RETURNING id", th_num(ua), NULL);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE schedule_id = $1 AND job_type = 'scheduled_run'"
                      " AND status = 'succeeded'", th_num(sid), NULL));
    long long run = th_int("SELECT id FROM jobs WHERE schedule_id = $1", th_num(sid), NULL);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND user_id = $2 AND input->'reply_to' = '[{\"to\":\"owner\"}]'",
                     th_num(run), th_num(ua), NULL), 1);
    char *reply3 = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(run), NULL);
    CHECK(reply3 && *reply3);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM notifications WHERE job_id = $1 AND user_id = $2"
                      " AND kind = 'reply' AND body = $3", th_num(run), th_num(ua), nz(reply3), NULL));
    WAIT_SENDS(555, 2);
    CHECK(wait_idle());
    th_sleep_ms(300);
    cJSON *s = sends_to(555);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    CHECK_STR(text_at(s, 1), reply3);
    cJSON_Delete(s);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE job_id = $1", th_num(run), NULL), 1);
    j = list_notifications(alice, "?unread=1");
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 2);
    cJSON_Delete(j);
    j = list_notifications(bob, "?unread=1");
    CHECK_INT(cJSON_GetArraySize(get(j, "items")), 0);
    cJSON_Delete(j);
    check_send_shapes();
    free(reply1);
    free(reply2);
    free(reply3);
    free(alice);
    free(bob);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* A job's input may route its result only to chats linked to its owner;
 * a malformed reply_to fails the job before it runs. */
static void reply_to_only_owned_chats(void)
{
    th_fake("[{\"match\":\"/sendMessage\",\"repeat\":-1,\"body\":{\"ok\":true,\"result\":{\"message_id\":1}}}]",
            fake_url, sizeof fake_url);
    long long uid = new_user("olga"), other = new_user("pete");
    link_in_db(uid, 555);
    link_in_db(other, 999);
    pid_t w = worker_tg(0, NULL);
    long long ok = th_int("INSERT INTO jobs (job_type, user_id, input) VALUES ('noop', $1,"
                          " '{\"reply_to\":[{\"to\":\"telegram\",\"chat_id\":555},{\"to\":\"telegram\",\"chat_id\":999},"
                          "{\"to\":\"telegram\",\"chat_id\":4242}]}') RETURNING id", th_num(uid), NULL);
    CHECK(wait_job(ok, "succeeded"));
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'notify' AND parent_id = $1", th_num(ok), NULL), 1);
    CHECK_INT(count_sends(555), 1);
    CHECK_INT(count_sends(999), 0);    /* someone else's chat */
    CHECK_INT(count_sends(4242), 0);   /* nobody's chat */
    long long bad = th_int("INSERT INTO jobs (job_type, user_id, input) VALUES ('noop', $1,"
                           " '{\"reply_to\":[{\"to\":\"pigeon\"}]}') RETURNING id", th_num(uid), NULL);
    CHECK(wait_job(bad, "failed"));
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(bad), NULL);
    CHECK_CONTAINS(nz(err), "reply_to");
    free(err);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(bad), NULL), 0);   /* refused: never ran */
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* `agentq telegram poll --once`: updates from getUpdates become the same
 * telegram_update jobs as the webhook's (an update already stored by the
 * webhook is not stored again); a refused getUpdates exits 1. */
static void poll_once(void)
{
    th_fake("[{\"match\":\"/getUpdates\",\"body\":{\"ok\":true,\"result\":["
            "{\"update_id\":31,\"message\":{\"message_id\":1,\"chat\":{\"id\":777},\"text\":\"hi\"}},"
            "{\"update_id\":32,\"message\":{\"message_id\":2,\"chat\":{\"id\":777},\"text\":\"again\"}}]}},"
            "{\"match\":\"/getUpdates\",\"status\":409,\"body\":{\"ok\":false,\"error_code\":409,"
            "\"description\":\"Conflict: can't use getUpdates method while webhook is active\"}}]",
            fake_url, sizeof fake_url);
    pid_t api = api_tg();
    th_resp r = webhook("{\"update_id\":31,\"message\":{\"message_id\":1,\"chat\":{\"id\":777},\"text\":\"hi\"}}");
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    char base[160];
    snprintf(base, sizeof base, "TELEGRAM_API_BASE=%s", fake_url);
    const char *const env[] = {"TELEGRAM_BOT_TOKEN=123:test", base, NULL};
    const char *const poll[] = {"telegram", "poll", "--once", NULL};
    th_cli_run r1 = th_cli(env, poll);
    CHECK_INT(r1.status, 0);
    CHECK_STR(r1.out, "1 update(s) stored\n");   /* 31 was stored by the webhook */
    th_cli_free(&r1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'telegram_update'", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key IN ('telegram:31', 'telegram:32')", NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'telegram:32'"
                     " AND input->'message'->>'text' = 'again'", NULL), 1);
    cJSON *gets = calls("/getUpdates", 0);
    CHECK_INT(cJSON_GetArraySize(gets), 1);
    CHECK_INT(th_jnum(get(cJSON_GetArrayItem(gets, 0), "body"), "offset"), 0);
    cJSON_Delete(gets);
    th_cli_run r2 = th_cli(env, poll);   /* the webhook is on at Telegram: 409, a clear failure */
    CHECK_INT(r2.status, 1);
    CHECK_CONTAINS(r2.err, "409");
    th_cli_free(&r2);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'telegram_update'", NULL), 2);
    const char *const no_token[] = {"TELEGRAM_BOT_TOKEN=", base, NULL};
    th_cli_run r3 = th_cli(no_token, poll);   /* no token: usage error, nothing asked */
    CHECK_INT(r3.status, 2);
    CHECK_CONTAINS(r3.err, "TELEGRAM_BOT_TOKEN");
    th_cli_free(&r3);
    gets = calls("/getUpdates", 0);
    CHECK_INT(cJSON_GetArraySize(gets), 2);
    cJSON_Delete(gets);
    CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

/* ==== 11. groups: only the Telegram user who linked a chat acts in it ==== */

/* A message in group chat `chat` from Telegram user `from`, shaped like the Bot API's Update. */
static char *group_message(long long update, long long chat, long long from, const char *text)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "update_id", (double)update);
    cJSON *m = cJSON_AddObjectToObject(u, "message");
    cJSON_AddNumberToObject(m, "message_id", (double)update);
    cJSON_AddNumberToObject(m, "date", 1795000000);
    cJSON *c = cJSON_AddObjectToObject(m, "chat");
    cJSON_AddNumberToObject(c, "id", (double)chat);
    cJSON_AddStringToObject(c, "type", "group");
    cJSON_AddStringToObject(c, "title", "family");
    cJSON *f = cJSON_AddObjectToObject(m, "from");
    cJSON_AddNumberToObject(f, "id", (double)from);
    cJSON_AddFalseToObject(f, "is_bot");
    cJSON_AddStringToObject(f, "first_name", "member");
    cJSON_AddStringToObject(m, "text", text);
    char *out = cJSON_PrintUnformatted(u);
    cJSON_Delete(u);
    return out;
}

/* A button press in group chat `chat` by Telegram user `from` (a CallbackQuery). */
static char *group_press(long long update, const char *query_id, long long chat, long long from, const char *data)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "update_id", (double)update);
    cJSON *q = cJSON_AddObjectToObject(u, "callback_query");
    cJSON_AddStringToObject(q, "id", query_id);
    cJSON *f = cJSON_AddObjectToObject(q, "from");
    cJSON_AddNumberToObject(f, "id", (double)from);
    cJSON_AddFalseToObject(f, "is_bot");
    cJSON_AddStringToObject(f, "first_name", "member");
    cJSON *m = cJSON_AddObjectToObject(q, "message");
    cJSON_AddNumberToObject(m, "message_id", 9);
    cJSON_AddNumberToObject(m, "date", 1795000000);
    cJSON *c = cJSON_AddObjectToObject(m, "chat");
    cJSON_AddNumberToObject(c, "id", (double)chat);
    cJSON_AddStringToObject(c, "type", "group");
    cJSON_AddStringToObject(q, "chat_instance", "-7001");
    cJSON_AddStringToObject(q, "data", data);
    char *out = cJSON_PrintUnformatted(u);
    cJSON_Delete(u);
    return out;
}
#define GROUP_SAY(update, chat, from, text) deliver_at(__LINE__, group_message(update, chat, from, text))
#define GROUP_PRESS(update, qid, chat, from, data) deliver_at(__LINE__, group_press(update, qid, chat, from, data))

static int count_answers(void)
{
    cJSON *a = calls("/answerCallbackQuery", 0);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

static void group_only_linker_acts(void)
{
    const long long group = -4001, old_group = -4002, linker = 42, member = 43;
    char *alice = th_user("alice", 0);
    long long uid = user_id("alice");
    long long task = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'old report') RETURNING id", th_num(uid),
                            NULL);
    char args[64];
    snprintf(args, sizeof args, "{\"id\":%lld}", task);
    char *call = llm_call_step("g1", "delete_task", args), *done = llm_text_step("Deleted it.");
    char script[4000];
    snprintf(script, sizeof script, "[%s,%s," TG_OK "," TG_ANSWER "]", call, done);
    free(call);
    free(done);
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = api_tg();
    pid_t w = worker_tg(1, NULL);

    /* the linker links the group; the link records who did */
    char *code = new_code(alice), text[64];
    snprintf(text, sizeof text, "/start@agentq_bot %s", code);
    free(code);
    GROUP_SAY(800, group, linker, text);
    WAIT_SENDS(group, 1);
    cJSON *s = sends_to(group);
    CHECK_CONTAINS(text_at(s, 0), "Linked");
    cJSON_Delete(s);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = $1 AND user_id = $2 AND linked_by = $3",
                     th_num(group), th_num(uid), th_num(linker), NULL), 1);

    /* another member's message: a polite refusal, no turn */
    GROUP_SAY(801, group, member, "delete the old report");
    WAIT_SENDS(group, 2);
    s = sends_to(group);
    CHECK_CONTAINS(text_at(s, 1), "only the person who linked");
    cJSON_Delete(s);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 0);

    /* the linker's message: a turn, which asks for approval in the group */
    GROUP_SAY(802, group, linker, "delete the old report");
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND status = 'waiting'",
                      NULL));
    long long turn = th_int("SELECT id FROM jobs WHERE job_type = 'agent_turn'", NULL);
    long long action = th_int("SELECT id FROM pending_actions WHERE job_id = $1 AND status = 'pending'", th_num(turn),
                              NULL);
    CHECK(action > 0);
    WAIT_SENDS(group, 3);
    char yes[48];
    snprintf(yes, sizeof yes, "act:%lld:approve", action);

    /* another member presses Approve: refused, the action stays pending, nothing runs */
    GROUP_PRESS(803, "cq-member", group, member, yes);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'telegram_update' AND status = 'succeeded'"
                      " AND idempotency_key = 'telegram:803'", NULL));
    for (int waited = 0; count_answers() < 1 && waited < WAIT_MS; waited += 50) th_sleep_ms(50);
    cJSON *answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 1);
    CHECK_STR(th_jstr(get(cJSON_GetArrayItem(answers, 0), "body"), "callback_query_id"), "cq-member");
    CHECK_CONTAINS(th_jstr(get(cJSON_GetArrayItem(answers, 0), "body"), "text"), "only the person who linked");
    cJSON_Delete(answers);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE id = $1 AND status = 'pending'", th_num(action), NULL),
              1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'action_decision' AND input->>'decision' <> 'expired'",
                     NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(task), NULL), 1);

    /* the linker presses it: approved, the tool runs, the turn finishes */
    GROUP_PRESS(804, "cq-linker", group, linker, yes);
    CHECK(wait_job(turn, "succeeded"));
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE id = $1 AND status = 'approved'", th_num(action), NULL),
              1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(task), NULL), 0);
    answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 2);
    CHECK_CONTAINS(th_jstr(get(cJSON_GetArrayItem(answers, 1), "body"), "text"), "Approved");
    cJSON_Delete(answers);

    /* a group linked before linkers were recorded: nobody acts until it is linked again */
    link_in_db(uid, old_group);
    GROUP_SAY(805, old_group, linker, "list tasks");
    WAIT_SENDS(old_group, 1);
    s = sends_to(old_group);
    CHECK_CONTAINS(text_at(s, 0), "linked again");
    cJSON_Delete(s);
    GROUP_PRESS(806, "cq-old", old_group, linker, yes);
    for (int waited = 0; count_answers() < 3 && waited < WAIT_MS; waited += 50) th_sleep_ms(50);
    answers = calls("/answerCallbackQuery", 0);
    CHECK_INT(cJSON_GetArraySize(answers), 3);
    CHECK_CONTAINS(th_jstr(get(cJSON_GetArrayItem(answers, 2), "body"), "text"), "linked again");
    cJSON_Delete(answers);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    cJSON *llm = calls("/chat/completions", 0);
    CHECK_INT(cJSON_GetArraySize(llm), 2);
    cJSON_Delete(llm);
    check_send_shapes();
    free(alice);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 12. malformed updates and over-long text ==== */

/* An update that could never be stored is answered 200 and dropped at once
 * (Telegram resends anything else forever); it never reaches an enqueue batch. */
static void webhook_malformed_dropped(void)
{
    pid_t api = api_tg();
    const char *const dropped[] = {
        /* invalid UTF-8 (a Latin-1 byte) in the text */
        "{\"update_id\":2001,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
        "\"from\":{\"id\":555},\"text\":\"caf\xe9\"}}",
        /* a NUL escape, which would cut the text short */
        "{\"update_id\":2002,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
        "\"from\":{\"id\":555},\"text\":\"ab\\u0000cd\"}}",
        /* a lone surrogate */
        "{\"update_id\":2003,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
        "\"from\":{\"id\":555},\"text\":\"\\ud800\"}}",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++) {
        th_resp r = webhook(dropped[i]);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body, "\"dropped\"");
        th_resp_free(&r);
    }
    /* bigger than AGENTQ_MAX_BODY_BYTES (64 KiB): dropped too */
    char *big = malloc(70000);
    size_t n = (size_t)snprintf(big, 200, "{\"update_id\":2004,\"message\":{\"message_id\":1,\"date\":1,"
                                "\"chat\":{\"id\":555,\"type\":\"private\"},\"text\":\"");
    memset(big + n, 'x', 69000);
    strcpy(big + n + 69000, "\"}}");
    th_resp r = webhook(big);
    free(big);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"dropped\"");
    th_resp_free(&r);
    /* far beyond it (over twice the limit), the HTTP layer cuts the request off: 413 */
    char *huge = malloc(200001);
    memset(huge, ' ', 200000);
    huge[200000] = '\0';
    r = webhook(huge);
    free(huge);
    CHECK_INT(r.status, 413);
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 0);
    /* an escaped backslash before u0000 is text, not NUL: stored as sent */
    r = webhook("{\"update_id\":2005,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
                "\"from\":{\"id\":555},\"text\":\"a\\\\u0000b\"}}");
    CHECK_INT(r.status, 200);
    CHECK(!strstr(r.body, "dropped"));
    th_resp_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key = 'telegram:2005'"
                     " AND input->'message'->>'text' = 'a\\u0000b'", NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs", NULL), 1);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* Text from Telegram obeys AGENTQ_MAX_MESSAGE_CHARS, counted in characters,
 * through the webhook and through `telegram poll` alike: a reply explains
 * the limit and no turn runs. */
static void text_over_limit(void)
{
    char over[256] = "", at[256] = "";
    for (int i = 0; i < 51; i++) strcat(over, "\xc3\xa9");   /* 51 characters, 102 bytes */
    for (int i = 0; i < 50; i++) strcat(at, "\xc3\xa9");
    char script[1024];
    snprintf(script, sizeof script, "[" TG_OK ",{\"match\":\"/getUpdates\",\"body\":{\"ok\":true,\"result\":["
             "{\"update_id\":903,\"message\":{\"message_id\":3,\"date\":1,\"chat\":{\"id\":555,\"type\":\"private\"},"
             "\"from\":{\"id\":555,\"is_bot\":false,\"first_name\":\"a\"},\"text\":\"%s\"}}]}}]", over);
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    link_in_db(uid, 555);
    pid_t api = api_tg();
    pid_t w = worker_tg(0, "AGENTQ_MAX_MESSAGE_CHARS=50");

    CHECK_INT(SEND_TEXT(901, 555, over), 0);
    WAIT_SENDS(555, 1);
    cJSON *s = sends_to(555);
    CHECK_CONTAINS(text_at(s, 0), "51 characters");
    CHECK_CONTAINS(text_at(s, 0), "limit is 50");
    cJSON_Delete(s);
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 0);

    /* at the limit: a turn */
    CHECK_INT(SEND_TEXT(902, 555, at), 0);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn' AND input->>'message' = $1",
                      at, NULL));

    /* through getUpdates: the same answer */
    char base[160];
    snprintf(base, sizeof base, "TELEGRAM_API_BASE=%s", fake_url);
    const char *const env[] = {"TELEGRAM_BOT_TOKEN=123:test", base, NULL};
    const char *const poll[] = {"telegram", "poll", "--once", NULL};
    th_cli_run r = th_cli(env, poll);
    CHECK_INT(r.status, 0);
    th_cli_free(&r);
    CHECK(th_wait_int(1, WAIT_MS, "SELECT count(*) FROM jobs WHERE idempotency_key = 'telegram:903'"
                      " AND status = 'succeeded' AND output->>'message' LIKE 'too long%'", NULL));
    CHECK(wait_idle());
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'", NULL), 1);
    s = sends_to(555);
    int n = cJSON_GetArraySize(s), limits = 0;
    for (int i = 0; i < n; i++) limits += strstr(nz(text_at(s, i)), "limit is 50") != NULL;
    CHECK_INT(limits, 2);
    cJSON_Delete(s);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 13. `telegram poll` keeps its offset in the database ==== */

static void poll_offset_moves_forward(void)
{
    /* as Telegram does, each answer holds only updates at or past the offset asked;
     * the second carries an update that is not UTF-8 (raw bytes from the fake) */
    th_fake("[{\"match\":\"/getUpdates\",\"body\":{\"ok\":true,\"result\":["
            "{\"update_id\":41,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":777,\"type\":\"private\"},\"text\":\"one\"}},"
            "{\"update_id\":42,\"message\":{\"message_id\":2,\"date\":1,\"chat\":{\"id\":777,\"type\":\"private\"},\"text\":\"two\"}}]}},"
            "{\"match\":\"/getUpdates\",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":"
            "\"{\\\"ok\\\":true,\\\"result\\\":["
            "{\\\"update_id\\\":43,\\\"message\\\":{\\\"message_id\\\":3,\\\"date\\\":1,\\\"chat\\\":{\\\"id\\\":777},\\\"text\\\":\\\"caf\xe9\\\"}},"
            "{\\\"update_id\\\":44,\\\"message\\\":{\\\"message_id\\\":4,\\\"date\\\":1,\\\"chat\\\":{\\\"id\\\":777},\\\"text\\\":\\\"four\\\"}}]}\"},"
            "{\"match\":\"/getUpdates\",\"body\":{\"ok\":true,\"result\":[]}}]",
            fake_url, sizeof fake_url);
    char base[160];
    snprintf(base, sizeof base, "TELEGRAM_API_BASE=%s", fake_url);
    const char *const env[] = {"TELEGRAM_BOT_TOKEN=123:test", base, NULL};
    const char *const poll[] = {"telegram", "poll", "--once", NULL};
    th_cli_run r = th_cli(env, poll);
    CHECK_INT(r.status, 0);
    CHECK_STR(r.out, "2 update(s) stored\n");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT next_offset FROM telegram_poll_offsets WHERE bot_id = '123'", NULL), 43);
    r = th_cli(env, poll);   /* the next run asks past what the last one stored; the bad update is dropped */
    CHECK_INT(r.status, 0);
    CHECK_STR(r.out, "1 update(s) stored, 1 malformed dropped\n");
    CHECK_CONTAINS(r.err, "dropped update 43");
    th_cli_free(&r);
    r = th_cli(env, poll);
    CHECK_INT(r.status, 0);
    CHECK_STR(r.out, "0 update(s) stored\n");
    th_cli_free(&r);
    cJSON *gets = calls("/getUpdates", 0);
    CHECK_INT(cJSON_GetArraySize(gets), 3);
    CHECK_INT(th_jnum(get(cJSON_GetArrayItem(gets, 0), "body"), "offset"), 0);
    CHECK_INT(th_jnum(get(cJSON_GetArrayItem(gets, 1), "body"), "offset"), 43);
    CHECK_INT(th_jnum(get(cJSON_GetArrayItem(gets, 2), "body"), "offset"), 45);
    cJSON_Delete(gets);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'telegram_update'", NULL), 3);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE idempotency_key IN ('telegram:41', 'telegram:42', 'telegram:44')",
                     NULL), 3);
    CHECK_INT(th_int("SELECT next_offset FROM telegram_poll_offsets WHERE bot_id = '123'", NULL), 45);
}

/* ==== 14. a group that becomes a supergroup ==== */

static void group_migrated_to_supergroup(void)
{
    const long long old_chat = -4242, new_chat = -1001234567890LL;
    th_fake("[{\"match\":\"/sendMessage\",\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,"
            "\"description\":\"Bad Request: group chat was upgraded to a supergroup chat\","
            "\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}}," TG_OK "]", fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    th_exec("INSERT INTO channels (user_id, kind, address, linked_by) VALUES ($1, 'telegram', $2, 42)", th_num(uid),
            th_num(old_chat), NULL);
    char *session = th_str("SELECT session_id::text FROM channels", NULL);
    pid_t w = worker_tg(0, NULL);
    char *text = long_text(6000);   /* two messages */
    long long job = insert_notify(uid, old_chat, text);
    CHECK(wait_job(job, "succeeded"));
    cJSON *all = calls("/sendMessage", 0);
    CHECK_INT(cJSON_GetArraySize(all), 3);
    CHECK_INT((long long)cJSON_GetNumberValue(get(get(cJSON_GetArrayItem(all, 0), "body"), "chat_id")), old_chat);
    cJSON_Delete(all);
    /* the new chat got each chunk once, in order, and they make up the text */
    cJSON *s = sends_to(new_chat);
    CHECK_INT(cJSON_GetArraySize(s), 2);
    if (cJSON_GetArraySize(s) == 2) {
        CHECK(strcmp(nz(text_at(s, 0)), nz(text_at(s, 1))) != 0);
        CHECK(!strncmp(text, nz(text_at(s, 0)), strlen(nz(text_at(s, 0)))));
        CHECK(strstr(text, nz(text_at(s, 1))) != NULL);
    }
    cJSON_Delete(s);
    CHECK_INT(th_int("SELECT count(*) FROM telegram_sent WHERE job_id = $1", th_num(job), NULL), 2);
    CHECK_INT(th_int("SELECT (output->>'chat_id')::bigint FROM jobs WHERE id = $1", th_num(job), NULL), new_chat);
    /* the channel moved, with its user, session and linker */
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = $1 AND user_id = $2 AND session_id = $3::uuid"
                     " AND linked_by = 42 AND active", th_num(new_chat), th_num(uid), nz(session), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM channels", NULL), 1);
    free(session);
    free(text);

    /* the service messages Telegram sends on a migration move a channel too, and get no reply */
    pid_t api = api_tg();
    link_in_db(uid, -5001);
    link_in_db(uid, -6001);
    th_resp r = webhook("{\"update_id\":950,\"message\":{\"message_id\":5,\"date\":1,\"chat\":{\"id\":-5001,\"type\":\"group\"},"
                        "\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"a\"},\"migrate_to_chat_id\":-1005001}}");
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    r = webhook("{\"update_id\":951,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":-1006001,"
                "\"type\":\"supergroup\"},\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"a\"},"
                "\"migrate_from_chat_id\":-6001}}");
    CHECK_INT(r.status, 200);
    th_resp_free(&r);
    CHECK(th_wait_int(2, WAIT_MS, "SELECT count(*) FROM channels WHERE address IN ('-1005001', '-1006001')", NULL));
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address IN ('-5001', '-6001')", NULL), 0);
    CHECK(wait_idle());
    th_sleep_ms(200);
    CHECK_INT(count_sends(-5001) + count_sends(-1005001) + count_sends(-6001) + count_sends(-1006001), 0);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* ==== 15. `agentq telegram link NAME` ==== */

static void cli_link_code(void)
{
    th_fake("[" TG_OK "]", fake_url, sizeof fake_url);
    char *alice = th_user("alice", 0);
    long long uid = user_id("alice");
    /* --help prints usage and acts on nothing */
    const char *const helps[][5] = {{"telegram", "link", "--help", NULL}, {"telegram", "link", "alice", "--help", NULL},
                                    {"telegram", "--help", NULL}, {"telegram", "poll", "--help", NULL}};
    const char *const no_token[] = {"TELEGRAM_BOT_TOKEN=", NULL};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        th_cli_run r = th_cli(no_token, helps[i]);
        CHECK_INT(r.status, 0);
        CHECK_CONTAINS(r.out, "usage: agentq telegram");
        th_cli_free(&r);
    }
    CHECK_INT(th_int("SELECT count(*) FROM link_codes", NULL), 0);
    const char *const none[] = {"telegram", "link", NULL};
    th_cli_run r = th_cli(NULL, none);
    CHECK_INT(r.status, 2);
    th_cli_free(&r);
    const char *const nobody[] = {"telegram", "link", "nobody", NULL};
    r = th_cli(NULL, nobody);
    CHECK_INT(r.status, 1);
    CHECK_CONTAINS(r.err, "no user named 'nobody'");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes", NULL), 0);

    /* a code: the last line of stdout, stored for alice, and it links a chat */
    const char *const link[] = {"telegram", "link", "alice", NULL};
    r = th_cli(NULL, link);
    CHECK_INT(r.status, 0);
    char code[32] = "";
    const char *nl = strrchr(r.out, '\n');
    if (nl && nl > r.out) {
        const char *start = nl;
        while (start > r.out && start[-1] != '\n') start--;
        snprintf(code, sizeof code, "%.*s", (int)(nl - start), start);
    }
    CHECK_INT((long long)strlen(code), 10);
    CHECK_CONTAINS(r.out, "/start");
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes WHERE code = $1 AND user_id = $2 AND used_at IS NULL"
                     " AND expires_at > now() + interval '10 minutes' AND expires_at < now() + interval '16 minutes'",
                     code, th_num(uid), NULL), 1);
    pid_t api = api_tg();
    pid_t w = worker_tg(0, NULL);
    char *a = START(990, 555, code);
    CHECK_CONTAINS(a, "Linked");
    free(a);
    CHECK_INT(th_int("SELECT count(*) FROM channels WHERE address = '555' AND user_id = $1 AND linked_by = 555",
                     th_num(uid), NULL), 1);
    /* --json: the API's shape */
    const char *const link_json[] = {"telegram", "link", "alice", "--json", NULL};
    r = th_cli(NULL, link_json);
    CHECK_INT(r.status, 0);
    cJSON *j = cJSON_Parse(r.out);
    const char *c2 = th_jstr(j, "code");
    CHECK(c2 && strlen(c2) == 10);
    char want[64];
    snprintf(want, sizeof want, "/start %s", c2 ? c2 : "");
    CHECK_STR(th_jstr(j, "start"), want);
    CHECK(th_jstr(j, "expires_at") != NULL);
    cJSON_Delete(j);
    th_cli_free(&r);
    CHECK_INT(th_int("SELECT count(*) FROM link_codes WHERE user_id = $1", th_num(uid), NULL), 2);
    free(alice);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

const th_test th_telegram_tests[] = {
    {"tg_webhook_secret_and_dedupe", webhook_secret_and_dedupe, 30, 1},
    {"tg_webhook_off", webhook_off, 30, 1},
    {"tg_webhook_stores_big_numbers_exactly", webhook_stores_big_numbers_exactly, 30, 1},
    {"tg_link_and_reply", link_and_reply, 60, 1},
    {"tg_database_restart_while_sending_no_repeat", database_restart_while_sending_no_repeat, 60, 1},
    {"tg_database_down_at_answer_no_repeat", database_down_at_answer_no_repeat, 60, 1},
    {"tg_link_codes", link_codes, 60, 1},
    {"tg_long_reply_three_messages", long_reply_three_messages, 60, 1},
    {"tg_huge_reply_cut", huge_reply_is_cut, 60, 1},
    {"tg_retried_after_failure", retried_after_failure, 60, 1},
    {"tg_429_then_success", rate_limited_then_success, 60, 1},
    {"tg_403_blocked", blocked_403, 60, 1},
    {"tg_kill_between_chunks", kill_between_chunks, 60, 1},
    {"tg_approval_by_button", approval_by_button, 60, 1},
    {"tg_web_inbox_and_schedule_owner", web_inbox_and_schedule_owner, 60, 1},
    {"tg_reply_to_only_owned_chats", reply_to_only_owned_chats, 60, 1},
    {"tg_poll_once", poll_once, 60, 1},
    {"tg_group_only_linker_acts", group_only_linker_acts, 60, 1},
    {"tg_webhook_malformed_dropped", webhook_malformed_dropped, 30, 1},
    {"tg_text_over_limit", text_over_limit, 60, 1},
    {"tg_poll_offset_moves_forward", poll_offset_moves_forward, 60, 1},
    {"tg_group_migrated_to_supergroup", group_migrated_to_supergroup, 60, 1},
    {"tg_cli_link_code", cli_link_code, 60, 1},
    {0},
};
