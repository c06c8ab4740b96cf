"""zcusb's hostile-client suite: the scenarios that attack the data path (rings, shared memory, kills, memory, control requests, doorbells, usbfs memory)."""

import hostile_rig as rig
from hostile_rig import *  # noqa: F401,F403  (the rig's helpers and the integration tier's modules)


@scenario("ring-garbage", "garbage in every header field, index and slot of several queues, indices "
                          "tampered (runaway, backwards, wrapped, BROKEN flag cleared), while another uid's "
                          "transfers must keep working")
def s_ring_garbage(row):
    rnd = random.Random(SEED + 1)
    with HostileWorld(row) as hw:
        gz3, gz6 = hw.devices[1], hw.devices[2]
        a = hw.client(NOBODY, name="hostile")
        b = hw.client(DAEMON_UID, name="victim")
        sa = dp.Session(a, gz3.object_path, buffer_size=256 * KIB, entries=16)
        sb = dp.Session(b, gz6.object_path, buffer_size=64 * KIB, entries=16)
        emu6 = hw.dw.emus[6]
        rounds = scaled(8)
        header_fields = zc.HEADER_FIELDS
        tamper = ["sq_tail+entries+1", "sq_tail-1", "sq_tail=2^31", "cq_head garbage", "cq_head backwards",
                  "flags cleared", "random everything"]
        queues = []
        broken = victim_ok = 0
        for rd in range(rounds):
            while len(queues) < 4:
                entries = 1 << rnd.randrange(0, 7)
                r = remote(a, "open_queue", row, "OpenQueue", claim=sa.claim, entries=entries)
                if isinstance(r, Exception):
                    break
                queues.append((r["queue"], r["id"], entries))
            for qh, qid, entries in queues:
                how = rnd.choice(tamper)
                st = a("state", queue=qh, quiet=True)
                if how == "sq_tail+entries+1":
                    a("poke", queue=qh, name="sq_tail", value=st["sq_head"] + entries + 1, quiet=True)
                elif how == "sq_tail-1":
                    a("poke", queue=qh, name="sq_tail", value=st["sq_head"] - 1, quiet=True)
                elif how == "sq_tail=2^31":
                    a("poke", queue=qh, name="sq_tail", value=1 << 31, quiet=True)
                elif how == "cq_head garbage":
                    a("poke", queue=qh, name="cq_head", value=rnd.getrandbits(32), quiet=True)
                elif how == "cq_head backwards":
                    a("poke", queue=qh, name="cq_head", value=st["cq_tail"] - 3 * entries, quiet=True)
                elif how == "flags cleared":
                    a("poke", queue=qh, name="sq_flags", value=0, quiet=True)
                    a("poke", queue=qh, name="cq_flags", value=0xFFFFFFFF, quiet=True)
                else:
                    for f in header_fields:
                        a("poke", queue=qh, name=f, value=rnd.getrandbits(32), quiet=True)
                    for f in zc.INDEX_OFFSETS:
                        if f != "sq_tail":
                            a("poke", queue=qh, name=f, value=rnd.getrandbits(32), quiet=True)
                    for i in range(min(entries, 8)):
                        a("write_slot", queue=qh, index=i, quiet=True, sqe=dict(
                            opcode=rnd.randrange(256), endpoint=rnd.randrange(256), flags=rnd.randrange(1 << 16),
                            buffer_id=rnd.getrandbits(32), offset=rnd.getrandbits(64), length=rnd.getrandbits(32),
                            timeout_ms=rnd.getrandbits(32), iso_packets=rnd.getrandbits(32),
                            user_data=rnd.getrandbits(64)))
                    a("poke", queue=qh, name="sq_tail", value=st["sq_head"] + rnd.randrange(0, entries + 1),
                      quiet=True)
                a("doorbell", queue=qh, quiet=True)
                row.count(f"tamper: {how}")
            h.sleep_iterating(0.1)
            if not hw.alive():
                break
            # the victim's transfer, with data, each round
            stream = emu6.endpoint(0x81).stream
            got = sb.run(dp.bulk_in(sb, 8192, user_data=sb.next_user_data), timeout=5)
            c = list(got.values())[0]
            if c["status"] == 0 and sb.verify(0, 8192, stream) is None:
                victim_ok += 1
            else:
                row.fail(f"round {rd}: the other uid's transfer: {c}")
            # retire two queues: CloseQueue must answer (Busy only while in flight)
            for qh, qid, entries in queues[:2]:
                if a("state", queue=qh, quiet=True)["sq_flags"] & zc.SQ_BROKEN:
                    broken += 1
                r = remote(a, "close_queue", row, "CloseQueue", claim=sa.claim, id=qid)
                if isinstance(r, RemoteDBusError) and r.name == "org.zcusb1.Error.Busy":
                    h.sleep_iterating(0.2)
                    remote(a, "close_queue", row, "CloseQueue", claim=sa.claim, id=qid)
            queues = queues[2:]
        row.tried.append(f"{rounds} rounds x 4 queues tampered")
        row.note(f"{broken} queues found BROKEN when retired; victim transfers ok {victim_ok}/{rounds}")
        row.judge_names(collections.Counter({k: v for k, v in row.outcomes.items() if not k.startswith("tamper")}),
                        "queue calls")
        # the hostile claim still works through a fresh queue
        r = a("open_queue", claim=sa.claim, entries=8)
        sa.q, sa.qid = r["queue"], r["id"]
        got = sa.run(dp.bulk_in(sa, 4096, user_data=999), timeout=5)
        row.check(got[999]["status"] == 0, f"a fresh queue of the tampering claim: {got[999]}")
        sa.call("Release")
        sb.call("Release")


