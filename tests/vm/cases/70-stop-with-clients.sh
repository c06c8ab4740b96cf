#!/bin/bash
# `systemctl stop zcusbd` while a client streams with a long --timeout: the stop completes cleanly
# (exit 0, unit inactive with Result=success, not failed), the client ends at once reporting the
# shutdown (-ESHUTDOWN: "zcusbd is shutting down"/"zcusbd stopped"; exit 6, a transfer failed, per
# client/CLI.md) rather than waiting for its timeout, and zcusbd logs nothing at err or worse.
# zcusbd is started again at the end and serves a read. Then zcusbd is SIGKILLed under a
# streaming client: the client exits 5 at once (zcusbd went away), systemd restarts zcusbd (with
# in-kernel queues, ZCUSB_VM_QUEUES=kernel: 6, "zcusbd stopped", as zcusb.ko ends the queue).
# timeout: 200
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

ensure_zcusbd
need_zcusbctl
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
reader=""
cleanup() {
	[ -z "$reader" ] || kill -KILL "$reader" 2>/dev/null || true
	systemctl start zcusbd.service || true
	data_revoke
}
trap cleanup EXIT
journal_mark

step "grant group $DATA_GROUP the SourceSink"
data_users
data_grant 0525:a4a0

step "zcin streams from the SourceSink with --timeout 600000 (10 min per transfer)"
stream_start /tmp/reader.out /tmp/reader.err "$ss" --timeout 600000
reader=$SPAWNED
sleep 2
kill -0 "$reader" 2>/dev/null || fail "the reader stopped by itself: $(cat /tmp/reader.err)"

step "systemctl stop zcusbd"
read -r t0 _ </proc/uptime
set +e
run systemctl stop zcusbd.service
src=$?
set -e
read -r t1 _ </proc/uptime
state=$(systemctl is-active zcusbd.service || true)
result=$(systemctl show -P Result zcusbd.service)
status=$(systemctl show -P ExecMainStatus zcusbd.service)
failed=$(systemctl is-failed zcusbd.service || true)
note "systemctl stop: exit $src in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; state=$state Result=$result ExecMainStatus=$status is-failed=$failed"
journal_since | sed 's/^/   journal: /'
[ $src = 0 ] || fail "systemctl stop zcusbd.service exited $src"
[ "$state" = inactive ] || fail "zcusbd.service is '$state' after stop, expected inactive"
[ "$result" = success ] || fail "zcusbd.service Result=$result after a stop with a client streaming (expected success)"
[ "$status" = 0 ] || fail "zcusbd exited with status $status on SIGTERM (expected 0)"
[ "$failed" != failed ] || fail "zcusbd.service is in the failed state"

step "the client reports the shutdown"
wait_exit "$reader" 10 "zcusbctl read after zcusbd stopped (waiting for its 600 s timeout?)"
rc=$EXIT_STATUS
reader=""
note "exit $rc"
note "stdout: $(cat /tmp/reader.out)"
note "stderr: $(cat /tmp/reader.err)"
grep -Eqi 'shutting down|zcusbd stopped|ESHUTDOWN' /tmp/reader.err ||
	fail "the client's message does not report zcusbd's shutdown (-ESHUTDOWN): $(cat /tmp/reader.err)"
[ $rc = 6 ] || fail "the client exited $rc after zcusbd stopped, expected 6 (a transfer failed: -ESHUTDOWN; client/CLI.md)"

step "zcusbd's journal this boot at priority err or worse"
journalctl -b -u zcusbd.service --no-pager -q -o short-monotonic -p err >/tmp/err-boot.txt 2>&1 || true
journal_since -p err >/tmp/err.txt 2>&1 || true
if [ -s /tmp/err-boot.txt ]; then
	sed 's/^/   /' /tmp/err-boot.txt
	[ -s /tmp/err.txt ] && fail "zcusbd logged at err or worse around the stop (above)"
	fail "zcusbd logged at err or worse this boot, before this case (above; journalctl -u zcusbd -p err -b is not empty)"
