# SPDX-License-Identifier: LGPL-2.1-or-later
"""polkit end to end on the private bus: an interface marked ZCUSB_POLKIT=1 that
udev policy does not grant a caller is granted or refused by the polkit
authority (dbus/API.md, "polkit"). The authority here is a fake one in the test
process (FakeAuthority) that answers as the test says: yes, no, challenge,
dismissed, an error, or not yet (the test answers later, or never). Registers
with datapath's tests."""

import os
import shutil
import sys

import datapath
from datapath import DataWorld, dbus_error, dtest, gadget
import fixtures

AUTH_NAME = "org.freedesktop.PolicyKit1"
AUTH_PATH = "/org/freedesktop/PolicyKit1/Authority"
AUTH_IFACE = "org.freedesktop.PolicyKit1.Authority"
ACTION = "org.zcusb1.claim"
INTERACTIVE = 1

ACCESS_DENIED = "org.zcusb1.Error.AccessDenied"
CANCELLED = "org.zcusb1.Error.AuthorizationCancelled"
UNAVAILABLE = "org.zcusb1.Error.AuthorizationUnavailable"
NEEDS_INTERACTION = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"

# uid 1 (daemon) is granted by udev policy; nobody (65534) may only ask polkit.
DAEMON_UID = datapath.DAEMON_UID


def polkit_gadget(**props):
    return gadget(allow="daemon", ZCUSB_POLKIT="1", **props)


_authority_class = None


def authority_class():
    """FakeAuthority, defined once python-dbus is importable (the harness
    checked that)."""
    global _authority_class
    if _authority_class is not None:
        return _authority_class
    import dbus
    import dbus.service

    class FakeAuthority(dbus.service.Object):
        """Answers CheckAuthorization with self.verdict(call) -> "yes", "no",
        "challenge", "dismissed", "cancelled-error" or "hold" (answer later with
        answer()). Every call is kept in self.calls, CancelCheckAuthorization ids
        in self.cancels."""

        def __init__(self, conn):
            self.conn = conn
            self.busname = dbus.service.BusName(AUTH_NAME, conn)
            super().__init__(conn, AUTH_PATH)
            self.calls = []
            self.cancels = []
            self.agents = []
            self.verdict = lambda call: "yes"

        @dbus.service.method(AUTH_IFACE, in_signature="(sa{sv})sa{ss}us", out_signature="(bba{ss})",
                             async_callbacks=("reply", "error"))
        def CheckAuthorization(self, subject, action, details, flags, cancellation_id, reply, error):
            call = {"subject_kind": str(subject[0]),
                    "subject": {str(k): str(v) for k, v in subject[1].items()},
                    "action": str(action), "details": {str(k): str(v) for k, v in details.items()},
                    "flags": int(flags), "cancellation_id": str(cancellation_id),
                    "reply": reply, "error": error, "answered": False}
            self.calls.append(call)
            datapath.h.log(f"fake polkit: CheckAuthorization {call['action']} for {call['subject']} "
                           f"flags {call['flags']} cancellation id {call['cancellation_id']!r}")
            v = self.verdict(call)
            if v != "hold":
                self.answer(call, v)

        def answer(self, call, verdict):
            datapath.h.log(f"fake polkit: answering {verdict}")
            call["answered"] = True
            none = dbus.Dictionary({}, signature="ss")
            if verdict == "yes":
                call["reply"](dbus.Struct((True, False, none), signature="bba{ss}"))
            elif verdict == "no":
                call["reply"](dbus.Struct((False, False, none), signature="bba{ss}"))
            elif verdict == "challenge":
                call["reply"](dbus.Struct((False, True, none), signature="bba{ss}"))
            elif verdict == "dismissed":
                call["reply"](dbus.Struct((False, False, dbus.Dictionary({"polkit.dismissed": "true"},
                                                                          signature="ss")), signature="bba{ss}"))
            elif verdict == "cancelled-error":
                call["error"](dbus.DBusException("Authorization request was cancelled",
                                                 name="org.freedesktop.PolicyKit1.Error.Cancelled"))
            else:
                raise ValueError(verdict)

        # What a text agent (pkttyagent) calls first.
        @dbus.service.method(AUTH_IFACE, in_signature="(sa{sv})ssa{sv}", out_signature="")
        def RegisterAuthenticationAgentWithOptions(self, subject, locale, object_path, options):
            self._agent(subject, object_path)

        @dbus.service.method(AUTH_IFACE, in_signature="(sa{sv})ss", out_signature="")
        def RegisterAuthenticationAgent(self, subject, locale, object_path):
            self._agent(subject, object_path)

        def _agent(self, subject, object_path):
            a = {"subject_kind": str(subject[0]), "subject": {str(k): int(v) if isinstance(v, int) else str(v)
                                                              for k, v in subject[1].items()},
                 "object_path": str(object_path)}
            datapath.h.log(f"fake polkit: agent registered: {a}")
            self.agents.append(a)

        @dbus.service.method(AUTH_IFACE, in_signature="(sa{sv})s", out_signature="")
        def UnregisterAuthenticationAgent(self, subject, object_path):
            pass

        @dbus.service.method(AUTH_IFACE, in_signature="s", out_signature="")
        def CancelCheckAuthorization(self, cancellation_id):
            datapath.h.log(f"fake polkit: CancelCheckAuthorization {cancellation_id!r}")
            self.cancels.append(str(cancellation_id))

        def close(self):
            self.remove_from_connection()
            self.busname = None  # releases the name

    _authority_class = FakeAuthority
    return FakeAuthority


