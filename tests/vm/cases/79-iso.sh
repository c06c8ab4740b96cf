#!/bin/bash
# Isochronous OUT through zcusbd on a real kernel, to QEMU's usb-audio speaker on the xHCI
# (run-vm.sh: 46f4:0002, full speed; interface 1 is the audio streaming interface, its
# alternate setting 1 has iso OUT 0x01 of 192 bytes, bInterval 1: 48 kHz 16-bit stereo, one
# packet a 1 ms frame). QEMU writes what the device plays to a wav file in the xfer share,
# byte for byte (mixing engine off), which this case reads back.
# A pass (iso_pass LABEL) is: zcin, granted the device by a local udev rule, runs zcusb-iso
# twice through zcusbd: 64 transfers of 32 packets, 4 in flight, with malformed requests
# before and amid the stream (129 packets, 0 packets, packets longer than the region, a packet
# over wMaxPacketSize: each refused with -EINVAL/-EMSGSIZE, its descriptors untouched, the
# claim's counters exact); then 8 transfers of ZCUSB_ISO_MAX_PACKETS (128) packets, 2 in
# flight. Every CQE has status 0 and every packet status 0 and actual_length 192, and the
# wav file holds each run's zcusb-pattern.h stream (its own offset) byte for byte. Then
# lu-iso, a plain libusb-1.0 program, through zcusb-run (the compatibility library): 8 iso OUT
# transfers of 32 packets, each packet COMPLETED and whole (its own check; not in the wav: it
# releases the interface at once, and the speaker drops what it had not played yet).
# Passes: the default backend (usbfs); zcusb.ko installed with Backend=zcusb, KernelQueues=yes
# (the claim must be on zcusb.ko and its ring served by the module: its queue counter grows)
# and then KernelQueues=no (zcusb.ko, ring served by zcusbd: the counter stays); then, with the
# module told to hide its iso feature (hide_features=1, as a module older than iso), one run on
# Backend=auto, which must fall back to usbfs and say why. Each prints
# zcusbd's lines about the claim. After the module passes it holds no queue, nothing in flight
# or pinned, and the kernel log is clean.
# Isochronous IN, and OUT at high speed, on zcusb-isodev (tests/vm/tools/zcusb-isodev.h:
# 1209:0001, a usbredir server on the host that run-vm.sh puts on the xHCI through QEMU's
# usb-redir; interface 0, alternate setting 1: iso IN 0x81 and iso OUT 0x02 of 1024 bytes, one
# packet a millisecond). In every pass, after the speaker: zcusb-iso --in, 32 transfers of 32
# packets, 4 in flight, with the malformed requests: every packet status 0 and, when it carries
# data, a whole packet of the device's stream, in order, at the length the device sent (every
# eighth is short); at least half the packets must carry data (QEMU answers a packet it has no
# data for yet with 0 bytes). Then zcusb-iso OUT to 0x02, 16 transfers of 32 packets: the device
# checks every byte (its stats file in the xfer share: packets counted, no error). Then lu-iso
# through zcusb-run, IN and OUT on the same device, checked the same way.
# The guest's snd-usb-audio (udev loads it from the full module tree) is unbound first.
# timeout: 300
set -euo pipefail
# shellcheck source=tests/vm/guest/lib.sh
. "$ZCUSB_VM_GUEST/lib.sh"
# shellcheck source=tests/vm/guest/data.sh
. "$ZCUSB_VM_GUEST/data.sh"
# shellcheck source=tests/vm/guest/kmod.sh
. "$ZCUSB_VM_GUEST/kmod.sh"

AUDIO_ID=46f4:0002
ISODEV_ID=1209:0001
ISODEV_STATS=${ZCUSB_VM_GUEST%/guest}/isodev-stats.json
WAV=${ZCUSB_VM_GUEST%/guest}/usb-audio.wav
# QEMU's wav writer is a stdio stream: up to a buffer of its last bytes may not be in the
# file yet while QEMU runs.
WAV_UNFLUSHED_MAX=16384
iso=$(vm_tool zcusb-iso)
luiso=$(vm_tool lu-iso)
need_zcusbctl
command -v zcusb-run >/dev/null || fail "zcusb-run not installed: the build lacks the libusb compatibility library (libusb-1.0-0-dev missing at configure time?)"
ensure_zcusbd

