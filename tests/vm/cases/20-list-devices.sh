#!/bin/bash
# Root's view of the devices, over busctl and zcusbctl: the gadgets on dummy_hcd and QEMU's
# xHCI devices with the right ids, bus numbers, addresses and speeds.
# timeout: 120
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"

ensure_zcusbd
need_zcusbctl

# Expected devices from sysfs: "VID PID BUS ADDR SPEEDNAME MBPS SYSFSDIR"
expect=()
for d in /sys/bus/usb/devices/*; do
	[ -f "$d/idVendor" ] || continue
	case "$(<"$d/idVendor"):$(<"$d/idProduct")" in
	0525:a4a0 | 0525:a4a1 | 1d6b:0104 | 46f4:0001 | 0627:0001)
		expect+=("$(<"$d/idVendor") $(<"$d/idProduct") $(<"$d/busnum") $(<"$d/devnum") $(speed_name "$(<"$d/speed")") $(<"$d/speed") $d")
		;;
	esac
done
[ ${#expect[@]} -eq 5 ] || fail "expected 5 test devices in sysfs, found ${#expect[@]}: ${expect[*]} (see setup.log)"
printf '   expect: %s\n' "${expect[@]}"

step "busctl ListDevices"
busctl --system --json=short call org.zcusb1 /org/zcusb1 org.zcusb1.Manager ListDevices >/tmp/ld.json ||
	fail "ListDevices failed"
py - /tmp/ld.json "${expect[@]}" <<'PY' || fail "ListDevices does not match sysfs (see above)"
import json, sys
reply = json.load(open(sys.argv[1]))
devs = reply["data"][0]
print("   ListDevices: %d devices" % len(devs))
for d in devs:
    print("     %s %04x:%04x bus %d addr %d %r %r %r" % tuple(d))
bad = 0
for e in sys.argv[2:]:
    vid, pid, bus, addr, _speed, _mbps, _sysfs = e.split()
    hits = [d for d in devs if d[1] == int(vid, 16) and d[2] == int(pid, 16)]
    if len(hits) != 1:
        print("FAIL: %s:%s appears %d times in ListDevices" % (vid, pid, len(hits))); bad = 1; continue
    o, _, _, b, a = hits[0][:5]
    if (b, a) != (int(bus), int(addr)):
        print("FAIL: %s:%s at bus %d addr %d, sysfs says %s:%s" % (vid, pid, b, a, bus, addr)); bad = 1
    if o != "/org/zcusb1/device/usb%s_%s" % (bus, addr):
        print("FAIL: %s:%s object %s, expected /org/zcusb1/device/usb%s_%s" % (vid, pid, o, bus, addr)); bad = 1
sys.exit(bad)
PY

step "zcusbctl list --json"
zcusbctl list --json >/tmp/list.json || fail "zcusbctl list --json exited $?"
py - /tmp/list.json "${expect[@]}" <<'PY' || fail "zcusbctl list --json does not match sysfs (see above)"
import json, sys
devs = json.load(open(sys.argv[1]))
assert isinstance(devs, list), "not a JSON array"
bad = 0
for e in sys.argv[2:]:
    vid, pid, bus, addr, speed, mbps, sysfs = e.split()
    hits = [d for d in devs if d.get("vendor_id") == vid and d.get("product_id") == pid]
    if len(hits) != 1:
        print("FAIL: %s:%s appears %d times in zcusbctl list --json" % (vid, pid, len(hits))); bad = 1; continue
    d = hits[0]
    print("   %s:%s %s speed=%s/%s port=%s product=%r" % (vid, pid, d.get("object"), d.get("speed"),
          d.get("speed_mbps"), d.get("port_path"), d.get("product")))
    want = {"bus": int(bus), "address": int(addr), "speed": speed,
            "object": "/org/zcusb1/device/usb%s_%s" % (bus, addr),
            "port_path": sysfs.rsplit("/", 1)[1]}
    for k, v in want.items():
        if d.get(k) != v:
            print("FAIL: %s:%s %s is %r, expected %r" % (vid, pid, k, d.get(k), v)); bad = 1
    if d.get("speed_mbps") != int(float(mbps)) and speed != "low":
        print("FAIL: %s:%s speed_mbps is %r, expected %s" % (vid, pid, d.get("speed_mbps"), mbps)); bad = 1
    if "interfaces" in d:
        print("FAIL: list entries must not carry \"interfaces\" (client/CLI.md)"); bad = 1
ss = [d for d in devs if d.get("vendor_id") == "0525" and d.get("product_id") == "a4a0"]
if ss and (ss[0].get("serial") != "zcusb-ss" or ss[0].get("manufacturer") != "zcusb test"):
    print("FAIL: SourceSink strings %r/%r, expected 'zcusb test'/'zcusb-ss'" % (ss[0].get("manufacturer"), ss[0].get("serial"))); bad = 1
sys.exit(bad)
PY

step "zcusbctl list (plain)"
zcusbctl list >/tmp/list.txt || fail "zcusbctl list exited $?"
cat /tmp/list.txt
read -r b a < <(gadget_busaddr ss)
line=$(printf '%03d:%03d' "$b" "$a")
grep -E "^$line +0525:a4a0 +high +/org/zcusb1/device/usb${b}_${a}( |$)" /tmp/list.txt >/dev/null ||
	fail "plain list has no line '$line  0525:a4a0  high  /org/zcusb1/device/usb${b}_${a} ...'"

step "zcusbctl info on the SourceSink (interfaces and endpoints)"
obj=$(gadget_object ss)
zcusbctl info --json "$obj" >/tmp/info.json 2>/tmp/info.err || {
	cat /tmp/info.err
	fail "zcusbctl info --json $obj exited non-zero"
}
py - /tmp/info.json <<'PY' || fail "zcusbctl info --json of the SourceSink is wrong (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
ifs = d.get("interfaces") or []
print("   interfaces: " + json.dumps(ifs)[:400])
alt0 = [i for i in ifs if i.get("number") == 0 and i.get("alt_setting") == 0]
if not alt0:
    sys.exit("FAIL: no interface 0 alt 0")
eps = {(e["address"], e["type"], e["direction"], e["max_packet_size"]) for e in alt0[0]["endpoints"]}
want = {(0x81, "bulk", "in", 512), (0x02, "bulk", "out", 512)}
if not want <= eps:
    sys.exit("FAIL: interface 0 endpoints %r lack bulk IN 0x81 / OUT 0x02 of 512 bytes" % sorted(eps))
if alt0[0].get("class") != 255:
    sys.exit("FAIL: interface 0 class %r, expected 255 (vendor)" % alt0[0].get("class"))
for k in ("may_claim", "claimable_interfaces"):
    if k not in d:
        sys.exit("FAIL: info lacks %r" % k)
PY
echo "PASS"
