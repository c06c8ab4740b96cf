"""usbfs emulator for the tier-2 tests: answers the usbfs ioctls zcusbd makes on
/dev/bus/usb/BBB/DDD of a umockdev testbed, like the kernel's devio.c would for a
Gadget-Zero-like device (SourceSink: bulk IN source, bulk OUT sink, iso IN/OUT in
alt 1, vendor control requests 0x5b/0x5c).

How it hooks in (umockdev 0.17): umockdev_testbed_attach_ioctl() with a
UMockdev.IoctlBase whose "handle-ioctl" signal we connect. The preload library
in zcusbd forwards every ioctl on the node to this process; the handler runs in
a umockdev worker thread of THIS process (not the main thread), and zcusbd is
blocked inside the ioctl until we complete it. Memory of zcusbd is reached only
through UMockdev.IoctlData: resolve() copies a pointed-to block in, update()
changes the local copy, and the changes are written back into zcusbd when the
ioctl completes. An URB lives across two ioctls: SUBMITURB (we resolve the
struct and its buffer and keep both) and REAPURBNDELAY (we point the caller's
`struct usbdevfs_urb *` at the kept struct with set_ptr(), after updating
status, actual_length, iso descriptors and, for IN, the data).

Readiness: zcusbd watches the usbfs fd for EPOLLOUT (usbfs: "a completed URB
can be reaped"). umockdev's node is a regular file, which epoll refuses (EPERM,
zcusbd's open of the device then fails), so attach() replaces it with a FIFO
that this class keeps full (not writable) unless something is reapable.

Completion model, close to usbfs: SUBMITURB only queues an URB on its endpoint;
queued URBs are "executed" in submission order per endpoint the next time the
daemon reaps (so all URBs of a split transfer are submitted before the first
completes, as with real hardware); REAPURBNDELAY returns completed URBs in
completion order, else EAGAIN (or ENODEV once disconnected and drained).

Device model: bulk IN endpoints stream a pattern, byte = (stream offset) % 251
per endpoint; bulk OUT endpoints record everything received, in order. Vendor
OUT 0x5b stores its data, vendor IN 0x5c returns it; standard GET_DESCRIPTOR
answers device, configuration and string descriptors; anything else stalls.
Iso IN fills each packet with the endpoint's pattern; iso OUT records packets.

Faults the tests switch on (all thread-safe): hold(ep) (URBs stay in flight
until released or discarded), stall(ep) (-EPIPE until CLEAR_HALT), short_in(ep,
n) (next IN URB moves n bytes; with SHORT_NOT_OK it ends -EREMOTEIO and, like
usbfs, cancels the queued continuation URBs of that endpoint with -ECONNRESET),
enomem(n) (the next n SUBMITURBs fail ENOMEM, as when usbfs_memory_mb is used
up), iso_fault(k, actual, status), disconnect() (queued URBs end -ESHUTDOWN,
reaps drain then give ENODEV, every other ioctl ENODEV), set_driver(ifno, name)
(GETDRIVER answers it, CLAIMINTERFACE gets EBUSY, DISCONNECT_CLAIM detaches it).

Every ioctl is recorded (except EAGAIN reaps, only counted) so tests can assert
e.g. DISCARDURB + RELEASEINTERFACE after a client died. Anything the daemon
does that the kernel would reject as a programming error (reaping or
discarding an URB it does not own, resubmitting one in flight) is recorded in
`errors`, which the tests require to be empty.
"""

import errno
import os
import struct
import threading
import time
import traceback

# <linux/usbdevice_fs.h> on x86-64 (checked against zcusb-abi-dump at start-up)
USBDEVFS = {
    "SUBMITURB": 0x8038550A,
    "DISCARDURB": 0x550B,
    "REAPURB": 0x4008550C,
    "REAPURBNDELAY": 0x4008550D,
    "CLAIMINTERFACE": 0x8004550F,
    "RELEASEINTERFACE": 0x80045510,
    "SETINTERFACE": 0x80085504,
    "CLEAR_HALT": 0x80045515,
    "GETDRIVER": 0x41045508,
    "DISCONNECT_CLAIM": 0x8108551B,
    "IOCTL": 0xC0105512,
    "GET_CAPABILITIES": 0x8004551A,
    "CONTROL": 0xC0185500,
    "BULK": 0xC0185502,
    "RESET": 0x5514,
    "CONNECT": 0x5517,
    "DISCONNECT": 0x5516,
}
REQUEST_NAMES = {v: k for k, v in USBDEVFS.items()}

