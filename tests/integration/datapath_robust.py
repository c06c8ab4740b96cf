# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tier-2 data-path tests of what goes wrong: usbfs out of memory, malformed and
hostile submissions and rings, a client killed or a device unplugged mid-stream,
two clients on one device, quotas, SIGTERM with transfers in flight, and
revocation. The same world as datapath.py (the real zcusbd, the usbfs emulator,
clients as separate processes); registers with datapath's tests."""

import errno
import signal
import time

import datapath
import usbfs_emu
import zcusbclient as zc
from datapath import (CLAIM_IFACE, DAEMON_UID, KIB, MIB, NOBODY, DataWorld, Session, bulk_in, bulk_out,
                      check_sanitizers, claim_gone, dbus_error, dtest, expect_status, queue_charge, signals,
                      two_gadgets, unb64, wait_queued)


@dtest("enomem")
def t_enomem():
    """usbfs answers SUBMITURB with ENOMEM when usbfs_memory_mb (shared by every
    usbfs user on the machine) is used up; zcusbd must keep the URB and retry,
    never fail the transfer, and keep the order."""
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        chunk = 16 * KIB
        state = {}

        def new_session():
            c = dw.client(name=f"client{len(dw.clients) + 1}")
            state["c"], state["s"] = c, Session(c, dw.devices[1].object_path, buffer_size=MIB)

        def episode(what, enomem, held_first, count=8):
            """count transfers; with held_first, the first one is held at the device
            (so URBs are in flight) while the others meet `enomem` ENOMEM answers."""
            c, s = state["c"], state["s"]
            ud0 = 100 * (len(state) + 1) + s.next_user_data
            s.next_user_data += count
            stream = emu.endpoint(0x81).stream
            c("fill", buffer=s.buf, offset=0, length=count * chunk, byte=0)
            mark = emu.mark()
            first = 0
            if held_first:
                emu.hold(0x81)
                s.submit(bulk_in(s, chunk, offset=0, user_data=ud0))
                wait_queued(emu, 0x81, 1)
                first = 1
            emu.enomem(enomem)
            s.submit(*[bulk_in(s, chunk, offset=k * chunk, user_data=ud0 + k) for k in range(first, count)])
            h.wait_until(lambda: emu.count("SUBMITURB", since=mark, result=-errno.ENOMEM) >= 1, 5,
                         "a SUBMITURB to fail ENOMEM")
            if held_first:
                emu.release(0x81)
            try:
                got = {x["user_data"]: x for x in s.wait(count, timeout=5)}
                bad = [(u, x["status"], x["actual_length"]) for u, x in got.items()
                       if x["status"] or x["actual_length"] != chunk]
                h.check(not bad, f"{what}: failed completions {bad}")
                h.check_eq(emu.count("SUBMITURB", since=mark, result=0), count, f"{what}: URBs accepted")
                order = [x[2]["seq"] for x in emu.find("REAPURBNDELAY", since=mark)]
                h.check_eq(order, sorted(order), f"{what}: URBs completed in submission order")
                m = s.verify(0, count * chunk, stream)
                h.check(m is None, f"{what}: data {m}")
                h.log(f"{what}: all {count} transfers completed correctly")
            finally:
                res = [x[2]["result"] for x in emu.find("SUBMITURB", since=mark)]
                h.log(f"{what}: SUBMITURB results {res}")
                emu.enomem(0)
                p = s.props()
                if p["InFlight"]:
                    h.log(f"{what}: {p['InFlight']} transfers stuck in zcusbd (Completed {p['Completed']}); "
                          "ending the client to end them")
                    c.close()
                    dw.clients.remove(c)
                    new_session()

        new_session()
        # one ENOMEM while an URB is in flight: retried after that URB completes
        episode("1 ENOMEM, an URB in flight", 1, True)
        # several ENOMEMs while an URB is in flight
        with h.soft("3 ENOMEM, an URB in flight"):
            episode("3 ENOMEM, an URB in flight", 3, True)
        # several ENOMEMs with nothing else in flight
        with h.soft("3 ENOMEM, nothing in flight"):
            episode("3 ENOMEM, nothing in flight", 3, False)
        # whatever happened, transfers work afterwards
        s = state["s"]
        got = s.run(*[bulk_in(s, chunk, offset=k * chunk, user_data=9000 + k) for k in range(8)])
        h.check(all(x["status"] == 0 and x["actual_length"] == chunk for x in got.values()),
                f"transfers after the ENOMEM episodes: {got}")


