# shellcheck shell=bash
# USB gadget helpers for the guest (source this file; needs configfs, libcomposite and
# dummy_hcd loaded with num=N: each gadget gets its own dummy UDC, i.e. its own host bus).
#
#   gadget_add NAME KIND [N] create configfs gadget zc_NAME and reserve a free dummy UDC
#                            KIND: sourcesink  0525:a4a0  SourceSink (bulk, buflen 65536; iso alt 1)
#                                  loopback    0525:a4a1  Loopback (bulk OUT echoed to IN)
#                                  hid         1d6b:0104  HID boot keyboard (interrupt IN/OUT)
#                                  ffs         1d6b:0105  FunctionFS (see below)
#                            N (loopback only, default 1): N Loopback functions in the one
#                            configuration, interfaces 0..N-1 (dummy_udc's endpoints allow 8)
#   gadget_plug NAME...      bind to its UDC, wait for the host-side device, udevadm settle
#   gadget_unplug NAME...    unbind, wait until the host-side device is gone, udevadm settle
#   gadget_del NAME          unplug if needed and remove the configfs gadget
#   gadget_sysfs NAME        host-side sysfs dir of the plugged device (/sys/bus/usb/devices/3-1)
#   gadget_busaddr NAME      "BUS ADDR" (decimal) of the plugged device
#   gadget_object NAME       zcusbd object path (/org/zcusb1/device/usbBUS_ADDR)
#   gadget_serial NAME       the iSerialNumber the gadget reports (zcusb-NAME)
#
# Process starts are slow under TCG (hundreds of ms): these helpers read files with `read`
# and loop in bash rather than run cat/grep.
#
# Every gadget reports Manufacturer "zcusb test", Product "zcusb KIND" and serial zcusb-NAME,
# which is how the host side is found again.
#
# FunctionFS (later step): `gadget_add NAME ffs` creates the function ffs.NAME and mounts its
# functionfs at /run/zcusb-ffs/NAME. The project's FunctionFS program (C, not written yet) must
# open NAME/ep0 there and write its descriptors and strings BEFORE gadget_plug: the kernel
# refuses to bind the UDC until then. Start that program between gadget_add and gadget_plug.

ZCUSB_GADGET_ROOT=${ZCUSB_GADGET_ROOT:-/sys/kernel/config/usb_gadget}
ZCUSB_GADGET_STATE=${ZCUSB_GADGET_STATE:-/run/zcusb-gadgets}

_gadget_die() {
	echo "gadget: error: $*" >&2
	return 1
}

_gadget_dir() { printf '%s/zc_%s' "$ZCUSB_GADGET_ROOT" "$1"; }

_gadget_read() { # FILE -> first line on stdout (empty if unreadable)
	local v=""
	read -r v <"$1" 2>/dev/null || true
	printf '%s' "$v"
}

