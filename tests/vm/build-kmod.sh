#!/bin/bash
# Build zcusb.ko against the Debian kernel of the QEMU tier and stage it for the guest, where
# tests/vm/guest/kmod.sh installs it on demand (the guest boots without it).
#
#   tests/vm/build-kmod.sh WORKDIR OUTDIR
#
# WORKDIR keeps the build (kmod sources copied with their mtimes, so make stays incremental)
# and the depmod tree between runs. OUTDIR (the xfer share's kmod/) is created and gets:
#   zcusb.ko           the module
#   installed/         files to copy over /lib/modules/KVER to install it: updates/zcusb.ko
#                      and the modules.* indexes that depmod changed (made on the host: a
#                      depmod over the whole tree costs tens of seconds under TCG)
#   original/          the kernel cache's versions of those indexes (to uninstall)
#   installed.new      indexes depmod created that the cache lacks (removed to uninstall)
#   kver
# or, when the module cannot be built here, UNAVAILABLE (one line: why) and build.log. That
# is no failure of this script: the cases that need the module fail with the reason, the
# others run. Exit status: 0 (staged or UNAVAILABLE written), 2 usage or I/O error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KMOD=$(cd "$HERE/../../kmod" && pwd)
[ $# -eq 2 ] || {
	sed -n '2,20p' "$0" >&2
	exit 2
}
WORK=$1
OUT=$2
mkdir -p "$WORK" "$OUT"
exec 7>"$WORK/.lock"
flock 7

unavailable() {
	printf '%s\n' "$*" >"$OUT/UNAVAILABLE"
	printf 'build-kmod: zcusb.ko unavailable in the guest: %s\n' "$*" >&2
	exit 0
}
rm -rf "${OUT:?}"/*

for tool in make gcc depmod cmp; do
	command -v "$tool" >/dev/null 2>&1 || unavailable "'$tool' not found on the host (apt-get install \$(cat tests/vm/packages.txt))"
done
KENV=$("$HERE/fetch-kernel.sh") || unavailable "tests/vm/fetch-kernel.sh failed"
eval "$KENV"

# --- build (a copy of kmod/, like kmod/tests/run-kmod-tests.sh: the clone stays clean)
B=$WORK/build-$ZCUSB_KVER
mkdir -p "$B"
cp -p "$KMOD"/*.c "$KMOD"/*.h "$KMOD/../include/zcusb/zcusb_abi.h" "$KMOD/../include/zcusb/zcusb-ring.h" \
	"$KMOD/../tests/unit/transfer-check-vectors.h" "$KMOD/Kbuild" "$KMOD/Makefile" "$B/"
if ! make -C "$B" KDIR="$ZCUSB_KHEADERS" KMAKEFILE="$ZCUSB_KHEADERS_COMMON/Makefile" \
	>"$B/build.log" 2>&1; then
	cp "$B/build.log" "$OUT/build.log"
	unavailable "the module build failed ($(grep -m1 -E 'error|Error' "$B/build.log" || tail -n1 "$B/build.log"))"
fi

# --- indexes: depmod over a tree whose kernel/ is the cache's (a symlink; depmod follows it)
# plus updates/zcusb.ko; redone only when the module changed.
D=$WORK/depmod-$ZCUSB_KVER
sum=$(sha256sum "$B/zcusb.ko" | cut -d' ' -f1)
if [ "$(cat "$D/stamp" 2>/dev/null || true)" != "$sum" ]; then
	rm -rf "$D"
	M=$D/lib/modules/$ZCUSB_KVER
	mkdir -p "$M/updates" "$D/stage/installed/updates" "$D/stage/original"
	ln -s "$ZCUSB_MODDIR/kernel" "$M/kernel"
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		[ ! -e "$ZCUSB_MODDIR/$f" ] || cp "$ZCUSB_MODDIR/$f" "$M/"
	done
	cp "$B/zcusb.ko" "$M/updates/zcusb.ko"
	depmod -b "$D" "$ZCUSB_KVER" || unavailable "depmod -b $D $ZCUSB_KVER failed"
	grep -q '^updates/zcusb.ko:' "$M/modules.dep" || unavailable "depmod did not list updates/zcusb.ko"
	cp "$B/zcusb.ko" "$D/stage/installed/updates/zcusb.ko"
	: >"$D/stage/installed.new"
	for f in "$M"/modules.*; do
		n=${f##*/}
		if [ ! -e "$ZCUSB_MODDIR/$n" ]; then
			cp "$f" "$D/stage/installed/"
			echo "$n" >>"$D/stage/installed.new"
		elif ! cmp -s "$f" "$ZCUSB_MODDIR/$n"; then
			cp "$f" "$D/stage/installed/"
			cp "$ZCUSB_MODDIR/$n" "$D/stage/original/"
		fi
	done
	echo "$sum" >"$D/stamp"
fi
cp -a "$D/stage/." "$OUT/"
cp "$B/zcusb.ko" "$OUT/zcusb.ko"
echo "$ZCUSB_KVER" >"$OUT/kver"
