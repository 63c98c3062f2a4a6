#!/bin/sh
# hosts: 3
# timeout: 600
# cut: 2@10+40
#
# A link cut longer than the failure time-out: the cut-off host fences
# itself before anyone else is given its pages, the others go on, and it
# rejoins after the heal. h2 writes into a page of h3's file through a
# mapping and leaves it dirty (no msync, periodic writeback off); 10 s into
# its command it is cut off the network for 40 s (tools/wfs-vm --cut).
#
# - h2 fences itself: with no answer from h3 for its lease (10 s), h3's
#   pages leave its kernel (`wfsctl stats`: fenced at least once), while
#   it is still cut off.
# - h3 and h1 take h2 for dead (h3 only once h2's lease has run out), h3
#   reports h2's dirty page lost, and h1 then writes the page and syncs
#   it: no two writable copies, since h2 no longer had one.
# - After the heal h2 is refused as dead, restarts its manager on its own
#   (a new incarnation) and rejoins: h1 and h3 show it `rejoined`, and h2
#   reads h1's bytes, not its own lost ones.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/flags (h1's file).
WROTE=0          # h2 has written its page
AFTER=4          # h1 has written the page after h2's death
BACK=8           # h2 has rejoined and read the page
fail() { fail_with_state "$@"; }
peer_is() { wfsctl status | grep -q "^peer $1 .*; $2 "; }
page() { dd if=/wfs/page bs=1 count=9 2>/dev/null; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
case $h in
1) dd if=/dev/zero of=/export/flags bs=4096 count=1 2>/dev/null ;;
3) dd if=/dev/zero of=/export/page bs=4096 count=1 2>/dev/null ;;
esac
appear 60 page flags || fail "/wfs/page or /wfs/flags never appeared"

case $h in
1)
    $H/dsm wait /wfs/flags $WROTE 1 60 || fail "h2 never wrote"
    i=0
    until peer_is h2 dead; do
        i=$((i + 1))
        [ $i -le 900 ] || fail "h2 was never taken for dead"
        sleep 0.1
    done
    echo "h1: h2 is taken for dead"
    $H/mmapwrite /wfs/page 4096 0 h1-after! sync || fail "writing the page after h2's death"
    [ "$(page)" = h1-after! ] || fail "the page reads $(page | od -c | head -1)"
    $H/dsm set /wfs/flags $AFTER 1
    $H/dsm wait /wfs/flags $BACK 1 240 || fail "h2 never rejoined"
    peer_is h2 rejoined || fail "h2 is not shown rejoined: $(wfsctl status | grep '^peer h2')"
    ;;
2)
    $H/mmapwrite /wfs/page 4096 0 h2-before || fail "writing the page"
    $H/dsm set /wfs/flags $WROTE 1
    echo "h2: wrote h3's page, left it dirty"
    # Cut off from 10 s on: only this host's own manager answers now.
    i=0
    until [ "$(failures 3)" -ge 1 ]; do
        i=$((i + 1))
        [ $i -le 600 ] || fail "h2 never fenced itself"
        sleep 0.1
    done
    peer_is h3 alive && fail "fenced while h3 still answers"
    echo "h2: fenced itself off h3's pages"
    # The heal: h3 refuses this incarnation; the manager restarts (same
    # process, new incarnation: its counters start again from 0).
    i=0
    until [ "$(failures 3)" = 0 ]; do
        i=$((i + 1))
        [ $i -le 1200 ] || fail "the manager never restarted after the heal"
        sleep 0.1
    done
    wfsctl wait --peers --timeout 60 || fail "the new manager did not connect"
    echo "h2: rejoined as a new incarnation"
    $H/dsm wait /wfs/flags $AFTER 1 60 || fail "h1 never wrote"
    [ "$(page)" = h1-after! ] || fail "h2 reads $(page | od -c | head -1), not h1's bytes"
    $H/dsm set /wfs/flags $BACK 1
    ;;
3)
    $H/dsm wait /wfs/flags $BACK 1 300 || fail "h2 never came back"
    [ "$(failures 1)" -ge 1 ] || fail "h2 was not taken for dead"
    [ "$(failures 2)" -ge 1 ] || fail "h2's dirty page was not reported lost"
    peer_is h2 rejoined || fail "h2 is not shown rejoined: $(wfsctl status | grep '^peer h2')"
    grep -q h1-after! /export/page || fail "/export/page lacks h1's synced bytes"
    echo "h3: h2 was taken for dead, its page lost, h1's write on disk; h2 rejoined"
    ;;
esac
sleep 2
echo "PASS h$h"
