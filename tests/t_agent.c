/* t_agent.c — the agent_turn handler against a fake OpenAI-compatible server
 * (bin/agentq-fake, scripted per test) reached through the real libcurl
 * client: tool calls and their storage, the context window, approvals through
 * the API, provider faults (429 + Retry-After, 500s, garbled bodies, 401),
 * bad tool calls, the step bound, and the offline responder; and the
 * consent and correctness rules of issue 9: one approval for one call, the
 * arguments shown are the arguments run, the context window, truncation,
 * provider error bodies, usage bounds, the per-reply call cap, the key
 * scrub, the date in the prompt. */
#include "harness.h"
#include "aq_buf.h"
#include "aq_json.h"
#include "llm.h"
#include "tools.h"
#include <cJSON.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>

#define SID "7a1b2c3d-0000-4000-8000-00000000000a"

static char fake_url[128];

/* A worker talking to the fake as an OpenAI-compatible provider. */
static pid_t worker_on_fake(const char *extra)
{
    static char base[200];
    snprintf(base, sizeof base, "LLM_BASE_URL=%s/v1", fake_url);
    const char *const env[] = {"LLM_PROVIDER=openai", base, "LLM_API_KEY=sk-test", "LLM_MODEL=test-model",
                               "AGENTQ_RETRY_BASE_MS=20", "AGENTQ_POLL_MS=100", extra ? extra : "AGENTQ_LOG_LEVEL=info",
                               NULL};
    return th_worker(NULL, env);
}

static long long new_user(const char *name)
{
    return th_int("INSERT INTO users (name, token_id, token_hash) VALUES ($1, $1, '\\x00') RETURNING id", name, NULL);
}

static long long turn(long long uid, const char *message, int max_attempts)
{
    return th_int("INSERT INTO jobs (job_type, input, user_id, session_id, max_attempts) VALUES ('agent_turn',"
                  " json_build_object('message', $2::text, 'session_id', $3::text, 'channel', 'web'), $1, $3::uuid, $4)"
                  " RETURNING id", th_num(uid), message, SID, th_num(max_attempts), NULL);
}

static int wait_status(long long id, const char *status, int ms)
{
    return th_wait_int(1, ms, "SELECT count(*) FROM jobs WHERE id = $1 AND status = $2", th_num(id), status, NULL);
}

/* A chat completion that calls one tool. */
static char *call_step(const char *id, const char *name, const char *args)
{
    cJSON *args_s = cJSON_CreateString(args);
    char *a = cJSON_PrintUnformatted(args_s);
    cJSON_Delete(args_s);
    char *s = malloc(strlen(a) + 400);
    sprintf(s, "{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
               "[{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":%s}}]}}],"
               "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}}", id, name, a);
    free(a);
    return s;
}

static const char *final_step(const char *text)
{
    static char s[600];
    snprintf(s, sizeof s, "{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"%s\"}}],"
             "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}}", text);
    return s;
}

/* messages[] the client sent in request i (0-based), or NULL */
static const cJSON *sent_messages(const cJSON *reqs, int i)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, i), "body"),
                                            "messages");
}

