#!/bin/bash
# The Debian packages (debian/, built on the host by tests/vm/build-debs.sh) on a machine
# without zcusb: the rig's install of this build is taken off the guest's root first. apt
# installs zcusb-dkms, zcusbd, libzcusb0 and libzcusb-dev from the .debs: DKMS builds zcusb.ko
# for the guest's kernel (its headers as linux-headers-KVER puts them, see guest/pkg.sh),
# zcusbd.service is enabled and running on zcusb.ko, the default configuration is a conffile, a
# read on the SourceSink gadget works. `apt-get purge` then stops the service and removes
# every file of the packages, their configuration and DKMS's build. The rig's tree is not put
# back (this VM is vm-install's own: 20-install-sh installs the build with install.sh next).
# needs: debs
# timeout: 900
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"
# shellcheck source=tests/vm/guest/pkg.sh
. "$ZCUSB_VM_GUEST/pkg.sh"

pkg_config
DEBS=$PKG_X/debs
PKGS=(zcusb-dkms zcusbd libzcusb0 libzcusb-dev)
export DEBIAN_FRONTEND=noninteractive

[ ! -f "$DEBS/UNAVAILABLE" ] || fail "no packages to install: $(cat "$DEBS/UNAVAILABLE")"
debs=()
for p in "${PKGS[@]}"; do
	f=$(compgen -G "$DEBS/${p}_*.deb") || fail "no ${p}_*.deb in $DEBS (tests/vm/build-debs.sh)"
	debs+=("$f")
done

cleanup() {
	local rc=$?
	set +e
	[ $rc = 0 ] || dkms_make_log
	dpkg --purge "${PKGS[@]}" >/dev/null 2>&1
	if kmod_loaded && ! rmmod zcusb; then echo "cleanup: rmmod zcusb refused" >&2; fi
	kheaders_unlink
}
trap cleanup EXIT
kmsg_mark

step "a machine without zcusb: the rig's install taken off, this kernel's headers as the package installs them"
systemctl stop zcusbd.service
if kmod_loaded; then fail "zcusb.ko is loaded before the case"; fi
rig_tree_remove
note "taken off at uptime $(cut -d' ' -f1 /proc/uptime)"
for f in /usr/sbin/zcusbd /usr/bin/zcusbctl /lib/systemd/system/zcusbd.service /etc/zcusb/zcusbd.conf; do
	[ ! -e "$f" ] || fail "$f is still there after taking the rig's tree off"
done
kheaders_link
# A container image's "start no services" (the host's / may be one) is no Debian machine's.
if [ -e /usr/sbin/policy-rc.d ]; then
	rm -f /usr/sbin/policy-rc.d
	note "removed /usr/sbin/policy-rc.d (the host image's; it keeps packages from starting services)"
fi
# man-db's trigger (mandb over every page) costs minutes under TCG and tests nothing here.
rm -f /var/lib/man-db/auto-update

step "apt-get install ${debs[*]##*/}"
t0=${EPOCHREALTIME/./}
# (straight into the log: when it is slow, the log shows where it is)
apt-get install -y --no-install-recommends "${debs[@]}" 2>&1 | sed -u 's/^/   | /' ||
	fail "apt-get install of the packages failed"
t1=${EPOCHREALTIME/./}
note "apt-get install: $(((t1 - t0) / 1000000)) s (guest time, TCG; includes DKMS's build)"
for p in "${PKGS[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] || fail "$p: $(dpkg-query -W -f='${Status}' "$p")"
done

step "DKMS built zcusb.ko for $KMOD_KVER"
st=$(dkms status zcusb -k "$KMOD_KVER" 2>/dev/null)
[[ $st == *": installed"* ]] || fail "dkms status: $st"
note "dkms status: $st"
path=$(modinfo -n zcusb) || fail "modinfo finds no zcusb"
[[ $path == */updates/dkms/zcusb.ko* ]] || fail "modinfo zcusb -> $path, expected DKMS's updates/dkms"
note "$path"

