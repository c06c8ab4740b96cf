#!/bin/bash
# Benchmark of the data paths on a real kernel (QEMU TCG, Debian's kernel): boots the VM of
# tests/vm once with the bench case (tests/vm/bench/cases/50-bench.sh) and prints its table.
# Not a test: it fails only when a contender cannot run or ran over the wrong path.
#
#   tests/vm/bench/run-bench.sh [OPTIONS] BUILD_DIR
#     --mib N       MiB each run moves (default 128: a few seconds per run under TCG)
#     --rounds N    interleaved rounds; every row is the median of N runs (default 3, at least 3)
#     --size BYTES  bytes per transfer (default 65536)
#     --depth N     transfers in flight (default 8)
#     -v            stream the guest console
#
# Contenders, all on the SourceSink gadget (bulk IN 0x81, bulk OUT 0x02), the same transfer size
# and depth: zcusbd over zcusb.ko (Backend=auto), the same with disable_zerocopy=1, zcusbd over
# usbfs (Backend=usbfs), and libusb straight on usbfs as root: synchronous, asynchronous with
# malloc() buffers, asynchronous with libusb_dev_mem_alloc() buffers (usbfs mmap, zero copy).
# Columns: MB/s; CPU seconds (user + system) per GiB of every process on the path (the client;
# for zcusbd's contenders zcusbd too, from /proc/PID/stat); ratios to libusb-async-malloc in
# the same direction. The emulated device (dummy_hcd + the gadget) costs CPU too, in the kernel
# and outside those processes: it is the same for every contender and not counted.
# TCG swings up to 2x between boots: compare ratios of one run only.
#
# Needs what tests/vm/run-vm.sh needs, and the build's tests/vm/bench programs (libusb-bench
# needs libusb-1.0-0-dev at configure time). Results: BUILD_DIR/tests/vm/bench-results
# (bench.txt, bench.jsonl, the case log). Exit: 0 table printed, 1 the bench failed, 2 usage,
# 3 the VM did not finish.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() {
	sed -n '2,27p' "$0" >&2
	exit 2
}
MIB=128 ROUNDS=3 SIZE=65536 DEPTH=8 VERBOSE=()
while [ $# -gt 0 ]; do
	case $1 in
	--mib) MIB=${2:?}; shift 2 ;;
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--size) SIZE=${2:?}; shift 2 ;;
	--depth) DEPTH=${2:?}; shift 2 ;;
	-v | --verbose) VERBOSE=(-v); shift ;;
	-h | --help) usage ;;
	-*) echo "run-bench: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || usage
for v in "$MIB" "$ROUNDS" "$SIZE" "$DEPTH"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "run-bench: '$v' is not a positive number" >&2; exit 2; }
done
[ "$ROUNDS" -ge 3 ] || { echo "run-bench: --rounds must be at least 3 (medians of interleaved runs)" >&2; exit 2; }
[ -d "$1" ] || { echo "run-bench: no build directory '$1'" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
for p in zcusb-bench libusb-bench; do
	[ -x "$BUILD/tests/vm/bench/$p" ] || {
		echo "run-bench: $BUILD/tests/vm/bench/$p not built (meson compile -C $BUILD; libusb-bench needs libusb-1.0-0-dev)" >&2
		exit 2
	}
done

# The case and its parameters, as a case directory of their own for run-vm.sh.
CASES=$BUILD/tests/vm/bench-cases
rm -rf "$CASES"
mkdir -p "$CASES"
cp "$HERE"/cases/[0-9]*.sh "$CASES/"
printf 'MIB=%d ROUNDS=%d SIZE=%d DEPTH=%d\n' "$MIB" "$ROUNDS" "$SIZE" "$DEPTH" >"$CASES/bench.env"
RESULTS=$BUILD/tests/vm/bench-results

set +e
"$HERE/../run-vm.sh" "${VERBOSE[@]}" --case-dir "$CASES" --results "$RESULTS" --timeout 900 "$BUILD"
rc=$?
set -e
echo
if [ -s "$RESULTS/bench.txt" ]; then
	echo "== benchmark ($RESULTS/bench.txt)"
	cat "$RESULTS/bench.txt"
else
	echo "run-bench: no table; the case log ($RESULTS/50-bench.log) ends with:"
	tail -n 20 "$RESULTS/50-bench.log" 2>/dev/null | sed 's/^/   /'
	[ $rc -ne 0 ] || rc=1
fi
exit $rc
