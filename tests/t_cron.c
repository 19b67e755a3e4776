/* t_cron.c — parser/evaluator tests (written by the cron work). */
#include "harness.h"

const th_test th_cron_tests[] = {
    {0},
};
