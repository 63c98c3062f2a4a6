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
. /opt/helpers/lib.sh
wfsctl wait --timeout 60 || fail "manager did not register"

PAGES=16
dd if=/dev/zero of=/export/s bs=4096 count=$PAGES 2>/dev/null
/opt/helpers/pagestress /wfs/s /export/s $PAGES 25 > /tmp/ps.out 2>&1 &
ps=$!
invalidate_while $ps s $PAGES || fail "$inv_err"
n=$inv_n dirty=$inv_dirty
wait $ps || fail "pagestress: $(cat /tmp/ps.out)"
cat /tmp/ps.out
echo "$n invalidations raced, $dirty of them took dirty data"
wfsctl stats
why=$(raced $n $dirty $PAGES) || fail "$why"
echo PASS
