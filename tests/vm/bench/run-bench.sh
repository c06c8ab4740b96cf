#!/bin/bash
# Benchmark of the data paths on a real kernel (QEMU TCG, Debian's kernel): boots the VM of
# tests/vm with the bench case (tests/vm/bench/cases/50-bench.sh), once or --boots times, and
# prints a table.
# Not a test: it fails only when a contender cannot run or ran over the wrong path.
#
#   tests/vm/bench/run-bench.sh [OPTIONS] BUILD_DIR
#   tests/vm/bench/run-bench.sh --summarize RESULTS_DIR   (the table again, no VM)
#
# Sections (--only LIST, comma-separated; default all):
#   throughput  SourceSink gadget, SIZE x DEPTH for each of --sizes, IN and OUT, every contender
#               once per round, --rounds rounds interleaved in one boot: MB/s, CPU s/GiB of the
#               client and of zcusbd, and of the whole guest (/proc/stat busy time minus the idle
#               baseline measured every round, so kernel threads and interrupts count)
#   latency     Loopback gadget, 64-byte bulk: round trip (OUT then IN) p50/p99, and an OUT
#               submitted behind a pending IN (how long until it completes)
#   scaling     64 KiB x 8 IN: 1 client vs --scale-clients clients on as many gadgets at once
#   footprint   zcusbd's RSS and wakeups/s: idle, with --idle-clients idle clients, streaming
#   remote      zcusbd over zcusb.ko: a local SourceSink vs the same kind of gadget exported by
#               usbip-host/usbipd and imported by zcusbd through vhci-hcd over 127.0.0.1 (both
#               ends in the guest), the largest of --sizes, IN and OUT, interleaved per round
# Options:
#   --rounds N          interleaved rounds; rows are medians [min-max] of N (default 5)
#   --mib N             MiB per throughput run (default 64) ...
#   --max-seconds S     ... or fewer: a run stops submitting after S seconds (default 3)
#   --sizes LIST        SIZE:DEPTH,... (K/M suffixes; default 16K:8,64K:8,1M:4)
#   --contenders LIST   default libusb-sync,libusb-async-malloc,libusb-async-devmem,
#                       zcusbd-usbfs,zcusbd-zcusb.ko,zcusbd-kqueues (zcusb.ko serving the rings
#                       itself),compat-devmem (libusb-bench's async-devmem through zcusb-run: zcusb's
#                       libusb on zcusbd, throughput only); also zcusbd-zcusb.ko-nozc (zcusb.ko,
#                       disable_zerocopy=1), zcusbd-usbfs-nostage (zcusbd over usbfs with
#                       UsbfsStaging=no: usbfs copies, not zcusbd; throughput and latency) and
#                       libusb-async-memfd (libusb async with its buffers in a shared memfd mapping,
#                       the memory zcusbd's usbfs path copies from and into)
#   --high-speed        a high-speed gadget (default SuperSpeed: dummy_hcd is_super_speed=1)
#   --rtt N --behind N  latency samples per round and contender (default 200, 20)
#   --scale-clients N --scale-seconds S --scale-rounds N   (default 4, 3, 3)
#   --idle-clients N --foot-seconds S     (default 16, 4)
#   --timeout SECS      limit of the whole VM run (default 2400)
#   --perf              after the throughput rounds, one more run of every contender at the first
#                       of --sizes (IN and OUT) under `perf record -a` (whole guest, cpu-clock):
#                       the hottest symbols per contender in BUILD_DIR/tests/vm/bench-results/
#                       perf-CONTENDER.txt (needs linux-perf on the host; the guest uses its /usr)
#   --syscalls          after the throughput rounds, one more run of every contender at the first
#                       of --sizes (IN and OUT) under `strace -c`, the client and zcusbd each: their
#                       system calls per transfer in BUILD_DIR/tests/vm/bench-results/
#                       syscalls-CONTENDER.txt (needs strace on the host)
#   --no-pin            throughput runs where the guest's scheduler puts them. By default each
#                       round pins every contender's processes (the client, zcusbd) to one vCPU,
#                       CPU (round - 1) mod vCPUs: a stream runs almost wholly on one vCPU
#                       anyway (the emulated controller's timer too), and under TCG one vCPU can be
#                       slower than the other for a whole boot, so unpinned the ratio of two paths
#                       was partly which vCPU each landed on (with --boots, boot K starts at
#                       CPU K - 1)
#   --boots N           boot the VM N times (default 1) and sum up every round of every boot: a
#                       ratio is still taken inside one round, but a boot can favour one path
#                       for its whole length (how the vCPUs and memory fell), which only more
#                       boots average out. Each boot's results in RESULTS/boot-K; the rounds
#                       renumbered boot after boot in the merged bench.jsonl
#   -v                  stream the guest console
# Quick iteration: --only throughput --rounds 1 --sizes 64K:8 --mib 16
#
# Needs what tests/vm/run-vm.sh needs, and the build's tests/vm/bench programs (libusb-bench
# needs libusb-1.0-0-dev at configure time). Results in BUILD_DIR/tests/vm/bench-results:
# bench.txt (the table), bench.json (the same figures), bench.jsonl (every measurement),
# host.json (the host's conditions), 50-bench.log (the guest's log). Exit: 0 table printed,
# 1 the bench failed, 2 usage, 3 the VM did not finish.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMMAND="tests/vm/bench/run-bench.sh${*:+ $*}"
usage() {
	sed -n '2,/^[^#]/{/^#/p}' "$0" >&2
	exit 2
}
die() {
	echo "run-bench: $*" >&2
	exit 2
}
ROUNDS=5 MIB=64 MAX_SECONDS=3 SIZES=16K:8,64K:8,1M:4 ONLY=throughput,latency,scaling,footprint,remote
CONTENDERS=libusb-sync,libusb-async-malloc,libusb-async-devmem,zcusbd-usbfs,zcusbd-zcusb.ko,zcusbd-kqueues,compat-devmem
SPEED=super RTT=200 BEHIND=20 SCALE_CLIENTS=4 SCALE_SECONDS=3 SCALE_ROUNDS=3 IDLE_CLIENTS=16 FOOT_SECONDS=4
TIMEOUT=2400 VERBOSE=() SUMMARIZE="" PERF=0 SYSCALLS=0 PIN=1 BOOTS=1
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--mib) MIB=${2:?}; shift 2 ;;
	--max-seconds) MAX_SECONDS=${2:?}; shift 2 ;;
	--sizes) SIZES=${2:?}; shift 2 ;;
	--only) ONLY=${2:?}; shift 2 ;;
	--contenders) CONTENDERS=${2:?}; shift 2 ;;
	--high-speed) SPEED=high; shift ;;
	--rtt) RTT=${2:?}; shift 2 ;;
	--behind) BEHIND=${2:?}; shift 2 ;;
	--scale-clients) SCALE_CLIENTS=${2:?}; shift 2 ;;
	--scale-seconds) SCALE_SECONDS=${2:?}; shift 2 ;;
	--scale-rounds) SCALE_ROUNDS=${2:?}; shift 2 ;;
	--idle-clients) IDLE_CLIENTS=${2:?}; shift 2 ;;
	--foot-seconds) FOOT_SECONDS=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--perf) PERF=1; shift ;;
	--syscalls) SYSCALLS=1; shift ;;
	--no-pin) PIN=0; shift ;;
	--boots) BOOTS=${2:?}; shift 2 ;;
	--summarize) SUMMARIZE=${2:?}; shift 2 ;;
	-v | --verbose) VERBOSE=(-v); shift ;;
	-h | --help) usage ;;
	-*) echo "run-bench: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done

