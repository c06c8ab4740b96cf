#!/usr/bin/env python3
"""zcusb tier-2 integration tests: umockdev testbed + private system bus + real zcusbd.

Usage (normally from meson, under umockdev-wrapper):
    umockdev-wrapper python3 zcusbtest.py TESTNAME     run one test
    umockdev-wrapper python3 zcusbtest.py --all        run every test in turn
    python3 zcusbtest.py --list                        print the test names
Exit status: 0 pass, 1 fail, 77 skip (only when a host facility is missing).

Environment: ZCUSBD, ZCUSBCTL (the built binaries), ZCUSB_SOURCE_ROOT (the
source tree, for dbus/org.zcusb1.conf), optionally ZCUSB_DBUS_POLICY (another
bus policy file to include instead) and ZCUSBTEST_KEEP=1 (keep the work dir).

How the pieces fit:
- The umockdev testbed is created in THIS process before any child is spawned,
  so zcusbd and zcusbctl inherit LD_PRELOAD and UMOCKDEV_DIR (set by the
  testbed) and see the mock /sys and /dev.
- dbus-daemon runs WITHOUT the preload, from a generated config: Debian's
  default-deny system policy plus an <include> of the project's own
  dbus/org.zcusb1.conf, so the shipped policy is what is exercised.
- Every wait iterates the default GMainContext: umockdev delivers uevents
  and (later) emulated ioctls from it, and python-dbus signals arrive on it.
"""

import faulthandler
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "common"))  # privatebus
sys.dont_write_bytecode = True  # no __pycache__ in the source tree


def _skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


# python3-gi / python3-dbus live in the distro's python; a pyenv or venv python
# found first on PATH lacks them: re-run under /usr/bin/python3 in that case.
try:
    import gi
    import dbus
    import dbus.mainloop.glib
