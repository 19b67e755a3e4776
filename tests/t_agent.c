/* t_agent.c — the agent_turn handler against a fake OpenAI-compatible server
 * (bin/agentq-fake, scripted per test) reached through the real libcurl
 * client: tool calls and their storage, the context window, approvals through
 * the API, provider faults (429 + Retry-After, 500s, garbled bodies, 401),
 * bad tool calls, the step bound, and the offline responder. */
#include "harness.h"
#include <cJSON.h>
#include <signal.h>
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
    char *roles = th_str("SELECT string_agg(role || coalesce(':' || tool_call_id, ''), ',' ORDER BY id)"
                         " FROM chat_message_history WHERE session_id = $1", SID, NULL);
    CHECK_STR(roles, "user,assistant,tool:c1,assistant,tool:c2,assistant");
    free(roles);
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
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "tool_call_id")), "c1");
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
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND role = 'tool'"
                     " AND tool_call_id = 'd2' AND content LIKE '%declined%'", SID, NULL), 1);
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
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND tool_call_id = 'b1'"
                     " AND content LIKE '%not a JSON object%'", SID, NULL), 1);
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND tool_call_id = 'u1'"
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
    CHECK_INT(th_int("SELECT count(*) FROM chat_message_history WHERE session_id = $1 AND tool_call_id = 'e1'"
                     " AND content LIKE '%expired%'", SID, NULL), 1);
    CHECK_INT(th_stop(w, SIGTERM, 10000), 0);
}

const th_test th_agent_tests[] = {
    {"agent_two_tool_calls", two_tool_calls_then_reply, 60, 1},
    {"agent_context_window", context_is_last_n_plus_system, 60, 1},
    {"agent_approval", approval_approve_and_reject, 90, 1},
    {"agent_approval_expires", approval_expires, 60, 1},
    {"agent_429_retry_after", rate_limited_then_success, 60, 1},
    {"agent_500_then_failed", server_errors_then_failed_with_apology, 60, 1},
    {"agent_401_permanent", unauthorized_fails_at_once, 60, 1},
    {"agent_garbled_and_bad_calls", garbled_replies_and_bad_tool_calls, 60, 1},
    {"agent_endless_loop_bounded", endless_tool_calls_are_bounded, 60, 1},
    {"agent_offline_responder", offline_adds_and_lists, 60, 1},
    {0},
};
