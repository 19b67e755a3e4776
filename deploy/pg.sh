#!/bin/sh
# pg.sh — a private PostgreSQL 15 cluster for `make run`, tests and benchmarks.
#
#   pg.sh start DIR PORT    initdb (first time) and start; prints the conninfo
#   pg.sh stop DIR          fast shutdown
#   pg.sh restart DIR PORT  stop then start (used by the fault tests)
#   pg.sh crash DIR PORT    immediate stop (no checkpoint: WAL recovery at the
#                           start, as after a crash) then start (the fault campaign)
#   pg.sh url DIR PORT      print the conninfo
#
# initdb refuses root, so as root the cluster runs as the `postgres` user
# (created by the postgresql package); as anyone else, as that user. fsync and
# synchronous_commit stay on: figures measured against this cluster are honest.
# max_connections is 200, or AQ_PG_MAX_CONNECTIONS (the bench's agent turn
# step restarts its cluster at 60). WAL: min_wal_size 1 GB (fresh segments
# stalled commits ~50 ms mid-run), max_wal_size 8 GB: a queue at ~29k jobs/s
# writes ~30 MB/s of WAL, and at 2 GB a checkpoint began every ~35 s (one
# each max_wal_size / 1.9 of WAL, checkpoint_completion_target being 0.9),
# writing the buffer pool out in half a minute to the disk the WAL is
# flushed to; the steady-state benchmark's enqueue -> start p99 rose from
# ~15 to 40-50 ms in the windows it overlapped (docs/BENCHMARKS.md).
# shared_buffers: a quarter of the machine's memory, at least 128 MB and at
# most 2 GB, or AQ_PG_SHARED_BUFFERS. Each job leaves ~280 bytes of table and
# index pages (three row versions, non-HOT: every status change moves it
# between partial indexes), so at ~27k jobs/s a minute writes ~450 MB of
# fresh pages; with 256 MB the pool filled ~35 s into a steady-state run and
# from then on the backends wrote out dirty pages themselves to make room,
# and the p50 and p99 of the run's last windows rose (docs/BENCHMARKS.md).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: pg.sh start|stop|restart|crash|url DIR [PORT]}
dir=$(realpath -m "${2:?DIR}")
port=${3:-54329}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
sockdir() {
    s="$dir/sock"
    [ ${#s} -gt 90 ] && s="/tmp/agentq-sock-$port"
    echo "$s"
}
shared_buffers() {
    [ -n "${AQ_PG_SHARED_BUFFERS:-}" ] && { echo "$AQ_PG_SHARED_BUFFERS"; return; }
    awk '/^MemTotal:/ {mb = int($2 / 1024 / 4); if (mb > 2048) mb = 2048; if (mb < 128) mb = 128; print mb "MB"}' /proc/meminfo
}
url() { echo "host=$(sockdir) port=$port dbname=${AGENTQ_DBNAME:-agentq} user=postgres"; }

start() {
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            # the postgres user cannot reach this path: keep the data in its home, linked here
            alt="/var/lib/postgresql/agentq-$(echo "$dir" | md5sum | cut -c1-12)"
            mkdir -p "$alt/data" && chown -R postgres:postgres "$alt"
            [ -e "$dir/data" ] || ln -s "$alt/data" "$dir/data"
        fi
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        mkdir -p "$dir/data"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/data"
        as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
            --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    s=$(sockdir)
    mkdir -p "$s"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$s" && touch "$dir/server.log" && chown postgres:postgres "$dir/server.log"
    if as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then :; else
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $s -c listen_addresses=127.0.0.1 -c max_connections=${AQ_PG_MAX_CONNECTIONS:-200} -c shared_buffers=$(shared_buffers) -c min_wal_size=1GB -c max_wal_size=8GB -c fsync=on -c synchronous_commit=on" \
            start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    as_pg "$PGBIN/psql" -h "$s" -p "$port" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = '${AGENTQ_DBNAME:-agentq}'" | grep -q 1 ||
        as_pg "$PGBIN/createdb" -h "$s" -p "$port" -U postgres "${AGENTQ_DBNAME:-agentq}"
    url
}

stop() {
    [ -f "$dir/data/PG_VERSION" ] || return 0
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "${1:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    restart) stop; start >/dev/null ;;
    crash) stop immediate; start >/dev/null ;;
    url) url ;;
    *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
