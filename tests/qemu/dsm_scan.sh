#!/bin/sh
# hosts: 2
# timeout: 300
# coherence: single mrsw
# debug-coherence: mrsw
#
# A sequential scan of another host's file streams: h2's manager fetches
# the pages after its kernel's READs before the kernel asks
# (user/wfs-manager/src/prefetch.rs), and a page it fetched ahead never
# goes stale. Only read-replicated (mrsw) files are fetched ahead: with
# `single`, the same scans fetch nothing ahead and read the same bytes.
#
# 1. h1 writes /export/scan and /export/scanm, 2048 pages of random
#    bytes each. h2 reads /wfs/scan with read(2) and /wfs/scanm through
#    mmap: both byte for byte what h1 wrote (sha256), and each time its
#    `wfsctl stats` counts most of the pages (mrsw; none with single) as
#    READs answered from pages fetched ahead. The stage timings count
#    every page: fetched at h2, read from disk and served at h1.
# 2. h2 reads only the first 64 pages of /wfs/fresh (256 pages): its
#    manager fetches (mrsw) 32 to 64 pages past them, which h2's kernel has
#    not asked for. h1 then rewrites pages 64-127 through /wfs/fresh (write(2)
#    and fsync). h2 reads the whole file and sees h1's new bytes: the
#    copies kept for its kernel went when h1's write took the pages.
#    Pages fetched ahead come to the kernel in runs: with mrsw, h2's
#    kernel sends fewer READs than three quarters of the pages it reads (a
#    READ carries up to 16 pages), and the pages it got that way are what was read.
# 3. (mrsw) h2 reads the first 64 pages of /wfs/idle (256 pages) and
#    stops: the up to 64 pages its manager fetched past them are dropped
#    unread after 10 s, and given back to h1: h1's directory then counts
#    exactly as many more read-only copies at h2 than before as h2's
#    kernel holds (the 64 pages it read, and those that came in the same
#    READs as the last of them: mincore), not those fetched ahead, so a
#    writer would not have to revoke them.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() { fail_with_state "$@"; }
HIS=0     # h2 read the first pages of /wfs/fresh
HELD=28   # how many pages of /wfs/idle h2's kernel holds
MINE=4    # h1 rewrote pages 64-127
READY=24     # h2 is done with step 2
COUNTED=12   # h1 counted h2's read copies before step 3
DROPPED=16   # h2's manager dropped what it fetched ahead of /wfs/idle
CHECKED=20   # h1 counted h2's read copies again
sum() { sha256sum | cut -d' ' -f1; }
mrsw() { grep -q '^coherence = "mrsw"' /etc/wfs/cluster.toml; }
# enough GOT OF: at least half of OF with mrsw, none with single.
enough() { if mrsw; then [ "$1" -ge $(($2 / 2)) ]; else [ "$1" = 0 ]; fi; }

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/.ctl bs=4096 count=1 2>/dev/null
    head -c $((2048 * 4096)) /dev/urandom > /export/.scan
    head -c $((2048 * 4096)) /dev/urandom > /export/.scanm
    head -c $((256 * 4096)) /dev/urandom > /export/.fresh
    head -c $((256 * 4096)) /dev/urandom > /export/.idle
    sum < /export/.scan > /export/.scan.sum
    sum < /export/.scanm > /export/.scanm.sum
    for f in ctl scan scanm fresh idle scan.sum scanm.sum; do mv /export/.$f /export/$f; done
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 60 ctl scan scanm fresh idle scan.sum scanm.sum || fail "the files never appeared"

