#!/bin/bash
# Guest side of the QEMU test tier, run by zcusb-vmtest.service once udev and D-Bus are up.
# Reads /run/zcusb-vm/config (written by run-vm.sh), loads the USB gadget modules, plugs the
# standard gadgets, runs each case with a timeout and writes to /run/zcusb-vm/results:
#   NAME.rc NAME.log NAME.time   per case (rc 124 = timed out)
#   setup.log boot.txt dmesg.txt journal.txt   and finally run.done
# then exits; the unit's SuccessAction/FailureAction power the VM off at once.
set -uo pipefail

X=/run/zcusb-vm
G=$X/guest
R=$X/results
export ZCUSB_VM_GUEST=$G ZCUSB_VM_RESULTS=$R
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8 SYSTEMD_PAGER='' SYSTEMD_COLORS=0
mkdir -p "$R"

uptime_s() {
	local up _
	read -r up _ </proc/uptime
	echo "$up"
}
echo "guest_uptime_at_test_start=$(uptime_s)" >"$R/boot.txt"
echo "kernel=$(uname -r)" >>"$R/boot.txt"

CASES=()
CASE_TIMEOUT=120
DUMMY_HCD_PARAMS=num=4 # run-vm.sh --dummy-hcd
# shellcheck source=/dev/null
. "$X/config"

# --- fixture: modules and gadgets (failures are logged; the cases then fail with causes) ---
{
	echo "uptime $(uptime_s): setup"
	# Only a tree outside the loader's default paths (prefix /usr/local) needs ldconfig, and a
	# full ldconfig over 9p costs tens of seconds under TCG.
	if compgen -G "$X/root/usr/local/lib*" >/dev/null; then
		ldconfig || echo "warning: ldconfig failed"
		echo "uptime $(uptime_s): ldconfig done"
	fi
	# dummy_hcd num=4: one UDC (and one host bus) per gadget, so several can be plugged.
	# shellcheck disable=SC2086 # module parameters, one word each
	modprobe dummy_hcd $DUMMY_HCD_PARAMS || echo "ERROR: modprobe dummy_hcd $DUMMY_HCD_PARAMS failed"
	modprobe -a libcomposite usb_f_ss_lb usb_f_hid usb_f_fs || echo "ERROR: modprobe gadget functions failed"
	[ -d /sys/kernel/config/usb_gadget ] || mount -t configfs none /sys/kernel/config
	echo "uptime $(uptime_s): modules loaded"
	# shellcheck source=tests/vm/guest/gadget.sh
	. "$G/gadget.sh"
	for spec in ss:sourcesink lb:loopback kbd:hid; do
		gadget_add "${spec%%:*}" "${spec#*:}" || echo "ERROR: gadget_add $spec failed"
		echo "uptime $(uptime_s): gadget_add $spec done"
	done
	gadget_plug ss lb kbd || echo "ERROR: gadget_plug ss lb kbd failed"
	echo "uptime $(uptime_s): setup done"
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		read -r v <"$d/idVendor"
		read -r p <"$d/idProduct"
		read -r sp <"$d/speed"
		pr=""
		read -r pr <"$d/product" 2>/dev/null || true
		printf '%s %s:%s %s Mb/s %s\n' "${d##*/}" "$v" "$p" "$sp" "$pr"
	done
} >"$R/setup.log" 2>&1
echo "guest_uptime_after_setup=$(uptime_s)" >>"$R/boot.txt"

# --- cases ---------------------------------------------------------------------------------
for name in "${CASES[@]}"; do
	f=$X/cases/$name.sh
	t=$CASE_TIMEOUT
	if [ -f "$f" ]; then
		while read -r line; do
			if [[ $line =~ ^#\ *timeout:\ *([0-9]+) ]]; then
				t=${BASH_REMATCH[1]}
				break
			fi
		done <"$f"
	fi
	echo "zcusb-vmtest: case $name (timeout ${t}s) at uptime $(uptime_s)"
	mkdir -p "/tmp/case-$name"
	start=${EPOCHREALTIME/./}
	if [ -f "$f" ]; then
		(cd "/tmp/case-$name" && exec timeout -k 5 "$t" bash "$f") </dev/null >"$R/$name.log" 2>&1
		rc=$?
	else
		echo "FAIL: case file $f missing in the guest" >"$R/$name.log"
		rc=1
	fi
	end=${EPOCHREALTIME/./}
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || echo "FAIL: case timed out after ${t}s (guest-side limit; '# timeout: N' in the case raises it)" >>"$R/$name.log"
	us=$((end - start))
	printf '%d.%02d\n' $((us / 1000000)) $((us % 1000000 / 10000)) >"$R/$name.time"
	echo "$rc" >"$R/$name.rc"
	echo "zcusb-vmtest: case $name rc=$rc ($((us / 1000000)) s)"
	sync "$R" 2>/dev/null || sync
done

echo "guest_uptime_at_test_end=$(uptime_s)" >>"$R/boot.txt"
dmesg >"$R/dmesg.txt" 2>&1
journalctl -b --no-pager -o short-monotonic >"$R/journal.txt" 2>&1
echo "ok" >"$R/run.done"
sync
exit 0