step "zcusbd.service: enabled, running, on zcusb.ko; zcusbd.conf is a conffile"
[ "$(systemctl is-enabled zcusbd.service)" = enabled ] || fail "zcusbd.service is $(systemctl is-enabled zcusbd.service)"
[ "$(systemctl is-active zcusbd.service)" = active ] || {
	unit_journal zcusbd.service >&2
	fail "zcusbd.service is $(systemctl is-active zcusbd.service) after the install"
}
[ "$(systemctl is-enabled zcusb-module-watch.path)" = enabled ] ||
	fail "zcusb-module-watch.path is $(systemctl is-enabled zcusb-module-watch.path)"
# apt configures zcusbd before zcusb-dkms (a Recommends orders nothing): zcusbd starts on
# usbfs, then DKMS's depmod wakes zcusb-module-watch.path, which restarts zcusbd onto the module.
backend_is_zcusb() {
	[ "$(busctl --system get-property org.zcusb1 /org/zcusb1 org.zcusb1.Manager Backend)" = 's "zcusb.ko"' ]
}
wait_until 120 "zcusbd on zcusb.ko (zcusb-module-watch: $(systemctl is-active zcusb-module-watch.service))" backend_is_zcusb
zcusbctl status >/tmp/status.txt || fail "zcusbctl status exited $?"
sed 's/^/   | /' /tmp/status.txt
grep -q '^ *Backend: zcusb.ko$' /tmp/status.txt || fail "zcusbd does not use zcusb.ko after the install"
journalctl -b --no-pager -o cat -u zcusb-module-watch.service | sed 's/^/   journal: /' | tail -n 4
dpkg-query -W -f='${Conffiles}\n' zcusbd | grep -q '^ /etc/zcusb/zcusbd.conf ' ||
	fail "/etc/zcusb/zcusbd.conf is no conffile of zcusbd: $(dpkg-query -W -f='${Conffiles}' zcusbd)"
pkg-config --modversion zcusb >/dev/null || fail "pkg-config finds no zcusb (libzcusb-dev)"

step "zcusbctl read 1M as root from the SourceSink's bulk IN"
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/read.json ||
	fail "zcusbctl read exited $?: $(cat /tmp/read.json)"
py - /tmp/read.json <<'PY' || fail "read: $(cat /tmp/read.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["bytes"] == 1 << 20 and r["errors"] == 0, r
PY

step "apt-get purge: the service stops, every file, the configuration and DKMS's build go"
files=$(dpkg -L "${PKGS[@]}" | sort -u)
t0=${EPOCHREALTIME/./}
apt-get purge -y "${PKGS[@]}" 2>&1 | sed -u 's/^/   | /' || fail "apt-get purge failed"
t1=${EPOCHREALTIME/./}
note "apt-get purge: $(((t1 - t0) / 1000000)) s"
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ -z "$st" ] || [ "$st" = "unknown ok not-installed" ] || fail "$p after purge: $st"
done
pgrep -x zcusbd >/dev/null && fail "zcusbd still runs after the purge"
if busctl --system status org.zcusb1 >/dev/null 2>&1; then fail "org.zcusb1 is still on the bus"; fi
[ "$(systemctl is-active zcusbd.service)" != active ] || fail "zcusbd.service still active"
left=()
while read -r f; do
	# every file and link goes; directories are checked below (most are shared: /usr/bin, ...),
	# and so are links to them (/lib -> usr/lib on a merged-/usr system is in the file list)
	if { [ -L "$f" ] || [ -e "$f" ]; } && [ ! -d "$f" ]; then left+=("$f"); fi
done <<<"$files"
[ ${#left[@]} = 0 ] || fail "left after the purge: ${left[*]}"
for f in /etc/zcusb "/usr/src/zcusb-"* /usr/share/doc/{zcusbd,libzcusb0,libzcusb-dev,zcusb-dkms} \
	/etc/systemd/system/multi-user.target.wants/zcusbd.service /etc/systemd/system/dbus-org.zcusb1.service; do
	[ ! -e "$f" ] || fail "$f is left after the purge"
done
dkms_module_gone
if kmod_loaded; then note "zcusb.ko stays loaded until rmmod or reboot (as every DKMS package's module)"; fi

kmsg_check
echo "PASS"
