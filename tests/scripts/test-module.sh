#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# install.sh's zcusb.ko decisions (scripts/module.sh), each on a machine faked
# the way a user's presents it: a file tree (MODULE_SYSROOT) for /lib/modules,
# /sys, /proc and /etc/dkms, and fake systemd-detect-virt, apt-cache, mokutil,
# systemctl, modprobe (plus dkms, apt-get, dpkg-query and make, which must not
# run) alone in PATH with sed, grep, tail and cat. Checks MODULE_SKIP (empty or
# the exact sentence, naming the cause and the fix) and MODULE_HEADERS, and that
# install.sh's own lines around them print the sentence and exit 0.
# Nothing runs as root, touches the system or the network.
# Usage: test-module.sh SOURCE_DIR
# The fake commands' bodies are quoted to expand when they run:
# shellcheck disable=SC2016
# shellcheck source-path=SCRIPTDIR/../..
set -uo pipefail

src=$1
KVER_FAKE=6.1.0-99-amd64
unset ZCUSB_NO_MODULE MODULE_SYSROOT

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only these real tools: a command module.sh starts to use without a fake here
# is not found.
tools=$tmp/tools
mkdir "$tools"
for t in sed grep tail cat; do
        ln -s "$(command -v "$t")" "$tools/$t"
done

failures=0
case_name=""
case_failures=0
n=0

fail() {
        echo "FAIL $case_name: $*"
        failures=$((failures + 1))
}

case_result() { # of the case just run
        [ -z "$case_name" ] || [ "$failures" != "$case_failures" ] || echo "ok   $case_name"
        case_failures=$failures
}

# (Few processes per case: on a loaded machine each start costs milliseconds.)
put() { # PATH CONTENT: a file of the fake machine
        [ -d "$m/root/${1%/*}" ] || mkdir -p "$m/root/${1%/*}"
        printf '%s\n' "$2" >"$m/root/$1"
}

fake() { # NAME BODY: a command that logs its arguments to $FAKE_CALLS, then runs BODY
        local f=$m/bin/$1 new=""
        [ -e "$f" ] || new=1
        printf '#!/bin/bash\necho "%s $*" >>"$FAKE_CALLS"\n%s\n' "$1" "$2" >"$f"
        [ -z "$new" ] || chmod +x "$f"
}

# A Debian 12 machine where zcusb.ko can be built and loaded but is not loaded
# yet: booted on the distribution's kernel with its headers, not a container,
# no Secure Boot or lockdown, systemd PID 1. Each case copies it and changes
# what it is about.
m=$tmp/healthy
mkdir -p "$m/bin" "$m/root/lib/modules/$KVER_FAKE/kernel"
: >"$m/calls"
put "lib/modules/$KVER_FAKE/build/Makefile" "# headers"
put sys/kernel/security/lockdown "[none] integrity confidentiality"
put sys/module/module/parameters/sig_enforce N
put proc/1/comm systemd
fake uname "echo $KVER_FAKE"
fake systemd-detect-virt 'echo none; exit 1'
fake apt-cache "printf '%s\n' 'linux-headers-$KVER_FAKE:' '  Installed: (none)' '  Candidate: 6.1.153-1' \
        '  Version table:' '     6.1.153-1 500' '        500 http://deb.debian.org/debian bookworm/main amd64 Packages'"
fake mokutil 'echo "SecureBoot disabled"'
fake systemctl '[ "$1" = is-enabled ] && echo static; exit 0'
fake modprobe 'exit 0'
for c in dkms apt-get dpkg-query make; do
        fake "$c" "echo '$c must not run here' >&2; exit 1"
done

machine() { # NAME
        case_result
        case_name=$1
        n=$((n + 1))
        m=$tmp/$n
        cp -a "$tmp/healthy" "$m"
        export FAKE_CALLS=$m/calls
}

