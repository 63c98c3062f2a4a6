#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: boots one guest with WFS, runs bench/guest.sh in it (every
# system measured in the same guest, in the same run), then two guests
# running bench/cluster.sh (remote page faults next to a raw TCP round trip
# between the same guests, and the paper's Figure 4 sharing benchmark),
# and prints the tables of Documentation/benchmarks.md: mean, standard
# deviation, median and ratios. Under TCG (no KVM here) absolute times are
# emulation times; only the ratios mean anything.
#
#   tools/bench.sh [--pages N] [--rounds N] [--raw FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PAGES=1000 ROUNDS=10 RAW=
while [ $# -gt 0 ]; do
    case $1 in
        --pages) PAGES=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --raw) RAW=$2; shift 2 ;;
        *) echo "usage: tools/bench.sh [--pages N] [--rounds N] [--raw FILE]" >&2; exit 2 ;;
    esac
done
out=$(mktemp)
cl=$(mktemp)
trap 'rm -f "$out" "$cl"' EXIT
echo "[bench] one guest; $PAGES pages x $ROUNDS rounds per fault benchmark (a few minutes under TCG)"
if ! "$ROOT/tools/wfs-vm" run --hosts 1 --timeout 1200 \
        --add "$ROOT/build/bench:/opt/bench" \
        --add "$ROOT/bench/guest.sh:/opt/bench-guest.sh" \
        -- /bin/sh -c "PAGES=$PAGES ROUNDS=$ROUNDS exec /bin/sh /opt/bench-guest.sh" > "$out" 2>&1; then
    grep -E "BENCH-FAILED|FAIL|error" "$out" | head -20 >&2 || tail -20 "$out" >&2
    echo "[bench] the benchmark run failed" >&2
    exit 1
fi
grep -q BENCH-DONE "$out" || { tail -20 "$out" >&2; echo "[bench] incomplete run" >&2; exit 1; }
echo "[bench] two guests; remote faults ($PAGES pages x $ROUNDS files), then Figure 4"
if ! "$ROOT/tools/wfs-vm" run --hosts 2 --timeout 1800 \
        --add "$ROOT/build/bench:/opt/bench" \
        --add "$ROOT/build/test-helpers:/opt/helpers" \
        --add "$ROOT/bench/cluster.sh:/opt/bench-cluster.sh" \
        -- /bin/sh -c "PAGES=$PAGES ROUNDS=$ROUNDS exec /bin/sh /opt/bench-cluster.sh" > "$cl" 2>&1; then
    grep -E "BENCH-FAILED|FAIL|error" "$cl" | head -20 >&2 || tail -20 "$cl" >&2
    echo "[bench] the two-guest benchmark run failed" >&2
    exit 1
fi
[ "$(grep -c BENCH-DONE "$cl")" = 2 ] || { tail -20 "$cl" >&2; echo "[bench] incomplete two-guest run" >&2; exit 1; }
[ -z "$RAW" ] || cat "$out" "$cl" > "$RAW"
accel=$(grep -o '\(tcg\|kvm\), -smp' "$out" | head -n1 | cut -d, -f1)
cat "$out" "$cl" | exec python3 "$ROOT/tools/bench-report.py" "${accel:-tcg}"