URB_TYPE_ISO, URB_TYPE_INTERRUPT, URB_TYPE_CONTROL, URB_TYPE_BULK = 0, 1, 2, 3
URB_TYPE_NAMES = {0: "iso", 1: "interrupt", 2: "control", 3: "bulk"}
URB_SHORT_NOT_OK = 0x01
URB_ISO_ASAP = 0x02
URB_BULK_CONTINUATION = 0x04
URB_ZERO_PACKET = 0x40
DISCONNECT_CLAIM_IF_DRIVER = 0x01
DISCONNECT_CLAIM_EXCEPT_DRIVER = 0x02

URB_SIZE = 56
ISO_DESC_SIZE = 12
URB_OFF = {"type": 0, "endpoint": 1, "status": 4, "flags": 8, "buffer": 16, "buffer_length": 24,
           "actual_length": 28, "start_frame": 32, "number_of_packets": 36, "error_count": 40,
           "signr": 44, "usercontext": 48, "iso_frame_desc": 56}

CAP_BULK_SCATTER_GATHER = 0x08
CAPABILITIES = 0x1FF  # what dummy_hcd reports (vm-notes): ZERO_PACKET ... MMAP, CONTINUATION, REAP_AFTER_DISCONNECT

PATTERN_MOD = 251
_PATTERN = bytes(range(PATTERN_MOD)) * 64


def pattern(offset, length):
    """byte i = (offset + i) % 251: what a bulk IN endpoint streams."""
    out = bytearray()
    start = offset % PATTERN_MOD
    while len(out) < length:
        chunk = _PATTERN[start:start + length - len(out)]
        out += chunk
        start = 0
    return bytes(out)


def check_abi(abi):
    """Compare our constants with zcusb-abi-dump's view of the headers."""
    bad = []
    for name, value in USBDEVFS.items():
        key = "USBDEVFS_" + name
        if key in abi and abi[key] != value:
            bad.append(f"{key}: {value:#x} here, {abi[key]:#x} in <linux/usbdevice_fs.h>")
    if abi.get("sizeof struct usbdevfs_urb") != URB_SIZE:
        bad.append(f"sizeof usbdevfs_urb {abi.get('sizeof struct usbdevfs_urb')}")
    if abi.get("sizeof struct usbdevfs_iso_packet_desc") != ISO_DESC_SIZE:
        bad.append("sizeof usbdevfs_iso_packet_desc")
    for f, off in URB_OFF.items():
        if abi.get(f"struct usbdevfs_urb.{f}") != off:
            bad.append(f"usbdevfs_urb.{f} at {abi.get(f'struct usbdevfs_urb.{f}')}, not {off}")
    return bad


# GET_DESCRIPTOR(string, this index) times out, as on a device that does not answer.
SILENT_STRING_INDEX = 0xEE

class Urb:
    __slots__ = ("addr", "data", "buf", "type", "ep", "flags", "length", "npackets", "iso_lengths",
                 "out", "seq", "status", "actual", "in_data", "iso_results", "state", "submitted_at",
                 "error_count", "discarded", "owner")

    def describe(self):
        return (f"urb#{self.seq} {URB_TYPE_NAMES.get(self.type, self.type)} ep {self.ep:#04x} "
                f"len {self.length} flags {self.flags:#x}")


class Endpoint:
    def __init__(self, address, kind, max_packet):
        self.address, self.kind, self.max_packet = address, kind, max_packet
        self.queue = []          # submitted, not yet executed (FIFO)
        self.held = False
        self.stalled = False
        self.disabled = False    # usbfs: continuation URBs refused after a short/failed one
        self.short = []          # pending short_in() amounts
        self.stream = 0          # IN: bytes streamed so far
        self.received = bytearray()  # OUT: everything received
        self.urbs_done = 0


