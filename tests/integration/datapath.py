"""Tier-2 data-path tests: the real zcusbd, a usbfs emulator on the umockdev
device node (usbfs_emu.py), and clients speaking the D-Bus API and the ring ABI
(zcusbclient.py) as separate processes, as unprivileged users.

zcusbtest.py imports this module and calls register(itself): the tests use its
harness (World, the private bus, logging, checks) and land in its registry.
Here: the world (DataWorld, Session) and the tests of transfers that go right;
datapath_robust.py has those of what goes wrong (hostile clients, unplug, quotas).
"""

import errno
import json
import os
import subprocess
import time

import fixtures
import registry
import usbfs_emu
import zcusbclient as zc
from zcusbclient import RemoteDBusError

h = None  # the zcusbtest module, set by register()
_TESTS, dtest = registry.collector()

CLAIM_IFACE = "org.zcusb1.Claim"
KIB, MIB = 1024, 1024 * 1024
ALLOWED = "nobody,daemon"  # uid 65534 and uid 1 (dbus-daemon wants passwd entries)
NOBODY, DAEMON_UID = 65534, 1


def queue_charge(header):
    """What OpenQueue charges: the ring memfd and zcusbd's own memory for the
    queue (a completion backlog slot and a held entry per completion slot)."""
    return header["ring_size"] + header["cq_entries"] * (header["sqe_size"] + header["cqe_size"])


def register(harness):
    global h
    h = harness
    harness.TESTS.update(_TESTS)


# ---------------------------------------------------------------------------
# ABI cross-check (zcusb-abi-dump, built by meson from the real headers)

_abi_checked = False


def check_abi():
    global _abi_checked
    if _abi_checked:
        return
    path = os.environ.get("ZCUSB_ABI_DUMP")
    if not path:
        h.log("ZCUSB_ABI_DUMP not set: ring/usbfs constants are the hand-verified ones")
        _abi_checked = True
        return
    r = subprocess.run([path], capture_output=True, text=True, check=True)
    abi = json.loads(r.stdout)
    bad = zc.check_abi(abi) + usbfs_emu.check_abi(abi)
    h.check(not bad, "the tests' ABI constants disagree with the headers:\n  " + "\n  ".join(bad))
    h.log(f"ABI constants match the headers (sqe {abi['sizeof struct zcusb_sqe']}, cqe "
          f"{abi['sizeof struct zcusb_cqe']}, iso packet {abi['sizeof struct zcusb_iso_packet']}, "
          f"usbdevfs_urb {abi['sizeof struct usbdevfs_urb']})")
    _abi_checked = True


# ---------------------------------------------------------------------------
# the world of a data-path test

def gadget(devnum=3, port="1", allow=ALLOWED, iface_props=None, **props):
    p = {"ZCUSB_ENABLE": "1", "ZCUSB_ALLOW_USERS": allow}
    p.update(props)
    return fixtures.gadget_zero(devnum=devnum, port=port, iface_props=iface_props, **p)


class DataWorld:
    """World (testbed + bus + zcusbd) with usbfs emulators attached to the given
    devices BEFORE zcusbd starts; clients as separate processes.

    On exit: clients closed, the emulators must have seen no daemon misbehaviour,
    zcusbd's log must have no "bug" line, and zcusbd must exit 0 on SIGTERM
    (an ASan/LSan report makes that fail).

    The emulated controller takes no scatter-gather lists unless SCATTER_GATHER
    (dummy_hcd and xHCI do): zcusbd then splits bulk transfers larger than
    256 KiB, which the tests of splitting are written for; with it, larger
    than 1 MiB."""

    def __init__(self, devices=None, emulate=None, config="", always_ready=False, scatter_gather=False):
        caps = usbfs_emu.CAPABILITIES
        if not scatter_gather:
            caps &= ~usbfs_emu.CAP_BULK_SCATTER_GATHER
        check_abi()
        self.devices = devices or [fixtures.root_hub(), gadget()]
        self.w = h.World(self.devices, start=False)
        self.emus = {}
        self.clients = []
        try:
            for d in (emulate if emulate is not None else
                      [d for d in self.devices if (d.vid, d.pid) == (0x0525, 0xA4A0)]):
                self.emus[d.devnum] = usbfs_emu.UsbfsEmulator(self.w.tb.tb, d, log=h.log,
                                                              always_ready=always_ready,
                                                              capabilities=caps).attach()
            self.w.start(h.TEST_CONFIG + config)
        except BaseException:
            self.w.__exit__(None, None, None)
            raise

    @property
    def emu(self):
        return self.emus[3]

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        text = ""
        try:
            for c in self.clients:
                try:
                    c.close()
                except Exception as e:
                    h.log(f"closing {c.name}: {e}")
            for emu in self.emus.values():
                h.log("emulator " + emu.summary())
            if et is None:
                for emu in self.emus.values():
                    h.check(not emu.errors, f"usbfs emulator {emu.devnode} saw daemon misbehaviour:\n  " +
                            "\n  ".join(emu.errors))
            d = self.w.daemon
            if d is not None and d.rc is None:
                rc, _ = d.stop()
                with open(d.errpath, errors="replace") as f:
                    text = f.read()
                if et is None:
                    check_sanitizers(text)
                    h.check_eq(rc, 0, "zcusbd exit code after SIGTERM")
            elif d is not None:
                with open(d.errpath, errors="replace") as f:
                    text = f.read()
        finally:
            self.w.__exit__(et, ev, tb)
            for emu in self.emus.values():
                emu.detach()
        if et is None:
            bugs = [l for l in text.splitlines() if " bug" in l or "leaves" in l or "lost" in l]
            h.check(not bugs, "zcusbd logged internal errors:\n  " + "\n  ".join(bugs))
        return False

    def client(self, uid=NOBODY, gid=None, name=None):
        user = None if uid == 0 else h.as_user(uid=uid, gid=gid if gid is not None else uid)
        n = name or f"client{len(self.clients) + 1}"
        c = zc.RemoteClient(self.w.bus.address, user=user, env=h.clean_env(), pump=h.iterate, log=h.log,
                            name=n, preexec=h._die_with_us,
                            stderr_path=os.path.join(self.w.workdir, f"{n}.stderr"))
        self.clients.append(c)
        return c

    def daemon_log(self):
        return self.w.daemon.stderr()

    def wait_log(self, text, timeout=5):
        return h.wait_until(lambda: text in self.daemon_log(), timeout, f"zcusbd to log {text!r}")


