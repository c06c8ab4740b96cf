# shellcheck shell=bash disable=SC2034 # ISODEV_QEMU_ARGS, ISODEV_END: for the scripts that source this
# zcusb-isodev (tests/vm/host), the iso IN/OUT device, run next to QEMU: sourced by
# tests/vm/run-vm.sh and kmod/tests/run-kmod-tests.sh.
#
#   isodev_start BIN SOCK STATS LOG  start BIN listening on SOCK (stats to STATS, stderr to
#                                    LOG); sets ISODEV_QEMU_ARGS; returns 1 with the reason on
#                                    stderr if it does not listen
#   isodev_end                       after QEMU: it ends by itself once QEMU has closed the
#                                    connection (and writes its stats); killed if it does not.
#                                    Sets ISODEV_END ("exit N" or what happened)
#   isodev_kill                      any other way out (safe to call twice)
#   helper_stop PID                  kill and reap a helper process; nothing when PID is empty
# and, for both launchers, the helpers next to QEMU as one set:
#   console_follow FILE              stream FILE (the guest console) to stdout (-v)
#   helpers_end                      after QEMU: let the console tail print what is left, then
#                                    isodev_end and helpers_stop
#   helpers_stop                     stop zcusb-isodev and the console tail: the launchers' EXIT
#                                    trap (safe to call twice)

ISODEV_PID=""
CONSOLE_TAIL_PID=""
ISODEV_SOCK=""
ISODEV_SOCKDIR=""
ISODEV_END="not started"
ISODEV_QEMU_ARGS=()

isodev_start() {
	local bin=$1 stats=$3 log=$4 i=0
	ISODEV_SOCK=$2
	# a unix socket address holds 107 bytes (zcusb-isodev binds SOCK.tmp first)
	if [ ${#ISODEV_SOCK} -gt 100 ]; then
		ISODEV_SOCKDIR=$(mktemp -d /tmp/zcusb-isodev.XXXXXX)
		ISODEV_SOCK=$ISODEV_SOCKDIR/sock
	fi
	rm -f "$ISODEV_SOCK"
	# fds 7-9: the callers' locks, which must not outlive them in this child
	"$bin" --socket "$ISODEV_SOCK" --stats "$stats" --verbose </dev/null >/dev/null 2>"$log" 7>&- 8>&- 9>&- &
	ISODEV_PID=$!
	ISODEV_END="running"
	while [ ! -S "$ISODEV_SOCK" ] && [ $i -lt 100 ] && kill -0 "$ISODEV_PID" 2>/dev/null; do
		sleep 0.05
		i=$((i + 1))
	done
	if [ ! -S "$ISODEV_SOCK" ]; then
		echo "zcusb-isodev did not listen on $ISODEV_SOCK: $(tail -n 3 "$log")" >&2
		isodev_kill
		return 1
	fi
	# port=4, the xHCI's last root port, by name: a device that takes the last free port
	# without naming one makes QEMU put a usb-hub there first, a full-speed one, and the
	# device would run behind it at full speed.
	# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
	ISODEV_QEMU_ARGS=(
		-chardev "socket,id=isodev,path=$ISODEV_SOCK"
		-device usb-redir,chardev=isodev,bus=xhci.0,port=4,id=isodev
	)
}

isodev_end() {
	local i=0 rc=0
	while [ -n "$ISODEV_PID" ] && kill -0 "$ISODEV_PID" 2>/dev/null && [ $i -lt 40 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if [ -n "$ISODEV_PID" ] && ! kill -0 "$ISODEV_PID" 2>/dev/null; then
		wait "$ISODEV_PID" || rc=$?
		ISODEV_END="exit $rc"
		ISODEV_PID=""
	elif [ -n "$ISODEV_PID" ]; then
		ISODEV_END="killed: still running 2 s after QEMU ended"
	fi
	isodev_kill
}

helper_stop() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

isodev_kill() {
	helper_stop "$ISODEV_PID"
	ISODEV_PID=""
	[ -z "$ISODEV_SOCK" ] || rm -f "$ISODEV_SOCK"
	[ -z "$ISODEV_SOCKDIR" ] || rm -rf "$ISODEV_SOCKDIR"
	ISODEV_SOCKDIR=""
}

console_follow() {
	tail -n +1 -F "$1" 2>/dev/null &
	CONSOLE_TAIL_PID=$!
}

helpers_stop() {
	isodev_kill
	helper_stop "$CONSOLE_TAIL_PID"
	CONSOLE_TAIL_PID=""
}

helpers_end() {
	[ -z "$CONSOLE_TAIL_PID" ] || sleep 0.3
	isodev_end
	helpers_stop
}
