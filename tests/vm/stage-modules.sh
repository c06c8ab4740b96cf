# shellcheck shell=bash
# Sourced by the initramfs builders (tests/vm/build-initramfs.sh, kmod/tests/run-kmod-tests.sh).
#
# stage_modules STAGE MODULE...: copy MODULEs of Debian's kernel (ZCUSB_KVER, ZCUSB_MODDIR from
# fetch-kernel.sh) and what they depend on into STAGE/lib/modules, uncompressed, and list them
# in dependency order, with the options modprobe gives them, in STAGE/etc/zcusb-modules
# ("NAME.ko ARGS" per line) for the guest's init to insmod. Calls the caller's die on failure.
stage_modules() {
	local stage=$1 root=${ZCUSB_MODDIR%/lib/modules/*} m deps kind path args name
	local -A seen=()
	shift
	: >"$stage/etc/zcusb-modules"
	for m in "$@"; do
		deps=$(modprobe -d "$root" -S "$ZCUSB_KVER" --show-depends "$m") ||
			die "modprobe --show-depends $m failed for $ZCUSB_KVER in $root (did fetch-kernel.sh run depmod?)"
		while read -r kind path args; do
			[ "$kind" = insmod ] || continue
			name=$(basename "$path")
			[ -z "${seen[$name]:-}" ] || continue
			seen[$name]=1
			case $path in
			*.ko) cp "$path" "$stage/lib/modules/$name" ;;
			*.ko.xz) xz -dc "$path" >"$stage/lib/modules/${name%.xz}" && name=${name%.xz} ;;
			*.ko.zst) zstd -qdc "$path" >"$stage/lib/modules/${name%.zst}" && name=${name%.zst} ;;
			*) die "unexpected module file $path" ;;
			esac
			echo "$name $args" >>"$stage/etc/zcusb-modules"
		done <<<"$deps"
	done
}
