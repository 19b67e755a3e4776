/* llm.c — bin/agentq-fake --llm-delay-ms D: an OpenAI-compatible model that
 * answers every POST .../chat/completions after a fixed delay, for the agent
 * turn benchmark (`make bench`, tests/bench/turns.c) and its test. No script
 * and no per-request log: it must hold thousands of connections, each
 * waiting for its reply, at a few kB apiece.
 *
 * The reply is what the real API sends for a plain answer:
 *   {"id":"chatcmpl-fake-N","object":"chat.completion","created":UNIX,
 *    "model":<the request's model>,"choices":[{"index":0,"message":{"role":
 *    "assistant","content":"fake reply N (M messages)","refusal":null},
 *    "logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":P,
 *    "completion_tokens":C,"total_tokens":P+C}}
 * where N counts requests from 1, M is the length of the request's
 * "messages", and tokens are bytes / 4 rounded up (prompt: the request body).
 * A body that is not one JSON object with a "messages" array: 400
 * invalid_request_error; another method or path: 404; malformed HTTP: 400,
 * oversized: 413 (the script mode's parser and caps, fake.h). Errors have the
 * API's shape {"error":{"message","type","param","code"}}.
 *
 * With --log FILE, one JSON line is appended when the fake stops (SIGTERM or
 * SIGINT): {"mode":"llm","delay_ms":D,"connections":accepted,"max_open":
 * most open at once,"requests":complete requests,"answered":200s sent,
 * "max_waiting":most requests waiting for their delay at once,"refused":
 * 4xx/5xx}.
 *
 * DESIGN: one libuv loop. A connection is one struct (tcp handle, timer,
 * input buffer, rendered reply); bytes are read into one shared buffer and
 * appended to the connection's input, which is freed whenever it empties, so
 * an idle keep-alive connection holds no buffer. A complete request is
 * answered at once into the reply buffer and its timer sends it when the
 * delay is due; further pipelined bytes wait in the input until it is sent.
 * The listen backlog is the kernel's maximum, and main.c raises
 * RLIMIT_NOFILE to the hard limit before this runs. */
#include "fake.h"
#include "aq_alloc.h"
#include "aq_json.h"
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#define IN_CAP (AQ_FAKE_MAX_HEAD + AQ_FAKE_MAX_BODY + 1024u * 1024u)   /* chunk framing slack */
#define BACKLOG 65535   /* listen(2) clamps it to net.core.somaxconn */

typedef struct lconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    aq_buf in;              /* received, not yet answered */
    aq_fake_req req;
    int have_head;
    int continue_sent;
    int busy;               /* a reply is waiting for its delay or being written */
    int close_after;
    int eof;                /* the client shut its write side */
    int closing;            /* handles still to close before the free */
    size_t used;            /* bytes of in the current request occupies */
    aq_buf out;
    char cont[32];          /* "100 Continue" interim reply */
    uv_write_t cwr;
} lconn;

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    long delay_ms;
    const char *log_path;
    unsigned long accepted, open, max_open, requests, answered, waiting, max_waiting, refused, seq;
} S;

static char read_buf[64 * 1024];

static void on_closed(uv_handle_t *h)
{
    lconn *c = h->data;
    if (--c->closing) return;
    aq_buf_dispose(&c->in);
    aq_buf_dispose(&c->out);
    aq_fake_req_dispose(&c->req);
    free(c);
}

static void conn_close(lconn *c)
{
    if (c->closing) return;
    if (c->busy == 1) S.waiting--;
    c->closing = 2;
    S.open--;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

/* {"error":{"message","type","param":null,"code"}} with the status line. */
static void render_error(aq_buf *out, int status, const char *reason, const char *type, const char *code,
                         const char *message, int close)
{
    aq_buf body;
    aq_buf_init(&body);
    aq_buf_adds(&body, "{\"error\":{\"message\":");
    aq_buf_add_json_str(&body, message);
    aq_buf_adds(&body, ",\"type\":");
    aq_buf_add_json_str(&body, type);
    aq_buf_adds(&body, ",\"param\":null,\"code\":");
    if (code) aq_buf_add_json_str(&body, code); else aq_buf_adds(&body, "null");
    aq_buf_adds(&body, "}}");
    aq_buf_reset(out);
    aq_buf_addf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n", status,
                reason, body.len, close ? "Connection: close\r\n" : "");
    aq_buf_add(out, body.p, body.len);
    aq_buf_dispose(&body);
}

/* Is the request target's path (before any '?') .../chat/completions? */
static int completions_path(const char *target)
{
    static const char suffix[] = "/chat/completions";
    size_t n = strcspn(target, "?"), k = sizeof suffix - 1;
    return n >= k && !memcmp(target + n - k, suffix, k);
}

