#!/bin/sh
# soak.sh — `make soak` (not in CI): SOAK_MINUTES (default 60) of a fixed mixed
# load against the real binaries on a private PostgreSQL cluster, one sample a
# minute, then a CSV, a plot and a report section:
#
#   docs/soak/soak.csv   one row a minute (tests/bench/soak.c lists the columns)
#   docs/soak/soak.png   resident memory, latency and table sizes over time (gnuplot)
#   docs/soak/soak.md    the section, also spliced into docs/BENCHMARKS.md between
#                        its soak markers (tests/soak_section.sh; `make bench`,
#                        which rewrites that file, splices it back the same way)
#
# The stack: one agentq-api, SOAK_WORKERS agentq-worker processes (default 2),
# one agentq-fake as the model (LLM mode, answering after SOAK_LLM_DELAY_MS).
# The load (agentq-bench soak, tests/bench/soak.c): SOAK_RATE noop jobs/s
# (SOAK_API_PCT % of them through POST /v1/jobs, the rest 10-row INSERTs),
# SOAK_CHAT_PER_MIN agent turns a minute through POST /v1/chat, and
# SOAK_SCHEDULES schedules firing every minute (each an agent turn).
#
# Verdicts: "RSS flat": over the last 10 samples (all but the first when
# fewer), the least-squares growth of each agentq process's VmRSS is below
# SOAK_RSS_KB_PER_MIN (default 64 kB a minute, under 4 MiB an hour);
# PostgreSQL's Pss is shown but not judged (its shared buffers fill as the
# tables grow: cache, by design). "Latency flat": the last sample's p99
# (enqueue→start and chat→reply) is at most twice the first's.
#
# SOAK_LAST_WORKER_ENV ("VAR=value ...", with 2 or more workers): extra environment for
# the last worker only, an A/B within one run (e.g. MALLOC_ARENA_MAX=2).
# AGENTQ_SOAK_PORT: the cluster's port (default 55473; the API takes the next).
# SOAK_OUT: where the CSV, PNG and section go (default docs/soak; only then is
# docs/BENCHMARKS.md updated). Processes are started and stopped by PID.
# shellcheck disable=SC2086,SC2317  # $wenv splits on purpose; cleanup runs from the trap
set -eu
cd "$(dirname "$0")/.."

