/* connections_api.c — the user's IMAP accounts (issue 14):
 *   POST   /v1/connections {kind:"imap", host, port, tls, tls_verify?, username, password, mailbox?}
 *   GET    /v1/connections          the caller's connections, never a password
 *   DELETE /v1/connections/{id}
 * A POST first logs in with what it was given (and selects the mailbox):
 * refused or unreachable, it answers 422 with the server's reason and saves
 * nothing. The login is blocking libcurl, so it runs on libuv's pool (the
 * thread's loop goes on serving); then the password is sealed (aq_secret.h)
 * and the row inserted on the thread's connection. The password is never
 * logged, stored in the clear, or returned. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include "aq_imap.h"
#include "aq_secret.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTION_JSON \
    "json_build_object('id', id, 'kind', kind, 'host', host, 'port', port, 'tls', tls, 'tls_verify', tls_verify," \
    " 'username', username, 'mailbox', mailbox, 'status', status, 'last_error', last_error," \
    " 'last_polled_at', last_polled_at, 'created_at', created_at)"

typedef struct login {
    uv_work_t work;
    api_call *c;
    aq_imap_account a;
    int rc;
    char error[512];
} login;

static void got_json(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 200, "no such connection"); }
static void created(api_call *c, PGresult *res) { aq_api_reply_row(c, res, 201, "not saved"); }

void aq_api_connections_list(api_call *c)
{
    const char *p[] = {aq_api_owner_param(c)};
    aq_api_query(c,
                 "SELECT json_build_object('items', coalesce(json_agg(" CONNECTION_JSON " ORDER BY id), '[]'::json),"
                 " 'next', NULL)::text FROM connections WHERE ($1::bigint IS NULL OR user_id = $1)",
                 1, p, got_json);
}

void aq_api_connection_delete(api_call *c)
{
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->id)), aq_api_owner_param(c)};
    aq_api_query(c, "DELETE FROM connections WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)"
                 " RETURNING json_build_object('id', id, 'deleted', true)::text", 2, p, got_json);
}

/* A host name or address that cannot bend the URL: letters, digits, '.', '-', ':' (IPv6 in brackets). */
static int valid_host(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 255) return 0;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == ':' || *p == '[' || *p == ']'))
            return 0;
    return 1;
}

/* No control characters (they would end an IMAP command line). */
static int plain_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

static void test_login(uv_work_t *w)
{
    login *l = w->data;
    aq_imap *s = aq_imap_open(&l->a);
    uint32_t *uids = NULL;
    size_t n = 0;
    l->rc = aq_imap_unseen(s, 1, &uids, &n);
    if (l->rc) snprintf(l->error, sizeof l->error, "%s", aq_imap_error(s));
    free(uids);
    aq_imap_close(s);
}

static void login_done(uv_work_t *w, int status)
{
    login *l = w->data;
    api_call *c = l->c;
    if (status || l->rc) {
        aq_api_reply_error(c, AQ_EINVAL, "the test login to %s:%d failed, nothing was saved: %s", l->a.host, l->a.port,
                           status ? "cancelled" : l->error);
        goto done;
    }
    size_t slen;
    unsigned char *sealed = aq_secret_seal(c->t->srv->key, l->a.password, strlen(l->a.password), &slen);
    char *hex = aq_malloc(2 * slen + 3);
    memcpy(hex, "\\x", 2);
    sodium_bin2hex(hex + 2, 2 * slen + 1, sealed, slen);
    free(sealed);
    char port[16];
    snprintf(port, sizeof port, "%d", l->a.port);
    const char *p[] = {aq_api_keep(c, aq_sprintf("%lld", (long long)c->user_id)), l->a.host, port,
                       l->a.tls ? "true" : "false", l->a.tls_verify ? "true" : "false", l->a.username,
                       aq_api_keep(c, hex), l->a.mailbox};
    aq_api_query(c, "INSERT INTO connections (user_id, kind, host, port, tls, tls_verify, username, password, mailbox)"
                 " VALUES ($1, 'imap', $2, $3, $4, $5, $6, $7::bytea, $8) RETURNING " CONNECTION_JSON "::text",
                 8, p, created);
done:
    free(l);
}

static int bool_field(api_call *c, const char *key, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) { aq_api_reply_error(c, AQ_EINVAL, "%s: true or false", key); return -1; }
    *out = cJSON_IsTrue(v);
    return 0;
}

void aq_api_connections_create(api_call *c)
{
    if (aq_api_parse_body(c)) return;
    const char *kind, *host, *user, *pass, *mailbox;
    if (aq_api_text_field(c, "kind", 20, 1, &kind)) return;
    if (strcmp(kind, "imap")) { aq_api_reply_error(c, AQ_EINVAL, "kind: only \"imap\" is supported"); return; }
    if (aq_api_text_field(c, "host", 255, 1, &host)) return;
    if (!valid_host(host)) {
        aq_api_reply_error(c, AQ_EINVAL, "host: a host name or IP address (letters, digits, '.', '-', ':')");
        return;
    }
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(c->body, "port");
    if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
        port->valuedouble != (double)(int)port->valuedouble) {
        aq_api_reply_error(c, AQ_EINVAL, "port: required, an integer from 1 to 65535");
        return;
    }
    int tls, verify;
    if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(c->body, "tls"))) {
        aq_api_reply_error(c, AQ_EINVAL, "tls: required, true (implicit TLS, imaps) or false (plain IMAP)");
        return;
    }
    if (bool_field(c, "tls", 1, &tls) || bool_field(c, "tls_verify", 1, &verify)) return;
    if (aq_api_text_field(c, "username", 255, 1, &user)) return;
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(c->body, "password");
    if (!cJSON_IsString(pw) || !pw->valuestring[0] || strlen(pw->valuestring) > 1024) {
        aq_api_reply_error(c, AQ_EINVAL, "password: required, a non-empty string of at most 1024 bytes");
        return;
    }
    pass = pw->valuestring;
    if (aq_api_text_field(c, "mailbox", 255, 0, &mailbox)) return;
    if (!mailbox) mailbox = "INBOX";
    if (!plain_text(user) || !plain_text(pass) || !plain_text(mailbox)) {
        aq_api_reply_error(c, AQ_EINVAL, "username, password and mailbox cannot contain control characters");
        return;
    }
    login *l = aq_calloc(1, sizeof *l);
    l->c = c;
    l->work.data = l;
    l->a = (aq_imap_account){.host = host, .port = (int)port->valuedouble, .tls = tls, .tls_verify = verify,
                             .ca_file = c->t->srv->cfg->imap_ca_file, .username = user, .password = pass,
                             .mailbox = mailbox, .timeout_ms = c->t->srv->cfg->imap_timeout_ms};
    if (uv_queue_work(&c->t->loop, &l->work, test_login, login_done)) {
        free(l);
        aq_api_reply_error(c, AQ_EINTERNAL, "cannot start the test login");
    }
}
