# shellcheck shell=bash
# Helpers for guest test cases (tests/vm/cases/*.sh source this, then gadget.sh).
# A case passes by exiting 0; `fail` prints "FAIL: <cause>" and exits 1. No case skips.

# shellcheck source=tests/vm/guest/gadget.sh
. "${ZCUSB_VM_GUEST:-/run/zcusb-vm/guest}/gadget.sh"

step() {
	local up _
	read -r up _ </proc/uptime
	printf '\n== %s  [uptime %s]\n' "$*" "$up"
}
note() { printf '   %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# Echo a command, then run it; its status is returned.
run() {
	printf '+ %s\n' "$*"
	"$@"
}

# wait_until SECONDS DESCRIPTION CMD...: run CMD every 0.2 s until it succeeds; fail once
# SECONDS of guest uptime have passed (a slow CMD under TCG does not stretch the limit).
wait_until() {
	local secs=$1 what=$2 up _ end
	shift 2
	read -r up _ </proc/uptime
	end=$((${up%.*} + secs))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		read -r up _ </proc/uptime
		[ "${up%.*}" -lt "$end" ] || fail "timed out after ${secs} s waiting for: $what"
		sleep 0.2
	done
}

# The project's pieces, each with a precise cause when absent.
need_zcusbd() {
	systemctl cat zcusbd.service >/dev/null 2>&1 ||
		fail "zcusbd.service not installed in the guest: the project's meson install tree has no zcusbd.service (daemon/systemd unit not built yet, or the build is not configured with --prefix=/usr so the unit lands outside systemd's search path)"
}
need_zcusbctl() {
	command -v zcusbctl >/dev/null 2>&1 ||
		fail "zcusbctl not installed in the guest: the meson install tree has no bin/zcusbctl (client not built yet?)"
}
need_busname() {
	[ -n "$(find /usr/share/dbus-1/system-services /etc/dbus-1/system.d /usr/share/dbus-1/system.d \
		-name 'org.zcusb1*' 2>/dev/null)" ] ||
		fail "no D-Bus files for org.zcusb1 under /usr/share/dbus-1 or /etc/dbus-1 (bus policy/activation file not installed; prefix must be /usr)"
}

# python3 without site packages: only the stdlib is needed, and skipping site's imports and
# path scans saves a good part of a second per start under TCG.
py() { python3 -I -S "$@"; }

# json EXPR: evaluate a Python expression on the JSON read from stdin (bound to `j`) and
# print the result (lists/dicts as JSON). Example: zcusbctl list --json | json 'len(j)'
json() {
	py -c '
import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
print(json.dumps(r) if isinstance(r, (list, dict)) else r)
' "$1"
}

# zcusbd's journal around a step. journal_mark: remember the journal's end; journal_since
# [JOURNALCTL-OPTION...]: the lines of zcusbd.service logged after it (short-monotonic);
# journal_has REGEX: one of them matches; journal_wait SECONDS REGEX: until one matches
# (journald may lag behind the event), the lines left in /tmp/journal-since.txt.
# (journalctl 252 with a unit match AND --after-cursor drops the first matching entry after
# the cursor when the cursor's own entry does not match: filter the unfiltered output instead.)
JOURNAL_MARK=""
journal_mark() {
	JOURNAL_MARK=$(journalctl -q -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p')
}
journal_since() {
	journalctl -q --no-pager -o short-monotonic ${JOURNAL_MARK:+--after-cursor="$JOURNAL_MARK"} "$@" |
		grep -E '^\[[ 0-9.]+\] [^ ]+ (zcusbd\[[0-9]+\]: |systemd\[1\]: zcusbd\.service)' || true
}
journal_has() {
	[[ $(journal_since) =~ $1 ]]
}
journal_wait() {
	local secs=$1 re=$2 end=$((SECONDS + $1))
	while :; do
		journal_since >/tmp/journal-since.txt 2>&1 || true
		grep -Eq -- "$re" /tmp/journal-since.txt && return 0
		[ $SECONDS -lt $end ] || break
		sleep 0.25
	done
	sed 's/^/   journal: /' /tmp/journal-since.txt
	fail "zcusbd did not log /$re/ within ${secs}s (its lines since the mark above)"
}

# Show a journal excerpt for a unit of this boot (for failure context).
unit_journal() { journalctl -b --no-pager -o short-monotonic -u "$1" | tail -n "${2:-30}"; }

# Start zcusbd with the shipped unit (no-op if running) or fail with its journal.
ensure_zcusbd() {
	need_zcusbd
	if ! systemctl start zcusbd.service; then
		unit_journal zcusbd.service >&2
		fail "systemctl start zcusbd.service failed (journal above)"
	fi
	[ "$(systemctl is-active zcusbd.service)" = active ] || {
		unit_journal zcusbd.service >&2
		fail "zcusbd.service is $(systemctl is-active zcusbd.service) after start"
	}
}

# sysfs speed (Mb/s) -> the Speed names of dbus/API.md
speed_name() {
	case $1 in
	1.5) echo low ;; 12) echo full ;; 480) echo high ;; 5000) echo super ;;
	10000 | 20000) echo super-plus ;; *) echo unknown ;;
	esac
}
