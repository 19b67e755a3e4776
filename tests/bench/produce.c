/* produce.c — producers at a fixed rate for bin/agentq-bench (steady.c and
 * soak.c): one inserting batches through SQL, one POSTing single requests to
 * the API over keep-alive connections (see aq_bench_producer in bench.h).
 * Both are paced on the monotonic clock; a producer that falls behind its
 * schedule catches up at once, so the rate reached is counted, not assumed. */
#include "bench.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
    for (;;) {
        long done = atomic_load(&p->produced);
        /* the moment the next batch is due */
        uint64_t at = p->t0_us + (uint64_t)((double)(done + p->batch) * 1e6 / p->rate);
        if (at >= p->end_us) break;
        aq_bench_sleep_until_us(at);
        PQclear(aq_bench_exec(db, p->sql, 1, params));
        atomic_fetch_add(&p->produced, p->batch);
    }
    PQfinish(db);
    return NULL;
}

static size_t discard(char *ptr, size_t size, size_t n, void *arg) { return size * n; }

void *aq_bench_api_producer(void *arg)
{
    aq_bench_producer *p = arg;
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s%s", p->api, p->path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", p->token);
    CURLM *m = curl_multi_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    CURL *idle[API_CONNS];
    int nidle = 0, inflight = 0;
    for (int i = 0; i < API_CONNS; i++) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        idle[nidle++] = h;
    }
    long sent = 0;
    for (;;) {
        uint64_t now = aq_bench_mono_us();
        if (now >= p->end_us && !inflight) break;
        long want = now < p->end_us ? due(p, now) : sent;
        while (sent < want && nidle) {
            curl_multi_add_handle(m, idle[--nidle]);
            inflight++;
            sent++;
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status == 202) atomic_fetch_add(&p->produced, 1);
            else atomic_fetch_add(&p->refused, 1);
            curl_multi_remove_handle(m, msg->easy_handle);
            idle[nidle++] = msg->easy_handle;
            inflight--;
        }
        /* wake for an answer or the next request due, never spinning: with
         * every connection busy only an answer can help */
        int wait_ms = 1;
        if (!nidle) wait_ms = 100;
        else if (sent < want) wait_ms = 0;
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    for (int i = 0; i < nidle; i++) curl_easy_cleanup(idle[i]);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    return NULL;
}
