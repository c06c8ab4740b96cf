#!/bin/bash
# meson test wrapper of the QEMU tier (see tests/vm/meson.build).
#
#   vm-test.sh boot BUILD_DIR         the 'vm-boot' test: one VM runs every case into
#                                     BUILD_DIR/tests/vm/results (cleared first); passes when the
#                                     guest booted and reported every case, whatever the cases'
#                                     own results (each has its own test below)
#   vm-test.sh case BUILD_DIR NAME    the 'vm-NAME' test: prints that case's log from the vm-boot
#                                     results and exits with its status. When those results are
#                                     not from this build and these scripts (or lack the case),
#                                     it boots a VM for NAME alone. A case vm-boot ran but that
#                                     left no result is a failure naming why.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() {
	printf 'vm-test: error: %s\n' "$*" >&2
	exit 1
}
[ $# -ge 2 ] || die "usage: $0 boot BUILD_DIR | case BUILD_DIR NAME"
if [ -n "${ZCUSB_VM_SKIP:-}" ]; then
	echo "vm-test: ZCUSB_VM_SKIP is set: skipping the QEMU tier on request"
	exit 77
fi
MODE=$1
BUILD=$2
RESULTS=$BUILD/tests/vm/results

# Print NAME's log and return its status (1 with a cause if it has none).
report_case() { # RESULTS_DIR NAME
	local r=$1 n=$2 rc
	if [ ! -f "$r/$n.rc" ]; then
		return 1
	fi
	rc=$(cat "$r/$n.rc")
	echo "---- guest log of $n ($r/$n.log) ----"
	cat "$r/$n.log" 2>/dev/null || echo "(no log)"
	echo "---- $n: exit status $rc, guest time $(cat "$r/$n.time" 2>/dev/null || echo '?') s ----"
	case $rc in
	0) return 0 ;;
	77) echo "vm-test: the case exited 77, which is no skip here: failing" ; return 1 ;;
	*) return 1 ;;
	esac
}

status_field() { # FILE KEY
	local line
	line=$(grep "^$2=" "$1" 2>/dev/null | head -n1) || return 0
	eval "printf '%s' ${line#*=}"
}

case $MODE in
boot)
	set +e
	"$HERE/run-vm.sh" --results "$RESULTS" "$BUILD"
	rc=$?
	set -e
	# 1 = some case failed: reported by that case's own test.
	[ $rc -eq 1 ] && rc=0
	exit $rc
	;;
case)
	[ $# -eq 3 ] || die "usage: $0 case BUILD_DIR NAME"
	NAME=$3
	[ -f "$HERE/cases/$NAME.sh" ] || die "no case $HERE/cases/$NAME.sh"
	if [ -f "$RESULTS/run-status" ]; then
		fp_then=$(status_field "$RESULTS/run-status" fingerprint)
		cases_then=$(status_field "$RESULTS/run-status" cases)
		fp_now=$("$HERE/run-vm.sh" --fingerprint "$BUILD") || die "cannot compute the fingerprint of $BUILD"
		if [ "$fp_then" = "$fp_now" ] && [[ " $cases_then " == *" $NAME "* ]]; then
			if report_case "$RESULTS" "$NAME"; then exit 0; fi
			[ -f "$RESULTS/$NAME.rc" ] && exit 1
			echo "FAIL: vm-boot ran $NAME but it left no result."
			echo "vm-boot's run: $(status_field "$RESULTS/run-status" status): $(status_field "$RESULTS/run-status" reason)"
			echo "-- last 30 lines of $RESULTS/console.log:"
			tail -n 30 "$RESULTS/console.log" 2>/dev/null | tr -d '\r' | sed 's/^/   /'
			exit 1
		fi
		echo "vm-test: $RESULTS is not from this build and these scripts (or lacks $NAME): booting a VM for $NAME alone"
	else
		echo "vm-test: no vm-boot results in $RESULTS: booting a VM for $NAME alone"
	fi
	single=$BUILD/tests/vm/results-$NAME
	set +e
	"$HERE/run-vm.sh" --results "$single" "$BUILD" "$NAME"
	rc=$?
	set -e
	if report_case "$single" "$NAME"; then exit 0; fi
	[ -f "$single/$NAME.rc" ] && exit 1
	echo "FAIL: the VM for $NAME left no result (run-vm.sh exit $rc; see above)"
	exit 1
	;;
*) die "unknown mode '$MODE' (boot|case)" ;;
esac