except ImportError as e:
    if (os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) !=
            os.path.realpath("/usr/bin/python3") and not os.environ.get("ZCUSBTEST_REEXEC")):
        os.environ["ZCUSBTEST_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(__file__)] + sys.argv[1:])
    if "--list" not in sys.argv:
        _skip(f"python3-gi and python3-dbus are needed ({e})")
    gi = dbus = None

if gi is not None:
    try:
        gi.require_version("UMockdev", "1.0")
        from gi.repository import GLib, UMockdev
    except (ValueError, ImportError) as e:
        if "--list" not in sys.argv:
            _skip(f"gir1.2-umockdev-1.0 is needed ({e})")

import fixtures  # noqa: E402
import privatebus  # noqa: E402

BUS_NAME = "org.zcusb1"
MANAGER_PATH = "/org/zcusb1"
MANAGER_IFACE = "org.zcusb1.Manager"
DEVICE_IFACE = "org.zcusb1.Device"
CLAIM_IFACE = "org.zcusb1.Claim"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
NOBODY = 65534
T0 = time.monotonic()


# ---------------------------------------------------------------------------
# logging and assertions

def log(msg):
    print(f"[{time.monotonic() - T0:7.3f}] {msg}", flush=True)


class TestFailure(Exception):
    pass


class TestSkip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure(f"{what}: expected {want!r}, got {got!r}")


class soft:
    """`with soft("what"):` - a failed check inside is logged and remembered, the
    test goes on, and fails at its end: one run shows every independent problem."""
    failures = []

    def __init__(self, what, once=None):
        self.what = what
        self.once = once  # report a failure with this key only once per test

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and issubclass(et, (TestFailure, dbus.DBusException)):
            log(f"FAILED (continuing): {self.what}: {ev}")
            if self.once is None or not any(f.startswith(self.once + ": ") for f in soft.failures):
                soft.failures.append(f"{self.once or self.what}: {ev}")
            return True
        return False


def check_in(needle, hay, what):
    if needle not in hay:
        raise TestFailure(f"{what}: {needle!r} not found in {hay!r}")


# ---------------------------------------------------------------------------
# the main loop: all waiting goes through here

_pumps = []  # callables run on each iteration (background output readers)


def iterate():
    ctx = GLib.MainContext.default()
    while ctx.pending():
        ctx.iteration(False)
    for p in list(_pumps):
        p()


def wait_until(pred, timeout, what, interval=0.01):
    """Iterate the main context until pred() is true; pred runs every `interval` s."""
    deadline = time.monotonic() + timeout
    while True:
        iterate()
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        end = time.monotonic() + interval
        while True:
            time.sleep(0.01)
            iterate()
            if time.monotonic() >= end:
                break


def sleep_iterating(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        iterate()
        time.sleep(0.01)


# ---------------------------------------------------------------------------
# child processes

class Result:
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise TestFailure(f"{' '.join(self.argv)}: stdout is not JSON ({e}): {self.out!r}")


import ctypes  # noqa: E402

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, never in a forked child
_PR_SET_PDEATHSIG = 1


def _die_with_us():
    """preexec_fn: children get SIGKILL if this process dies without cleaning up
    (e.g. an abort inside libumockdev), so no dbus-daemon/zcusbd is left behind.
    It runs between fork and exec of a process with other threads (umockdev's
    worker thread): no import, dlopen or file access here. umockdev's preload
    holds a lock in every path function, and a child that needs a lock another
    thread held at the fork hangs forever (seen: `import ctypes` in here hung a
    Popen about once in 60 test runs)."""
    _prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL


def as_user(uid=NOBODY, gid=NOBODY, groups=None):
    """setpriv prefix: run as uid/gid with exactly `groups` as supplementary groups."""
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    if groups:
        prefix.append("--groups=" + ",".join(str(g) for g in groups))
    else:
        prefix.append("--clear-groups")
    return prefix


def run(argv, env=None, timeout=20, quiet=False):
    """Run a command to completion while iterating the main context."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                             preexec_fn=_die_with_us)
        try:
            wait_until(lambda: p.poll() is not None, timeout, f"{argv} to exit")
        except TestFailure:
            p.kill()
            p.wait()
            raise
        out.seek(0)
        err.seek(0)
        r = Result(argv, p.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"))
    if not quiet:
        log(f"$ {' '.join(argv)}  -> exit {r.rc}")
        for name, text in (("stdout", r.out), ("stderr", r.err)):
            if text.strip():
                log(f"  {name}:\n" + "".join("    | " + line + "\n" for line in text.rstrip("\n").split("\n")))
    return r


class Background:
    """A long-running child whose stdout lines are collected while we iterate."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.lines = []
        self._buf = b""
        self._err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self._err, env=env, preexec_fn=_die_with_us)
        os.set_blocking(self.p.stdout.fileno(), False)
        _pumps.append(self.pump)
        log(f"$ {' '.join(argv)} &  (pid {self.p.pid})")

    def pump(self):
        while True:
            try:
                chunk = os.read(self.p.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._buf += chunk
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                log(f"  [{os.path.basename(self.argv[0])} {self.p.pid}] {line}")
                self.lines.append(line)

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                wait_until(lambda: self.p.poll() is not None, timeout, f"{self.argv} to exit")
            except TestFailure:
                self.p.kill()
                self.p.wait()
                raise
        self.pump()
        _pumps.remove(self.pump)
        self._err.seek(0)
        err = self._err.read().decode(errors="replace")
        if err.strip():
            log(f"  [{self.p.pid}] stderr:\n" + "".join("    | " + l + "\n" for l in err.rstrip().split("\n")))
        self._err.close()
        self.p.stdout.close()
        return self.p.returncode


# ---------------------------------------------------------------------------
# the umockdev testbed

class Testbed:
    def __init__(self, devices):
        self.tb = UMockdev.Testbed.new()
        self.root = self.tb.get_root_dir()
        # The testbed sets UMOCKDEV_DIR with g_setenv(): python's os.environ (from
        # which every child's env is built here) does not see it by itself.
        os.environ["UMOCKDEV_DIR"] = GLib.getenv("UMOCKDEV_DIR") or self.root
        # uid 65534 runs zcusbctl with the same preload: let it read the mock tree
        os.chmod(self.root, 0o755)
        self.devices = {}
        text = fixtures.controller_text()
        for d in devices:
            text += d.umockdev_text()
            self.devices[d.syspath] = d
        self.tb.add_from_string(text)
        log(f"testbed {self.root}: " + ", ".join(
            f"{d.sysname}={d.vid:04x}:{d.pid:04x}" for d in devices))

    def real(self, syspath):
        """Where a /sys/... path of the testbed really lives (to edit it directly)."""
        assert syspath.startswith("/sys/"), syspath
        return self.root + syspath

    def plug(self, dev):
        """Add a device and send the uevents the kernel sends on a plug."""
        self.tb.add_from_string(dev.umockdev_text())
        self.devices[dev.syspath] = dev
        self.uevent(dev.sys_syspath, "add")
        cfg = dev.config()
        for i in (cfg.interfaces if cfg else []):
            self.uevent("/sys" + dev.interface_syspath(i.number), "add")
            if i.driver:
                self.uevent("/sys" + dev.interface_syspath(i.number), "bind")
        self.uevent(dev.sys_syspath, "bind")

    def unplug(self, dev):
        cfg = dev.config()
        for i in (cfg.interfaces if cfg else []):
            if i.driver:
                self.uevent("/sys" + dev.interface_syspath(i.number), "unbind")
            self.uevent("/sys" + dev.interface_syspath(i.number), "remove")
        self.uevent(dev.sys_syspath, "unbind")
        self.uevent(dev.sys_syspath, "remove")
        # children first: umockdev only unlinks the /sys/bus/usb/devices entry of
        # the device it is given, and a stale child link breaks a replug
        for i in (cfg.interfaces if cfg else []):
            self.tb.remove_device("/sys" + dev.interface_syspath(i.number))
        self.tb.remove_device(dev.sys_syspath)
        del self.devices[dev.syspath]

    def uevent(self, syspath, action):
        log(f"uevent {action} {syspath}")
        self.tb.uevent(syspath, action)

    def set_uevent_prop(self, syspath, key, value):
        """Set (value=str) or drop (value=None) a property in a device's uevent file."""
        path = self.real(syspath) + "/uevent"
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l and not l.startswith(key + "=")]
        if value is not None:
            lines.append(f"{key}={value}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def set_driver(self, dev, ifnum, driver):
        """Bind (driver name) or unbind (None/"") an interface driver, like the kernel:
        the uevent file's DRIVER, the driver symlink, then a bind/unbind uevent."""
        syspath = "/sys" + dev.interface_syspath(ifnum)
        link = self.real(syspath) + "/driver"
        if os.path.lexists(link):
            os.unlink(link)
        if driver:
            # relative to the interface directory, i.e. up to /sys
            os.symlink("../" * (syspath.count("/") - 1) + f"bus/usb/drivers/{driver}", link)
        self.set_uevent_prop(syspath, "DRIVER", driver or None)
        next(i for i in dev.config().interfaces if i.number == ifnum).driver = driver or ""
        self.uevent(syspath, "bind" if driver else "unbind")


# ---------------------------------------------------------------------------
# the private system bus

def clean_env(extra=None):
    """The environment without the umockdev preload (for dbus-daemon)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "UMOCKDEV_DIR", "DBUS_SESSION_BUS_ADDRESS")}
    env.update(extra or {})
    return env


class Bus:
    def __init__(self, workdir):
        policy = privatebus.project_policy_path()
        if not os.path.exists(policy):
            raise TestFailure(f"project bus policy {policy} does not exist")
        self.dir = os.path.join(workdir, "bus")
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        self.log = open(os.path.join(self.dir, "dbus-daemon.log"), "w+")
        self.p, self.socket = privatebus.start_dbus_daemon(self.dir, policy, clean_env(), stderr=self.log,
                                                           preexec_fn=_die_with_us)
        if not self.socket:
            self.log.seek(0)
            raise TestFailure(f"dbus-daemon did not start (exit {self.p.returncode}): {self.log.read()}")
        self.address = f"unix:path={self.socket}"
        log(f"dbus-daemon pid {self.p.pid} at {self.address} (policy {policy})")
        # the socket must be connectable by uid 65534 too
        os.chmod(self.socket, 0o777)
        self.conn = dbus.bus.BusConnection(self.address)

    def env(self, extra=None):
        env = dict(os.environ)
        # RUNTIME_DIRECTORY: zcusbd keeps records there (a test names its own)
        for k in ("DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUNTIME_DIRECTORY"):
            env.pop(k, None)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        env.update(extra or {})
        return env

    def has_owner(self, name=BUS_NAME):
        return self.conn.name_has_owner(name)

    def match_rules_of(self, pid):
        """Match-rule count of the connection(s) of process pid, or None if the
        bus has no Stats interface (then callers must fall back to a delay)."""
        dbo = self.conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
        n = 0
        for name in dbo.ListNames(dbus_interface="org.freedesktop.DBus"):
            if not name.startswith(":"):
                continue
            try:
                if dbo.GetConnectionUnixProcessID(name, dbus_interface="org.freedesktop.DBus") != pid:
                    continue
                st = dbo.GetConnectionStats(name, dbus_interface="org.freedesktop.DBus.Debug.Stats")
            except dbus.DBusException as e:
                if "UnknownInterface" in e.get_dbus_name() or "UnknownMethod" in e.get_dbus_name():
                    return None
                continue
            n += int(st.get("MatchRules", 0))
        return n

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass
        self.p.terminate()
        self.p.wait()
        self.p.stdout.close()
        self.log.seek(0)
        text = self.log.read()
        if text.strip():
            log("dbus-daemon log:\n" + "".join("    | " + l + "\n" for l in text.rstrip().split("\n")))
        self.log.close()


# ---------------------------------------------------------------------------
# zcusbd

def exe(var):
    path = os.environ.get(var)
    if not path:
        raise TestFailure(f"${var} is not set (meson sets it to the built binary)")
    if not os.access(path, os.X_OK):
        raise TestFailure(f"${var}={path} is not an executable")
    return path


# Every test config starts with this: never try to load zcusb.ko on the host.
TEST_CONFIG = "[Daemon]\nBackend=usbfs\nLoadModule=no\nLogLevel=debug\n\n"


class Daemon:
    def __init__(self, bus, workdir, config_text=TEST_CONFIG, config_name="zcusbd.conf", dropins=None,
                 args=None, env=None):
        self.bus = bus
        self.config = os.path.join(workdir, config_name)
        with open(self.config, "w") as f:
            f.write(config_text)
        for name, text in (dropins or {}).items():
            d = self.config + ".d"
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        self.errpath = os.path.join(workdir, "zcusbd.stderr")
        self.err = open(self.errpath, "w+")
        self.argv = [exe("ZCUSBD"), f"--bus-address={bus.address}", f"--config={self.config}"] + (args or [])
        log(f"$ {' '.join(self.argv)} &")
        self.started = time.monotonic()
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.err,
                                  stderr=self.err, env=bus.env(env), preexec_fn=_die_with_us)
        self.rc = None

    def wait_ready(self, timeout=10):
        def ready():
            if self.p.poll() is not None:
                raise TestFailure(f"zcusbd exited with {self.p.returncode} before owning "
                                  f"{BUS_NAME}:\n{self.stderr()}")
            return self.bus.has_owner()
        wait_until(ready, timeout, f"zcusbd to own {BUS_NAME}")
        log(f"zcusbd pid {self.p.pid} owns {BUS_NAME} after {time.monotonic() - self.started:.2f}s")
        return self

    def stderr(self):
        self.err.flush()
        with open(self.errpath) as f:
            return f.read()

    def stop(self, timeout=5):
        """SIGTERM; returns (exit code, seconds taken). Logs the daemon's stderr."""
        if self.p.poll() is None:
            t = time.monotonic()
            self.p.send_signal(signal.SIGTERM)
            try:
                wait_until(lambda: self.p.poll() is not None, timeout, "zcusbd to exit after SIGTERM")
            except TestFailure:
                self.p.kill()
                self.p.wait()
                self.dump()
                raise
            took = time.monotonic() - t
        else:
            took = 0.0
        self.rc = self.p.returncode
        self.dump()
        self.err.close()
        return self.rc, took

    def dump(self):
        text = self.stderr()
        log(f"zcusbd (pid {self.p.pid}, exit {self.p.returncode}) output:\n" +
            "".join("    | " + l + "\n" for l in text.rstrip().split("\n")) if text.strip()
            else f"zcusbd (pid {self.p.pid}, exit {self.p.returncode}): no output")


# ---------------------------------------------------------------------------
# one test's world

class World:
    """testbed + bus + daemon for one test; `with World(devices) as w:` tears down,
    and checks that zcusbd exits 0 on SIGTERM."""

    def __init__(self, devices=None, config_text=TEST_CONFIG, dropins=None, start=True):
        self.workdir = tempfile.mkdtemp(prefix="zcusbtest-")
        os.chmod(self.workdir, 0o755)
        self.tb = Testbed(fixtures.standard_devices() if devices is None else devices)
        try:
            self.bus = Bus(self.workdir)
        except BaseException:
            self.tb.tb.clear()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.daemon = None
        self.bg = []
        if start:
            try:
                self.start(config_text, dropins)
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise

    def start(self, config_text=TEST_CONFIG, dropins=None, env=None):
        self.daemon = Daemon(self.bus, self.workdir, config_text, dropins=dropins, env=env).wait_ready()
        return self.daemon

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        try:
            for b in self.bg:
                b.stop()
            if self.daemon is not None and self.daemon.rc is None:
                rc, took = self.daemon.stop()
                if et is None:
                    check_eq(rc, 0, "zcusbd exit code after SIGTERM")
        finally:
            self.bus.close()
            self.tb.tb.clear()
            if os.environ.get("ZCUSBTEST_KEEP"):
                log(f"keeping {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return False

    # --- clients ---
    def ctl(self, *args, user=None, expect=0, timeout=20):
        """zcusbctl ARGS (as root, or as_user(...) prefix); checks the exit code
        when expect is not None."""
        argv = (user or []) + [exe("ZCUSBCTL")] + list(args)
        r = run(argv, env=self.bus.env(), timeout=timeout)
        if expect is not None and r.rc != expect:
            raise TestFailure(f"{' '.join(argv)}: exit {r.rc}, expected {expect}; stderr: {r.err!r}")
        return r

    def busctl(self, *args, user=None, expect=0):
        argv = (user or []) + ["busctl", f"--address={self.bus.address}"] + list(args)
        r = run(argv, env=self.bus.env())
        if expect is not None and r.rc != expect:
            raise TestFailure(f"{' '.join(argv)}: exit {r.rc}, expected {expect}; stderr: {r.err!r}")
        return r

    def call_as(self, user, path, iface, method, signature="", *args, dest=BUS_NAME):
        """A D-Bus method call to org.zcusb1 from another uid (python-dbus in a
        setpriv'ed child). Returns ("ok", reply) or ("error", error name, message)."""
        script = (
            "import dbus, json, sys\n"
            "def py(v):\n"
            "    if isinstance(v, dbus.Boolean): return bool(v)\n"
            "    if isinstance(v, (dbus.Array, dbus.Struct, list, tuple)): return [py(x) for x in v]\n"
            "    if isinstance(v, dict): return {str(k): py(x) for k, x in v.items()}\n"
            "    if isinstance(v, str): return str(v)\n"
            "    return int(v) if isinstance(v, int) else v\n"
            "a = json.loads(sys.argv[1])\n"
            "bus = dbus.bus.BusConnection(a['address'])\n"
            "try:\n"
            "    r = bus.call_blocking(a['name'], a['path'], a['iface'], a['method'], a['sig'], a['args'])\n"
            "    print(json.dumps(['ok', py(r)]))\n"
            "except dbus.DBusException as e:\n"
            "    print(json.dumps(['error', e.get_dbus_name(), e.get_dbus_message()]))\n")
        params = json.dumps({"address": self.bus.address, "name": dest, "path": path,
                             "iface": iface, "method": method, "sig": signature, "args": list(args)})
        r = run((user or []) + [sys.executable, "-c", script, params], env=self.bus.env())
        check_eq(r.rc, 0, f"python-dbus {method} call as {user}: exit code ({r.err})")
        return tuple(json.loads(r.out))

    def background(self, argv, user=None):
        b = Background((user or []) + argv, env=self.bus.env())
        self.bg.append(b)
        return b

    def wait_subscribed(self, bg, rules=1, timeout=10):
        """Wait until a background bus client has added `rules` match rules (via
        the bus's Debug.Stats; without it, wait for its connection plus 1 s)."""
        def ready():
            k = self._rules(bg)
            return k if (k == -1 or k >= rules) else 0
        n = wait_until(ready, timeout, f"pid {bg.p.pid} to add {rules} match rule(s) on the bus")
        if n == -1:
            sleep_iterating(1.0)
        sleep_iterating(0.1)

    def _rules(self, bg):
        """Match rules of bg's connection; 0 if not connected; -1 if unknowable."""
        if bg.p.poll() is not None:
            raise TestFailure(f"{bg.argv} exited early with {bg.p.returncode}")
        n = self.bus.match_rules_of(bg.p.pid)
        if n is None:
            dbo = self.bus.conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
            for name in dbo.ListNames(dbus_interface="org.freedesktop.DBus"):
                try:
                    if name.startswith(":") and dbo.GetConnectionUnixProcessID(
                            name, dbus_interface="org.freedesktop.DBus") == bg.p.pid:
                        return -1
                except dbus.DBusException:
                    pass
            return 0
        return n

    # --- python-dbus views (as root) ---
    def manager(self):
        return dbus.Interface(self.bus.conn.get_object(BUS_NAME, MANAGER_PATH), MANAGER_IFACE)

    def list_devices(self):
        return sorted(tuple(_py(x) for x in e) for e in self.manager().ListDevices())

    def device_props(self, path):
        obj = self.bus.conn.get_object(BUS_NAME, path)
        return _py(obj.GetAll(DEVICE_IFACE, dbus_interface=PROPS_IFACE))

    def managed_objects(self):
        obj = self.bus.conn.get_object(BUS_NAME, MANAGER_PATH)
        return _py(obj.GetManagedObjects(dbus_interface=OM_IFACE))


def _py(v):
    """dbus-python values -> plain python (for comparisons and messages)."""
    if isinstance(v, (dbus.Boolean,)):
        return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64)):
        return int(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, dbus.Array):
        return [_py(x) for x in v]
    if isinstance(v, dbus.Struct):
        return tuple(_py(x) for x in v)
    if isinstance(v, dbus.Dictionary):
        return {_py(k): _py(x) for k, x in v.items()}
    return v


class SignalLog:
    """Collects signals from org.zcusb1 on the root python-dbus connection."""

    def __init__(self, conn):
        self.events = []
        self._matches = []
        for iface, member in ((MANAGER_IFACE, "DeviceAdded"), (MANAGER_IFACE, "DeviceRemoved"),
                              (OM_IFACE, "InterfacesAdded"), (OM_IFACE, "InterfacesRemoved"),
                              (PROPS_IFACE, "PropertiesChanged")):
            self._matches.append(conn.add_signal_receiver(
                self._on, signal_name=member, dbus_interface=iface, bus_name=BUS_NAME,
                path_keyword="path", member_keyword="member"))
        # Device signals are unicast to subscribed peers that may see the device.
        conn.call_blocking(BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [])

    def _on(self, *args, path=None, member=None):
        ev = (member, str(path), tuple(_py(a) for a in args))
        log(f"  signal {member} {path} {ev[2]!r}"[:400])
        self.events.append(ev)

    def find(self, member, path=None, pred=None):
        return [e for e in self.events if e[0] == member and (path is None or e[1] == path)
                and (pred is None or pred(e))]

    def close(self):
        for m in self._matches:
            m.remove()


# ---------------------------------------------------------------------------
# expectations from fixtures

def expected_list_entry(d):
    """The zcusbctl --json DEVICE object (without interfaces) for a fixture."""
    return {
        "object": d.object_path, "bus": d.busnum, "address": d.devnum,
        "vendor_id": f"{d.vid:04x}", "product_id": f"{d.pid:04x}",
        "manufacturer": d.manufacturer, "product": d.product, "serial": d.serial,
        "speed": d.speed_name, "speed_mbps": d.speed_mbps, "port_path": d.sysname,
        "sysfs_path": d.sys_syspath, "device_class": d.cls,
    }


def expected_listdevices_tuple(d):
    return (d.object_path, d.vid, d.pid, d.busnum, d.devnum, d.manufacturer, d.product, d.serial)


EP_TYPES = {0: {"control"}, 1: {"isochronous", "iso"}, 2: {"bulk"}, 3: {"interrupt"}}


def check_json_interfaces(got, d, what):
    want = d.expected_interfaces()
    check(isinstance(got, list), f"{what}: interfaces is not a list: {got!r}")
    check_eq(len(got), len(want), f"{what}: number of (interface, alt) entries")
    got_sorted = sorted(got, key=lambda i: (i.get("number"), i.get("alt_setting")))
    for g, (num, alt, cls, sub, proto, driver, eps) in zip(got_sorted, want):
        w = f"{what} interface {num} alt {alt}"
        check_eq((g.get("number"), g.get("alt_setting"), g.get("class"), g.get("subclass"),
                  g.get("protocol"), g.get("driver")), (num, alt, cls, sub, proto, driver),
                 f"{w} (number, alt_setting, class, subclass, protocol, driver)")
        geps = g.get("endpoints")
        check(isinstance(geps, list), f"{w}: endpoints missing: {g!r}")
        check_eq(len(geps), len(eps), f"{w}: number of endpoints")
        for ge, (addr, attrs, mps, interval) in zip(geps, eps):
            check_eq((ge.get("address"), ge.get("max_packet_size"), ge.get("interval")),
                     (addr, mps, interval), f"{w} endpoint {addr:#04x} (address, max_packet_size, interval)")
            check_in(ge.get("type"), EP_TYPES[attrs & 3], f"{w} endpoint {addr:#04x} type")
            check_eq(ge.get("direction"), "in" if addr & 0x80 else "out",
                     f"{w} endpoint {addr:#04x} direction")


def check_dbus_device(props, d, what):
    want = {
        "VendorId": d.vid, "ProductId": d.pid, "DeviceVersion": d.bcd_device,
        "Manufacturer": d.manufacturer, "Product": d.product, "Serial": d.serial,
        "DeviceClass": d.cls, "DeviceSubClass": d.subcls, "DeviceProtocol": d.proto,
        "Speed": d.speed_name, "BusNumber": d.busnum,
        "DeviceAddress": d.devnum, "PortPath": d.sysname, "SysfsPath": d.sys_syspath,
        "ActiveConfiguration": d.active_config, "SpeedKbps": d.speed_kbps,
    }
    for k, v in want.items():
        check(k in props, f"{what}: property {k} missing (have {sorted(props)})")
        check_eq(props[k], v, f"{what}: property {k}")
    check(("Interfaces" in props), f"{what}: property Interfaces missing")
    got = sorted((n, a, c, s, p, drv, [tuple(e) for e in eps])
                 for (n, a, c, s, p, drv, eps) in props["Interfaces"])
    want_if = sorted((n, a, c, s, p, drv, [tuple(e) for e in eps])
                     for (n, a, c, s, p, drv, eps) in d.expected_interfaces())
    check_eq(got, want_if, f"{what}: property Interfaces")


# ---------------------------------------------------------------------------
# test registry

TESTS = {}


def test(name):
    def deco(fn):
        TESTS[name] = fn
        return fn
    return deco


@test("list")
def t_list():
    devs = fixtures.standard_devices()
    with World(devs) as w:
        r = w.ctl("list", "--json")
        got = r.json()
        check(isinstance(got, list), f"list --json is not an array: {got!r}")
        check_eq(len(got), 3, "number of devices in list --json")
        by_obj = {e.get("object"): e for e in got}
        for d in devs:
            check(d.object_path in by_obj, f"{d.object_path} missing from list --json: {list(by_obj)}")
            e = by_obj[d.object_path]
            check("interfaces" not in e, f"list --json entry has 'interfaces': {e!r}")
            for k, v in expected_list_entry(d).items():
                check_eq(e.get(k), v, f"list --json {d.object_path} field {k!r}")

        # --json before the command must work too (zcusbctl [--json] COMMAND)
        check_eq(w.ctl("--json", "list").json(), got, "zcusbctl --json list vs list --json")
        # --bus-address instead of DBUS_SYSTEM_BUS_ADDRESS
        env = w.bus.env()
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={w.workdir}/nonexistent"
        r = run([exe("ZCUSBCTL"), f"--bus-address={w.bus.address}", "list", "--json"], env=env)
        check_eq((r.rc, r.json() if r.rc == 0 else None), (0, got), "zcusbctl --bus-address=ADDR list --json")

        r = w.ctl("list")
        lines = [l for l in r.out.split("\n") if l.strip()]
        check_eq(len(lines), 4, "plain list: header + 3 rows")
        check(re.match(r"^BUS:ADDR\s+VID:PID\s+SPEED\s+OBJECT\s+PRODUCT\s*$", lines[0]),
              f"plain list header: {lines[0]!r}")
        for d in devs:
            row = [l for l in lines[1:] if f" {d.object_path} " in l + " "]
            check(len(row) == 1, f"plain list: no single row for {d.object_path}: {lines}")
            cols = row[0].split(None, 4)
            check_eq(cols[:4], [f"{d.busnum:03d}:{d.devnum:03d}", f"{d.vid:04x}:{d.pid:04x}",
                                d.speed_name, d.object_path], f"plain list row {row[0]!r}")
            check_eq(cols[4].strip() if len(cols) > 4 else "", d.product, f"plain list row {row[0]!r} PRODUCT")

        r = w.busctl("--json=short", "call", BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListDevices")
        j = r.json()
        check_eq(j.get("type"), "a(oqqqqsss)", "busctl ListDevices reply signature")
        got_bus = sorted(tuple(x) for x in j["data"][0])
        check_eq(got_bus, sorted(expected_listdevices_tuple(d) for d in devs), "busctl ListDevices")
        check_eq(w.list_devices(), got_bus, "python-dbus ListDevices vs busctl")

        # GetDevice(bus, addr) -> object
        for d in devs:
            check_eq(str(w.manager().GetDevice(dbus.UInt16(d.busnum), dbus.UInt16(d.devnum))),
                     d.object_path, f"GetDevice({d.busnum}, {d.devnum})")
        try:
            w.manager().GetDevice(dbus.UInt16(1), dbus.UInt16(99))
            raise TestFailure("GetDevice(1, 99) succeeded")
        except dbus.DBusException as e:
            check_eq(e.get_dbus_name(), "org.zcusb1.Error.NoSuchDevice", "GetDevice(1, 99) error")


@test("info")
def t_info():
    devs = fixtures.standard_devices(hub_props={"ZCUSB_ENABLE": "0"})
    hub, gz, kbd = devs
    with World(devs) as w:
        ref = w.ctl("info", "--json", "001:003").json()
        for k, v in expected_list_entry(gz).items():
            check_eq(ref.get(k), v, f"info --json 001:003 field {k!r}")
        check_json_interfaces(ref.get("interfaces"), gz, "info 001:003")
        alts = sorted((i["number"], i["alt_setting"]) for i in ref["interfaces"])
        check_eq(alts, [(0, 0), (0, 1)], "gadget interfaces (number, alt)")
        # root may claim whatever is not ZCUSB_ENABLE=0
        check_eq(ref.get("may_claim"), True, "info 001:003 may_claim (root)")
        check_eq(ref.get("claimable_interfaces"), [0], "info 001:003 claimable_interfaces (root)")

        for spec in ["1:3", "001:3", "0525:a4a0", f"0525:a4a0:{gz.serial}", gz.object_path,
                     "/sys/bus/usb/devices/1-1", gz.sys_syspath]:
            got = w.ctl("--json", "info", spec).json()
            check_eq(got, ref, f"info {spec} resolves to the same device")

        r = w.ctl("info", "001:003")
        check_in("Gadget Zero", r.out, "plain info output")
        check_in("0525", r.out, "plain info output")

        k = w.ctl("info", "--json", "001:004").json()
        for key, v in expected_list_entry(kbd).items():
            check_eq(k.get(key), v, f"info 001:004 field {key!r}")
        check_json_interfaces(k.get("interfaces"), kbd, "info 001:004")
        check_eq(k["interfaces"][0]["driver"], "usbhid", "HID interface driver")
        check_eq(k["interfaces"][0]["endpoints"],
                 [{"address": 0x81, "type": "interrupt", "direction": "in", "max_packet_size": 8,
                   "interval": 10}], "HID endpoints")
        check_eq(k.get("serial"), "", "HID serial (absent)")

        h = w.ctl("info", "--json", "001:001").json()
        check_json_interfaces(h.get("interfaces"), hub, "info 001:001")
        check_eq(h.get("may_claim"), False, "root hub with ZCUSB_ENABLE=0: may_claim (root)")
        check_eq(h.get("claimable_interfaces"), [], "root hub with ZCUSB_ENABLE=0: claimable")

        # the D-Bus properties carry the same facts
        for d in devs:
            check_dbus_device(w.device_props(d.object_path), d, d.object_path)


@test("bad-device")
def t_bad_device():
    with World() as w:
        cases = [
            ("zz:1", {2}), ("1:", {2}), (":3", {2}), ("", {2}), ("1:2:3", {2}),
            ("0001:0003", {3}),           # VID:PID form, no such device
            ("9999:1", {2}),              # neither BUS:ADDR (<=3 digits) nor VID:PID (4 hex)
            ("1234:12345", {2}), ("001:0003", {2}), ("1:-3", {2}),
            ("/org/zcusb1/device/nope", {2, 3}),
            ("/org/zcusb1/device/usb1_99", {3}),
            ("/org/zcusb1/device/usb1_3/../usb1_4", {2}),
            ("001:099", {3}), ("9:1", {3}),
            ("0525:a4a0:no-such-serial", {3}), ("dead:beef", {3}),
            ("/sys/bus/usb/devices/9-9", {3}), ("/sys/devices/nope", {3}),
            ("/sys/bus/usb/devices/1-1:1.0", {2, 3}),  # an interface, not a device
            ("/org/zcusb1", {2, 3}),
        ]
        bad = []
        for spec, codes in cases:
            r = w.ctl("info", spec, expect=None)
            ok = r.rc in codes and r.err.startswith("zcusbctl: ") and r.out == ""
            if not ok:
                bad.append(f"info {spec!r}: exit {r.rc} (want {sorted(codes)}), stdout {r.out!r}, "
                           f"stderr {r.err!r}")
        r = w.ctl("info", expect=None)
        if r.rc != 2 or not r.err.startswith("zcusbctl: "):
            bad.append(f"info without DEVICE: exit {r.rc}, stderr {r.err!r}")
        r = w.ctl("frobnicate", expect=None)
        if r.rc != 2 or not r.err.startswith("zcusbctl: "):
            bad.append(f"unknown command: exit {r.rc}, stderr {r.err!r}")
        r = w.ctl("--no-such-option", "list", expect=None)
        if r.rc != 2:
            bad.append(f"unknown option: exit {r.rc}, stderr {r.err!r}")
        # unreachable bus -> 5
        r = run([exe("ZCUSBCTL"), f"--bus-address=unix:path={w.workdir}/nonexistent", "list"],
                env=w.bus.env())
        if r.rc != 5 or not r.err.startswith("zcusbctl: "):
            bad.append(f"unreachable bus: exit {r.rc} (want 5), stderr {r.err!r}")

        # the daemon keeps serving
        check_eq(len(w.ctl("list", "--json").json()), 3, "list after bad requests")
        check(w.daemon.p.poll() is None, "zcusbd died")
        check(not bad, "bad DEVICE handling:\n  " + "\n  ".join(bad))


def _check_managed_objects(w, devs):
    mo = w.managed_objects()
    for d in devs:
        check(d.object_path in mo, f"GetManagedObjects lacks {d.object_path}: {list(mo)}")
        check(DEVICE_IFACE in mo[d.object_path],
              f"{d.object_path} lacks {DEVICE_IFACE} in GetManagedObjects: {list(mo[d.object_path])}")
        check_dbus_device(mo[d.object_path][DEVICE_IFACE], d, f"GetManagedObjects {d.object_path}")
    extra = [p for p in mo if p.startswith("/org/zcusb1/device/") and
             p not in {d.object_path for d in devs}]
    check(not extra, f"GetManagedObjects has unexpected objects {extra}")


@test("managed-objects")
def t_managed_objects():
    devs = fixtures.standard_devices()
    with World(devs) as w:
        with soft("busctl tree"):
            r = w.busctl("tree", "--list", BUS_NAME)
            paths = set(r.out.split())
            for d in devs:
                check_in(d.object_path, paths, "busctl tree --list")
            check_in(MANAGER_PATH, paths, "busctl tree --list")
            r = w.busctl("tree", BUS_NAME)
            for d in devs:
                check_in(d.object_path.rsplit("/", 1)[1], r.out, "busctl tree")

        with soft("GetManagedObjects"):
            _check_managed_objects(w, devs)

        r = w.busctl("introspect", BUS_NAME, MANAGER_PATH)
        for m in ("ListDevices", "GetDevice", "DeviceAdded", "DeviceRemoved", "Backend", "Version"):
            check_in(m, r.out, "busctl introspect /org/zcusb1")
        r = w.busctl("introspect", BUS_NAME, devs[1].object_path, DEVICE_IFACE)
        for m in ("GetAccess", "VendorId", "Interfaces", "SysfsPath"):
            check_in(m, r.out, f"busctl introspect {devs[1].object_path}")
        r = w.busctl("get-property", BUS_NAME, devs[1].object_path, DEVICE_IFACE, "VendorId")
        check_eq(r.out.strip(), "q 1317", "busctl get-property VendorId")


@test("hotplug")
def t_hotplug():
    devs = fixtures.standard_devices()
    gz = devs[1]
    with World(devs) as w:
        sigs = SignalLog(w.bus.conn)
        mon = w.background([exe("ZCUSBCTL"), "monitor", "--json"])
        w.wait_subscribed(mon)
        mon_plain = w.background([exe("ZCUSBCTL"), "monitor"])
        w.wait_subscribed(mon_plain)

        new = fixtures.loopback_two_configs(devnum=5, port="3")
        w.tb.plug(new)
        wait_until(lambda: sigs.find("DeviceAdded", MANAGER_PATH,
                                     lambda e: e[2] == (new.object_path,)), 5, "DeviceAdded")
        wait_until(lambda: any('"added"' in l and new.object_path in l for l in mon.lines), 5,
                   "zcusbctl monitor --json to print the addition")
        wait_until(lambda: any(l.startswith("added") and new.object_path in l for l in mon_plain.lines),
                   5, "zcusbctl monitor to print the addition")
        wait_until(lambda: sigs.find("InterfacesAdded", MANAGER_PATH,
                                     lambda e: e[2][0] == new.object_path), 5, "InterfacesAdded")
        check_eq(len(sigs.find("DeviceAdded")), 1, "exactly one DeviceAdded for one plug")
        ev = json.loads(next(l for l in mon.lines if new.object_path in l))
        check_eq(ev.get("event"), "added", "monitor event")
        for k, v in expected_list_entry(new).items():
            check_eq(ev.get(k), v, f"monitor added event field {k!r}")
        plain = next(l for l in mon_plain.lines if new.object_path in l)
        check(re.match(rf"^added\s+{re.escape(new.object_path)}\s+0525:a4a4\s+Loopback Two Configs\s*$", plain),
              f"plain monitor line {plain!r}")
        check_eq(w.list_devices(), sorted(expected_listdevices_tuple(d) for d in devs + [new]),
                 "ListDevices after plug")
        # the active configuration is the SECOND one in `descriptors` (value 2)
        check_dbus_device(w.device_props(new.object_path), new, f"hot-plugged {new.object_path}")
        info = w.ctl("info", "--json", "001:005").json()
        check_json_interfaces(info["interfaces"], new, "info 001:005 (config 2 of 2)")

        # unplug
        w.tb.unplug(new)
        wait_until(lambda: sigs.find("DeviceRemoved", MANAGER_PATH,
                                     lambda e: e[2] == (new.object_path,)), 5, "DeviceRemoved")
        wait_until(lambda: any('"removed"' in l and new.object_path in l for l in mon.lines), 5,
                   "zcusbctl monitor --json to print the removal")
        wait_until(lambda: any(l.split() == ["removed", new.object_path] for l in mon_plain.lines), 5,
                   "zcusbctl monitor to print the removal")
        with soft("ObjectManager.InterfacesRemoved on unplug"):
            wait_until(lambda: sigs.find("InterfacesRemoved", MANAGER_PATH,
                                         lambda e: e[2][0] == new.object_path), 2, "InterfacesRemoved")
        ev = json.loads(next(l for l in mon.lines if '"removed"' in l))
        check_eq(ev, {"event": "removed", "object": new.object_path}, "monitor removed event")
        check_eq(w.list_devices(), sorted(expected_listdevices_tuple(d) for d in devs),
                 "ListDevices after unplug")
        try:
            obj = w.bus.conn.get_object(BUS_NAME, new.object_path)
            obj.GetAccess(dbus_interface=DEVICE_IFACE)
            raise TestFailure(f"GetAccess on removed {new.object_path} succeeded")
        except dbus.DBusException as e:
            check_eq(e.get_dbus_name(), "org.zcusb1.Error.NoSuchDevice", "GetAccess on a removed device")
        w.ctl("info", new.object_path, expect=3)

        # replug: the same device comes back with a new address -> a new object
        again = fixtures.loopback_two_configs(devnum=6, port="3")
        w.tb.plug(again)
        wait_until(lambda: sigs.find("DeviceAdded", MANAGER_PATH,
                                     lambda e: e[2] == (again.object_path,)), 5, "DeviceAdded (replug)")
        check(again.object_path != new.object_path, "replug gets a new object")
        w.ctl("info", new.object_path, expect=3)
        w.ctl("info", again.object_path)

        # interface driver bind / unbind -> PropertiesChanged(Interfaces) on the device
        before = len(sigs.find("PropertiesChanged", gz.object_path))
        w.tb.set_driver(gz, 0, "usbtest")

        def iface_change(e):
            iface, changed, invalidated = e[2]
            return iface == DEVICE_IFACE and ("Interfaces" in changed or "Interfaces" in invalidated)
        wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                   "PropertiesChanged(Interfaces) after bind")
        wait_until(lambda: all(i[5] == "usbtest" for i in w.device_props(gz.object_path)["Interfaces"]),
                   5, "Interfaces driver = usbtest")
        check_dbus_device(w.device_props(gz.object_path), gz, "after bind")
        check_eq([i["driver"] for i in w.ctl("info", "--json", "001:003").json()["interfaces"]],
                 ["usbtest", "usbtest"], "info drivers after bind")
        before = len(sigs.find("PropertiesChanged", gz.object_path, iface_change))
        w.tb.set_driver(gz, 0, None)
        wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                   "PropertiesChanged(Interfaces) after unbind")
        check_dbus_device(w.device_props(gz.object_path), gz, "after unbind")

        # a udev property of the interface changes (rules edited + udevadm trigger):
        # the interface opts out; PropertiesChanged(Interfaces) tells clients
        before = len(sigs.find("PropertiesChanged", gz.object_path, iface_change))
        w.tb.set_uevent_prop("/sys" + gz.interface_syspath(0), "ZCUSB_ENABLE", "0")
        w.tb.uevent("/sys" + gz.interface_syspath(0), "change")
        wait_until(lambda: len(sigs.find("PropertiesChanged", gz.object_path, iface_change)) > before, 5,
                   "PropertiesChanged(Interfaces) after an interface change event")
        i = w.ctl("info", "--json", "001:003").json()
        check_eq((i["may_claim"], i["claimable_interfaces"]), (False, []),
                 "root's access after the interface got ZCUSB_ENABLE=0")

        check_eq(len(sigs.find("DeviceRemoved")), 1, "exactly one DeviceRemoved")
        for b in (mon, mon_plain):
            check(b.p.poll() is None, f"{b.argv} exited early")
            check_eq(b.stop(signal.SIGINT), 0, f"{b.argv} exit code after SIGINT")
        w.bg.clear()
        sigs.close()


