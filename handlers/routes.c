/* routes.c — reply routes (see routes.h). A notification's text is capped at
 * TEXT_MAX bytes (cut with a note naming the job), so a runaway reply still
 * reaches the web inbox and arrives in Telegram as a few messages. A reply the
 * model stopped at its length limit (output.truncated) ends with a note saying so. */
#include "routes.h"
#include "aq_db.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 16
#define TEXT_MAX 16000   /* bytes of a notification's text */
#define AQ_ROUTES_CUT_NOTE "the model's reply was cut off at its length limit"

const char *aq_routes_check(const cJSON *input)
{
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(input, "reply_to");
    if (!rt || cJSON_IsNull(rt)) return NULL;
    if (!cJSON_IsArray(rt) || cJSON_GetArraySize(rt) > MAX_ROUTES)
        return "input.reply_to: an array of at most 16 routes";
    const cJSON *r;
    cJSON_ArrayForEach(r, rt) {
        const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "to"));
        if (!to) return "input.reply_to: each route is {\"to\": \"web\"|\"telegram\"|\"owner\"}";
        if (!strcmp(to, "telegram")) {
            long long chat;
            if (!aq_json_int(cJSON_GetObjectItemCaseSensitive(r, "chat_id"), -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX, &chat))
                return "input.reply_to: a telegram route needs an integer chat_id";
        } else if (strcmp(to, "web") && strcmp(to, "owner")) {
            return "input.reply_to: \"to\" is web, telegram or owner";
        }
    }
    return NULL;
}

typedef struct dest {
    int web;
    long long chats[MAX_ROUTES * 2];
    int nchats;
} dest;

static void add_chat(dest *d, long long chat)
{
    for (int i = 0; i < d->nchats; i++) if (d->chats[i] == chat) return;
    if (d->nchats < (int)(sizeof d->chats / sizeof d->chats[0])) d->chats[d->nchats++] = chat;
}

/* The owner's web inbox and active linked chats. */
static void add_owner(aq_ctx *ctx, dest *d)
{
    const aq_job *job = aq_ctx_job(ctx);
    if (!job->user_id) return;
    d->web = 1;
    PGconn *db = aq_ctx_db(ctx);
    if (!db) return;   /* the web inbox still gets it; chats are best effort without a database */
    char uid[24];
    snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
    const char *p[] = {uid};
    PGresult *r;
    if (aq_db_query(db, "routes: the owner's chats", "SELECT address FROM channels WHERE user_id = $1"
                    " AND kind = 'telegram' AND active ORDER BY id LIMIT 16", 1, p, &r))
        return;   /* logged; the web inbox still gets it */
    for (int i = 0; i < PQntuples(r); i++) add_chat(d, strtoll(PQgetvalue(r, i, 0), NULL, 10));
    PQclear(r);
}

/* Chats named by the input reach people only if they are linked to the
 * job's owner: a job's input must not turn the bot on someone else's chat. */
static void add_owned(aq_ctx *ctx, const dest *named, dest *d)
{
    const aq_job *job = aq_ctx_job(ctx);
    if (!named->nchats) return;
    PGconn *db = job->user_id ? aq_ctx_db(ctx) : NULL;
    if (!db) {
        aq_log(AQ_LOG_WARN, "routes", job->id, "%d chat(s) named but %s: not sent", named->nchats,
               job->user_id ? "the database is unreachable" : "the job has no owner");
        return;
    }
    aq_buf list;
    aq_buf_init(&list);
    aq_buf_adds(&list, "{");
    for (int i = 0; i < named->nchats; i++) aq_buf_addf(&list, "%s%lld", i ? "," : "", named->chats[i]);
    aq_buf_adds(&list, "}");
    char uid[24];
    snprintf(uid, sizeof uid, "%lld", (long long)job->user_id);
    const char *p[] = {uid, list.p};
    PGresult *r;
    int kept = 0;
    if (!aq_db_query(db, "routes: the named chats", "SELECT address FROM channels WHERE user_id = $1"
                     " AND kind = 'telegram' AND address = ANY($2::text[])", 2, p, &r))
        for (kept = 0; kept < PQntuples(r); kept++) add_chat(d, strtoll(PQgetvalue(r, kept, 0), NULL, 10));
    if (kept < named->nchats)
        aq_log(AQ_LOG_WARN, "routes", job->id, "%d named chat(s) are not linked to the job's owner: not sent",
               named->nchats - kept);
    PQclear(r);
    aq_buf_dispose(&list);
}

static void resolve(aq_ctx *ctx, const cJSON *input, int approval, dest *d)
{
    memset(d, 0, sizeof *d);
    if (approval || !input) { add_owner(ctx, d); return; }
    dest named;
    memset(&named, 0, sizeof named);
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(input, "reply_to");
    if (cJSON_IsArray(rt)) {
        const cJSON *r;
        cJSON_ArrayForEach(r, rt) {
            const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "to"));
            if (!to) continue;
            if (!strcmp(to, "web")) d->web = 1;
            else if (!strcmp(to, "owner")) add_owner(ctx, d);
            else add_chat(&named, (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "chat_id")));
        }
    } else {
        const char *channel = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(input, "channel"));
        /* mail is read in the background: its suggestions go to the owner */
        if (!channel && !strcmp(aq_ctx_job(ctx)->job_type, "email_processing")) add_owner(ctx, d);
        if (!channel) return;
        if (!strcmp(channel, "web")) d->web = 1;
        else if (!strcmp(channel, "telegram")) {
            long long chat;
            if (aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "chat_id"), -AQ_JSON_INT_MAX, AQ_JSON_INT_MAX,
                            &chat))
                add_chat(&named, chat);
        }
    }
    add_owned(ctx, &named, d);
}

