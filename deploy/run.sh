#!/bin/sh
# run.sh — `make run`: everything up in the foreground.
#
# Without DATABASE_URL it creates (first time) and starts a project-local
# PostgreSQL cluster under .pgdata/ (ignored by git), on AGENTQ_PG_PORT
# (default 54329). Without AGENTQ_SECRET_KEY it uses .agentq.key (created on
# first run, mode 600, ignored by git). It applies migrations, creates a first
# operator "admin" if there is no user yet and prints its token (saved in
# .agentq.token for later runs), then runs the API on AGENTQ_LISTEN and
# AGENTQ_WORKERS worker processes (default 1), and prints the web console's
# URL.
#
# It writes .agentq.env (mode 600) with that DATABASE_URL and the key file's
# path (AGENTQ_SECRET_KEY_FILE), which bin/agentq reads from the current
# directory when DATABASE_URL is unset, and prints the same as an `export`
# line to paste elsewhere.
#
# AGENTQ_RUN_DIR (default: the project folder) is where .pgdata, .agentq.key,
# .agentq.env and .agentq.token live; AGENTQ_BIN_DIR (default: bin/) where the binaries
# are. Tests use both to run this script beside, not on, a developer's setup.
#
# STOPPING. Whatever stops it leaves nothing behind: no agentq process and,
# if this script started it, the local cluster stopped.
#  - Ctrl-C (SIGINT), SIGTERM or SIGHUP: the API and workers get one SIGTERM
#    and finish gracefully (a worker hands its running jobs back after
#    AGENTQ_SHUTDOWN_GRACE_SECONDS); then the cluster stops; exit status 0.
#  - A second Ctrl-C (or SIGTERM/SIGHUP) while that runs: the API and workers
#    are killed at once (their leases expire; the jobs run again), and the
#    cluster still stops. From then on further signals are ignored, and so
#    are they by the cluster's own stop, so it always completes — even when
#    `make` itself has already died of the second Ctrl-C.
#  - The API or a worker exiting by itself (a crash): the others are stopped
#    as above; exit status 1.
# The API and workers run in their own sessions, so a terminal's Ctrl-C
# reaches them only through this script, once.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rundir=${AGENTQ_RUN_DIR:-$top}
bindir=${AGENTQ_BIN_DIR:-$top/bin}
mkdir -p "$rundir"
started_pg=""
pids=""
stopping=""
status=0
signals=0

# Output never stops the script (a closed terminal after SIGHUP).
say() { echo "$@" 2>/dev/null || true; }

# 0 while pid $1 runs (a zombie, exited but not yet waited for, does not).
# Read from /proc with the shell's own `read`: no child process, so nothing
# a signal to the process group could kill or hold up.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    st=""
    read -r st < "/proc/$1/stat" 2>/dev/null || return 1
    case "${st##*) }" in Z*|X*) return 1 ;; esac
    return 0
}

# Sleep $1 seconds, or less when a signal comes (wait returns at once then).
nap() {
    sleep "$1" &
    n_pid=$!
    wait "$n_pid" 2>/dev/null || true
    kill "$n_pid" 2>/dev/null || true
}

# Stop what this script started, then exit with $status. The traps only
# count signals: a shell runs no trap while another one's action runs, so the
# waiting is done here, where a signal ends the current `wait` at once.
finish() {
    [ -n "$stopping" ] && return 0
    stopping=1
    [ -n "$pids" ] && say "run: stopping (Ctrl-C again to stop at once)"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    killed=""
    while :; do
        left=""
        for p in $pids; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        if [ "$signals" -ge 2 ] && [ -z "$killed" ]; then
            killed=1
            say "run: stopping at once"
            for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
        fi
        nap 0.2
    done
    wait 2>/dev/null || true
    # ignored from here on, by pg_ctl too (it inherits ignored signals)
    trap '' INT TERM HUP
    if [ -n "$started_pg" ]; then sh deploy/pg.sh stop "$rundir/.pgdata" || true; fi
    say "run: stopped"
    exit "$status"
}
# an exit through `set -e` (a failed step, a step killed by Ctrl-C) stops
# what was started, too
on_exit() {
    rc=$?
    [ "$status" -eq 0 ] && status=$rc
    finish
}
trap 'signals=$((signals + 1))' INT TERM HUP
trap on_exit EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    port=${AGENTQ_PG_PORT:-54329}
    say "run: starting the project-local PostgreSQL in $rundir/.pgdata (port $port)"
    started_pg=1
    DATABASE_URL=$(sh deploy/pg.sh start "$rundir/.pgdata" "$port")