@dtest("validation")
def t_validation():
    h = datapath.h
    with DataWorld(two_gadgets()) as dw:
        emu = dw.emus[3]
        c = dw.client()
        gz, gz2 = dw.devices[1], dw.devices[2]
        s = Session(c, gz.object_path, buffer_size=64 * KIB)
        size = s.size
        s.alloc(8192)                       # buffer 2 of this claim
        s.alloc(8192)                       # buffer 3
        other = Session(c, gz2.object_path, buffer_size=8192)   # another claim of the same client: buffer 1 only
        h.check_eq((s.bid, other.bid), (1, 1), "buffer ids are per claim")
        U64 = (1 << 64) - 1
        bad = [
            # (what, sqe fields, status)
            ("unknown buffer id", dict(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=99, length=512), -errno.ENOENT),
            ("offset + length wraps around", dict(opcode=zc.OP_BULK, endpoint=0x81, offset=U64 - 15, length=32), -errno.EFAULT),
            ("offset at the end of the buffer", dict(opcode=zc.OP_BULK, endpoint=0x81, offset=size, length=1), -errno.EFAULT),
            ("length one past the buffer", dict(opcode=zc.OP_BULK, endpoint=0x02, offset=0, length=size + 1), -errno.EFAULT),
            ("offset beyond 4 GiB", dict(opcode=zc.OP_BULK, endpoint=0x02, offset=1 << 32, length=16), -errno.EFAULT),
            ("length > 1 GiB", dict(opcode=zc.OP_BULK, endpoint=0x02, offset=0, length=(1 << 30) + 1), -errno.EMSGSIZE),
            ("endpoint 0x85 (not in the interface)", dict(opcode=zc.OP_BULK, endpoint=0x85, length=512), -errno.EINVAL),
            ("endpoint 0x83 (alt 1 only)", dict(opcode=zc.OP_BULK, endpoint=0x83, length=512), -errno.EINVAL),
            ("INTERRUPT on a bulk endpoint", dict(opcode=zc.OP_INTERRUPT, endpoint=0x81, length=512), -errno.EINVAL),
            ("ISO on a bulk endpoint", dict(opcode=zc.OP_ISO, endpoint=0x81, length=512, iso_packets=1), -errno.EINVAL),
            ("endpoint 0x01 (OUT twin of 0x81)", dict(opcode=zc.OP_BULK, endpoint=0x01, length=512), -errno.EINVAL),
            ("endpoint 0x82 (IN twin of 0x02)", dict(opcode=zc.OP_BULK, endpoint=0x82, length=512), -errno.EINVAL),
            ("SHORT_NOT_OK on OUT", dict(opcode=zc.OP_BULK, endpoint=0x02, length=512, flags=zc.SQE_SHORT_NOT_OK), -errno.EINVAL),
            ("ZERO_PACKET on IN", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, flags=zc.SQE_ZERO_PACKET), -errno.EINVAL),
            ("unknown flag", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, flags=0x8000), -errno.EINVAL),
            ("zero-length IN", dict(opcode=zc.OP_BULK, endpoint=0x81, length=0), -errno.EINVAL),
            ("reserved0 set", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, reserved0=1), -errno.EINVAL),
            ("reserved1[0] set", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, reserved1=[1, 0]), -errno.EINVAL),
            ("reserved1[1] set", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, reserved1=[0, 1 << 63]), -errno.EINVAL),
            ("reserved field of a NOP", dict(opcode=zc.OP_NOP, reserved0=7), -errno.EINVAL),
            ("unknown opcode", dict(opcode=9, endpoint=0x81, length=512), -errno.EINVAL),
            ("opcode 255", dict(opcode=255), -errno.EINVAL),
            ("iso_packets on a bulk transfer", dict(opcode=zc.OP_BULK, endpoint=0x81, length=512, iso_packets=1), -errno.EINVAL),
            ("bulk on endpoint 0", dict(opcode=zc.OP_BULK, endpoint=0x00, length=512), -errno.EINVAL),
            ("bulk on endpoint 0x80", dict(opcode=zc.OP_BULK, endpoint=0x80, length=512), -errno.EINVAL),
            ("control to endpoint 0x81", dict(opcode=zc.OP_CONTROL, endpoint=0x81, length=8), -errno.EINVAL),
        ]
        mark = emu.mark()
        base = 100
        entries = [s.sqe(user_data=base + i, **dict({"buffer_id": s.bid}, **f)) for i, (_, f, _) in enumerate(bad)]
        entries.append(bulk_in(s, 4096, user_data=999))           # and a good one after them
        s.submit(*entries)
        got = {x["user_data"]: x for x in s.wait(len(entries))}
        for i, (what, _, status) in enumerate(bad):
            with h.soft(what):
                expect_status(got[base + i], status, what, actual=0)
        expect_status(got[999], 0, "a good transfer after the bad ones", actual=4096)
        h.check_eq([(x[2]["ep"], x[2]["length"]) for x in emu.find("SUBMITURB", since=mark)], [(0x81, 4096)],
                   "URBs that reached the device")
        p = s.props()
        h.check_eq((p["Submitted"], p["Failed"], p["Completed"]), (len(entries), len(bad), 1),
                   "(Submitted, Failed, Completed)")

        # another claim's buffer id: claim 2 of the same client has buffer 1 only
        got = other.run(other.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=3, length=512, user_data=1),
                        other.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=2, length=512, user_data=2),
                        other.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=1, length=512, user_data=3))
        expect_status(got[1], -errno.ENOENT, "buffer id 3 of another claim")
        expect_status(got[2], -errno.ENOENT, "buffer id 2 of another claim")
        expect_status(got[3], 0, "the claim's own buffer 1", actual=512)
        # a freed buffer's id is unknown from then on
        c("free", claim=s.claim, id=3)
        got = s.run(s.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=3, length=512, user_data=5))
        expect_status(got[5], -errno.ENOENT, "a freed buffer's id")
        # FreeBuffer of a buffer in use is refused
        emu.hold(0x81)
        s.submit(s.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=2, length=512, user_data=6))
        wait_queued(emu, 0x81, 1)
        h.check_eq(dbus_error(c, "free", claim=s.claim, id=2)[0], "org.zcusb1.Error.Busy", "FreeBuffer while in use")
        h.check_eq(dbus_error(c, "free", claim=s.claim, id=42)[0], "org.zcusb1.Error.InvalidArgument",
                   "FreeBuffer of an unknown id")
        emu.release(0x81)
        expect_status(s.wait(1)[0], 0, "the transfer that held buffer 2", actual=512)
        c("free", claim=s.claim, id=2)
        # zero-length OUT is a valid ZLP
        got = s.run(bulk_out(s, 0, user_data=7), bulk_in(s, 4096, user_data=8))
        expect_status(got[7], 0, "zero-length OUT", actual=0)
        expect_status(got[8], 0, "IN after it", actual=4096)
        h.check(dw.w.daemon.p.poll() is None, "zcusbd is running")


