"""zcusb's hostile-client suite: the scenarios that attack zcusbd's bus surface (arguments, other uids, churn, crowds, fds, signals)."""

import hostile_rig as rig
from hostile_rig import *  # noqa: F401,F403  (the rig's helpers and the integration tier's modules)


def introspect(conn, path):
    xml = conn.call_blocking(dp.h.BUS_NAME, path, "org.freedesktop.DBus.Introspectable", "Introspect", "", [],
                             timeout=10)
    methods, props = [], []
    for i in ET.fromstring(str(xml)).findall("interface"):
        for m in i.findall("method"):
            sig = "".join(a.get("type") for a in m.findall("arg") if a.get("direction", "in") == "in")
            methods.append((i.get("name"), m.get("name"), sig))
        for p in i.findall("property"):
            props.append((i.get("name"), p.get("name"), p.get("type")))
    return methods, props


def fuzz_values(rnd, paths):
    return {
        "y": [0, 1, 0x81, 0xFF, rnd.randrange(256)],
        "q": [0, 1, 3, 0xFFFF, rnd.randrange(1 << 16)],
        "u": [0, 1, 7, 4096, 4097, 0xFFFFFFFF, rnd.randrange(1 << 32)],
        "t": [0, 1, 4095, 1 << 40, (1 << 40) + 1, (1 << 64) - 1, rnd.randrange(1 << 64)],
        "i": [0, -1, (1 << 31) - 1, -(1 << 31)],
        "x": [0, -1, (1 << 63) - 1],
        "b": [True, False],
        "d": [0.0, -1e308],
        "o": paths,
        "s": ["", "org.zcusb1.Claim", "org.zcusb1.Device", "x" * 4096, "\u00e9\u2603", "Version"],
        "g": ["", "a{sv}"],
        "v": [0, "x", [1, 2]],
    }


def random_path(rnd):
    seg = lambda: "".join(rnd.choice("abcz019_") for _ in range(rnd.randrange(1, 12)))  # noqa: E731
    base = rnd.choice(["", "/org/zcusb1", "/org/zcusb1/device", "/org/zcusb1/claim"])
    return base + "".join("/" + seg() for _ in range(rnd.randrange(1, 4)))


def build_calls(rnd, targets, paths, variants):
    """Method calls for every (path, interface, method, in-signature): in-range
    extreme values, no arguments, one too many, each argument of the wrong type."""
    vals = fuzz_values(rnd, paths)
    calls = []
    for path, iface, method, sig in targets:
        types = list(sig)   # every method here takes basic types only
        if any(t not in vals for t in types):
            continue
        for k in range(variants):
            args = [vals[t][(k * 3 + j + rnd.randrange(3)) % len(vals[t])] for j, t in enumerate(types)]
            calls.append([path, iface, method, sig, args])
        if sig:
            calls.append([path, iface, method, "", []])
        calls.append([path, iface, method, sig + "s", [vals[t][0] for t in types] + ["extra"]])
        for j, t in enumerate(types):
            wrong = "s" if t != "s" else "u"
            s2 = sig[:j] + wrong + sig[j + 1:]
            a2 = [vals[x][0] for x in types]
            a2[j] = "wrong" if wrong == "s" else 7
            calls.append([path, iface, method, s2, a2])
    # Release last: the claim's other methods get their turn first
    calls.sort(key=lambda c: c[2] == "Release")
    return calls


@scenario("bus-args", "bus-argument fuzzing of every method of Manager, Device, Claim and the standard "
                      "interfaces (introspected): extreme values, wrong/missing/extra arguments, random and "
                      "unknown object paths, as an allowed uid (with a claim) and as a stranger")
