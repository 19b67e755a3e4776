/* tools.h — the agent's tools: one table (tools.c) of name, description,
 * JSON schema of the arguments, trust tier and C function. A tool runs on
 * the handler's database connection inside the caller's transaction, so its
 * effect and the stored tool message commit together (a retried turn never
 * repeats a tool whose result is stored). */
#ifndef AQ_TOOLS_H
#define AQ_TOOLS_H
#include "aq_config.h"
#include <cJSON.h>
#include <libpq-fe.h>
#include <stdint.h>

typedef struct aq_tool {
    const char *name;
    const char *description;
    const char *parameters;     /* JSON schema (text) */
    int approval;               /* 1: the user must approve each call */
    /* Result as JSON text (heap), or NULL with *err (heap) set to a message
     * for the model (bad arguments, no such task, database refusal). */
    char *(*run)(PGconn *db, int64_t user_id, const cJSON *args, char **err);
} aq_tool;

/* Take the settings the tools obey (the schedule frequency floor) from cfg.
 * Call once at start, before any handler runs; until then the defaults hold. */
void aq_tools_configure(const aq_config *cfg);

extern const aq_tool aq_tools[];      /* ends with a NULL name */
const aq_tool *aq_tool_find(const char *name);
/* The OpenAI "tools" array for every tool (caller deletes). */
cJSON *aq_tools_schema(void);

#endif
