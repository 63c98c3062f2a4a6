#!/bin/sh
# hosts: 1
# timeout: 300
#
# Chunk's putpages on one host: writes through a shared mapping and through
# write(2)/pwrite(2) land in the page cache, are coherent with each other
# and between processes,
# and reach /export on msync/fsync (WRITE). A write across or past the end
# grows the file (SETSIZE); a store past the last page is SIGBUS. Pages
# granted read-only take the UPGRADE path on their first write. Without a
# manager, a write faults (nothing is granted), writeback fails with EIO
# and the data stays dirty until a new manager takes it.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
H=/opt/helpers
stat_of() { wfsctl stats | awk -v op="$1" '$1 == op { print $2 }'; }
# patch FILE OFFSET TEXT: the expected contents, changed like /wfs.
patch() { printf %s "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
wfsctl wait --timeout 60 || fail "manager did not register"

dd if=/dev/urandom of=/export/f bs=4096 count=5 2>/dev/null
cp /export/f /tmp/f

# 1. A write through a shared mapping, flushed by msync(MS_SYNC).
$H/mmapwrite /wfs/f 20480 5000 HELLO sync || fail "mmapwrite with msync"
patch /tmp/f 5000 HELLO
cmp /export/f /tmp/f || fail "msync did not carry the mmap write to /export"
[ "$(stat_of WRITE)" -ge 1 ] || fail "no WRITE upcall counted"

# 2. pwrite(2) then fsync(2); the mapping sees the bytes at once.
[ "$($H/pwr /wfs/f 9000 WORLD)" = 5 ] || fail "pwrite"
patch /tmp/f 9000 WORLD
[ "$($H/mmapget /wfs/f 20480 9000)" = 87 ] || fail "mmap does not see pwrite's W"
cmp /wfs/f /tmp/f || fail "read(2) does not see the writes"
[ "$($H/pwr /wfs/f 9001 o fsync)" = 1 ] || fail "pwrite+fsync"
patch /tmp/f 9001 o
cmp /export/f /tmp/f || fail "fsync did not carry pwrite to /export"

# 3. mmap writes are seen by read(2) before any writeback (one page cache).
$H/mmapwrite /wfs/f 20480 12000 coherent || fail "mmapwrite"
patch /tmp/f 12000 coherent
cmp /wfs/f /tmp/f || fail "read(2) does not see the mmap write"
sync
cmp /export/f /tmp/f || fail "sync did not write the mmap write back"

# 4. Files grow: a write across the end and one past it extend the file
#    (SETSIZE first; the single host is the owner), the gap reads as
#    zeros, /export has the size and the bytes after fsync; a store
#    through a mapping past the last page is still SIGBUS.
[ "$($H/pwr /wfs/f 20475 0123456789 fsync)" = 10 ] || fail "a write across EOF was cut"
patch /tmp/f 20475 0123456789
[ "$($H/pwr /wfs/f 30000 x fsync)" = 1 ] || fail "a write past EOF failed"
patch /tmp/f 30000 x
cmp /wfs/f /tmp/f || fail "the grown file does not read back (the gap must be zeros)"
cmp /export/f /tmp/f || fail "the grown file is not on /export after fsync"
[ "$(stat -c %s /export/f)" = 30001 ] && [ "$(stat -c %s /wfs/f)" = 30001 ] || fail "the file is not 30001 bytes"
[ "$(stat_of SETSIZE)" -ge 2 ] || fail "growing sent no SETSIZE"
# A mapping past the last page faults with SIGBUS on write too.
set +e
$H/mmapwrite /wfs/f 40960 36864 x; rc=$?
set -e
[ $rc = 135 ] || fail "mmap write past EOF gave status $rc, not SIGBUS (135)"

# 5. Two processes share a mapping: each sees the other's writes at once,
#    and msync from either carries both.
mkfifo /tmp/a.in /tmp/b.in
: > /tmp/a.out
: > /tmp/b.out
$H/mmaphold /wfs/f 20480 < /tmp/a.in > /tmp/a.out &
$H/mmaphold /wfs/f 20480 < /tmp/b.in > /tmp/b.out &
exec 4> /tmp/a.in 5> /tmp/b.in
# ask a|b COMMAND...: one mmaphold command; its answer is in $R.
ask() {
    who=$1; shift
    before=$(wc -l < /tmp/$who.out)
    case $who in a) echo "$*" >&4 ;; b) echo "$*" >&5 ;; esac
    i=0
    while [ "$(wc -l < /tmp/$who.out)" -le "$before" ]; do
        i=$((i + 1)); [ $i -lt 200 ] || fail "mmaphold $who did not answer '$*'"
        sleep 0.05
    done
    R=$(tail -n 1 /tmp/$who.out)
}
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
ask a w 3000 fromA; [ "$R" = ok ] || fail "A's write"
ask b r 3000 5; [ "$R" = "$(hex fromA)" ] || fail "B does not see A's write"
ask b w 15000 fromB; [ "$R" = ok ] || fail "B's write"
ask a r 15000 5; [ "$R" = "$(hex fromB)" ] || fail "A does not see B's write"
ask a s; [ "$R" = ok ] || fail "A's msync"
patch /tmp/f 3000 fromA
patch /tmp/f 15000 fromB
cmp /export/f /tmp/f || fail "A's msync did not carry both writes"
exec 4>&- 5>&-
wait

