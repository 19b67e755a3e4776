/* waiters.c — ?wait= long-polls. A call whose job is still queued or running
 * is parked here (no thread held) until the job's id arrives on 'aq_done'
 * (sent by whoever finishes it: in the same transaction, or by a worker
 * right after its completion committed, sql/024) or its wait runs out; then
 * the caller's callback answers it (jobs_api.c passes its plain GET, so this
 * file calls nothing of the job endpoints). LISTEN is on the same connection
 * as the GET's query, and the notification is sent at or after the commit,
 * so a completion the query's snapshot did not see is always notified after
 * its result: no wake-up is lost (but for a worker dying between its commit
 * and the notification: then the wait runs out and answers the job's state). */
#include "api.h"
#include "aq_alloc.h"
#include <stdlib.h>

#define BUCKETS 1024

typedef struct waiter {
    api_call *c;
    struct waiter *next;
} waiter;

typedef struct {
    waiter *buckets[BUCKETS];
} table;

void aq_api_waiters_thread_init(api_thread *t) { t->waiters = aq_calloc(1, sizeof(table)); }

static waiter **bucket(api_thread *t, int64_t id) { return &((table *)t->waiters)->buckets[(uint64_t)id % BUCKETS]; }

/* Take c off the table (if there) and answer it through its callback. */
static void wake(api_call *c)
{
    for (waiter **w = bucket(c->t, c->id); *w; w = &(*w)->next) {
        if ((*w)->c != c) continue;
        waiter *dead = *w;
        *w = dead->next;
        free(dead);
        break;
    }
    uv_timer_stop(c->wait_timer);
    c->wait_s = 0;
    if (!c->req) aq_api_call_free(c);
    else c->wait_done(c);
}

static void on_timeout(uv_timer_t *timer) { wake(timer->data); }

void aq_api_wait_for_job(api_call *c, void (*done)(api_call *c))
{
    waiter *w = aq_calloc(1, sizeof *w);
    w->c = c;
    c->wait_done = done;
    waiter **b = bucket(c->t, c->id);
    w->next = *b;
    *b = w;
    if (!c->wait_timer) {
        c->wait_timer = aq_malloc(sizeof *c->wait_timer);
        uv_timer_init(&c->t->loop, c->wait_timer);
        c->wait_timer->data = c;
    }
    uv_timer_start(c->wait_timer, on_timeout, (uint64_t)c->wait_s * 1000u, 0);
}

void aq_api_waiters_on_notify(api_thread *t, const char *payload)
{
    const char *p = payload;
    while (*p) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (end == p) break;
        for (waiter *w = *bucket(t, id), *next; w; w = next) {
            next = w->next;
            if (w->c->id == id) wake(w->c);
        }
        p = *end == ',' ? end + 1 : end;
    }
}

void aq_api_waiters_wake_all(api_thread *t)
{
    table *tb = t->waiters;
    for (int i = 0; i < BUCKETS; i++)
        while (tb->buckets[i]) wake(tb->buckets[i]->c);
}
