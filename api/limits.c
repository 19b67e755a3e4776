/* limits.c — per-user limits the API's threads share: the request rate (a
 * token bucket, AGENTQ_USER_RATE per second with a burst of twice that) and
 * the number of parked ?wait= long-polls (AGENTQ_USER_MAX_WAITS).
 *
 * DESIGN: one hash table keyed by the exact user id, under one mutex (a
 * lookup is a few instructions; the threads spend their time elsewhere).
 * Every user has an entry of their own, so no user shares or resets another
 * user's bucket. An entry whose bucket has refilled to the burst and that
 * holds no parked wait carries no information (a new entry starts exactly
 * so), and is dropped by a sweep that runs when the table has grown past
 * its buckets: memory follows the users active in the last few seconds.
 *
 * The rate is also shared between API processes (rate_sync.c): an entry
 * counts the requests admitted here since the last flush, and holds the
 * shared bucket's level as last learned from the database, refilled and
 * spent locally between flushes. A request is admitted when both the local
 * bucket and, while flushes succeed, that copy of the shared one have a
 * token. When they stop succeeding (the database is down) the copy goes
 * stale and only the local bucket counts: never refuse everyone, never wait.
 * The parked-wait limit is per API process. */
#include "api.h"
#include "aq_alloc.h"
#include "aq_time.h"
#include <pthread.h>
#include <stdlib.h>

typedef struct entry {
    int64_t user_id;
    double tokens;
    uint64_t last_ms;
    long waits;
    long unsent;          /* admitted since the last flush took the counts */
    int touched;          /* asked since then (the flush refreshes its level) */
    int shared;           /* shared_tokens holds the shared bucket's level */
    double shared_tokens;
    uint64_t shared_ms;
    struct entry *next;
} entry;

typedef struct {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets;     /* a power of two */
    size_t count;
    uint64_t synced_ms;  /* when the last flush's answer came (0: never) */
} table;

#define INITIAL_BUCKETS 4096

void aq_api_limits_init(api_server *srv)
{
    table *tb = aq_calloc(1, sizeof *tb);
    pthread_mutex_init(&tb->mu, NULL);
    tb->nbuckets = INITIAL_BUCKETS;
    tb->buckets = aq_calloc(tb->nbuckets, sizeof *tb->buckets);
    srv->limits = tb;
}

static size_t slot(const table *tb, int64_t user_id)
{
    uint64_t h = (uint64_t)user_id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (tb->nbuckets - 1);
}

static void refill_bucket(const api_server *srv, double *tokens, uint64_t *last_ms, uint64_t now)
{
    double rate = (double)srv->cfg->user_rate_per_s, burst = rate * 2;
    if (now > *last_ms) *tokens += (double)(now - *last_ms) * rate / 1000.0;
    if (*tokens > burst) *tokens = burst;
    *last_ms = now;
}

static void refill(const api_server *srv, entry *e, uint64_t now)
{
    refill_bucket(srv, &e->tokens, &e->last_ms, now);
    if (e->shared) refill_bucket(srv, &e->shared_tokens, &e->shared_ms, now);
}

/* The shared level is worth obeying: flushes are answered (API_RATE_STALE_MS). */
static int shared_fresh(const api_server *srv, const table *tb, uint64_t now)
{
    long stale = srv->cfg->rate_sync_ms * 10 > API_RATE_STALE_MS ? srv->cfg->rate_sync_ms * 10 : API_RATE_STALE_MS;
    return srv->cfg->rate_sync_ms > 0 && tb->synced_ms && tb->synced_ms + (uint64_t)stale >= now;
}

/* Drop entries that say nothing a fresh one would not; grow if still crowded. */
static void sweep(const api_server *srv, table *tb, uint64_t now)
{
    double burst = (double)srv->cfg->user_rate_per_s * 2;
    for (size_t i = 0; i < tb->nbuckets; i++) {
        for (entry **p = &tb->buckets[i]; *p;) {
            entry *e = *p;
            refill(srv, e, now);
            if (e->waits == 0 && e->tokens >= burst && !e->touched && e->unsent == 0 &&
                (!e->shared || e->shared_tokens >= burst)) {
                *p = e->next;
                free(e);
                tb->count--;
            } else {
                p = &e->next;
            }
        }
    }
    if (tb->count <= tb->nbuckets) return;
    size_t old_n = tb->nbuckets;
    entry **old = tb->buckets;
    tb->nbuckets *= 2;
    tb->buckets = aq_calloc(tb->nbuckets, sizeof *tb->buckets);
    for (size_t i = 0; i < old_n; i++) {
        for (entry *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t s = slot(tb, e->user_id);
            e->next = tb->buckets[s];
            tb->buckets[s] = e;
        }
    }
    free(old);
}

