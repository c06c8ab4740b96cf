# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tier-2 tests of zcusbd itself, without a data path: listing and describing
devices (zcusbctl and D-Bus), bad device arguments, the ObjectManager, hotplug,
per-client limits, signal scope, policy, configuration errors and SIGTERM.

zcusbtest.py imports this module and calls register(itself): the tests use its
harness (World, the private bus, logging, checks) as h and land in its registry.
"""

import json
import os
import re
import signal
import sys
import time

import fixtures
import registry

h = None  # the zcusbtest module, set by register()


# ---------------------------------------------------------------------------
# expectations from fixtures

def expected_list_entry(d):
    """The zcusbctl --json DEVICE object (without interfaces) for a fixture."""
    return {
        "object": d.object_path, "bus": d.busnum, "address": d.devnum,
        "vendor_id": f"{d.vid:04x}", "product_id": f"{d.pid:04x}",
        "manufacturer": d.manufacturer, "product": d.product, "serial": d.serial,
        "speed": d.speed_name, "speed_mbps": d.speed_mbps, "port_path": d.sysname,
        "sysfs_path": d.sys_syspath, "device_class": d.cls,
    }


def expected_listdevices_tuple(d):
    return (d.object_path, d.vid, d.pid, d.busnum, d.devnum, d.manufacturer, d.product, d.serial)


EP_TYPES = {0: {"control"}, 1: {"isochronous", "iso"}, 2: {"bulk"}, 3: {"interrupt"}}


def check_json_interfaces(got, d, what):
    want = d.expected_interfaces()
    h.check(isinstance(got, list), f"{what}: interfaces is not a list: {got!r}")
    h.check_eq(len(got), len(want), f"{what}: number of (interface, alt) entries")
    got_sorted = sorted(got, key=lambda i: (i.get("number"), i.get("alt_setting")))
    for g, (num, alt, cls, sub, proto, driver, eps) in zip(got_sorted, want):
        w = f"{what} interface {num} alt {alt}"
        h.check_eq((g.get("number"), g.get("alt_setting"), g.get("class"), g.get("subclass"),
                    g.get("protocol"), g.get("driver")), (num, alt, cls, sub, proto, driver),
                   f"{w} (number, alt_setting, class, subclass, protocol, driver)")
        geps = g.get("endpoints")
        h.check(isinstance(geps, list), f"{w}: endpoints missing: {g!r}")
        h.check_eq(len(geps), len(eps), f"{w}: number of endpoints")
        for ge, (addr, attrs, mps, interval) in zip(geps, eps):
            h.check_eq((ge.get("address"), ge.get("max_packet_size"), ge.get("interval")),
                       (addr, mps, interval), f"{w} endpoint {addr:#04x} (address, max_packet_size, interval)")
            h.check_in(ge.get("type"), EP_TYPES[attrs & 3], f"{w} endpoint {addr:#04x} type")
            h.check_eq(ge.get("direction"), "in" if addr & 0x80 else "out",
                       f"{w} endpoint {addr:#04x} direction")


def check_dbus_device(props, d, what):
    want = {
        "VendorId": d.vid, "ProductId": d.pid, "DeviceVersion": d.bcd_device,
        "Manufacturer": d.manufacturer, "Product": d.product, "Serial": d.serial,
        "DeviceClass": d.cls, "DeviceSubClass": d.subcls, "DeviceProtocol": d.proto,
        "Speed": d.speed_name, "BusNumber": d.busnum,
        "DeviceAddress": d.devnum, "PortPath": d.sysname, "SysfsPath": d.sys_syspath,
        "ActiveConfiguration": d.active_config, "SpeedKbps": d.speed_kbps,
    }
    for k, v in want.items():
        h.check(k in props, f"{what}: property {k} missing (have {sorted(props)})")
        h.check_eq(props[k], v, f"{what}: property {k}")
    h.check(("Interfaces" in props), f"{what}: property Interfaces missing")
    got = sorted((n, a, c, s, p, drv, [tuple(e) for e in eps])
                 for (n, a, c, s, p, drv, eps) in props["Interfaces"])
    want_if = sorted((n, a, c, s, p, drv, [tuple(e) for e in eps])
                     for (n, a, c, s, p, drv, eps) in d.expected_interfaces())
    h.check_eq(got, want_if, f"{what}: property Interfaces")


# ---------------------------------------------------------------------------
# test registry

_TESTS, test = registry.collector()


def register(harness):
    global h
    h = harness
    harness.TESTS.update(_TESTS)


@test("list")
def t_list():
    devs = fixtures.standard_devices()
    with h.World(devs) as w:
        r = w.ctl("list", "--json")
        got = r.json()
        h.check(isinstance(got, list), f"list --json is not an array: {got!r}")
        h.check_eq(len(got), 3, "number of devices in list --json")
        by_obj = {e.get("object"): e for e in got}
        for d in devs:
            h.check(d.object_path in by_obj, f"{d.object_path} missing from list --json: {list(by_obj)}")
            e = by_obj[d.object_path]
            h.check("interfaces" not in e, f"list --json entry has 'interfaces': {e!r}")
            for k, v in expected_list_entry(d).items():
                h.check_eq(e.get(k), v, f"list --json {d.object_path} field {k!r}")

        # --json before the command must work too (zcusbctl [--json] COMMAND)
        h.check_eq(w.ctl("--json", "list").json(), got, "zcusbctl --json list vs list --json")
        # --bus-address instead of DBUS_SYSTEM_BUS_ADDRESS
        env = w.bus.env()
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={w.workdir}/nonexistent"
        r = h.run([h.exe("ZCUSBCTL"), f"--bus-address={w.bus.address}", "list", "--json"], env=env)
        h.check_eq((r.rc, r.json() if r.rc == 0 else None), (0, got), "zcusbctl --bus-address=ADDR list --json")

        r = w.ctl("list")
        lines = [l for l in r.out.split("\n") if l.strip()]
        h.check_eq(len(lines), 4, "plain list: header + 3 rows")
        h.check(re.match(r"^BUS:ADDR\s+VID:PID\s+SPEED\s+OBJECT\s+PRODUCT\s*$", lines[0]),
                f"plain list header: {lines[0]!r}")
        for d in devs:
            row = [l for l in lines[1:] if f" {d.object_path} " in l + " "]
            h.check(len(row) == 1, f"plain list: no single row for {d.object_path}: {lines}")
            cols = row[0].split(None, 4)
            h.check_eq(cols[:4], [f"{d.busnum:03d}:{d.devnum:03d}", f"{d.vid:04x}:{d.pid:04x}",
                                  d.speed_name, d.object_path], f"plain list row {row[0]!r}")
            h.check_eq(cols[4].strip() if len(cols) > 4 else "", d.product, f"plain list row {row[0]!r} PRODUCT")

        r = w.busctl("--json=short", "call", h.BUS_NAME, h.MANAGER_PATH, h.MANAGER_IFACE, "ListDevices")
        j = r.json()
        h.check_eq(j.get("type"), "a(oqqqqsss)", "busctl ListDevices reply signature")
        got_bus = sorted(tuple(x) for x in j["data"][0])
        h.check_eq(got_bus, sorted(expected_listdevices_tuple(d) for d in devs), "busctl ListDevices")
        h.check_eq(w.list_devices(), got_bus, "python-dbus ListDevices vs busctl")

        # GetDevice(bus, addr) -> object
        for d in devs:
            h.check_eq(str(w.manager().GetDevice(h.dbus.UInt16(d.busnum), h.dbus.UInt16(d.devnum))),
                       d.object_path, f"GetDevice({d.busnum}, {d.devnum})")
        try:
            w.manager().GetDevice(h.dbus.UInt16(1), h.dbus.UInt16(99))
            raise h.TestFailure("GetDevice(1, 99) succeeded")
        except h.dbus.DBusException as e:
            h.check_eq(e.get_dbus_name(), "org.zcusb1.Error.NoSuchDevice", "GetDevice(1, 99) error")


@test("info")
def t_info():
    devs = fixtures.standard_devices(hub_props={"ZCUSB_ENABLE": "0"})
    hub, gz, kbd = devs
    with h.World(devs) as w:
        ref = w.ctl("info", "--json", "001:003").json()
        for k, v in expected_list_entry(gz).items():
            h.check_eq(ref.get(k), v, f"info --json 001:003 field {k!r}")
        check_json_interfaces(ref.get("interfaces"), gz, "info 001:003")
        alts = sorted((i["number"], i["alt_setting"]) for i in ref["interfaces"])
        h.check_eq(alts, [(0, 0), (0, 1)], "gadget interfaces (number, alt)")
        # root may claim whatever is not ZCUSB_ENABLE=0
        h.check_eq(ref.get("may_claim"), True, "info 001:003 may_claim (root)")
        h.check_eq(ref.get("claimable_interfaces"), [0], "info 001:003 claimable_interfaces (root)")

        for spec in ["1:3", "001:3", "0525:a4a0", f"0525:a4a0:{gz.serial}", gz.object_path,
                     "/sys/bus/usb/devices/1-1", gz.sys_syspath]:
            got = w.ctl("--json", "info", spec).json()
            h.check_eq(got, ref, f"info {spec} resolves to the same device")

        r = w.ctl("info", "001:003")
        h.check_in("Gadget Zero", r.out, "plain info output")
        h.check_in("0525", r.out, "plain info output")

        k = w.ctl("info", "--json", "001:004").json()
        for key, v in expected_list_entry(kbd).items():
            h.check_eq(k.get(key), v, f"info 001:004 field {key!r}")
        check_json_interfaces(k.get("interfaces"), kbd, "info 001:004")
        h.check_eq(k["interfaces"][0]["driver"], "usbhid", "HID interface driver")
        h.check_eq(k["interfaces"][0]["endpoints"],
                   [{"address": 0x81, "type": "interrupt", "direction": "in", "max_packet_size": 8,
                     "interval": 10}], "HID endpoints")
        h.check_eq(k.get("serial"), "", "HID serial (absent)")

        root_hub = w.ctl("info", "--json", "001:001").json()
        check_json_interfaces(root_hub.get("interfaces"), hub, "info 001:001")
        h.check_eq(root_hub.get("may_claim"), False, "root hub with ZCUSB_ENABLE=0: may_claim (root)")
        h.check_eq(root_hub.get("claimable_interfaces"), [], "root hub with ZCUSB_ENABLE=0: claimable")

        # the D-Bus properties carry the same facts
        for d in devs:
            check_dbus_device(w.device_props(d.object_path), d, d.object_path)


@test("bad-device")
def t_bad_device():
    with h.World() as w:
        cases = [
            ("zz:1", {2}), ("1:", {2}), (":3", {2}), ("", {2}), ("1:2:3", {2}),
            ("0001:0003", {3}),           # VID:PID form, no such device
            ("9999:1", {2}),              # neither BUS:ADDR (<=3 digits) nor VID:PID (4 hex)
            ("1234:12345", {2}), ("001:0003", {2}), ("1:-3", {2}),
            ("/org/zcusb1/device/nope", {2, 3}),
            ("/org/zcusb1/device/usb1_99", {3}),
            ("/org/zcusb1/device/usb1_3/../usb1_4", {2}),
            ("001:099", {3}), ("9:1", {3}),
            ("0525:a4a0:no-such-serial", {3}), ("dead:beef", {3}),
            ("/sys/bus/usb/devices/9-9", {3}), ("/sys/devices/nope", {3}),
            ("/sys/bus/usb/devices/1-1:1.0", {2, 3}),  # an interface, not a device
            ("/org/zcusb1", {2, 3}),
        ]
        bad = []
        for spec, codes in cases:
            r = w.ctl("info", spec, expect=None)
            ok = r.rc in codes and r.err.startswith("zcusbctl: ") and r.out == ""
            if not ok:
                bad.append(f"info {spec!r}: exit {r.rc} (want {sorted(codes)}), stdout {r.out!r}, "
                           f"stderr {r.err!r}")
        r = w.ctl("info", expect=None)
        if r.rc != 2 or not r.err.startswith("zcusbctl: "):
            bad.append(f"info without DEVICE: exit {r.rc}, stderr {r.err!r}")
        r = w.ctl("frobnicate", expect=None)
        if r.rc != 2 or not r.err.startswith("zcusbctl: "):
            bad.append(f"unknown command: exit {r.rc}, stderr {r.err!r}")
        r = w.ctl("--no-such-option", "list", expect=None)
        if r.rc != 2:
            bad.append(f"unknown option: exit {r.rc}, stderr {r.err!r}")
        # unreachable bus -> 5
        r = h.run([h.exe("ZCUSBCTL"), f"--bus-address=unix:path={w.workdir}/nonexistent", "list"],
                  env=w.bus.env())
        if r.rc != 5 or not r.err.startswith("zcusbctl: "):
            bad.append(f"unreachable bus: exit {r.rc} (want 5), stderr {r.err!r}")

        # the daemon keeps serving
        h.check_eq(len(w.ctl("list", "--json").json()), 3, "list after bad requests")
        h.check(w.daemon.p.poll() is None, "zcusbd died")
        h.check(not bad, "bad DEVICE handling:\n  " + "\n  ".join(bad))


def _check_managed_objects(w, devs):
    mo = w.managed_objects()
    for d in devs:
        h.check(d.object_path in mo, f"GetManagedObjects lacks {d.object_path}: {list(mo)}")
        h.check(h.DEVICE_IFACE in mo[d.object_path],
                f"{d.object_path} lacks {h.DEVICE_IFACE} in GetManagedObjects: {list(mo[d.object_path])}")
        check_dbus_device(mo[d.object_path][h.DEVICE_IFACE], d, f"GetManagedObjects {d.object_path}")
    extra = [p for p in mo if p.startswith("/org/zcusb1/device/") and
             p not in {d.object_path for d in devs}]
    h.check(not extra, f"GetManagedObjects has unexpected objects {extra}")


@test("managed-objects")
def t_managed_objects():
    devs = fixtures.standard_devices()
    with h.World(devs) as w:
        with h.soft("busctl tree"):
            r = w.busctl("tree", "--list", h.BUS_NAME)
            paths = set(r.out.split())
            for d in devs:
                h.check_in(d.object_path, paths, "busctl tree --list")
            h.check_in(h.MANAGER_PATH, paths, "busctl tree --list")
            r = w.busctl("tree", h.BUS_NAME)
            for d in devs:
                h.check_in(d.object_path.rsplit("/", 1)[1], r.out, "busctl tree")

        with h.soft("GetManagedObjects"):
            _check_managed_objects(w, devs)

        r = w.busctl("introspect", h.BUS_NAME, h.MANAGER_PATH)
        for m in ("ListDevices", "GetDevice", "DeviceAdded", "DeviceRemoved", "Backend", "Version"):
            h.check_in(m, r.out, "busctl introspect /org/zcusb1")
        r = w.busctl("introspect", h.BUS_NAME, devs[1].object_path, h.DEVICE_IFACE)
        for m in ("GetAccess", "VendorId", "Interfaces", "SysfsPath"):
            h.check_in(m, r.out, f"busctl introspect {devs[1].object_path}")
        r = w.busctl("get-property", h.BUS_NAME, devs[1].object_path, h.DEVICE_IFACE, "VendorId")
        h.check_eq(r.out.strip(), "q 1317", "busctl get-property VendorId")


@test("hotplug")
def t_hotplug():
    devs = fixtures.standard_devices()
    gz = devs[1]
    with h.World(devs) as w:
        sigs = h.SignalLog(w.bus.conn)
        mon = w.background([h.exe("ZCUSBCTL"), "monitor", "--json"])
        w.wait_subscribed(mon)
        mon_plain = w.background([h.exe("ZCUSBCTL"), "monitor"])
        w.wait_subscribed(mon_plain)

        new = fixtures.loopback_two_configs(devnum=5, port="3")
        w.tb.plug(new)
        h.wait_until(lambda: sigs.find("DeviceAdded", h.MANAGER_PATH,
                                       lambda e: e[2] == (new.object_path,)), 5, "DeviceAdded")
        h.wait_until(lambda: any('"added"' in l and new.object_path in l for l in mon.lines), 5,
                     "zcusbctl monitor --json to print the addition")
        h.wait_until(lambda: any(l.startswith("added") and new.object_path in l for l in mon_plain.lines),
                     5, "zcusbctl monitor to print the addition")
        h.wait_until(lambda: sigs.find("InterfacesAdded", h.MANAGER_PATH,
                                       lambda e: e[2][0] == new.object_path), 5, "InterfacesAdded")
        h.check_eq(len(sigs.find("DeviceAdded")), 1, "exactly one DeviceAdded for one plug")
        ev = json.loads(next(l for l in mon.lines if new.object_path in l))
        h.check_eq(ev.get("event"), "added", "monitor event")
        for k, v in expected_list_entry(new).items():
            h.check_eq(ev.get(k), v, f"monitor added event field {k!r}")
        plain = next(l for l in mon_plain.lines if new.object_path in l)
        h.check(re.match(rf"^added\s+{re.escape(new.object_path)}\s+0525:a4a4\s+Loopback Two Configs\s*$", plain),
                f"plain monitor line {plain!r}")
        h.check_eq(w.list_devices(), sorted(expected_listdevices_tuple(d) for d in devs + [new]),
                   "ListDevices after plug")
        # the active configuration is the SECOND one in `descriptors` (value 2)
        check_dbus_device(w.device_props(new.object_path), new, f"hot-plugged {new.object_path}")
        info = w.ctl("info", "--json", "001:005").json()
        check_json_interfaces(info["interfaces"], new, "info 001:005 (config 2 of 2)")

        # unplug
        w.tb.unplug(new)
        h.wait_until(lambda: sigs.find("DeviceRemoved", h.MANAGER_PATH,
                                       lambda e: e[2] == (new.object_path,)), 5, "DeviceRemoved")
        h.wait_until(lambda: any('"removed"' in l and new.object_path in l for l in mon.lines), 5,
                     "zcusbctl monitor --json to print the removal")
        h.wait_until(lambda: any(l.split() == ["removed", new.object_path] for l in mon_plain.lines), 5,
                     "zcusbctl monitor to print the removal")
        with h.soft("ObjectManager.InterfacesRemoved on unplug"):
            h.wait_until(lambda: sigs.find("InterfacesRemoved", h.MANAGER_PATH,
                                           lambda e: e[2][0] == new.object_path), 2, "InterfacesRemoved")
        ev = json.loads(next(l for l in mon.lines if '"removed"' in l))
        h.check_eq(ev, {"event": "removed", "object": new.object_path}, "monitor removed event")
        h.check_eq(w.list_devices(), sorted(expected_listdevices_tuple(d) for d in devs),
                   "ListDevices after unplug")
        try:
            obj = w.bus.conn.get_object(h.BUS_NAME, new.object_path)
            obj.GetAccess(dbus_interface=h.DEVICE_IFACE)
            raise h.TestFailure(f"GetAccess on removed {new.object_path} succeeded")
        except h.dbus.DBusException as e:
            h.check_eq(e.get_dbus_name(), "org.zcusb1.Error.NoSuchDevice", "GetAccess on a removed device")
        w.ctl("info", new.object_path, expect=3)

        # replug: the same device comes back with a new address -> a new object
        again = fixtures.loopback_two_configs(devnum=6, port="3")
        w.tb.plug(again)
        h.wait_until(lambda: sigs.find("DeviceAdded", h.MANAGER_PATH,
                                       lambda e: e[2] == (again.object_path,)), 5, "DeviceAdded (replug)")
        h.check(again.object_path != new.object_path, "replug gets a new object")
        w.ctl("info", new.object_path, expect=3)
        w.ctl("info", again.object_path)

        # interface driver bind / unbind -> PropertiesChanged(Interfaces) on the device
        before = len(sigs.find("PropertiesChanged", gz.object_path))
        w.tb.set_driver(gz, 0, "usbtest")

        def iface_change(e):
            iface, changed, invalidated = e[2]
            return iface == h.DEVICE_IFACE and ("Interfaces" in changed or "Interfaces" in invalidated)
        h.wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                     "PropertiesChanged(Interfaces) after bind")
        h.wait_until(lambda: all(i[5] == "usbtest" for i in w.device_props(gz.object_path)["Interfaces"]),
                     5, "Interfaces driver = usbtest")
        check_dbus_device(w.device_props(gz.object_path), gz, "after bind")
        h.check_eq([i["driver"] for i in w.ctl("info", "--json", "001:003").json()["interfaces"]],
                   ["usbtest", "usbtest"], "info drivers after bind")
        before = len(sigs.find("PropertiesChanged", gz.object_path, iface_change))
        w.tb.set_driver(gz, 0, None)
        h.wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                     "PropertiesChanged(Interfaces) after unbind")
        check_dbus_device(w.device_props(gz.object_path), gz, "after unbind")

        # a udev property of the interface changes (rules edited + udevadm trigger):
        # the interface opts out; PropertiesChanged(Interfaces) tells clients
        before = len(sigs.find("PropertiesChanged", gz.object_path, iface_change))
        w.tb.set_uevent_prop("/sys" + gz.interface_syspath(0), "ZCUSB_ENABLE", "0")
        w.tb.uevent("/sys" + gz.interface_syspath(0), "change")
        h.wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                     "PropertiesChanged(Interfaces) after an interface change event")
        i = w.ctl("info", "--json", "001:003").json()
        h.check_eq((i["may_claim"], i["claimable_interfaces"]), (False, []),
                   "root's access after the interface got ZCUSB_ENABLE=0")

        h.check_eq(len(sigs.find("DeviceRemoved")), 1, "exactly one DeviceRemoved")
        for b in (mon, mon_plain):
            h.check(b.p.poll() is None, f"{b.argv} exited early")
            h.check_eq(b.stop(signal.SIGINT), 0, f"{b.argv} exit code after SIGINT")
        w.bg.clear()
        sigs.close()


# A bus peer in a child process (as another uid): it holds N connections,
# makes the calls it is told, prints each answer and every signal it receives
# as a JSON line, and stays connected until it is stopped.
_PEER_SCRIPT = r"""
import dbus, dbus.mainloop.glib, json, sys
from gi.repository import GLib
a = json.loads(sys.argv[1])
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
conns = [dbus.bus.BusConnection(a["address"]) for _ in range(a["connections"])]
def out(*v):
    print(json.dumps(v), flush=True)
