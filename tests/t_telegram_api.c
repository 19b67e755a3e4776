/* t_telegram_api.c — the Telegram Bot API client (common/aq_tg_api.c)
 * against bin/agentq-fake through the real libcurl code (aq_http), and the
 * message splitter as pure unit cases. The client cases check the request
 * Telegram would see (path /botTOKEN/METHOD, JSON body), the result handed
 * back, how every fault is sorted (429 with parameters or only a header,
 * 5xx, 403 blocked, other 4xx, garbled or oversized 200s, refused
 * connections, timeouts, no token), and that the token never shows in an
 * error. The splitter cases check the cut preferences, UTF-8 and UTF-16
 * counting, and that chunks plus the dropped whitespace give back the text.
 * No database. */
#include "harness.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_config.h"
#include "aq_error.h"
#include "aq_http.h"
#include "aq_tg_api.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN "123456:SECRET-tok_en"

/* ---- the splitter ---- */

#define MAXC 256

typedef struct split {
    int n;
    size_t starts[MAXC], lens[MAXC];
} split;

static int ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* UTF-16 units in s[0..n) (valid UTF-8 assumed) */
static size_t units(const char *s, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) u += c >= 0xF0 ? 2 : 1;
    }
    return u;
}

/* Split and check what holds for every split: chunks in order, each not
 * empty, within limit, on code-point boundaries, not starting or ending with
 * whitespace at a cut; only whitespace between chunks; the first chunk
 * starts at 0 and the last ends at the end unless whitespace was there. */
#define SPLIT(text, limit) do_split(__LINE__, text, limit)

static split do_split(int line, const char *text, size_t limit)
{
    split sp;
    memset(&sp, 0, sizeof sp);
    sp.n = aq_tg_split(text, limit, sp.starts, sp.lens, MAXC);
    if (sp.n < 0) { th_fail(__FILE__, line, "aq_tg_split returned %d", sp.n); return sp; }
    size_t n = strlen(text), prev_end = 0;
    for (int i = 0; i < sp.n; i++) {
        size_t a = sp.starts[i], l = sp.lens[i];
        if (l == 0 || a < prev_end || a + l > n) {
            th_fail(__FILE__, line, "chunk %d: [%zu, +%zu) after %zu in %zu bytes", i, a, l, prev_end, n);
            return sp;
        }
        for (size_t k = prev_end; k < a; k++)
            if (!ws((unsigned char)text[k]))
                th_fail(__FILE__, line, "chunk %d: byte %zu dropped, not whitespace", i, k);
        if (units(text + a, l) > limit)
            th_fail(__FILE__, line, "chunk %d: %zu units over %zu", i, units(text + a, l), limit);
        if (((unsigned char)text[a] & 0xC0) == 0x80 || (a + l < n && ((unsigned char)text[a + l] & 0xC0) == 0x80))
            th_fail(__FILE__, line, "chunk %d: [%zu, +%zu) cuts a UTF-8 sequence", i, a, l);
        if (i > 0 && ws((unsigned char)text[a])) th_fail(__FILE__, line, "chunk %d starts with whitespace", i);
        if (i < sp.n - 1 && ws((unsigned char)text[a + l - 1]))
            th_fail(__FILE__, line, "chunk %d ends with whitespace", i);
        prev_end = a + l;
    }
    for (size_t k = prev_end; k < n; k++)
        if (!ws((unsigned char)text[k])) th_fail(__FILE__, line, "tail byte %zu dropped, not whitespace", k);
    return sp;
}

/* chunk i as a heap string */
static char *chunk(const char *text, const split *sp, int i)
{
    return aq_strndup(text + sp->starts[i], sp->lens[i]);
}

#define CHECK_CHUNK(text, sp, i, want) do { char *c_ = chunk(text, &(sp), i); CHECK_STR(c_, want); free(c_); } \
    while (0)

static char *repeat(const char *unit, int times)
{
    aq_buf b;
    aq_buf_init(&b);
    for (int i = 0; i < times; i++) aq_buf_adds(&b, unit);
    return b.len ? aq_buf_take(&b) : (aq_buf_dispose(&b), aq_strdup(""));
}

