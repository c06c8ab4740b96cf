#!/bin/bash
# The sandboxed-app case: bubblewrap as an unprivileged user with new namespaces of every kind,
# a minimal /dev (no /dev/bus/usb), no /sys, /usr read-only and nothing of /run but the system
# bus socket: what a Flatpak app with --system-talk-name=org.zcusb1 gets. Inside, opening the
# device node fails and /sys is empty, yet 64 MiB stream through zcusbd (zcusbctl read from the
# SourceSink; zcusb-loopback out to the Loopback and back, every byte checked).
# timeout: 150
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

SIZE=64M
ensure_zcusbd
need_zcusbctl
command -v bwrap >/dev/null || fail "bwrap not found (apt-get install bubblewrap: tests/vm/packages.txt lists it)"
loopback=$(vm_tool zcusb-loopback)
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
lb=$(gadget_object lb) || fail "Loopback gadget not plugged (setup.log)"
read -r bus addr < <(gadget_busaddr ss)
node=$(printf '/dev/bus/usb/%03d/%03d' "$bus" "$addr")
[ -c "$node" ] || fail "the SourceSink's node $node does not exist outside the sandbox"
trap data_revoke EXIT

step "grant group $DATA_GROUP the SourceSink and the Loopback"
data_users
data_grant 0525:a4a0 0525:a4a1

# The sandbox: /usr read-only (with the merged-/usr links), a fresh /proc, bwrap's minimal /dev,
# tmpfs /tmp, the system bus socket alone under /run, the app's own binary under /app/bin.
SANDBOX=(bwrap --unshare-all --die-with-parent --new-session
	--ro-bind /usr /usr)
for l in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$l" ]; then
		SANDBOX+=(--symlink "$(readlink "/$l")" "/$l")
	elif [ -d "/$l" ]; then
		SANDBOX+=(--ro-bind "/$l" "/$l")
	fi
done
SANDBOX+=(--ro-bind /etc/ld.so.cache /etc/ld.so.cache
	--proc /proc --dev /dev --tmpfs /tmp
	--ro-bind /run/dbus/system_bus_socket /run/dbus/system_bus_socket
	--ro-bind "$loopback" /app/bin/zcusb-loopback
	--clearenv --setenv PATH /app/bin:/usr/bin --setenv HOME /tmp
	--setenv DBUS_SYSTEM_BUS_ADDRESS unix:path=/run/dbus/system_bus_socket)
printf '   sandbox: %s\n' "${SANDBOX[*]}"
sandboxed() { run_as zcin "${SANDBOX[@]}" "$@"; }

step "inside: namespaces, /sys, /dev, /run"
# One process per tool run: every start costs a good part of a second under TCG, so the
# sandboxed script uses bash builtins and prints KEY=VALUE lines.
NS=(user mnt pid net ipc uts)
mapfile -t outside_ns < <(readlink "${NS[@]/#//proc/self/ns/}")
# shellcheck disable=SC2016 # expanded inside the sandbox
sandboxed /usr/bin/bash -c '
	shopt -s nullglob dotglob globstar
	mapfile -t ns < <(readlink /proc/self/ns/{user,mnt,pid,net,ipc,uts})
	echo "ns=${ns[*]}"
	echo "ids=$UID ${GROUPS[*]}"
	echo "ls-sys=$(ls /sys 2>&1)"
	e=(/sys/*); echo "sys-entries=${#e[@]}"
	e=(/dev/*); echo "dev=${e[*]}"
	e=(/run/**); echo "run=${e[*]}"
	if { exec 3<>"$1"; } 2>/dev/null; then echo "open-rw=ok"; else echo "open-rw=failed"; fi
	if { exec 4<"$1"; } 2>/dev/null; then echo "open-ro=ok"; else echo "open-ro=failed"; fi
' sandbox "$node" >/tmp/inside.txt 2>/tmp/inside.err || fail "bwrap as zcin failed: $(cat /tmp/inside.err) (unprivileged user namespaces off? sysctl kernel.unprivileged_userns_clone)"
sed 's/^/   /' /tmp/inside.txt
sed 's/^/   stderr: /' /tmp/inside.err
declare -A inside
while IFS='=' read -r k v; do inside[$k]=$v; done </tmp/inside.txt
read -ra inside_ns <<<"${inside[ns]:-}"
for i in "${!NS[@]}"; do
	if [ -z "${inside_ns[i]:-}" ] || [ "${inside_ns[i]}" = "${outside_ns[i]}" ]; then
		fail "the sandbox shares the ${NS[i]} namespace (${inside_ns[i]:-none seen}, outside ${outside_ns[i]})"
	fi
done
note "every namespace (${NS[*]}) differs from the outside's"
[ "${inside[sys-entries]:-}" = 0 ] || fail "/sys inside the sandbox is not empty: ${inside[ls-sys]:-}"
note "ls /sys inside: ${inside[ls-sys]:-nothing}"
[[ " ${inside[dev]:-} " != *" /dev/bus "* ]] || fail "the sandbox's /dev has a bus/ directory: ${inside[dev]}"
[ "${inside[open-rw]:-}" = failed ] || fail "$node opened read-write inside the sandbox"
[ "${inside[open-ro]:-}" = failed ] || fail "$node opened read-only inside the sandbox"
note "$node cannot be opened inside (/dev is bwrap's minimal one: ${inside[dev]:-})"
[ "${inside[run]:-}" = "/run/ /run/dbus /run/dbus/system_bus_socket" ] ||
	fail "/run inside holds more than the bus socket: ${inside[run]:-}"
# Outside, the node is there and zcin could at least open it for reading (usbfs nodes are 0664):
# the sandbox, not the permissions, is what keeps the app away from it.
stat -c '   outside: %A %U:%G %n' "$node"

step "inside: zcusbctl list sees the granted devices"
sandboxed zcusbctl list >/tmp/list.txt 2>&1 || fail "zcusbctl list in the sandbox failed: $(cat /tmp/list.txt)"
sed 's/^/   /' /tmp/list.txt
for o in "$ss" "$lb"; do
	grep -q " $o " /tmp/list.txt || fail "zcusbctl list in the sandbox lacks $o"
done

step "inside: zcusbctl read $SIZE from the SourceSink"
sandboxed zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes "$SIZE" >/tmp/read.json 2>/tmp/read.err || {
	cat /tmp/read.err
	unit_journal zcusbd.service 15
	fail "zcusbctl read in the sandbox failed: $(cat /tmp/read.err)"
}
cat /tmp/read.json
[ "$(jfield bytes </tmp/read.json)" = "$(numfmt --from=iec "$SIZE")" ] || fail "read moved the wrong amount: $(cat /tmp/read.json)"
read_mbps=$(jfield mb_per_s </tmp/read.json)

step "inside: zcusb-loopback $SIZE out to the Loopback and back, every byte checked"
sandboxed zcusb-loopback --json --bytes "$SIZE" "$lb" >/tmp/loop.json 2>/tmp/loop.err || {
	cat /tmp/loop.err
	unit_journal zcusbd.service 15
	fail "zcusb-loopback in the sandbox failed: $(cat /tmp/loop.err)"
}
cat /tmp/loop.json
[ "$(jfield verified </tmp/loop.json)" = true ] || fail "zcusb-loopback did not verify: $(cat /tmp/loop.json)"
loop_mbps=$(jfield mb_per_s </tmp/loop.json)

step "rates inside the sandbox (MB/s; emulated CPU)"
note "read $read_mbps, loop (each way, checked) $loop_mbps"
echo "PASS"
