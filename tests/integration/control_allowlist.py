# SPDX-License-Identifier: LGPL-2.1-or-later
"""The control request allow-list end to end (dbus/API.md, "Control requests";
the full table is tests/unit/transfer-check-vectors.h): through the real zcusbd
and its ring, a refused request completes with -EPERM and no URB reaches the
emulated device, an allowed one does. Registers with datapath's tests."""

import errno

import datapath
from datapath import KIB, DataWorld, Session, control, dtest, expect_status
import zcusbclient as zc

sp = zc.setup_packet

# Refused whatever the device: (bmRequestType, bRequest, wValue, wIndex, wLength, what)
REFUSED = [
    (0x00, 0x03, 0x0002, 0x0400, 0, "SET_FEATURE(TEST_MODE, Test_Packet)"),
    (0x00, 0x03, 0x0001, 0x0000, 0, "SET_FEATURE(DEVICE_REMOTE_WAKEUP)"),
    (0x00, 0x01, 0x0001, 0x0000, 0, "CLEAR_FEATURE(DEVICE_REMOTE_WAKEUP)"),
    (0x00, 0x03, 0x0030, 0x0000, 0, "SET_FEATURE(U1_ENABLE)"),
    (0x01, 0x01, 0x0000, 0x0000, 0, "CLEAR_FEATURE(interface 0)"),
    (0x02, 0x01, 0x0000, 0x0081, 0, "CLEAR_FEATURE(ENDPOINT_HALT, 0x81): Claim.ClearHalt's job"),
    (0x00, 0x30, 0x0000, 0x0000, 6, "SET_SEL"),
    (0x00, 0x31, 0x0028, 0x0000, 0, "SET_ISOCH_DELAY"),
    (0x23, 0x03, 0x0004, 0x0001, 0, "hub SET_PORT_FEATURE(PORT_RESET), recipient 'other'"),
    (0xA3, 0x00, 0x0000, 0x0001, 4, "hub GET_PORT_STATUS, recipient 'other'"),
    (0x44, 0x01, 0x0000, 0x0000, 0, "vendor OUT to reserved recipient 4"),
    (0xC0 | 0x1F, 0x01, 0x0000, 0x0000, 4, "vendor IN to reserved recipient 31"),
    (0x60, 0x00, 0x0000, 0x0000, 0, "reserved type 3"),
    (0xA0, 0x06, 0x2900, 0x0000, 9, "class GET_DESCRIPTOR(HUB) to the device"),
    (0x82, 0x00, 0x0000, 0x0083, 2, "GET_STATUS(endpoint 0x83) while alt 0 is selected"),
]


@dtest("control-allowlist")
def t_control_allowlist():
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        s = Session(dw.client(), dw.devices[1].object_path, buffer_size=16 * KIB)

        # the vendor request that proves the device is reachable
        data = bytes(range(64))
        got = s.run(control(s, sp(0x40, 0x5B, 0, 0, 64), data, user_data=1))
        expect_status(got[1], 0, "vendor OUT 0x5b", actual=64)
        controls = emu.count("SUBMITURB", type="control")

        for ud, (rtype, req, value, index, length, what) in enumerate(REFUSED, start=10):
            out = bytes(length) if not rtype & 0x80 else b""
            got = s.run(control(s, sp(rtype, req, value, index, length), out, user_data=ud))
            with h.soft(what):
                expect_status(got[ud], -errno.EPERM, what)
        h.check_eq(emu.count("SUBMITURB", type="control"), controls,
                   "control URBs after the refused requests (none reached the device)")

        # TEST_MODE did not reach the device: it still answers, the vendor IN first
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 64), offset=4096, user_data=2))
        expect_status(got[2], 0, "vendor IN 0x5c after the refused requests", actual=64)
        h.check_eq(emu.find("SUBMITURB", type="control")[-1][2]["setup"], sp(0xC0, 0x5C, 0, 0, 64).hex(),
                   "setup packet the device got")
        got = s.run(control(s, sp(0x80, 0, 0, 0, 2), user_data=3))
        expect_status(got[3], 0, "GET_STATUS(device)", actual=2)
        h.check_eq(emu.count("SUBMITURB", type="control"), controls + 2, "control URBs of the allowed requests")

        # endpoints follow the current alternate setting: 0x83 is the claim's in alt 1
        s.call("SetAltSetting", "y", 1)
        got = s.run(control(s, sp(0x82, 0, 0, 0x83, 2), user_data=4))
        expect_status(got[4], -errno.EPIPE, "GET_STATUS(endpoint 0x83) in alt 1 (reaches the device, which stalls)")
        h.check_eq(emu.count("SUBMITURB", type="control"), controls + 3, "control URBs once 0x83 is the claim's")
