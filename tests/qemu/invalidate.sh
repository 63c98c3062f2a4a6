#!/bin/sh
# hosts: 1
# timeout: 300
#
# The manager takes pages and names away from the kernel (INVALIDATE and
# FORGET, through `wfsctl invalidate` and `wfsctl forget`). DROP removes a
# page, even one a live mapping uses: the next access faults it in again
# (READ) and sees what the owner has now. DOWNGRADE keeps a clean read-only
# copy, so the next write through a live mapping sends UPGRADE. A dirty
# page's data comes back through a scratch slot and the owner writes it to
# /export at once, with no msync. FORGET drops a cached negative lookup.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
H=/opt/helpers
. $H/lib.sh
patch() { printf %s "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
wfsctl wait --timeout 60 || fail "manager did not register"
# No periodic writeback, and a share of the dirty limit for WFS's bdi: the
# flusher's background check runs every 5 s and writes any dirty page of a
# bdi whose share of the limit is near zero, so a page written here could be
# clean by the time steps 2 and 3 take it back (a CI run saw "downgrade:
# page 0 of f: clean, read-write" so).
echo 0 > /proc/sys/vm/dirty_writeback_centisecs
for b in /sys/class/bdi/wfs-*; do echo 50 > "$b/min_ratio"; done

dd if=/dev/urandom of=/export/f bs=4096 count=4 2>/dev/null
cp /export/f /tmp/f
$H/mmapcat /wfs/f > /tmp/f.read || fail "mmapcat"
cmp /tmp/f.read /tmp/f || fail "first read"

# 1. DROP of a clean page; a second DROP finds nothing; a read fetches
#    exactly that page again.
[ "$(wfsctl invalidate f 1)" = "page 1 of f: clean, read-write" ] || fail "drop: $(wfsctl invalidate f 1)"
[ "$(wfsctl invalidate f 1)" = "page 1 of f: not cached" ] || fail "second drop found the page"
[ "$(wfsctl invalidate f 9 --mode downgrade)" = "page 9 of f: not cached" ] || fail "a page past EOF"
# A file this host does not export is refused: its pages move only by the
# page protocol, and its dirty data has no home here.
if out=$(wfsctl invalidate nosuchfile 0 2>&1); then fail "unknown file accepted: $out"; fi
echo "$out" | grep -q "not exported by this host" || fail "unknown file: $out"
reads=$(stat_of READ)
cmp /wfs/f /tmp/f || fail "read after drop"
[ "$(stat_of READ)" = $((reads + 1)) ] || fail "read after drop sent $(( $(stat_of READ) - reads )) READs, not 1"

# 2. A dirty page comes back and is written home, with no msync.
$H/mmapwrite /wfs/f 16384 8200 DIRTYDATA || fail "mmapwrite"
patch /tmp/f 8200 DIRTYDATA
cmp /export/f /tmp/f > /dev/null 2>&1 && fail "the write reached /export before any writeback"
out=$(wfsctl invalidate f 2)
[ "$out" = "page 2 of f: dirty, read-write; dirty data written to the export" ] || fail "dirty drop: $out"
cmp /export/f /tmp/f || fail "the dirty page did not reach /export"
cmp /wfs/f /tmp/f || fail "re-read after dirty drop"

# 3. A live mapping: DROP under it, change the file behind the kernel's
#    back, and the mapping sees the new bytes; DOWNGRADE under it, and its
#    next write sends UPGRADE.
hold /wfs/f 16384
cmd r 100 4; [ "$R" = "$(dd if=/tmp/f bs=1 skip=100 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n')" ] || fail "mapped read"
[ "$(wfsctl invalidate f 0)" = "page 0 of f: clean, read-write" ] || fail "drop of a mapped page"
patch /export/f 100 NEW!
patch /tmp/f 100 NEW!
cmd r 100 4; [ "$R" = "$(hex NEW!)" ] || fail "the mapping still sees the dropped page"
cmd w 200 mapped; [ "$R" = ok ] || fail "write through the mapping"
patch /tmp/f 200 mapped
upgrades=$(stat_of UPGRADE)
out=$(wfsctl invalidate f 0 --downgrade)
[ "$out" = "page 0 of f: dirty, read-write; dirty data written to the export" ] || fail "downgrade: $out"
cmp /export/f /tmp/f || fail "downgrade did not write the dirty page home"
[ "$(wfsctl invalidate f 0 --mode downgrade)" = "page 0 of f: clean, read-only" ] || fail "page not read-only after downgrade"
reads=$(stat_of READ)
cmd r 200 6; [ "$R" = "$(hex mapped)" ] || fail "read after downgrade"
[ "$(stat_of READ)" = "$reads" ] || fail "downgrade dropped the page"
[ "$(stat_of UPGRADE)" = "$upgrades" ] || fail "UPGRADE before any write"
cmd w 300 again; [ "$R" = ok ] || fail "write after downgrade"
patch /tmp/f 300 again
[ "$(stat_of UPGRADE)" = $((upgrades + 1)) ] || fail "a write to a downgraded page sent no UPGRADE"
cmd s; [ "$R" = ok ] || fail "msync"
cmp /export/f /tmp/f || fail "msync after upgrade"
exec 3>&-
wait $hold || fail "mmaphold failed"

# 4. FORGET: a cached negative lookup hides a new file until forgotten.
[ -e /wfs/g ] && fail "g exists"
echo hello > /export/g
lookups=$(stat_of LOOKUP)
[ -e /wfs/g ] && fail "negative dentry not cached (g seen at once)"
[ "$(stat_of LOOKUP)" = "$lookups" ] || fail "a cached negative lookup went to the manager"
wfsctl forget g || fail "forget"
[ "$(cat /wfs/g)" = hello ] || fail "g not visible after forget"
[ "$(stat_of LOOKUP)" = $((lookups + 1)) ] || fail "forget did not make the kernel look g up again"

# 5. Bad requests get clear errors.
set +e
wfsctl invalidate f x 2>/tmp/err; rc1=$?
wfsctl invalidate f 1 --mode evict 2>>/tmp/err; rc2=$?
wfsctl forget 'a/b' 2>>/tmp/err; rc3=$?
set -e
[ $rc1 = 2 ] && [ $rc2 = 2 ] || fail "bad invalidate arguments: $rc1 $rc2"
[ $rc3 = 1 ] && grep -q "Invalid argument" /tmp/err || fail "forget of a bad name: $rc3 $(cat /tmp/err)"
wfsctl stats
echo PASS