# FUNCTION...: runs them in turn in a subshell as install.sh does (set -euo
# pipefail, module.sh sourced from the source tree); $status is its exit status,
# $skip and $headers the decision, $out what it printed.
run() {
        (
                cd "$src" || exit 99
                PATH=$m/bin:$tools
                MODULE_SYSROOT=$m/root
                set -euo pipefail
                . scripts/module.sh
                for f in "$@"; do
                        "$f"
                done
                printf '%s' "$MODULE_SKIP" >"$m/skip"
                printf '%s' "$MODULE_HEADERS" >"$m/headers"
        ) >"$m/out" 2>&1
        status=$?
        skip="" headers=""
        [ ! -e "$m/skip" ] || skip=$(<"$m/skip")
        [ ! -e "$m/headers" ] || headers=$(<"$m/headers")
        out=$(<"$m/out")
        [ "$status" = 0 ] || fail "$* exited $status under set -euo pipefail (install.sh would stop): $out"
        if grep -Eq '^(dkms|apt-get|dpkg-query|make) ' "$m/calls"; then
                fail "ran $(grep -E '^(dkms|apt-get|dpkg-query|make) ' "$m/calls" | tr '\n' ';')"
        fi
}

expect() { # SKIP HEADERS: the exact decision
        [ "$skip" = "$1" ] || fail "MODULE_SKIP is \"$skip\", expected \"$1\""
        [ "$headers" = "$2" ] || fail "MODULE_HEADERS is \"$headers\", expected \"$2\""
}

names() { # CAUSE FIX: the sentence tells the user both
        [[ $skip == *"$1"* ]] || fail "the sentence does not name the cause \"$1\": $skip"
        [[ $skip == *"$2"* ]] || fail "the sentence does not name the fix \"$2\": $skip"
}

called() { # CALL: the fake command ran with these arguments
        grep -qxF "$1" "$m/calls" || fail "\"$1\" did not run (calls: $(tr '\n' ';' <"$m/calls"))"
}

not_called() { # COMMAND
        ! grep -q "^$1\( \|$\)" "$m/calls" || fail "$1 ran: $(grep "^$1" "$m/calls" | tr '\n' ';')"
}

printed() { # TEXT: a line of the output
        grep -qxF -- "$1" "$m/out" || fail "did not print \"$1\"; printed: $out"
}

no_headers_sentence="no headers package linux-headers-$KVER_FAKE in the apt sources (DKMS builds against the running kernel's headers; Debian removes old kernels' headers from its archive). Upgrade the kernel (apt-get update && apt-get install linux-image-amd64 linux-headers-amd64), reboot into it and run install.sh again."
container_sentence="this is a container (lxc): it runs the host's kernel, and only the host can load modules into it. For zero copy run zcusbd and zcusb.ko on the host (./scripts/install.sh there, or the Debian packages)."
signing_sentence() { # CAUSE CERTIFICATE [OTHER WAY OUT]
        echo "$1, and the kernel did not load zcusb.ko: it loads only modules signed by a key it trusts (modprobe zcusb shows the error). DKMS signed zcusb.ko with its own key; enroll it: mokutil --import $2, reboot, confirm the key in MokManager, then systemctl restart zcusbd. (Or ${3:-turn Secure Boot off in the firmware}.)"
}

# --- module_check: before anything is built ---

machine "check: a machine where the module can work"
ZCUSB_NO_MODULE=0 run module_check
expect "" ""
not_called apt-cache

machine "check: ZCUSB_NO_MODULE=1"
ZCUSB_NO_MODULE=1 run module_check
expect "ZCUSB_NO_MODULE=1 was given. Unset it and run install.sh again for zero copy." ""
names "ZCUSB_NO_MODULE=1 was given" "Unset it"
not_called systemd-detect-virt

machine "check: a container"
fake systemd-detect-virt 'echo lxc'
run module_check
expect "$container_sentence" ""
names "container (lxc)" "on the host"
called "systemd-detect-virt --container"

machine "check: no systemd-detect-virt (not a container, as far as can be told)"
rm "$m/bin/systemd-detect-virt"
run module_check
expect "" ""

machine "check: a kernel from outside the distribution (no module tree)"
rm -r "$m/root/lib/modules"
run module_check
expect "the running kernel $KVER_FAKE has no module tree (/lib/modules/$KVER_FAKE): it was not installed by the distribution (a kernel given by a VM host or a boot loader from outside). Boot a Debian kernel (apt-get install linux-image-amd64 linux-headers-amd64, reboot) and run install.sh again." ""
names "no module tree (/lib/modules/$KVER_FAKE)" "Boot a Debian kernel"
not_called apt-cache

machine "check: headers missing (build a dangling link), apt has them"
rm -r "$m/root/lib/modules/$KVER_FAKE/build"
ln -s "/usr/src/linux-headers-$KVER_FAKE" "$m/root/lib/modules/$KVER_FAKE/build"
run module_check
expect "" "linux-headers-$KVER_FAKE"
called "apt-cache policy linux-headers-$KVER_FAKE"

