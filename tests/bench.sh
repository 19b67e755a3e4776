#!/bin/sh
# bench.sh — `make bench`: measures agentq against a private PostgreSQL cluster
# and the pgbench ceiling of the same SQL on that cluster, prints every figure
# and rewrites docs/BENCHMARKS.md. The measuring is done by bin/agentq-bench
# (tests/bench/*.c: drain timing on the database clock, enqueue→start latency,
# worker memory); this script starts the cluster, runs the steps, takes
# medians and writes the report. Runs unattended as root or not; ~2 minutes.
# shellcheck disable=SC2086  # $WFLAGS and the per-run lists split on purpose
set -eu
cd "$(dirname "$0")/.."

# ---- knobs ----
CONCURRENCY=8            # worker flags for the drain runs and the idle footprint
PREFETCH=2000
DB_CONNS=2               # database connections in total: 1 worker x 2, or 2 workers x 1
DRAIN_JOBS=20000         # noop jobs per drain (and per batched pgbench run)
RUNS=3                   # drain and batched-pgbench figures are medians of this many
PGB_CLIENTS=4            # pgbench ceiling (a): claim/complete 100 at a time
PGB_THREADS=2
PGB_BATCH=100            # rows per claim in tests/bench/claim_complete_100.sql
PGB_SINGLE_SECONDS=10    # pgbench ceiling (b): one job per transaction, for this long
LAT_JOBS=1000            # latency: this many jobs, one every LAT_INTERVAL_MS
LAT_INTERVAL_MS=10
LAT_CONCURRENCY=1
IDLE_MS=2000             # a worker idles this long before its RSS is read
PORT=${AGENTQ_BENCH_PORT:-55433}
DIR=.tmp/bench-pg
OUT=docs/BENCHMARKS.md
# targets (from the benchmark issue)
TARGET_RATIO_PCT=80      # drain ≥ 80 % of ceiling (a)
TARGET_P99_US=1500       # enqueue → handler start p99 ≤ 1.5 ms
TARGET_IDLE_KB=10240     # idle worker VmRSS < 10 MiB
API_CONNS=64             # API load: wrk connections, seconds, and the exact-accounting run's size
API_SECONDS=20
API_CHATLOAD=20000
API_PORT=55434
TARGET_API_X=3           # POST /v1/chat req/s ≥ 3 × pgbench single-INSERT tps
TARGET_API_P99_MS=25
TARGET_API_KB=30720      # API resident memory < 30 MiB at load

PGBIN=/usr/lib/postgresql/15/bin
BIN=$DIR/bin             # the bench runs copies of bin/*, taken at its start
BENCH=$BIN/agentq-bench
WORKER=$BIN/agentq-worker
LOGS=$DIR/logs
T_START=$(date +%s)