# A bus peer in a child process (as another uid): it holds N connections,
# makes the calls it is told, prints each answer and every signal it receives
# as a JSON line, and stays connected until it is stopped.
_PEER_SCRIPT = r"""
import dbus, dbus.mainloop.glib, json, sys
from gi.repository import GLib
a = json.loads(sys.argv[1])
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
conns = [dbus.bus.BusConnection(a["address"]) for _ in range(a["connections"])]
def out(*v):
    print(json.dumps(v), flush=True)
def on_signal(*args, **kw):
    out("signal", kw["member"], str(kw["path"]), json.dumps([str(x) for x in args])[:2000])
for i, c in enumerate(conns):
    if a.get("listen"):
        # what any peer may add: every signal from org.zcusb1
        c.add_signal_receiver(on_signal, sender_keyword="sender", path_keyword="path",
                              member_keyword="member", bus_name="org.zcusb1")
    for path, iface, method, sig, args in a["calls"]:
        try:
            c.call_blocking("org.zcusb1", path, iface, method, sig, args)
            out("ok", i, method)
        except dbus.DBusException as e:
            out("error", i, method, e.get_dbus_name())
out("ready")
GLib.MainLoop().run()
"""


def bus_peer(w, user, connections=1, calls=(), listen=False):
    """Start _PEER_SCRIPT as USER (an as_user() prefix, None = root) and wait
    for its calls to be answered. Returns the Background; .answers() parses."""
    params = json.dumps({"address": w.bus.address, "connections": connections, "listen": listen,
                         "calls": [list(c) for c in calls]})
    b = Background((user or []) + [sys.executable, "-c", _PEER_SCRIPT, params], env=w.bus.env())
    w.bg.append(b)
    wait_until(lambda: b.p.poll() is not None or '["ready"]' in b.lines, 30, f"bus peer {user} to be ready")
    check(b.p.poll() is None, f"bus peer {user} exited early ({b.p.returncode})")
    return b


