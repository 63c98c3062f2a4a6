#!/bin/sh
# hosts: 3
# timeout: 300
#
# An owner stays away for longer than the lease while other hosts hold its
# pages dirty: nothing they wrote is lost. h1 owns /wfs/data (4 pages);
# h2 writes pages 0 and 1 through a shared mapping and h3 page 2, all left
# dirty (no msync, periodic writeback off). Then h1's manager is killed
# and stays down for 35 s: h2 and h3 fence themselves off h1's pages once
# their lease runs out (15 s: the pages leave their kernels, and their
# dirty data waits to go home) and take h1's incarnation for dead (20 s).
# That incarnation never had the data, so each keeps it for the next one
# (`Orphan`), which takes it before it serves any page.
#
# - h2 and h3 fence themselves, take h1 for dead and report nothing lost
#   (their managers log that they keep the data).
# - h1's new manager reads h2's and h3's bytes, and its disk has them
#   once every host has synced; h2 reads h3's page, h3 reads h2's.
# Before, the fenced data went home to the dead incarnation: lost,
# reported on h2 and h3, and the new manager served zeros.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/flags (h3's file, so that it works while h1 is away).
# h1 never touches it before its manager is killed: a copy of h3's page in
# h1's kernel then would die with that manager, and h3 would report it
# lost, rightly (CI saw that once, when h1 read h2's and h3's "wrote"
# flags from it).
KILLED=16        # h1's manager is gone
RESTARTED=20     # h1's new manager is up
READ=24          # + 4*h: h has read the other's page
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

# A survivor: waits until it has fenced itself off h1's pages and taken
# h1 for dead, with its data kept, and has lost nothing.
kept() {
    $H/dsm wait /wfs/flags $KILLED 1 120 || fail "h1's manager was never killed"
    n=0
    until [ "$(failures 1)" -ge 1 ] 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt 60 ] || fail "h1 was not taken for dead within 60 s"
        sleep 1
    done
    [ "$(failures 3)" -ge 1 ] || fail "h$h never fenced itself off h1's pages"
    lost=$(failures 2)
    [ "$lost" = 0 ] || fail "$lost page(s) reported lost on h$h"
    echo "h$h: fenced off h1's pages, h1 taken for dead, data kept"
}

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
    # (No flag from here while the manager is away: h2 sees the connection
    # go and says so.)
    echo "h1: manager killed; away for 35 s"
    sleep 35
    wfs-manager --config /etc/wfs/cluster.toml &
    wfsctl wait --peers --timeout 60 || fail "the new manager did not register and connect"
    echo "h1: a new manager is up"
    $H/dsm set /wfs/flags $RESTARTED 1
    [ "$(page 0 9)" = h2-page-0 ] || fail "page 0 lacks h2's bytes: $(page 0 9 | od -c | head -2)"
    [ "$(page 1 9)" = h2-page-1 ] || fail "page 1 lacks h2's bytes: $(page 1 9 | od -c | head -2)"
    [ "$(page 2 9)" = h3-page-2 ] || fail "page 2 lacks h3's bytes: $(page 2 9 | od -c | head -2)"
    echo "h1: the new manager has every page the others wrote"
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
    # h1 cannot say it killed its manager: h2 sees the connection go.
    i=0
    while wfsctl status | grep -q "^peer h1 .* connected;"; do
        i=$((i + 1))
        [ $i -le 300 ] || fail "the connection to h1 never closed"
        sleep 0.2
    done
    $H/dsm set /wfs/flags $KILLED 1
    kept
    $H/dsm wait /wfs/flags $RESTARTED 1 180 || fail "h1 never restarted"
    [ "$(page 2 9)" = h3-page-2 ] || fail "page 2 lacks h3's bytes: $(page 2 9 | od -c | head -2)"
    sync
    $H/dsm set /wfs/flags $((READ + 8)) 1
    ;;
3)
    $H/mmapwrite /wfs/data 16384 8192 h3-page-2 || fail "writing page 2"
    kept
    $H/dsm wait /wfs/flags $RESTARTED 1 180 || fail "h1 never restarted"
    [ "$(page 0 9)" = h2-page-0 ] || fail "page 0 lacks h2's bytes: $(page 0 9 | od -c | head -2)"
    sync
    $H/dsm set /wfs/flags $((READ + 12)) 1
    ;;
esac
$H/dsm wait /wfs/flags $CHECKED 1 180 || fail "the owner never checked"
sleep 2
echo "PASS h$h"
