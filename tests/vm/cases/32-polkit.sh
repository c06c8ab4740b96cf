#!/bin/bash
# polkit decides claims of an interface marked ZCUSB_POLKIT=1 that udev policy grants nobody
# (dbus/API.md "polkit"): the real polkitd, the shipped org.zcusb1.policy action, and an
# administrator's JavaScript rule in /etc/polkit-1/rules.d that grants user zcpk1 and denies
# zcpk2 on the SourceSink gadget (0525:a4a0), matched by the details zcusbd passes. zcpk3, whom
# no rule names, gets the action's defaults: no active session here, so no. The interface stays
# visible to all three (they may ask); zcusbd goes on serving throughout.
# timeout: 240
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

PK_RULE=/etc/polkit-1/rules.d/50-zcusb-vmtest.rules
UDEV_RULE=/etc/udev/rules.d/71-zcusb-vm-polkit.rules
USERS=(zcpk1 zcpk2 zcpk3)

ss_dir() {
	data_sysfs_first 0525:a4a0
}

cleanup() {
	local u d
	rm -f "$PK_RULE" "$UDEV_RULE"
	udevadm control --reload || true
	if d=$(ss_dir); then udevadm trigger --action=change --settle "$d" || true; fi
	for u in "${USERS[@]}"; do userdel "$u" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

need_zcusbctl
ensure_zcusbd
[ -x /usr/lib/polkit-1/polkitd ] || fail "polkitd is not installed on the host image (tests/vm/packages.txt lists polkitd)"
[ -f /usr/share/polkit-1/actions/org.zcusb1.policy ] ||
	fail "org.zcusb1.policy is not installed in /usr/share/polkit-1/actions (meson install of polkit/)"
for u in "${USERS[@]}"; do id "$u" >/dev/null 2>&1 || useradd -M -N "$u" || fail "useradd $u failed"; done

step "an administrator's rule: zcpk1 yes, zcpk2 no, on 0525:a4a0 interface 0 (matched by details)"
mkdir -p "${PK_RULE%/*}"
cat >"$PK_RULE" <<'JS'
polkit.addRule(function(action, subject) {
	if (action.id != "org.zcusb1.claim")
		return polkit.Result.NOT_HANDLED;
	// polkitd --no-debug drops polkit.log(): the journal gets the line through logger.
	try {
		polkit.spawn(["/usr/bin/logger", "-t", "zcusb-vmtest", subject.user + " asks for " +
			      action.lookup("vendor_id") + ":" + action.lookup("product_id") + " interface " +
			      action.lookup("interface") + " (" + action.lookup("product") + ", class " +
			      action.lookup("interface_class") + ", serial " + action.lookup("serial") +
			      ", devpath " + action.lookup("devpath") + ") from " + action.lookup("program")]);
	} catch (e) {
		polkit.log("zcusb-vmtest: logger failed: " + e);
	}
	if (action.lookup("vendor_id") == "0525" && action.lookup("product_id") == "a4a0" &&
	    action.lookup("interface") == "0") {
		if (subject.user == "zcpk1")
			return polkit.Result.YES;
		if (subject.user == "zcpk2")
			return polkit.Result.NO;
	}
	return polkit.Result.NOT_HANDLED;
});
JS
chmod 644 "$PK_RULE"
# polkitd is D-Bus activated by zcusbd's first question; if it already runs it reloads the
# rules on its own (inotify), but a restart makes sure.
systemctl try-restart polkit.service || true

step "udev: ZCUSB_ENABLE=1 ZCUSB_POLKIT=1 on 0525:a4a0, no ZCUSB_ALLOW_*"
printf 'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0525", ATTR{idProduct}=="a4a0", ENV{ZCUSB_ENABLE}="1", ENV{ZCUSB_POLKIT}="1"\n' >"$UDEV_RULE"
run udevadm control --reload
ss=$(ss_dir) || fail "the SourceSink gadget 0525:a4a0 is not plugged (setup.log)"
run udevadm trigger --action=change --settle "$ss"
[[ $'\n'$(udevadm info -q property "$ss")$'\n' == *$'\n'ZCUSB_POLKIT=1$'\n'* ]] || fail "udev did not apply $UDEV_RULE to $ss"
sees() { run_as "$1" zcusbctl list 2>/dev/null | grep -q ' 0525:a4a0 '; }
wait_until 20 "zcpk3 to see 0525:a4a0 (polkit may grant it)" sees zcpk3

step "zcpk1: granted by the rule, a read moves data"
journal_mark
t0=$(date +%s%N)
run_as zcpk1 zcusbctl read 0525:a4a0 -i 0 -e 0x81 --bytes 64K >/tmp/pk1.out 2>/tmp/pk1.err ||
	fail "zcpk1's read failed (exit $?): $(cat /tmp/pk1.err)"
note "zcpk1: $(cat /tmp/pk1.out) ($(( ($(date +%s%N) - t0) / 1000000 )) ms with polkitd's first start)"
grep -q '^65536 bytes in' /tmp/pk1.out || fail "zcpk1's read did not move 65536 bytes: $(cat /tmp/pk1.out)"
journal_wait 10 'polkit: authorized for .* interface 0 of /org/zcusb1/device/'
journal_wait 10 'claimed by .*uid '"$(id -u zcpk1)"

step "zcpk2: denied by the rule -> AccessDenied naming polkit, exit 4"
set +e
run_as zcpk2 zcusbctl read 0525:a4a0 -i 0 -e 0x81 --bytes 64K >/tmp/pk2.out 2>/tmp/pk2.err
rc=$?
set -e
note "zcpk2: exit $rc: $(cat /tmp/pk2.err)"
[ $rc = 4 ] || fail "zcpk2's read exited $rc, expected 4 (access denied)"
grep -q 'polkit refused action org.zcusb1.claim' /tmp/pk2.err || fail "zcpk2's error does not name polkit's refusal"

step "zcpk3: no rule, the action's defaults (allow_any=no) -> denied, also with --interactive"
for flag in "" --interactive; do
	set +e
	# shellcheck disable=SC2086 # an empty flag is no argument
	run_as zcpk3 zcusbctl $flag read 0525:a4a0 -i 0 -e 0x81 --bytes 4K >/tmp/pk3.out 2>/tmp/pk3.err
	rc=$?
	set -e
	note "zcpk3 ${flag:-(not interactive)}: exit $rc: $(cat /tmp/pk3.err)"
	[ $rc = 4 ] || fail "zcpk3's read ${flag} exited $rc, expected 4"
done

step "what the rule saw (its logger lines), and zcusbd still serves"
rule_lines() { journalctl -b -t zcusb-vmtest --no-pager -o cat; }
wait_until 10 "the rule's line for zcpk2 in the journal" sh -c 'journalctl -b -t zcusb-vmtest --no-pager -o cat | grep -q "^zcpk2 asks"'
rule_lines | sed 's/^/   rule: /'
rule_lines | grep -q "^zcpk1 asks for 0525:a4a0 interface 0 (.*, class ff, serial .*, devpath [0-9-]*) from " ||
	fail "the rule did not see the details zcusbd passes (vendor_id, product_id, interface, product, class, serial, devpath, program)"
run systemctl is-active zcusbd.service
echo "PASS"
