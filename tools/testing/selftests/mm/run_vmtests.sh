#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run the batched-unmap large-folio tests by category, in KTAP, as the
# kernel's mm/run_vmtests.sh does. Sets up a zram swap device when none is
# active, and puts every THP/mTHP/khugepaged setting and the swap back as it
# found them, also when interrupted.

ksft_skip=4
me=run_vmtests.sh

# category program flags [arguments]; flags: - or destructive (only with -d)
TESTS='
folio_util folio_util_test -
folio_builder folio_builder -
lazyfree lazyfree -
swapout swapout - -F swapout_destructive
swapout swapout destructive -f swapout_destructive
filemap filemap -
ptebatch ptebatch -
collapse collapse -
'

usage() {
	cat <<EOF
usage: $me [-a] [-d] [-n] [-h] [-t CATEGORY]...

  -t CATEGORY  run this category (repeatable, or a quoted list)
  -a           run every category (the default)
  -d           also run destructive tests
  -n           list what would run, run nothing
  -h           this help

categories:
  folio_util     the helper library's logic on synthetic input
  folio_builder  the large-folio builder over every size and PMD offset
  lazyfree       reclaim of lazyfree (MADV_FREE) large folios
  swapout        swap-out of anonymous large folios (needs swap; -d: hwpoison)
  filemap        reclaim and zap of file (ext4, xfs) and shmem large folios
  ptebatch       zap, fork, mprotect, mremap and MADV_FREE over large folios
  collapse       MADV_COLLAPSE and khugepaged over PTE-mapped large folios
EOF
}

die() {
	echo "$me: $*" >&2
	exit 2
}

categories=$(echo "$TESTS" | awk 'NF { print $1 }' | uniq)
selected=
destructive=0
list_only=0
while getopts ":adnht:" opt; do
	case $opt in
	a) selected= ;;
	d) destructive=1 ;;
	n) list_only=1 ;;
	h) usage; exit 0 ;;
	t) selected="$selected $OPTARG" ;;
	:) die "option -$OPTARG needs a category (see -h)" ;;
	*) die "unknown option -$OPTARG (see -h)" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || die "unexpected argument '$1' (see -h)"
for c in $selected; do
	echo "$categories" | grep -qx -- "$c" ||
		die "unknown category '$c' (known: $(echo $categories))"
done
[ -n "$selected" ] || selected=$categories

