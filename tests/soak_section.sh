#!/bin/sh
# soak_section.sh FILE SECTION — put the soak section (SECTION, the markdown
# tests/soak.sh writes to docs/soak/soak.md) into FILE (docs/BENCHMARKS.md)
# between the markers below: the marked block is replaced when FILE has one,
# otherwise appended. tests/soak.sh runs it after a soak; tests/bench.sh after
# it rewrites FILE wholesale, so the soak's figures survive `make bench`.
set -eu
file=${1:?usage: soak_section.sh FILE SECTION}
section=${2:?usage: soak_section.sh FILE SECTION}
begin='<!-- soak: written by tests/soak.sh from docs/soak/soak.md; make bench keeps it -->'
end='<!-- /soak -->'
[ -f "$section" ] || exit 0
tmp=$file.tmp.$$
{
    # FILE without the marked block, and without trailing blank lines
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } skip { if ($0 == e) skip = 0; next }
        /^$/ { blank++; next } { while (blank) { print ""; blank-- } print }' "$file"
    printf '\n%s\n' "$begin"
    cat "$section"
    printf '%s\n' "$end"
} >"$tmp"
mv "$tmp" "$file"
