#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a libzcusb client against fake-zcusbd.py on a private system bus that
uses the project's own bus policy (dbus/org.zcusb1.conf).

    run-with-fake-zcusbd.py api TEST_BINARY     the C API test
    run-with-fake-zcusbd.py zcusbctl ZCUSBCTL   zcusbctl read/write/control

Exit: 0 pass, 1 fail, 77 skip (no dbus-daemon, python3-dbus/gi, or not root:
the shipped policy lets only root own org.zcusb1).
"""

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.join(HERE, "..", "common"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import privatebus  # noqa: E402


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print(f"ok - {what}", flush=True)


def zcusbctl_tests(ctl, env, workdir, hooks):
    def run(*args, stdin=None):
        r = subprocess.run([ctl] + list(args), env=env, capture_output=True, timeout=60, input=stdin)
        print(f"$ zcusbctl {' '.join(args)} -> exit {r.returncode}; stderr {r.stderr.decode()!r}", flush=True)
        return r

    def counter(start, n):
        first = start % 256
        return (bytes(range(256)) * ((first + n) // 256 + 1))[first:first + n]

    out = os.path.join(workdir, "read.bin")
    r = run("read", "0525:a4a0", "--interface", "0", "--endpoint", "0x81", "--bytes", "1M",
            "--transfer-size", "16K", "--queue-depth", "4", "--output", out)
    check(r.returncode == 0, "read 1M to a file exits 0")
    with open(out, "rb") as f:
        data = f.read()
    check(data == counter(0, 1 << 20), "read: the file holds the device's stream, in order")
    check(r.stdout.decode().startswith("1048576 bytes in ") and r.stdout.decode().rstrip().endswith("MB/s"),
          "read: summary 'N bytes in T s, X MB/s' on stdout")

    # bytes not a multiple of the transfer size; JSON summary; interrupt endpoint
    r = run("--json", "read", "001:003", "-i", "0", "-e", "0x83", "--bytes", "10000", "--transfer-size", "4K")
    check(r.returncode == 0, "read from an interrupt endpoint exits 0")
    j = json.loads(r.stdout)
    check(j["bytes"] == 10000 and j["transfers"] == 3 and j["errors"] == 0 and j["seconds"] >= 0
          and j["mb_per_s"] >= 0, f"read --json summary {j}")

    r = run("read", "/org/zcusb1/device/usb1_3", "-i", "0", "-e", "0x81", "--bytes", "3000", "--output", "-")
    check(r.returncode == 0 and r.stdout == counter((1 << 20) + 10000, 3000) and b"3000 bytes in" in r.stderr,
          "read --output -: data on stdout (continuing the stream), summary on stderr")

    r = run("write", "0525:a4a0:SN1", "-i", "0", "-e", "0x02", "--pattern", "counter", "--bytes", "200K",
            "--transfer-size", "8K", "--queue-depth", "16")
    check(r.returncode == 0 and r.stdout.decode().startswith("204800 bytes in"),
          "write --pattern counter: the device saw the right bytes in order")

    src = os.path.join(workdir, "in.bin")
    with open(src, "wb") as f:
        f.write(counter(200 << 10, 50000))
    r = run("--json", "write", "1:3", "-i", "0", "-e", "0x02", "--input", src, "--transfer-size", "4K")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and j.get("bytes") == 50000 and j.get("transfers") == 13,
          f"write --input FILE: whole file, 13 transfers ({j})")
    r = run("write", "1:3", "-i", "0", "-e", "0x02", "--input", "-", "--bytes", "100",
            stdin=counter((200 << 10) + 50000, 1000))
    check(r.returncode == 0 and r.stdout.decode().startswith("100 bytes in"), "write --input - --bytes 100")

    r = run("write", "1:3", "-i", "0", "-e", "0x02", "--pattern", "zeros", "--bytes", "4K")
    check(r.returncode == 6 and b"transfer 0 on endpoint 0x02 failed" in r.stderr,
          "write: a failed transfer (device rejects the data) exits 6 naming the transfer")
    check(re.match(r"^\d+ bytes in [0-9.]+ s, [0-9.]+ MB/s$", r.stdout.decode()),
          "write: the summary is printed before the error")

    r = run("--json", "read", "1:3", "-i", "0", "-e", "0x84", "--bytes", "1M")
    j = json.loads(r.stdout) if r.stdout else {}
    check(r.returncode == 6 and b"Stalled" in r.stderr and j.get("errors", 0) >= 1 and j.get("bytes") == 0,
          f"read from a stalling endpoint: exit 6, the cause, and errors in the JSON summary ({j})")

    r = run("read", "1:3", "-i", "0", "-e", "0x86", "--bytes", "1K", "--timeout", "200")
    check(r.returncode == 6 and b"Timed out" in r.stderr and b"--timeout" in r.stderr,
          "read that times out: exit 6 with the fix")

    r = run("read", "1:3", "-i", "0", "-e", "0x85", "--bytes", "1K")
    check(r.returncode == 2 and b"no endpoint 0x85" in r.stderr and b"zcusbctl info" in r.stderr,
          "read from an endpoint the interface lacks: usage error with a fix")
    r = run("read", "1:3", "-i", "3", "-e", "0x81", "--bytes", "1K")
    check(r.returncode == 1 and b"no interface 3" in r.stderr, "claiming a missing interface: the daemon's sentence")
    r = run("read", "9:9", "-i", "0", "-e", "0x81", "--bytes", "1K")
    check(r.returncode == 3 and b"zcusbctl list" in r.stderr, "no such device: exit 3")
    r = run("read", "1:3", "-i", "0", "-e", "0x81", "--bytes", "1K", "--transfer-size", "8M", "--queue-depth", "2")
    check(r.returncode == 1 and b"quota" in r.stderr, "a buffer over quota: exit 1 naming the quota")

    r = run("control", "1:3", "-i", "0", "--request-type", "0x80", "--request", "6", "--value", "0x100",
            "--length", "64")
    check(r.returncode == 0 and r.stdout.decode() == "12010002000000402505a0a4000101020301\n",
          "control IN: GET_DESCRIPTOR as hex, actual length only")
    r = run("control", "1:3", "-i", "0", "--request-type", "0x40", "--request", "0x5b", "--data", "de:ad be ef")
    check(r.returncode == 0 and r.stdout == b"", "control OUT with --data prints nothing")
    r = run("--json", "control", "1:3", "-i", "0", "--request-type", "0xc0", "--request", "0x5d", "--length", "8")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(j == {"request_type": 192, "request": 93, "value": 0, "index": 0, "length": 8, "actual_length": 4,
                "data": "deadbeef"}, f"control --json reads back what the OUT request stored ({j})")
    r = run("control", "1:3", "-i", "0", "--request-type", "0xc0", "--request", "0x99", "--length", "8")
    check(r.returncode == 6 and b"Stalled" in r.stderr, "control request the device stalls: exit 6")

    # A consumer that publishes sq_head after the completions it covers, which
    # zcusb-ring.h forbids (the fake does on request): each reap leaves the ring
    # full for a while. zcusbctl takes that as backpressure, not as an error.
    hooks.SetRingOrder("completion-first")
    try:
        src = os.path.join(workdir, "late.bin")
        with open(src, "wb") as f:
            f.write(counter(int(hooks.Stats()["bytes_out"]), 64 << 10))
        r = run("--json", "write", "1:3", "-i", "0", "-e", "0x02", "--input", src, "--transfer-size", "4K",
                "--queue-depth", "4")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        check(r.returncode == 0 and j.get("bytes") == 64 << 10 and j.get("transfers") == 16 and j.get("errors") == 0,
              f"write while sq_head lags the completions: all of it, in order ({j})")
        start = int(hooks.Stats()["bytes_in"])
        out = os.path.join(workdir, "late-read.bin")
        r = run("read", "1:3", "-i", "0", "-e", "0x81", "--bytes", "64K", "--transfer-size", "4K", "--queue-depth", "4",
                "--output", out)
        with open(out, "rb") as f:
            data = f.read()
        check(r.returncode == 0 and data == counter(start, 64 << 10),
              "read while sq_head lags the completions: the whole stream, in order")
    finally:
        hooks.SetRingOrder("in-order")


def daemon_gone_test(ctl, env, fake):
    """zcusbd killed under a waiting zcusbctl: no Ended signal will come and the
    completion eventfd stays quiet; the client must notice on the bus and exit 5."""
    argv = [ctl, "read", "1:3", "-i", "0", "-e", "0x86", "--bytes", "1K"]  # 0x86 never completes
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        check(p.poll() is None, "zcusbctl read on the silent endpoint 0x86 is waiting")
        fake.kill()
        fake.wait()
        t0 = time.monotonic()
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    print(f"$ zcusbctl {' '.join(argv[1:])} (zcusbd SIGKILLed) -> exit {p.returncode} after {took:.1f} s; "
          f"stderr {err.decode()!r}", flush=True)
    check(p.returncode == 5 and b"zcusbd went away" in err and took < 3,
          "zcusbd SIGKILLed under a waiting read: exit 5 within 3 s, saying zcusbd went away")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("api", "zcusbctl"):
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        skip("the project's bus policy lets only root own org.zcusb1")
    if not shutil.which("dbus-daemon"):
        skip("dbus-daemon is not installed")
    try:
        import dbus  # noqa: F401
        import gi  # noqa: F401
    except ImportError as e:
        skip(f"python3-dbus and python3-gi are needed ({e})")

    workdir = tempfile.mkdtemp(prefix="libzcusb-test-")
    procs = []
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "DBUS_SESSION_BUS_ADDRESS")}
        bus, socket = privatebus.start_dbus_daemon(workdir, privatebus.project_policy_path(), env)
        procs.append(bus)
        if not socket:
            raise Failure("dbus-daemon did not start")
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={socket}"

        fake = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake-zcusbd.py"), env["DBUS_SYSTEM_BUS_ADDRESS"]],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        procs.append(fake)
        if fake.stdout.readline().decode().strip() != "ready":
            raise Failure("fake-zcusbd.py did not start")

        if sys.argv[1] == "api":
            rc = subprocess.run([sys.argv[2]], env=env, timeout=120).returncode
            if rc != 0:
                raise Failure(f"{sys.argv[2]} exited {rc}")
        else:
            import dbus
            hooks = dbus.Interface(dbus.bus.BusConnection(env["DBUS_SYSTEM_BUS_ADDRESS"]).get_object(
                "org.zcusb1", "/org/zcusb1"), "org.zcusb1.Test")
            zcusbctl_tests(sys.argv[2], env, workdir, hooks)
        check(fake.poll() is None, "fake-zcusbd survived")
        if sys.argv[1] == "zcusbctl":
            daemon_gone_test(sys.argv[2], env, fake)
        return 0
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
