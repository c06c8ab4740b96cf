#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install build and run dependencies, build, install zcusbd, build and install
# zcusb.ko with DKMS for the running kernel (its headers too), start zcusbd
# (zcusb-load.service loads the module first) and list the USB devices it
# serves. Where the module cannot work (a container, a kernel without a headers
# package, Secure Boot refusing an unsigned module) it says why and what to do,
# and zcusbd uses usbfs. Run as root from the source tree on Debian 12.
# ZCUSB_NO_MODULE=1: leave zcusb.ko out. ZCUSB_BUILD_DIR=DIR: build in DIR, not
# build-install/ (an existing, configured DIR keeps its options: the VM test
# reuses the host's build, a compile under TCG would take many minutes).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=packages.sh
. scripts/packages.sh
# shellcheck source=module.sh
. scripts/module.sh

if [ "$(id -u)" != 0 ]; then
        echo "install.sh: run as root (it installs packages and system files)" >&2
        exit 1
fi

echo "==> Installing packages"
# shellcheck disable=SC2086
apt_install $BUILD_PACKAGES $RUN_PACKAGES

echo "==> Building"
# A build dir of its own, so a developer's differently configured build/ is left alone.
BUILD_DIR=${ZCUSB_BUILD_DIR:-build-install}
[ -d "$BUILD_DIR/meson-private" ] || meson setup "$BUILD_DIR" --prefix=/usr/local --sysconfdir=/etc -Dtests=false >/dev/null
meson compile -C "$BUILD_DIR" >/dev/null
echo "==> Installing"
meson install -C "$BUILD_DIR" --no-rebuild --quiet >/dev/null
# libzcusb in /usr/local/lib: the loader's cache must learn it (a prefix=/usr
# build needs none, and a full ldconfig is slow on slow machines).
if compgen -G "/usr/local/lib/*/libzcusb.so*" >/dev/null || compgen -G "/usr/local/lib/libzcusb.so*" >/dev/null; then
        ldconfig
fi

echo "==> zcusb.ko (DKMS)"
module_check
[ -n "$MODULE_SKIP" ] || module_install
[ -z "$MODULE_SKIP" ] || echo "    not installed: see the end"

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
        systemctl daemon-reload
        udevadm control --reload || true
        udevadm trigger --subsystem-match=usb --action=change || true
        systemctl reload dbus
        # restart, not start: a zcusbd running from an earlier install would keep
        # its old binary, and zcusb-load.service (pulled in by zcusbd) runs again.
        echo "==> systemctl restart zcusbd"
        systemctl restart zcusbd
        systemctl --no-pager --lines=0 status zcusbd || true
else
        # A container or chroot: no systemd to start services, so start the
        # system bus and zcusbd by hand. Their logs go to /var/log/zcusbd.log.
        echo "==> systemd is not PID 1 here (a container?): starting the system bus and zcusbd directly"
        if dbus-send --system --dest=org.freedesktop.DBus --type=method_call \
                /org/freedesktop/DBus org.freedesktop.DBus.ReloadConfig 2>/dev/null; then
                :
        else
                # None running (a socket or pid file left by one that was killed is stale).
                rm -f /run/dbus/system_bus_socket /run/dbus/pid
                mkdir -p /run/dbus
                dbus-daemon --system --fork
        fi
        [ -n "$MODULE_SKIP" ] || modprobe zcusb 2>/dev/null || true
        if ! busctl --system status org.zcusb1 >/dev/null 2>&1; then
                nohup /usr/local/sbin/zcusbd >>/var/log/zcusbd.log 2>&1 &
                for _ in $(seq 50); do
                        busctl --system status org.zcusb1 >/dev/null 2>&1 && break
                        sleep 0.1
                done
        fi
fi

module_explain
echo "==> zcusbctl status; zcusbctl list"
zcusbctl status
zcusbctl list
if [ -n "$MODULE_SKIP" ]; then
        echo "==> zcusbd uses usbfs (the kernel copies once), not zcusb.ko: $MODULE_SKIP"
else
        echo "==> zcusbd uses zcusb.ko: zero copy"
fi
