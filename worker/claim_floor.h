/* claim_floor.h — where the engine's next claim starts in jobs_claim
 * (worker/engine.c, DESIGN "Claim floor"): the highest key the last claim
 * took, lowered by what the 'aq_jobs' notifications say was inserted below
 * it, dropped (the next claim from the head) when something may have become
 * runnable anywhere. Pure bookkeeping, no I/O: tests/t_unit.c drives it. */
#ifndef AQ_CLAIM_FLOOR_H
#define AQ_CLAIM_FLOOR_H

#include <stdint.h>

/* A position in jobs_claim's order: (priority, run_at, id). */
typedef struct aq_claim_key {
    int priority;
    int64_t run_at_us;       /* microseconds since 1970 */
    int64_t id;
} aq_claim_key;

typedef struct aq_claim_floor {
    aq_claim_key key;        /* where claims start, if valid */
    int valid;
    int off;                 /* dropped: the next claim starts at the head (key is kept) */
    unsigned seq;            /* bumped whenever the floor is lowered or dropped */
    unsigned drop_seq;       /* bumped whenever it is dropped */
    aq_claim_key notified;   /* the lowest key notified since the claims out were sent, */
    int notified_valid;      /* if any: its answer does not raise the floor past it */
    int used;                /* a claim started at the floor since the engine last asked */
} aq_claim_floor;

/* What a claim remembers of the floor it was sent with. */
typedef struct aq_floor_claim {
    unsigned seq, drop_seq;
    int from_head;           /* sent without floor */
    int limit;               /* rows it asked for */
} aq_floor_claim;

int aq_claim_key_cmp(const aq_claim_key *a, const aq_claim_key *b);

/* The next claim starts at the head (the key is kept). */
void aq_floor_drop(aq_claim_floor *f);
/* Rows may have become runnable at k or above. */
void aq_floor_lower(aq_claim_floor *f, const aq_claim_key *k);
/* An 'aq_jobs' payload arrived (sql/020: "<priority> <run_at µs>"; anything
 * else drops the floor). */
void aq_floor_notified(aq_claim_floor *f, const char *payload);
/* A claim of limit rows is sent: c remembers the floor, and prio/run_at/id
 * get its parameters ($7-$9: the floor, or the lowest key there is). others:
 * another claim is still out (then the keys notified since that one was sent
 * keep capping the floor, for both). */
void aq_floor_claim_sent(aq_claim_floor *f, aq_floor_claim *c, int limit, int others, char prio[8],
                         char run_at[64], char id[24]);
/* That claim came back with n rows, the highest key last (NULL if n is 0). */
void aq_floor_after_claim(aq_claim_floor *f, const aq_floor_claim *c, int n, const aq_claim_key *last);

#endif
