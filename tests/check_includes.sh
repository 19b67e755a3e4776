#!/bin/sh
# check_includes.sh — the folder rule of STYLE.md, checked: every quoted
# #include in api/, worker/, handlers/ and cli/ must resolve to a file of the
# including file's own folder or of a folder it may see:
#   api/      common/
#   cli/      common/
#   handlers/ common/ (and its own handlers/include/)
#   worker/   common/ and handlers/include/ (the handler contract and registry)
# The Makefile gives each folder exactly these include paths; this check also
# catches what a search path cannot (a "../worker/x.h" path, a header of the
# wrong folder that happens to share a name).
#
#   sh tests/check_includes.sh [ROOT]     (ROOT: the tree to check, default .)
#
# Prints one line per crossing include and exits 1 if there is any, else 0.
# `make test` runs it on the real tree and on tests/fixtures/ (t_layout.c).
set -u
root=${1:-.}
if [ ! -d "$root" ]; then
    echo "check_includes: $root is not a folder"
    exit 2
fi
cd "$root" || exit 2

# The folders a file of $1 may include from, besides its own.
allowed() {
    case $1 in
        api|cli) echo "common" ;;
        handlers) echo "common handlers/include" ;;
        worker) echo "common handlers/include" ;;
    esac
}

bad=0
checked=0
for top in api worker handlers cli; do
    [ -d "$top" ] || continue
    files=$(find "$top" -type f \( -name '*.c' -o -name '*.h' \) | sort)
    for f in $files; do
        checked=$((checked + 1))
        dir=$(dirname "$f")
        # quoted includes only: <...> are system and library headers
        incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
        for inc in $incs; do
            found=""
            # a quoted include is looked up next to the file first
            if [ -f "$dir/$inc" ]; then
                found=$(realpath -m --relative-to=. "$dir/$inc")
            else
                for d in $(allowed "$top"); do
                    if [ -f "$d/$inc" ]; then found="$d/$inc"; break; fi
                done
            fi
            if [ -z "$found" ]; then
                echo "$f: #include \"$inc\": not found in $top/ or in what it may see ($(allowed "$top"))"
                bad=$((bad + 1))
                continue
            fi
            ok=0
            for d in "$top" $(allowed "$top"); do
                case $found in "$d"/*) ok=1 ;; esac
            done
            # handlers/include/ is the only part of handlers/ another folder sees
            if [ "$top" != handlers ]; then
                case $found in handlers/*) case $found in handlers/include/*) ;; *) ok=0 ;; esac ;; esac
            fi
            if [ "$ok" -ne 1 ]; then
                echo "$f: #include \"$inc\" crosses into $found ($top/ may see only $top/ $(allowed "$top"))"
                bad=$((bad + 1))
            fi
        done
    done
done

if [ "$bad" -ne 0 ]; then
    echo "check_includes: $bad crossing include(s) in $checked file(s)"
    exit 1
fi
echo "check_includes: $checked file(s), no crossing include"
exit 0
