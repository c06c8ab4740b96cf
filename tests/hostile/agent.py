#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The hostile suite's client processes (hostile.py starts them with setpriv as
unprivileged uids). Unlike zcusbclient.py's serve loop, each subcommand is one
tight, self-contained job that would be too slow as one JSON round trip per
step: hundreds of bus connections, a doorbell loop, a thread rewriting ring
slots, a listener counting what reaches it.

    agent.py SUBCOMMAND BUS_ADDRESS JSON_PARAMS|@FILE

Each prints one JSON line {"ready": ...} once set up (when the caller has to
wait for that), then one JSON result line, and exits 0; it waits for its stdin
to close first where the caller needs its connections to stay open.

Every D-Bus call has a timeout (params "timeout", default 5 s): a call without
an answer is reported as "NoReply", which hostile.py counts as a hang.
"""

import json
import os
import random
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.dont_write_bytecode = True

import dbus  # noqa: E402
import dbus.types  # noqa: E402
import dbus.mainloop.glib  # noqa: E402

import zcusbclient as zc  # noqa: E402

# zcusbclient.Client listens for Ended: its connection needs a main loop
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

BUS_NAME = "org.zcusb1"
MANAGER_PATH = "/org/zcusb1"
MANAGER_IFACE = "org.zcusb1.Manager"


def out(obj):
    print(json.dumps(obj), flush=True)


def err_name(e):
    """A D-Bus error's name; dbus-python's own timeout is NoReply like the bus's."""
    return e.get_dbus_name() or "unnamed"


def wait_stdin_closed():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass


def plain(v):
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, int):
        return int(v)
    if isinstance(v, dbus.types.UnixFd):
        return "fd"
    return str(v)


# ---------------------------------------------------------------------------
# calls: a list of arbitrary method calls (bus-argument fuzzing, cross-uid)

def cmd_calls(address, p):
    """params: calls = [[path, iface, method, signature, args], ...].
    Result: one [outcome, detail] per call, outcome "ok" or the error name."""
    bus = dbus.bus.BusConnection(address)
    timeout = p.get("timeout", 5)
    results = []
    claim = "/org/zcusb1/claim/none"  # "$CLAIM": the claim this connection made last

    def subst(v):
        return claim if v == "$CLAIM" else v

    for path, iface, method, sig, args in p["calls"]:
        try:
            r = bus.call_blocking(BUS_NAME, subst(path), iface or None, method, sig,
                                  [subst(a) for a in args], timeout=timeout)
            # fds we may have been handed (AllocBuffer/OpenQueue on our own claim) are closed
            for v in (r if isinstance(r, tuple) else [r]):
                if isinstance(v, dbus.types.UnixFd):
                    os.close(v.take())
            if isinstance(r, dbus.ObjectPath) and r.startswith("/org/zcusb1/claim/"):
                claim = str(r)
            results.append(["ok", ""])
        except dbus.DBusException as e:
            results.append([err_name(e), (e.get_dbus_message() or "")[:160]])
        except (TypeError, ValueError, OverflowError) as e:
            # dbus-python refused to marshal it: never sent
            results.append(["not-sent", str(e)[:160]])
    out({"results": results, "name": bus.get_unique_name()})


# ---------------------------------------------------------------------------
# conns: many connections, each trying to claim (bus match-rule limit)

def cmd_conns(address, p):
    """Open params.n connections; each calls ClaimInterface(device, 0). Reports
    the outcomes; keeps the connections open until stdin closes."""
    conns, outcomes, connect_errors = [], {}, {}
    t0 = time.monotonic()
    for _ in range(p["n"]):
        try:
            bus = dbus.bus.BusConnection(address)
        except dbus.DBusException as e:
            connect_errors[err_name(e)] = connect_errors.get(err_name(e), 0) + 1
            continue
        conns.append(bus)
        try:
            bus.call_blocking(BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ClaimInterface", "oy",
                              [p["device"], 0], timeout=p.get("timeout", 5))
            name = "ok"
        except dbus.DBusException as e:
            name = err_name(e)
        outcomes[name] = outcomes.get(name, 0) + 1
    out({"ready": True, "connections": len(conns), "outcomes": outcomes, "connect_errors": connect_errors,
         "seconds": round(time.monotonic() - t0, 2)})
    wait_stdin_closed()
    for b in conns:
        try:
            b.close()
        except Exception:
            pass
    out({"closed": len(conns)})


# ---------------------------------------------------------------------------
# listen: what reaches a peer of this uid

