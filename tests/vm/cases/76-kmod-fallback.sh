#!/bin/bash
# zcusbd without a usable zcusb.ko falls back to usbfs, and says why. On the Loopback gadget, as
# an unprivileged client: (1) module not installed: backend usbfs, the same data checks as
# 75-kmod-backend pass; (2) module installed but zcusb-load.service masked (zcusbd itself may not
# load modules: ProtectKernelModules=yes): usbfs; (3) module loaded but binding fails (its allow
# list is full): the claim falls back to usbfs and the journal says why; (4) an ABI mismatch
# (the test-only parameter abi_version_override=2): fallback, the journal names both versions;
# with Backend=zcusb there is no fallback: the claim fails and points to the journal.
# The kernel logs no WARN/BUG/Oops.
# timeout: 360
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

SIZES=(1 511 512 513 4095 4096 65536 1M 4M)
FILLERS=() # names put on the module's allow list to fill it
sizes=$(vm_tool zcusb-sizes)
need_zcusbctl

cleanup() {
	local n
	systemctl unmask zcusb-load.service >/dev/null 2>&1 || true
	if kmod_loaded; then
		for n in "${FILLERS[@]}"; do echo "-$n" >"$KMOD_DRV/allow" || true; done
		echo 0 >/sys/module/zcusb/parameters/abi_version_override || true
	fi
	data_revoke
	kmod_uninstall
	zcusbd_config_clear
	zcusbd_restart
}
trap cleanup EXIT
kmsg_mark

status_is() { # BACKEND MODULE_VERSION
	zcusbctl status --json >/tmp/status.json || fail "zcusbctl status --json exited $?"
	cat /tmp/status.json
	[ "$(json 'j["backend"]' </tmp/status.json)" = "$1" ] || fail "zcusbctl status: backend is not $1"
	[ "$(json 'j["module_version"]' </tmp/status.json)" = "$2" ] || fail "zcusbctl status: module_version is not '$2'"
}
# The claim is not left bound to zcusb, nor on its allow list, after a failed zcusb.ko attempt.
nothing_left() {
	local intf
	intf=$(lb_intf)
	[ "$(intf_driver "$intf")" != zcusb ] || fail "$intf stayed bound to zcusb after the fallback"
	if grep -qx "$intf" "$KMOD_DRV/allow"; then fail "$intf stayed on zcusb's allow list after the fallback"; fi
}

ensure_zcusbd
data_users
data_grant 0525:a4a1

step "zcusb.ko not installed: backend usbfs, every size byte for byte"
kmod_uninstall
journal_mark
zcusbd_restart
if kmod_loaded; then fail "zcusb.ko is loaded although it is not installed"; fi
note "zcusb-load.service: Result=$(systemctl show -P Result zcusb-load.service) (modprobe -q failed, ignored by ExecStart=-)"
status_is usbfs ""
journal_wait 10 'Not using the zcusb.ko backend'
grep 'zcusb.ko' /tmp/journal-since.txt | sed 's/^/   journal: /'
run_as zcin "$sizes" --expect-backend usbfs verify "${SIZES[@]}" || fail "zcusb-sizes verify over usbfs failed (above)"

step "zcusb.ko installed but zcusb-load.service masked: zcusbd (no CAP_SYS_MODULE) stays on usbfs"
kmod_install
run systemctl mask zcusb-load.service
journal_mark
zcusbd_restart
if kmod_loaded; then fail "zcusb.ko got loaded although zcusb-load.service is masked"; fi
status_is usbfs ""
journal_wait 10 'Not using the zcusb.ko backend'
grep 'zcusb.ko' /tmp/journal-since.txt | sed 's/^/   journal: /'
grep -q 'Not using the zcusb.ko backend.*zcusb-load' /tmp/journal-since.txt ||
	fail "zcusbd's reason does not point at zcusb-load.service (it cannot load modules itself)"
