#!/bin/sh
# The LAVA test definition's run step (ci/lava/folio-batch.yaml); runs
# anywhere as root. Runs run_vmtests.sh, then reports every KTAP case with
# lava-test-case (when not under LAVA: prints "<case> <result>"), and the
# verdict against ci/expectations as the case folio-batch-verdict.
#
#   folio-batch.sh [-t "CATEGORY..."] [-u SUITE_URL] [-d true|false] [-o OUTDIR]
#
# OUTDIR (default ./output): ktap.txt, cases.txt, result.txt, verdict.txt,
# junit.xml. Exit 0 once the results are reported, whatever they are (LAVA
# runs steps under `set -e`); 2 bad usage; 4 the suite could not be fetched,
# built or started.

me=folio-batch.sh
top=$(cd "$(dirname "$0")/../.." && pwd)
cats="" url="" destructive=false out=./output
while getopts t:u:d:o:h o; do
	case $o in
	t) cats=$OPTARG ;;
	u) url=$OPTARG ;;
	d) destructive=$OPTARG ;;
	o) out=$OPTARG ;;
	h) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "$me: bad usage (see -h)" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 0 ] || { echo "$me: unexpected argument '$1' (see -h)" >&2; exit 2; }
case $destructive in true) dflag=-d ;; false | '') dflag= ;;
*) echo "$me: -d takes true or false, not '$destructive'" >&2; exit 2 ;; esac
args=$dflag
for c in $cats; do
	case $c in *[!a-z0-9_]*) echo "$me: bad category '$c'" >&2; exit 2 ;; esac
	args="$args -t $c"
done
mkdir -p "$out" && out=$(cd "$out" && pwd) || { echo "$me: cannot create $out" >&2; exit 4; }

report() {	# CASE RESULT
	echo "$1 $2" >> "$out/result.txt"
	if command -v lava-test-case > /dev/null; then
		lava-test-case "$1" --result "$2"
	else
		echo "$1 $2"
	fi
}
fail_run() {	# MESSAGE: the run itself could not happen
	echo "$me: $1" >&2
	report folio-batch-verdict fail
	exit 4
}
: > "$out/result.txt"

if [ -n "$url" ]; then
	suite=$out/suite
	rm -rf "$suite" && mkdir -p "$suite" || fail_run "cannot create $suite"
	case $url in
	file://*) cp "${url#file://}" "$out/suite.tar.gz" ;;
	*) wget -q -O "$out/suite.tar.gz" "$url" 2> /dev/null ||
		curl -fsSL -o "$out/suite.tar.gz" "$url" ;;
	esac || fail_run "cannot fetch $url"
	tar -xzf "$out/suite.tar.gz" -C "$suite" || fail_run "$url is not a tar.gz"
	[ -x "$suite/run_vmtests.sh" ] || fail_run "$url has no run_vmtests.sh at its top"
else
	make -C "$top" > "$out/build.log" 2>&1 || {
		tail -n 20 "$out/build.log" >&2
		fail_run "the suite did not build (make setup installs what it needs)"
	}
	suite=$top
fi

echo "$me: $suite/run_vmtests.sh$args on $(uname -r)"
(cd "$suite" && ./run_vmtests.sh $args) 2>&1 | tee "$out/ktap.txt"

# verdict.py knows the KTAP of run_vmtests.sh, the harness and crashes;
# it writes one line per case: "<id> <pass|fail|skip> <outcome>".
if ! command -v python3 > /dev/null; then
	fail_run "no python3: cannot split the KTAP into cases"
fi
python3 "$top/ci/verdict.py" --ktap "$out/ktap.txt" --cases "$out/cases.txt" \
	--junit "$out/junit.xml" --name "lava $(uname -n)" > "$out/verdict.txt" 2>&1
v=$?
cat "$out/verdict.txt"
[ -f "$out/cases.txt" ] || fail_run "verdict.py could not read the KTAP (exit $v)"
while read -r id result outcome; do
	report "$id" "$result"
done < "$out/cases.txt"
[ $v = 0 ] && report folio-batch-verdict pass || report folio-batch-verdict fail
exit 0
