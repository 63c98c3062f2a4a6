#!/bin/sh
# The guest half of `make bench` (tools/bench.sh boots one guest with WFS
# and runs this). Every measurement runs here, in the same guest and the
# same run, and prints one "RESULT <key> <wfsbench line>" line (or "RAW
# <key> <microseconds>..." for samples taken here); the host turns them
# into tables.
set -eu
B=/opt/bench
PAGES=${PAGES:-1000}
ROUNDS=${ROUNDS:-10}
fail() { echo "BENCH-FAILED: $*"; exit 1; }
result() { key=$1; shift; line=$("$@") || fail "$key: $*"; echo "RESULT $key $line"; }
# snap TAG: the manager's statistics now, for the report's breakdowns of
# the faults (READ service time, the time of each stage).
H_=1
# (Also the guest's CPU time, busy and in all, and the manager's, in
# clock ticks: /proc/stat and /proc/PID/stat.)
snap() {
    wfsctl stats | sed "s/^/STATS $1 h$H_ /"
    echo "STATS $1 h$H_ cpu $(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
    echo "STATS $1 h$H_ manager_cpu $(awk '{ print $14 + $15 }' "/proc/$(pidof wfs-manager)/stat")"
}
wfsctl wait --timeout 60 || fail "manager did not register"

# The same file size everywhere: PAGES pages.
dd if=/dev/urandom of=/export/bench bs=4096 count="$PAGES" 2>/dev/null
mkdir -p /mnt/tmpfs
mount -t tmpfs tmpfs /mnt/tmpfs || fail "mount tmpfs"
cp /export/bench /mnt/tmpfs/local
mkdir -p /mnt/fuse
$B/memfuse /mnt/fuse $((PAGES * 4096)) &
i=0
until [ -e /mnt/fuse/f ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "memfuse did not mount"
    sleep 0.05
done
[ "$(stat -c %s /wfs/bench)" = $((PAGES * 4096)) ] || fail "/wfs/bench size"

# Table 1: page faults.
result local-cached $B/wfsbench fault local-cached /mnt/tmpfs/local "$PAGES" "$ROUNDS"
result wfs-cached $B/wfsbench fault wfs-cached /wfs/bench "$PAGES" "$ROUNDS"
# The paper's null page fault: the manager answers READ at once, without
# touching the data (wfsctl null-read on, which the manager allows only
# when started with --debug-switches: tools/bench.sh has tools/wfs-vm start
# it so); then the full single-host fault.
wfsctl null-read on || fail "null-read on"
snap null-before
result wfs-null $B/wfsbench fault wfs-null /wfs/bench "$PAGES" "$ROUNDS" drop
snap null-after
wfsctl null-read off || fail "null-read off"
snap miss-before
result wfs-miss $B/wfsbench fault wfs-miss /wfs/bench "$PAGES" "$ROUNDS" drop
snap miss-after
cmp /wfs/bench /export/bench || fail "/wfs/bench differs from /export/bench after the benchmark"
result fuse-miss $B/wfsbench fault fuse-miss /mnt/fuse/f "$PAGES" "$ROUNDS" drop
result uffd-miss $B/wfsbench uffd uffd-miss "$PAGES" "$ROUNDS"
result tcp-page $B/wfsbench tcp tcp-page 2000

# Invalidation: every page cached, then each dropped by the manager.
cat /wfs/bench > /dev/null
n=0
: > /tmp/inval
while [ $n -lt "$PAGES" ]; do
    wfsctl invalidate bench $n --time >> /tmp/inval || fail "invalidate $n"
    n=$((n + 1))
done
grep -c "clean, read-write" /tmp/inval | grep -qx "$PAGES" || fail "not every page was cached and invalidated: $(sort /tmp/inval | uniq -c | head)"
# (busybox awk has no sqrt: the host computes the statistics.)
echo "RAW invalidate $(sed 's/.*ioctl \([0-9.]*\) us.*/\1/' /tmp/inval | tr '\n' ' ')"

# Copy or remap: what handing a page across the kernel boundary costs.
result copy $B/wfsbench copy copy 20000
result remap $B/wfsbench remap remap 20000
umount /mnt/fuse
umount /mnt/tmpfs
echo BENCH-DONE