/* The reply to one complete request (body[0..len)) into c->out; 1 for a 200. */
static int render_reply(lconn *c, const char *body, size_t len)
{
    int close = !c->req.keep_alive;
    if (strcmp(c->req.method, "POST") || !completions_path(c->req.target)) {
        char *m = aq_sprintf("Unknown request URL: %.10s %.200s (this fake serves POST .../chat/completions)",
                             c->req.method, c->req.target);
        render_error(&c->out, 404, "Not Found", "invalid_request_error", "unknown_url", m, close);
        free(m);
        return 0;
    }
    cJSON *doc = aq_json_parse_whole(body, len);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(doc, "messages");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(msgs)) {
        render_error(&c->out, 400, "Bad Request", "invalid_request_error", NULL,
                     doc ? "'messages' is a required property" : "We could not parse the JSON body of your request.",
                     close);
        cJSON_Delete(doc);
        return 0;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    unsigned long n = ++S.seq;
    char content[96];
    int clen = snprintf(content, sizeof content, "fake reply %lu (%d messages)", n, cJSON_GetArraySize(msgs));
    long prompt = (long)((len + 3) / 4), completion = (clen + 3) / 4;
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_addf(&b, "{\"id\":\"chatcmpl-fake-%lu\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", n,
                (long long)time(NULL));
    int named = cJSON_IsString(model) && aq_utf8_valid(model->valuestring, strlen(model->valuestring));
    aq_buf_add_json_str(&b, named ? model->valuestring : "agentq-fake");
    aq_buf_adds(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    aq_buf_add_json_str(&b, content);
    aq_buf_addf(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                    "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                prompt, completion, prompt + completion);
    cJSON_Delete(doc);
    aq_buf_reset(&c->out);
    aq_buf_addf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                b.len, close ? "Connection: close\r\n" : c->req.minor == 0 ? "Connection: keep-alive\r\n" : "");
    aq_buf_add(&c->out, b.p, b.len);
    aq_buf_dispose(&b);
    return 1;
}

static void process(lconn *c);

static void on_written(uv_write_t *w, int status)
{
    lconn *c = w->data;
    if (c->closing) return;
    c->busy = 0;
    if (status < 0 || c->close_after) { conn_close(c); return; }
    /* ready for the next request: drop this one's bytes, free an empty input */
    memmove(c->in.p, c->in.p + c->used, c->in.len - c->used);
    c->in.len -= c->used;
    c->used = 0;
    if (c->in.len) c->in.p[c->in.len] = '\0';
    else aq_buf_dispose(&c->in);
    aq_buf_dispose(&c->out);
    aq_fake_req_dispose(&c->req);
    c->have_head = 0;
    c->continue_sent = 0;
    if (c->in.len) process(c);   /* a pipelined request */
    if (!c->busy && c->eof) conn_close(c);   /* nothing more will come */
}

static void send_reply(lconn *c)
{
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) conn_close(c);
}

static void on_due(uv_timer_t *t)
{
    lconn *c = t->data;
    S.waiting--;
    c->busy = 2;
    send_reply(c);
}

/* Answer the request now or when its delay is due. ok: a 200 (delayed). */
static void answer(lconn *c, int ok)
{
    if (c->req.keep_alive == 0) c->close_after = 1;
    if (!ok) {
        S.refused++;
        c->busy = 2;
        send_reply(c);
        return;
    }
    S.answered++;
    c->busy = 1;
    if (++S.waiting > S.max_waiting) S.max_waiting = S.waiting;
    uv_timer_start(&c->timer, on_due, (uint64_t)S.delay_ms, 0);
}

static void refuse(lconn *c, int status, const char *why)
{
    S.requests++;
    const char *reason = status == 413 ? "Content Too Large" : status == 501 ? "Not Implemented" : "Bad Request";
    render_error(&c->out, status, reason, "invalid_request_error", NULL, why, 1);
    c->close_after = 1;
    answer(c, 0);
}

static void on_continue_sent(uv_write_t *w, int status) { (void)w; (void)status; }

/* Tell a client waiting on Expect: 100-continue to send its body (curl
 * asks for it on bodies over 1 KiB and would otherwise wait a second). */
static void send_continue(lconn *c)
{
    if (!c->req.expect_continue || c->continue_sent || c->req.minor == 0) return;
    c->continue_sent = 1;
    snprintf(c->cont, sizeof c->cont, "HTTP/1.1 100 Continue\r\n\r\n");
    uv_buf_t b = uv_buf_init(c->cont, (unsigned)strlen(c->cont));
    c->cwr.data = c;
    if (uv_write(&c->cwr, (uv_stream_t *)&c->tcp, &b, 1, on_continue_sent) < 0) conn_close(c);
}

