/* mime.c — see mime.h. GMime builds the tree (headers decoded, transfer
 * encodings undone, text converted to UTF-8 from its declared charset); this
 * file walks it with the caps, picks the text the model reads and lists the
 * attachments.
 *
 * DESIGN: one walk, depth first, counting parts. A multipart/alternative
 * contributes one child: text/plain if any, else text/html (as text), else
 * its first child. Any other multipart contributes every child in order. A
 * leaf is text when it is text/plain or text/html and neither marked as an
 * attachment nor named; everything else (attached messages included) is an
 * attachment whose decoded size is counted by writing it to a null stream. */
#include "mime.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_error.h"
#include "aq_json.h"
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX 1000   /* bytes kept of a decoded header */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_gmime(void) { g_mime_init(); }

typedef struct walk {
    const aq_mime_limits *lim;
    aq_buf text;
    int parts, skipped, cut;
    cJSON *attachments;
} walk;

/* A heap copy of s cut to max bytes at a UTF-8 boundary, invalid bytes as
 * '?', control characters as spaces (tab and newline too when !multiline). */
static char *clean(const char *s, size_t max, int multiline)
{
    if (!s) return aq_strdup("");
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    char *c = aq_strndup(s, n);
    aq_utf8_sanitize(c);
    for (char *p = c; *p; p++) {
        unsigned char u = (unsigned char)*p;
        if (u == '\r') *p = multiline ? '\n' : ' ';
        else if (u < 0x20 && !(multiline && (u == '\n' || u == '\t'))) *p = ' ';
        else if (u == 0x7f) *p = ' ';
    }
    if (!multiline) {   /* a folded header's line break and indent become one space */
        char *o = c;
        for (char *p = c; *p; p++)
            if (*p != ' ' || (o > c && o[-1] != ' ')) *o++ = *p;
        while (o > c && o[-1] == ' ') o--;
        *o = '\0';
    }
    return c;
}

/* Append text to the walk's text, cutting at the cap (once). */
static void add_text(walk *w, const char *s)
{
    if (w->cut || !s || !*s) return;
    aq_buf lf;   /* CRLF as LF; a lone CR becomes LF in clean() */
    aq_buf_init(&lf);
    for (const char *p = s; *p; p++)
        if (!(*p == '\r' && p[1] == '\n')) aq_buf_add(&lf, p, 1);
    char *c = clean(lf.p, lf.len, 1);
    aq_buf_dispose(&lf);
    if (w->text.len && w->text.p[w->text.len - 1] != '\n') aq_buf_adds(&w->text, "\n");
    if (w->text.len) aq_buf_adds(&w->text, "\n");
    aq_buf_adds(&w->text, c);
    free(c);
    size_t marker = strlen(AQ_MIME_CUT_MARKER);
    if (w->text.len > w->lim->max_text) {
        size_t keep = w->lim->max_text > marker ? w->lim->max_text - marker : 0;
        while (keep > 0 && ((unsigned char)w->text.p[keep] & 0xC0) == 0x80) keep--;
        w->text.len = keep;
        w->text.p[keep] = '\0';
        aq_buf_adds(&w->text, AQ_MIME_CUT_MARKER);
        w->cut = 1;
    }
}

static int is_type(GMimeObject *o, const char *type, const char *sub)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    return ct && g_mime_content_type_is_type(ct, type, sub);
}

/* Decoded size of a leaf's content. */
static long long content_size(GMimePart *part)
{
    GMimeDataWrapper *dw = g_mime_part_get_content(part);
    if (!dw) return 0;
    GMimeStream *null = g_mime_stream_null_new();
    g_mime_data_wrapper_write_to_stream(dw, null);
    long long n = (long long)GMIME_STREAM_NULL(null)->written;
    g_object_unref(null);
    return n;
}

static void add_attachment(walk *w, GMimeObject *o)
{
    cJSON *a = cJSON_CreateObject();
    const char *name = NULL;
    long long size = 0;
    if (GMIME_IS_PART(o)) {
        name = g_mime_part_get_filename(GMIME_PART(o));
        size = content_size(GMIME_PART(o));
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        name = m ? g_mime_message_get_subject(m) : NULL;
    }
    char *n = clean(name ? name : "", 255, 0);
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    char *type = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    char *t = clean(type ? type : "application/octet-stream", 255, 0);
    g_free(type);
    cJSON_AddStringToObject(a, "name", n);
    cJSON_AddStringToObject(a, "type", t);
    cJSON_AddNumberToObject(a, "size", (double)size);
    free(n);
    free(t);
    cJSON_AddItemToArray(w->attachments, a);
}