def claim_error(c, device, flags=None):
    return dbus_error(c, "claim", device=device, interface=0, flags=flags)


@dtest("polkit-grant")
def t_polkit_grant():
    """polkit's yes gives a working claim; what it was asked; who is not asked."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget(),
               gadget(devnum=6, port="4", allow="daemon")]  # no ZCUSB_POLKIT: polkit is never asked
    with DataWorld(devices, emulate=[devices[1]]) as dw:
        auth = authority_class()(dw.w.bus.conn)
        dev = devices[1].object_path
        nobody = dw.client(name="nobody")

        # A device polkit may grant is visible to someone it has to ask for;
        # the one without ZCUSB_POLKIT is not.
        seen = [p for p, *_ in nobody("dbus", path="/org/zcusb1", iface="org.zcusb1.Manager",
                                      method="ListDevices")]
        h.check_eq(seen, [dev], "devices nobody sees")

        s = datapath.Session(nobody, dev, buffer_size=4096, entries=8)
        h.check_eq(len(auth.calls), 1, "CheckAuthorization calls")
        call = auth.calls[0]
        h.check_eq(call["action"], ACTION, "action id")
        h.check_eq(call["subject_kind"], "system-bus-name", "subject kind")
        h.check_eq(call["subject"].get("name"), nobody.unique_name, "subject: the caller's bus name")
        h.check_eq(call["flags"], 0, "flags (no AllowUserInteraction unless asked)")
        d = call["details"]
        want = {"device": dev, "devpath": "1-1", "vendor_id": "0525", "product_id": "a4a0",
                "product": "Gadget Zero", "vendor": "Linux 6.1.0-56-amd64 with dummy_udc",
                "serial": "0123456789.0123456789.0123456789", "interface": "0", "interface_class": "ff",
                "interface_class_name": "vendor specific"}
        for k, v in want.items():
            h.check_eq(d.get(k), v, f"detail {k}")
        h.check_in("python", d.get("program", ""), "detail program (the calling process)")

        # The claim works like any other: a transfer goes through.
        got = s.run(datapath.bulk_in(s, 512))
        datapath.expect_status(list(got.values())[0], 0, "bulk IN on a polkit-granted claim", 512)
        nobody("call", claim=s.claim, method="Release")

        # Granted by udev policy (uid 1) or root: polkit is not asked.
        daemon = dw.client(uid=DAEMON_UID, name="daemon")
        r = daemon("claim", device=dev, interface=0)
        daemon("call", claim=r["claim"], method="Release")
        root = dw.client(uid=0, name="root")
        r = root("claim", device=dev, interface=0)
        root("call", claim=r["claim"], method="Release")
        h.check_eq(len(auth.calls), 1, "CheckAuthorization calls after claims udev policy grants")

        # A device without ZCUSB_POLKIT: refused without asking.
        name, msg = claim_error(nobody, devices[2].object_path)
        h.check_eq(name, ACCESS_DENIED, "claim of a device nobody may not see")
        h.check_eq(len(auth.calls), 1, "CheckAuthorization calls")

        # The old ClaimInterface with the ALLOW_INTERACTIVE_AUTHORIZATION
        # header flag (busctl --allow-interactive-authorization) is interactive.
        dw.w.busctl("--allow-interactive-authorization=yes", "call", "org.zcusb1", "/org/zcusb1",
                    "org.zcusb1.Manager", "ClaimInterface", "oy", dev, "0", user=h.as_user())
        h.check_eq(len(auth.calls), 2, "CheckAuthorization calls after busctl")
        h.check_eq(auth.calls[1]["flags"], INTERACTIVE, "flags with the header's interactive bit")
        auth.close()


@dtest("polkit-deny")
def t_polkit_deny():
    """no, challenge (non-interactive and interactive), dismissed, cancelled."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget()]
    with DataWorld(devices) as dw:
        auth = authority_class()(dw.w.bus.conn)
        dev = devices[1].object_path
        nobody = dw.client(name="nobody")

        auth.verdict = lambda call: "no"
        name, msg = claim_error(nobody, dev)
        h.check_eq(name, ACCESS_DENIED, "polkit's no")
        h.check_in("polkit refused action org.zcusb1.claim", msg, "the reason")

        auth.verdict = lambda call: "challenge" if not call["flags"] & INTERACTIVE else "yes"
        name, msg = claim_error(nobody, dev)
        h.check_eq(name, NEEDS_INTERACTION, "a challenge without interaction allowed")
        h.check_in("ZCUSB_CLAIM_INTERACTIVE", msg, "the fix")
        r = nobody("claim", device=dev, interface=0, flags=INTERACTIVE)
        h.check_eq(auth.calls[-1]["flags"], INTERACTIVE, "AllowUserInteraction when asked for")
        h.check(auth.calls[-1]["cancellation_id"], "an interactive check has a cancellation id")
        nobody("call", claim=r["claim"], method="Release")

        auth.verdict = lambda call: "dismissed"
        name, msg = claim_error(nobody, dev, flags=INTERACTIVE)
        h.check_eq(name, CANCELLED, "a dismissed dialog")
        auth.verdict = lambda call: "cancelled-error"
        name, msg = claim_error(nobody, dev, flags=INTERACTIVE)
        h.check_eq(name, CANCELLED, "polkit's Cancelled error")

        name, msg = claim_error(nobody, dev, flags=2)
        h.check_eq(name, "org.zcusb1.Error.InvalidArgument", "unknown flags")
        n = len(auth.calls)
        name, msg = dbus_error(nobody, "claim", device=dev, interface=7)
        h.check_eq(name, "org.zcusb1.Error.InvalidArgument", "an interface the device lacks")
        h.check_eq(len(auth.calls), n, "an interface the device lacks is not asked about")
        daemon = dw.client(uid=datapath.DAEMON_UID, name="daemon")
        held = daemon("claim", device=dev, interface=0)
        name, msg = claim_error(nobody, dev)
        h.check_eq(name, "org.zcusb1.Error.Busy", "an interface someone holds")
        h.check_eq(len(auth.calls), n, "an interface someone holds is not asked about")
        daemon("call", claim=held["claim"], method="Release")

        # Nothing was left behind by the refusals: a granted claim still works.
        auth.verdict = lambda call: "yes"
        r = nobody("claim", device=dev, interface=0)
        nobody("call", claim=r["claim"], method="Release")
        auth.close()


