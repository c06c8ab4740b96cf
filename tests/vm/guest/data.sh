# shellcheck shell=bash
# Helpers of the data-path cases (50-transfer .. 72-ffs-faults); source after lib.sh.
#
#   vm_tool NAME              path of a program of tests/vm/tools (built, not installed: run-vm.sh
#                             copies them to /run/zcusb-vm/bin)
#   data_users                group zcvmtest with user zcin; user zcout outside it (as 30-policy)
#   run_as USER CMD...        CMD as USER with its groups (setpriv), like a login of USER would
#   spawn_as OUT ERR USER CMD...  the same in the background, stdout/stderr to files; SPAWNED is
#                             the PID of CMD itself (setpriv execs it), so signals reach CMD
#   wait_until SECS WHAT CMD... poll CMD until it succeeds, for SECS seconds of uptime (wait_until
#                             counts polls, which overruns when each poll costs seconds under TCG)
#   journal_has REGEX         a zcusbd journal line since journal_mark matches (journal_mark sets
#                             JOURNAL_CURSOR; journal_since prints those lines, -o short-monotonic)
#   data_grant VID:PID...     local udev rule: ZCUSB_ENABLE=1, ZCUSB_ALLOW_GROUPS=zcvmtest for these
#                             devices; re-triggers them and waits until zcin sees them all.
#                             data_revoke (run it from the case's EXIT trap) removes the rule again.
#   jfield KEY < LINE         a number or string field of a one-line JSON object (bash only)
#   bulk_eps INFO_JSON        "IN OUT": the first bulk IN and OUT endpoint of interface 0 (0x..) in
#                             a file of `zcusbctl info --json DEVICE`
#   ffs_start NAME            gadget_add NAME ffs, start ffs-gadget on it, plug: sets FFS_PID,
#                             FFS_CTL (command FIFO), FFS_STATUS, FFS_LOG; ffs_cmd "CMD", ffs_stat KEY
#   ffs_stop NAME             SIGTERM to ffs-gadget (unbinds), gadget_del NAME

DATA_RULE=/etc/udev/rules.d/71-zcusb-vm-data.rules
DATA_GROUP=zcvmtest

vm_tool() {
	local d
	for d in ${ZCUSB_VM_TOOLS:+"$ZCUSB_VM_TOOLS"} /run/zcusb-vm/bin; do
		if [ -x "$d/$1" ]; then
			echo "$d/$1"
			return 0
		fi
	done
	fail "$1 not found in /run/zcusb-vm/bin: run-vm.sh copies the executables of BUILD/tests/vm/tools there (is $1 in tests/vm/tools/meson.build, and was the build compiled?)"
}

data_users() {
	getent group "$DATA_GROUP" >/dev/null || groupadd "$DATA_GROUP" || fail "groupadd $DATA_GROUP failed"
	id zcin >/dev/null 2>&1 || useradd -M -N -G "$DATA_GROUP" zcin || fail "useradd zcin failed"
	id zcout >/dev/null 2>&1 || useradd -M -N zcout || fail "useradd zcout failed"
	[[ " $(id -nG zcin) " == *" $DATA_GROUP "* ]] || fail "zcin is not in group $DATA_GROUP: $(id zcin)"
}

run_as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

SPAWNED=""
spawn_as() {
	local out=$1 err=$2 u=$3
	shift 3
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@" >"$out" 2>"$err" &
	# shellcheck disable=SC2034 # for the cases
	SPAWNED=$!
}

# stream_start OUT ERR DEVICE [ZCUSBCTL-READ-OPTION...]: zcin streams for ever from DEVICE's
# interface 0, bulk IN 0x81 (zcusbctl read, stdout to OUT, stderr to ERR) in the background;
# returns once zcusbd has logged the claim since the last journal_mark. Sets SPAWNED.
stream_start() {
	local out=$1 err=$2 dev=$3
	shift 3
	spawn_as "$out" "$err" zcin zcusbctl read "$dev" --interface 0 --endpoint 0x81 --bytes 1024G "$@"
	wait_until 30 "zcin's claim of $dev (zcusbd journal)" journal_has "of $dev claimed by"
}

# wait_exit PID SECONDS WHAT: wait until the background child PID ends; fail if WHAT still
# runs after SECONDS. Sets EXIT_STATUS (its exit status) and EXIT_AFTER (seconds waited).
wait_exit() {
	local pid=$1 secs=$2 what=$3 t0 t1 _ i
	read -r t0 _ </proc/uptime
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	read -r t1 _ </proc/uptime
	! kill -0 "$pid" 2>/dev/null || fail "$what: still running ${secs} s later"
	EXIT_STATUS=0
	wait "$pid" || EXIT_STATUS=$?
	EXIT_AFTER=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
}

# Device sysfs dirs by VID:PID (all matches, one a line).
data_sysfs_of() {
	local d v p
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		read -r v <"$d/idVendor"
		read -r p <"$d/idProduct"
		[ "$v:$p" = "$1" ] && echo "$d"
	done
	return 0
}

# The first of them (status 1 when none is plugged).
data_sysfs_first() {
	local d
	d=$(data_sysfs_of "$1")
	[ -n "$d" ] && echo "${d%%$'\n'*}"
}

