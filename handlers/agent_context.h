/* agent_context.h — what the model sees in one step of an agent turn: the
 * system prompt (with the current date and time, and the user's standing
 * instructions) and a window of the session's stored messages. Blocking;
 * handler threads only. */
#ifndef AQ_AGENT_CONTEXT_H
#define AQ_AGENT_CONTEXT_H
#include <cJSON.h>
#include <libpq-fe.h>

/* The OpenAI-shaped messages array for a step of job `job_id`'s turn in
 * `session` for `user_id` (all decimal/uuid text), over the session's last
 * `window` messages. The turn's own user message is always included; an
 * assistant message's tool calls are always followed by exactly one result
 * each (a stand-in when none is stored), and a tool result whose call is not
 * in the window is left out. Returns NULL when the database fails (the
 * caller reads PQerrorMessage); the caller deletes the array. */
cJSON *aq_agent_context(PGconn *db, const char *session, const char *user_id, const char *job_id, long window);

#endif
