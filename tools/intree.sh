#!/bin/sh
# Add the batched-unmap tests to a kernel tree's tools/testing/selftests/mm,
# so that they build there against the tree's own kselftest harness and run
# from its run_vmtests.sh and `make run_tests`:
#
#   tools/intree.sh <kernel tree>      (or: make intree KSRC=<kernel tree>)
#
# Copies the sources, the folio_tests.mk fragment and the ksft_<category>.sh
# wrappers; appends "include folio_tests.mk" to the tree's mm/Makefile; adds
# the categories to its run_vmtests.sh (usage text and run_test lines), the
# programs to its mm/.gitignore and the kernel options to its mm/config.
# Running it again refreshes the copies and adds only what is missing.

me=intree.sh
die() { echo "$me: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: $me <kernel tree>"
tree=$1
mm=$tree/tools/testing/selftests/mm
[ -f "$tree/Makefile" ] && [ -f "$mm/Makefile" ] && [ -f "$mm/run_vmtests.sh" ] ||
	die "$tree is not a kernel tree with tools/testing/selftests/mm"
v=$(sed -n 's/^VERSION = //p' "$tree/Makefile")
p=$(sed -n 's/^PATCHLEVEL = //p' "$tree/Makefile")
[ -n "$v" ] && [ -n "$p" ] && [ $((v * 1000 + p)) -ge 6012 ] ||
	die "$tree is Linux $v.$p: the tests need a 6.12 or newer harness"
grep -q '^run_test()' "$mm/run_vmtests.sh" ||
	die "$mm/run_vmtests.sh has no run_test(): not a run_vmtests.sh this script knows"

src=$(cd "$(dirname "$0")/testing/selftests/mm" && pwd)
tests=$(sed -n "/^TESTS='/,/^'/p" "$src/run_vmtests.sh" | sed '1d;$d' | awk NF)
progs=$(echo "$tests" | awk '{ print $2 }' | sort -u)
cats=$(echo "$tests" | awk '{ print $1 }' | uniq)

for f in folio_util.c folio_util.h folio_test.h folio_tests.mk; do
	cp "$src/$f" "$mm/$f" || exit 1
done
for prog in $progs; do
	cp "$src/$prog.c" "$mm/" || exit 1
done
for c in $cats; do
	cp "$src/ksft_$c.sh" "$mm/" || exit 1
done

grep -q '^include folio_tests.mk' "$mm/Makefile" ||
	printf '\n# Batched unmap of large folios\ninclude folio_tests.mk\n' >> "$mm/Makefile"

if [ -f "$mm/.gitignore" ]; then
	for prog in $progs; do
		grep -qx "$prog" "$mm/.gitignore" || echo "$prog" >> "$mm/.gitignore"
	done
fi

# Categories and run_test lines, each added once: a later run adds what
# the suite has gained since.
usage=$(sed -n '/^categories:/,/^EOF/p' "$src/run_vmtests.sh" | sed '1d;$d' |
	awk '{ c = $1; $1 = ""; sub(/^ /, ""); printf "- %s\n\t%s\n", c, $0 }' |
	awk -v have="$(grep '^- ' "$mm/run_vmtests.sh")" '
		BEGIN { n = split(have, h, "\n"); for (i = 1; i <= n; i++) seen[h[i]] = 1 }
		/^- / { skip = ($0 in seen) } !skip')
runs=$(echo "$tests" | while read -r c prog flags args; do
	line="CATEGORY=\"$c\" run_test ./$prog${args:+ $args}"
	grep -qxF -e "$line" -e "	$line" "$mm/run_vmtests.sh" && continue
	if [ "$flags" = destructive ]; then
		printf 'if $RUN_DESTRUCTIVE; then\n\t%s\nfi\n' "$line"
	else
		echo "$line"
	fi
done)
if [ -n "$usage$runs" ]; then
	tmp=$(mktemp) || exit 1
	awk -v usage="$usage" -v runs="$runs" '
		/^example: / && !u { if (usage != "") print usage; print ""; u = 1; if (prev == "") { } }
		/^echo "SUMMARY: / && !r { if (runs != "") { print runs; print "" }; r = 1 }
		{ print; prev = $0 }
		END { if (!u || !r) exit 1 }' "$mm/run_vmtests.sh" > "$tmp" ||
		{ rm -f "$tmp"; die "$mm/run_vmtests.sh: no usage example or SUMMARY line to insert before"; }
	cat "$tmp" > "$mm/run_vmtests.sh"
	rm -f "$tmp"
fi

# The kernel options the tests need, merged into the tree's config fragment.
if [ -f "$mm/config" ]; then
	while read -r opt; do
		grep -qx "$opt" "$mm/config" || echo "$opt" >> "$mm/config"
	done < "$src/config"
fi
echo "$me: added $(echo $cats) to $mm"