static void two_tool_calls_then_reply(void)
{
    char *s1 = call_step("c1", "add_task", "{\"title\":\"buy milk\"}");
    char *s2 = call_step("c2", "list_tasks", "{}");
    char script[4000];
    /* the final reply comes as a list of content blocks */
    snprintf(script, sizeof script, "[%s,%s,{\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"You have one task: \"},{\"type\":\"text\",\"text\":\"buy milk.\"}]}}],"
             "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}}]", s1, s2);
    free(s1);
    free(s2);
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("alice");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "add milk and show my list", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1 AND title = 'buy milk' AND status = 'open'",
                     th_num(uid), NULL), 1);
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(reply, "You have one task: buy milk.");
    free(reply);
    CHECK_INT(th_int("SELECT (output->'usage'->>'prompt_tokens')::int FROM jobs WHERE id = $1", th_num(id), NULL), 27);
    CHECK_INT(th_int("SELECT jsonb_array_length(output->'tool_calls') FROM jobs WHERE id = $1", th_num(id), NULL), 2);
    /* every message stored, in order */
    char *roles = th_str("SELECT string_agg(role, ',' ORDER BY id) FROM chat_message_history WHERE session_id = $1",
                         SID, NULL);
    CHECK_STR(roles, "user,assistant,tool,assistant,tool,assistant");
    free(roles);
    /* each result answers the call before it, by an id of ours (not the provider's c1, c2) */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history t JOIN chat_message_history a ON a.session_id ="
                     " t.session_id AND a.id = t.id - 1 WHERE t.session_id = $1 AND t.role = 'tool'"
                     " AND t.tool_call_id = a.tool_calls->0->>'id' AND t.tool_call_id LIKE 'call\\_%'", SID, NULL), 2);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%buy milk%'", SID, NULL), 2);
    /* what the client sent: model, key, tools; the second call carries the first tool result */
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 3);
    const cJSON *r0 = cJSON_GetArrayItem(reqs, 0);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(r0, "headers");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "authorization")), "Bearer sk-test");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r0, "path")), "/v1/chat/completions");
    const cJSON *b0 = cJSON_GetObjectItemCaseSensitive(r0, "body");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b0, "model")), "test-model");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b0, "tools")) >= 6);
    const cJSON *m1 = sent_messages(reqs, 1);
    const cJSON *last = cJSON_GetArrayItem(m1, cJSON_GetArraySize(m1) - 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "role")), "tool");
    const cJSON *asked = cJSON_GetArrayItem(m1, cJSON_GetArraySize(m1) - 2);
    const cJSON *call0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(asked, "tool_calls"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "tool_call_id")), th_jstr(call0, "id"));
    CHECK_CONTAINS(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "content")), "buy milk");
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void context_is_last_n_plus_system(void)
{
    char script[800];
    snprintf(script, sizeof script, "[%s]", final_step("ok"));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("bob");
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, 'web')", SID, th_num(uid), NULL);
    for (int i = 1; i <= 25; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        th_exec("INSERT INTO chat_message_history (session_id, role, content) VALUES ($1, $2, $3)", SID,
                i % 2 ? "user" : "assistant", text, NULL);
    }
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "m26", 5);   /* the 26th message; the model sees m7..m26 */
    CHECK(wait_status(id, "succeeded", 15000));
    cJSON *reqs = th_fake_requests();
    const cJSON *msgs = sent_messages(reqs, 0);
    CHECK_INT(cJSON_GetArraySize(msgs), 21);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "role")), "system");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 1), "content")), "m7");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 20), "content")), "m26");
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void approval_approve_and_reject(void)
{
    char *tok = th_user("carol", 0);
    long long uid = th_int("SELECT id FROM users WHERE name = 'carol'", NULL);
    long long t1 = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'old report') RETURNING id", th_num(uid), NULL);
    char args[64];
    snprintf(args, sizeof args, "{\"id\":%lld}", t1);
    char *d1 = call_step("d1", "delete_task", args), *d2 = call_step("d2", "delete_task", args);
    char script[3000];
    snprintf(script, sizeof script, "[%s,%s]", d1, final_step("Deleted it."));
    th_fake(script, fake_url, sizeof fake_url);
    pid_t api = th_api(NULL);
    pid_t w = worker_on_fake(NULL);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"delete the old report\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long job = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(wait_status(job, "waiting", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t1), NULL), 1);   /* nothing deleted yet */
    long long action = th_int("SELECT id FROM pending_actions WHERE job_id = $1 AND status = 'pending'", th_num(job), NULL);
    CHECK(action > 0);
    char path[64];
    snprintf(path, sizeof path, "/v1/actions/%lld/approve", action);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    CHECK(wait_status(job, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t1), NULL), 0);   /* deleted */
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(job), NULL);
    CHECK_STR(reply, "Deleted it.");
    free(reply);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(job), NULL), 1);
    /* the decision's audit row: who, which action, the tool and its arguments, from where */
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'action.approved' AND target = 'action:' || $1"
                     " AND actor = 'carol' AND actor_id = $2 AND channel = 'api' AND details->>'tool' = 'delete_task'"
                     " AND details->'arguments' = $3::jsonb AND (details->>'job_id')::bigint = $4",
                     th_num(action), th_num(uid), args, th_num(job), NULL), 1);
    r = th_post(path, tok, NULL);   /* a second decision */
    CHECK_INT(r.status, 409);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v1/actions/%lld/reject", action);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 409);
    th_resp_free(&r);

    /* reject: nothing deleted, and the model is told */
    long long t2 = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'keep me') RETURNING id", th_num(uid), NULL);
    snprintf(args, sizeof args, "{\"id\":%lld}", t2);
    free(d2);
    d2 = call_step("d2", "delete_task", args);
    snprintf(script, sizeof script, "[%s,%s]", d2, final_step("Fine, I kept it."));
    th_fake_add(script);
    r = th_post("/v1/chat", tok, "{\"message\":\"delete keep me\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long job2 = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(wait_status(job2, "waiting", 15000));
    long long action2 = th_int("SELECT id FROM pending_actions WHERE job_id = $1", th_num(job2), NULL);
    snprintf(path, sizeof path, "/v1/actions/%lld/reject", action2);
    r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    CHECK(wait_status(job2, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t2), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action = 'action.rejected' AND target = 'action:' || $1"
                     " AND actor = 'carol' AND channel = 'api' AND details->'arguments' = $2::jsonb",
                     th_num(action2), args, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM audit_log WHERE action LIKE 'action.%'", NULL), 2);   /* the 409s wrote none */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND tool_call_id = (SELECT tool_call_id FROM pending_actions WHERE id = $2)"
                     " AND content LIKE '%declined%'", SID, th_num(action2), NULL), 1);
    cJSON *reqs = th_fake_requests();   /* the model's last request carried the refusal */
    const cJSON *msgs = sent_messages(reqs, cJSON_GetArraySize(reqs) - 1);
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    CHECK_CONTAINS(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "content")), "declined");
    cJSON_Delete(reqs);
    free(d1);
    free(d2);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static void rate_limited_then_success(void)
{
    char script[1000];
    snprintf(script, sizeof script, "[{\"status\":429,\"headers\":{\"Retry-After\":\"1\"},\"body\":{\"error\":"
             "{\"message\":\"slow down\"}}},%s]", final_step("hello after waiting"));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("dave");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);   /* Retry-After spends none */
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 2);
    double t0 = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 0), "ms"));
    double t1 = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 1), "ms"));
    if (t1 - t0 < 900) th_fail(__FILE__, __LINE__, "Retry-After 1 s not honoured: retried after %.0f ms", t1 - t0);
    cJSON_Delete(reqs);
    /* the user message is stored once, whatever the retries */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'user'", SID, NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void server_errors_then_failed_with_apology(void)
{
    th_fake("[{\"status\":500,\"body\":{\"error\":{\"message\":\"upstream exploded\"}},\"repeat\":-1}]",
            fake_url, sizeof fake_url);
    long long uid = new_user("erin");
    pid_t w = worker_on_fake("AGENTQ_LLM_RETRY_SECONDS=0");   /* no outage budget: each retry spends an attempt */
    long long id = turn(uid, "hi", 3);
    CHECK(wait_status(id, "failed", 20000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 3);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "HTTP 500");
    CHECK_CONTAINS(err, "upstream exploded");
    free(err);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'assistant'"
                     " AND content LIKE 'Sorry%'", SID, NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void unauthorized_fails_at_once(void)
{
    th_fake("[{\"status\":401,\"body\":{\"error\":{\"message\":\"Incorrect API key provided\"}},\"repeat\":-1}]",
            fake_url, sizeof fake_url);
    long long uid = new_user("fay");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "failed", 15000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "Incorrect API key provided");
    CHECK_CONTAINS(err, "LLM_");
    free(err);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'assistant'"
                     " AND content LIKE 'Sorry%'", SID, NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void garbled_replies_and_bad_tool_calls(void)
{
    char *bad_args = call_step("b1", "add_task", "{title: not json");
    char *unknown = call_step("u1", "launch_rockets", "{}");
    char script[3000];
    snprintf(script, sizeof script, "[{\"body\":\"this is not json\"},{\"body\":{\"choices\":[]}},%s,%s,%s]",
             bad_args, unknown, final_step("Sorry, I could not do that."));
    free(bad_args);
    free(unknown);
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("gus");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "do strange things", 5);
    CHECK(wait_status(id, "succeeded", 20000));
    /* two garbled replies retried as transient faults: no attempt spent */
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%not a JSON object%'", SID, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%unknown tool%launch_rockets%'", SID, NULL), 1);
    CHECK(th_alive(w));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void endless_tool_calls_are_bounded(void)
{
    char *loop = call_step("l1", "list_tasks", "{}");
    char script[1000];
    snprintf(script, sizeof script, "[%.*s,\"repeat\":-1}]", (int)strlen(loop) - 1, loop);
    free(loop);
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("hal");
    pid_t w = worker_on_fake("AGENTQ_AGENT_MAX_STEPS=3");
    long long id = turn(uid, "loop forever", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    char *stopped = th_str("SELECT output->>'stopped' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(stopped, "max_steps");
    free(stopped);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 3);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void offline_adds_and_lists(void)
{
    char *tok = th_user("ida", 0);
    pid_t api = th_api(NULL);
    const char *const env[] = {"AGENTQ_POLL_MS=100", NULL};   /* LLM_PROVIDER defaults to offline */
    pid_t w = th_worker(NULL, env);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"add task water the plants\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long j1 = th_int("SELECT max(id) FROM jobs", NULL);
    CHECK(wait_status(j1, "succeeded", 15000));
    r = th_post("/v1/chat", tok, "{\"message\":\"list tasks\",\"session_id\":\"" SID "\"}");
    th_resp_free(&r);
    long long j2 = th_int("SELECT max(id) FROM jobs", NULL);
    CHECK(wait_status(j2, "succeeded", 15000));
    char *reply = th_str("SELECT output->>'reply' FROM jobs WHERE id = $1", th_num(j2), NULL);
    CHECK_CONTAINS(reply, "not a model");
    CHECK_CONTAINS(reply, "water the plants");
    free(reply);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE title = 'water the plants'", NULL), 1);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static void approval_expires(void)
{
    long long uid = new_user("jo");
    long long t1 = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'draft') RETURNING id", th_num(uid), NULL);
    char args[64];
    snprintf(args, sizeof args, "{\"id\":%lld}", t1);
    char *d = call_step("e1", "delete_task", args);
    char script[2000];
    snprintf(script, sizeof script, "[%s,%s]", d, final_step("The request expired, nothing was deleted."));
    free(d);
    th_fake(script, fake_url, sizeof fake_url);
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "delete the draft", 5);
    CHECK(wait_status(id, "waiting", 15000));
    /* the expiry job waits for the action's expiry (a day by default); bring both forward */
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE job_type = 'action_decision' AND parent_id = $1"
                     " AND input->>'decision' = 'expired' AND run_at > now() + interval '23 hours'", th_num(id), NULL), 1);
    th_exec("UPDATE pending_actions SET expires_at = now() WHERE job_id = $1", th_num(id), NULL);
    th_exec("UPDATE jobs SET run_at = now() WHERE job_type = 'action_decision' AND parent_id = $1", th_num(id), NULL);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE job_id = $1 AND status = 'expired'", th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(t1), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND tool_call_id ="
                     " (SELECT tool_call_id FROM pending_actions WHERE job_id = $2) AND content LIKE '%expired%'",
                     SID, th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}