data_grant() {
	local ids=("$@") id vid pid dirs=() d want=0 n line
	: >"$DATA_RULE"
	for id in "${ids[@]}"; do
		vid=${id%%:*} pid=${id#*:}
		printf 'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="%s", ATTR{idProduct}=="%s", ENV{ZCUSB_ENABLE}="1", ENV{ZCUSB_ALLOW_GROUPS}="%s"\n' \
			"$vid" "$pid" "$DATA_GROUP" >>"$DATA_RULE"
		while read -r d; do
			[ -n "$d" ] && dirs+=("$d")
		done < <(data_sysfs_of "$id")
	done
	udevadm control --reload || fail "udevadm control --reload failed"
	[ ${#dirs[@]} -gt 0 ] || fail "none of ${ids[*]} is plugged (setup.log)"
	udevadm trigger --action=change --settle "${dirs[@]}" || fail "udevadm trigger ${dirs[*]} failed"
	for d in "${dirs[@]}"; do
		[[ $'\n'$(udevadm info -q property "$d")$'\n' == *$'\n'ZCUSB_ENABLE=1$'\n'* ]] ||
			fail "udev did not apply $DATA_RULE to $d"
	done
	want=${#dirs[@]}
	# zcusbd learns the properties from the change events: wait until zcin sees every device.
	local up _ end out
	read -r up _ </proc/uptime
	end=$((${up%.*} + 20))
	while :; do
		out=$(run_as zcin zcusbctl list 2>&1 || true)
		n=0
		while read -r line; do [[ $line == *' /org/zcusb1/device/'* ]] && n=$((n + 1)); done <<<"$out"
		[ "$n" -ge "$want" ] && return 0
		read -r up _ </proc/uptime
		[ "${up%.*}" -lt "$end" ] || break
		sleep 0.2
	done
	printf '%s\n' "$out" >&2
	fail "zcin sees $n of the $want devices granted by $DATA_RULE after 20 s (zcusbd missed the udev change events?)"
}

data_revoke() {
	local d v p
	[ -e "$DATA_RULE" ] || return 0
	rm -f "$DATA_RULE"
	udevadm control --reload || true
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		v="" p=""
		read -r v <"$d/idVendor" || true
		read -r p <"$d/idProduct" || true
		case "$v:$p" in
		0525:a4a0 | 0525:a4a1 | 1d6b:0105) udevadm trigger --action=change "$d" || true ;;
		esac
	done
	udevadm settle --timeout=30 || true
}

jfield() {
	local line re
	IFS= read -r line || true
	re="\"$1\":[[:space:]]*(\"([^\"]*)\"|([-0-9.eE+]+|true|false|null))"
	[[ $line =~ $re ]] || return 1
	printf '%s\n' "${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
}

bulk_eps() {
	json "' '.join('0x%02x' % [e['address'] for i in j['interfaces'] if i['number'] == 0 and i['alt_setting'] == 0 for e in i['endpoints'] if e['type'] == 'bulk' and e['direction'] == d][0] for d in ('in', 'out'))" <"$1"
}

# --- FunctionFS gadget ------------------------------------------------------------------------
FFS_PID="" FFS_CTL="" FFS_STATUS="" FFS_LOG=""

ffs_start() {
	local name=$1 dir=/run/zcusb-ffs/$1 i tool
	tool=$(vm_tool ffs-gadget) || exit 1
	FFS_CTL=/run/zcusb-ffs-$name.ctl FFS_STATUS=/run/zcusb-ffs-$name.status FFS_LOG=/run/zcusb-ffs-$name.log
	rm -f "$FFS_CTL" "$FFS_STATUS" "$FFS_LOG" "/run/zcusb-ffs-$name.ready"
	gadget_add "$name" ffs || fail "gadget_add $name ffs failed (usb_f_fs loaded? a free dummy UDC?)"
	"$tool" --dir "$dir" --control "$FFS_CTL" --status "$FFS_STATUS" \
		--ready "/run/zcusb-ffs-$name.ready" 2>"$FFS_LOG" &
	FFS_PID=$!
	for ((i = 0; i < 100; i++)); do
		[ -e "/run/zcusb-ffs-$name.ready" ] && break
		kill -0 "$FFS_PID" 2>/dev/null || { cat "$FFS_LOG" >&2; fail "ffs-gadget exited before it was ready (log above)"; }
		sleep 0.1
	done
	[ -e "/run/zcusb-ffs-$name.ready" ] || { cat "$FFS_LOG" >&2; fail "ffs-gadget not ready after 10 s (log above)"; }
	gadget_plug "$name" || { cat "$FFS_LOG" >&2; fail "gadget_plug $name (FunctionFS) failed (ffs-gadget log above)"; }
}

ffs_cmd() { # "COMMAND": send, then wait until the status file counts it
	local before after i
	before=$(ffs_stat commands)
	# Opening the FIFO blocks while no one reads it: only write to a live ffs-gadget.
	kill -0 "$FFS_PID" 2>/dev/null || fail "ffs-gadget is not running (command '$1'; log: $(tail -n 5 "$FFS_LOG"))"
	printf '%s\n' "$1" >"$FFS_CTL"
	for ((i = 0; i < 100; i++)); do
		after=$(ffs_stat commands)
		[ "$after" -gt "$before" ] && return 0
		sleep 0.1
	done
	fail "ffs-gadget did not take command '$1' within 10 s (log: $(tail -n 5 "$FFS_LOG"))"
}

ffs_stat() { # KEY -> value from the status file
	local k v
	while IFS='=' read -r k v; do
		if [ "$k" = "$1" ]; then
			echo "$v"
			return 0
		fi
	done <"$FFS_STATUS"
	echo 0
}

ffs_stop() {
	local name=$1 i
	if [ -n "$FFS_PID" ] && kill -0 "$FFS_PID" 2>/dev/null; then
		kill -TERM "$FFS_PID" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$FFS_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$FFS_PID" 2>/dev/null || true
	fi
	wait "$FFS_PID" 2>/dev/null || true
	gadget_del "$name" || true
}