if [ "$h" = 2 ]; then
    # 1. read(2), then mmap, of a remote file, byte for byte.
    want=$(cat /wfs/scan.sum)
    reads=$(stat_of READ)
    fetches=$(cost_of fetch count)
    got=$(sum < /wfs/scan)
    [ "$got" = "$want" ] || fail "read(2) of /wfs/scan: sha256 $got, not $want"
    reads=$(($(stat_of READ) - reads))
    # Every page came in a transaction of its own, timed from its WhereIs
    # to its Data (wfsctl stats, "cost fetch").
    fetches=$(($(cost_of fetch count) - fetches))
    [ "$fetches" -ge 2048 ] || fail "$fetches page fetches timed for the 2048 pages of /wfs/scan"
    hits=$(prefetch_stat 2)
    enough "$hits" 2048 || fail "$hits of 2048 READs answered from pages fetched ahead"
    # Runs: many of the 2048 pages came several to a READ (mrsw; about 260
    # READs on the normal kernel, 700 on the slower debug one, whose READs
    # more often come before the pages after theirs have).
    if mrsw; then
        [ "$reads" -lt 1536 ] || fail "$reads READs for the 2048 pages of /wfs/scan: few runs"
    else
        [ "$reads" = 2048 ] || fail "$reads READs for the 2048 pages of /wfs/scan (single: one each)"
    fi
    want=$(cat /wfs/scanm.sum)
    got=$($H/mmapcat /wfs/scanm | sum)
    [ "$got" = "$want" ] || fail "mmap of /wfs/scanm: sha256 $got, not $want"
    hits2=$(prefetch_stat 2)
    enough $((hits2 - hits)) 2048 || fail "mmap: $((hits2 - hits)) of 2048 faults answered from pages fetched ahead"
    echo "h2: /wfs/scan and /wfs/scanm read, $hits2 pages answered from $(prefetch_stat 1) fetched ahead; $reads READs for the 2048 pages of /wfs/scan"

    # 2. Pages fetched ahead and then written by their owner.
    before=$(($(prefetch_stat 1) - $(prefetch_stat 2)))
    dd if=/wfs/fresh of=/dev/null bs=4096 count=64 2>/dev/null
    # Pages past 63 arrive, kept and not read: at least pages 64-95 (asked
    # for in batches, whenever less than half the 64-page window is ahead;
    # READs of pages 2-63 that came before their page did waited for it
    # and are not counted).
    unread() { echo $(($(prefetch_stat 1) - $(prefetch_stat 2) - before)); }
    kept() { [ $(unread) -ge 32 ]; }
    ! mrsw || within 30 kept || fail "only $(unread) pages of /wfs/fresh fetched ahead and not read"
    $H/dsm set /wfs/ctl $HIS 1
    $H/dsm wait /wfs/ctl $MINE 1 120 || fail "h1 never rewrote /wfs/fresh"
    appear 60 fresh.sum || fail "/wfs/fresh.sum never appeared"
    want=$(cat /wfs/fresh.sum)
    got=$(sum < /wfs/fresh)
    [ "$got" = "$want" ] || fail "/wfs/fresh after h1's rewrite: sha256 $got, not $want"

    # 3. Pages fetched ahead and never read go back to their owner.
    if mrsw; then
        $H/dsm set /wfs/ctl $READY 1
        $H/dsm wait /wfs/ctl $COUNTED 1 120 || fail "h1 never counted"
        before=$(prefetch_stat 3)
        fetched=$(prefetch_stat 1)
        dd if=/wfs/idle of=/dev/null bs=4096 count=64 2>/dev/null
        dropped() { [ $(($(prefetch_stat 3) - before)) -ge 1 ]; }
        within 60 dropped || fail "nothing fetched ahead of /wfs/idle dropped unread: $(wfsctl stats | grep '^prefetch')"
        sleep 1
        echo "h2: $(($(prefetch_stat 1) - fetched)) pages of /wfs/idle fetched ahead, $(($(prefetch_stat 3) - before)) dropped unread"
        held=$($H/incore /wfs/idle)
        [ "$held" -ge 64 ] && [ "$held" -le 79 ] ||
            fail "h2's kernel holds $held pages of /wfs/idle, not 64 to 79"
        $H/dsm set /wfs/ctl $HELD "$held"
        $H/dsm set /wfs/ctl $DROPPED 1
        # (Leaving would give every copy back.)
        $H/dsm wait /wfs/ctl $CHECKED 1 120 || fail "h1 never counted again"
    fi
else
    # (h2 reads 16 MiB first, a page per round trip with `single`: slow
    # on the debug kernel beside another test.)
    $H/dsm wait /wfs/ctl $HIS 1 600 || fail "h2 never read /wfs/fresh"
    head -c $((64 * 4096)) /dev/urandom > /tmp/new
    cp /export/fresh /tmp/expect
    dd if=/tmp/new of=/tmp/expect bs=4096 seek=64 conv=notrunc 2>/dev/null
    dd if=/tmp/new of=/wfs/fresh bs=4096 seek=64 conv=notrunc,fsync 2>/dev/null ||
        fail "writing pages 64-127 of /wfs/fresh"
    got=$(sum < /wfs/fresh)
    want=$(sum < /tmp/expect)
    [ "$got" = "$want" ] || fail "h1 reads back $got, not $want"
    echo "$want" > /export/.fresh.sum
    mv /export/.fresh.sum /export/fresh.sum
    $H/dsm set /wfs/ctl $MINE 1
    # h1 sent h2 every page of /wfs/scan and /wfs/scanm from its disk: each
    # read from the export and timed from its request to its Data.
    for stage in disk_read serve; do
        n=$(cost_of $stage count)
        [ "$n" -ge 4096 ] || fail "$n pages timed for $stage at h1, not 4096 or more"
    done

    if mrsw; then
        # (h2's kernel keeps what it read; nothing else of h2's changes.)
        $H/dsm wait /wfs/ctl $READY 1 300 || fail "h2 never finished step 2"
        r0=$(read_copies 2)
        [ -n "$r0" ] || fail "no read-only copy count for h2: $(wfsctl status)"
        $H/dsm set /wfs/ctl $COUNTED 1
        $H/dsm wait /wfs/ctl $DROPPED 1 120 || fail "h2's manager never dropped what it fetched ahead"
        held=$($H/dsm get /wfs/ctl $HELD)
        given() { [ "$(read_copies 2)" = $((r0 + held)) ]; }
        within 10 given ||
            fail "h2 holds $(read_copies 2) read-only copies of h1's pages, not $r0 + the $held its kernel holds: pages fetched ahead and dropped unread still counted"
        echo "h1: h2 holds $r0 + $held read-only copies: those it fetched ahead and never read came back"
        $H/dsm set /wfs/ctl $CHECKED 1
    fi
fi
# The owner stays until h2 is done.
if [ "$h" = 2 ]; then
    $H/dsm set /wfs/ctl 8 1
else
    $H/dsm wait /wfs/ctl 8 1 300 || fail "h2 never finished"
fi
echo "PASS h$h"
