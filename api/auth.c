/* auth.c — bearer tokens and per-user request rate.
 *
 * A token's id is looked up once per AUTH_TTL_MS per thread (cache of id →
 * user, role, stored hash; unknown ids are cached too, so a flood of made-up
 * tokens costs one query each per TTL); the presented secret's keyed hash is
 * compared with the stored one in constant time (aq_token.h). Revoking or
 * replacing a token (agentq users revoke|token) sends its id on 'aq_auth' in
 * the same transaction, and each thread drops that entry when the
 * notification arrives, so the old token stops working at once rather than
 * within AUTH_TTL_MS; after a reconnect (notifications may have been missed)
 * the whole cache is dropped.
 * Then the user's request rate is checked (limits.c). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include "aq_time.h"
#include "aq_token.h"
#include <stdlib.h>
#include <strings.h>

#define AUTH_SLOTS 1024
#define AUTH_TTL_MS 10000

typedef struct {
    char id[AQ_TOKEN_ID_LEN + 1];
    int found, operator;
    int64_t user_id;
    unsigned char hash[AQ_TOKEN_HASH_LEN];
    uint64_t expires;
} auth_entry;

void aq_api_auth_thread_init(api_thread *t)
{
    t->auth_cache = aq_calloc(AUTH_SLOTS, sizeof(auth_entry));
}

static unsigned slot_of(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h % AUTH_SLOTS;
}

void aq_api_auth_forget(api_thread *t, const char *token_id)
{
    auth_entry *cache = t->auth_cache;
    if (!token_id) {
        memset(cache, 0, AUTH_SLOTS * sizeof *cache);
        return;
    }
    auth_entry *e = &cache[slot_of(token_id)];
    if (!strcmp(e->id, token_id)) memset(e, 0, sizeof *e);
}

static void admit(api_call *c, const auth_entry *e)
{
    if (!e->found || !aq_token_hash_equal(e->hash, c->tok_hash)) {
        aq_api_reply_error(c, AQ_EAUTH, "invalid token");
        return;
    }
    c->user_id = e->user_id;
    c->operator = e->operator;
    if (!aq_api_rate_allow(c->t->srv, c->user_id)) {
        aq_api_reply_error(c, AQ_ERATE, "more than %ld requests per second; slow down",
                           c->t->srv->cfg->user_rate_per_s);
        return;
    }
    c->next(c);
}

static void on_user(api_call *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        aq_api_reply_error(c, AQ_EUNAVAIL, "cannot check the token: the database is unreachable");
        return;
    }
    auth_entry *e = &((auth_entry *)c->t->auth_cache)[slot_of(c->tok_id)];
    memset(e, 0, sizeof *e);
    memcpy(e->id, c->tok_id, sizeof e->id);
    e->expires = aq_now_mono_ms() + AUTH_TTL_MS;
    if (PQntuples(res) == 1 && PQgetlength(res, 0, 2) == 2 + 2 * AQ_TOKEN_HASH_LEN) {
        e->found = 1;
        e->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        e->operator = !strcmp(PQgetvalue(res, 0, 1), "operator");
        const char *hex = PQgetvalue(res, 0, 2) + 2;   /* bytea as \x... */
        for (int i = 0; i < AQ_TOKEN_HASH_LEN; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            e->hash[i] = (unsigned char)v;
        }
    }
    admit(c, e);
}

void aq_api_authenticate(api_call *c)
{
    size_t len = 0;
    const char *h = aq_api_header(c->req, H2O_TOKEN_AUTHORIZATION, &len);
    if (!h) { aq_api_reply_error(c, AQ_EAUTH, "missing Authorization: Bearer <token>"); return; }
    if (len < 7 || strncasecmp(h, "Bearer ", 7) != 0) {
        aq_api_reply_error(c, AQ_EAUTH, "the Authorization header must be: Bearer <token>");
        return;
    }
    h += 7, len -= 7;
    while (len && *h == ' ') h++, len--;
    if (aq_token_parse(c->t->srv->key, h, len, c->tok_id, c->tok_hash)) {
        aq_api_reply_error(c, AQ_EAUTH, "invalid token");
        return;
    }
    auth_entry *e = &((auth_entry *)c->t->auth_cache)[slot_of(c->tok_id)];
    if (!strcmp(e->id, c->tok_id) && aq_now_mono_ms() < e->expires) {
        admit(c, e);
        return;
    }
    const char *p[] = {c->tok_id};
    aq_api_query(c, "SELECT id, role, token_hash FROM users WHERE token_id = $1 AND disabled_at IS NULL", 1, p, on_user);
}