@dtest("hostile-ring")
def t_hostile_ring():
    h = datapath.h
    with DataWorld(two_gadgets()) as dw:
        emu, emu2 = dw.emus[3], dw.emus[6]
        gz, gz2 = dw.devices[1], dw.devices[2]
        a = dw.client(NOBODY, name="hostile")
        b = dw.client(DAEMON_UID, name="victim")
        sa = Session(a, gz.object_path, buffer_size=64 * KIB, entries=16)
        sb = Session(b, gz2.object_path, buffer_size=64 * KIB, entries=16)
        sb.alloc(4096)   # the victim has buffer ids 1 and 2, the hostile client only 1

        def victim_ok(what):
            stream = emu2.endpoint(0x81).stream
            got = sb.run(bulk_in(sb, 8192, user_data=sb.next_user_data))
            c = list(got.values())[0]
            expect_status(c, 0, f"the other client's transfer {what}", actual=8192)
            h.check(sb.verify(0, 8192, stream) is None, f"the other client's data {what}")

        victim_ok("before anything")

        # 1. sq_tail far beyond sq_entries: the queue is marked broken and never served again
        st = sa.state()
        a("poke", queue=sa.q, name="sq_tail", value=st["sq_head"] + 16 + 5)
        a("doorbell", queue=sa.q)
        h.wait_until(lambda: sa.state()["sq_flags"] & zc.SQ_BROKEN, 3, "ZCUSB_SQ_BROKEN after sq_tail ran away")
        dw.wait_log("indices are corrupt")
        h.check(dw.w.daemon.p.poll() is None, "zcusbd survived a runaway sq_tail")
        victim_ok("after a runaway sq_tail")
        # a broken queue stays dead even when the client puts things right
        a("poke", queue=sa.q, name="sq_tail", value=st["sq_head"])
        sa.submit(bulk_in(sa, 512, user_data=1), doorbell="always", expect_taken=False)
        h.sleep_iterating(0.3)
        h.check_eq(a("reap", queue=sa.q), [], "completions from a broken queue")
        h.check(sa.state()["sq_flags"] & zc.SQ_BROKEN, "BROKEN stays set")
        # sq_tail moved backwards is just as broken
        r = a("open_queue", claim=sa.claim, entries=8)
        qb = r["queue"]
        a("poke", queue=qb, name="sq_tail", value=0xFFFFFFF0)
        a("doorbell", queue=qb)
        h.wait_until(lambda: a("state", queue=qb, quiet=True)["sq_flags"] & zc.SQ_BROKEN, 3,
                     "ZCUSB_SQ_BROKEN after sq_tail moved backwards")
        a("close_queue", claim=sa.claim, id=r["id"])
        # the claim itself keeps working through a new queue
        r = a("open_queue", claim=sa.claim, entries=16)
        sa.q, sa.qid = r["queue"], r["id"]
        got = sa.run(bulk_in(sa, 4096, user_data=10))
        expect_status(got[10], 0, "a transfer through a fresh queue of the same claim", actual=4096)

        # 2. ids, offsets, endpoints and user_data that are not the client's own
        b("fill", buffer=sb.buffers[1]["buffer"], offset=0, length=4096, byte=0x5A)
        emu2.hold(0x81)
        sb.submit(bulk_in(sb, 512, user_data=777))
        wait_queued(emu2, 0x81, 1)
        got = sa.run(sa.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=2, length=512, user_data=20),
                     sa.sqe(opcode=zc.OP_CANCEL, cancel_user_data=777, user_data=21, buffer_id=0),
                     sa.sqe(opcode=zc.OP_BULK, endpoint=0x81, offset=1 << 40, length=512, user_data=22))
        expect_status(got[20], -errno.ENOENT, "the other client's buffer id 2")
        expect_status(got[21], -errno.ENOENT, "CANCEL of the other client's user_data")
        expect_status(got[22], -errno.EFAULT, "offset 1 TiB")
        h.check_eq(len(emu2.held_urbs(0x81)), 1, "the other client's transfer is still in flight")
        emu2.release(0x81)
        expect_status(sb.wait(1)[0], 0, "the other client's held transfer", actual=512)
        h.check_eq(unb64(b("read", buffer=sb.buffers[1]["buffer"], offset=0, length=16)), b"\x5a" * 16,
                   "the other client's second buffer is untouched")

        # 3. rewriting an entry after zcusbd took it changes nothing
        emu.hold(0x81)
        mark = emu.mark()
        tail = sa.submit(bulk_in(sa, 4096, user_data=30))["tail"]
        wait_queued(emu, 0x81, 1)
        a("write_slot", queue=sa.q, index=tail - 1, sqe=dict(opcode=zc.OP_BULK, endpoint=0x02, buffer_id=9,
                                                              offset=1 << 50, length=1 << 20, user_data=31))
        emu.release(0x81)
        got = sa.wait(1)
        h.check_eq((got[0]["user_data"], got[0]["status"], got[0]["actual_length"]), (30, 0, 4096),
                   "completion of an entry rewritten after submission")
        h.check_eq([(x[2]["ep"], x[2]["length"]) for x in emu.find("SUBMITURB", since=mark)], [(0x81, 4096)],
                   "what reached the device for the rewritten entry")
        h.sleep_iterating(0.2)
        h.check_eq(a("reap", queue=sa.q), [], "extra completions after the rewrite")

        # 4. cq_head garbage / moved backwards while transfers complete: zcusbd keeps the
        # completions (it cannot post them) and posts them once cq_head makes sense again
        emu.hold(0x81)
        sa.submit(*[bulk_in(sa, 1024, offset=k * 1024, user_data=40 + k) for k in range(4)])
        wait_queued(emu, 0x81, 4)
        good_head = a("state", queue=sa.q)["my_cq_head"]
        a("poke", queue=sa.q, name="cq_head", value=0xDEADBEEF)
        emu.release(0x81)
        h.wait_until(lambda: not emu.held_urbs(0x81) and emu.count("REAPURBNDELAY", seq=emu.seq) == 1, 3,
                     "the held URBs to be reaped")
        h.sleep_iterating(0.2)
        h.check(dw.w.daemon.p.poll() is None, "zcusbd survived a garbage cq_head")
        victim_ok("while the hostile client's cq_head is garbage")
        st = sa.state()
        h.log(f"ring with a garbage cq_head after 4 completions: {st}")
        a("poke", queue=sa.q, name="cq_head", value=good_head - 100)   # backwards
        a("doorbell", queue=sa.q)
        h.sleep_iterating(0.2)
        victim_ok("while the hostile client's cq_head is behind")
        a("poke", queue=sa.q, name="cq_head", value=good_head)
        a("doorbell", queue=sa.q)
        got = sa.wait(4, timeout=5)
        h.check_eq(sorted((x["user_data"], x["status"], x["actual_length"]) for x in got),
                   [(40 + k, 0, 1024) for k in range(4)], "completions once cq_head is sane again (none lost)")

        # 5. never consuming completions: zcusbd stops taking entries when their
        # completions could not be posted, and loses none
        r = a("open_queue", claim=sa.claim, entries=8)      # 8 submissions, 16 completion slots
        q8 = r["queue"]
        total, sent = 40, 0
        while sent < total:
            st = a("state", queue=q8, quiet=True)
            room = 8 - ((sent - st["sq_head"]) & 0xFFFFFFFF)
            if room <= 0:
                break
            n = min(room, total - sent)
            a("submit", queue=q8, sqes=[dict(opcode=zc.OP_NOP, user_data=1000 + sent + k) for k in range(n)],
              doorbell="always", quiet=True)
            sent += n
            h.sleep_iterating(0.05)
        st = a("state", queue=q8)
        h.check_eq(((st["cq_tail"] - st["cq_head"]) & 0xFFFFFFFF, st["sq_head"]), (16, 16),
                   "(completions waiting, entries taken) with a full completion ring")
        h.check_eq(sent, 24, "entries the client could publish (16 taken + 8 waiting in the ring)")
        got = []
        while len(got) < sent:
            more = a("wait", queue=q8, n=1, timeout=3, quiet=True)
            h.check(more, f"completions stopped at {len(got)} of {sent}")
            got += more
            a("doorbell", queue=q8)
        h.check_eq(sorted(x["user_data"] for x in got), list(range(1000, 1000 + sent)),
                   "every NOP completed exactly once")

        # 6. the client cannot resize what zcusbd maps (sealed memfds)
        h.check_eq(a("ftruncate", buffer=sa.buf, size=4096), -errno.EPERM, "ftruncate(buffer, smaller)")
        h.check_eq(a("ftruncate", buffer=sa.buf, size=1 << 30), -errno.EPERM, "ftruncate(buffer, larger)")

        # 7. header fields scribbled over: zcusbd uses its own copies
        a("poke", queue=sa.q, name="sq_entries", value=4096)
        a("poke", queue=sa.q, name="cq_offset", value=0)
        a("poke", queue=sa.q, name="sq_flags", value=0)   # (so the doorbell rule no longer applies)
        sa.submit(bulk_in(sa, 2048, user_data=50), doorbell="always")
        got = {x["user_data"]: x for x in sa.wait(1)}
        expect_status(got[50], 0, "transfer after the header was scribbled over", actual=2048)
        victim_ok("at the end")
        h.check(dw.w.daemon.p.poll() is None, "zcusbd is running")