kmod_used=""
cleanup() {
	local d
	data_revoke
	# data_revoke re-triggers the gadgets only: drop the rule's properties from the speaker too
	for d in "$AUDIO_ID" "$ISODEV_ID"; do
		d=$(data_sysfs_first "$d") && udevadm trigger --action=change --settle "$d" || true
	done
	if [ -n "$kmod_used" ]; then
		echo 0 >/sys/module/zcusb/parameters/hide_features 2>/dev/null || true
		kmod_uninstall
		zcusbd_config_clear
		zcusbd_restart
	fi
}
trap cleanup EXIT

# locate VID:PID SPEED WHY: sets LOC_DEV (sysfs) and LOC_OBJ (zcusbd's object) of the device,
# which must run at SPEED Mb/s; WHY: what to check when it is not there.
locate() {
	local busnum devnum speed
	LOC_DEV=$(data_sysfs_first "$1") || fail "no $1 in /sys/bus/usb/devices: $3"
	read -r busnum <"$LOC_DEV/busnum"
	read -r devnum <"$LOC_DEV/devnum"
	read -r speed <"$LOC_DEV/speed"
	LOC_OBJ=/org/zcusb1/device/usb${busnum}_${devnum}
	note "$LOC_DEV: bus $busnum addr $devnum, $speed Mb/s, $(<"$LOC_DEV/product"); zcusbd object $LOC_OBJ"
	[ "$speed" = "$2" ] || fail "$1 runs at $speed Mb/s, expected $2"
}

step "QEMU's usb-audio ($AUDIO_ID) on the xHCI"
locate "$AUDIO_ID" 12 "run-vm.sh's QEMU has no -device usb-audio?"
dev=$LOC_DEV obj=$LOC_OBJ
zcusbctl info --json "$obj" >/tmp/audio-info.json || fail "zcusbctl info $obj exited $?"
py - /tmp/audio-info.json <<'PY' || fail "the speaker's interfaces are not as expected (above)"
import json, sys
d = json.load(open(sys.argv[1]))
for i in d["interfaces"]:
    eps = ", ".join("%s %s 0x%02x wMaxPacketSize %d bInterval %d" % (e["type"], e["direction"], e["address"],
                    e["max_packet_size"], e["interval"]) for e in i["endpoints"]) or "no endpoints"
    print("   interface %d alt %d class %d/%d driver %s: %s" % (i["number"], i["alt_setting"], i["class"],
          i["subclass"], i.get("driver") or "-", eps))
alt1 = [i for i in d["interfaces"] if i["number"] == 1 and i["alt_setting"] == 1]
if not alt1 or alt1[0]["class"] != 1 or alt1[0]["subclass"] != 2:
    sys.exit("FAIL: no audio streaming interface 1, alternate setting 1")
want = {"address": 1, "type": "isochronous", "direction": "out", "max_packet_size": 192, "interval": 1}
if not any(all(e.get(k) == v for k, v in want.items()) for e in alt1[0]["endpoints"]):
    sys.exit("FAIL: interface 1 alt 1 has no iso OUT 0x01 of 192 bytes, bInterval 1: %r" % alt1[0]["endpoints"])
PY

step "zcusb-isodev ($ISODEV_ID) on the xHCI, through QEMU's usb-redir"
locate "$ISODEV_ID" 480 "run-vm.sh's QEMU has no usb-redir to zcusb-isodev? (its log: isodev.log in the results)"
iobj=$LOC_OBJ
[ -f "$ISODEV_STATS" ] || fail "no $ISODEV_STATS: run-vm.sh starts zcusb-isodev with --stats there"
zcusbctl info --json "$iobj" >/tmp/isodev-info.json || fail "zcusbctl info $iobj exited $?"
py - /tmp/isodev-info.json <<'PY' || fail "zcusb-isodev's interface is not as zcusb-isodev.h says (above)"
import json, sys
d = json.load(open(sys.argv[1]))
alt1 = [i for i in d["interfaces"] if i["number"] == 0 and i["alt_setting"] == 1]
if not alt1:
    sys.exit("FAIL: no interface 0, alternate setting 1: %r" % d["interfaces"])