# 6. Read-only grants: the first write to each page sends UPGRADE, once.
kill -TERM "$(pidof wfs-manager)"
while pidof wfs-manager > /dev/null; do sleep 0.1; done
{ echo 'grant = "read-only"'; cat /etc/wfs/cluster.toml; } > /tmp/ro.toml
wfs-manager --config /tmp/ro.toml &
wfsctl wait --timeout 60 || fail "read-only-grant manager did not register"
dd if=/dev/urandom of=/export/g bs=4096 count=4 2>/dev/null
cp /export/g /tmp/g
# (Into a file: a write to /dev/null would not touch the mapping.)
$H/mmapcat /wfs/g > /tmp/g.read || fail "mmapcat g"
cmp /tmp/g.read /tmp/g || fail "contents of g"
[ "$(stat_of READ)" -ge 4 ] || fail "g was not read"
[ "$(stat_of UPGRADE)" = 0 ] || fail "reading sent UPGRADE"
$H/mmapwrite /wfs/g 16384 100 up1 sync || fail "mmap write to a read-only page"
patch /tmp/g 100 up1
[ "$(stat_of UPGRADE)" = 1 ] || fail "mmap write sent $(stat_of UPGRADE) UPGRADEs, not 1"
$H/mmapwrite /wfs/g 16384 200 up2 sync || fail "second mmap write"
patch /tmp/g 200 up2
[ "$(stat_of UPGRADE)" = 1 ] || fail "a page granted for writing was upgraded again"
[ "$($H/pwr /wfs/g 8192 up3 fsync)" = 3 ] || fail "pwrite to a read-only page"
patch /tmp/g 8192 up3
[ "$(stat_of UPGRADE)" = 2 ] || fail "pwrite sent no UPGRADE"
cmp /export/g /tmp/g || fail "writes to upgraded pages"
wfsctl stats

# 7. Without a manager nothing is granted: a write faults (SIGBUS). A page
# dirtied before it died is kept (its only copy) but its writeback fails
# (EIO) until a new manager takes it; nothing is lost.
# No periodic writeback, and a share of the dirty limit for WFS's bdi, so
# that the page stays dirty until the test syncs it.
echo 0 > /proc/sys/vm/dirty_writeback_centisecs
for b in /sys/class/bdi/wfs-*; do echo 50 > "$b/min_ratio"; done
$H/mmapwrite /wfs/g 16384 300 kept || fail "mmap write before the manager dies"
patch /tmp/g 300 kept
mpid=$(pidof wfs-manager)
kill -KILL "$mpid"
while kill -0 "$mpid" 2>/dev/null; do sleep 0.1; done
set +e
$H/mmapwrite /wfs/g 16384 12288 nope; rc=$?
set -e
[ $rc = 135 ] || fail "write to a page without a manager gave $rc, not SIGBUS"
out=$(echo s | $H/mmaphold /wfs/g 16384)
case $out in *"Input/output error"*) ;; *) fail "msync without a manager: $out" ;; esac
dd if=/wfs/g of=/tmp/g0.now bs=4096 count=1 2>/dev/null || fail "the dirty page is not readable"
head -c 4096 /tmp/g > /tmp/g0
cmp /tmp/g0.now /tmp/g0 || fail "the unwritten page lost its data"
wfs-manager --config /tmp/ro.toml &
wfsctl wait --timeout 60 || fail "restarted manager did not register"
sync
cmp /export/g /tmp/g || fail "the dirty page was not written back after the manager returned"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
