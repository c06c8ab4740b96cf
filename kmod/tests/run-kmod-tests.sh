#!/bin/bash
# Real-kernel test of zcusb.ko: build it against Debian's cached kernel headers,
# build the static test program, boot Debian's kernel under QEMU (TCG) with a
# busybox initramfs holding dummy_hcd + configfs Loopback/SourceSink gadgets and,
# on an xHCI (no_sg_constraint, real DMA), QEMU's usb-storage, its usb-audio
# (iso OUT) and zcusb-isodev (tests/vm/host: a usbredir server on the host,
# through QEMU's usb-redir: iso IN and OUT, tests/vm/tools/zcusb-isodev.h),
# run kmod/tests/zcusb-kmod-test there and report.
#
#   kmod/tests/run-kmod-tests.sh [-v]
#
# Environment:
#   ZCUSB_VM_CACHE   cache directory (default /var/cache/zcusb-test): the kernel
#                    (tests/vm/fetch-kernel.sh) and build products (CACHE/kmod-test)
#   ZCUSB_VM_QEMU    qemu binary (default qemu-system-x86_64)
#   ZCUSB_VM_TIMEOUT hard limit of the VM run in seconds (default 400)
#   ZCUSB_CYCLES     unbind/bind/open/close cycles (default 1000)
#   ZCUSB_KMOD_APPEND extra kernel command line
#   ZCUSB_ISODEV     the zcusb-isodev binary (meson's vm-kmod passes its build's;
#                    default: built here from tests/vm/host, needs libusbredirparser-dev)
# Exit: 0 pass; 1 test failures; 2 build failure; 3 VM did not finish.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KMOD=$(cd "$HERE/.." && pwd)
REPO=$(cd "$KMOD/.." && pwd)
# shellcheck source=tests/vm/stage-modules.sh
. "$REPO/tests/vm/stage-modules.sh"
# shellcheck source=tests/vm/isodev.sh
. "$REPO/tests/vm/isodev.sh"
CACHE=${ZCUSB_VM_CACHE:-/var/cache/zcusb-test}
WORK=$CACHE/kmod-test
QEMU=${ZCUSB_VM_QEMU:-qemu-system-x86_64}
TIMEOUT=${ZCUSB_VM_TIMEOUT:-400}
VERBOSE=0
[ "${1:-}" = -v ] && VERBOSE=1

log() { printf 'run-kmod-tests: %s\n' "$*" >&2; }
die() {
	printf 'run-kmod-tests: error: %s\n' "$*" >&2
	exit "${2:-2}"
}
for tool in "$QEMU" busybox gcc make modprobe timeout flock; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (apt-get install qemu-system-x86 busybox-static gcc make kmod libc6-dev)"
done
if ldd "$(command -v busybox)" >/dev/null 2>&1; then
	die "busybox is dynamically linked: apt-get install busybox-static"
fi

eval "$("$REPO/tests/vm/fetch-kernel.sh")" || die "tests/vm/fetch-kernel.sh failed"
mkdir -p "$WORK"
exec 7>"$WORK/.lock"
flock 7
T0=$(date +%s.%N)

