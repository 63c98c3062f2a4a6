#!/bin/sh
# hosts: 1
# timeout: 240
#
# Chunk's strategy on one host: pages of /wfs files come from the manager
# through the netmem pool. read(2) and mmap see exactly the bytes of
# /export; a fault past the end of the file is SIGBUS; without a manager,
# a read of an uncached page fails with EIO and a fault with SIGBUS, at
# once, and pages cached before its death are gone with its grants (they
# are read again from the next manager); a new manager serves again.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
wfsctl wait --timeout 60 || fail "manager did not register"

# 5 full pages and a partial one.
dd if=/dev/urandom of=/export/f bs=1000 count=22 2>/dev/null
[ "$(stat -c %s /wfs/f)" = 22000 ] || fail "size"
# Through mmap first: every page is a fault served by READ.
/opt/helpers/mmapcat /wfs/f > /tmp/via-mmap || fail "mmapcat failed"
cmp /tmp/via-mmap /export/f || fail "mmap contents differ from /export/f"
# read(2) goes through the same page cache.
cmp /wfs/f /export/f || fail "read(2) contents differ from /export/f"
# A second file, read first with read(2) and then mapped.
dd if=/dev/urandom of=/export/g bs=4096 count=8 2>/dev/null
cmp /wfs/g /export/g || fail "read(2) of g"
[ "$(/opt/helpers/mmapcat /wfs/g | md5sum)" = "$(md5sum < /export/g)" ] || fail "mmap of g"
# The manager counted every page it served (6 of f, 8 of g) and the lookups.
wfsctl stats
reads=$(wfsctl stats | awk '$1 == "READ" { print $2 }')
lookups=$(wfsctl stats | awk '$1 == "LOOKUP" { print $2 }')
[ "$reads" -ge 14 ] || fail "wfsctl stats shows $reads READs, expected at least 14"
[ "$lookups" -ge 2 ] || fail "wfsctl stats shows $lookups LOOKUPs"

# Past the end of the file (the mapping covers 8 pages of a 6-page file):
# the last partial page reads as zeros after the data, the page after is
# SIGBUS, as on any file system.
[ "$(/opt/helpers/mmapget /wfs/f 32768 22001)" = 0 ] || fail "byte after EOF in the last page"
set +e
/opt/helpers/mmapget /wfs/f 32768 28000; rc=$?
set -e
[ $rc = 135 ] || fail "fault past EOF gave status $rc, not SIGBUS (135)"

# Without a manager: uncached pages fail at once.
dd if=/dev/urandom of=/export/h bs=4096 count=4 2>/dev/null
stat /wfs/h > /dev/null
pid=$(pidof wfs-manager)
kill -KILL $pid
while kill -0 $pid 2>/dev/null; do sleep 0.1; done
start=$(date +%s)
if cat /wfs/h > /dev/null 2>/tmp/err; then fail "read without a manager succeeded"; fi
grep -q 'Input/output error' /tmp/err || fail "read without manager: $(cat /tmp/err)"
set +e
/opt/helpers/mmapget /wfs/h 16384 8192; rc=$?
set -e
[ $rc = 135 ] || fail "fault without a manager gave status $rc, not SIGBUS"
[ $(( $(date +%s) - start )) -le 2 ] || fail "failing without a manager took too long"
# Clean pages cached under the dead manager went with its grants: no
# page is served without a manager.
if cat /wfs/f > /dev/null 2>&1; then fail "pages granted by the dead manager are still served"; fi

wfs-manager --config /etc/wfs/cluster.toml &
wfsctl wait --timeout 60 || fail "restarted manager did not register"
cmp /wfs/h /export/h || fail "not served after restart"
cmp /wfs/f /export/f || fail "pages cached before the restart not served again"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
