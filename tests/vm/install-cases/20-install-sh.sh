#!/bin/bash
# The README's first command on a machine with a distribution kernel: scripts/install.sh (run
# from the host's source tree, which the guest sees read-only under its tmpfs overlay) installs
# this kernel's headers if missing, builds and installs zcusb.ko with DKMS, starts zcusbd, whose
# zcusb-load.service loads the module, and ends on "Backend: zcusb.ko". Then a read on the
# SourceSink gadget goes straight into the client's pages (the driver's zero-copy counter
# grows). The headers are the cached Debian package's files, put where linux-headers-KVER
# puts them (guest/pkg.sh), so install.sh finds them installed; it builds in the host's build
# directory of this run (ZCUSB_BUILD_DIR: it is up to date, and a compile under TCG takes many
# minutes), so its installing, DKMS and systemd steps are what run here. Leaves the guest
# with zcusb installed (vm-install's own VM).
# timeout: 900
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"
# shellcheck source=tests/vm/guest/pkg.sh
. "$ZCUSB_VM_GUEST/pkg.sh"

pkg_config
VER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$ZCUSB_VM_SRC/kmod/dkms.conf")

cleanup() {
	local rc=$?
	[ $rc = 0 ] || dkms_make_log
}
trap cleanup EXIT
kmsg_mark

step "start: no zcusb.ko installed or loaded, no DKMS state, this kernel's headers as the package installs them"
# (what a failed 10-deb-packages may have left)
dpkg --purge zcusb-dkms zcusbd libzcusb0 libzcusb-dev >/dev/null 2>&1 || true
if kmod_loaded; then rmmod zcusb || fail "zcusb.ko is loaded before the case and rmmod refuses"; fi
if kmod_loaded; then fail "zcusb.ko is loaded before the case"; fi
if modinfo zcusb >/dev/null 2>&1; then fail "a zcusb.ko is installed before the case: $(modinfo -n zcusb)"; fi
st=$(dkms status zcusb 2>/dev/null)
[ -z "$st" ] || fail "dkms knows zcusb before the case: $st"
kheaders_link
note "/lib/modules/$KMOD_KVER/build -> $(readlink -f "/lib/modules/$KMOD_KVER/build")"

step "ZCUSB_BUILD_DIR=$ZCUSB_VM_BUILD $ZCUSB_VM_SRC/scripts/install.sh"
t0=${EPOCHREALTIME/./}
set +e
ZCUSB_BUILD_DIR=$ZCUSB_VM_BUILD "$ZCUSB_VM_SRC/scripts/install.sh" 2>&1 |
	while IFS= read -r line; do read -r up _ </proc/uptime; printf '   | [%s] %s\n' "$up" "$line"; echo "$line" >>/tmp/install.out; done
rc=${PIPESTATUS[0]}
set -e
t1=${EPOCHREALTIME/./}
note "install.sh: exit $rc after $(((t1 - t0) / 1000000)) s (guest time, TCG)"
[ "$rc" = 0 ] || fail "install.sh exited $rc"
grep -q '^ *Backend: zcusb.ko$' /tmp/install.out || fail "install.sh's zcusbctl status does not show 'Backend: zcusb.ko'"
grep -q '^==> zcusbd uses zcusb.ko' /tmp/install.out || fail "install.sh does not end on zcusb.ko"

step "DKMS built and installed zcusb.ko $VER for $KMOD_KVER; zcusb-load.service loaded it"
st=$(dkms status "zcusb/$VER" -k "$KMOD_KVER" 2>/dev/null)
[[ $st == *": installed"* ]] || fail "dkms status: $st"
note "dkms status: $st"
path=$(modinfo -n zcusb) || fail "modinfo finds no zcusb"
[[ $path == */updates/dkms/zcusb.ko* ]] || fail "modinfo zcusb -> $path, expected DKMS's updates/dkms"
note "$path, version $(cat /sys/module/zcusb/version)"
kmod_loaded || fail "zcusb.ko is not loaded"
# (zcusbd itself cannot load modules: ProtectKernelModules=yes)
ran=$(systemctl show -P ExecMainExitTimestampMonotonic zcusb-load.service)
[ "${ran:-0}" != 0 ] || fail "zcusb-load.service did not run: $(unit_journal zcusb-load.service 5)"

step "zcusbctl read 1M as root from the SourceSink's bulk IN: through zcusb.ko, zero copy"
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
kmod_stats
zc0=$KS_zerocopy_bytes
zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/read.json ||
	fail "zcusbctl read exited $?: $(cat /tmp/read.json)"
py - /tmp/read.json <<'PY' || fail "read: $(cat /tmp/read.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["bytes"] == 1 << 20 and r["errors"] == 0, r
PY
kmod_stats
note "zero-copy bytes $zc0 -> $KS_zerocopy_bytes"
[ $((KS_zerocopy_bytes - zc0)) -ge $((1 << 20)) ] || fail "the driver's zerocopy_bytes grew by $((KS_zerocopy_bytes - zc0)), expected >= 1 MiB"

kmsg_check
echo "PASS"