/* ---- building scripts: steps as cJSON, printed at the end ---- */

/* one tool call of type function; id NULL: none sent */
static cJSON *fn_call(const char *id, const char *name, const char *args)
{
    cJSON *c = cJSON_CreateObject();
    if (id) cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "type", "function");
    cJSON *f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", args);
    return c;
}

/* A completion step: content (NULL: null), finish_reason (NULL: none), then
 * the calls (cJSON *, taken), NULL-terminated. Heap text. */
static char *step(const char *content, const char *finish, ...)
{
    cJSON *st = cJSON_CreateObject(), *body = cJSON_AddObjectToObject(st, "body");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "choices"), choice);
    cJSON *msg = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (content) cJSON_AddStringToObject(msg, "content", content); else cJSON_AddNullToObject(msg, "content");
    va_list ap;
    va_start(ap, finish);
    cJSON *c, *calls = NULL;
    while ((c = va_arg(ap, cJSON *))) {
        if (!calls) calls = cJSON_AddArrayToObject(msg, "tool_calls");
        cJSON_AddItemToArray(calls, c);
    }
    va_end(ap);
    if (finish) cJSON_AddStringToObject(choice, "finish_reason", finish);
    cJSON *u = cJSON_AddObjectToObject(body, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", 10);
    cJSON_AddNumberToObject(u, "completion_tokens", 5);
    char *s = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    return s;
}

/* "[s1,s2,...]" from heap steps (freed), NULL-terminated. Heap text. */
static char *script_of(char *first, ...)
{
    size_t cap = 16, len = 1;
    char *out = malloc(cap);
    strcpy(out, "[");
    va_list ap;
    va_start(ap, first);
    for (char *s = first; s; s = va_arg(ap, char *)) {
        size_t n = strlen(s);
        out = realloc(out, cap = len + n + 4);
        if (len > 1) out[len++] = ',';
        memcpy(out + len, s, n);
        len += n;
        out[len] = '\0';
        free(s);
    }
    va_end(ap);
    out[len++] = ']';
    out[len] = '\0';
    return out;
}

static char *id_args(long long id)
{
    static char a[4][64];
    static int k;
    char *s = a[k++ % 4];
    snprintf(s, 64, "{\"id\":%lld}", id);
    return s;
}

static void approve(const char *tok, long long action)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/actions/%lld/approve", action);
    th_resp r = th_post(path, tok, NULL);
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
}

/* The script deletes task a and then task b, each in a call the provider
 * named alike (or not at all). Approving the first must not let the second
 * run: it waits for an approval of its own. */