def cmd_listen(address, p):
    """mode "subscribe": Manager.Subscribe() + match rules on org.zcusb1's signals;
    "plain": the match rules only; "eavesdrop": one eavesdrop='true' rule for
    every signal. Collects every signal that arrives; on stdin close prints them."""
    from gi.repository import GLib
    bus = dbus.bus.BusConnection(address)
    got = []
    subscribe = None

    def on_message(_bus, msg):
        if msg.get_type() == 4:  # signal
            got.append([str(msg.get_interface()), str(msg.get_member()), str(msg.get_path()),
                        json.dumps(plain(msg.get_args_list()))[:300]])

    bus.add_message_filter(on_message)
    mode = p["mode"]
    match = None
    if mode == "eavesdrop":
        # The bus's policy refuses this to unprivileged uids: then the peer
        # listens with no match rule at all (unicast signals still reach it).
        try:
            bus.add_match_string("type='signal',eavesdrop='true'")
            match = "ok"
        except dbus.DBusException as e:
            match = err_name(e)
    else:
        bus.add_match_string(f"type='signal',sender='{BUS_NAME}'")
    if mode == "subscribe":
        try:
            bus.call_blocking(BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [], timeout=5)
            subscribe = "ok"
        except dbus.DBusException as e:
            subscribe = err_name(e)
    out({"ready": True, "subscribe": subscribe, "eavesdrop_match": match, "name": bus.get_unique_name()})
    loop = GLib.MainLoop()
    GLib.io_add_watch(0, GLib.IO_IN | GLib.IO_HUP, lambda *a: (loop.quit(), False)[1])
    loop.run()
    out({"signals": got})


# ---------------------------------------------------------------------------
# flood: a broken queue's doorbell rung in a tight loop (journal flood)

def _claim(address, device, interface=0):
    bus_client = zc.Client(address)
    return bus_client, bus_client.claim(device, interface)


def cmd_flood(address, p):
    """Claim, open params.queues queues, break each (sq_tail runs away), then ring
    their doorbells as fast as possible for params.seconds."""
    _, c = _claim(address, p["device"])
    qs = [c.open_queue(8) for _ in range(p.get("queues", 1))]
    for q in qs:
        q.store("sq_tail", q.load("sq_head") + 1000)
        q.ring_doorbell()
    deadline = time.monotonic() + 3
    while not all(q.load("sq_flags") & zc.SQ_BROKEN for q in qs) and time.monotonic() < deadline:
        time.sleep(0.01)
    broken = sum(1 for q in qs if q.load("sq_flags") & zc.SQ_BROKEN)
    out({"ready": True, "broken": broken})
    sys.stdin.buffer.readline()  # "go"
    n, t0 = 0, time.monotonic()
    end = t0 + p["seconds"]
    one = struct.pack("<Q", 1)
    while time.monotonic() < end:
        for q in qs:
            try:
                os.write(q.submit_fd, one)
                n += 1
            except BlockingIOError:
                pass  # the eventfd counter is full: zcusbd is not reading it
    out({"doorbells": n, "seconds": round(time.monotonic() - t0, 2)})
    wait_stdin_closed()


# ---------------------------------------------------------------------------
# doublefetch: a thread rewrites submitted entries and setup packets

# Standard requests zcusbd's check refuses (they change the device for everyone):
# one reaching the device was swapped in after the check. (SET_FEATURE and
# friends are hostile.py's control-requests scenario.)
FORBIDDEN_SETUPS = [
    zc.setup_packet(0x00, 0x05, 42, 0, 0),        # SET_ADDRESS 42
    zc.setup_packet(0x00, 0x09, 2, 0, 0),         # SET_CONFIGURATION 2
    zc.setup_packet(0x01, 0x0B, 1, 0, 0),         # SET_INTERFACE 0 alt 1
]
GET_STATUS = zc.setup_packet(0x80, 0x00, 0, 0, 2)


