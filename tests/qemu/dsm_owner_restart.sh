#!/bin/sh
# hosts: 3
# timeout: 300
#
# An owner's manager dies and restarts while other hosts hold its pages:
# nothing they hold is lost. h1 owns /wfs/data (4 pages); h2 writes pages
# 0 and 1 through a shared mapping and h3 page 2, all left dirty (no msync,
# periodic writeback off), so the only copies are in h2's and h3's page
# caches. Then h1 kills its manager (SIGKILL) and starts a new one. The new
# incarnation knows nothing of where its pages are: it serves none until
# every peer has said which it holds (`Holding`), and rebuilds its
# directory from that.
#
# - h1, through the new manager, reads all three pages and finds h2's and
#   h3's bytes: they came from their holders, not from its disk (zeros).
# - h2 reads h3's page and h3 reads h2's, through the new directory.
# - Nothing was reported lost (on any host), and after every host synced
#   the owner's disk holds every page.
# Before, the new manager served the pages from its disk: zeros, and a
# second writable copy beside the holder's.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/flags (h3's file, so that it works while h1 restarts).
# h1 never touches it before its manager is killed: a copy of h3's page in
# h1's kernel then would die with that incarnation, and h3 would report it
# lost, rightly (as dsm_owner_away once did).
RESTARTED=16     # h1's new manager is up
READ=20          # + 4*h: h has read the other's page
CHECKED=40       # h1 checked its disk
fail() { fail_with_state "$@"; }
page() { dd if=/wfs/data bs=1 skip=$(($1 * 4096)) count=$2 2>/dev/null; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
case $h in
1) dd if=/dev/zero of=/export/.data bs=4096 count=4 2>/dev/null && mv /export/.data /export/data ;;
3) dd if=/dev/zero of=/export/flags bs=4096 count=1 2>/dev/null ;;
esac
appear 60 data flags || fail "/wfs/data or /wfs/flags never appeared"

case $h in
1)
    # h2 and h3 have written once they hold their pages (the faulting
    # store is done right after the page is granted).
    within 120 holds 2 2 || fail "h2 never took pages 0 and 1"
    within 120 holds 3 1 || fail "h3 never took page 2"
    grep -q h2-page /export/data && fail "h2's bytes are on disk already: nothing to test"
    old=$(pidof wfs-manager)
    kill -9 "$old"
    while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    wfs-manager --config /etc/wfs/cluster.toml &
    wfsctl wait --peers --timeout 60 || fail "the new manager did not register and connect"
    echo "h1: a new manager is up"
    $H/dsm set /wfs/flags $RESTARTED 1
    [ "$(page 0 9)" = h2-page-0 ] || fail "page 0 lacks h2's bytes: $(page 0 9 | od -c | head -2)"
    [ "$(page 1 9)" = h2-page-1 ] || fail "page 1 lacks h2's bytes: $(page 1 9 | od -c | head -2)"
    [ "$(page 2 9)" = h3-page-2 ] || fail "page 2 lacks h3's bytes: $(page 2 9 | od -c | head -2)"
    echo "h1: the new manager found every page at its holder"
    $H/dsm wait /wfs/flags $((READ + 8)) 1 120 || fail "h2 never read"
    $H/dsm wait /wfs/flags $((READ + 12)) 1 120 || fail "h3 never read"
    sync
    for s in h2-page-0 h2-page-1 h3-page-2; do
        grep -q $s /export/data || fail "/export/data lacks $s after the sync"
    done
    lost=$(failures 2)
    [ "$lost" = 0 ] || fail "$lost page(s) reported lost"
    echo "h1: every page is on disk, nothing lost"
    $H/dsm set /wfs/flags $CHECKED 1
    ;;
2)
    $H/mmapwrite /wfs/data 16384 0 h2-page-0 || fail "writing page 0"
    $H/mmapwrite /wfs/data 16384 4096 h2-page-1 || fail "writing page 1"
    $H/dsm wait /wfs/flags $RESTARTED 1 180 || fail "h1 never restarted"
    [ "$(page 2 9)" = h3-page-2 ] || fail "page 2 lacks h3's bytes: $(page 2 9 | od -c | head -2)"
    sync
    $H/dsm set /wfs/flags $((READ + 8)) 1
    ;;
3)
    $H/mmapwrite /wfs/data 16384 8192 h3-page-2 || fail "writing page 2"
    $H/dsm wait /wfs/flags $RESTARTED 1 180 || fail "h1 never restarted"
    [ "$(page 0 9)" = h2-page-0 ] || fail "page 0 lacks h2's bytes: $(page 0 9 | od -c | head -2)"
    sync
    $H/dsm set /wfs/flags $((READ + 12)) 1
    ;;
esac
$H/dsm wait /wfs/flags $CHECKED 1 180 || fail "the owner never checked"
lost=$(failures 2)
[ "$lost" = 0 ] || fail "$lost page(s) reported lost on h$h"
sleep 2
echo "PASS h$h"