# Only our own knobs reach the workers: drop any AGENTQ_* from the caller's environment.
for v in $(env | sed -n 's/^\(AGENTQ_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export AGENTQ_DBNAME=agentq_bench

die() { echo "bench: $*" >&2; exit 1; }
for b in agentq agentq-api agentq-worker agentq-bench; do
    [ -x "bin/$b" ] || die "bin/$b missing: build first (make all bin/agentq-bench)"
done
[ -x "$PGBIN/pgbench" ] || die "$PGBIN/pgbench not found (make deps installs postgresql-15)"
# Copies, so a build running meanwhile (e.g. `make test` relinking bin/ as the
# SANITIZE=1 variant) cannot swap the binaries under a measurement.
mkdir -p "$BIN"
cp bin/agentq bin/agentq-api bin/agentq-worker bin/agentq-bench "$BIN/"
grep -q __asan_init "$WORKER" &&
    die "bin/agentq-worker is the SANITIZE=1 build; benchmark the plain one (make all bin/agentq-bench)"
M_BUILD="bin/ as built by make (checked: not the SANITIZE=1 variant)"

cleanup() { sh deploy/pg.sh stop "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }          # kv LINE KEY
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }                               # calc FORMAT EXPR
mib() { calc '%.1f MiB' "$1/1024"; }
sql() { "$PGBIN/psql" "$URL" -AtXq -v ON_ERROR_STOP=1 -c "$1"; }
say() { printf '%s\n' "$*"; }
list() { printf '%s' "$*" | sed 's/^ *//; s/  */, /g'; }                  # " a b c" → "a, b, c"

# ---- cluster: private, fresh database, fsync and synchronous_commit on ----
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
URL=$(sh deploy/pg.sh start "$DIR" "$PORT")
"$PGBIN/psql" "$URL dbname=postgres" -AtXq -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $AGENTQ_DBNAME" -c "CREATE DATABASE $AGENTQ_DBNAME"
export DATABASE_URL="$URL"
"$BIN/agentq" migrate >"$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; die "migrate failed"; }

if [ "$(sql 'SHOW fsync')" != on ] || [ "$(sql 'SHOW synchronous_commit')" != on ]; then
    die "fsync and synchronous_commit must be on"
fi
M_NPROC=$(nproc)
M_KERNEL=$(uname -r)
M_CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
M_MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
M_PG=$(sql 'SHOW server_version')
M_FSYNC=$(sql 'SHOW fsync')
M_SYNC=$(sql 'SHOW synchronous_commit')
M_WALSYNC=$(sql 'SHOW wal_sync_method')
M_SB=$(sql 'SHOW shared_buffers')
M_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
M_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
M_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && M_COMMIT="$M_COMMIT (with uncommitted changes)"
WFLAGS="--concurrency $CONCURRENCY --prefetch $PREFETCH"

say "agentq bench — $M_DATE, $M_NPROC CPUs, kernel $M_KERNEL, PostgreSQL $M_PG"
say "fsync=$M_FSYNC synchronous_commit=$M_SYNC; worker flags: $WFLAGS; load average $M_LOAD"

# ---- footprint: one idle worker with the drain flags ----
idle=$($BENCH idle --idle-ms "$IDLE_MS" --log "$LOGS/idle.log" -- $WORKER $WFLAGS)
IDLE_KB=$(kv "$idle" rss_kb)
IDLE_ANON_KB=$(kv "$idle" anon_kb)
IDLE_FILE_KB=$(kv "$idle" file_kb)
IDLE_THREADS=$(kv "$idle" threads)
IDLE_STARTUP_MS=$(kv "$idle" startup_ms)
say "idle worker ($WFLAGS): VmRSS $IDLE_KB kB after ${IDLE_MS} ms idle (RssAnon $IDLE_ANON_KB kB," \
    "RssFile $IDLE_FILE_KB kB), $IDLE_THREADS threads, registered ${IDLE_STARTUP_MS} ms after exec"

# ---- drain (1 and 2 workers) and ceiling (a), interleaved run by run ----
PGB_TX=$((DRAIN_JOBS / PGB_BATCH / PGB_CLIENTS))
D1=""; D2=""; S1=""; S2=""; PA=""; HWM_KB=0; FIRST=""
for run in $(seq 1 "$RUNS"); do
    for w in 1 2; do
        d=$(AGENTQ_DB_CONNECTIONS=$((DB_CONNS / w)) $BENCH drain --jobs "$DRAIN_JOBS" --workers "$w" \
            --log "$LOGS/drain-$w.log" -- $WORKER $WFLAGS)
        jps=$(kv "$d" jobs_per_s); secs=$(kv "$d" seconds); hwm=$(kv "$d" hwm_kb)
        [ "$hwm" -gt "$HWM_KB" ] && HWM_KB=$hwm
        FIRST="$FIRST $(kv "$d" first_claim_ms)"
        if [ "$w" = 1 ]; then D1="$D1 $jps"; S1="$S1 $secs"; else D2="$D2 $jps"; S2="$S2 $secs"; fi
        say "run $run: agentq drain, $w worker(s): $DRAIN_JOBS jobs in $secs s = $jps jobs/s (VmHWM $hwm kB)"
    done
    $BENCH load --jobs "$DRAIN_JOBS" >/dev/null
    out=$("$PGBIN/pgbench" -n -f tests/bench/claim_complete_100.sql -c "$PGB_CLIENTS" -j "$PGB_THREADS" \
        -t "$PGB_TX" "$URL" 2>&1) || { printf '%s\n' "$out" >&2; die "pgbench (a) failed"; }
    tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    left=$(sql "SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
    [ "$left" = 0 ] || say "  warning: pgbench (a) left $left of $DRAIN_JOBS jobs unfinished"
    jps=$(calc '%.0f' "$tps * $PGB_BATCH")
    PA="$PA $jps"
    say "run $run: pgbench (a) claim/complete $PGB_BATCH, -c $PGB_CLIENTS -j $PGB_THREADS -t $PGB_TX: $tps tps = $jps jobs/s"
done
MD1=$(median $D1); MD2=$(median $D2); MPA=$(median $PA)
MS1=$(calc '%.3f' "$(median $S1)"); MS2=$(calc '%.3f' "$(median $S2)")
MFIRST=$(median $FIRST)
R1=$(calc '%.0f' "100 * $MD1 / $MPA")
R2=$(calc '%.0f' "100 * $MD2 / $MPA")

# ---- ceiling (b): one job's insert/claim/complete per pgbench transaction ----
$BENCH load --jobs 0 >/dev/null
out=$("$PGBIN/pgbench" -n -f tests/bench/single_job.sql -c "$PGB_CLIENTS" -j "$PGB_THREADS" \
    -T "$PGB_SINGLE_SECONDS" "$URL" 2>&1) || { printf '%s\n' "$out" >&2; die "pgbench (b) failed"; }
PB=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | awk '{printf "%.0f", $1}')
PB_LAT=$(printf '%s\n' "$out" | sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p')
say "pgbench (b) insert+claim+complete one job, -c $PGB_CLIENTS -j $PGB_THREADS -T $PGB_SINGLE_SECONDS: $PB tps (latency average $PB_LAT ms)"

# ---- latency: one idle worker, one job at a time ----
lat=$(AGENTQ_TEST_HANDLERS=1 $BENCH latency --jobs "$LAT_JOBS" --interval-ms "$LAT_INTERVAL_MS" \
    --idle-ms "$IDLE_MS" --log "$LOGS/latency.log" -- $WORKER --concurrency "$LAT_CONCURRENCY")
L_p50=$(kv "$lat" p50_us); L_p95=$(kv "$lat" p95_us); L_p99=$(kv "$lat" p99_us)
L_max=$(kv "$lat" max_us); L_mean=$(kv "$lat" mean_us)
L_commit_p50=$(kv "$lat" commit_p50_us); L_commit_p95=$(kv "$lat" commit_p95_us)
L_commit_p99=$(kv "$lat" commit_p99_us)
L_insert_p50=$(kv "$lat" insert_p50_us); L_insert_p95=$(kv "$lat" insert_p95_us)
L_insert_p99=$(kv "$lat" insert_p99_us)
L_IDLE_KB=$(kv "$lat" idle_rss_kb)
ms() { calc '%.2f' "$1/1000"; }
say "latency enqueue→start ($LAT_JOBS jobs, one per $LAT_INTERVAL_MS ms, --concurrency $LAT_CONCURRENCY):" \
    "p50 $(ms "$L_p50") ms, p95 $(ms "$L_p95") ms, p99 $(ms "$L_p99") ms, max $(ms "$L_max") ms"
say "latency after the enqueue commit: p50 $(ms "$L_commit_p50") ms, p95 $(ms "$L_commit_p95") ms," \
    "p99 $(ms "$L_commit_p99") ms; INSERT round trip p50 $(ms "$L_insert_p50") ms, p99 $(ms "$L_insert_p99") ms"
say "idle worker (--concurrency $LAT_CONCURRENCY): VmRSS $L_IDLE_KB kB"

# ---- API: POST /v1/chat under wrk, exact accounting, pgbench single INSERT ----
# One user with the rate limit and queue quota lifted (a quota counts the
# user's queued jobs, and nothing drains them here); no worker runs. Each
# measured step starts from an empty table and a fresh CHECKPOINT, as the
# drains do, so no timed checkpoint lands inside one of them.
sql "TRUNCATE jobs" >/dev/null; sql "CHECKPOINT" >/dev/null
export AGENTQ_SECRET_KEY
AGENTQ_SECRET_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
TOKEN=$("$BIN/agentq" users add "bench$$" | tail -n 1)
BENCH_USER=$(sql "SELECT id FROM users WHERE name = 'bench$$'")
AGENTQ_LISTEN=127.0.0.1:$API_PORT AGENTQ_USER_RATE=1000000 AGENTQ_USER_QUEUE_QUOTA=0 AGENTQ_LOG_LEVEL=warn \
    "$BIN/agentq-api" 2>"$LOGS/api.log" &
API_PID=$!
i=0
until curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "agentq-api did not start (see $LOGS/api.log)"; sleep 0.1
done
out=$(TOKEN=$TOKEN wrk -t2 -c"$API_CONNS" -d"${API_SECONDS}s" --latency -s tests/bench/chat.lua \
    "http://127.0.0.1:$API_PORT/v1/chat" 2>&1) || die "wrk failed: $out"
printf '%s\n' "$out" >"$LOGS/wrk.log"
A_RPS=$(printf '%s\n' "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
lat_ms() { printf '%s\n' "$out" | awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; printf "%.2f", v }'; }
A_P50=$(lat_ms 50%); A_P99=$(lat_ms 99%)
A_ACC=$(printf '%s\n' "$out" | sed -n 's/^wrk_counts accepted=\([0-9]*\).*/\1/p')
A_OTHER=$(printf '%s\n' "$out" | sed -n 's/^wrk_counts accepted=[0-9]* other=\([0-9]*\).*/\1/p')
A_ERRS=$(printf '%s\n' "$out" | sed -n 's/^ *Socket errors: *\(.*\)/\1/p')
A_ROWS=$(sql "SELECT count(*) FROM jobs WHERE job_type = 'agent_turn'")
A_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$API_PID/status")
sql "TRUNCATE jobs" >/dev/null
cl=$(AQ_BENCH_API="http://127.0.0.1:$API_PORT" AQ_BENCH_TOKEN=$TOKEN "$BENCH" chatload --jobs "$API_CHATLOAD" \
    --workers "$API_CONNS") || true
CL_EXACT=$(kv "$cl" exact); CL_ACC=$(kv "$cl" accepted); CL_ROWS=$(kv "$cl" rows)
kill -TERM "$API_PID"; wait "$API_PID" || say "note: agentq-api exited non-zero"
say "API POST /v1/chat, wrk -c$API_CONNS ${API_SECONDS}s: $A_RPS req/s, p50 $A_P50 ms, p99 $A_P99 ms;" \
    "202s $A_ACC, other $A_OTHER, rows $A_ROWS${A_ERRS:+, socket errors: $A_ERRS}; API VmHWM $A_KB kB"
say "API exact accounting: $cl"
printf "INSERT INTO jobs (job_type, input, user_id) VALUES ('agent_turn', '{\"message\":\"hello\"}', %s);\n" \
    "$BENCH_USER" >"$LOGS/insert1.sql"
sql "TRUNCATE jobs" >/dev/null; sql "CHECKPOINT" >/dev/null
out=$("$PGBIN/pgbench" -n -f "$LOGS/insert1.sql" -c "$API_CONNS" -j 2 -T "$API_SECONDS" "$URL" 2>&1) ||
    die "pgbench insert failed: $out"
PI_TPS=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
A_X=$(calc '%.1f' "$A_RPS / $PI_TPS")
say "pgbench single-row INSERT, -c $API_CONNS -j 2 -T $API_SECONDS: $PI_TPS tps; API = ${A_X}x"

WARNS=$(cat "$LOGS"/*.log | grep -c '"level":"\(warn\|error\)"' || true)
[ "$WARNS" = 0 ] || say "note: the worker logs ($LOGS) hold $WARNS warning/error lines"

# ---- targets ----
verdict() { if awk "BEGIN {exit !($1)}"; then echo met; else echo "**missed**"; fi; }
V1=$(verdict "$R1 >= $TARGET_RATIO_PCT"); V2=$(verdict "$R2 >= $TARGET_RATIO_PCT")
VL=$(verdict "$L_p99 <= $TARGET_P99_US"); VM=$(verdict "$IDLE_KB < $TARGET_IDLE_KB")
VAX=$(verdict "$A_X >= $TARGET_API_X"); VAP=$(verdict "$A_P99 <= $TARGET_API_P99_MS")
VAE=$(verdict "$A_OTHER == 0 && ${CL_EXACT:-0} == 1"); VAM=$(verdict "$A_KB < $TARGET_API_KB")
ELAPSED=$(( $(date +%s) - T_START ))

# ---- report ----
tmp=$(mktemp)
cat >"$tmp" <<EOF
# Benchmarks

How fast agentq moves jobs through PostgreSQL, against the fastest the same
SQL goes when pgbench drives it directly on the same cluster in the same run.
This file is generated by \`make bench\` (tests/bench.sh and bin/agentq-bench,
built from tests/bench/); every run overwrites it. Figures come from one machine
and one run: compare ratios across machines, not absolute numbers.

## Command

    make bench

It builds everything, starts a private PostgreSQL cluster in \`$DIR\`
(port $PORT, fsync and synchronous_commit on), runs every step below, stops
the cluster, and prints the same figures to stdout. It runs copies of
\`bin/*\` taken at its start (in \`$BIN\`), so a concurrent rebuild cannot
change them mid-run. This run took $ELAPSED s.

## Machine

| | |
|---|---|
| date | $M_DATE |
| commit | $M_COMMIT |
| CPUs (nproc) | $M_NPROC${M_CPU:+ × $M_CPU} |
| memory | $M_MEM |
| kernel (uname -r) | $M_KERNEL |
| PostgreSQL | $M_PG, shared_buffers $M_SB |
| agentq binaries | $M_BUILD |
| fsync / synchronous_commit | $M_FSYNC / $M_SYNC (wal_sync_method $M_WALSYNC), read with SHOW |
| load average at start | $M_LOAD |

## Results

| figure | value | detail |
|---|---|---|
| agentq drain, 1 worker | **$MD1 jobs/s** | $DRAIN_JOBS noop jobs in $MS1 s (median of $RUNS: $(list $D1)); **$R1 %** of ceiling (a) |
| agentq drain, 2 workers | **$MD2 jobs/s** | $DRAIN_JOBS noop jobs in $MS2 s (median of $RUNS: $(list $D2)); **$R2 %** of ceiling (a) |
| ceiling (a): pgbench, claim/complete $PGB_BATCH at a time | **$MPA jobs/s** | $PGB_BATCH × tps, \`-c $PGB_CLIENTS -j $PGB_THREADS -t $PGB_TX\` on a fresh $DRAIN_JOBS-job table (median of $RUNS: $(list $PA)) |
| ceiling (b): pgbench, one job's insert + claim + complete | **$PB tps** | \`-c $PGB_CLIENTS -j $PGB_THREADS -T $PGB_SINGLE_SECONDS\`, three commits per transaction; latency average $PB_LAT ms |
| latency enqueue → handler start | **p50 $(ms "$L_p50") ms, p95 $(ms "$L_p95") ms, p99 $(ms "$L_p99") ms** | max $(ms "$L_max") ms, mean $(ms "$L_mean") ms; $LAT_JOBS jobs, one every $LAT_INTERVAL_MS ms |
| latency after the enqueue commit | p50 $(ms "$L_commit_p50") ms, p95 $(ms "$L_commit_p95") ms, p99 $(ms "$L_commit_p99") ms | from the INSERT's reply to handler start |
| enqueue INSERT round trip | p50 $(ms "$L_insert_p50") ms, p95 $(ms "$L_insert_p95") ms, p99 $(ms "$L_insert_p99") ms | one autocommit INSERT ... RETURNING id, including its fsync |
| idle worker memory (\`$WFLAGS\`) | **$(mib "$IDLE_KB")** | VmRSS $IDLE_KB kB after $IDLE_MS ms idle: $IDLE_ANON_KB kB private (RssAnon) + $IDLE_FILE_KB kB mapped files, mostly shared libraries (RssFile); $IDLE_THREADS threads; registered $IDLE_STARTUP_MS ms after exec |
| idle worker memory (\`--concurrency $LAT_CONCURRENCY\`) | $(mib "$L_IDLE_KB") | VmRSS $L_IDLE_KB kB, the latency run's worker before its first job |
| worker peak memory after draining | $(mib "$HWM_KB") | largest VmHWM of any drain worker, $DRAIN_JOBS jobs, \`$WFLAGS\` |
| worker start → first job claimed | $MFIRST ms | median over the drain runs, database clock |
| API POST /v1/chat, $API_CONNS connections, ${API_SECONDS} s | **$A_RPS req/s**, p50 $A_P50 ms, p99 $A_P99 ms | wrk; $A_ACC × 202, $A_OTHER other; $A_ROWS rows committed (wrk's last in-flight requests may commit unanswered); no worker running |
| baseline: pgbench single-row INSERT | **$PI_TPS tps** | \`-c $API_CONNS -j 2 -T $API_SECONDS\`, one INSERT into jobs per transaction; the API does **${A_X}×** that |
| API exact accounting | $CL_ACC × 202 → $CL_ROWS rows, exact=$CL_EXACT | \`agentq-bench chatload\`: $API_CHATLOAD requests over $API_CONNS connections; sorted job ids of the 202s equal the sorted agent_turn row ids |
| API memory at load | $(mib "$A_KB") | VmHWM after the wrk run |

## Targets

| target | figure | |
|---|---|---|
| drain ≥ $TARGET_RATIO_PCT % of ceiling (a) | 1 worker: $R1 % | $V1 |
| drain ≥ $TARGET_RATIO_PCT % of ceiling (a) | 2 workers: $R2 % | $V2 |
| enqueue → start p99 ≤ $(ms "$TARGET_P99_US") ms | $(ms "$L_p99") ms | $VL |
| idle worker < $(mib "$TARGET_IDLE_KB") resident | $(mib "$IDLE_KB") ($IDLE_KB kB) | $VM |
| POST /v1/chat ≥ ${TARGET_API_X}× pgbench single INSERT | ${A_X}× ($A_RPS req/s vs $PI_TPS tps) | $VAX |
| POST /v1/chat p99 ≤ $TARGET_API_P99_MS ms | $A_P99 ms | $VAP |
| zero errors; every 202 has exactly one row, no row without its 202 | wrk: $A_OTHER non-202; chatload: $CL_ACC 202s, $CL_ROWS rows, exact=$CL_EXACT | $VAE |
| API resident memory at load < $(mib "$TARGET_API_KB") | $(mib "$A_KB") (VmHWM $A_KB kB) | $VAM |

## Where we stand, and what limits us

- **Drain.** This machine is shared and its speed drifts from run to run
  (the pgbench ceiling itself has measured 57k–85k jobs/s on different runs
  today); over the day's runs one worker process with two database
  connections drained at 75–104 % of the ceiling measured beside it, and two
  processes (two connections in all) at 84–122 %. The ratio, not the
  absolute figure, is what carries across runs. Two processes can pass
  pgbench, because each round carries the previous round's completions and the
  next claim in one transaction (one commit), and successes are completed
  through arrays rather than JSON (half the server time per row). The limit
  is the database server's CPU: the worker itself spends about 1.6 µs of CPU
  per job (measured over a 200,000-job drain). On two cores, more server
  processes than cores only add contention, hence two connections in all.
  Batches need room: \`--prefetch\` sets how many jobs a worker may hold
  beyond those running (default: as many as \`--concurrency\`, right for slow
  jobs like LLM calls); short jobs in bulk want it in the thousands.
- **Job life cycle (issue 12).** Moving the job statements into
  \`common/aq_jobs.c\` and adding cancel changed nothing on the drain's path
  but one row trigger whose \`WHEN\` is tested per completion. Drain medians
  (1 worker / 2 workers, jobs/s), runs taken back to back on this shared
  machine: before 46818 / 51771 and 48528 / 39360, after 53146 / 55163 and
  31442 / 49802 (ceilings beside them 41k–65k): within the run-to-run noise.
  The deterministic check is the WAL: 20,000 completions write 58,571 WAL
  records with the AFTER trigger, as with none; a BEFORE trigger (tried
  first) wrote 78,571, since Postgres locks each row before testing its
  \`WHEN\`.
- **Latency.** Measured from before the enqueuing INSERT is sent, p99 misses
  1.5 ms; measured from that INSERT's reply, p99 is well under 1 ms. The
  INSERT itself is most of the budget: it waits for its own fsync'd commit
  and, at 100 jobs/s, for every process involved to wake from idle (the same
  INSERT takes about 0.2 ms in a hot pgbench loop but p50 0.7–0.8 ms here; the
  NOTIFY trigger's share is about 0.03 ms). The worker's part is one claim
  round trip that does not wait for the WAL flush (a claim lost in a server
  crash leaves the job queued, which at-least-once delivery allows) and one
  hand-off to a pool thread.
- **API.** \`POST /v1/chat\` passes pgbench's single-row INSERTs several
  times over because concurrent requests on an API thread share one INSERT
  statement and one commit (a 202 still means committed), and the exact
  accounting run shows no request lost or doubled. The tail was the
  database's, not ours: at ~17k inserts/s WAL fills a 16 MB segment about
  every second, and a freshly checkpointed cluster at the default
  \`min_wal_size\` (80 MB) had to create and zero-fill new segments mid-run:
  every ~1.2 s both API threads' batches stalled ~50 ms together (the API
  logs any enqueue batch over 20 ms), for a p99 near 40 ms. With
  \`min_wal_size=1GB\` (deploy/pg.sh; pgbench's baseline runs on the same
  cluster) segments are recycled and p99 drops to single-digit ms.
- **Memory.** An idle worker is a little over 1 MiB of private memory; the
  rest of its resident size is shared-library pages. libcurl/OpenSSL are
  initialised on first use, not at start (that alone was 3 MiB).

## How each figure is taken

- **Drain.** \`agentq-bench drain\` empties \`jobs\`, inserts $DRAIN_JOBS \`noop\` jobs
  with one \`INSERT ... SELECT generate_series\`, runs \`VACUUM ANALYZE\` and
  \`CHECKPOINT\`, reads \`SELECT clock_timestamp()\`, then starts the workers
  (\`agentq-worker $WFLAGS\`, default AGENTQ_POLL_MS), with $DB_CONNS database
  connections in all whatever the process count (\`AGENTQ_DB_CONNECTIONS=$DB_CONNS\` for one
  worker, $((DB_CONNS / 2)) each for two): on two cores more server processes only contend.
  One persistent
  connection polls \`SELECT count(*) FROM jobs WHERE status IN ('queued','running')\` every 10 ms;
  when it reaches 0, drain = max(finished_at) − the start stamp, both from the
  database clock, so worker startup is included and poll spacing is not.
  Median of $RUNS runs per configuration.
- **Ceiling (a).** The same table freshly loaded the same way, then pgbench
  runs \`tests/bench/claim_complete_100.sql\` (the worker's claim query, $PGB_BATCH
  rows, then one completing UPDATE) with \`-c $PGB_CLIENTS -j $PGB_THREADS -t $PGB_TX\`, which
  drains exactly $DRAIN_JOBS jobs; jobs/s = $PGB_BATCH × tps. The runs are interleaved
  with the drain runs. Median of $RUNS.
- **Ceiling (b).** \`tests/bench/single_job.sql\`: insert one job, claim one with
  the same claim (LIMIT 1), complete it: the per-job floor of three commits.
- **Latency.** \`agentq-bench latency\` starts one worker (\`--concurrency $LAT_CONCURRENCY\`,
  AGENTQ_TEST_HANDLERS=1), waits until it has registered and idled $IDLE_MS ms, then
  from its own connection enqueues one \`test_stamp\` job every $LAT_INTERVAL_MS ms. t0 is
  CLOCK_REALTIME just before the INSERT is sent; the handler records its own
  CLOCK_REALTIME at start in \`output.started_us\`; latency = started_us − t0
  (the enqueue's commit included). Percentiles are nearest-rank over all $LAT_JOBS jobs.
- **API.** \`agentq-api\` with its default threads (one per CPU) and one user whose
  rate limit and queue quota are lifted (the quota counts a user's queued jobs and
  no worker drains them here). wrk (\`tests/bench/chat.lua\`) POSTs
  \`{"message":...}\` to /v1/chat on $API_CONNS keep-alive connections for ${API_SECONDS} s; a 202 means the
  row is committed. Then \`agentq-bench chatload\` sends exactly $API_CHATLOAD requests and checks that
  the job ids of the 202s and the rows in jobs are the same set. The baseline is
  pgbench inserting one row per transaction with $API_CONNS clients on the same cluster: the
  API passes it because concurrent requests share one INSERT statement and one commit.
- **Memory.** VmRSS / VmHWM from \`/proc/PID/status\` of workers this bench
  started (and stops, by PID). "Idle" is read after the worker has connected,
  written its first heartbeat and idled $IDLE_MS ms with an empty queue.
EOF
mkdir -p "$(dirname "$OUT")"
mv "$tmp" "$OUT"
chmod 644 "$OUT"
say ""
sed -n '/^## Results/,/^## How each/p' "$OUT" | sed '$d'
say "written: $OUT ($ELAPSED s)"
