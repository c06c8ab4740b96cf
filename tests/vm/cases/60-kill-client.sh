#!/bin/bash
# A streaming client SIGKILLed: zcusbd ends its claim within 1 s (journal), the interface is
# claimable again at once (any claim attempt started 1 s or more after the kill must succeed) and
# a new 1 MiB read works; the new claim starts at UsedBytes 0, zcusbd reports no accounting bug,
# and the killed client's bytes went back to the per-user quota: two new claims of the same user
# then fit (almost exactly) the whole BytesPerUser, which they would not if its charge had leaked.
# timeout: 150
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"

ensure_zcusbd
need_zcusbctl
loopback=$(vm_tool zcusb-loopback)
ss=$(gadget_object ss) || fail "SourceSink gadget not plugged (setup.log)"
lb=$(gadget_object lb) || fail "Loopback gadget not plugged (setup.log)"
victim="" holder=""
cleanup() {
	for p in $victim $holder; do kill -KILL "$p" 2>/dev/null || true; done
	data_revoke
}
trap cleanup EXIT
journal_mark
uptime_now() {
	local up _
	read -r up _ </proc/uptime
	echo "$up"
}
# Monotonic seconds of the last zcusbd journal line (since the case began) matching a regex.
journal_time() { # REGEX
	local line t=""
	while read -r line; do
		[[ $line =~ $1 ]] && [[ $line =~ ^\[\ *([0-9.]+)\] ]] && t=${BASH_REMATCH[1]}
	done < <(journal_since)
	echo "$t"
}

step "grant group $DATA_GROUP the SourceSink and the Loopback; the quotas"
data_users
data_grant 0525:a4a0 0525:a4a1
zcusbctl --json status >/tmp/status.json || fail "zcusbctl status failed"
cat /tmp/status.json
per_client=$(json 'j["quota"]["bytes_per_client"]' </tmp/status.json)
per_user=$(json 'j["quota"]["bytes_per_user"]' </tmp/status.json)
note "BytesPerClient $per_client, BytesPerUser $per_user"

# The victim: 8 transfers of 1 MiB in flight (usbfs's default memory limit is 16 MiB), so it
# holds 8 MiB plus its ring.
victim_bytes=$((8 << 20))
step "zcin streams from the SourceSink (zcusbctl read, 8 x 1 MiB in flight), then SIGKILL"
stream_start /tmp/victim.out /tmp/victim.err "$ss" --transfer-size 1M --queue-depth 8 --timeout 0
victim=$SPAWNED
sleep 2
kill -0 "$victim" 2>/dev/null || fail "the victim stopped streaming by itself: $(cat /tmp/victim.err)"
victim_claim=""
while read -r line; do
	[[ $line =~ (/org/zcusb1/claim/c[0-9]+):\ interface\ 0\ of\ $ss\ claimed\ by ]] && victim_claim=${BASH_REMATCH[1]}
done < <(journal_since)
[ -n "$victim_claim" ] || fail "no claim of $ss in zcusbd's journal"
note "victim pid $victim, claim $victim_claim"
kill -KILL "$victim"
t_kill=$(uptime_now)
note "SIGKILL at uptime $t_kill"

# Claim probes until one succeeds; a probe that started 1 s or more after the kill must not fail.
ok="" attempts=0
while :; do
	t_try=$(uptime_now)
	attempts=$((attempts + 1))
	if run_as zcin "$loopback" --mode claim "$ss" >/tmp/probe.json 2>/tmp/probe.err; then
		t_ok=$(uptime_now)
		ok=1
		break
	fi
	late=$(awk -v a="$t_try" -v k="$t_kill" 'BEGIN { print (a - k >= 1.0) ? 1 : 0 }')
	note "probe $attempts (started $(awk -v a="$t_try" -v k="$t_kill" 'BEGIN { printf "%.2f", a - k }') s after the kill) failed: $(cat /tmp/probe.err)"
	if [ "$late" = 1 ]; then
		unit_journal zcusbd.service 20
		fail "$ss not claimable 1 s after the client was killed: $(cat /tmp/probe.err)"
	fi
	sleep 0.1
