/* t_cli.c — the operator CLI (bin/agentq) against a real database. */
#include "harness.h"

const th_test th_cli_tests[] = {
    {0},
};
