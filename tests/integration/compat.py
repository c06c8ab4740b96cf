"""Tier-2 tests of the libusb-1.0 compatibility library (client/libusb-compat)
and of the Device additions it needs (Descriptors, GetDescriptor).

The libusb programs are small C programs built by meson against the real
<libusb.h> (tests/integration/libusb-*.c); they are linked against the
distribution's libusb-1.0.so.0 and run with LD_LIBRARY_PATH pointing at the
compat library, exactly as zcusb-run does. Its tests join datapath's (dtest),
registered by datapath.register().
"""

import json
import os
import signal
import struct

import datapath
from datapath import dtest
import fixtures
import usbfs_emu


def _device(w, path):
    return w.bus.conn.get_object("org.zcusb1", path)


def get_descriptor(w, path, dtype, index, language):
    obj = _device(w, path)
    return bytes(obj.GetDescriptor(datapath.h.dbus.Byte(dtype), datapath.h.dbus.Byte(index), datapath.h.dbus.UInt16(language),
                                   dbus_interface="org.zcusb1.Device", byte_arrays=True))


def dbus_error_name(fn, *args):
    try:
        r = fn(*args)
    except datapath.h.dbus.DBusException as e:
        return e.get_dbus_name()
    raise datapath.h.TestFailure(f"expected a D-Bus error, got {r!r}")


@dtest("descriptors")
def t_descriptors():
    gz = datapath.gadget(allow="nobody")
    with datapath.DataWorld([fixtures.root_hub(), gz]) as dw:
        w = dw.w
        props = w.device_props(gz.object_path)
        datapath.h.check_eq(bytes(props["Descriptors"]), gz.descriptors(), "Descriptors property (raw sysfs blob)")

        # string descriptors, any index and language, read once and cached
        datapath.h.check_eq(get_descriptor(w, gz.object_path, 3, 0, 0), bytes([4, 3, 0x09, 0x04]),
                   "GetDescriptor(string 0): language ids")
        im, ip, isn = gz.string_indexes()
        for idx, text in ((im, gz.manufacturer), (ip, gz.product), (isn, gz.serial)):
            want = text.encode("utf-16-le")
            want = bytes([2 + len(want), 3]) + want
            datapath.h.check_eq(get_descriptor(w, gz.object_path, 3, idx, 0x0409), want, f"GetDescriptor(string {idx})")
        mark = dw.emu.mark()
        datapath.h.check_eq(get_descriptor(w, gz.object_path, 3, ip, 0x0409)[2:].decode("utf-16-le"), gz.product,
                   "GetDescriptor(string product) again")
        datapath.h.check_eq(len(dw.emu.find("CONTROL", since=mark)), 0, "usbfs CONTROL for a cached string")

        # BOS, read in two steps (header, then wTotalLength)
        datapath.h.check_eq(get_descriptor(w, gz.object_path, 15, 0, 0), bytes([5, 15, 12, 0, 1, 7, 16, 2, 2, 0, 0, 0]),
                   "GetDescriptor(BOS)")

        # a string the device stalls: Failed, and the stall is cached too
        datapath.h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, 77, 0x0409), "org.zcusb1.Error.Failed",
                   "GetDescriptor(string 77) the device stalls")
        mark = dw.emu.mark()
        datapath.h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, 77, 0x0409), "org.zcusb1.Error.Failed",
                   "GetDescriptor(string 77) again")
        datapath.h.check_eq(len(dw.emu.find("CONTROL", since=mark)), 0, "usbfs CONTROL for a cached stall")

        # a device that does not answer: Failed, and zcusbd asks it nothing new for a while
        # (uncached keys fail at once, no usbfs CONTROL), while cached answers still come
        datapath.h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, usbfs_emu.SILENT_STRING_INDEX, 0x0409),
                   "org.zcusb1.Error.Failed", "GetDescriptor of a string the device never answers")
        mark = dw.emu.mark()
        for idx in (0xE0, 0xE1, 0xE2):
            datapath.h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, idx, 0x0409), "org.zcusb1.Error.Failed",
                       f"GetDescriptor(string {idx:#x}) right after a timeout")
        datapath.h.check_eq(len(dw.emu.find("CONTROL", since=mark)), 0, "usbfs CONTROL while the device is left alone")
        datapath.h.check_eq(get_descriptor(w, gz.object_path, 3, ip, 0x0409)[2:].decode("utf-16-le"), gz.product,
                   "GetDescriptor(string product), cached, right after a timeout")

        # types with side effects or in the Descriptors property are refused
        for t in (1, 2, 4, 0x21, 0):
            datapath.h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, t, 0, 0),
                       "org.zcusb1.Error.InvalidArgument", f"GetDescriptor(type {t:#x})")

        # a caller who may not see the device is told nothing
        r = w.call_as(datapath.h.as_user(uid=datapath.DAEMON_UID, gid=datapath.DAEMON_UID), gz.object_path, "org.zcusb1.Device", "GetDescriptor",
                      "yyq", 3, 1, 0x0409)
        datapath.h.check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetDescriptor from a stranger")
        # one who may: the same answer
        r = w.call_as(datapath.h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY), gz.object_path, "org.zcusb1.Device",
                      "GetDescriptor", "yyq", 3, ip, 0x0409)
        datapath.h.check_eq(r[0], "ok", f"GetDescriptor as nobody: {r}")
        datapath.h.check_eq(bytes(r[1]).decode("utf-16-le", errors="replace")[1:], gz.product,
                   "GetDescriptor as nobody (product string)")


