# SPDX-License-Identifier: LGPL-2.1-or-later
"""zcusbctl end to end against the real zcusbd and the usbfs emulator, for what
issue #14 found "as a new user would": a halted endpoint is recovered with
`zcusbctl clear-halt`, and a device that cannot be found reads the same from
every command. Registers with datapath's tests."""

import datapath
from datapath import DataWorld, dtest

GONE = "1234:5678"  # matches nothing
NO_SUCH_DEVICE = (f"{GONE}: no such device, or you may not see it; "
                  "'zcusbctl list' shows the devices you may see")


@dtest("ctl-clear-halt")
def t_ctl_clear_halt():
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        dev = dw.devices[1].object_path
        nobody = h.as_user()

        emu.stall(0x81)
        r = dw.w.ctl("read", dev, "-i", "0", "-e", "0x81", "--bytes", "4096", user=nobody, expect=6)
        h.check_in("zcusbctl clear-halt DEVICE --interface N --endpoint EP", r.err, "the fix a stall names")
        # The halt outlives the claim: a new reader still stalls.
        dw.w.ctl("read", dev, "-i", "0", "-e", "0x81", "--bytes", "4096", user=nobody, expect=6)

        r = dw.w.ctl("clear-halt", dev, "-i", "0", "-e", "0x81", user=nobody)
        h.check_in("Cleared the halt of endpoint 0x81 of interface 0", r.out, "clear-halt output")
        h.check_eq(emu.find("CLEAR_HALT")[-1][2], {"ep": 0x81, "result": 0}, "CLEAR_HALT the device got")
        r = dw.w.ctl("read", dev, "-i", "0", "-e", "0x81", "--bytes", "4096", user=nobody)
        h.check_in("4096 bytes in", r.out, "read after clear-halt")

        r = dw.w.ctl("--json", "clear-halt", dev, "-i", "0", "-e", "0x02", user=nobody)
        h.check_eq(r.json(), {"endpoint": 2, "cleared": True}, "clear-halt --json")

        # Usage errors name the fix and touch nothing.
        n = len(emu.find("CLEAR_HALT"))
        r = dw.w.ctl("clear-halt", dev, "-i", "0", user=nobody, expect=2)
        h.check_in("needs --endpoint", r.err, "clear-halt without --endpoint")
        r = dw.w.ctl("clear-halt", dev, "-i", "0", "-e", "0x85", user=nobody, expect=2)
        h.check_in("lists the endpoints", r.err, "clear-halt of an endpoint the interface lacks")
        r = dw.w.ctl("clear-halt", dev, "-i", "0", "-e", "0", user=nobody, expect=2)
        h.check_eq(len(emu.find("CLEAR_HALT")), n, "CLEAR_HALTs after refused commands")
        r = dw.w.ctl("clear-halt", "--help", user=nobody)
        h.check_in("Usage: zcusbctl clear-halt", r.out, "clear-halt --help")


@dtest("ctl-no-such-device")
def t_ctl_no_such_device():
    """One sentence for "no such device" whichever command resolves the name
    (info in zcusbctl, read/write/control/clear-halt through libzcusb)."""
    h = datapath.h
    with DataWorld() as dw:
        nobody = h.as_user()
        for argv in (["info", GONE],
                     ["read", GONE, "-i", "0", "-e", "0x81", "--bytes", "1"],
                     ["write", GONE, "-i", "0", "-e", "0x02", "--pattern", "zeros", "--bytes", "1"],
                     ["control", GONE, "-i", "0", "--request-type", "0xc0", "--request", "0x5c"],
                     ["clear-halt", GONE, "-i", "0", "-e", "0x81"]):
            r = dw.w.ctl(*argv, user=nobody, expect=3)
            h.check_eq(r.err.strip(), "zcusbctl: " + NO_SUCH_DEVICE, f"zcusbctl {argv[0]}: the sentence")
