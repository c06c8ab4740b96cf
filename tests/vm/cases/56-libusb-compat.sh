#!/bin/bash
# Unmodified libusb-1.0 programs through zcusb's libusb-1.0.so.0 (zcusb-run), in the bubblewrap
# sandbox of 55-sandbox (no /dev/bus/usb, no /sys, only the system bus socket under /run):
# - `lsusb -v` (usbutils, Debian's binary) shows the same device and configuration descriptors
#   for the SourceSink and the Loopback as root's lsusb on the host (with the real libusb), but
#   for the device strings lsusb reads from sysfs, which lu-listdevs checks through libusb;
# - lu-stream (a plain libusb program) reads the SourceSink and loops data through the Loopback,
#   OUT and IN at once, every byte checked, with libusb_dev_mem_alloc() and with malloc buffers;
# - unplugging the SourceSink mid-stream ends its transfers LIBUSB_TRANSFER_NO_DEVICE;
# - SIGKILL of a streaming program: zcusbd ends its claim, the interface is claimable at once.
# Size per stream: ZCUSB_VM_COMPAT_BYTES (default 256 MiB each way, as issue #13 asks: the four
# streams take 30-70 s of guest time at the 15-70 MB/s TCG gives them, 25-60 s more than 32 MiB).
# timeout: 360
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

BYTES=${ZCUSB_VM_COMPAT_BYTES:-$((256 << 20))}
ensure_zcusbd
need_zcusbctl
command -v zcusb-run >/dev/null || fail "zcusb-run not installed: the build lacks the libusb compatibility library (libusb-1.0-0-dev missing at configure time?)"
command -v lsusb >/dev/null || fail "lsusb not found (apt-get install usbutils: tests/vm/packages.txt lists it)"
command -v bwrap >/dev/null || fail "bwrap not found (apt-get install bubblewrap)"
lustream=$(vm_tool lu-stream)
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
lb=$(gadget_object lb) || fail "Loopback gadget not plugged (setup.log)"
bg=""
cleanup() {
	if [ -n "$bg" ]; then kill -KILL "$bg" 2>/dev/null || true; fi
	gadget_plug ss >/dev/null 2>&1 || true
	data_revoke
}
trap cleanup EXIT
journal_mark

step "grant group $DATA_GROUP the SourceSink and the Loopback"
data_users
data_grant 0525:a4a0 0525:a4a1

SANDBOX=(bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr)
for l in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$l" ]; then
		SANDBOX+=(--symlink "$(readlink "/$l")" "/$l")
	elif [ -d "/$l" ]; then
		SANDBOX+=(--ro-bind "/$l" "/$l")
	fi
done
# lsusb names vendors from udev's hwdb, as on the host
SANDBOX+=(--ro-bind /etc/ld.so.cache /etc/ld.so.cache --ro-bind-try /etc/udev/hwdb.bin /etc/udev/hwdb.bin
	--proc /proc --dev /dev --tmpfs /tmp
	--ro-bind /run/dbus/system_bus_socket /run/dbus/system_bus_socket
	--ro-bind "$lustream" /app/bin/lu-stream --ro-bind "$(vm_tool lu-listdevs)" /app/bin/lu-listdevs
	--clearenv --setenv PATH /app/bin:/usr/bin --setenv HOME /tmp
	--setenv DBUS_SYSTEM_BUS_ADDRESS unix:path=/run/dbus/system_bus_socket)
sandboxed() { run_as zcin "${SANDBOX[@]}" "$@"; }

step "inside: no /sys, no /dev/bus/usb"
# shellcheck disable=SC2016 # expanded inside the sandbox
sandboxed /usr/bin/bash -c 'shopt -s nullglob; e=(/sys/* /dev/bus/usb/*); echo "${#e[@]}"' >/tmp/inside.txt ||
	fail "bwrap as zcin failed"
[ "$(cat /tmp/inside.txt)" = 0 ] || fail "the sandbox has /sys or /dev/bus/usb entries"

