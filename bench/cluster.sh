#!/bin/sh
# The two-guest half of `make bench` (tools/bench.sh boots two guests with
# WFS and runs this on both). h1 owns every file; h2 is the other host.
# Prints "RESULT <key> <wfsbench line>" and "FIG4 <percent> <who> <wfsbench
# share line>" lines for tools/bench-report.py.
#
# 1. Remote page faults on h2: each page of ROUNDS files of PAGES pages,
#    mapped alone and touched once, (a) held by h1's kernel (h1 read the
#    files through /wfs: the owner takes the page out of its kernel and
#    sends it) and (b) only on h1's disk; next to the raw TCP round trip
#    (16 B request, 4 KB answer) between the same two guests.
# 2. Sequential read on h2 of SEQ_RUNS files of SEQ_MIB MiB that live on
#    h1's disk, with read(2), next to the TCP bandwidth between the same
#    two guests (SEQ_MIB MiB sent, SEQ_RUNS times).
#    Both managers print their statistics before and after 1(a) and 4
#    ("STATS held-before|held-after|seq-before|seq-after h<N> <wfsctl
#    stats line>", and the guest's and the manager's CPU time): the
#    report takes the remote fault and the scan apart with them.
# 3. The Chunk paper's Figure 4: both hosts run the sharing benchmark on a
#    64 KiB file at 0, 25, 50, 75 and 100% sharing, RUNS times each, at
#    the same moment (TRAV traversals of 800 pages per run); then h1 runs
#    it alone (the purely local run). Then the read-mostly variant (every
#    visit reads, h1 writes at 1% of its visits). Both with the files kept
#    `single` ("FIG4"/"FIG4R" lines), then again after both managers
#    restarted with `coherence = "mrsw"` ("FIG4M"/"FIG4RM").
# 4. With `mrsw`, the sequential read of step 2 again (the same files,
#    gone home from h2 when its manager restarted): read copies, which
#    h2's manager fetches ahead of the scan ("seq-remote-mrsw").
# 5. The cost of encryption: both managers restart with `transport =
#    "plain"` (no authentication, no encryption; the coherence `single`
#    again), and h2 takes the remote faults of 1(b) and the sequential
#    read of 2 again ("remote-disk-plain", "seq-remote-plain"), next to
#    the same runs over the default noise transport above.
set -eu
B=/opt/bench
H=/opt/helpers
. $H/lib.sh
PAGES=${PAGES:-1000}
ROUNDS=${ROUNDS:-10}
RUNS=${RUNS:-5}
SEQ_MIB=${SEQ_MIB:-64}
SEQ_RUNS=${SEQ_RUNS:-3}
TRAV=${TRAV:-20}
h=$WFS_HOST
CTL=/wfs/ctl
fail() { echo "BENCH-FAILED: h$h: $*"; exit 1; }
result() { key=$1; shift; line=$("$@") || fail "$key: $*"; echo "RESULT $key $line"; }
# snap TAG: this manager's statistics now, for the report's breakdowns of
# the remote fault and the sequential read.
H_=$h
# (Also the guest's CPU time, busy and in all, and the manager's, in
# clock ticks: /proc/stat and /proc/PID/stat.)
snap() {
    wfsctl stats | sed "s/^/STATS $1 h$H_ /"
    echo "STATS $1 h$H_ cpu $(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
    echo "STATS $1 h$H_ manager_cpu $(awk '{ print $14 + $15 }' "/proc/$(pidof wfs-manager)/stat")"
}
other=$((3 - h))
# barrier N: both hosts have reached step N (word 4*host of /wfs/ctl).
barrier() {
    $H/dsm set $CTL $((4 * h)) "$1" || fail "barrier $1"
    $H/dsm wait $CTL $((4 * other)) "$1" 600 || fail "h$other never reached step $1"
}

wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/shared bs=4096 count=16 2>/dev/null
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        dd if=/dev/urandom of=/export/held-$r bs=4096 count="$PAGES" 2>/dev/null
        dd if=/dev/urandom of=/export/disk-$r bs=4096 count="$PAGES" 2>/dev/null
        # Through /wfs: h1's kernel holds these pages now.
        cat /wfs/held-$r > /dev/null
        r=$((r + 1))
    done
    r=0
    while [ $r -lt "$SEQ_RUNS" ]; do
        dd if=/dev/urandom of=/export/seq-$r bs=1M count="$SEQ_MIB" 2>/dev/null
        r=$((r + 1))
    done
    $B/wfsbench tcp-serve 7100 &
    $B/wfsbench tcp-sink 7101 &
