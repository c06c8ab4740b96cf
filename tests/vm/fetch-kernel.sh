#!/bin/bash
# Fetch and unpack Debian's current amd64 kernel for the QEMU test tier.
#
#   tests/vm/fetch-kernel.sh            fetch if needed, print the KEY=VALUE lines below
#   tests/vm/fetch-kernel.sh --print    same (explicit)
#   tests/vm/fetch-kernel.sh --check    only report whether the cache is complete (rc 0/1)
#
# Environment:
#   ZCUSB_VM_CACHE   cache directory (default /var/cache/zcusb-test)
#   ZCUSB_VM_KVER    use this kernel ABI name (e.g. 6.1.0-56-amd64) instead of resolving
#                    linux-image-amd64 with apt-cache; it is downloaded if not cached.
#
# What it does (each step skipped when its stamp is present):
#   1. resolves the kernel package behind linux-image-amd64 and the headers, headers-common
#      and linux-kbuild packages it needs (apt-cache depends), and their candidate versions
#   2. apt-get downloads them into CACHE/debs (temp dir, then rename)
#   3. dpkg -x all of them into CACHE/kernels/KVER/root, extracts an uncompressed vmlinux
#      (PVH-bootable ELF, saves the xz decompression under TCG) and runs depmod -b on the
#      unpacked modules; the tree is built under a temp name and renamed into place, then
#      CACHE/kernels/KVER/stamp records the package versions.
# On success it prints, on stdout only, shell assignments (safe for eval):
#   ZCUSB_KVER ZCUSB_KDIR ZCUSB_VMLINUX ZCUSB_MODDIR ZCUSB_KHEADERS ZCUSB_KHEADERS_COMMON
# Everything else goes to stderr. A lock (flock) serialises concurrent runs.
set -euo pipefail

CACHE=${ZCUSB_VM_CACHE:-/var/cache/zcusb-test}
MODE=${1:---print}
case $MODE in
--print | --check) ;;
-h | --help)
	sed -n '2,25p' "$0"
	exit 0
	;;
*)
	echo "fetch-kernel.sh: unknown argument '$MODE' (use --print or --check)" >&2
	exit 2
	;;
esac

log() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() {
	printf 'fetch-kernel: error: %s\n' "$*" >&2
	exit 1
}

for tool in apt-cache apt-get dpkg-deb depmod python3 flock; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' not found; install the packages in tests/vm/packages.txt (apt-get install \$(cat tests/vm/packages.txt))"
done

mkdir -p "$CACHE/debs" "$CACHE/kernels" ||
	die "cannot create cache directory $CACHE (run as root or set ZCUSB_VM_CACHE to a writable directory)"
exec 9>"$CACHE/.lock"
flock 9

# --- 1. resolve package names and versions -------------------------------------------------
# apt's answer only changes when its package lists do: CACHE/resolved keeps the last answer
# (kernel ABI name, then PKG=VERSION lines) and is reused while no list is newer than it.
RESOLVED=$CACHE/resolved
emit() { cat "$CACHE/kernels/$1/env"; }
lists_newer_than() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -newer "$1" -print -quit 2>/dev/null)" ]
}
if [ -s "$RESOLVED" ] && ! lists_newer_than "$RESOLVED"; then
	KVER=$(head -n1 "$RESOLVED")
	if [ -z "${ZCUSB_VM_KVER:-}" ] || [ "$ZCUSB_VM_KVER" = "$KVER" ]; then
		if [ -e "$CACHE/kernels/$KVER/stamp" ] &&
			[ "$(cat "$CACHE/kernels/$KVER/stamp")" = "$(tail -n +2 "$RESOLVED")" ]; then
			[ "$MODE" = --check ] && exit 0
			emit "$KVER"
			exit 0
		fi
	fi
fi