@dtest("kill-client")
def t_kill_client():
    h = datapath.h
    # a per-user byte quota that one client's buffer nearly fills: a leak would show
    with DataWorld(two_gadgets(), config="[Quota]\nBytesPerUser=8M\n") as dw:
        emu, emu2 = dw.emus[3], dw.emus[6]
        gz, gz2 = dw.devices[1], dw.devices[2]
        sigs = h.SignalLog(dw.w.bus.conn)

        def kill_holder(name, also=None):
            """A client with 8 transfers held at the device is SIGKILLed: within 1 s
            its URBs are discarded and its interface released. Returns the claim path."""
            a = dw.client(NOBODY, name=name)
            s = Session(a, gz.object_path, buffer_size=6 * MIB, entries=16)
            emu.hold(0x81)
            s.submit(*[bulk_in(s, 64 * KIB, offset=k * 64 * KIB, user_data=k) for k in range(8)])
            seqs = sorted(u.seq for u in wait_queued(emu, 0x81, 8))
            h.check(not claim_gone(dw, s.path), f"{s.path} seen as gone while {name} holds it")
            if also:
                also()
            mark = emu.mark()
            t0 = time.monotonic()
            a.kill(signal.SIGKILL)
            a.p.wait()
            h.wait_until(lambda: emu.count("RELEASEINTERFACE", since=mark) >= 1, 1.0,
                         f"RELEASEINTERFACE within 1 s of the SIGKILL of {name}")
            h.log(f"{name}: interface released {(time.monotonic() - t0) * 1000:.0f} ms after SIGKILL")
            discarded = sorted(x[2]["seq"] for x in emu.find("DISCARDURB", since=mark, result=0))
            h.check_eq(discarded, seqs, f"URBs discarded after {name} died")
            names = [x[1] for x in emu.find(since=mark) if x[1] in ("DISCARDURB", "RELEASEINTERFACE")]
            h.check_eq(names[-1], "RELEASEINTERFACE", "the interface is released after the URBs are discarded")
            h.check_eq(emu.in_flight, {}, "URBs still in flight at the device")
            h.wait_until(lambda: claim_gone(dw, s.path), 1, f"{s.path} to disappear")
            emu.release(0x81)
            dw.clients.remove(a)
            a.close()
            return s.path

        path = kill_holder("victim")
        h.check(not sigs.find("InterfacesRemoved", h.MANAGER_PATH, lambda e: e[2][0] == path),
                f"InterfacesRemoved({path}) broadcast to other connections")
        sigs.close()
        # a new client (same uid) can claim, starts at 0 bytes, and gets the user's quota back
        b = dw.client(NOBODY, name="next")
        r = b("claim", device=gz.object_path, interface=0)
        h.check_eq(b("props", claim=r["claim"])["UsedBytes"], 0, "UsedBytes of a new claim before allocating")
        got = b("alloc", claim=r["claim"], size=6 * MIB)
        h.check_eq(got["size"], 6 * MIB, "6 MiB under an 8 MiB per-user quota after the dead client's 6 MiB")
        qb = b("open_queue", claim=r["claim"], entries=8)["queue"]
        b("submit", queue=qb, sqes=[dict(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=got["id"], length=4096,
                                         user_data=1)])
        c = b("wait", queue=qb, n=1, timeout=5)
        h.check_eq([(x["user_data"], x["status"], x["actual_length"]) for x in c], [(1, 0, 4096)],
                   "the new client's transfer")
        b("call", claim=r["claim"], method="Release")

        # the same while another client keeps zcusbd busy with a continuous stream
        # (completions always waiting: the usbfs fd is readable all the time)
        streamer = dw.client(DAEMON_UID, name="streamer")
        ss = Session(streamer, gz2.object_path, buffer_size=MIB, entries=32)

        def start_stream():
            mark2 = emu2.mark()
            streamer.send("stream", queue=ss.q, sqe=bulk_in(ss, 16 * KIB, user_data=0), depth=16, seconds=3)
            h.wait_until(lambda: emu2.count("REAPURBNDELAY", since=mark2) > 200, 5, "the stream to run")
        with h.soft("a killed client's claim ends while another client streams"):
            kill_holder("victim2", also=start_stream)
        res = streamer.result(timeout_rpc=30)
        h.log(f"stream: {res}")
        h.check(res["completed"] > 0 and not res["bad"] and res["in_flight"] == 0, f"the stream: {res}")
        h.check("leaves" not in dw.daemon_log(), "zcusbd reports bytes left charged")


