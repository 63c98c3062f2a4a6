#!/bin/sh
# hosts: 3
# timeout: 300
#
# Read replication (`coherence = "mrsw"`, Documentation/mrsw.md) between
# real guests: every host restarts its manager with it, and h1 owns
# /wfs/m (4 pages, page i starting "page-i") and /wfs/ctl (flags in its
# first page, a counter in its second; read-replicated too).
#
# - h2 and h3 both read every page of /wfs/m through `mmap`: each holds a
#   read-only copy at once. Reading them again, 10 times over, faults
#   nothing and sends or receives no message on either (no copy took
#   another's away: read sharing costs nothing after the first touch), and
#   each counts 4 or more read-only copies installed.
# - h2 writes page 0 through its mapping (its read copy upgraded in
#   place: no data moved, h3's copy revoked) and leaves it dirty. h3 then
#   reads page 0 and sees h2's bytes: h2 sent them home before keeping a
#   read copy, so h1's disk has them before anyone synced (a read copy is
#   served only from the owner's stable storage).
# - h3 writes 1 to 40 into a word of /wfs/m's page 3, each synced, while
#   h1 and h2 read it over and over: neither ever sees it go back, and
#   both see 40 in the end (a writer's copy revoked every reader's first).
# - h2 and h3 increment a counter in one page of /wfs/ctl, 200 times each,
#   under a spin lock in that page: it ends at 400 (writes to a page two
#   hosts write stay coherent, upgrades racing included).
# - After every host synced, /export/m and /export/ctl on h1 hold it all.
# - h2 and h3 keep read copies of a page and leave the cluster, one after
#   the other: h1, alone then, hears both leave (without a majority, only
#   their word can tell it) and writes that page at once, with no read
#   copy left anywhere (a leaving manager waits for its peers to
#   acknowledge what it said last before it closes its connections).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/ctl.
READY=0          # + 4*h: h runs its mrsw manager
READ=16          # + 4*h: h has read every page once
WROTE=32         # h2 wrote page 0
SEEN=36          # + 4*h: h read h2's bytes
COUNTED=80       # + 4*h: h is done counting
SEQDONE=128      # + 4*h: h saw the last number
REREAD=96        # + 4*h: h is done counting what reading again moved
SEQ=$((3 * 4096 + 64))  # the word h3 numbers, in /wfs/m's page 3
LAST=40
LOCK=4096        # the spin lock (second page); the counter is the word after it
COUNTER=4100
N=200            # increments per counting host
fail() { fail_with_state "$@"; }
others() { for o in 1 2 3; do [ $o = $h ] || echo $o; done; }
page() { dd if=/wfs/m bs=1 skip=$(($1 * 4096)) count=$2 2>/dev/null; }
stats_line() { wfsctl stats | sed -n "s/^read replication: read-only copies in \([0-9]*\), upgrades granted in place \([0-9]*\), refaulted \([0-9]*\)$/\\$1/p"; }
barrier() {
    $H/dsm set /wfs/ctl $(($1 + 4 * h)) 1
    for o in $(others); do
        $H/dsm wait /wfs/ctl $(($1 + 4 * o)) 1 120 || fail "h$o never got to word $1"
    done
}

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
restart_manager_with 'coherence = "mrsw"'
wfsctl wait --peers --timeout 90 || fail "peers not connected after the restart"
if [ "$h" = 1 ]; then
    # (Whole before their names appear: a host looking a file up while it
    # grows would see it shorter.)
    for i in 0 1 2 3; do
        printf 'page-%d' "$i" | dd of=/export/.m bs=4096 seek=$i conv=notrunc,sync 2>/dev/null
    done
    dd if=/dev/zero of=/export/.ctl bs=4096 count=2 2>/dev/null
    mv /export/.m /export/m
    mv /export/.ctl /export/ctl
fi
appear 60 m ctl || fail "/wfs/m or /wfs/ctl never appeared"
barrier $READY