static const char *out_str(const cJSON *output, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(output, key));
    return s && *s ? s : NULL;
}

/* The text people get, or NULL when there is nothing to say. */
static char *message_for(const aq_job *job, const cJSON *output, const char *status, const char *error, int approval)
{
    if (approval) {
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(output, "pending_action");
        char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(pa, "arguments"));
        const char *tool = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pa, "tool"));
        char *s = aq_sprintf("%s\n%s %.1000s\nApprove or reject it (action %lld).",
                             out_str(output, "reply") ? out_str(output, "reply") : "An action needs your approval.",
                             tool ? tool : "(tool)",
                             args ? args : "{}", (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pa, "id")));
        cJSON_free(args);
        return s;
    }
    if (!strcmp(status, "failed"))
        return aq_sprintf("Sorry, that did not work out (%s job %lld failed): %.2000s", job->job_type,
                          (long long)job->id, error && *error ? error : "no reason given");
    if (out_str(output, "reply")) {
        /* a reply the model stopped at its length limit says so, where people read it */
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(output, "truncated")))
            return aq_sprintf("%s\n\n[%s]", out_str(output, "reply"), AQ_ROUTES_CUT_NOTE);
        return aq_strdup(out_str(output, "reply"));
    }
    if (out_str(output, "text")) return aq_strdup(out_str(output, "text"));
    if (cJSON_GetObjectItemCaseSensitive(output, "skipped")) return NULL;
    char *o = output ? cJSON_PrintUnformatted(output) : NULL;
    char *s = aq_sprintf("%s job %lld succeeded%s%.3000s", job->job_type, (long long)job->id, o ? ": " : ".",
                         o ? o : "");
    cJSON_free(o);
    return s;
}

/* Cut text (heap, NUL-terminated) to TEXT_MAX bytes, note included, when it
 * is longer: at a space or line break near the end if there is one, never
 * inside a UTF-8 sequence. The whole text stays in the job's output. */
static void cap_text(char *text, long long job_id)
{
    size_t n = strlen(text);
    if (n <= TEXT_MAX) return;
    char note[80];
    int nl = snprintf(note, sizeof note, "\n\n[cut here: the whole text is in job %lld]", job_id);
    size_t keep = TEXT_MAX - (size_t)nl;
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;
    for (size_t c = keep; c > 0 && c + 500 > keep; c--)
        if (text[c] == ' ' || text[c] == '\n') { keep = c; break; }
    memcpy(text + keep, note, (size_t)nl + 1);   /* keep + nl <= TEXT_MAX < n */
}

static void queue_notify(aq_ctx *ctx, const char *to, long long chat, const char *kind, const char *text,
                         long long action_id)
{
    const aq_job *job = aq_ctx_job(ctx);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "to", to);
    if (chat) cJSON_AddNumberToObject(in, "chat_id", (double)chat);
    cJSON_AddStringToObject(in, "kind", kind);
    cJSON_AddStringToObject(in, "text", text);
    cJSON_AddNumberToObject(in, "job_id", (double)job->id);
    if (action_id) cJSON_AddNumberToObject(in, "action_id", (double)action_id);
    if (job->session_id) cJSON_AddStringToObject(in, "session_id", job->session_id);
    char key[96];
    if (action_id) snprintf(key, sizeof key, "notify:action:%lld:%s%lld", action_id, to, chat);
    /* the kind too: `agentq jobs retry` restarts attempts, and the reply after a
     * retry must not collide with the failure notice of the same attempt number */
    else snprintf(key, sizeof key, "notify:%lld:%d:%s:%s%lld", (long long)job->id, job->attempts, kind, to, chat);
    aq_enqueue_opts o = {.idempotency_key = key, .priority = AQ_PRIORITY_NOTIFY};
    if (aq_ctx_enqueue(ctx, "notify", in, &o))
        aq_log(AQ_LOG_WARN, "routes", job->id, "cannot queue a notify job (is the notify type registered?)");
    cJSON_Delete(in);
}

void aq_routes_enqueue(aq_ctx *ctx, const cJSON *input, const cJSON *output, const char *status, const char *error)
{
    const aq_job *job = aq_ctx_job(ctx);
    if (!strcmp(job->job_type, "notify")) return;   /* a delivery is never itself delivered */
    int approval = !strcmp(status, "waiting");
    const cJSON *pa = approval ? cJSON_GetObjectItemCaseSensitive(output, "pending_action") : NULL;
    if (approval && !cJSON_IsObject(pa)) return;
    dest d;
    resolve(ctx, input, approval, &d);
    if (!d.web && !d.nchats) return;
    char *text = message_for(job, output, status, error, approval);
    if (!text) return;
    cap_text(text, (long long)job->id);
    const char *kind = approval ? "approval" : !strcmp(status, "failed") ? "failure" : "reply";
    long long action = approval ? (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pa, "id")) : 0;
    if (d.web && job->user_id) queue_notify(ctx, "web", 0, kind, text, action);
    for (int i = 0; i < d.nchats; i++) queue_notify(ctx, "telegram", d.chats[i], kind, text, action);
    free(text);
}
