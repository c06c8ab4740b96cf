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
# test registry: the tests live in their own modules, which add theirs here
import registry  # noqa: E402
TESTS, test = registry.collector()

# zcusbd itself: discovery, policy, limits, configuration
import daemon_tests  # noqa: E402
daemon_tests.register(sys.modules[__name__])

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