if [ -n "$SUMMARIZE" ]; then
	[ $# -eq 0 ] || usage
	[ -s "$SUMMARIZE/bench.jsonl" ] || die "no $SUMMARIZE/bench.jsonl"
	exec python3 "$HERE/summarize.py" "$SUMMARIZE"
fi
[ $# -eq 1 ] || usage

for v in "$ROUNDS" "$MIB" "$RTT" "$BEHIND" "$SCALE_CLIENTS" "$SCALE_ROUNDS" "$IDLE_CLIENTS" "$TIMEOUT" "$BOOTS"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || die "'$v' is not a positive whole number"
done
for v in "$MAX_SECONDS" "$SCALE_SECONDS" "$FOOT_SECONDS"; do
	if [[ ! $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || [[ $v =~ ^0+(\.0*)?$ ]]; then die "'$v' is not a positive number of seconds"; fi
done
[ "$SCALE_CLIENTS" -le 8 ] || die "--scale-clients: at most 8"
[ "$IDLE_CLIENTS" -le 64 ] || die "--idle-clients: at most 64"
sections=()
IFS=, read -ra want <<<"$ONLY"
for s in "${want[@]}"; do
	case $s in
	throughput | latency | scaling | footprint | remote) sections+=("$s") ;;
	*) die "--only: unknown section '$s' (throughput, latency, scaling, footprint, remote)" ;;
	esac
done
[ ${#sections[@]} -gt 0 ] || die "--only: no section"
contenders=()
IFS=, read -ra want <<<"$CONTENDERS"
for c in "${want[@]}"; do
	case $c in
	libusb-sync | libusb-async-malloc | libusb-async-devmem | libusb-async-memfd | zcusbd-usbfs | zcusbd-usbfs-nostage | \
		zcusbd-zcusb.ko | zcusbd-zcusb.ko-nozc | zcusbd-kqueues | compat-devmem)
		contenders+=("$c") ;;
	*) die "--contenders: unknown contender '$c'" ;;
	esac
done
[ ${#contenders[@]} -gt 0 ] || die "--contenders: none"
sizes=()
IFS=, read -ra want <<<"$SIZES"
for sd in "${want[@]}"; do
	[[ $sd =~ ^([1-9][0-9]*)([KM]?):([1-9][0-9]*)$ ]] || die "--sizes: '$sd' is not SIZE:DEPTH (64K:8)"
	n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in K) n=$((n << 10)) ;; M) n=$((n << 20)) ;; esac
	if [ "$n" -gt $((16 << 20)) ] || [ "${BASH_REMATCH[3]}" -gt 64 ]; then die "--sizes: '$sd': at most 16M x 64"; fi
	sizes+=("$n:${BASH_REMATCH[3]}")
done
[ ${#sizes[@]} -gt 0 ] || die "--sizes: none"

[ -d "$1" ] || die "no build directory '$1'"
BUILD=$(cd "$1" && pwd)
for p in zcusb-bench libusb-bench; do
	[ -x "$BUILD/tests/vm/bench/$p" ] ||
		die "$BUILD/tests/vm/bench/$p not built (meson compile -C $BUILD; libusb-bench needs libusb-1.0-0-dev)"
done
command -v python3 >/dev/null || die "python3 not found (it makes the table)"
[ $PERF = 0 ] || command -v perf >/dev/null || die "--perf: no perf on this machine (apt-get install linux-perf)"
[ $SYSCALLS = 0 ] || command -v strace >/dev/null || die "--syscalls: no strace on this machine (apt-get install strace)"

# dummy_hcd: one UDC per gadget: ss, lb, kbd (run-cases.sh), the scaling's extra SourceSinks,
# the footprint's Loopback gadgets (8 functions each), the remote section's exported SourceSink.
num=$((3 + SCALE_CLIENTS - 1 + (IDLE_CLIENTS + 7) / 8 + 1))
dummy="num=$num"
[ "$SPEED" = high ] || dummy+=" is_super_speed=1"

# The case and its parameters, as a case directory of their own for run-vm.sh; the guest-side
# limit of the case follows --timeout.
CASES=$BUILD/tests/vm/bench-cases
rm -rf "$CASES"
mkdir -p "$CASES"
sed "s/^# timeout: [0-9]*/# timeout: $((TIMEOUT > 240 ? TIMEOUT - 120 : TIMEOUT / 2))/" \
	"$HERE/cases/50-bench.sh" >"$CASES/50-bench.sh"
{
	printf 'SECTIONS=%q\n' "${sections[*]}"
	printf 'CONTENDERS=%q\n' "${contenders[*]}"
	printf 'SIZES=%q\n' "${sizes[*]}"
	printf 'ROUNDS=%d MIB=%d MAX_SECONDS=%s RTT_COUNT=%d BEHIND_COUNT=%d PERF=%d SYSCALLS=%d PIN=%d\n' "$ROUNDS" \
		"$MIB" "$MAX_SECONDS" "$RTT" "$BEHIND" "$PERF" "$SYSCALLS" "$PIN"
	printf 'SCALE_CLIENTS=%d SCALE_SECONDS=%s SCALE_ROUNDS=%d IDLE_CLIENTS=%d FOOT_SECONDS=%s\n' \
		"$SCALE_CLIENTS" "$SCALE_SECONDS" "$SCALE_ROUNDS" "$IDLE_CLIENTS" "$FOOT_SECONDS"
} >"$CASES/bench-base.env"
RESULTS=$BUILD/tests/vm/bench-results

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
rm -rf "$RESULTS"
rc=0 finished_all=1
for ((boot = 1; boot <= BOOTS; boot++)); do
	dir=$RESULTS
	[ "$BOOTS" = 1 ] || dir=$RESULTS/boot-$boot
	[ "$BOOTS" = 1 ] || echo "run-bench: boot $boot of $BOOTS"
	# the vCPU of a boot's first pinned round: boot after boot, the other one first
	{
		cat "$CASES/bench-base.env"
		printf 'PIN_FIRST=%d\n' $((boot - 1))
	} >"$CASES/bench.env"
	set +e
	"$HERE/../run-vm.sh" "${VERBOSE[@]}" --case-dir "$CASES" --results "$dir" --timeout "$TIMEOUT" \
		--dummy-hcd "$dummy" "$BUILD"
	boot_rc=$?
	set -e
	[ $boot_rc = 0 ] || rc=$boot_rc
	if ! [ -s "$dir/bench.jsonl" ] || ! grep -q '^DONE' "$dir/50-bench.log" 2>/dev/null; then
		echo "run-bench: the bench did not finish; the case log ($dir/50-bench.log) ends with:" >&2
		tail -n 20 "$dir/50-bench.log" 2>/dev/null | sed 's/^/   /' >&2
		[ $rc -ne 0 ] || rc=1
		finished_all=0
		break
	fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$RESULTS"
[ "$BOOTS" = 1 ] || [ $finished_all = 0 ] || python3 "$HERE/summarize.py" --merge-boots "$BOOTS" "$RESULTS"
B_STARTED=$started B_FINISHED=$finished B_COMMAND=$COMMAND B_LOAD0=$load_before B_LOAD1=$load_after \
	B_DUMMY=$dummy python3 -c '
import json, os, sys
e = os.environ
json.dump({"started": e["B_STARTED"], "finished": e["B_FINISHED"], "command": e["B_COMMAND"],
           "host_cpus": os.cpu_count(), "loadavg_before": e["B_LOAD0"], "loadavg_after": e["B_LOAD1"],
           "dummy_hcd": e["B_DUMMY"]}, open(sys.argv[1], "w"), indent=1)
' "$RESULTS/host.json"
echo
if [ "$finished_all" = 1 ]; then
	python3 "$HERE/summarize.py" "$RESULTS" || rc=1
fi
exit $rc
