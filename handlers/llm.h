/* llm.h — the LLM call of an agent turn: one request to an OpenAI-compatible
 * /chat/completions endpoint (LLM_PROVIDER=openai) or to the built-in offline
 * responder (LLM_PROVIDER=offline, the default; it says plainly that it is
 * not a model). aq_llm_complete blocks (handler threads only); an agent
 * turn uses its two halves instead (aq_llm_request, aq_llm_response) and
 * awaits the request on the worker's loop.
 *
 * The reply is normalised whatever shape the provider used: content as a
 * string or a list of content blocks, tool calls as {id, name, arguments}
 * with arguments always a string (possibly not valid JSON: the caller
 * checks), missing fields tolerated. Every call gets an id of our own,
 * random and unique ("call_" + 24 hex digits), never the provider's: the
 * provider's may be missing or repeated, and an approval binds to one id.
 * A call that cannot be run as a function (no `function` object, no name)
 * carries "error" with the reason instead. Token counts that are not
 * integers in 0..AQ_LLM_MAX_TOKENS count as 0. A 200 whose body is an
 * `error` object is a failure, transient or not by its type/code. Every
 * error text is scrubbed of LLM_API_KEY. */
#ifndef AQ_LLM_H
#define AQ_LLM_H
#include <cJSON.h>
#include "aq_config.h"
#include "aq_http.h"

/* the most tokens one reply may report for prompt or completion */
#define AQ_LLM_MAX_TOKENS 1000000000L

typedef struct aq_llm_reply {
    char *content;            /* may be NULL */
    cJSON *tool_calls;        /* array of {"id","name","arguments"[,"error"]}; NULL when none */
    int truncated;            /* finish_reason "length": the reply was cut off */
    long prompt_tokens, completion_tokens;
    /* failure */
    char *error;              /* NULL on success */
    int transient;            /* worth retrying (429, 5xx, timeout, garbled reply) */
    long retry_after_ms;      /* from Retry-After, or -1 */
    long http_status;         /* 0 when no response */
} aq_llm_reply;

/* messages: OpenAI-shaped array; tools: OpenAI "tools" array or NULL.
 * timeout_ms bounds the request. Always fills *out; returns 0 on success. */
int aq_llm_complete(const aq_config *cfg, const cJSON *messages, const cJSON *tools, long timeout_ms,
                    aq_llm_reply *out);
void aq_llm_reply_dispose(aq_llm_reply *r);
/* The two halves of aq_llm_complete for LLM_PROVIDER=openai, for a caller
 * that performs the request itself (an agent turn awaiting it on the
 * worker's loop): the request (heap; free with aq_http_request_free; its
 * Authorization header holds the key), and the reading of its outcome (hrc:
 * aq_http_perform's return, 0 when a response arrived). */
aq_http_request *aq_llm_request(const aq_config *cfg, const cJSON *messages, const cJSON *tools, long timeout_ms);
int aq_llm_response(const aq_config *cfg, int hrc, const aq_http_resp *r, aq_llm_reply *out);
/* The offline responder (used by aq_llm_complete when LLM_PROVIDER=offline). */
int aq_llm_offline(const cJSON *messages, aq_llm_reply *out);
/* Parse a /chat/completions response body into out (exposed for unit tests);
 * ids are the provider's here (aq_llm_complete replaces them). */
int aq_llm_parse(const char *body, size_t len, aq_llm_reply *out);

#endif
