#!/usr/bin/env bash
# Runs `cargo test ARGS...`, then prints one closing line with the totals of every test binary
# ("tests: N passed, N failed, N skipped"), so the last line speaks for the whole run rather
# than for the last (often empty) doc-test binary. Exit status is cargo's.
set -uo pipefail
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"${CARGO:-cargo}" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/)  p += $i
         if ($(i+1) ~ /^failed/)  f += $i
         if ($(i+1) ~ /^ignored/) s += $i
       }
     }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