@dtest("unplug")
def t_unplug():
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        gz = dw.devices[1]
        sigs = h.SignalLog(dw.w.bus.conn)
        c = dw.client()
        s = Session(c, gz.object_path, buffer_size=MIB, entries=32)
        # a stream in progress: some transfers done, others in flight at the device
        got = s.run(*[bulk_out(s, 16 * KIB, offset=k * 16 * KIB, user_data=k) for k in range(4)])
        h.check(all(x["status"] == 0 for x in got.values()), f"OUT transfers before the unplug: {got}")
        emu.hold(0x81)
        s.submit(*[bulk_in(s, 16 * KIB, offset=k * 16 * KIB, user_data=100 + k) for k in range(4)],
                 bulk_in(s, 512 * KIB, offset=512 * KIB, user_data=104))
        wait_queued(emu, 0x81, 6)
        mark = emu.mark()
        emu.disconnect()
        dw.w.tb.unplug(gz)
        got = {x["user_data"]: x for x in s.wait(5, timeout=5)}
        for ud in range(100, 105):
            with h.soft(f"in-flight transfer {ud}"):
                expect_status(got[ud], -errno.ENODEV, f"transfer {ud} in flight at the unplug")
        signals(c, want=(s.path, "device-removed"))
        h.wait_until(lambda: sigs.find("DeviceRemoved", h.MANAGER_PATH, lambda e: e[2] == (gz.object_path,)), 5,
                     "DeviceRemoved")
        # later submissions complete -ENODEV at once
        got = s.run(bulk_in(s, 4096, user_data=200), bulk_out(s, 4096, user_data=201),
                    s.sqe(opcode=zc.OP_NOP, user_data=202))
        for ud in (200, 201, 202):
            expect_status(got[ud], -errno.ENODEV, f"submission {ud} after the unplug")
        h.check(s.state()["sq_flags"] & zc.SQ_DEAD, "ZCUSB_SQ_DEAD set on the queue")
        h.check_eq(emu.count("SUBMITURB", since=mark), 0, "URBs submitted after the disconnect")
        h.check_eq(emu.in_flight, {}, "URBs never given back")
        # the claim object stays until released; its methods say why
        err = dbus_error(c, "alloc", claim=s.claim, size=4096)
        h.check_eq(err[0], "org.zcusb1.Error.NoSuchDevice", "AllocBuffer on a claim whose device is gone")
        p = s.props()
        h.check_eq((p["InFlight"], p["Device"]), (0, "/"), "(InFlight, Device) of the ended claim")
        s.call("Release")
        h.check(claim_gone(dw, s.path), "claim object after Release")
        sigs.close()
        ended = [x for x in c("signals") if x[1] == s.path]
        h.check_eq(ended, [["Ended", s.path, "device-removed"]], "Ended signals of the claim (exactly one)")


