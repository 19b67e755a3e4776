/* tools.h — the agent's tools: one table (tools.c) of name, description,
 * JSON schema of the arguments, trust tier, the check of the arguments and
 * the statement they feed. A tool runs on the handler's database
 * connection inside the caller's transaction, so its effect and the stored
 * tool message commit together (a retried turn never repeats a tool whose
 * result is stored). */
#ifndef AQ_TOOLS_H
#define AQ_TOOLS_H
#include "aq_config.h"
#include <cJSON.h>
#include <libpq-fe.h>
#include <stdint.h>

/* One call's arguments as checked: the parameters of the tool's statement
 * ($1 the user id, filled by aq_tool_run), pointing into the arguments'
 * cJSON (they live as long as it) or into num. */
typedef struct aq_tool_args {
    const char *p[10];
    int n;                      /* parameters used */
    char num[2][24];            /* integers as text */
} aq_tool_args;

typedef struct aq_tool {
    const char *name;
    const char *description;
    const char *parameters;     /* JSON schema (text) */
    int approval;               /* 1: the user must approve each call */
    /* Check the arguments into the statement's parameters. Pure (no
     * database), any thread. 0, or AQ_EINVAL with *err (heap) a message
     * for the model. */
    int (*check)(const cJSON *args, aq_tool_args *a, char **err);
    const char *sql;            /* the one statement: its first column of its first row is the result */
    const char *none;           /* the error when it answers no row */
} aq_tool;
/* Take the settings the tools obey (the schedule frequency floor) from cfg.
 * Call once at start, before any handler runs; until then the defaults hold. */
void aq_tools_configure(const aq_config *cfg);

extern const aq_tool aq_tools[];      /* ends with a NULL name */
const aq_tool *aq_tool_find(const char *name);
/* The OpenAI "tools" array for every tool (caller deletes). */
cJSON *aq_tools_schema(void);
/* t's check of args (see aq_tool): 0, or AQ_EINVAL with *err (heap) set. */
int aq_tool_check(const aq_tool *t, const cJSON *args, aq_tool_args *a, char **err);
/* Run t for user_id: its check, then its statement. The result as JSON text
 * (heap), or NULL with *err (heap) a message for the model (bad arguments,
 * no such task, database refusal). */
char *aq_tool_run(const aq_tool *t, PGconn *db, int64_t user_id, const cJSON *args, char **err);
/* A model's call by name and argument text: NULL with *tool and *args (an
 * object; the caller deletes) set, or why it cannot run as a tool result
 * (aq_tool_error_json, heap). Arguments must be one JSON object that every
 * reader reads alike: no repeated key, nothing after it, no \u0000 (see
 * aq_json_strict), so what the user is shown is what runs. */
char *aq_tool_parse_call(const char *name, const char *args_text, const aq_tool **tool, cJSON **args);
/* {"error": message} as text (heap), the message cut to 399 bytes and valid UTF-8. */
char *aq_tool_error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
