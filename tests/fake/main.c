/* main.c — bin/agentq-fake: a scriptable HTTP/1.1 server that tests start in
 * place of an external service (an OpenAI-compatible LLM API, Telegram's Bot
 * API) and reach through the project's real libcurl code. Not installed.
 *
 *   agentq-fake --port P --script FILE --log FILE [--ready-file FILE]
 *   agentq-fake --port P --llm-delay-ms D [--log FILE] [--ready-file FILE]
 *
 * The second form is a model, not a script: every POST .../chat/completions
 * gets an OpenAI-shaped reply after D ms, over thousands of connections at
 * once (the agent turn benchmark; format and design in llm.c). Both forms
 * first raise the soft RLIMIT_NOFILE to the hard limit.
 *
 * Listens on 127.0.0.1:P (0: any free port) and, once listening, writes the
 * port and a newline to the ready file (atomically: a temporary file renamed).
 * Runs until SIGTERM or SIGINT, then exits 0. Exits 2 on bad arguments or a
 * script that does not load at start. tests/harness.c (th_fake) drives it.
 *
 * SCRIPT: a JSON array of steps. Each request (any method, any path) is
 * answered by the first step that has servings left and whose "match" is
 * absent or a substring of the request target (path plus query). Fields,
 * all optional; unknown fields are an error (typos must not pass):
 *   "status":   100..999, default 200
 *   "headers":  {"Name": "value" or number}, sent as given; they replace the
 *               defaults Content-Type, Content-Length and Connection
 *   "body":     a string: sent as is, Content-Type text/plain;
 *               an object, array, number or bool: serialized, application/json;
 *               null or absent: empty. (1xx, 204 and 304 never carry a body.)
 *   "raw":      a string sent instead of a whole response, byte for byte (for
 *               malformed replies); the connection then closes unless the step
 *               says "close": false
 *   "delay_ms": wait this long before answering (other connections are served
 *               meanwhile), 0..3600000
 *   "close":    true: close the connection after answering (Connection: close)
 *   "match":    only for requests whose target contains this string
 *   "repeat":   serve this step N times (default 1); -1: forever
 *   "comment":  ignored
 * With no step left for a request: 500 {"error":{"message":"fake: script
 * exhausted"}} (logged with "step": -1 and "error": "script exhausted").
 * The file is checked before every request and reloaded when its device,
 * inode, size or modification time changed; steps are known by index and
 * keep their served counts across reloads, so appending steps (write a new
 * file, rename it over the old one) extends a running script. A file that
 * does not parse is ignored (the old steps stay) and tried again next time.
 *
 * LOG: one JSON object per request, one line each, flushed at once:
 *   {"n": 1, "conn": 1, "ms": 12, "method": "POST", "path": "/v1/chat/completions?x=1",
 *    "headers": {"authorization": "Bearer k", ...}, "body": {...}, "body_len": 42,
 *    "step": 0}
 *   n: 1 for the first request; conn: 1 for the first connection (equal
 *   values mean a reused connection); ms: milliseconds since the fake
 *   started (monotonic); path: the request target as sent; headers: names
 *   lowercased, repeated headers joined with ", "; body: the parsed JSON value
 *   if the whole body is JSON, else the body as a string ("" when none);
 *   body_len: its length in bytes (chunked bodies: decoded); step: the index
 *   served, -1 when none. NUL bytes and bytes that are not UTF-8 are logged
 *   as '?', so every line is valid JSON for any reader. Requests the fake
 *   refuses (400 malformed, 413 over a cap, 501 unknown transfer coding) and
 *   the exhausted script add "error": "reason"; refused requests have no
 *   body fields and carry only the parts parsed before the fault.
 *
 * HTTP: request line, headers, Content-Length or chunked bodies (other
 * transfer codings: 501), Expect: 100-continue, keep-alive (HTTP/1.1 by
 * default, 1.0 on request), pipelining, Connection: close. Caps: head 64 KiB
 * (1000 header lines), body 8 MiB, beyond: 413. Malformed: 400. Both close
 * the connection after a lingering drain, so the client reads the reply.
 *
 * A client that closes its connection while its answer waits (its request
 * aborted) is noted as a line {"conn": N, "ms": M} in FILE.closed beside the
 * log, and the connection closed.
 *
 * DESIGN: one thread, ppoll() over the listening socket and up to 4096
 * connections (the open-file limit is raised to its hard limit), each a
 * small state machine: READ (parse what has arrived) ->
 * WAIT (response rendered at once, sent when its delay is due) -> WRITE ->
 * back to READ, or LINGER (write side shut, input drained and dropped for
 * up to 2 s) before closing. The step is chosen and logged when the request
 * is complete, so the log order is the order requests arrived. */
