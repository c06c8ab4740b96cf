#!/bin/bash
# zcusbd under systemd with the shipped unit: start, stop, then D-Bus activation.
# timeout: 90
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

need_zcusbd
need_busname

step "systemctl start zcusbd"
run systemctl cat zcusbd.service | head -n 3
if ! run systemctl start zcusbd.service; then
	unit_journal zcusbd.service
	fail "systemctl start zcusbd.service failed"
fi
state=$(systemctl is-active zcusbd.service || true)
note "state: $state"
[ "$state" = active ] || { unit_journal zcusbd.service; fail "zcusbd.service is '$state' after start, expected active"; }
run busctl --system status org.zcusb1 --no-pager | grep -E '^(PID|Comm|Unit)=' ||
	fail "org.zcusb1 is not on the bus while zcusbd.service is active"

step "systemctl stop zcusbd"
run systemctl stop zcusbd.service || fail "systemctl stop zcusbd.service failed"
state=$(systemctl is-active zcusbd.service || true)
[ "$state" = inactive ] || fail "zcusbd.service is '$state' after stop, expected inactive"
result=$(systemctl show -P Result zcusbd.service)
[ "$result" = success ] || { unit_journal zcusbd.service; fail "zcusbd.service Result=$result after stop, expected success"; }

step "D-Bus activation by a method call"
out=$(run busctl --system --timeout=60 call org.zcusb1 /org/zcusb1 org.zcusb1.Manager ListDevices 2>&1) || {
	echo "$out"
	unit_journal zcusbd.service
	fail "ListDevices did not activate zcusbd (see above; dbus/org.zcusb1.service with SystemdService=zcusbd.service installed?)"
}
echo "$out" | cut -c1-200
state=$(systemctl is-active zcusbd.service || true)
[ "$state" = active ] || fail "zcusbd.service is '$state' after D-Bus activation, expected active"
echo "PASS"
