#!/bin/bash
# Boot Debian's kernel under QEMU (TCG) with systemd as PID 1 and run the guest test cases
# of tests/vm/cases against the project's installed tree.
#
#   tests/vm/run-vm.sh [OPTIONS] BUILD_DIR [CASE...]
#     CASE: 20-list-devices, list-devices, 20 or cases/20-list-devices.sh; default all.
#   tests/vm/run-vm.sh --fingerprint BUILD_DIR
#     print the hash of what a run would test (installed tree, guest scripts, cases, kernel)
#
# Options:
#   --results DIR       where results go (cleared first; default BUILD_DIR/tests/vm/results)
#   --timeout SECS      hard limit for the whole VM run (default: from the cases' timeouts)
#   --case-timeout SECS default guest-side limit per case (120; a case's "# timeout: N" wins)
#   --case-dir DIR      take the cases from DIR instead of tests/vm/cases (the benchmark's
#                       tests/vm/bench/cases: not tests, so not in the vm suite)
#   --dummy-hcd PARAMS  dummy_hcd's module parameters in the guest (default "num=4"; the
#                       benchmark: "num=8 is_super_speed=1")
#   -v, --verbose       also stream the guest's serial console to stdout
# Environment: ZCUSB_VM_CACHE (kernel cache, see fetch-kernel.sh), ZCUSB_VM_TIMEOUT,
#   ZCUSB_VM_VERBOSE=1, ZCUSB_VM_QEMU (qemu binary), ZCUSB_VM_SMP, ZCUSB_VM_MEM,
#   ZCUSB_VM_APPEND (extra kernel command line, e.g. "systemd.log_level=debug").
#
# Exit: 0 all cases passed; 1 the VM ran every case but some failed; 2 usage;
#       3 the VM did not boot, crashed or timed out (the reason and the console tail are printed).
# Results: NAME.rc NAME.log NAME.time per case, console.log, setup.log, boot.txt, dmesg.txt,
#   journal.txt, run-status (status=, reason=, fingerprint=, cases=, wall=), isodev.log and
#   isodev-stats.json (zcusb-isodev's stderr and its final stats).
# The guest also gets, under /run/zcusb-vm: bin/ the test programs meson built but does not
# install (BUILD/tests/vm/tools, BUILD/tests/vm/bench), kmod/ zcusb.ko built against the
# guest's kernel (build-kmod.sh; installed by the cases that want it, see guest/kmod.sh),
# isodev-stats.json (what zcusb-isodev, the iso device QEMU's usb-redir puts on the xHCI
# from BUILD/tests/vm/host, has seen: its --stats file, rewritten as it changes).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=run-vm
# shellcheck source=tests/vm/isodev.sh
. "$HERE/isodev.sh"
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 3
}
usage() {
	sed -n '2,32p' "$0" >&2
	exit 2
}

RESULTS=""
TIMEOUT=${ZCUSB_VM_TIMEOUT:-}
CASE_TIMEOUT=120
VERBOSE=${ZCUSB_VM_VERBOSE:-0}
FP_ONLY=0
CASE_DIR=$HERE/cases
DUMMY_HCD=num=4
while [ $# -gt 0 ]; do
	case $1 in
	--results) RESULTS=${2:?--results needs a directory}; shift 2 ;;
	--results=*) RESULTS=${1#*=}; shift ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--timeout=*) TIMEOUT=${1#*=}; shift ;;
	--case-timeout) CASE_TIMEOUT=${2:?}; shift 2 ;;
	--case-timeout=*) CASE_TIMEOUT=${1#*=}; shift ;;
	--case-dir) CASE_DIR=${2:?--case-dir needs a directory}; shift 2 ;;
	--case-dir=*) CASE_DIR=${1#*=}; shift ;;
	--dummy-hcd) DUMMY_HCD=${2:?--dummy-hcd needs module parameters}; shift 2 ;;
	--dummy-hcd=*) DUMMY_HCD=${1#*=}; shift ;;
	--fingerprint) FP_ONLY=1; shift ;;
	-v | --verbose) VERBOSE=1; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) log "unknown option $1"; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
