#!/bin/sh
# hosts: 2 3
# debug-hosts: 3
# timeout: 600
# coherence: single mrsw
# debug-coherence: mrsw
#
# Memory shared between guests through a file one of them owns. With 2
# guests h1 owns the files; with 3, h3 does (the paper's Berkeley DB setup)
# and the two others share them.
#
# 1. Every other host reads /wfs/shared (16 pages the owner wrote to its
#    export) and sees exactly its bytes, through mmap and through read(2);
#    `ls /wfs` lists the owner's files.
# 2. One non-owner rewrites the whole file through a shared mapping; every
#    other host, the owner included, then reads the new bytes.
# 3. A counter in one shared page, guarded by a spin lock in the same page
#    (an atomic exchange), is incremented 1000 times by each of two hosts
#    at once; it ends at exactly 2000 on both. A short pause after each
#    increment makes sure the two really interleave (the page moves back
#    and forth), which the test checks: the first host to finish must
#    already see some of the other's increments.
# 4. After every host has synced, the owner's /export holds every write,
#    and its `wfsctl stats` counts the pages it wrote and their flushes.
#
# The hosts step together through flags in /wfs/ctl, a page that is itself
# shared memory: word 0 is the phase, then a flag per host and step.
set -eu
h=$WFS_HOST
n=$WFS_HOSTS
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
if [ "$n" = 2 ]; then owner=1; else owner=$n; fi
# The first non-owner writes; with 3 hosts the non-owners count, with 2
# both hosts do.
if [ "$owner" = 1 ]; then writer=2; else writer=1; fi
counts() { [ "$n" = 2 ] || [ "$1" != "$owner" ]; }
ncount=0
i=1
while [ $i -le "$n" ]; do
    if counts $i; then ncount=$((ncount + 1)); fi
    i=$((i + 1))
done

# Word offsets in /wfs/ctl.
PHASE=0          # 1: the writer has rewritten /wfs/shared; 2: all done
READ=16          # + 4*h: h has checked the owner's bytes
SEEN=32          # + 4*h: h has checked the writer's bytes
COUNTED=48       # + 4*h: h has counted
SYNCED=80        # + 4*h: h has synced
FINISH=96        # + 4*h: the counter when h finished counting
LOCK=128         # the spin lock; the counter is the word after it
COUNTER=132

flag() { $H/dsm set /wfs/ctl $(($1 + 4 * h)) 1 || fail "cannot set flag $1"; }
# wait_flags BASE HOSTS...: every listed host's flag at BASE is set.
wait_flags() {
    base=$1
    shift
    for o in "$@"; do
        $H/dsm wait /wfs/ctl $((base + 4 * o)) 1 300 || fail "h$o never set flag $base"
    done
}
all_hosts() {
    i=1
    while [ $i -le "$n" ]; do echo $i; i=$((i + 1)); done
}
others() { all_hosts | grep -vx "$owner"; }

wfsctl wait --peers --timeout 90 || fail "peers not connected"

if [ "$h" = "$owner" ]; then
    # (Whole and filled before their names appear: a host looking a file
    # up while dd still writes it sees it shorter, rightly.)
    dd if=/dev/zero of=/export/.shared bs=4096 count=16 2>/dev/null
    dd if=/dev/zero of=/export/.ctl bs=4096 count=1 2>/dev/null
    $H/dsm fill /export/.shared 3 || fail "cannot fill the export"
    mv /export/.ctl /export/ctl
    mv /export/.shared /export/shared
else
    appear 60 shared ctl || fail "/wfs/shared or /wfs/ctl never appeared"
    [ "$(stat -c %s /wfs/shared)" = 65536 ] || fail "size $(stat -c %s /wfs/shared), not 65536"
    ls /wfs | grep -qx shared || fail "ls /wfs does not list shared: $(ls /wfs)"
    ls /wfs | grep -qx ctl || fail "ls /wfs does not list ctl: $(ls /wfs)"
    # 1. The owner's bytes, through mmap and through read(2).
    $H/dsm check /wfs/shared 3 || fail "mmap of /wfs/shared does not hold the owner's bytes"
    cat /wfs/shared > /tmp/copy
    $H/dsm check /tmp/copy 3 || fail "read(2) of /wfs/shared does not return the owner's bytes"
    echo "h$h: read the owner's 16 pages"
    flag $READ
fi

# 2. The writer rewrites the file once every non-owner has read it.
if [ "$h" = "$writer" ]; then
    wait_flags $READ $(others)
    $H/dsm fill /wfs/shared 5 || fail "cannot rewrite /wfs/shared"
    $H/dsm set /wfs/ctl $PHASE 1
    echo "h$h: rewrote /wfs/shared"
else
    $H/dsm wait /wfs/ctl $PHASE 1 300 || fail "the writer never finished"
    $H/dsm check /wfs/shared 5 || fail "h$h does not see the writer's bytes"
    if [ "$h" = "$owner" ]; then
        # The writer's msync put every page on the owner's disk.
        $H/dsm check /export/shared 5 || fail "/export/shared lacks the writer's bytes after its msync"
    fi
    echo "h$h: sees the writer's bytes"
fi
flag $SEEN
wait_flags $SEEN $(all_hosts)

# 3. The counter.
if counts "$h"; then
    v=$($H/dsm count /wfs/ctl $LOCK 1000 300) || fail "counting failed"
    echo "h$h: counted; the counter was $v when it finished"
    $H/dsm set /wfs/ctl $((FINISH + 4 * h)) "$v"
    flag $COUNTED
fi
for o in $(all_hosts); do
    if counts $o; then wait_flags $COUNTED $o; fi
done
v=$($H/dsm get /wfs/ctl $COUNTER)
[ "$v" = $((1000 * ncount)) ] || fail "counter is $v, not $((1000 * ncount))"
echo "h$h: counter is $v"
first=$((1000 * ncount))
for o in $(all_hosts); do
    if counts $o; then
        f=$($H/dsm get /wfs/ctl $((FINISH + 4 * o)))
        if [ "$f" -lt "$first" ]; then first=$f; fi
    fi
done
[ "$first" -gt 1000 ] || fail "the hosts did not count at the same time (first finisher saw $first)"

# 4. Every host syncs; then the owner's export holds every write.
sync
flag $SYNCED
wait_flags $SYNCED $(all_hosts)
if [ "$h" = "$owner" ]; then
    v=$($H/dsm get /export/ctl $COUNTER)
    [ "$v" = $((1000 * ncount)) ] || fail "/export/ctl holds counter $v, not $((1000 * ncount))"
    $H/dsm check /export/shared 5 || fail "/export/shared lost a write"
    # Every page written home went through the page protocol's disk
    # writes, each made durable by a flush (several at most one each).
    written=$(disk_stat 1)
    flushes=$(disk_stat 2)
    [ -n "$written" ] && [ "$written" -ge 16 ] ||
        fail "the owner counts ${written:-no} pages written to its disk, not at least the writer's 16"
    [ "$flushes" -ge 1 ] && [ "$flushes" -le "$written" ] ||
        fail "$written pages written in $flushes flushes"
    echo "h$h: /export holds every write ($written pages written in $flushes flushes)"
    $H/dsm set /wfs/ctl $PHASE 2
else
    # Stay up until the owner is done: it may need pages this host holds.
    $H/dsm wait /wfs/ctl $PHASE 2 300 || fail "the owner never finished"
fi
wfsctl stats || true
# Whoever wrote last holds the page: stay up while the others read it.
sleep 3
echo "PASS h$h"