static void second_delete_waits(const char *user, int same_reply, const char *id)
{
    char *tok = th_user(user, 0);
    long long uid = th_int("SELECT id FROM users WHERE name = $1", user, NULL);
    long long a = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'a') RETURNING id", th_num(uid), NULL);
    long long b = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'b') RETURNING id", th_num(uid), NULL);
    char *script = same_reply
        ? script_of(step(NULL, "tool_calls", fn_call(id, "delete_task", id_args(a)),
                         fn_call(id, "delete_task", id_args(b)), NULL), step("Both gone.", "stop", NULL), NULL)
        : script_of(step(NULL, "tool_calls", fn_call(id, "delete_task", id_args(a)), NULL),
                    step(NULL, "tool_calls", fn_call(id, "delete_task", id_args(b)), NULL),
                    step("Both gone.", "stop", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    pid_t api = th_api(NULL);
    pid_t w = worker_on_fake(NULL);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"delete a and b\",\"session_id\":\"" SID "\"}");
    CHECK_INT(r.status, 202);
    th_resp_free(&r);
    long long job = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(wait_status(job, "waiting", 15000));
    approve(tok, th_int("SELECT id FROM pending_actions WHERE job_id = $1", th_num(job), NULL));
    /* the second call asks again instead of riding on the first approval */
    CHECK(th_wait_int(2, 15000, "SELECT count(*) FROM pending_actions WHERE job_id = $1", th_num(job), NULL));
    CHECK(wait_status(job, "waiting", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(a), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(b), NULL), 1);
    CHECK_INT(th_int("SELECT count(DISTINCT tool_call_id) FROM pending_actions WHERE job_id = $1", th_num(job), NULL), 2);
    approve(tok, th_int("SELECT id FROM pending_actions WHERE job_id = $1 AND status = 'pending'", th_num(job), NULL));
    CHECK(wait_status(job, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(b), NULL), 0);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

static void approval_same_id_twice_in_one_reply(void) { second_delete_waits("kim", 1, "d1"); }
static void approval_same_id_in_a_later_reply(void) { second_delete_waits("lea", 0, "d1"); }
static void approval_calls_without_ids(void) { second_delete_waits("max", 0, NULL); }

/* A call the worker refuses before running: the model gets the reason as the
 * tool result, the turn goes on to its reply, nothing is asked or run. */
static void refused_args(const char *user, const char *tool, const char *args_fmt, const char *reason)
{
    long long uid = new_user(user);
    long long a = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'a') RETURNING id", th_num(uid), NULL);
    long long b = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'b') RETURNING id", th_num(uid), NULL);
    char args[200];
    snprintf(args, sizeof args, args_fmt, a, b);
    char *script = script_of(step(NULL, "tool_calls", fn_call("x1", tool, args), NULL),
                             step("I could not.", "stop", NULL), NULL);
    pid_t fake = th_fake(script, fake_url, sizeof fake_url);
    free(script);
    th_exec("DELETE FROM chat_message_history", NULL);   /* a second case in the same test starts afresh */
    th_exec("DELETE FROM chat_sessions", NULL);
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "do it", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM pending_actions WHERE job_id = $1", th_num(id), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1 AND status = 'open'", th_num(uid), NULL), 2);
    char *res = th_str("SELECT content FROM chat_message_history WHERE session_id = $1 AND role = 'tool'", SID, NULL);
    CHECK_CONTAINS(res, reason);
    free(res);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(fake, SIGTERM, 10000), 0);
}

static void duplicate_keys_refused(void)
{
    refused_args("ned", "delete_task", "{\"id\":%lld,\"id\":%lld}", "duplicate member name");
    refused_args("ola", "complete_task", "{\"x\":{\"id\":%lld,\"i\\u0064\":%lld},\"id\":1}", "duplicate member name");
}

static void trailing_bytes_refused(void)
{
    refused_args("pam", "delete_task", "{\"id\":%lld} {\"id\":%lld}", "trailing bytes");
    refused_args("quin", "complete_task", "{\"id\":%lld}garbage%lld", "trailing bytes");
}

static void unstorable_args_refused(void)
{
    refused_args("rae", "delete_task", "{\"id\":%lld,\"why\":\"a\\u0000b%lld\"}", "u0000 in a string");
    /* valid JSON, but beyond what jsonb holds: refused the same way, not a failed turn */
    refused_args("ray", "delete_task", "{\"id\":%lld,\"n\":1e999999,\"b\":%lld}", "cannot be stored");
    refused_args("rex", "add_task", "{\"title\":\"\xff%lld\",\"notes\":\"%lld\"}", "not valid UTF-8");
}

/* The approved call runs with the arguments stored with the action (what the
 * user was shown), not with a re-reading of the model's text. */
