/* fz_tool_args.c — a model's tool call as an agent turn takes it: the name
 * and argument text (aq_tool_parse_call: the strict JSON reading), then the
 * tool's own check of the arguments into its statement's parameters
 * (aq_tool_check), everything before the database. The input is
 * "NAME\nARGUMENTS". Contracts (tools.h): a refused call's result is a JSON
 * object {"error": text} in valid UTF-8; an accepted call names a real tool
 * and its arguments are an object; a checked call's parameters are valid
 * UTF-8 (Postgres takes them as text) within the tool's string caps, its
 * integers what the argument says, and the parameter count its statement's;
 * a refused check has a reason. */
#include "fuzz.h"
#include "aq_config.h"
#include "aq_error.h"
#include "aq_json.h"
#include "tools.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    aq_config cfg = {.schedule_min_interval_s = 300, .max_message_chars = 8000};
    aq_tools_configure(&cfg);
    return 0;
}

/* the highest $n in sql */
static int params_in(const char *sql)
{
    int hi = 0;
    for (const char *p = sql; (p = strchr(p, '$')); p++) {
        int n = atoi(p + 1);
        if (n > hi) hi = n;
    }
    return hi;
}

static void check_error_json(const char *text)
{
    FZ_CHECK(text && aq_utf8_valid(text, strlen(text)));
    cJSON *e = cJSON_Parse(text);
    FZ_CHECK(cJSON_IsObject(e) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error")));
    cJSON_Delete(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fz_cstr(data, size);
    char *nl = strchr(in, '\n');
    const char *name = in, *args_text = nl ? nl + 1 : NULL;
    if (nl) *nl = '\0';

    const aq_tool *tool = NULL;
    cJSON *args = NULL;
    char *refused = aq_tool_parse_call(name, args_text, &tool, &args);
    if (refused) {
        check_error_json(refused);
        FZ_CHECK(args == NULL);
        free(refused);
        /* every tool's check still meets the input as a JSON value */
        cJSON *v = args_text ? cJSON_Parse(args_text) : NULL;
        for (const aq_tool *t = aq_tools; v && t->name; t++) {
            aq_tool_args a;
            char *err = NULL;
            if (aq_tool_check(t, v, &a, &err)) FZ_CHECK(err && *err);
            free(err);
        }
        cJSON_Delete(v);
        free(in);
        return 0;
    }
    FZ_CHECK(tool && aq_tool_find(name) == tool && cJSON_IsObject(args));
    aq_tool_args a;
    char *err = NULL;
    if (aq_tool_check(tool, args, &a, &err) == 0) {
        FZ_CHECK(err == NULL && a.n == params_in(tool->sql) && a.p[0] == NULL);
        for (int i = 1; i < a.n; i++) {
            if (!a.p[i]) continue;
            size_t n = strlen(a.p[i]);
            FZ_CHECK(aq_utf8_valid(a.p[i], n) && n <= 4 * 8000);
        }
        /* a tool whose schema has an id reads it into $2; others ignore an
         * "id" the model adds (add_task's $2 is its title) */
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(args, "id");
        cJSON *schema = cJSON_Parse(tool->parameters);
        int takes_id = cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(schema, "properties"), "id");
        cJSON_Delete(schema);
        if (takes_id && cJSON_IsNumber(id) && a.p[1]) FZ_CHECK(strtod(a.p[1], NULL) == id->valuedouble);
    } else {
        FZ_CHECK(err && *err);
        char *j = aq_tool_error_json("%s", err);
        check_error_json(j);
        free(j);
    }
    free(err);
    cJSON_Delete(args);
    free(in);
    return 0;
}