#include "fake.h"
#include "aq_alloc.h"
#include "aq_json.h"
#include "aq_time.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define IN_CAP (AQ_FAKE_MAX_HEAD + AQ_FAKE_MAX_BODY + 1024u * 1024u)   /* chunk framing slack */
#define READ_SIZE (64u * 1024u)
#define LINGER_MS 2000
#define LINGER_BYTES (64u * 1024u * 1024u)

enum { C_READ, C_WAIT, C_WRITE, C_LINGER };

typedef struct conn {
    int fd;
    unsigned id;
    int state;
    int eof;                /* the client shut its write side */
    aq_buf in;              /* received, not yet answered */
    aq_fake_req req;
    int have_head;          /* req holds the current request's parsed head */
    int continue_sent;
    aq_buf out;             /* the rendered response */
    size_t out_off;
    int close_after;
    size_t used;            /* bytes of in the current request occupies */
    uint64_t at;            /* WAIT: send time; LINGER: give-up time */
    size_t drained;
} conn;

static volatile sig_atomic_t stopping;
static conn *conns[MAX_CONNS];
static unsigned conn_seq;
static unsigned long req_seq;
static uint64_t t_start;
static aq_fake_script script;
static FILE *log_file;
static FILE *closed_file;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void usage(FILE *f)
{
    fprintf(f, "usage: agentq-fake --port P --script FILE --log FILE [--ready-file FILE]\n"
               "       agentq-fake --port P --llm-delay-ms D [--log FILE] [--ready-file FILE]\n"
               "A scriptable HTTP/1.1 server for tests (format: tests/fake/main.c), or a\n"
               "model that answers chat completions after D ms (tests/fake/llm.c).\n");
}

static void conn_close(int slot)
{
    conn *c = conns[slot];
    close(c->fd);
    aq_buf_dispose(&c->in);
    aq_buf_dispose(&c->out);
    aq_fake_req_dispose(&c->req);
    free(c);
    conns[slot] = NULL;
}

/* body[0..len) as one JSON value with nothing but whitespace after it, or
 * NULL. The body is not NUL-terminated (pipelined bytes may follow). */
static cJSON *parse_whole(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j || !end) { cJSON_Delete(j); return NULL; }
    for (; end < body + len; end++)
        if (!strchr(" \t\r\n", *end)) { cJSON_Delete(j); return NULL; }
    return j;
}

/* One line in the request log. body NULL: a refused request (no body fields). */
static void log_request(conn *c, const char *body, size_t blen, int step, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)++req_seq);
    cJSON_AddNumberToObject(o, "conn", c->id);
    cJSON_AddNumberToObject(o, "ms", (double)(aq_now_mono_ms() - t_start));
    if (c->req.method[0]) cJSON_AddStringToObject(o, "method", c->req.method);
    if (c->req.target) cJSON_AddStringToObject(o, "path", c->req.target);
    if (c->req.headers) cJSON_AddItemReferenceToObject(o, "headers", c->req.headers);
    if (body) {
        cJSON *j = NULL;
        if (blen && aq_utf8_valid(body, blen)) j = parse_whole(body, blen);
        if (!j) {
            char *s = aq_malloc(blen + 1);
            for (size_t i = 0; i < blen; i++) s[i] = body[i] ? body[i] : '?';
            s[blen] = '\0';
            aq_utf8_sanitize(s);
            j = cJSON_CreateString(s);
            free(s);
        }
        cJSON_AddItemToObject(o, "body", j);
        cJSON_AddNumberToObject(o, "body_len", (double)blen);
    }
    cJSON_AddNumberToObject(o, "step", step);
    if (error) cJSON_AddStringToObject(o, "error", error);
    char *line = cJSON_PrintUnformatted(o);
    if (line) {
        fputs(line, log_file);
        fputc('\n', log_file);
        fflush(log_file);
    }
    free(line);
    cJSON_Delete(o);
}

