#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The rig of zcusb's standing hostile-client suite (issue #16): what the
scenarios (hostile_bus.py, hostile_data.py) share: measurements of zcusbd, the
table, the agent that acts as a client, the world. hostile.py says what the
suite does and how to run it."""

import collections
import errno
import json
import os
import random
import resource
import select
import signal
import subprocess
import sys
import textwrap
import time
import traceback
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(1, os.path.join(HERE, "..", "common"))
sys.dont_write_bytecode = True

import zcusbtest as h  # noqa: E402  (skips with 77 itself when gi/dbus/umockdev are missing)
import datapath as dp  # noqa: E402  (registered with zcusbtest by its import)
import fixtures  # noqa: E402
import privatebus  # noqa: E402
import usbfs_emu  # noqa: E402
import zcusbclient as zc  # noqa: E402
from zcusbclient import RemoteDBusError  # noqa: E402

dbus = h.dbus
SCALE = float(os.environ.get("ZCUSB_HOSTILE_SCALE", "1") or 1)
SEED = int(os.environ.get("ZCUSB_HOSTILE_SEED", "16") or 16)
AGENT = os.path.join(HERE, "agent.py")
KIB, MIB = 1024, 1024 * 1024
NOBODY, DAEMON_UID, BIN_UID, SYS_UID = 65534, 1, 2, 3
ALLOWED_USERS = "nobody,daemon,bin"          # sys (uid 3) is the stranger
CLAIM_IFACE = "org.zcusb1.Claim"
DEVICE_IFACE = "org.zcusb1.Device"

# Every scenario's zcusbd: production log level (the flood is about what reaches
# the journal), and one byte quota small enough that a probe client can take all
# of it: if it can, nothing is left charged.
QUOTA_BYTES = 64 * MIB
SUITE_CONFIG = ("[Daemon]\nLogLevel=info\n\n[Quota]\n"
                f"BytesPerClient={QUOTA_BYTES // MIB}M\nBytesPerUser={QUOTA_BYTES // MIB}M\n"
                f"BytesGlobal={QUOTA_BYTES // MIB}M\n")

# The private bus gets the system bus's limits, spelled out: dbus-daemon's
# built-in defaults, which Debian's /usr/share/dbus-1/system.conf keeps (it
# lists them commented out). The ones the scenarios run into: 512 match rules
# per connection (zcusbd's connection included) and 256 connections per uid.
BUS_LIMITS = """  <!-- the system bus's limits (dbus-daemon defaults, Debian's system.conf) -->
  <limit name="max_match_rules_per_connection">512</limit>
  <limit name="max_connections_per_user">256</limit>
  <limit name="max_replies_per_connection">128</limit>
  <limit name="max_names_per_connection">512</limit>
  <limit name="max_completed_connections">2048</limit>
  <limit name="max_incomplete_connections">64</limit>
  <limit name="max_incoming_unix_fds">64</limit>
  <limit name="max_message_unix_fds">16</limit>
"""
_MARK = "  <!-- the project's own policy"
assert _MARK in privatebus.CONFIG_TEMPLATE
privatebus.CONFIG_TEMPLATE = privatebus.CONFIG_TEMPLATE.replace(_MARK, BUS_LIMITS + _MARK, 1)

ALLOWED_BUS_ERRORS = {
    "org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.UnknownProperty", "org.freedesktop.DBus.Error.PropertyReadOnly",
    "org.freedesktop.DBus.Error.AccessDenied",
}
HANG_ERRORS = {"org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
               "org.freedesktop.DBus.Error.TimedOut"}
GONE_ERRORS = {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
               "org.freedesktop.DBus.Error.Disconnected"}


def classify(name):
    """'ok', 'named', 'bus' (allowed), 'hang', 'gone' or 'unnamed'."""
    if name == "ok":
        return "ok"
    if name.startswith("org.zcusb1.Error."):
        return "named"
    if name in ALLOWED_BUS_ERRORS:
        return "bus"
    if name in HANG_ERRORS:
        return "hang"
    if name in GONE_ERRORS:
        return "gone"
    return "unnamed"


def scaled(n, minimum=1):
    return max(minimum, int(round(n * SCALE)))


log = h.log


# ---------------------------------------------------------------------------
# measuring zcusbd

def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_and_wakeups(pid):
    """(CPU seconds used, context switches) of every thread of pid so far."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick   # utime, stime
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        switches += int(line.split()[1])
        except (OSError, IndexError):
            pass
    return cpu, switches