static void approval_runs_what_was_shown(void)
{
    char *tok = th_user("sam", 0);
    long long uid = th_int("SELECT id FROM users WHERE name = 'sam'", NULL);
    long long a = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'a') RETURNING id", th_num(uid), NULL);
    long long b = th_int("INSERT INTO tasks (user_id, title) VALUES ($1, 'b') RETURNING id", th_num(uid), NULL);
    char *script = script_of(step(NULL, "tool_calls", fn_call("s1", "delete_task", id_args(a)), NULL),
                             step("Done.", "stop", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    pid_t api = th_api(NULL);
    pid_t w = worker_on_fake(NULL);
    th_resp r = th_post("/v1/chat", tok, "{\"message\":\"delete a\",\"session_id\":\"" SID "\"}");
    th_resp_free(&r);
    long long job = th_int("SELECT max(id) FROM jobs WHERE job_type = 'agent_turn'", NULL);
    CHECK(wait_status(job, "waiting", 15000));
    /* the stored form is the one the user sees (GET /v1/actions): make it differ from the model's text */
    th_exec("UPDATE pending_actions SET arguments = jsonb_build_object('id', $2::bigint) WHERE job_id = $1",
            th_num(job), th_num(b), NULL);
    approve(tok, th_int("SELECT id FROM pending_actions WHERE job_id = $1", th_num(job), NULL));
    CHECK(wait_status(job, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(a), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE id = $1", th_num(b), NULL), 0);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    CHECK_INT(th_stop(api, SIGTERM, 10000), 0);
}

/* Every assistant tool call is answered right after it, once each, and no
 * result comes without its call. */
static void check_well_formed(const cJSON *msgs, int req)
{
    cJSON *open = cJSON_CreateArray();
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, msgs) {
        const char *role = th_jstr(m, "role");
        if (role && !strcmp(role, "tool")) {
            const char *id = th_jstr(m, "tool_call_id");
            int found = 0;
            for (int k = 0; id && k < cJSON_GetArraySize(open); k++)
                if (!strcmp(cJSON_GetArrayItem(open, k)->valuestring, id)) {
                    cJSON_DeleteItemFromArray(open, k);
                    found = 1;
                    break;
                }
            if (!found) th_fail(__FILE__, __LINE__, "request %d message %d: a result without its call", req, i);
        } else {
            if (cJSON_GetArraySize(open))
                th_fail(__FILE__, __LINE__, "request %d message %d: a call without its result", req, i);
            cJSON_Delete(open);
            open = cJSON_CreateArray();
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
                cJSON_AddItemToArray(open, cJSON_CreateString(th_jstr(c, "id")));
        }
        i++;
    }
    if (cJSON_GetArraySize(open)) th_fail(__FILE__, __LINE__, "request %d: the last call has no result", req);
    cJSON_Delete(open);
}

static void context_keeps_the_request(void)
{
    char *script = script_of(
        step(NULL, "tool_calls", fn_call("k1", "add_task", "{\"title\":\"t1\"}"), NULL),
        step(NULL, "tool_calls", fn_call("k2", "add_task", "{\"title\":\"t2\"}"),
             fn_call("k3", "add_task", "{\"title\":\"t3\"}"), NULL),
        step(NULL, "tool_calls", fn_call("k4", "list_tasks", "{}"), NULL),
        step(NULL, "tool_calls", fn_call("k5", "add_task", "{\"title\":\"t4\"}"),
             fn_call("k6", "add_task", "{\"title\":\"t5\"}"), fn_call("k7", "list_tasks", "{}"), NULL),
        step(NULL, "tool_calls", fn_call("k8", "list_tasks", "{}"), NULL),
        step("Five tasks added.", "stop", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("tia");
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, 'web')", SID, th_num(uid), NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, content) VALUES ($1, 'user', 'earlier')", SID, NULL);
    pid_t w = worker_on_fake("AGENTQ_CONTEXT_MESSAGES=4");
    long long id = turn(uid, "add five tasks please", 5);
    CHECK(wait_status(id, "succeeded", 20000));
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 6);
    for (int i = 0; i < cJSON_GetArraySize(reqs); i++) {
        const cJSON *msgs = sent_messages(reqs, i), *m;
        int users = 0;
        cJSON_ArrayForEach(m, msgs) {
            const char *c = th_jstr(m, "content");
            if (!strcmp(th_jstr(m, "role"), "user") && c && !strcmp(c, "add five tasks please")) users++;
        }
        if (users != 1) th_fail(__FILE__, __LINE__, "request %d carries the turn's message %d times", i, users);
        check_well_formed(msgs, i);
    }
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

/* Two turns in one session: a call's result stored after another turn's
 * message still goes right after its call; a call with no result gets a
 * stand-in; a result whose call is outside the window is left out. */
static void context_pairs_interleaved_results(void)
{
    char script[800];
    snprintf(script, sizeof script, "[%s]", final_step("ok"));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("ugo");
    th_exec("INSERT INTO chat_sessions (id, user_id, channel) VALUES ($1, $2, 'web')", SID, th_num(uid), NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, content, tool_call_id) VALUES"
            " ($1, 'tool', 'orphan', 'gone1')", SID, NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, tool_calls) VALUES ($1, 'assistant',"
            " '[{\"id\":\"p1\",\"type\":\"function\",\"function\":{\"name\":\"delete_task\",\"arguments\":\"{}\"}},"
            " {\"id\":\"p2\",\"type\":\"function\",\"function\":{\"name\":\"list_tasks\",\"arguments\":\"{}\"}}]')",
            SID, NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, content) VALUES ($1, 'user', 'meanwhile')", SID, NULL);
    th_exec("INSERT INTO chat_message_history (session_id, role, content, tool_call_id) VALUES"
            " ($1, 'tool', 'late result', 'p1')", SID, NULL);
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "and now?", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    cJSON *reqs = th_fake_requests();
    const cJSON *msgs = sent_messages(reqs, 0);
    check_well_formed(msgs, 0);
    char roles[200] = "";
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        strcat(roles, th_jstr(m, "role"));
        strcat(roles, ",");
    }
    CHECK_STR(roles, "system,assistant,tool,tool,user,user,");
    CHECK_STR(th_jstr(cJSON_GetArrayItem(msgs, 2), "content"), "late result");
    CHECK_CONTAINS(th_jstr(cJSON_GetArrayItem(msgs, 3), "content"), "no result");
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void truncated_replies(void)
{
    char *script = script_of(step(NULL, "length", fn_call("t1", "add_task", "{\"title\":\"cut\"}"), NULL),
                             step("Here is a long answer that was cut", "length", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("uma");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "add cut", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 0);   /* the cut call never ran */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%cut off%'", SID, NULL), 1);
    char *t = th_str("SELECT output->>'truncated' FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_STR(t, "true");
    free(t);
    /* the inbox says the reply was cut, after the text the model gave */
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM notifications WHERE job_id = $1", th_num(id), NULL));
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE job_id = $1 AND body ="
                     " E'Here is a long answer that was cut\\n\\n[the model''s reply was cut off at its length limit]'",
                     th_num(id), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void ok_with_error_body(void)
{
    char script[1200];
    snprintf(script, sizeof script,
             "[{\"body\":{\"error\":{\"message\":\"context_length exceeded by 42\",\"type\":\"invalid_request_error\"}}},"
             "{\"body\":{\"error\":{\"message\":\"we are overloaded\",\"type\":\"overloaded_error\"}}},%s]",
             final_step("fine now"));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("val");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "failed", 15000));   /* permanent: at once */
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id), NULL), 1);
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "context_length exceeded by 42");
    CHECK_CONTAINS(err, "invalid_request_error");
    free(err);
    long long id2 = turn(uid, "hi again", 5);   /* transient: retried */
    CHECK(wait_status(id2, "succeeded", 15000));
    /* transient: the overloaded answer was retried (three requests in all) without spending an attempt */
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 3);
    cJSON_Delete(reqs);
    CHECK_INT(th_int("SELECT attempts FROM jobs WHERE id = $1", th_num(id2), NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void usage_is_bounded(void)
{
    /* a tool call with negative and fractional counts, then a reply with counts near INT64_MAX */
    char *t1 = step(NULL, "tool_calls", fn_call("u1", "list_tasks", "{}"), NULL), *t2 = step("ok", "stop", NULL);
    cJSON *s1 = cJSON_Parse(t1), *s2 = cJSON_Parse(t2);
    free(t1);
    free(t2);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(s1, "body"), "usage",
                              cJSON_Parse("{\"prompt_tokens\":-5,\"completion_tokens\":1.5}"));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(s2, "body"), "usage",
                              cJSON_Parse("{\"prompt_tokens\":9.2e18,\"completion_tokens\":9.2e18}"));
    char *script = script_of(cJSON_PrintUnformatted(s1), cJSON_PrintUnformatted(s2), NULL);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("wes");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT (output->'usage'->>'total_tokens')::numeric FROM jobs WHERE id = $1", th_num(id), NULL), 0);
    CHECK_INT(th_int("SELECT (output->'usage'->>'model_calls')::int FROM jobs WHERE id = $1", th_num(id), NULL), 2);
    CHECK(th_alive(w));
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void non_function_call_answered(void)
{
    cJSON *custom = cJSON_Parse("{\"id\":\"z1\",\"type\":\"custom\",\"custom\":{\"name\":\"add_task\","
                                "\"input\":\"title=sneaky\"}}");
    char *script = script_of(step(NULL, "tool_calls", custom, NULL), step("Nothing done.", "stop", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("xia");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%no function object%'", SID, NULL), 1);
    /* no call is stored (or sent back) with an empty name */
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history, jsonb_array_elements(tool_calls) c"
                     " WHERE session_id = $1 AND coalesce(c->'function'->>'name', '') = ''", SID, NULL), 0);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 2);
    check_well_formed(sent_messages(reqs, 1), 1);
    cJSON_Delete(reqs);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void tool_calls_per_reply_capped(void)
{
    char *script = script_of(step(NULL, "tool_calls", fn_call("m1", "add_task", "{\"title\":\"n1\"}"),
                                  fn_call("m2", "add_task", "{\"title\":\"n2\"}"),
                                  fn_call("m3", "add_task", "{\"title\":\"n3\"}"),
                                  fn_call("m4", "add_task", "{\"title\":\"n4\"}"),
                                  fn_call("m5", "add_task", "{\"title\":\"n5\"}"), NULL),
                             step("Added.", "stop", NULL), NULL);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    long long uid = new_user("yan");
    pid_t w = worker_on_fake("AGENTQ_AGENT_MAX_TOOL_CALLS=3");
    long long id = turn(uid, "add five", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 3);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1 AND title IN ('n1', 'n2', 'n3')", th_num(uid), NULL), 3);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND content LIKE '%too many tool calls%'", SID, NULL), 2);
    CHECK_INT(th_int("SELECT jsonb_array_length(output->'tool_calls') FROM jobs WHERE id = $1", th_num(id), NULL), 5);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