/* Look at what has arrived; answer a complete request. */
static void process(lconn *c)
{
    const char *why;
    if (c->busy || !c->in.len) return;
    if (!c->have_head) {
        int rc = aq_fake_parse_head(c->in.p, c->in.len, &c->req, &why);
        if (rc == AQ_FAKE_MORE) return;
        if (rc < 0) { refuse(c, -rc, why); return; }
        c->have_head = 1;
    }
    const char *b = c->in.p + c->req.head_len;
    size_t avail = c->in.len - c->req.head_len;
    if (c->req.chunked) {
        size_t used = 0;
        int rc = aq_fake_chunked(b, avail, NULL, &used, &why);
        if (rc < 0) { refuse(c, -rc, why); return; }
        if (rc == AQ_FAKE_MORE) { send_continue(c); return; }
        aq_buf body;
        aq_buf_init(&body);
        aq_fake_chunked(b, avail, &body, &used, &why);
        c->used = c->req.head_len + used;
        S.requests++;
        answer(c, render_reply(c, body.p ? body.p : "", body.len));
        aq_buf_dispose(&body);
        return;
    }
    size_t cl = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
    if (avail < cl) { send_continue(c); return; }
    c->used = c->req.head_len + cl;
    S.requests++;
    answer(c, render_reply(c, b, cl));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    lconn *c = s->data;
    if (n == 0 || c->closing) return;
    if (n < 0) {
        if (n != UV_EOF || !c->busy) { conn_close(c); return; }
        c->eof = 1;   /* answer what was asked, then close */
        uv_read_stop(s);
        return;
    }
    if (c->in.len + (size_t)n > IN_CAP) {
        uv_read_stop(s);
        if (!c->busy) refuse(c, 413, "request too large");
        else conn_close(c);
        return;
    }
    aq_buf_add(&c->in, buf->base, (size_t)n);
    process(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    if (status < 0) { fprintf(stderr, "agentq-fake: accept: %s\n", uv_strerror(status)); return; }
    lconn *c = aq_calloc(1, sizeof *c);
    uv_tcp_init(S.loop, &c->tcp);
    uv_timer_init(S.loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    aq_buf_init(&c->in);
    aq_buf_init(&c->out);
    aq_fake_req_init(&c->req);
    S.open++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) { conn_close(c); return; }
    S.accepted++;
    if (S.open > S.max_open) S.max_open = S.open;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h)) return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&S.listener) conn_close(h->data);
    else if (h->type != UV_TIMER) uv_close(h, NULL);   /* the listener and the signal handles */
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    uv_walk(S.loop, close_any, NULL);
}

static void write_summary(void)
{
    if (!S.log_path) return;
    FILE *f = fopen(S.log_path, "a");
    if (!f) { fprintf(stderr, "agentq-fake: %s: cannot append the summary\n", S.log_path); return; }
    fprintf(f, "{\"mode\":\"llm\",\"delay_ms\":%ld,\"connections\":%lu,\"max_open\":%lu,\"requests\":%lu,"
               "\"answered\":%lu,\"max_waiting\":%lu,\"refused\":%lu}\n",
            S.delay_ms, S.accepted, S.max_open, S.requests, S.answered, S.max_waiting, S.refused);
    fclose(f);
}

int aq_fake_llm_run(int port, long delay_ms, const char *ready_path, const char *log_path)
{
    S.loop = uv_default_loop();
    S.delay_ms = delay_ms;
    S.log_path = log_path;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(S.loop, &S.listener);
    int rc = uv_tcp_bind(&S.listener, (const struct sockaddr *)&a, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&S.listener, BACKLOG, on_connection);
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (!rc) rc = uv_tcp_getsockname(&S.listener, (struct sockaddr *)&bound, &blen);
    if (rc) {
        fprintf(stderr, "agentq-fake: 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
        return 1;
    }
    int actual = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_signal_init(S.loop, &S.sigterm);
    uv_signal_init(S.loop, &S.sigint);
    uv_signal_start(&S.sigterm, on_signal, SIGTERM);
    uv_signal_start(&S.sigint, on_signal, SIGINT);
    if (ready_path && aq_fake_write_ready(ready_path, actual)) return 1;
    fprintf(stderr, "agentq-fake: model on 127.0.0.1:%d, replies after %ld ms\n", actual, delay_ms);
    uv_run(S.loop, UV_RUN_DEFAULT);
    write_summary();
    uv_loop_close(S.loop);
    return 0;
}
