#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A hostile client of an in-kernel queue (tests/vm/cases/77-kernel-queues.sh).

  hostile-kqueue.py DEVICE_PATH SECONDS [SERVED_BY]

Claims interface 0 of DEVICE_PATH (the Loopback gadget, bulk 0x81/0x02) on the
system bus, checks the claim says ServedBy "kernel", then for SECONDS:
one thread keeps transfers in flight and floods garbage entries, another
rewrites submitted slots, a third rings the doorbell without pause (the
module runs a pass in the context of whoever rings); then the indices are
tampered with (cq_head ahead, sq_tail far ahead: the ring must say BROKEN);
then a second queue is closed (CloseQueue) while a thread rings its doorbell
without pause: the detach waits for the pass queued on that thread, and must
return promptly. The pure-Python client of
tests/integration/zcusbclient.py does the ring work. Prints one JSON line;
exit 0 when the claim is served as SERVED_BY says (default "kernel"),
completions came and (kernel-served) the ring was marked BROKEN, 1 otherwise.
"""

import json
import os
import random
import sys
import threading
import time

# run-vm.sh puts tests/integration/zcusbclient.py beside this file in the guest
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import zcusbclient as zc  # noqa: E402

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"


def main():
    device, seconds = sys.argv[1], float(sys.argv[2])
    want_served = sys.argv[3] if len(sys.argv) > 3 else "kernel"
    import dbus.mainloop.glib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)  # zcusbclient listens for Ended
    client = zc.Client(SYSTEM_BUS)
    claim = client.claim(device, 0)
    buf = claim.alloc(1 << 20)
    q = claim.open_queue(64)
    served = str(claim.props().get("ServedBy", "?"))
    rnd = random.Random(12)
    stop = time.monotonic() + seconds
    stats = {"served_by": served, "submitted": 0, "garbage": 0, "rewrites": 0, "completions": 0,
             }

    def rewriter():
        while time.monotonic() < stop:
            i = rnd.randrange(1 << 16)
            q.write_slot(i, os.urandom(64))
            stats["rewrites"] += 1
            time.sleep(0)

    def ringer(queue, until):
        while not until():
            try:
                queue.ring_doorbell()
            except OSError:
                return
            stats["doorbells"] += 1

    stats["doorbells"] = 0
    t = threading.Thread(target=rewriter, daemon=True)
    t.start()
    r = threading.Thread(target=ringer, args=(q, lambda: time.monotonic() >= stop), daemon=True)
    r.start()
    ud = 1
    while time.monotonic() < stop:
        raws = []
        for _ in range(8):
            if rnd.random() < 0.5:
                raws.append(os.urandom(64))
                stats["garbage"] += 1
            else:
                ep = 0x81 if rnd.random() < 0.5 else 0x02
                raws.append(zc.make_sqe(opcode=zc.OP_BULK, endpoint=ep, buffer_id=buf.id,
                                        offset=rnd.randrange(0, 1 << 20, 512), length=512, timeout_ms=50,
                                        user_data=ud))
                ud += 1
        n, _ = q.submit(raws)
        stats["submitted"] += n
        stats["completions"] += len(q.reap())
        time.sleep(0.001)
    t.join()
    r.join()
    # index tampering: a cq_head beyond what was posted, then an sq_tail far ahead
    q.store("cq_head", (q.load("cq_tail") + 1000) & 0xFFFFFFFF)
    q.submit([os.urandom(64)], doorbell="always")
    q.store("sq_tail", (q.load("sq_head") + 100000) & 0xFFFFFFFF)
    q.ring_doorbell()
    for _ in range(100):
        if q.load("sq_flags") & zc.SQ_BROKEN:
            break
        time.sleep(0.02)
    stats["broken"] = bool(q.load("sq_flags") & zc.SQ_BROKEN)
    for _ in range(2000):
        q.ring_doorbell()
    # a second queue closed while another thread rings its doorbell
    import dbus
    q2 = claim.open_queue(64)
    done = threading.Event()
    r2 = threading.Thread(target=ringer, args=(q2, done.is_set), daemon=True)
    r2.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    claim.iface.CloseQueue(dbus.UInt32(q2.id))
    stats["close_while_ringing_ms"] = round((time.monotonic() - t0) * 1000)
    done.set()
    r2.join()
    print(json.dumps(stats), flush=True)
    # zcusbd checks for completion room before it reads sq_tail: with the bogus cq_head it stops
    # serving the ring without reading sq_tail again, so BROKEN is the module's check here.
    ok = (stats["broken"] or want_served != "kernel") and served == want_served and stats["completions"] > 0 \
        and stats["close_while_ringing_ms"] < 10000
    os._exit(0 if ok else 1)  # no release: the claim ends with the connection


if __name__ == "__main__":
    main()
