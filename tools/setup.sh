#!/bin/sh
# Install what the suite needs on a Debian machine and link in the kselftest
# harness from a real kernel tree. Idempotent: a second run changes nothing.
#
#   tools/setup.sh [KSRC=<kernel tree>] [--no-packages]
#
# The harness (kselftest_harness.h, kselftest.h, lib.mk, kselftest/) is
# never committed: it is linked from KSRC when given, else from Debian's
# linux-source-6.12 (trixie), fetched with apt-get download through a
# private sources list and package lists under .cache/ (the machine's own
# apt sources are not touched) and unpacked, those files only, there too.
# Older harnesses (6.1 among them) lose failures raised in a test's own
# children and run the body after a SKIP in setup: 6.12 is the minimum.

set -e
me=setup.sh
die() { echo "$me: $*" >&2; exit 2; }

top=$(cd "$(dirname "$0")/.." && pwd)
ksrc=
packages=1
for arg; do
	case $arg in
	KSRC=*) ksrc=${arg#KSRC=} ;;
	--no-packages) packages=0 ;;
	*) die "unknown argument '$arg' (usage: $me [KSRC=<kernel tree>] [--no-packages])" ;;
	esac
done
[ -z "$ksrc" ] && [ -n "$KSRC" ] && ksrc=$KSRC

# Validate KSRC before anything changes.
if [ -n "$ksrc" ]; then
	[ -f "$ksrc/Makefile" ] && [ -f "$ksrc/tools/testing/selftests/kselftest_harness.h" ] ||
		die "KSRC=$ksrc is not a kernel source tree with tools/testing/selftests"
	v=$(sed -n 's/^VERSION = //p' "$ksrc/Makefile")
	p=$(sed -n 's/^PATCHLEVEL = //p' "$ksrc/Makefile")
	[ -n "$v" ] && [ -n "$p" ] || die "KSRC=$ksrc: no VERSION/PATCHLEVEL in its Makefile"
	[ $((v * 1000 + p)) -ge 6012 ] ||
		die "KSRC=$ksrc is Linux $v.$p: the harness must be 6.12 or newer"
fi

# the suite, its VM runs and benchmark plots; then the gate's kernel builds
# (ci/kbuild) and the LAVA checks (ci/lava/validate: Debian's python3 modules)
pkgs="gcc make libc6-dev liburing-dev util-linux xz-utils findutils gawk python3 qemu-system-x86 busybox-static e2fsprogs xfsprogs gnuplot-nox
	flex bison bc libelf-dev libssl-dev cpio ccache git python3-yaml python3-voluptuous python3-jinja2
	python3-pexpect python3-requests python3-setproctitle python3-magic python3-netifaces
	python3-configobj python3-pyudev python3-tz python3-dateutil"
if [ $packages = 1 ]; then
	[ "$(id -u)" = 0 ] || die "installing packages needs root (or pass --no-packages)"
	missing=
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "$me: installing$missing"
		apt-get -q update >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends $missing >/dev/null
	fi
fi

sel=$top/tools/testing/selftests
cache=$top/.cache
if [ -n "$ksrc" ]; then
	src=$(cd "$ksrc/tools/testing/selftests" && pwd)
	origin="KSRC=$(cd "$ksrc" && pwd) (Linux $v.$p)"
else
	# Debian's linux-source-6.12 from trixie, looked up in a private list.
	src=$(ls -d "$cache"/harness/linux-source-6.12*/tools/testing/selftests 2>/dev/null | tail -n 1)
	if [ -z "$src" ] || [ ! -f "$src/lib.mk" ]; then
		mkdir -p "$cache/harness"
		echo "$me: fetching Debian's linux-source-6.12 for the kselftest harness"
		tmp=$(mktemp -d)
		"$top/tools/apt-fetch" trixie update && "$top/tools/apt-fetch" trixie download "$tmp" linux-source-6.12 ||
			{ rm -rf "$tmp"; die "could not download linux-source-6.12"; }
		deb=$(ls "$tmp"/linux-source-6.12_*.deb)
		ver=$(basename "$deb" | sed 's/^linux-source-6.12_\(.*\)_all.deb$/\1/')
		dest=$cache/harness/linux-source-6.12-$ver
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './usr/src/linux-source-*.tar.xz'
		mkdir -p "$dest"
		xz -dc "$tmp"/usr/src/linux-source-6.12.tar.xz |
			tar -x -C "$dest" --strip-components=1 --wildcards \
				'linux-source-6.12/tools/testing/selftests/kselftest_harness.h' \
				'linux-source-6.12/tools/testing/selftests/kselftest.h' \
				'linux-source-6.12/tools/testing/selftests/lib.mk' \
				'linux-source-6.12/tools/testing/selftests/kselftest/*'
		rm -rf "$tmp"
		src=$dest/tools/testing/selftests
	fi
	origin="Debian linux-source-6.12 ($(basename "$(dirname "$(dirname "$(dirname "$src")")")"))"
fi

for f in kselftest_harness.h kselftest.h lib.mk kselftest; do
	[ -e "$src/$f" ] || die "$src/$f is missing"
	if [ "$(readlink "$sel/$f" 2>/dev/null)" != "$src/$f" ]; then
		rm -f "$sel/$f"
		ln -s "$src/$f" "$sel/$f"
	fi
done
echo "$origin" > "$sel/HARNESS"
echo "$me: kselftest harness from $origin"
