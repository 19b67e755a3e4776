/* t_telegram_api.c — Telegram Bot API client and text splitter. */
#include "harness.h"

const th_test th_telegram_api_tests[] = {
    {0},
};
