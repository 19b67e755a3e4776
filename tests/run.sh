#!/bin/sh
# run.sh — `make test`: starts a throwaway PostgreSQL cluster, runs
# bin/agentq-test against it (args filter tests by name), and stops the
# cluster whatever happens. The runner's last line is "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/agentq-test-XXXXXX)
chmod 755 "$work"
# AQ_TEST_KEEP_LOGS=DIR: the tests' logs are copied there before the clean-up (`make faults`)
cleanup() {
    sh "$top/deploy/pg.sh" stop "$work/pg" >/dev/null 2>&1
    if [ -n "${AQ_TEST_KEEP_LOGS:-}" ]; then rm -rf "$AQ_TEST_KEEP_LOGS"; mkdir -p "$AQ_TEST_KEEP_LOGS"; cp -r "$work/logs/." "$AQ_TEST_KEEP_LOGS/"; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The cluster's port lies above Linux's default ephemeral range (32768-60999),
# so outgoing connections never take it, during a run or across the fault
# tests' restarts. A port can still be taken between the check and the bind
# (another cluster): on a failed start, try another one.
port=$((61000 + $$ % 4000))
tries=0
while :; do
    while ss -ltn 2>/dev/null | grep -q ":$port "; do port=$((port + 1)); done
    sh "$top/deploy/pg.sh" start "$work/pg" "$port" >/dev/null 2>"$work/pg-start.err" && break
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
        cat "$work/pg-start.err"; echo "run.sh: could not start PostgreSQL"; echo "0 passed, 1 failed"; exit 1
    fi
    port=$((61000 + (port - 61000 + 97) % 4000))
done
sockhost=$(sh "$top/deploy/pg.sh" url "$work/pg" "$port" | sed 's/.*host=\([^ ]*\).*/\1/')
export AQ_TEST_PGHOST="$sockhost" AQ_TEST_PGPORT="$port" AQ_TEST_BIN="${AQ_TEST_BIN:-$top/bin}"
export AQ_TEST_LOGDIR="$work/logs"
export AQ_TEST_PG_RESTART="sh '$top/deploy/pg.sh' restart '$work/pg' $port"
export AQ_TEST_PG_RESTART_IMMEDIATE="sh '$top/deploy/pg.sh' crash '$work/pg' $port"
export AQ_TEST_PG_STOP="sh '$top/deploy/pg.sh' stop '$work/pg'"
export AQ_TEST_PG_START="sh '$top/deploy/pg.sh' start '$work/pg' $port >/dev/null"
mkdir -p "$AQ_TEST_LOGDIR"
"${AQ_TEST_BIN:-$top/bin}/agentq-test" "$@"