# ---------------------------------------------------------------------------
# unmodified libusb programs through the compat library

def lu_env(w, extra=None):
    """What zcusb-run sets up: the compat libusb-1.0.so.0 first; the private bus
    as the system bus. Without the umockdev preload: the program must need
    neither /sys nor /dev/bus/usb (it gets the host's, which hold no such device)."""
    env = datapath.h.clean_env({"DBUS_SYSTEM_BUS_ADDRESS": w.bus.address})
    libdir = os.environ.get("ZCUSB_COMPAT_LIBDIR")
    if not libdir:
        raise datapath.h.TestSkip("ZCUSB_COMPAT_LIBDIR is not set: built without the libusb compatibility library")
    env["LD_LIBRARY_PATH"] = libdir
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.update(extra or {})
    return env


def lu_run(w, var, *args, uid=datapath.NOBODY, timeout=60, expect=0, extra_env=None):
    user = [] if uid == 0 else datapath.h.as_user(uid=uid, gid=uid)
    r = datapath.h.run(user + [datapath.h.exe(var)] + list(args), env=lu_env(w, extra_env), timeout=timeout)
    datapath.h.log(f"$ {var} {' '.join(args)} -> exit {r.rc}\n    stdout: {r.out.strip()[:2000]}\n"
          f"    stderr: {r.err.strip()[:2000]}")
    datapath.check_sanitizers(r.err)
    if expect is not None:
        datapath.h.check_eq(r.rc, expect, f"{var} {' '.join(args)} exit status (stderr: {r.err.strip()[-600:]})")
    return r


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def expected_interfaces(d):
    """(number, alt, class, [(addr, attrs, mps, interval)]) of the active configuration."""
    return sorted((n, a, c, [tuple(e) for e in eps]) for (n, a, c, s, p, drv, eps) in d.expected_interfaces())


def check_listed(got, d, what, strings=True):
    datapath.h.check_eq((got["bus"], got["address"], got["vid"], got["pid"], got["class"], got["configurations"]),
               (d.busnum, d.devnum, d.vid, d.pid, d.cls, len(d.configs)),
               f"{what}: (bus, address, vid, pid, class, configurations)")
    speeds = {"1.5": 1, "12": 2, "480": 3, "5000": 4, "10000": 5}
    datapath.h.check_eq(got["speed"], speeds.get(d.speed, 0), f"{what}: speed")
    datapath.h.check_eq(got["bcd_usb"], d.bcd_usb, f"{what}: bcdUSB")
    if strings:
        for k, v in (("manufacturer", d.manufacturer), ("product", d.product), ("serial", d.serial)):
            datapath.h.check_eq(got[k], v or None, f"{what}: {k} string")
    cfg = next(c for c in got["configs"] if c and c["value"] == d.active_config)
    ifs = sorted((i["number"], i["alt"], i["class"], [tuple(e) for e in i["endpoints"]]) for i in cfg["interfaces"])
    datapath.h.check_eq(ifs, expected_interfaces(d), f"{what}: interfaces of the active configuration")


