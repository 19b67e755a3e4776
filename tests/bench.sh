#!/bin/sh
# bench.sh — `make bench`: measures agentq against a private PostgreSQL cluster
# and the pgbench ceiling of the same SQL on that cluster, prints every figure
# and rewrites docs/BENCHMARKS.md. The measuring is done by bin/agentq-bench
# (tests/bench/*.c: drain timing on the database clock, enqueue→start latency,
# worker memory); this script starts the cluster, runs the steps, takes
# medians and writes the report. Runs unattended as root or not; about
# 2 minutes plus the steady-state runs (STEADY_SECONDS at each of
# STEADY_PCTS, 60 s x 3 by default) and the 1,000,000-finished-rows drains:
# about 6 minutes in all; then the agent turn step (about 2 minutes): a fake
# model (bin/agentq-fake --llm-delay-ms) answering instantly and after 1 s,
# the cluster restarted at max_connections=60, the worker logged in as a
# role that is not a superuser.
#
# AGENTQ_BENCH_ONLY=turns runs only the agent turn step, AGENTQ_BENCH_ONLY=history
# only the history drains (about 1 minute), AGENTQ_BENCH_ONLY=steady only the
# 1-worker drains (the steady rates are % of their median) and the
# steady-state step (with each window's claim figures: calls, mean time,
# buffers per call): their figures go to stdout and docs/BENCHMARKS.md is
# left as it is. AGENTQ_BENCH_STEADY_PCTS (default "10 25 50") and
# AGENTQ_BENCH_STEADY_SECONDS pick the steady rates and their length. The file's Soak section is `make soak`'s (tests/soak.sh):
# put back after the rewrite (tests/soak_section.sh). AGENTQ_BENCH_PORT picks the
# cluster's port (default 25433; the next port up is the API's: both below the
# kernel's ephemeral range, 32768-60999 here, so no outgoing connection of the
# run, wrk's or the worker's, can be holding the API's port when it starts;
# seen as "address in use" three times on 55434).
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
PORT=${AGENTQ_BENCH_PORT:-25433}
ONLY=${AGENTQ_BENCH_ONLY:-}
DIR=.tmp/bench-pg
OUT=docs/BENCHMARKS.md
# targets (from the benchmark issue)
TARGET_RATIO_PCT=80      # drain ≥ 80 % of ceiling (a)
TARGET_P99_US=1500       # enqueue → handler start p99 ≤ 1.5 ms
TARGET_IDLE_KB=10240     # idle worker VmRSS < 10 MiB
API_CONNS=64             # API load: wrk connections, seconds, and the exact-accounting run's size
API_SECONDS=20
API_CHATLOAD=20000
API_PORT=$((PORT + 1))
TARGET_API_X=3           # POST /v1/chat req/s ≥ 3 × pgbench single-INSERT tps
TARGET_API_P99_MS=25
TARGET_API_KB=30720      # API resident memory < 30 MiB at load
STEADY_PCTS=${AGENTQ_BENCH_STEADY_PCTS:-10 25 50}   # steady state: producer rates, % of the 1-worker drain figure of this run
STEADY_SECONDS=${AGENTQ_BENCH_STEADY_SECONDS:-60}   # per rate
STEADY_WINDOW_S=10       # figures per window of this many seconds
STEADY_API_PCT=10        # of each rate, this % as single rows through POST /v1/jobs; the rest 100-row INSERTs
TARGET_STEADY_PCT=25     # p99 ≤ TARGET_STEADY_P99_US at this rate
TARGET_STEADY_P99_US=10000
TURNS_MAX_CONNECTIONS=60   # agent turns: Postgres restarted at this max_connections
TURNS_ROLE=agentq_bench_worker   # ... the worker logs in as this role (no superuser)
TURNS_CEIL_JOBS=3000       # ceiling: this many turns against an instant model ...
TURNS_CEIL_CONCURRENCY=40  # ... at this --concurrency (under max_connections, so the same step also measured the worker that held a connection per turn)
TURNS_DELAY_MS=1000        # then a model answering after this long, at each --concurrency of
TURNS_CONCURRENCIES="100 1000 5000"
TURNS_WAVES=3              # turns per run: this many × the concurrency
TURNS_TIMEOUT_S=40         # each run is cut off after this long (figures: what completed)
TARGET_TURNS_AT=5000       # targets at this concurrency:
TARGET_TURNS_PCT=80        #   turns/s ≥ 80 % of min(concurrency/delay, ceiling)
TARGET_TURNS_CONNS=16      #   worker database connections at peak
TARGET_TURNS_KB=262144     #   worker VmHWM (256 MiB)
BIG_FINISHED=1000000     # the history case: this many finished rows ...
BIG_JOBS=100000          # ... and this many queued, drained by a fresh worker, HISTORY_RUNS times
HISTORY_RUNS=3           # (a load before each; the first drain against the later ones' median)
TARGET_BIG_PCT=10        # the first drain within 10 % of the later ones' median
TARGET_RETENTION_PCT=90  # each history drain ≥ 90 % of the empty-table drain run after it

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
for b in agentq agentq-api agentq-worker agentq-mime.so agentq-bench agentq-fake; do
    [ -x "bin/$b" ] || die "bin/$b missing: build first (make all bin/agentq-bench bin/agentq-fake)"
done
[ -x "$PGBIN/pgbench" ] || die "$PGBIN/pgbench not found (make deps installs postgresql-15)"
# Copies, so a build running meanwhile (e.g. `make test` relinking bin/ as the
# SANITIZE=1 variant) cannot swap the binaries under a measurement.
mkdir -p "$BIN"
cp bin/agentq bin/agentq-api bin/agentq-worker bin/agentq-mime.so bin/agentq-bench bin/agentq-fake "$BIN/"
grep -q __asan_init "$WORKER" &&
    die "bin/agentq-worker is the SANITIZE=1 build; benchmark the plain one (make all bin/agentq-bench)"
