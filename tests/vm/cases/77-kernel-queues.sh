#!/bin/bash
# In-kernel queues: zcusbd over zcusb.ko hands each queue to the module, which serves the ring
# itself. Checks: a claim reports ServedBy "kernel" and moves 64 MiB out and back through the
# Loopback byte for byte, the module's queue counter counting the entries and zcusbd's CPU time
# not growing per transfer; the claim's counters (Submitted, Completed, Failed, BytesIn,
# BytesOut, InFlight) count those transfers, read with the queue open (the module's live
# counters, QUEUE_STATS) and after CloseQueue (its final ones, kept by zcusbd); a hostile client (guest/hostile-kqueue.py, unprivileged) floods
# garbage entries, rewrites submitted slots from a second thread, rings the doorbell without pause
# from a third (the module's passes run in the ringing thread) and tampers with the indices
# for 8 s, then closes a second queue while a thread rings it (CloseQueue must return within
# 10 s: the detach waits for the pass queued on that thread): the ring ends BROKEN (the module reads sq_tail first even with a bogus cq_head), afterwards no queue, nothing in flight or pinned, and another
# client still works; a SIGKILLed streaming client leaves nothing pinned; zcusbd SIGKILLed
# under a streaming client: the module ends the queue (its control fd closed), the client
# stops with an error instead of hanging, nothing stays pinned, the restarted zcusbd serves a
# new client; KernelQueues=no: ServedBy "daemon", the same transfers and the same claim
# counters, the module's queue counter unchanged. The kernel logs no WARN/BUG/Oops.
# timeout: 360
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

loopback=$(vm_tool zcusb-loopback)
hostile=$ZCUSB_VM_GUEST/hostile-kqueue.py
exec {SLEEPFD}<> <(:)

bg_pids=()
cleanup() {
	local p
	for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	gadget_unplug lb >/dev/null 2>&1 || true
	gadget_plug lb >/dev/null 2>&1 || true
	data_revoke
	systemctl start zcusbd.service 2>/dev/null || true
	kmod_uninstall
	zcusbd_config_clear
	zcusbd_restart
}
trap cleanup EXIT
kmsg_mark

zcusbd_cpu_ticks() { # utime + stime of zcusbd, in clock ticks
	local pid f
	pid=$(systemctl show -P MainPID zcusbd.service)
	read -r -a f <"/proc/$pid/stat"
	echo $((f[13] + f[14]))
}
# wait until the module holds no queue, nothing in flight, nothing pinned (SECONDS)
wait_module_idle() {
	local i
	for ((i = 0; i < $1 * 20; i++)); do
		kmod_stats
		[ "$KS_kqueues" = 0 ] && [ "$KS_kq_in_flight" = 0 ] && [ "$KS_pinned_pages" = 0 ] && return 0
		read -rt 0.05 -u "$SLEEPFD" || true
	done
	fail "after $1 s the module still has kqueues $KS_kqueues, kq_in_flight $KS_kq_in_flight, pinned_pages $KS_pinned_pages"
}
# The Loopback echoes what was written and never read back to the next reader: after a client
# that left data in it (hostile, killed), replug it so the next one starts clean.
lb_replug() {
	gadget_unplug lb >/dev/null || fail "gadget_unplug lb failed"
	gadget_plug lb >/dev/null || fail "gadget_plug lb failed"
	lb=$(gadget_object lb) || fail "the Loopback gadget did not come back"
	wait_until 20 "zcusbd to see the replugged Loopback" busctl --system introspect org.zcusb1 "$lb"
}
loop_ok() { # BYTES [ARG...]: zcin moves BYTES out and back, every byte checked
	local bytes=$1
	shift
	run_as zcin "$loopback" --json --mode loop --bytes "$bytes" --queue-depth 4 "$@" "$lb" >/tmp/loop.json ||
		fail "zcusb-loopback --bytes $bytes exited $?: $(cat /tmp/loop.json)"
	[ "$(jfield verified </tmp/loop.json)" = true ] || fail "zcusb-loopback did not verify: $(cat /tmp/loop.json)"
	note "$(cat /tmp/loop.json)"
}
# After loop_ok BYTES --counters: the claim's counters, with the queue open and after
# CloseQueue, are the client's transfers (all completed) and BYTES each way, nothing failed or
# in flight. WHAT names the run.
check_counters() { # BYTES WHAT
	local n want field v when
	n=$(($(jfield transfers_out </tmp/loop.json) + $(jfield transfers_in </tmp/loop.json)))
	for when in open closed; do
		for want in submitted:$n completed:$n failed:0 bytes_in:$1 bytes_out:$1 in_flight:0; do
			field=${want%%:*}
			v=$(jfield "${when}_$field" </tmp/loop.json) || fail "$2: no ${when}_$field in $(cat /tmp/loop.json)"
			[ "$v" = "${want#*:}" ] ||
				fail "$2: the claim's $field with the queue $when is $v, expected ${want#*:} ($n transfers, $1 bytes each way)"
		done
	done
	note "$2: claim counters submitted = completed = $n, failed 0, bytes in = out = $1, in flight 0 (queue open and closed)"
}

