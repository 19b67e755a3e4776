/* backoff.c — retry delay arithmetic (see backoff.h). */
#include "backoff.h"

long aq_backoff_ms(int attempt, long base_ms, long cap_ms, uint32_t rnd)
{
    if (attempt < 1) attempt = 1;
    long d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++) d *= 2;
    if (d > cap_ms) d = cap_ms;
    long half = d / 2;
    return half + (long)(rnd % (uint32_t)(d - half + 1));
}

long aq_retry_delay_ms(int attempts, int max_attempts, long requested_ms,
                       long base_ms, long cap_ms, uint32_t rnd)
{
    if (attempts >= max_attempts) return -1;
    if (requested_ms >= 0) return requested_ms > cap_ms ? cap_ms : requested_ms;
    return aq_backoff_ms(attempts, base_ms, cap_ms, rnd);
}

long aq_transient_delay_ms(long since_ms, long base_ms, long cap_ms, uint32_t rnd)
{
    long d = since_ms < base_ms ? base_ms : since_ms;
    if (d > cap_ms) d = cap_ms;
    long half = d / 2;
    return half + (long)(rnd % (uint32_t)(d - half + 1));
}
