# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# zcusb.ko for install.sh: the running kernel's headers, the module built and
# installed by DKMS (so kernel upgrades rebuild it). Sourced; needs packages.sh.
#
#   module_check      sets MODULE_SKIP to why the module cannot work here and
#                     what to do (empty: go on); MODULE_HEADERS to the headers
#                     package to install (empty: present already)
#   module_install    installs dkms (+ headers), `dkms install`s kmod/ for the
#                     running kernel; sets MODULE_SKIP on failure
#   module_explain    after zcusbd started: why zcusb.ko is not loaded, if it is not

MODULE_VERSION=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod/dkms.conf)
MODULE_SRC=/usr/src/zcusb-$MODULE_VERSION
MODULE_SKIP=""
MODULE_HEADERS=""
KVER=$(uname -r)
# Prefixed to the files the checks read (/lib/modules, /sys, /proc, /etc/dkms):
# tests point it at a fake machine. Empty: this one.
MODULE_SYSROOT=${MODULE_SYSROOT:-}

# The kernel refuses modules not signed by a key it trusts: Secure Boot (through
# lockdown), lockdown set by hand, or module.sig_enforce. Prints the cause.
module_signing_required() {
        local sb="" lockdown="" enforce=""
        if command -v mokutil >/dev/null 2>&1 && mokutil --sb-state 2>/dev/null | grep -q 'SecureBoot enabled'; then
                sb=1
        fi
        if [ -r "$MODULE_SYSROOT/sys/kernel/security/lockdown" ]; then
                # "none [integrity] confidentiality": the bracketed word is the mode
                lockdown=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$MODULE_SYSROOT/sys/kernel/security/lockdown")
                [ "$lockdown" = none ] && lockdown=""
        fi
        [ -r "$MODULE_SYSROOT/sys/module/module/parameters/sig_enforce" ] &&
                read -r enforce <"$MODULE_SYSROOT/sys/module/module/parameters/sig_enforce"
        [ "$enforce" = Y ] || enforce=""
        if [ -n "$sb" ]; then
                echo "Secure Boot is enabled${lockdown:+ (kernel lockdown: $lockdown)}"
        elif [ -n "$lockdown" ]; then
                echo "the kernel is locked down ($lockdown)"
        elif [ -n "$enforce" ]; then
                echo "the kernel enforces module signatures (module.sig_enforce=1)"
        else
                return 1
        fi
}

module_check() {
        local virt policy
        if [ "${ZCUSB_NO_MODULE:-0}" = 1 ]; then
                MODULE_SKIP="ZCUSB_NO_MODULE=1 was given. Unset it and run install.sh again for zero copy."
                return
        fi
        if virt=$(systemd-detect-virt --container 2>/dev/null); then
                MODULE_SKIP="this is a container ($virt): it runs the host's kernel, and only the host can load modules into it. For zero copy run zcusbd and zcusb.ko on the host (./scripts/install.sh there, or the Debian packages)."
                return
        fi
        if [ ! -d "$MODULE_SYSROOT/lib/modules/$KVER/kernel" ]; then
                MODULE_SKIP="the running kernel $KVER has no module tree (/lib/modules/$KVER): it was not installed by the distribution (a kernel given by a VM host or a boot loader from outside). Boot a Debian kernel (apt-get install linux-image-amd64 linux-headers-amd64, reboot) and run install.sh again."
                return
        fi
        [ -e "$MODULE_SYSROOT/lib/modules/$KVER/build/Makefile" ] && return
        MODULE_HEADERS=linux-headers-$KVER
        # (|| true: an apt-cache that fails, e.g. on a lock, reads as "no candidate"
        # below instead of ending install.sh without a word under set -e)
        policy=$(apt-cache policy "$MODULE_HEADERS" 2>/dev/null | sed -n 's/^ *Candidate: *//p' || true)
        if [ -z "$policy" ] || [ "$policy" = "(none)" ]; then
                MODULE_SKIP="no headers package $MODULE_HEADERS in the apt sources (DKMS builds against the running kernel's headers; Debian removes old kernels' headers from its archive). Upgrade the kernel (apt-get update && apt-get install linux-image-amd64 linux-headers-amd64), reboot into it and run install.sh again."
        fi
}