step "zcusbd on zcusb.ko (Backend=zcusb), in-kernel queues on by default"
ensure_zcusbd
kmod_install
zcusbd_config "Backend=zcusb"
zcusbd_restart
lb=$(gadget_object lb) || fail "Loopback gadget not plugged (setup.log)"
data_users
data_grant 0525:a4a1

step "64 MiB out and back through a kernel-served queue; zcusbd is not woken per transfer"
kmod_stats
kq0=$KS_kq_transfers zc0=$KS_zerocopy_bytes
cpu0=$(zcusbd_cpu_ticks)
loop_ok 64M --counters
cpu1=$(zcusbd_cpu_ticks)
kmod_stats
note "kq_transfers +$((KS_kq_transfers - kq0)), zero copy +$((KS_zerocopy_bytes - zc0)) bytes, zcusbd CPU +$((cpu1 - cpu0)) ticks"
# 64 MiB of 64 KiB transfers each way: 2048 entries through the module
[ $((KS_kq_transfers - kq0)) -ge 2048 ] || fail "the module took $((KS_kq_transfers - kq0)) entries, expected >= 2048: the queue was not served in the kernel"
[ $((KS_zerocopy_bytes - zc0)) -gt 0 ] || fail "no zero-copy bytes"
# The daemon path costs zcusbd several wakeups per transfer (seconds of CPU under TCG for
# 4096 transfers); here it only sets the claim up and tears it down.
[ $((cpu1 - cpu0)) -lt 200 ] || fail "zcusbd used $((cpu1 - cpu0)) ticks of CPU for a kernel-served stream"
check_counters $((64 << 20)) "kernel-served"
wait_module_idle 5

step "hostile client: garbage entries, slots rewritten and doorbells rung from other threads, indices tampered, 8 s"
kmod_stats
broken0=$KS_kq_broken
t0=${EPOCHREALTIME/./}
run_as zcin timeout 60 python3 "$hostile" "$lb" 8 >/tmp/hostile.json 2>/tmp/hostile.err ||
	fail "hostile-kqueue.py exited $?: $(cat /tmp/hostile.json /tmp/hostile.err)"
note "$(cat /tmp/hostile.json) in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"
wait_module_idle 5
[ "$KS_kq_broken" -gt "$broken0" ] || fail "the module counted no BROKEN ring"
note "module after the hostile client: kqueues 0, kq_in_flight 0, pinned_pages 0"
step "another client works after it"
lb_replug
loop_ok 4M

step "SIGKILL of a client streaming through a kernel-served queue: nothing stays pinned"
spawn_as /tmp/kill.out /tmp/kill.err zcin "$loopback" --mode loop --bytes 4G --queue-depth 4 "$lb"
bg_pids+=("$SPAWNED")
wait_until 30 "the streaming client's queue in the module" bash -c "grep -q '^kqueues 1' $KMOD_DRV/stats"
read -rt 1 -u "$SLEEPFD" || true
kill -KILL "$SPAWNED"
wait "$SPAWNED" 2>/dev/null || true
wait_module_idle 3
lb_replug

step "zcusbd SIGKILLed under a streaming client: the module ends the queue, the client stops"
spawn_as /tmp/dk.out /tmp/dk.err zcin "$loopback" --mode loop --bytes 4G --queue-depth 4 "$lb"
client=$SPAWNED
bg_pids+=("$client")
wait_until 30 "the streaming client's queue in the module" bash -c "grep -q '^kqueues 1' $KMOD_DRV/stats"
read -rt 1 -u "$SLEEPFD" || true
systemctl kill -s KILL zcusbd.service
wait_module_idle 5
wait_exit "$client" 20 "the client of the killed zcusbd"
note "client exit status $EXIT_STATUS after ${EXIT_AFTER}s: $(tail -c 300 /tmp/dk.err)"
[ "$EXIT_STATUS" != 0 ] || fail "the client of a killed zcusbd exited 0"
systemctl reset-failed zcusbd.service 2>/dev/null || true
zcusbd_restart
lb_replug
loop_ok 4M

step "KernelQueues=no: zcusbd serves the queues over zcusb.ko; the module's queue counter stays"
zcusbd_config "Backend=zcusb" "KernelQueues=no"
zcusbd_restart
kmod_stats
kq0=$KS_kq_transfers
loop_ok 64M --counters
check_counters $((64 << 20)) "daemon-served"
run_as zcin timeout 60 python3 "$hostile" "$lb" 2 daemon >/tmp/hostile2.json 2>/tmp/hostile2.err ||
	fail "hostile-kqueue.py (daemon-served) exited $?: $(cat /tmp/hostile2.json /tmp/hostile2.err)"
note "$(cat /tmp/hostile2.json)"
lb_replug
kmod_stats
[ "$KS_kq_transfers" = "$kq0" ] || fail "the module took $((KS_kq_transfers - kq0)) entries with KernelQueues=no"
wait_module_idle 5

kmsg_check