@dtest("two-clients")
def t_two_clients():
    h = datapath.h
    with DataWorld(two_gadgets()) as dw:
        emu, emu2 = dw.emus[3], dw.emus[6]
        gz, gz2 = dw.devices[1], dw.devices[2]
        a = dw.client(NOBODY, name="nobody")
        b = dw.client(DAEMON_UID, name="daemon")
        sa = Session(a, gz.object_path, buffer_size=MIB)
        sa.alloc(4096)
        sa.alloc(4096)
        sb = Session(b, gz2.object_path, buffer_size=MIB)
        h.check_eq(([x["id"] for x in sa.buffers], [x["id"] for x in sb.buffers]), ([1, 2, 3], [1]),
                   "buffer ids (per claim)")

        # claim objects: each may touch only its own
        for me, mine, theirs, who in ((a, sa, sb, "nobody"), (b, sb, sa, "uid 1")):
            for method, sig, args in (("AllocBuffer", "t", [4096]), ("FreeBuffer", "u", [1]),
                                      ("OpenQueue", "u", [8]), ("CloseQueue", "u", [1]),
                                      ("SetAltSetting", "y", [0]), ("ClearHalt", "y", [0x81]),
                                      ("Release", "", [])):
                err = dbus_error(me, "dbus", path=theirs.path, iface=CLAIM_IFACE, method=method, signature=sig,
                                 args=args)
                h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", f"{method} on the other's claim as {who}")
            for method, sig, args in (("GetAll", "s", [CLAIM_IFACE]), ("Get", "ss", [CLAIM_IFACE, "UsedBytes"])):
                err = dbus_error(me, "dbus", path=theirs.path, iface="org.freedesktop.DBus.Properties",
                                 method=method, signature=sig, args=args)
                h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", f"{method} on the other's claim as {who}")
            mo = me("dbus", path="/org/zcusb1", iface="org.freedesktop.DBus.ObjectManager",
                    method="GetManagedObjects")
            claims = sorted(p for p in mo if p.startswith("/org/zcusb1/claim/"))
            h.check_eq(claims, [mine.path], f"claims in GetManagedObjects as {who}")
        h.check_eq(dbus_error(b, "claim", device=gz.object_path, interface=0)[0], "org.zcusb1.Error.Busy",
                   "uid 1 claiming nobody's interface")
        h.check_eq(sa.props()["Buffers"], 3, "nobody's buffers after uid 1's attempts")

        # buffers: ids are per claim; using the other's ids reaches only one's own
        a("fill", buffer=sa.buf, offset=0, length=4096, byte=0xAA)
        got = sb.run(sb.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=2, length=512, user_data=1),
                     sb.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=3, length=512, user_data=2),
                     sb.sqe(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=1, length=4096, user_data=3))
        expect_status(got[1], -errno.ENOENT, "uid 1 naming buffer id 2 (only nobody's claim has one)")
        expect_status(got[2], -errno.ENOENT, "uid 1 naming buffer id 3")
        expect_status(got[3], 0, "uid 1's own buffer 1", actual=4096)
        h.check_eq(unb64(a("read", buffer=sa.buf, offset=0, length=4096)), b"\xaa" * 4096,
                   "nobody's buffer 1 after uid 1 read into its buffer 1")

        # both stream at once: nobody IN on 001:003, uid 1 OUT on 001:006
        n, chunk = 16, 64 * KIB
        stream = emu.endpoint(0x81).stream
        b("fill", buffer=sb.buf, offset=0, length=MIB, pattern_offset=99)
        a("submit", queue=sa.q, sqes=[bulk_in(sa, chunk, offset=k * chunk) for k in range(n)])
        b("submit", queue=sb.q, sqes=[bulk_out(sb, chunk, offset=k * chunk) for k in range(n)])
        ga = sa.wait(n, timeout=20)
        gb = sb.wait(n, timeout=20)
        h.check(all(x["status"] == 0 and x["actual_length"] == chunk for x in ga + gb),
                f"concurrent streams: {[(x['status'], x['actual_length']) for x in ga + gb if x['status']]}")
        h.check(sa.verify(0, MIB, stream) is None, "nobody's IN data")
        h.check(emu2.received(0x02) == usbfs_emu.pattern(99, MIB), "uid 1's OUT data")
        h.check_eq(emu.received(0x02), b"", "nothing reached nobody's device OUT")

        # one client's claim ending leaves the other's alone
        sa.call("Release")
        got = sb.run(bulk_in(sb, 4096, user_data=50))
        expect_status(got[50], 0, "uid 1's transfer after nobody released", actual=4096)
        leaked = [x for x in b("signals") if x[1] == sa.path]
        h.check_eq(leaked, [], "nobody's claim signals seen by uid 1 (they go to the owner only)")


