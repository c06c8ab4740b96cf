#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run one libFuzzer target for a bounded time (meson suite 'fuzz-run'):
#   run-fuzz.sh TARGET SEED_CORPUS_DIR WORK_DIR
# New inputs go to WORK_DIR/corpus (the source corpus is only read), a crash to
# WORK_DIR/crash-* (then the test fails: libFuzzer exits non-zero). Seconds per
# target: $ZCUSB_FUZZ_SECONDS (default 60).
set -eu
target=$1 seeds=$2 work=$3
mkdir -p "$work/corpus"
exec "$target" -max_total_time="${ZCUSB_FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds"
