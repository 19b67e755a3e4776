/* channels_api.c — Telegram in, and the user's linked channels:
 *   POST /v1/telegram/webhook            Telegram's update push (no bearer token:
 *                                        X-Telegram-Bot-Api-Secret-Token must equal
 *                                        TELEGRAM_WEBHOOK_SECRET, compared in constant time)
 *   POST /v1/channels/telegram/link      a short-lived single-use code: send "/start CODE" to the bot
 *   GET  /v1/channels                    the caller's linked chats
 * The webhook only stores the update as a telegram_update job (idempotency
 * key: its update_id, so Telegram's redeliveries are one job) and answers
 * 200 as soon as that is committed; the worker does the rest. An update that
 * could never be stored (aq_tg_update_parse: not UTF-8, not JSON, no
 * update_id) is checked before it joins an enqueue batch, logged and
 * answered 200 with "dropped": Telegram resends anything else forever. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "aq_link_code.h"
#include "aq_log.h"
#include "aq_tg_update.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- POST /v1/telegram/webhook ---- */

static int secret_ok(api_call *c)
{
    const char *want = c->t->srv->cfg->telegram_webhook_secret;
    size_t len = 0;
    const char *got = aq_api_header_str(c->req, "x-telegram-bot-api-secret-token", &len);
    if (!*want || !got) return 0;
    /* hash both sides so the comparison takes the same time whatever the lengths */
    unsigned char a[32], b[32];
    crypto_generichash(a, sizeof a, (const unsigned char *)want, strlen(want), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)got, len, NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

static void update_stored(api_call *c, const api_enqueue_result *r)
{
    if (r->failed) { aq_api_reply_error(c, AQ_EUNAVAIL, "the update could not be stored; Telegram will resend it"); return; }
    /* no id and no failure: the same update is being stored by a concurrent request */
    char body[128];
    int n = snprintf(body, sizeof body, "{\"ok\":true,\"job_id\":%lld,\"duplicate\":%s}", (long long)r->job_id,
                     r->duplicate || !r->job_id ? "true" : "false");
    aq_api_reply(c, 200, body, (size_t)n);
}

/* 200 for an update that is not stored: Telegram stops resending it. */
static void update_dropped(api_call *c, long long update_id, const char *why)
{
    aq_warn("api", "telegram webhook: dropped update %lld: %s", update_id, why);
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{\"ok\":true,\"job_id\":null,\"duplicate\":false,\"dropped\":");
    aq_buf_add_json_str(&b, why);
    aq_buf_adds(&b, "}");
    aq_api_reply(c, 200, b.p, b.len);
    aq_buf_dispose(&b);
}

void aq_api_telegram_webhook(api_call *c)
{
    if (!secret_ok(c)) {
        /* RFC 9110 wants a challenge on every 401: this one names the header to send */
        if (c->req)
            h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("X-Telegram-Bot-Api-Secret-Token realm=\"agentq-telegram-webhook\""));
        aq_api_reply_error(c, AQ_EAUTH, c->t->srv->cfg->telegram_webhook_secret[0]
                                         ? "missing or wrong X-Telegram-Bot-Api-Secret-Token"
                                         : "the webhook is off: TELEGRAM_WEBHOOK_SECRET is not set");
        return;
    }
    const h2o_iovec_t body = c->req->entity;
    if ((long)body.len > c->t->srv->cfg->max_body_bytes) {
        update_dropped(c, -1, "larger than AGENTQ_MAX_BODY_BYTES");
        return;
    }
    long long update_id;
    const char *why;
    cJSON *u = aq_tg_update_parse(body.base, body.len, &update_id, &why);
    if (!u) { update_dropped(c, update_id, why); return; }
    api_enqueue_req r = {
        .job_type = "telegram_update",
        .input_json = aq_api_keep(c, aq_json_print(u)),
        .priority = AQ_PRIORITY_TELEGRAM,
        .idempotency_key = aq_api_keep(c, aq_sprintf(AQ_TELEGRAM_KEY_FMT, update_id)),
    };
    cJSON_Delete(u);
    aq_api_enqueue(c, &r, update_stored);
}

/* ---- POST /v1/channels/telegram/link ---- */

static void link_made(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 201, "no code made"); }

void aq_api_telegram_link(api_call *c)
{
    char code[AQ_LINK_CODE_LEN + 1];
    aq_link_code_new(code);
    const char *p[] = {aq_api_keep(c, aq_strdup(code)), aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)),
                       aq_api_keep(c, aq_sprintf("%ld", c->t->srv->cfg->link_code_minutes))};
    aq_api_query(c, aq_link_code_insert_sql, 3, p, link_made);
}

/* ---- GET /v1/channels ---- */

void aq_api_channels_list(api_call *c)
{
    const char *p[] = {aq_api_owner_param(c)};
    aq_api_query(c, "SELECT json_build_object('items', coalesce(json_agg(json_build_object('id', id, 'user_id', user_id,"
                 " 'kind', kind, 'chat_id', address::bigint, 'active', active, 'inactive_reason', inactive_reason,"
                 " 'session_id', session_id, 'created_at', created_at) ORDER BY id DESC), '[]'::json), 'next', NULL)::text"
                 " FROM (SELECT * FROM channels WHERE ($1::bigint IS NULL OR user_id = $1) ORDER BY id DESC LIMIT 200) ch",
              1, p, aq_api_reply_200);
}
