#!/bin/bash
# Build the small initramfs of the QEMU test tier: busybox, tests/vm/init as /init, and the
# modules /init needs to reach the host's / over virtio-9p (virtio_pci, 9pnet_virtio, 9p,
# overlay, with their dependencies in load order from the depmod'ed tree).
#
#   tests/vm/build-initramfs.sh OUTPUT.cpio
#
# Needs ZCUSB_KVER and ZCUSB_MODDIR from fetch-kernel.sh (runs it when they are unset).
# The archive is uncompressed (no decompression under TCG) and rebuilt only when its inputs
# (this script, init, busybox, the kernel) change: OUTPUT.stamp holds their hash.
set -euo pipefail

die() {
	printf 'build-initramfs: error: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTPUT.cpio"
OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/stage-modules.sh
. "$HERE/stage-modules.sh"

if [ -z "${ZCUSB_KVER:-}" ] || [ -z "${ZCUSB_MODDIR:-}" ]; then
	eval "$("$HERE/fetch-kernel.sh")"
fi
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || die "busybox not found: apt-get install busybox-static"
# A dynamically linked busybox cannot run in the initramfs (no libc there).
if command -v ldd >/dev/null 2>&1 && ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked: apt-get install busybox-static"
fi
command -v modprobe >/dev/null || die "modprobe not found: apt-get install kmod"

MODULES=(virtio_pci 9pnet_virtio 9p overlay)
key=$( {
	cat "$0" "$HERE/init" "$HERE/stage-modules.sh"
	echo "$ZCUSB_KVER $ZCUSB_MODDIR ${MODULES[*]}"
	cksum <"$BUSYBOX"
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null || true)" = "$key" ]; then
	exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,etc,lib/modules,proc,sys,run,tmp}
cp "$BUSYBOX" "$stage/bin/busybox"
install -m 0755 "$HERE/init" "$stage/init"

# modprobe --show-depends prints "insmod PATH [ARGS]" in load order ("builtin X" for built-ins).
stage_modules "$stage" "${MODULES[@]}"

tmp=$OUT.tmp.$$
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) >"$tmp" ||
	die "busybox cpio failed"
mv -f "$tmp" "$OUT"
printf '%s\n' "$key" >"$OUT.stamp"
