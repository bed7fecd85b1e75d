#!/usr/bin/env bash
# A/B timing of two builds of libqext.so, alternated run by run so both see
# the same machine: scripts/ab_compare.sh OLD_DIR NEW_DIR ROUNDS -- COMMAND...
# Each DIR holds a libqext.so (copy build/python/libqext.so there before and
# after a change). The library is chosen with LD_LIBRARY_PATH, which the
# loader searches before _C's RUNPATH (build/python): swapping files inside
# site-packages does not change what an editable install loads.
set -euo pipefail
old=$1 new=$2 rounds=$3
shift 3
[[ ${1:-} == -- ]] && shift
for dir in "$old" "$new"; do
  [[ -f $dir/libqext.so ]] || { echo "no libqext.so in $dir" >&2; exit 2; }
done
for ((r = 1; r <= rounds; ++r)); do
  for dir in "$old" "$new"; do
    printf '%s round %d: ' "$([[ $dir == "$old" ]] && echo old || echo new)" "$r"
    LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
  done
done