# The package PKG depends on whose name matches REGEX.
dep_of() { # PKG REGEX
	apt-cache depends "$1" 2>/dev/null |
		sed -n 's/^ *Depends: *//p' | tr -d '<>' | grep -E -m1 "$2" || true
}
latest_cached() {
	local d best=""
	for d in "$CACHE"/kernels/*/stamp; do
		[ -e "$d" ] || continue
		best=$(basename "$(dirname "$d")")
	done
	printf '%s' "$best"
}

KVER=${ZCUSB_VM_KVER:-}
if [ -z "$KVER" ]; then
	img=$(dep_of linux-image-amd64 '^linux-image-[0-9].*-amd64$')
	if [ -n "$img" ]; then
		KVER=${img#linux-image-}
	else
		KVER=$(latest_cached)
		[ -n "$KVER" ] ||
			die "apt-cache cannot resolve linux-image-amd64 and nothing is cached in $CACHE; run 'apt-get update' (Debian's main archive must be in the apt sources)"
		log "warning: apt-cache cannot resolve linux-image-amd64 (no apt lists?); using cached kernel $KVER"
	fi
fi
[[ $KVER =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-amd64$ ]] ||
	die "unexpected kernel ABI name '$KVER' (expected like 6.1.0-56-amd64)"

KDIR=$CACHE/kernels/$KVER
STAMP=$KDIR/stamp
IMG_PKG=linux-image-$KVER
HDR_PKG=linux-headers-$KVER
COMMON_PKG=$(dep_of "$HDR_PKG" '^linux-headers-.*-common$')
KBUILD_PKG=$(dep_of "$HDR_PKG" '^linux-kbuild-')
PKGS=()
WANT=""
declare -A VERSION=()
if [ -n "$COMMON_PKG" ] && [ -n "$KBUILD_PKG" ]; then
	PKGS=("$IMG_PKG" "$HDR_PKG" "$COMMON_PKG" "$KBUILD_PKG")
	# one apt-cache call for all four: "pkg:" lines, then "  Candidate: v"
	while read -r p v; do
		VERSION[$p]=$v
	done < <(apt-cache policy "${PKGS[@]}" 2>/dev/null |
		awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^ +Candidate:/ && $2 != "(none)" { print p, $2 }')
	for p in "${PKGS[@]}"; do
		[ -n "${VERSION[$p]:-}" ] || die "apt has no candidate for $p; run 'apt-get update'"
		WANT+="$p=${VERSION[$p]}"$'\n'
	done
	WANT=${WANT%$'\n'}
fi

if [ -e "$STAMP" ]; then
	if [ -z "$WANT" ] || [ "$(cat "$STAMP")" = "$WANT" ]; then
		if [ -n "$WANT" ]; then
			printf '%s\n%s\n' "$KVER" "$WANT" >"$RESOLVED.tmp" && mv -f "$RESOLVED.tmp" "$RESOLVED"
		else
			log "warning: apt cannot resolve $HDR_PKG; using the cached tree unchecked"
		fi
		[ "$MODE" = --check ] && exit 0
		emit "$KVER"
		exit 0
	fi
	log "cached $KVER is $(tr '\n' ' ' <"$STAMP"); apt now has $(printf '%s' "$WANT" | tr '\n' ' '): refreshing"
fi
[ "$MODE" = --check ] && exit 1
[ -n "$WANT" ] || die "cannot resolve the headers packages of $HDR_PKG with apt-cache; run 'apt-get update'"

# --- 2. download ------------------------------------------------------------------------------
t0=$(date +%s)
rm -rf "$CACHE"/debs/.partial.* # left by a killed run (we hold the lock)
debs=()
missing=()
for p in "${PKGS[@]}"; do
	v=${VERSION[$p]}
	f=""
	for c in "$CACHE/debs/${p}_${v//:/%3a}_"*.deb; do
		[ -e "$c" ] && f=$c && break
	done
	if [ -n "$f" ] && dpkg-deb --info "$f" >/dev/null 2>&1; then
		debs+=("$f")
	else
		missing+=("$p=$v")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	log "downloading ${missing[*]}"
	tmpd=$(mktemp -d "$CACHE/debs/.partial.XXXXXX")
	trap 'rm -rf "$tmpd"' EXIT
	(cd "$tmpd" && apt-get -q -o APT::Sandbox::User=root download "${missing[@]}") >&2 ||
		die "apt-get download ${missing[*]} failed (network? 'apt-get update'?)"
	for f in "$tmpd"/*.deb; do
		dpkg-deb --info "$f" >/dev/null || die "downloaded $f is not a valid .deb"
		mv -f "$f" "$CACHE/debs/"
		debs+=("$CACHE/debs/$(basename "$f")")
	done
	rm -rf "$tmpd"
	trap - EXIT
fi
[ ${#debs[@]} -eq ${#PKGS[@]} ] || die "expected ${#PKGS[@]} packages, have ${#debs[@]}: ${debs[*]}"

# --- 3. unpack, vmlinux, depmod (in a temp tree, renamed into place) --------------------------
log "unpacking $KVER"
rm -rf "$CACHE/kernels/.tmp.$KVER".* "$CACHE/kernels/.old.$KVER".*
tmpk=$(mktemp -d "$CACHE/kernels/.tmp.$KVER.XXXXXX")
trap 'rm -rf "$tmpk"' EXIT
for f in "${debs[@]}"; do
	dpkg-deb -x "$f" "$tmpk/root" || die "dpkg-deb -x $f failed"
done

vmlinuz=$tmpk/root/boot/vmlinuz-$KVER
[ -f "$vmlinuz" ] || die "$IMG_PKG has no /boot/vmlinuz-$KVER"
python3 - "$vmlinuz" "$tmpk/vmlinux" <<'EOF' || die "cannot extract vmlinux from $vmlinuz"
import lzma, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
magic = b"\xfd7zXZ\x00"
off = data.find(magic)
while off >= 0:
    try:
        out = lzma.LZMADecompressor().decompress(data[off:])
    except lzma.LZMAError:
        out = b""
    if out[:4] == b"\x7fELF":
        open(dst + ".part", "wb").write(out)
        import os
        os.rename(dst + ".part", dst)
        sys.exit(0)
    off = data.find(magic, off + 1)
sys.exit("no xz-compressed ELF found in " + src)
EOF

MODREL=lib/modules/$KVER
[ -d "$tmpk/root/$MODREL" ] || die "$IMG_PKG has no /$MODREL"
depmod -b "$tmpk/root" "$KVER" || die "depmod -b $tmpk/root $KVER failed"
[ -s "$tmpk/root/$MODREL/modules.dep" ] || die "depmod wrote no modules.dep"

common=${COMMON_PKG#linux-headers-}
cat >"$tmpk/env" <<EOF
ZCUSB_KVER=$KVER
ZCUSB_KDIR=$KDIR
ZCUSB_VMLINUX=$KDIR/vmlinux
ZCUSB_MODDIR=$KDIR/root/$MODREL
ZCUSB_KHEADERS=$KDIR/root/usr/src/linux-headers-$KVER
ZCUSB_KHEADERS_COMMON=$KDIR/root/usr/src/linux-headers-$common
EOF
printf '%s\n' "$WANT" >"$tmpk/stamp"
chmod 755 "$tmpk"

if [ -e "$KDIR" ]; then
	old=$(mktemp -d "$CACHE/kernels/.old.$KVER.XXXXXX")
	mv "$KDIR" "$old/"
	mv "$tmpk" "$KDIR"
	rm -rf "$old"
else
	mv "$tmpk" "$KDIR"
fi
trap - EXIT
printf '%s\n%s\n' "$KVER" "$WANT" >"$RESOLVED.tmp" && mv -f "$RESOLVED.tmp" "$RESOLVED"
# Packages of older kernels are not needed any more (their unpacked trees stay usable).
for f in "$CACHE"/debs/*.deb; do
	keep=0
	for d in "${debs[@]}"; do [ "$f" = "$d" ] && keep=1; done
	[ $keep = 1 ] || { log "removing old $(basename "$f")"; rm -f "$f"; }
done
log "kernel $KVER ready in $KDIR ($(($(date +%s) - t0)) s)"
emit "$KVER"
