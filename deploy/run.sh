#!/bin/sh
# run.sh — `make run`: everything up in the foreground.
#
# Without DATABASE_URL it creates (first time) and starts a project-local
# PostgreSQL cluster under .pgdata/ (ignored by git), on AGENTQ_PG_PORT
# (default 54329). It applies migrations, then runs AGENTQ_WORKERS worker
# processes (default 1). Ctrl-C (or SIGTERM) stops the workers gracefully and
# then the local cluster.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
started_pg=""
if [ -z "${DATABASE_URL:-}" ]; then
    port=${AGENTQ_PG_PORT:-54329}
    echo "run: starting the project-local PostgreSQL in .pgdata (port $port)"
    DATABASE_URL=$(sh deploy/pg.sh start "$top/.pgdata" "$port")
    started_pg=1
fi
export DATABASE_URL
bin/agentq migrate

pids=""
stop() {
    trap - INT TERM
    echo "run: stopping"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    [ -n "$started_pg" ] && sh deploy/pg.sh stop "$top/.pgdata"
    echo "run: stopped"
    exit 0
}
trap stop INT TERM

n=${AGENTQ_WORKERS:-1}
i=0
while [ "$i" -lt "$n" ]; do
    setsid bin/agentq-worker &   # own session: only this script forwards Ctrl-C
    pids="$pids $!"
    i=$((i + 1))
done
echo "run: $n worker(s) up; DATABASE_URL='$DATABASE_URL'"
echo "run: try: psql \"\$DATABASE_URL\" -c \"INSERT INTO jobs (job_type) VALUES ('noop')\"   (Ctrl-C stops)"
wait