@dtest("libusb-listdevs")
def t_libusb_listdevs():
    gz = datapath.gadget()
    hub = fixtures.root_hub()
    with datapath.DataWorld([hub, gz]) as dw:
        w = dw.w
        # as nobody: only the gadget exists
        got = json_lines(lu_run(w, "ZCUSB_LU_LISTDEVS").out)
        datapath.h.check_eq(len(got), 1, f"devices a libusb program sees as nobody: {got}")
        check_listed(got[0], gz, "gadget as nobody")
        datapath.h.check_eq(got[0]["parent"], None, "parent of the gadget (the root hub is not visible to nobody)")
        datapath.h.check_eq(got[0]["ports"], [1], "port numbers of the gadget")
        datapath.h.check_eq(got[0].get("bos_caps"), [2], "BOS of the gadget: one USB 2.0 extension")
        # the raw bytes of the configuration, extra included, as libusb groups them
        raw = gz.descriptors()
        datapath.h.check_eq(got[0]["configs"][0]["total"], struct.unpack_from("<H", raw, 18 + 2)[0],
                   "wTotalLength of configuration 0")
        # as root: both, the hub as the gadget's parent
        got = {(d["bus"], d["address"]): d for d in json_lines(lu_run(w, "ZCUSB_LU_LISTDEVS", uid=0).out)}
        datapath.h.check_eq(sorted(got), [(1, 1), (1, 3)], "devices a libusb program sees as root")
        check_listed(got[(1, 3)], gz, "gadget as root")
        check_listed(got[(1, 1)], hub, "root hub as root", strings=False)
        datapath.h.check_eq(got[(1, 3)]["parent"], [1, 1], "parent of the gadget as root")
        datapath.h.check_eq(got[(1, 1)]["parent"], None, "parent of the root hub")


def claimed(dw):
    """Interfaces zcusbd holds at the (emulated) device: a claim of a program
    that ended must not outlive it."""
    with dw.emu.lock:
        return set(dw.emu.claimed)


