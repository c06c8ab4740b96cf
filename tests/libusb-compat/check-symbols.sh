#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every function Debian's libusb-1.0.so.0 exports, ours exports too, with the
# same version (both unversioned: "Base") and type, and nothing else; same SONAME.
# Usage: check-symbols.sh OURS REFERENCE
set -eu
ours="$1"
ref="$2"
if [ ! -e "$ref" ]; then
        echo "SKIP: the reference $ref is not installed (libusb-1.0-0)"
        exit 77
fi
syms() {
        # name, version, type of every defined dynamic symbol
        objdump -T "$1" | awk '$2 == "g" && $4 != "*UND*" { print $NF, $(NF-1), $3 }' | sort
}
soname() {
        objdump -p "$1" | awk '$1 == "SONAME" { print $2 }'
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
syms "$ref" >"$tmp/ref"
syms "$ours" >"$tmp/ours"
status=0
if ! diff -u "$tmp/ref" "$tmp/ours"; then
        echo "FAIL: the exported symbols differ (- Debian's libusb, + ours)"
        status=1
fi
if [ "$(soname "$ref")" != "$(soname "$ours")" ]; then
        echo "FAIL: SONAME $(soname "$ours"), Debian's is $(soname "$ref")"
        status=1
fi
echo "$(wc -l <"$tmp/ours") symbols, SONAME $(soname "$ours"), against $ref"
exit $status