def check_sanitizers(text):
    """An ASan/UBSan/LSan report in zcusbd's output fails the test, naming it."""
    lines = [l.strip(" |") for l in text.splitlines()
             if "ERROR: " in l and "Sanitizer" in l or "SUMMARY: " in l or "runtime error:" in l]
    h.check(not lines, "zcusbd sanitizer report:\n  " + "\n  ".join(lines))


class Session:
    """One client's claim with a buffer and a queue: the usual set-up."""

    def __init__(self, client, device, interface=0, buffer_size=64 * KIB, entries=64):
        self.c = client
        r = client("claim", device=device, interface=interface)
        self.claim, self.path = r["claim"], r["path"]
        self.buffers = []
        self.buf = self.bid = None
        if buffer_size:
            self.buf, self.bid, self.size = self.alloc(buffer_size)
        self.q = None
        if entries:
            r = client("open_queue", claim=self.claim, entries=entries)
            self.q, self.qid, self.header = r["queue"], r["id"], r["header"]
        self.next_user_data = 1

    def alloc(self, size):
        r = self.c("alloc", claim=self.claim, size=size)
        self.buffers.append(r)
        return r["buffer"], r["id"], r["size"]

    def props(self):
        return self.c("props", claim=self.claim)

    def call(self, method, signature="", *args):
        return self.c("call", claim=self.claim, method=method, signature=signature, args=list(args))

    def sqe(self, **kw):
        kw.setdefault("buffer_id", self.bid)
        if "user_data" not in kw:
            kw["user_data"] = self.next_user_data
            self.next_user_data += 1
        return kw

    def submit(self, *sqes, doorbell="rule", queue=None, expect_taken=True):
        """Publish entries following the doorbell rule of zcusb-ring.h, then (unless
        told otherwise) check that zcusbd took them off the ring within 1 s. If it did
        not, that is reported once per test as a daemon failure (the rule let the
        client skip the doorbell, yet zcusbd does not look), and the doorbell is rung
        anyway so that the test can go on to its other checks."""
        q = queue or self.q
        r = self.c("submit", queue=q, sqes=list(sqes), doorbell=doorbell)
        h.check_eq(r["submitted"], len(sqes), "entries the submission ring took")
        if not expect_taken:
            return r
        tail = r["tail"]

        def taken():
            st = self.c("state", queue=q, quiet=True)
            return st["sq_head"] == tail or st["sq_flags"] & zc.SQ_BROKEN
        deadline = time.monotonic() + 1.0
        while not taken():
            if time.monotonic() > deadline:
                break
            h.sleep_iterating(0.02)
        else:
            return r
        st = self.c("state", queue=q)
        with h.soft("doorbell rule", once="doorbell rule (zcusb-ring.h) leaves entries untaken"):
            raise h.TestFailure(
                f"{len(sqes)} entries published (sq_tail {tail}) while transfers of the queue were in "
                f"flight: sq_flags {st['sq_flags']:#x} (NEED_WAKEUP clear, so the rule says no doorbell), "
                f"but zcusbd has not taken them after 1 s (sq_head {st['sq_head']})")
        self.c("doorbell", queue=q)
        h.wait_until(taken, 3, "zcusbd to take the entries after an explicit doorbell", interval=0.02)
        return r

    def wait(self, n, timeout=10, queue=None):
        got = self.c("wait", queue=queue or self.q, n=n, timeout=timeout, quiet=n > 8,
                     timeout_rpc=timeout + 10)
        if n > 8:
            h.log(f"[{self.c.name}]   -> {len(got)} completions, statuses "
                  f"{sorted(set(c['status'] for c in got))}")
        h.check(len(got) >= n, f"{n} completions within {timeout}s: got {len(got)}: {got[:8]}")
        return got

    def run(self, *sqes, timeout=10):
        """Submit and wait for exactly these completions; returns them by user_data."""
        self.submit(*sqes)
        got = self.wait(len(sqes), timeout)
        h.check_eq(len(got), len(sqes), "number of completions")
        return {c["user_data"]: c for c in got}

    def state(self, queue=None):
        return self.c("state", queue=queue or self.q)

    def verify(self, offset, length, pattern_offset, buf=None):
        return self.c("verify", buffer=buf or self.buf, offset=offset, length=length,
                      pattern_offset=pattern_offset)


def bulk_in(s, length, offset=0, **kw):
    return s.sqe(opcode=zc.OP_BULK, endpoint=0x81, offset=offset, length=length, **kw)


def bulk_out(s, length, offset=0, **kw):
    return s.sqe(opcode=zc.OP_BULK, endpoint=0x02, offset=offset, length=length, **kw)


def expect_status(cqe, status, what, actual=None):
    h.check_eq(cqe["status"], status, f"{what}: completion status ({errno_name(cqe['status'])})")
    if actual is not None:
        h.check_eq(cqe["actual_length"], actual, f"{what}: actual_length")


def errno_name(status):
    return "0" if status == 0 else f"-{errno.errorcode.get(-status, status)}"