# The tests to run, one "category program flags" line each.
plan=$(echo "$TESTS" | awk -v sel=" $(echo $selected) " -v d=$destructive '
	NF && index(sel, " " $1 " ") && (d || $3 != "destructive")')
if [ $list_only = 1 ]; then
	echo "$plan" | awk '{ c = $1; $1 = $3 = ""; sub(/^ +/, ""); gsub(/  +/, " "); print c ": " $0 }'
	exit 0
fi

cd "$(dirname "$0")" || exit 2
THP=/sys/kernel/mm/transparent_hugepage
work=$(mktemp -d) || exit 2
zram_dev=
child=

save_thp() {
	[ "$(id -u)" = 0 ] && [ -d $THP ] || return 0
	find $THP -maxdepth 2 -type f -perm -u+w ! -path '*/stats/*' |
	while read -r f; do
		printf '%s %s\n' "$f" "$(sed 's/.*\[\(.*\)\].*/\1/' "$f")"
	done > "$work/thp"
}

restore_thp() {
	[ -s "$work/thp" ] || return 0
	for pass in 1 2; do
		while read -r f v; do
			echo "$v" > "$f" 2>/dev/null
		done < "$work/thp"
	done
	while read -r f v; do
		[ "$(sed 's/.*\[\(.*\)\].*/\1/' "$f")" = "$v" ] ||
			echo "# $me: could not restore $f to '$v'"
	done < "$work/thp"
}

# A zram swap device when none is active: most reclaim paths need swap.
setup_swap() {
	[ "$(id -u)" = 0 ] || return 0
	[ "$(wc -l < /proc/swaps)" -gt 1 ] && return 0
	command -v mkswap >/dev/null && command -v swapon >/dev/null || {
		echo "# no mkswap/swapon: tests that need swap will skip"
		return 0
	}
	[ -e /sys/class/zram-control/hot_add ] || modprobe zram num_devices=0 2>/dev/null
	[ -e /sys/class/zram-control/hot_add ] || {
		echo "# no zram: tests that need swap will skip"
		return 0
	}
	zram_dev=$(cat /sys/class/zram-control/hot_add) || return 0
	if echo 1G > /sys/block/zram$zram_dev/disksize &&
	   mkswap /dev/zram$zram_dev >/dev/null 2>&1 &&
	   swapon /dev/zram$zram_dev; then
		echo "# swap: /dev/zram$zram_dev (1G) for this run"
	else
		echo "# could not set up zram swap: tests that need swap will skip"
		echo "$zram_dev" > /sys/class/zram-control/hot_remove
		zram_dev=
	fi
}

teardown_swap() {
	[ -n "$zram_dev" ] || return 0
	swapoff /dev/zram$zram_dev 2>/dev/null
	echo "$zram_dev" > /sys/class/zram-control/hot_remove 2>/dev/null ||
		echo "# $me: could not remove /dev/zram$zram_dev"
	zram_dev=
}

cleanup() {
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	restore_thp
	teardown_swap
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# One run at a time on a machine (the programs take the same lock alone).
lock=/run/lock/folio_util.lock
[ -w /run/lock ] || lock=/tmp/folio_util.lock
if [ "$(id -u)" = 0 ] && [ -z "$FOLIO_UTIL_LOCK_HELD" ] && command -v flock >/dev/null; then
	exec 9>"$lock"
	flock -n 9 || { echo "# waiting for another run to finish ($lock)"; flock -w 600 9; } ||
		die "another run holds $lock"
	export FOLIO_UTIL_LOCK_HELD=1
fi

save_thp
setup_swap

ntests=$(echo "$plan" | grep -c .)
echo "TAP version 13"
echo "1..$ntests"

pass=0 fail=0 skip=0 n=0
runner=
command -v timeout >/dev/null && runner="timeout ${VMTESTS_TIMEOUT:-300}"
mkfifo "$work/out" || exit 2
while read -r cat prog flags args; do
	[ -n "$prog" ] || continue
	n=$((n + 1))
	echo "# selftests: $cat: $prog${args:+ $args}"
	if [ ! -x "./$prog" ]; then
		echo "# $prog is not built: run make first"
		echo "not ok $n $cat:$prog"
		fail=$((fail + 1))
		continue
	fi
	# The program runs in the background so that a signal to this shell
	# is handled at once; its output is shown as it comes and kept.
	awk -v out="$work/log" '{ print > out; print "# " $0; fflush() }' \
		< "$work/out" &
	reader=$!
	# shellcheck disable=SC2086 # arguments split as written in TESTS
	$runner "./$prog" $args > "$work/out" 2>&1 &
	child=$!
	wait "$child"
	rc=$?
	child=
	wait "$reader"
	p=$(grep -c '^ok [0-9]* ' "$work/log")
	s=$(grep -c '^ok [0-9]* .*# SKIP' "$work/log")
	f=$(grep -c '^not ok [0-9]* ' "$work/log")
	p=$((p - s))
	if [ "$rc" != 0 ] && [ "$rc" != $ksft_skip ] && [ "$f" = 0 ]; then
		echo "# $prog exited with status $rc"
		f=1
	fi
	[ $((p + s + f)) = 0 ] && if [ "$rc" = $ksft_skip ]; then s=1; else p=1; fi
	pass=$((pass + p)) skip=$((skip + s)) fail=$((fail + f))
	if [ "$f" -gt 0 ]; then
		echo "not ok $n $cat:$prog"
	elif [ "$p" = 0 ]; then
		echo "ok $n $cat:$prog # SKIP"
	else
		echo "ok $n $cat:$prog"
	fi
	rm -f "$work/log"
done <<EOF
$plan
EOF

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] || exit 1
[ "$pass" = 0 ] && [ "$skip" -gt 0 ] && exit $ksft_skip
exit 0