@dtest("polkit-unavailable")
def t_polkit_unavailable():
    """No authority on the bus, then one that never answers: a named error in
    time, and zcusbd goes on serving."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget()]
    with DataWorld(devices, config="[Polkit]\nTimeoutSec=1\n") as dw:
        dev = devices[1].object_path
        nobody = dw.client(name="nobody")

        name, msg = claim_error(nobody, dev)
        h.check_eq(name, UNAVAILABLE, "no polkit on the bus")
        h.check_in("polkit is not running", msg, "the reason")

        auth = authority_class()(dw.w.bus.conn)
        auth.verdict = lambda call: "hold"
        daemon = dw.client(uid=DAEMON_UID, name="daemon")
        nobody.send("claim", device=dev, interface=0)
        h.wait_until(lambda: auth.calls, 5, "zcusbd to ask polkit")
        # While the question is out, zcusbd serves others.
        r = daemon("claim", device=dev, interface=0)
        daemon("call", claim=r["claim"], method="Release")
        try:
            nobody.result(timeout_rpc=10)
            raise h.TestFailure("a claim polkit never answered succeeded")
        except datapath.RemoteDBusError as e:
            h.check_eq(e.name, UNAVAILABLE, "no answer from polkit within TimeoutSec=1")
            h.check_in("did not answer in time", e.message, "the reason")
        # The late answer finds nobody waiting: nothing happens.
        auth.answer(auth.calls[0], "yes")
        h.sleep_iterating(0.3)
        r = daemon("claim", device=dev, interface=0)  # the interface is free: no ghost claim
        daemon("call", claim=r["claim"], method="Release")
        auth.close()


@dtest("polkit-disconnect")
def t_polkit_disconnect():
    """A caller that leaves while polkit shows a dialog leaves nothing: the
    dialog is cancelled, a late yes claims nothing."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget()]
    with DataWorld(devices) as dw:
        auth = authority_class()(dw.w.bus.conn)
        auth.verdict = lambda call: "hold"
        dev = devices[1].object_path
        nobody = dw.client(name="nobody")
        nobody.send("claim", device=dev, interface=0, flags=INTERACTIVE)
        h.wait_until(lambda: auth.calls, 5, "zcusbd to ask polkit")
        call = auth.calls[0]
        nobody.kill()
        h.wait_until(lambda: call["cancellation_id"] in auth.cancels, 5,
                     "zcusbd to cancel the check of the caller that left")
        dw.wait_log("left while polkit was asked")
        auth.answer(call, "yes")
        h.sleep_iterating(0.3)
        daemon = dw.client(uid=DAEMON_UID, name="daemon")
        r = daemon("claim", device=dev, interface=0)  # Busy if a claim had been made for the ghost
        daemon("call", claim=r["claim"], method="Release")
        h.check("polkit: authorized" not in dw.daemon_log(), "zcusbd acted on an answer for a caller that left")
        auth.close()


