#!/bin/sh
# Interrupt the suite while it has changed THP settings and set up swap, and
# check that everything under /sys/kernel/mm/transparent_hugepage and
# /proc/swaps reads as before, and no cgroup of the tests is left: SIGTERM to run_vmtests.sh (what a CI timeout
# sends), SIGINT to its process group (Ctrl-C), and the same two to a test
# program run on its own. KTAP out; exit 1 on any failure, 4 when not root.

top=$(cd "$(dirname "$0")/.." && pwd)
mm=$top/tools/testing/selftests/mm
THP=/sys/kernel/mm/transparent_hugepage

echo "TAP version 13"
echo "1..4"
if [ "$(id -u)" != 0 ] || [ ! -d $THP ] || ! command -v setsid >/dev/null; then
	for i in 1 2 3 4; do echo "ok $i interrupt # SKIP needs root, THP sysfs and setsid"; done
	exit 4
fi

# Settings only: counters and read-only files are not state a run restores.
thp_state() {
	find $THP -type f -perm -u+w ! -path '*/stats/*' | sort |
	while read -r f; do echo "$f $(cat "$f")"; done
}
state() {
	thp_state
	awk 'NR > 1 { print "swap", $1 }' /proc/swaps
	find /sys/fs/cgroup -maxdepth 8 -type d -name 'folio_util.*' 2>/dev/null
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0

# check NAME SIGNAL TARGET(pid|group) COMMAND...
check() {
	name=$1 sig=$2 target=$3
	shift 3
	n=$((n + 1))
	thp_state > "$tmp/thp"
	state > "$tmp/before"
	# Its own process group, SIGINT not ignored: as a job started from a shell.
	env --default-signal=INT,QUIT setsid "$@" > "$tmp/log" 2>&1 &
	pid=$!
	# Wait (bounded: 30 s, the run may first wait for the machine-wide lock)
	# until the run has changed a THP setting.
	i=0
	while thp_state | cmp -s - "$tmp/thp" && [ $i -lt 3000 ] &&
	      kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		sleep 0.01
	done
	state > "$tmp/during"
	changed=$(diff "$tmp/before" "$tmp/during" | grep -c '^[<>]')
	if [ "$target" = group ]; then
		kill -$sig -$pid 2>/dev/null
	else
		kill -$sig $pid 2>/dev/null
	fi
	wait $pid 2>/dev/null
	rc=$?
	# A program killed mid-test may leave its test child running briefly.
	i=0
	while state > "$tmp/after" && ! cmp -s "$tmp/before" "$tmp/after" &&
	      [ $i -lt 100 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	if [ "$changed" = 0 ]; then
		echo "# $name: the run never changed a setting before it ended (rc $rc)"
		echo "not ok $n $name"
		fail=$((fail + 1))
	elif ! cmp -s "$tmp/before" "$tmp/after"; then
		echo "# $name: state after the interrupted run (rc $rc) differs:"
		diff "$tmp/before" "$tmp/after" | sed 's/^/#   /'
		tail -n 5 "$tmp/log" | sed 's/^/# log: /'
		echo "not ok $n $name"
		fail=$((fail + 1))
	else
		echo "# $name: $changed lines changed during the run, all back after (rc $rc)"
		echo "ok $n $name"
	fi
}

check "SIGTERM to run_vmtests.sh" TERM pid "$mm/run_vmtests.sh" -t lazyfree
check "SIGINT to run_vmtests.sh's process group" INT group "$mm/run_vmtests.sh" -t lazyfree
check "SIGTERM to a test program" TERM pid "$mm/lazyfree"
check "SIGINT to a test program's process group" INT group "$mm/lazyfree"

[ $fail = 0 ]