for want in ({"address": 0x81, "type": "isochronous", "direction": "in", "max_packet_size": 1024, "interval": 4},
             {"address": 0x02, "type": "isochronous", "direction": "out", "max_packet_size": 1024, "interval": 4}):
    if not any(all(e.get(k) == v for k, v in want.items()) for e in alt1[0]["endpoints"]):
        sys.exit("FAIL: interface 0 alt 1 lacks %r: %r" % (want, alt1[0]["endpoints"]))
print("   interface 0 alt 1: iso IN 0x81 and iso OUT 0x02, 1024 bytes, bInterval 4")
PY

step "no kernel driver on the speaker (udev loaded snd-usb-audio from the module tree: unbind it)"
for i in "$dev":1.*; do
	drv=$(intf_driver "${i##*/}")
	if [ -n "$drv" ]; then
		run sh -c "echo ${i##*/} >/sys/bus/usb/drivers/$drv/unbind" || fail "cannot unbind $drv from ${i##*/}"
	fi
done
for i in "$dev":1.*; do
	drv=$(intf_driver "${i##*/}")
	[ -z "$drv" ] || fail "${i##*/} is still bound to $drv"
done
note "${dev##*/}'s interfaces are free"

step "grant group $DATA_GROUP the speaker"
data_users
data_grant "$AUDIO_ID" "$ISODEV_ID"
[ -f "$WAV" ] || fail "no $WAV: run-vm.sh's -audiodev wav writes it into the xfer share"