@dtest("libusb-stream")
def t_libusb_stream():
    with datapath.DataWorld() as dw:
        emu = dw.emu
        n = 1 << 20
        received = 0
        for mem in ("dev", "malloc"):
            r = lu_run(dw.w, "ZCUSB_LU_STREAM", f"--bytes={n}", "--size=65536", "--depth=4", f"--mem={mem}",
                       "--control", "--pattern=mod251", f"--offset={received}", extra_env={"LIBUSB_DEBUG": "3"})
            phases = {x["phase"]: x for x in json_lines(r.out) if "phase" in x}
            for p in ("in", "out"):
                datapath.h.check_eq((phases[p]["bytes"], phases[p]["mismatches"], phases[p]["completed"]),
                           (n, 0, n // 65536), f"{mem} buffers, {p}: (bytes, mismatches, completed transfers)")
            received += n
            check_out_pattern_tail(emu, received, n, f"{mem} buffers")
            # what went where: zero copy for dev_mem, the staging buffers for malloc
            stats = [l for l in r.err.splitlines() if "bytes zero-copy" in l]
            datapath.h.check(stats, f"{mem}: the compat library's transfer statistics in its log: {r.err[-400:]}")
            zc_bytes = int(stats[0].split(" bytes zero-copy")[0].split()[-1])
            if mem == "dev":
                datapath.h.check_eq(zc_bytes, 2 * n, "dev_mem: bytes moved zero-copy (IN + OUT)")
            else:
                datapath.h.check_eq(zc_bytes, 0, "malloc: bytes moved zero-copy")
        # synchronous transfers (libusb_bulk_transfer), 4 KiB at a time
        r = lu_run(dw.w, "ZCUSB_LU_STREAM", "--bytes=65536", "--size=4096", "--sync", "--pattern=mod251",
                   f"--offset={received}")
        received += 65536
        datapath.h.check(all(x["mismatches"] == 0 and x["bytes"] == 65536 for x in json_lines(r.out) if "phase" in x),
                f"synchronous stream: {r.out}")
        check_out_pattern_tail(emu, received, 65536, "synchronous")
        datapath.h.wait_until(lambda: not claimed(dw), 5, "zcusbd to release the interface")


@dtest("libusb-devmem")
def t_libusb_devmem():
    # BytesPerClient: the queue, a 4 MiB arena and a 6 MiB one do not fit together
    with datapath.DataWorld(config="[Quota]\nBytesPerClient=9M\n") as dw:
        r = lu_run(dw.w, "ZCUSB_LU_DEVMEM", "--size=65536", "--depth=8", "--rounds=4", extra_env={"LIBUSB_DEBUG": "4"})
        steps = {x["step"]: x for x in json_lines(r.out) if "step" in x}
        for name in ("reuse", "busy", "release", "grow"):
            datapath.h.check(steps.get(name, {}).get("ok"), f"lu-devmem step {name}: {steps.get(name)}")
        # dev_mem and staging take pages of a claim's arenas: 4 rounds of 8 buffers, the busy
        # and release steps, 4 x 1 MiB in one arena; then 6 MiB (the empty 4 MiB arena given
        # back for it) and 1 MiB (an arena of just that: 4 MiB would not fit)
        arenas = [l for l in r.err.splitlines() if "new arena" in l]
        sizes = [int(l.split("new arena of ")[1].split()[0]) for l in arenas]
        mib = 1 << 20
        datapath.h.check_eq(sizes, [4 * mib, 4 * mib, 6 * mib, mib],
                            "arenas asked of zcusbd (bytes): one per claim, then the grow step's two")
        datapath.h.wait_until(lambda: not claimed(dw), 5, "zcusbd to release the interface")


@dtest("libusb-cancel-full-ring")
def t_libusb_cancel_full_ring():
    # 256 IN transfers the device never answers: 192 go on the claim's ring of 256 entries,
    # 64 wait in the library. With zcusbd stopped nothing leaves the ring, so after 64
    # CANCEL entries it is full: the other cancels must wait for room, not fail or vanish.
    with datapath.DataWorld() as dw:
        emu = dw.emu
        emu.hold(0x81)
        user = datapath.h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY)
        bg = datapath.h.Background(user + [datapath.h.exe("ZCUSB_LU_CANCEL"), "--count=256", "--seconds=15"],
                                   env=lu_env(dw.w))
        datapath.h.wait_until(lambda: any('"ready"' in l for l in bg.lines), 15, "lu-cancel to claim")
        daemon = dw.w.daemon.p.pid
        os.kill(daemon, signal.SIGSTOP)
        try:
            bg.p.send_signal(signal.SIGUSR1)
            datapath.h.wait_until(lambda: any('"submitted"' in l for l in bg.lines), 15, "lu-cancel to submit and cancel")
        finally:
            os.kill(daemon, signal.SIGCONT)
        datapath.h.wait_until(lambda: bg.p.poll() is not None, 20, "lu-cancel to see every transfer end")
        bg.pump()
        got = {}
        for x in json_lines("\n".join(bg.lines)):
            got.update(x)
        datapath.h.log(f"lu-cancel: {got}")
        datapath.h.check_eq((got.get("submitted"), got.get("cancel_ok"), got.get("cancel_failed")), (256, 256, 0),
                            "(submitted, cancels accepted, cancels refused)")
        datapath.h.check_eq((got.get("callbacks"), got.get("cancelled")), (256, 256), "(callbacks, CANCELLED)")
        datapath.h.check_eq(bg.p.returncode, 0, "lu-cancel exit status")
        datapath.h.check_eq(emu.in_flight, {}, "URBs left at the device")
        datapath.h.wait_until(lambda: not claimed(dw), 5, "zcusbd to release the interface")


def check_out_pattern_tail(emu, total, n, what):
    got = emu.received(0x02)
    datapath.h.check_eq(len(got), total, f"{what}: bytes the device received in all")
    tail = got[total - n:]
    bad = next((i for i in range(n) if tail[i] != (total - n + i) % 251), None)
    datapath.h.check(bad is None, f"{what}: OUT data differs from the pattern at byte {bad}")


@dtest("libusb-iso")
def t_libusb_iso():
    with datapath.DataWorld() as dw:
        emu = dw.emu
        n = 4 * 8 * 1024
        r = lu_run(dw.w, "ZCUSB_LU_ISO", "--alt=1", "--packets=8", "--size=1024", "--transfers=4",
                   f"--offset={emu.endpoint(0x83).stream}")
        got = json_lines(r.out)[0]
        datapath.h.check_eq((got["in_bytes"], got["out_bytes"], got["bad_in"], got["bad_out"], got["max_iso_packet"]),
                   (n, n, 0, 0, 1024), "iso IN and OUT through libusb (bytes, bad packets, max iso packet)")
        datapath.h.check(emu.received(0x04) == bytes(i % 251 for i in range(n)), "iso OUT data the device got")
        datapath.h.check_eq(emu.find("SETINTERFACE")[-1][2], {"ifno": 0, "alt": 1, "result": 0}, "SETINTERFACE(0, 1)")


@dtest("libusb-hotplug")
def t_libusb_hotplug():
    gz = datapath.gadget()
    gz2 = datapath.gadget(devnum=6, port="4")
    with datapath.DataWorld([fixtures.root_hub(), gz]) as dw:
        w = dw.w
        user = datapath.h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY)
        bg = w.background(user + [datapath.h.exe("ZCUSB_LU_HOTPLUG"), "3", "20"])
        datapath.h.wait_until(lambda: any('"registered"' in l for l in bg.lines), 10, "lu-hotplug to register")
        datapath.h.wait_until(lambda: any('"arrived"' in l for l in bg.lines), 5, "the enumerated arrival")
        w.tb.plug(gz2)
        datapath.h.wait_until(lambda: sum('"arrived"' in l for l in bg.lines) >= 2, 10, "the arrival of 001:006")
        w.tb.unplug(gz2)
        datapath.h.wait_until(lambda: bg.p.poll() is not None, 10, "lu-hotplug to see the departure and exit")
        events = [json.loads(l) for l in bg.lines if l.startswith("{") and "event" in l]
        datapath.h.check_eq([(e["event"], e["bus"], e["address"]) for e in events],
                   [("arrived", 1, 3), ("arrived", 1, 6), ("left", 1, 6)], "hotplug events")
        datapath.h.check_eq(bg.p.returncode, 0, "lu-hotplug exit status")