static void add_text_part(walk *w, GMimeObject *o)
{
    char *s = g_mime_text_part_get_text(GMIME_TEXT_PART(o));
    if (!s) return;
    if (is_type(o, "text", "html")) {
        char *t = aq_mime_html_to_text(s);
        add_text(w, t);
        free(t);
    } else {
        add_text(w, s);
    }
    g_free(s);
}

static int is_attachment(GMimeObject *o)
{
    if (!GMIME_IS_TEXT_PART(o)) return 1;
    if (!is_type(o, "text", "plain") && !is_type(o, "text", "html")) return 1;
    const char *disp = g_mime_object_get_disposition(o);
    if (disp && !g_ascii_strcasecmp(disp, "attachment")) return 1;
    return g_mime_part_get_filename(GMIME_PART(o)) != NULL;
}

static void walk_obj(walk *w, GMimeObject *o, int depth);

/* The one child of an alternative the model reads. */
static GMimeObject *best_alternative(GMimeMultipart *mp)
{
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; i++) {
        GMimeObject *c = g_mime_multipart_get_part(mp, i);
        if (GMIME_IS_TEXT_PART(c) && is_type(c, "text", "plain") && !is_attachment(c)) return c;
    }
    for (int i = 0; i < n; i++) {
        GMimeObject *c = g_mime_multipart_get_part(mp, i);
        if (GMIME_IS_TEXT_PART(c) && is_type(c, "text", "html") && !is_attachment(c)) return c;
    }
    return n > 0 ? g_mime_multipart_get_part(mp, 0) : NULL;
}

static void walk_obj(walk *w, GMimeObject *o, int depth)
{
    if (!o) return;
    if (w->parts >= w->lim->max_parts || depth > w->lim->max_depth) { w->skipped++; return; }
    w->parts++;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        if (is_type(o, "multipart", "alternative")) {
            walk_obj(w, best_alternative(mp), depth + 1);
            return;
        }
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++) walk_obj(w, g_mime_multipart_get_part(mp, i), depth + 1);
        if (n == 0) add_text(w, g_mime_multipart_get_prologue(mp));   /* no boundary matched: the body as is */
        return;
    }
    if (is_attachment(o)) add_attachment(w, o);
    else add_text_part(w, o);
}

int aq_mime_parse(const char *raw, size_t len, const aq_mime_limits *lim, aq_mime_msg *out,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > lim->max_bytes) {
        if (err) snprintf(err, errlen, "the message is %zu bytes; the limit is %zu", len, lim->max_bytes);
        return AQ_ETOOBIG;
    }
    pthread_once(&init_once, init_gmime);
    int rc = AQ_EINVAL;
    walk w = {.lim = lim};
    aq_buf_init(&w.text);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    if (!msg) {
        if (err) snprintf(err, errlen, "not an RFC 5322 message (no header block GMime can read)");
        goto done;
    }
    w.attachments = cJSON_CreateArray();
    walk_obj(&w, g_mime_message_get_mime_part(msg), 1);

    InternetAddressList *from = g_mime_message_get_from(msg);
    char *from_s = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
    out->from = clean(from_s, HEADER_MAX, 0);
    g_free(from_s);
    const char *addr = NULL;
    for (int i = 0; from && i < internet_address_list_length(from) && !addr; i++) {
        InternetAddress *ia = internet_address_list_get_address(from, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    }
    out->from_addr = clean(addr, HEADER_MAX, 0);
    out->subject = clean(g_mime_message_get_subject(msg), HEADER_MAX, 0);
    out->message_id = clean(g_mime_message_get_message_id(msg), HEADER_MAX, 0);
    GDateTime *d = g_mime_message_get_date(msg);
    GDateTime *utc = d ? g_date_time_to_utc(d) : NULL;
    char *iso = utc ? g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ") : NULL;
    out->date = clean(iso, 64, 0);
    g_free(iso);
    if (utc) g_date_time_unref(utc);
    while (w.text.len && (w.text.p[w.text.len - 1] == '\n' || w.text.p[w.text.len - 1] == ' '))
        w.text.p[--w.text.len] = '\0';
    out->text = aq_buf_take(&w.text);
    out->text_cut = w.cut;
    out->parts_skipped = w.skipped;
    out->attachments = w.attachments;
    w.attachments = NULL;
    rc = 0;
done:
    if (msg) g_object_unref(msg);
    g_object_unref(parser);
    g_object_unref(stream);
    aq_buf_dispose(&w.text);
    cJSON_Delete(w.attachments);
    return rc;
}

void aq_mime_msg_dispose(aq_mime_msg *m)
{
    free(m->from);
    free(m->from_addr);
    free(m->subject);
    free(m->date);
    free(m->message_id);
    free(m->text);
    cJSON_Delete(m->attachments);
    memset(m, 0, sizeof *m);
}