def dbus_error(fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except RemoteDBusError as e:
        return e.name, e.message
    raise h.TestFailure(f"expected a D-Bus error, got the reply {r!r}")


# ---------------------------------------------------------------------------
# helpers for the tests below

def wait_queued(emu, ep, n, timeout=5):
    """Wait until n URBs sit (held) at the emulated device on ep."""
    h.wait_until(lambda: len(emu.held_urbs(ep)) >= n, timeout,
                 f"{n} URB(s) held at {emu.devnode} ep {ep:#04x} (have {len(emu.held_urbs(ep))})")
    return emu.held_urbs(ep)


def signals(c, wait=0.0, want=None, timeout=5):
    """The client's Ended signals; with want=(path, reason), wait for that one."""
    if want is None:
        return c("signals", wait=wait)
    deadline = time.monotonic() + timeout
    while True:
        got = c("signals", wait=0.2, quiet=True)
        if any(s[1] == want[0] and s[2] == want[1] for s in got):
            c.log(f"[{c.name}] got signal Ended({want[1]!r}) for {want[0]}")
            return got
        if time.monotonic() > deadline:
            raise h.TestFailure(f"{c.name} did not receive Ended({want[1]!r}) for {want[0]}: {got}")


def claim_gone(dw, path):
    """Asked by root: True when zcusbd has no claim at path (it says "No claim
    PATH."; UnknownObject would say the same), False while the claim exists
    (root gets AccessDenied from another connection's claim). Any other answer
    fails the test: it is neither."""
    try:
        dw.w.bus.conn.call_blocking("org.zcusb1", path, "org.freedesktop.DBus.Properties", "GetAll", "s",
                                    [CLAIM_IFACE], timeout=5)
    except h.dbus.DBusException as e:
        name, message = e.get_dbus_name(), e.get_dbus_message() or ""
        if (name == "org.zcusb1.Error.InvalidArgument" and f"No claim {path}" in message) or \
                name == "org.freedesktop.DBus.Error.UnknownObject":
            return True
        if name == "org.zcusb1.Error.AccessDenied":
            return False
        raise h.TestFailure(f"GetAll on {path} as root: {name}: {message}, neither 'no such claim' nor "
                            "'not yours'")
    return False


def two_gadgets(allow=ALLOWED, **props2):
    """The standard gadget at 001:003 and a second one at 001:006."""
    return [fixtures.root_hub(), gadget(allow=allow), gadget(devnum=6, port="4", allow=allow, **props2)]


def iso_descriptors(lengths):
    return b"".join(zc.ISO_PACKET.pack(n, 0, 0, 0) for n in lengths)


def b64(data):
    import base64
    return base64.b64encode(data).decode()


def unb64(text):
    import base64
    return base64.b64decode(text)


# ---------------------------------------------------------------------------
# the tests

@dtest("claim")
def t_claim():
    gz = gadget()
    busy = gadget(devnum=6, port="4")
    busy.configs[0].interfaces[0].driver = "usbtest"
    detach = gadget(devnum=7, port="5", ZCUSB_DETACH="1")
    detach.configs[0].interfaces[0].driver = "usbtest"
    with DataWorld([fixtures.root_hub(), gz, busy, detach]) as dw:
        emu, emu_busy, emu_detach = dw.emus[3], dw.emus[6], dw.emus[7]
        a = dw.client(NOBODY, name="nobody")
        other = dw.client(DAEMON_UID, name="daemon")

        # ClaimInterface as an allowed unprivileged user
        r = a("claim", device=gz.object_path, interface=0)
        cl, path = r["claim"], r["path"]
        h.check(path.startswith("/org/zcusb1/claim/c"), f"claim object path {path!r}")
        h.check_eq([(c[1], c[2].get("ifno")) for c in emu.find() if c[1] != "GET_CAPABILITIES"],
                   [("GETDRIVER", 0), ("CLAIMINTERFACE", 0)], "usbfs ioctls of a claim")
        p = a("props", claim=cl)
        want = {"Device": gz.object_path, "Interface": 0, "AltSetting": 0, "Backend": "usbfs", "ServedBy": "daemon",
                "QuotaBytes": 256 * MIB, "UsedBytes": 0, "InFlight": 0, "Buffers": 0, "Queues": 0,
                "Submitted": 0, "Completed": 0, "Failed": 0, "BytesIn": 0, "BytesOut": 0}
        h.check_eq(p, want, "Claim properties of a fresh claim")
        b = a("alloc", claim=cl, size=10000)
        h.check_eq((b["id"], b["size"]), (1, 12288), "AllocBuffer(10000): (id, size rounded to pages)")
        q = a("open_queue", claim=cl, entries=8)
        ring = queue_charge(q["header"])
        p = a("props", claim=cl)
        h.check_eq((p["UsedBytes"], p["Buffers"], p["Queues"]), (12288 + ring, 1, 1),
                   "(UsedBytes, Buffers, Queues) after a buffer and a queue")
        with h.soft("AllocBuffer(0) / OpenQueue(3)"):
            h.check_eq(dbus_error(a, "alloc", claim=cl, size=0)[0], "org.zcusb1.Error.InvalidArgument",
                       "AllocBuffer(0)")
            h.check_eq(dbus_error(a, "open_queue", claim=cl, entries=3)[0], "org.zcusb1.Error.InvalidArgument",
                       "OpenQueue(3)")

        # another user (and root, and another connection of the same user) may not touch it
        for who, c in (("uid 1", other), ("another nobody connection", dw.client(NOBODY, name="nobody2"))):
            for method, sig, args in (("AllocBuffer", "t", [4096]), ("FreeBuffer", "u", [1]),
                                      ("OpenQueue", "u", [8]), ("SetAltSetting", "y", [1]),
                                      ("ClearHalt", "y", [0x81]), ("Release", "", [])):
                err = dbus_error(c, "dbus", path=path, iface=CLAIM_IFACE, method=method, signature=sig, args=args)
                h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", f"{method} on someone else's claim as {who}")
            err = dbus_error(c, "dbus", path=path, iface="org.freedesktop.DBus.Properties", method="GetAll",
                             signature="s", args=[CLAIM_IFACE])
            h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", f"GetAll on someone else's claim as {who}")
        try:
            dw.w.bus.conn.call_blocking("org.zcusb1", path, CLAIM_IFACE, "Release", "", [])
            raise h.TestFailure("root released someone else's claim")
        except h.dbus.DBusException as e:
            h.check_eq(e.get_dbus_name(), "org.zcusb1.Error.AccessDenied", "Release of someone else's claim by root")
        h.check_eq(a("props", claim=cl)["Buffers"], 1, "the claim is intact after the attempts")

        # Busy: the same interface again, by someone else and by the owner
        err = dbus_error(other, "claim", device=gz.object_path, interface=0)
        h.check_eq(err[0], "org.zcusb1.Error.Busy", "second claim of the interface by another user")
        err = dbus_error(a, "claim", device=gz.object_path, interface=0)
        h.check_eq(err[0], "org.zcusb1.Error.Busy", "second claim of the interface by its owner")
        # no such interface
        err = dbus_error(a, "claim", device=gz.object_path, interface=5)
        h.check_eq(err[0], "org.zcusb1.Error.InvalidArgument", "claim of interface 5 (there is none)")
        with h.soft("ClaimInterface by a user the policy does not name"):
            bin_ = dw.client(2, name="bin")
            err = dbus_error(bin_, "claim", device=gz.object_path, interface=0)
            h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", "claim by uid 2")

        # a kernel driver is bound and the device does not allow detaching it
        mark = emu_busy.mark()
        err = dbus_error(a, "claim", device=busy.object_path, interface=0)
        h.check_eq(err[0], "org.zcusb1.Error.Busy", "claim of an interface bound to usbtest (no ZCUSB_DETACH)")
        h.check_in("usbtest", err[1], "the Busy message names the driver")
        h.check_eq([c[1] for c in emu_busy.find(since=mark) if c[1] != "GET_CAPABILITIES"], ["GETDRIVER"],
                   "usbfs ioctls when the driver may not be detached")
        h.check_eq(emu_busy.drivers.get(0), "usbtest", "usbtest still bound")

        # ZCUSB_DETACH=1: detached on claim, re-attached on release
        r = a("claim", device=detach.object_path, interface=0)
        ops = [(c[1], c[2].get("driver"), c[2].get("result")) for c in emu_detach.find()
               if c[1] not in ("GET_CAPABILITIES",)]
        h.check_eq(ops, [("GETDRIVER", "usbtest", 0), ("DISCONNECT_CLAIM", "usbfs", 0)],
                   "usbfs ioctls of a claim with ZCUSB_DETACH=1 (GETDRIVER, DISCONNECT_CLAIM except 'usbfs')")
        dc = emu_detach.find("DISCONNECT_CLAIM")[0][2]
        h.check_eq((dc["flags"], dc["detached"]), (usbfs_emu.DISCONNECT_CLAIM_EXCEPT_DRIVER, "usbtest"),
                   "DISCONNECT_CLAIM flags and the driver it detached")
        mark = emu_detach.mark()
        a("call", claim=r["claim"], method="Release")
        ops = [(c[1], c[2].get("code"), c[2].get("result")) for c in emu_detach.find(since=mark)]
        h.check_eq(ops, [("RELEASEINTERFACE", None, 0), ("IOCTL", "CONNECT", 0)],
                   "on Release: RELEASEINTERFACE, then USBDEVFS_IOCTL(CONNECT) to re-attach the driver")
        h.check_eq(emu_detach.drivers.get(0), "usbtest", "usbtest bound again after the release")
        signals(a, want=(r["path"], "released"))
        h.check(claim_gone(dw, r["path"]), "released claim object still answers")

        # Release of the first claim: the interface is free again for the other user
        mark = emu.mark()
        sigs = h.SignalLog(dw.w.bus.conn)
        a("call", claim=cl, method="Release")
        h.wait_until(lambda: claim_gone(dw, path), 2, f"{path} to disappear after Release")
        # Claims are private to their connection: nobody else hears of them.
        h.check(not sigs.find("InterfacesRemoved", h.MANAGER_PATH, lambda e: e[2][0] == path),
                f"InterfacesRemoved({path}) broadcast to other connections")
        sigs.close()
        h.check_eq([c[1] for c in emu.find(since=mark)], ["RELEASEINTERFACE"], "usbfs ioctls of Release")
        signals(a, want=(path, "released"))
        r = other("claim", device=gz.object_path, interface=0)
        h.check_eq(other("props", claim=r["claim"])["UsedBytes"], 0, "UsedBytes of the new owner's claim")


def bulk_in_urbs(c, s, emu, length, user_data, what):
    """One bulk IN of LENGTH into the start of the session's buffer, its status
    and data checked; returns (length, flags) of the URBs zcusbd submitted."""
    mark = emu.mark()
    stream = emu.endpoint(0x81).stream
    c("fill", buffer=s.buf, offset=0, length=length, byte=0)
    got = s.run(bulk_in(s, length, user_data=user_data))
    expect_status(got[user_data], 0, what, actual=length)
    h.check(s.verify(0, length, stream) is None, f"{what} data")
    return [(u[2]["length"], u[2]["flags"]) for u in emu.find("SUBMITURB", since=mark, ep=0x81)]


@dtest("bulk")
def t_bulk():
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        gz = dw.devices[1]
        total = 4 * MIB
        chunk = 64 * KIB
        n = total // chunk
        s = Session(c, gz.object_path, buffer_size=total, entries=64)
        h.check_eq(s.size, total, "AllocBuffer size")

        # 4 MiB IN: 64 transfers of 64 KiB in flight at once, each to its own region
        c("fill", buffer=s.buf, offset=0, length=total, byte=0xEE)
        t0 = time.monotonic()
        got = s.run(*[bulk_in(s, chunk, offset=k * chunk) for k in range(n)], timeout=30)
        took = time.monotonic() - t0
        bad = [(u, c_) for u, c_ in got.items() if c_["status"] != 0 or c_["actual_length"] != chunk]
        h.check(not bad, f"bulk IN completions not all 0/{chunk}: {bad[:5]}")
        mism = s.verify(0, total, 0)
        h.check(mism is None, f"4 MiB IN data differs from the device's stream: {mism}")
        h.log(f"4 MiB IN verified byte for byte in {took:.2f}s; emulator max URBs in flight "
              f"{emu.max_in_flight}")
        h.check(emu.max_in_flight >= 16, f"only {emu.max_in_flight} URBs were ever in flight at once")

        # 4 MiB OUT: the same, the other way
        c("fill", buffer=s.buf, offset=0, length=total, pattern_offset=7)
        got = s.run(*[bulk_out(s, chunk, offset=k * chunk) for k in range(n)], timeout=30)
        bad = [(u, c_) for u, c_ in got.items() if c_["status"] != 0 or c_["actual_length"] != chunk]
        h.check(not bad, f"bulk OUT completions not all 0/{chunk}: {bad[:5]}")
        rx = emu.received(0x02)
        h.check_eq(len(rx), total, "bytes the device received on 0x02")
        h.check(rx == usbfs_emu.pattern(7, total), "4 MiB OUT data differs from what the client wrote")
        h.log("4 MiB OUT verified byte for byte")

        # larger than 256 KiB: split into URBs of 256 KiB chained with BULK_CONTINUATION
        h.check_eq(bulk_in_urbs(c, s, emu, MIB, 1000, "1 MiB IN"),
                   [(256 * KIB, 0x01), (256 * KIB, 0x05), (256 * KIB, 0x05), (256 * KIB, 0x04)],
                   "URBs of a 1 MiB IN (length, flags: SHORT_NOT_OK=1 CONTINUATION=4)")
        mark = emu.mark()
        c("fill", buffer=s.buf, offset=0, length=MIB + 100, pattern_offset=3)
        got = s.run(bulk_out(s, MIB + 100, user_data=1001))
        expect_status(got[1001], 0, "1 MiB + 100 OUT", actual=MIB + 100)
        h.check_eq([u[2]["length"] for u in emu.find("SUBMITURB", since=mark, ep=0x02)],
                   [256 * KIB] * 4 + [100], "URB lengths of a 1 MiB + 100 OUT")
        h.check(emu.received(0x02)[total:] == usbfs_emu.pattern(3, MIB + 100), "1 MiB + 100 OUT data")

        # a short IN: actual_length reported; with SHORT_NOT_OK -> -EREMOTEIO
        stream = emu.endpoint(0x81).stream
        emu.short_in(0x81, 1000)
        got = s.run(bulk_in(s, 4096, user_data=2000))
        expect_status(got[2000], 0, "short IN without SHORT_NOT_OK", actual=1000)
        h.check(s.verify(0, 1000, stream) is None, "short IN data")
        emu.short_in(0x81, 1000)
        got = s.run(bulk_in(s, 4096, user_data=2001, flags=zc.SQE_SHORT_NOT_OK))
        expect_status(got[2001], -errno.EREMOTEIO, "short IN with SHORT_NOT_OK", actual=1000)
        # short in the middle of a split transfer: the rest is not waited for
        stream = emu.endpoint(0x81).stream
        emu.short_in(0x81, 256 * KIB)   # first URB full
        emu.short_in(0x81, 5000)        # second URB short
        got = s.run(bulk_in(s, MIB, user_data=2002))
        expect_status(got[2002], 0, "1 MiB IN ending short in its 2nd URB", actual=256 * KIB + 5000)
        h.check(s.verify(0, 256 * KIB + 5000, stream) is None, "data of the split short IN")
        # and the endpoint works normally afterwards
        stream = emu.endpoint(0x81).stream
        got = s.run(bulk_in(s, 8192, user_data=2003))
        expect_status(got[2003], 0, "IN after a short split transfer", actual=8192)
        h.check(s.verify(0, 8192, stream) is None, "data after a short split transfer")

        p = s.props()
        h.log(f"claim counters: {dict((k, p[k]) for k in ('Submitted', 'Completed', 'Failed', 'BytesIn', 'BytesOut', 'InFlight'))}")
        h.check_eq(p["InFlight"], 0, "InFlight at rest")
        h.check_eq(p["BytesIn"], total + MIB + 1000 + 1000 + 256 * KIB + 5000 + 8192 - 1000,
                   "BytesIn (a failed transfer's bytes do not count)")
        h.check_eq(p["BytesOut"], total + MIB + 100, "BytesOut")


def control(s, setup, data=b"", offset=0, **kw):
    """Write setup (+ OUT data) at offset and return the sqe."""
    s.c("write", buffer=s.buf, offset=offset, data=b64(setup + data))
    wlen = wlength(setup)
    return s.sqe(opcode=zc.OP_CONTROL, endpoint=0, offset=offset, length=8 + wlen, **kw)


def wlength(setup):
    return int.from_bytes(setup[6:8], "little")


@dtest("bulk-sg")
def t_bulk_sg():
    """A controller that takes scatter-gather lists (usbfs BULK_SCATTER_GATHER):
    bulk transfers up to 1 MiB go as one URB, as libusb submits them (each
    extra URB costs a submit, a reap and often a wakeup); larger ones are split
    at 1 MiB, which keeps every URB below usbfs_memory_mb."""
    with DataWorld(scatter_gather=True) as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=5 * MIB, entries=8)

        h.check_eq(bulk_in_urbs(c, s, emu, MIB, 1, "1 MiB IN"), [(MIB, 0x00)], "URBs of a 1 MiB IN (length, flags)")
        h.check_eq(bulk_in_urbs(c, s, emu, 2 * MIB + 512, 2, "2 MiB + 512 IN"),
                   [(MIB, 0x01), (MIB, 0x05), (512, 0x04)],
                   "URBs of a 2 MiB + 512 IN (length, flags: SHORT_NOT_OK=1 CONTINUATION=4)")

        mark = emu.mark()
        c("fill", buffer=s.buf, offset=0, length=4 * MIB + 100, pattern_offset=5)
        got = s.run(bulk_out(s, 4 * MIB + 100, user_data=3))
        expect_status(got[3], 0, "4 MiB + 100 OUT", actual=4 * MIB + 100)
        h.check_eq([u[2]["length"] for u in emu.find("SUBMITURB", since=mark, ep=0x02)],
                   [MIB] * 4 + [100], "URB lengths of a 4 MiB + 100 OUT")
        h.check(emu.received(0x02) == usbfs_emu.pattern(5, 4 * MIB + 100), "4 MiB + 100 OUT data")
        h.check_eq(s.props()["InFlight"], 0, "InFlight at the end")