# 1. Read copies side by side.
if [ "$h" != 1 ]; then
    $H/mmapcat /wfs/m > /tmp/m || fail "reading /wfs/m through mmap"
    for i in 0 1 2 3; do
        got=$(dd if=/tmp/m bs=1 skip=$((i * 4096)) count=6 2>/dev/null)
        [ "$got" = "page-$i" ] || fail "page $i reads $got"
    done
fi
# (Its second page read now, not fetched ahead and given back unread while
# a reader counts messages below.)
dd if=/wfs/ctl of=/dev/null bs=4096 count=2 2>/dev/null || fail "reading /wfs/ctl"
barrier $READ
# The readers count in turn, h2 then h3, and h1 writes its word last: any
# word written to /wfs/ctl revokes the readers' copies of its page, which
# is a message the counting reader would see.
[ "$h" != 3 ] || $H/dsm wait /wfs/ctl $((REREAD + 8)) 1 120 || fail "h2 never finished counting"
if [ "$h" != 1 ]; then
    msgs() { wfsctl stats | sed -n 's/^peer messages: sent \([0-9]*\), received \([0-9]*\),.*/\1 \2/p'; }
    # (mmapcat's fstat asks the owner for the file's times when they are
    # a second old: one message sent, two back, counted apart.)
    asked() { wfsctl stats | sed -n 's/.*times asked of owners \([0-9]*\).*/\1/p'; }
    # (Held open meanwhile: an open of a file this host has open already
    # costs no message; the first would ask the owner, the last tell it.)
    exec 5< /wfs/m
    r0=$(stat_of READ)
    m0=$(msgs) t0=$(asked)
    for i in 1 2 3 4 5 6 7 8 9 10; do
        $H/mmapcat /wfs/m > /tmp/m2 || fail "reading /wfs/m again"
        cmp -s /tmp/m /tmp/m2 || fail "/wfs/m changed between two reads"
    done
    r1=$(stat_of READ)
    m1=$(msgs) t1=$(asked)
    exec 5<&-
    [ "$r1" = "$r0" ] || fail "reading again faulted $((r1 - r0)) page(s): a read copy was taken away"
    t=$((t1 - t0))
    set -- $m0 $m1
    [ $(($3 - $1)) = $t ] && [ $(($4 - $2)) = $((2 * t)) ] ||
        fail "reading again moved messages other than $t times asked (sent, received: $m0 -> $m1)"
    copies=$(stats_line 1)
    [ "$copies" -ge 4 ] || fail "only $copies read-only copies installed"
    echo "h$h: holds read copies of every page beside the other reader's"
fi
# (Before h2's write: its revocation must not land in a reader's count.)
[ "$h" != 1 ] || $H/dsm wait /wfs/ctl $((REREAD + 12)) 1 120 || fail "h3 never finished counting"
barrier $REREAD

# 2. A write: upgraded in place, the other copy revoked, the data home
# before anyone reads it.
case $h in
2)
    up0=$(stats_line 2)
    $H/mmapwrite /wfs/m 16384 0 h2-wrote || fail "writing page 0"
    up1=$(stats_line 2)
    [ "$up1" -gt "$up0" ] || fail "the write to a read copy was not an upgrade in place ($up0 -> $up1)"
    $H/dsm set /wfs/ctl $WROTE 1
    ;;
*)
    $H/dsm wait /wfs/ctl $WROTE 1 120 || fail "h2 never wrote"
    if [ "$h" = 3 ]; then
        [ "$(page 0 8)" = h2-wrote ] || fail "page 0 reads $(page 0 8), not h2's bytes"
    fi
    ;;
esac
if [ "$h" = 1 ]; then
    # h3's read copy came from this disk, after h2's data (nobody synced).
    $H/dsm wait /wfs/ctl $((SEEN + 12)) 1 120 || fail "h3 never read h2's bytes"
    grep -q h2-wrote /export/m || fail "h3 read h2's bytes, but /export/m lacks them: a read copy not from stable storage"
    echo "h1: h2's bytes were on disk before h3 read them"
fi
$H/dsm set /wfs/ctl $((SEEN + 4 * h)) 1

