#!/bin/sh
# hosts: 3
# timeout: 600
#
# A peer manager dies in the middle of the spin-lock counter, and comes
# back. h3 owns /wfs/ctr, one page: a spin lock, the counter, and each
# host's own count of its increments (`dsm tally`: an increment adds one to
# both under the lock), pausing a moment after each so that the page moves
# back and forth. Right after one of its increments, h2 stops its own
# manager (SIGSTOP, so that it dies holding the page, dirty) and kills it
# (SIGKILL), then starts a new one.
#
# Periodic writeback is off on every host: the owner's disk gets the page
# only from the counters' msyncs, taken after an increment with the lock
# free, so a page re-served from disk never comes back locked.
#
# - h1 finishes all its increments: its faults on the page wait for the
#   owner to take h2's dead manager for dead and bring the page back
#   (reported lost if h2 may have had newer data), not for ever.
# - h2's counter fails (its manager is gone: the next fault or msync
#   fails), nothing else does.
# - The page is consistent: the counter is the sum of the hosts' own
#   counts (an increment is kept whole or lost whole), and with no page
#   reported lost, every increment of h1 is there.
# - The owner counted the death and shows h2 as rejoined (`wfsctl
#   status`); h2's new manager reads the same counter as everyone, through
#   the protocol.
# - After the last sync the owner's disk holds the final page.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
N=400            # increments per counting host
KILL_AT=120      # h2 kills its manager after this many
PAUSE=2000       # microseconds after each increment
# Words of /wfs/ctl, a page of flags.
READY=16         # + 4*h: h is ready to count
DONE=48          # h1 has counted
FINAL=64         # the counter as the owner found it (+1, so never 0)
CHECKED=80       # + 4*h: h read the owner's counter
fail() { fail_with_state "$@"; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 3 ]; then
    dd if=/dev/zero of=/export/ctr bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
fi
appear 60 ctr ctl || fail "/wfs/ctr or /wfs/ctl never appeared"

case $h in
1)
    together /wfs/ctl $READY 2 || fail "h2 never got ready"
    start=$(date +%s)
    v=$($H/dsm tally /wfs/ctr $N 1 10 $PAUSE) || fail "counting failed (status $?)"
    echo "h1: counted $N in $(($(date +%s) - start)) s; the counter was $v"
    $H/dsm set /wfs/ctl $DONE 1
    ;;
2)
    together /wfs/ctl $READY 1 || fail "h1 never got ready"
    old=$(pidof wfs-manager)
    rc=0
    $H/dsm tally /wfs/ctr $N 2 10 $PAUSE $KILL_AT "$old" > /dev/null || rc=$?
    [ "$rc" != 0 ] || fail "counting went on to the end without a manager"
    echo "h2: counting stopped (status $rc) after the manager was killed"
    while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    wfs-manager --config /etc/wfs/cluster.toml &
    wfsctl wait --peers --timeout 60 || fail "the new manager did not register and connect"
    echo "h2: a new manager is up"
    ;;
esac

# Everyone: wait for h1 (h2 through its new manager), then for the owner's
# verdict.
$H/dsm wait /wfs/ctl $DONE 1 300 || fail "h1 never finished counting"
if [ "$h" = 3 ]; then
    c=$($H/dsm get /wfs/ctr 4)
    m1=$($H/dsm get /wfs/ctr 12)
    m2=$($H/dsm get /wfs/ctr 16)
    m3=$($H/dsm get /wfs/ctr 20)
    dead=$(failures 1)
    lost=$(failures 2)
    echo "h3: counter $c = h1 $m1 + h2 $m2 (+ h3 $m3); peers taken for dead $dead, pages lost $lost"
    [ "$m3" = 0 ] || fail "h3 never counted, yet its count is $m3"
    [ "$c" = $((m1 + m2)) ] || fail "counter $c is not the sum of the hosts' counts ($m1 + $m2): an increment was torn"
    [ "$m1" -le $N ] && [ "$m2" -le "$KILL_AT" ] || fail "more increments than were made (h1 $m1, h2 $m2)"
    [ "$dead" -ge 1 ] || fail "the owner never took h2's dead manager for dead"
    wfsctl status | grep -q "^peer h2 .* connected; rejoined (incarnation 0x[0-9a-f]*), holds [0-9]* of this host's pages$" ||
        fail "the owner's status does not show h2 rejoined: $(wfsctl status | grep '^peer h2')"
    wfsctl status | grep -q "^peer h1 .* connected; alive (incarnation 0x[0-9a-f]*), holds [0-9]* of this host's pages$" ||
        fail "the owner's status does not show h1 alive: $(wfsctl status | grep '^peer h1')"
    if [ "$lost" = 0 ]; then
        [ "$m1" = $N ] || fail "no page reported lost, but h1's count is $m1, not $N"
        [ "$m2" = "$KILL_AT" ] || fail "no page reported lost, but h2's count is $m2, not $KILL_AT"
    fi
    $H/dsm set /wfs/ctl $FINAL $((c + 1))
    [ "$($H/dsm get /export/ctr 4)" = "$c" ] || fail "/export/ctr holds counter $($H/dsm get /export/ctr 4), not $c, after the msync"
    # The owner stays until both have read (its files go with it).
    $H/dsm wait /wfs/ctl $((CHECKED + 4)) 1 120 || fail "h1 never read the counter"
    $H/dsm wait /wfs/ctl $((CHECKED + 8)) 1 120 || fail "h2 never read the counter"
else
    $H/dsm wait /wfs/ctl $FINAL 1 120 || fail "the owner never checked"
    want=$(($($H/dsm get /wfs/ctl $FINAL) - 1))
    c=$($H/dsm get /wfs/ctr 4)
    [ "$c" = "$want" ] || fail "h$h reads counter $c, the owner read $want"
    echo "h$h: reads the owner's counter $c"
    $H/dsm set /wfs/ctl $((CHECKED + 4 * h)) 1
fi
wfsctl stats || true
# Whoever read last holds the pages: stay up while the others read.
sleep 3
echo "PASS h$h"
