#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark's table: reads RESULTS/bench.jsonl (tests/vm/bench/cases/50-bench.sh, one line
per measurement) and RESULTS/host.json (run-bench.sh), writes RESULTS/bench.txt and
RESULTS/bench.json and prints the table. `summarize.py --merge-boots N RESULTS` first makes
RESULTS/bench.jsonl of the N boots' (run-bench.sh --boots). Exit 1 when a contender ran over the
wrong path (its backend, or zcusb.ko's zero-copy counters, say so) or a section has no figures.

Every figure is the median over the rounds, [min-max] beside it; a ratio is the median of the
per-round ratios (both contenders of a ratio ran within the same round, minutes apart at most).
Guest CPU s/GiB: the whole guest's busy time over the run (all CPUs; /proc/stat) minus the idle
baseline of the same round (busy seconds per second with nothing running) times the run's
duration, per GiB moved."""
import json
import statistics
import sys

BASE_DEVMEM = "libusb-async-devmem"
BASE_MALLOC = "libusb-async-malloc"
# The backend each zcusbd contender must have run over (Claim.Backend). The in-kernel queues of
# zcusb.ko get their line here once they exist.
EXPECT = {"zcusbd-usbfs": "usbfs", "zcusbd-usbfs-nostage": "usbfs", "zcusbd-zcusb.ko": "zcusb.ko",
          "zcusbd-zcusb.ko-nozc": "zcusb.ko", "zcusbd-kqueues": "zcusb.ko"}
ORDER = ["libusb-sync", "libusb-async-malloc", "libusb-async-devmem", "libusb-async-memfd", "zcusbd-usbfs",
         "zcusbd-usbfs-nostage", "zcusbd-zcusb.ko", "zcusbd-zcusb.ko-nozc", "zcusbd-kqueues", "compat-devmem"]
# compat-devmem (libusb's API through zcusb's libusb-1.0.so.0) against native libzcusb on the
# path it ran over (the bench runs it with in-kernel queues; the others if those did not run).
COMPAT_NATIVE = ("zcusbd-kqueues", "zcusbd-zcusb.ko", "zcusbd-usbfs")
GIB = float(1 << 30)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def stat(xs):
    lo, hi = spread(xs)
    return {"median": med(xs), "min": lo, "max": hi, "n": len([x for x in xs if x is not None])}


def fmt(v, digits=1):
    return "-" if v is None else "%.*f" % (digits, v)


def fmt_stat(s, digits=1, width=0):
    if s["median"] is None:
        text = "-"
    elif s["n"] == 1:
        text = fmt(s["median"], digits)
    else:
        text = "%s [%s-%s]" % (fmt(s["median"], digits), fmt(s["min"], digits), fmt(s["max"], digits))
    return text.ljust(width) if width else text


def per_op(r, ops, *fields):
    """The sum of counters FIELDS of record R per one of its OPS (a field: "transfers", "count");
    None when one is unknown (-1, or a record older than the counters) or there were none.
    zcusbd's sleeps only count for zcusbd's contenders."""
    fields = [f for f in fields if f != "daemon_sleeps" or r["contender"].startswith("zcusbd")]
    values = [r.get(f, -1) for f in fields]
    if any(v is None or v < 0 for v in values) or not r.get(ops):
        return None
    return sum(values) / r[ops]


def size_name(n):
    return "%dM" % (n >> 20) if n % (1 << 20) == 0 else "%dK" % (n >> 10) if n % 1024 == 0 else str(n)


def order_key(c):
    return ORDER.index(c) if c in ORDER else len(ORDER)


def merge_boots(results, boots):
    """RESULTS/bench.jsonl of RESULTS/boot-1..BOOTS/bench.jsonl (run-bench.sh --boots): the rounds
    (and the scaling's groups) numbered on from the boot before, so each round's ratios still pair
    measurements of one boot; every record says its boot, footprint rows in their state too."""
    out, meta, offset, group_offset = [], None, 0, 0
    for boot in range(1, boots + 1):
        recs = [json.loads(line) for line in open("%s/boot-%d/bench.jsonl" % (results, boot)) if line.strip()]
        rounds = max([r[k] for r in recs for k in ("round", "idle_round") if isinstance(r.get(k), int)], default=0)
        groups = max([r["group"] for r in recs if isinstance(r.get("group"), int)], default=0)
        for r in recs:
            if r.get("section") == "meta":
                meta = meta or dict(r, boots=boots)
                continue
            for k in ("round", "idle_round"):
                if isinstance(r.get(k), int):
                    r[k] += offset
            if isinstance(r.get("group"), int):
                r["group"] += group_offset
            if r.get("section") == "footprint":
                r["state"] = "%s (boot %d)" % (r["state"], boot)
            r["boot"] = boot
            out.append(r)
        offset += rounds
        group_offset += groups
    with open(results + "/bench.jsonl", "w") as f:
        for r in [meta] + out:
            f.write(json.dumps(r) + "\n")


def main():
    if sys.argv[1] == "--merge-boots":
        merge_boots(sys.argv[3], int(sys.argv[2]))
        return 0
    results = sys.argv[1]
    recs = [json.loads(line) for line in open(results + "/bench.jsonl") if line.strip()]
    try:
        host = json.load(open(results + "/host.json"))
    except OSError:
        host = {}
    meta = next((r for r in recs if r.get("section") == "meta"), {})
    sections = meta.get("sections", "").split()
    idle = {r["round"]: r["guest_busy"] / r["seconds"] for r in recs if r.get("section") == "idle" and r["seconds"] > 0}
    idle_all = med(list(idle.values()))
    bad = []
    out = {"host": host, "meta": meta, "idle_busy_per_second": idle}
    lines = []

    speed = meta.get("speed_mbps")
    speed_name = {"5000": "SuperSpeed", "480": "high speed"}.get(str(speed), "%s Mb/s" % speed)
    lines.append("zcusb benchmark: QEMU TCG guest (%s vCPUs, kernel %s), dummy_hcd %s gadgets (%s Mb/s)" %
                 (meta.get("guest_cpus", "?"), meta.get("kernel", "?"), speed_name, speed))
    if host:
        lines.append("run %s .. %s on a %s-CPU host, load average before %s, after %s" %
                     (host.get("started"), host.get("finished"), host.get("host_cpus"), host.get("loadavg_before"),
                      host.get("loadavg_after")))
        lines.append("command: %s" % host.get("command"))
    boots = meta.get("boots", 1)
    if boots > 1:
        lines.append("figures: median [min-max] of %s interleaved rounds in each of %d boots (all rounds); ratios: median"
                     " of the per-round ratios (each round inside one boot)" % (meta.get("rounds", "?"), boots))
    else:
        lines.append("figures: median [min-max] of %s interleaved rounds in one boot; ratios: median of the per-round"
                     " ratios" % meta.get("rounds", "?"))
    if idle:
        lo, hi = spread(list(idle.values()))
        lines.append("idle guest baseline: %.3f busy CPU-s per s [%.3f-%.3f] (subtracted from guest CPU)" %
                     (idle_all, lo, hi))
    pinned = sorted({(r["round"], r["pinned_cpu"]) for r in recs
                     if r.get("section") == "throughput" and r.get("pinned_cpu", -1) >= 0})
    if pinned:
        lines.append("throughput pinned: every contender's processes of a round on one vCPU (round:cpu %s), so a ratio"
                     " compares two paths on the same vCPU" % " ".join("%d:%d" % p for p in pinned))
    vcpu = {}  # round -> {cpu: seconds}
    for r in recs:
        if r.get("section") == "vcpu":
            vcpu.setdefault(r["round"], {})[r["cpu"]] = r["seconds"]
    if vcpu:
        cpus = sorted({n for per in vcpu.values() for n in per})
        slowest = [max(per.values()) / min(per.values()) for per in vcpu.values() if min(per.values()) > 0]
        probes = ", ".join("cpu%d %s s" % (n, fmt_stat(stat([per.get(n) for per in vcpu.values()]), 2)) for n in cpus)
        lines.append("vCPU probe (dd of 256 MiB of zeros to /dev/null pinned to each CPU, each round): %s;"
                     " slowest/fastest %s" % (probes, fmt_stat(stat(slowest), 2)))
        out["vcpu_probe_seconds"] = vcpu
    lines.append("")

    def check_backend(r):
        c = r["contender"]
        if c in EXPECT and r.get("backend") != EXPECT[c]:
            bad.append("%s %s round %s ran over %s, not %s" % (c, r.get("test"), r.get("round"), r.get("backend"),
                                                               EXPECT[c]))
        # the module's queues took the entries of zcusbd-kqueues, and none of zcusbd's own paths
        if "kq_entries" in r:
            if c == "zcusbd-kqueues" and r["kq_entries"] == 0:
                bad.append("%s %s round %s: the module's queues took no entry" % (c, r.get("test"), r.get("round")))
            if c in ("zcusbd-zcusb.ko", "zcusbd-zcusb.ko-nozc") and r["kq_entries"] != 0:
                bad.append("%s %s round %s: the module's queues took %d entries" %
                           (c, r.get("test"), r.get("round"), r["kq_entries"]))
        if r.get("test") not in ("in", "out"):
            return
        if c in ("zcusbd-zcusb.ko", "zcusbd-kqueues") and (r.get("bounced_bytes", 0) != 0 or
                                                           r.get("zc_bytes", 0) < r["bytes"]):
            bad.append("%s %s round %s: zero copy %d, bounced %d of %d bytes" %
                       (c, r["test"], r["round"], r.get("zc_bytes", 0), r.get("bounced_bytes", 0), r["bytes"]))
        if c == "zcusbd-zcusb.ko-nozc" and (r.get("zc_bytes", 0) != 0 or r.get("bounced_bytes", 0) < r["bytes"]):
            bad.append("%s %s round %s: zero copy %d, bounced %d of %d bytes" %
                       (c, r["test"], r["round"], r.get("zc_bytes", 0), r.get("bounced_bytes", 0), r["bytes"]))

    # --- throughput ---
    tp = [r for r in recs if r.get("section") == "throughput"]
    for r in tp:
        check_backend(r)
    if "throughput" in sections:
        if not tp:
            bad.append("throughput: no figures")
        lines.append("THROUGHPUT  SourceSink bulk, %s MiB per run (or %s s), MB/s = 10^6 bytes/s; CPU s/GiB: client and"
                     " zcusbd user+system;" % (meta.get("mib"), meta.get("max_seconds")))
        lines.append("  guest = whole guest busy time minus idle baseline (kernel threads, softirqs and the emulated"
                     " controller included)")
        lines.append("  x devmem, x malloc: MB/s to libusb-async-devmem's, to libusb-async-malloc's; cpu x malloc, cpu x"
                     " devmem: guest CPU s/GiB to libusb-async-malloc's, to libusb-async-devmem's")
        lines.append("  sleeps/xfer: times the client and zcusbd went to sleep (each one a wakeup), per transfer;"
                     " switches/xfer: context switches of the whole guest per transfer (neither varies with the"
                     " host's load)")
        hdr = "%-6s %-3s %-20s %-22s %8s %8s  %-6s %-6s %-22s %12s %12s %11s %13s" % (
            "size", "dir", "contender", "MB/s [min-max]", "x devmem", "x malloc", "client", "zcusbd",
            "guest CPU s/GiB", "cpu x malloc", "cpu x devmem", "sleeps/xfer", "switches/xfer")
        lines.append(hdr)
        rows, compat_rows, per_boot_rows = [], [], []
        boot_of = {r["round"]: r.get("boot", 1) for r in tp}
        keys = sorted({(r["size"], r["depth"], r["test"]) for r in tp}, key=lambda k: (k[0], k[2] != "in"))
        for size, depth, test in keys:
            runs = [r for r in tp if (r["size"], r["depth"], r["test"]) == (size, depth, test)]
            per = {}  # (contender, round) -> figures
            for r in runs:
                gib = r["bytes"] / GIB
                if gib <= 0 or r["seconds"] <= 0:
                    bad.append("%s %s %s round %s moved nothing" % (r["contender"], size, test, r["round"]))
                    continue
                base = idle.get(r["round"], idle_all) or 0
                per[r["contender"], r["round"]] = {
                    "mbs": r["bytes"] / r["seconds"] / 1e6,
                    "client": r["client_cpu"] / gib,
                    "daemon": r["daemon_cpu"] / gib if r["daemon_cpu"] >= 0 and r["contender"].startswith("zcusbd") else None,
                    "guest": (r["guest_busy"] - base * r["seconds"]) / gib if r["guest_busy"] >= 0 else None,
                    "sleeps": per_op(r, "transfers", "client_sleeps", "daemon_sleeps"),
                    "switches": per_op(r, "transfers", "guest_switches"),
                }
            for c in sorted({c for c, _ in per}, key=order_key):
                rounds = sorted(rd for cc, rd in per if cc == c)
                f = [per[c, rd] for rd in rounds]

                def ratio_by_round(base_c, field):
                    """Per round of ROUNDS: C's FIELD to BASE_C's of the same round, or None."""
                    return [per[c, rd][field] / per[base_c, rd][field]
                            if (base_c, rd) in per and per[c, rd][field] is not None and per[base_c, rd][field]
                            else None for rd in rounds]

                def ratio(base_c, field):
                    return [x for x in ratio_by_round(base_c, field) if x is not None]
                row = {"size": size, "depth": depth, "dir": test, "contender": c,
                       "mbs": stat([x["mbs"] for x in f]), "client_cpu_per_gib": stat([x["client"] for x in f]),
                       "zcusbd_cpu_per_gib": stat([x["daemon"] for x in f]),
                       "guest_cpu_per_gib": stat([x["guest"] for x in f]),
                       "x_devmem_mbs": stat(ratio(BASE_DEVMEM, "mbs")), "x_malloc_mbs": stat(ratio(BASE_MALLOC, "mbs")),
                       "x_malloc_guest_cpu": stat(ratio(BASE_MALLOC, "guest")),
                       "x_devmem_guest_cpu": stat(ratio(BASE_DEVMEM, "guest")),
                       "sleeps_per_transfer": stat([x["sleeps"] for x in f]),
                       "guest_switches_per_transfer": stat([x["switches"] for x in f])}
                if c.startswith("compat-"):
                    native = next((n for n in COMPAT_NATIVE if any(cc == n for cc, _ in per)), None)
                    row["native"] = native
                    row["x_native_mbs"] = stat(ratio(native, "mbs")) if native else stat([])
                    compat_rows.append(row)
                if boots > 1:
                    mbs_x, guest_x = ratio_by_round(BASE_MALLOC, "mbs"), ratio_by_round(BASE_MALLOC, "guest")
                    row["per_boot"] = {
                        b: {"x_malloc_mbs": med([x for rd, x in zip(rounds, mbs_x) if boot_of[rd] == b]),
                            "x_malloc_guest_cpu": med([x for rd, x in zip(rounds, guest_x) if boot_of[rd] == b])}
                        for b in sorted({boot_of[rd] for rd in rounds})}
                    per_boot_rows.append(row)
                rows.append(row)
                lines.append("%-6s %-3s %-20s %-22s %8s %8s  %-6s %-6s %-22s %12s %12s %11s %13s" % (
                    "%sx%d" % (size_name(size), depth), test, c, fmt_stat(row["mbs"]),
                    fmt(row["x_devmem_mbs"]["median"], 2), fmt(row["x_malloc_mbs"]["median"], 2),
                    fmt(row["client_cpu_per_gib"]["median"], 2), fmt(row["zcusbd_cpu_per_gib"]["median"], 2),
                    fmt_stat(row["guest_cpu_per_gib"], 2), fmt(row["x_malloc_guest_cpu"]["median"], 2),
                    fmt(row["x_devmem_guest_cpu"]["median"], 2), fmt(row["sleeps_per_transfer"]["median"], 2),
                    fmt(row["guest_switches_per_transfer"]["median"], 2)))
            lines.append("")
        if per_boot_rows:
            lines.append("  per boot, median of its rounds: x malloc (MB/s) / cpu x malloc (guest CPU s/GiB)")
            for row in per_boot_rows:
                if row["contender"] == BASE_MALLOC:
                    continue
                lines.append("  %-6s %-3s %-20s %s" % (
                    "%sx%d" % (size_name(row["size"]), row["depth"]), row["dir"], row["contender"],
                    "  ".join("%s/%s" % (fmt(v["x_malloc_mbs"], 2), fmt(v["x_malloc_guest_cpu"], 2))
                              for v in row["per_boot"].values())))
            lines.append("")
        for row in compat_rows:
            lines.append("  %s %sx%d %s: %s MB/s, x %s (native libzcusb, same size and depth) %s" % (
                row["contender"], size_name(row["size"]), row["depth"], row["dir"], fmt_stat(row["mbs"]),
                row["native"] or "-", fmt_stat(row["x_native_mbs"], 2)))
        if compat_rows:
            lines.append("")
        out["throughput"] = rows

    # --- remote (USB/IP over loopback) vs local ---
    rm = [r for r in recs if r.get("section") == "remote"]
    for r in rm:
        check_backend(r)
    if "remote" in sections:
        if not rm:
            bad.append("remote: no figures")
        lines.append("REMOTE  zcusbd over zcusb.ko: local SourceSink vs one imported over USB/IP (usbip-host + usbipd ->"
                     " 127.0.0.1 -> vhci-hcd, both ends in this guest), %s MiB per run (or %s s)" %
                     (meta.get("mib"), meta.get("max_seconds")))
        lines.append("  guest CPU s/GiB counts both ends (stub and vhci kernel threads, TCP over loopback); x local: the"
                     " remote figure to the local one of the same round")
        lines.append("%-6s %-3s %-7s %-22s %8s  %-6s %-6s %-22s %8s" % (
            "size", "dir", "where", "MB/s [min-max]", "x local", "client", "zcusbd", "guest CPU s/GiB", "x local"))
        rows = []
        for size, depth, test in sorted({(r["size"], r["depth"], r["test"]) for r in rm}, key=lambda k: (k[0], k[2] != "in")):
            per = {}  # (where, round) -> figures
            for r in rm:
                if (r["size"], r["depth"], r["test"]) != (size, depth, test):
                    continue
                gib = r["bytes"] / GIB
                if gib <= 0 or r["seconds"] <= 0:
                    bad.append("remote %s %s %s round %s moved nothing" % (r["where"], size, test, r["round"]))
                    continue
                base = idle.get(r.get("idle_round"), idle_all) or 0
                per[r["where"], r["round"]] = {
                    "mbs": r["bytes"] / r["seconds"] / 1e6, "client": r["client_cpu"] / gib,
                    "daemon": r["daemon_cpu"] / gib if r["daemon_cpu"] >= 0 else None,
                    "guest": (r["guest_busy"] - base * r["seconds"]) / gib if r["guest_busy"] >= 0 else None}
            for where in ("local", "remote"):
                rounds = sorted(rd for w, rd in per if w == where)
                f = [per[where, rd] for rd in rounds]

                def x_local(field):
                    return [per[where, rd][field] / per["local", rd][field] for rd in rounds
                            if ("local", rd) in per and per[where, rd][field] is not None and per["local", rd][field]]
                row = {"size": size, "depth": depth, "dir": test, "where": where,
                       "mbs": stat([x["mbs"] for x in f]), "client_cpu_per_gib": stat([x["client"] for x in f]),
                       "zcusbd_cpu_per_gib": stat([x["daemon"] for x in f]),
                       "guest_cpu_per_gib": stat([x["guest"] for x in f]),
                       "x_local_mbs": stat(x_local("mbs")), "x_local_guest_cpu": stat(x_local("guest"))}
                rows.append(row)
                lines.append("%-6s %-3s %-7s %-22s %8s  %-6s %-6s %-22s %8s" % (
                    "%sx%d" % (size_name(size), depth), test, where, fmt_stat(row["mbs"]),
                    fmt(row["x_local_mbs"]["median"], 2), fmt(row["client_cpu_per_gib"]["median"], 2),
                    fmt(row["zcusbd_cpu_per_gib"]["median"], 2), fmt_stat(row["guest_cpu_per_gib"], 2),
                    fmt(row["x_local_guest_cpu"]["median"], 2)))
        lines.append("")
        out["remote"] = rows

    # --- latency ---
    lat = [r for r in recs if r.get("section") == "latency"]
    for r in lat:
        check_backend(r)
    if "latency" in sections:
        if not lat:
            bad.append("latency: no figures")
        lines.append("LATENCY  Loopback bulk, %s bytes; microseconds, median [min-max] over rounds of each round's"
                     " percentile" % (lat[0]["size"] if lat else 64))
        lines.append("  rtt: OUT then IN, one at a time (%s per round); behind: an OUT submitted 20 ms after an IN that"
                     " waits for its data, until the OUT completes (%s per round)" %
                     (meta.get("rtt_count"), meta.get("behind_count")))
        lines.append("%-7s %-20s %-26s %-26s %7s %10s" % ("test", "contender", "p50 us [min-max]", "p99 us [min-max]",
                                                          "x p50", "sleeps/op"))
        rows = []
        for test, base_c in (("rtt", "libusb-sync"), ("behind", "libusb-async-malloc")):
            runs = [r for r in lat if r["test"] == test]
            by = {(r["contender"], r["round"]): r for r in runs}
            for c in sorted({r["contender"] for r in runs}, key=order_key):
                rounds = sorted(rd for cc, rd in by if cc == c)
                row = {"test": test, "contender": c,
                       "p50_us": stat([by[c, rd]["p50_us"] for rd in rounds]),
                       "p99_us": stat([by[c, rd]["p99_us"] for rd in rounds]),
                       "x_p50": stat([by[c, rd]["p50_us"] / by[base_c, rd]["p50_us"] for rd in rounds
                                      if (base_c, rd) in by and by[base_c, rd]["p50_us"] > 0]),
                       "sleeps_per_op": stat([per_op(by[c, rd], "count", "client_sleeps", "daemon_sleeps")
                                              for rd in rounds]),
                       "baseline": base_c}
                rows.append(row)
                lines.append("%-7s %-20s %-26s %-26s %7s %10s" % (
                    test, c, fmt_stat(row["p50_us"], 0), fmt_stat(row["p99_us"], 0), fmt(row["x_p50"]["median"], 2),
                    fmt(row["sleeps_per_op"]["median"], 2)))
        lines.append("  x p50: to libusb-sync (rtt), libusb-async-malloc (behind); sleeps/op: times the client and zcusbd"
                     " went to sleep per round trip or per behind test")
        lines.append("")
        out["latency"] = rows

    # --- scaling ---
    sc = [r for r in recs if r.get("section") == "scaling"]
    for r in sc:
        check_backend(r)
    if "scaling" in sections:
        if not sc:
            bad.append("scaling: no figures")
        groups = {}
        for r in sc:
            groups.setdefault(r["group"], []).append(r)
        per = {}  # (contender, clients, round) -> figures
        for g, rs in groups.items():
            t0 = min(r["t_start"] for r in rs)
            t1 = max(r["t_end"] for r in rs)
            skew = max(r["t_start"] for r in rs) - t0
            span = t1 - t0
            total = sum(r["bytes"] for r in rs)
            if span <= 0 or total <= 0:
                bad.append("scaling group %s moved nothing" % g)
                continue
            busy = max(r["guest_busy"] for r in rs)
            base = idle.get(rs[0]["round"], idle_all) or 0
            per[rs[0]["contender"], rs[0]["clients"], rs[0]["round"]] = {
                "mbs": total / span / 1e6, "guest": (busy - base * span) / (total / GIB), "skew": skew / span}
        nmax = max((k[1] for k in per), default=0)
        lines.append("SCALING  SourceSink bulk IN 64K x 8 for %s s: 1 client vs %s clients on %s gadgets at once"
                     " (aggregate MB/s), %s rounds" % (meta.get("scale_seconds"), nmax, nmax, meta.get("scale_rounds")))
        lines.append("  aggregate = all clients' bytes / (last end - first start); skew = the latest client's start"
                     " after the first, in % of that span (median)")
        lines.append("%-20s %-22s %-22s %6s  %-13s %-13s %5s" % ("contender", "1 client MB/s", "%d clients MB/s" % nmax,
                                                              "x", "guest s/GiB 1", "guest s/GiB %d" % nmax, "skew"))
        rows = []
        for c in sorted({k[0] for k in per}, key=order_key):
            rounds = sorted({k[2] for k in per if k[0] == c})
            one = [per[c, 1, rd] for rd in rounds if (c, 1, rd) in per]
            many = [per[c, nmax, rd] for rd in rounds if (c, nmax, rd) in per]
            row = {"contender": c, "clients": nmax, "one_mbs": stat([x["mbs"] for x in one]),
                   "many_mbs": stat([x["mbs"] for x in many]),
                   "x": stat([per[c, nmax, rd]["mbs"] / per[c, 1, rd]["mbs"] for rd in rounds
                              if (c, 1, rd) in per and (c, nmax, rd) in per]),
                   "one_guest_cpu_per_gib": stat([x["guest"] for x in one]),
                   "many_guest_cpu_per_gib": stat([x["guest"] for x in many]),
                   "many_start_skew": stat([x["skew"] for x in many])}
            rows.append(row)
            lines.append("%-20s %-22s %-22s %6s  %-13s %-13s %4s%%" % (
                c, fmt_stat(row["one_mbs"]), fmt_stat(row["many_mbs"]), fmt(row["x"]["median"], 2),
                fmt(row["one_guest_cpu_per_gib"]["median"], 2), fmt(row["many_guest_cpu_per_gib"]["median"], 2),
                fmt(None if row["many_start_skew"]["median"] is None else 100 * row["many_start_skew"]["median"], 0)))
        lines.append("")
        out["scaling"] = rows

    # --- footprint ---
    fp = [r for r in recs if r.get("section") == "footprint"]
    if "footprint" in sections:
        if not fp:
            bad.append("footprint: no figures")
        lines.append("ZCUSBD FOOTPRINT  over %s s windows; wakeups/s = voluntary context switches of all zcusbd"
                     " threads per second" % meta.get("foot_seconds"))
        lines.append("  RSS, anonymous and shared-memory (PSS) MiB from /proc/PID/smaps_rollup; CPU % of one CPU")
        state_width = 30 if boots > 1 else 20  # "(boot K)" after each state
        lines.append("%-10s %-*s %8s %9s %10s %10s %11s %6s" % ("backend", state_width, "state", "RSS MiB", "anon MiB",
                                                                "shmem MiB", "wakeups/s", "involunt/s", "CPU %"))
        rows = []
        for r in fp:
            s = r["seconds"] or 1
            row = dict(r)
            row.update({"rss_mib": r["rss_kb"] / 1024, "wakeups_per_s": r["vcs"] / s,
                        "involuntary_per_s": r["nvcs"] / s, "cpu_percent": 100 * r["cpu"] / s})
            rows.append(row)
            lines.append("%-10s %-*s %8.2f %9.2f %10.2f %10.1f %11.1f %6.1f" % (
                r["backend"], state_width, r["state"], r["rss_kb"] / 1024, r["anon_kb"] / 1024, r["shmem_kb"] / 1024,
                row["wakeups_per_s"], row["involuntary_per_s"], row["cpu_percent"]))
        lines.append("")
        out["footprint"] = rows

    if bad:
        lines.append("PROBLEMS (the bench fails):")
        lines.extend("  " + b for b in bad)
    out["problems"] = bad
    text = "\n".join(lines).rstrip() + "\n"
    sys.stdout.write(text)
    with open(results + "/bench.txt", "w") as f:
        f.write(text)
    with open(results + "/bench.json", "w") as f:
        json.dump(out, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
