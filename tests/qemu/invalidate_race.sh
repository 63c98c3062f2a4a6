#!/bin/sh
# hosts: 1
# timeout: 300
#
# Invalidation racing with faults, writes and writeback. pagestress keeps
# two threads rewriting whole pages of a shared mapping (checking each
# page through the mapping and pread(2) before every rewrite, and msync'ing
# every 8th), while the manager drops and downgrades random pages of the
# same file as fast as it can. No write may be lost, no page torn, nothing
# may deadlock, and /export must end with every page's last generation.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
stat_of() { wfsctl stats | awk -v op="$1" '$1 == op { print $2 }'; }
wfsctl wait --timeout 60 || fail "manager did not register"

PAGES=16
dd if=/dev/zero of=/export/s bs=4096 count=$PAGES 2>/dev/null
/opt/helpers/pagestress /wfs/s /export/s $PAGES 25 > /tmp/ps.out 2>&1 &
ps=$!
n=0 dirty=0
while kill -0 $ps 2>/dev/null; do
    p=$((RANDOM % PAGES))
    mode=
    [ $((RANDOM % 2)) = 0 ] && mode=--downgrade
    out=$(wfsctl invalidate s $p $mode) || fail "invalidate s $p $mode"
    case $out in *"dirty data written"*) dirty=$((dirty + 1)) ;; esac
    n=$((n + 1))
done
wait $ps || fail "pagestress: $(cat /tmp/ps.out)"
cat /tmp/ps.out
echo "$n invalidations raced, $dirty of them took dirty data"
wfsctl stats
[ $n -ge 20 ] || fail "only $n invalidations raced the writers"
[ $dirty -ge 5 ] || fail "only $dirty invalidations met a dirty page: the race was not exercised"
[ "$(stat_of UPGRADE)" -ge 5 ] || fail "downgrades caused too few UPGRADEs"
[ "$(stat_of READ)" -gt $PAGES ] || fail "drops caused no new READs"
[ "$(stat_of WRITE)" -ge 5 ] || fail "too few WRITEs: writeback did not race"
echo PASS
