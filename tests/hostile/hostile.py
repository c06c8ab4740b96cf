#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""zcusb's standing hostile-client suite (issue #16).

The real zcusbd on a private system bus with the system bus's limits, usbfs
emulated on umockdev devices (tests/integration's machinery, imported, not
copied), attacked by unprivileged clients in bounded scenarios. At the end a
table says, per scenario, what was tried, what came back, and what zcusbd
looked like before and after (alive, fds, RSS, quota).

Usage (meson runs it under umockdev-wrapper, suite 'hostile'):
    umockdev-wrapper python3 hostile.py [SCENARIO...]     default: all
    python3 hostile.py --list
Exit status: 0 every scenario passed, 1 one failed, 77 skip (host lacks a tool).

Environment:
    ZCUSB_HOSTILE_SCALE=F    multiply counts and durations (default 1; CI uses 1,
                             e.g. 10 for a long soak)
    ZCUSB_HOSTILE_SEED=N     seed of the random choices (default 16; printed)
    ZCUSB_HOSTILE_SCENARIOS=a,b  only these (same as naming them)
    plus what tests/integration/zcusbtest.py reads (ZCUSBD, ZCUSB_SOURCE_ROOT, ...).

A scenario FAILS on: zcusbd exiting or crashing (sanitizer report), a call
without an answer (hang), an error name outside the allowed set below, fds not
back to the baseline, the byte quota not back to 0 (a probe client must get
the whole global quota), RSS growth past the scenario's bound (judged only
when zcusbd is not an ASan build: ASan's allocator grows RSS on its own;
LeakSanitizer judges leaks there, at zcusbd's exit), a log flood, and the
scenario's own checks.

Error names a hostile caller may get (anything else is "unnamed" and fails):
    org.zcusb1.Error.*                         zcusbd's own, each with a sentence
    org.freedesktop.DBus.Error.InvalidArgs     sd-bus: wrong signature for the method
    org.freedesktop.DBus.Error.UnknownMethod   sd-bus: no such method
    org.freedesktop.DBus.Error.UnknownObject   sd-bus: no such object
    org.freedesktop.DBus.Error.UnknownInterface  sd-bus: object lacks the interface
    org.freedesktop.DBus.Error.UnknownProperty / PropertyReadOnly  sd-bus properties
    org.freedesktop.DBus.Error.AccessDenied    the bus's policy
Never allowed: NoReply / Timeout (a hang), ServiceUnknown / NameHasNoOwner /
Disconnected (zcusbd gone), System.Error.* and NoMemory/Failed (an errno leaked
out unnamed).
"""

import os
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostile_rig as rig  # noqa: E402
import hostile_bus  # noqa: E402,F401  (registers its scenarios)
import hostile_data  # noqa: E402,F401
from hostile_rig import SCALE, SEED, SCENARIOS, Row, dbus, h, is_asan_build, log, print_table  # noqa: E402

# The order they run and are listed in: the measured ones (idle CPU, usbfs
# memory) last.
ORDER = ["bus-args", "cross-uid", "ring-garbage", "double-fetch", "claim-churn", "many-clients", "kill-storm",
         "fd-limits", "transfer-memory", "control-requests", "signal-scoping", "log-flood", "idle-cpu",
         "enomem-stall"]
assert sorted(ORDER) == sorted(SCENARIOS), "every scenario has its place in ORDER"


# ---------------------------------------------------------------------------

def main(argv):
    if len(argv) == 2 and argv[1] == "--list":
        for n in ORDER:
            what = SCENARIOS[n][1]
            print(f"{n:17} {what}")
        return 0
    names = argv[1:] or [n.strip() for n in os.environ.get("ZCUSB_HOSTILE_SCENARIOS", "").split(",") if n.strip()]
    names = names or ORDER
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {' '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if "libumockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        h._skip("not running under umockdev-wrapper (LD_PRELOAD lacks libumockdev-preload)")
    for tool in ("dbus-daemon", "setpriv", "readelf"):
        if not h.shutil.which(tool):
            h._skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        h._skip("must run as root (zcusbd is a root daemon; setpriv switches uids)")
    os.environ.setdefault("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=1")
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    rig.ASAN = is_asan_build(h.exe("ZCUSBD"))
    # meson kills the test at 900 s: say where it hung first
    h.faulthandler.dump_traceback_later(870, exit=False)
    log(f"hostile suite: {len(names)} scenario(s), scale {SCALE}, seed {SEED}, zcusbd "
        f"{h.exe('ZCUSBD')} ({'ASan build: RSS not judged' if rig.ASAN else 'plain build: RSS judged'})")
    rows = []
    for n in names:
        fn, what = SCENARIOS[n]
        row = Row(n, what)
        log(f"=== {n}: {what}")
        t0 = time.monotonic()
        try:
            fn(row)
        except Exception as e:   # a failure outside the world (e.g. its set-up)
            row.fail(f"aborted: {type(e).__name__}: {str(e)[:300]}")
            log(traceback.format_exc())
        row.seconds = time.monotonic() - t0
        log(f"=== {n}: {row.verdict} ({row.seconds:.0f} s)")
        rows.append(row)
    print("", flush=True)
    print_table(rows)
    failed = [r.name for r in rows if r.problems]
    print(f"\nhostile suite: {len(rows) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
