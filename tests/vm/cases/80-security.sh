#!/bin/bash
# The shipped unit's sandboxing: systemd-analyze security exposure below 4.0.
# timeout: 90
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

need_zcusbd
step "systemd-analyze security zcusbd.service"
systemd-analyze security --no-pager zcusbd.service >/tmp/sec.txt 2>&1 || true
cat /tmp/sec.txt
level=$(sed -n 's/.*Overall exposure level for zcusbd.service: *\([0-9][0-9.]*\).*/\1/p' /tmp/sec.txt)
[ -n "$level" ] || fail "no 'Overall exposure level for zcusbd.service' in systemd-analyze output"
note "exposure: $level"
awk -v l="$level" 'BEGIN { exit !(l < 4.0) }' || fail "exposure level $level is not below 4.0"
echo "PASS"
