/* http1.c — the smallest HTTP/1.1 client the API producer needs: one
 * request at a time per keep-alive connection, its bytes built once, and a
 * reader that knows where a response ends (Content-Length or chunked).
 *
 * Why not libcurl: the producer shares the machine's cores with the worker
 * it measures, and libcurl's multi interface cost ~60 µs of CPU per request
 * (its bookkeeping, a poll over every transfer, an allocation per request),
 * ~15 % of a core at 2,600 requests/s in the steady-state benchmark. A write
 * and a read per request cost a fraction of that (docs/BENCHMARKS.md). The
 * API's correctness is tested elsewhere with real clients (libcurl in the
 * tests, wrk and browsers); this only has to count 202s honestly, so
 * anything it cannot parse counts as a refusal and the connection is
 * dropped. */
#include "bench.h"
#include "aq_alloc.h"
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int aq_http1_target(const char *base, aq_http1_addr *a)
{
    char host[128], port[16] = "80";
    if (strncmp(base, "http://", 7) != 0) return -1;
    const char *h = base + 7, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    const char *end = colon && (!slash || colon < slash) ? colon : slash ? slash : h + strlen(h);
    if ((size_t)(end - h) >= sizeof host || end == h) return -1;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    if (*end == ':') {
        size_t n = strcspn(end + 1, "/");
        if (n == 0 || n >= sizeof port) return -1;
        memcpy(port, end + 1, n);
        port[n] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0) return -1;
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    a->family = res->ai_family;
    snprintf(a->hostport, sizeof a->hostport, "%s:%s", host, port);
    freeaddrinfo(res);
    return 0;
}

char *aq_http1_request(const aq_http1_addr *a, const char *path, const char *token, const char *body, size_t *len)
{
    size_t n = strlen(path) + strlen(a->hostport) + strlen(token) + strlen(body) + 200;
    char *r = aq_malloc(n);
    int k = snprintf(r, n,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     path, a->hostport, token, strlen(body), body);
    *len = (size_t)k;
    return r;
}

int aq_http1_connect(const aq_http1_addr *a)
{
    int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* the value of header name in head (lines ending CRLF), or NULL */
static const char *header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *l = memmem(head, len, "\r\n", 2); l && l + 2 < head + len;
         l = memmem(l + 2, (size_t)(head + len - (l + 2)), "\r\n", 2)) {
        const char *s = l + 2, *e = memmem(s, (size_t)(head + len - s), "\r\n", 2);
        if (!e) e = head + len;
        if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
            const char *v = s + nl + 1;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            *vlen = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

/* the length of the chunked body at b (up to its last CRLF): 0 while
 * incomplete, -1 if malformed */
static long chunked_len(const char *b, const char *end)
{
    const char *p = b;
    for (;;) {
        char *stop;
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!crlf) return 0;
        unsigned long n = strtoul(p, &stop, 16);
        if (stop == p || n > (1ul << 24)) return -1;
        if ((size_t)(end - (crlf + 2)) < n + 2) return 0;
        p = crlf + 2 + n + 2;   /* after n == 0 (no trailers) that is the terminating CRLF */
        if (n == 0) return p - b;
    }
}

int aq_http1_response(const char *buf, size_t len, int *status, int *keep_alive)
{
    const char *hend = memmem(buf, len, "\r\n\r\n", 4);
    if (!hend) return len > 16384 ? -1 : 0;
    size_t hlen = (size_t)(hend - buf) + 2;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    size_t vlen;
    const char *v = header(buf, hlen, "Connection", &vlen);
    *keep_alive = !(v && vlen >= 5 && strncasecmp(v, "close", 5) == 0) && buf[7] == '1';
    const char *body = hend + 4, *end = buf + len;
    if ((v = header(buf, hlen, "Transfer-Encoding", &vlen)) && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0) {
        long n = chunked_len(body, end);
        return n <= 0 ? (int)n : (int)(body - buf + n);
    }
    if ((v = header(buf, hlen, "Content-Length", &vlen))) {
        size_t n = strtoul(v, NULL, 10);
        if ((size_t)(end - body) < n) return 0;
        return (int)(body - buf + n);
    }
    if (*status == 204 || *status == 304 || *status / 100 == 1) return (int)(body - buf);
    return -1;   /* a body that ends at the close: not something the API sends */
}