@dtest("polkit-cli")
def t_polkit_cli():
    """zcusbctl --interactive, and what zcusbctl says for each polkit answer."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget()]
    with DataWorld(devices, config="[Polkit]\nTimeoutSec=1\n") as dw:
        dev = devices[1].object_path
        nobody = h.as_user()
        read = ["read", dev, "-i", "0", "-e", "0x81", "--bytes", "512"]

        r = dw.w.ctl(*read, user=nobody, expect=1)
        h.check_in("polkit is not running", r.err, "zcusbctl without an authority")
        h.check_in("systemctl status polkit", r.err, "the fix")

        auth = authority_class()(dw.w.bus.conn)
        auth.verdict = lambda call: "yes" if call["flags"] & INTERACTIVE else "challenge"
        r = dw.w.ctl(*read, user=nobody, expect=4)
        h.check_in("run it again with --interactive", r.err, "zcusbctl when polkit wants a password")
        h.check_eq(auth.calls[-1]["flags"], 0, "flags without --interactive")
        for argv in (["--interactive"] + read, read[:1] + ["--interactive"] + read[1:]):
            r = dw.w.ctl(*argv, user=nobody)
            h.check_in("512 bytes in", r.out, f"zcusbctl {' '.join(argv[:2])}")
            h.check_eq(auth.calls[-1]["flags"], INTERACTIVE, "flags with --interactive")
            h.check_in("zcusbctl", auth.calls[-1]["details"]["program"], "detail program")

        # At a terminal, zcusbctl --interactive starts pkttyagent for itself first.
        if shutil.which("script") and os.path.exists("/usr/bin/pkttyagent"):
            cmd = " ".join([h.exe("ZCUSBCTL"), "--interactive"] + read)
            r = h.run(h.as_user() + ["script", "-qec", cmd, "/dev/null"], env=dw.w.bus.env())
            h.check_eq(r.rc, 0, f"zcusbctl --interactive at a terminal: exit code ({r.out!r})")
            h.check_in("512 bytes in", r.out, "zcusbctl --interactive at a terminal")
            h.check_eq(len(auth.agents), 1, "text agents registered")
            h.check_eq(auth.agents[0]["subject_kind"], "unix-process", "the agent's subject")
            h.check_eq(auth.calls[-1]["flags"], INTERACTIVE, "flags at a terminal")
        else:
            h.log("no script(1) or pkttyagent: the terminal agent is not exercised")
        n = len(auth.agents)
        dw.w.ctl("--interactive", *read, user=nobody)  # not a terminal: no agent
        h.check_eq(len(auth.agents), n, "text agents started without a terminal")

        auth.verdict = lambda call: "dismissed"
        r = dw.w.ctl("--interactive", *read, user=nobody, expect=4)
        h.check_in("was cancelled", r.err, "zcusbctl after a dismissed dialog")
        auth.verdict = lambda call: "no"
        r = dw.w.ctl("--interactive", *read, user=nobody, expect=4)
        h.check_in("polkit refused", r.err, "zcusbctl after polkit's no")
        auth.close()


# N ClaimInterface calls at once from one connection: prints each answer as JSON
# ["ok", path] / ["error", name] in the order they come; exits after N answers (or 30 s).
_BURST = r"""
import dbus, dbus.mainloop.glib, json, sys
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
address, device, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bus = dbus.bus.BusConnection(address)
m = dbus.Interface(bus.get_object("org.zcusb1", "/org/zcusb1"), "org.zcusb1.Manager")
loop = GLib.MainLoop()
got = []
def done(v):
    got.append(v)
    print(json.dumps(v), flush=True)