/* Answer with the fake's own error and close afterwards. */
static void refuse(conn *c, int status, const char *why)
{
    fprintf(stderr, "agentq-fake: conn %u: %d %s\n", c->id, status, why);
    log_request(c, NULL, 0, -1, why);
    aq_fake_render_error(status, why, 1, &c->out);
    c->out_off = 0;
    c->close_after = 1;
    c->state = C_WAIT;
    c->at = aq_now_mono_ms();
}

static void answer(conn *c, const char *body, size_t blen)
{
    char err[512];
    if (aq_fake_script_refresh(&script, err, sizeof err) < 0)
        fprintf(stderr, "agentq-fake: script not reloaded: %s\n", err);
    int i = aq_fake_script_pick(&script, c->req.target);
    const aq_fake_step *st = i >= 0 ? &script.steps[i] : NULL;
    if (!st) fprintf(stderr, "agentq-fake: script exhausted (%s %s)\n", c->req.method, c->req.target);
    log_request(c, body, blen, i, st ? NULL : "script exhausted");
    aq_fake_render(st, &c->req, &c->out, &c->close_after);
    c->out_off = 0;
    c->state = C_WAIT;
    c->at = aq_now_mono_ms() + (uint64_t)(st ? st->delay_ms : 0);
}

/* Tell a client waiting on Expect: 100-continue to send its body. */
static void send_continue(conn *c)
{
    if (!c->req.expect_continue || c->continue_sent || c->req.minor == 0) return;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_sent = 1;
    if (send(c->fd, msg, sizeof msg - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof msg - 1))
        fprintf(stderr, "agentq-fake: conn %u: could not send 100 Continue\n", c->id);
}

/* Look at what has arrived; answer a complete request. */
static void process(conn *c)
{
    const char *why;
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
        if (rc == AQ_FAKE_MORE && c->in.len >= IN_CAP) {
            rc = AQ_FAKE_TOO_LARGE;
            why = "request body too large";
        }
        if (rc < 0) { refuse(c, -rc, why); return; }
        if (rc == AQ_FAKE_MORE) { send_continue(c); return; }
        aq_buf body;
        aq_buf_init(&body);
        aq_fake_chunked(b, avail, &body, &used, &why);
        c->used = c->req.head_len + used;
        answer(c, body.p ? body.p : "", body.len);
        aq_buf_dispose(&body);
        return;
    }
    size_t cl = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
    if (avail < cl) { send_continue(c); return; }
    c->used = c->req.head_len + cl;
    answer(c, b, cl);
}

/* The response is out: linger and close, or ready the next request. */
static void finished(int slot)
{
    conn *c = conns[slot];
    if (c->close_after) {
        if (c->eof) { conn_close(slot); return; }
        shutdown(c->fd, SHUT_WR);
        aq_buf_reset(&c->in);
        c->state = C_LINGER;
        c->at = aq_now_mono_ms() + LINGER_MS;
        c->drained = 0;
        return;
    }
    memmove(c->in.p, c->in.p + c->used, c->in.len - c->used);
    c->in.len -= c->used;
    c->in.p[c->in.len] = '\0';
    c->used = 0;
    c->have_head = 0;
    c->continue_sent = 0;
    aq_fake_req_dispose(&c->req);
    aq_buf_reset(&c->out);
    c->out_off = 0;
    c->state = C_READ;
    if (c->in.len) process(c);   /* a pipelined request */
    if (c->state == C_READ && c->eof) conn_close(slot);
}

