#!/usr/bin/python3
"""A pure-Python client of zcusbd: the D-Bus API (dbus/API.md) and the queue ABI
(include/zcusb/zcusb-ring.h), for the tier-2 tests.

Three layers:
- Client / ClaimHandle / Buffer / Queue: the library. Buffers and rings are the
  memfds zcusbd passes (dbus UnixFd), mapped MAP_SHARED. Queue.submit() follows
  the doorbell rule of zcusb-ring.h; Queue.reap()/wait() consume completions.
  A Queue can also act HOSTILE: poke any index or flag, rewrite a slot after it
  was submitted, submit entries naming ids/offsets/endpoints it does not own.
- serve(): `zcusbclient.py serve BUS_ADDRESS` runs one client as a separate
  process (the tests start it with setpriv as an unprivileged uid, and SIGKILL
  it) and executes JSON commands read line by line from stdin, one JSON reply
  line each on stdout.
- RemoteClient: the test-process side of serve(): spawns it, sends commands,
  waits for replies while the caller's main loop keeps turning.

Memory ordering: the client stores with plain writes into the mapping (x86-64
keeps stores in order, and CPython performs them in program order). The one
place zcusb-ring.h needs a full barrier is between publishing sq_tail and
reading sq_flags (store -> load); full_barrier() gets one from a lock
acquire/release (glibc uses a locked instruction, a full fence on x86).
"""

import base64
import json
import mmap
import os
import select
import struct
import subprocess
import sys
import threading
import time
import traceback

# ---------------------------------------------------------------------------
# the ABI (checked against zcusb-abi-dump at start-up: check_abi())

RING_MAGIC = 0x5A435552
RING_VERSION = 1
SQ_NEED_WAKEUP, SQ_BROKEN, SQ_DEAD = 1, 2, 4
CQ_NO_WAKEUP = 1
SQE_SHORT_NOT_OK, SQE_ZERO_PACKET = 1, 2
OP_NOP, OP_BULK, OP_INTERRUPT, OP_CONTROL, OP_ISO, OP_CANCEL = 0, 1, 2, 3, 4, 5
ISO_MAX_PACKETS = 128

HEADER = struct.Struct("<10I")  # magic .. ring_size
HEADER_FIELDS = ("magic", "version", "header_size", "sq_entries", "cq_entries", "sqe_size", "cqe_size",
                 "sq_offset", "cq_offset", "ring_size")
HEADER_SIZE = 448
INDEX_OFFSETS = {"sq_head": 64, "sq_tail": 128, "sq_flags": 192, "cq_head": 256, "cq_tail": 320, "cq_flags": 384}
SQE = struct.Struct("<BBHIQIIIIQQQQ")
SQE_FIELDS = ("opcode", "endpoint", "flags", "buffer_id", "offset", "length", "timeout_ms", "iso_packets",
              "reserved0", "user_data", "cancel_user_data", "reserved1_0", "reserved1_1")
SQE_OFFSETS = {"opcode": 0, "endpoint": 1, "flags": 2, "buffer_id": 4, "offset": 8, "length": 16,
               "timeout_ms": 20, "iso_packets": 24, "reserved0": 28, "user_data": 32, "cancel_user_data": 40,
               "reserved1": 48}
CQE = struct.Struct("<QiIIIII")
CQE_FIELDS = ("user_data", "status", "actual_length", "flags", "reserved0", "reserved1", "reserved2")
CQE_OFFSETS = {"user_data": 0, "status": 8, "actual_length": 12, "flags": 16, "reserved": 20}
ISO_PACKET = struct.Struct("<IIiI")
ISO_OFFSETS = {"length": 0, "actual_length": 4, "status": 8}

BUS_NAME = "org.zcusb1"
MANAGER_PATH = "/org/zcusb1"
MANAGER_IFACE = "org.zcusb1.Manager"
CLAIM_IFACE = "org.zcusb1.Claim"
PROPS_IFACE = "org.freedesktop.DBus.Properties"