@dtest("quota")
def t_quota():
    h = datapath.h
    cfg = "[Quota]\nBytesPerClient=1M\nClaimsPerClient=1\nBuffersPerClient=3\nInFlightPerClient=4\n"
    with DataWorld(two_gadgets(), config=cfg) as dw:
        emu = dw.emus[3]
        gz, gz2 = dw.devices[1], dw.devices[2]
        c = dw.client()
        r = c("claim", device=gz.object_path, interface=0)
        cl = r["claim"]
        p = c("props", claim=cl)
        h.check_eq((p["QuotaBytes"], p["UsedBytes"]), (MIB, 0), "(QuotaBytes, UsedBytes) with BytesPerClient=1M")
        name, msg = dbus_error(c, "alloc", claim=cl, size=2 * MIB)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "AllocBuffer(2M) over a 1M quota")
        h.log(f"QuotaExceeded message: {msg!r}")
        h.check("2M" in msg and "1M" in msg, f"the message names the numbers (2M requested, 1M allowed): {msg!r}")
        h.check_eq(c("props", claim=cl)["UsedBytes"], 0, "UsedBytes after the refused AllocBuffer")
        b1 = c("alloc", claim=cl, size=512 * KIB)
        name, msg = dbus_error(c, "alloc", claim=cl, size=600 * KIB)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "AllocBuffer(600K) with 512K of 1M used")
        h.check("512K" in msg and "600K" in msg, f"the message names what is in use and requested: {msg!r}")
        h.check_eq(c("props", claim=cl)["UsedBytes"], 512 * KIB, "UsedBytes after the second refusal")
        name, msg = dbus_error(c, "open_queue", claim=cl, entries=4096)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "OpenQueue(4096) (a 516K ring) with 512K left")
        q = c("open_queue", claim=cl, entries=8)
        used = 512 * KIB + queue_charge(q["header"])
        h.check_eq(c("props", claim=cl)["UsedBytes"], used, "UsedBytes counts the ring")
        # BuffersPerClient=3
        c("alloc", claim=cl, size=4096)
        c("alloc", claim=cl, size=4096)
        name, msg = dbus_error(c, "alloc", claim=cl, size=4096)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "a 4th buffer with BuffersPerClient=3")
        h.check("3" in msg, f"message: {msg!r}")
        # freeing gives the bytes back
        c("free", claim=cl, id=b1["id"])
        h.check_eq(c("props", claim=cl)["UsedBytes"], queue_charge(q["header"]) + 2 * 4096,
                   "UsedBytes after FreeBuffer(512K)")
        # ClaimsPerClient=1
        name, msg = dbus_error(c, "claim", device=gz2.object_path, interface=0)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "second claim with ClaimsPerClient=1")
        h.check("1" in msg, f"message: {msg!r}")
        # ... which is per client: another client may claim
        other = dw.client(DAEMON_UID, name="other")
        other("claim", device=gz2.object_path, interface=0)

        # InFlightPerClient=4: the 5th-8th transfers wait in the ring until some end
        bid = 2
        emu.hold(0x81)
        qh = q["queue"]
        c("submit", queue=qh, sqes=[dict(opcode=zc.OP_BULK, endpoint=0x81, buffer_id=bid, length=512,
                                         user_data=k) for k in range(8)])
        wait_queued(emu, 0x81, 4)
        h.sleep_iterating(0.3)
        h.check_eq(len(emu.held_urbs(0x81)), 4, "URBs in flight with InFlightPerClient=4")
        h.check_eq(c("props", claim=cl)["InFlight"], 4, "InFlight property")
        emu.release(0x81)
        got = c("wait", queue=qh, n=8, timeout=5)
        h.check_eq(sorted((x["user_data"], x["status"]) for x in got), [(k, 0) for k in range(8)],
                   "all 8 transfers complete once the first ones end")
        h.check(emu.max_in_flight <= 4, f"at most 4 URBs were in flight at once ({emu.max_in_flight})")

    # BytesPerClient=0: no memory at all
    with DataWorld(config="[Quota]\nBytesPerClient=0\n") as dw:
        c = dw.client()
        cl = c("claim", device=dw.devices[1].object_path, interface=0)["claim"]
        name, msg = dbus_error(c, "alloc", claim=cl, size=1)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "AllocBuffer(1) with BytesPerClient=0")
        h.log(f"QuotaExceeded message: {msg!r}")
        name, msg = dbus_error(c, "open_queue", claim=cl, entries=1)
        h.check_eq(name, "org.zcusb1.Error.QuotaExceeded", "OpenQueue(1) with BytesPerClient=0")
        h.check_eq(c("props", claim=cl)["UsedBytes"], 0, "UsedBytes")


