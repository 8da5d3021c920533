#!/bin/sh
# Unit tests of the gate's plumbing that need no kernel build (make check
# runs them; ci/gate-selftest proves the rest with real kernels): bad input
# gives one line and exit 2 and creates nothing; a series that does not
# apply gives exit 6 and a JUnit failure "apply"; a tree that does not
# configure gives exit 7; ci/break-series changes exactly one line.
# Output: TAP.

top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
echo "TAP version 13"
echo "1..16"
t() {	# NAME WANT-EXIT COMMAND...: the exit code, and one line on stderr for 2
	name=$1 want=$2
	shift 2
	"$@" > "$tmp/out" 2> "$tmp/err"
	rc=$?
	n=$((n + 1))
	lines=$(wc -l < "$tmp/err")
	if [ $rc = "$want" ] && { [ "$want" != 2 ] || [ "$lines" = 1 ]; }; then
		echo "ok $n $name"
	else
		echo "not ok $n $name (exit $rc, want $want; $lines stderr lines)"
		sed 's/^/# /' "$tmp/err"
		failed=1
	fi
}
ok() {	# NAME CONDITION...
	name=$1
	shift
	n=$((n + 1))
	if "$@"; then echo "ok $n $name"; else echo "not ok $n $name"; failed=1; fi
}

# A tiny stand-in for a kernel tree: what kbuild checks, as a git repository,
# and a Makefile whose defconfig fails.
fake=$tmp/linux
mkdir -p "$fake/mm" "$fake/arch/x86" && cd "$fake" &&
	printf 'x86_64_defconfig:\n\t@echo "*** no Kconfig here"; exit 2\n' > Makefile &&
	printf 'static bool try_to_unmap_one(void)\n{\n\tset_ptes(mm, address, pvmw.pte, pteval, nr_pages);\n}\n' > mm/rmap.c &&
	git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base || exit 2
cd "$top" || exit 2
printf 'From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: t <t@t>\nSubject: [PATCH] x\n\n---\n mm/rmap.c | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\ndiff --git a/mm/rmap.c b/mm/rmap.c\n--- a/mm/rmap.c\n+++ b/mm/rmap.c\n@@ -1,2 +1,2 @@\n-static int b;\n+static int c;\n \tset_ptes(mm, address, pvmw.pte, pteval, nr_pages);\n--\n2.39.5\n\n' > "$tmp/stale.mbox"

t "gate without --tree" 2 ci/gate
t "gate with a missing tree" 2 ci/gate --tree "$tmp/none"
t "gate with a tree that is not a kernel" 2 ci/gate --tree "$tmp" --out "$tmp/o1"
ok "  ... and no OUT made" test ! -e "$tmp/o1"
t "gate with a missing series" 2 ci/gate --tree "$fake" --series "$tmp/none.mbox"
t "gate with an unknown option" 2 ci/gate --tree "$fake" --bogus
t "kbuild with a series that is not an mbox" 2 ci/kbuild --tree "$fake" --series /etc/hostname
t "kbuild with --jobs 0" 2 ci/kbuild --tree "$fake" --jobs 0
t "gate: a series that does not apply" 6 ci/gate --tree "$fake" --series "$tmp/stale.mbox" \
	--work "$tmp/w" --out "$tmp/o2"
ok "  ... and its JUnit names the failing case apply" grep -q 'name="apply"><failure' "$tmp/o2/junit.xml"
ok "  ... and the summary says why" grep -q '^gate: REJECT .*does not apply' "$tmp/o2/summary.txt"
t "gate: a tree that does not configure" 7 ci/gate --tree "$fake" --work "$tmp/w" --out "$tmp/o3"
t "break-series: unknown kind" 2 ci/break-series --tree "$fake" --kind bogus --out "$tmp/x.mbox"
t "break-series: restore-one on the stand-in" 0 ci/break-series --tree "$fake" \
	--kind restore-one --out "$tmp/r.mbox"
ok "  ... one line out, one line in" test "$(grep -c '^[-+]	set_ptes' "$tmp/r.mbox")" = 2
t "gate-selftest with a kind that cannot be rejected on tests" 2 ci/gate-selftest --kind no-build
git -C "$fake" worktree prune
[ $failed = 0 ] && echo "# gate plumbing: all $n passed"
exit $failed
