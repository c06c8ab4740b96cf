#!/bin/bash
# The rig itself: systemd is PID 1, udev and D-Bus run, the gadgets and QEMU's xHCI devices
# enumerated at the expected speeds.
# timeout: 60
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

step "systemd is PID 1"
pid1=$(readlink /proc/1/exe)
note "PID 1: $pid1"
[[ $pid1 == */systemd ]] || fail "PID 1 is $pid1, not systemd"
run systemctl is-active basic.target || fail "basic.target not reached"
note "system state: $(systemctl is-system-running 2>/dev/null || true) (\"starting\" is expected: the test unit is the boot goal)"
[ "$(systemd-detect-virt --container 2>/dev/null || true)" = none ] ||
	fail "systemd believes it runs in a container ($(systemd-detect-virt --container)): /.dockerenv not removed?"

step "udev and D-Bus"
run systemctl is-active systemd-udevd.service || fail "systemd-udevd is not running"
run systemctl is-active dbus.service || fail "dbus.service is not running"
busctl --system list --no-pager >/tmp/busctl-list 2>&1 || fail "busctl cannot talk to the system bus: $(cat /tmp/busctl-list)"
head -n 5 /tmp/busctl-list

step "USB devices"
if command -v lsusb >/dev/null; then run lsusb; fi
found() { # VID PID SPEED -> "sysfs-dir speed" (bash reads: process starts are slow here)
	local d v p sp
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		read -r v <"$d/idVendor"
		read -r p <"$d/idProduct"
		read -r sp <"$d/speed"
		if [ "$v:$p" = "$1:$2" ]; then
			echo "$d $sp"
			[ "$sp" = "$3" ] && return 0
		fi
	done
	return 1
}
out=$(found 0525 a4a0 480) || fail "SourceSink gadget 0525:a4a0 at high speed (480) not on the bus (found: ${out:-nothing}; see setup.log)"
note "SourceSink 0525:a4a0: $out"
ss=${out%% *}
read -r serial <"$ss/serial"
[ "$serial" = zcusb-ss ] || fail "0525:a4a0 has serial $serial, expected zcusb-ss"
[[ $(readlink -f "$ss") == */dummy_hcd.* ]] || fail "0525:a4a0 is not on a dummy_hcd bus: $(readlink -f "$ss")"
n=0
for e in "$ss":1.0/ep_*; do [ -e "$e" ] && n=$((n + 1)); done
[ $n -ge 2 ] || fail "SourceSink interface 0 has $n endpoints (expected bulk IN and OUT)"
if [ -e "$ss:1.0/driver" ]; then
	fail "SourceSink interface is bound to $(basename "$(readlink "$ss:1.0/driver")") (usbtest must stay unloaded)"
fi

out=$(found 0525 a4a1 480) || fail "Loopback gadget 0525:a4a1 not at high speed (found: ${out:-nothing})"
note "Loopback 0525:a4a1: $out"
out=$(found 1d6b 0104 480) || fail "HID gadget 1d6b:0104 not at high speed (found: ${out:-nothing})"
note "HID 1d6b:0104: $out"

out=$(found 46f4 0001 5000) || fail "QEMU usb-storage 46f4:0001 at 5000 Mb/s on the xHCI not found (found: ${out:-nothing})"
note "xHCI usb-storage 46f4:0001: $out"
st=${out%% *}
[[ $(readlink -f "$st") == */pci* ]] || fail "usb-storage is not behind the PCI xHCI"
drv=$(basename "$(readlink "$st:1.0/driver" 2>/dev/null)" 2>/dev/null || true)
[ "$drv" = usb-storage ] || fail "usb-storage device's interface driver is '${drv:-none}', expected usb-storage"
out=$(found 0627 0001 480) || out=$(found 0627 0001 12) || fail "QEMU usb-kbd 0627:0001 not found"
note "xHCI usb-kbd 0627:0001: $out"

step "udev knows the gadget"
run udevadm info -q property "$ss" | grep -E '^(ID_VENDOR_ID|ID_MODEL_ID|DEVNAME|ID_SERIAL_SHORT)=' ||
	fail "udev has no properties for $ss"
echo "PASS"
