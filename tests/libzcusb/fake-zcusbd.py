#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for zcusbd that serves org.zcusb1 with no USB at all, so that
libzcusb's D-Bus layer and zcusbctl's transfer commands can be tested end to
end: real memfd buffers, real rings and eventfds, the daemon's side of the
ring protocol (include/zcusb/zcusb-ring.h) in Python.

One device, /org/zcusb1/device/usb1_3 (0525:a4a0, serial SN1), interface 0:
  0x81 bulk IN        fills the counter pattern (byte N of the stream = N % 256)
  0x02 bulk OUT       checks the counter pattern; a wrong byte fails with -EPROTO
  0x83 interrupt IN   like 0x81
  0x84 bulk IN        always stalls (-EPIPE)
  0x86 bulk IN        never completes on its own: only its timeout or a cancel
Control: GET_DESCRIPTOR(device) answers 18 bytes; vendor IN 0x5c returns
wLength bytes 0,1,2..; vendor OUT 0x5b stores its data, vendor IN 0x5d
returns what 0x5b stored; anything else stalls.

Test hooks on /org/zcusb1 (interface org.zcusb1.Test):
  EndClaims(s reason)  end every claim as zcusbd does on unplug/revoke
  Stats() -> a{st}     counters the tests check
  SetRingOrder(s)      "in-order" (the default): sq_head is published before
                       the completions it covers, as zcusb-ring.h promises;
                       "completion-first": break that promise, the way a
                       consumer might, and publish sq_head only LATE_SQ_HEAD_MS
                       after the completions, to test clients' backpressure

