/* aq_time.h — clocks. Monotonic milliseconds for timers and deadlines; wall
 * microseconds for timestamps compared with the database's clock. */
#ifndef AQ_TIME_H
#define AQ_TIME_H
#include <stdint.h>

uint64_t aq_now_mono_ms(void);
int64_t aq_now_wall_us(void);
void aq_sleep_ms(long ms);

#endif