# lsusb -v: drop what is not a descriptor ("Device Status" needs GET_STATUS, which zcusbd
# passes only for a claimed interface) and the text of the device's three strings, which
# usbutils 014 reads from sysfs (manufacturer, product, serial), not through libusb: without
# /sys it prints none, whatever libusb says. The indexes stay; lu-listdevs checks the strings
# through libusb below. Everything else must be identical.
descriptors_only() {
	awk '/^Device Status:/ { skip = 1; next } skip && /^ / { next } { skip = 0 }
	     /^  i(Manufacturer|Product|Serial) / { print $1, $2; next } { print }'
}
for g in ss lb; do
	read -r bus addr < <(gadget_busaddr "$g")
	id=$([ $g = ss ] && echo 0525:a4a0 || echo 0525:a4a1)
	step "lsusb -v -s $bus:$addr ($g): root on the host vs zcin in the sandbox through zcusb-run"
	lsusb -v -s "$bus:$addr" 2>/tmp/lsusb-host.err | descriptors_only >/tmp/lsusb-host.txt
	sandboxed zcusb-run lsusb -v -s "$bus:$addr" 2>/tmp/lsusb-box.err | descriptors_only >/tmp/lsusb-box.txt ||
		fail "zcusb-run lsusb -v in the sandbox failed: $(cat /tmp/lsusb-box.err)"
	grep -q "idVendor  *0x${id%:*}" /tmp/lsusb-box.txt || { cat /tmp/lsusb-box.txt /tmp/lsusb-box.err; fail "lsusb -v in the sandbox does not show $id"; }
	if ! diff -u /tmp/lsusb-host.txt /tmp/lsusb-box.txt >/tmp/lsusb.diff; then
		cat /tmp/lsusb.diff
		sed 's/^/   sandbox stderr: /' /tmp/lsusb-box.err
		fail "lsusb -v of $g differs between the host (real libusb, root) and the sandbox (zcusb-run)"
	fi
	note "identical: $(wc -l </tmp/lsusb-box.txt) lines ($(grep -c 'bDescriptorType' /tmp/lsusb-box.txt) descriptors); sandbox stderr: $(tr '\n' ' ' </tmp/lsusb-box.err)"
done

step "inside: the device strings through libusb (lu-listdevs)"
sandboxed zcusb-run lu-listdevs >/tmp/listdevs.json 2>/tmp/listdevs.err ||
	fail "lu-listdevs in the sandbox failed: $(cat /tmp/listdevs.err)"
for g in ss lb; do
	kind=$([ $g = ss ] && echo sourcesink || echo loopback)
	line=$(grep "\"product\":\"zcusb $kind\"" /tmp/listdevs.json) ||
		{ cat /tmp/listdevs.json /tmp/listdevs.err; fail "lu-listdevs in the sandbox lacks the product string of $g"; }
	[[ $line == *'"manufacturer":"zcusb test"'* && $line == *"\"serial\":\"zcusb-$g\""* ]] ||
		fail "lu-listdevs in the sandbox: wrong strings for $g: $line"
	note "$g: $(jfield manufacturer <<<"$line") / $(jfield product <<<"$line") / $(jfield serial <<<"$line")"
done
n=$(grep -c '^{' /tmp/listdevs.json)
[ "$n" = 2 ] || fail "lu-listdevs in the sandbox lists $n devices, zcin may see 2: $(cat /tmp/listdevs.json)"

rates=()
for mem in dev malloc; do
	step "inside: lu-stream reads $BYTES bytes from the SourceSink ($mem buffers, all zero)"
	sandboxed zcusb-run lu-stream --device=0525:a4a0 --in=0x81 --out=0 --bytes="$BYTES" --size=65536 --depth=8 \
		--mem=$mem --pattern=zero >/tmp/ss.json 2>/tmp/ss.err || {
		cat /tmp/ss.json /tmp/ss.err
		unit_journal zcusbd.service 15
		fail "lu-stream from the SourceSink ($mem) failed"
	}
	cat /tmp/ss.json
	rates+=("ss-$mem $(jfield mb_per_s </tmp/ss.json)")

	step "inside: lu-stream loops $BYTES bytes through the Loopback ($mem buffers, OUT and IN at once, checked)"
	sandboxed zcusb-run lu-stream --device=0525:a4a1 --loopback --in=0x81 --out=0x02 --bytes="$BYTES" --size=65536 \
		--depth=4 --mem=$mem --pattern=mod251 >/tmp/lb.json 2>/tmp/lb.err || {
		cat /tmp/lb.json /tmp/lb.err
		unit_journal zcusbd.service 15
		fail "lu-stream through the Loopback ($mem) failed"
	}
	cat /tmp/lb.json
	rates+=("loop-$mem $(jfield mb_per_s </tmp/lb.json)")