[ -d "$1" ] || die "build directory '$1' does not exist (meson setup BUILD_DIR first)"
BUILD=$(cd "$1" && pwd)
shift
[ -f "$BUILD/meson-private/coredata.dat" ] || die "$BUILD is not a meson build directory"
[ -d "$CASE_DIR" ] || die "case directory '$CASE_DIR' does not exist"
CASE_DIR=$(cd "$CASE_DIR" && pwd)

# --- which cases -----------------------------------------------------------------------------
ALL=()
for f in "$CASE_DIR"/[0-9]*.sh; do
	[ -e "$f" ] || continue
	n=${f##*/}
	ALL+=("${n%.sh}")
done
CASES=()
if [ $# -eq 0 ]; then
	CASES=("${ALL[@]}")
else
	for want in "$@"; do
		want=${want##*/}
		want=${want%.sh}
		hit=""
		for c in "${ALL[@]}"; do
			if [ "$c" = "$want" ] || [ "${c#*-}" = "$want" ] || [ "${c%%-*}" = "$want" ]; then
				hit=$c
				break
			fi
		done
		[ -n "$hit" ] || { log "no case '$want' in $CASE_DIR (have: ${ALL[*]})"; exit 2; }
		CASES+=("$hit")
	done
fi
[ ${#CASES[@]} -gt 0 ] || die "no cases found in $CASE_DIR"
# The install cases run the host's source tree and build in place; the guest mounts its own
# tmpfs on /tmp and /run, so a tree there is invisible to it: skip (77) and say why.
if [ "${CASE_DIR##*/}" = install-cases ]; then
	for p in "$(cd "$HERE/../.." && pwd)" "$BUILD"; do
		case $p/ in
		/tmp/* | /run/*)
			log "SKIP: $p is under /tmp or /run, which the guest does not see: clone and build elsewhere to run ${CASES[*]}"
			exit 77
			;;
		esac
	done
fi

# --- tools and kernel ----------------------------------------------------------------------
QEMU=${ZCUSB_VM_QEMU:-qemu-system-x86_64}
for tool in "$QEMU" busybox meson modprobe python3 timeout flock; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' not found: apt-get install \$(cat $HERE/packages.txt)"
done
KENV=$("$HERE/fetch-kernel.sh") || die "fetch-kernel.sh failed (see above)"
eval "$KENV"

VMDIR=$BUILD/tests/vm
WORK=$VMDIR/work
mkdir -p "$WORK"
exec 8>"$VMDIR/.run.lock"
flock 8 # one VM run per build directory at a time

# copy_test_programs DIR: the executables meson built under BUILD/tests/vm/{tools,bench}
# (test programs, not installed). They find libzcusb installed in the guest.
copy_test_programs() {
	local d f
	mkdir -p "$1"
	for d in "$BUILD/tests/vm/tools" "$BUILD/tests/vm/bench"; do
		for f in "$d"/*; do
			[ -f "$f" ] && [ -x "$f" ] && cp -p "$f" "$1/"
		done
	done
	return 0
}

# prepare_xfer DIR: the project's installed tree (DIR/root), the guest scripts, the cases,
# the test programs (DIR/bin) and zcusb.ko (DIR/kmod).
prepare_xfer() {
	local x=$1 out
	rm -rf "$x"
	mkdir -p "$x/root"
	if ! out=$(meson install -C "$BUILD" --destdir "$x/root" --no-rebuild --quiet 2>&1); then
		printf '%s\n' "$out" >&2
		die "meson install -C $BUILD --destdir ... failed (build first: meson compile -C $BUILD)"
	fi
	cp -a "$HERE/guest" "$x/guest"
	# the pure-Python client of the integration tier, for guest/hostile-kqueue.py
	cp -p "$HERE/../integration/zcusbclient.py" "$x/guest/"
	cp -a "$CASE_DIR" "$x/cases"
	copy_test_programs "$x/bin"
	"$HERE/build-kmod.sh" "$WORK/kmod" "$x/kmod" || die "build-kmod.sh failed"
	stage_debs "$x/debs"
	make_sys_tree "$x/sys" "$x/root"
}

# stage_debs DIR: the Debian packages (build-debs.sh, cached in BUILD/tests/vm/debs) for the
# cases that say "# needs: debs"; when they cannot be built, DIR/UNAVAILABLE says why and
# only those cases fail.
stage_debs() {
	local d=$1 c need=""
	mkdir -p "$d"
	for c in "${CASES[@]}"; do
		grep -q '^# needs: .*debs' "$CASE_DIR/$c.sh" && need=1
	done
	[ -n "$need" ] || return 0
	if "$HERE/build-debs.sh" "$BUILD/tests/vm/debs" >"$WORK/build-debs.log" 2>&1; then
		cp "$BUILD"/tests/vm/debs/*.deb "$d/"
	else
		echo "tests/vm/build-debs.sh failed: $(tail -n 1 "$WORK/build-debs.log") (see $WORK/build-debs.log)" >"$d/UNAVAILABLE"
	fi
}

# make_sys_tree DIR PROJECT_ROOT: the rig's files for the guest's root, copied by /init:
# guest/units/* into /etc/systemd/system, /dev/null links for guest/masked-units and for every
# systemd generator (the guest needs none), the usbtest blacklist.
make_sys_tree() {
	local t=$1 proot=$2 unit gen
	mkdir -p "$t/etc/systemd/system" "$t/etc/systemd/system-generators" "$t/etc/modprobe.d"
	cp -a "$HERE/guest/units/." "$t/etc/systemd/system/"
	while read -r unit _; do
		case $unit in '' | '#'*) continue ;; esac
		# systemd-sysusers stays when the project ships sysusers.d entries.
		if [ "$unit" = systemd-sysusers.service ] &&
			{ [ -d "$proot/usr/lib/sysusers.d" ] || [ -d "$proot/lib/sysusers.d" ]; }; then
			continue
		fi
		ln -sfn /dev/null "$t/etc/systemd/system/$unit"
	done <"$HERE/guest/masked-units"
	for gen in /usr/lib/systemd/system-generators/* /lib/systemd/system-generators/*; do
		[ -e "$gen" ] || continue
		ln -sfn /dev/null "$t/etc/systemd/system-generators/${gen##*/}"
	done
	# usbtest matches 0525:a4a0 and would take the gadget away from usbfs.
	echo "blacklist usbtest" >"$t/etc/modprobe.d/zcusb-vm.conf"
}
fingerprint() { # DIR
	{
		echo "kernel $ZCUSB_KVER"
		sha256sum "$HERE/init" "$HERE/run-vm.sh" "$HERE/build-initramfs.sh" "$HERE/stage-modules.sh" \
			"$HERE/isodev.sh" "$HERE"/host/*.[ch] "$HERE/tools/zcusb-isodev.h" | cut -d' ' -f1
		cd "$1"
		find root sys guest cases bin kmod debs -printf '%p %y %m %l\n' | LC_ALL=C sort
		find root sys guest cases bin kmod debs -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
	} | sha256sum | cut -d' ' -f1
}

if [ "$FP_ONLY" = 1 ]; then
	prepare_xfer "$WORK/fp"
	fingerprint "$WORK/fp"
	rm -rf "$WORK/fp"
	exit 0
fi

# zcusb-isodev: the host side of the iso IN device (tests/vm/host), next to QEMU.
ISODEV=$BUILD/tests/vm/host/zcusb-isodev
[ -x "$ISODEV" ] ||
	die "$ISODEV missing: the VM tier's iso device is not built (apt-get install libusbredirparser-dev, then meson setup --reconfigure $BUILD && ninja -C $BUILD)"

# The shipped unit, rules and bus policy only take effect where systemd, udev and dbus look.
prefix=$(python3 -c 'import json,sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "prefix": print(o["value"])' "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || true)
if [ -n "$prefix" ] && [ "$prefix" != /usr ]; then
	log "warning: $BUILD has prefix=$prefix; systemd, udev and dbus-daemon ignore most files installed there (D-Bus policy, udev rules): configure with 'meson setup --prefix=/usr' for this tier"
fi
[ "$(id -u)" = 0 ] ||
	log "warning: not root: the guest sees the host's / with this user's read permissions (run as root)"

RESULTS=${RESULTS:-$VMDIR/results}
# Cleared first, but only if it is empty or an earlier results dir (marker file).
if [ -d "$RESULTS" ] && [ -n "$(ls -A "$RESULTS")" ] &&
	[ ! -e "$RESULTS/.zcusb-vm-results" ] && [ ! -e "$RESULTS/run-status" ]; then
	die "refusing to clear $RESULTS: not empty and not a results directory of this script"
fi
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
: >"$RESULTS/.zcusb-vm-results"
T0=$(date +%s.%N)
XFER=$WORK/xfer
prepare_xfer "$XFER"
mkdir -p "$XFER/results"
FP=$(fingerprint "$XFER")

# Per-case limits (guest side) and the hard limit of the whole run (host side).
total=0
for c in "${CASES[@]}"; do
	t=$(sed -n 's/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$CASE_DIR/$c.sh" | head -n1)
	total=$((total + ${t:-$CASE_TIMEOUT} + 10))
done
if [ -z "$TIMEOUT" ]; then
	TIMEOUT=$((120 + total))
	# Within vm-boot's meson timeout (1800 s), with room for the host side.
	[ $TIMEOUT -le 1680 ] || TIMEOUT=1680
fi
{
	printf 'CASES=('
	printf '%q ' "${CASES[@]}"
	printf ')\nCASE_TIMEOUT=%q\n' "$CASE_TIMEOUT"
	printf 'DUMMY_HCD_PARAMS=%q\n' "$DUMMY_HCD"
	# The host's source tree and this build (the guest sees the host's / read-only, under a
	# tmpfs overlay), and the kernel's unpacked headers (cases that build zcusb.ko there).
	printf 'ZCUSB_VM_SRC=%q\nZCUSB_VM_BUILD=%q\n' "$(cd "$HERE/../.." && pwd)" "$BUILD"
	printf 'ZCUSB_KHEADERS=%q\nZCUSB_KHEADERS_COMMON=%q\n' "$ZCUSB_KHEADERS" "$ZCUSB_KHEADERS_COMMON"
} >"$XFER/config"

"$HERE/build-initramfs.sh" "$WORK/initramfs.cpio" || die "build-initramfs.sh failed"
# A small disk for QEMU's usb-storage on the xHCI (sparse, content irrelevant).
[ -f "$WORK/usbdisk.img" ] || truncate -s 16M "$WORK/usbdisk.img"
T1=$(date +%s.%N)

# zcusb-isodev serves QEMU's usb-redir (isodev.sh) until QEMU closes it; its stats go to the
# xfer share for the guest. It and the console tail are stopped on every way out from here.
trap helpers_stop EXIT
isodev_start "$ISODEV" "$WORK/isodev.sock" "$XFER/isodev-stats.json" "$RESULTS/isodev.log" ||
	die "zcusb-isodev, the iso device, did not start (above)"

CONSOLE=$WORK/console.log
: >"$CONSOLE"
# systemd.unit= must be on the kernel command line: systemd 252 ignores it in argv.
APPEND="console=ttyS0 rdinit=/init panic=-1 loglevel=4 zcvm.moddir=$ZCUSB_MODDIR systemd.unit=zcusb-vmtest.service"
APPEND+=" mitigations=off random.trust_cpu=on 8250.nr_uarts=1 tsc=reliable systemd.show_status=auto"
APPEND+=${ZCUSB_VM_APPEND:+ $ZCUSB_VM_APPEND}
# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
QEMU_ARGS=(
	-accel tcg -cpu max -smp "${ZCUSB_VM_SMP:-2}" -m "${ZCUSB_VM_MEM:-2048}"
	-nographic -nodefaults -no-reboot -monitor none -serial "file:$CONSOLE"
	-kernel "$ZCUSB_VMLINUX" -initrd "$WORK/initramfs.cpio" -append "$APPEND"
	-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=root,mount_tag=root
	-fsdev "local,id=xfer,path=$XFER,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=xfer,mount_tag=xfer
	-device qemu-xhci,id=xhci
	-drive "if=none,id=usbdisk,file=$WORK/usbdisk.img,format=raw"
	-device usb-storage,bus=xhci.0,drive=usbdisk,serial=zcusbvm
	-device usb-kbd,bus=xhci.0
	# A USB Audio Class speaker (46f4:0002, full speed, iso OUT 0x01 on interface 1, alt 1) for
	# 79-iso. mixing-engine=off: its samples reach the wav file byte for byte (no volume, no
	# resampling; the guest reads the file through the xfer share). The wav writer then plays
	# at its default 44.1 kHz while the device takes 48 kHz: buffer= (1024 packets of 192 B,
	# default 32) absorbs the difference instead of dropping packets after 0.4 s.
	-audiodev "wav,id=usbaudio,path=$XFER/usb-audio.wav,out.mixing-engine=off"
	-device usb-audio,bus=xhci.0,audiodev=usbaudio,buffer=196608
	# zcusb-isodev (1209:0001, high speed, tests/vm/tools/zcusb-isodev.h): iso IN 0x81 and
	# OUT 0x02 of 1024 bytes a millisecond for 79-iso, played by the host process started
	# above and put on the xHCI by QEMU's usb-redir (dummy_hcd has no iso; usb-audio no IN).
	"${ISODEV_QEMU_ARGS[@]}"
)
log "booting $ZCUSB_KVER for ${CASES[*]} (limit ${TIMEOUT}s)"
if [ "$VERBOSE" = 1 ]; then
	console_follow "$CONSOLE"
fi
set +e
timeout -k 10 "$TIMEOUT" "$QEMU" "${QEMU_ARGS[@]}" </dev/null >"$WORK/qemu.out" 2>&1
qrc=$?
set -e
T2=$(date +%s.%N)
helpers_end
trap - EXIT

# --- collect -------------------------------------------------------------------------------
cp -a "$XFER/results/." "$RESULTS/" 2>/dev/null || true
cp "$XFER/isodev-stats.json" "$RESULTS/" 2>/dev/null || true
cp "$CONSOLE" "$RESULTS/console.log"
[ -s "$WORK/qemu.out" ] && cp "$WORK/qemu.out" "$RESULTS/qemu.out"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
status=ok
reason=""
if [ ! -f "$RESULTS/run.done" ]; then
	status=failed
	running=$(sed -n 's/.*zcusb-vmtest: case \([^ ]*\) (timeout.*/\1/p' "$CONSOLE" | tail -n1)
	if [ -n "$running" ] && [ -f "$RESULTS/$running.rc" ]; then running=""; fi
	if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
		if [ -n "$running" ]; then
			stage="while case $running was running"
		elif grep -q 'zcusb-vmtest: case' "$CONSOLE"; then
			stage="after the last case, while collecting logs"
		elif grep -q 'zcusb-init.*switching to systemd' "$CONSOLE"; then
			stage="after the switch to systemd, before the test unit ran a case"
		elif grep -q 'zcusb-init' "$CONSOLE"; then
			stage="in the initramfs (/init)"
		else
			stage="before /init ran (kernel boot)"
		fi
		reason="VM timed out after ${TIMEOUT}s $stage"
	elif grep -q 'ZCUSB-VM-INIT-FAILED:' "$CONSOLE"; then
		reason="initramfs /init failed: $(sed -n 's/.*ZCUSB-VM-INIT-FAILED: //p' "$CONSOLE" | head -n1)"
	elif grep -q 'Kernel panic' "$CONSOLE"; then
		reason="kernel panic: $(grep -m1 'Kernel panic' "$CONSOLE" | tr -d '\r')"
	elif [ $qrc -ne 0 ]; then
		reason="QEMU exited with $qrc: $(tail -n 3 "$WORK/qemu.out" | tr '\n' ' ')"
	elif ! grep -q 'zcusb-vmtest: case' "$CONSOLE"; then
		reason="the guest powered off before the test unit ran any case (systemd did not start zcusb-vmtest.service?)"
	else
		reason="the guest powered off before finishing${running:+ (during case $running)}"
	fi
fi
missing=()
for c in "${CASES[@]}"; do
	[ -f "$RESULTS/$c.rc" ] || missing+=("$c")
done
if [ $status = ok ] && [ ${#missing[@]} -gt 0 ]; then
	status=failed
	reason="the guest finished without results for ${missing[*]}"
fi
{
	echo "status=$status"
	printf 'reason=%q\n' "$reason"
	echo "fingerprint=$FP"
	printf 'cases=%q\n' "${CASES[*]}"
	echo "wall=$(secs "$T0" "$T2")"
	echo "qemu_rc=$qrc"
} >"$RESULTS/run-status"

# --- report --------------------------------------------------------------------------------
bootval() { sed -n "s/^$1=//p" "$RESULTS/boot.txt" 2>/dev/null; }
echo "== zcusb VM run: kernel $ZCUSB_KVER, $(nproc) CPUs, TCG"
echo "   prepare (install, initramfs): $(secs "$T0" "$T1") s; QEMU wall: $(secs "$T1" "$T2") s (rc $qrc)"
if [ -f "$RESULTS/boot.txt" ]; then
	echo "   guest uptime: test unit start $(bootval guest_uptime_at_test_start) s, gadgets ready $(bootval guest_uptime_after_setup) s, end $(bootval guest_uptime_at_test_end) s"
fi
echo "   zcusb-isodev ($ISODEV_END): $(cat "$RESULTS/isodev-stats.json" 2>/dev/null || echo 'no stats file')"
if grep -q '^ERROR' "$RESULTS/setup.log" 2>/dev/null; then
	echo "   gadget setup errors (setup.log):"
	grep '^ERROR\|gadget: error' "$RESULTS/setup.log" | sed 's/^/     /'
fi
printf '   %-28s %-8s %s\n' CASE RESULT GUEST-TIME
npass=0
nfail=0
for c in "${CASES[@]}"; do
	if [ -f "$RESULTS/$c.rc" ]; then
		rc=$(cat "$RESULTS/$c.rc")
		if [ "$rc" = 0 ]; then res=PASS npass=$((npass + 1)); else res="FAIL($rc)" nfail=$((nfail + 1)); fi
		printf '   %-28s %-8s %s s\n' "$c" "$res" "$(cat "$RESULTS/$c.time" 2>/dev/null || echo '?')"
	else
		nfail=$((nfail + 1))
		printf '   %-28s %-8s %s\n' "$c" "NO-RESULT" "-"
	fi
done
for c in "${CASES[@]}"; do
	if [ ! -f "$RESULTS/$c.rc" ] || [ "$(cat "$RESULTS/$c.rc")" = 0 ]; then continue; fi
	echo "-- $c (last lines of $RESULTS/$c.log):"
	tail -n 8 "$RESULTS/$c.log" | sed 's/^/   /'
done
echo "   results: $RESULTS"
if [ $status != ok ]; then
	echo "VM RUN FAILED: $reason"
	echo "-- last 40 lines of the serial console ($RESULTS/console.log):"
	tail -n 40 "$CONSOLE" | tr -d '\r' | sed 's/^/   /'
	exit 3
fi
echo "== $npass passed, $nfail failed"
[ $nfail -eq 0 ] || exit 1
exit 0