module_install() {
        local log=/var/lib/dkms/zcusb/$MODULE_VERSION/build/make.log installed="" tmp
        # shellcheck disable=SC2086 # MODULE_PACKAGES is words
        apt_install $MODULE_PACKAGES $MODULE_HEADERS
        if dpkg-query -W -f='${Status}' zcusb-dkms 2>/dev/null | grep -q "install ok installed"; then
                echo "    the zcusb-dkms package provides $MODULE_SRC: using it"
        else
                tmp=$(mktemp -d)
                make -s -C kmod dkms-source DEST="$tmp" >/dev/null
                if ! diff -rq "$tmp" "$MODULE_SRC" >/dev/null 2>&1; then
                        # New or changed sources: DKMS would keep the old build otherwise.
                        dkms remove "zcusb/$MODULE_VERSION" --all >/dev/null 2>&1 || true
                        rm -rf "$MODULE_SRC"
                        cp -r "$tmp" "$MODULE_SRC"
                        chmod 0755 "$MODULE_SRC"
                fi
                rm -rf "$tmp"
        fi
        # (no grep -q on dkms's output: pipefail would see its SIGPIPE)
        [[ $(dkms status -m zcusb -v "$MODULE_VERSION" -k "$KVER" 2>/dev/null) == *": installed"* ]] && installed=1
        if [ -z "$installed" ]; then
                [ -n "$(dkms status -m zcusb -v "$MODULE_VERSION" 2>/dev/null)" ] ||
                        dkms add "zcusb/$MODULE_VERSION" >/dev/null
                if ! dkms install "zcusb/$MODULE_VERSION" -k "$KVER" >/dev/null 2>&1; then
                        MODULE_SKIP="DKMS could not build or install zcusb.ko for $KVER: see $log (dkms install zcusb/$MODULE_VERSION -k $KVER shows the error). Please report it with that log."
                        return
                fi
        fi
        echo "    zcusb.ko $MODULE_VERSION installed for $KVER by DKMS (rebuilt on kernel upgrades)"
        # A loaded older build stays in use: unload it (refused while a claim
        # holds /dev/zcusb open; then it is used until the next boot).
        if [ -e "$MODULE_SYSROOT/sys/module/zcusb" ] && [ -z "$installed" ]; then
                modprobe -r zcusb 2>/dev/null ||
                        echo "    an older zcusb.ko is loaded and in use: the new one loads at the next boot"
        fi
}

# zcusbd is up; if zcusb.ko is not loaded, say why (and load it if nothing
# but the unit's run failed).
module_explain() {
        local err signing instead
        [ -z "$MODULE_SKIP" ] || return 0
        [ -e "$MODULE_SYSROOT/sys/module/zcusb" ] && return 0
        if [ "$(systemctl is-enabled zcusb-load.service 2>/dev/null)" = masked ]; then
                MODULE_SKIP="zcusb-load.service is masked (an administrator keeps the module out). For zero copy: systemctl unmask zcusb-load.service && systemctl restart zcusbd"
        elif signing=$(module_signing_required); then
                case $signing in
                "Secure Boot"*) instead="turn Secure Boot off in the firmware" ;;
                *"locked down"*) instead="boot without lockdown= on the kernel command line" ;;
                *) instead="boot without module.sig_enforce=1 on the kernel command line" ;;
                esac
                MODULE_SKIP="$signing, and the kernel did not load zcusb.ko: it loads only modules signed by a key it trusts (modprobe zcusb shows the error). DKMS signed zcusb.ko with its own key; enroll it: mokutil --import $(module_mok_cert), reboot, confirm the key in MokManager, then systemctl restart zcusbd. (Or $instead.)"
        elif ! err=$(modprobe zcusb 2>&1); then
                MODULE_SKIP="loading zcusb.ko failed: ${err:-modprobe zcusb failed}. See dmesg and dkms status zcusb."
        elif [ "$(cat "$MODULE_SYSROOT/proc/1/comm" 2>/dev/null)" = systemd ]; then
                echo "    zcusb-load.service did not load zcusb.ko, modprobe did (systemctl status zcusb-load says why): restarting zcusbd on it"
                systemctl restart zcusbd
        fi
}

module_mok_cert() {
        local c=""
        [ -r "$MODULE_SYSROOT/etc/dkms/framework.conf" ] &&
                c=$(sed -n 's/^mok_certificate=\(.*\)/\1/p' "$MODULE_SYSROOT/etc/dkms/framework.conf" | tail -n1)
        echo "${c:-/var/lib/dkms/mok.pub}"
}
