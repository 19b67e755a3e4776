#!/bin/sh
# run.sh — `make run`: everything up in the foreground.
#
# Without DATABASE_URL it creates (first time) and starts a project-local
# PostgreSQL cluster under .pgdata/ (ignored by git), on AGENTQ_PG_PORT
# (default 54329). Without AGENTQ_SECRET_KEY it uses .agentq.key (created on
# first run, mode 600, ignored by git). It applies migrations, creates a first
# operator "admin" if there is no user yet and prints its token (saved in
# .agentq.token for later runs), then runs the API on AGENTQ_LISTEN and
# AGENTQ_WORKERS worker processes (default 1). Ctrl-C (or SIGTERM) stops them
# gracefully and then the local cluster.
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
if [ -z "${AGENTQ_SECRET_KEY:-}" ]; then
    if [ ! -s .agentq.key ]; then
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > .agentq.key)
        echo "run: created a secret key in .agentq.key"
    fi
    AGENTQ_SECRET_KEY=$(cat .agentq.key)
fi
export DATABASE_URL AGENTQ_SECRET_KEY
bin/agentq migrate

if out=$(bin/agentq users add admin --operator 2>/dev/null); then
    token=$(printf '%s\n' "$out" | tail -n 1)
    (umask 077; printf '%s\n' "$token" > .agentq.token)
    echo "run: created operator 'admin'; its token (also saved in .agentq.token):"
    echo "$token"
elif [ -s .agentq.token ]; then
    echo "run: operator 'admin' exists; its token is in .agentq.token"
else
    echo "run: operator 'admin' exists; make another user with: bin/agentq users add NAME [--operator]"
fi

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

# own sessions: only this script forwards Ctrl-C, once, to each process
setsid bin/agentq-api &
pids="$!"
n=${AGENTQ_WORKERS:-1}
i=0
while [ "$i" -lt "$n" ]; do
    setsid bin/agentq-worker &
    pids="$pids $!"
    i=$((i + 1))
done
listen=${AGENTQ_LISTEN:-127.0.0.1:8080}
echo "run: API on http://$listen and $n worker(s); Ctrl-C stops everything. Try:"
echo "  curl -s -H \"Authorization: Bearer \$(cat .agentq.token)\" -d '{\"message\":\"hello\"}' http://$listen/v1/chat"
wait