def s_bus_args(row):
    rnd = random.Random(SEED)
    kbd = fixtures.hid_keyboard(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="root")   # hidden from everyone else
    with HostileWorld(row, standard([kbd])) as hw:
        conn = hw.dw.w.bus.conn
        gz3, gz6 = hw.devices[1], hw.devices[2]
        mgr_methods, _ = introspect(conn, h.MANAGER_PATH)
        dev_methods, dev_props = introspect(conn, gz6.object_path)
        # a claim of our own (root) just to read the Claim interface's shape
        cpath = conn.call_blocking(h.BUS_NAME, h.MANAGER_PATH, h.MANAGER_IFACE, "ClaimInterface", "oy",
                                   [gz6.object_path, 0], timeout=10)
        claim_methods, claim_props = introspect(conn, cpath)
        conn.call_blocking(h.BUS_NAME, cpath, CLAIM_IFACE, "Release", "", [], timeout=10)
        row.note("introspected: Manager " + ",".join(m for i, m, s in mgr_methods if i == h.MANAGER_IFACE) +
                 "; Device " + ",".join(m for i, m, s in dev_methods if i == DEVICE_IFACE) +
                 "; Claim " + ",".join(m for i, m, s in claim_methods if i == CLAIM_IFACE))

        randoms = [random_path(rnd) for _ in range(scaled(6))]
        paths = ["/", h.MANAGER_PATH, "/org/zcusb1/device", gz3.object_path, gz6.object_path,
                 kbd.object_path, "/org/zcusb1/device/usb1_99", "/org/zcusb1/device/usb0_0",
                 "/org/zcusb1/device/usb1_3/x", "/org/zcusb1/claim", "/org/zcusb1/claim/c0",
                 "/org/zcusb1/claim/c4294967295", "/org/zcusb1/claim/c1_", "$CLAIM",
                 "/" + "/".join(["a"] * 200)] + randoms
        targets = []
        for where, methods in (([h.MANAGER_PATH, "/", randoms[0]], mgr_methods),
                               ([gz3.object_path, kbd.object_path, "/org/zcusb1/device/usb1_99"], dev_methods),
                               (["$CLAIM", "/org/zcusb1/claim/c1", randoms[1]], claim_methods)):
            for p in where:
                for iface, m, sig in methods:
                    targets.append((p, iface, m, sig))
        for p in randoms[2:]:
            targets.append((p, CLAIM_IFACE, "AllocBuffer", "t"))
            targets.append((p, "org.freedesktop.DBus.Properties", "GetAll", "s"))
        calls = build_calls(rnd, targets, paths, scaled(6))
        # properties by name, right and wrong
        for p in (gz3.object_path, kbd.object_path, "$CLAIM"):
            for iface, prop, _ in (dev_props + claim_props)[:: max(1, int(4 / SCALE))] + [(DEVICE_IFACE, "Nope", "")]:
                calls.append([p, "org.freedesktop.DBus.Properties", "Get", "ss", [iface, prop]])
                calls.append([p, "org.freedesktop.DBus.Properties", "Set", "ssv", [iface, prop, 7]])
        # the claim is made first, so "$CLAIM" names it
        calls.insert(0, [h.MANAGER_PATH, h.MANAGER_IFACE, "ClaimInterface", "oy", [gz3.object_path, 0]])

        for uid, who in ((NOBODY, "nobody (allowed, with a claim)"), (SYS_UID, "sys (a stranger)")):
            a = Agent(hw, "calls", {"calls": calls, "timeout": 5}, uid=uid, name=f"fuzz-{uid}")
            res = a.line(timeout=len(calls) * 5 + 60)["results"]
            a.finish()
            names = collections.Counter(r[0] for r in res)
            row.tried.append(f"{len(calls)} calls as {who.split()[0]}")
            row.outcomes.update(names)
            before = len(row.problems)
            row.judge_names(names, f"calls as {who}")
            if "org.freedesktop.DBus.Error.FileNotFound" in names and len(row.problems) > before:
                if not any(e.startswith("a call on a path") for e in row.expects):
                    row.expects.append(
                        "a call on a path that names no object (e.g. one below /org/zcusb1/device/) answers a "
                        "named error (org.zcusb1.Error.NoSuchDevice / InvalidArgument, or DBus.UnknownObject), "
                        "not FileNotFound (ENOENT from an object find callback that set no error)")
            shown = set()
            for (path, iface, method, sig, args), (name, msg) in zip(calls, res):
                # our bus policy lets everyone call org.zcusb1: this one is zcusbd's (an EACCES)
                if name == "org.freedesktop.DBus.Error.AccessDenied" and not any(
                        "DBus.Error.AccessDenied" in n for n in row.notes):
                    row.note(f"as {who.split()[0]}: {iface}.{method}({sig}) on {path} -> {name}: {msg} "
                             "(allowed, but it is zcusbd's EACCES, not the bus's policy)")
                if name != "not-sent" and classify(name) in ("unnamed", "hang", "gone") and \
                        (name, iface, method) not in shown and len(shown) < 4:
                    shown.add((name, iface, method))
                    row.note(f"as {who.split()[0]}: {iface}.{method}({sig}) {args!r:.60} on {path} -> "
                             f"{name}: {msg}")
            # the stranger must never get a claim or a device's data
            if uid == SYS_UID:
                ok = [(c[1], c[2], c[0]) for c, r in zip(calls, res) if r[0] == "ok" and
                      c[1] in (CLAIM_IFACE, DEVICE_IFACE)]
                row.check(not ok, f"the stranger's calls that succeeded: {ok[:4]}")
            if not hw.alive():
                break
        row.check(hw.alive(), "zcusbd is gone after the fuzzing")