M_BUILD="bin/ as built by make (checked: not the SANITIZE=1 variant)"

API_PID=""
cleanup() {
    [ -z "$API_PID" ] || kill -TERM "$API_PID" 2>/dev/null || true   # an API this run started, by PID
    sh deploy/pg.sh stop "$DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }          # kv LINE KEY
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }                               # calc FORMAT EXPR
mib() { calc '%.1f MiB' "$1/1024"; }
ms() { calc '%.2f' "$1/1000"; }                                           # µs → ms
sql() { "$PGBIN/psql" "$URL" -AtXq -v ON_ERROR_STOP=1 -c "$1"; }
say() { printf '%s\n' "$*"; }
list() { printf '%s' "$*" | sed 's/^ *//; s/  */, /g'; }                  # " a b c" → "a, b, c"

# ---- cluster: private, fresh database, fsync and synchronous_commit on ----
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
URL=$(sh deploy/pg.sh start "$DIR" "$PORT")
# pg_stat_statements times the completion statement in the steady-state runs:
# preloaded (a restart of this private cluster, once), tracking only there.
if [ "$("$PGBIN/psql" "$URL dbname=postgres" -AtXqc 'SHOW shared_preload_libraries')" != pg_stat_statements ]; then
    "$PGBIN/psql" "$URL dbname=postgres" -AtXq -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    sh deploy/pg.sh restart "$DIR" "$PORT"
fi
pgss_track() {   # pgss_track none|top
    "$PGBIN/psql" "$URL dbname=postgres" -AtXq -c "ALTER SYSTEM SET pg_stat_statements.track = '$1'" \
        -c "SELECT pg_reload_conf()" >/dev/null
}
pgss_track none
# Any statement slower than 500 ms is logged with its plan (server.log in $DIR):
# the evidence if a run ever stalls. So is every autovacuum, with its start
# implied by its end and its elapsed time: the evidence of which runs one
# shared the machine with.
# (LOAD first: ALTER SYSTEM refuses a parameter of a module the session has not loaded)
"$PGBIN/psql" "$URL dbname=postgres" -AtXq -c "LOAD 'auto_explain'" \
    -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER SYSTEM SET auto_explain.log_min_duration = '500ms'" \
    -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" -c "SELECT pg_reload_conf()" >/dev/null
"$PGBIN/psql" "$URL dbname=postgres" -AtXq -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $AGENTQ_DBNAME" -c "CREATE DATABASE $AGENTQ_DBNAME"
export DATABASE_URL="$URL"
"$BIN/agentq" migrate >"$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; die "migrate failed"; }
sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

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