run_as zcin "$sizes" --expect-backend usbfs verify 4096 1M || fail "verify over usbfs failed (above)"
run systemctl unmask zcusb-load.service

step "zcusb.ko loaded, but binding fails (allow list full): the claim falls back to usbfs, the journal says why"
zcusbd_restart
kmod_loaded || fail "zcusb-load.service did not load zcusb.ko"
status_is zcusb.ko "$(</sys/module/zcusb/version)"
for ((i = 0; i < 300; i++)); do
	n="9-9.$i:1.0"
	echo "+$n" 2>/dev/null >"$KMOD_DRV/allow" || break
	FILLERS+=("$n")
done
note "allow list full after ${#FILLERS[@]} names (the next one: ENOSPC)"
[ ${#FILLERS[@]} -lt 300 ] || fail "the allow list took 300 names (limit 256 in kmod/README.md)"
journal_mark
run_as zcin "$sizes" --expect-backend usbfs verify 4096 65536 || fail "the claim did not fall back to usbfs (above)"
journal_wait 10 'falling back to usbfs'
grep -E 'zcusb|usbfs' /tmp/journal-since.txt | sed 's/^/   journal: /'
grep -q 'No space left on device' /tmp/journal-since.txt || fail "the fallback line does not name the cause (ENOSPC)"
nothing_left
for n in "${FILLERS[@]}"; do echo "-$n" >"$KMOD_DRV/allow"; done
FILLERS=()
run_as zcin "$sizes" --expect-backend zcusb.ko verify 4096 || fail "with room on the allow list the claim is not on zcusb.ko again"

step "ABI mismatch (abi_version_override=2): fallback to usbfs, the journal names both versions"
kmod_param abi_version_override 2
journal_mark
run_as zcin "$sizes" --expect-backend usbfs verify 4096 1M || fail "the claim did not fall back to usbfs (above)"
journal_wait 10 'falling back to usbfs'
grep -E 'zcusb|usbfs|ABI' /tmp/journal-since.txt | sed 's/^/   journal: /'
grep -q 'ABI 2, zcusbd speaks 1' /tmp/journal-since.txt || fail "the journal does not name the ABI versions"
nothing_left

step "Backend=zcusb and the ABI mismatch: no fallback, the claim fails and points to the journal"
zcusbd_config Backend=zcusb
zcusbd_restart
journal_mark
set +e
run_as zcin "$sizes" verify 4096 >/tmp/strict.out 2>&1
rc=$?
set -e
sed 's/^/   /' /tmp/strict.out
[ $rc != 0 ] || fail "with Backend=zcusb a claim succeeded although zcusbd cannot use the module"
grep -q 'journal' /tmp/strict.out || fail "the claim's error does not point to zcusbd's journal"
# client/CLI.md: exit 4 is "access denied"; a failure inside zcusbd is 1 ("other failure").
set +e
run_as zcin zcusbctl read 0525:a4a1 --interface 0 --endpoint 0x81 --bytes 512 --timeout 500 >/tmp/ctl.out 2>&1
ctl_rc=$?
set -e
note "zcusbctl read meanwhile: exit $ctl_rc: $(cat /tmp/ctl.out)"
journal_wait 10 'ABI 2, zcusbd speaks 1'
nothing_left
kmod_param abi_version_override 0
run_as zcin "$sizes" --expect-backend zcusb.ko verify 4096 65536 || fail "Backend=zcusb with the right ABI failed (above)"

step "kernel log"
kmsg_check

step "zcusbctl's exit status when zcusbd cannot claim (Backend=zcusb, ABI mismatch)"
# zcusbd answers org.freedesktop.DBus.Error.Failed on purpose ("not the caller's fault"); sd-bus
# turns that name into -EACCES, which libzcusb passes on: the user is told "access denied".
[ "$ctl_rc" = 1 ] || fail "zcusbctl exited $ctl_rc (4 = access denied) for a failure inside zcusbd; expected 1 (other failure, client/CLI.md)"
echo "PASS"
