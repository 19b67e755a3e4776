/* llm_offline.c — LLM_PROVIDER=offline: a built-in responder so a fresh
 * checkout runs with no key and no network. It is not a model and says so in
 * every reply. It maps a few commands in the latest user message to tool
 * calls, so the whole turn (tools, approvals, storage) is exercised:
 *   add task X | list tasks | complete task N | delete task N | remember X
 * After a tool result it reports that result. Tests never rely on it to
 * prove the LLM path: they use a fake OpenAI-compatible server. */
#include "llm.h"
#include "aq_alloc.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFIX "(offline responder, not a model) "

static int call(aq_llm_reply *out, const char *name, cJSON *args)
{
    out->tool_calls = cJSON_CreateArray();
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", "offline_1");
    cJSON_AddStringToObject(c, "name", name);
    char *a = cJSON_PrintUnformatted(args);
    cJSON_AddStringToObject(c, "arguments", a);
    cJSON_free(a);
    cJSON_Delete(args);
    cJSON_AddItemToArray(out->tool_calls, c);
    return 0;
}

/* text after a case-insensitive command prefix, or NULL */
static const char *after(const char *text, const char *cmd)
{
    size_t n = strlen(cmd);
    if (strncasecmp(text, cmd, n)) return NULL;
    const char *p = text + n;
    while (*p == ' ' || *p == ':') p++;
    return p;
}

int aq_llm_offline(const cJSON *messages, aq_llm_reply *out)
{
    const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    const char *text = cJSON_IsString(content) ? content->valuestring : "";
    while (isspace((unsigned char)*text)) text++;
    if (cJSON_IsString(role) && !strcmp(role->valuestring, "tool")) {
        char buf[700];
        snprintf(buf, sizeof buf, PREFIX "Done. The tool answered: %.600s", text);
        out->content = aq_strdup(buf);
        return 0;
    }
    const char *arg;
    if ((arg = after(text, "add task")) && *arg) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "title", arg);
        return call(out, "add_task", a);
    }
    if (after(text, "list tasks") || after(text, "list my tasks") || after(text, "show tasks"))
        return call(out, "list_tasks", cJSON_CreateObject());
    if ((arg = after(text, "complete task")) && isdigit((unsigned char)*arg)) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", (double)atoll(arg));
        return call(out, "complete_task", a);
    }
    if ((arg = after(text, "delete task")) && isdigit((unsigned char)*arg)) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", (double)atoll(arg));
        return call(out, "delete_task", a);
    }
    if ((arg = after(text, "remember")) && *arg) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "instruction", arg);
        return call(out, "remember", a);
    }
    out->content = aq_strdup(PREFIX "I understand only: add task X, list tasks, complete task N, "
                             "delete task N, remember X. Set LLM_PROVIDER=openai and LLM_BASE_URL for a real model.");
    return 0;
}
