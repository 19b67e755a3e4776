#!/bin/sh
# Runs libFuzzer harnesses for a bounded time each (`make fuzz`; README "Fuzzing").
# Usage: run.sh SECONDS NAME...  with FUZZ_BIN the directory of the fz_NAME
# binaries. Each harness starts from its checked-in seeds
# (tests/fuzz/seeds/NAME/) and its working corpus (.tmp/fuzz/NAME/corpus/,
# kept between runs, not checked in); what it finds (crash-*, leak-*,
# timeout-*, oom-*) lands in .tmp/fuzz/NAME/. Runs the harnesses one after
# another and exits non-zero if any found something, naming the file to
# reproduce with: $FUZZ_BIN/fz_NAME FILE
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=$1; shift
failed=""
for name in "$@"; do
    bin="$FUZZ_BIN/fz_$name"
    seeds="$top/tests/fuzz/seeds/$name"
    work="$top/.tmp/fuzz/$name"
    mkdir -p "$work/corpus"
    touch "$work/.started"
    echo "fuzz: $name for ${secs}s"
    # -timeout: one input may take 10 s (the machine is shared); leaks are findings
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
        -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds" \
        >"$work/log" 2>&1
    rc=$?
    awk -v n="$name" '/^stat::number_of_executed_units/ {runs = $2} /^stat::peak_rss_mb/ {rss = $2}
        END {if (runs != "") printf "fuzz: %s: %s inputs, peak RSS %s MB\n", n, runs, rss}' "$work/log"
    new=$(find "$work" -maxdepth 1 -newer "$work/.started" \( -name 'crash-*' -o -name 'leak-*' \
          -o -name 'timeout-*' -o -name 'oom-*' \) -printf '%f\n')
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        echo "fuzz: $name FAILED (exit $rc); the log: $work/log" >&2
        grep -E 'ERROR|SUMMARY|contract broken|runtime error' "$work/log" | head -5 >&2
        for f in $new; do echo "fuzz: reproduce with: $bin $work/$f" >&2; done
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: found something in:$failed" >&2
    exit 1
fi
echo "fuzz: all clean ($*)"
