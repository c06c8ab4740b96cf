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
import socket
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

        def __init__(self, remote_conf="AllowHosts=127.0.0.1\n", devices=None):
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
                self.start(t.TEST_CONFIG + "[Remote]\nTimeoutSec=2\nHelperSocket=" + self.helper_socket + "\n" +
                           remote_conf)
            except BaseException:
                self.__exit__(None, None, None)
                raise

        def vhci_file(self, name):
            with open(os.path.join(self.tb.real(VHCI), name)) as f:
                return f.read()

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
                check("no such device" in rd[0][5] or rd[0][3] == "connecting", f"last error: {rd[0][5]!r}")
                w.still_serving("retries")
        finally:
            srv.close()