@dtest("libusb-unplug")
def t_libusb_unplug():
    with datapath.DataWorld() as dw:
        emu, gz = dw.emu, dw.devices[1]
        user = datapath.h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY)
        emu.hold(0x81)
        bg = datapath.h.Background(user + [datapath.h.exe("ZCUSB_LU_STREAM"), "--bytes=1048576", "--size=16384", "--depth=8",
                                  "--mem=dev", "--expect-no-device", "--timeout=0"], env=lu_env(dw.w))
        datapath.wait_queued(emu, 0x81, 8, timeout=15)
        emu.disconnect()
        dw.w.tb.unplug(gz)
        datapath.h.wait_until(lambda: bg.p.poll() is not None, 15, "lu-stream to end after the unplug")
        phases = [json.loads(l) for l in bg.lines if l.startswith("{") and "phase" in l]
        datapath.h.log(f"lu-stream: {phases}")
        datapath.h.check_eq(bg.p.returncode, 0, "lu-stream --expect-no-device exit status")
        datapath.h.check(phases and phases[0]["no_device"] >= 1, f"LIBUSB_TRANSFER_NO_DEVICE after the unplug: {phases}")


@dtest("libusb-kill")
def t_libusb_kill():
    with datapath.DataWorld(config="[Quota]\nBytesPerUser=64M\n") as dw:
        emu = dw.emu
        user = datapath.h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY)
        # 64 KiB of the stream done, then it stops with 8 transfers in flight and is killed
        bg = datapath.h.Background(user + [datapath.h.exe("ZCUSB_LU_STREAM"), "--bytes=8388608", "--size=16384", "--depth=8",
                                  "--mem=malloc", "--hold-after=65536"], env=lu_env(dw.w))
        datapath.h.wait_until(lambda: any('"holding"' in l for l in bg.lines), 15, "lu-stream to hold")
        datapath.h.check_eq(claimed(dw), {0}, "interfaces claimed while lu-stream runs")
        mark = emu.mark()
        bg.p.kill()
        bg.p.wait()
        datapath.h.wait_until(lambda: emu.count("RELEASEINTERFACE", since=mark) >= 1, 5, "the interface released")
        datapath.h.wait_until(lambda: not claimed(dw), 5, "zcusbd to release the interface")
        datapath.h.check_eq(emu.in_flight, {}, "URBs left at the device")
        # the same user gets the whole quota back: a new libusb program streams
        r = lu_run(dw.w, "ZCUSB_LU_STREAM", "--bytes=65536", "--size=16384", "--depth=2", "--mem=dev",
                   "--pattern=none")
        datapath.h.check_eq(r.rc, 0, "a new program after the kill")
