#!/bin/sh
# hosts: 3
# timeout: 600
# cut: 2@10+40
#
# An owner that restarts still refuses an incarnation it took for dead,
# and so the dirty data that incarnation kept of its pages: data older
# than what was written since. h2 writes a page of h3's file through a
# mapping and leaves it dirty (no msync, periodic writeback off); 10 s
# into its command it is cut off the network for 40 s (tools/wfs-vm
# --cut). It fences itself off h3's pages: the dirty data waits to go
# home, and h2, alone, takes nobody for dead.
#
# - h1 and h3 take h2 for dead, h3 reports the page lost, h1 writes the
#   page anew and syncs it (on h3's disk), then leaves (its command ends).
# - h3's manager is killed and restarted about 5 s before the heal: the
#   new one never took h2 for dead itself, but its state file says an
#   earlier one did (`/var/lib/wfs/wfs-vm.h3.dead`).
# - At the heal h2 sees h3's new incarnation, so it takes the old one for
#   dead and would bring it the data it kept (`Orphan`); the new manager
#   refuses h2 as dead instead, h2 restarts as a new incarnation, and the
#   page and h3's disk keep h1's bytes. A new manager that forgot the
#   death took h2's old bytes over h1's synced ones.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/flags (h3's file).
WROTE=0          # h2 has written its page
AFTER=4          # h1 has written the page after h2's death
BACK=8           # h2 has rejoined and read the page
fail() { fail_with_state "$@"; }
peer_is() { wfsctl status | grep -q "^peer $1 .*; $2 "; }
page() { dd if=/wfs/page bs=1 count=9 2>/dev/null; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
case $h in
3)
    dd if=/dev/zero of=/export/page bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/flags bs=4096 count=1 2>/dev/null
    ;;
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
    $H/mmapwrite /wfs/page 4096 0 h1-after! sync || fail "writing the page after h2's death"
    $H/dsm set /wfs/flags $AFTER 1
    echo "h1: wrote and synced the page after h2's death; leaving"
    ;;
2)
    $H/mmapwrite /wfs/page 4096 0 h2-before || fail "writing the page"
    $H/dsm set /wfs/flags $WROTE 1
    echo "h2: wrote h3's page, left it dirty"
    i=0
    until [ "$(failures 3)" -ge 1 ]; do
        i=$((i + 1))
        [ $i -le 600 ] || fail "h2 never fenced itself"
        sleep 0.1
    done
    echo "h2: fenced itself off h3's pages"
    # The heal: h3's new manager refuses this incarnation; the manager
    # restarts (same process, new incarnation: its counters start again).
    i=0
    until [ "$(failures 3)" = 0 ]; do
        i=$((i + 1))
        [ $i -le 1200 ] || fail "the manager never restarted after the heal"
        sleep 0.1
    done
    echo "h2: rejoined as a new incarnation"
    [ "$(page)" = h1-after! ] || fail "h2 reads $(page | od -c | head -1), not h1's bytes"
    $H/dsm set /wfs/flags $BACK 1
    ;;
3)
    # The cut is seen here as the connection to h2 closing (5 s without a
    # heartbeat); the heal comes 35 s after that.
    i=0
    while peer_is h2 alive && wfsctl status | grep -q "^peer h2 .* connected;"; do
        i=$((i + 1))
        [ $i -le 1200 ] || fail "the connection to h2 never closed"
        sleep 0.1
    done
    closed=$(date +%s)
    $H/dsm wait /wfs/flags $AFTER 1 120 || fail "h1 never wrote after h2's death"
    peer_is h2 dead || fail "h2 is not taken for dead here: $(wfsctl status | grep '^peer h2')"
    [ "$(failures 2)" -ge 1 ] || fail "h2's dirty page was not reported lost"
    grep -q "^h2 " /var/lib/wfs/wfs-vm.h3.dead || fail "h2's death is not on disk"
    grep -q h1-after! /export/page || fail "/export/page lacks h1's synced bytes"
    while [ $(($(date +%s) - closed)) -lt 30 ]; do sleep 0.5; done
    # (The test is of a manager that never saw h2's old incarnation: it
    # must start before the heal.)
    [ $(($(date +%s) - closed)) -le 33 ] || fail "too late to restart before the heal"
    wfsctl status | grep -q "^peer h2 .* connected;" && fail "h2 is back already"
    old=$(pidof wfs-manager)
    kill -9 "$old"
    while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    wfs-manager --config /etc/wfs/cluster.toml &
    wfsctl wait --timeout 60 || fail "the new manager did not register"
    echo "h3: manager restarted before the heal"
    $H/dsm wait /wfs/flags $BACK 1 300 || fail "h2 never came back"
    peer_is h2 rejoined || fail "h2 is not shown rejoined: $(wfsctl status | grep '^peer h2')"
    [ "$(page)" = h1-after! ] || fail "the page reads $(page | od -c | head -1)"
    sync
    grep -q h1-after! /export/page || fail "/export/page lost h1's synced bytes: $(od -c /export/page | head -1)"
    echo "h3: h2's old incarnation refused after the restart; h1's bytes kept"
    ;;
esac
sleep 2
echo "PASS h$h"