static void split_short_and_empty(void)
{
    size_t st[2], ln[2];
    CHECK_INT(aq_tg_split("", AQ_TG_TEXT_LIMIT, st, ln, 2), 0);
    CHECK_INT(aq_tg_split(" \n\t \r\n", AQ_TG_TEXT_LIMIT, st, ln, 2), 0);
    CHECK_INT(aq_tg_split("hello", AQ_TG_TEXT_LIMIT, st, ln, 2), 1);
    CHECK_INT(st[0], 0);
    CHECK_INT(ln[0], 5);
    /* a text that fits is kept verbatim, edges included */
    CHECK_INT(aq_tg_split("  indented\nand trailing\n", AQ_TG_TEXT_LIMIT, st, ln, 2), 1);
    CHECK_INT(st[0], 0);
    CHECK_INT(ln[0], 24);
    CHECK_INT(aq_tg_split("x", 1, st, ln, 2), AQ_EINVAL);   /* limit below 2 */
    char *big = repeat("a", 5000);
    CHECK_INT(aq_tg_split(big, AQ_TG_TEXT_LIMIT, st, ln, 0), AQ_ETOOBIG);
    free(big);
}

static void split_exactly_at_limit(void)
{
    char *t = repeat("a", AQ_TG_TEXT_LIMIT);
    split sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 1);
    CHECK_INT(sp.lens[0], AQ_TG_TEXT_LIMIT);
    free(t);
    t = repeat("a", AQ_TG_TEXT_LIMIT + 1);
    sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 2);
    CHECK_INT(sp.lens[0], AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.lens[1], 1);
    free(t);
}

static void split_words_in_order(void)
{
    /* 9000 bytes of numbered words: "w0001 w0002 ..." (6 bytes each) */
    aq_buf b;
    aq_buf_init(&b);
    for (int i = 1; b.len < 9000; i++) aq_buf_addf(&b, "w%04d ", i);
    b.p[b.len - 1] = 'x';   /* no trailing space */
    char *t = aq_buf_take(&b);
    split sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 3);
    CHECK_INT(sp.starts[0], 0);
    CHECK(sp.lens[0] > AQ_TG_TEXT_LIMIT - 6 && sp.lens[1] > AQ_TG_TEXT_LIMIT - 6);   /* cut near the limit */
    CHECK_INT(sp.starts[sp.n - 1] + sp.lens[sp.n - 1], strlen(t));
    /* chunks joined by the single space each cut dropped give the text back */
    aq_buf_init(&b);
    for (int i = 0; i < sp.n; i++) {
        if (i) aq_buf_adds(&b, " ");
        aq_buf_add(&b, t + sp.starts[i], sp.lens[i]);
    }
    CHECK_STR(b.p, t);
    for (int i = 1; i < sp.n; i++) CHECK_INT(sp.starts[i], sp.starts[i - 1] + sp.lens[i - 1] + 1);
    aq_buf_dispose(&b);
    free(t);
}

/* Preferences on a 100-unit limit: each text has its cut candidates after
 * unit 50, and the best one wins over later, worse ones. */
