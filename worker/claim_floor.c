/* claim_floor.c — the claim floor's bookkeeping (see claim_floor.h, and
 * worker/engine.c, DESIGN "Claim floor", for why each rule holds). */
#include "claim_floor.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int aq_claim_key_cmp(const aq_claim_key *a, const aq_claim_key *b)
{
    if (a->priority != b->priority) return a->priority < b->priority ? -1 : 1;
    if (a->run_at_us != b->run_at_us) return a->run_at_us < b->run_at_us ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* If that claim comes back short, it took every runnable row there was, and
 * the claims after it may start at the floor again: the key is kept. */
void aq_floor_drop(aq_claim_floor *f)
{
    f->off = 1;
    f->seq++;
    f->drop_seq++;
}

void aq_floor_lower(aq_claim_floor *f, const aq_claim_key *k)
{
    if (!f->valid || aq_claim_key_cmp(k, &f->key) >= 0) return;
    f->key = *k;
    f->seq++;
}

void aq_floor_notified(aq_claim_floor *f, const char *payload)
{
    char *end;
    long p = strtol(payload, &end, 10);
    if (end == payload || *end != ' ' || p < -32768 || p > 32767) { aq_floor_drop(f); return; }
    const char *us = end + 1;
    long long t = strtoll(us, &end, 10);
    if (end == us || *end) { aq_floor_drop(f); return; }
    aq_claim_key k = {(int)p, t, 0};
    aq_floor_lower(f, &k);
    if (!f->notified_valid || aq_claim_key_cmp(&k, &f->notified) < 0) f->notified = k;
    f->notified_valid = 1;
}

/* run_at goes as text, exactly (a conversion through a float could land a
 * microsecond above the floor and skip the rest of its INSERT's rows);
 * outside years 1-9999, no floor. */
void aq_floor_claim_sent(aq_claim_floor *f, aq_floor_claim *c, int limit, int others, char prio[8],
                         char run_at[64], char id[24])
{
    c->seq = f->seq;
    c->drop_seq = f->drop_seq;
    c->limit = limit;
    c->from_head = 1;
    if (!others) f->notified_valid = 0;   /* what was notified before now, this claim sees */
    int64_t us = f->key.run_at_us;
    if (!f->valid || f->off || us < -62135596800000000LL || us > 253402300799999999LL) {
        snprintf(prio, 8, "-32768");
        snprintf(run_at, 64, "-infinity");
        snprintf(id, 24, "0");
        return;
    }
    c->from_head = 0;
    f->used = 1;
    long long secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) { frac += 1000000; secs--; }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(prio, 8, "%d", f->key.priority);
    snprintf(run_at, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    snprintf(id, 24, "%lld", (long long)f->key.id);
}

/* Below last the claim took, in index order, every row it could; if it came
 * back short it took all there were from where it started. A claim from the
 * head ends a drop that came before it was sent. The floor does not move if
 * it was lowered or dropped after the claim was sent (the claim may not have
 * seen why), and not past a key notified while the claim was out: those rows
 * were above the floor (so nothing lowered it) but may sit below last,
 * committed after the claim's snapshot. */
void aq_floor_after_claim(aq_claim_floor *f, const aq_floor_claim *c, int n, const aq_claim_key *last)
{
    if (c->from_head && c->drop_seq == f->drop_seq) f->off = 0;
    if (c->seq != f->seq || !n) return;
    if (!f->valid || (c->from_head && n >= c->limit) || aq_claim_key_cmp(last, &f->key) > 0) f->key = *last;
    f->valid = 1;
    if (f->notified_valid && aq_claim_key_cmp(&f->notified, &f->key) < 0) f->key = f->notified;
}