extern char th_log[];

static void api_key_scrubbed(void)
{
#define KEY "sk-live-SECRET-4242-abcdef"
    th_fake("[{\"status\":500,\"body\":{\"error\":{\"message\":\"upstream broke for key " KEY "\"}}},"
            "{\"body\":{\"error\":{\"type\":\"server_error\",\"message\":\"busy, key " KEY "\"}}},"
            "{\"status\":401,\"body\":{\"error\":{\"message\":\"Incorrect API key provided: " KEY ".\"}}}]",
            fake_url, sizeof fake_url);
    long long uid = new_user("zoe");
    pid_t w = worker_on_fake("LLM_API_KEY=" KEY);
    long long id = turn(uid, "hi", 5);
    CHECK(wait_status(id, "failed", 20000));
    CHECK(th_wait_int(1, 15000, "SELECT count(*) FROM notifications WHERE job_id = $1", th_num(id), NULL));
    char *err = th_str("SELECT last_error FROM jobs WHERE id = $1", th_num(id), NULL);
    CHECK_CONTAINS(err, "Incorrect API key provided");
    CHECK(err && !strstr(err, KEY));
    free(err);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE content LIKE '%SECRET-4242%'", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM notifications WHERE body LIKE '%SECRET-4242%'", NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE input::text LIKE '%SECRET-4242%' OR output::text LIKE"
                     " '%SECRET-4242%' OR last_error LIKE '%SECRET-4242%'", NULL), 0);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    FILE *f = fopen(th_log, "r");
    CHECK(f != NULL);
    char line[4096];
    int leaks = 0;
    while (f && fgets(line, sizeof line, f)) leaks += strstr(line, "SECRET-4242") != NULL;
    if (f) fclose(f);
    CHECK_INT(leaks, 0);
#undef KEY
}

static void prompt_has_the_date(void)
{
    char script[800];
    snprintf(script, sizeof script, "[%s]", final_step("ok"));
    th_fake(script, fake_url, sizeof fake_url);
    long long uid = new_user("abe");
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "what is due tomorrow?", 5);
    CHECK(wait_status(id, "succeeded", 15000));
    char *today = th_str("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')", NULL);
    cJSON *reqs = th_fake_requests();
    const char *sys = th_jstr(cJSON_GetArrayItem(sent_messages(reqs, 0), 0), "content");
    CHECK_CONTAINS(sys, today);
    CHECK_CONTAINS(sys, "UTC");
    cJSON_Delete(reqs);
    free(today);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