@dtest("sigterm-inflight")
def t_sigterm_inflight():
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        c = dw.client()
        s = Session(c, dw.devices[1].object_path, buffer_size=2 * MIB)
        got = s.run(bulk_in(s, 4096, user_data=1))
        expect_status(got[1], 0, "a transfer before the SIGTERM", actual=4096)
        emu.hold(0x81)
        emu.hold(0x02)
        s.submit(bulk_in(s, 4096, user_data=10), bulk_in(s, MIB, offset=MIB, user_data=11),
                 bulk_out(s, 8192, user_data=12))
        wait_queued(emu, 0x81, 5)
        wait_queued(emu, 0x02, 1)
        mark = emu.mark()
        rc, took = dw.w.daemon.stop()
        h.log(f"zcusbd exited {rc} {took:.3f}s after SIGTERM")
        with open(dw.w.daemon.errpath, errors="replace") as f:
            with h.soft("no sanitizer report at exit"):
                check_sanitizers(f.read())
        with h.soft("exit code"):
            h.check_eq(rc, 0, "zcusbd exit code after SIGTERM with transfers in flight")
        h.check(took < 2.0, f"zcusbd took {took:.2f}s to exit")
        got = {x["user_data"]: x for x in s.wait(3, timeout=5)}
        for ud in (10, 11, 12):
            with h.soft(f"transfer {ud}"):
                expect_status(got[ud], -errno.ESHUTDOWN, f"transfer {ud} in flight at SIGTERM", actual=0)
        h.check_eq(emu.count("DISCARDURB", since=mark, result=0), 6, "URBs discarded on the way out")
        h.check_eq(emu.count("RELEASEINTERFACE", since=mark), 1, "interface released on the way out")
        h.check_eq(emu.in_flight, {}, "URBs left at the device")
        h.check(s.state()["sq_flags"] & zc.SQ_DEAD, "ZCUSB_SQ_DEAD set")
        with h.soft("Ended(shutdown) reaches the client"):
            signals(c, want=(s.path, "shutdown"), timeout=2)


@dtest("revoke")
def t_revoke():
    h = datapath.h
    with DataWorld() as dw:
        emu = dw.emu
        gz = dw.devices[1]
        a = dw.client(NOBODY, name="nobody")
        b = dw.client(DAEMON_UID, name="daemon")
        s = Session(a, gz.object_path, buffer_size=MIB)
        got = s.run(bulk_in(s, 4096, user_data=1))
        expect_status(got[1], 0, "a transfer before the policy change", actual=4096)
        emu.hold(0x81)
        s.submit(bulk_in(s, 4096, user_data=10), bulk_in(s, 512 * KIB, offset=4096, user_data=11))
        wait_queued(emu, 0x81, 3)
        mark = emu.mark()
        # the rules change (udevadm trigger): only uid 1 may use the device now
        dw.w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_USERS", "daemon")
        dw.w.tb.uevent(gz.sys_syspath, "change")
        got = {x["user_data"]: x for x in s.wait(2, timeout=5)}
        expect_status(got[10], -errno.EACCES, "held transfer when access is revoked")
        expect_status(got[11], -errno.EACCES, "held split transfer when access is revoked")
        signals(a, want=(s.path, "revoked"))
        h.check_eq(emu.count("DISCARDURB", since=mark, result=0), 3, "URBs discarded on revocation")
        h.wait_until(lambda: emu.count("RELEASEINTERFACE", since=mark) == 1, 2, "RELEASEINTERFACE after revocation")
        got = s.run(bulk_in(s, 4096, user_data=20))
        expect_status(got[20], -errno.EACCES, "a submission after the revocation")
        h.check(s.state()["sq_flags"] & zc.SQ_DEAD, "ZCUSB_SQ_DEAD set")
        err = dbus_error(a, "alloc", claim=s.claim, size=4096)
        h.check_eq(err[0], "org.zcusb1.Error.AccessDenied", "AllocBuffer on a revoked claim")
        emu.release(0x81)
        # the newly allowed user can claim the interface (the revoked claim does not block it)
        r = b("claim", device=gz.object_path, interface=0)
        h.check_eq(b("props", claim=r["claim"])["Interface"], 0, "the new owner's claim")
        s.call("Release")
        h.check(claim_gone(dw, s.path), "revoked claim object after Release")
        h.check_eq(len([x for x in a("signals") if x[1] == s.path]), 1, "Ended signals of the revoked claim")
