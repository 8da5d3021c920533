#!/bin/sh
# The project's test command: build the suite, run every category on the
# running kernel and judge the run with ci/verdict.py against
# ci/expectations, check that interrupted runs leave the machine as they
# found it, run the unit tests of the CI tooling and of folio-bench's
# statistics, and validate the LAVA test definition. Ends with one line
# "N passed, N failed, N skipped"; exits 1 on any failure.
#
# Results (KTAP, JUnit) are kept in out/check/.

top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 0 ] || { echo "check.sh: takes no arguments" >&2; exit 2; }
out=$top/out/check
mkdir -p "$out" || exit 2

make -s --no-print-directory -C "$top" all || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

"$top/run_vmtests.sh" -a | tee "$out/ktap.txt"
cfg=
[ -r /proc/config.gz ] && cfg=/proc/config.gz
"$top/ci/verdict.py" --ktap "$out/ktap.txt" ${cfg:+--config "$cfg"} \
	--junit "$out/junit.xml" --name host | tee "$out/verdict.txt"
"$top/ci/interrupt_check.sh" | tee "$out/interrupt.txt"
python3 "$top/ci/test_verdict.py" | tee "$out/unit.txt"
python3 "$top/tools/bench/test_benchstats.py" | tee "$out/bench-unit.txt"
"$top/ci/lava/validate" | tee "$out/lava.txt"
"$top/ci/test_gate.sh" | tee "$out/gate-unit.txt"

# verdict: P passed, F failed, S skipped -- plus the KTAP of the others
set -- $(sed -n 's/^verdict: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$out/verdict.txt")
[ $# -eq 3 ] || set -- 0 1 0
pass=$1 fail=$2 skip=$3
# a tool that could not run at all (no TAP line) counts as one failure
for f in "$out/interrupt.txt" "$out/unit.txt" "$out/bench-unit.txt" "$out/lava.txt" \
	"$out/gate-unit.txt"; do
	grep -q '^\(not \)\{0,1\}ok [0-9]' "$f" || fail=$((fail + 1))
	pass=$((pass + $(grep -c '^ok [0-9]* [^#]*$' "$f")))
	skip=$((skip + $(grep -c '^ok [0-9]* .*# SKIP' "$f")))
	fail=$((fail + $(grep -c '^not ok ' "$f")))
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
