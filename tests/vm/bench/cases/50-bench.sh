#!/bin/bash
# The benchmark's guest side (tests/vm/bench/run-bench.sh boots it; not a test). Writes one JSON
# line per measurement to bench.jsonl in the results; run-bench.sh sums them up on the host
# (summarize.py). Sections, each optional (SECTIONS):
#   throughput  SourceSink gadget ss: for each SIZE:DEPTH, IN and OUT, every contender once per
#               round, ROUNDS rounds interleaved; each run moves MIB MiB or stops after
#               MAX_SECONDS. Every round also measures the idle guest's busy time (the baseline).
#   latency     Loopback gadget lb, 64 bytes: rtt (OUT then IN, one at a time) and behind (an OUT
#               submitted while an IN waits on the same claim: how long until it completes)
#   scaling     1 client on ss, then SCALE_CLIENTS clients at once on ss, ss2, ss3.. (gadgets
#               added here), 64 KiB x 8 IN for SCALE_SECONDS, started together (--go barrier);
#               SCALE_ROUNDS rounds
#   remote      zcusbd-zcusb.ko on the local SourceSink ss vs on a SourceSink (ssr, its own product
#               id) exported by usbip-host + usbipd and imported by zcusbd over 127.0.0.1 through
#               vhci-hcd (both ends in this guest: the guest CPU counts both); the largest of SIZES,
#               IN and OUT, ROUNDS rounds, the order alternating
#   footprint   zcusbd's RSS and wakeups per second (voluntary context switches of all its
#               threads) over FOOT_SECONDS: idle; with IDLE_CLIENTS idle clients (claim, buffer,
#               queue, nothing in flight; Loopback functions of gadgets lbm1, lbm2 added here);
#               while one client streams; idle again. For each backend of the contenders.
# Contenders (CONTENDERS): libusb-sync, libusb-async-malloc, libusb-async-devmem,
# libusb-async-memfd (libusb-bench as root straight on usbfs; zcusbd runs, idle; async-memfd is
# async-malloc copying into the memory zcusbd's usbfs path copies into: a control of the ratios,
# the same code; throughput only),
# zcusbd-usbfs (zcusbd, Backend=usbfs), zcusbd-usbfs-nostage (the same with UsbfsStaging=no:
# usbfs copies, as before staging buffers; throughput and latency), zcusbd-zcusb.ko (zcusbd,
# Backend=auto with zcusb.ko loaded, KernelQueues=no: zcusbd serves the rings; checked on every
# run), zcusbd-zcusb.ko-nozc (the same with disable_zerocopy=1),
# zcusbd-kqueues (zcusb.ko's in-kernel queues: KernelQueues=yes, the module serves the rings;
# each run records how many entries the module took, kq_entries, which summarize.py checks),
# compat-devmem (libusb-bench's async-devmem run through zcusb-run: libusb's API on zcusbd with
# in-kernel queues, zcusbd's default; throughput only, compared with zcusbd-kqueues).
# contender_setup is the one place that knows how to prepare each.
# timeout: 2280
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

SECTIONS="throughput latency scaling footprint remote"
CONTENDERS="libusb-sync libusb-async-malloc libusb-async-devmem zcusbd-usbfs zcusbd-zcusb.ko zcusbd-kqueues"
ROUNDS=5 MIB=64 MAX_SECONDS=3 SIZES="16384:8 65536:8 1048576:4"
RTT_COUNT=200 BEHIND_COUNT=20 PERF=0 SYSCALLS=0 PIN=1 PIN_FIRST=0 SCALE_CLIENTS=4 SCALE_SECONDS=3 SCALE_ROUNDS=3 IDLE_CLIENTS=16 FOOT_SECONDS=4
# run-bench.sh's choices
# shellcheck source=/dev/null
[ ! -f "${BASH_SOURCE[0]%/*}/bench.env" ] || . "${BASH_SOURCE[0]%/*}/bench.env"
OUT=$ZCUSB_VM_RESULTS/bench.jsonl
: >"$OUT"
zb=$(vm_tool zcusb-bench)
lb=$(vm_tool libusb-bench)
W=/tmp/bench
rm -rf "$W"
mkdir -p "$W"
mkfifo "$W/never" # read -t on it: a sleep without a process start (that costs CPU under TCG)
exec {NEVER}<>"$W/never"
pause() { read -r -t "$1" -u "$NEVER" _ || true; }

read -ra CLIST <<<"$CONTENDERS"
read -ra SDLIST <<<"$SIZES"
has_section() { [[ " $SECTIONS " == *" $1 "* ]]; }
NEED_KMOD=0
for c in "${CLIST[@]}"; do
	case $c in
	libusb-sync | libusb-async-malloc | libusb-async-devmem | libusb-async-memfd | zcusbd-usbfs | zcusbd-usbfs-nostage) ;;
	zcusbd-zcusb.ko | zcusbd-zcusb.ko-nozc | zcusbd-kqueues) NEED_KMOD=1 ;;
	compat-devmem)
		command -v zcusb-run >/dev/null || fail "compat-devmem: zcusb-run not installed (the build lacks the libusb compatibility library)"
		NEED_KMOD=1
		;;
	*) fail "unknown contender $c" ;;
	esac
