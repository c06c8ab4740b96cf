# shellcheck shell=bash
# For the cases that install zcusb as a user would (tests/vm/install-cases: the .debs, and
# scripts/install.sh), source after lib.sh and kmod.sh.
#
#   pkg_config                  ZCUSB_VM_SRC (the host's source tree), ZCUSB_VM_BUILD, the
#                               kernel headers' paths: from /run/zcusb-vm/config (run-vm.sh)
#   kheaders_link / _unlink     this kernel's headers where linux-headers-KVER puts them
#                               (/usr/src/linux-headers-*, which /lib/modules/KVER/build points
#                               to): links to the cache's unpacked packages (fetch-kernel.sh).
#                               dpkg -i of the cached .debs would unpack ~20000 files under TCG.
#   rig_tree_remove             take the rig's install of this build (/run/zcusb-vm/root, put
#                               over / by /init) off the guest's root, so the case starts on a
#                               machine without zcusb
#   dkms_module_gone            fail unless DKMS and /lib/modules know no zcusb any more
#   dkms_make_log               print the end of DKMS's build log (for a failing case)

PKG_X=/run/zcusb-vm

pkg_config() {
	# shellcheck source=/dev/null
	. "$PKG_X/config"
	[ -n "${ZCUSB_VM_SRC:-}" ] || fail "run-vm.sh wrote no ZCUSB_VM_SRC into $PKG_X/config"
	[ -x "$ZCUSB_VM_SRC/scripts/install.sh" ] ||
		fail "the host's source tree $ZCUSB_VM_SRC is not visible in the guest (under /tmp or /run? the guest has its own)"
	[ -f "$ZCUSB_VM_BUILD/meson-private/coredata.dat" ] ||
		fail "the build directory $ZCUSB_VM_BUILD is not visible in the guest (under /tmp or /run? the guest has its own)"
}

kheaders_link() {
	local common=${ZCUSB_KHEADERS_COMMON##*/}
	if [ ! -d "$ZCUSB_KHEADERS" ] || [ ! -d "$ZCUSB_KHEADERS_COMMON" ]; then
		fail "the cached kernel headers ($ZCUSB_KHEADERS) are not visible in the guest"
	fi
	ln -sfn "$ZCUSB_KHEADERS" "/usr/src/linux-headers-$KMOD_KVER"
	ln -sfn "$ZCUSB_KHEADERS_COMMON" "/usr/src/$common"
	[ -e "/lib/modules/$KMOD_KVER/build/Makefile" ] ||
		fail "/lib/modules/$KMOD_KVER/build/Makefile missing after linking the headers"
}
kheaders_unlink() {
	rm -f "/usr/src/linux-headers-$KMOD_KVER" "/usr/src/${ZCUSB_KHEADERS_COMMON##*/}"
}

rig_tree_remove() {
	(cd "$PKG_X/root" && find . ! -type d -print0) | (cd / && xargs -0r rm -f)
	(cd "$PKG_X/root" && find . -mindepth 1 -depth -type d -print0) | (cd / && xargs -0r rmdir 2>/dev/null) || true
	# (no daemon-reload: the package's postinst does one; dbus-daemon follows its
	# configuration directories itself)
}

dkms_module_gone() {
	local left
	# (both may fail on what they look for being gone: the purge may take DKMS's updates/
	# directory with it; under set -e that would end the case without a word)
	left=$(dkms status zcusb 2>/dev/null || true)
	[ -z "$left" ] || fail "dkms still knows zcusb: $left"
	[ ! -e /var/lib/dkms/zcusb ] || fail "/var/lib/dkms/zcusb is left"
	left=$(find "/lib/modules/$KMOD_KVER/updates" -name 'zcusb.ko*' 2>/dev/null || true)
	[ -z "$left" ] || fail "zcusb.ko left in /lib/modules: $left"
	if modinfo zcusb >/dev/null 2>&1; then fail "modinfo still finds zcusb"; fi
}

dkms_make_log() {
	local f
	for f in /var/lib/dkms/zcusb/*/build/make.log; do
		[ -f "$f" ] || continue
		echo "-- the end of $f:"
		tail -n 30 "$f"
	done
}
