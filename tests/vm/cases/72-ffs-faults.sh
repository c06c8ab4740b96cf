#!/bin/bash
# Faults from a device the project controls: a FunctionFS gadget (tests/vm/tools/ffs-gadget.c,
# bulk IN serving zcusb-pattern.h's stream, bulk OUT checking it) on its own dummy UDC.
#   data both ways, checked on both sides
#   delay 3000 ms  -> an IN read and an OUT write of 64 KiB transfers with --timeout 500 fail:
#                     exit 6, "Timed out" (one transfer may still complete: the gadget may have
#                     had a request queued when the command came)
#   stall IN       -> zcusbctl read: exit 6, "Stalled"; unstall -> data flows again
#   disconnect     -> ffs-gadget exits, FunctionFS unbinds the UDC; the streaming read: exit 3
# timeout: 150
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

SIZE=16M
ensure_zcusbd
need_zcusbctl
loopback=$(vm_tool zcusb-loopback)
reader=""
cleanup() {
	[ -z "$reader" ] || kill -KILL "$reader" 2>/dev/null || true
	ffs_stop ffs
	data_revoke
	if [ -n "$FFS_LOG" ] && [ -f "$FFS_LOG" ]; then
		echo "-- ffs-gadget log:"
		sed 's/^/   /' "$FFS_LOG"
	fi
}
trap cleanup EXIT

step "FunctionFS gadget: gadget_add ffs ffs, ffs-gadget, plug"
ffs_start ffs
obj=$(gadget_object ffs) || fail "the FunctionFS gadget (serial zcusb-ffs) did not appear on the host side"
data_users
data_grant 1d6b:0105
zcusbctl info --json "$obj" >/tmp/info.json || fail "zcusbctl info $obj failed"
eps=$(bulk_eps /tmp/info.json) || fail "no bulk IN and OUT endpoints on interface 0 of $obj: $(cat /tmp/info.json)"
read -r in_ep out_ep <<<"$eps"
note "$obj: bulk IN $in_ep, bulk OUT $out_ep; gadget state $(ffs_stat state)"

# zcin runs CMD; stdout/stderr to /tmp/NAME.out|err; sets RC.
try() { # NAME CMD...
	local name=$1
	shift
	printf '+ (zcin) %s\n' "$*"
	set +e
	run_as zcin "$@" >"/tmp/$name.out" 2>"/tmp/$name.err"
	RC=$?
	set -e
	sed 's/^/   stdout: /' "/tmp/$name.out"
	sed 's/^/   stderr: /' "/tmp/$name.err"
	note "exit $RC"
}

step "IN: $SIZE of the gadget's stream, every byte checked (zcusb-loopback --mode in)"
try in "$loopback" --json --mode in --in-endpoint "$in_ep" --bytes "$SIZE" "$obj"
[ $RC = 0 ] || fail "reading the FunctionFS gadget's stream failed (exit $RC): $(cat /tmp/in.err)"
in_mbps=$(jfield mb_per_s </tmp/in.out)

step "OUT: $SIZE of the stream to the gadget, which checks every byte (zcusb-loopback --mode out)"
before=$(ffs_stat out_bytes)
try out "$loopback" --json --mode out --out-endpoint "$out_ep" --bytes "$SIZE" "$obj"
[ $RC = 0 ] || fail "writing to the FunctionFS gadget failed (exit $RC): $(cat /tmp/out.err)"
out_mbps=$(jfield mb_per_s </tmp/out.out)
want=$((before + $(numfmt --from=iec "$SIZE")))
for _ in $(seq 1 50); do [ "$(ffs_stat out_bytes)" -ge "$want" ] && break; sleep 0.2; done
note "gadget: out_bytes=$(ffs_stat out_bytes) out_errors=$(ffs_stat out_errors) out_streams=$(ffs_stat out_streams)"
[ "$(ffs_stat out_bytes)" -ge "$want" ] || fail "the gadget received $(ffs_stat out_bytes) bytes, expected $want"
[ "$(ffs_stat out_errors)" = 0 ] || fail "the gadget saw wrong OUT data (ffs-gadget log at the end)"
note "rates (MB/s; emulated CPU): IN $in_mbps, OUT $out_mbps"

step "delay 3000 ms: transfers with --timeout 500 time out"
ffs_cmd "delay 3000"
try delay-in zcusbctl read "$obj" --interface 0 --endpoint "$in_ep" --bytes 1M --transfer-size 64K \
	--queue-depth 1 --timeout 500
[ $RC = 6 ] || fail "the delayed IN read exited $RC, expected 6 (transfer failed)"
grep -q 'Timed out' /tmp/delay-in.err || fail "the delayed IN read does not say 'Timed out': $(cat /tmp/delay-in.err)"
try delay-out "$loopback" --mode out --out-endpoint "$out_ep" --bytes 1M --transfer-size 64K \
	--queue-depth 1 --timeout 500 "$obj"
[ $RC = 6 ] || fail "the delayed OUT write exited $RC, expected 6 (transfer failed)"
grep -q 'Timed out' /tmp/delay-out.err || fail "the delayed OUT write does not say 'Timed out': $(cat /tmp/delay-out.err)"
ffs_cmd "delay 0"
try after-delay "$loopback" --json --mode in --in-endpoint "$in_ep" --bytes 1M "$obj"
[ $RC = 0 ] || fail "IN data did not flow (checked) after the delay was lifted: $(cat /tmp/after-delay.err)"

step "stall IN: zcusbctl read fails with a stall"
ffs_cmd stall
try stall zcusbctl read "$obj" --interface 0 --endpoint "$in_ep" --bytes 1M --transfer-size 64K --queue-depth 1
[ "$(ffs_stat stalled_in)" = 1 ] || fail "ffs-gadget did not halt its IN endpoint (log at the end)"
[ $RC = 6 ] || fail "the read of a stalled endpoint exited $RC, expected 6 (transfer failed)"
grep -q 'Stalled' /tmp/stall.err || fail "the read of a stalled endpoint does not say 'Stalled': $(cat /tmp/stall.err)"
ffs_cmd unstall
try after-stall "$loopback" --json --mode in --in-endpoint "$in_ep" --bytes 1M "$obj"
[ $RC = 0 ] || fail "IN data did not flow (checked) after the gadget cleared its halt: $(cat /tmp/after-stall.err)"

step "disconnect mid-stream: ffs-gadget exits, FunctionFS unbinds the gadget"
spawn_as /tmp/disc.out /tmp/disc.err zcin zcusbctl read "$obj" --interface 0 --endpoint "$in_ep" \
	--bytes 1024G --timeout 10000
reader=$SPAWNED
sleep 2
kill -0 "$reader" 2>/dev/null || fail "the streaming read stopped by itself: $(cat /tmp/disc.err)"
ffs_cmd disconnect
wait_exit "$reader" 10 "zcusbctl read after the gadget disconnected"
RC=$EXIT_STATUS
reader=""
note "exit $RC; stderr: $(cat /tmp/disc.err)"
[ $RC = 3 ] || fail "the read from the disconnected gadget exited $RC, expected 3 (no such device)"
set +e
wait "$FFS_PID"
grc=$?
set -e
note "ffs-gadget exit $grc"
[ $grc = 0 ] || fail "ffs-gadget exited $grc (1: it saw wrong OUT data)"
for _ in $(seq 1 50); do gadget_sysfs ffs >/dev/null || break; sleep 0.2; done
gadget_sysfs ffs >/dev/null && fail "the host still sees the FunctionFS device 10 s after ffs-gadget exited (FunctionFS did not unbind the UDC)"
note "host side gone"
echo "PASS"