done

# --- the contenders --------------------------------------------------------------------------
# contender_setup NAME: the daemon state NAME runs in (restarting zcusbd only when its Backend
# changes); sets KIND (libusb|zcusbd) and MODE (libusb-bench's mode).
CONFIGURED=""
daemon_backend() { # auto|kqueue|usbfs|usbfs-nostage
	[ "$CONFIGURED" = "$1" ] && return 0
	case $1 in
	auto) zcusbd_config "KernelQueues=no" ;;
	kqueue) zcusbd_config "KernelQueues=yes" ;;
	usbfs-nostage) zcusbd_config "Backend=usbfs" "UsbfsStaging=no" ;;
	*) zcusbd_config "Backend=$1" ;;
	esac
	zcusbd_restart
	DAEMON_PID=$(daemon_pid)
	pause 0.5 # zcusbd's start-up work out of the next measurement
	CONFIGURED=$1
}
contender_setup() {
	case $1 in
	libusb-*) KIND=libusb MODE=${1#libusb-} ;;
	# libusb-bench's dev_mem mode, unmodified, through zcusb's libusb-1.0.so.0 (zcusb-run):
	# zcusbd's default with zcusb.ko loaded (in-kernel queues)
	compat-devmem)
		KIND=compat MODE=async-devmem
		daemon_backend kqueue
		kmod_param disable_zerocopy 0
		;;
	zcusbd-usbfs) KIND=zcusbd; daemon_backend usbfs ;;
	zcusbd-usbfs-nostage) KIND=zcusbd; daemon_backend usbfs-nostage ;;
	zcusbd-zcusb.ko | zcusbd-zcusb.ko-nozc)
		KIND=zcusbd
		daemon_backend auto
		if [ "$1" = zcusbd-zcusb.ko-nozc ]; then kmod_param disable_zerocopy 1; else kmod_param disable_zerocopy 0; fi
		;;
	zcusbd-kqueues)
		KIND=zcusbd
		daemon_backend kqueue
		kmod_param disable_zerocopy 0
		;;
	*) fail "no setup for contender $1" ;;
	esac
}
# The backend group of a contender (GROUP): contenders of one group run one after the other, so
# zcusbd restarts only between groups.
contender_group() {
	case $1 in
	libusb-*) GROUP=libusb ;;
	zcusbd-usbfs) GROUP=usbfs ;;
	zcusbd-usbfs-nostage) GROUP=usbfs-nostage ;;
	zcusbd-kqueues | compat-devmem) GROUP=kqueue ;;
	*) GROUP=auto ;;
	esac
}
# The contenders of LIST in group order, the groups rotated by ROUND (no group always first).
ordered() { # ROUND LIST...
	local round=$1 g c k groups=(auto kqueue usbfs usbfs-nostage libusb) out=()
	shift
	for ((k = 0; k < ${#groups[@]}; k++)); do
		g=${groups[$(((round + k) % ${#groups[@]}))]}
		for c in "$@"; do
			contender_group "$c"
			[ "$GROUP" != "$g" ] || out+=("$c")
		done
	done
	echo "${out[@]}"
}

daemon_pid() { systemctl show -P MainPID zcusbd.service; }
# pin_daemon CPUS: zcusbd's threads to CPUS (taskset's list); a restart of zcusbd undoes it.
pin_daemon() { taskset -apc "$1" "$DAEMON_PID" >/dev/null || fail "taskset of zcusbd ($DAEMON_PID) to CPU $1 failed"; }
# pin_contender CPU (after contender_setup): unless --no-pin, zcusbd (for all but the plain
# libusb contenders) to CPU, and PIN_CMD=(taskset -c CPU) to put before the client's command; else
# PIN_CMD=().
pin_contender() {
	PIN_CMD=()
	[ "$PIN" = 1 ] || return 0
	[ "$KIND" = libusb ] || pin_daemon "$1"
	PIN_CMD=(taskset -c "$1")
}

# The bulk endpoints of interface INTF ("IN OUT", 0x..) from sysfs.
intf_bulk_eps() {
	local d t dir a ein="" eout=""
	for d in /sys/bus/usb/devices/"$1"/ep_*; do
		[ -f "$d/type" ] || continue
		read -r t <"$d/type"
		[ "$t" = Bulk ] || continue
		read -r dir <"$d/direction"
		read -r a <"$d/bEndpointAddress"
		if [ "$dir" = in ]; then [ -n "$ein" ] || ein=0x$a; else [ -n "$eout" ] || eout=0x$a; fi
	done
	if [ -z "$ein" ] || [ -z "$eout" ]; then fail "interface $1 has no bulk IN and OUT endpoint in sysfs"; fi
	echo "$ein $eout"
}

# A gadget's target for each program: ZDEV (zcusbd's VID:PID:SERIAL), LSEL (libusb-bench's
# --vid/--pid/--bus/--address), EPS (--in/--out); looked up once per gadget (TARGETS).
declare -A TARGETS=()
target() { # NAME VID PID
	local d b a eps drv
	if [ -z "${TARGETS[$1]:-}" ]; then
		d=$(gadget_sysfs "$1") || fail "gadget $1 is not plugged (setup.log)"
		read -r b <"$d/busnum"
		read -r a <"$d/devnum"
		eps=$(intf_bulk_eps "${d##*/}:1.0")
		TARGETS[$1]="$b $a $eps ${d##*/}:1.0"
	fi
	read -r b a ep_in ep_out INTF <<<"${TARGETS[$1]}"
	ZDEV=$2:$3:zcusb-$1
	LSEL=(--vid "0x$2" --pid "0x$3" --bus "$b" --address "$a")
	EPS=(--in "$ep_in" --out "$ep_out")
}

# The command line of one client of contender C (after contender_setup C) on gadget NAME
# (VID PID), then the arguments of both programs: CMD=(...).
client_cmd() { # C NAME VID PID ARGS...
	local c=$1 drv
	RECORD_AS=""
	target "$2" "$3" "$4"
	shift 4
	if [ "$KIND" = libusb ]; then
		drv=$(intf_driver "$INTF")
		[ -z "$drv" ] || fail "$INTF is bound to $drv before a libusb run"
		CMD=("$lb" "${LSEL[@]}" "${EPS[@]}" "$@" "$MODE")
	elif [ "$KIND" = compat ]; then
		CMD=(zcusb-run "$lb" "${LSEL[@]}" "${EPS[@]}" "$@" "$MODE")
		# libusb-bench names itself after its mode: record() renames it
		RECORD_AS=$c
	else
		CMD=("$zb" --device "$ZDEV" "${EPS[@]}" --daemon-pid "$DAEMON_PID" "$@" "$c")
	fi
}

# The entries zcusb.ko's in-kernel queues took during one client's run (all its lines):
# KQ_EXTRA=,"kq_entries":N when the module is loaded, else empty.
kq_before() {
	KQ0=""
	[ -r /sys/bus/usb/drivers/zcusb/stats ] || return 0
	kmod_stats
	KQ0=$KS_kq_transfers
}
kq_after() {
	KQ_EXTRA=""
	[ -n "$KQ0" ] && [ -r /sys/bus/usb/drivers/zcusb/stats ] || return 0
	kmod_stats
	KQ_EXTRA=",\"kq_entries\":$((KS_kq_transfers - KQ0))"
}

# LINE of a client's JSON as recorded, in RECORDED: libusb-bench names itself after its mode,
# the compat contender (RECORD_AS) is renamed. (No subshell: a process start costs under TCG.)
as_recorded() {
	RECORDED=$1
	[ -z "${RECORD_AS:-}" ] || RECORDED=${RECORDED/\"contender\":\"libusb-$MODE\"/\"contender\":\"$RECORD_AS\"}
}

# settled_go GO PID: once client PID is ready at its --go barrier GO (claimed, buffers and queue
# set up), let udev finish what the claim started (zcusbd binds the interface to zcusb.ko or
# usbfs claims it: bind and device events whose rules run for a while under TCG), then release
# it. A claim's one-off cost is not a cost per GiB: measured, it overlapped the first run of the
# client and the next contender's.
settled_go() { # GO PID
	local up _ end
	read -r up _ </proc/uptime
	end=$((${up%.*} + 60))
	until [ -n "$(compgen -G "$1.ready.*")" ]; do
		kill -0 "$2" 2>/dev/null || return 0 # it failed before the barrier: its status says why
		read -r up _ </proc/uptime
		[ "${up%.*}" -lt "$end" ] || fail "client $2 not at its start barrier after 60 s"
		pause 0.02
	done
	udevadm settle --timeout=30 || true
	: >"$1"
}

# record EXTRA CMD...: run a client (its command line has --go "$GO": settled_go), append each of
# its JSON lines, with EXTRA (",\"k\":v..."), to bench.jsonl.
GO=$W/go.record
record() {
	local extra=$1 lines line pid
	shift
	rm -f "$GO" "$GO".ready.*
	kq_before
	"$@" >"$W/out" 2>"$W/err" &
	pid=$!
	settled_go "$GO" "$pid"
	if ! wait "$pid"; then
		cat "$W/err"
		fail "failed: $* (above)"
	fi
	lines=$(<"$W/out")
	kq_after
	extra+=$KQ_EXTRA
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		as_recorded "$line"
		line=$RECORDED
		line="${line%\}}$extra}"
		printf '%s\n' "$line" >>"$OUT"
		printf '   %s\n' "$line"
	done <<<"$lines"
}

# The whole guest's idle + iowait ticks (all CPUs) and the time, without a process start
# (bench-common.h: busy = wall time x CPUs - idle).
guest_idle() {
	local _ idle iowait
	read -r _ _ _ _ idle iowait _ </proc/stat
	IDLE_TICKS=$((idle + iowait))
	IDLE_AT=$EPOCHREALTIME
}
# idle_baseline ROUND SECONDS: the busy time of the guest doing nothing but its background
# (zcusbd idle, systemd, the emulated buses), subtracted per second by summarize.py.
idle_baseline() {
	local t0 i0
	pause 0.3
	guest_idle
	t0=$IDLE_AT i0=$IDLE_TICKS
	pause "$2"
	guest_idle
	awk -v r="$1" -v a="$t0" -v b="$IDLE_AT" -v t=$((IDLE_TICKS - i0)) -v hz="$CLK_TCK" -v n="$NCPU" 'BEGIN {
		busy = (b - a) * n - t / hz; if (busy < 0) busy = 0
		printf "{\"section\":\"idle\",\"round\":%d,\"seconds\":%.6f,\"guest_busy\":%.6f}\n", r, b - a, busy }' |
		tee -a "$OUT"
}

# vcpu_probe ROUND: how fast each vCPU is at this point of the boot: the time dd takes to read
# 256 MiB of zeros into a 64 KiB buffer (the kernel's store loop, as in usbfs's copies to user
# memory), pinned to each CPU in turn. Under TCG a vCPU is a host thread: while it shares a host
# core it is slower, and a path whose copying process runs on it loses MB/s its code does not cost.
vcpu_probe() {
	local n t0 t1
	for ((n = 0; n < NCPU; n++)); do
		t0=$EPOCHREALTIME
		taskset -c "$n" dd if=/dev/zero of=/dev/null bs=64K count=4096 status=none || fail "taskset/dd on CPU $n failed"
		t1=$EPOCHREALTIME
		awk -v r="$1" -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {
			printf "{\"section\":\"vcpu\",\"round\":%d,\"cpu\":%d,\"mib\":256,\"seconds\":%.6f}\n", r, n, b - a }' |
			tee -a "$OUT"
	done
}

REMOTE_CONF=/etc/zcusb/zcusbd.conf.d/60-bench-remote.conf
REMOTE_BUSID="" USBIPD_PID=""
cleanup() {
	local p
	for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -z "$REMOTE_BUSID" ] || usbip unbind -b "$REMOTE_BUSID" >/dev/null 2>&1 || true
	gadget_del ssr >/dev/null 2>&1 || true
	rm -f "$REMOTE_CONF"
	kmod_uninstall
	zcusbd_config_clear
	zcusbd_restart
}
trap cleanup EXIT

# --- set-up ---------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
ss=$(gadget_sysfs ss) || fail "SourceSink gadget not plugged (setup.log)"
read -r speed <"$ss/speed"
printf '{"section":"meta","speed_mbps":%s,"kernel":"%s","rounds":%d,"mib":%d,"max_seconds":%s,"sizes":"%s","contenders":"%s","sections":"%s","rtt_count":%d,"behind_count":%d,"scale_clients":%d,"scale_seconds":%s,"scale_rounds":%d,"idle_clients":%d,"foot_seconds":%s,"guest_cpus":%d,"is_super_speed":"%s"}\n' \
	"$speed" "$(uname -r)" "$ROUNDS" "$MIB" "$MAX_SECONDS" "$SIZES" "$CONTENDERS" "$SECTIONS" "$RTT_COUNT" \
	"$BEHIND_COUNT" "$SCALE_CLIENTS" "$SCALE_SECONDS" "$SCALE_ROUNDS" "$IDLE_CLIENTS" "$FOOT_SECONDS" "$(nproc)" \
	"$(</sys/module/dummy_hcd/parameters/is_super_speed)" >>"$OUT"
step "SourceSink $ss at $speed Mb/s; sections: $SECTIONS; contenders: $CONTENDERS; $ROUNDS rounds"
ensure_zcusbd
if has_section remote; then
	# vhci-hcd before zcusbd's restart below (its unit makes vhci's sysfs writable at start)
	NEED_KMOD=1
	systemctl start zcusb-vhci.service || fail "zcusb-vhci.service failed"
	mkdir -p "${REMOTE_CONF%/*}"
	printf '[Remote]\nAllowHosts=127.0.0.1\n' >"$REMOTE_CONF"
fi
if [ $NEED_KMOD = 1 ]; then
	kmod_install
	zcusbd_restart
	kmod_loaded || fail "zcusb.ko not loaded by zcusb-load.service"
fi
CONFIGURED="" # the first zcusbd contender writes its configuration
DAEMON_PID=$(daemon_pid)

# --- throughput -----------------------------------------------------------------------------
if has_section throughput; then
	for ((round = 1; round <= ROUNDS; round++)); do
		step "throughput: round $round of $ROUNDS"
		idle_baseline "$round" 2
		vcpu_probe "$round"
		read -ra order <<<"$(ordered "$round" "${CLIST[@]}")"
		sizes=$(IFS=,; echo "${SDLIST[*]}")
		# the whole round on one vCPU (run-bench.sh --no-pin): pinned_cpu -1 when not pinned
		cpu=-1
		[ "$PIN" = 0 ] || cpu=$(((round - 1 + PIN_FIRST) % NCPU))
		for c in "${order[@]}"; do
			# one client per contender and round: every size, IN then OUT
			contender_setup "$c"
			pin_contender "$cpu"
			client_cmd "$c" ss 0525 a4a0 --sizes "$sizes" --max-seconds "$MAX_SECONDS" --go "$GO"
			record ",\"section\":\"throughput\",\"round\":$round,\"pinned_cpu\":$cpu" \
				"${PIN_CMD[@]}" "${CMD[@]}" in,out "$MIB"
		done
	done
	[ "$PIN" = 0 ] || pin_daemon "0-$((NCPU - 1))"
fi

# --- profile (--perf) -----------------------------------------------------------------------
# One more run per contender, not measured: perf record of the whole guest while it streams the
# first size IN and OUT; the hottest symbols (process, symbol) and their callers to perf-CONTENDER.txt.
# Pinned to CPU 0 as the throughput rounds are (not with --no-pin): the profile of what they measure.
if has_section throughput && [ "$PERF" = 1 ]; then
	step "profile: perf record -a while each contender streams ${SDLIST[0]} (size:depth) in,out"
	for c in "${CLIST[@]}"; do
		contender_setup "$c"
		pin_contender 0
		client_cmd "$c" ss 0525 a4a0 --sizes "${SDLIST[0]}" --max-seconds "$MAX_SECONDS"
		perf record -q -a -g -e cpu-clock -F 1999 -o "$W/perf.data" -- "${PIN_CMD[@]}" "${CMD[@]}" in,out "$MIB" \
			>"$W/perf-run.out" 2>"$W/perf-run.err" || { cat "$W/perf-run.err"; fail "perf record of $c failed"; }
		{
			echo "# $c, ${SDLIST[0]} (size:depth), in,out, $MIB MiB each: whole guest, cpu-clock 1999 Hz"
			while IFS= read -r line; do
				as_recorded "$line"
				printf '# %s\n' "$RECORDED"
			done <"$W/perf-run.out"
			# where a path's time goes by process and object (kernel, program, libraries):
			# a per-transfer cost spread over many small symbols shows here, not below
			echo "# by process and object"
			perf report -i "$W/perf.data" --stdio --no-children --sort comm,dso -g none \
				--percent-limit 0.2 2>/dev/null | grep -v '^$'
			perf report -i "$W/perf.data" --stdio --no-children --sort comm,dso,sym -g none \
				--percent-limit 0.2 2>/dev/null | grep -v '^$'
			# time with interrupts off lands where they come back on (cpu-clock is a
			# timer): the callers say whose it was
			echo "# callers of the hottest symbols"
			perf report -i "$W/perf.data" --stdio --no-children --sort sym -g caller,1,callee,function,percent \
				--percent-limit 1 2>/dev/null | grep -v '^$' | head -n 600
		} >"$ZCUSB_VM_RESULTS/perf-$c.txt"
		note "perf-$c.txt: $(grep -c '%' "$ZCUSB_VM_RESULTS/perf-$c.txt") lines >= 0.2 %"
	done
	[ "$PIN" = 0 ] || pin_daemon "0-$((NCPU - 1))"
fi

# --- system calls (--syscalls) -------------------------------------------------------------
# One more run per contender, not measured: strace -c of the client (-f) and of zcusbd while the
# client streams the first size IN and OUT; each one's calls per transfer to syscalls-CONTENDER.txt.
# strace slows both down: the counts are what to read, not the times.
per_transfer() { # STRACE_C_OUTPUT TRANSFERS: "calls/transfer syscall" for each line of strace -c
	awk -v n="$2" '/^-+/ { sep++; next } sep == 1 && NF >= 5 { printf "%10.2f  %s\n", $4 / n, $NF }' "$1"
}
if has_section throughput && [ "$SYSCALLS" = 1 ]; then
	step "syscalls: strace -c of client and zcusbd while each contender streams ${SDLIST[0]} (size:depth) in,out"
	for c in "${CLIST[@]}"; do
		contender_setup "$c"
		client_cmd "$c" ss 0525 a4a0 --sizes "${SDLIST[0]}" --max-seconds "$MAX_SECONDS"
		spid=""
		if [ "$KIND" != libusb ]; then
			strace -c -q -p "$DAEMON_PID" -o "$W/strace-daemon.txt" &
			spid=$!
			pause 1 # attached before the client starts
		fi
		strace -c -q -f -o "$W/strace-client.txt" -- "${CMD[@]}" in,out "$MIB" >"$W/strace-run.out" 2>"$W/strace-run.err" ||
			{ cat "$W/strace-run.err"; fail "strace of $c failed"; }
		if [ -n "$spid" ]; then
			kill -INT "$spid"
			wait "$spid" || true
		fi
		transfers=0
		while IFS= read -r line; do
			[[ $line =~ \"transfers\":([0-9]+) ]] && transfers=$((transfers + BASH_REMATCH[1]))
		done <"$W/strace-run.out"
		[ "$transfers" -gt 0 ] || fail "strace run of $c moved nothing"
		{
			echo "# $c, ${SDLIST[0]} (size:depth), in,out, $MIB MiB each: $transfers transfers"
			echo "# system calls per transfer over the client's whole run, start-up included (libusb_init's"
			echo "# scan of sysfs is its openat, close and newfstatat), the client (with its threads)"
			per_transfer "$W/strace-client.txt" "$transfers"
			if [ -n "$spid" ]; then
				echo "# system calls per transfer, zcusbd (the claim's set-up included)"
				per_transfer "$W/strace-daemon.txt" "$transfers"
			fi
		} >"$ZCUSB_VM_RESULTS/syscalls-$c.txt"
		note "syscalls-$c.txt: $(grep -c '^ ' "$ZCUSB_VM_RESULTS/syscalls-$c.txt") system calls counted"
	done
fi

# --- remote ---------------------------------------------------------------------------------
if has_section remote; then
	step "remote: export SourceSink ssr with usbip-host + usbipd, zcusbd imports it over 127.0.0.1"
	gadget_add ssr sourcesink || fail "gadget_add ssr (dummy_hcd num= too small?)"
	echo 0xa4ad >/sys/kernel/config/usb_gadget/zc_ssr/idProduct
	gadget_plug ssr || fail "gadget_plug ssr failed"
	d=$(gadget_sysfs ssr) || fail "ssr not plugged"
	REMOTE_BUSID=${d##*/}
	modprobe usbip-host || fail "modprobe usbip-host failed"
	usbip bind -b "$REMOTE_BUSID" >/dev/null || fail "usbip bind -b $REMOTE_BUSID failed"
	usbipd -4 >"$W/usbipd.log" 2>&1 &
	USBIPD_PID=$!
	wait_until 20 "usbipd listening" bash -c 'exec 3<>/dev/tcp/127.0.0.1/3240'
	largest=${SDLIST[${#SDLIST[@]} - 1]}
	for sd in "${SDLIST[@]}"; do [ "${sd%%:*}" -le "${largest%%:*}" ] || largest=$sd; done
	contender_setup zcusbd-zcusb.ko
	zcusbctl attach --json 127.0.0.1 "$REMOTE_BUSID" >"$W/attach.json" || fail "zcusbctl attach failed"
	robj=$(json 'j["object"]' <"$W/attach.json")
	rsys=$(zcusbctl info --json "$robj" | json 'j["sysfs_path"]')
	read -r rin rout <<<"$(intf_bulk_eps "${rsys##*/}:1.0")"
	note "imported as $robj ($rsys), bulk $rin/$rout; $largest per run"
	for ((round = 1; round <= ROUNDS; round++)); do
		step "remote: round $round of $ROUNDS"
		idle_baseline "$((1000 + round))" 2
		contender_setup zcusbd-zcusb.ko
		[ "$DAEMON_PID" = "$(daemon_pid)" ] || fail "zcusbd restarted during the remote section (the import is gone)"
		for where in $( ((round % 2)) && echo "local remote" || echo "remote local"); do
			if [ "$where" = local ]; then
				client_cmd zcusbd-zcusb.ko ss 0525 a4a0 --sizes "$largest" --max-seconds "$MAX_SECONDS" --go "$GO"
			else
				CMD=("$zb" --device "$robj" --in "$rin" --out "$rout" --daemon-pid "$DAEMON_PID" --sizes "$largest"
					--max-seconds "$MAX_SECONDS" --go "$GO" zcusbd-zcusb.ko)
			fi
			record ",\"section\":\"remote\",\"round\":$round,\"idle_round\":$((1000 + round)),\"where\":\"$where\"" \
				"${CMD[@]}" in,out "$MIB"
		done
	done
	zcusbctl detach "$robj" >/dev/null || fail "zcusbctl detach $robj failed"
	kill "$USBIPD_PID" 2>/dev/null || true
	usbip unbind -b "$REMOTE_BUSID" >/dev/null 2>&1 || true
	REMOTE_BUSID=""
	gadget_del ssr || true
fi

# --- latency --------------------------------------------------------------------------------
if has_section latency; then
	for ((round = 1; round <= ROUNDS; round++)); do
		step "latency: round $round of $ROUNDS (Loopback, 64 bytes)"
		read -ra order <<<"$(ordered "$round" "${CLIST[@]}")"
		for c in "${order[@]}"; do
			# libusb: rtt with sync, behind with async-malloc (one thread cannot wait for two
			# synchronous transfers); the others would repeat those.
			case $c in libusb-async-devmem | libusb-async-memfd | compat-devmem) continue ;; esac
			contender_setup "$c"
			case $c in
			libusb-sync) tests=rtt ;;
			libusb-async-malloc) tests=behind ;;
			*) tests=rtt,behind ;;
			esac
			client_cmd "$c" lb 0525 a4a1 --size 64 --behind-count "$BEHIND_COUNT" --go "$GO"
			record ",\"section\":\"latency\",\"round\":$round" "${CMD[@]}" "$tests" "$RTT_COUNT"
		done
	done
fi

# --- scaling --------------------------------------------------------------------------------
# concurrent GROUP_ID N C: N clients of contender C on ss, ss2.. started together.
concurrent() {
	local gid=$1 n=$2 c=$3 i go=$W/go.$1 pids=() name up _ end
	rm -f "$go" "$go".ready.*
	for ((i = 0; i < n; i++)); do
		name=ss
		[ "$i" = 0 ] || name=ss$((i + 1))
		client_cmd "$c" "$name" 0525 a4a0 --size 65536 --depth 8 --max-seconds "$SCALE_SECONDS" --go "$go"
		"${CMD[@]}" in 1000000 >"$W/scale.$i.out" 2>"$W/scale.$i.err" &
		pids+=($!)
	done
	read -r up _ </proc/uptime
	end=$((${up%.*} + 60))
	while :; do
		set -- "$go".ready.*
		[ -e "$1" ] && [ $# -ge "$n" ] && break
		read -r up _ </proc/uptime
		[ "${up%.*}" -lt "$end" ] || { cat "$W"/scale.*.err; fail "$n clients of $c not ready after 60 s"; }
		pause 0.05
	done
	: >"$go"
	for ((i = 0; i < n; i++)); do
		if ! wait "${pids[$i]}"; then
			cat "$W/scale.$i.err"
			fail "client $i of $n ($c) failed (above)"
		fi
		line=$(<"$W/scale.$i.out")
		line="${line%\}},\"section\":\"scaling\",\"round\":$round,\"group\":$gid,\"clients\":$n,\"client\":$i}"
		printf '%s\n' "$line" >>"$OUT"
		printf '   %s\n' "$line"
	done
}
if has_section scaling; then
	step "scaling: $SCALE_CLIENTS SourceSink gadgets"
	names=()
	for ((i = 2; i <= SCALE_CLIENTS; i++)); do
		gadget_add "ss$i" sourcesink || fail "gadget_add ss$i (dummy_hcd num= too small?)"
		names+=("ss$i")
	done
	[ ${#names[@]} = 0 ] || gadget_plug "${names[@]}" || fail "gadget_plug ${names[*]}"
	gid=0
	for ((round = 1; round <= SCALE_ROUNDS; round++)); do
		step "scaling: round $round of $SCALE_ROUNDS"
		read -ra order <<<"$(ordered "$round" "${CLIST[@]}")"
		for c in "${order[@]}"; do
			case $c in libusb-sync | libusb-async-devmem | libusb-async-memfd | compat-devmem | zcusbd-zcusb.ko-nozc | \
				zcusbd-usbfs-nostage) continue ;; esac
			contender_setup "$c"
			for n in 1 "$SCALE_CLIENTS"; do
				gid=$((gid + 1))
				concurrent "$gid" "$n" "$c"
			done
		done
	done
fi

# --- footprint ------------------------------------------------------------------------------
# zcusbd's Rss, Anonymous and Pss_Shmem (kB; smaps_rollup walks the page tables, where
# /proc/PID/status's counters lag by up to 64 pages per thread), voluntary and involuntary
# context switches of all its threads, CPU ticks: F_* variables.
zcusbd_sample() {
	local pid=$1 k v t a b rest
	F_RSS=0 F_ANON=0 F_SHMEM=0 F_VCS=0 F_NVCS=0 F_AT=$EPOCHREALTIME
	while read -r k v _; do
		case $k in
		Rss:) F_RSS=$v ;;
		Anonymous:) F_ANON=$v ;;
		Pss_Shmem:) F_SHMEM=$v ;;
		esac
	done <"/proc/$pid/smaps_rollup"
	for t in /proc/"$pid"/task/*/status; do
		while read -r k v; do
			case $k in
			voluntary_ctxt_switches:) F_VCS=$((F_VCS + v)) ;;
			nonvoluntary_ctxt_switches:) F_NVCS=$((F_NVCS + v)) ;;
			esac
		done <"$t"
	done
	read -r rest <"/proc/$pid/stat"
	rest=${rest##*) }
	read -r _ _ _ _ _ _ _ _ _ _ _ a b _ <<<"$rest"
	F_CPU=$((a + b))
}
# footprint BACKEND STATE CLIENTS: one window of FOOT_SECONDS.
footprint() {
	local pid=$DAEMON_PID vcs nvcs cpu at
	zcusbd_sample "$pid"
	vcs=$F_VCS nvcs=$F_NVCS cpu=$F_CPU at=$F_AT
	pause "$FOOT_SECONDS"
	zcusbd_sample "$pid"
	printf '{"section":"footprint","backend":"%s","state":"%s","clients":%d,"seconds":%s,"rss_kb":%d,"anon_kb":%d,"shmem_kb":%d,"vcs":%d,"nvcs":%d,"cpu":%s}\n' \
		"$1" "$2" "$3" "$(awk -v a="$at" -v b="$F_AT" 'BEGIN { printf "%.3f", b - a }')" "$F_RSS" "$F_ANON" \
		"$F_SHMEM" $((F_VCS - vcs)) $((F_NVCS - nvcs)) \
		"$(awk -v t=$((F_CPU - cpu)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }')" | tee -a "$OUT"
}
wait_ready() { # PREFIX N WHAT
	local up _ end
	read -r up _ </proc/uptime
	end=$((${up%.*} + 120))
	while :; do
		set -- "$1" "$2" "$3" "$1".ready.*
		[ -e "$4" ] && [ $(($# - 3)) -ge "$2" ] && return 0
		read -r up _ </proc/uptime
		[ "${up%.*}" -lt "$end" ] || fail "$3: not ready after 120 s"
		pause 0.1
	done
}
if has_section footprint; then
	step "footprint: $IDLE_CLIENTS idle clients on Loopback functions"
	per=8
	ngad=$(((IDLE_CLIENTS + per - 1) / per))
	names=()
	for ((i = 1; i <= ngad; i++)); do
		gadget_add "lbm$i" loopback $per || fail "gadget_add lbm$i loopback $per (dummy_hcd num= too small?)"
		names+=("lbm$i")
	done
	gadget_plug "${names[@]}" || fail "gadget_plug ${names[*]}"
	backends=()
	for c in "${CLIST[@]}"; do
		case $c in compat-*) continue ;; esac # a libusb program: zcusbd's side is that of its backend
		contender_group "$c"
		case $GROUP in
		usbfs) [[ " ${backends[*]} " == *" zcusbd-usbfs "* ]] || backends+=(zcusbd-usbfs) ;;
		auto) [[ " ${backends[*]} " == *" zcusbd-zcusb.ko "* ]] || backends+=(zcusbd-zcusb.ko) ;;
		kqueue) [[ " ${backends[*]} " == *" zcusbd-kqueues "* ]] || backends+=(zcusbd-kqueues) ;;
		esac
	done
	for c in "${backends[@]}"; do
		contender_setup "$c"
		b=${c#zcusbd-}
		step "footprint: $b"
		pause 1
		footprint "$b" idle 0
		go=$W/idle.$b
		rm -f "$go".ready.*
		pids=()
		for ((i = 0; i < IDLE_CLIENTS; i++)); do
			"$zb" --device "0525:a4a1:zcusb-lbm$((i / per + 1))" --interface $((i % per)) --size 65536 \
				--depth 8 --go "$go" "$c" idle 3600 2>"$W/idle.$i.err" &
			pids+=($!)
		done
		wait_ready "$go" "$IDLE_CLIENTS" "$IDLE_CLIENTS idle clients ($(cat "$W"/idle.*.err))"
		pause 1
		footprint "$b" "$IDLE_CLIENTS idle clients" "$IDLE_CLIENTS"
		kill "${pids[@]}"
		for p in "${pids[@]}"; do wait "$p" || fail "an idle client failed: $(cat "$W"/idle.*.err)"; done
		go=$W/stream.$b
		rm -f "$go" "$go".ready.*
		client_cmd "$c" ss 0525 a4a0 --size 65536 --depth 8 --max-seconds $((FOOT_SECONDS + 2)) --go "$go"
		"${CMD[@]}" in 1000000 >"$W/stream.out" 2>"$W/stream.err" &
		sp=$!
		wait_ready "$go" 1 "the streaming client ($(cat "$W/stream.err"))"
		: >"$go"
		pause 0.5
		footprint "$b" "1 client streaming" 1
		wait "$sp" || fail "the streaming client failed: $(cat "$W/stream.err")"
		pause 1
		footprint "$b" "idle again" 0
	done
fi
echo "DONE"