else
    appear 120 ctl || fail "$CTL never appeared"
fi
snap held-before
barrier 1

held="" disk=""
r=0
while [ $r -lt "$ROUNDS" ]; do
    held="$held /wfs/held-$r"
    disk="$disk /wfs/disk-$r"
    r=$((r + 1))
done
if [ "$h" = 2 ]; then
    # shellcheck disable=SC2086
    result remote-held $B/wfsbench fault1 remote-held "$PAGES" $held
fi
# (Both managers' statistics after the remote faults, before anything else.)
barrier 2
snap held-after
barrier 3
if [ "$h" = 2 ]; then
    # shellcheck disable=SC2086
    result remote-disk $B/wfsbench fault1 remote-disk "$PAGES" $disk
    result tcp-guests $B/wfsbench tcp tcp-guests 2000 10.0.0.1 7100
    seq="" r=0
    while [ $r -lt "$SEQ_RUNS" ]; do
        seq="$seq /wfs/seq-$r"
        r=$((r + 1))
    done
    # shellcheck disable=SC2086
    result seq-remote $B/wfsbench seq seq-remote $seq
    result tcp-bw $B/wfsbench tcp-bw tcp-bw "$SEQ_RUNS" "$SEQ_MIB" 10.0.0.1 7101
fi
barrier 4

# Figure 4.
step=4
# figure4 TAG KIND: the sweep of wfsbench KIND (share, rshare), RUNS runs
# at each sharing, both hosts at once; then h1 alone, once to bring every
# page here, then measured.
figure4() {
    for pct in 0 25 50 75 100; do
        run=0
        while [ $run -lt "$RUNS" ]; do
            step=$((step + 1))
            barrier $step
            line=$($B/wfsbench "$2" fig4 /wfs/shared $pct $((h - 1)) "$TRAV") || fail "$2 $pct"
            echo "$1 $pct h$h $line"
            run=$((run + 1))
        done
    done
    step=$((step + 1))
    barrier $step
    if [ "$h" = 1 ]; then
        $B/wfsbench "$2" fig4 /wfs/shared 0 0 "$TRAV" > /dev/null || fail "$2 alone"
        run=0
        while [ $run -lt "$RUNS" ]; do
            line=$($B/wfsbench "$2" fig4 /wfs/shared 0 0 "$TRAV") || fail "$2 alone"
            echo "$1 local h1 $line"
            run=$((run + 1))
        done
    fi
    step=$((step + 1))
    barrier $step
}
figure4 FIG4 share
figure4 FIG4R rshare
# The same with read replication: both managers restart with it (each
# leaves, its pages going home) and meet again.
wfsctl stats | grep '^read replication' || true
# (h2 first, h1, whose /wfs/ctl is, once h2's manager has gone: a
# restart of both at once could leave h2 holding on to h1's old manager.)
restart_in_turn $CTL 1024 1 'coherence = "mrsw"' || fail "the restart with mrsw failed"
figure4 FIG4M share
figure4 FIG4RM rshare
wfsctl stats | grep '^read replication' || true
snap seq-before
barrier $((step + 1))
if [ "$h" = 2 ]; then
    # shellcheck disable=SC2086
    result seq-remote-mrsw $B/wfsbench seq seq-remote-mrsw $seq
    wfsctl stats | grep '^prefetch' || true
fi
barrier $((step + 2))
snap seq-after
barrier $((step + 3))
restart_in_turn $CTL 1280 1 'transport = "plain"' || fail "the restart with the plain transport failed"
wfsctl stats | grep '^transport: plain' || fail "the plain transport is not in use"
barrier $((step + 4))
if [ "$h" = 2 ]; then
    # shellcheck disable=SC2086
    result remote-disk-plain $B/wfsbench fault1 remote-disk-plain "$PAGES" $disk
    # shellcheck disable=SC2086
    result seq-remote-plain $B/wfsbench seq seq-remote-plain $seq
fi
barrier $((step + 5))
# Whoever wrote last holds the page: stay up while the other reads it.
sleep 3
wfsctl stats
echo BENCH-DONE
