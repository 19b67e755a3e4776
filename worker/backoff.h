/* backoff.h — retry delays: capped exponential backoff with jitter. Pure. */
#ifndef AQ_BACKOFF_H
#define AQ_BACKOFF_H
#include <stdint.h>

/* Delay before the next try after failed attempt `attempt` (1-based):
 * d = min(cap, base * 2^(attempt-1)); the result is uniform in [d/2, d]
 * ("equal jitter"), picked by rnd. */
long aq_backoff_ms(int attempt, long base_ms, long cap_ms, uint32_t rnd);

/* What a retry request becomes: -1 when attempts are spent (fail the job),
 * else the delay in ms (requested_ms if >= 0, capped at cap_ms; else backoff). */
long aq_retry_delay_ms(int attempts, int max_attempts, long requested_ms,
                       long base_ms, long cap_ms, uint32_t rnd);

/* Delay before retrying a transient failure (an outage) that spends no
 * attempt, since_ms into the outage: d = since_ms clamped to [base, cap],
 * uniform in [d/2, d]. Waiting about as long again as the outage has lasted
 * doubles the wait each time without a per-job counter. */
long aq_transient_delay_ms(long since_ms, long base_ms, long cap_ms, uint32_t rnd);

#endif