# All of it in one function, parsed before it runs: editing this file while
# an hour's run reads it (sh reads scripts as it goes) cannot break that run.
main() {

MINUTES=${SOAK_MINUTES:-60}
WORKERS=${SOAK_WORKERS:-2}
RATE=${SOAK_RATE:-100}
API_PCT=${SOAK_API_PCT:-10}
CHAT_PER_MIN=${SOAK_CHAT_PER_MIN:-120}
SCHEDULES=${SOAK_SCHEDULES:-3}
LLM_DELAY_MS=${SOAK_LLM_DELAY_MS:-200}
RSS_KB_PER_MIN=${SOAK_RSS_KB_PER_MIN:-64}
WINDOW_S=${SOAK_WINDOW_S:-60}
LAST_ENV=${SOAK_LAST_WORKER_ENV:-}
PORT=${AGENTQ_SOAK_PORT:-55473}
API_PORT=$((PORT + 1))
OUT=${SOAK_OUT:-docs/soak}
DIR=.tmp/soak-pg
PGBIN=/usr/lib/postgresql/15/bin
BIN=$DIR/bin
LOGS=$DIR/logs

for v in $(env | sed -n 's/^\(AGENTQ_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export AGENTQ_DBNAME=agentq_soak

die() { echo "soak: $*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }
for b in agentq agentq-api agentq-worker agentq-mime.so agentq-bench agentq-fake; do
    [ -x "bin/$b" ] || die "bin/$b missing: build first (make all bin/agentq-bench bin/agentq-fake)"
done
command -v gnuplot >/dev/null || die "gnuplot not found (make deps installs gnuplot-nox)"
mkdir -p "$BIN" "$LOGS" "$OUT"
rm -f "$LOGS"/*
cp bin/agentq bin/agentq-api bin/agentq-worker bin/agentq-mime.so bin/agentq-bench bin/agentq-fake "$BIN/"
grep -q __asan_init "$BIN/agentq-worker" && die "bin/ is the SANITIZE=1 build; soak the plain one"

PIDS=""
cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done   # only what this run started
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    sh deploy/pg.sh stop "$DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- cluster and a fresh database ----
URL=$(sh deploy/pg.sh start "$DIR" "$PORT")
sql() { "$PGBIN/psql" "$URL" -AtXq -v ON_ERROR_STOP=1 -c "$1"; }
"$PGBIN/psql" "$URL dbname=postgres" -AtXq -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $AGENTQ_DBNAME" -c "CREATE DATABASE $AGENTQ_DBNAME"
# Any statement slower than 500 ms is logged with its plan ($DIR/server.log): the evidence if a minute stalls.
"$PGBIN/psql" "$URL dbname=postgres" -AtXq -c "LOAD 'auto_explain'" \
    -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER SYSTEM SET auto_explain.log_min_duration = '500ms'" -c "SELECT pg_reload_conf()" >/dev/null
export DATABASE_URL="$URL"
"$BIN/agentq" migrate >"$LOGS/migrate.log" 2>&1 || { cat "$LOGS/migrate.log" >&2; die "migrate failed"; }
PGPID=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
PGPID=$(awk '{print $4}' "/proc/$PGPID/stat")   # the checkpointer's parent: the postmaster

export AGENTQ_SECRET_KEY
AGENTQ_SECRET_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
TOKEN=$("$BIN/agentq" users add soak | tail -n 1)

# ---- the fake model, the API, the schedules, the workers ----
"$BIN/agentq-fake" --port 0 --llm-delay-ms "$LLM_DELAY_MS" --ready-file "$LOGS/fake.port" \
    --log "$LOGS/fake.summary" 2>"$LOGS/fake.log" &
FAKE_PID=$!; PIDS="$PIDS $FAKE_PID"
i=0
until [ -s "$LOGS/fake.port" ]; do i=$((i + 1)); [ "$i" -gt 100 ] && die "agentq-fake did not start"; sleep 0.1; done
LLM_BASE_URL="http://127.0.0.1:$(cat "$LOGS/fake.port")/v1"
export LLM_PROVIDER=openai LLM_API_KEY=soak LLM_BASE_URL

AGENTQ_LISTEN=127.0.0.1:$API_PORT AGENTQ_USER_RATE=1000000 AGENTQ_USER_QUEUE_QUOTA=0 \
    AGENTQ_SCHEDULE_MIN_INTERVAL_SECONDS=0 AGENTQ_LOG_LEVEL=warn "$BIN/agentq-api" 2>"$LOGS/api.log" &
API_PID=$!; PIDS="$PIDS $API_PID"
i=0
until curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "agentq-api did not start (see $LOGS/api.log)"; sleep 0.1
done
for s in $(seq 1 "$SCHEDULES"); do
    curl -sf -H "Authorization: Bearer $TOKEN" -d "{\"name\":\"soak-$s\",\"cron\":\"* * * * *\",\"prompt\":\"soak $s\"}" \
        "http://127.0.0.1:$API_PORT/v1/schedules" >/dev/null || die "POST /v1/schedules failed"
done

PROCS="api=$API_PID fake=$FAKE_PID"
for w in $(seq 1 "$WORKERS"); do
    wenv=""; [ "$w" = "$WORKERS" ] && [ "$WORKERS" -gt 1 ] && wenv=$LAST_ENV
    env AGENTQ_LOG_LEVEL=warn $wenv "$BIN/agentq-worker" >"$LOGS/worker$w.log" 2>&1 &
    PIDS="$PIDS $!"; PROCS="$PROCS worker$w=$!"
done
i=0
until [ "$(sql 'SELECT count(*) FROM workers')" -ge "$WORKERS" ]; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "the workers did not register (see $LOGS/worker*.log)"; sleep 0.1
done

M_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
M_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && M_COMMIT="$M_COMMIT (with uncommitted changes)"
M_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
say "soak: $MINUTES min from $M_DATE, commit $M_COMMIT; $RATE noop jobs/s ($API_PCT % via the API)," \
    "$CHAT_PER_MIN chats/min, $SCHEDULES schedules a minute, $WORKERS workers${LAST_ENV:+ (the last with $LAST_ENV)}," \
    "model delay $LLM_DELAY_MS ms"

# ---- the load and the samples ----
CSV=$OUT/soak.csv
status=0
AQ_BENCH_API="http://127.0.0.1:$API_PORT" AQ_BENCH_TOKEN=$TOKEN AQ_SOAK_PIDS="$PROCS" AQ_SOAK_PGPID=$PGPID \
    "$BIN/agentq-bench" soak --seconds $((MINUTES * 60)) --window-s "$WINDOW_S" --rate "$RATE" \
    --api-pct "$API_PCT" --chat-per-min "$CHAT_PER_MIN" --log "$CSV" >"$LOGS/soak.out" || status=$?
tail -n 1 "$LOGS/soak.out"
SUMMARY=$(grep '^soak ' "$LOGS/soak.out" || echo "soak (no summary: the run was cut short)")
M_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- verdicts, from the CSV ----
col() { head -1 "$CSV" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
# slope NAME: least-squares kB per minute over the last 10 rows (all but the first when fewer;
# a row's first column is its time in minutes)
slope() {
    awk -F, -v c="$(col "$1")" 'NR > 1 { x[NR] = $1; y[NR] = $c; n = NR }
        END { s = (n - 10 > 2) ? n - 9 : 3; k = 0; sx = sy = sxx = sxy = 0
              for (i = s; i <= n; i++) { k++; sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i] }
              d = k * sxx - sx * sx; printf "%.0f", d ? (k * sxy - sx * sy) / d : 0 }' "$CSV"
}
first_last() { awk -F, -v c="$(col "$1")" 'NR == 2 { f = $c } NR > 1 { l = $c } END { print f, l }' "$CSV"; }
ROWS=$(($(wc -l <"$CSV") - 1))
[ "$ROWS" -ge 2 ] || die "only $ROWS samples in $CSV"
RSS_LINES=""; RSS_OK=1
for name in $(head -1 "$CSV" | tr ',' '\n' | sed -n 's/_rss_kb$//p'); do
    s=$(slope "${name}_rss_kb"); a=$(slope "${name}_anon_kb"); fl=$(first_last "${name}_rss_kb")
    v=met; [ "$s" -lt "$RSS_KB_PER_MIN" ] || { v="**missed**"; RSS_OK=0; }
    RSS_LINES="$RSS_LINES| $name VmRSS growth, last 10 samples, < $RSS_KB_PER_MIN kB/min | $s kB/min (RssAnon $a kB/min); first ${fl% *} kB, last ${fl#* } kB | $v |
"
done
s=$(slope pg_pss_kb); fl=$(first_last pg_pss_kb)
RSS_LINES="$RSS_LINES| PostgreSQL Pss (all its processes), last 10 samples (not judged: shared buffers fill as the tables grow) | $s kB/min; first ${fl% *} kB, last ${fl#* } kB | — |
"
LAT_OK=1; LAT_LINES=""
lat_line() {   # lat_line COLUMN LABEL: a verdict row onto LAT_LINES (no subshell: LAT_OK must stick)
    fl=$(first_last "$1"); f=${fl% *}; l=${fl#* }; v=met
    if [ "$f" -le 0 ] || [ "$l" -gt $((2 * f)) ]; then v="**missed**"; LAT_OK=0; fi
    LAT_LINES="$LAT_LINES| $2 p99, last sample ≤ 2 × first | first $f ms, last $l ms | $v |
"
}
lat_line queue_p99_ms "enqueue → start"
lat_line reply_p99_ms "chat → reply"
say "RSS flat: $([ $RSS_OK = 1 ] && echo met || echo missed); latency flat: $([ $LAT_OK = 1 ] && echo met || echo missed)"

# ---- the plot ----
gnuplot -e "csv='$CSV'; png='$OUT/soak.png'" tests/soak.gp 2>"$LOGS/gnuplot.log" ||
    { cat "$LOGS/gnuplot.log" >&2; die "gnuplot failed"; }

# ---- the section ----
TABLE=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { h[$i] = i; name[i] = $i }; next }
    { printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s | %.1f | %.1f", $h["minute"], $h["jobs_per_s"],
        $h["turns"], $h["scheduled"], $h["queue_p50_ms"], $h["queue_p99_ms"], $h["reply_p50_ms"], $h["reply_p99_ms"],
        $h["backlog"], $h["jobs_kb"] / 1024, $h["db_kb"] / 1024
      printf " | %.1f | %.1f", $h["api_rss_kb"] / 1024, $h["fake_rss_kb"] / 1024
      w = ""; for (i = 1; i <= NF; i++) if (name[i] ~ /^worker[0-9]+_rss_kb$/) w = w (w == "" ? "" : " / ") sprintf("%.1f", $i / 1024)
      printf " | %s | %.1f |\n", w, $h["pg_pss_kb"] / 1024 }' "$CSV")
cat >"$OUT/soak.md" <<EOF
## Soak

\`make soak\` (tests/soak.sh; not in CI) ran **$ROWS minutes** from $M_DATE (commit $M_COMMIT) against
its own cluster (PostgreSQL $(sql 'SHOW server_version'), fsync and synchronous_commit on): one
agentq-api, $WORKERS agentq-worker processes (default flags${LAST_ENV:+; the last one with \`$LAST_ENV\`}), agentq-fake as the model answering
after $LLM_DELAY_MS ms. Load at a fixed rate: $RATE noop jobs/s ($API_PCT % through \`POST /v1/jobs\`,
the rest 10-row INSERTs), $CHAT_PER_MIN agent turns a minute through \`POST /v1/chat\` (a new
session each), $SCHEDULES schedules firing every minute (agent turns too). Every
$WINDOW_S s: jobs finished, enqueue → start (\`started_at - created_at\` of the jobs finished in the
minute), chat → reply (the assistant row's \`created_at\` − its turn's \`created_at\`, i.e. the
POST's INSERT; database clock), backlog, table sizes, VmRSS/RssAnon of every process, PostgreSQL's
Pss summed over its processes. Load average $M_LOAD at the start, $M_LOAD_END at the end: **this
machine (2 cores) was shared with other jobs during the run, so latency is noisy**; memory is not.
Summary: \`$SUMMARY\`.

\`\`\`
SOAK_MINUTES=$MINUTES make soak     # the CSV, plot and this section: docs/soak/
\`\`\`

![soak: resident memory, latency and table sizes per minute](soak/soak.png)

What the workers' RssAnon growth is (arena pages touched as peaks rise; not a
leak): docs/DESIGN.md, "Worker memory over time".

**RSS flat: $([ $RSS_OK = 1 ] && echo met || echo missed). Latency flat: $([ $LAT_OK = 1 ] && echo met || echo missed).**

| verdict | figure | |
|---|---|---|
${RSS_LINES}${LAT_LINES}

Per minute ([docs/soak/soak.csv](soak/soak.csv) has every column; workers' VmRSS separated by /):

| min | jobs/s | turns | scheduled | enqueue→start p50 / p99 ms | chat→reply p50 / p99 ms | backlog | jobs MiB | database MiB | API MiB | fake MiB | workers MiB | PostgreSQL Pss MiB |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
$TABLE
EOF
[ "$OUT" = docs/soak ] && sh tests/soak_section.sh docs/BENCHMARKS.md "$OUT/soak.md"
say "written: $OUT/soak.csv, $OUT/soak.png, $OUT/soak.md"
exit "$status"
}
main "$@"