def peer_events(b, kind):
    return [json.loads(l) for l in b.lines if l.startswith(f'["{kind}"')]


@test("client-limits")
def t_client_limits():
    """zcusbd bounds the peers it keeps state for itself (ClientsPerUser=,
    ClientsGlobal=; root exempt), a refused claim leaves nothing behind, and
    zcusbd's bus connection holds the same few match rules however many peers
    come: no number of peers can make the bus daemon drop zcusbd."""
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody,daemon")
    config = TEST_CONFIG + "[Quota]\nClientsPerUser=3\nClientsGlobal=5\n"
    sub = (MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [])
    # refused by claim_new(), after the caller became a peer: no interface 9
    claim = (MANAGER_PATH, MANAGER_IFACE, "ClaimInterface", "oy", [gz.object_path, 9])
    with World([gz], config_text=config) as w:
        rules_before = w.bus.match_rules_of(w.daemon.p.pid)
        refused = bus_peer(w, as_user(), connections=12, calls=[claim])
        check_eq(sorted({e[3] for e in peer_events(refused, "error")}), ["org.zcusb1.Error.InvalidArgument"],
                 "12 refused claims of one uid: InvalidArgument each, never a limit")
        check_eq(len(peer_events(refused, "error")), 12, "answers to 12 refused claims")
        # ... and they left nothing: the uid still has all three of its places
        ok = bus_peer(w, as_user(), connections=4, calls=[sub])
        check_eq([e[1] for e in peer_events(ok, "ok")], [0, 1, 2], "the uid's first three subscriptions")
        check_eq([(e[1], e[3]) for e in peer_events(ok, "error")], [(3, "org.zcusb1.Error.QuotaExceeded")],
                 "its fourth connection (ClientsPerUser=3)")
        other = bus_peer(w, as_user(1, 1), connections=3, calls=[sub])
        check_eq([e[1] for e in peer_events(other, "ok")], [0, 1], "another uid's first two (5 in all)")
        check_eq([(e[1], e[3]) for e in peer_events(other, "error")], [(2, "org.zcusb1.Error.QuotaExceeded")],
                 "beyond ClientsGlobal=5")
        root = bus_peer(w, None, connections=8, calls=[sub])
        check_eq(len(peer_events(root, "ok")), 8, "root is never refused for being one peer too many")
        if rules_before is not None:
            check_eq(w.bus.match_rules_of(w.daemon.p.pid), rules_before,
                     "zcusbd's match rules on the bus after 30 peers")
        # a peer that leaves makes room
        ok.stop()
        w.bg.remove(ok)
        again = bus_peer(w, as_user(), connections=3, calls=[sub])
        check_eq(len(peer_events(again, "ok")), 3, "the uid's places after its peers left")
        check(w.daemon.p.poll() is None, "zcusbd still runs")