for i in range(n):
    m.ClaimInterface(dbus.ObjectPath(device), dbus.Byte(0), reply_handler=lambda p: done(["ok", str(p)]),
                     error_handler=lambda e: done(["error", e.get_dbus_name()]))
GLib.timeout_add(100, lambda: loop.quit() if len(got) == n else True)
GLib.timeout_add(30000, loop.quit)
loop.run()
"""


@dtest("polkit-limits")
def t_polkit_limits():
    """A caller gets 4 claims waiting for polkit at once (the 5th is Busy); zcusbd
    stopping answers those still waiting with Busy; a polkit-granted claim
    survives a udev change that keeps ZCUSB_POLKIT=1 and is revoked by one
    that withdraws it."""
    h = datapath.h
    devices = [fixtures.root_hub(), polkit_gadget()]
    with DataWorld(devices) as dw:
        auth = authority_class()(dw.w.bus.conn)
        gz = devices[1]
        dev = gz.object_path

        # revocation
        nobody = dw.client(name="nobody")
        s = datapath.Session(nobody, dev, buffer_size=4096, entries=8)
        dw.w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_GROUPS", "daemon")  # a change that leaves nobody to polkit
        dw.w.tb.uevent(gz.sys_syspath, "change")
        h.sleep_iterating(0.5)
        got = s.run(datapath.bulk_in(s, 512))
        datapath.expect_status(list(got.values())[0], 0, "a polkit-granted claim after a change keeping "
                               "ZCUSB_POLKIT=1", 512)
        dw.w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_POLKIT", "0")
        dw.w.tb.uevent(gz.sys_syspath, "change")
        datapath.signals(nobody, want=(s.path, "revoked"))
        s.call("Release")
        dw.w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_POLKIT", "1")
        dw.w.tb.uevent(gz.sys_syspath, "change")
        h.wait_until(lambda: nobody("dbus", path="/org/zcusb1", iface="org.zcusb1.Manager",
                                    method="ListDevices", quiet=True), 5, "nobody to see the device again")

        # at most 4 waiting per connection
        auth.verdict = lambda call: "hold"
        n0 = len(auth.calls)
        burst = dw.w.background([sys.executable, "-c", _BURST, dw.w.bus.address, dev, "5"],
                                user=h.as_user())
        h.wait_until(lambda: len(auth.calls) - n0 >= 4, 10, "4 questions to polkit")
        h.wait_until(lambda: '"org.zcusb1.Error.Busy"' in "\n".join(burst.lines), 10, "the 5th claim to be Busy")
        h.sleep_iterating(0.3)
        h.check_eq(len(auth.calls) - n0, 4, "questions to polkit for 5 claims at once")

        # zcusbd stopping: the 4 waiting get Busy, zcusbd exits 0
        rc, took = dw.w.daemon.stop()
        h.check_eq(rc, 0, "zcusbd exit code with claims waiting for polkit")
        h.wait_until(lambda: "\n".join(burst.lines).count('"org.zcusb1.Error.Busy"') == 5, 10,
                     "the 4 waiting claims to be answered Busy")
        with open(dw.w.daemon.errpath) as f:
            datapath.check_sanitizers(f.read())
        auth.close()