def match_rules(hw):
    """Match rules on zcusbd's bus connection (the bus's Debug.Stats), None if unknown."""
    conn = hw.dw.w.bus.conn
    try:
        owner = conn.get_name_owner(h.BUS_NAME)
        st = conn.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus.Debug.Stats", "GetConnectionStats", "s", [owner],
                                timeout=5)
        return int(st.get("MatchRules", 0))
    except dbus.DBusException:
        return None


def is_asan_build(path):
    """zcusbd linked against ASan (gcc: libasan.so NEEDED; clang: static runtime)."""
    try:
        r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
        if "libasan" in r.stdout or "libclang_rt.asan" in r.stdout:
            return True
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


ASAN = None  # set in main()


# ---------------------------------------------------------------------------
# the table

class Row:
    """One scenario's line of the table, and the reasons it failed."""

    def __init__(self, name, what):
        self.name, self.what = name, what
        self.tried = []                        # "600 ClaimInterface calls", ...
        self.outcomes = collections.Counter()  # error name / result -> count
        self.notes = []                        # figures worth a line of their own
        self.problems = []
        self.expects = []                      # what the pending daemon fix must make true
        self.alive = None
        self.fds = [None, None]
        self.rss = [None, None]
        self.quota = "-"
        self.seconds = 0.0

    def fail(self, msg, expect=None):
        log(f"  PROBLEM [{self.name}]: {msg}")
        self.problems.append(msg)
        if expect and expect not in self.expects:
            self.expects.append(expect)

    def check(self, cond, msg, expect=None):
        if not cond:
            self.fail(msg, expect)
        return cond

    def note(self, msg):
        log(f"  [{self.name}] {msg}")
        self.notes.append(msg)

    def count(self, name, n=1):
        self.outcomes[name] += n

    def judge_names(self, counter, what, allow_ok=True):
        """Fail on hangs, unnamed errors and zcusbd gone among counter's names."""
        for name, n in counter.items():
            kind = classify(name) if name not in ("not-sent",) else "bus"
            if kind == "hang":
                self.fail(f"{what}: {n} call(s) without an answer ({name})")
            elif kind == "gone":
                self.fail(f"{what}: {n} call(s) found zcusbd gone ({name})")
            elif kind == "unnamed":
                self.fail(f"{what}: {n} call(s) got the unnamed error {name}")
            elif kind == "ok" and not allow_ok:
                self.fail(f"{what}: {n} call(s) succeeded")

    @property
    def verdict(self):
        return "FAIL" if self.problems else "PASS"


def short_name(name):
    """org.zcusb1.Error.Busy -> Busy, org.freedesktop.DBus.Error.InvalidArgs -> DBus.InvalidArgs."""
    if name.startswith("org.zcusb1.Error."):
        return name[len("org.zcusb1.Error."):]
    if name.startswith("org.freedesktop.DBus.Error."):
        return "DBus." + name[len("org.freedesktop.DBus.Error."):]
    return name