# A dummy UDC no other gadget has reserved.
_gadget_free_udc() {
	local u n f r taken
	for u in /sys/class/udc/dummy_udc.*; do
		[ -e "$u" ] || continue
		n=${u##*/}
		taken=0
		for f in "$ZCUSB_GADGET_STATE"/*.udc; do
			[ -e "$f" ] || continue
			read -r r <"$f" || true
			[ "$r" = "$n" ] && taken=1
		done
		if [ $taken = 0 ]; then
			echo "$n"
			return 0
		fi
	done
	return 1
}

gadget_add() {
	local name=$1 kind=$2 count=${3:-1} g udc vid pid f i
	[[ $name =~ ^[A-Za-z0-9_]+$ ]] || _gadget_die "gadget name '$name': use [A-Za-z0-9_]" || return 1
	g=$(_gadget_dir "$name")
	[ -d "$ZCUSB_GADGET_ROOT" ] ||
		_gadget_die "$ZCUSB_GADGET_ROOT missing: modprobe libcomposite and mount configfs on /sys/kernel/config" || return 1
	[ ! -e "$g" ] || _gadget_die "gadget $name exists already" || return 1
	udc=$(_gadget_free_udc) ||
		_gadget_die "no free dummy UDC for $name: load dummy_hcd with num= at least the number of gadgets" || return 1
	case $kind in
	sourcesink) vid=0x0525 pid=0xa4a0 f=SourceSink.0 ;;
	loopback) vid=0x0525 pid=0xa4a1 f=Loopback.0 ;;
	hid) vid=0x1d6b pid=0x0104 f=hid.usb0 ;;
	ffs) vid=0x1d6b pid=0x0105 f=ffs.$name ;;
	*) _gadget_die "unknown gadget kind '$kind' (sourcesink|loopback|hid|ffs)" || return 1 ;;
	esac
	[[ $count =~ ^[1-9][0-9]?$ ]] && { [ "$count" = 1 ] || [ "$kind" = loopback ]; } ||
		_gadget_die "gadget $name: $count functions of kind $kind (only loopback takes a count)" || return 1

	mkdir "$g" "$g/strings/0x409" "$g/configs/c.1" "$g/configs/c.1/strings/0x409" "$g/functions/$f" || {
		_gadget_die "cannot create configfs gadget $g with function $f (libcomposite and usb_f_* loaded?)"
		return 1
	}
	echo "$vid" >"$g/idVendor"
	echo "$pid" >"$g/idProduct"
	echo 0x0100 >"$g/bcdDevice"
	echo 0x0200 >"$g/bcdUSB"
	echo "zcusb test" >"$g/strings/0x409/manufacturer"
	echo "zcusb $kind" >"$g/strings/0x409/product"
	echo "zcusb-$name" >"$g/strings/0x409/serialnumber"
	echo "$kind" >"$g/configs/c.1/strings/0x409/configuration"
	echo 120 >"$g/configs/c.1/MaxPower"
	case $kind in
	sourcesink)
		echo 65536 >"$g/functions/$f/bulk_buflen"
		echo 4 >"$g/functions/$f/isoc_interval"
		echo 1024 >"$g/functions/$f/isoc_maxpacket"
		echo 0 >"$g/functions/$f/isoc_mult"
		;;
	loopback)
		echo 65536 >"$g/functions/$f/bulk_buflen"
		for ((i = 1; i < count; i++)); do
			mkdir "$g/functions/Loopback.$i" || { _gadget_die "cannot create function Loopback.$i of $name"; return 1; }
			echo 65536 >"$g/functions/Loopback.$i/bulk_buflen"
			ln -s "$g/functions/Loopback.$i" "$g/configs/c.1/"
		done
		;;
	hid)
		# boot keyboard: 8-byte input report, 1-byte LED output report
		echo 1 >"$g/functions/$f/protocol"
		echo 1 >"$g/functions/$f/subclass"
		echo 8 >"$g/functions/$f/report_length"
		printf '%b' '\x05\x01\x09\x06\xa1\x01\x05\x07\x19\xe0\x29\xe7\x15\x00\x25\x01\x75\x01\x95\x08\x81\x02\x95\x01\x75\x08\x81\x03\x95\x05\x75\x01\x05\x08\x19\x01\x29\x05\x91\x02\x95\x01\x75\x03\x91\x03\x95\x06\x75\x08\x15\x00\x25\x65\x05\x07\x19\x00\x29\x65\x81\x00\xc0' \
			>"$g/functions/$f/report_desc"
		;;
	ffs)
		mkdir -p "/run/zcusb-ffs/$name"
		mount -t functionfs "$name" "/run/zcusb-ffs/$name" || { _gadget_die "mount functionfs $name"; return 1; }
		;;
	esac
	ln -s "$g/functions/$f" "$g/configs/c.1/"
	[ -d "$ZCUSB_GADGET_STATE" ] || mkdir -p "$ZCUSB_GADGET_STATE"
	echo "$udc" >"$ZCUSB_GADGET_STATE/$name.udc"
}

gadget_serial() { echo "zcusb-$1"; }

# Host-side sysfs directory of the device whose serial is zcusb-NAME (empty if absent).
gadget_sysfs() {
	local d want s
	want=zcusb-$1
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/serial" ] || continue
		s=""
		read -r s <"$d/serial" 2>/dev/null || true
		if [ "$s" = "$want" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

gadget_busaddr() {
	local d b a
	d=$(gadget_sysfs "$1") || return 1
	read -r b <"$d/busnum" && read -r a <"$d/devnum" || return 1
	echo "$b $a"
}

gadget_object() {
	local b a
	read -r b a < <(gadget_busaddr "$1") || return 1
	echo "/org/zcusb1/device/usb${b}_${a}"
}

_gadget_wait() { # NAME present|absent SECONDS
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		if gadget_sysfs "$1" >/dev/null; then
			[ "$2" = present ] && return 0
		else
			[ "$2" = absent ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

# gadget_plug NAME...: bind each to its UDC, then wait for all host-side devices, one settle.
gadget_plug() {
	local name g udc
	for name in "$@"; do
		g=$(_gadget_dir "$name")
		[ -d "$g" ] || _gadget_die "no gadget $name (gadget_add first)" || return 1
		read -r udc <"$ZCUSB_GADGET_STATE/$name.udc" || return 1
		if [ -z "$(_gadget_read "$g/UDC")" ]; then
			echo "$udc" >"$g/UDC" || { _gadget_die "binding $name to $udc failed (dmesg may say why)"; return 1; }
		fi
	done
	for name in "$@"; do
		_gadget_wait "$name" present 30 ||
			_gadget_die "gadget $name is bound but no host device with serial zcusb-$name appeared within 30 s" || return 1
	done
	udevadm settle --timeout=30 || true
}

# gadget_unplug NAME...: unbind each, wait until all host-side devices are gone, one settle.
gadget_unplug() {
	local name g
	for name in "$@"; do
		g=$(_gadget_dir "$name")
		[ -d "$g" ] || _gadget_die "no gadget $name" || return 1
		if [ -n "$(_gadget_read "$g/UDC")" ]; then
			echo "" >"$g/UDC" || { _gadget_die "unbinding $name failed"; return 1; }
		fi
	done
	for name in "$@"; do
		_gadget_wait "$name" absent 30 ||
			_gadget_die "gadget $name is unbound but its host device is still there after 30 s" || return 1
	done
	udevadm settle --timeout=30 || true
}

gadget_del() {
	local name=$1 g l f
	g=$(_gadget_dir "$name")
	[ -d "$g" ] || return 0
	gadget_unplug "$name" || true
	for l in "$g"/configs/c.1/*; do
		[ -L "$l" ] && rm "$l"
	done
	rmdir "$g/configs/c.1/strings/0x409" "$g/configs/c.1" 2>/dev/null || true
	for f in "$g"/functions/*; do
		[ -d "$f" ] || continue
		case ${f##*/} in ffs.*) umount "/run/zcusb-ffs/$name" 2>/dev/null || true ;; esac
		rmdir "$f"
	done
	rmdir "$g/strings/0x409" "$g"
	rm -f "$ZCUSB_GADGET_STATE/$name.udc"
}