def on_signal(*args, **kw):
    out("signal", kw["member"], str(kw["path"]), json.dumps([str(x) for x in args])[:2000])
for i, c in enumerate(conns):
    if a.get("listen"):
        # what any peer may add: every signal from org.zcusb1
        c.add_signal_receiver(on_signal, sender_keyword="sender", path_keyword="path",
                              member_keyword="member", bus_name="org.zcusb1")
    for path, iface, method, sig, args in a["calls"]:
        try:
            c.call_blocking("org.zcusb1", path, iface, method, sig, args)
            out("ok", i, method)
        except dbus.DBusException as e:
            out("error", i, method, e.get_dbus_name())
out("ready")
GLib.MainLoop().run()
"""


def bus_peer(w, user, connections=1, calls=(), listen=False):
    """Start _PEER_SCRIPT as USER (an as_user() prefix, None = root) and wait
    for its calls to be answered. Returns the Background; .answers() parses."""
    params = json.dumps({"address": w.bus.address, "connections": connections, "listen": listen,
                         "calls": [list(c) for c in calls]})
    b = h.Background((user or []) + [sys.executable, "-c", _PEER_SCRIPT, params], env=w.bus.env())
    w.bg.append(b)
    h.wait_until(lambda: b.p.poll() is not None or '["ready"]' in b.lines, 30, f"bus peer {user} to be ready")
    h.check(b.p.poll() is None, f"bus peer {user} exited early ({b.p.returncode})")
    return b


def peer_events(b, kind):
    return [json.loads(l) for l in b.lines if l.startswith(f'["{kind}"')]


@test("client-limits")
def t_client_limits():
    """zcusbd bounds the peers it keeps state for itself (ClientsPerUser=,
    ClientsGlobal=; root exempt), a refused claim leaves nothing behind, and
    zcusbd's bus connection holds the same few match rules however many peers
    come: no number of peers can make the bus daemon drop zcusbd."""
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody,daemon")
    config = h.TEST_CONFIG + "[Quota]\nClientsPerUser=3\nClientsGlobal=5\n"
    sub = (h.MANAGER_PATH, h.MANAGER_IFACE, "Subscribe", "", [])
    # refused by claim_new(), after the caller became a peer: no interface 9
    claim = (h.MANAGER_PATH, h.MANAGER_IFACE, "ClaimInterface", "oy", [gz.object_path, 9])
    with h.World([gz], config_text=config) as w:
        rules_before = w.bus.match_rules_of(w.daemon.p.pid)
        refused = bus_peer(w, h.as_user(), connections=12, calls=[claim])
        h.check_eq(sorted({e[3] for e in peer_events(refused, "error")}), ["org.zcusb1.Error.InvalidArgument"],
                   "12 refused claims of one uid: InvalidArgument each, never a limit")
        h.check_eq(len(peer_events(refused, "error")), 12, "answers to 12 refused claims")
        # ... and they left nothing: the uid still has all three of its places
        ok = bus_peer(w, h.as_user(), connections=4, calls=[sub])
        h.check_eq([e[1] for e in peer_events(ok, "ok")], [0, 1, 2], "the uid's first three subscriptions")
        h.check_eq([(e[1], e[3]) for e in peer_events(ok, "error")], [(3, "org.zcusb1.Error.QuotaExceeded")],
                   "its fourth connection (ClientsPerUser=3)")
        other = bus_peer(w, h.as_user(1, 1), connections=3, calls=[sub])
        h.check_eq([e[1] for e in peer_events(other, "ok")], [0, 1], "another uid's first two (5 in all)")
        h.check_eq([(e[1], e[3]) for e in peer_events(other, "error")], [(2, "org.zcusb1.Error.QuotaExceeded")],
                   "beyond ClientsGlobal=5")
        root = bus_peer(w, None, connections=8, calls=[sub])
        h.check_eq(len(peer_events(root, "ok")), 8, "root is never refused for being one peer too many")
        if rules_before is not None:
            h.check_eq(w.bus.match_rules_of(w.daemon.p.pid), rules_before,
                       "zcusbd's match rules on the bus after 30 peers")
        # a peer that leaves makes room
        ok.stop()
        w.bg.remove(ok)
        again = bus_peer(w, h.as_user(), connections=3, calls=[sub])
        h.check_eq(len(peer_events(again, "ok")), 3, "the uid's places after its peers left")
        h.check(w.daemon.p.poll() is None, "zcusbd still runs")


@test("signal-scope")
def t_signal_scope():
    """Device signals reach only subscribed peers that may see the device; a
    peer of another uid learns nothing of devices it may not see, whether it
    subscribed or only added a match rule."""
    seen = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
    with h.World([seen]) as w:
        sub = (h.MANAGER_PATH, h.MANAGER_IFACE, "Subscribe", "", [])
        nobody = bus_peer(w, h.as_user(), calls=[sub], listen=True)
        stranger = bus_peer(w, h.as_user(1, 1), calls=[sub], listen=True)
        eavesdropper = bus_peer(w, h.as_user(2, 2), listen=True)  # a match rule, no Subscribe
        sigs = h.SignalLog(w.bus.conn)  # root: subscribed, sees everything

        hidden = fixtures.loopback_two_configs(devnum=5, port="3")  # no ZCUSB_* properties
        shown = fixtures.gadget_zero(devnum=6, port="4", ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
        for d in (hidden, shown):
            w.tb.plug(d)
            h.wait_until(lambda: sigs.find("DeviceAdded", h.MANAGER_PATH, lambda e: e[2] == (d.object_path,)), 5,
                         f"root's DeviceAdded for {d.object_path}")
        h.wait_until(lambda: any(e[1] == "DeviceAdded" and shown.object_path in e[3]
                                 for e in peer_events(nobody, "signal")), 5, "nobody's DeviceAdded for its device")
        for d in (hidden, shown):
            w.tb.set_uevent_prop(d.sys_syspath, "ZCUSB_SERIAL_NOTE", "x")
            w.tb.uevent(d.sys_syspath, "change")
        for d in (hidden, shown):
            w.tb.unplug(d)
            h.wait_until(lambda: sigs.find("DeviceRemoved", h.MANAGER_PATH, lambda e: e[2] == (d.object_path,)), 5,
                         f"root's DeviceRemoved for {d.object_path}")
        h.wait_until(lambda: any(e[1] == "DeviceRemoved" and shown.object_path in e[3]
                                 for e in peer_events(nobody, "signal")), 5, "nobody's DeviceRemoved")
        h.sleep_iterating(0.3)
        told = peer_events(nobody, "signal")
        h.check(not [e for e in told if hidden.object_path in e[2] + e[3]],
                f"nobody was told of a device it may not see: {told}")
        h.check({e[1] for e in told} >= {"DeviceAdded", "InterfacesAdded", "DeviceRemoved", "InterfacesRemoved"},
                f"nobody's signals about its own device: {sorted({e[1] for e in told})}")
        added = next(e for e in told if e[1] == "InterfacesAdded")
        h.check_in("VendorId", added[3], "InterfacesAdded carries the device's properties")
        h.check_eq(peer_events(stranger, "signal"), [], "signals to a subscribed uid that may see nothing")
        h.check_eq(peer_events(eavesdropper, "signal"), [], "signals to a peer that only added a match rule")
        h.check(sigs.find("InterfacesAdded", h.MANAGER_PATH, lambda e: e[2][0] == hidden.object_path),
                "root (subscribed) hears of every device")
        sigs.close()


def _policy_view(w, user, what):
    r = w.ctl("list", "--json", user=user)
    return sorted(e["object"] for e in r.json())


@test("policy")
def t_policy():
    # variant 1: one user allowed on the gadget (by name); hub default ENABLE=0; HID nothing
    hub = fixtures.root_hub(ZCUSB_ENABLE="0")
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
    kbd = fixtures.hid_keyboard()
    nobody = h.as_user()
    with h.World([hub, gz, kbd]) as w:
        h.check_eq(_policy_view(w, nobody, "nobody"), [gz.object_path], "nobody's list")
        h.check_eq(_policy_view(w, None, "root"), sorted(d.object_path for d in (hub, gz, kbd)), "root's list")
        r = w.ctl("info", "001:004", user=nobody, expect=4)
        h.check(r.err.startswith("zcusbctl: ") and re.search(r"access denied|AccessDenied", r.err, re.I),
                f"info 001:004 as nobody: stderr {r.err!r}")
        h.check_eq(r.out, "", "info 001:004 as nobody: stdout")
        w.ctl("info", "001:001", user=nobody, expect=4)
        w.ctl("info", "001:099", user=nobody, expect=3)
        info = w.ctl("info", "--json", "001:003", user=nobody).json()
        h.check_eq((info.get("may_claim"), info.get("claimable_interfaces")), (True, [0]),
                   "nobody's access to the gadget via info")
        # GetAccess over the bus, as nobody
        r = w.busctl("--json=short", "call", h.BUS_NAME, gz.object_path, h.DEVICE_IFACE, "GetAccess",
                     user=nobody)
        j = r.json()
        h.check_eq(j.get("type"), "bay", "GetAccess reply signature")
        h.check_eq(j["data"], [True, [0]], "GetAccess (may_claim, claimable_interfaces) for nobody on the gadget")
        r = w.call_as(nobody, kbd.object_path, h.DEVICE_IFACE, "GetAccess")
        h.check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetAccess on the HID as nobody")
        r = w.call_as(nobody, kbd.object_path, h.PROPS_IFACE, "GetAll", "s", h.DEVICE_IFACE)
        h.check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetAll on the HID as nobody")
        r = w.call_as(nobody, "/org/zcusb1/device/usb1_99", h.DEVICE_IFACE, "GetAccess")
        h.check_eq(r[:2], ("error", "org.zcusb1.Error.NoSuchDevice"), "GetAccess on usb1_99 as nobody")
        r = w.call_as(nobody, gz.object_path, h.DEVICE_IFACE, "GetAccess")
        h.check_eq(r, ("ok", [True, [0]]), "GetAccess on the gadget as nobody (python-dbus)")
        r = w.busctl("--json=short", "call", h.BUS_NAME, h.MANAGER_PATH, h.MANAGER_IFACE, "ListDevices",
                     user=nobody)
        h.check_eq([e[0] for e in r.json()["data"][0]], [gz.object_path], "ListDevices as nobody")
        r = w.call_as(nobody, h.MANAGER_PATH, h.MANAGER_IFACE, "GetDevice", "qq", 1, 4)
        h.check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetDevice(1, 4) as nobody")
        r = w.call_as(nobody, h.MANAGER_PATH, h.MANAGER_IFACE, "GetDevice", "qq", 1, 3)
        h.check_eq(r, ("ok", gz.object_path), "GetDevice(1, 3) as nobody")
        with h.soft("GetManagedObjects as nobody"):
            r = w.call_as(nobody, h.MANAGER_PATH, h.OM_IFACE, "GetManagedObjects")
            h.check_eq(sorted(r[1]) if r[0] == "ok" else r, [gz.object_path], "GetManagedObjects as nobody")
        with h.soft("busctl tree as nobody"):
            r = w.busctl("tree", "--list", h.BUS_NAME, user=nobody, expect=None)
            paths = set(r.out.split())
            h.check(r.rc == 0 and gz.object_path in paths and kbd.object_path not in paths
                    and hub.object_path not in paths,
                    f"busctl tree as nobody: exit {r.rc}, should show exactly the gadget: {r.out!r}")
        # the project's bus policy: only root may own org.zcusb1
        r = w.call_as(nobody, "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su",
                      h.BUS_NAME, 0, dest="org.freedesktop.DBus")
        h.check_eq(r[:2], ("error", "org.freedesktop.DBus.Error.AccessDenied"), "RequestName org.zcusb1 as nobody")

        # live policy change on the device (rules edited + udevadm trigger -> "change")
        w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_USERS", "root")
        w.tb.uevent(gz.sys_syspath, "change")
        h.wait_until(lambda: _policy_view(w, nobody, "nobody") == [], 5,
                     "nobody to lose the gadget after a change event", interval=0.2)
        w.ctl("info", "001:003", user=nobody, expect=4)
        w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_USERS", "nobody")
        w.tb.uevent(gz.sys_syspath, "change")
        h.wait_until(lambda: _policy_view(w, nobody, "nobody") == [gz.object_path], 5,
                     "nobody to get the gadget back after a change event", interval=0.2)

        # another unprivileged user sees nothing (an existing one: dbus-daemon drops
        # connections from uids without a passwd entry)
        other = h.as_user(uid=1, gid=1)  # "daemon"
        h.check_eq(_policy_view(w, other, "uid 1"), [], "uid 1's list")
        w.ctl("info", "001:003", user=other, expect=4)

    # variant 2: groups (numeric gid on the gadget, a group name on the HID); the
    # caller's groups are its bus credentials (setpriv --groups), not /etc/group
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_GROUPS="4242")
    kbd = fixtures.hid_keyboard(ZCUSB_ENABLE="1", ZCUSB_ALLOW_GROUPS="users, plugdev")
    with h.World([hub, gz, kbd]) as w, h.soft("group policy from bus credentials"):
        h.check_eq(_policy_view(w, h.as_user(groups=None), "nobody"), [], "nobody without groups")
        h.check_eq(_policy_view(w, h.as_user(groups=[4242]), "nobody+4242"), [gz.object_path],
                   "nobody with supplementary group 4242")
        plugdev = 46
        h.check_eq(_policy_view(w, h.as_user(groups=[4242, plugdev]), "nobody+4242,46"),
                   sorted([gz.object_path, kbd.object_path]), "nobody with groups 4242 and plugdev")
        h.check_eq(_policy_view(w, h.as_user(groups=[100]), "nobody+users"), [kbd.object_path],
                   "nobody with group users")
        w.ctl("info", "001:003", user=h.as_user(groups=[plugdev]), expect=4)
        i = w.ctl("info", "--json", "001:004", user=h.as_user(groups=[plugdev])).json()
        h.check_eq((i["may_claim"], i["claimable_interfaces"]), (True, [0]), "HID access via plugdev")

    # variant 3: an interface's property overrides the device's; numeric uid; ENABLE missing
    gz = fixtures.gadget_zero(ZCUSB_ALLOW_USERS="65534")                  # no ENABLE: not offered
    kbd = fixtures.hid_keyboard(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="root,65534",
                                iface_props={"ZCUSB_ENABLE": "0"})       # interface opts out
    with h.World([hub, gz, kbd]) as w:
        h.check_eq(_policy_view(w, nobody, "nobody"), [], "nobody: ENABLE unset / interface ENABLE=0")
        i = w.ctl("info", "--json", "001:004").json()
        h.check_eq((i["may_claim"], i["claimable_interfaces"]), (False, []),
                   "root on an interface with ZCUSB_ENABLE=0")
        i = w.ctl("info", "--json", "001:003").json()
        h.check_eq((i["may_claim"], i["claimable_interfaces"]), (True, [0]), "root, ENABLE unset")


CONFIG_MB = 1024 * 1024


def _bad_config(workdir, name, text, dropins=None):
    """Start zcusbd with a bad config: it must exit non-zero at once, without
    taking the bus name, and say FILE:LINE: on stderr. Returns its stderr."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    for dname, dtext in (dropins or {}).items():
        os.makedirs(path + ".d", exist_ok=True)
        with open(os.path.join(path + ".d", dname), "w") as f:
            f.write(dtext)
    return path


