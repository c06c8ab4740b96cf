#!/bin/bash
# Hotplug: `zcusbctl monitor --json` reports the SourceSink's removal and its return (under a
# new address, so a new object).
# timeout: 120
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

ensure_zcusbd
need_zcusbctl
old=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
note "SourceSink is $old"

step "start zcusbctl monitor --json"
zcusbctl monitor --json >/tmp/mon.out 2>/tmp/mon.err &
mon=$!
stop_monitor() { kill "$mon" 2>/dev/null || true; }
trap stop_monitor EXIT
# Connected once its PID owns a name on the bus; it subscribes right after.
wait_until 30 "zcusbctl monitor on the bus" bash -c "busctl --system list --no-legend | awk '{print \$2}' | grep -qx $mon"
kill -0 "$mon" 2>/dev/null || fail "monitor exited early: $(cat /tmp/mon.err)"
sleep 1

step "unplug the SourceSink (UDC unbind)"
gadget_unplug ss || fail "gadget_unplug ss failed"
# A line of EVENT for OBJECT (checked in bash: a python start per poll is too slow here;
# the full JSON is validated once below).
has_event() { # EVENT OBJECT
	local line
	while read -r line; do
		[[ $line =~ \"event\":\ ?\"$1\" ]] && [[ $line == *\"object\":*\"$2\"* ]] && return 0
	done </tmp/mon.out
	return 1
}
for _ in $(seq 1 100); do has_event removed "$old" && break; sleep 0.2; done
cat /tmp/mon.out
has_event removed "$old" || fail "no {\"event\":\"removed\",\"object\":\"$old\"} line within 20 s"

step "replug"
gadget_plug ss || fail "gadget_plug ss failed"
new=$(gadget_object ss)
note "SourceSink is back as $new"
[ "$new" != "$old" ] || fail "replugged device kept object $old (a replug gets a new address)"
for _ in $(seq 1 100); do has_event added "$new" && break; sleep 0.2; done
cat /tmp/mon.out
has_event added "$new" || fail "no {\"event\":\"added\",\"object\":\"$new\"} line within 20 s"
py - /tmp/mon.out "$new" <<'PY' || fail "the added event lacks the device fields (client/CLI.md)"
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "added" and e.get("object") == sys.argv[2]:
        if (e.get("vendor_id"), e.get("product_id"), e.get("speed")) != ("0525", "a4a0", "high"):
            sys.exit("FAIL: added event %r: expected vendor_id 0525, product_id a4a0, speed high" % e)
        sys.exit(0)
PY

step "monitor ends on SIGTERM"
kill -TERM "$mon"
for _ in $(seq 1 50); do kill -0 "$mon" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$mon" 2>/dev/null; then fail "zcusbctl monitor still running 10 s after SIGTERM"; fi
set +e
wait "$mon"
rc=$?
set -e
note "monitor exit status $rc; stderr: $(cat /tmp/mon.err)"
trap - EXIT
echo "PASS"
