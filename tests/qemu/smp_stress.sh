#!/bin/sh
# hosts: 1
# timeout: 300
# smp: 2
#
# Two CPUs at once on the same pages. smpstress pins one thread to each
# CPU; both rewrite their half of the same 16 pages of a shared mapping
# (through the mapping or pwrite(2)), checking their half through the
# mapping and pread(2) before each rewrite, msync'ing every 8th update and
# fsync'ing every 64th, for 30 s, while the manager drops and downgrades
# random pages of the file as fast as it can and a third loop runs sync.
# The guest must have 2 CPUs; no write may be lost, no half page torn,
# nothing may deadlock; invalidations must meet dirty data, and /export
# must end with every half page's last generation.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
wfsctl wait --timeout 60 || fail "manager did not register"

[ "$(nproc)" = 2 ] || fail "the guest has $(nproc) CPU(s), not 2 (tools/wfs-vm --smp 2)"
[ -w /proc/sys/kernel/hung_task_timeout_secs ] && echo 20 > /proc/sys/kernel/hung_task_timeout_secs

PAGES=16
dd if=/dev/zero of=/export/s bs=4096 count=$PAGES 2>/dev/null
/opt/helpers/smpstress /wfs/s /export/s $PAGES 30 > /tmp/ss.out 2>&1 &
ss=$!
( n=0
  while kill -0 $ss 2>/dev/null; do sync; n=$((n + 1)); echo $n > /tmp/syncs; sleep 0.2; done ) &
syncer=$!
invalidate_while $ss s $PAGES || fail "$inv_err"
n=$inv_n dirty=$inv_dirty
wait $ss || fail "smpstress: $(cat /tmp/ss.out)"
wait $syncer || true
cat /tmp/ss.out
echo "$n invalidations raced, $dirty of them took dirty data; $(cat /tmp/syncs 2>/dev/null || echo 0) syncs"
wfsctl stats
for cpu in 0 1; do
    u=$(sed -n "s/^smpstress: CPU $cpu: \([0-9]*\) updates.*/\1/p" /tmp/ss.out)
    [ "${u:-0}" -ge 100 ] || fail "CPU $cpu made only ${u:-0} updates"
done
why=$(raced $n $dirty $PAGES) || fail "$why"
echo PASS