static void strict_json_unit(void)
{
    static const char *const good[] = {"{}", " {\"a\":1} \n", "[1,2,{\"a\":[true,false,null]}]", "\"\\u00e9\\ud83d\\ude00\"",
                                       "{\"a\":{\"b\":1},\"b\":{\"b\":2}}", "-0.5e+3", NULL};
    static const char *const badv[] = {"{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"x\":[{\"k\":1,\"k\":1}]}",
                                       "{\"a\":1} x", "{\"a\":1}{}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}",
                                       "{\"a\":\"\\udc00x\"}", "{a:1}", "{\"a\":01}", "{\"a\":1,}", "\"\t\"", "",
                                       "{\"a\":\"\xff\"}", "[1,]", "nul", NULL};
    for (int i = 0; good[i]; i++)
        if (!aq_json_strict(good[i], strlen(good[i]), NULL, 0)) th_fail(__FILE__, __LINE__, "refused: %s", good[i]);
    for (int i = 0; badv[i]; i++) {
        char why[100];
        if (aq_json_strict(badv[i], strlen(badv[i]), why, sizeof why)) th_fail(__FILE__, __LINE__, "accepted: %s", badv[i]);
        else CHECK(why[0] != '\0');
    }
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK(!aq_json_strict(deep, sizeof deep, NULL, 0));
    CHECK(aq_json_strict("{\"a\":\"x\\u0000\"}", 5, NULL, 0) == 0);   /* cut short: unterminated */
}

/* aq_llm_parse on its own: provider error bodies by type/code, usage bounds,
 * finish_reason, calls without a function; and aq_scrub. */
static void llm_parse_unit(void)
{
    static const struct { const char *body; int transient; } errs[] = {
        {"{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}", 0},
        {"{\"error\":{\"type\":\"authentication_error\",\"message\":\"who\"}}", 0},
        {"{\"error\":{\"code\":\"insufficient_quota\",\"message\":\"pay\"}}", 0},
        {"{\"error\":{\"type\":\"rate_limit_exceeded\",\"message\":\"slow\"}}", 1},
        {"{\"error\":{\"type\":\"server_error\",\"message\":\"oops\"}}", 1},
        {"{\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}", 1},
        {"{\"error\":{\"code\":503,\"message\":\"upstream\"}}", 1},
        {"{\"error\":{\"code\":400,\"message\":\"no\"}}", 0},
    };
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        aq_llm_reply r = {0};
        CHECK_INT(aq_llm_parse(errs[i].body, strlen(errs[i].body), &r), -1);
        if (r.transient != errs[i].transient) th_fail(__FILE__, __LINE__, "transient %d for %s", r.transient, errs[i].body);
        CHECK(r.error && strstr(r.error, "provider error"));
        aq_llm_reply_dispose(&r);
    }
    const char *ok = "{\"choices\":[{\"finish_reason\":\"length\",\"message\":{\"content\":\"cut\",\"tool_calls\":["
                     "{\"type\":\"custom\",\"custom\":{\"name\":\"x\",\"input\":\"y\"}},"
                     "{\"function\":{\"arguments\":\"{}\"}}]}}],\"usage\":{\"prompt_tokens\":1e10,"
                     "\"completion_tokens\":7}}";
    aq_llm_reply r = {0};
    CHECK_INT(aq_llm_parse(ok, strlen(ok), &r), 0);
    CHECK_INT(r.truncated, 1);
    CHECK_INT(r.prompt_tokens, 0);
    CHECK_INT(r.completion_tokens, 7);
    CHECK_INT(cJSON_GetArraySize(r.tool_calls), 2);
    CHECK_CONTAINS(th_jstr(cJSON_GetArrayItem(r.tool_calls, 0), "error"), "no function object");
    CHECK_STR(th_jstr(cJSON_GetArrayItem(r.tool_calls, 0), "name"), "x");
    CHECK_CONTAINS(th_jstr(cJSON_GetArrayItem(r.tool_calls, 1), "error"), "no function name");
    aq_llm_reply_dispose(&r);
    char *s = aq_scrub(strdup("key k3y and k3y again"), "k3y", "<K>");
    CHECK_STR(s, "key <K> and <K> again");
    free(s);
    s = aq_scrub(strdup("nothing here"), "", "<K>");
    CHECK_STR(s, "nothing here");
    free(s);
}

/* Found by the llm fuzzer: a call without a function object (type "custom")
 * whose name or type holds bytes that are not UTF-8 is stored readable
 * (Postgres refuses invalid UTF-8, so the turn could not store its reply),
 * and the reason quoting the type is not cut inside a UTF-8 sequence. */
static void llm_parse_custom_call_utf8(void)
{
    char type[64];
    memset(type, 'a', 39);
    strcpy(type + 39, "\xc3\xa9");   /* "%.40s" would cut the é in two */
    char body[400];
    snprintf(body, sizeof body, "{\"choices\":[{\"message\":{\"tool_calls\":[{\"type\":\"%s\",\"%s\":"
             "{\"name\":\"shel\xfa\"}},{\"type\":\"x\xff\"}]}}]}", type, type);
    aq_llm_reply r = {0};
    CHECK_INT(aq_llm_parse(body, strlen(body), &r), 0);
    CHECK_INT(cJSON_GetArraySize(r.tool_calls), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(r.tool_calls, i);
        const char *keys[] = {"name", "arguments", "error"};
        for (int k = 0; k < 3; k++) {
            const char *v = th_jstr(c, keys[k]);
            CHECK(v && aq_utf8_valid(v, strlen(v)));
        }
        CHECK_CONTAINS(th_jstr(c, "error"), "no function object");
    }
    CHECK_STR(th_jstr(cJSON_GetArrayItem(r.tool_calls, 0), "name"), "shel?");
    aq_llm_reply_dispose(&r);
}

/* Found by the tool_args fuzzer: an integer argument far beyond a long long
 * (1e300) was converted before it was compared (undefined behaviour, caught
 * by UBSan's float-cast-overflow under SANITIZE=1), and a quoted one beyond
 * it ("99999999999999999999") silently became 9223372036854775807. Both are
 * refused now; in range, numbers and quoted numbers pass as their digits. */