def cmd_doublefetch(address, p):
    """Submit good entries (NOP, bulk IN, control GET_STATUS) for params.seconds
    while a writer thread keeps rewriting every submission slot with hostile
    entries and the control region's setup packet with forbidden requests.
    Reports what completed; the caller checks what reached the device."""
    _, c = _claim(address, p["device"])
    buf = c.alloc(64 * 1024)
    q = c.open_queue(16)
    stop = threading.Event()
    rewrites = [0]
    rnd = random.Random(p.get("seed", 1))
    ctrl_off = 4096   # the control transfers' region: 8-byte setup + 2 bytes

    def writer():
        hostile = [
            zc.make_sqe(zc.OP_BULK, 0x02, 0, 9, 1 << 50, 1 << 20, user_data=0xBAD),
            zc.make_sqe(zc.OP_CONTROL, 0, 0, buf.id, ctrl_off, 8, user_data=0xBAD1),
            zc.make_sqe(zc.OP_BULK, 0x81, 0, buf.id, 60 * 1024, 8192, user_data=0xBAD2),
            zc.make_sqe(zc.OP_CANCEL, cancel_user_data=1, user_data=0xBAD3),
            bytes(rnd.getrandbits(8) for _ in range(zc.SQE.size)),
        ]
        while not stop.is_set():
            for i in range(q.sq_entries):
                q.write_slot(i, hostile[(i + rewrites[0]) % len(hostile)])
            buf.map[ctrl_off:ctrl_off + 8] = FORBIDDEN_SETUPS[rewrites[0] % len(FORBIDDEN_SETUPS)]
            rewrites[0] += 1
            buf.map[ctrl_off:ctrl_off + 8] = GET_STATUS

    out({"ready": True})
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    # The writer races the submitter for every slot: zcusbd may take our entry
    # or the writer's. Either way each entry it takes (sq_head) must get
    # exactly one completion, and only checked requests may reach the device.
    submitted, completions, statuses = 0, 0, {}
    ud = 1

    def reap(n, timeout):
        nonlocal completions
        for cqe in q.wait(n, timeout):
            completions += 1
            statuses[str(cqe["status"])] = statuses.get(str(cqe["status"]), 0) + 1

    end = time.monotonic() + p["seconds"]
    while time.monotonic() < end:
        batch = []
        for k in range(4):
            kind = (ud + k) % 3
            if kind == 0:
                batch.append(zc.make_sqe(zc.OP_NOP, user_data=ud + k))
            elif kind == 1:
                batch.append(zc.make_sqe(zc.OP_BULK, 0x81, 0, buf.id, 0, 4096, user_data=ud + k))
            else:
                batch.append(zc.make_sqe(zc.OP_CONTROL, 0, 0, buf.id, ctrl_off, 10, user_data=ud + k))
        n, _ = q.submit(batch, doorbell="always")
        ud += 4
        submitted += n
        reap(1, 1.0)
    stop.set()
    th.join()
    deadline = time.monotonic() + 5
    while completions < q.load("sq_head") and time.monotonic() < deadline:
        q.ring_doorbell()
        reap(1, 0.5)
    st = q.state()
    out({"submitted": submitted, "taken": st["sq_head"], "completions": completions, "rewrites": rewrites[0],
         "statuses": statuses, "broken": bool(st["sq_flags"] & zc.SQ_BROKEN)})


# ---------------------------------------------------------------------------
# churn: claim, alloc, open, transfer, release, as fast as it goes

def cmd_churn(address, p):
    """params.cycles claim/alloc/open/NOP/release cycles (or params.seconds,
    whichever ends first); every params.drop_every cycles the connection is
    dropped without releasing and a new one made."""
    outcomes = {}
    cycles = 0
    end = time.monotonic() + p["seconds"]
    client = zc.Client(address)
    while cycles < p["cycles"] and time.monotonic() < end:
        cycles += 1
        step = "claim"
        try:
            c = client.claim(p["device"], 0)
            step = "alloc"
            c.alloc(4096 * (1 + cycles % 16))
            step = "open"
            q = c.open_queue(1 << (cycles % 5))
            step = "nop"
            q.submit([zc.make_sqe(zc.OP_NOP, user_data=cycles)], doorbell="always")
            if not q.wait(1, 5):
                outcomes["NOP without completion"] = outcomes.get("NOP without completion", 0) + 1
            for b in list(c.buffers.values()):
                b.close()
            for qq in list(c.queues.values()):
                qq.close()
            if p.get("drop_every") and cycles % p["drop_every"] == 0:
                client.bus.close()
                client = zc.Client(address)
                name = "dropped connection"
            else:
                step = "release"
                c.iface.Release(timeout=p.get("timeout", 5))
                name = "released"
        except dbus.DBusException as e:
            name = f"{step}: {err_name(e)}"
        outcomes[name] = outcomes.get(name, 0) + 1
    out({"cycles": cycles, "outcomes": outcomes})


COMMANDS = {"calls": cmd_calls, "conns": cmd_conns, "listen": cmd_listen, "flood": cmd_flood,
            "doublefetch": cmd_doublefetch, "churn": cmd_churn}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in COMMANDS:
        print(f"usage: {sys.argv[0]} {{{','.join(COMMANDS)}}} BUS_ADDRESS JSON", file=sys.stderr)
        sys.exit(2)
    arg = sys.argv[3]
    if arg.startswith("@"):   # large parameters come in a file
        with open(arg[1:]) as f:
            arg = f.read()
    COMMANDS[sys.argv[1]](sys.argv[2], json.loads(arg))