/* The user's entry, created full when absent. Caller holds the mutex. */
static entry *find(const api_server *srv, table *tb, int64_t user_id, uint64_t now)
{
    for (entry *e = tb->buckets[slot(tb, user_id)]; e; e = e->next)
        if (e->user_id == user_id) return e;
    if (tb->count >= tb->nbuckets * 2) sweep(srv, tb, now);
    entry *e = aq_calloc(1, sizeof *e);
    e->user_id = user_id;
    e->tokens = (double)srv->cfg->user_rate_per_s * 2;
    e->last_ms = now;
    size_t s = slot(tb, user_id);
    e->next = tb->buckets[s];
    tb->buckets[s] = e;
    tb->count++;
    return e;
}

int aq_api_rate_allow(api_server *srv, int64_t user_id)
{
    table *tb = srv->limits;
    uint64_t now = aq_now_mono_ms();
    pthread_mutex_lock(&tb->mu);
    entry *e = find(srv, tb, user_id, now);
    refill(srv, e, now);
    int shared = e->shared && shared_fresh(srv, tb, now);
    int ok = e->tokens >= 1.0 && (!shared || e->shared_tokens >= 1.0);
    if (ok) {
        e->tokens -= 1.0;
        if (shared) e->shared_tokens -= 1.0;
    }
    if (srv->cfg->rate_sync_ms > 0) {
        e->touched = 1;
        e->unsent += ok;
    }
    pthread_mutex_unlock(&tb->mu);
    return ok;
}

size_t aq_api_rate_collect(api_server *srv, int64_t **users, long **counts)
{
    table *tb = srv->limits;
    size_t n = 0, cap = 0;
    *users = NULL;
    *counts = NULL;
    pthread_mutex_lock(&tb->mu);
    for (size_t i = 0; i < tb->nbuckets; i++) {
        for (entry *e = tb->buckets[i]; e; e = e->next) {
            if (!e->touched) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                *users = aq_realloc(*users, cap * sizeof **users);
                *counts = aq_realloc(*counts, cap * sizeof **counts);
            }
            (*users)[n] = e->user_id;
            (*counts)[n] = e->unsent;
            n++;
            e->touched = 0;
            e->unsent = 0;
        }
    }
    pthread_mutex_unlock(&tb->mu);
    return n;
}

void aq_api_rate_learn(api_server *srv, size_t n, const int64_t *users, const double *levels)
{
    table *tb = srv->limits;
    uint64_t now = aq_now_mono_ms();
    double burst = (double)srv->cfg->user_rate_per_s * 2;
    pthread_mutex_lock(&tb->mu);
    for (size_t i = 0; i < n; i++) {
        entry *e = find(srv, tb, users[i], now);
        /* the database's level, less what was admitted here after the counts were taken */
        e->shared = 1;
        e->shared_tokens = levels[i] - (double)e->unsent;
        if (e->shared_tokens > burst) e->shared_tokens = burst;
        e->shared_ms = now;
    }
    tb->synced_ms = now;
    pthread_mutex_unlock(&tb->mu);
}

int aq_api_wait_acquire(api_server *srv, int64_t user_id)
{
    table *tb = srv->limits;
    pthread_mutex_lock(&tb->mu);
    entry *e = find(srv, tb, user_id, aq_now_mono_ms());
    int ok = e->waits < srv->cfg->user_max_waits;
    if (ok) e->waits++;
    pthread_mutex_unlock(&tb->mu);
    if (ok) atomic_fetch_add(&srv->waits, 1);
    return ok;
}

void aq_api_wait_release(api_server *srv, int64_t user_id)
{
    table *tb = srv->limits;
    pthread_mutex_lock(&tb->mu);
    entry *e = find(srv, tb, user_id, aq_now_mono_ms());
    if (e->waits > 0) e->waits--;
    pthread_mutex_unlock(&tb->mu);
    atomic_fetch_sub(&srv->waits, 1);
}