static void split_prefers_paragraph_line_sentence_space(void)
{
    char *a60 = repeat("a", 60), *b10 = repeat("b", 10), *c10 = repeat("c", 10), *d10 = repeat("d", 10);
    char *t = aq_sprintf("%s\n\n%s\n%s. %s %s", a60, b10, c10, d10, "tail tail tail tail tail");
    split sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    CHECK_CHUNK(t, sp, 0, a60);   /* paragraph, though a line, a sentence and spaces come later */
    free(t);

    t = aq_sprintf("%s %s.\n%s. %s %s", a60, b10, c10, d10, "tail tail tail tail tail");
    sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    char *want = aq_sprintf("%s %s.", a60, b10);
    CHECK_CHUNK(t, sp, 0, want);   /* line break over the later sentence end and spaces */
    free(want);
    free(t);

    t = aq_sprintf("%s! %s? %s %s", a60, b10, c10, "tail tail tail tail tail tail tail");
    sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    want = aq_sprintf("%s! %s?", a60, b10);
    CHECK_CHUNK(t, sp, 0, want);   /* the last sentence end over later spaces */
    free(want);
    free(t);

    t = aq_sprintf("%s %s %s %s", a60, b10, c10, "tail tail tail tail tail tail");
    sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    want = aq_sprintf("%s %s %s tail tail tail", a60, b10, c10);   /* 97 bytes; the next space is at 102 */
    CHECK_CHUNK(t, sp, 0, want);   /* the last space that fits */
    free(want);
    CHECK_CHUNK(t, sp, 1, "tail tail tail");
    free(t);

    /* a break before half the limit is not taken: the later space wins */
    char *a30 = repeat("a", 30), *e80 = repeat("e", 80);
    t = aq_sprintf("%s\n\n%s %s %s", a30, b10, e80, c10);   /* space at 43 (<50) and at 124 (>100) */
    sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    CHECK_INT(sp.lens[0], 100);   /* no usable cut in [50, 100]: a hard cut */
    free(t);
    /* CRLF blank line and a whitespace-only line both count as a paragraph */
    t = aq_sprintf("%s\r\n \t\r\n%s\n%s %s", a60, b10, c10, "tail tail tail tail tail tail");
    sp = SPLIT(t, 100);
    CHECK_INT(sp.n, 2);
    CHECK_CHUNK(t, sp, 0, a60);
    free(t);
    free(a30);
    free(e80);
    free(a60);
    free(b10);
    free(c10);
    free(d10);
}

static void split_hard_cuts_long_word(void)
{
    char *t = repeat("x", 10000);
    split sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 3);
    CHECK_INT(sp.lens[0], 4096);
    CHECK_INT(sp.lens[1], 4096);
    CHECK_INT(sp.lens[2], 10000 - 8192);
    CHECK_INT(sp.starts[1], 4096);
    CHECK_INT(sp.starts[2], 8192);
    free(t);
}

static void split_utf8_never_inside_a_sequence(void)
{
    /* Cyrillic: 2 bytes, 1 unit each; no spaces: hard cuts at 4096 letters */
    char *t = repeat("ж", 5000);
    split sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 2);
    CHECK_INT(sp.lens[0], 2 * 4096);
    CHECK_INT(units(t + sp.starts[1], sp.lens[1]), 5000 - 4096);
    free(t);
    /* emoji: 4 bytes, 2 units each: 2048 to a chunk */
    t = repeat("\xF0\x9F\x98\x80", 3000);
    sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 2);
    CHECK_INT(sp.lens[0], 4 * 2048);
    CHECK_INT(sp.lens[1], 4 * 952);
    free(t);
    /* odd offsets: "a" then "€😀ж" (4 units, 9 bytes) again and again, under
     * limits that land inside sequences and in the middle of the emoji's 2 units */
    char *mix = repeat("\xE2\x82\xAC\xF0\x9F\x98\x80\xD0\xB6", 20);
    t = aq_sprintf("a%s", mix);
    free(mix);
    for (size_t limit = 2; limit <= 41; limit++) {
        sp = SPLIT(t, limit);
        CHECK(sp.n > 0);
        size_t total = 0;
        for (int i = 0; i < sp.n; i++) total += sp.lens[i];
        CHECK_INT(total, strlen(t));   /* no whitespace: every byte is in a chunk */
    }
    free(t);
    /* words in Cyrillic with emoji: cuts at spaces, each chunk within the limit */
    aq_buf b;
    aq_buf_init(&b);
    for (int i = 0; i < 1500; i++) aq_buf_adds(&b, i % 7 ? "привет " : "\xF0\x9F\x98\x80\xF0\x9F\x98\x80 ");
    t = aq_buf_take(&b);
    sp = SPLIT(t, AQ_TG_TEXT_LIMIT);
    CHECK_INT(sp.n, 3);
    for (int i = 0; i < sp.n - 1; i++) CHECK(units(t + sp.starts[i], sp.lens[i]) > AQ_TG_TEXT_LIMIT - 8);
    free(t);
}

static void split_too_many_chunks(void)
{
    char *t = repeat("word ", 3000);   /* 15000 bytes: 4 chunks */
    size_t st[4], ln[4];
    CHECK_INT(aq_tg_split(t, AQ_TG_TEXT_LIMIT, st, ln, 4), 4);
    CHECK_INT(aq_tg_split(t, AQ_TG_TEXT_LIMIT, st, ln, 3), AQ_ETOOBIG);
    free(t);
}