fi
note "none"

step "a client that reacts only after zcusbd has exited does not bus-activate it again"
# The stopped reader sees the shutdown when it resumes, after zcusbd is gone, and then
# releases its claim: that call must not start a new zcusbd (had it reached zcusbd's
# well-known name while a stop job ran, systemd would cancel the stop: exit 1).
ensure_zcusbd
journal_mark
stream_start /tmp/reader2.out /tmp/reader2.err "$ss" --timeout 600000
reader=$SPAWNED
run kill -STOP "$reader"
run systemctl stop zcusbd.service || fail "systemctl stop zcusbd.service with a stopped client exited $?"
[ "$(systemctl is-active zcusbd.service || true)" = inactive ] || fail "zcusbd.service not inactive after stop"
run kill -CONT "$reader"
wait_exit "$reader" 10 "the resumed zcusbctl read"
rc=$EXIT_STATUS
reader=""
note "exit $rc; stderr: $(cat /tmp/reader2.err)"
sleep 1
state=$(systemctl is-active zcusbd.service || true)
[ "$state" = inactive ] || {
	journal_since | sed 's/^/   journal: /'
	fail "zcusbd.service is '$state' after the resumed client exited: its calls bus-activated zcusbd"
}
[ $rc = 6 ] || fail "the resumed client exited $rc, expected 6 (the transfer failed: -ESHUTDOWN)"
note "zcusbd stayed inactive"

step "zcusbd starts again and serves"
ensure_zcusbd
run_as zcin zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/read.json 2>/tmp/read.err ||
	fail "zcusbctl read after the restart failed: $(cat /tmp/read.err)"
cat /tmp/read.json

step "zcusbd SIGKILLed under a streaming client: the client exits 5 at once, systemd restarts zcusbd"
journal_mark
stream_start /tmp/reader3.out /tmp/reader3.err "$ss" --timeout 600000
reader=$SPAWNED
pid=$(systemctl show -P MainPID zcusbd.service)
run kill -KILL "$pid"
wait_exit "$reader" 5 "zcusbctl read after zcusbd was SIGKILLed"
rc=$EXIT_STATUS
reader=""
note "exit $rc $EXIT_AFTER s after the kill; stderr: $(cat /tmp/reader3.err)"
if [ "${ZCUSB_VM_QUEUES:-}" = kernel ]; then
	# In-kernel queues (78-kernel-queues-datapath): zcusbd's end closes its /dev/zcusb file and
	# zcusb.ko ends the queue at once, -ESHUTDOWN, before the client notices the bus: exit 6
	# ("zcusbd stopped"), or 5 when the bus was first.
	[ $rc = 5 ] || [ $rc = 6 ] || fail "the client exited $rc after zcusbd was killed, expected 5 or 6"
	grep -Eq 'zcusbd went away|zcusbd stopped' /tmp/reader3.err ||
		fail "the client says neither that zcusbd went away nor that it stopped"
else
	[ $rc = 5 ] || fail "the client exited $rc after zcusbd was killed, expected 5 (zcusbd unreachable)"
	grep -q 'zcusbd went away' /tmp/reader3.err || fail "the client does not say zcusbd went away"
fi
restarted() {
	local now
	now=$(systemctl show -P MainPID zcusbd.service)
	[ "$now" != 0 ] && [ "$now" != "$pid" ] && [ "$(systemctl is-active zcusbd.service)" = active ]
}
wait_until 30 "systemd to restart zcusbd (Restart=on-failure)" restarted
note "zcusbd restarted: pid $pid -> $(systemctl show -P MainPID zcusbd.service)"
run_as zcin zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/read.json 2>/tmp/read.err ||
	fail "zcusbctl read after the restart failed: $(cat /tmp/read.err)"
cat /tmp/read.json
echo "PASS"