static void do_write(int slot)
{
    conn *c = conns[slot];
    while (c->out_off < c->out.len) {
        ssize_t k = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (k > 0) { c->out_off += (size_t)k; continue; }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { c->state = C_WRITE; return; }
        conn_close(slot);   /* the client went away */
        return;
    }
    finished(slot);
}

static void do_read(int slot)
{
    conn *c = conns[slot];
    char buf[READ_SIZE];
    size_t room = c->state == C_LINGER ? sizeof buf : IN_CAP - c->in.len;
    if (room > sizeof buf) room = sizeof buf;
    if (room == 0) { refuse(c, 413, "request too large"); return; }
    ssize_t k = recv(c->fd, buf, room, 0);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (k < 0) { conn_close(slot); return; }
    if (c->state == C_LINGER) {
        c->drained += (size_t)k;
        if (k == 0 || c->drained > LINGER_BYTES) conn_close(slot);
        return;
    }
    if (k == 0) {
        c->eof = 1;
        if (c->in.len == 0) { conn_close(slot); return; }
    } else {
        aq_buf_add(&c->in, buf, (size_t)k);
    }
    process(c);
    if (c->state == C_READ && c->eof) {
        fprintf(stderr, "agentq-fake: conn %u: closed mid-request (%zu bytes)\n", c->id, c->in.len);
        conn_close(slot);
    }
}

static void do_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "agentq-fake: accept: %s\n", strerror(errno));
            return;
        }
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
            if (!conns[i]) slot = i;
        if (slot < 0) {
            fprintf(stderr, "agentq-fake: %d connections open, refusing one\n", MAX_CONNS);
            close(fd);
            continue;
        }
        conn *c = aq_calloc(1, sizeof *c);
        c->fd = fd;
        c->id = ++conn_seq;
        aq_buf_init(&c->in);
        aq_buf_init(&c->out);
        aq_fake_req_init(&c->req);
        conns[slot] = c;
    }
}

