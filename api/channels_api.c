/* channels_api.c — Telegram in, and the user's linked channels:
 *   POST /v1/telegram/webhook            Telegram's update push (no bearer token:
 *                                        X-Telegram-Bot-Api-Secret-Token must equal
 *                                        TELEGRAM_WEBHOOK_SECRET, compared in constant time)
 *   POST /v1/channels/telegram/link      a short-lived single-use code: send "/start CODE" to the bot
 *   GET  /v1/channels                    the caller's linked chats
 * The webhook only stores the update as a telegram_update job (idempotency
 * key: its update_id, so Telegram's redeliveries are one job) and answers
 * 200 as soon as that is committed; the worker does the rest. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- POST /v1/telegram/webhook ---- */

static int secret_ok(api_call *c)
{
    const char *want = c->t->srv->cfg->telegram_webhook_secret;
    size_t len = 0;
    const char *got = api_header_str(c->req, "x-telegram-bot-api-secret-token", &len);
    if (!*want || !got) return 0;
    /* hash both sides so the comparison takes the same time whatever the lengths */
    unsigned char a[32], b[32];
    crypto_generichash(a, sizeof a, (const unsigned char *)want, strlen(want), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)got, len, NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

static void update_stored(api_call *c, const api_enqueue_result *r)
{
    if (r->failed) { api_reply_error(c, AQ_EUNAVAIL, "the update could not be stored; Telegram will resend it"); return; }
    /* no id and no failure: the same update is being stored by a concurrent request */
    char body[128];
    int n = snprintf(body, sizeof body, "{\"ok\":true,\"job_id\":%lld,\"duplicate\":%s}", (long long)r->job_id,
                     r->duplicate || !r->job_id ? "true" : "false");
    api_reply(c, 200, body, (size_t)n);
}

void api_telegram_webhook(api_call *c)
{
    if (!secret_ok(c)) {
        api_reply_error(c, AQ_EAUTH, c->t->srv->cfg->telegram_webhook_secret[0]
                                         ? "missing or wrong X-Telegram-Bot-Api-Secret-Token"
                                         : "the webhook is off: TELEGRAM_WEBHOOK_SECRET is not set");
        return;
    }
    if (api_parse_body(c)) return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c->body, "update_id");
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 9e15 ||
        id->valuedouble != (double)(long long)id->valuedouble) {
        api_reply_error(c, AQ_EINVAL, "update_id: required, a non-negative integer");
        return;
    }
    api_enqueue_req r = {
        .job_type = "telegram_update",
        .input_json = api_keep(c, cJSON_PrintUnformatted(c->body)),
        .priority = -5,
        .idempotency_key = api_keep(c, aq_sprintf("telegram:%lld", (long long)id->valuedouble)),
    };
    api_enqueue(c, &r, update_stored);
}

/* ---- POST /v1/channels/telegram/link ---- */

static void link_made(api_call *c, PGresult *res) { api_reply_row(c, res, 201, "no code made"); }

void api_telegram_link(api_call *c)
{
    /* 10 characters from an alphabet without look-alikes: ~50 bits, single use, minutes long */
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    char code[11];
    for (int i = 0; i < 10; i++) code[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    code[10] = '\0';
    const char *p[] = {api_keep(c, aq_strdup(code)), api_keep(c, aq_sprintf("%lld", (long long)c->user_id)),
                       api_keep(c, aq_sprintf("%ld", c->t->srv->cfg->link_code_minutes))};
    api_query(c, "INSERT INTO link_codes (code, user_id, expires_at)"
                 " VALUES ($1, $2, now() + make_interval(mins => $3::int))"
                 " RETURNING json_build_object('code', code, 'expires_at', expires_at,"
                 " 'start', '/start ' || code)::text", 3, p, link_made);
}

/* ---- GET /v1/channels ---- */

void api_channels_list(api_call *c)
{
    const char *p[] = {api_owner_param(c)};
    api_query(c, "SELECT json_build_object('items', coalesce(json_agg(json_build_object('id', id, 'user_id', user_id,"
                 " 'kind', kind, 'chat_id', address::bigint, 'active', active, 'inactive_reason', inactive_reason,"
                 " 'session_id', session_id, 'created_at', created_at) ORDER BY id DESC), '[]'::json), 'next', NULL)::text"
                 " FROM (SELECT * FROM channels WHERE ($1::bigint IS NULL OR user_id = $1) ORDER BY id DESC LIMIT 200) ch",
              1, p, api_reply_200);
}