done
wait "$victim" 2>/dev/null || true
victim=""
[ -n "$ok" ] || fail "no successful claim"
note "claimed again by probe $attempts, done $(awk -v a="$t_ok" -v k="$t_kill" 'BEGIN { printf "%.2f", a - k }') s after the kill (including the probe's own start)"
cat /tmp/probe.json
[ "$(jfield used_bytes </tmp/probe.json)" = 0 ] || fail "the new claim starts with UsedBytes $(jfield used_bytes </tmp/probe.json), expected 0"

t_end=$(journal_time "${victim_claim}: ended")
[ -n "$t_end" ] || { unit_journal zcusbd.service 20; fail "no '$victim_claim: ended' line in zcusbd's journal"; }
dt=$(awk -v a="$t_end" -v k="$t_kill" 'BEGIN { printf "%.3f", a - k }')
note "zcusbd: '$victim_claim: ended' ${dt} s after the kill"
awk -v d="$dt" 'BEGIN { exit !(d <= 1.0) }' || fail "zcusbd ended the killed client's claim ${dt} s after SIGKILL (more than 1 s)"
journal_since | sed 's/^/   journal: /'

step "a new zcusbctl read of 1 MiB"
run_as zcin zcusbctl --json read "$ss" --interface 0 --endpoint 0x81 --bytes 1M >/tmp/read.json 2>/tmp/read.err ||
	fail "zcusbctl read of 1 MiB after the kill failed: $(cat /tmp/read.err)"
cat /tmp/read.json
[ "$(jfield bytes </tmp/read.json)" = 1048576 ] || fail "the read moved $(jfield bytes </tmp/read.json) bytes"

step "the killed client's bytes are back in the per-user quota"
# Holder: the whole per-client quota on the Loopback; then a second claim of the same user asks
# for the rest of the per-user quota less half the victim's charge. Fits only if the victim's
# charge was returned.
hold=$per_client
rest=$((per_user - per_client - victim_bytes / 2))
[ "$rest" -gt 0 ] ||
	fail "quota layout unsuited to this check (BytesPerUser $per_user, BytesPerClient $per_client): needs BytesPerUser > BytesPerClient + 4 MiB"
spawn_as /tmp/holder.out /tmp/holder.err zcin "$loopback" --mode claim --alloc "$hold" --hold "$lb"
holder=$SPAWNED
holding() { # done waiting: the holder holds, or it is gone
	local l
	kill -0 "$holder" 2>/dev/null || return 0
	while read -r l; do [[ $l == *holding* ]] && return 0; done </tmp/holder.out
	return 1
}
wait_until 30 "the holder's allocation of $hold bytes" holding
kill -0 "$holder" 2>/dev/null || fail "the holder exited: $(cat /tmp/holder.err)"
sed 's/^/   holder: /' /tmp/holder.out
set +e
run_as zcin "$loopback" --mode claim --alloc "$rest" "$ss" >/tmp/rest.out 2>/tmp/rest.err
rc=$?
set -e
sed 's/^/   second: /' /tmp/rest.out /tmp/rest.err
kill -TERM "$holder"
wait "$holder" || fail "the holder exited $? on SIGTERM: $(cat /tmp/holder.err)"
holder=""
[ $rc = 0 ] || {
	unit_journal zcusbd.service 20
	fail "$rest more bytes did not fit beside $hold (BytesPerUser $per_user): the killed client's charge was not returned ($(cat /tmp/rest.err))"
}
note "$hold + $rest bytes of BytesPerUser $per_user allocated by two claims of zcin: the victim's $victim_bytes were returned"

step "zcusbd's journal: no accounting bug, nothing at err or worse"
journal_since -p err >/tmp/err.txt || true
journal_since -g 'accounting bug' >>/tmp/err.txt || true
if [ -s /tmp/err.txt ]; then
	cat /tmp/err.txt
	fail "zcusbd logged errors after the kill (above)"
fi
note "none"
echo "PASS"
