#!/bin/sh
# check_sql.sh — "no SQL is built from data" (STYLE.md, docs/SECURITY.md),
# checked on the C sources of api/, common/, handlers/, worker/ and cli/:
#   1. no string literal holds both SQL (SELECT, INSERT, UPDATE, DELETE,
#      WHERE, VALUES, FROM, SET, ORDER BY, LIMIT) and a printf conversion (%s, %d, %lld, ...):
#      a statement is a constant whose data goes in $n parameters;
#   2. PQexec, which takes no parameters, is given a string literal, except
#      in common/aq_migrate.c (it runs the migrations compiled into the
#      binary, sql/*.sql).
#
#   sh tests/check_sql.sh [ROOT]     (ROOT: the tree to check, default .)
#
# Prints one line per finding and exits 1 if there is any, else 0.
# `make test` runs it on the real tree and on a fixture (t_layout.c).
set -u
root=${1:-.}
if [ ! -d "$root" ]; then
    echo "check_sql: $root is not a folder"
    exit 2
fi
cd "$root" || exit 2
files=$(find api common handlers worker cli -name '*.c' 2>/dev/null | sort)
n=0
bad=0
for f in $files; do
    n=$((n + 1))
    out=$(awk -v f="$f" '
        {
            line = $0
            while (match(line, /"([^"\\]|\\.)*"/)) {
                lit = substr(line, RSTART, RLENGTH)
                line = substr(line, RSTART + RLENGTH)
                if (lit ~ /(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|FROM|SET|ORDER BY|LIMIT) / && lit ~ /%[-+ 0-9.*]*(l|ll|z|j)?[sdiuxf]/)
                    printf "%s:%d: SQL text with a printf conversion: %s\n", f, NR, lit
            }
            if (f != "common/aq_migrate.c" && match($0, /PQexec\([^,]*,[ \t]*[^" \t]/))
                printf "%s:%d: PQexec without a string literal\n", f, NR
        }' "$f")
    if [ -n "$out" ]; then
        echo "$out"
        bad=$((bad + $(echo "$out" | wc -l)))
    fi
done
if [ "$bad" -gt 0 ]; then
    echo "check_sql: $n file(s), $bad finding(s)"
    exit 1
fi
echo "check_sql: $n file(s), no SQL built from data"