machine "check: headers missing, apt knows the package but has no candidate"
rm -r "$m/root/lib/modules/$KVER_FAKE/build"
fake apt-cache "printf '%s\n' 'linux-headers-$KVER_FAKE:' '  Installed: (none)' '  Candidate: (none)' '  Version table:'"
run module_check
expect "$no_headers_sentence" "linux-headers-$KVER_FAKE"
names "no headers package linux-headers-$KVER_FAKE" "Upgrade the kernel"

machine "check: headers missing, the package is gone from the archive"
rm -r "$m/root/lib/modules/$KVER_FAKE/build"
fake apt-cache 'exit 0' # what apt-cache policy prints for a name it does not know: nothing
run module_check
expect "$no_headers_sentence" "linux-headers-$KVER_FAKE"

machine "check: headers missing, apt-cache fails (a held lock, broken lists): said, not a silent stop"
rm -r "$m/root/lib/modules/$KVER_FAKE/build"
fake apt-cache 'echo "E: Could not get lock /var/lib/apt/lists/lock" >&2; exit 100'
run module_check
expect "$no_headers_sentence" "linux-headers-$KVER_FAKE"

# --- module_explain: after module_install and zcusbd's start, zcusb.ko is not loaded ---

machine "explain: module_check said why already"
fake systemd-detect-virt 'echo lxc'
run module_check module_explain
expect "$container_sentence" ""
not_called systemctl
not_called modprobe

machine "explain: zcusb.ko is loaded"
mkdir -p "$m/root/sys/module/zcusb"
run module_check module_explain
expect "" ""
not_called modprobe
not_called systemctl

machine "explain: zcusb-load.service masked"
fake systemctl '[ "$1" = is-enabled ] && { echo masked; exit 1; }; exit 0'
run module_check module_explain
expect "zcusb-load.service is masked (an administrator keeps the module out). For zero copy: systemctl unmask zcusb-load.service && systemctl restart zcusbd" ""
names "is masked" "systemctl unmask zcusb-load.service"
not_called modprobe

machine "explain: Secure Boot, with lockdown"
fake mokutil 'echo "SecureBoot enabled"'
put sys/kernel/security/lockdown "none [integrity] confidentiality"
run module_check module_explain
expect "$(signing_sentence "Secure Boot is enabled (kernel lockdown: integrity)" /var/lib/dkms/mok.pub)" ""
names "Secure Boot is enabled" "mokutil --import /var/lib/dkms/mok.pub"
called "mokutil --sb-state"
not_called modprobe

machine "explain: Secure Boot, a kernel without the lockdown LSM, DKMS's certificate configured"
fake mokutil 'echo "SecureBoot enabled"'
rm "$m/root/sys/kernel/security/lockdown"
put etc/dkms/framework.conf "#mok_certificate=/var/lib/dkms/mok.pub
mok_certificate=/root/dkms.der"
run module_check module_explain
expect "$(signing_sentence "Secure Boot is enabled" /root/dkms.der)" ""
names "Secure Boot is enabled" "mokutil --import /root/dkms.der"

machine "explain: lockdown set by hand"
put sys/kernel/security/lockdown "none integrity [confidentiality]"
run module_check module_explain
expect "$(signing_sentence "the kernel is locked down (confidentiality)" /var/lib/dkms/mok.pub \
	"boot without lockdown= on the kernel command line")" ""
names "locked down (confidentiality)" "mokutil --import"

machine "explain: module.sig_enforce=1"
put sys/module/module/parameters/sig_enforce Y
run module_check module_explain
expect "$(signing_sentence "the kernel enforces module signatures (module.sig_enforce=1)" /var/lib/dkms/mok.pub \
	"boot without module.sig_enforce=1 on the kernel command line")" ""
names "module.sig_enforce=1" "mokutil --import"

machine "explain: modprobe fails (no EFI, no lockdown LSM, no signature support)"
fake mokutil 'echo "EFI variables are not supported on this system" >&2; exit 1'
rm "$m/root/sys/kernel/security/lockdown" "$m/root/sys/module/module/parameters/sig_enforce"
fake modprobe "echo 'modprobe: FATAL: Module zcusb not found in directory /lib/modules/$KVER_FAKE' >&2; exit 1"
run module_check module_explain
expect "loading zcusb.ko failed: modprobe: FATAL: Module zcusb not found in directory /lib/modules/$KVER_FAKE. See dmesg and dkms status zcusb." ""
names "Module zcusb not found" "See dmesg and dkms status zcusb"
called "modprobe zcusb"