done
note "MB/s (emulated CPU): ${rates[*]}"

step "inside: unplug the SourceSink while lu-stream reads from it"
journal_mark
spawn_as /tmp/unplug.json /tmp/unplug.err zcin "${SANDBOX[@]}" zcusb-run lu-stream --device=0525:a4a0 --in=0x81 --out=0 \
	--bytes=$((64 << 30)) --size=65536 --depth=8 --mem=dev --pattern=zero --expect-no-device --timeout=0
bg=$SPAWNED
wait_until 30 "lu-stream's claim of $ss" journal_has "of $ss claimed by"
sleep 1
kill -0 "$bg" 2>/dev/null || fail "lu-stream stopped by itself: $(cat /tmp/unplug.err)"
gadget_unplug ss || fail "gadget_unplug ss failed"
wait_exit "$bg" 15 "lu-stream after its device was unplugged"
rc=$EXIT_STATUS
bg=""
cat /tmp/unplug.json
[ "$rc" = 0 ] || fail "lu-stream --expect-no-device exited $rc: $(cat /tmp/unplug.err)"
n=$(jfield no_device </tmp/unplug.json)
note "ended $EXIT_AFTER s after the unbind; transfers that ended LIBUSB_TRANSFER_NO_DEVICE: $n"
gadget_plug ss || fail "replugging the SourceSink failed"
data_grant 0525:a4a0 0525:a4a1

step "SIGKILL of a streaming libusb program: nothing left in zcusbd"
journal_mark
spawn_as /tmp/kill.json /tmp/kill.err zcin "${SANDBOX[@]}" zcusb-run lu-stream --device=0525:a4a1 --loopback \
	--in=0x81 --out=0x02 --bytes=$((1 << 30)) --size=65536 --depth=4 --mem=malloc --hold-after=$((4 << 20))
bg=$SPAWNED
wait_until 60 "lu-stream to hold with transfers in flight" grep -q holding /tmp/kill.json
claim=$(journal_since | sed -n "s|.*\(/org/zcusb1/claim/c[0-9]*\): interface 0 of $lb claimed by.*|\1|p" | tail -n1)
[ -n "$claim" ] || fail "no claim of $lb in zcusbd's journal"
kill -KILL "$bg"
wait "$bg" 2>/dev/null || true
bg=""
wait_until 5 "zcusbd to end $claim" journal_has "$claim: ended"
loopback=$(vm_tool zcusb-loopback)
run_as zcin "$loopback" --mode claim "$lb" >/tmp/probe.json 2>/tmp/probe.err ||
	fail "the Loopback's interface is not claimable after the kill: $(cat /tmp/probe.err)"
[ "$(jfield used_bytes </tmp/probe.json)" = 0 ] || fail "a new claim starts with UsedBytes $(jfield used_bytes </tmp/probe.json)"
! journal_since | grep -q "leaves" || fail "zcusbd reports bytes left charged: $(journal_since | grep leaves)"
note "$claim ended; the interface is claimable again, a new claim starts at 0 bytes"

# The Loopback echoes what the killed program wrote and never read back to the next reader:
# replug it so the cases after this one start clean.
gadget_unplug lb >/dev/null || fail "gadget_unplug lb failed"
gadget_plug lb >/dev/null || fail "gadget_plug lb failed"
lb=$(gadget_object lb) || fail "the Loopback gadget did not come back"
wait_until 20 "zcusbd to see the replugged Loopback" busctl --system introspect org.zcusb1 "$lb"
echo "PASS"