@dtest("cq-full-resume")
def t_cq_full_resume():
    """A one-entry queue (two completion slots) driven by the doorbell rule: the
    entry still on the ring when the completion ring fills is taken once the
    client reaps, though a client rings no doorbell for reaping."""
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=64 * KIB, entries=1)
        emu.hold(0x81)
        s.submit(bulk_in(s, 512, user_data=1))
        s.submit(bulk_in(s, 512, offset=512, user_data=2))
        wait_queued(emu, 0x81, 2)
        # both completion slots are spoken for: zcusbd may not take this one yet
        s.submit(bulk_in(s, 512, offset=1024, user_data=3), expect_taken=False)
        st = s.state()
        # zcusbd asks for a doorbell whenever it stops looking, in flight or not (zcusb-ring.h)
        h.check(st["sq_flags"] & zc.SQ_NEED_WAKEUP, f"NEED_WAKEUP set while zcusbd is not looking ({st})")
        emu.release(0x81)
        # reaping the first two frees the slots; the third must follow without a doorbell
        got = s.wait(3, timeout=3)
        h.check_eq(sorted((c_["user_data"], c_["status"]) for c_ in got), [(1, 0), (2, 0), (3, 0)],
                   "all three complete, the one left on the ring after the client reaped")


@dtest("control")
def t_control():
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=16 * KIB)
        sp = zc.setup_packet

        # vendor OUT 0x5b stores 64 bytes, vendor IN 0x5c reads them back
        data = bytes((i * 7 + 3) & 0xFF for i in range(64))
        got = s.run(control(s, sp(0x40, 0x5B, 0, 0, 64), data, user_data=1))
        expect_status(got[1], 0, "vendor OUT 0x5b", actual=64)
        h.check_eq(emu.vendor_data, data, "data the device got from the vendor OUT request")
        c("fill", buffer=s.buf, offset=4096, length=8 + 64, byte=0)
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 64), offset=4096, user_data=2))
        expect_status(got[2], 0, "vendor IN 0x5c", actual=64)
        h.check_eq(unb64(c("read", buffer=s.buf, offset=4096 + 8, length=64)), data,
                   "vendor IN 0x5c data (after the setup packet)")
        h.check_eq(unb64(c("read", buffer=s.buf, offset=4096, length=8)), sp(0xC0, 0x5C, 0, 0, 64),
                   "the setup packet in the buffer is left as it was")
        # a short control IN: the device has 64 bytes, the request asks for 200
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 200), offset=8192, user_data=3))
        expect_status(got[3], 0, "vendor IN asking for more than the device has", actual=64)
        # ... which fails with SHORT_NOT_OK, while a full one passes it (the setup packet
        # in the URB's buffer does not count against the data stage)
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 200), offset=8192, user_data=30,
                            flags=zc.SQE_SHORT_NOT_OK))
        expect_status(got[30], -errno.EREMOTEIO, "short vendor IN with SHORT_NOT_OK", actual=64)
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 64), offset=8192, user_data=31,
                            flags=zc.SQE_SHORT_NOT_OK))
        expect_status(got[31], 0, "full vendor IN with SHORT_NOT_OK", actual=64)
        # standard GET_DESCRIPTOR(DEVICE)
        got = s.run(control(s, sp(0x80, 6, 0x0100, 0, 18), user_data=4))
        expect_status(got[4], 0, "GET_DESCRIPTOR(DEVICE)", actual=18)
        h.check_eq(unb64(c("read", buffer=s.buf, offset=8, length=18)), dw.devices[1].device_descriptor(),
                   "device descriptor")
        # a request the device does not know stalls: -EPIPE, and the next one works
        got = s.run(control(s, sp(0xC0, 0x77, 0, 0, 4), user_data=5))
        expect_status(got[5], -errno.EPIPE, "unknown vendor request (device stalls)")
        got = s.run(control(s, sp(0xC0, 0x5C, 0, 0, 64), user_data=6))
        expect_status(got[6], 0, "vendor IN after a stall", actual=64)
        controls = emu.count("SUBMITURB", type="control")

        # refused by zcusbd, never reaching the device
        refused = [
            (10, sp(0x00, 9, 1, 0, 0), -errno.EPERM, "SET_CONFIGURATION"),
            (11, sp(0x01, 11, 1, 0, 0), -errno.EPERM, "SET_INTERFACE"),
            (12, sp(0x00, 5, 9, 0, 0), -errno.EPERM, "SET_ADDRESS"),
            (13, sp(0x41, 0x01, 0, 1, 0), -errno.EPERM, "vendor request to interface 1 (not claimed)"),
            (14, sp(0xC1, 0x01, 0, 0x0101, 4), -errno.EPERM, "vendor IN to interface 1 (wIndex 0x0101)"),
            (15, sp(0x02, 1, 0, 0x85, 0), -errno.EPERM, "CLEAR_FEATURE(HALT) of endpoint 0x85 (not in the claim)"),
            (16, sp(0x02, 1, 0, 0x83, 0), -errno.EPERM, "CLEAR_FEATURE(HALT) of 0x83 (alt 1 only)"),
        ]
        for ud, setup, status, what in refused:
            got = s.run(control(s, setup, user_data=ud))
            with h.soft(what):
                expect_status(got[ud], status, what)
        # wLength that does not match the transfer length
        s.c("write", buffer=s.buf, offset=0, data=b64(sp(0xC0, 0x5C, 0, 0, 64)))
        got = s.run(s.sqe(opcode=zc.OP_CONTROL, endpoint=0, offset=0, length=8 + 32, user_data=17))
        expect_status(got[17], -errno.EINVAL, "wLength 64 in a 40-byte control transfer")
        got = s.run(s.sqe(opcode=zc.OP_CONTROL, endpoint=0, offset=0, length=7, user_data=18))
        expect_status(got[18], -errno.EINVAL, "control transfer shorter than a setup packet")
        h.check_eq(emu.count("SUBMITURB", type="control"), controls, "control URBs after the refused requests")

        # requests that stay inside the claim do reach the device
        got = s.run(control(s, sp(0x41, 0x01, 0, 0, 0), user_data=20))
        expect_status(got[20], -errno.EPIPE, "vendor request to interface 0 (reaches the device, which stalls)")
        got = s.run(control(s, sp(0x82, 0, 0, 0x81, 2), user_data=21))
        expect_status(got[21], -errno.EPIPE, "GET_STATUS(endpoint 0x81) (reaches the device, which stalls)")
        h.check_eq(emu.count("SUBMITURB", type="control"), controls + 2, "control URBs that reached the device")
        # the setup the device saw is the one that was checked: rewriting the buffer
        # after submission changes nothing (zcusbd keeps a private copy)
        emu.hold(0)
        sq = control(s, sp(0x40, 0x5B, 0, 0, 16), b"A" * 16, offset=0, user_data=22)
        s.submit(sq)
        wait_queued(emu, 0, 1)
        c("write", buffer=s.buf, offset=0, data=b64(sp(0x00, 9, 1, 0, 16) + b"B" * 16))
        emu.release(0)
        got = s.wait(1)
        expect_status(got[0], 0, "held vendor OUT", actual=16)
        h.check_eq(emu.vendor_data, b"A" * 16, "data of a control OUT whose buffer was rewritten in flight")
        last = emu.find("SUBMITURB", type="control")[-1][2]
        h.check_eq(last["setup"], sp(0x40, 0x5B, 0, 0, 16).hex(), "setup packet the device got")


