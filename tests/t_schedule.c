/* t_schedule.c — schedules: API, firing, scheduled_run. */
#include "harness.h"

const th_test th_schedule_tests[] = {
    {0},
};
