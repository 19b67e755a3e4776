/* imap_poll.c — one poll of one IMAP connection (issue 14). The worker's
 * tick queues it once per connection and AGENTQ_IMAP_POLL_SECONDS slot
 * (worker/scheduler.c); input {"connection_id": N}.
 *
 * Steps: read the connection row and open its sealed password (another
 * AGENTQ_SECRET_KEY: the job fails with "cannot decrypt", the connection is
 * marked failing, nothing else happens); log in and list the unseen
 * messages (at most AGENTQ_IMAP_FETCH_MAX, oldest first); for each, fetch it
 * without setting \Seen, queue one email_processing job keyed by the
 * connection and the message's Message-ID (a hash of the raw message when it
 * has none) and committed at once, and only then set \Seen. A crash or an
 * outage anywhere in between leaves the message unseen: the next attempt
 * fetches it again and the key makes the second queueing a no-op, so a
 * message is processed once however often it is fetched.
 *
 * Failures: the login refused or a command refused → the connection is
 * marked failing with the server's words and the poll ends (the next slot
 * tries again); the server unreachable → failing too, and the job retries
 * (transient). A message over AGENTQ_MAX_EMAIL_BYTES is not downloaded
 * past the cap: it is marked \Seen and listed as skipped in the output. The
 * password never reaches a log, an error or an output. */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_imap.h"
#include "aq_jobs.h"
#include "aq_json.h"
#include "aq_log.h"
#include "aq_secret.h"
#include "aq_token.h"
#include "handlers.h"
#include "mime.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_CONNECTION[] =
    "SELECT host, port, tls, tls_verify, username, password, mailbox, user_id FROM connections"
    " WHERE id = $1 AND kind = 'imap'";

static const char SQL_FAILING[] =
    "UPDATE connections SET status = 'failing', last_error = $2, last_polled_at = now(), updated_at = now()"
    " WHERE id = $1";

static const char SQL_ACTIVE[] =
    "UPDATE connections SET status = 'active', last_error = NULL, last_polled_at = now(), updated_at = now()"
    " WHERE id = $1";

static void mark(aq_ctx *ctx, const char *id, const char *error)
{
    PGconn *db = aq_ctx_db(ctx);
    const char *p[] = {id, error};
    if (db) aq_db_query(db, "imap: connection status", error ? SQL_FAILING : SQL_ACTIVE, error ? 2 : 1, p, NULL);
}

/* The job's idempotency key for a message: its Message-ID, or its bytes. */
static void message_key(const char *conn, const aq_buf *raw, const aq_config *cfg, char *key, size_t keylen)
{
    aq_mime_limits lim = {(size_t)cfg->max_email_bytes, 1, 1, 200};
    aq_mime_msg m;
    const char *what = "raw";
    unsigned char h[16];
    char hex[33];
    if (aq_mime_parse(raw->p, raw->len, &lim, &m, NULL, 0) == 0) {
        if (m.message_id[0]) {
            what = "mid";
            crypto_generichash(h, sizeof h, (const unsigned char *)m.message_id, strlen(m.message_id), NULL, 0);
        }
        aq_mime_msg_dispose(&m);
    }
    if (!strcmp(what, "raw")) crypto_generichash(h, sizeof h, (const unsigned char *)raw->p, raw->len, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(key, keylen, "email:%s:%s:%s", conn, what, hex);
}

/* Queue the email_processing job for raw (committed on return 0). *job: its
 * id, 0 when the key had it already. */
static int queue_message(aq_ctx *ctx, const char *conn, int64_t user, const aq_buf *raw, int64_t *job)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    char key[128];
    message_key(conn, raw, cfg, key, sizeof key);
    size_t blen = sodium_base64_ENCODED_LEN(raw->len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = aq_malloc(blen);
    sodium_bin2base64(b64, blen, (const unsigned char *)raw->p, raw->len, sodium_base64_VARIANT_ORIGINAL);
    char *input = aq_sprintf("{\"raw_base64\":\"%s\",\"connection_id\":%s}", b64, conn);
    free(b64);
    aq_job_new j = {.job_type = "email_processing", .input = input, .user_id = user, .idempotency_key = key};
    PGconn *db = aq_ctx_db(ctx);
    int rc = db ? aq_jobs_enqueue(db, "imap: queueing a message", &j, job) : AQ_EUNAVAIL;
    free(input);
    return rc;
}

const char *aq_check_imap_poll(const cJSON *input)
{
    long long cid;
    if (!aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "connection_id"), 1, AQ_JSON_INT_MAX, &cid))
        return "input.connection_id: a connection id";
    return NULL;
}

