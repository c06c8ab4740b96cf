# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian 12 packages, in one place. Sourced by install.sh and test.sh.

# Build zcusbd, zcusbctl and their headers.
BUILD_PACKAGES="gcc make meson ninja-build pkg-config libsystemd-dev libudev-dev libkmod-dev
  libinih-dev libjson-c-dev libusb-1.0-0-dev libdbus-1-dev"
# Run them: systemd (units, pkg-config paths), udev (rules), the bus, module tools.
RUN_PACKAGES="systemd udev dbus kmod"
# zcusb.ko (install.sh; with the running kernel's linux-headers-* package):
# DKMS, and mokutil to tell whether Secure Boot refuses unsigned modules.
MODULE_PACKAGES="dkms mokutil"
# Tiers 1 and 2: clang build, sanitizers, umockdev, a private bus, setpriv.
TEST_PACKAGES="clang libclang-rt-14-dev umockdev libumockdev-dev gir1.2-umockdev-1.0 python3
  python3-gi python3-dbus util-linux"

# Tier 3 (QEMU) keeps its own list next to the rig.
vm_packages() {
        local f
        f="$(dirname "${BASH_SOURCE[0]}")/../tests/vm/packages.txt"
        [ -f "$f" ] && grep -v '^\s*#' "$f" | tr '\n' ' '
        return 0
}

apt_install() {
        local missing=() p
        export DEBIAN_FRONTEND=noninteractive
        # One dpkg-query for all (process starts are what a warm run costs).
        local installed
        installed=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "$@" 2>/dev/null |
                awk '$1 == "ii" { printf "%s ", $2 }' || true)"
        for p in "$@"; do
                [[ $installed == *" $p "* ]] || missing+=("$p")
        done
        # Nothing to fetch on a warm machine: no index refresh either.
        [ ${#missing[@]} = 0 ] && return 0
        echo "    apt-get install ${missing[*]}"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