def check_abi(abi):
    """Our struct layouts against the C compiler's view of zcusb-ring.h."""
    bad = []

    def want(key, value):
        if abi.get(key) != value:
            bad.append(f"{key}: {value} here, {abi.get(key)} in zcusb-ring.h")
    want("sizeof struct zcusb_sqe", SQE.size)
    want("sizeof struct zcusb_cqe", CQE.size)
    want("sizeof struct zcusb_iso_packet", ISO_PACKET.size)
    want("sizeof struct zcusb_ring_header", HEADER_SIZE)
    want("sizeof struct zcusb_ring_index", 64)
    for i, f in enumerate(HEADER_FIELDS):
        want(f"struct zcusb_ring_header.{f}", 4 * i)
    for f, off in INDEX_OFFSETS.items():
        want(f"struct zcusb_ring_header.{f}", off)
    for f, off in SQE_OFFSETS.items():
        want(f"struct zcusb_sqe.{f}", off)
    for f, off in CQE_OFFSETS.items():
        want(f"struct zcusb_cqe.{f}", off)
    for f, off in ISO_OFFSETS.items():
        want(f"struct zcusb_iso_packet.{f}", off)
    for name, value in (("ZCUSB_RING_MAGIC", RING_MAGIC), ("ZCUSB_RING_VERSION", RING_VERSION),
                        ("ZCUSB_SQ_NEED_WAKEUP", SQ_NEED_WAKEUP), ("ZCUSB_SQ_BROKEN", SQ_BROKEN),
                        ("ZCUSB_SQ_DEAD", SQ_DEAD), ("ZCUSB_CQ_NO_WAKEUP", CQ_NO_WAKEUP),
                        ("ZCUSB_SQE_SHORT_NOT_OK", SQE_SHORT_NOT_OK), ("ZCUSB_SQE_ZERO_PACKET", SQE_ZERO_PACKET),
                        ("ZCUSB_OP_NOP", OP_NOP), ("ZCUSB_OP_BULK", OP_BULK), ("ZCUSB_OP_INTERRUPT", OP_INTERRUPT),
                        ("ZCUSB_OP_CONTROL", OP_CONTROL), ("ZCUSB_OP_ISO", OP_ISO), ("ZCUSB_OP_CANCEL", OP_CANCEL),
                        ("ZCUSB_ISO_MAX_PACKETS", ISO_MAX_PACKETS)):
        want(name, value)
    return bad


_fence = threading.Lock()


def full_barrier():
    _fence.acquire()
    _fence.release()


def make_sqe(opcode=OP_NOP, endpoint=0, flags=0, buffer_id=0, offset=0, length=0, timeout_ms=0, iso_packets=0,
             reserved0=0, user_data=0, cancel_user_data=0, reserved1=(0, 0)):
    return SQE.pack(opcode, endpoint, flags, buffer_id, offset, length, timeout_ms, iso_packets, reserved0,
                    user_data, cancel_user_data, reserved1[0], reserved1[1])


def sqe_from_dict(d):
    d = dict(d)
    if "reserved1" in d:
        d["reserved1"] = tuple(d["reserved1"])
    return make_sqe(**d)


def setup_packet(request_type, request, value=0, index=0, length=0):
    return struct.pack("<BBHHH", request_type, request, value, index, length)


class Buffer:
    def __init__(self, claim, bid, fd, size):
        self.claim, self.id, self.fd, self.size = claim, bid, fd, size
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self):
        self.map.close()
        os.close(self.fd)