fi
keyfile=""
if [ -z "${AGENTQ_SECRET_KEY:-}" ]; then
    if [ ! -s "$rundir/.agentq.key" ]; then
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$rundir/.agentq.key")
        say "run: created a secret key in $rundir/.agentq.key"
    fi
    keyfile="$rundir/.agentq.key"
    AGENTQ_SECRET_KEY=$(cat "$keyfile")
fi
export DATABASE_URL AGENTQ_SECRET_KEY

# Where bin/agentq finds this stack when DATABASE_URL is unset (cli/cli_env.c):
# .agentq.env in the run folder, mode 600, shell syntax; values in single
# quotes (one that holds a quote is left out: set it by hand).
envfile="$rundir/.agentq.env"
envline=""
rm -f "$envfile"
(umask 077; printf '# written by make run (deploy/run.sh); bin/agentq reads it when DATABASE_URL is unset\n' > "$envfile")
put() {
    case "$2" in
        *\'*) say "run: $1 holds a quote; not written to .agentq.env" ;;
        *) printf "export %s='%s'\n" "$1" "$2" >> "$envfile"; envline="$envline $1='$2'" ;;
    esac
}
put DATABASE_URL "$DATABASE_URL"
[ -z "$keyfile" ] || put AGENTQ_SECRET_KEY_FILE "$keyfile"
say "run: bin/agentq run from $rundir finds this stack through .agentq.env; elsewhere:"
say "  export$envline"
[ "$signals" -eq 0 ] || finish
"$bindir/agentq" migrate || { status=1; finish; }

if out=$("$bindir/agentq" users add admin --operator 2>/dev/null); then
    token=$(printf '%s\n' "$out" | tail -n 1)
    (umask 077; printf '%s\n' "$token" > "$rundir/.agentq.token")
    say "run: created operator 'admin'; its token (also saved in .agentq.token):"
    say "$token"
elif [ -s "$rundir/.agentq.token" ]; then
    say "run: operator 'admin' exists; its token is in .agentq.token"
else
    say "run: operator 'admin' exists; make another user with: bin/agentq users add NAME [--operator]"
fi

[ "$signals" -eq 0 ] || finish
# own sessions: only this script forwards Ctrl-C, once, to each process
setsid "$bindir/agentq-api" &
pids="$!"
n=${AGENTQ_WORKERS:-1}
i=0
while [ "$i" -lt "$n" ]; do
    setsid "$bindir/agentq-worker" &
    pids="$pids $!"
    i=$((i + 1))
done
listen=${AGENTQ_LISTEN:-127.0.0.1:8080}
say "run: API on http://$listen and $n worker(s); Ctrl-C stops everything."
say "run: web console: http://$listen/ (sign in with the token in .agentq.token)"
say "run: or try:"
say "  curl -s -H \"Authorization: Bearer \$(cat .agentq.token)\" -d '{\"message\":\"hello\"}' http://$listen/v1/chat"

# Until a signal, or until one of them exits by itself.
while [ "$signals" -eq 0 ]; do
    for p in $pids; do
        if ! alive "$p"; then
            say "run: process $p exited by itself; stopping the rest"
            status=1
            finish
        fi
    done
    nap 1
done
finish
