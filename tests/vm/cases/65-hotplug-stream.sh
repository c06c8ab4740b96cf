#!/bin/bash
# Unplug mid-stream: with `zcusbctl monitor --json` running (as root and as the granted user), the
# SourceSink is unbound from its UDC while zcin streams from it. The stream must end with exit 3
# (no such device, client/CLI.md) and a message saying the device is gone; both monitors print
# "removed", then "added" after the replug, and a new read from the new object works.
# timeout: 150
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

ensure_zcusbd
need_zcusbctl
old=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
reader="" mon_root="" mon_user=""
cleanup() {
	for p in $reader $mon_root $mon_user; do kill -TERM "$p" 2>/dev/null || true; done
	gadget_plug ss >/dev/null 2>&1 || true
	data_revoke
}
trap cleanup EXIT
journal_mark

step "grant group $DATA_GROUP the SourceSink"
data_users
data_grant 0525:a4a0
note "SourceSink is $old"

step "monitors: zcusbctl monitor --json as root and as zcin"
zcusbctl monitor --json >/tmp/mon-root.out 2>/tmp/mon-root.err &
mon_root=$!
spawn_as /tmp/mon-user.out /tmp/mon-user.err zcin zcusbctl monitor --json
mon_user=$SPAWNED
on_bus() { # PID: a bus connection of PID (busctl list's second column)
	local name pid _
	while read -r name pid _; do [ "$pid" = "$1" ] && return 0; done < <(busctl --system list --no-legend)
	return 1
}
wait_until 30 "root's zcusbctl monitor on the bus" on_bus "$mon_root"
wait_until 30 "zcin's zcusbctl monitor on the bus" on_bus "$mon_user"
sleep 1 # they subscribe right after connecting
for p in "$mon_root" "$mon_user"; do
	kill -0 "$p" 2>/dev/null || fail "a monitor exited early: $(cat /tmp/mon-root.err /tmp/mon-user.err)"
done

step "zcin streams from $old (zcusbctl read, --timeout 10000)"
stream_start /tmp/reader.out /tmp/reader.err "$old" --timeout 10000
reader=$SPAWNED
sleep 2
kill -0 "$reader" 2>/dev/null || fail "the reader stopped by itself: $(cat /tmp/reader.err)"

step "unplug the SourceSink (UDC unbind) mid-stream"
gadget_unplug ss || fail "gadget_unplug ss failed"
# The reader must end by itself, soon.
wait_exit "$reader" 10 "zcusbctl read after its device was unplugged"
rc=$EXIT_STATUS
reader=""
note "reader ended $EXIT_AFTER s after the unbind, exit $rc"
note "stdout: $(cat /tmp/reader.out)"
note "stderr: $(cat /tmp/reader.err)"
journal_since | sed 's/^/   journal: /'
[ $rc = 3 ] || fail "the streaming zcusbctl exited $rc after the unplug, expected 3 (no such device; client/CLI.md)"
grep -Eqi 'no such device|unplugged|removed|disconnected|gone' /tmp/reader.err ||
	fail "the reader's message does not say the device is gone: $(cat /tmp/reader.err)"

has_event() { # FILE EVENT OBJECT
	local line
	while read -r line; do
		[[ $line =~ \"event\":\ ?\"$2\" ]] && [[ $line == *\"object\":*\"$3\"* ]] && return 0
	done <"$1"
	return 1
}
both_have() { has_event /tmp/mon-root.out "$1" "$2" && has_event /tmp/mon-user.out "$1" "$2"; }
for _ in $(seq 1 100); do both_have removed "$old" && break; sleep 0.2; done
note "root's monitor: $(tr '\n' ' ' </tmp/mon-root.out)"
note "zcin's monitor: $(tr '\n' ' ' </tmp/mon-user.out)"
has_event /tmp/mon-root.out removed "$old" || fail "root's monitor printed no \"removed\" for $old"
has_event /tmp/mon-user.out removed "$old" || fail "zcin's monitor printed no \"removed\" for $old (zcin could see it)"

step "replug"
gadget_plug ss || fail "gadget_plug ss failed"
new=$(gadget_object ss)
note "SourceSink is back as $new"
for _ in $(seq 1 100); do both_have added "$new" && break; sleep 0.2; done
note "root's monitor: $(tr '\n' ' ' </tmp/mon-root.out)"
note "zcin's monitor: $(tr '\n' ' ' </tmp/mon-user.out)"
has_event /tmp/mon-root.out added "$new" || fail "root's monitor printed no \"added\" for $new"
has_event /tmp/mon-user.out added "$new" || fail "zcin's monitor printed no \"added\" for $new (the local rule grants it)"

step "a new read from $new"
run_as zcin zcusbctl --json read "$new" --interface 0 --endpoint 0x81 --bytes 4M >/tmp/read.json 2>/tmp/read.err ||
	fail "zcusbctl read of the replugged SourceSink failed: $(cat /tmp/read.err)"
cat /tmp/read.json
[ "$(jfield bytes </tmp/read.json)" = 4194304 ] || fail "the read moved $(jfield bytes </tmp/read.json) bytes"
kill -TERM "$mon_root" "$mon_user" 2>/dev/null || true
echo "PASS"
