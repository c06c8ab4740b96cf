#!/bin/bash
# Build the Debian packages (debian/) from this source tree and check them with lintian, for
# the 'deb-packages' test and the VM case 86-deb-packages (which installs them in the guest).
#
#   tests/vm/build-debs.sh OUTDIR
#
# Copies the source (git's tracked and untracked-but-not-ignored files when it is a git
# checkout, else the tree without build*/ and .git) to OUTDIR/src/zcusb, runs
# `dpkg-buildpackage -b -us -uc` there (DEB_BUILD_OPTIONS=nocheck: the unit tests run in their
# own tier) and `lintian` on the result. OUTDIR gets the .deb files, build.log, lintian.txt and
# a stamp (the sources' hash): an unchanged tree is not built again. Exit: 0 built (or cached)
# and lintian reports no error; 1 the build failed or lintian reports errors; 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
[ $# -eq 1 ] || {
	sed -n '2,12p' "$0" >&2
	exit 2
}
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 7>"$OUT/.lock"
flock 7

for tool in dpkg-buildpackage dh lintian fakeroot; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "build-debs: '$tool' not found: apt-get install \$(cat $HERE/packages.txt)" >&2
		exit 1
	}
done

list_sources() {
	if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$SRC" ls-files -z --cached --others --exclude-standard |
			grep -zv -e '^build[^/]*/' -e '^obj-' || true
	else
		(cd "$SRC" && find . -path ./.git -prune -o -path './build*' -prune -o -path './obj-*' -prune \
			-o \( -type f -o -type l \) -printf '%P\0')
	fi
}
hash=$( (cd "$SRC" && list_sources | LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$hash" ] && compgen -G "$OUT/*.deb" >/dev/null; then
	echo "build-debs: packages of this source tree already built in $OUT"
else
	rm -rf "$OUT/src" "$OUT"/*.deb "$OUT/stamp"
	mkdir -p "$OUT/src/zcusb"
	(cd "$SRC" && list_sources | tar --null -T - -cf -) | tar -xf - -C "$OUT/src/zcusb"
	t0=$(date +%s)
	echo "build-debs: dpkg-buildpackage -b -us -uc in $OUT/src/zcusb (log: $OUT/build.log)"
	if ! (cd "$OUT/src/zcusb" &&
		DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc) >"$OUT/build.log" 2>&1; then
		tail -n 30 "$OUT/build.log"
		echo "build-debs: FAIL: dpkg-buildpackage failed (log above and in $OUT/build.log)"
		exit 1
	fi
	echo "build-debs: built in $(($(date +%s) - t0)) s"
	# dbgsym packages are not installed by the test
	for f in "$OUT"/src/*.deb; do
		case $f in *-dbgsym_*) ;; *) cp "$f" "$OUT/" ;; esac
	done
	(cd "$OUT/src" && lintian --pedantic -I ./*.changes >"$OUT/lintian.txt" 2>&1) || true
	echo "$hash" >"$OUT/stamp"
fi
find "$OUT" -maxdepth 1 -name '*.deb' -printf '  %s %p\n' | sort -k2
echo "build-debs: lintian --pedantic -I (errors E:, warnings W:, info I:, pedantic P:):"
grep -v '^running with root' "$OUT/lintian.txt" | sed 's/^/  /'
errors=$(grep -c '^E:' "$OUT/lintian.txt" || true)
warnings=$(grep -c '^W:' "$OUT/lintian.txt" || true)
echo "build-debs: lintian: $errors errors, $warnings warnings"
[ "$errors" = 0 ] || {
	echo "build-debs: FAIL: lintian reports errors"
	exit 1
}