/* ---- the client against the fake ---- */

static char fake_url[128];

static aq_config config(const char *base)
{
    aq_config c;
    memset(&c, 0, sizeof c);
    c.telegram_bot_token = TOKEN;
    c.telegram_api_base = base;
    c.telegram_timeout_ms = 5000;
    return c;
}

/* Check status and, for a failure, that the error names want and not the token. */
#define CHECK_RESULT(r, want_status, want_error) check_result(__LINE__, &(r), want_status, want_error)

static void check_result(int line, const aq_tg_result *r, aq_tg_status want, const char *want_error)
{
    if (r->status != want)
        th_fail(__FILE__, line, "status %d, want %d (error: %s)", (int)r->status, (int)want,
                r->error ? r->error : "(none)");
    if (want == AQ_TG_OK) {
        if (r->error || !r->result)
            th_fail(__FILE__, line, "OK with error %s / result %p", r->error, (void *)r->result);
        return;
    }
    if (r->result) th_fail(__FILE__, line, "a result on failure");
    if (!r->error) { th_fail(__FILE__, line, "no error text"); return; }
    if (want_error && !strstr(r->error, want_error))
        th_fail(__FILE__, line, "error \"%s\" lacks \"%s\"", r->error, want_error);
    if (strstr(r->error, TOKEN) || strstr(r->error, "SECRET"))
        th_fail(__FILE__, line, "error shows the token: %s", r->error);
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const cJSON *request(const cJSON *reqs, int i) { return cJSON_GetArrayItem(reqs, i); }

static void send_message_shape_and_ok(void)
{
    th_fake("[{\"body\":{\"ok\":true,\"result\":{\"message_id\":77,\"chat\":{\"id\":-1001234567890123}}}},"
            " {\"body\":{\"ok\":true,\"result\":{\"message_id\":78}}}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    cJSON *markup = cJSON_Parse("{\"inline_keyboard\":[[{\"text\":\"Approve\",\"callback_data\":\"a:12\"},"
                                "{\"text\":\"Reject\",\"callback_data\":\"r:12\"}]]}");
    const char *text = "héllo \"quoted\" ✓\nline two \xF0\x9F\x98\x80";
    aq_tg_result r;
    CHECK_INT(aq_tg_send_message(&cfg, -1001234567890123LL, text, markup, &r), 0);
    CHECK_RESULT(r, AQ_TG_OK, NULL);
    CHECK_INT(r.http_status, 200);
    CHECK_INT((long long)cJSON_GetNumberValue(get(r.result, "message_id")), 77);
    aq_tg_result_dispose(&r);
    CHECK_INT(aq_tg_send_message(&cfg, 42, "plain", NULL, &r), 0);
    CHECK_RESULT(r, AQ_TG_OK, NULL);
    CHECK_INT((long long)cJSON_GetNumberValue(get(r.result, "message_id")), 78);
    aq_tg_result_dispose(&r);

    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 2);
    const cJSON *q = request(reqs, 0);
    CHECK_STR(cJSON_GetStringValue(get(q, "method")), "POST");
    CHECK_STR(cJSON_GetStringValue(get(q, "path")), "/bot" TOKEN "/sendMessage");
    CHECK_CONTAINS(cJSON_GetStringValue(get(get(q, "headers"), "content-type")), "application/json");
    CHECK(!get(get(q, "headers"), "authorization"));
    const cJSON *body = get(q, "body");
    CHECK(cJSON_IsNumber(get(body, "chat_id")));
    CHECK(cJSON_GetNumberValue(get(body, "chat_id")) == -1001234567890123.0);
    CHECK_STR(cJSON_GetStringValue(get(body, "text")), text);
    CHECK(cJSON_Compare(get(body, "reply_markup"), markup, 1));
    body = get(request(reqs, 1), "body");
    CHECK(cJSON_GetNumberValue(get(body, "chat_id")) == 42.0);
    CHECK_STR(cJSON_GetStringValue(get(body, "text")), "plain");
    CHECK(!get(body, "reply_markup"));
    CHECK_INT(cJSON_GetArraySize(body), 2);
    /* this thread's handle kept the connection */
    CHECK_INT((long long)cJSON_GetNumberValue(get(request(reqs, 1), "conn")),
              (long long)cJSON_GetNumberValue(get(request(reqs, 0), "conn")));
    cJSON_Delete(reqs);
    cJSON_Delete(markup);
    aq_http_thread_cleanup();
}

static void rate_limited_retry_after(void)
{
    th_fake("[{\"status\":429,\"body\":{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry"
            " after 3\",\"parameters\":{\"retry_after\":3}}},"
            " {\"status\":429,\"headers\":{\"Retry-After\":7},\"body\":{\"ok\":false,\"error_code\":429,"
            "\"description\":\"Too Many Requests\"}},"
            " {\"status\":429,\"body\":{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests\"}}]",
            fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    CHECK_INT(aq_tg_send_message(&cfg, 1, "x", NULL, &r), AQ_EIO);
    CHECK_RESULT(r, AQ_TG_RETRY, "Too Many Requests: retry after 3");
    CHECK_CONTAINS(r.error, "HTTP 429");
    CHECK_INT(r.retry_after_ms, 3000);
    CHECK_INT(r.http_status, 429);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* only the header */
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 429: Too Many Requests");
    CHECK_INT(r.retry_after_ms, 7000);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* neither */
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 429");
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

/* A Retry-After whose milliseconds overflow a long (seen while writing
 * fz_tg_reply: the header's seconds were multiplied unchecked, undefined
 * behaviour) counts as no delay named. */
static void retry_after_beyond_a_long(void)
{
    th_fake("[{\"status\":429,\"headers\":{\"Retry-After\":\"9300000000000000\"},\"body\":\"slow down\"},"
            " {\"status\":503,\"headers\":{\"Retry-After\":\"9223372036854775\"},\"body\":\"busy\"}]",
            fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 429");
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* the largest that fits is kept */
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 503");
    CHECK_INT(r.retry_after_ms, 9223372036854775000LL);
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

static void server_errors_retry(void)
{
    th_fake("[{\"status\":500,\"body\":\"oops\"},"
            " {\"status\":502,\"body\":{\"ok\":false,\"error_code\":502,\"description\":\"Bad Gateway\"}},"
            " {\"status\":503,\"headers\":{\"Retry-After\":2},\"body\":\"\"}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "Telegram sendMessage: HTTP 500");
    CHECK_INT(r.retry_after_ms, -1);
    CHECK_INT(r.http_status, 500);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 502: Bad Gateway");
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 503");
    CHECK_INT(r.retry_after_ms, 2000);   /* a header on a 5xx is honoured too */
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

static void forbidden_is_blocked(void)
{
    th_fake("[{\"status\":403,\"body\":{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was"
            " blocked by the user\"}},"
            " {\"status\":403,\"body\":{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: user is"
            " deactivated\"}}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    CHECK_INT(aq_tg_send_message(&cfg, 5, "x", NULL, &r), AQ_EIO);
    CHECK_RESULT(r, AQ_TG_BLOCKED, "Telegram sendMessage: HTTP 403: Forbidden: bot was blocked by the user");
    CHECK_INT(r.http_status, 403);
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 5, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_BLOCKED, "user is deactivated");
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

static void client_errors_fail(void)
{
    th_fake("[{\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not"
            " found\"}},"
            " {\"status\":401,\"body\":{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}},"
            " {\"status\":404,\"body\":{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}},"
            " {\"status\":200,\"body\":{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message"
            " text is empty\"}}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, 5, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "Telegram sendMessage: HTTP 400: Bad Request: chat not found");
    CHECK_INT(r.http_status, 400);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 5, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "HTTP 401: Unauthorized");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 5, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "HTTP 404: Not Found");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 5, "x", NULL, &r);   /* ok:false inside a 200: sorted by error_code */
    CHECK_RESULT(r, AQ_TG_FAILED, "HTTP 400: Bad Request: message text is empty");
    CHECK_INT(r.http_status, 200);
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

/* A group that became a supergroup: 400 with parameters.migrate_to_chat_id
 * (up to 52 bits, exact) is FAILED and names the new chat; other 400s and a
 * garbled id name none. */
static void migrated_chat_named(void)
{
    th_fake("[{\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat"
            " was upgraded to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001557912345}}},"
            " {\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not found\"}},"
            " {\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"parameters\":{\"migrate_to_chat_id\":\"-1\"}}},"
            " {\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"parameters\":{\"migrate_to_chat_id\":-1.5}}}]",
            fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, -4242, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "HTTP 400: Bad Request: group chat was upgraded to a supergroup chat");
    CHECK(r.migrate_to_chat_id == -1001557912345LL);
    aq_tg_result_dispose(&r);
    CHECK_INT(r.migrate_to_chat_id, 0);   /* dispose clears it */
    for (int i = 0; i < 3; i++) {
        aq_tg_send_message(&cfg, -4242, "x", NULL, &r);
        CHECK_INT(r.status, AQ_TG_FAILED);
        CHECK_INT(r.migrate_to_chat_id, 0);
        aq_tg_result_dispose(&r);
    }
    aq_http_thread_cleanup();
}

static void garbled_replies_retry(void)
{
    char *big = repeat("x", (8 << 20) + 1);
    char *script = aq_sprintf("[{\"body\":\"<html>not json\"}, {\"body\":{\"ok\":true}}, {\"body\":[1,2]},"
                              " {\"raw\":\"HTTP/1.1 200 OK\\r\\nContent-Length: 100\\r\\n\\r\\n{\\\"ok\\\":tr\"},"
                              " {\"body\":\"%s\"}, {\"body\":{\"ok\":true,\"result\":true}}]", big);
    free(big);
    th_fake(script, fake_url, sizeof fake_url);
    free(script);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "HTTP 200 but the reply is not the expected JSON");
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* ok without a result */
    CHECK_RESULT(r, AQ_TG_RETRY, "not the expected JSON");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* JSON, but not an object */
    CHECK_RESULT(r, AQ_TG_RETRY, "not the expected JSON");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* cut short */
    CHECK_RESULT(r, AQ_TG_RETRY, "Telegram sendMessage: no usable response");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* one byte over the cap */
    CHECK_RESULT(r, AQ_TG_RETRY, "reply over 8 MiB");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* and the client recovers */
    CHECK_RESULT(r, AQ_TG_OK, NULL);
    CHECK(cJSON_IsTrue(r.result));
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

/* Found by fuzzing (fz_tg_reply): an error_code beyond a long was cast to
 * one (undefined behaviour; in practice "HTTP -9223372036854775808"). An
 * error_code that is no HTTP status leaves the 200 an unexpected reply. */
static void error_code_not_a_status(void)
{
    th_fake("[{\"body\":{\"ok\":false,\"error_code\":1e300}}, {\"body\":{\"ok\":false,\"error_code\":-4e34}},"
            " {\"body\":{\"ok\":false,\"error_code\":99}}, {\"body\":{\"ok\":false,\"error_code\":403}}]",
            fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    for (int i = 0; i < 3; i++) {
        aq_tg_send_message(&cfg, 1, "x", NULL, &r);
        CHECK_RESULT(r, AQ_TG_RETRY, "Telegram sendMessage: HTTP 200 but the reply is not the expected JSON");
        aq_tg_result_dispose(&r);
    }
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);   /* a real status in a 200 still counts */
    CHECK_RESULT(r, AQ_TG_BLOCKED, "HTTP 403");
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

/* A 127.0.0.1 port nothing listens on (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &len))
        th_fail(__FILE__, __LINE__, "cannot bind a socket");
    close(fd);
    return ntohs(sa.sin_port);
}

static void no_response_retries(void)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", dead_port());
    aq_config cfg = config(base);
    aq_tg_result r;
    CHECK_INT(aq_tg_send_message(&cfg, 1, "x", NULL, &r), AQ_EIO);
    CHECK_RESULT(r, AQ_TG_RETRY, "Telegram sendMessage: no usable response");
    CHECK_INT(r.http_status, 0);
    CHECK_INT(r.retry_after_ms, -1);
    aq_tg_result_dispose(&r);
    /* a timeout: the reply comes after TELEGRAM_TIMEOUT_MS */
    th_fake("[{\"delay_ms\":1500,\"body\":{\"ok\":true,\"result\":{}}}]", fake_url, sizeof fake_url);
    cfg = config(fake_url);
    cfg.telegram_timeout_ms = 300;
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "no usable response");
    CHECK_INT(r.http_status, 0);
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

static void no_token_no_request(void)
{
    th_fake("[{\"body\":{\"ok\":true,\"result\":{\"message_id\":1}},\"repeat\":-1}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    cfg.telegram_bot_token = "";
    aq_tg_result r;
    CHECK_INT(aq_tg_send_message(&cfg, 1, "x", NULL, &r), AQ_EIO);
    CHECK_RESULT(r, AQ_TG_FAILED, NULL);
    CHECK_STR(r.error, "TELEGRAM_BOT_TOKEN is not set");
    CHECK_INT(r.http_status, 0);
    aq_tg_result_dispose(&r);
    aq_tg_get_updates(&cfg, 0, 0, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "TELEGRAM_BOT_TOKEN is not set");
    aq_tg_result_dispose(&r);
    aq_tg_answer_callback(&cfg, "q1", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "TELEGRAM_BOT_TOKEN is not set");
    aq_tg_result_dispose(&r);
    th_sleep_ms(100);
    cJSON *reqs = th_fake_requests();
    CHECK_INT(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
}

static void token_never_in_errors(void)
{
    /* Telegram echoing the URL back, and a proxy's HTML page naming it */
    th_fake("[{\"status\":404,\"body\":{\"ok\":false,\"error_code\":404,\"description\":\"Not Found: /bot" TOKEN
            "/sendMessage\"}},"
            " {\"status\":400,\"body\":{\"ok\":false,\"error_code\":400,\"description\":\"" TOKEN " " TOKEN "\"}}]",
            fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "Not Found: /bot<token>/sendMessage");
    aq_tg_result_dispose(&r);
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_FAILED, "HTTP 400: <token> <token>");
    aq_tg_result_dispose(&r);
    /* curl's reasons (unresolvable host, refused port) carry no URL either */
    cfg = config("http://nonexistent.invalid");
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "no usable response");
    aq_tg_result_dispose(&r);
    cfg = config("ftp://127.0.0.1");   /* not http(s): refused by the client */
    aq_tg_send_message(&cfg, 1, "x", NULL, &r);
    CHECK_RESULT(r, AQ_TG_RETRY, "no usable response");
    aq_tg_result_dispose(&r);
    aq_http_thread_cleanup();
}

static void get_updates_array(void)
{
    th_fake("[{\"match\":\"getUpdates\",\"delay_ms\":600,\"body\":{\"ok\":true,\"result\":["
            "{\"update_id\":10,\"message\":{\"message_id\":1,\"chat\":{\"id\":5},\"text\":\"hi\"}},"
            "{\"update_id\":11,\"callback_query\":{\"id\":\"cq\",\"data\":\"a:12\"}}]}},"
            " {\"match\":\"getUpdates\",\"body\":{\"ok\":true,\"result\":[]}}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    cfg.telegram_timeout_ms = 300;   /* the long poll's 1 s is added: the 600 ms reply is in time */
    aq_tg_result r;
    CHECK_INT(aq_tg_get_updates(&cfg, 9876543210123LL, 1, &r), 0);
    CHECK_RESULT(r, AQ_TG_OK, NULL);
    CHECK(cJSON_IsArray(r.result));
    CHECK_INT(cJSON_GetArraySize(r.result), 2);
    CHECK_INT((long long)cJSON_GetNumberValue(get(cJSON_GetArrayItem(r.result, 1), "update_id")), 11);
    aq_tg_result_dispose(&r);
    CHECK_INT(aq_tg_get_updates(&cfg, 0, 0, &r), 0);
    CHECK(cJSON_IsArray(r.result));
    CHECK_INT(cJSON_GetArraySize(r.result), 0);
    aq_tg_result_dispose(&r);
    cJSON *reqs = th_fake_requests();
    const cJSON *q = request(reqs, 0);
    CHECK_STR(cJSON_GetStringValue(get(q, "path")), "/bot" TOKEN "/getUpdates");
    const cJSON *body = get(q, "body");
    CHECK(cJSON_GetNumberValue(get(body, "offset")) == 9876543210123.0);
    CHECK_INT((long long)cJSON_GetNumberValue(get(body, "timeout")), 1);
    cJSON *want = cJSON_Parse("[\"message\",\"callback_query\"]");
    CHECK(cJSON_Compare(get(body, "allowed_updates"), want, 1));
    cJSON_Delete(want);
    cJSON_Delete(reqs);
    aq_http_thread_cleanup();
}

static void answer_callback_and_call(void)
{
    th_fake("[{\"body\":{\"ok\":true,\"result\":true}}, {\"body\":{\"ok\":true,\"result\":true}},"
            " {\"body\":{\"ok\":true,\"result\":{\"id\":99,\"is_bot\":true}}}]", fake_url, sizeof fake_url);
    aq_config cfg = config(fake_url);
    aq_tg_result r;
    CHECK_INT(aq_tg_answer_callback(&cfg, "4382bfdwdsb323b2d9", "Approved", &r), 0);
    CHECK_RESULT(r, AQ_TG_OK, NULL);
    CHECK(cJSON_IsTrue(r.result));
    aq_tg_result_dispose(&r);
    CHECK_INT(aq_tg_answer_callback(&cfg, "q2", NULL, &r), 0);
    aq_tg_result_dispose(&r);
    CHECK_INT(aq_tg_call(&cfg, "getMe", NULL, &r), 0);   /* no params: {} */
    CHECK_INT((long long)cJSON_GetNumberValue(get(r.result, "id")), 99);
    aq_tg_result_dispose(&r);
    cJSON *reqs = th_fake_requests();
    const cJSON *q = request(reqs, 0);
    CHECK_STR(cJSON_GetStringValue(get(q, "path")), "/bot" TOKEN "/answerCallbackQuery");
    cJSON *want = cJSON_Parse("{\"callback_query_id\":\"4382bfdwdsb323b2d9\",\"text\":\"Approved\"}");
    CHECK(cJSON_Compare(get(q, "body"), want, 1));
    cJSON_Delete(want);
    want = cJSON_Parse("{\"callback_query_id\":\"q2\"}");
    CHECK(cJSON_Compare(get(request(reqs, 1), "body"), want, 1));
    cJSON_Delete(want);
    CHECK_STR(cJSON_GetStringValue(get(request(reqs, 2), "path")), "/bot" TOKEN "/getMe");
    CHECK(cJSON_IsObject(get(request(reqs, 2), "body")) && !get(request(reqs, 2), "body")->child);
    cJSON_Delete(reqs);
    aq_http_thread_cleanup();
}

const th_test th_telegram_api_tests[] = {
    {"tg_api_split_short_and_empty", split_short_and_empty, 10, 0},
    {"tg_api_split_exactly_at_limit", split_exactly_at_limit, 10, 0},
    {"tg_api_split_words_in_order", split_words_in_order, 10, 0},
    {"tg_api_split_preferences", split_prefers_paragraph_line_sentence_space, 10, 0},
    {"tg_api_split_hard_cuts", split_hard_cuts_long_word, 10, 0},
    {"tg_api_split_utf8", split_utf8_never_inside_a_sequence, 10, 0},
    {"tg_api_split_too_many", split_too_many_chunks, 10, 0},
    {"tg_api_send_message", send_message_shape_and_ok, 20, 0},
    {"tg_api_429_retry_after", rate_limited_retry_after, 20, 0},
    {"tg_api_retry_after_beyond_a_long", retry_after_beyond_a_long, 20, 0},
    {"tg_api_5xx_retry", server_errors_retry, 20, 0},
    {"tg_api_403_blocked", forbidden_is_blocked, 20, 0},
    {"tg_api_4xx_failed", client_errors_fail, 20, 0},
    {"tg_api_migrated_chat", migrated_chat_named, 20, 0},
    {"tg_api_garbled_retry", garbled_replies_retry, 30, 0},
    {"tg_api_error_code_not_a_status", error_code_not_a_status, 20, 0},
    {"tg_api_no_response_retry", no_response_retries, 20, 0},
    {"tg_api_no_token_no_request", no_token_no_request, 20, 0},
    {"tg_api_token_never_in_errors", token_never_in_errors, 30, 0},
    {"tg_api_get_updates", get_updates_array, 20, 0},
    {"tg_api_answer_callback", answer_callback_and_call, 20, 0},
    {0},
};