@test("signal-scope")
def t_signal_scope():
    """Device signals reach only subscribed peers that may see the device; a
    peer of another uid learns nothing of devices it may not see, whether it
    subscribed or only added a match rule."""
    seen = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
    with World([seen]) as w:
        sub = (MANAGER_PATH, MANAGER_IFACE, "Subscribe", "", [])
        nobody = bus_peer(w, as_user(), calls=[sub], listen=True)
        stranger = bus_peer(w, as_user(1, 1), calls=[sub], listen=True)
        eavesdropper = bus_peer(w, as_user(2, 2), listen=True)  # a match rule, no Subscribe
        sigs = SignalLog(w.bus.conn)  # root: subscribed, sees everything

        hidden = fixtures.loopback_two_configs(devnum=5, port="3")  # no ZCUSB_* properties
        shown = fixtures.gadget_zero(devnum=6, port="4", ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
        for d in (hidden, shown):
            w.tb.plug(d)
            wait_until(lambda: sigs.find("DeviceAdded", MANAGER_PATH, lambda e: e[2] == (d.object_path,)), 5,
                       f"root's DeviceAdded for {d.object_path}")
        wait_until(lambda: any(e[1] == "DeviceAdded" and shown.object_path in e[3]
                               for e in peer_events(nobody, "signal")), 5, "nobody's DeviceAdded for its device")
        for d in (hidden, shown):
            w.tb.set_uevent_prop(d.sys_syspath, "ZCUSB_SERIAL_NOTE", "x")
            w.tb.uevent(d.sys_syspath, "change")
        for d in (hidden, shown):
            w.tb.unplug(d)
            wait_until(lambda: sigs.find("DeviceRemoved", MANAGER_PATH, lambda e: e[2] == (d.object_path,)), 5,
                       f"root's DeviceRemoved for {d.object_path}")
        wait_until(lambda: any(e[1] == "DeviceRemoved" and shown.object_path in e[3]
                               for e in peer_events(nobody, "signal")), 5, "nobody's DeviceRemoved")
        sleep_iterating(0.3)
        told = peer_events(nobody, "signal")
        check(not [e for e in told if hidden.object_path in e[2] + e[3]],
              f"nobody was told of a device it may not see: {told}")
        check({e[1] for e in told} >= {"DeviceAdded", "InterfacesAdded", "DeviceRemoved", "InterfacesRemoved"},
              f"nobody's signals about its own device: {sorted({e[1] for e in told})}")
        added = next(e for e in told if e[1] == "InterfacesAdded")
        check_in("VendorId", added[3], "InterfacesAdded carries the device's properties")
        check_eq(peer_events(stranger, "signal"), [], "signals to a subscribed uid that may see nothing")
        check_eq(peer_events(eavesdropper, "signal"), [], "signals to a peer that only added a match rule")
        check(sigs.find("InterfacesAdded", MANAGER_PATH, lambda e: e[2][0] == hidden.object_path),
              "root (subscribed) hears of every device")
        sigs.close()


def _policy_view(w, user, what):
    r = w.ctl("list", "--json", user=user)
    return sorted(e["object"] for e in r.json())


@test("policy")
def t_policy():
    # variant 1: one user allowed on the gadget (by name); hub default ENABLE=0; HID nothing
    hub = fixtures.root_hub(ZCUSB_ENABLE="0")
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="nobody")
    kbd = fixtures.hid_keyboard()
    nobody = as_user()
    with World([hub, gz, kbd]) as w:
        check_eq(_policy_view(w, nobody, "nobody"), [gz.object_path], "nobody's list")
        check_eq(_policy_view(w, None, "root"), sorted(d.object_path for d in (hub, gz, kbd)), "root's list")
        r = w.ctl("info", "001:004", user=nobody, expect=4)
        check(r.err.startswith("zcusbctl: ") and re.search(r"access denied|AccessDenied", r.err, re.I),
              f"info 001:004 as nobody: stderr {r.err!r}")
        check_eq(r.out, "", "info 001:004 as nobody: stdout")
        w.ctl("info", "001:001", user=nobody, expect=4)
        w.ctl("info", "001:099", user=nobody, expect=3)
        info = w.ctl("info", "--json", "001:003", user=nobody).json()
        check_eq((info.get("may_claim"), info.get("claimable_interfaces")), (True, [0]),
                 "nobody's access to the gadget via info")
        # GetAccess over the bus, as nobody
        r = w.busctl("--json=short", "call", BUS_NAME, gz.object_path, DEVICE_IFACE, "GetAccess",
                     user=nobody)
        j = r.json()
        check_eq(j.get("type"), "bay", "GetAccess reply signature")
        check_eq(j["data"], [True, [0]], "GetAccess (may_claim, claimable_interfaces) for nobody on the gadget")
        r = w.call_as(nobody, kbd.object_path, DEVICE_IFACE, "GetAccess")
        check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetAccess on the HID as nobody")
        r = w.call_as(nobody, kbd.object_path, PROPS_IFACE, "GetAll", "s", DEVICE_IFACE)
        check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetAll on the HID as nobody")
        r = w.call_as(nobody, "/org/zcusb1/device/usb1_99", DEVICE_IFACE, "GetAccess")
        check_eq(r[:2], ("error", "org.zcusb1.Error.NoSuchDevice"), "GetAccess on usb1_99 as nobody")
        r = w.call_as(nobody, gz.object_path, DEVICE_IFACE, "GetAccess")
        check_eq(r, ("ok", [True, [0]]), "GetAccess on the gadget as nobody (python-dbus)")
        r = w.busctl("--json=short", "call", BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListDevices",
                     user=nobody)
        check_eq([e[0] for e in r.json()["data"][0]], [gz.object_path], "ListDevices as nobody")
        r = w.call_as(nobody, MANAGER_PATH, MANAGER_IFACE, "GetDevice", "qq", 1, 4)
        check_eq(r[:2], ("error", "org.zcusb1.Error.AccessDenied"), "GetDevice(1, 4) as nobody")
        r = w.call_as(nobody, MANAGER_PATH, MANAGER_IFACE, "GetDevice", "qq", 1, 3)
        check_eq(r, ("ok", gz.object_path), "GetDevice(1, 3) as nobody")
        with soft("GetManagedObjects as nobody"):
            r = w.call_as(nobody, MANAGER_PATH, OM_IFACE, "GetManagedObjects")
            check_eq(sorted(r[1]) if r[0] == "ok" else r, [gz.object_path], "GetManagedObjects as nobody")
        with soft("busctl tree as nobody"):
            r = w.busctl("tree", "--list", BUS_NAME, user=nobody, expect=None)
            paths = set(r.out.split())
            check(r.rc == 0 and gz.object_path in paths and kbd.object_path not in paths
                  and hub.object_path not in paths,
                  f"busctl tree as nobody: exit {r.rc}, should show exactly the gadget: {r.out!r}")
        # the project's bus policy: only root may own org.zcusb1
        r = w.call_as(nobody, "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su",
                      BUS_NAME, 0, dest="org.freedesktop.DBus")
        check_eq(r[:2], ("error", "org.freedesktop.DBus.Error.AccessDenied"), "RequestName org.zcusb1 as nobody")

        # live policy change on the device (rules edited + udevadm trigger -> "change")
        w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_USERS", "root")
        w.tb.uevent(gz.sys_syspath, "change")
        wait_until(lambda: _policy_view(w, nobody, "nobody") == [], 5,
                   "nobody to lose the gadget after a change event", interval=0.2)
        w.ctl("info", "001:003", user=nobody, expect=4)
        w.tb.set_uevent_prop(gz.sys_syspath, "ZCUSB_ALLOW_USERS", "nobody")
        w.tb.uevent(gz.sys_syspath, "change")
        wait_until(lambda: _policy_view(w, nobody, "nobody") == [gz.object_path], 5,
                   "nobody to get the gadget back after a change event", interval=0.2)

        # another unprivileged user sees nothing (an existing one: dbus-daemon drops
        # connections from uids without a passwd entry)
        other = as_user(uid=1, gid=1)  # "daemon"
        check_eq(_policy_view(w, other, "uid 1"), [], "uid 1's list")
        w.ctl("info", "001:003", user=other, expect=4)

    # variant 2: groups (numeric gid on the gadget, a group name on the HID); the
    # caller's groups are its bus credentials (setpriv --groups), not /etc/group
    gz = fixtures.gadget_zero(ZCUSB_ENABLE="1", ZCUSB_ALLOW_GROUPS="4242")
    kbd = fixtures.hid_keyboard(ZCUSB_ENABLE="1", ZCUSB_ALLOW_GROUPS="users, plugdev")
    with World([hub, gz, kbd]) as w, soft("group policy from bus credentials"):
        check_eq(_policy_view(w, as_user(groups=None), "nobody"), [], "nobody without groups")
        check_eq(_policy_view(w, as_user(groups=[4242]), "nobody+4242"), [gz.object_path],
                 "nobody with supplementary group 4242")
        plugdev = 46
        check_eq(_policy_view(w, as_user(groups=[4242, plugdev]), "nobody+4242,46"),
                 sorted([gz.object_path, kbd.object_path]), "nobody with groups 4242 and plugdev")
        check_eq(_policy_view(w, as_user(groups=[100]), "nobody+users"), [kbd.object_path],
                 "nobody with group users")
        w.ctl("info", "001:003", user=as_user(groups=[plugdev]), expect=4)
        i = w.ctl("info", "--json", "001:004", user=as_user(groups=[plugdev])).json()
        check_eq((i["may_claim"], i["claimable_interfaces"]), (True, [0]), "HID access via plugdev")

    # variant 3: an interface's property overrides the device's; numeric uid; ENABLE missing
    gz = fixtures.gadget_zero(ZCUSB_ALLOW_USERS="65534")                  # no ENABLE: not offered
    kbd = fixtures.hid_keyboard(ZCUSB_ENABLE="1", ZCUSB_ALLOW_USERS="root,65534",
                                iface_props={"ZCUSB_ENABLE": "0"})       # interface opts out
    with World([hub, gz, kbd]) as w:
        check_eq(_policy_view(w, nobody, "nobody"), [], "nobody: ENABLE unset / interface ENABLE=0")
        i = w.ctl("info", "--json", "001:004").json()
        check_eq((i["may_claim"], i["claimable_interfaces"]), (False, []),
                 "root on an interface with ZCUSB_ENABLE=0")
        i = w.ctl("info", "--json", "001:003").json()
        check_eq((i["may_claim"], i["claimable_interfaces"]), (True, [0]), "root, ENABLE unset")