@test("config-errors")
def t_config_errors():
    with h.World(start=False) as w:
        bad = []
        cases = [
            # (file name, text, drop-ins, file named in the error, line, words the message must name)
            ("badkey.conf", "[Quota]\nBytesPerClient=1M\nFrobnicate=1\n", None, None, 3, ["Frobnicate"]),
            ("badvalue.conf", "# comment\n[Quota]\nBytesPerClient=12Q\n", None, None, 3, ["12Q"]),
            ("badsection.conf", "[Daemon]\nLogLevel=info\n\n[Bogus]\nX=1\n", None, None, (4, 5), ["Bogus"]),
            ("nosection.conf", "BytesPerClient=1M\n", None, None, 1, ["BytesPerClient"]),
            ("badcount.conf", "[Quota]\nClaimsPerClient=-1\n", None, None, 2, ["-1"]),
            ("badbool.conf", "[Daemon]\nLoadModule=perhaps\n", None, None, 2, ["perhaps"]),
            ("badbackend.conf", "[Daemon]\nBackend=floppy\n", None, None, 2, ["floppy"]),
            ("empty.conf", "[Quota]\nBytesGlobal=\n", None, None, 2, ["BytesGlobal"]),
            ("syntax.conf", "[Quota\n", None, None, 1, []),
            ("dropin.conf", "[Quota]\nBytesPerClient=1M\n",
             {"10-ok.conf": "[Quota]\nBytesPerUser=2M\n", "20-bad.conf": "\n[Quota]\nQueuesPerClient=many\n"},
             "dropin.conf.d/20-bad.conf", 3, ["many"]),
        ]
        for name, text, dropins, errfile, line, words in cases:
            path = _bad_config(w.workdir, name, text, dropins)
            errfile = os.path.join(w.workdir, errfile) if errfile else path
            argv = [h.exe("ZCUSBD"), f"--bus-address={w.bus.address}", f"--config={path}"]
            t = time.monotonic()
            r = h.run(argv, env=w.bus.env(), timeout=10)
            took = time.monotonic() - t
            lines = (line,) if isinstance(line, int) else line
            problems = []
            if took > 2:
                problems.append(f"took {took:.1f}s")
            if not any(f"{errfile}:{n}: " in r.err for n in lines):
                problems.append(f"stderr lacks '{errfile}:{lines}: '")
            for word in words:
                if word not in r.err:
                    problems.append(f"stderr does not name {word!r}")
            if w.bus.has_owner():
                problems.append(f"{h.BUS_NAME} is owned")
            if r.rc != 78:
                problems.append(f"exit {r.rc}, not EX_CONFIG (78) as 'zcusbd --help' documents")
            if problems:
                bad.append(f"{name}: {', '.join(problems)}; stderr {r.err!r}")
        # an explicitly named config file that does not exist is an error too
        missing = os.path.join(w.workdir, "missing.conf")
        r = h.run([h.exe("ZCUSBD"), f"--bus-address={w.bus.address}", f"--config={missing}"], env=w.bus.env())
        if r.rc == 0 or missing not in r.err:
            bad.append(f"missing --config file: exit {r.rc}, stderr {r.err!r}")
        h.check(not bad, "bad configurations not rejected properly:\n  " + "\n  ".join(bad))

        # drop-ins: PATH.d/*.conf in lexical order, later wins; other names ignored
        w.start(h.TEST_CONFIG + "[Quota]\nBytesPerClient=1M\nClaimsPerClient=3\n",
                dropins={"50-a.conf": "[Quota]\nBytesPerClient=5M\nBuffersPerClient=7\n",
                         "60-b.conf": "[Quota]\nBytesPerClient=3M\n",
                         "70-ignored.conf.disabled": "[Quota]\nBytesPerClient=9M\n",
                         "README": "not a config file\n"})
        st = w.ctl("status", "--json").json()
        h.check_eq(set(st), {"version", "backend", "module_version", "quota"}, "status --json keys")
        h.check_eq(st["backend"], "usbfs", "status backend")
        h.check_eq(st["module_version"], "", "status module_version without zcusb.ko")
        q = st["quota"]
        want = {"bytes_per_client": 3 * CONFIG_MB, "bytes_per_user": 512 * CONFIG_MB,
                "bytes_global": 2048 * CONFIG_MB, "claims_per_client": 3, "buffers_per_client": 7,
                "queues_per_client": 8, "in_flight_per_client": 512}
        h.check_eq(q, want, "status --json quota with drop-ins")
        mgr = w.bus.conn.get_object(h.BUS_NAME, h.MANAGER_PATH)
        props = h._py(mgr.GetAll(h.MANAGER_IFACE, dbus_interface=h.PROPS_IFACE))
        h.check_eq((props.get("QuotaBytesPerClient"), props.get("MaxClaimsPerClient"),
                    props.get("MaxBuffersPerClient"), props.get("Backend"), props.get("ModuleVersion")),
                   (3 * CONFIG_MB, 3, 7, "usbfs", ""), "Manager properties with drop-ins")
        h.check_eq(st["version"], props.get("Version"), "status version vs Version property")
        r = w.ctl("status")
        h.check_in("usbfs", r.out, "plain status")


