# shellcheck shell=bash
# zcusb.ko in the guest, for the cases 75-kmod-backend and 76-kmod-fallback and the benchmark
# (source after lib.sh). The guest boots WITHOUT the module installed: run-vm.sh stages it in
# /run/zcusb-vm/kmod (tests/vm/build-kmod.sh: built against this kernel's headers, with the
# module indexes depmod made for it on the host), and a case installs it for its own run and
# uninstalls it again before it ends, so every other case sees the usbfs-only system.
#
#   kmod_install            updates/zcusb.ko and the indexes into /lib/modules/KVER (the tmpfs
#                           overlay): modprobe, libkmod (zcusb-load.service, udev) now find it.
#                           Does not load it.
#   kmod_uninstall          rmmod zcusb if loaded (fails the case if refused), then restore the
#                           kernel's own indexes: modprobe zcusb finds nothing again
#   kmod_loaded             status: is zcusb.ko loaded?
#   kmod_param NAME VALUE   write /sys/module/zcusb/parameters/NAME
#   kmod_stats              set KS_zerocopy_bytes KS_bounced_bytes KS_urbs KS_pinned_pages and
#                           the in-kernel queues' KS_kqueues KS_kq_in_flight KS_kq_transfers
#                           KS_kq_broken from /sys/bus/usb/drivers/zcusb/stats (bash only)
#   zcusbd_config LINE...   /etc/zcusb/zcusbd.conf.d/50-vm-kmod.conf: [Daemon] and the LINEs
#                           (e.g. Backend=usbfs); zcusbd_config_clear removes it
#   zcusbd_restart          restart zcusbd (zcusb-load.service runs first), wait until it
#                           answers on the bus
#   kmsg_mark / kmsg_check  kernel log lines since the mark: fail on WARN/BUG/Oops/Call Trace
#   intf_driver INTF        the driver bound to an interface (1-1:1.0), "" if none
#   lb_intf                 the Loopback gadget's interface (its port changes with replugs)

KMOD_STAGE=${ZCUSB_VM_GUEST%/guest}/kmod
KMOD_DRV=/sys/bus/usb/drivers/zcusb
KMOD_CONF=/etc/zcusb/zcusbd.conf.d/50-vm-kmod.conf
KMOD_KVER=$(uname -r)

_kmod_need() {
	if [ -f "$KMOD_STAGE/UNAVAILABLE" ]; then
		fail "zcusb.ko is not in the guest: $(<"$KMOD_STAGE/UNAVAILABLE") (tests/vm/build-kmod.sh on the host)"
	fi
	if [ ! -f "$KMOD_STAGE/zcusb.ko" ] || [ ! -d "$KMOD_STAGE/installed" ]; then
		fail "$KMOD_STAGE has no zcusb.ko: run-vm.sh stages it there (build-kmod.sh)"
	fi
	[ "$(<"$KMOD_STAGE/kver")" = "$KMOD_KVER" ] ||
		fail "zcusb.ko was built for $(<"$KMOD_STAGE/kver"), the guest runs $KMOD_KVER"
}

kmod_loaded() { [ -d /sys/module/zcusb ]; }

kmod_install() {
	_kmod_need
	cp -a "$KMOD_STAGE/installed/." "/lib/modules/$KMOD_KVER/" || fail "installing zcusb.ko into /lib/modules/$KMOD_KVER"
	modinfo -F version zcusb >/dev/null 2>&1 || fail "modinfo zcusb finds nothing after installing it"
}

kmod_uninstall() {
	local n
	if kmod_loaded && ! rmmod zcusb; then
		fail "rmmod zcusb refused (a /dev/zcusb node still open?): lsmod says $(grep '^zcusb ' /proc/modules)"
	fi
	rm -f "/lib/modules/$KMOD_KVER/updates/zcusb.ko"
	[ ! -d "$KMOD_STAGE/original" ] || cp -a "$KMOD_STAGE/original/." "/lib/modules/$KMOD_KVER/"
	if [ -f "$KMOD_STAGE/installed.new" ]; then
		while read -r n; do
			[ -z "$n" ] || rm -f "/lib/modules/$KMOD_KVER/$n"
		done <"$KMOD_STAGE/installed.new"
	fi
	if modinfo zcusb >/dev/null 2>&1; then fail "modinfo still finds zcusb after uninstalling it"; fi
}

kmod_param() {
	printf '%s\n' "$2" >"/sys/module/zcusb/parameters/$1" || fail "cannot set zcusb parameter $1=$2"
}

# shellcheck disable=SC2034 # KS_* are for the cases
kmod_stats() {
	local k v
	KS_zerocopy_bytes=0 KS_bounced_bytes=0 KS_urbs=0 KS_pinned_pages=0
	KS_kqueues=0 KS_kq_in_flight=0 KS_kq_transfers=0 KS_kq_broken=0
	[ -r "$KMOD_DRV/stats" ] || fail "no $KMOD_DRV/stats (zcusb.ko not loaded?)"
	while read -r k v; do
		case $k in
		zerocopy_bytes) KS_zerocopy_bytes=$v ;;
		bounced_bytes) KS_bounced_bytes=$v ;;
		urbs) KS_urbs=$v ;;
		pinned_pages) KS_pinned_pages=$v ;;
		kqueues) KS_kqueues=$v ;;
		kq_in_flight) KS_kq_in_flight=$v ;;
		kq_transfers) KS_kq_transfers=$v ;;
		kq_broken) KS_kq_broken=$v ;;
		esac
	done <"$KMOD_DRV/stats"
}

zcusbd_config() {
	mkdir -p "${KMOD_CONF%/*}"
	printf '[Daemon]\n' >"$KMOD_CONF"
	printf '%s\n' "$@" >>"$KMOD_CONF"
}
zcusbd_config_clear() { rm -f "$KMOD_CONF"; }

zcusbd_restart() {
	local i
	if ! systemctl restart zcusbd.service; then
		unit_journal zcusbd.service >&2
		fail "systemctl restart zcusbd.service failed (journal above)"
	fi
	for ((i = 0; i < 100; i++)); do
		busctl --system get-property org.zcusb1 /org/zcusb1 org.zcusb1.Manager Backend >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	unit_journal zcusbd.service >&2
	fail "zcusbd does not answer on the bus 20 s after its restart"
}

KMSG_MARK=0
kmsg_mark() {
	local _
	KMSG_MARK=0
	while IFS= read -r _; do KMSG_MARK=$((KMSG_MARK + 1)); done < <(dmesg)
}
kmsg_check() {
	dmesg | tail -n +$((KMSG_MARK + 1)) >/tmp/kmsg-since.txt
	if grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection fault|kernel BUG' /tmp/kmsg-since.txt >/dev/null; then
		grep -B 5 -A 25 -E 'WARNING:|BUG:|Oops|Call Trace' /tmp/kmsg-since.txt | head -n 80
		fail "the kernel logged WARN/BUG/Oops/Call Trace during this case (above)"
	fi
	note "kernel log clean ($(wc -l </tmp/kmsg-since.txt) lines since the case started)"
}

intf_driver() {
	local l
	l=$(readlink "/sys/bus/usb/devices/$1/driver" 2>/dev/null) || { echo ""; return 0; }
	echo "${l##*/}"
}

lb_intf() {
	local d
	d=$(gadget_sysfs lb) || fail "Loopback gadget not plugged"
	echo "${d##*/}:1.0"
}

