"""Tier-2 tests of the libusb-1.0 compatibility library (client/libusb-compat)
and of the Device additions it needs (Descriptors, GetDescriptor).

The libusb programs are small C programs built by meson against the real
<libusb.h> (tests/integration/libusb-*.c); they are linked against the
distribution's libusb-1.0.so.0 and run with LD_LIBRARY_PATH pointing at the
compat library, exactly as zcusb-run does. zcusbtest.py imports this module
through datapath.register().
"""

import json
import os
import struct

import datapath
import fixtures

h = None
_TESTS = {}


def ctest(name):
    def deco(fn):
        _TESTS[name] = fn
        return fn
    return deco


def register(harness):
    global h
    h = harness
    harness.TESTS.update(_TESTS)


def _device(w, path):
    return w.bus.conn.get_object("org.zcusb1", path)


def get_descriptor(w, path, dtype, index, language):
    obj = _device(w, path)
    return bytes(obj.GetDescriptor(h.dbus.Byte(dtype), h.dbus.Byte(index), h.dbus.UInt16(language),
                                   dbus_interface="org.zcusb1.Device", byte_arrays=True))


def dbus_error_name(fn, *args):
    try:
        r = fn(*args)
    except h.dbus.DBusException as e:
        return e.get_dbus_name()
    raise h.TestFailure(f"expected a D-Bus error, got {r!r}")


@ctest("descriptors")
def t_descriptors():
    gz = datapath.gadget(allow="nobody")
    with datapath.DataWorld([fixtures.root_hub(), gz]) as dw:
        w = dw.w
        props = w.device_props(gz.object_path)
        h.check_eq(bytes(props["Descriptors"]), gz.descriptors(), "Descriptors property (raw sysfs blob)")

        # string descriptors, any index and language, read once and cached
        h.check_eq(get_descriptor(w, gz.object_path, 3, 0, 0), bytes([4, 3, 0x09, 0x04]),
                   "GetDescriptor(string 0): language ids")
        im, ip, isn = gz.string_indexes()
        for idx, text in ((im, gz.manufacturer), (ip, gz.product), (isn, gz.serial)):
            want = text.encode("utf-16-le")
            want = bytes([2 + len(want), 3]) + want
            h.check_eq(get_descriptor(w, gz.object_path, 3, idx, 0x0409), want, f"GetDescriptor(string {idx})")
        mark = dw.emu.mark()
        h.check_eq(get_descriptor(w, gz.object_path, 3, ip, 0x0409)[2:].decode("utf-16-le"), gz.product,
                   "GetDescriptor(string product) again")
        h.check_eq(len(dw.emu.find("CONTROL", since=mark)), 0, "usbfs CONTROL for a cached string")

        # BOS, read in two steps (header, then wTotalLength)
        h.check_eq(get_descriptor(w, gz.object_path, 15, 0, 0), bytes([5, 15, 12, 0, 1, 7, 16, 2, 2, 0, 0, 0]),
                   "GetDescriptor(BOS)")

        # a string the device stalls: Failed, and the stall is cached too
        h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, 77, 0x0409), "org.zcusb1.Error.Failed",
                   "GetDescriptor(string 77) the device stalls")
        mark = dw.emu.mark()
        h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, 3, 77, 0x0409), "org.zcusb1.Error.Failed",
                   "GetDescriptor(string 77) again")
        h.check_eq(len(dw.emu.find("CONTROL", since=mark)), 0, "usbfs CONTROL for a cached stall")

        # types with side effects or in the Descriptors property are refused
        for t in (1, 2, 4, 0x21, 0):
            h.check_eq(dbus_error_name(get_descriptor, w, gz.object_path, t, 0, 0),
                       "org.zcusb1.Error.InvalidArgument", f"GetDescriptor(type {t:#x})")

        # a caller who may not see the device is told nothing
        r = w.call_as(h.as_user(uid=datapath.DAEMON_UID, gid=datapath.DAEMON_UID), gz.object_path, "org.zcusb1.Device", "GetDescriptor",
                      "yyq", 3, 1, 0x0409)
        h.check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetDescriptor from a stranger")
        # one who may: the same answer
        r = w.call_as(h.as_user(uid=datapath.NOBODY, gid=datapath.NOBODY), gz.object_path, "org.zcusb1.Device",
                      "GetDescriptor", "yyq", 3, ip, 0x0409)
        h.check_eq(r[0], "ok", f"GetDescriptor as nobody: {r}")
        h.check_eq(bytes(r[1]).decode("utf-16-le", errors="replace")[1:], gz.product,
                   "GetDescriptor as nobody (product string)")