def print_table(rows):
    cols = [("scenario", 15), ("tried", 34), ("outcome (named errors seen, counts)", 46), ("zcusbd", 6),
            ("fds b/a", 9), ("RSS MiB b/a", 11), ("quota after", 12), ("verdict", 7)]

    def fmt_pair(p, div=1):
        if p[0] is None and p[1] is None:
            return "-"
        f = (lambda v: "?" if v is None else (f"{v / div:.1f}" if div != 1 else str(v)))
        return f"{f(p[0])}/{f(p[1])}"

    lines = []
    header = " | ".join(n.ljust(w) for n, w in cols)
    lines.append(header)
    lines.append("-+-".join("-" * w for _, w in cols))
    for r in rows:
        outcome = ", ".join(f"{short_name(k)} {v}" for k, v in sorted(r.outcomes.items(), key=lambda x: -x[1]))
        rss = fmt_pair(r.rss, 1024) + ("" if not ASAN else " (ASan)")
        cells = [r.name, "; ".join(r.tried) or "-", outcome or "-",
                 {True: "alive", False: "EXITED", None: "?"}[r.alive], fmt_pair(r.fds), rss, r.quota,
                 r.verdict]
        wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, cols)]
        for i in range(max(len(x) for x in wrapped)):
            lines.append(" | ".join((x[i] if i < len(x) else "").ljust(w) for x, (_, w) in zip(wrapped, cols)))
        lines.append("-+-".join("-" * w for _, w in cols))
    print("\n".join(lines), flush=True)
    for r in rows:
        if r.notes or r.problems:
            print(f"\n{r.name} ({r.seconds:.0f} s): {r.what}", flush=True)
            for n in r.notes:
                print(f"    figure: {n}")
            for p in r.problems:
                print(f"    FAIL:   {p}")
            for e in r.expects:
                print(f"    the daemon fix must make this true: {e}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# client processes of the agent (agent.py)

class Agent:
    """agent.py SUBCOMMAND as a uid; lines read while the main loop turns."""

    def __init__(self, hw, sub, params, uid=NOBODY, name=None):
        self.name = name or f"{sub}-{uid}"
        user = [] if uid == 0 else h.as_user(uid=uid, gid=uid)
        base = os.path.join(hw.dw.w.workdir, f"agent-{self.name}-{time.monotonic_ns()}")
        with open(base + ".json", "w") as f:   # (too large for argv at times)
            json.dump(params, f)
        os.chmod(base + ".json", 0o644)
        argv = user + [sys.executable, AGENT, sub, hw.dw.w.bus.address, "@" + base + ".json"]
        self.errpath = base + ".stderr"
        self.err = open(self.errpath, "w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  env=h.clean_env(), preexec_fn=h._die_with_us)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.buf = b""
        hw.agents.append(self)
        log(f"agent {self.name}: pid {self.p.pid} uid {uid}")

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            try:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    self.p.wait()
                    raise RuntimeError(f"agent {self.name} exited {self.p.returncode}: {self.stderr()[-1500:]}")
                self.buf += chunk
                continue
            except BlockingIOError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent {self.name}: nothing in {timeout:.0f}s (hang)")
            h.iterate()
            select.select([self.p.stdout], [], [], 0.02)
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def finish(self, timeout=20):
        """Close its stdin (it drops its connections) and wait for it to exit."""
        try:
            self.p.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < deadline:
            h.iterate()
            time.sleep(0.02)
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()


# ---------------------------------------------------------------------------
# the world of one scenario

def gadget(devnum, port, allow=ALLOWED_USERS, **props):
    return dp.gadget(devnum=devnum, port=port, allow=allow, **props)


def standard(extra=()):
    """root hub, gadget 001:003 (the probe's), gadget 001:006, and extras."""
    return [fixtures.root_hub(), gadget(3, "1"), gadget(6, "4")] + list(extra)


class HostileWorld:
    """dp.DataWorld + the row's before/after figures. On exit: clients and agents
    gone, fds back to the baseline, the quota probe, RSS, zcusbd alive, then
    DataWorld's own checks (emulator saw no misbehaviour, no sanitizer report,
    exit 0 on SIGTERM) turned into the row's problems."""

    def __init__(self, row, devices=None, config="", emulate=None, emulator_class=None):
        self.row = row
        self.agents = []
        self.devices = devices or standard()
        if emulator_class:
            real = usbfs_emu.UsbfsEmulator
            usbfs_emu.UsbfsEmulator = emulator_class   # DataWorld builds them by this name
        try:
            self.dw = dp.DataWorld(self.devices, emulate=emulate, config=SUITE_CONFIG + config)
        finally:
            if emulator_class:
                usbfs_emu.UsbfsEmulator = real
        self._cap_daemon_dump()
        try:
            self.pid = self.dw.w.daemon.p.pid
            self.probe_device = next(d for d in self.devices if d.devnum == 3)
            # the probe also warms up what a first claim sets up once (usbfs node, caches)
            self.probe("before")
            self.settle_fds(None, 0.3)
            row.fds[0] = fd_count(self.pid)
            row.rss[0] = rss_kib(self.pid)
            self.log_mark = len(self.daemon_log())
        except BaseException:
            self.dw.__exit__(None, None, None)
            raise

    def _cap_daemon_dump(self, head=60, tail=60):
        """zcusbd's output is logged when it stops; a flooding zcusbd writes tens of
        thousands of lines: show the start and the end, and how much is left out."""
        d = self.dw.w.daemon

        def dump():
            lines = d.stderr().rstrip().split("\n")
            if len(lines) > head + tail:
                lines = lines[:head] + [f"... {len(lines) - head - tail} lines left out ..."] + lines[-tail:]
            log(f"zcusbd (pid {d.p.pid}, exit {d.p.returncode}) output:\n" +
                "".join("    | " + line + "\n" for line in lines))
        d.dump = dump

    def __enter__(self):
        return self

    def alive(self):
        return self.dw.w.daemon.p.poll() is None and self.dw.w.bus.has_owner()

    def daemon_log(self):
        return self.dw.daemon_log()

    def client(self, uid=NOBODY, name=None):
        return self.dw.client(uid, name=name)

    def drop(self, c, kill=False):
        if kill:
            c.kill(signal.SIGKILL)
        try:
            c.close()
        except Exception as e:
            log(f"closing {c.name}: {e}")
        if c in self.dw.clients:
            self.dw.clients.remove(c)

    def settle_fds(self, want, timeout):
        """Wait until zcusbd's fd count is want (None: stops changing)."""
        last, stable_since = None, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = fd_count(self.pid)
            if want is not None and n == want:
                return n
            if n != last:
                last, stable_since = n, time.monotonic()
            elif want is None and time.monotonic() - stable_since > 0.3:
                return n
            h.sleep_iterating(0.05)
        return fd_count(self.pid)

    def probe(self, when):
        """A fresh client of uid nobody claims 001:003 and allocates the whole
        global byte quota: only possible when nothing else is charged."""
        c = self.client(NOBODY, name=f"probe-{when}")
        try:
            r = c("claim", device=self.probe_device.object_path, interface=0, quiet=True)
            try:
                c("alloc", claim=r["claim"], size=QUOTA_BYTES, quiet=True)
                result = "0 B"
            except RemoteDBusError as e:
                result = f"LEAK: {short_name(e.name)}"
                self.row.fail(f"quota probe {when}: AllocBuffer of the whole {QUOTA_BYTES // MIB} MiB quota "
                              f"refused ({e.name}: {e.message}): bytes are still charged to someone")
            c("call", claim=r["claim"], method="Release", quiet=True)
        except RemoteDBusError as e:
            result = f"probe {short_name(e.name)}"
            self.row.fail(f"quota probe {when}: {e.name}: {e.message}")
        finally:
            self.drop(c)
        return result

    def __exit__(self, et, ev, tb):
        row = self.row
        if et is not None:
            row.fail(f"aborted: {et.__name__}: {ev}")
            log("".join(traceback.format_exception(et, ev, tb)))
        try:
            for a in self.agents:
                a.finish()
                if a.p.returncode not in (0, -9) and a.stderr().strip():
                    log(f"agent {a.name} stderr:\n{a.stderr()[-3000:]}")
            for c in list(self.dw.clients):
                self.drop(c)
            row.alive = self.alive()
            if row.alive:
                row.quota = self.probe("after")
                row.fds[1] = self.settle_fds(row.fds[0], 5)
                row.rss[1] = rss_kib(self.pid)
                row.check(row.fds[1] == row.fds[0],
                          f"zcusbd holds {row.fds[1]} fds after the scenario, {row.fds[0]} before")
            else:
                rc = self.dw.w.daemon.p.poll()
                last = [l for l in self.daemon_log().splitlines() if l.strip()][-2:]
                row.fail((f"zcusbd is gone (exit status {rc})" if rc is not None
                          else "zcusbd lost its bus name") + "; its last words: " + " / ".join(last))
            text = self.daemon_log()[self.log_mark:]
            lines = [l for l in text.splitlines() if "accounting bug" in l or "leaves" in l]
            row.check(not lines, "zcusbd reports charges left over: " + "; ".join(lines[:3]))
        except Exception as e:
            row.fail(f"measuring after the scenario: {type(e).__name__}: {e}")
            log(traceback.format_exc())
        try:
            self.dw.__exit__(None, None, None)
        except Exception as e:
            row.fail(f"at zcusbd's exit: {str(e).splitlines()[0][:300]}")
            log(f"DataWorld exit: {e}")
        return True   # the row carries the failure; the next scenario runs


def rss_bound(row, mib, what):
    """Judge RSS growth (plain builds only)."""
    before, after = row.rss
    if before is None or after is None:
        return
    growth = (after - before) / 1024
    if ASAN:
        row.note(f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB ({what}); not judged: ASan build")
        return
    row.note(f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB ({what})")
    row.check(growth <= mib, f"zcusbd's RSS grew {growth:.1f} MiB over {what} (bound {mib} MiB)")


def remote(c, cmd, row, what, **kw):
    """A RemoteClient command whose D-Bus error is counted (not raised)."""
    try:
        r = c(cmd, quiet=True, **kw)
        row.count("ok")
        return r
    except RemoteDBusError as e:
        row.count(e.name)
        return e
    except TimeoutError as e:
        row.fail(f"{what}: no answer ({e})")
        return e


# ---------------------------------------------------------------------------
# the scenario registry: hostile_bus.py and hostile_data.py fill it

SCENARIOS = {}


def scenario(name, what):
    def deco(fn):
        SCENARIOS[name] = (fn, what)
        return fn
    return deco