/* ---- HTML to text ---- */

static const struct { const char *name; const char *utf8; } entities[] = {
    {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "},
    {"mdash", "\xe2\x80\x94"}, {"ndash", "\xe2\x80\x93"}, {"hellip", "\xe2\x80\xa6"},
    {"euro", "\xe2\x82\xac"}, {"copy", "\xc2\xa9"}, {NULL, NULL},
};

static void add_codepoint(aq_buf *b, unsigned long c)
{
    char u[4];
    if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = '?';
    if (c < 0x80) { u[0] = (char)c; aq_buf_add(b, u, 1); }
    else if (c < 0x800) { u[0] = (char)(0xC0 | (c >> 6)); u[1] = (char)(0x80 | (c & 0x3F)); aq_buf_add(b, u, 2); }
    else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12)); u[1] = (char)(0x80 | ((c >> 6) & 0x3F)); u[2] = (char)(0x80 | (c & 0x3F));
        aq_buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (c >> 18)); u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F)); u[3] = (char)(0x80 | (c & 0x3F));
        aq_buf_add(b, u, 4);
    }
}

/* At p just past '&': the entity's length through ';' (0 when not one we know). */
static size_t entity(const char *p, aq_buf *b)
{
    const char *semi = strchr(p, ';');
    if (!semi || semi - p > 10 || semi == p) return 0;
    size_t n = (size_t)(semi - p);
    if (*p == '#') {
        char *end;
        unsigned long c = (p[1] == 'x' || p[1] == 'X') ? strtoul(p + 2, &end, 16) : strtoul(p + 1, &end, 10);
        if (end != semi) return 0;
        add_codepoint(b, c);
        return n + 1;
    }
    for (int i = 0; entities[i].name; i++)
        if (strlen(entities[i].name) == n && !strncmp(p, entities[i].name, n)) {
            aq_buf_adds(b, entities[i].utf8);
            return n + 1;
        }
    return 0;
}

static int tag_is(const char *tag, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n == l && !g_ascii_strncasecmp(tag, name, l);
}

char *aq_mime_html_to_text(const char *html)
{
    aq_buf b;
    aq_buf_init(&b);
    const char *skip_until = NULL;   /* "</script" or "</style" */
    for (const char *p = html; *p;) {
        if (skip_until) {
            const char *e = strcasestr(p, skip_until);
            if (!e) break;
            p = e;
            skip_until = NULL;
        }
        if (*p == '<') {
            if (!strncmp(p, "<!--", 4)) {
                const char *e = strstr(p + 4, "-->");
                p = e ? e + 3 : p + strlen(p);
                continue;
            }
            const char *e = strchr(p, '>');
            if (!e) break;
            const char *t = p + 1;
            int closing = *t == '/';
            if (closing) t++;
            size_t n = strcspn(t, " \t\r\n/>");
            if (!closing && tag_is(t, n, "script")) skip_until = "</script";
            if (!closing && tag_is(t, n, "style")) skip_until = "</style";
            if (tag_is(t, n, "br") || tag_is(t, n, "p") || tag_is(t, n, "div") || tag_is(t, n, "li") ||
                tag_is(t, n, "tr") || tag_is(t, n, "h1") || tag_is(t, n, "h2") || tag_is(t, n, "h3") ||
                tag_is(t, n, "h4") || tag_is(t, n, "table") || tag_is(t, n, "ul") || tag_is(t, n, "ol"))
                aq_buf_adds(&b, "\n");
            if (!closing && tag_is(t, n, "li")) aq_buf_adds(&b, "- ");
            p = e + 1;
            continue;
        }
        if (*p == '&') {
            size_t used = entity(p + 1, &b);
            if (used) { p += used + 1; continue; }
        }
        if (*p == '\r' || *p == '\n' || *p == '\t') aq_buf_adds(&b, " ");
        else aq_buf_add(&b, p, 1);
        p++;
    }
    /* squeeze: space runs to one, no space at line ends or starts, no blank lines */
    aq_buf o;
    aq_buf_init(&o);
    int nl = 1, sp = 0;
    for (size_t i = 0; i < b.len; i++) {
        char c = b.p[i];
        if (c == ' ') { sp = 1; continue; }
        if (c == '\n') { sp = 0; if (nl < 1) aq_buf_adds(&o, "\n"); nl++; continue; }
        if (sp && nl == 0) aq_buf_adds(&o, " ");
        sp = 0;
        nl = 0;
        aq_buf_add(&o, &c, 1);
    }
    while (o.len && o.p[o.len - 1] == '\n') o.p[--o.len] = '\0';
    aq_buf_dispose(&b);
    return aq_buf_take(&o);
}
