#!/bin/sh
# hosts: 2
# timeout: 300
# coherence: single mrsw
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
#    READs answered from pages fetched ahead.
# 2. h2 reads only the first 64 pages of /wfs/fresh (256 pages): its
#    manager fetches (mrsw) up to 64 pages past them, which h2's kernel has not
#    asked for. h1 then rewrites pages 64-127 through /wfs/fresh (write(2)
#    and fsync). h2 reads the whole file and sees h1's new bytes: the
#    copies kept for its kernel went when h1's write took the pages.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() { fail_with_state "$@"; }
HIS=0     # h2 read the first pages of /wfs/fresh
MINE=4    # h1 rewrote pages 64-127
sum() { sha256sum | cut -d' ' -f1; }
mrsw() { grep -q '^coherence = "mrsw"' /etc/wfs/cluster.toml; }
# enough GOT OF: at least half of OF with mrsw, none with single.
enough() { if mrsw; then [ "$1" -ge $(($2 / 2)) ]; else [ "$1" = 0 ]; fi; }

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/.ctl bs=4096 count=1 2>/dev/null
    head -c $((2048 * 4096)) /dev/urandom > /export/.scan
    head -c $((2048 * 4096)) /dev/urandom > /export/.scanm
    head -c $((256 * 4096)) /dev/urandom > /export/.fresh
    sum < /export/.scan > /export/.scan.sum
    sum < /export/.scanm > /export/.scanm.sum
    for f in ctl scan scanm fresh scan.sum scanm.sum; do mv /export/.$f /export/$f; done
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 60 ctl scan scanm fresh scan.sum scanm.sum || fail "the files never appeared"

if [ "$h" = 2 ]; then
    # 1. read(2), then mmap, of a remote file, byte for byte.
    want=$(cat /wfs/scan.sum)
    got=$(sum < /wfs/scan)
    [ "$got" = "$want" ] || fail "read(2) of /wfs/scan: sha256 $got, not $want"
    hits=$(prefetch_stat 2)
    enough "$hits" 2048 || fail "$hits of 2048 READs answered from pages fetched ahead"
    want=$(cat /wfs/scanm.sum)
    got=$($H/mmapcat /wfs/scanm | sum)
    [ "$got" = "$want" ] || fail "mmap of /wfs/scanm: sha256 $got, not $want"
    hits2=$(prefetch_stat 2)
    enough $((hits2 - hits)) 2048 || fail "mmap: $((hits2 - hits)) of 2048 faults answered from pages fetched ahead"
    echo "h2: /wfs/scan and /wfs/scanm read, $hits2 READs answered from $(prefetch_stat 1) pages fetched ahead"

    # 2. Pages fetched ahead and then written by their owner.
    before=$(($(prefetch_stat 1) - $(prefetch_stat 2)))
    dd if=/wfs/fresh of=/dev/null bs=4096 count=64 2>/dev/null
    # Pages 64-127 arrive, kept and not read (READs of pages 2-63 that
    # came before their page did waited for it and are not counted).
    unread() { echo $(($(prefetch_stat 1) - $(prefetch_stat 2) - before)); }
    kept() { [ $(unread) -ge 64 ]; }
    ! mrsw || within 30 kept || fail "only $(unread) pages of /wfs/fresh fetched ahead and not read"
    $H/dsm set /wfs/ctl $HIS 1
    $H/dsm wait /wfs/ctl $MINE 1 120 || fail "h1 never rewrote /wfs/fresh"
    appear 60 fresh.sum || fail "/wfs/fresh.sum never appeared"
    want=$(cat /wfs/fresh.sum)
    got=$(sum < /wfs/fresh)
    [ "$got" = "$want" ] || fail "/wfs/fresh after h1's rewrite: sha256 $got, not $want"
else
    $H/dsm wait /wfs/ctl $HIS 1 120 || fail "h2 never read /wfs/fresh"
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
fi
# The owner stays until h2 is done.
if [ "$h" = 2 ]; then
    $H/dsm set /wfs/ctl 8 1
else
    $H/dsm wait /wfs/ctl 8 1 120 || fail "h2 never finished"
fi
echo "PASS h$h"