@dtest("iso")
def t_iso():
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=64 * KIB)
        n = 8
        desc = n * 16
        lengths = [1024] * n
        c("write", buffer=s.buf, offset=0, data=b64(iso_descriptors(lengths)))
        iso = dict(opcode=zc.OP_ISO, endpoint=0x83, offset=0, length=desc + sum(lengths), iso_packets=n)
        got = s.run(s.sqe(user_data=1, **iso))
        expect_status(got[1], -errno.EINVAL, "iso on 0x83 while alt 0 is selected")

        s.call("SetAltSetting", "y", 1)
        h.check_eq(emu.find("SETINTERFACE")[-1][2], {"ifno": 0, "alt": 1, "result": 0}, "SETINTERFACE(0, 1)")
        h.check_eq(s.props()["AltSetting"], 1, "AltSetting property")
        h.check_eq(dbus_error(s.call, "SetAltSetting", "y", 7)[0], "org.zcusb1.Error.InvalidArgument",
                   "SetAltSetting(7)")

        # iso IN, 8 packets of 1024: packet 3 comes short, packet 5 has a bus error
        emu.iso_fault(3, actual=100, status=0)
        emu.iso_fault(5, actual=0, status=-errno.EXDEV)
        stream = emu.endpoint(0x83).stream
        c("fill", buffer=s.buf, offset=desc, length=sum(lengths), byte=0xEE)
        got = s.run(s.sqe(user_data=2, **iso))
        actual = [1024, 1024, 1024, 100, 1024, 0, 1024, 1024]
        expect_status(got[2], 0, "iso IN", actual=sum(actual))
        urb = emu.find("SUBMITURB", type="iso")[-1][2]
        h.check_eq((urb["ep"], urb["packets"], urb["length"], urb["flags"] & usbfs_emu.URB_ISO_ASAP),
                   (0x83, n, sum(lengths), usbfs_emu.URB_ISO_ASAP), "the iso URB (ep, packets, length, ISO_ASAP)")
        raw = unb64(c("read", buffer=s.buf, offset=0, length=desc))
        results = [zc.ISO_PACKET.unpack_from(raw, 16 * k) for k in range(n)]
        h.check_eq([r[0] for r in results], lengths, "iso descriptors: length (left as written)")
        h.check_eq([r[1] for r in results], actual, "iso descriptors: actual_length written back")
        h.check_eq([r[2] for r in results], [0, 0, 0, 0, 0, -errno.EPROTO, 0, 0],
                   "iso descriptors: status written back (-EXDEV from the bus reads as -EPROTO)")
        off = stream
        for k in range(n):
            if actual[k]:
                m = s.verify(desc + 1024 * k, actual[k], off)
                h.check(m is None, f"iso IN packet {k} data: {m}")
            off += actual[k]
        emu.iso_faults.clear()

        # iso OUT on 0x04: 4 packets of 512
        lengths = [512] * 4
        c("write", buffer=s.buf, offset=4096, data=b64(iso_descriptors(lengths)))
        c("fill", buffer=s.buf, offset=4096 + 64, length=2048, pattern_offset=11)
        got = s.run(s.sqe(opcode=zc.OP_ISO, endpoint=0x04, offset=4096, length=64 + 2048, iso_packets=4,
                          user_data=3))
        expect_status(got[3], 0, "iso OUT", actual=2048)
        h.check(emu.received(0x04) == usbfs_emu.pattern(11, 2048), "iso OUT data the device got")
        raw = unb64(c("read", buffer=s.buf, offset=4096, length=64))
        h.check_eq([zc.ISO_PACKET.unpack_from(raw, 16 * k)[1:3] for k in range(4)], [(512, 0)] * 4,
                   "iso OUT descriptors (actual_length, status)")

        # bad iso requests
        c("write", buffer=s.buf, offset=0, data=b64(iso_descriptors([49153])))
        got = s.run(s.sqe(opcode=zc.OP_ISO, endpoint=0x83, offset=0, length=16 + 49153, iso_packets=1, user_data=4))
        expect_status(got[4], -errno.EMSGSIZE, "iso packet larger than the endpoint allows")
        c("write", buffer=s.buf, offset=0, data=b64(iso_descriptors([1024, 1024])))
        got = s.run(s.sqe(opcode=zc.OP_ISO, endpoint=0x83, offset=0, length=32 + 1500, iso_packets=2, user_data=5))
        expect_status(got[5], -errno.EINVAL, "iso packet lengths beyond the region")
        got = s.run(s.sqe(opcode=zc.OP_ISO, endpoint=0x83, offset=0, length=32, iso_packets=129, user_data=6))
        expect_status(got[6], -errno.EINVAL, "129 iso packets")
        got = s.run(s.sqe(opcode=zc.OP_ISO, endpoint=0x83, offset=2, length=32 + 8, iso_packets=1, user_data=7))
        expect_status(got[7], -errno.EINVAL, "iso descriptors not 4-byte aligned")

        # SetAltSetting is refused while a transfer is in flight
        emu.hold(0x81)
        s.submit(bulk_in(s, 512, offset=32768, user_data=8))
        wait_queued(emu, 0x81, 1)
        h.check_eq(dbus_error(s.call, "SetAltSetting", "y", 0)[0], "org.zcusb1.Error.Busy",
                   "SetAltSetting with a transfer in flight")
        emu.release(0x81)
        expect_status(s.wait(1)[0], 0, "the held bulk IN")
        s.call("SetAltSetting", "y", 0)
        h.check_eq(emu.alt[0], 0, "alt setting back to 0")
        got = s.run(s.sqe(user_data=9, **iso))
        expect_status(got[9], -errno.EINVAL, "iso on 0x83 after going back to alt 0")


