/* aq_imap.h — the IMAP client of connections (libcurl's IMAP support,
 * blocking): the test login POST /v1/connections runs before saving (off the
 * API's loop, on libuv's pool) and the steps of an imap_poll job (handler
 * threads). One session reuses one connection for all its commands.
 *
 * Facts it builds on (../shared/notes/toolchain.md §8): fetching by URL sets
 * \Seen, so messages are fetched with "UID FETCH n BODY.PEEK[]", whose bytes
 * arrive through curl's header callback after the "{size}" line; the size
 * received is checked against that literal. Failures carry the server's own
 * words when it said any (the tagged NO/BAD line), else curl's reason. */
#ifndef AQ_IMAP_H
#define AQ_IMAP_H
#include <stddef.h>
#include <stdint.h>
#include "aq_buf.h"

typedef struct aq_imap_account {
    const char *host;
    int port;
    int tls;               /* implicit TLS (imaps://) */
    int tls_verify;        /* verify the server's certificate and name */
    const char *ca_file;   /* NULL or "": the system's CAs */
    const char *username, *password, *mailbox;
    long timeout_ms;       /* each command */
} aq_imap_account;

typedef struct aq_imap aq_imap;

/* What a failed call says: AQ_EAUTH (login refused), AQ_EUNAVAIL (cannot
 * reach or talk to the server: worth retrying), AQ_ETOOBIG (message over the
 * cap), AQ_EIO (the server refused a command). */

/* A session for a (copied by reference: keep a alive). Never NULL. */
aq_imap *aq_imap_open(const aq_imap_account *a);
void aq_imap_close(aq_imap *s);
/* The reason of the last failure (never NULL; "" after success). */
const char *aq_imap_error(const aq_imap *s);
/* Log in, select the mailbox and list the UIDs of its unseen messages, at
 * most max of them, oldest first: 0 with *uids (heap; free) and *n, or an
 * error code. */
int aq_imap_unseen(aq_imap *s, size_t max, uint32_t **uids, size_t *n);
/* The whole message uid without setting \Seen, into raw (reset first); over
 * max_bytes: AQ_ETOOBIG. */
int aq_imap_fetch(aq_imap *s, uint32_t uid, size_t max_bytes, aq_buf *raw);
/* Set \Seen on uid. */
int aq_imap_mark_seen(aq_imap *s, uint32_t uid);

#endif
