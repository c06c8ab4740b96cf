#!/bin/bash
# udev policy (udev/POLICY.md): a local rule opts the SourceSink in for one group; a member
# sees exactly that device, a non-member sees none and is refused `info` with AccessDenied.
# timeout: 150
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

ensure_zcusbd
need_zcusbctl
RULE=/etc/udev/rules.d/71-zcusb-test.rules
ss=$(gadget_sysfs ss) || fail "SourceSink gadget not plugged (setup.log)"
obj=$(gadget_object ss)
cleanup() {
	rm -f "$RULE"
	udevadm control --reload || true
	udevadm trigger --action=change --settle "$ss" || true
}
trap cleanup EXIT

step "users: zcin in group zcvmtest, zcout not"
getent group zcvmtest >/dev/null || run groupadd zcvmtest
id zcin >/dev/null 2>&1 || run useradd -M -N -G zcvmtest zcin
id zcout >/dev/null 2>&1 || run useradd -M -N zcout
run id zcin
run id zcout
as() { # USER CMD...
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

step "outsider and insider before the rule: nothing visible"
as zcin zcusbctl list --json >/tmp/in0.json || fail "zcusbctl list --json as zcin exited $?"
[ "$(</tmp/in0.json)" = "[]" ] || fail "zcin sees devices before any opt-in rule: $(cat /tmp/in0.json)"

step "local rule opting in 0525:a4a0 for group zcvmtest"
cat >"$RULE" <<'RULES'
SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0525", ATTR{idProduct}=="a4a0", \
  ENV{ZCUSB_ENABLE}="1", ENV{ZCUSB_ALLOW_GROUPS}="zcvmtest"
RULES
cat "$RULE"
run udevadm control --reload
run udevadm trigger --action=change --settle "$ss"
run udevadm settle
udevadm info -q property "$ss" | grep '^ZCUSB_' | sed 's/^/   /'
udevadm info -q property "$ss" | grep -qx 'ZCUSB_ENABLE=1' || fail "udev did not apply $RULE to $ss"

step "insider sees exactly the SourceSink"
seen() { as zcin zcusbctl list --json >/tmp/in.json && [ "$(</tmp/in.json)" != "[]" ]; }
for _ in $(seq 1 50); do seen && break; sleep 0.3; done
cat /tmp/in.json
py - /tmp/in.json "$obj" <<'PY' || fail "the group member's list is wrong (above)"
import json, sys
devs = json.load(open(sys.argv[1]))
got = [(d.get("object"), d.get("vendor_id"), d.get("product_id")) for d in devs]
want = [(sys.argv[2], "0525", "a4a0")]
if got != want:
    sys.exit("FAIL: zcin sees %r, expected only %r" % (got, want))
PY
as zcin zcusbctl info --json "$obj" >/tmp/in-info.json || fail "zcusbctl info $obj as zcin exited $?"
[ "$(json 'j["may_claim"]' </tmp/in-info.json)" = True ] || fail "zcin may not claim the SourceSink: $(cat /tmp/in-info.json)"

step "outsider sees nothing"
as zcout zcusbctl list --json >/tmp/out.json || fail "zcusbctl list --json as zcout exited $?"
cat /tmp/out.json
[ "$(</tmp/out.json)" = "[]" ] || fail "zcout (not in zcvmtest) sees devices: $(cat /tmp/out.json)"

step "outsider: zcusbctl info $obj -> exit 4, AccessDenied"
set +e
as zcout zcusbctl info "$obj" >/tmp/out-info.txt 2>/tmp/out-info.err
rc=$?
set -e
note "rc=$rc stderr: $(cat /tmp/out-info.err)"
[ $rc = 4 ] || fail "zcusbctl info as outsider exited $rc, expected 4 (access denied)"
grep -Eqi 'access ?denied' /tmp/out-info.err || fail "stderr does not say AccessDenied: $(cat /tmp/out-info.err)"
[ ! -s /tmp/out-info.txt ] || fail "zcusbctl info printed to stdout despite the refusal: $(cat /tmp/out-info.txt)"

step "root still sees everything"
[ "$(zcusbctl list --json | json 'len(j)')" -ge 5 ] || fail "root sees fewer than the 5 test devices"
echo "PASS"