@dtest("cancel-timeout-stall")
def t_cancel_timeout_stall():
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=2 * MIB)

        # CANCEL of a held transfer
        emu.hold(0x81)
        s.submit(bulk_in(s, 4096, user_data=10))
        u = wait_queued(emu, 0x81, 1)[0]
        s.submit(s.sqe(opcode=zc.OP_CANCEL, cancel_user_data=10, user_data=11, buffer_id=0))
        got = {x["user_data"]: x for x in s.wait(2)}
        expect_status(got[11], 0, "the CANCEL entry itself")
        expect_status(got[10], -errno.ECANCELED, "the cancelled transfer", actual=0)
        h.check_eq([x[2]["seq"] for x in emu.find("DISCARDURB", result=0)], [u.seq], "URBs discarded by CANCEL")
        got = s.run(s.sqe(opcode=zc.OP_CANCEL, cancel_user_data=12345, user_data=12, buffer_id=0))
        expect_status(got[12], -errno.ENOENT, "CANCEL of a transfer that is not in flight")

        # CANCEL of a transfer split into 4 URBs: all of them go, one completion
        mark = emu.mark()
        s.submit(bulk_in(s, MIB, user_data=20))
        wait_queued(emu, 0x81, 4)
        s.submit(s.sqe(opcode=zc.OP_CANCEL, cancel_user_data=20, user_data=21, buffer_id=0))
        got = {x["user_data"]: x for x in s.wait(2)}
        expect_status(got[20], -errno.ECANCELED, "cancelled 1 MiB transfer")
        h.check_eq(emu.count("DISCARDURB", result=0, since=mark), 4, "URBs discarded for a split transfer")
        h.check_eq(emu.held_urbs(0x81), [], "URBs left at the device")

        # timeout_ms on a held transfer
        t0 = time.monotonic()
        s.submit(bulk_in(s, 4096, user_data=30, timeout_ms=300))
        got = s.wait(1)
        took = time.monotonic() - t0
        expect_status(got[0], -errno.ETIMEDOUT, "held transfer with timeout_ms=300")
        h.check(0.25 <= took <= 3, f"timeout_ms=300 fired after {took:.2f}s")
        h.log(f"timeout_ms=300 completed after {took:.3f}s")
        emu.release(0x81)
        # a timeout that does not fire
        mark = emu.mark()
        got = s.run(bulk_in(s, 4096, user_data=31, timeout_ms=5000))
        expect_status(got[31], 0, "transfer done well within its timeout", actual=4096)
        h.check_eq(emu.count("DISCARDURB", since=mark), 0, "DISCARDURB for a transfer that did not time out")

        # a stalled endpoint: -EPIPE until ClearHalt
        emu.stall(0x81)
        got = s.run(bulk_in(s, 4096, user_data=40), bulk_in(s, 4096, user_data=41))
        expect_status(got[40], -errno.EPIPE, "IN on a stalled endpoint")
        expect_status(got[41], -errno.EPIPE, "second IN on the stalled endpoint")
        got = s.run(bulk_out(s, 512, user_data=42))
        expect_status(got[42], 0, "OUT on the other endpoint meanwhile", actual=512)
        s.call("ClearHalt", "y", 0x81)
        h.check_eq(emu.find("CLEAR_HALT")[-1][2], {"ep": 0x81, "result": 0}, "CLEAR_HALT the device got")
        h.check_eq(dbus_error(s.call, "ClearHalt", "y", 0x85)[0], "org.zcusb1.Error.InvalidArgument",
                   "ClearHalt(0x85)")
        got = s.run(bulk_in(s, 4096, user_data=43))
        expect_status(got[43], 0, "IN after ClearHalt", actual=4096)
        # a stall in the middle of a split transfer ends the whole transfer once
        emu.short_in(0x81, 256 * KIB)
        emu.hold(0x81)
        s.submit(bulk_in(s, MIB, user_data=44))
        wait_queued(emu, 0x81, 4)
        emu.stall(0x81)
        emu.release(0x81)
        got = s.wait(1)
        expect_status(got[0], -errno.EPIPE, "1 MiB IN stalling in its first URB")
        s.call("ClearHalt", "y", 0x81)
        got = s.run(bulk_in(s, 4096, user_data=45))
        expect_status(got[45], 0, "IN after the second ClearHalt", actual=4096)
        h.check_eq(s.props()["InFlight"], 0, "InFlight at the end")
