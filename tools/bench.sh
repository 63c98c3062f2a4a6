#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: boots one guest with WFS, runs bench/guest.sh in it (every
# system measured in the same guest, in the same run), then two guests
# running bench/cluster.sh (remote page faults next to a raw TCP round trip
# between the same guests, and the paper's Figure 4 sharing benchmark),
# and prints the tables of Documentation/benchmarks.md: mean, standard
# deviation, median and ratios; it draws Figure 4 (single against mrsw)
# and the fault latencies' distributions into build/bench/*.svg. Under TCG (no KVM here) absolute times are
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
# guests OUT HOSTS TIMEOUT SCRIPT [ADD...]: runs bench/SCRIPT on HOSTS
# guests (with build/bench and every ADD), its output in OUT; fails unless
# every guest printed BENCH-DONE.
guests() {
    local out=$1 hosts=$2 timeout=$3 script=$4
    shift 4
    local adds=(--add "$ROOT/build/bench:/opt/bench" --add "$ROOT/bench/$script:/opt/$script")
    for a in "$@"; do adds+=(--add "$a"); done
    if ! "$ROOT/tools/wfs-vm" run --verbose --hosts "$hosts" --timeout "$timeout" ${MEM:+--mem "$MEM"} \
            ${MANAGER_ARG:+--manager-arg="$MANAGER_ARG"} "${adds[@]}" \
            -- /bin/sh -c "PAGES=$PAGES ROUNDS=$ROUNDS exec /bin/sh /opt/$script" > "$out" 2>&1; then
        grep -E "BENCH-FAILED|FAIL|error" "$out" | head -20 >&2 || tail -20 "$out" >&2
        echo "[bench] the $hosts-guest benchmark run failed" >&2
        exit 1
    fi
    [ "$(grep -c BENCH-DONE "$out")" = "$hosts" ] ||
        { tail -20 "$out" >&2; echo "[bench] incomplete $hosts-guest run" >&2; exit 1; }
}
echo "[bench] one guest; $PAGES pages x $ROUNDS rounds per fault benchmark (a few minutes under TCG)"
# (guest.sh turns on null-read, which the manager allows only when started
# with --debug-switches.)
MANAGER_ARG=--debug-switches guests "$out" 1 1200 guest.sh
echo "[bench] two guests; remote faults ($PAGES pages x $ROUNDS files), then Figure 4"
# (1 GiB each: h1's export holds the sequential-read files, h2 reads them.)
MEM=1024 guests "$cl" 2 1800 cluster.sh "$ROOT/build/test-helpers:/opt/helpers"
[ -z "$RAW" ] || cat "$out" "$cl" > "$RAW"
# The pictures need matplotlib (a real plotting library, from PyPI).
python3 -c 'import matplotlib' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check matplotlib ||
    echo "[bench] matplotlib could not be installed: no pictures" >&2
accel=$(grep -o '\(tcg\|kvm\), -smp' "$out" | head -n1 | cut -d, -f1)
cat "$out" "$cl" | exec python3 "$ROOT/tools/bench-report.py" "${accel:-tcg}"
