# SPDX-License-Identifier: LGPL-2.1-or-later
"""Remote (USB/IP) devices in tier 2: the real zcusbd and its real connect
helper (zcusb-remote-connect, socket-activated here by systemd-socket-activate
as zcusb-remote.socket does it) against fake USB/IP servers (fake_usbip.py) on
127.0.0.1, and a fake vhci-hcd: plain files in the umockdev testbed at
/sys/devices/platform/vhci_hcd.0 (status, attach, detach). There is no real
vhci-hcd here, so the kernel's side (the socket becoming a USB device) is
played by the test: it reads what zcusbd wrote to the attach file, marks the
port used in the status table and plugs a usb_device under vhci_hcd.0, as the
kernel would. The VM tier (tests/vm/cases/85-remote.sh) does it for real.

zcusbtest.py imports this module and calls register(itself)."""

import dataclasses
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time

import fake_usbip
import fixtures

VHCI = "/sys/devices/platform/vhci_hcd.0"
ERR = "org.zcusb1.Error."


def register(t):
    check, check_eq, log, wait_until = t.check, t.check_eq, t.log, t.wait_until
    MANAGER_PATH, MANAGER_IFACE, PROPS_IFACE = t.MANAGER_PATH, t.MANAGER_IFACE, t.PROPS_IFACE

    def status_table(used=None):
        """vhci_sysfs.c's table for one controller: 8 hs then 8 ss ports;
        USED = {port: (speed, devid, local_busid)}."""
        text = "hub port sta spd dev      sockfd local_busid\n"
        for port in range(16):
            hub = "hs" if port < 8 else "ss"
            if used and port in used:
                speed, devid, busid = used[port]
                text += f"{hub}  {port:04} 006 {speed:03} {devid:08x} 000009 {busid}\n"
            else:
                text += f"{hub}  {port:04} 004 000 00000000 0000000000000000 0-0\n"
        return text

    class RemoteWorld(t.World):
        """A World with a fake vhci-hcd, the connect helper listening, and
        a [Remote] section."""

        def __init__(self, remote_conf="AllowHosts=127.0.0.1\n", devices=None, env=None):
            self.vhci_hub = dataclasses.replace(fixtures.root_hub(busnum=3), parent="/devices/platform/vhci_hcd.0")
            super().__init__(devices=(devices if devices is not None else [fixtures.gadget_zero()]) +
                             [self.vhci_hub], start=False)
            try:
                root = self.tb.real(VHCI)
                os.makedirs(root, exist_ok=True)
                os.makedirs(self.tb.real("/sys/module/vhci_hcd"), exist_ok=True)
                for name, text in (("status", status_table()), ("attach", ""), ("detach", "")):
                    with open(os.path.join(root, name), "w") as f:
                        f.write(text)
                self.helper_socket = os.path.join(self.workdir, "remote-connect.socket")
                # as zcusb-remote.socket: one helper per connection, on fd 3
                self.helper = t.Background(
                    ["systemd-socket-activate", "--seqpacket", "--accept", "-l", self.helper_socket,
                     t.exe("ZCUSB_REMOTE_CONNECT")], env=t.clean_env())
                self.bg.append(self.helper)
                wait_until(lambda: os.path.exists(self.helper_socket), 5, "the helper socket")
                self.config_text = (t.TEST_CONFIG + "[Remote]\nTimeoutSec=2\nHelperSocket=" + self.helper_socket +
                                    "\n" + remote_conf)
                self.start(self.config_text, env=env)
            except BaseException:
                self.__exit__(None, None, None)
                raise

        def vhci_file(self, name):
            with open(os.path.join(self.tb.real(VHCI), name)) as f:
                return f.read()

        def clear_vhci_file(self, name):
            with open(os.path.join(self.tb.real(VHCI), name), "w"):
                pass

        def set_status(self, used):
            with open(os.path.join(self.tb.real(VHCI), "status"), "w") as f:
                f.write(status_table(used))

        def attach(self, host, port, busid, user=None):
            return self.call_as(user, MANAGER_PATH, MANAGER_IFACE, "AttachRemote", "sqs", host, port, busid)

        def remote_devices(self, user=None):
            r = self.call_as(user, MANAGER_PATH, PROPS_IFACE, "Get", "ss", MANAGER_IFACE, "RemoteDevices")
            check_eq(r[0], "ok", f"Get RemoteDevices: {r}")
            return r[1]

        def still_serving(self, what):
            r = self.call_as(None, MANAGER_PATH, MANAGER_IFACE, "ListDevices")
            check_eq(r[0], "ok", f"ListDevices after {what}: {r}")
            check(self.daemon.p.poll() is None, f"zcusbd exited after {what}")

    def closed_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    @t.test("remote-errors")
    def t_remote_errors():
        """Broken and hostile servers: each gets its named error within the
        timeout (TimeoutSec=2), nothing is handed to vhci, zcusbd serves on."""
        cases = [
            ("truncated", "RemoteProtocol", "truncated"),
            ("oversized", "RemoteProtocol", "oversized"),
            ("wrong-version", "RemoteProtocol", "version 1.0.6"),
            ("wrong-busid", "RemoteProtocol", "bus id '9-9'"),
            ("refused", "RemoteRefused", "no such device"),
            ("silent", "Timeout", "did not answer"),
        ]
        with RemoteWorld() as w:
            for mode, name, words in cases:
                srv = fake_usbip.FakeUsbipServer(mode)
                try:
                    start = time.monotonic()
                    r = w.attach("127.0.0.1", srv.port, "1-1")
                    took = time.monotonic() - start
                finally:
                    srv.close()
                log(f"{mode}: {r} after {took:.2f}s")
                check_eq(r[:2], ("error", ERR + name), f"AttachRemote against a '{mode}' server")
                check(words in r[2], f"'{mode}': the message names the cause ({words!r}): {r[2]!r}")
                check(took < 2 + 2.5, f"'{mode}': answered after {took:.2f}s, TimeoutSec=2")
                check_eq(srv.requests[:1], [(0x0111, 0x8003, "1-1")], f"'{mode}': the request the server saw")
                check_eq(w.vhci_file("attach"), "", f"'{mode}': nothing written to vhci's attach file")
                check_eq(w.remote_devices(), [], f"'{mode}': RemoteDevices after the failure")
                w.still_serving(mode)
            r = w.attach("127.0.0.1", closed_port(), "1-1")
            check_eq(r[:2], ("error", ERR + "RemoteUnreachable"), "AttachRemote to a closed port")
            check("refused" in r[2], f"closed port: {r[2]!r}")
            w.still_serving("a closed port")

    @t.test("remote-policy")
    def t_remote_policy():
        """Who may attach and where to comes from zcusbd.conf, never the caller."""
        nobody = t.as_user()
        srv = fake_usbip.FakeUsbipServer("refused")  # reaching it at all is the failure
        try:
            with RemoteWorld("AllowHosts=127.0.0.1\n") as w:
                r = w.attach("127.0.0.1", srv.port, "1-1", user=nobody)
                check_eq(r[:2], ("error", ERR + "AccessDenied"), "AttachRemote as nobody (not in AllowUsers=)")
                check_eq(w.remote_devices(nobody), [], "RemoteDevices as nobody")
                r = w.attach("localhost", srv.port, "1-1")
                check_eq(r[:2], ("error", ERR + "HostNotAllowed"), "root, host not in AllowHosts=")
                check("AllowHosts" in r[2], f"HostNotAllowed names the setting: {r[2]!r}")
                for args, what in ((("127.0.0.1", 0, "1-1"), "port 0"), (("127.0.0.1", 3240, "../x"), "bad busid"),
                                   (("-oFoo", 3240, "1-1"), "host like an option"),
                                   (("a" * 300, 3240, "1-1"), "300-char host")):
                    r = w.attach(*args)
                    check_eq(r[:2], ("error", ERR + "InvalidArgument"), f"AttachRemote with {what}")
                check_eq(srv.requests, [], "the server heard nothing of refused calls")
            with RemoteWorld("AllowHosts=127.0.0.1\nAllowUsers=nobody\n") as w:
                r = w.attach("localhost", srv.port, "1-1", user=nobody)
                check_eq(r[:2], ("error", ERR + "HostNotAllowed"), "nobody (allowed), host not in AllowHosts=")
                r = w.attach("127.0.0.1", srv.port, "1-1", user=nobody)
                check_eq(r[:2], ("error", ERR + "RemoteRefused"), "nobody (allowed), allowed host: reaches it")
            with RemoteWorld("AllowHosts=*\nAllowGroups=nogroup\n") as w:
                r = w.attach("localhost", srv.port, "1-1", user=t.as_user(groups=[65534]))
                check_eq(r[:2], ("error", ERR + "RemoteRefused"), "a member of AllowGroups=, AllowHosts=*")
            with RemoteWorld("") as w:
                r = w.attach("127.0.0.1", srv.port, "1-1")
                check_eq(r[:2], ("error", ERR + "HostNotAllowed"), "no AllowHosts=: no host at all")
        finally:
            srv.close()

    @t.test("remote-attach")
    def t_remote_attach():
        """The whole import up to the kernel: zcusbd writes "port sockfd devid
        speed" to vhci's attach file for a free high-speed port; the device
        that then appears on that port is what AttachRemote answers; detach
        writes the port to the detach file; the device's removal ends it."""
        nobody = t.as_user()
        srv = fake_usbip.FakeUsbipServer("ok")
        try:
            with RemoteWorld("AllowHosts=127.0.0.1\nAllowUsers=nobody\n") as w:
                w.set_status({0: (3, 0x30002, "3-1")})  # port 0 taken by someone else
                replies = []
                w.bus.conn.call_async(t.BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "AttachRemote", "sqs",
                                      ("127.0.0.1", srv.port, "1-1"), lambda *a: replies.append(("ok",) + a),
                                      lambda e: replies.append(("error", e.get_dbus_name(), str(e))),
                                      timeout=30)
                wait_until(lambda: w.vhci_file("attach"), 5, "zcusbd to write vhci's attach file")
                line = w.vhci_file("attach").split()
                log(f"attach file: {line}")
                check_eq(len(line), 4, "attach: port sockfd devid speed")
                check_eq((line[0], line[2], line[3]), ("1", str(0x10002), "3"),
                         "attach: first free hs port, devid 1<<16|2, high speed")
                check(int(line[1]) > 2, f"attach: a socket fd ({line[1]})")
                states = [e[3] for e in w.remote_devices()]
                check_eq(states, ["attaching"], "RemoteDevices while the device enumerates")

                # the kernel's part: the port is used, the device appears
                dev = dataclasses.replace(fixtures.gadget_zero(), sysname="3-2", busnum=3, devnum=2,
                                          parent="/devices/platform/vhci_hcd.0/usb3")
                w.set_status({0: (3, 0x30002, "3-1"), 1: (3, 0x10002, "3-2")})
                w.tb.plug(dev)
                wait_until(lambda: replies, 10, "AttachRemote's answer")
                check_eq(replies, [("ok", dev.object_path)], "AttachRemote answers the local device")
                rd = w.remote_devices()
                check_eq(rd, [["127.0.0.1", srv.port, "1-1", "attached", dev.object_path, ""]], "RemoteDevices")
                check_eq(w.remote_devices(nobody), rd, "RemoteDevices as nobody (in AllowUsers=)")
                r = w.attach("127.0.0.1", srv.port, "1-1")
                check_eq(r[:2], ("error", ERR + "Busy"), "attaching the same device twice")

                r = w.call_as(nobody, MANAGER_PATH, MANAGER_IFACE, "DetachRemote", "o", dev.object_path)
                check_eq(r[:2], ("error", ERR + "AccessDenied"), "DetachRemote by another (non-root) user")
                r = w.call_as(None, MANAGER_PATH, MANAGER_IFACE, "DetachRemote", "o", "/org/zcusb1/device/usb1_3")
                check_eq(r[:2], ("error", ERR + "NoSuchDevice"), "DetachRemote of a local device")
                r = w.call_as(None, MANAGER_PATH, MANAGER_IFACE, "DetachRemote", "o", dev.object_path)
                check_eq(r[0], "ok", f"DetachRemote as root: {r}")
                check_eq(w.vhci_file("detach"), "1", "detach file: the port")
                w.set_status({0: (3, 0x30002, "3-1")})
                w.tb.unplug(dev)
                wait_until(lambda: w.remote_devices() == [], 5, "the remote entry to go with its device")

                # attach again, then the connection drops: like an unplug
                with open(os.path.join(w.tb.real(VHCI), "attach"), "w"):
                    pass
                # the same through zcusbctl, as nobody (in AllowUsers=)
                bg = w.background([t.exe("ZCUSBCTL"), "attach", f"127.0.0.1:{srv.port}", "1-1", "--json"],
                                  user=nobody)
                wait_until(lambda: w.vhci_file("attach"), 10, "the second attach")
                dev2 = dataclasses.replace(dev, devnum=3)
                w.set_status({0: (3, 0x30002, "3-1"), 1: (3, 0x10002, "3-2")})
                w.tb.plug(dev2)
                wait_until(lambda: bg.p.poll() is not None, 10, "zcusbctl attach to finish")
                bg.pump()
                check_eq(bg.p.returncode, 0, "zcusbctl attach exit code")
                got = json.loads(bg.lines[-1])
                check_eq(got, {"host": "127.0.0.1", "port": srv.port, "busid": "1-1", "object": dev2.object_path},
                         "zcusbctl attach --json: re-attach gives a new device object")
                lst = w.ctl("remote", "--json", user=nobody).json()
                check_eq(lst, [{"host": "127.0.0.1", "port": srv.port, "busid": "1-1", "state": "attached",
                                "object": dev2.object_path, "error": None}], "zcusbctl remote --json")
                r = w.ctl("attach", "localhost", "1-1", user=nobody, expect=4)
                check("AllowHosts" in r.err, f"zcusbctl attach to a host not allowed: {r.err!r}")
                r = w.ctl("attach", "127.0.0.1:0", "1-1", expect=2)
                r = w.ctl("detach", "001:003", expect=3)
                w.set_status({0: (3, 0x30002, "3-1")})
                w.tb.unplug(dev2)
                wait_until(lambda: w.remote_devices() == [], 5, "the dropped remote to go")
                w.still_serving("a dropped remote device")
        finally:
            srv.close()

    @t.test("remote-persistent")
    def t_remote_persistent():
        """[Remote] Attach=: attached at start, retried with backoff while it fails."""
        srv = fake_usbip.FakeUsbipServer("refused")
        try:
            with RemoteWorld(f"AllowHosts=127.0.0.1\nAttach=127.0.0.1:{srv.port}/1-1\n") as w:
                wait_until(lambda: len(srv.requests) >= 2, 8, "a first attempt and a retry")
                rd = w.remote_devices()
                check_eq(len(rd), 1, f"one persistent entry: {rd}")
                check_eq(rd[0][:5], ["127.0.0.1", srv.port, "1-1", rd[0][3], "/"], "the entry")
                check(rd[0][3] in ("waiting", "connecting"), f"state while the server refuses: {rd[0][3]}")
                check("RUNTIME_DIRECTORY is not set: no records" in w.daemon.stderr(),
                      "without $RUNTIME_DIRECTORY the log says no records are kept")
                check("no such device" in rd[0][5] or rd[0][3] == "connecting", f"last error: {rd[0][5]!r}")
                w.still_serving("retries")
        finally:
            srv.close()


    def read_file(path):
        with open(path) as f:
            return f.read()

    def write_file(path, text):
        with open(path, "w") as f:
            f.write(text)

    @t.test("remote-orphan")
    def t_remote_orphan():
        """zcusbd SIGKILLed with a remote device attached leaves the vhci port
        attached and its record in $RUNTIME_DIRECTORY; the next zcusbd
        detaches that port before it attaches anything (the persistent
        Attach= then comes back on a port recorded anew), leaves alone a
        recorded port that holds another devid by now, and removes malformed
        records saying so. A clean stop detaches and removes the record."""
        srv = fake_usbip.FakeUsbipServer("ok")
        rundir = tempfile.mkdtemp(prefix="zcusbtest-run-")
        env = {"RUNTIME_DIRECTORY": rundir}
        devid = 0x10002  # the fake server's device: bus 1, device 2

        def record(port):
            return os.path.join(rundir, f"vhci-port-{port}")

        def attach_and_plug(w, devnum, others):
            """The kernel's side of zcusbd's next attach: port used, device plugged."""
            wait_until(lambda: w.vhci_file("attach"), 10, "zcusbd to write vhci's attach file")
            line = w.vhci_file("attach").split()
            check_eq((line[2], line[3]), (str(devid), "3"), f"attach: devid and speed ({line})")
            port = int(line[0])
            dev = dataclasses.replace(fixtures.gadget_zero(), sysname=f"3-{port + 1}", busnum=3, devnum=devnum,
                                      parent="/devices/platform/vhci_hcd.0/usb3")
            w.set_status({**others, port: (3, devid, dev.sysname)})
            w.tb.plug(dev)
            wait_until(lambda: [e[3:5] for e in w.remote_devices()] == [["attached", dev.object_path]], 10,
                       "the persistent remote to be attached")
            return port, dev

        try:
            with RemoteWorld(f"AllowHosts=127.0.0.1\nAttach=127.0.0.1:{srv.port}/1-1\n", env=env) as w:
                port, dev = attach_and_plug(w, 2, {})
                want = f"vhci_port={port}\ndevid={devid:08x}\nhost=127.0.0.1\nport={srv.port}\nbusid=1-1\n"
                check_eq(read_file(record(port)), want, "the record of the attached port")
                check_eq(stat.S_IMODE(os.stat(record(port)).st_mode), 0o600, "the record's mode")
                check_eq(sorted(os.listdir(rundir)), [f"vhci-port-{port}"], "the runtime directory")

                w.daemon.p.send_signal(signal.SIGKILL)
                wait_until(lambda: w.daemon.p.poll() is not None, 5, "zcusbd to die of SIGKILL")
                w.daemon.stop()
                check_eq(read_file(record(port)), want, "the record after SIGKILL")
                check_eq(w.vhci_file("detach"), "", "a killed zcusbd detached nothing")

                # Besides: port 9 was recorded, but holds another import by now
                # (usbip attach by hand after the crash); broken records; a
                # file that is none of zcusbd's.
                other = {9: (5, 0x40007, "4-1")}
                w.set_status({**other, port: (3, devid, dev.sysname)})
                write_file(record(9), "vhci_port=9\ndevid=00010005\nhost=127.0.0.1\nport=3240\nbusid=2-1\n")
                write_file(record(3), "vhci_port=3\ndevid=00010002\nhost=127.0.0.1\n")
                write_file(record(4), want.replace("busid=1-1", "busid=1-1" + ".1" * 300))
                write_file(record(5), want)  # port 5's name, port N's content
                write_file(os.path.join(rundir, ".vhci-port-7.tmp"), "vhci_po")  # a write the kill cut short
                write_file(os.path.join(rundir, "someone-elses"), "x\n")
                w.clear_vhci_file("attach")

                w.start(w.config_text, env=env)
                check_eq(w.vhci_file("detach"), str(port), "the restarted zcusbd detached the orphaned port")
                # the order of two log lines: read the log once the later one is there
                importing = f"Remote 127.0.0.1:{srv.port}/1-1: importing."
                wait_until(lambda: importing in w.daemon.stderr(), 10, "zcusbd to start importing again")
                err = w.daemon.stderr()
                line = (f"Detached vhci port {port} left attached by a previous zcusbd "
                        f"(127.0.0.1:{srv.port}/1-1).")
                check(line in err, f"the log says which remote it was: {line!r}")
                check(line in err and err.index(line) < err.index(importing),
                      "the orphan is detached before Attach= imports again")
                check("vhci port 9 no longer holds 127.0.0.1:3240/2-1" in err, "the log on port 9 (left alone)")
                for n, why in ((3, "a key is missing"), (4, "too large"), (5, "its port is not the one in its name")):
                    check(f"Ignoring malformed record {record(n)} ({why}); removing it." in err,
                          f"the log on the malformed record {n} ({why})")
                check_eq(sorted(os.listdir(rundir)), ["someone-elses"], "records after the start: none left")

                # the kernel's part of the detach; then Attach= attaches again
                w.set_status(other)
                w.tb.unplug(dev)
                port2, dev2 = attach_and_plug(w, 3, other)
                check(port2 != 9, f"the port in use by another import is not reused: {port2}")
                check_eq(read_file(record(port2)), want.replace(f"vhci_port={port}", f"vhci_port={port2}"),
                         "the re-attached port's record")
                check_eq(w.vhci_file("detach"), str(port), "port 9 was never detached")

                w.clear_vhci_file("detach")
                rc, _ = w.daemon.stop()
                check_eq(rc, 0, "zcusbd exit code after SIGTERM")
                check_eq(w.vhci_file("detach"), str(port2), "a clean stop detaches")
                check_eq(sorted(os.listdir(rundir)), ["someone-elses"], "a clean stop removes the record")
        finally:
            srv.close()
            shutil.rmtree(rundir, ignore_errors=True)
