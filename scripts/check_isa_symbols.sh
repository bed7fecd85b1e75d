#!/usr/bin/env bash
# Fails when an object compiled with ISA flags (x86/*avx2*, x86/*avx512*, x86/*amx*)
# shares a weak symbol (an inline function or template instance) with another
# object: the linker keeps one copy for all, so one path could run another's
# instructions (SIGILL on CPUs without them) or code (wrong answers).
# Usage: check_isa_symbols.sh OBJECT...   (ctest passes qext_kernels' objects)
set -euo pipefail
# (DW.ref.__gxx_personality_v0 is the one personality-routine pointer, data.)
weak() { nm --defined-only "$1" | awk '($2 == "W" || $2 == "V" || $2 == "u") && $3 !~ /^DW\.ref\./ {print $3}' | sort -u; }
status=0
for isa_obj in "$@"; do
  case "$isa_obj" in *avx2*|*avx512*|*amx*) ;; *) continue ;; esac
  for other in "$@"; do
    [ "$other" = "$isa_obj" ] && continue
    shared=$(comm -12 <(weak "$isa_obj") <(weak "$other"))
    if [ -n "$shared" ]; then
      echo "$(basename "$isa_obj") and $(basename "$other") share weak symbols:"
      echo "$shared" | c++filt | sed 's/^/  /'
      status=1
    fi
  done
done
[ $status = 0 ] && echo "no weak symbol shared across ISA objects ($# objects)"
exit $status