@scenario("double-fetch", "a writer thread rewrites every submission slot and the control setup packet "
                          "(to SET_ADDRESS/SET_CONFIGURATION/SET_INTERFACE) while entries are "
                          "submitted: each taken entry completes once, only checked requests reach the device")
def s_double_fetch(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        emu = hw.dw.emus[3]
        mark = emu.mark()
        ag = Agent(hw, "doublefetch", {"device": gz3.object_path, "seconds": 6 * SCALE, "seed": SEED},
                   uid=NOBODY)
        ag.line(30)
        res = ag.line(6 * SCALE + 60)
        ag.finish()
        row.tried.append(f"{res['submitted']} entries submitted, {res['rewrites']} rewrite sweeps")
        row.outcomes.update({f"status {k}": v for k, v in res["statuses"].items()})
        row.note(f"zcusbd took {res['taken']} entries, {res['completions']} completions came back"
                 f"{' (queue marked BROKEN)' if res['broken'] else ''}")
        row.check(res["completions"] == res["taken"],
                  f"{res['taken']} entries taken but {res['completions']} completions")
        ctl = emu.find("SUBMITURB", since=mark, type="control")
        good_setup = zc.setup_packet(0x80, 0x00, 0, 0, 2).hex()
        bad = [c[2]["setup"] for c in ctl if c[2].get("setup") != good_setup]
        row.note(f"{len(ctl)} control URBs reached the device")
        row.check(not bad, f"setup packets other than the checked GET_STATUS reached the device: {bad[:4]}")
        bulk = emu.find("SUBMITURB", since=mark, type="bulk")
        odd = [(c[2]["ep"], c[2]["length"]) for c in bulk if c[2]["ep"] != 0x81 or c[2]["length"] > 4096]
        row.check(not odd, f"bulk URBs the client never submitted reached the device: {odd[:4]}")


@scenario("kill-storm", "clients of 3 uids with transfers held at 4 devices are SIGKILLed together, "
                        "round after round: every claim ends, URBs discarded, nothing left")
def s_kill_storm(row):
    devs = standard([gadget(7, "5"), gadget(8, "6")])
    with HostileWorld(row, devs) as hw:
        gadgets = [d for d in hw.devices if d.devnum in (3, 6, 7, 8)]
        rounds = scaled(4)
        kills = ended = 0
        uids = (NOBODY, DAEMON_UID, BIN_UID)
        for rd in range(rounds):
            live = []
            for k, d in enumerate(gadgets):
                emu = hw.dw.emus[d.devnum]
                c = hw.client(uids[(rd + k) % 3], name=f"victim{rd}-{k}")
                s = dp.Session(c, d.object_path, buffer_size=MIB, entries=32)
                emu.hold(0x81)
                s.submit(*[dp.bulk_in(s, 64 * KIB, offset=j * 64 * KIB, user_data=j) for j in range(8)],
                         expect_taken=False)
                s.submit(dp.bulk_out(s, 4096, offset=MIB - 4096, user_data=99), expect_taken=False)
                live.append((c, s, emu))
            for c, s, emu in live:
                dp.wait_queued(emu, 0x81, 8)
            marks = [emu.mark() for _, _, emu in live]
            for c, s, emu in live:
                c.kill(signal.SIGKILL)
            kills += len(live)
            t0 = time.monotonic()
            for (c, s, emu), m in zip(live, marks):
                try:
                    h.wait_until(lambda: emu.count("RELEASEINTERFACE", since=m) >= 1 and not emu.in_flight, 3,
                                 "the killed client's claim to end")
                    ended += 1
                except h.TestFailure as e:
                    row.fail(f"round {rd}: {e} (URBs in flight {len(emu.in_flight)})")
                emu.release(0x81)
                hw.drop(c)
            row.count("claims ended after SIGKILL", len(live))
            log(f"round {rd}: {len(live)} claims ended {time.monotonic() - t0:.2f}s after the SIGKILLs")
            if not hw.alive():
                break
        row.tried.append(f"{rounds} rounds, {kills} SIGKILLs mid-transfer")
        row.check(ended == kills, f"{kills - ended} killed clients' claims did not end")
    rss_bound(row, 4, f"{kills} killed clients")


@scenario("transfer-memory", "512 control OUT transfers of 64 KiB held at the device (the in-flight "
                             "limit): zcusbd's memory for them must be charged to the client's quota")
def s_transfer_memory(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        emu = hw.dw.emus[3]
        c = hw.client(NOBODY, name="mem")
        s = dp.Session(c, gz3.object_path, buffer_size=128 * KIB, entries=512)
        # vendor request to our own interface: allowed; 65535 data bytes
        setup = zc.setup_packet(0x41, 0x5B, 0, 0, 0xFFFF)
        c("write", buffer=s.buf, offset=0, data=dp.b64(setup))
        used0, rss0 = s.props()["UsedBytes"], rss_kib(hw.pid)
        emu.hold(0)
        n = 512
        s.submit(*[s.sqe(opcode=zc.OP_CONTROL, endpoint=0, offset=0, length=8 + 0xFFFF, user_data=k)
                   for k in range(n)], expect_taken=False)
        # all of them, or as many as zcusbd lets through (a bound is a fix too)
        last, since, deadline = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            held = len(emu.held_urbs(0))
            if held >= n or (held == last and time.monotonic() - since > 2):
                break
            if held != last:
                last, since = held, time.monotonic()
            h.sleep_iterating(0.1)
        held = len(emu.held_urbs(0))
        used1, rss1 = s.props()["UsedBytes"], rss_kib(hw.pid)
        row.tried.append(f"{held} x 64 KiB control OUT in flight")
        grow = (rss1 - rss0) / 1024
        charged = (used1 - used0) / MIB
        row.note(f"while {held} were in flight: zcusbd RSS +{grow:.1f} MiB, UsedBytes +{charged:.1f} MiB")
        expect = "memory zcusbd allocates per transfer (the 64 KiB control bounce buffers) is bounded by the " \
                 "client's quota: charged to UsedBytes, or fewer such transfers taken (at most 8 MiB uncharged)"
        if rig.ASAN:
            row.note("RSS not judged (ASan build); UsedBytes judged")
        else:
            row.check(grow <= charged + 8, f"zcusbd's RSS grew {grow:.1f} MiB for transfers charged "
                                           f"{charged:.1f} MiB", expect)
        uncharged = held * 0xFFFF / MIB - charged
        row.check(uncharged <= 8, f"{held} transfers in flight hold {held * 0xFFFF / MIB:.0f} MiB of zcusbd's "
                                  f"memory; the client is charged {charged:.1f} MiB of it", expect)
        emu.release(0)
        got = s.wait(held, timeout=30)
        row.outcomes.update(collections.Counter(dp.errno_name(x["status"]) for x in got))
        s.call("Release")


@scenario("control-requests", "standard requests that change the whole device (SET_FEATURE TEST_MODE, "
                              "remote wakeup, SET_SEL, SET_ISOCH_DELAY, SET_ADDRESS, SET_CONFIGURATION) "
                              "must complete -EPERM and never reach the device")
def s_control_requests(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        emu = hw.dw.emus[3]
        c = hw.client(NOBODY, name="ctl")
        s = dp.Session(c, gz3.object_path, buffer_size=64 * KIB, entries=16)
        reqs = [("SET_FEATURE TEST_MODE", zc.setup_packet(0x00, 0x03, 2, 0x0400, 0), True),
                ("SET_FEATURE DEVICE_REMOTE_WAKEUP", zc.setup_packet(0x00, 0x03, 1, 0, 0), True),
                ("CLEAR_FEATURE DEVICE_REMOTE_WAKEUP", zc.setup_packet(0x00, 0x01, 1, 0, 0), True),
                ("SET_FEATURE U1_ENABLE", zc.setup_packet(0x00, 0x03, 48, 0, 0), True),
                ("SET_ISOCH_DELAY", zc.setup_packet(0x00, 0x31, 40, 0, 0), True),
                ("SET_SEL", zc.setup_packet(0x00, 0x30, 0, 0, 6), True),
                ("SET_ADDRESS", zc.setup_packet(0x00, 0x05, 9, 0, 0), True),
                ("SET_CONFIGURATION", zc.setup_packet(0x00, 0x09, 1, 0, 0), True),
                ("GET_STATUS (device, allowed)", zc.setup_packet(0x80, 0x00, 0, 0, 2), False),
                ("GET_DESCRIPTOR device (allowed)", zc.setup_packet(0x80, 0x06, 0x0100, 0, 18), False)]
        mark = emu.mark()
        for k, (what, setup, refuse) in enumerate(reqs):
            off = k * 256
            c("write", buffer=s.buf, offset=off, data=dp.b64(setup))
            wlen = int.from_bytes(setup[6:8], "little")
            got = s.run(s.sqe(opcode=zc.OP_CONTROL, endpoint=0, offset=off, length=8 + wlen, user_data=k + 1))
            st = got[k + 1]["status"]
            row.count(f"{what.split(' (')[0]}: {dp.errno_name(st)}")
            reached = [x for x in emu.find("SUBMITURB", since=mark, type="control") if x[2]["setup"] == setup.hex()]
            if refuse:
                row.check(st == -errno.EPERM and not reached,
                          f"{what}: completion {dp.errno_name(st)}, reached the device: {bool(reached)}",
                          "standard requests to the device recipient that change it for everyone (SET_FEATURE "
                          "incl. TEST_MODE, CLEAR_FEATURE, SET_SEL, SET_ISOCH_DELAY) complete -EPERM, no URB")
            else:
                row.check(st == 0, f"{what}: completion {dp.errno_name(st)}")
        row.tried.append(f"{len(reqs)} control requests")
        s.call("Release")


@scenario("log-flood", "a client rings the doorbells of its 3 broken queues in a tight loop: zcusbd logs "
                       "one line per queue, not one per doorbell")
def s_log_flood(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        ag = Agent(hw, "flood", {"device": gz3.object_path, "queues": 3, "seconds": 4 * SCALE}, uid=NOBODY)
        ready = ag.line(30)
        row.check(ready["broken"] == 3, f"{ready['broken']} of 3 queues marked BROKEN")
        h.sleep_iterating(0.3)
        before = len(hw.daemon_log().splitlines())
        t0 = cpu_and_wakeups(hw.pid)[0]
        ag.send("go\n")
        res = ag.line(4 * SCALE + 30)
        text = hw.daemon_log().splitlines()
        lines = len(text) - before
        cpu = cpu_and_wakeups(hw.pid)[0] - t0
        rate = lines / res["seconds"]
        row.tried.append(f"{res['doorbells']} doorbells in {res['seconds']} s")
        row.count("log lines during the flood", lines)
        row.note(f"zcusbd logged {lines} lines ({rate:.0f}/s) and used {cpu:.2f} s CPU while the doorbells of 3 "
                 f"broken queues rang {res['doorbells'] / res['seconds']:.0f}/s"
                 + (f"; e.g. {text[-1][:120]!r}" if lines else ""))
        row.check(lines <= 6, f"zcusbd logged {lines} lines ({rate:.0f}/s) for 3 broken queues",
                  "a broken queue is logged once (one line per queue) and its doorbell is no longer watched")
        ag.finish()


@scenario("idle-cpu", "7 queues with a nonsense cq_head and an entry waiting sit idle: zcusbd must sleep")
def s_idle_cpu(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        c = hw.client(NOBODY, name="idle")
        cl = c("claim", device=gz3.object_path, interface=0)["claim"]
        c("alloc", claim=cl, size=4096)
        secs = 3.0

        def measure():
            c0, w0 = cpu_and_wakeups(hw.pid)
            h.sleep_iterating(secs)
            c1, w1 = cpu_and_wakeups(hw.pid)
            return (c1 - c0) / secs * 100, (w1 - w0) / secs

        base_cpu, base_wk = measure()
        qs = []
        for _ in range(7):
            r = c("open_queue", claim=cl, entries=8, quiet=True)
            qs.append(r["queue"])
            c("poke", queue=r["queue"], name="cq_head", value=0xDEADBEEF, quiet=True)
            c("submit", queue=r["queue"], sqes=[dict(opcode=zc.OP_NOP, user_data=1)], doorbell="always",
              quiet=True)
        h.sleep_iterating(0.3)
        cpu, wk = measure()
        row.tried.append(f"7 queues idle {secs:.0f} s")
        row.count("idle wakeups/s before", int(base_wk))
        row.count("idle wakeups/s with the queues", int(wk))
        row.note(f"zcusbd idle: {base_cpu:.1f}% CPU, {base_wk:.0f} wakeups/s; with 7 corrupt-cq_head queues: "
                 f"{cpu:.1f}% CPU, {wk:.0f} wakeups/s")
        expect = "a queue that cannot take entries because of a nonsense cq_head is not polled (no 4 ms timer " \
                 "re-armed forever): it waits for a doorbell"
        row.check(wk <= base_wk + 10, f"{wk:.0f} wakeups/s with 7 idle corrupt queues ({base_wk:.0f} without)",
                  expect)
        row.check(cpu <= base_cpu + 2, f"{cpu:.1f}% CPU with 7 idle corrupt queues", expect)
        c("call", claim=cl, method="Release")


class BudgetEmulator(usbfs_emu.UsbfsEmulator):
    """usbfs with usbfs_memory_mb nearly used up: an URB that does not fit in
    `budget` bytes (with what is in flight) fails ENOMEM, smaller ones go through."""
    budget = None

    def _do_submiturb(self, arg):
        r = super()._do_submiturb(arg)
        if r != 0 or self.budget is None:
            return r
        addr, u = next(reversed(self.in_flight.items()))
        if sum(x.length for x in self.in_flight.values()) <= self.budget:
            return 0
        del self.in_flight[addr]
        for e in self.endpoints.values():
            if u in e.queue:
                e.queue.remove(u)
        self.calls[-1][2].update(result=-errno.ENOMEM, why="usbfs memory budget")
        return -errno.ENOMEM


@scenario("enomem-stall", "usbfs nearly out of memory: one interface's big URB gets ENOMEM; a small "
                          "transfer of another client on the other interface must not wait behind it")
def s_enomem_stall(row):
    two = fixtures.loopback_two_configs(devnum=5, port="3", ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS=ALLOWED_USERS)
    devs = [fixtures.root_hub(), gadget(3, "1"), two]
    with HostileWorld(row, devs, emulate=[devs[1], two], emulator_class=BudgetEmulator) as hw:
        emu = hw.dw.emus[5]
        a, b = hw.client(NOBODY, name="big"), hw.client(DAEMON_UID, name="small")
        sa = dp.Session(a, two.object_path, interface=0, buffer_size=2 * MIB, entries=16)
        sb = dp.Session(b, two.object_path, interface=1, buffer_size=64 * KIB, entries=16)
        emu.budget = 900 * KIB
        emu.hold(0x81)
        sa.submit(*[dp.bulk_in(sa, 256 * KIB, offset=k * 256 * KIB, user_data=k) for k in range(3)],
                  expect_taken=False)
        dp.wait_queued(emu, 0x81, 3)
        mark = emu.mark()
        sa.submit(dp.bulk_in(sa, 256 * KIB, offset=3 * 256 * KIB, user_data=10), expect_taken=False)
        h.wait_until(lambda: emu.count("SUBMITURB", since=mark, result=-errno.ENOMEM) >= 1, 5,
                     "the big URB to meet ENOMEM")
        t0 = time.monotonic()
        sb.submit(sb.sqe(opcode=zc.OP_INTERRUPT, endpoint=0x83, length=16, user_data=1), expect_taken=False)
        got = b("wait", queue=sb.q, n=1, timeout=3, timeout_rpc=20)
        took = time.monotonic() - t0
        row.tried.append("3 x 256K held + 1 ENOMEM on if 0; 16 B interrupt IN on if 1")
        enomems = emu.count("SUBMITURB", since=mark, result=-errno.ENOMEM)
        row.count("ENOMEM answers", enomems)
        if got:
            row.count(f"if 1 transfer: {dp.errno_name(got[0]['status'])}")
            row.note(f"the other interface's transfer completed {took * 1000:.0f} ms after submission")
        else:
            row.count("if 1 transfer: stalled")
        row.check(bool(got) and took < 1.0 and got[0]["status"] == 0,
                  f"the other interface's 16-byte transfer {'took %.1f s' % took if got else 'stalled for 3 s'} "
                  f"behind an URB usbfs refused with ENOMEM ({enomems} retries)",
                  "an URB waiting for usbfs memory holds up only its own claim's (endpoint's) transfers, not "
                  "another interface's")
        emu.budget = None
        emu.release(0x81)
        sa.wait(4, timeout=10)
        if not got:
            b("wait", queue=sb.q, n=1, timeout=5)
        sa.call("Release")
        sb.call("Release")
