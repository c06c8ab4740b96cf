#!/bin/bash
# The data-path cases again, with in-kernel queues: zcusb.ko installed, zcusbd on it
# (Backend=zcusb; KernelQueues= is on by default), so every queue those cases open is served
# by the module. Runs 50-transfer (256 MiB IN, OUT and out-and-back, every byte checked),
# 55-sandbox, 60-kill-client, 65-hotplug-stream, 70-stop-with-clients and 72-ffs-faults in
# one go with ZCUSB_VM_QUEUES=kernel (a case adapts what differs on zcusb.ko to it). After
# each: the module holds no queue, nothing in flight or pinned; at the end the kernel log is
# clean. One module install for all of them keeps the extra CI time to the cases' own.
# timeout: 900
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

CASES=(50-transfer 55-sandbox 60-kill-client 65-hotplug-stream 70-stop-with-clients 72-ffs-faults)
exec {SLEEPFD}<> <(:)
cleanup() {
	systemctl start zcusbd.service 2>/dev/null || true
	kmod_uninstall
	zcusbd_config_clear
	zcusbd_restart
}
trap cleanup EXIT
kmsg_mark

step "zcusb.ko installed, zcusbd on it: queues served by the module"
ensure_zcusbd
kmod_install
zcusbd_config "Backend=zcusb"
zcusbd_restart
kmod_stats
kq0=$KS_kq_transfers

failed=()
for c in "${CASES[@]}"; do
	step "case $c with in-kernel queues"
	t0=${EPOCHREALTIME/./}
	set +e
	(cd "$(mktemp -d)" && ZCUSB_VM_QUEUES=kernel exec bash "${ZCUSB_VM_GUEST%/guest}/cases/$c.sh") \
		>"/tmp/kq-$c.log" 2>&1 </dev/null
	rc=$?
	set -e
	sed "s/^/   [$c] /" "/tmp/kq-$c.log"
	note "$c: rc $rc in $(((${EPOCHREALTIME/./} - t0) / 1000000)) s"
	[ "$rc" = 0 ] || failed+=("$c")
	systemctl start zcusbd.service 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kmod_stats
		[ "$KS_kqueues" = 0 ] && [ "$KS_kq_in_flight" = 0 ] && [ "$KS_pinned_pages" = 0 ] && break
		read -rt 0.05 -u "$SLEEPFD" || true
	done
	note "module after $c: kqueues $KS_kqueues kq_in_flight $KS_kq_in_flight pinned_pages $KS_pinned_pages"
	[ "$KS_kqueues" = 0 ] && [ "$KS_kq_in_flight" = 0 ] && [ "$KS_pinned_pages" = 0 ] ||
		failed+=("$c(module not idle)")
done
kmod_stats
note "entries the module took over all cases: $((KS_kq_transfers - kq0))"
[ $((KS_kq_transfers - kq0)) -gt 10000 ] || failed+=("few entries through the module: $((KS_kq_transfers - kq0))")
kmsg_check
[ ${#failed[@]} = 0 ] || fail "with in-kernel queues: ${failed[*]}"
