#!/bin/bash
# Bulk data through zcusbd as an unprivileged user granted by a local udev rule: zcusbctl read
# and write 256 MiB on the SourceSink (its sink checks the data is zeros and stalls otherwise),
# 256 MiB out and back through the Loopback with zcusb-loopback (every byte checked), and a
# user outside the group refused with AccessDenied; while a stream runs, zcusbd stages it in
# usbfs memory (an mmap of the device node), unmapped when the claim ends. Prints MB/s of each
# (emulated CPU: compare the figures of one run with each other only).
# timeout: 240
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

SIZE=256M
ensure_zcusbd
need_zcusbctl
loopback=$(vm_tool zcusb-loopback)
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
lb=$(gadget_object lb) || fail "Loopback gadget not plugged (setup.log)"
trap data_revoke EXIT

step "grant group $DATA_GROUP the SourceSink and the Loopback"
data_users
data_grant 0525:a4a0 0525:a4a1
cat "$DATA_RULE"
run id zcin

# A transfer command as zcin with --json; its JSON line goes to $1.json, stderr to $1.err.
xfer() { # NAME CMD...
	local name=$1 rc=0
	shift
	printf '+ (zcin) %s\n' "$*"
	run_as zcin "$@" >"/tmp/$name.json" 2>"/tmp/$name.err" || rc=$?
	cat "/tmp/$name.json"
	[ -s "/tmp/$name.err" ] && sed 's/^/   stderr: /' "/tmp/$name.err"
	if [ $rc -ne 0 ]; then
		unit_journal zcusbd.service 15
		fail "$name exited $rc: $(cat "/tmp/$name.err")"
	fi
}
expect_bytes() { # NAME BYTES
	local got
	got=$(jfield bytes <"/tmp/$1.json") || fail "$1 printed no JSON with \"bytes\": $(cat "/tmp/$1.json")"
	[ "$got" = "$2" ] || fail "$1 moved $got bytes, expected $2"
}
bytes=$(numfmt --from=iec "$SIZE")

step "zcusbctl read $SIZE from the SourceSink's bulk IN (0x81)"
xfer ss-read zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes "$SIZE"
expect_bytes ss-read "$bytes"
[ "$(jfield errors </tmp/ss-read.json)" = 0 ] || fail "read reports failed transfers: $(cat /tmp/ss-read.json)"
read_mbps=$(jfield mb_per_s </tmp/ss-read.json)

step "zcusbctl write $SIZE of zeros to the SourceSink's bulk OUT (0x02; the sink stalls on any other byte)"
xfer ss-write zcusbctl --json write "$ss" --interface 0 --endpoint 0x02 --pattern zeros --bytes "$SIZE"
expect_bytes ss-write "$bytes"
[ "$(jfield errors </tmp/ss-write.json)" = 0 ] || fail "write reports failed transfers: $(cat /tmp/ss-write.json)"
write_mbps=$(jfield mb_per_s </tmp/ss-write.json)

step "zcusb-loopback: $SIZE out to the Loopback and back, 4 transfers in flight each way, every byte checked"
xfer lb-loop "$loopback" --json --mode loop --bytes "$SIZE" --queue-depth 4 "$lb"
expect_bytes lb-loop "$bytes"
[ "$(jfield verified </tmp/lb-loop.json)" = true ] || fail "zcusb-loopback did not verify: $(cat /tmp/lb-loop.json)"
loop_mbps=$(jfield mb_per_s </tmp/lb-loop.json)

# usbfs-bounce.h: over usbfs, the usual transfer sizes go through staging buffers in usbfs
# memory, an mmap of the device node, held while the claim lasts. Without usbfs mmap the
# transfers above would still pass (the kernel copies instead), so look for the mapping itself.
# On zcusb.ko (78-kernel-queues-datapath) the module uses the client's pages: nothing staged.
if [ "${ZCUSB_VM_QUEUES:-}" = kernel ]; then
	step "while zcin streams 64 KiB transfers on zcusb.ko, zcusbd maps no usbfs memory"
else
	step "while zcin streams 64 KiB transfers, zcusbd stages them in usbfs memory; the claim's end unmaps it"
fi
journal_mark
stream_start /tmp/stage.out /tmp/stage.err "$ss"
pid=$(systemctl show -P MainPID zcusbd.service)
if [ "${ZCUSB_VM_QUEUES:-}" = kernel ]; then
	sleep 1
	! grep ' /dev/bus/usb/' "/proc/$pid/maps" || fail "zcusbd maps usbfs memory for a claim on zcusb.ko"
else
	wait_until 30 "a mapping of /dev/bus/usb/ in zcusbd's /proc/$pid/maps" grep -q ' /dev/bus/usb/' "/proc/$pid/maps"
	grep ' /dev/bus/usb/' "/proc/$pid/maps" | sed 's/^/   /'
fi
kill "$SPAWNED" # SIGTERM: a background job of a script ignores SIGINT
wait "$SPAWNED" || true
wait_until 30 "zcusbd's usbfs mappings gone after the claim ended" \
	sh -c "! grep -q ' /dev/bus/usb/' /proc/$pid/maps"
note "none left in /proc/$pid/maps"

step "zcout (not in $DATA_GROUP): claiming the SourceSink -> exit 4, AccessDenied"
set +e
run_as zcout zcusbctl read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/out.txt 2>/tmp/out.err
rc=$?
set -e
note "rc=$rc stderr: $(cat /tmp/out.err)"
[ $rc = 4 ] || fail "zcusbctl read as zcout exited $rc, expected 4 (access denied)"
grep -Eqi 'access ?denied|not allowed|may not' /tmp/out.err || fail "stderr does not say access is denied: $(cat /tmp/out.err)"

step "rates (MB/s, 10^6 bytes; emulated CPU, so only the ratios mean something)"
note "read  (SourceSink IN):  $read_mbps"
note "write (SourceSink OUT): $write_mbps"
note "loop  (Loopback, each way, checked): $loop_mbps"
awk -v r="$read_mbps" -v w="$write_mbps" -v l="$loop_mbps" \
	'BEGIN { printf "   ratios: write/read %.2f, loop/read %.2f\n", w / r, l / r }'
echo "PASS"