# --- build the module (outside the clone; cp -p keeps mtimes so make stays incremental)
B=$WORK/build-$ZCUSB_KVER
mkdir -p "$B"
cp -p "$KMOD"/*.c "$KMOD"/*.h "$KMOD/../include/zcusb/zcusb_abi.h" "$KMOD/../include/zcusb/zcusb-ring.h" \
	"$KMOD/../tests/unit/transfer-check-vectors.h" "$KMOD/Kbuild" "$KMOD/Makefile" "$B/"
if ! make -C "$B" KDIR="$ZCUSB_KHEADERS" KMAKEFILE="$ZCUSB_KHEADERS_COMMON/Makefile" \
	W=1 >"$B/build.log" 2>&1; then
	cat "$B/build.log"
	die "module build failed"
fi
if grep -E 'warning:|error:' "$B/build.log"; then
	die "module build has warnings (above)"
fi

# --- the test program (its sources: zcusb-kmod-test.h says which holds what)
TEST=$WORK/zcusb-kmod-test
TEST_SRCS=()
for f in zcusb-kmod-test harness data limits faults xhci queue iso; do
	TEST_SRCS+=("$HERE/$f.c")
done
stale=0
[ -x "$TEST" ] || stale=1
for f in "${TEST_SRCS[@]}" "$HERE/zcusb-kmod-test.h" "$KMOD/../include/zcusb/zcusb_abi.h" \
	"$KMOD/../include/zcusb/zcusb-ring.h" "$REPO/tests/vm/tools/zcusb-isodev.h" \
	"$REPO/tests/vm/tools/zcusb-pattern.h"; do
	if [ "$f" -nt "$TEST" ]; then
		stale=1
	fi
done
if [ $stale = 1 ]; then
	gcc -static -O2 -Wall -Wextra -Werror -o "$TEST.tmp" "${TEST_SRCS[@]}" ||
		die "building zcusb-kmod-test failed"
	mv -f "$TEST.tmp" "$TEST"
fi

# --- zcusb-isodev, the iso IN device (runs on the host, next to QEMU)
ISODEV=${ZCUSB_ISODEV:-}
if [ -z "$ISODEV" ]; then
	ISODEV=$WORK/zcusb-isodev
	srcs=("$REPO"/tests/vm/host/*.c)
	isodev_stale=0
	for f in "${srcs[@]}" "$REPO"/tests/vm/host/*.h "$REPO/tests/vm/tools/zcusb-isodev.h" \
		"$REPO/tests/vm/tools/zcusb-pattern.h"; do
		[ -x "$ISODEV" ] && [ ! "$f" -nt "$ISODEV" ] || isodev_stale=1
	done
	if [ $isodev_stale = 1 ]; then
		pkg-config --exists 'libusbredirparser-0.5 >= 0.11' ||
			die "libusbredirparser-0.5 >= 0.11 not found: apt-get install libusbredirparser-dev (zcusb-isodev, the iso IN device)"
		# shellcheck disable=SC2046 # pkg-config prints separate words
		gcc -O2 -Wall -Wextra -Werror -I"$REPO/tests/vm/tools" $(pkg-config --cflags libusbredirparser-0.5) \
			-o "$ISODEV.tmp" "${srcs[@]}" $(pkg-config --libs libusbredirparser-0.5) ||
			die "building zcusb-isodev failed"
		mv -f "$ISODEV.tmp" "$ISODEV"
	fi
fi
[ -x "$ISODEV" ] || die "zcusb-isodev: $ISODEV is not an executable (ninja -C BUILD tests/vm/host/zcusb-isodev)"

# --- initramfs: busybox, /init, modules in dependency order, zcusb.ko, the test
stage=$(mktemp -d "$WORK/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,etc,lib/modules,proc,sys,tmp}
cp "$(command -v busybox)" "$stage/bin/busybox"
install -m 0755 "$HERE/guest-init.sh" "$stage/init"
cp "$TEST" "$stage/bin/zcusb-kmod-test"
cp "$B/zcusb.ko" "$stage/lib/modules/zcusb.ko"
stage_modules "$stage" xhci_pci dummy_hcd configfs libcomposite usb_f_ss_lb
# two dummy UDCs: the Loopback and the SourceSink each get one
sed -i 's/^dummy_hcd\.ko .*$/dummy_hcd.ko num=2/' "$stage/etc/zcusb-modules"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) \
	>"$WORK/initramfs.cpio" || die "busybox cpio failed"
rm -rf "$stage"
trap - EXIT
T1=$(date +%s.%N)

# --- a disk for QEMU's usb-storage on the xHCI: byte i of sector lba is (lba*7+i)&0xff
if [ ! -f "$WORK/disk.pristine" ]; then
	python3 - "$WORK/disk.pristine" <<'EOF'
import os, sys
with open(sys.argv[1] + ".tmp", "wb") as f:
    base = bytes(range(256)) * 3
    for lba in range(32768):
        s = (lba * 7) & 0xff
        f.write(base[s:s + 512])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
EOF
fi
cp "$WORK/disk.pristine" "$WORK/disk.img"

# --- boot
CONSOLE=$WORK/console.log
: >"$CONSOLE"
APPEND="console=ttyS0 panic=-1 rdinit=/init loglevel=4 mitigations=off 8250.nr_uarts=1"
APPEND+=" random.trust_cpu=on ZCUSB_CYCLES=${ZCUSB_CYCLES:-1000}"
APPEND+=${ZCUSB_KMOD_APPEND:+ $ZCUSB_KMOD_APPEND}
# zcusb-isodev serves QEMU's usb-redir (tests/vm/isodev.sh) until QEMU closes it; it and the
# console tail are stopped on every way out from here.
ISOSTATS=$WORK/isodev-stats.json
rm -f "$ISOSTATS"
trap helpers_stop EXIT
isodev_start "$ISODEV" "$WORK/isodev.sock" "$ISOSTATS" "$WORK/isodev.log" ||
	die "zcusb-isodev, the iso IN device, did not start (above)" 3

log "booting $ZCUSB_KVER under TCG (limit ${TIMEOUT}s)"
if [ $VERBOSE = 1 ]; then
	console_follow "$CONSOLE"
fi
# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
QEMU_ARGS=(
	-accel tcg -cpu max -smp 2 -m 1024
	-nographic -nodefaults -no-reboot -monitor none -serial "file:$CONSOLE"
	-kernel "$ZCUSB_VMLINUX" -initrd "$WORK/initramfs.cpio" -append "$APPEND"
	-device qemu-xhci,id=xhci -drive "if=none,id=d0,file=$WORK/disk.img,format=raw"
	-device usb-storage,bus=xhci.0,drive=d0
	-audiodev none,id=snd0 -device usb-audio,bus=xhci.0,audiodev=snd0
	# zcusb-isodev (1209:0001, high speed): iso IN 0x81 and OUT 0x02 for iso.c's IN section
	"${ISODEV_QEMU_ARGS[@]}"
)
set +e
timeout -k 10 "$TIMEOUT" "$QEMU" "${QEMU_ARGS[@]}" </dev/null >"$WORK/qemu.out" 2>&1
qrc=$?
set -e
T2=$(date +%s.%N)
helpers_end
trap - EXIT

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
if [ $VERBOSE = 0 ]; then
	# the guest's own lines (init, test, dmesg excerpt), without the boot log
	sed -n '/zcusb-kmod-init\[/,$p' "$CONSOLE" | tr -d '\r'
fi
echo "== build+initramfs $(secs "$T0" "$T1") s, QEMU $(secs "$T1" "$T2") s (rc $qrc); console: $CONSOLE"
echo "== zcusb-isodev ($ISODEV_END): $(cat "$ISOSTATS" 2>/dev/null || echo 'no stats file') (log: $WORK/isodev.log)"
rc=$(sed -n 's/^ZCUSB-KMOD-RESULT: rc=\([0-9]*\).*/\1/p' "$CONSOLE" | tr -d '\r' | tail -n1)
if [ -z "$rc" ]; then
	echo "VM RUN FAILED: no result line (timeout, panic or crash); last console lines:"
	tail -n 40 "$CONSOLE" | tr -d '\r' | sed 's/^/   /'
	exit 3
fi
if [ "$rc" != 0 ]; then
	echo "zcusb.ko tests FAILED (rc $rc)"
	exit 1
fi
echo "zcusb.ko tests passed"
exit 0