static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("agentq-fake: socket"); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, MAX_CONNS) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        fprintf(stderr, "agentq-fake: 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

int aq_fake_write_ready(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { fprintf(stderr, "agentq-fake: %s: %s\n", tmp, strerror(errno)); return -1; }
    fprintf(f, "%d\n", port);
    if (fclose(f) || rename(tmp, path)) {
        fprintf(stderr, "agentq-fake: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The client closed while its answer waited: note it, close. */
static void client_left(int slot)
{
    conn *c = conns[slot];
    fprintf(stderr, "agentq-fake: conn %u: closed by the client before the answer\n", c->id);
    if (closed_file) {
        fprintf(closed_file, "{\"conn\": %u, \"ms\": %llu}\n", c->id,
                (unsigned long long)(aq_now_mono_ms() - t_start));
        fflush(closed_file);
    }
    conn_close(slot);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* One ppoll round: wait for sockets or the next timer, then act. */
static int loop_once(int lfd, const sigset_t *waitmask)
{
    struct pollfd pfd[MAX_CONNS + 1];
    int slot_of[MAX_CONNS + 1];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
    uint64_t now = aq_now_mono_ms(), next = UINT64_MAX;
    for (int i = 0; i < MAX_CONNS; i++) {
        conn *c = conns[i];
        if (!c) continue;
        short ev = c->state == C_WRITE ? POLLOUT : c->state == C_WAIT ? (c->eof ? 0 : POLLRDHUP) : POLLIN;
        if (c->state == C_WAIT || c->state == C_LINGER) next = c->at < next ? c->at : next;
        slot_of[n] = i;
        pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
    }
    struct timespec ts, *tsp = NULL;
    if (next != UINT64_MAX) {
        uint64_t ms = next > now ? next - now : 0;
        ts.tv_sec = (time_t)(ms / 1000);
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        tsp = &ts;
    }
    int r = ppoll(pfd, (nfds_t)n, tsp, waitmask);
    if (r < 0) {
        if (errno == EINTR) return 0;
        perror("agentq-fake: ppoll");
        return -1;
    }
    if (pfd[0].revents & POLLIN) do_accept(lfd);
    for (int k = 1; k < n; k++) {
        int i = slot_of[k];
        conn *c = conns[i];
        short re = pfd[k].revents;
        if (!c || !re) continue;
        if (c->state == C_WAIT && !c->eof && (re & (POLLRDHUP | POLLHUP | POLLERR))) client_left(i);
        else if (c->state == C_WRITE && (re & POLLOUT)) do_write(i);
        else if (c->state != C_WAIT && c->state != C_WRITE && (re & (POLLIN | POLLHUP | POLLERR)))
            do_read(i);
        else if (re & (POLLHUP | POLLERR)) conn_close(i);
    }
    now = aq_now_mono_ms();
    for (int i = 0; i < MAX_CONNS; i++) {
        conn *c = conns[i];
        if (c && c->state == C_WAIT && c->at <= now) do_write(i);
        else if (c && c->state == C_LINGER && c->at <= now) conn_close(i);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *script_path = NULL, *log_path = NULL, *ready_path = NULL;
    long port = -1, llm_delay = -1;
    int rc = 2, lfd = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!v) { usage(stderr); return 2; }
        char *end;
        if (!strcmp(a, "--port")) {
            port = strtol(v, &end, 10);
            if (*end || !*v || port < 0 || port > 65535) {
                fprintf(stderr, "agentq-fake: bad --port %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--llm-delay-ms")) {
            llm_delay = strtol(v, &end, 10);
            if (*end || !*v || llm_delay < 0 || llm_delay > 3600000) {
                fprintf(stderr, "agentq-fake: bad --llm-delay-ms %s (0..3600000)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--script")) {
            script_path = v;
        } else if (!strcmp(a, "--log")) {
            log_path = v;
        } else if (!strcmp(a, "--ready-file")) {
            ready_path = v;
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (port < 0 || (llm_delay < 0 && (!script_path || !log_path)) || (llm_delay >= 0 && script_path)) {
        usage(stderr);
        return 2;
    }
    struct rlimit nofile;   /* one descriptor per connection: as many as allowed */
    if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    signal(SIGPIPE, SIG_IGN);
    if (llm_delay >= 0) return aq_fake_llm_run((int)port, llm_delay, ready_path, log_path);

    t_start = aq_now_mono_ms();
    aq_fake_script_init(&script, script_path);
    char err[512];
    if (aq_fake_script_refresh(&script, err, sizeof err) < 0) {
        fprintf(stderr, "agentq-fake: %s\n", err);
        goto fail;
    }
    log_file = fopen(log_path, "a");
    if (!log_file) { fprintf(stderr, "agentq-fake: %s: %s\n", log_path, strerror(errno)); goto fail; }
    char closed_path[4200];
    snprintf(closed_path, sizeof closed_path, "%s.closed", log_path);
    closed_file = fopen(closed_path, "a");
    raise_fd_limit();

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);   /* delivered only inside ppoll: no lost wake-up */
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int bound = 0;
    lfd = listen_on((int)port, &bound);
    if (lfd < 0) goto fail;
    if (ready_path && aq_fake_write_ready(ready_path, bound)) goto fail;
    fprintf(stderr, "agentq-fake: listening on 127.0.0.1:%d, %d steps\n", bound, script.n);

    rc = 1;
    while (!stopping)
        if (loop_once(lfd, &waitmask)) goto fail;
    rc = 0;
fail:
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i]) conn_close(i);
    if (lfd >= 0) close(lfd);
    if (log_file) fclose(log_file);
    if (closed_file) fclose(closed_file);
    aq_fake_script_dispose(&script);
    return rc;
}