@test("sigterm")
def t_sigterm():
    with h.World() as w:
        # a client with a signal subscription and a monitor must not delay the exit
        sigs = h.SignalLog(w.bus.conn)
        mon = w.background([h.exe("ZCUSBCTL"), "monitor", "--json"])
        w.wait_subscribed(mon)
        w.ctl("list")
        rc, took = w.daemon.stop()
        h.check_eq(rc, 0, "zcusbd exit code after SIGTERM")
        h.check(took < 2.0, f"zcusbd took {took:.2f}s to exit after SIGTERM (limit 2s)")
        h.log(f"zcusbd exited 0 {took:.3f}s after SIGTERM")
        h.wait_until(lambda: not w.bus.has_owner(), 2, f"{h.BUS_NAME} to be released")
        # the monitor notices the daemon is gone: it must not hang or spin; either it
        # exits (5: daemon unreachable) or keeps waiting for the name to come back
        h.sleep_iterating(0.5)
        if mon.p.poll() is not None:
            h.check_in(mon.p.returncode, (0, 5), "monitor exit code after the daemon left")
        sigs.close()
    # SIGINT too, with no clients, straight after start
    with h.World() as w:
        w.daemon.p.send_signal(signal.SIGINT)
        h.wait_until(lambda: w.daemon.p.poll() is not None, 2, "zcusbd to exit after SIGINT")
        h.check_eq(w.daemon.p.returncode, 0, "zcusbd exit code after SIGINT")
        w.daemon.stop()