static void tool_args_integers_unit(void)
{
    const aq_tool *del = aq_tool_find("delete_task");
    CHECK(del != NULL);
    if (!del) return;
    static const struct { const char *args, *param; } cases[] = {
        {"{\"id\":-1e300}", NULL}, {"{\"id\":1e300}", NULL}, {"{\"id\":9.5e15}", NULL},
        {"{\"id\":\"99999999999999999999\"}", NULL}, {"{\"id\":\"-99999999999999999999\"}", NULL},
        {"{\"id\":1.5}", NULL}, {"{\"id\":\"7x\"}", NULL}, {"{\"id\":true}", NULL},
        {"{\"id\":7}", "7"}, {"{\"id\":\"42\"}", "42"}, {"{\"id\":-3}", "-3"},
        {"{\"id\":9000000000000000}", "9000000000000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *args = cJSON_Parse(cases[i].args);
        aq_tool_args a;
        char *err = NULL;
        int rc = aq_tool_check(del, args, &a, &err);
        if (cases[i].param) {
            if (rc != 0) th_fail(__FILE__, __LINE__, "%s refused: %s", cases[i].args, err ? err : "?");
            else CHECK_STR(a.p[1], cases[i].param);
        } else {
            if (rc == 0) th_fail(__FILE__, __LINE__, "%s accepted as %s", cases[i].args, a.p[1]);
            else CHECK_STR(err, "id: must be an integer");
        }
        free(err);
        cJSON_Delete(args);
    }
}

/* Issue 12: a turn cancelled while its model call is in flight (the fake
 * delays the reply, which asks for add_task) runs no tool afterwards, makes no
 * further model call, stores nothing more, and ends cancelled; the same
 * through the API (202) and through `agentq jobs cancel`. */
static void cancel_mid_model_call(int via_api)
{
    char *s1 = call_step("c1", "add_task", "{\"title\":\"should never exist\"}");
    char script[2000];
    snprintf(script, sizeof script, "[{\"delay_ms\":3000,%s,%s]", s1 + 1, final_step("done"));
    free(s1);
    th_fake(script, fake_url, sizeof fake_url);
    char *tok = th_user(via_api ? "nia" : "ola", 0);
    long long uid = th_int("SELECT id FROM users WHERE name = $1", via_api ? "nia" : "ola", NULL);
    pid_t api = via_api ? th_api(NULL) : 0;
    pid_t w = worker_on_fake(NULL);
    long long id = turn(uid, "add a task", 5);
    CHECK(th_fake_wait(1, 15000));   /* the model call is in flight */
    CHECK(wait_status(id, "running", 5000));
    if (via_api) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", id);
        th_resp r = th_post(path, tok, NULL);
        CHECK_INT(r.status, 202);
        CHECK_CONTAINS(r.body, "\"running\"");
        th_resp_free(&r);
    } else {
        th_cli_run r = th_cli(NULL, (const char *const[]){"jobs", "cancel", th_num(id), NULL});
        CHECK_INT(r.status, 0);
        CHECK_CONTAINS(r.out, "cancel recorded");
        th_cli_free(&r);
    }
    CHECK(wait_status(id, "cancelled", 20000));
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE job_id = $1 AND role <> 'user'",
                     th_num(id), NULL), 0);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE id = $1 AND output IS NULL AND finished_at IS NOT NULL",
                     th_num(id), NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM jobs WHERE parent_id = $1", th_num(id), NULL), 0);   /* no reply sent */
    th_sleep_ms(500);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 1);   /* no model call after the cancel */
    cJSON_Delete(reqs);
    CHECK_INT(th_int("SELECT count(*) FROM tasks WHERE user_id = $1", th_num(uid), NULL), 0);
    free(tok);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
    if (api) CHECK_INT(th_stop(api, SIGTERM, 15000), 0);
}

static void cancel_mid_model_call_api(void) { cancel_mid_model_call(1); }
static void cancel_mid_model_call_cli(void) { cancel_mid_model_call(0); }

const th_test th_agent_tests[] = {
    {"agent_two_tool_calls", two_tool_calls_then_reply, 60, 1},
    {"agent_cancel_mid_model_call_api", cancel_mid_model_call_api, 60, 1},
    {"agent_cancel_mid_model_call_cli", cancel_mid_model_call_cli, 60, 1},
    {"agent_context_window", context_is_last_n_plus_system, 60, 1},
    {"agent_approval", approval_approve_and_reject, 90, 1},
    {"agent_approval_expires", approval_expires, 60, 1},
    {"agent_429_retry_after", rate_limited_then_success, 60, 1},
    {"agent_500_then_failed", server_errors_then_failed_with_apology, 60, 1},
    {"agent_401_permanent", unauthorized_fails_at_once, 60, 1},
    {"agent_garbled_and_bad_calls", garbled_replies_and_bad_tool_calls, 60, 1},
    {"agent_endless_loop_bounded", endless_tool_calls_are_bounded, 60, 1},
    {"agent_offline_responder", offline_adds_and_lists, 60, 1},
    {"agent_approval_same_id_one_reply", approval_same_id_twice_in_one_reply, 90, 1},
    {"agent_approval_same_id_later_reply", approval_same_id_in_a_later_reply, 90, 1},
    {"agent_approval_no_ids", approval_calls_without_ids, 90, 1},
    {"agent_approval_runs_what_was_shown", approval_runs_what_was_shown, 60, 1},
    {"agent_args_duplicate_keys_refused", duplicate_keys_refused, 60, 1},
    {"agent_args_trailing_bytes_refused", trailing_bytes_refused, 60, 1},
    {"agent_args_nul_overflow_utf8_refused", unstorable_args_refused, 60, 1},
    {"agent_context_keeps_request", context_keeps_the_request, 60, 1},
    {"agent_context_pairs_interleaved", context_pairs_interleaved_results, 60, 1},
    {"agent_truncated_reply", truncated_replies, 60, 1},
    {"agent_200_with_error_body", ok_with_error_body, 60, 1},
    {"agent_usage_bounded", usage_is_bounded, 60, 1},
    {"agent_non_function_call", non_function_call_answered, 60, 1},
    {"agent_tool_call_cap", tool_calls_per_reply_capped, 60, 1},
    {"agent_api_key_scrubbed", api_key_scrubbed, 60, 1},
    {"agent_prompt_has_date", prompt_has_the_date, 60, 1},
    {"agent_strict_json_unit", strict_json_unit, 10, 0},
    {"agent_llm_parse_unit", llm_parse_unit, 10, 0},
    {"agent_llm_parse_custom_call_utf8", llm_parse_custom_call_utf8, 10, 0},
    {"agent_tool_args_integers_unit", tool_args_integers_unit, 10, 0},
    {0},
};
