/* mime.h — a raw RFC 5322 message read through GMime 3 into what the
 * email_processing handler needs: decoded headers (RFC 2047 words, folding,
 * charsets to UTF-8), the readable text (text/plain preferred in an
 * alternative, else text/html turned into text; quoted-printable and base64
 * decoded) and the attachments as a list of {name, type, size} that never
 * reaches the model. Nothing is parsed by hand but the HTML-to-text step.
 *
 * Caps on everything: the raw size (AGENTQ_MAX_EMAIL_BYTES; over it the
 * parse is refused), the parts walked and the nesting depth (beyond them parts
 * are skipped and a note says so), and the text (cut with a marker). Pure
 * apart from GMime's one-time initialisation; any thread. */
#ifndef AQ_MIME_H
#define AQ_MIME_H
#include <cJSON.h>
#include <stddef.h>

typedef struct aq_mime_limits {
    size_t max_bytes;    /* raw message */
    int max_parts;       /* MIME parts walked */
    int max_depth;       /* multipart / attached-message nesting */
    size_t max_text;     /* bytes of text kept (marker included) */
} aq_mime_limits;

/* Caller-owned: aq_mime_msg_dispose frees the fields. Strings are UTF-8 with
 * no control characters but \n and \t in text; "" when absent, never NULL. */
typedef struct aq_mime_msg {
    char *from;          /* "Name <addr>" as decoded */
    char *from_addr;     /* the first mailbox's address */
    char *subject;
    char *date;          /* ISO 8601 UTC, "" when absent or unreadable */
    char *message_id;    /* without the angle brackets; "" when absent */
    char *text;          /* what the model reads */
    int text_cut;        /* the text was longer than max_text */
    int parts_skipped;   /* parts past max_parts or max_depth */
    cJSON *attachments;  /* array of {"name","type","size"} */
} aq_mime_msg;

/* Marker appended where the text is cut. */
#define AQ_MIME_CUT_MARKER "\n[... the rest of the message was cut: it is longer than the limit]"

/* Parse raw[0..len). Returns 0 (out filled), AQ_ETOOBIG (len over
 * max_bytes) or AQ_EINVAL (not a message GMime can read); on failure out
 * holds nothing to free and err (may be NULL) gets the reason. */
int aq_mime_parse(const char *raw, size_t len, const aq_mime_limits *lim, aq_mime_msg *out,
                  char *err, size_t errlen);
void aq_mime_msg_dispose(aq_mime_msg *m);
/* HTML to plain text: tags dropped (script and style with their content),
 * block ends as line breaks, common entities decoded, blank runs squeezed.
 * Heap string; exposed for unit tests. */
char *aq_mime_html_to_text(const char *html);

/* Where the code above lives. The worker does not link GMime: it loads
 * AQ_MIME_PLUGIN_FILE (mime.c and mime_plugin.c, linked with GMime), found
 * next to its own executable, the first time a message is parsed
 * (mime_load.c), so a worker that never reads mail never maps GMime, GIO,
 * GObject and GPGME (~1.7 MiB of an idle worker's resident pages). If the
 * file cannot be loaded, aq_mime_parse returns AQ_ECONFIG with the reason.
 * The test runner and the fuzz harness link mime.c directly. */
#define AQ_MIME_PLUGIN_FILE "agentq-mime.so"
typedef struct aq_mime_api {
    int (*parse)(const char *raw, size_t len, const aq_mime_limits *lim, aq_mime_msg *out, char *err, size_t errlen);
    void (*dispose)(aq_mime_msg *m);
} aq_mime_api;
#define AQ_MIME_PLUGIN_SYMBOL "aq_mime_plugin"

#endif