# 3. Readers see a writer's numbers in order.
case $h in
3)
    for i in $(seq 1 $LAST); do
        $H/dsm set /wfs/m $SEQ "$i" || fail "writing $i"
    done
    ;;
*)
    last=0
    while [ "$last" -lt $LAST ]; do
        v=$($H/dsm get /wfs/m $SEQ) || fail "reading the number"
        [ "$v" -ge "$last" ] || fail "the number went back from $last to $v"
        last=$v
    done
    echo "h$h: saw the numbers in order up to $last"
    ;;
esac
barrier $SEQDONE

# 4. Write sharing: a counter under a spin lock, in a page every host reads.
if [ "$h" != 1 ]; then
    v=$($H/dsm count /wfs/ctl $LOCK $N 300) || fail "counting failed"
    echo "h$h: counted; the counter was $v when it finished"
    echo "h$h: $(wfsctl stats | grep '^read replication')"
    $H/dsm set /wfs/ctl $((COUNTED + 4 * h)) 1
fi
for o in 2 3; do
    $H/dsm wait /wfs/ctl $((COUNTED + 4 * o)) 1 300 || fail "h$o never finished counting"
done
v=$($H/dsm get /wfs/ctl $COUNTER)
[ "$v" = $((2 * N)) ] || fail "the counter is $v, not $((2 * N))"

# 5. On the owner's disk once every host synced.
sync
barrier $((COUNTED + 16))
if [ "$h" = 1 ]; then
    grep -q h2-wrote /export/m || fail "/export/m lacks h2's bytes"
    for i in 1 2 3; do
        got=$(dd if=/export/m bs=1 skip=$((i * 4096)) count=6 2>/dev/null)
        [ "$got" = "page-$i" ] || fail "/export/m page $i holds $got"
    done
    [ "$($H/dsm get /export/m $SEQ)" = $LAST ] || fail "/export/m lacks h3's last number"
    d=$($H/dsm get /export/ctl $COUNTER)
    [ "$d" = $((2 * N)) ] || fail "/export/ctl's counter is $d, not $((2 * N))"
    lost=$(failures 2)
    [ "$lost" = 0 ] || fail "$lost page(s) reported lost"
    echo "h1: everything is on disk"
fi

# 6. Readers that leave. h2 and h3 read page 1 of /wfs/m again (a read
# copy each), say so and finish: their managers leave the cluster, h3's
# first. h1 waits until it has seen both leave (h1 alone then is cut off
# from most of the cluster and takes nobody for dead on its own: only
# their `Leaving` tells it), then writes page 1 at once: no read copy is
# left to revoke, none waits for a host that is gone.
if [ "$h" != 1 ]; then
    [ "$(page 1 6)" = page-1 ] || fail "page 1 reads $(page 1 6)"
    [ "$h" = 3 ] || $H/dsm wait /wfs/ctl $((COUNTED + 44)) 1 120 || fail "h3 never finished"
    $H/dsm set /wfs/ctl $((COUNTED + 32 + 4 * h)) 1
    echo "PASS h$h"
    exit 0
fi
for o in 2 3; do
    $H/dsm wait /wfs/ctl $((COUNTED + 32 + 4 * o)) 1 120 || fail "h$o never finished"
done
for o in 3 2; do
    i=0
    until wfsctl status | grep -q "^peer h$o .*; dead "; do
        i=$((i + 1))
        [ $i -le 600 ] || fail "h$o never left: $(wfsctl status | grep "^peer h$o")"
        sleep 0.1
    done
done
echo "h1: h2 and h3 have left"
$H/mmapwrite /wfs/m 16384 4096 after-all-left || fail "writing page 1 after the readers left"
[ "$(page 1 14)" = after-all-left ] || fail "page 1 reads $(page 1 14)"
copies=$(wfsctl status | sed -n 's/^read-only copies of this host.s pages: //p')
[ "$copies" = "h2 0, h3 0" ] || fail "read-only copies still counted at hosts that left: $copies"
echo "h1: wrote a page the leavers had read copies of"
echo "PASS h$h"
