/* t_telegram.c — notification routing, webhook, linking, approvals by button. */
#include "harness.h"

const th_test th_telegram_tests[] = {
    {0},
};
