#!/bin/bash
# Runs last: zcusbd stops cleanly, logged nothing at err or worse this boot, and the kernel
# logged no WARN/BUG/Oops/Call Trace during the whole run.
# timeout: 90
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

ensure_zcusbd
step "systemctl stop zcusbd"
run systemctl stop zcusbd.service || fail "systemctl stop zcusbd.service failed"
state=$(systemctl is-active zcusbd.service || true)
result=$(systemctl show -P Result zcusbd.service)
status=$(systemctl show -P ExecMainStatus zcusbd.service)
note "state=$state Result=$result ExecMainStatus=$status"
[ "$state" = inactive ] || fail "zcusbd.service is '$state' after stop"
[ "$result" = success ] || fail "zcusbd.service Result=$result (expected success: clean exit on SIGTERM)"

step "zcusbd journal this boot at priority err or worse"
journalctl -b --no-pager -q -o short-monotonic -u zcusbd.service -p err >/tmp/err.txt 2>&1 || true
journalctl -b --no-pager -q -o short-monotonic _COMM=zcusbd -p err >>/tmp/err.txt 2>&1 || true
if [ -s /tmp/err.txt ]; then
	sort -u /tmp/err.txt
	fail "zcusbd logged at err or worse this boot (above)"
fi
note "none"

step "kernel log"
dmesg >/tmp/dmesg.txt
if grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection fault|kernel BUG' /tmp/dmesg.txt >/tmp/bad.txt; then
	grep -B 5 -A 25 -E 'WARNING:|BUG:|Oops|Call Trace' /tmp/dmesg.txt | head -n 80
	fail "the kernel logged $(wc -l </tmp/bad.txt) WARN/BUG/Oops/Call Trace line(s) (above; full log in dmesg.txt)"
fi
note "clean"
echo "PASS"
