#!/bin/busybox sh
# shellcheck shell=dash
# /init of the zcusb.ko test initramfs (built by run-kmod-tests.sh).
#  1. mounts proc, sys, devtmpfs, configfs; insmods the USB/gadget modules
#     listed in /etc/zcusb-modules (dependency order) and zcusb.ko
#  2. creates two configfs gadgets on dummy_hcd: Loopback 0525:a4a1 and
#     SourceSink 0525:a4a0 (pattern=1), each on its own dummy UDC (own bus);
#     waits for them and for QEMU's usb-storage (46f4:0001) on the xHCI
#  3. runs /bin/zcusb-kmod-test, then checks dmesg for warnings/oopses
#  4. prints "ZCUSB-KMOD-RESULT: rc=N" and powers off
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin

mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

say() { echo "zcusb-kmod-init[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
finish() {
	echo "ZCUSB-KMOD-RESULT: rc=$1"
	sync
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}
fail() {
	say "setup failed: $*"
	dmesg | tail -n 30
	finish 99
}

say "loading modules"
while read -r ko args; do
	[ -n "$ko" ] || continue
	# shellcheck disable=SC2086 # module arguments are words
	insmod "/lib/modules/$ko" $args || fail "insmod $ko"
done </etc/zcusb-modules
mount -t configfs none /sys/kernel/config || fail "mount configfs"

# gadget NAME PID FUNCTION UDC [ATTR=VALUE...]
gadget() {
	g=/sys/kernel/config/usb_gadget/$1
	mkdir "$g" || return 1
	echo 0x0525 >"$g/idVendor"
	echo "$2" >"$g/idProduct"
	mkdir "$g/strings/0x409" "$g/configs/c.1" "$g/functions/$3" || return 1
	echo "zcusb-$1" >"$g/strings/0x409/serialnumber"
	f=$3
	udc=$4
	shift 4
	for kv in "$@"; do
		echo "${kv#*=}" >"$g/functions/$f/${kv%%=*}" || return 1
	done
	ln -s "$g/functions/$f" "$g/configs/c.1/" || return 1
	echo "$udc" >"$g/UDC"
}
gadget lb 0xa4a1 Loopback.0 dummy_udc.0 bulk_buflen=65536 ||
	fail "Loopback gadget"
gadget ss 0xa4a0 SourceSink.0 dummy_udc.1 bulk_buflen=65536 pattern=1 ||
	fail "SourceSink gadget"

say "waiting for the host side"
# both gadget devices enumerated with their interface 0
gadgets_up() {
	n=0
	for d in /sys/bus/usb/devices/*; do
		case $(cat "$d/idProduct" 2>/dev/null) in
		a4a0 | a4a1) [ -e "$d:1.0" ] && n=$((n + 1)) ;;
		esac
	done
	[ $n = 2 ]
}
i=0
while [ $i -lt 200 ] && ! gadgets_up; do
	sleep 0.1
	i=$((i + 1))
done
gadgets_up || fail "gadgets did not enumerate"
i=0
while [ $i -lt 100 ] && ! grep -qx 46f4 /sys/bus/usb/devices/*/idVendor 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
grep -qx 46f4 /sys/bus/usb/devices/*/idVendor || fail "QEMU usb-storage (46f4:0001) on xHCI missing"
insmod /lib/modules/zcusb.ko || fail "insmod zcusb.ko"

say "running zcusb-kmod-test"
/bin/zcusb-kmod-test --loopback /sys/kernel/config/usb_gadget/lb \
	--sourcesink /sys/kernel/config/usb_gadget/ss --storage 1 \
	${ZCUSB_CYCLES:+--cycles $ZCUSB_CYCLES}
rc=$?

say "kernel log check"
dmesg >/tmp/dmesg.txt
if grep -v 'module verification failed' /tmp/dmesg.txt |
	grep -E 'WARNING:|BUG:|Call Trace|general protection|kmemleak|leak|bad OUT byte|zcusb.*(error|fail)'; then
	echo "FAIL dmesg: warnings/oopses above"
	[ $rc -eq 0 ] && rc=3
else
	echo "ok   dmesg: no WARN/BUG/Call Trace/leak report"
fi
echo "-- dmesg (last 15 lines):"
tail -n 15 /tmp/dmesg.txt
finish $rc
