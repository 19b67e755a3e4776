/* produce.c — producers at a fixed rate for bin/agentq-bench (steady.c and
 * soak.c): one inserting batches through SQL, one POSTing single requests to
 * the API over keep-alive connections (see aq_bench_producer in bench.h).
 * Both are paced on the monotonic clock; a producer that falls behind its
 * schedule catches up at once, so the rate reached is counted, not assumed. */
#include "bench.h"
#include "aq_alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define API_CONNS 64

uint64_t aq_bench_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void aq_bench_sleep_until_us(uint64_t t)
{
    uint64_t now = aq_bench_mono_us();
    if (t <= now) return;
    struct timespec ts = {(time_t)((t - now) / 1000000u), (long)((t - now) % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

/* requests the schedule wants sent by now */
static long due(const aq_bench_producer *p, uint64_t now)
{
    return (long)(p->rate * (double)(now - p->t0_us) / 1e6);
}

void *aq_bench_sql_producer(void *arg)
{
    aq_bench_producer *p = arg;
    PGconn *db = aq_bench_connect();
    char batch[24];
    snprintf(batch, sizeof batch, "%ld", p->batch);
    const char *params[] = {batch};
    /* prepared once, as an application's insert would be: parsing it afresh
     * was an eighth of this session's CPU, on the cores the worker needs */
    aq_bench_prepare(db, "produce", p->sql, 1);
    for (;;) {
        long done = atomic_load(&p->produced);
        /* the moment the next batch is due */
        uint64_t at = p->t0_us + (uint64_t)((double)(done + p->batch) * 1e6 / p->rate);
        if (at >= p->end_us) break;
        aq_bench_sleep_until_us(at);
        PQclear(aq_bench_exec_prepared(db, "produce", p->sql, 1, params));
        atomic_fetch_add(&p->produced, p->batch);
    }
    PQfinish(db);
    return NULL;
}

/* one keep-alive connection of the API producer (http1.c) */
typedef struct api_conn {
    int fd;      /* -1: not connected (opened when next needed) */
    int busy;    /* a request is out on it */
    size_t len;  /* bytes of the response read so far */
    char buf[8192];
} api_conn;

static void api_drop(int ep, api_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

/* send the request on connection i, opening it if need be; 0 when it is out */
static int api_send(int ep, const aq_http1_addr *a, api_conn *c, int i, const char *req, size_t len)
{
    if (c->fd < 0) {
        if ((c->fd = aq_http1_connect(a)) < 0) return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = send(c->fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            api_drop(ep, c);
            return -1;
        }
        off += (size_t)n;
    }
    c->busy = 1;
    c->len = 0;
    return 0;
}

void *aq_bench_api_producer(void *arg)
{
    aq_bench_producer *p = arg;
    aq_http1_addr a;
    if (aq_http1_target(p->api, &a) != 0) {
        fprintf(stderr, "agentq-bench: cannot resolve %s\n", p->api);
        exit(1);
    }
    size_t reqlen;
    char *req = aq_http1_request(&a, p->path, p->token, p->body, &reqlen);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    api_conn *c = aq_calloc(API_CONNS, sizeof *c);
    int idle[API_CONNS], nidle = 0, inflight = 0;
    if (ep < 0) abort();
    for (int i = API_CONNS - 1; i >= 0; i--) {   /* LIFO: the same few connections carry a steady rate */
        c[i].fd = -1;
        idle[nidle++] = i;
    }
    long sent = 0;
    for (;;) {
        uint64_t now = aq_bench_mono_us();
        if (now >= p->end_us && !inflight) break;
        long want = now < p->end_us ? due(p, now) : sent;
        while (sent < want && nidle) {
            int i = idle[--nidle];
            sent++;
            if (api_send(ep, &a, &c[i], i, req, reqlen) == 0) {
                inflight++;
                continue;
            }
            atomic_fetch_add(&p->refused, 1);   /* the API is not there: try again at the next wake */
            idle[nidle++] = i;
            break;
        }
        /* wake for an answer or the next request due, never spinning: with
         * every connection busy only an answer can help */
        int wait_ms = 100;
        if (nidle && now < p->end_us) {
            uint64_t next = p->t0_us + (uint64_t)((double)(sent + 1) * 1e6 / p->rate);
            wait_ms = sent < want || next <= now ? 0 : (int)((next - now + 999) / 1000);
            if (wait_ms > 100) wait_ms = 100;
        }
        struct epoll_event evs[API_CONNS];
        int n = epoll_wait(ep, evs, API_CONNS, wait_ms);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            api_conn *k = &c[i];
            if (k->fd < 0) continue;
            ssize_t r = read(k->fd, k->buf + k->len, sizeof k->buf - k->len);
            int status = 0, keep = 0, done = r > 0 ? aq_http1_response(k->buf, k->len + (size_t)r, &status, &keep) : -1;
            if (r > 0) k->len += (size_t)r;
            if (done == 0 && k->len < sizeof k->buf) continue;   /* more to come */
            int was_busy = k->busy;
            if (was_busy) {
                atomic_fetch_add(done > 0 && status == 202 ? &p->produced : &p->refused, 1);
                inflight--;
                k->busy = 0;
            }
            /* a closed, unreadable or over-long answer, or one the server
             * closes after, or bytes nobody asked for: open afresh next time */
            if (done <= 0 || !keep || (size_t)done != k->len || !was_busy) api_drop(ep, k);
            if (was_busy) idle[nidle++] = i;
        }
    }
    for (int i = 0; i < API_CONNS; i++)
        if (c[i].fd >= 0) close(c[i].fd);
    free(c);
    free(req);
    close(ep);
    return NULL;
}