aq_job_status aq_handle_imap_poll(aq_ctx *ctx, const cJSON *input, cJSON **output)
{
    const aq_config *cfg = aq_ctx_config(ctx);
    const char *why = aq_check_imap_poll(input);
    if (why) { aq_ctx_error(ctx, "%s", why); return AQ_JOB_FAIL; }
    long long cid = 0;
    aq_json_int(cJSON_GetObjectItemCaseSensitive(input, "connection_id"), 1, AQ_JSON_INT_MAX, &cid);
    char conn[24];
    snprintf(conn, sizeof conn, "%lld", cid);
    aq_job_status st = AQ_JOB_FAIL;
    PGresult *row = NULL;
    char *password = NULL;
    aq_imap *imap = NULL;
    uint32_t *uids = NULL;
    size_t n = 0;
    aq_buf raw;
    aq_buf_init(&raw);
    cJSON *queued = cJSON_CreateArray(), *skipped = cJSON_CreateArray();
    int dups = 0;

    PGconn *db = aq_ctx_db(ctx);
    const char *p[] = {conn};
    if (!db || aq_db_query(db, "imap: the connection", SQL_CONNECTION, 1, p, &row)) {
        aq_ctx_error(ctx, "the database is unreachable");
        st = AQ_JOB_RETRY;
        goto done;
    }
    if (PQntuples(row) == 0) {   /* deleted since the poll was queued */
        *output = cJSON_CreateObject();
        cJSON_AddStringToObject(*output, "skipped", "the connection no longer exists");
        st = AQ_JOB_OK;
        goto done;
    }
    unsigned char key[32];
    char kerr[200];
    if (aq_secret_key_parse(cfg->secret_key, key, kerr, sizeof kerr)) {
        char *why = aq_sprintf("cannot decrypt the password: %s", kerr);
        aq_ctx_error(ctx, "%s", why);
        mark(ctx, conn, why);
        free(why);
        goto done;
    }
    size_t slen = 0;
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(row, 0, 5), &slen);
    password = sealed ? aq_secret_open(key, sealed, slen) : NULL;
    PQfreemem(sealed);
    sodium_memzero(key, sizeof key);
    if (!password) {
        const char *why = "cannot decrypt the password: AGENTQ_SECRET_KEY is not the key it was sealed with";
        aq_ctx_error(ctx, "%s", why);
        mark(ctx, conn, why);
        goto done;
    }
    aq_imap_account a = {
        .host = PQgetvalue(row, 0, 0), .port = atoi(PQgetvalue(row, 0, 1)),
        .tls = PQgetvalue(row, 0, 2)[0] == 't', .tls_verify = PQgetvalue(row, 0, 3)[0] == 't',
        .ca_file = cfg->imap_ca_file, .username = PQgetvalue(row, 0, 4), .password = password,
        .mailbox = PQgetvalue(row, 0, 6), .timeout_ms = cfg->imap_timeout_ms,
    };
    int64_t user = strtoll(PQgetvalue(row, 0, 7), NULL, 10);
    imap = aq_imap_open(&a);
    int rc = aq_imap_unseen(imap, (size_t)cfg->imap_fetch_max, &uids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (aq_ctx_cancelled(ctx)) { aq_ctx_error(ctx, "cancelled"); goto done; }
        rc = aq_imap_fetch(imap, uids[i], (size_t)cfg->max_email_bytes, &raw);
        if (rc == AQ_ETOOBIG) {   /* never readable here: mark it read and say so */
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "uid", uids[i]);
            cJSON_AddStringToObject(s, "reason", aq_imap_error(imap));
            cJSON_AddItemToArray(skipped, s);
            rc = aq_imap_mark_seen(imap, uids[i]);
            continue;
        }
        if (rc) break;
        int64_t job = 0;
        if (queue_message(ctx, conn, user, &raw, &job)) {
            aq_ctx_error(ctx, "the database is unreachable");
            st = AQ_JOB_RETRY;
            goto done;
        }
        if (job) cJSON_AddItemToArray(queued, cJSON_CreateNumber((double)job));
        else dups++;
        rc = aq_imap_mark_seen(imap, uids[i]);   /* only now: the job is committed */
    }
    if (rc) {
        aq_ctx_error(ctx, "%s", aq_imap_error(imap));
        mark(ctx, conn, aq_imap_error(imap));
        if (rc == AQ_EUNAVAIL) {   /* an outage: try again soon; what was queued stays queued once */
            aq_ctx_retry_transient(ctx, -1);
            st = AQ_JOB_RETRY;
            goto done;
        }
        *output = cJSON_CreateObject();   /* refused: the connection says why; the next slot tries again */
        cJSON_AddStringToObject(*output, "failing", aq_imap_error(imap));
        st = AQ_JOB_OK;
        goto done;
    }
    mark(ctx, conn, NULL);
    *output = cJSON_CreateObject();
    cJSON_AddNumberToObject(*output, "unseen", (double)n);
    cJSON_AddItemToObject(*output, "queued", queued);
    cJSON_AddNumberToObject(*output, "already_queued", dups);
    cJSON_AddItemToObject(*output, "skipped", skipped);
    queued = skipped = NULL;
    st = AQ_JOB_OK;
done:
    cJSON_Delete(queued);
    cJSON_Delete(skipped);
    aq_buf_dispose(&raw);
    free(uids);
    aq_imap_close(imap);
    if (password) {
        sodium_memzero(password, strlen(password));
        free(password);
    }
    PQclear(row);
    return st;
}
