/* chatload.c — `agentq-bench chatload --jobs N --workers C`: N POST /v1/chat
 * requests over C concurrent keep-alive connections (libcurl multi), then the
 * accounting check the API promises: every 202 names a job_id that exists
 * exactly once in jobs, and no agent_turn row lacks its 202. The API address
 * and token come from AQ_BENCH_API (http://host:port) and AQ_BENCH_TOKEN; the
 * jobs table is expected to hold no agent_turn rows beforehand. */
#include "bench.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    CURL *h;
    char body[512];
    size_t len;
} conn;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    conn *c = arg;
    size_t k = sz * n;
    if (c->len + k < sizeof c->body) {
        memcpy(c->body + c->len, p, k);
        c->len += k;
        c->body[c->len] = '\0';
    }
    return k;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int aq_bench_cmd_chatload(const aq_bench_opts *o)
{
    const char *api = getenv("AQ_BENCH_API"), *token = getenv("AQ_BENCH_TOKEN");
    if (!api || !token) { fprintf(stderr, "chatload: set AQ_BENCH_API and AQ_BENCH_TOKEN\n"); return 2; }
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s/v1/chat", api);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    long nconn = o->workers, total = o->jobs, sent = 0, done = 0, accepted = 0, other = 0;
    long long *ids = calloc((size_t)total + 1, sizeof *ids);
    conn *cs = calloc((size_t)nconn, sizeof *cs);
    for (long i = 0; i < nconn && sent < total; i++, sent++) {
        cs[i].h = curl_easy_init();
        curl_easy_setopt(cs[i].h, CURLOPT_URL, url);
        curl_easy_setopt(cs[i].h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(cs[i].h, CURLOPT_POSTFIELDS, "{\"message\":\"hello from chatload\"}");
        curl_easy_setopt(cs[i].h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(cs[i].h, CURLOPT_WRITEDATA, &cs[i]);
        curl_easy_setopt(cs[i].h, CURLOPT_PRIVATE, &cs[i]);
        curl_easy_setopt(cs[i].h, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, cs[i].h);
    }
    while (done < total) {
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            conn *c;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            const char *j = strstr(c->body, "\"job_id\":");
            if (msg->data.result == CURLE_OK && status == 202 && j) ids[accepted++] = strtoll(j + 9, NULL, 10);
            else other++;
            done++;
            c->len = 0;
            c->body[0] = '\0';
            curl_multi_remove_handle(m, msg->easy_handle);
            if (sent < total) { curl_multi_add_handle(m, msg->easy_handle); sent++; }
        }
        if (done < total) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (long i = 0; i < nconn; i++) if (cs[i].h) curl_easy_cleanup(cs[i].h);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);

    /* the accounting: sorted 202 ids == sorted agent_turn row ids, no repeats */
    PGconn *db = aq_bench_connect();
    PGresult *r = aq_bench_exec(db, "SELECT id FROM jobs WHERE job_type = 'agent_turn' ORDER BY id", 0, NULL);
    long rows = PQntuples(r);
    qsort(ids, (size_t)accepted, sizeof *ids, cmp_ll);
    long repeats = 0, mismatches = 0;
    for (long i = 1; i < accepted; i++) repeats += ids[i] == ids[i - 1];
    for (long i = 0; i < rows && i < accepted; i++) mismatches += strtoll(PQgetvalue(r, (int)i, 0), NULL, 10) != ids[i];
    PQclear(r);
    PQfinish(db);
    int exact = accepted == total && other == 0 && rows == accepted && repeats == 0 && mismatches == 0;
    printf("chatload requests=%ld accepted=%ld other=%ld rows=%ld repeats=%ld mismatches=%ld exact=%d\n", total,
           accepted, other, rows, repeats, mismatches, exact);
    free(ids);
    free(cs);
    return exact ? 0 : 1;
}