@scenario("cross-uid", "uid B (and C, and root) call every method of A's claim: free A's buffers, close "
                       "A's queues, release it, read/set its properties; A's claim must be untouched")
def s_cross_uid(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        a = hw.client(NOBODY, name="owner")
        sa = dp.Session(a, gz3.object_path, buffer_size=64 * KIB, entries=16)
        sa.alloc(4096)
        sa.alloc(8192)
        a("open_queue", claim=sa.claim, entries=8)   # queues 1 and 2, buffers 1-3
        before = sa.props()
        calls = []
        for m, sig, argsets in (("FreeBuffer", "u", [[i] for i in range(0, 5)]),
                                ("CloseQueue", "u", [[i] for i in range(0, 4)]),
                                ("AllocBuffer", "t", [[4096], [1 << 20]]), ("OpenQueue", "u", [[8]]),
                                ("SetAltSetting", "y", [[0], [1]]), ("ClearHalt", "y", [[0x81], [0x02]]),
                                ("Release", "", [[]])):
            for args in argsets:
                calls.append([sa.path, CLAIM_IFACE, m, sig, args])
        for m, sig, args in (("GetAll", "s", [CLAIM_IFACE]), ("Get", "ss", [CLAIM_IFACE, "UsedBytes"]),
                             ("Set", "ssv", [CLAIM_IFACE, "AltSetting", dbus.Byte(1)])):
            calls.append([sa.path, "org.freedesktop.DBus.Properties", m, sig, args])
        for uid, who in ((DAEMON_UID, "uid 1"), (BIN_UID, "uid 2"), (SYS_UID, "uid 3")):
            ag = Agent(hw, "calls", {"calls": calls}, uid=uid, name=f"cross-{uid}")
            res = ag.line(60)["results"]
            ag.finish()
            names = collections.Counter(x[0] for x in res)
            row.outcomes.update(names)
            row.tried.append(f"{len(calls)} calls as {who}")
            row.judge_names(names, f"{who} on the owner's claim", allow_ok=False)
            wrong = {n for n in names if n != "org.zcusb1.Error.AccessDenied"}
            row.check(not wrong, f"{who} on the owner's claim got {sorted(wrong)}, not only AccessDenied")
        # root is another connection too: the claim belongs to the connection
        got = collections.Counter()
        for path, iface, m, sig, args in calls:
            try:
                hw.dw.w.bus.conn.call_blocking(h.BUS_NAME, path, iface, m, sig, args, timeout=5)
                got["ok"] += 1
            except dbus.DBusException as e:
                got[e.get_dbus_name()] += 1
        row.tried.append(f"{len(calls)} as root")
        row.outcomes.update(got)
        row.judge_names(got, "root on the owner's claim", allow_ok=False)
        # ClaimInterface of the owned interface by others: Busy
        b = hw.client(DAEMON_UID, name="other")
        remote(b, "claim", row, "claim", device=gz3.object_path, interface=0)
        row.tried.append("1 ClaimInterface of it")
        after = sa.props()
        keys = ("Buffers", "Queues", "UsedBytes", "AltSetting")
        row.check([before[k] for k in keys] == [after[k] for k in keys],
                  f"the owner's claim changed: {[before[k] for k in keys]} -> {[after[k] for k in keys]}")
        got = sa.run(dp.bulk_in(sa, 4096, user_data=1))
        row.check(got[1]["status"] == 0, f"the owner's transfer afterwards: {got[1]}")
        sa.call("Release")


@scenario("claim-churn", "claim / alloc / open / NOP / release cycles by three uids at once (two contend "
                         "for one interface), every 25th cycle the connection dropped instead")
def s_claim_churn(row):
    with HostileWorld(row) as hw:
        gz3, gz6 = hw.devices[1], hw.devices[2]
        n, secs = scaled(700), 50 * SCALE
        agents = [Agent(hw, "churn", {"device": d.object_path, "cycles": n, "seconds": secs, "drop_every": 25},
                        uid=uid, name=f"churn-{uid}")
                  for uid, d in ((NOBODY, gz3), (DAEMON_UID, gz6), (BIN_UID, gz3))]
        total = 0
        for ag in agents:
            res = ag.line(secs + 60)
            ag.finish()
            total += res["cycles"]
            for k, v in res["outcomes"].items():
                row.count(k, v)
        row.tried.append(f"{total} cycles by 3 uids")
        names = collections.Counter({k.split(": ", 1)[1]: v for k, v in row.outcomes.items() if ": " in k})
        row.judge_names(names, "churn")
    rss_bound(row, 4, f"{total} claim cycles")


@scenario("many-clients", "600 connections of 3 uids (256 per uid is the bus's limit) each call "
                          "ClaimInterface on a claimed interface: every refusal named, zcusbd's match rules "
                          "(512 per connection) untouched by refusals, zcusbd never dropped")
def s_many_clients(row):
    with HostileWorld(row) as hw:
        gz3 = hw.devices[1]
        holder = hw.client(NOBODY, name="holder")
        s = dp.Session(holder, gz3.object_path, buffer_size=64 * KIB, entries=8)
        base_rules = match_rules(hw)
        per_uid = max(200, scaled(200))   # 3 x 200 = 600 > 512 whatever the scale
        agents = [Agent(hw, "conns", {"device": gz3.object_path, "n": min(per_uid, 250)}, uid=uid,
                        name=f"conns-{uid}") for uid in (NOBODY, DAEMON_UID, BIN_UID)]
        outcomes, conns, peak = collections.Counter(), 0, base_rules or 0
        # wait for the three together, sampling zcusbd's match rules meanwhile
        waiting, deadline = list(agents), time.monotonic() + 240
        while waiting and time.monotonic() < deadline:
            for ag in list(waiting):
                try:
                    res = ag.line(0.1)
                except TimeoutError:
                    continue
                except RuntimeError as e:
                    row.fail(f"{ag.name}: {e}")
                    waiting.remove(ag)
                    continue
                waiting.remove(ag)
                conns += res["connections"]
                outcomes.update(res["outcomes"])
                for k, v in res["connect_errors"].items():
                    row.count(f"bus refused connection: {short_name(k)}", v)
            if hw.alive():
                peak = max(peak, match_rules(hw) or 0)
        for ag in waiting:
            row.fail(f"{ag.name}: no result in 240 s (hang)")
        row.tried.append(f"{conns} connections, {sum(outcomes.values())} ClaimInterface")
        row.outcomes.update(outcomes)
        alive_during = hw.alive()
        row.note(f"zcusbd's match rules: {base_rules} before, {peak} at the peak (bus limit 512)")
        expect = ("ClaimInterface refused (Busy / QuotaExceeded for too many clients) leaves no sd_bus_track "
                  "(match rule) behind; zcusbd survives >512 refused callers")
        row.check(alive_during, "zcusbd was dropped by the bus / exited while 600 callers were refused", expect)
        row.judge_names(outcomes, "ClaimInterface from 600 connections")
        if alive_during and base_rules is not None:
            row.check(peak - base_rules <= 8, f"refused claims left {peak - base_rules} match rules on zcusbd's "
                                              "connection", expect)
        for ag in agents:
            ag.finish()
        if hw.alive():
            got = s.run(dp.bulk_in(s, 4096, user_data=1), timeout=5)
            row.check(got[1]["status"] == 0, f"the holder's transfer after the crowd: {got[1]}")
            h.sleep_iterating(0.5)
            after = match_rules(hw)
            row.note(f"zcusbd's match rules after the crowd left: {after}")
            row.check(after is None or base_rules is None or after <= base_rules,
                      f"zcusbd keeps {after} match rules after the crowd left ({base_rules} before)")
            s.call("Release")
    rss_bound(row, 4, "600 refused connections")


@scenario("fd-limits", "fds zcusbd keeps per buffer and per queue; zcusbd's RLIMIT_NOFILE lowered: "
                       "running out of fds must be a named error and nothing may stay behind")
def s_fd_limits(row):
    with HostileWorld(row) as hw:
        gz3, gz6 = hw.devices[1], hw.devices[2]
        c = hw.client(NOBODY, name="fds")
        cl = c("claim", device=gz3.object_path, interface=0)["claim"]
        f0 = fd_count(hw.pid)
        for _ in range(16):
            c("alloc", claim=cl, size=4096, quiet=True)
        f1 = fd_count(hw.pid)
        for _ in range(4):
            c("open_queue", claim=cl, entries=1, quiet=True)
        f2 = fd_count(hw.pid)
        per_buffer, per_queue = (f1 - f0) / 16, (f2 - f1) / 4
        row.tried.append("16 buffers + 4 queues")
        row.note(f"zcusbd holds {per_buffer:g} fd(s) per buffer and {per_queue:g} per queue; one client at "
                 f"its default limits (64 buffers, 8 queues) pins {64 * per_buffer + 8 * per_queue:g}, and "
                 f"only the byte quota bounds the number of clients")
        # A figure, not a verdict: how zcusbd bounds its fds is the daemon's choice;
        # running out of them must be a named error (below), and none may leak.
        soft_now = resource.prlimit(hw.pid, resource.RLIMIT_NOFILE)[0]
        row.note(f"one uid (256 bus connections) can make zcusbd hold up to "
                 f"{256 * (64 * per_buffer + 8 * per_queue):.0f} fds; zcusbd's RLIMIT_NOFILE here {soft_now}")
        c("call", claim=cl, method="Release")
        hw.settle_fds(row.fds[0], 3)

        # out of fds: the limit a few above what zcusbd holds now
        soft, hard = resource.prlimit(hw.pid, resource.RLIMIT_NOFILE)
        n = fd_count(hw.pid)
        resource.prlimit(hw.pid, resource.RLIMIT_NOFILE, (n + 14, hard))
        row.note(f"RLIMIT_NOFILE of zcusbd set to {n + 14} (it had {n} open)")
        first_error = None
        mark = collections.Counter(row.outcomes)
        clients = [hw.client(uid, name=f"fds-{uid}") for uid in (NOBODY, DAEMON_UID)]
        try:
            for c2, d in zip(clients, (gz3, gz6)):
                r = remote(c2, "claim", row, "ClaimInterface", device=d.object_path, interface=0)
                if isinstance(r, Exception):
                    first_error = first_error or getattr(r, "name", str(r))
                    continue
                for k in range(40):
                    r2 = remote(c2, "alloc" if k % 3 else "open_queue", row, "alloc/open",
                                claim=r["claim"], **({"size": 4096} if k % 3 else {"entries": 1}))
                    if isinstance(r2, Exception):
                        first_error = first_error or getattr(r2, "name", str(r2))
                        break
            row.tried.append("allocs/queues until out of fds")
            row.check(first_error is not None, "never ran out of fds: the limit did not bite")
            row.check(hw.alive(), "zcusbd died when it ran out of fds")
            expect = "EMFILE while creating a buffer/queue is answered with a named org.zcusb1.Error.* " \
                     "(QuotaExceeded or Failed), not System.Error.EMFILE"
            if first_error:
                row.check(classify(first_error) == "named",
                          f"running out of fds answered {first_error}", expect)
            row.judge_names(row.outcomes - mark, "out of fds")
        finally:
            for c2 in clients:
                hw.drop(c2)
            if hw.alive():
                resource.prlimit(hw.pid, resource.RLIMIT_NOFILE, (soft, hard))
        # zcusbd serves the next client normally
        c3 = hw.client(DAEMON_UID, name="after")
        s = dp.Session(c3, gz6.object_path, buffer_size=64 * KIB, entries=8)
        got = s.run(dp.bulk_in(s, 4096, user_data=1), timeout=5)
        row.check(got[1]["status"] == 0, f"a transfer after the fd exhaustion: {got[1]}")
        s.call("Release")


@scenario("signal-scoping", "a hidden device is plugged, changed and unplugged: peers of a uid that may not "
                            "see it (subscribed, merely matching, eavesdropping) must receive nothing about it")
def s_signal_scoping(row):
    with HostileWorld(row) as hw:
        hidden = gadget(7, "5", allow="nobody")      # visible to root and nobody only
        sigs = h.SignalLog(hw.dw.w.bus.conn)
        listeners = [(SYS_UID, "subscribe"), (SYS_UID, "plain"), (SYS_UID, "eavesdrop"), (BIN_UID, "subscribe"),
                     (NOBODY, "subscribe")]
        ags = []
        for uid, mode in listeners:
            ag = Agent(hw, "listen", {"mode": mode}, uid=uid, name=f"listen-{uid}-{mode}")
            ready = ag.line(30)
            if ready["subscribe"]:
                row.count(f"Subscribe() as uid {uid}: {short_name(ready['subscribe'])}")
            if ready["eavesdrop_match"]:
                row.count(f"eavesdrop AddMatch as uid {uid}: {short_name(ready['eavesdrop_match'])}")
            ags.append((uid, mode, ag, ready))
        hw.dw.w.tb.plug(hidden)
        h.wait_until(lambda: sigs.find("DeviceAdded", h.MANAGER_PATH, lambda e: e[2] == (hidden.object_path,)),
                     5, "root to see DeviceAdded")
        hw.dw.w.tb.set_driver(hidden, 0, "usbtest")              # PropertiesChanged Interfaces
        hw.dw.w.tb.set_uevent_prop(hidden.sys_syspath, "ZCUSB_ALLOW_USERS", "nobody,root")
        hw.dw.w.tb.uevent(hidden.sys_syspath, "change")
        h.sleep_iterating(0.5)
        hw.dw.w.tb.unplug(hidden)
        h.wait_until(lambda: sigs.find("DeviceRemoved", h.MANAGER_PATH, lambda e: e[2] == (hidden.object_path,)),
                     5, "root to see DeviceRemoved")
        h.sleep_iterating(0.5)
        sigs.close()
        row.tried.append("plug + driver bind + change + unplug of a hidden device, 5 listeners")
        expect = ("device signals (DeviceAdded/Removed, InterfacesAdded/Removed, PropertiesChanged) are unicast "
                  "only to peers that called org.zcusb1.Manager.Subscribe() (no args) and may see the device")
        for uid, mode, ag, ready in ags:
            ag.finish()
            got = ag.line(10)["signals"]
            about = [s for s in got if hidden.object_path in s[2] or hidden.object_path in s[3]]
            row.count(f"uid {uid} {mode}: signals about it", len(about))
            if uid == NOBODY:
                added = [s for s in about if s[1] == "DeviceAdded"]
                row.check(bool(added), "nobody (allowed, subscribed) did not get DeviceAdded for its device")
                if ready["subscribe"] != "ok":
                    row.fail(f"Manager.Subscribe() as nobody: {ready['subscribe']}", expect)
            else:
                row.check(not about, f"uid {uid} ({mode}) may not see the device yet received "
                                     f"{len(about)} signals about it: "
                                     + ", ".join(sorted({s[1] for s in about})), expect)