CONFIG_MB = 1024 * 1024


def _bad_config(workdir, name, text, dropins=None):
    """Start zcusbd with a bad config: it must exit non-zero at once, without
    taking the bus name, and say FILE:LINE: on stderr. Returns its stderr."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    for dname, dtext in (dropins or {}).items():
        os.makedirs(path + ".d", exist_ok=True)
        with open(os.path.join(path + ".d", dname), "w") as f:
            f.write(dtext)
    return path


@test("config-errors")
def t_config_errors():
    with World(start=False) as w:
        bad = []
        cases = [
            # (file name, text, drop-ins, file named in the error, line, words the message must name)
            ("badkey.conf", "[Quota]\nBytesPerClient=1M\nFrobnicate=1\n", None, None, 3, ["Frobnicate"]),
            ("badvalue.conf", "# comment\n[Quota]\nBytesPerClient=12Q\n", None, None, 3, ["12Q"]),
            ("badsection.conf", "[Daemon]\nLogLevel=info\n\n[Bogus]\nX=1\n", None, None, (4, 5), ["Bogus"]),
            ("nosection.conf", "BytesPerClient=1M\n", None, None, 1, ["BytesPerClient"]),
            ("badcount.conf", "[Quota]\nClaimsPerClient=-1\n", None, None, 2, ["-1"]),
            ("badbool.conf", "[Daemon]\nLoadModule=perhaps\n", None, None, 2, ["perhaps"]),
            ("badbackend.conf", "[Daemon]\nBackend=floppy\n", None, None, 2, ["floppy"]),
            ("empty.conf", "[Quota]\nBytesGlobal=\n", None, None, 2, ["BytesGlobal"]),
            ("syntax.conf", "[Quota\n", None, None, 1, []),
            ("dropin.conf", "[Quota]\nBytesPerClient=1M\n",
             {"10-ok.conf": "[Quota]\nBytesPerUser=2M\n", "20-bad.conf": "\n[Quota]\nQueuesPerClient=many\n"},
             "dropin.conf.d/20-bad.conf", 3, ["many"]),
        ]
        for name, text, dropins, errfile, line, words in cases:
            path = _bad_config(w.workdir, name, text, dropins)
            errfile = os.path.join(w.workdir, errfile) if errfile else path
            argv = [exe("ZCUSBD"), f"--bus-address={w.bus.address}", f"--config={path}"]
            t = time.monotonic()
            r = run(argv, env=w.bus.env(), timeout=10)
            took = time.monotonic() - t
            lines = (line,) if isinstance(line, int) else line
            problems = []
            if took > 2:
                problems.append(f"took {took:.1f}s")
            if not any(f"{errfile}:{n}: " in r.err for n in lines):
                problems.append(f"stderr lacks '{errfile}:{lines}: '")
            for word in words:
                if word not in r.err:
                    problems.append(f"stderr does not name {word!r}")
            if w.bus.has_owner():
                problems.append(f"{BUS_NAME} is owned")
            if r.rc != 78:
                problems.append(f"exit {r.rc}, not EX_CONFIG (78) as 'zcusbd --help' documents")
            if problems:
                bad.append(f"{name}: {', '.join(problems)}; stderr {r.err!r}")
        # an explicitly named config file that does not exist is an error too
        missing = os.path.join(w.workdir, "missing.conf")
        r = run([exe("ZCUSBD"), f"--bus-address={w.bus.address}", f"--config={missing}"], env=w.bus.env())
        if r.rc == 0 or missing not in r.err:
            bad.append(f"missing --config file: exit {r.rc}, stderr {r.err!r}")
        check(not bad, "bad configurations not rejected properly:\n  " + "\n  ".join(bad))

        # drop-ins: PATH.d/*.conf in lexical order, later wins; other names ignored
        w.start(TEST_CONFIG + "[Quota]\nBytesPerClient=1M\nClaimsPerClient=3\n",
                dropins={"50-a.conf": "[Quota]\nBytesPerClient=5M\nBuffersPerClient=7\n",
                         "60-b.conf": "[Quota]\nBytesPerClient=3M\n",
                         "70-ignored.conf.disabled": "[Quota]\nBytesPerClient=9M\n",
                         "README": "not a config file\n"})
        st = w.ctl("status", "--json").json()
        check_eq(set(st), {"version", "backend", "module_version", "quota"}, "status --json keys")
        check_eq(st["backend"], "usbfs", "status backend")
        check_eq(st["module_version"], "", "status module_version without zcusb.ko")
        q = st["quota"]
        want = {"bytes_per_client": 3 * CONFIG_MB, "bytes_per_user": 512 * CONFIG_MB,
                "bytes_global": 2048 * CONFIG_MB, "claims_per_client": 3, "buffers_per_client": 7,
                "queues_per_client": 8, "in_flight_per_client": 512}
        check_eq(q, want, "status --json quota with drop-ins")
        mgr = w.bus.conn.get_object(BUS_NAME, MANAGER_PATH)
        props = _py(mgr.GetAll(MANAGER_IFACE, dbus_interface=PROPS_IFACE))
        check_eq((props.get("QuotaBytesPerClient"), props.get("MaxClaimsPerClient"),
                  props.get("MaxBuffersPerClient"), props.get("Backend"), props.get("ModuleVersion")),
                 (3 * CONFIG_MB, 3, 7, "usbfs", ""), "Manager properties with drop-ins")
        check_eq(st["version"], props.get("Version"), "status version vs Version property")
        r = w.ctl("status")
        check_in("usbfs", r.out, "plain status")


@test("sigterm")
def t_sigterm():
    with World() as w:
        # a client with a signal subscription and a monitor must not delay the exit
        sigs = SignalLog(w.bus.conn)
        mon = w.background([exe("ZCUSBCTL"), "monitor", "--json"])
        w.wait_subscribed(mon)
        w.ctl("list")
        rc, took = w.daemon.stop()
        check_eq(rc, 0, "zcusbd exit code after SIGTERM")
        check(took < 2.0, f"zcusbd took {took:.2f}s to exit after SIGTERM (limit 2s)")
        log(f"zcusbd exited 0 {took:.3f}s after SIGTERM")
        wait_until(lambda: not w.bus.has_owner(), 2, f"{BUS_NAME} to be released")
        # the monitor notices the daemon is gone: it must not hang or spin; either it
        # exits (5: daemon unreachable) or keeps waiting for the name to come back
        sleep_iterating(0.5)
        if mon.p.poll() is not None:
            check_in(mon.p.returncode, (0, 5), "monitor exit code after the daemon left")
        sigs.close()
    # SIGINT too, with no clients, straight after start
    with World() as w:
        w.daemon.p.send_signal(signal.SIGINT)
        wait_until(lambda: w.daemon.p.poll() is not None, 2, "zcusbd to exit after SIGINT")
        check_eq(w.daemon.p.returncode, 0, "zcusbd exit code after SIGINT")
        w.daemon.stop()


# ---------------------------------------------------------------------------
# the data-path tests (usbfs emulator + ring client) live in their own module
import datapath  # noqa: E402
import control_allowlist  # noqa: E402,F401 (adds its tests to datapath's)
import polkit_tests  # noqa: E402,F401 (adds its tests to datapath's)
import cli_tests  # noqa: E402,F401 (adds its tests to datapath's)
import datapath_robust  # noqa: E402,F401 (adds its tests to datapath's)
import compat  # noqa: E402,F401 (adds its tests to datapath's)
datapath.register(sys.modules[__name__])
import remote_tests  # noqa: E402
remote_tests.register(sys.modules[__name__])


def main(argv):
    if len(argv) == 2 and argv[1] == "--list":
        print("\n".join(TESTS))
        return 0
    names = list(TESTS) if len(argv) == 2 and argv[1] == "--all" else argv[1:]
    if not names or any(n not in TESTS for n in names):
        print(f"usage: {argv[0]} TESTNAME... | --all | --list\ntests: {' '.join(TESTS)}", file=sys.stderr)
        return 2
    if "libumockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        _skip("not running under umockdev-wrapper (LD_PRELOAD lacks libumockdev-preload)")
    for tool in ("dbus-daemon", "busctl", "setpriv"):
        if not shutil.which(tool):
            _skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        _skip("must run as root (zcusbd is a root daemon; setpriv switches uids)")
    os.environ.setdefault("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=1")
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    failed = []
    for n in names:
        log(f"=== {n}")
        # a test that hangs is killed by meson at 60 s: dump every thread's stack first
        faulthandler.dump_traceback_later(55, exit=False)
        try:
            soft.failures = []
            TESTS[n]()
            if soft.failures:
                raise TestFailure(f"{len(soft.failures)} check(s) failed:\n  " + "\n  ".join(soft.failures))
            log(f"=== {n}: PASS")
        except TestSkip as e:
            log(f"=== {n}: SKIP ({e})")
            if len(names) == 1:
                return SKIP
        except Exception as e:
            traceback.print_exc(file=sys.stdout)
            log(f"=== {n}: FAIL: {e}")
            failed.append(n)
        finally:
            faulthandler.cancel_dump_traceback_later()
    if len(names) > 1:
        log(f"failed: {failed}" if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