machine "explain: modprobe fails silently, mokutil not installed"
rm "$m/bin/mokutil"
fake modprobe 'exit 1'
run module_check module_explain
expect "loading zcusb.ko failed: modprobe zcusb failed. See dmesg and dkms status zcusb." ""
names "modprobe zcusb failed" "See dmesg"

machine "explain: modprobe loads it where zcusb-load.service did not: zcusbd restarted"
run module_check module_explain
expect "" ""
called "modprobe zcusb"
called "systemctl restart zcusbd"
printed "    zcusb-load.service did not load zcusb.ko, modprobe did (systemctl status zcusb-load says why): restarting zcusbd on it"

machine "explain: modprobe loads it, systemd is not PID 1 (nothing to restart)"
put proc/1/comm bash
run module_check module_explain
expect "" ""
called "modprobe zcusb"
not_called "systemctl restart"
[ -z "$out" ] || fail "printed: $out"

# --- module_mok_cert: the certificate DKMS signs with ---

machine "mok_cert: no /etc/dkms/framework.conf"
run module_mok_cert
[ "$out" = /var/lib/dkms/mok.pub ] || fail "printed \"$out\""

machine "mok_cert: Debian 12's framework.conf (commented out)"
put etc/dkms/framework.conf "## Add MOK
#mok_signing_key=/var/lib/dkms/mok.key
#mok_certificate=/var/lib/dkms/mok.pub"
run module_mok_cert
[ "$out" = /var/lib/dkms/mok.pub ] || fail "printed \"$out\""

machine "mok_cert: set twice (the last wins, as when dkms sources the file)"
put etc/dkms/framework.conf "mok_certificate=/etc/dkms/first.der
mok_certificate=/etc/dkms/mok.der"
run module_mok_cert
[ "$out" = /etc/dkms/mok.der ] || fail "printed \"$out\""

# --- install.sh's own lines around MODULE_SKIP, module_install stubbed ---

install_check=$(sed -n '/^module_check$/,/^$/p' "$src/scripts/install.sh")
install_report=$(sed -n '/^if \[ -n "\$MODULE_SKIP" \]; then$/,/^fi$/p' "$src/scripts/install.sh")
install_explains=$(grep -cx module_explain "$src/scripts/install.sh")

run_install() { # install.sh from module_check on, without building, services or the bus
        (
                cd "$src" || exit 99
                PATH=$m/bin:$tools
                MODULE_SYSROOT=$m/root
                set -euo pipefail
                . scripts/packages.sh
                . scripts/module.sh
                # shellcheck disable=SC2317 # called by install.sh's lines
                module_install() { echo "module_install" >>"$FAKE_CALLS"; }
                eval "$install_check"
                module_explain
                eval "$install_report"
        ) >"$m/out" 2>&1
        status=$?
        out=$(<"$m/out")
        [ "$status" = 0 ] || fail "exited $status: $out"
}

machine "install.sh: the lines this test runs are still there"
[ -n "$install_check" ] || fail "no module_check paragraph in scripts/install.sh: update this test"
[ -n "$install_report" ] || fail "no if [ -n \"\$MODULE_SKIP\" ] report in scripts/install.sh: update this test"
[ "$install_explains" = 1 ] || fail "module_explain called $install_explains times in scripts/install.sh: update this test"

machine "install.sh: a container goes on with usbfs and says why"
fake systemd-detect-virt 'echo lxc'
run_install
printed "    not installed: see the end"
printed "==> zcusbd uses usbfs (the kernel copies once), not zcusb.ko: $container_sentence"
not_called module_install

machine "install.sh: Secure Boot refuses the module it installed, says why at the end"
fake mokutil 'echo "SecureBoot enabled"'
run_install
called module_install
printed "==> zcusbd uses usbfs (the kernel copies once), not zcusb.ko: $(signing_sentence "Secure Boot is enabled" /var/lib/dkms/mok.pub)"
! grep -q "not installed" "$m/out" || fail "said \"not installed\" of a module it installed"

machine "install.sh: zcusb.ko loaded"
mkdir -p "$m/root/sys/module/zcusb"
run_install
called module_install
printed "==> zcusbd uses zcusb.ko: zero copy"

case_result
echo "$n cases, $failures failures"
[ "$failures" = 0 ]
