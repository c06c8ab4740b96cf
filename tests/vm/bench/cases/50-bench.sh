#!/bin/bash
# The benchmark's guest side (tests/vm/bench/run-bench.sh boots it; not a test). On the
# SourceSink gadget (bulk IN 0x81 from its source, bulk OUT 0x02 into its sink), in one boot,
# ROUNDS rounds, each running every contender once per direction, interleaved:
#   zcusb.ko         zcusbd as shipped (Backend=auto picks zcusb.ko: checked on every run)
#   zcusb.ko-nozc    the same with zcusb.ko's disable_zerocopy=1 (bounce buffers)
#   usbfs            zcusbd, Backend=usbfs
#   libusb-sync, libusb-async-malloc, libusb-async-devmem   libusb-bench as root, no zcusbd
#                    in the path (zcusbd runs, idle)
# Same transfer size and queue depth everywhere (libusb-sync: one at a time by nature).
# Writes bench.jsonl (one line per run) and bench.txt (the table of medians) to the results.
# timeout: 840
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

MIB=128 ROUNDS=3 SIZE=65536 DEPTH=8
# run-bench.sh's choices
# shellcheck source=/dev/null
[ ! -f "${BASH_SOURCE[0]%/*}/bench.env" ] || . "${BASH_SOURCE[0]%/*}/bench.env"
OUT=$ZCUSB_VM_RESULTS/bench.jsonl
: >"$OUT"
zb=$(vm_tool zcusb-bench)
lb=$(vm_tool libusb-bench)
ss=$(gadget_sysfs ss) || fail "SourceSink gadget not plugged (setup.log)"
ss_intf=${ss##*/}:1.0

cleanup() {
	kmod_uninstall
	zcusbd_config_clear
	zcusbd_restart
}
trap cleanup EXIT

step "zcusb.ko installed and loaded; SourceSink $ss, $MIB MiB per run, ${SIZE}-byte transfers, depth $DEPTH, $ROUNDS rounds"
ensure_zcusbd
kmod_install
zcusbd_restart
kmod_loaded || fail "zcusb.ko not loaded by zcusb-load.service"

CONFIGURED=auto
daemon_backend() { # auto|usbfs: restart zcusbd only when it changes
	[ "$CONFIGURED" = "$1" ] && return 0
	if [ "$1" = auto ]; then zcusbd_config_clear; else zcusbd_config "Backend=$1"; fi
	zcusbd_restart
	CONFIGURED=$1
}

# Busy time of the whole guest so far, in USER_HZ ticks (/proc/stat: user nice system irq
# softirq steal; not idle, iowait): it includes the emulated controller and gadget.
guest_ticks() {
	local _ user nice system irq softirq steal
	read -r _ user nice system _ _ irq softirq steal _ </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# record LABEL DIR CMD...: run one contender, append its JSON line (plus zcusb.ko's stats
# deltas and the whole guest's CPU seconds) to bench.jsonl.
record() {
	local label=$1 dir=$2 line zc bo g0 g1
	shift 2
	kmod_stats
	zc=$KS_zerocopy_bytes bo=$KS_bounced_bytes
	g0=$(guest_ticks)
	if ! line=$("$@" 2>/tmp/bench.err); then
		cat /tmp/bench.err
		fail "$label $dir failed (above)"
	fi
	g1=$(guest_ticks)
	kmod_stats
	line="${line%\}},\"zc_bytes\":$((KS_zerocopy_bytes - zc)),\"bounced_bytes\":$((KS_bounced_bytes - bo))"
	line+=",\"guest_cpu\":$(((g1 - g0) / 100)).$(printf '%02d' $(((g1 - g0) % 100))),\"round\":$round}"
	printf '%s\n' "$line" >>"$OUT"
	printf '   %-20s %-3s %s\n' "$label" "$dir" "$line"
}

zcusbd_run() { # LABEL DIR
	local pid
	pid=$(systemctl show -P MainPID zcusbd.service)
	record "$1" "$2" "$zb" --device 0525:a4a0 --size "$SIZE" --depth "$DEPTH" --daemon-pid "$pid" "$1" "$2" "$MIB"
}
libusb_run() { # MODE DIR
	[ "$(intf_driver "$ss_intf")" = "" ] || fail "$ss_intf is bound to $(intf_driver "$ss_intf") before a libusb run"
	record "libusb-$1" "$2" "$lb" --size "$SIZE" --depth "$DEPTH" "$1" "$2" "$MIB"
}

for ((round = 1; round <= ROUNDS; round++)); do
	step "round $round of $ROUNDS"
	daemon_backend auto
	for dir in in out; do
		kmod_param disable_zerocopy 0
		zcusbd_run zcusb.ko "$dir"
		kmod_param disable_zerocopy 1
		zcusbd_run zcusb.ko-nozc "$dir"
		kmod_param disable_zerocopy 0
	done
	daemon_backend usbfs
	for dir in in out; do
		zcusbd_run usbfs "$dir"
	done
	for dir in in out; do
		for mode in sync async-malloc async-devmem; do
			libusb_run "$mode" "$dir"
		done
	done
done

step "medians"
py - "$OUT" "$ZCUSB_VM_RESULTS/bench.txt" "$MIB" "$SIZE" "$DEPTH" "$ROUNDS" <<'PY' || fail "the summary failed (above)"
import json, statistics, sys
src, dst, mib, size, depth, rounds = sys.argv[1:]
runs = [json.loads(l) for l in open(src) if l.strip()]
order = ["zcusb.ko", "zcusb.ko-nozc", "usbfs", "libusb-sync", "libusb-async-malloc", "libusb-async-devmem"]
backend = {"zcusb.ko": "zcusb.ko", "zcusb.ko-nozc": "zcusb.ko", "usbfs": "usbfs"}
med = {}
bad = []
for c in order:
    for d in ("in", "out"):
        rs = [r for r in runs if r["contender"] == c and r["dir"] == d]
        if not rs:
            bad.append("no runs of %s %s" % (c, d)); continue
        for r in rs:
            if c in backend and r["backend"] != backend[c]:
                bad.append("%s %s round %d ran over %s" % (c, d, r["round"], r["backend"]))
            if c == "zcusb.ko" and (r["bounced_bytes"] != 0 or r["zc_bytes"] < r["bytes"]):
                bad.append("%s %s round %d: zero copy %d, bounced %d" % (c, d, r["round"], r["zc_bytes"], r["bounced_bytes"]))
            if c == "zcusb.ko-nozc" and (r["zc_bytes"] != 0 or r["bounced_bytes"] < r["bytes"]):
                bad.append("%s %s round %d: zero copy %d, bounced %d" % (c, d, r["round"], r["zc_bytes"], r["bounced_bytes"]))
        mbs = statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in rs)
        cli = statistics.median(r["client_cpu"] / (r["bytes"] / 2**30) for r in rs)
        dmn = statistics.median(r["daemon_cpu"] / (r["bytes"] / 2**30) for r in rs)
        tot = statistics.median((r["client_cpu"] + r["daemon_cpu"]) / (r["bytes"] / 2**30) for r in rs)
        gst = statistics.median(r["guest_cpu"] / (r["bytes"] / 2**30) for r in rs)
        med[c, d] = (mbs, cli, dmn, tot, gst)
lines = ["SourceSink (dummy_hcd, high speed), %s MiB per run, %s-byte transfers, depth %s (libusb-sync: 1), "
         "median of %s interleaved runs per row, one boot, TCG" % (mib, size, depth, rounds),
         "CPU s/GiB = user+system seconds per GiB moved of every process on the path: client + zcusbd"
         " (libusb: client only); x = ratio to libusb-async-malloc in the same direction;",
         "guest = busy seconds per GiB of the whole guest (both vCPUs), which includes the emulated"
         " controller and gadget (the same work for every contender)",
         "",
         "%-20s %-4s %8s %7s %9s %9s %10s %7s %9s" % ("contender", "dir", "MB/s", "x MB/s", "client", "zcusbd",
                                                      "CPU s/GiB", "x CPU", "guest")]
for d in ("in", "out"):
    base = med.get(("libusb-async-malloc", d))
    for c in order:
        if (c, d) not in med:
            continue
        mbs, cli, dmn, tot, gst = med[c, d]
        lines.append("%-20s %-4s %8.1f %7.2f %9.2f %9.2f %10.2f %7.2f %9.2f" % (
            c, d, mbs, mbs / base[0] if base else 0, cli, dmn, tot, tot / base[3] if base and base[3] else 0, gst))
    lines.append("")
text = "\n".join(lines)
print(text)
open(dst, "w").write(text + "\n")
if bad:
    print("\n".join("FAIL: " + b for b in bad))
    sys.exit(1)
PY
echo "DONE"