Usage: fake-zcusbd.py BUS_ADDRESS  (prints "ready" when it owns the name)
"""

import errno
import fcntl
import mmap
import os
import struct
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

BUS_NAME = "org.zcusb1"
MANAGER_IFACE = "org.zcusb1.Manager"
DEVICE_IFACE = "org.zcusb1.Device"
CLAIM_IFACE = "org.zcusb1.Claim"
TEST_IFACE = "org.zcusb1.Test"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
DEVICE_PATH = "/org/zcusb1/device/usb1_3"
PAGE = 4096

# zcusb-ring.h
RING_MAGIC = 0x5A435552
OP_NOP, OP_BULK, OP_INTERRUPT, OP_CONTROL, OP_ISO, OP_CANCEL = range(6)
SQ_NEED_WAKEUP, SQ_BROKEN, SQ_DEAD = 1, 2, 4
CQ_NO_WAKEUP = 1
HEADER_SIZE = 448
SQ_HEAD, SQ_TAIL, SQ_FLAGS, CQ_HEAD, CQ_TAIL, CQ_FLAGS = (64 * i for i in range(1, 7))
SQE = struct.Struct("<BBHIQIIIIQQ16x")
CQE = struct.Struct("<QiII12x")
assert SQE.size == 64 and CQE.size == 32

QUOTA = 8 << 20
LATE_SQ_HEAD_MS = 20
ENDPOINTS = [(0x81, 2, 512, 0), (0x02, 2, 512, 0), (0x83, 3, 64, 1), (0x84, 2, 512, 0), (0x86, 2, 512, 0)]
DEVICE_DESCRIPTOR = bytes([18, 1, 0, 2, 0, 0, 0, 64, 0x25, 0x05, 0xa0, 0xa4, 0, 1, 1, 2, 3, 1])

END_STATUS = {"released": -errno.ECANCELED, "device-removed": -errno.ENODEV, "revoked": -errno.EACCES,
              "shutdown": -errno.ESHUTDOWN}


def error(name, message):
    return dbus.exceptions.DBusException(message, name="org.zcusb1.Error." + name)


def counter(start, length):
    """Bytes start, start+1, ... of the counter stream (each mod 256)."""
    first = start % 256
    return (bytes(range(256)) * ((first + length) // 256 + 1))[first:first + length]


def round_pages(n):
    return (n + PAGE - 1) // PAGE * PAGE


class Buffer:
    def __init__(self, bid, size):
        self.id = bid
        self.size = round_pages(size)
        self.fd = os.memfd_create("fake-buffer", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, self.size)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        self.map = mmap.mmap(self.fd, self.size)
        self.users = 0

    def close(self):
        self.map.close()
        os.close(self.fd)


class Queue:
    """zcusbd's side of one ring: private sq_head/cq_tail, entries read once."""

    def __init__(self, claim, qid, entries):
        self.claim, self.id, self.entries, self.cq_entries = claim, qid, entries, 2 * entries
        self.sq_offset = PAGE
        self.cq_offset = PAGE + round_pages(entries * SQE.size)
        self.size = round_pages(self.cq_offset + self.cq_entries * CQE.size)
        self.fd = os.memfd_create("fake-ring", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size)
        self.index = memoryview(self.map)[:HEADER_SIZE].cast("I")
        struct.pack_into("<10I", self.map, 0, RING_MAGIC, 1, HEADER_SIZE, entries, self.cq_entries, SQE.size,
                         CQE.size, self.sq_offset, self.cq_offset, self.size)
        self.set_flags(SQ_NEED_WAKEUP)
        self.sq_head = self.cq_tail = 0
        self.submit_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.complete_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.in_flight = {}  # user_data -> (sqe fields, timeout source)
        self.watch = GLib.io_add_watch(self.submit_fd, GLib.IO_IN, self.on_submit)
        self.late_sq_head = None  # "completion-first": the source that publishes sq_head
        self.dead = False

    # Through a memoryview of 32-bit items: each access is one 4-byte load or
    # store. struct.pack_into() zeroes its bytes before it writes them, so a
    # client could see an index go to 0 and back, and "<I" also tears.
    def u32(self, off):
        return self.index[off // 4]

    def set_u32(self, off, v):
        self.index[off // 4] = v & 0xffffffff

    def set_flags(self, flags):
        self.set_u32(SQ_FLAGS, flags)

    def on_submit(self, fd, cond):
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            pass
        self.claim.daemon.stats["doorbells"] += 1
        self.process()
        return True

    def process(self):
        posted = False
        while not self.dead:
            cq_space = self.cq_entries - ((self.cq_tail - self.u32(CQ_HEAD)) & 0xffffffff)
            if cq_space <= len(self.in_flight):
                break
            tail = self.u32(SQ_TAIL)
            if tail == self.sq_head:
                break
            if (tail - self.sq_head) & 0xffffffff > self.entries:
                self.set_flags(self.u32(SQ_FLAGS) | SQ_BROKEN)
                self.dead = True
                break
            off = self.sq_offset + (self.sq_head % self.entries) * SQE.size
            sqe = SQE.unpack_from(self.map, off)  # the one read of this entry
            self.sq_head = (self.sq_head + 1) & 0xffffffff
            posted |= self.handle(sqe)
        self.publish_sq_head()
        # Idle (nothing in flight): ask for a doorbell, then look once more, as
        # zcusbd does: an entry published just before the flag was set would
        # otherwise wait for a doorbell the client saw no reason to ring.
        flags = self.u32(SQ_FLAGS)
        self.set_flags(flags | SQ_NEED_WAKEUP if not self.in_flight else flags & ~SQ_NEED_WAKEUP)
        if not self.in_flight and not self.dead and self.u32(SQ_TAIL) != self.sq_head:
            if posted:
                self.ring()
            return self.process()
        if posted:
            self.ring()

    def publish_sq_head(self):
        if self.claim.daemon.ring_order == "completion-first":
            if not self.late_sq_head:
                self.late_sq_head = GLib.timeout_add(LATE_SQ_HEAD_MS, self.on_late_sq_head)
            return
        self.set_u32(SQ_HEAD, self.sq_head)

    def on_late_sq_head(self):
        self.late_sq_head = None
        self.set_u32(SQ_HEAD, self.sq_head)
        return False

    def ring(self):
        if not self.u32(CQ_FLAGS) & CQ_NO_WAKEUP:
            os.eventfd_write(self.complete_fd, 1)

    def post(self, user_data, status, actual):
        off = self.cq_offset + (self.cq_tail % self.cq_entries) * CQE.size
        CQE.pack_into(self.map, off, user_data, status, actual, 0)
        self.cq_tail = (self.cq_tail + 1) & 0xffffffff
        # zcusb-ring.h: the entries taken so far show as taken before a
        # completion that may be theirs (zcusbd's ring_post_cqe()).
        self.publish_sq_head()
        self.set_u32(CQ_TAIL, self.cq_tail)
        st = self.claim.daemon.stats
        st["completed"] += 1
        if status < 0:
            st["failed"] += 1

    def handle(self, sqe):
        opcode, ep, flags, buffer_id, offset, length, timeout_ms, iso, _, user_data, cancel = sqe
        d = self.claim.daemon
        d.stats["submitted"] += 1
        if opcode == OP_NOP:
            self.post(user_data, 0, 0)
            return True
        if opcode == OP_CANCEL:
            t = self.in_flight.pop(cancel, None)
            if t:
                self.finish(cancel, t, -errno.ECANCELED, 0)
            self.post(user_data, 0 if t else -errno.ENOENT, 0)
            return True
        b = self.claim.buffers.get(buffer_id)
        if b is None:
            self.post(user_data, -errno.ENOENT, 0)
            return True
        if offset > b.size or length > b.size - offset:
            self.post(user_data, -errno.EINVAL, 0)
            return True
        region = (offset, length)
        if opcode == OP_CONTROL:
            return self.control(b, region, user_data)
        if opcode not in (OP_BULK, OP_INTERRUPT):
            self.post(user_data, -errno.EINVAL, 0)
            return True
        if ep in (0x81, 0x83):
            b.map[offset:offset + length] = counter(d.in_offset, length)
            d.in_offset += length
            d.stats["bytes_in"] += length
            self.post(user_data, 0, length)
        elif ep == 0x02:
            good = b.map[offset:offset + length] == counter(d.out_offset, length)
            d.out_offset += length
            d.stats["bytes_out"] += length
            self.post(user_data, 0 if good else -errno.EPROTO, length)
        elif ep == 0x84:
            self.post(user_data, -errno.EPIPE, 0)
        elif ep == 0x86:
            b.users += 1
            src = GLib.timeout_add(timeout_ms, self.on_timeout, user_data) if timeout_ms else None
            self.in_flight[user_data] = (b, src)
            return False
        else:
            self.post(user_data, -errno.EINVAL, 0)
        return True

    def control(self, b, region, user_data):
        offset, length = region
        if length < 8:
            self.post(user_data, -errno.EINVAL, 0)
            return True
        rt, req, value, index, wlength = struct.unpack_from("<BBHHH", b.map, offset)
        data_off = offset + 8
        if wlength != length - 8:
            self.post(user_data, -errno.EINVAL, 0)
        elif rt == 0x80 and req == 6 and value == 0x0100:
            n = min(wlength, len(DEVICE_DESCRIPTOR))
            b.map[data_off:data_off + n] = DEVICE_DESCRIPTOR[:n]
            self.post(user_data, 0, n)
        elif rt == 0xc0 and req == 0x5c:
            b.map[data_off:data_off + wlength] = counter(0, wlength)
            self.post(user_data, 0, wlength)
        elif rt == 0x40 and req == 0x5b:
            self.claim.daemon.stored = bytes(b.map[data_off:data_off + wlength])
            self.post(user_data, 0, wlength)
        elif rt == 0xc0 and req == 0x5d:
            n = min(wlength, len(self.claim.daemon.stored))
            b.map[data_off:data_off + n] = self.claim.daemon.stored[:n]
            self.post(user_data, 0, n)
        else:
            self.post(user_data, -errno.EPIPE, 0)
        return True

    def finish(self, user_data, t, status, actual):
        b, src = t
        b.users -= 1
        if src:
            GLib.source_remove(src)
        self.post(user_data, status, actual)

    def on_timeout(self, user_data):
        t = self.in_flight.pop(user_data, None)
        if t:
            b, _ = t
            self.finish(user_data, (b, None), -errno.ETIMEDOUT, 0)
            self.process()  # it may have been waiting for completion space
            self.ring()
        return False

    def cancel_all(self, status):
        for ud, t in list(self.in_flight.items()):
            self.finish(ud, t, status, 0)
        self.in_flight.clear()
        self.ring()

    def kill(self, status):
        """Claim ended: cancel what is in flight, then mark the ring dead."""
        self.cancel_all(status)
        self.dead = True
        self.set_flags(self.u32(SQ_FLAGS) | SQ_DEAD)
        self.ring()

    def close(self):
        self.cancel_all(-errno.ECANCELED)
        GLib.source_remove(self.watch)
        if self.late_sq_head:
            GLib.source_remove(self.late_sq_head)
        self.index.release()
        self.map.close()
        for fd in (self.fd, self.submit_fd, self.complete_fd):
            os.close(fd)


class Claim(dbus.service.Object):
    def __init__(self, daemon, path, owner, interface):
        super().__init__(daemon.conn, path)
        self.daemon, self.path, self.owner, self.interface = daemon, path, owner, interface
        self.buffers, self.queues = {}, {}
        self.next_id = 1
        self.alt = 0
        self.ended = None

    def check_owner(self, sender):
        if sender != self.owner:
            raise error("AccessDenied", "This claim belongs to another connection.")

    def used(self):
        return sum(b.size for b in self.buffers.values()) + sum(q.size for q in self.queues.values())

    def charge(self, size):
        if self.daemon.used() + size > QUOTA:
            raise error("QuotaExceeded", f"{size} more bytes would exceed your quota of {QUOTA} bytes.")

    @dbus.service.method(CLAIM_IFACE, in_signature="t", out_signature="uht", sender_keyword="sender")
    def AllocBuffer(self, size, sender=None):
        size = int(size)
        self.check_owner(sender)
        if size == 0 or size > 1 << 40:
            raise error("InvalidArgument", f"A buffer of {size} bytes is not possible.")
        self.charge(round_pages(size))
        b = Buffer(self.next_id, size)
        self.next_id += 1
        self.buffers[b.id] = b
        return dbus.UInt32(b.id), dbus.types.UnixFd(b.fd), dbus.UInt64(b.size)

    @dbus.service.method(CLAIM_IFACE, in_signature="u", sender_keyword="sender")
    def FreeBuffer(self, bid, sender=None):
        bid = int(bid)
        self.check_owner(sender)
        b = self.buffers.get(bid)
        if b is None:
            raise error("InvalidArgument", f"No buffer {bid}.")
        if b.users:
            raise error("Busy", f"Buffer {bid} is used by {b.users} transfers in flight.")
        del self.buffers[bid]
        b.close()

    @dbus.service.method(CLAIM_IFACE, in_signature="u", out_signature="uhhh", sender_keyword="sender")
    def OpenQueue(self, entries, sender=None):
        entries = int(entries)
        self.check_owner(sender)
        if entries < 1 or entries > 4096 or entries & (entries - 1):
            raise error("InvalidArgument", f"{entries} entries: a power of two in 1..4096 is needed.")
        q = Queue(self, self.next_id, entries)
        self.next_id += 1
        self.queues[q.id] = q
        return (dbus.UInt32(q.id), dbus.types.UnixFd(q.fd), dbus.types.UnixFd(q.submit_fd),
                dbus.types.UnixFd(q.complete_fd))

    @dbus.service.method(CLAIM_IFACE, in_signature="u", sender_keyword="sender")
    def CloseQueue(self, qid, sender=None):
        qid = int(qid)
        self.check_owner(sender)
        q = self.queues.pop(qid, None)
        if q is None:
            raise error("InvalidArgument", f"No queue {qid}.")
        q.close()

    @dbus.service.method(CLAIM_IFACE, in_signature="y", sender_keyword="sender")
    def SetAltSetting(self, alt, sender=None):
        alt = int(alt)
        self.check_owner(sender)
        if alt != 0:
            raise error("InvalidArgument", f"Interface 0 has no alternate setting {alt}.")
        self.alt = alt

    @dbus.service.method(CLAIM_IFACE, in_signature="y", sender_keyword="sender")
    def ClearHalt(self, ep, sender=None):
        ep = int(ep)
        self.check_owner(sender)
        if ep not in [e[0] for e in ENDPOINTS]:
            raise error("InvalidArgument", f"Interface 0 has no endpoint 0x{ep:02x}.")
        self.daemon.stats["clear_halts"] += 1

    @dbus.service.method(CLAIM_IFACE, sender_keyword="sender")
    def Release(self, sender=None):
        self.check_owner(sender)
        self.daemon.stats["releases"] += 1
        self.end("released")
        self.destroy()

    @dbus.service.signal(CLAIM_IFACE, signature="s")
    def Ended(self, reason):
        pass

    def end(self, reason):
        if self.ended:
            return
        self.ended = reason
        for q in self.queues.values():
            q.kill(END_STATUS[reason])
        self.Ended(reason)

    def destroy(self):
        for q in self.queues.values():
            q.close()
        for b in self.buffers.values():
            b.close()
        self.queues.clear()
        self.buffers.clear()
        self.daemon.claims.pop(self.path, None)
        self.remove_from_connection()

    def props(self):
        st = self.daemon.stats
        return {
            "Device": dbus.ObjectPath(DEVICE_PATH), "Interface": dbus.Byte(self.interface),
            "AltSetting": dbus.Byte(self.alt), "Backend": "usbfs", "QuotaBytes": dbus.UInt64(QUOTA),
            "UsedBytes": dbus.UInt64(self.daemon.used()),
            "InFlight": dbus.UInt32(sum(len(q.in_flight) for q in self.queues.values())),
            "Buffers": dbus.UInt32(len(self.buffers)), "Queues": dbus.UInt32(len(self.queues)),
            "Submitted": dbus.UInt64(st["submitted"]), "Completed": dbus.UInt64(st["completed"]),
            "Failed": dbus.UInt64(st["failed"]), "BytesIn": dbus.UInt64(st["bytes_in"]),
            "BytesOut": dbus.UInt64(st["bytes_out"]), "FutureProperty": "ignored by libzcusb",
        }

    @dbus.service.method(PROPS_IFACE, in_signature="ss", out_signature="v", sender_keyword="sender")
    def Get(self, iface, name, sender=None):
        self.check_owner(sender)
        return self.props()[name]

    @dbus.service.method(PROPS_IFACE, in_signature="s", out_signature="a{sv}", sender_keyword="sender")
    def GetAll(self, iface, sender=None):
        self.check_owner(sender)
        return self.props()


class Device(dbus.service.Object):
    def __init__(self, conn):
        super().__init__(conn, DEVICE_PATH)

    def props(self):
        return {
            "VendorId": dbus.UInt16(0x0525), "ProductId": dbus.UInt16(0xa4a0), "Serial": "SN1",
            "BusNumber": dbus.UInt16(1), "DeviceAddress": dbus.UInt16(3), "PortPath": "1-1",
            "SysfsPath": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1",
            "Interfaces": dbus.Array([dbus.Struct((dbus.Byte(0), dbus.Byte(0), dbus.Byte(255), dbus.Byte(0),
                                                   dbus.Byte(0), "", dbus.Array(
                                                       [dbus.Struct((dbus.Byte(a), dbus.Byte(t), dbus.UInt16(m),
                                                                     dbus.Byte(i))) for a, t, m, i in ENDPOINTS],
                                                       signature="(yyqy)")))],
                                     signature="(yyyyysa(yyqy))"),
        }

    @dbus.service.method(PROPS_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        return self.props()[name]

    @dbus.service.method(PROPS_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return self.props()


class Manager(dbus.service.Object):
    def __init__(self, conn):
        super().__init__(conn, "/org/zcusb1")
        self.conn = conn
        self.claims = {}
        self.next_claim = 1
        self.in_offset = self.out_offset = 0
        self.stored = b""
        self.ring_order = "in-order"
        self.stats = {k: 0 for k in ("submitted", "completed", "failed", "bytes_in", "bytes_out", "doorbells",
                                     "releases", "clear_halts")}
        self.device = Device(conn)
        conn.add_signal_receiver(self.on_name_owner_changed, "NameOwnerChanged", "org.freedesktop.DBus")

    def used(self):
        return sum(c.used() for c in self.claims.values())

    def on_name_owner_changed(self, name, old, new):
        # A vanished client leaves nothing behind.
        if name.startswith(":") and not new:
            for c in [c for c in self.claims.values() if c.owner == name]:
                c.end("released")
                c.destroy()

    @dbus.service.method(MANAGER_IFACE, out_signature="a(oqqqqsss)")
    def ListDevices(self):
        return [(dbus.ObjectPath(DEVICE_PATH), dbus.UInt16(0x0525), dbus.UInt16(0xa4a0), dbus.UInt16(1),
                 dbus.UInt16(3), "Linux", "Gadget Zero", "SN1")]

    @dbus.service.method(MANAGER_IFACE, in_signature="qq", out_signature="o")
    def GetDevice(self, bus, address):
        bus, address = int(bus), int(address)
        if (bus, address) != (1, 3):
            raise error("NoSuchDevice", f"No USB device at bus {bus} address {address}.")
        return dbus.ObjectPath(DEVICE_PATH)

    @dbus.service.method(MANAGER_IFACE, in_signature="oy", out_signature="o", sender_keyword="sender")
    def ClaimInterface(self, device, interface, sender=None):
        device, interface = str(device), int(interface)
        if device != DEVICE_PATH:
            raise error("NoSuchDevice", f"No device {device}.")
        if interface != 0:
            raise error("InvalidArgument", f"Device {device} has no interface {interface}.")
        if any(c.interface == interface for c in self.claims.values()):
            raise error("Busy", f"Interface {interface} of {device} is claimed by another client.")
        path = f"/org/zcusb1/claim/c{self.next_claim}"
        self.next_claim += 1
        self.claims[path] = Claim(self, path, sender, interface)
        return dbus.ObjectPath(path)

    @dbus.service.method(TEST_IFACE, in_signature="s")
    def EndClaims(self, reason):
        for c in list(self.claims.values()):
            c.end(reason)

    @dbus.service.method(TEST_IFACE, in_signature="s")
    def SetRingOrder(self, order):
        if order not in ("in-order", "completion-first"):
            raise error("InvalidArgument", f"No ring order {order}.")
        self.ring_order = str(order)

    @dbus.service.method(TEST_IFACE, out_signature="a{st}")
    def Stats(self):
        return {k: dbus.UInt64(v) for k, v in self.stats.items()}


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(sys.argv[1])
    manager = Manager(conn)
    name = dbus.service.BusName(BUS_NAME, conn, do_not_queue=True)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, loop.quit)
    loop.run()
    del name, manager


if __name__ == "__main__":
    main()
