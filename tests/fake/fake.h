/* fake.h — bin/agentq-fake, the scriptable HTTP/1.1 server tests put in place
 * of external services (an OpenAI-compatible LLM API, Telegram's Bot API).
 * main.c runs the poll() loop over the connections and writes the request
 * log; http.c parses requests (pure functions over a byte buffer); script.c
 * loads the script of response steps, picks the step a request gets and
 * renders the response bytes. The script and log formats are described in
 * main.c. llm.c is the --llm-delay-ms mode: a model answering after a fixed
 * delay over thousands of connections (libuv), for the benchmark. Nothing
 * here is linked into the product binaries. */
#ifndef AQ_FAKE_H
#define AQ_FAKE_H
#include "aq_buf.h"
#include <cJSON.h>
#include <stddef.h>
#include <sys/types.h>

#define AQ_FAKE_MAX_HEAD (64u * 1024u)           /* request line + headers */
#define AQ_FAKE_MAX_BODY (8u * 1024u * 1024u)    /* decoded request body */
#define AQ_FAKE_MAX_HEADERS 1000                 /* header lines in one request */

/* ---- http.c: parsing requests ---- */

/* What aq_fake_parse_head and aq_fake_chunked return. */
enum {
    AQ_FAKE_MORE = 0,           /* incomplete: read more bytes and call again */
    AQ_FAKE_DONE = 1,           /* complete */
    AQ_FAKE_BAD = -400,         /* malformed: answer 400 and close */
    AQ_FAKE_TOO_LARGE = -413,   /* over a cap: answer 413 and close */
    AQ_FAKE_UNSUPPORTED = -501  /* a transfer coding other than chunked */
};

/* A parsed request head. Caller-owned: aq_fake_req_init / aq_fake_req_dispose. */
typedef struct aq_fake_req {
    char method[32];
    char *target;               /* request target as sent ("/v1/x?a=1"), heap */
    int minor;                  /* HTTP/1.minor */
    cJSON *headers;             /* object: lowercased name -> value; repeats joined by ", " */
    long long content_length;   /* -1 when absent */
    int chunked;                /* Transfer-Encoding: chunked */
    int keep_alive;             /* the connection stays open after the response */
    int expect_continue;        /* Expect: 100-continue */
    int head_only;              /* HEAD: no body in the response */
    size_t head_len;            /* bytes up to and including the empty line */
} aq_fake_req;

void aq_fake_req_init(aq_fake_req *r);
void aq_fake_req_dispose(aq_fake_req *r);

/* Parse the head at the start of buf[0..len). Returns AQ_FAKE_DONE (req
 * filled), AQ_FAKE_MORE, or an error with *why set to a static reason. A bad
 * request line is reported as soon as that line is complete, before the rest
 * of the head arrives. A Content-Length over AQ_FAKE_MAX_BODY is
 * AQ_FAKE_TOO_LARGE. req is reset on every call; on an error, method and
 * target may already be filled (for the log). */
int aq_fake_parse_head(const char *buf, size_t len, aq_fake_req *req, const char **why);

/* Decode a chunked body at the start of buf[0..len). out NULL: only check
 * for completeness (cheap to repeat as bytes arrive); otherwise the decoded
 * bytes are appended to out. Returns AQ_FAKE_DONE with *used = the encoded
 * length (trailers included), AQ_FAKE_MORE, AQ_FAKE_BAD or AQ_FAKE_TOO_LARGE
 * (decoded size over AQ_FAKE_MAX_BODY), with *why set on an error. */
int aq_fake_chunked(const char *buf, size_t len, aq_buf *out, size_t *used, const char **why);

/* ---- script.c: the steps ---- */

typedef struct aq_fake_step {
    int status;
    cJSON *headers;         /* the step's "headers" object (borrowed from the script), or NULL */
    char *body;             /* serialized body (heap, may be empty) */
    size_t body_len;
    const char *body_type;  /* Content-Type unless headers name one */
    char *raw;              /* exact bytes to send instead, or NULL */
    long delay_ms;
    int close;              /* 1 close after, 0 keep open, -1 unset (raw: close) */
    char *match;            /* substring the target must contain, or NULL */
    long repeat;            /* times to serve; -1 forever */
} aq_fake_step;

/* The script file and how much of each step has been served. Caller-owned:
 * aq_fake_script_init / aq_fake_script_dispose. */
typedef struct aq_fake_script {
    char *path;
    cJSON *root;
    aq_fake_step *steps;
    int n;
    long *served;           /* per step index; survives reloads */
    int served_cap;
    dev_t dev;              /* what the loaded file looked like */
    ino_t ino;
    off_t size;
    long long mtime_ns;
} aq_fake_script;

void aq_fake_script_init(aq_fake_script *s, const char *path);
void aq_fake_script_dispose(aq_fake_script *s);
/* Load the file if it changed since the last successful load (device, inode,
 * size or mtime differ); the first call always loads. On a read or parse
 * error the loaded steps stay as they were, err says why and -1 is returned
 * (the next call tries again); 1 when reloaded, 0 when unchanged. */
int aq_fake_script_refresh(aq_fake_script *s, char *err, size_t errlen);
/* The first step with servings left whose match is absent or contained in
 * target; counts the serving and returns its index, or -1 if none. */
int aq_fake_script_pick(aq_fake_script *s, const char *target);

/* Render a response into out. st NULL: a 500 "fake: script exhausted" reply.
 * *close_after is set when the connection must close after sending (the
 * step says so, a raw step unless it says "close": false, or the request
 * did not keep the connection alive). */
void aq_fake_render(const aq_fake_step *st, const aq_fake_req *req, aq_buf *out, int *close_after);
/* Render the fake's own error reply (400, 413, 500, 501) with a JSON body
 * {"error":{"message":"fake: MSG"}} and, when close, Connection: close. */
void aq_fake_render_error(int status, const char *msg, int close, aq_buf *out);

/* ---- main.c and llm.c ---- */

/* Write the port and a newline to path, atomically (a temporary file renamed). */
int aq_fake_write_ready(const char *path, int port);
/* The --llm-delay-ms mode (llm.c): serve until SIGTERM/SIGINT; 0 on a clean
 * stop, 1 if it could not listen or write the ready file. */
int aq_fake_llm_run(int port, long delay_ms, const char *ready_path, const char *log_path);

#endif
