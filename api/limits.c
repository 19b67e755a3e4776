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
 * Both limits are per API process (N processes allow N times the rate). */
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
    struct entry *next;
} entry;

typedef struct {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets;     /* a power of two */
    size_t count;
} table;

#define INITIAL_BUCKETS 4096

void api_limits_init(api_server *srv)
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

static void refill(const api_server *srv, entry *e, uint64_t now)
{
    double rate = (double)srv->cfg->user_rate_per_s, burst = rate * 2;
    e->tokens += (double)(now - e->last_ms) * rate / 1000.0;
    if (e->tokens > burst) e->tokens = burst;
    e->last_ms = now;
}

/* Drop entries that say nothing a fresh one would not; grow if still crowded. */
static void sweep(const api_server *srv, table *tb, uint64_t now)
{
    double burst = (double)srv->cfg->user_rate_per_s * 2;
    for (size_t i = 0; i < tb->nbuckets; i++) {
        for (entry **p = &tb->buckets[i]; *p;) {
            entry *e = *p;
            refill(srv, e, now);
            if (e->waits == 0 && e->tokens >= burst) {
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

int api_rate_allow(api_server *srv, int64_t user_id)
{
    table *tb = srv->limits;
    uint64_t now = aq_now_mono_ms();
    pthread_mutex_lock(&tb->mu);
    entry *e = find(srv, tb, user_id, now);
    refill(srv, e, now);
    int ok = e->tokens >= 1.0;
    if (ok) e->tokens -= 1.0;
    pthread_mutex_unlock(&tb->mu);
    return ok;
}

int api_wait_acquire(api_server *srv, int64_t user_id)
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

void api_wait_release(api_server *srv, int64_t user_id)
{
    table *tb = srv->limits;
    pthread_mutex_lock(&tb->mu);
    entry *e = find(srv, tb, user_id, aq_now_mono_ms());
    if (e->waits > 0) e->waits--;
    pthread_mutex_unlock(&tb->mu);
    atomic_fetch_sub(&srv->waits, 1);
}
