"""A fake USB/IP server (usbipd's side of OP_REQ_IMPORT) for the tier-2 tests.

Each mode answers one way, to check that zcusbd (through its connect helper)
names what is wrong and keeps serving: "ok" answers like usbipd for a
high-speed 0525:a4a0 at bus id 1-1; "truncated" closes midway through the
device description; "oversized" sends bytes after the reply; "wrong-version"
answers protocol 1.0.6; "wrong-busid" describes another device; "refused"
answers status 4 (no such device); "silent" accepts and never answers.
"""

import socket
import struct
import threading

USBIP_VERSION = 0x0111
OP_REQ_IMPORT = 0x8003
OP_REP_IMPORT = 0x0003


def device_description(busid, speed=3, busnum=1, devnum=2):
    path = f"/sys/devices/platform/dummy_hcd.0/usb1/{busid}".encode()
    return (path.ljust(256, b"\0") + busid.encode().ljust(32, b"\0") +
            struct.pack(">III", busnum, devnum, speed) +
            struct.pack(">HHH", 0x0525, 0xa4a0, 0x0100) +
            struct.pack(">BBBBBB", 0, 0, 0, 1, 1, 1))


def reply_for(mode, busid):
    ok_header = struct.pack(">HHI", USBIP_VERSION, OP_REP_IMPORT, 0)
    if mode == "ok":
        return ok_header + device_description(busid)
    if mode == "truncated":
        return (ok_header + device_description(busid))[:100]
    if mode == "oversized":
        return ok_header + device_description(busid) + b"\0" * 48
    if mode == "wrong-version":
        return struct.pack(">HHI", 0x0106, OP_REP_IMPORT, 0) + device_description(busid)
    if mode == "wrong-busid":
        return ok_header + device_description("9-9")
    if mode == "refused":
        return struct.pack(">HHI", USBIP_VERSION, OP_REP_IMPORT, 4)
    raise ValueError(mode)


class FakeUsbipServer:
    """Listens on 127.0.0.1 (an ephemeral port); answers each connection per `mode`."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = []  # the busids asked for
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                req = b""
                while len(req) < 40:
                    chunk = c.recv(40 - len(req))
                    if not chunk:
                        break
                    req += chunk
                if len(req) < 40:
                    continue
                version, code, _status = struct.unpack(">HHI", req[:8])
                busid = req[8:40].split(b"\0")[0].decode(errors="replace")
                self.requests.append((version, code, busid))
                if self.mode == "silent":
                    continue  # keep the connection open, say nothing
                c.sendall(reply_for(self.mode, busid))
                if self.mode in ("truncated", "refused", "wrong-version", "wrong-busid"):
                    c.close()
            except OSError:
                pass

    def close(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