class UsbfsEmulator:
    """One emulated usbfs device node. `device` is a fixtures.UsbDevice."""

    def __init__(self, testbed, device, log=None, always_ready=False, capabilities=CAPABILITIES):
        self.tb = testbed
        self.capabilities = capabilities  # GET_CAPABILITIES
        self.always_ready = always_ready
        self.fifo = None
        self.ready = True
        self.device = device
        self.devnode = device.devname
        self.log = log or (lambda msg: None)
        self.lock = threading.RLock()
        self.calls = []          # (monotonic time, name, details dict)
        self.errors = []         # daemon misbehaviour (and handler exceptions)
        self.eagain = 0          # REAPURBNDELAY that found nothing
        self.eagain_streak = 0
        self.max_in_flight = 0
        self.seq = 0
        self.in_flight = {}      # client address -> Urb (submitted, not reaped)
        self.done = []           # completed, waiting to be reaped (FIFO)
        self.client = None       # the umockdev client (open file) of the ioctl being handled
        self.gone = False
        self.enomem_left = 0
        self.iso_faults = {}     # packet index -> (actual or None, status)
        self.claimed = set()
        self.alt = {}            # interface -> current alt setting
        self.drivers = {}        # interface -> bound kernel driver name
        self.detached = {}       # interface -> driver detached by DISCONNECT_CLAIM
        self.vendor_data = b""
        self.opens = 0
        cfg = device.config()
        self.interfaces = {i.number: i for i in (cfg.interfaces if cfg else [])}
        for num, intf in self.interfaces.items():
            self.alt[num] = 0
            if intf.driver:
                self.drivers[num] = intf.driver
        self.endpoints = {}
        for intf in self.interfaces.values():
            for a in intf.alts:
                for e in a.endpoints:
                    if e.address not in self.endpoints:
                        self.endpoints[e.address] = Endpoint(e.address, e.attributes & 3, e.max_packet)
        self.endpoints[0] = Endpoint(0, 0, device.maxpacket0)
        self.handler = None

    # ------------------------------------------------------------------
    # set-up

    def attach(self):
        from gi.repository import UMockdev
        self.handler = UMockdev.IoctlBase()
        self.handler.connect("handle-ioctl", self._on_ioctl)
        if not self.tb.attach_ioctl(self.devnode, self.handler):
            raise RuntimeError(f"umockdev_testbed_attach_ioctl({self.devnode}) failed")
        # The node umockdev creates is a regular file: open() works, ioctls reach
        # us through the preload's socket, but epoll_ctl(EPOLL_CTL_ADD) on the fd
        # fails with EPERM, so zcusbd could not watch it for completions as it
        # does a real usbfs node. A FIFO in its place is pollable and the preload
        # still routes the ioctls to us. Its EPOLLOUT is made to mean what it
        # means on usbfs, "a completed URB waits to be reaped": we keep the FIFO
        # full (not writable) and drain it (writable) only while something is
        # reapable (see _update_ready). With always_ready=True the FIFO stays
        # empty: writable all the time, and zcusbd reaps in a loop while URBs
        # are held (an EAGAIN storm).
        node = self.tb.get_root_dir() + self.devnode
        os.unlink(node)
        os.mkfifo(node, 0o666)
        self.fifo = os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.ready = True
        with self.lock:
            self._update_ready()
        self.log(f"usbfs emulator attached to {self.devnode} (node made a FIFO, "
                 f"{'always writable' if self.always_ready else 'writable when an URB is reapable'})")
        return self

    def _update_ready(self):
        want = self.always_ready or self.gone or bool(self.done) or \
            any(e.queue and not e.held for e in self.endpoints.values())
        if want == self.ready or self.fifo is None:
            return
        if want:
            while True:
                try:
                    if not os.read(self.fifo, 1 << 16):
                        break
                except BlockingIOError:
                    break
        else:
            for chunk in (b"\0" * 4096, b"\0"):
                while True:
                    try:
                        os.write(self.fifo, chunk)
                    except BlockingIOError:
                        break
        self.ready = want

    def detach(self):
        if self.fifo is not None:
            os.close(self.fifo)
            self.fifo = None

    # ------------------------------------------------------------------
    # controls for the tests (main thread)

    def hold(self, ep, on=True):
        with self.lock:
            self.endpoints[ep].held = on
            self._record("ctl-hold", ep=ep, on=on)
            self._update_ready()

    def release(self, ep):
        self.hold(ep, False)

    def stall(self, ep, on=True):
        with self.lock:
            self.endpoints[ep].stalled = on
            self._record("ctl-stall", ep=ep, on=on)

    def short_in(self, ep, actual, count=1):
        with self.lock:
            self.endpoints[ep].short += [actual] * count

    def enomem(self, n):
        with self.lock:
            self.enomem_left = n

    def iso_fault(self, packet, actual=None, status=0):
        with self.lock:
            self.iso_faults[packet] = (actual, status)

    def set_driver(self, ifno, driver):
        with self.lock:
            if driver:
                self.drivers[ifno] = driver
            else:
                self.drivers.pop(ifno, None)

    def disconnect(self):
        """The device is gone: what the kernel holds ends -ESHUTDOWN (usbfs hands
        it back through REAPURB, REAP_AFTER_DISCONNECT), everything else ENODEV."""
        with self.lock:
            self.gone = True
            for ep in self.endpoints.values():
                while ep.queue:
                    u = ep.queue.pop(0)
                    self._finish(u, -errno.ESHUTDOWN, 0)
            self._record("ctl-disconnect", dropped=len(self.done))
            self._update_ready()

    def endpoint(self, ep):
        return self.endpoints[ep]

    def received(self, ep):
        with self.lock:
            return bytes(self.endpoints[ep].received)

    def held_urbs(self, ep=None):
        with self.lock:
            return [u for e in self.endpoints.values() for u in e.queue if ep is None or u.ep == ep]

    def queued(self):
        with self.lock:
            return sum(len(e.queue) for e in self.endpoints.values())

    def count(self, name, **match):
        return len(self.find(name, **match))

    def find(self, name=None, since=0, **match):
        with self.lock:
            return [c for c in self.calls[since:] if (name is None or c[1] == name)
                    and all(c[2].get(k) == v for k, v in match.items())]

    def mark(self):
        """Index into calls, for find(..., since=mark)."""
        with self.lock:
            return len(self.calls)

    def summary(self):
        with self.lock:
            names = {}
            for _, n, _ in self.calls:
                names[n] = names.get(n, 0) + 1
            return (f"{self.devnode}: {names}, EAGAIN reaps {self.eagain}, max URBs in flight "
                    f"{self.max_in_flight}, in flight now {len(self.in_flight)}, errors {len(self.errors)}")

    # ------------------------------------------------------------------
    # the handler (umockdev worker thread)

    def _record(self, name, **details):
        self.calls.append((time.monotonic(), name, details))

    def _error(self, text):
        self.errors.append(text)
        self.log(f"usbfs emulator {self.devnode}: DAEMON ERROR: {text}")

    def _on_ioctl(self, handler, client):
        try:
            return self._dispatch(client)
        except Exception:
            tb = traceback.format_exc()
            self.errors.append("handler exception: " + tb)
            self.log(f"usbfs emulator {self.devnode}: handler exception:\n{tb}")
            try:
                client.complete(-1, errno.EIO)
            except Exception:
                pass
            return True

    def _dispatch(self, client):
        req = client.get_request()
        name = REQUEST_NAMES.get(req)
        arg = client.get_arg()
        throttle = False
        with self.lock:
            # Who asks: umockdev keeps one client per open file, and usbfs
            # gives each open file only its own URBs back (zcusbd opens the
            # device once per claimed interface).
            self.client = client
            if name in ("REAPURBNDELAY", "REAPURB"):
                r, throttle = self._reap(arg)
            elif self.gone:
                self._record(name or f"ioctl-{req:#x}", result=-errno.ENODEV)
                r = -errno.ENODEV
            elif name is None:
                self._record(f"ioctl-{req:#x}", result=-errno.ENOTTY)
                r = -errno.ENOTTY
            else:
                r = getattr(self, "_do_" + name.lower())(arg)
            self._update_ready()
        if throttle:
            # zcusbd polls the usbfs fd for EPOLLOUT while URBs are submitted; the
            # emulated fd is a socket and always writable, so while URBs are held it
            # reaps in a loop. Each answer costs a round trip to this process anyway;
            # a short nap (GIL released) keeps the storm from eating the machine.
            time.sleep(0.0005)
        client.complete(-1 if r < 0 else r, -r if r < 0 else 0)
        return True

    # --- simple ioctls ---

    def _u32_arg(self, arg):
        d = arg.resolve(0, 4)
        return d, struct.unpack("<I", bytes(d.retrieve()))[0]

    def _do_get_capabilities(self, arg):
        d = arg.resolve(0, 4)
        d.update(0, struct.pack("<I", self.capabilities))
        self._record("GET_CAPABILITIES")
        return 0

    def _do_claiminterface(self, arg):
        _, ifno = self._u32_arg(arg)
        if ifno not in self.interfaces:
            r = -errno.ENOENT
        elif ifno in self.claimed:
            r = 0  # usbfs: claiming twice from the same fd is fine
        elif ifno in self.drivers:
            r = -errno.EBUSY
        else:
            self.claimed.add(ifno)
            r = 0
        self._record("CLAIMINTERFACE", ifno=ifno, result=r)
        return r

    def _do_releaseinterface(self, arg):
        _, ifno = self._u32_arg(arg)
        if ifno not in self.claimed:
            r = -errno.EINVAL
        else:
            self.claimed.discard(ifno)
            self.alt[ifno] = 0
            r = 0
        self._record("RELEASEINTERFACE", ifno=ifno, result=r)
        return r

    def _do_setinterface(self, arg):
        d = arg.resolve(0, 8)
        ifno, alt = struct.unpack("<II", bytes(d.retrieve()))
        intf = self.interfaces.get(ifno)
        if intf is None or not any(a.alt == alt for a in intf.alts):
            r = -errno.EINVAL
        elif ifno not in self.claimed:
            r = -errno.EINVAL
        elif any(u.ep != 0 for u in self.in_flight.values()):
            # the kernel would kill them (usb_set_interface disables the endpoints)
            self._error(f"SETINTERFACE({ifno}, {alt}) with {len(self.in_flight)} URBs in flight")
            r = 0
        else:
            self.alt[ifno] = alt
            r = 0
        self._record("SETINTERFACE", ifno=ifno, alt=alt, result=r)
        return r

    def _do_clear_halt(self, arg):
        _, ep = self._u32_arg(arg)
        e = self.endpoints.get(ep)
        if e is None or ep == 0:
            r = -errno.ENOENT
        else:
            e.stalled = False
            r = 0
        self._record("CLEAR_HALT", ep=ep, result=r)
        return r

    def _do_getdriver(self, arg):
        d = arg.resolve(0, 260)
        ifno = struct.unpack_from("<I", bytes(d.retrieve()))[0]
        drv = self.drivers.get(ifno)
        if drv is None:
            r = -errno.ENODATA
        else:
            d.update(4, drv.encode()[:255] + b"\0")
            r = 0
        self._record("GETDRIVER", ifno=ifno, driver=drv, result=r)
        return r

    def _do_disconnect_claim(self, arg):
        d = arg.resolve(0, 264)
        raw = bytes(d.retrieve())
        ifno, flags = struct.unpack_from("<II", raw)
        want = raw[8:].split(b"\0", 1)[0].decode(errors="replace")
        drv = self.drivers.get(ifno)
        if ifno not in self.interfaces:
            r = -errno.EINVAL
        else:
            match = drv == want
            skip = ((flags & DISCONNECT_CLAIM_IF_DRIVER) and not match) or \
                   ((flags & DISCONNECT_CLAIM_EXCEPT_DRIVER) and match)
            if drv and not skip:
                self.detached[ifno] = drv
                del self.drivers[ifno]
            if ifno in self.drivers:
                r = -errno.EBUSY
            else:
                self.claimed.add(ifno)
                r = 0
        self._record("DISCONNECT_CLAIM", ifno=ifno, flags=flags, driver=want, detached=drv, result=r)
        return r

    def _do_ioctl(self, arg):
        d = arg.resolve(0, 16)
        ifno, code = struct.unpack_from("<iI", bytes(d.retrieve()))
        if code == USBDEVFS["CONNECT"]:
            if ifno in self.claimed:
                r = -errno.EBUSY
            else:
                drv = self.detached.pop(ifno, None)
                if drv:
                    self.drivers[ifno] = drv
                r = 0
            self._record("IOCTL", ifno=ifno, code="CONNECT", result=r, driver=self.drivers.get(ifno))
        elif code == USBDEVFS["DISCONNECT"]:
            drv = self.drivers.pop(ifno, None)
            r = 0 if drv else -errno.ENODATA
            self._record("IOCTL", ifno=ifno, code="DISCONNECT", result=r, driver=drv)
        else:
            r = -errno.ENOTTY
            self._record("IOCTL", ifno=ifno, code=code, result=r)
        return r

    def _do_reset(self, arg):
        self._record("RESET")
        return 0

    def _do_control(self, arg):
        """Synchronous USBDEVFS_CONTROL: zcusbd uses it only for GET_DESCRIPTOR
        (Device.GetDescriptor), without a claim, like usbfs allows."""
        d = arg.resolve(0, 24)
        rtype, req, value, index, wlen, _timeout = struct.unpack_from("<BBHHHI", bytes(d.retrieve()))
        reply = None
        if rtype == 0x80 and req == 6:
            reply = self._control_in_reply(rtype, req, value, index, wlen)
        else:
            self._error(f"synchronous USBDEVFS_CONTROL {rtype:#x}/{req:#x} used")
        if rtype == 0x80 and req == 6 and value == (3 << 8 | SILENT_STRING_INDEX):
            r = -errno.ETIMEDOUT  # a device that does not answer (the kernel's timeout, without the wait)
        elif reply is None:
            r = -errno.EPIPE
        else:
            reply = reply[:wlen]
            if reply:
                buf = d.resolve(16, wlen)
                buf.update(0, reply)
            r = len(reply)
        self._record("CONTROL", request_type=rtype, request=req, value=value, index=index, length=wlen, result=r)
        return r

    def _do_bulk(self, arg):
        self._error("synchronous USBDEVFS_BULK used")
        return -errno.ENOTTY

    # --- URBs ---

    def _interface_of(self, ep):
        for num, intf in self.interfaces.items():
            alt = intf.alt(self.alt.get(num, 0))
            if any(e.address == ep for e in alt.endpoints):
                return num
        return None

    def _do_submiturb(self, arg):
        raw_arg = bytes(arg.retrieve())
        addr = struct.unpack("<Q", raw_arg)[0]
        d = arg.resolve(0, URB_SIZE)
        head = bytes(d.retrieve())
        typ, ep, _status, flags, _buf, length, _act, _sf, npk = struct.unpack_from("<BBxxiIxxxxQiiii", head)
        if typ == URB_TYPE_ISO and 0 < npk <= 128:
            # the descriptors follow the struct: resolve again, with their size (the
            # first resolve cached a 56-byte child; reload() forgets it, and the arg's
            # pointer, which resolve() replaced with a local one, is put back)
            arg.reload()
            arg.update(0, raw_arg)
            d = arg.resolve(0, URB_SIZE + npk * ISO_DESC_SIZE)
            head = bytes(d.retrieve())
        u = Urb()
        u.owner = self.client
        u.addr, u.data, u.type, u.ep, u.flags, u.length = addr, d, typ, ep, flags, length
        u.npackets = npk if typ == URB_TYPE_ISO else 0
        u.iso_lengths = [struct.unpack_from("<I", head, URB_SIZE + k * ISO_DESC_SIZE)[0]
                         for k in range(u.npackets)]
        u.status, u.actual, u.in_data, u.iso_results, u.error_count = 0, 0, b"", None, 0
        u.state, u.discarded = "queued", False
        self.seq += 1
        u.seq = self.seq
        info = dict(seq=u.seq, type=URB_TYPE_NAMES.get(typ, typ), ep=ep, length=length, flags=flags,
                    packets=u.npackets)

        def refuse(r, why):
            info.update(result=r, why=why)
            self._record("SUBMITURB", **info)
            return r

        if addr in self.in_flight:
            self._error(f"URB at {addr:#x} submitted again while in flight ({self.in_flight[addr].describe()})")
            return refuse(-errno.EBUSY, "URB already in flight")
        if self.enomem_left > 0:
            self.enomem_left -= 1
            return refuse(-errno.ENOMEM, "injected ENOMEM")
        e = self.endpoints.get(ep if typ != URB_TYPE_CONTROL else 0)
        if e is None or (ep != 0 and self._interface_of(ep) is None):
            return refuse(-errno.ENOENT, "no such endpoint in the current alt settings")
        if ep != 0 and self._interface_of(ep) not in self.claimed:
            self._error(f"SUBMITURB to ep {ep:#04x} of an interface not claimed")
        want_type = {0: URB_TYPE_CONTROL, 1: URB_TYPE_ISO, 2: URB_TYPE_BULK, 3: URB_TYPE_INTERRUPT}[e.kind]
        if typ != want_type and not (typ == URB_TYPE_BULK and want_type == URB_TYPE_INTERRUPT):
            return refuse(-errno.EINVAL, "URB type does not match the endpoint")
        if length < 0 or (typ == URB_TYPE_CONTROL and length < 8):
            return refuse(-errno.EINVAL, "bad buffer_length")
        if typ == URB_TYPE_BULK and e.kind == 2:
            if not (flags & URB_BULK_CONTINUATION):
                e.disabled = False
            elif e.disabled:
                return refuse(-errno.EREMOTEIO, "continuation URB on an endpoint disabled by a short/failed URB")
        if typ == URB_TYPE_ISO and (u.npackets == 0 or sum(u.iso_lengths) > length):
            return refuse(-errno.EINVAL, "bad iso packets")
        # the buffer: OUT data (and control setup) are taken now, as usbfs copies at submit
        u.buf = d.resolve(URB_OFF["buffer"], length) if length > 0 else None
        data = bytes(u.buf.retrieve()) if u.buf is not None else b""
        if typ == URB_TYPE_CONTROL:
            info["setup"] = data[:8].hex()
            u.out = data
        elif not (ep & 0x80):
            u.out = data
        else:
            u.out = b""
        info["result"] = 0
        self._record("SUBMITURB", **info)
        self.in_flight[addr] = u
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        e.queue.append(u)
        return 0

    def _do_discardurb(self, arg):
        addr = struct.unpack("<Q", bytes(arg.retrieve()))[0]
        u = self.in_flight.get(addr)
        if u is None:
            known = any(x.addr == addr for x in self.done)
            if not known:
                self._error(f"DISCARDURB of {addr:#x}, which is not an URB of this device in flight")
            self._record("DISCARDURB", addr=addr, result=-errno.EINVAL, seq=None)
            return -errno.EINVAL
        if u.state != "queued":
            # completed, waiting to be reaped: usbfs only searches the pending list
            self._record("DISCARDURB", addr=addr, result=-errno.EINVAL, seq=u.seq, ep=u.ep)
            return -errno.EINVAL
        e = self.endpoints[u.ep if u.type != URB_TYPE_CONTROL else 0]
        e.queue.remove(u)
        u.discarded = True
        self._finish(u, -errno.ENOENT, 0)
        self._record("DISCARDURB", addr=addr, result=0, seq=u.seq, ep=u.ep)
        return 0

    def _finish(self, u, status, actual, in_data=b"", iso_results=None, error_count=0):
        u.status, u.actual, u.in_data, u.iso_results, u.error_count = status, actual, in_data, iso_results, error_count
        u.state = "done"
        self.done.append(u)

    def _execute(self):
        """Run every queued URB that may run, in order per endpoint."""
        for e in self.endpoints.values():
            while e.queue and not e.held:
                u = e.queue.pop(0)
                self._run(e, u)

    def _kill_continuations(self, e):
        """usbfs cancel_bulk_urbs(): after a short or failed bulk URB the queued
        continuation URBs of that endpoint are unlinked (-ECONNRESET)."""
        if e.kind != 2:
            return
        e.disabled = True
        while e.queue and (e.queue[0].flags & URB_BULK_CONTINUATION):
            self._finish(e.queue.pop(0), -errno.ECONNRESET, 0)

    def _run(self, e, u):
        if u.type == URB_TYPE_CONTROL:
            return self._run_control(u)
        if e.stalled:
            self._finish(u, -errno.EPIPE, 0)
            self._kill_continuations(e)
            return
        e.urbs_done += 1
        if u.type == URB_TYPE_ISO:
            return self._run_iso(e, u)
        if u.ep & 0x80:
            n = u.length
            if e.short:
                n = min(n, e.short.pop(0))
            data = pattern(e.stream, n)
            e.stream += n
            short = n < u.length
            status = -errno.EREMOTEIO if short and (u.flags & URB_SHORT_NOT_OK) else 0
            self._finish(u, status, n, in_data=data)
            if short and (u.flags & URB_SHORT_NOT_OK):
                self._kill_continuations(e)
        else:
            e.received += u.out
            self._finish(u, 0, len(u.out))

    def _run_iso(self, e, u):
        results, data, off, errors = [], bytearray(), 0, 0
        for k, plen in enumerate(u.iso_lengths):
            actual, status = plen, 0
            if k in self.iso_faults:
                fa, status = self.iso_faults[k]
                if fa is not None:
                    actual = min(fa, plen)
            if u.ep & 0x80:
                chunk = pattern(e.stream, actual)
                e.stream += actual
                data += chunk + bytes(plen - actual)
            else:
                e.received += u.out[off:off + actual]
            off += plen
            if status:
                errors += 1
            results.append((actual, status))
        self._finish(u, 0, sum(a for a, _ in results), in_data=bytes(data), iso_results=results,
                     error_count=errors)

    def _run_control(self, u):
        setup = u.out[:8]
        rtype, req, value, index, wlen = struct.unpack("<BBHHH", setup)
        data_in = rtype & 0x80
        if wlen > u.length - 8:
            self._finish(u, -errno.EOVERFLOW, 0)
            return
        if rtype == 0x40 and req == 0x5B and value == 0 and index == 0:
            self.vendor_data = u.out[8:8 + wlen]
            self._finish(u, 0, wlen)
            return
        reply = self._control_in_reply(rtype, req, value, index, wlen)
        if reply is None or not data_in:
            self._finish(u, -errno.EPIPE, 0)  # the device stalls what it does not know
            return
        reply = reply[:wlen]
        self._finish(u, 0, len(reply), in_data=reply)

    def _control_in_reply(self, rtype, req, value, index, wlen):
        """What the device answers to an IN control request, None to stall."""
        if rtype == 0xC0 and req == 0x5C and value == 0 and index == 0:
            return self.vendor_data[:wlen]
        if rtype == 0x80 and req == 6:  # GET_DESCRIPTOR
            dtype, didx = value >> 8, value & 0xFF
            if dtype == 1:
                return self.device.device_descriptor()
            if dtype == 2 and didx < len(self.device.configs):
                return self.device.configs[didx].raw(self.device.speed in ("5000", "10000", "20000"))
            if dtype == 3:
                strings = [s for s in (self.device.manufacturer, self.device.product, self.device.serial) if s]
                if didx == 0:
                    return bytes([4, 3, 0x09, 0x04])
                if didx <= len(strings) and index in (0, 0x0409):
                    s = strings[didx - 1].encode("utf-16-le")
                    return bytes([2 + len(s), 3]) + s
            if dtype == 15 and didx == 0:
                # BOS: the header and a USB 2.0 extension (LPM supported)
                return bytes([5, 15, 12, 0, 1, 7, 16, 2, 2, 0, 0, 0])
            return None
        if rtype == 0x80 and req == 0 and wlen == 2:  # GET_STATUS
            return b"\0\0"
        return None

    def _reap(self, arg):
        """REAPURB[NDELAY]: returns (result, throttle)."""
        if not self.gone:
            self._execute()
        mine = next((k for k, x in enumerate(self.done) if x.owner is self.client), None)
        if mine is None:
            if self.gone and not self.done:
                self._record("REAPURBNDELAY", result=-errno.ENODEV)
                return -errno.ENODEV, False
            self.eagain += 1
            self.eagain_streak += 1
            return -errno.EAGAIN, self.eagain_streak > 50
        self.eagain_streak = 0
        u = self.done.pop(mine)
        if self.in_flight.get(u.addr) is not u:
            self._error(f"reaping {u.describe()} which is not in flight")
        self.in_flight.pop(u.addr, None)
        d = u.data
        d.update(URB_OFF["status"], struct.pack("<i", u.status))
        d.update(URB_OFF["actual_length"], struct.pack("<i", u.actual))
        if u.type == URB_TYPE_ISO:
            d.update(URB_OFF["error_count"], struct.pack("<i", u.error_count))
            for k in range(u.npackets):
                a, s = u.iso_results[k] if u.iso_results else (0, u.status)
                d.update(URB_SIZE + k * ISO_DESC_SIZE + 4, struct.pack("<Ii", a, s))
        if u.in_data and u.buf is not None:
            off = 8 if u.type == URB_TYPE_CONTROL else 0
            u.buf.update(off, u.in_data)
        ptr = arg.resolve(0, 8)
        ptr.set_ptr(0, d)
        self._record("REAPURBNDELAY", seq=u.seq, ep=u.ep, status=u.status, actual=u.actual,
                     discarded=u.discarded, result=0)
        return 0, False