# ---- agent turns (issue 13): defined here, run last (it restarts the cluster) ----
# One run: turns_run NAME JOBS DELAY_MS CONCURRENCY; sets T_<field>_NAME for the report.
turns_run() {
    out=$(AQ_BENCH_FAKE="$BIN/agentq-fake" AQ_BENCH_WORKER_URL="$WURL" $BENCH turns --jobs "$2" --delay-ms "$3" \
        --timeout-s "$TURNS_TIMEOUT_S" --log "$LOGS/turns/$1.log" -- $WORKER --concurrency "$4" 2>"$LOGS/turns/$1.err") ||
        { cat "$LOGS/turns/$1.err" >&2; die "agentq-bench turns $1 failed"; }
    for k in succeeded failed unfinished seconds turns_per_s turn_p50_ms turn_p99_ms peak_db_conns peak_threads \
        hwm_kb model_max_waiting replies doubled_replies started timed_out; do
        eval "T_${k}_$1=\$(kv \"\$out\" $k)"
    done
    say "turns $1: $2 turns, model $3 ms, --concurrency $4: $(kv "$out" succeeded) succeeded," \
        "$(kv "$out" failed) failed, $(kv "$out" unfinished) unfinished in $(kv "$out" seconds) s" \
        "= $(kv "$out" turns_per_s) turns/s; worker peak $(kv "$out" peak_db_conns) database connections," \
        "$(kv "$out" peak_threads) threads, VmHWM $(kv "$out" hwm_kb) kB; model calls waiting at once:" \
        "$(kv "$out" model_max_waiting); turn p50 $(kv "$out" turn_p50_ms) ms, p99 $(kv "$out" turn_p99_ms) ms;" \
        "$(kv "$out" replies) replies stored, $(kv "$out" doubled_replies) turns with more than one;" \
        "$(kv "$out" peak_running) turns running at once at peak"
    [ "$(kv "$out" started)" = 1 ] || say "  the worker did not start: $(tail -n 3 "$LOGS/turns/$1.log" | tr '\n' ' ')"
    sed 's/^/  /' "$LOGS/turns/$1.err"
}
turns_step() {
    T_STEP_START=$(date +%s)
    mkdir -p "$LOGS/turns"
    rm -f "$LOGS"/turns/*
    AQ_PG_MAX_CONNECTIONS=$TURNS_MAX_CONNECTIONS sh deploy/pg.sh restart "$DIR" "$PORT"
    T_MAXCONN=$(sql 'SHOW max_connections')
    [ "$T_MAXCONN" = "$TURNS_MAX_CONNECTIONS" ] || die "max_connections is $T_MAXCONN after the restart"
    sql "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TURNS_ROLE') THEN
             CREATE ROLE $TURNS_ROLE LOGIN NOSUPERUSER; END IF; END \$\$" >/dev/null
    sql "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $TURNS_ROLE" >/dev/null
    sql "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO $TURNS_ROLE" >/dev/null
    WURL=$(printf '%s' "$URL" | sed "s/user=postgres/user=$TURNS_ROLE/")
    turns_run ceiling "$TURNS_CEIL_JOBS" 0 "$TURNS_CEIL_CONCURRENCY"
    T_CEIL=$T_turns_per_s_ceiling
    T_ROWS="| ceiling: instant model | $TURNS_CEIL_CONCURRENCY | $TURNS_CEIL_JOBS | $(turns_cells ceiling) | — |
"
    for c in $TURNS_CONCURRENCIES; do
        turns_run "c$c" $((c * TURNS_WAVES)) "$TURNS_DELAY_MS" "$c"
        ideal=$(calc '%.0f' "($c * 1000 / $TURNS_DELAY_MS < $T_CEIL) ? $c * 1000 / $TURNS_DELAY_MS : $T_CEIL")
        eval "pct=\$(calc '%.0f' \"100 * \$T_turns_per_s_c$c / ($ideal > 0 ? $ideal : 1)\")"
        eval "T_pct_c$c=$pct; T_ideal_c$c=$ideal"
        T_ROWS="$T_ROWS| $TURNS_DELAY_MS ms model | $c | $((c * TURNS_WAVES)) | $(turns_cells "c$c") | $pct % of $ideal |
"
    done
    a=c$TARGET_TURNS_AT
    eval "tr_pct=\$T_pct_$a; tr_ideal=\$T_ideal_$a; tr_rate=\$T_turns_per_s_$a; tr_conns=\$T_peak_db_conns_$a"
    eval "tr_kb=\$T_hwm_kb_$a; tr_ran=\$T_started_$a"
    # a worker that did not start (or refused the flags) meets none of them
    VT_RATE=$(verdict "$tr_ran == 1 && $tr_pct >= $TARGET_TURNS_PCT")
    VT_CONNS=$(verdict "$tr_ran == 1 && $tr_conns <= $TARGET_TURNS_CONNS")
    VT_KB=$(verdict "$tr_ran == 1 && $tr_kb >= 0 && $tr_kb <= $TARGET_TURNS_KB")
    f_rate="$tr_rate turns/s = $tr_pct % of $tr_ideal"; f_conns="$tr_conns at peak"; f_kb="VmHWM $tr_kb kB"
    if [ "$tr_ran" != 1 ]; then f_rate="the worker did not start"; f_conns=$f_rate; f_kb=$f_rate; fi
    TURNS_VERDICTS="| $TARGET_TURNS_AT turns in flight: turns/s ≥ $TARGET_TURNS_PCT % of min($TARGET_TURNS_AT/s, ceiling) | $f_rate | $VT_RATE |
| $TARGET_TURNS_AT turns in flight: ≤ $TARGET_TURNS_CONNS database connections | $f_conns | $VT_CONNS |
| $TARGET_TURNS_AT turns in flight: ≤ $(mib "$TARGET_TURNS_KB") resident | $f_kb | $VT_KB |
"
    pf() { if [ "$1" = met ]; then echo PASS; else echo MISS; fi; }
    say "target: $TARGET_TURNS_AT in flight, turns/s ≥ $TARGET_TURNS_PCT % of min($TARGET_TURNS_AT/s, ceiling $T_CEIL/s):" \
        "$f_rate: $(pf "$VT_RATE")"
    say "target: $TARGET_TURNS_AT in flight, ≤ $TARGET_TURNS_CONNS database connections: $f_conns: $(pf "$VT_CONNS")"
    say "target: $TARGET_TURNS_AT in flight, ≤ $(mib "$TARGET_TURNS_KB") resident: $f_kb: $(pf "$VT_KB")"
    T_STEP_S=$(( $(date +%s) - T_STEP_START ))
    say "agent turn step: $T_STEP_S s"
}
# The cells of one run's row in the report: turns/s | ok/failed/unfinished | conns | threads | VmHWM | waiting | p50/p99
turns_cells() {
    eval "r=\$T_turns_per_s_$1; ok=\$T_succeeded_$1; f=\$T_failed_$1; u=\$T_unfinished_$1; co=\$T_peak_db_conns_$1"
    eval "th=\$T_peak_threads_$1; kb=\$T_hwm_kb_$1; w=\$T_model_max_waiting_$1; p50=\$T_turn_p50_ms_$1"
    eval "p99=\$T_turn_p99_ms_$1; st=\$T_started_$1; to=\$T_timed_out_$1"
    note=""
    [ "$st" = 1 ] || note=" (the worker did not start)"
    [ "$to" = 1 ] && note=" (cut off at $TURNS_TIMEOUT_S s)"
    if [ "$kb" -ge 0 ] 2>/dev/null; then kb=$(mib "$kb"); else kb="—"; fi
    printf '**%s**%s | %s / %s / %s | %s | %s | %s | %s | %s / %s ms' "$r" "$note" "$ok" "$f" "$u" "$co" "$th" \
        "$kb" "$w" "$p50" "$p99"
}
# The report's section on agent turns (markdown, to stdout).
turns_section() {
    cat <<EOT
## Agent turns

    make bench                              # all steps; or only this one (figures to stdout):
    AGENTQ_BENCH_ONLY=turns make bench

The same cluster, restarted with \`max_connections=$T_MAXCONN\`. One worker
(\`agentq-worker --concurrency C\`, its defaults otherwise) logs in as
\`$TURNS_ROLE\`, a role that is not a superuser, and runs \`agent_turn\` jobs
against \`agentq-fake --llm-delay-ms D\`, an OpenAI-compatible model that
answers every request after D ms (\`LLM_PROVIDER=openai\`). Each run starts
from emptied jobs and chat tables with its turns queued: one per user, each
in a new session, inserted by the statement \`POST /v1/chat\` runs
(\`aq_jobs_sql_enqueue_batch\`, 1,000 rows per statement, no HTTP). The
first row is the ceiling: an instant model at --concurrency
$TURNS_CEIL_CONCURRENCY (below max_connections, so a worker that opens a
connection per turn is measured at its best), the database-bound rate. The
others: a $TURNS_DELAY_MS ms model at each --concurrency, $TURNS_WAVES × C turns
per run; "of ideal" is turns/s against min(C / ${TURNS_DELAY_MS} ms, ceiling). A run is cut off after
$TURNS_TIMEOUT_S s and reports what completed by then. This step took $T_STEP_S s.

| model | --concurrency | turns | turns/s | succeeded / failed / unfinished | worker DB connections, peak | worker threads, peak | worker VmHWM | model calls waiting at once, peak | turn p50 / p99 | of ideal |
|---|---|---|---|---|---|---|---|---|---|---|
$T_ROWS
Connections: sessions of \`$TURNS_ROLE\` in \`pg_stat_activity\`, threads:
\`Threads:\` in \`/proc/PID/status\`, both sampled every 100 ms; VmHWM read
when the run ends; model calls waiting: the fake's own count; turn p50/p99:
\`finished_at - started_at\` of the succeeded turns. Failures, by reason,
are in the bench's stdout.
EOT
}
# ---- history (issues 11 and 15): defined here, run after the steady state ----
# 1,000,000 finished rows and 100,000 queued, a fresh worker each time,
# alternating with the same drain on an empty table (retention: history must
# not slow the queue), each history drain right after its load. Three pairs:
# one 1.3 s drain beside a million rows swings by 10-20 % on this shared
# machine from run to run (the empty-table drains beside them by 0-4 %), so
# the first is compared with the median of the later ones, not with one.
# Sets BIG1 BIG2 (that median) BIGS EMPTYS BIG_DIFF RETS RET_MIN.
history_step() {
    BIGS=""; EMPTYS=""; RETS=""; RET_MIN=""; LATER=""
    for run in $(seq 1 $HISTORY_RUNS); do
        d=$(AGENTQ_DB_CONNECTIONS=$DB_CONNS $BENCH drain --jobs "$BIG_JOBS" --finished "$BIG_FINISHED" --workers 1 \
            --timeout-s 300 --log "$LOGS/drain-big.log" -- $WORKER $WFLAGS)
        big=$(kv "$d" jobs_per_s)
        say "history drain $run: $BIG_JOBS jobs beside $BIG_FINISHED finished rows in $(kv "$d" seconds) s = $big jobs/s"
        d=$(AGENTQ_DB_CONNECTIONS=$DB_CONNS $BENCH drain --jobs "$BIG_JOBS" --workers 1 \
            --timeout-s 300 --log "$LOGS/drain-big.log" -- $WORKER $WFLAGS)
        empty=$(kv "$d" jobs_per_s)
        say "empty-table drain $run: $BIG_JOBS jobs in $(kv "$d" seconds) s = $empty jobs/s"
        ret=$(calc '%.0f' "100 * $big / $empty")
        BIGS="$BIGS${BIGS:+, }$big"; EMPTYS="$EMPTYS${EMPTYS:+, }$empty"; RETS="$RETS${RETS:+, }$ret %"
        [ -n "$RET_MIN" ] && [ "$RET_MIN" -le "$ret" ] || RET_MIN=$ret
        [ "$run" = 1 ] && BIG1=$big || LATER="$LATER $big"
    done
    BIG2=$(calc '%.0f' "$(median $LATER)")
    BIG_DIFF=$(calc '%.1f' "100 * ($BIG1 - $BIG2) / $BIG2")   # one decimal: the verdict compares this, not a rounding
}
# The report's paragraph on the history drains (markdown, to stdout).
history_section() {
    cat <<EOT
History: $BIG_JOBS queued jobs beside $BIG_FINISHED finished rows (loaded, \`VACUUM ANALYZE\`,
\`CHECKPOINT\`), drained by a fresh worker after each of $HISTORY_RUNS loads: **$BIGS** jobs/s.
The first is $BIG_DIFF % from the median of the later ones ($BIG2). Each alternated with the
same $BIG_JOBS-job drain on an empty table: **$EMPTYS** jobs/s, so the history leaves the
drain at $RETS of an empty table's.
EOT
}

verdict() { if awk "BEGIN {exit !($1)}"; then echo met; else echo "**missed**"; fi; }
if [ "$ONLY" = turns ]; then
    turns_step
    say ""
    turns_section
    exit 0
elif [ "$ONLY" = history ]; then
    history_step
    say ""
    history_section
    say ""
    say "| first drain within $TARGET_BIG_PCT % of the later ones' median | $BIG1 vs $BIG2 jobs/s ($BIG_DIFF %) |" \
        "$(verdict "$BIG_DIFF <= $TARGET_BIG_PCT && $BIG_DIFF >= -$TARGET_BIG_PCT") |"
    say "| each history drain ≥ $TARGET_RETENTION_PCT % of the empty-table drain beside it |" \
        "$RETS ($BIGS vs $EMPTYS jobs/s) |" "$(verdict "$RET_MIN >= $TARGET_RETENTION_PCT") |"
    exit 0
elif [ -n "$ONLY" ] && [ "$ONLY" != steady ]; then
    die "AGENTQ_BENCH_ONLY=$ONLY: the steps that run alone are 'turns', 'history' and 'steady'"
fi

if [ "$ONLY" != steady ]; then

# ---- footprint: one idle worker with the drain flags ----
idle=$($BENCH idle --idle-ms "$IDLE_MS" --log "$LOGS/idle.log" -- $WORKER $WFLAGS)
IDLE_KB=$(kv "$idle" rss_kb)
IDLE_ANON_KB=$(kv "$idle" anon_kb)
IDLE_FILE_KB=$(kv "$idle" file_kb)
IDLE_THREADS=$(kv "$idle" threads)
IDLE_STARTUP_MS=$(kv "$idle" startup_ms)
say "idle worker ($WFLAGS): VmRSS $IDLE_KB kB after ${IDLE_MS} ms idle (RssAnon $IDLE_ANON_KB kB," \
    "RssFile $IDLE_FILE_KB kB), $IDLE_THREADS threads, registered ${IDLE_STARTUP_MS} ms after exec"
fi

# ---- drain (1 and 2 workers) and ceiling (a), interleaved run by run ----
PGB_TX=$((DRAIN_JOBS / PGB_BATCH / PGB_CLIENTS))
D1=""; D2=""; S1=""; S2=""; PA=""; HWM_KB=0; FIRST=""
DRAIN_WORKERS="1 2"
[ "$ONLY" = steady ] && DRAIN_WORKERS=1
for run in $(seq 1 "$RUNS"); do
    for w in $DRAIN_WORKERS; do
        d=$(AGENTQ_DB_CONNECTIONS=$((DB_CONNS / w)) $BENCH drain --jobs "$DRAIN_JOBS" --workers "$w" \
            --log "$LOGS/drain-$w.log" -- $WORKER $WFLAGS)
        jps=$(kv "$d" jobs_per_s); secs=$(kv "$d" seconds); hwm=$(kv "$d" hwm_kb)
        [ "$hwm" -gt "$HWM_KB" ] && HWM_KB=$hwm
        FIRST="$FIRST $(kv "$d" first_claim_ms)"
        if [ "$w" = 1 ]; then D1="$D1 $jps"; S1="$S1 $secs"; else D2="$D2 $jps"; S2="$S2 $secs"; fi
        say "run $run: agentq drain, $w worker(s): $DRAIN_JOBS jobs in $secs s = $jps jobs/s (VmHWM $hwm kB)"
    done
    [ "$ONLY" = steady ] && continue
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
MD1=$(median $D1)
if [ "$ONLY" = steady ]; then
    export AGENTQ_SECRET_KEY
    AGENTQ_SECRET_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    TOKEN=$("$BIN/agentq" users add "bench$$" | tail -n 1)
else
MD2=$(median $D2); MPA=$(median $PA)
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
API_PID=""
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
fi

# ---- steady state: one worker on an empty table, then a constant producer ----
# window_rows PCT LINES: the report's table rows for `steady_window` lines
window_rows() {
    printf '%s\n' "$2" | while read -r line; do
        [ -n "$line" ] || continue
        printf '| %s %% | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s / %s |\n' "$1" \
            "$(kv "$line" w)" "$(kv "$line" jobs)" \
            "$(calc '%.2f' "$(kv "$line" p50_us)/1000")" "$(calc '%.2f' "$(kv "$line" p95_us)/1000")" \
            "$(calc '%.2f' "$(kv "$line" p99_us)/1000")" "$(calc '%.2f' "$(kv "$line" max_us)/1000")" \
            "$(kv "$line" backlog)" "$(kv "$line" succeed_mean_us)" "$(kv "$line" succeed_row_us)" \
            "$(kv "$line" dead_tup)" "$(kv "$line" autovacuums)" "$(kv "$line" claim_idx_kb)" "$(kv "$line" running_idx_kb)"
    done
}
AGENTQ_LISTEN=127.0.0.1:$API_PORT AGENTQ_USER_RATE=1000000 AGENTQ_USER_QUEUE_QUOTA=0 AGENTQ_LOG_LEVEL=warn \
    "$BIN/agentq-api" 2>"$LOGS/api-steady.log" &
API_PID=$!
i=0
until curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "agentq-api did not start (see $LOGS/api-steady.log)"; sleep 0.1
done
pgss_track top
ST_ROWS=""; ST_WINDOWS=""; ST_VERDICTS=""
for pct in $STEADY_PCTS; do
    rate=$(calc '%.0f' "$MD1 * $pct / 100")
    out=$(AQ_BENCH_API="http://127.0.0.1:$API_PORT" AQ_BENCH_TOKEN=$TOKEN $BENCH steady --rate "$rate" \
        --seconds "$STEADY_SECONDS" --window-s "$STEADY_WINDOW_S" --api-pct "$STEADY_API_PCT" \
        --log "$LOGS/steady-$pct.log" -- $WORKER $WFLAGS) || say "  warning: steady run at $pct % reported a failure"
    printf '%s\n' "$out" >"$LOGS/steady-$pct.out"
    sum=$(printf '%s\n' "$out" | grep '^steady ' || true)
    [ -n "$sum" ] || die "steady run at $pct % printed no summary (see $LOGS/steady-$pct.log)"
    fp=$(kv "$sum" first_p99_us); lp=$(kv "$sum" last_p99_us); mb=$(kv "$sum" max_backlog)
    cu=$(kv "$sum" catchup_ms); sm=$(kv "$sum" succeed_mean_us); av=$(kv "$sum" autovacuums)
    srows=$(kv "$sum" succeed_rows_per_call)
    ach=$(kv "$sum" achieved_per_s); api=$(kv "$sum" api); refused=$(kv "$sum" api_refused)
    if [ "$(kv "$sum" flat)" = 1 ]; then flat=met; else flat="**missed**"; fi
    say "steady $pct % ($rate jobs/s; reached $ach/s, $api through the API, $refused refused): p99 first window" \
        "$(calc '%.2f' "$fp/1000") ms, last $(calc '%.2f' "$lp/1000") ms; max backlog $mb; caught up ${cu} ms after" \
        "the producers stopped; completion mean $sm µs/call ($srows rows/call); $av autovacuum(s) of jobs"
    ST_ROWS="$ST_ROWS| $pct % | $rate (reached $ach) | $(calc '%.2f' "$fp/1000") ms | $(calc '%.2f' "$lp/1000") ms | $mb | $cu ms | $sm µs, $srows rows/call | $av | $flat |
"
    wins=$(printf '%s\n' "$out" | grep '^steady_window ' || true)
    [ "$ONLY" = steady ] && printf '%s\n' "$wins"
    ST_WINDOWS="$ST_WINDOWS$(window_rows "$pct" "$wins")
"
    # the target holds for every window, not only the last
    wmax=$(printf '%s\n' "$wins" | sed -n 's/.* p99_us=\([0-9-]*\).*/\1/p' | sort -g | tail -1)
    if [ "$pct" = "$TARGET_STEADY_PCT" ]; then ST_TARGET_P99=$wmax; fi
    ST_VERDICTS="$ST_VERDICTS| steady state at $pct %: last window's p99 ≤ 2 × the first's, backlog drained | first $(calc '%.2f' "$fp/1000") ms, last $(calc '%.2f' "$lp/1000") ms, max backlog $mb | $flat |
"
done
pgss_track none
kill -TERM "$API_PID"; wait "$API_PID" || say "note: agentq-api exited non-zero"
API_PID=""
if [ "$ONLY" = steady ]; then
    say "steady state at $TARGET_STEADY_PCT %: worst window p99 $(ms "${ST_TARGET_P99:-0}") ms" \
        "(target ≤ $(ms "$TARGET_STEADY_P99_US") ms); drain, 1 worker: $MD1 jobs/s (median of $(list "$D1"))"
    exit 0
fi

history_step

turns_step

WARNS=$(cat "$LOGS"/*.log | grep -c '"level":"\(warn\|error\)"' || true)
[ "$WARNS" = 0 ] || say "note: the worker logs ($LOGS) hold $WARNS warning/error lines"

# ---- targets ----
V1=$(verdict "$R1 >= $TARGET_RATIO_PCT"); V2=$(verdict "$R2 >= $TARGET_RATIO_PCT")
VL=$(verdict "$L_p99 <= $TARGET_P99_US"); VM=$(verdict "$IDLE_KB < $TARGET_IDLE_KB")
VAX=$(verdict "$A_X >= $TARGET_API_X"); VAP=$(verdict "$A_P99 <= $TARGET_API_P99_MS")
VAE=$(verdict "$A_OTHER == 0 && ${CL_EXACT:-0} == 1"); VAM=$(verdict "$A_KB < $TARGET_API_KB")
VST=$(verdict "${ST_TARGET_P99:-999999999} <= $TARGET_STEADY_P99_US")
VBIG=$(verdict "$BIG_DIFF <= $TARGET_BIG_PCT && $BIG_DIFF >= -$TARGET_BIG_PCT")
VRET=$(verdict "$RET_MIN >= $TARGET_RETENTION_PCT")
ELAPSED=$(( $(date +%s) - T_START ))

# ---- report ----
tmp=$(mktemp)
cat >"$tmp" <<EOF
# Benchmarks

How fast agentq moves jobs through PostgreSQL, against the fastest the same
SQL goes when pgbench drives it directly on the same cluster in the same run.
This file is generated by \`make bench\` (tests/bench.sh and bin/agentq-bench,
built from tests/bench/); every run overwrites it but the Soak section at its end
(\`make soak\`, tests/soak.sh, which bench.sh carries over). Figures come from one machine
and one run: compare ratios across machines, not absolute numbers.

## Command

    make bench

It builds everything, starts a private PostgreSQL cluster in \`$DIR\`
(port $PORT, from AGENTQ_BENCH_PORT, default 25433; fsync and synchronous_commit on), runs every step below, stops
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
${ST_VERDICTS}| steady state at $TARGET_STEADY_PCT %: p99 ≤ $(ms "$TARGET_STEADY_P99_US") ms in every window | worst window $(ms "${ST_TARGET_P99:-0}") ms | $VST |
| history: first drain within $TARGET_BIG_PCT % of the later ones' median | $BIG1 vs $BIG2 jobs/s ($BIG_DIFF %) | $VBIG |
| retention: each history drain ≥ $TARGET_RETENTION_PCT % of the empty-table drain beside it | $RETS ($BIGS vs $EMPTYS jobs/s) | $VRET |
${TURNS_VERDICTS}
## Steady state

One worker (\`$WFLAGS\`) starts on an empty, freshly vacuumed table and idles
a second; then producers insert at a constant rate for $STEADY_SECONDS s: $STEADY_API_PCT % of
it as single rows through \`POST /v1/jobs\` (up to 64 connections), the rest as
100-row INSERTs from SQL. Rates are % of this run's 1-worker drain figure
($MD1 jobs/s). Latency is enqueue → start, \`started_at - created_at\` on the
database clock (a prefetched job starts when it is claimed).

| rate | jobs/s | p99, first window | p99, last window | max backlog | caught up after the producers stopped | completion statement, mean per call | autovacuums of jobs | flat |
|---|---|---|---|---|---|---|---|---|
${ST_ROWS}
Per $STEADY_WINDOW_S s window (backlog, dead rows and index sizes sampled at the window's end;
completion = the success-completion statement, \`pg_stat_statements\` mean µs per call / per row in the window):

| rate | window | jobs | p50 ms | p95 ms | p99 ms | max ms | backlog | completion µs/call / µs/row | dead rows in jobs | autovacuums | jobs_claim / jobs_running kB |
|---|---|---|---|---|---|---|---|---|---|---|---|
${ST_WINDOWS}
$(history_section)

$(turns_section)

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
- **Steady state** (issue 11). Before, a worker that connected to an empty
  table kept the generic plans Postgres made for its prepared statements
  there: the success completion walked all of \`jobs_running\` per call and
  the rescue scanned the whole table, so under a constant 10k jobs/s (SQL
  only) the completion's time per row grew from 107 to 171 µs over 40 s and
  p99 enqueue → start from 33 to 160 ms. With custom plans the same run held
  10–12 µs per row. The statements that find rows by id no longer offer the
  planner a scan of \`jobs_running\` (sql/014; tests/t_plans.c checks the
  plans right after a vacuum), and the claim starts at its floor (the key it
  last claimed), so the dead entries at the queue's head cost it nothing
  (tests: \`engine_floor_keeps_claims_off_dead_head\`, a claim reading 4
  index buffers instead of 484). Completion time per row stays flat in every
  window above. What still moves is the tail, and not with the dead rows:
  with \`autovacuum_naptime\` at 10 s instead of 60 s (trial, this machine,
  2026-11-30) dead rows stayed near 170,000 and the indexes at a third of
  their size, yet p99 at 25 % was 13.6–18.4 ms against 11.6–12.5 ms with
  the default in a run just before (each vacuum takes CPU from the two
  cores). What drove the tail was the API's share of the traffic and what
  it cost everyone: the same rate with SQL producers only ran at p50 1.2 ms,
  p99 ~2 ms (20 s runs, \`agentq-bench steady\` alone, 2026-12-01), with 10 %
  through the API at p50 2.6 ms, p99 6–8 ms, and planning was a quarter of
  the machine (\`pg_stat_statements.track_planning\`: 0.28 ms per claim,
  0.30 ms per API batch, 0.16 ms per completion, ~900 claims and ~720
  batches a second). Four changes (docs/DESIGN.md, "Wake-ups after the
  commit"; worker/engine.c, "Claim wanting"; api/enqueue.c, "Plans"): the
  API's small batches wake the workers after their commit (sql/023) and the
  workers' completions wake long-polls after theirs (sql/024), so fewer
  commits hold the cluster-wide NOTIFY lock through their WAL flush; a batch
  without sessions or keys runs a plain statement with one generic plan
  (it reads no growing table); and the engine keeps one claim out at a
  time, the wake-ups meanwhile served by the next (27 % fewer claims). In
  20 s runs at 25 % p50 went from ~2.6–3.0 to ~2.0 ms and p99 from 6–10 to
  5–7 ms; the first full run after them (2026-12-01, 00:34) had every 25 %
  window at 4.9–6.6 ms and 50 % flat (10.7 → 13.6 ms); at 50 % the rate
  now offered (~29k jobs/s, since the drain rose) keeps both cores ~90 %
  busy, and its last windows' tail grew in about half the runs, each time
  with one of two events inside them. A checkpoint: at ~30 MB/s of WAL the cluster's 2 GB
  \`max_wal_size\` started one ~35 s in, and its writes (the buffer pool in
  half a minute, to the disk the commits flush to) raised p99 to 40–52 ms
  in the windows after it (three 60 s runs of \`agentq-bench steady\` at
  50 %, 2026-12-01, the server log placing each checkpoint), against 17–28
  ms in the last windows of two runs without one. The cluster now has
  \`max_wal_size=8GB\` (deploy/pg.sh; the README's Operations says why), so
  a rate's run, which starts from a \`CHECKPOINT\` and writes ~2 GB, has
  none inside it: what these windows measure is the queue without a
  checkpoint, and a checkpoint's writes still cost what they cost (on this
  disk, 2–3× the p99 while they last). And autovacuum's first pass over
  jobs, which remains: one visit a minute
  (\`autovacuum_naptime\`), at a phase the run does not choose, over a table
  that grew by ~1.7M rows in the minute. A controlled trial (2026-12-01,
  autovacuum off for jobs, a \`VACUUM\` started ~35 s into a 50 % run with
  autovacuum's throttle, 2 ms per 200 cost units): the pass took 20 s, and
  the windows it overlapped had p99 68 and 33 ms against 12–18 ms before
  and 13 ms after; throttled to 10 ms it took 87 s and those windows had 29
  and 12–22 ms. A pass early in the run, over a small table, costs nothing
  visible: the runs whose only pass came in the first window were flat.
  On this shared two-core machine a 10 s window's p99 also moves by a few
  ms from run to run. What the 50 % step asks of the two cores (\`/proc\`
  accounting over 15 s of 26k-jobs/s runs, 2026-12-01, a day the drain
  measured ~52k): the engine ~1.1 cores (its two sessions and the worker;
  ~42 µs of CPU per job against ~33 µs in a drain, whose rounds are bigger:
  each claim and completion is planned afresh, ~14 % of its sessions'
  time), and the producers ~0.9 core: the SQL producer's session ~0.3 and
  the API's path ~0.6 for its 10 % of the rows (its sessions ~0.4, at ~2
  rows a batch, each batch a statement, a commit and mostly a wake-up
  transaction; the API ~0.13; the HTTP client ~0.07). So 50 % of a drain
  asks for nearly the whole machine whatever the engine does; with SQL
  producers only, the same rate left ~40 % idle. Three cuts to the
  producers' share (2026-12-01): the API's batch no longer calls the quota
  function when no row has a quota, and its settings are constant
  statements that keep one plan (server time per batch 302.6 → 250.7 µs,
  \`pg_stat_statements\`, API-only at 2,600 requests/s); the bench's HTTP
  client is a plain keep-alive HTTP/1.1 client on epoll instead of libcurl
  (13.5 → 7.1 % of a core at 2,600 requests/s); its SQL producer prepares
  its INSERT (parsing had been an eighth of that session). Two interleaved
  pairs at 26k jobs/s, before and after, showed no difference in p99
  beyond the noise (9–16 ms in every window of all four runs).
  Before/after the issue's first change, same machine and day (drain ÷
  ceiling (a) of the same run): before (commit 0795a13) 1 worker 79 %, 2 workers 81 %; after, this run:
  the figures above. Custom plans cost planning time on every execution:
  200–250 µs per completion call under these loads
  (\`pg_stat_statements.track_planning\` in trial runs; off here, as it adds
  contention of its own).
- **Agent turns (issue 13).** The baseline, before the worker holds turns in
  flight without a thread and a connection (commit 8e28552, this machine,
  2026-11-30, the same step): ceiling 303 turns/s (43 connections, 45
  threads, 16.9 MiB). With the 1 s model every turn in flight held a pool
  thread and that thread's own connection, so max_connections capped the
  rest: at --concurrency 100, 105 threads and 56 connections at peak, 282
  of 300 turns succeeded and 18 failed "database unreachable (gave up after
  5 attempts)" (turns/s 7, since the stragglers' retries ran to the 40 s
  cut-off); at 1,000, 1,005 threads, 56 connections, 151 succeeded and
  2,849 failed the same way (each had stored its reply before failing: 3,000
  replies for 151 successes); at 5,000 the worker refused to start
  (\`--concurrency\` was capped at 1,024). In a trial run of the ceiling the
  engine's two connections also deadlocked on a completion round twice; the
  resent rounds were fenced out and 12 turns stored their reply twice.
- **Memory.** An idle worker is a little over 1 MiB of private memory; the
  rest of its resident size is shared-library pages. libcurl/OpenSSL are
  initialised on first use, not at start (that alone was 3 MiB), and GMime
  with its stack (GIO, GObject, GPGME) is loaded only when the worker first
  reads a message (\`bin/agentq-mime.so\`, docs/DESIGN.md): ~1.7 MiB, which
  had taken the idle worker from 9.5 to 11.3 MiB.

## How each figure is taken

- **Drain.** \`agentq-bench drain\` empties \`jobs\`, inserts $DRAIN_JOBS \`noop\` jobs
  with one \`INSERT ... SELECT generate_series\`, runs \`VACUUM ANALYZE\` and
  \`CHECKPOINT\`, reads \`SELECT clock_timestamp()\`, then starts the workers
  (\`agentq-worker $WFLAGS\`, default AGENTQ_POLL_MS), with $DB_CONNS database
  connections in all whatever the process count (\`AGENTQ_DB_CONNECTIONS=$DB_CONNS\` for one
  worker, $((DB_CONNS / 2)) each for two): on two cores more server processes only contend.
  One persistent
  connection asks every 10 ms whether a job is queued or running (two \`EXISTS\`
  probes of the partial indexes \`jobs_user_queued\` and \`jobs_running\`: the
  observer costs the same ~0 ms beside any history; a \`count(*)\` of
  \`status IN ('queued','running')\` was a sequential scan of the whole table);
  when none is, drain = max(finished_at) − the start stamp, both from the
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
- **Steady state.** \`agentq-bench steady\` (tests/bench/steady.c): \`TRUNCATE\`,
  \`VACUUM ANALYZE\`, \`CHECKPOINT\`, one worker started and idle for 1 s, then
  two producer threads paced on the monotonic clock for $STEADY_SECONDS s per rate
  (a producer behind its schedule catches up at once; the reached rate is
  reported). At each window's end: backlog (queued + running rows),
  \`pg_stat_user_tables\` for jobs, the index sizes, and \`pg_stat_statements\`
  (preloaded on this cluster, tracking only during these runs) for the
  success-completion statement. After the producers stop the
  backlog must drain; then p50/p95/p99 (nearest rank) and max of
  \`started_at - created_at\` per window of \`created_at\`. "Flat": the last
  window's p99 at most twice the first's, and the backlog drained. The three
  rates take $((STEADY_SECONDS * 3)) s of this run's $ELAPSED s.
- **History.** \`agentq-bench drain --finished $BIG_FINISHED --jobs $BIG_JOBS\`: the same
  drain with $BIG_FINISHED succeeded rows (finished an hour ago) loaded before the
  queued ones and analyzed with them; run $HISTORY_RUNS times, a fresh worker right after
  each load; the first compared with the median of the later ones; each followed by the
  same drain on an empty table (the retention comparison: \`agentq-bench drain --jobs $BIG_JOBS\`).
- **Agent turns.** \`agentq-bench turns\` (tests/bench/turns.c), per run: empty
  \`jobs\`, \`workers\` and the chat tables, queue the turns (above), \`VACUUM
  ANALYZE\`, \`CHECKPOINT\`, start the fake model, read the database clock,
  start the worker; then every 100 ms sample until no turn is queued or
  running. turns/s = succeeded ÷ (last success − that stamp); in a run cut
  off at $TURNS_TIMEOUT_S s, those succeeded by the cut-off ÷ the time to it.
  The worker is stopped with SIGTERM (\`AGENTQ_SHUTDOWN_GRACE_SECONDS=5\`).
  The step runs last, since it restarts the cluster.
- **Memory.** VmRSS / VmHWM from \`/proc/PID/status\` of workers this bench
  started (and stops, by PID). "Idle" is read after the worker has connected,
  written its first heartbeat and idled $IDLE_MS ms with an empty queue.
EOF
mkdir -p "$(dirname "$OUT")"
mv "$tmp" "$OUT"
chmod 644 "$OUT"
# the soak's section (tests/soak.sh, `make soak`) is not this run's: put it back
sh tests/soak_section.sh "$OUT" docs/soak/soak.md
say ""
sed -n '/^## Results/,/^## How each/p' "$OUT" | sed '$d'
say "written: $OUT ($ELAPSED s)"