# check_wav OFFSET BYTES: the wav file holds BYTES of the pattern stream from OFFSET, in one
# piece; only its last WAV_UNFLUSHED_MAX bytes may be missing (still in QEMU's stdio buffer).
check_wav() {
	py - "$WAV" "$1" "$2" "$WAV_UNFLUSHED_MAX" <<'PY'
import struct, sys
path, off, n, slack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
SEED, MUL, M = 0x7a637573622d766d, 0x9e3779b97f4a7c15, (1 << 64) - 1
assert off % 8 == 0 and n % 8 == 0
want = struct.pack("<%dQ" % (n // 8), *(((i ^ SEED) * MUL) & M for i in range(off // 8, (off + n) // 8)))
data = open(path, "rb").read()
at = data.find(want[:192], 44)
if at < 0:
    sys.exit("FAIL: the stream from byte %d is not in %s (%d bytes): its first packet never reached "
             "the speaker's output" % (off, path, len(data)))
got = data[at:at + n]
bad = next((k for k in range(len(got)) if got[k] != want[k]), None) if got != want[:len(got)] else None
if bad is not None:
    sys.exit("FAIL: %s: stream byte %d (file offset %d) is 0x%02x, expected 0x%02x; the %d bytes before "
             "it arrived intact" % (path, off + bad, at + bad, got[bad], want[bad], bad))
if n - len(got) > slack:
    sys.exit("FAIL: %s ends %d bytes into the stream's %d (more than QEMU's unflushed %d)" % (path, len(got), n, slack))
print("   wav: %d of %d bytes at file offset %d, identical%s" % (len(got), n, at,
      "" if len(got) == n else " (the last %d not flushed by QEMU yet)" % (n - len(got))))
PY
}

# isodev_stat FIELD: a number from zcusb-isodev's stats file.
isodev_stat() {
	py - "$ISODEV_STATS" "$1" <<'PY'
import json, sys
print(json.load(open(sys.argv[1]))[sys.argv[2]])
PY
}

# isodev_runs LABEL: IN and OUT on zcusb-isodev as zcin: zcusb-iso, then lu-iso through zcusb-run.
isodev_runs() {
	local label=$1 rc=0 off n0 n1 e0 want
	step "iso pass '$label': zcusb-isodev IN, 32 x 32 packets of 1024 bytes, 4 in flight, malformed requests"
	printf '+ (zcin) zcusb-iso --json --in --interface 0 --transfers 32 --packets 32 --in-flight 4 %s\n' "$iobj"
	run_as zcin "$iso" --json --in --interface 0 --transfers 32 --packets 32 --in-flight 4 "$iobj" \
		>/tmp/isoin.json 2>/tmp/isoin.err || rc=$?
	note "$(cat /tmp/isoin.json)"
	[ -s /tmp/isoin.err ] && sed 's/^/   stderr: /' /tmp/isoin.err
	if [ $rc -ne 0 ]; then
		journal_since | tail -n 15
		fail "$label: zcusb-iso --in exited $rc: $(cat /tmp/isoin.err)"
	fi
	[ "$(jfield endpoint </tmp/isoin.json)" = 0x81 ] && [ "$(jfield direction </tmp/isoin.json)" = in ] ||
		fail "$label: zcusb-iso --in did not read endpoint 0x81"
	[ "$(jfield bad_requests </tmp/isoin.json)" = 5 ] || fail "$label: IN: $(jfield bad_requests </tmp/isoin.json) malformed requests checked, expected 5"
	[ "$(jfield backend </tmp/isoin.json)" = "$ISO_BACKEND" ] ||
		fail "$label: the isodev claim is on $(jfield backend </tmp/isoin.json), the speaker's on $ISO_BACKEND"
	note "IN: $(jfield filled_packets </tmp/isoin.json) packets with data, each checked; $(jfield empty_packets </tmp/isoin.json) empty, $(jfield lost_packets </tmp/isoin.json) of the device's lost"

	step "iso pass '$label': zcusb-isodev OUT 0x02, 16 x 32 packets of 1024 bytes, checked by the device"
	RUN_NO=$((RUN_NO + 1))
	off=$((RUN_NO << 40))
	n0=$(isodev_stat out_packets)
	e0=$(isodev_stat out_errors)
	rc=0
	run_as zcin "$iso" --json --interface 0 --endpoint 0x02 --transfers 16 --packets 32 --in-flight 4 --no-bad \
		--stream-offset "$off" "$iobj" >/tmp/isoout.json 2>/tmp/isoout.err || rc=$?
	note "$(cat /tmp/isoout.json)"
	[ $rc -eq 0 ] || fail "$label: zcusb-iso OUT to zcusb-isodev exited $rc: $(cat /tmp/isoout.err)"
	want=$((n0 + 16 * 32))
	wait_until 10 "zcusb-isodev to count $want OUT packets" sh -c "[ \"\$(grep -o '\"out_packets\": *[0-9]*' '$ISODEV_STATS' | grep -o '[0-9]*\$')\" -ge $want ]"
	n1=$(isodev_stat out_packets)
	[ "$(isodev_stat out_errors)" = "$e0" ] || fail "$label: zcusb-isodev found errors in what it received: $(isodev_stat out_first_error)"
	note "OUT: zcusb-isodev received $((n1 - n0)) packets, every byte as sent"

	step "iso pass '$label': lu-iso (plain libusb-1.0) through zcusb-run on zcusb-isodev, IN and OUT"
	RUN_NO=$((RUN_NO + 1))
	off=$((RUN_NO << 40))
	n0=$n1
	rc=0
	printf '+ (zcin) zcusb-run lu-iso --device=%s --interface=0 --alt=1 --in=0x81 --out=0x02 --packets=32 --size=1024 --transfers=16 --pattern=isodev\n' "$ISODEV_ID"
	run_as zcin zcusb-run "$luiso" "--device=$ISODEV_ID" --interface=0 --alt=1 --in=0x81 --out=0x02 --packets=32 \
		--size=1024 --transfers=16 --pattern=isodev "--offset=$off" >/tmp/lu-isodev.json 2>/tmp/lu-isodev.err || rc=$?
	note "$(cat /tmp/lu-isodev.json)"
	[ $rc -eq 0 ] || fail "$label: lu-iso on zcusb-isodev exited $rc: $(cat /tmp/lu-isodev.err)"
	[ "$(jfield bad_in </tmp/lu-isodev.json)" = 0 ] && [ "$(jfield bad_out </tmp/lu-isodev.json)" = 0 ] &&
		[ "$(jfield out_bytes </tmp/lu-isodev.json)" = $((16 * 32 * 1024)) ] ||
		fail "$label: lu-iso on zcusb-isodev: $(cat /tmp/lu-isodev.json)"
	[ $(($(jfield in_filled_packets </tmp/lu-isodev.json) * 2)) -ge $((16 * 32)) ] ||
		fail "$label: lu-iso: fewer than half the IN packets carried data"
	want=$((n0 + 16 * 32))
	wait_until 10 "zcusb-isodev to count $want OUT packets" sh -c "[ \"\$(grep -o '\"out_packets\": *[0-9]*' '$ISODEV_STATS' | grep -o '[0-9]*\$')\" -ge $want ]"
	[ "$(isodev_stat out_errors)" = "$e0" ] || fail "$label: zcusb-isodev found errors in lu-iso's OUT: $(isodev_stat out_first_error)"
}

RUN_NO=0
# iso_run LABEL ARG...: zcin runs zcusb-iso ARG... --json on the speaker with a stream offset
# of its own; checks its JSON and the wav file. Sets ISO_BACKEND, ISO_SERVED.
iso_run() {
	local label=$1 off rc=0 bytes
	shift
	RUN_NO=$((RUN_NO + 1))
	off=$((RUN_NO << 40))
	printf '+ (zcin) zcusb-iso --json --settle-ms 1500 --stream-offset %s %s %s\n' "$off" "$*" "$obj"
	run_as zcin "$iso" --json --settle-ms 1500 --stream-offset "$off" "$@" "$obj" >/tmp/iso.json 2>/tmp/iso.err || rc=$?
	note "$(cat /tmp/iso.json)"
	[ -s /tmp/iso.err ] && sed 's/^/   stderr: /' /tmp/iso.err
	if [ $rc -ne 0 ]; then
		journal_since | tail -n 15
		fail "$label: zcusb-iso exited $rc: $(cat /tmp/iso.err)"
	fi
	[ "$(jfield endpoint </tmp/iso.json)" = 0x01 ] || fail "$label: zcusb-iso did not stream to endpoint 0x01"
	[ "$(jfield packet_size </tmp/iso.json)" = 192 ] || fail "$label: packets of $(jfield packet_size </tmp/iso.json) bytes, expected 192"
	[ "$(jfield in_order </tmp/iso.json)" = true ] || fail "$label: completions arrived out of submission order"
	bytes=$(jfield bytes </tmp/iso.json)
	ISO_BACKEND=$(jfield backend </tmp/iso.json)
	ISO_SERVED=$(jfield served_by </tmp/iso.json)
	check_wav "$off" "$bytes" || fail "$label: the speaker did not play what zcusb-iso sent (above)"
}

# iso_pass LABEL: the two runs on whatever zcusbd is configured for now; prints who served them.
iso_pass() {
	local label=$1 kq0=0 kq1=0 served rc
	step "iso pass '$label': zcusb-iso as zcin, 64 x 32 packets, 4 in flight, malformed requests"
	wait_until 20 "zcin to see $obj" sh -c "setpriv --reuid=zcin --regid=\$(id -g zcin) --init-groups -- zcusbctl list | grep -q ' $obj'"
	journal_mark
	if kmod_loaded; then
		kmod_stats
		kq0=$KS_kq_transfers
	fi
	iso_run "$label" --transfers 64 --packets 32 --in-flight 4
	[ "$(jfield bad_requests </tmp/iso.json)" = 5 ] || fail "$label: $(jfield bad_requests </tmp/iso.json) malformed requests checked, expected 5"
	step "iso pass '$label': 8 x 128 packets (ZCUSB_ISO_MAX_PACKETS), 2 in flight"
	iso_run "$label" --transfers 8 --packets 128 --in-flight 2 --no-bad
	isodev_runs "$label"
	served=$ISO_SERVED
	SERVED_KIND=$ISO_SERVED
	if kmod_loaded; then
		kmod_stats
		kq1=$KS_kq_transfers
		if [ "$ISO_BACKEND" = zcusb.ko ]; then
			if [ $((kq1 - kq0)) -gt 0 ]; then
				served="kernel (zcusb.ko's queues took $((kq1 - kq0)) entries)"
				SERVED_KIND=kernel
			else
				served="daemon (zcusb.ko's queues took none)"
				SERVED_KIND=daemon
			fi
		fi
	fi
	step "iso pass '$label': lu-iso (plain libusb-1.0) through zcusb-run: 8 OUT transfers of 32 packets"
	printf '+ (zcin) zcusb-run lu-iso --device=%s --interface=1 --alt=1 --in=0 --out=0x01 --packets=32 --size=192 --transfers=8\n' "$AUDIO_ID"
	rc=0
	run_as zcin zcusb-run "$luiso" "--device=$AUDIO_ID" --interface=1 --alt=1 --in=0 --out=0x01 --packets=32 \
		--size=192 --transfers=8 >/tmp/lu-iso.json 2>/tmp/lu-iso.err || rc=$?
	note "$(cat /tmp/lu-iso.json)"
	if [ $rc -ne 0 ]; then
		journal_since | tail -n 15
		fail "$label: lu-iso through zcusb-run exited $rc: $(cat /tmp/lu-iso.err)"
	fi
	[ "$(jfield out_bytes </tmp/lu-iso.json)" = $((8 * 32 * 192)) ] && [ "$(jfield bad_out </tmp/lu-iso.json)" = 0 ] ||
		fail "$label: lu-iso did not send every packet complete: $(cat /tmp/lu-iso.json)"
	note "pass '$label': backend $ISO_BACKEND, ring served by $served"
	journal_since | grep -E 'claimed by|isochronous|falling back|cannot claim' | sed 's/^/   journal: /' || true
}

iso_pass "default backend ($(busctl --system get-property org.zcusb1 /org/zcusb1 org.zcusb1.Manager Backend 2>/dev/null | cut -d' ' -f2 | tr -d '"'))"
[ "$ISO_BACKEND" = usbfs ] || note "(the default backend is $ISO_BACKEND, not usbfs)"

step "zcusb.ko installed, zcusbd on Backend=zcusb (KernelQueues=yes)"
kmod_used=1
kmod_install
zcusbd_config "Backend=zcusb" "KernelQueues=yes"
zcusbd_restart
kmsg_mark
iso_pass "Backend=zcusb, KernelQueues=yes"
[ "$ISO_BACKEND" = zcusb.ko ] && [ "$SERVED_KIND" = kernel ] ||
	fail "Backend=zcusb, KernelQueues=yes: the iso claim was on $ISO_BACKEND, its ring served by $SERVED_KIND (want zcusb.ko, kernel)"

step "zcusbd on Backend=zcusb, KernelQueues=no"
zcusbd_config "Backend=zcusb" "KernelQueues=no"
zcusbd_restart
iso_pass "Backend=zcusb, KernelQueues=no"
[ "$ISO_BACKEND" = zcusb.ko ] && [ "$SERVED_KIND" = daemon ] ||
	fail "Backend=zcusb, KernelQueues=no: the iso claim was on $ISO_BACKEND, its ring served by $SERVED_KIND (want zcusb.ko, daemon)"

step "Backend=auto with a module without iso (hide_features=1): the claim falls back to usbfs"
kmod_param hide_features 1
zcusbd_config "KernelQueues=yes"
zcusbd_restart
journal_mark
iso_run "module without iso" --transfers 8 --packets 32 --in-flight 2 --no-bad
journal_since | grep -E 'claimed by|isochronous|falling back|cannot claim' | sed 's/^/   journal: /' || true
[ "$ISO_BACKEND" = usbfs ] || fail "with a module without iso the claim was on $ISO_BACKEND, not usbfs"
journal_since | grep -q 'has no isochronous transfers' ||
	fail "zcusbd did not say why the iso claim left zcusb.ko (journal above)"
kmod_param hide_features 0

step "zcusb.ko idle after the iso passes"
wait_until 10 "zcusb.ko to hold no queue, nothing in flight or pinned" sh -c '
	s=/sys/bus/usb/drivers/zcusb/stats
	grep -q "^kqueues 0$" $s && grep -q "^kq_in_flight 0$" $s && grep -q "^pinned_pages 0$" $s'
kmod_stats
note "kqueues $KS_kqueues kq_in_flight $KS_kq_in_flight pinned_pages $KS_pinned_pages"
kmsg_check
echo "PASS"
