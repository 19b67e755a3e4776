/* extract.h — the task extraction of email_processing, apart from the model
 * call: the prompt (one readable template, extract.c) built from a parsed
 * message, and the strict check of the model's answer. Pure; any thread.
 *
 * The model must answer one JSON object {"tasks": [{"title", "notes"?,
 * "due_at"?, "priority"?}]}. The check refuses anything else with a reason
 * short enough to feed back to the model for its one retry; more than
 * AQ_EXTRACT_MAX_TASKS tasks are not an error: the first ones are kept. */
#ifndef AQ_EXTRACT_H
#define AQ_EXTRACT_H
#include <cJSON.h>
#include <stddef.h>
#include "mime.h"

#define AQ_EXTRACT_MAX_TASKS 20
#define AQ_EXTRACT_TITLE_MAX 200     /* characters */
#define AQ_EXTRACT_NOTES_MAX 2000    /* characters */
#define AQ_EXTRACT_PRIORITY_MAX 3    /* 0 none .. 3 urgent */

/* The OpenAI-shaped messages array for msg: the system template, then the
 * message as the user turn. The caller cJSON_Deletes it. */
cJSON *aq_extract_prompt(const aq_mime_msg *msg);
/* The user turn that asks again after a refused answer (heap). */
char *aq_extract_retry_text(const char *why);
/* Check a model answer. 0 with *tasks a new array of normalised task objects
 * ({"title", "notes"|null, "due_at"|null, "priority"}) and *capped set when
 * more than AQ_EXTRACT_MAX_TASKS came; or AQ_EINVAL with the reason in why.
 * A ```json fence around the object is tolerated. */
int aq_extract_check(const char *answer, cJSON **tasks, int *capped, char *why, size_t whylen);

#endif