class Queue:
    def __init__(self, claim, qid, ring_fd, submit_fd, complete_fd):
        self.claim, self.id = claim, qid
        self.ring_fd, self.submit_fd, self.complete_fd = ring_fd, submit_fd, complete_fd
        size = os.fstat(ring_fd).st_size
        self.map = mmap.mmap(ring_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.header = dict(zip(HEADER_FIELDS, HEADER.unpack_from(self.map, 0)))
        # Indices through 32-bit items: each access one 4-byte load or store
        # (struct.pack_into() zeroes bytes before writing them, and "<I" may
        # tear, so zcusbd could see an index go to 0 and back).
        self.index = memoryview(self.map)[:HEADER_SIZE].cast("I")
        h = self.header
        if h["magic"] != RING_MAGIC or h["version"] != RING_VERSION or h["sqe_size"] != SQE.size or \
                h["cqe_size"] != CQE.size or h["ring_size"] > size or h["header_size"] != HEADER_SIZE:
            raise RuntimeError(f"unexpected ring header {h} (mapping {size} bytes)")
        self.sq_entries, self.cq_entries = h["sq_entries"], h["cq_entries"]
        self.sq_tail = self.load("sq_tail")
        self.cq_head = self.load("cq_head")
        self.doorbells = 0

    def close(self):
        self.index.release()
        self.map.close()
        for fd in (self.ring_fd, self.submit_fd, self.complete_fd):
            os.close(fd)

    # raw index access (also the hostile tools)
    def load(self, name):
        return self.index[INDEX_OFFSETS[name] // 4]

    def store(self, name, value):
        self.index[INDEX_OFFSETS[name] // 4] = value & 0xFFFFFFFF

    def poke_header(self, field, value):
        self.index[HEADER_FIELDS.index(field)] = value & 0xFFFFFFFF

    def state(self):
        return {name: self.load(name) for name in INDEX_OFFSETS} | {"my_sq_tail": self.sq_tail,
                                                                      "my_cq_head": self.cq_head}

    def write_slot(self, index, raw):
        off = self.header["sq_offset"] + (index & (self.sq_entries - 1)) * SQE.size
        self.map[off:off + SQE.size] = raw

    def read_slot(self, index):
        off = self.header["sq_offset"] + (index & (self.sq_entries - 1)) * SQE.size
        return dict(zip(SQE_FIELDS, SQE.unpack_from(self.map, off)))

    def ring_doorbell(self):
        os.write(self.submit_fd, struct.pack("<Q", 1))
        self.doorbells += 1

    def submit(self, raws, doorbell="rule"):
        """Publish entries; returns how many fit. doorbell: "rule" (zcusb-ring.h),
        "always" or "never"."""
        n = 0
        for raw in raws:
            head = self.load("sq_head")
            if (self.sq_tail - head) & 0xFFFFFFFF >= self.sq_entries:
                break
            self.write_slot(self.sq_tail, raw)
            self.sq_tail = (self.sq_tail + 1) & 0xFFFFFFFF
            n += 1
        self.store("sq_tail", self.sq_tail)  # after the entries: plain stores stay in order on x86
        full_barrier()
        rang = False
        if doorbell == "always" or (doorbell == "rule" and self.load("sq_flags") & SQ_NEED_WAKEUP):
            self.ring_doorbell()
            rang = True
        return n, rang

    def reap(self, limit=None):
        out = []
        tail = self.load("cq_tail")
        while self.cq_head != tail and (limit is None or len(out) < limit):
            off = self.header["cq_offset"] + (self.cq_head & (self.cq_entries - 1)) * CQE.size
            out.append(dict(zip(CQE_FIELDS, CQE.unpack_from(self.map, off))))
            self.cq_head = (self.cq_head + 1) & 0xFFFFFFFF
        if out:
            self.store("cq_head", self.cq_head)
        return out

    def wait(self, n, timeout, pump=None):
        """Reap until n completions arrived or timeout; returns what arrived."""
        out = self.reap()
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.complete_fd], [], [], min(left, 0.05))
            if r:
                try:
                    os.read(self.complete_fd, 8)
                except BlockingIOError:
                    pass
            if pump:
                pump()
            out += self.reap()
        return out


class ClaimHandle:
    def __init__(self, client, path):
        import dbus
        self.client, self.path = client, str(path)
        obj = client.bus.get_object(BUS_NAME, self.path)
        self.iface = dbus.Interface(obj, CLAIM_IFACE)
        self.props_iface = dbus.Interface(obj, PROPS_IFACE)
        self.buffers, self.queues = {}, {}

    def props(self):
        return {str(k): _plain(v) for k, v in self.props_iface.GetAll(CLAIM_IFACE).items()}

    def alloc(self, size):
        import dbus
        bid, fd, real = self.iface.AllocBuffer(dbus.UInt64(size))
        b = Buffer(self, int(bid), fd.take(), int(real))
        self.buffers[b.id] = b
        return b

    def free(self, bid):
        import dbus
        self.iface.FreeBuffer(dbus.UInt32(bid))
        b = self.buffers.pop(bid, None)
        if b:
            b.close()

    def open_queue(self, entries):
        import dbus
        qid, ring, sfd, cfd = self.iface.OpenQueue(dbus.UInt32(entries))
        q = Queue(self, int(qid), ring.take(), sfd.take(), cfd.take())
        self.queues[q.id] = q
        return q

    def close_queue(self, qid):
        import dbus
        self.iface.CloseQueue(dbus.UInt32(qid))
        q = self.queues.pop(qid, None)
        if q:
            q.close()


class Client:
    def __init__(self, address):
        import dbus
        self.bus = dbus.bus.BusConnection(address)
        self.claims = {}
        self.signals = []
        self.bus.add_signal_receiver(self._on_signal, signal_name="Ended", dbus_interface=CLAIM_IFACE,
                                     bus_name=BUS_NAME, path_keyword="path")

    def _on_signal(self, *args, path=None):
        self.signals.append(["Ended", str(path)] + [_plain(a) for a in args])

    def manager(self):
        import dbus
        return dbus.Interface(self.bus.get_object(BUS_NAME, MANAGER_PATH), MANAGER_IFACE)

    def claim(self, device, interface, flags=None):
        import dbus
        if flags is None:
            path = self.manager().ClaimInterface(dbus.ObjectPath(device), dbus.Byte(interface))
        else:  # may wait for polkit (and a user at a dialog): no 25 s default
            path = self.manager().ClaimInterfaceWithFlags(dbus.ObjectPath(device), dbus.Byte(interface),
                                                          dbus.UInt64(flags), timeout=120)
        c = ClaimHandle(self, path)
        self.claims[c.path] = c
        return c


def _plain(v):
    import dbus
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (int,)):
        return int(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------
# the serving process

def _pattern(offset, length):
    base = bytes(range(251)) * ((length // 251) + 2)
    s = offset % 251
    return base[s:s + length]


class Server:
    def __init__(self, address):
        import dbus
        import dbus.mainloop.glib
        from gi.repository import GLib
        dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
        self.GLib = GLib
        self.client = Client(address)
        self.claims, self.buffers, self.queues = {}, {}, {}
        self.names = 0

    def pump(self):
        ctx = self.GLib.MainContext.default()
        while ctx.pending():
            ctx.iteration(False)

    def _h(self, table, prefix, obj):
        self.names += 1
        key = f"{prefix}{self.names}"
        table[key] = obj
        return key

    # --- commands: each returns a JSON-able value ---
    def cmd_claim(self, device, interface, flags=None):
        c = self.client.claim(device, interface, flags)
        return {"claim": self._h(self.claims, "c", c), "path": c.path}

    def cmd_props(self, claim):
        return self.claims[claim].props()

    def cmd_alloc(self, claim, size):
        b = self.claims[claim].alloc(size)
        return {"buffer": self._h(self.buffers, "b", b), "id": b.id, "size": b.size}

    def cmd_free(self, claim, id):
        self.claims[claim].free(id)
        for k, b in list(self.buffers.items()):
            if b.claim is self.claims[claim] and b.id == id:
                del self.buffers[k]
        return None

    def cmd_open_queue(self, claim, entries):
        q = self.claims[claim].open_queue(entries)
        return {"queue": self._h(self.queues, "q", q), "id": q.id, "header": q.header}

    def cmd_close_queue(self, claim, id):
        self.claims[claim].close_queue(id)
        for k, q in list(self.queues.items()):
            if q.claim is self.claims[claim] and q.id == id:
                del self.queues[k]
        return None

    def cmd_call(self, claim, method, signature="", args=()):
        """A Claim method by name (SetAltSetting, ClearHalt, Release, ...)."""
        c = self.claims[claim]
        r = self.client.bus.call_blocking(BUS_NAME, c.path, CLAIM_IFACE, method, signature, list(args))
        return _plain(r)

    def cmd_dbus(self, path, iface, method, signature="", args=()):
        r = self.client.bus.call_blocking(BUS_NAME, path, iface, method, signature, list(args))
        return _plain(r)

    def cmd_write(self, buffer, offset, data):
        b = self.buffers[buffer]
        raw = base64.b64decode(data)
        b.map[offset:offset + len(raw)] = raw
        return None

    def cmd_read(self, buffer, offset, length):
        b = self.buffers[buffer]
        return base64.b64encode(b.map[offset:offset + length]).decode()

    def cmd_fill(self, buffer, offset, length, pattern_offset=0, byte=None):
        b = self.buffers[buffer]
        b.map[offset:offset + length] = bytes([byte]) * length if byte is not None else _pattern(pattern_offset, length)
        return None

    def cmd_verify(self, buffer, offset, length, pattern_offset=0):
        """First offset (relative) where the buffer differs from the pattern, or None."""
        b = self.buffers[buffer]
        got = b.map[offset:offset + length]
        want = _pattern(pattern_offset, length)
        if got == want:
            return None
        i = next(k for k in range(length) if got[k] != want[k])
        return {"at": i, "got": got[i:i + 16].hex(), "want": want[i:i + 16].hex()}

    def cmd_ftruncate(self, buffer, size):
        try:
            os.ftruncate(self.buffers[buffer].fd, size)
            return 0
        except OSError as e:
            return -e.errno

    def cmd_submit(self, queue, sqes, doorbell="rule"):
        q = self.queues[queue]
        n, rang = q.submit([sqe_from_dict(s) for s in sqes], doorbell)
        return {"submitted": n, "rang": rang, "tail": q.sq_tail}

    def cmd_reap(self, queue):
        return self.queues[queue].reap()

    def cmd_wait(self, queue, n, timeout=10):
        return self.queues[queue].wait(n, timeout, self.pump)

    def cmd_state(self, queue):
        return self.queues[queue].state()

    def cmd_poke(self, queue, name, value):
        q = self.queues[queue]
        if name in INDEX_OFFSETS:
            q.store(name, value)
            if name == "sq_tail":
                q.sq_tail = value & 0xFFFFFFFF
            if name == "cq_head":
                q.cq_head = value & 0xFFFFFFFF
        else:
            q.poke_header(name, value)
        return None

    def cmd_write_slot(self, queue, index, sqe):
        self.queues[queue].write_slot(index, sqe_from_dict(sqe))
        return None

    def cmd_read_slot(self, queue, index):
        return self.queues[queue].read_slot(index)

    def cmd_doorbell(self, queue):
        self.queues[queue].ring_doorbell()
        return None

    def cmd_signals(self, wait=0):
        deadline = time.monotonic() + wait
        while True:
            self.pump()
            if self.client.signals or time.monotonic() >= deadline:
                return self.client.signals
            time.sleep(0.02)

    def cmd_stream(self, queue, sqe, depth, seconds):
        """Keep `depth` copies of sqe in flight for `seconds` (each completion is
        resubmitted at once), then drain. Returns counts and the first failures."""
        q = self.queues[queue]
        template = dict(sqe)
        ud = 1 << 32
        inflight, done, bad = 0, 0, []
        end = time.monotonic() + seconds
        while True:
            more = []
            while time.monotonic() < end and inflight + len(more) < depth:
                template["user_data"] = ud
                ud += 1
                more.append(sqe_from_dict(template))
            if more:
                n, _ = q.submit(more)
                inflight += n
            if inflight == 0:
                break
            for c in q.wait(1, 1.0):
                inflight -= 1
                done += 1
                if c["status"] != 0 and len(bad) < 8:
                    bad.append(c)
            if time.monotonic() > end + 10:
                break
        return {"completed": done, "in_flight": inflight, "bad": bad}

    def cmd_unique_name(self):
        return self.client.bus.get_unique_name()

    def cmd_sleep(self, seconds):
        time.sleep(seconds)
        return None

    def run(self):
        import dbus
        stdin = sys.stdin.buffer
        buf = b""
        print(json.dumps({"ready": os.getpid(), "uid": os.getuid(), "name": self.client.bus.get_unique_name()}),
              flush=True)
        while True:
            r, _, _ = select.select([stdin], [], [], 0.05)
            self.pump()
            if not r:
                continue
            chunk = os.read(stdin.fileno(), 1 << 20)
            if not chunk:
                return 0
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                cmd = req.pop("cmd")
                if cmd == "exit":
                    print(json.dumps({"ok": None}), flush=True)
                    return 0
                try:
                    reply = {"ok": getattr(self, "cmd_" + cmd)(**req)}
                except dbus.DBusException as e:
                    reply = {"dbus_error": [e.get_dbus_name(), e.get_dbus_message()]}
                except OSError as e:
                    reply = {"os_error": [e.errno, str(e)]}
                except Exception:
                    reply = {"error": traceback.format_exc()}
                print(json.dumps(reply), flush=True)


# ---------------------------------------------------------------------------
# the test-process side

class RemoteDBusError(Exception):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


class RemoteClient:
    """A serve() process. `pump` is called while waiting (the test's main loop);
    `log` gets one line per command and reply."""

    def __init__(self, address, user=None, env=None, pump=None, log=None, name="client", preexec=None,
                 stderr_path=None, timeout=20):
        self.name = name
        self.pump = pump or (lambda: None)
        self.log = log or (lambda m: None)
        self.timeout = timeout
        argv = list(user or []) + [sys.executable, os.path.abspath(__file__), "serve", address]
        self.err = open(stderr_path, "w+") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  env=env, preexec_fn=preexec)
        os.set_blocking(self.p.stdout.fileno(), False)
        self._buf = b""
        hello = self._read_line(timeout)
        self.pid, self.uid, self.unique_name = hello["ready"], hello["uid"], hello["name"]
        self.log(f"[{self.name}] pid {self.pid} uid {self.uid} bus name {self.unique_name}")

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            try:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"{self.name} (pid {self.p.pid}) exited: {self.p.wait()} "
                                       f"{self.stderr()[-2000:]}")
                self._buf += chunk
                continue
            except BlockingIOError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no reply in {timeout}s")
            self.pump()
            r, _, _ = select.select([self.p.stdout], [], [], 0.01)
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def stderr(self):
        if self.err is subprocess.DEVNULL:
            return ""
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def send(self, cmd, quiet=False, **kw):
        """Send a command without waiting; result() reads its reply later."""
        req = dict(kw, cmd=cmd)
        self._last_cmd = cmd
        if not quiet:
            shown = {k: (v if not (isinstance(v, str) and len(v) > 80) else v[:20] + "...") for k, v in kw.items()}
            self.log(f"[{self.name}] {cmd} {shown}"[:300])
        self.p.stdin.write((json.dumps(req) + "\n").encode())
        self.p.stdin.flush()

    def __call__(self, cmd, timeout_rpc=None, quiet=False, **kw):
        self.send(cmd, quiet=quiet, **kw)
        return self.result(timeout_rpc, quiet)

    def result(self, timeout_rpc=None, quiet=False):
        reply = self._read_line(timeout_rpc or self.timeout)
        if "ok" in reply:
            if not quiet:
                self.log(f"[{self.name}]   -> {json.dumps(reply['ok'])}"[:600])
            return reply["ok"]
        if "dbus_error" in reply:
            self.log(f"[{self.name}]   -> D-Bus error {reply['dbus_error']}")
            raise RemoteDBusError(*reply["dbus_error"])
        if "os_error" in reply:
            raise OSError(reply["os_error"][0], reply["os_error"][1])
        raise RuntimeError(f"{self.name}: {self._last_cmd} failed:\n{reply.get('error')}")

    def kill(self, sig=9):
        self.p.send_signal(sig)

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b'{"cmd": "exit"}\n')
                self.p.stdin.flush()
            except OSError:
                pass
            deadline = time.monotonic() + 5
            while self.p.poll() is None and time.monotonic() < deadline:
                self.pump()
                time.sleep(0.01)
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self.err is not subprocess.DEVNULL:
            self.err.close()
        return self.p.returncode


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        sys.exit(Server(sys.argv[2]).run())
    print(f"usage: {sys.argv[0]} serve BUS_ADDRESS", file=sys.stderr)
    sys.exit(2)
