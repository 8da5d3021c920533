#!/bin/sh
# The project's test command: build the suite, run every category on the
# running kernel, then check that an interrupted run leaves the machine as
# it found it. Ends with one line "N passed, N failed, N skipped"; exits 1 on
# any failure.

top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 0 ] || { echo "check.sh: takes no arguments" >&2; exit 2; }
out=$(mktemp -d) || exit 2
trap 'rm -rf "$out"' EXIT

make -s --no-print-directory -C "$top" all || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

"$top/run_vmtests.sh" -a | tee "$out/suite"
"$top/ci/interrupt_check.sh" | tee "$out/interrupt"

set -- $(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$out/suite" | tail -n 1)
[ $# -eq 3 ] || set -- 0 1 0	# the suite did not finish
pass=$(($1 + $(grep -c '^ok [0-9]* [^#]*$' "$out/interrupt")))
skip=$(($3 + $(grep -c '^ok [0-9]* .*# SKIP' "$out/interrupt")))
fail=$(($2 + $(grep -c '^not ok ' "$out/interrupt")))
echo "$pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
